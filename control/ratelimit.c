// SPDX-License-Identifier: MIT
/* Per-client token buckets (control/ratelimit.h). */
#include <string.h>

#include "natx/err.h"
#include "ratelimit.h"

void ratelimit_init(struct ratelimit *rl, uint32_t rate, uint32_t burst)
{
	rl->rate = rate;
	rl->burst = burst ? burst : 1;
	rl->n = 0;
}

static struct ratelimit_entry *ratelimit_slot(struct ratelimit *rl, const char *key, uint64_t now)
{
	struct ratelimit_entry *lru = NULL;

	for (unsigned i = 0; i < rl->n; i++) {
		if (!strncmp(rl->e[i].key, key, RATELIMIT_KEY_MAX - 1)) {
			return &rl->e[i];
		}
		if (!lru || rl->e[i].last_ms < lru->last_ms) {
			lru = &rl->e[i];
		}
	}
	if (rl->n < RATELIMIT_KEYS) {
		lru = &rl->e[rl->n++];
	}
	strncpy(lru->key, key, RATELIMIT_KEY_MAX - 1);
	lru->key[RATELIMIT_KEY_MAX - 1] = '\0';
	lru->millitokens = (uint64_t)rl->burst * 1000;
	lru->last_ms = now;
	return lru;
}

int ratelimit_take(struct ratelimit *rl, const char *key, uint64_t now)
{
	struct ratelimit_entry *e;
	uint64_t cap = (uint64_t)rl->burst * 1000;

	if (!rl->rate) {
		return 0;
	}
	e = ratelimit_slot(rl, key, now);
	if (now > e->last_ms) {
		/* rate tokens/s == rate millitokens/ms */
		uint64_t add = (now - e->last_ms) * rl->rate;

		e->millitokens = add >= cap - e->millitokens ? cap : e->millitokens + add;
		e->last_ms = now;
	}
	if (e->millitokens < 1000) {
		return -NATX_E_RATE_LIMITED;
	}
	e->millitokens -= 1000;
	return 0;
}
