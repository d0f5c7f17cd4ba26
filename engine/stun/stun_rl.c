// SPDX-License-Identifier: MIT
/* Per-source GCRA token bucket: see stun_rl.h. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <xxhash.h>

#include "stun_rl.h"

enum { STUN_RL_WAYS = 4 };

int stun_rl_init(struct stun_rl *rl, uint32_t rate, uint32_t burst, size_t entries)
{
	size_t nsets = 1;

	memset(rl, 0, sizeof(*rl));
	if (rate > 1000000000u || entries > ((size_t)1 << 24)) {
		return -EINVAL;
	}
	if (!rate) {
		return 0;
	}
	if (!burst) {
		burst = rate;
	}
	while (nsets * STUN_RL_WAYS < entries) {
		nsets <<= 1;
	}
	rl->tab = calloc(nsets * STUN_RL_WAYS, sizeof(*rl->tab));
	if (!rl->tab) {
		return -ENOMEM;
	}
	rl->nsets = nsets;
	rl->interval_ns = 1000000000ull / rate;
	rl->tolerance_ns = (uint64_t)(burst - 1) * rl->interval_ns;
	return 0;
}

void stun_rl_cleanup(struct stun_rl *rl)
{
	free(rl->tab);
	memset(rl, 0, sizeof(*rl));
}

bool stun_rl_allow(struct stun_rl *rl, const struct stun_rl_key *key, uint64_t now_ns)
{
	struct stun_rl_entry *set, *victim = NULL;
	uint64_t tat;

	if (!rl->interval_ns) {
		return true;
	}
	set = &rl->tab[(XXH3_64bits(key, sizeof(*key)) & (rl->nsets - 1)) * STUN_RL_WAYS];
	for (int i = 0; i < STUN_RL_WAYS; i++) {
		struct stun_rl_entry *e = &set[i];

		if (e->used && !memcmp(&e->key, key, sizeof(*key))) {
			tat = e->tat_ns > now_ns ? e->tat_ns : now_ns;
			if (tat - now_ns > rl->tolerance_ns) {
				return false;
			}
			e->tat_ns = tat + rl->interval_ns;
			return true;
		}
		if (!victim || !e->used || (victim->used && e->tat_ns < victim->tat_ns)) {
			victim = e;
		}
	}
	/* New source: a full bucket, as the BPF side's first lookup miss. */
	victim->used = true;
	victim->key = *key;
	victim->tat_ns = now_ns + rl->interval_ns;
	return true;
}
