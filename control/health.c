// SPDX-License-Identifier: MIT
/* Per-service health over a sliding window (control/health.h). */
#include <string.h>

#include "health.h"

void health_init(struct health *h, uint64_t window_ms, uint64_t wall_s)
{
	memset(h, 0, sizeof(*h));
	h->window_ms = window_ms ? window_ms : 60000;
	if (h->window_ms < HEALTH_BUCKETS) {
		h->window_ms = HEALTH_BUCKETS;
	}
	h->state = HEALTH_HEALTHY;
	h->since_s = wall_s;
}

static uint64_t health_slice(const struct health *h)
{
	return h->window_ms / HEALTH_BUCKETS;
}

void health_record(struct health *h, uint64_t now_ms, uint64_t wall_s, bool ok, const char *err)
{
	uint64_t slice = health_slice(h);
	uint64_t start = now_ms - now_ms % slice;
	struct health_bucket *b = &h->b[(now_ms / slice) % HEALTH_BUCKETS];

	if (b->start_ms != start || (!b->ok && !b->fail)) {
		*b = (struct health_bucket){ .start_ms = start };
	}
	if (ok) {
		b->ok++;
		return;
	}
	b->fail++;
	strncpy(h->last_error, err ? err : "failed", sizeof(h->last_error) - 1);
	h->last_error[sizeof(h->last_error) - 1] = '\0';
	h->last_error_s = wall_s;
}

void health_rate(const struct health *h, uint64_t now_ms, uint32_t *calls, uint32_t *fails)
{
	uint64_t slice = health_slice(h);
	uint64_t cur = now_ms - now_ms % slice;

	*calls = 0;
	*fails = 0;
	for (unsigned i = 0; i < HEALTH_BUCKETS; i++) {
		const struct health_bucket *b = &h->b[i];

		/* A bucket counts while its slice is one of the last HEALTH_BUCKETS slices. */
		if (b->start_ms > cur || cur - b->start_ms >= h->window_ms) {
			continue;
		}
		*calls += b->ok + b->fail;
		*fails += b->fail;
	}
}

enum health_state health_eval(struct health *h, uint64_t now_ms, uint64_t wall_s, bool operational)
{
	enum health_state s = HEALTH_HEALTHY;
	uint32_t calls, fails;

	health_rate(h, now_ms, &calls, &fails);
	if (!operational) {
		s = HEALTH_UNHEALTHY;
	} else if (calls && (uint64_t)fails * 100 > (uint64_t)calls * HEALTH_DEGRADED_PERCENT) {
		s = HEALTH_DEGRADED;
	}
	if (s != h->state) {
		h->state = s;
		h->since_s = wall_s;
	}
	return s;
}

const char *health_state_name(enum health_state s)
{
	switch (s) {
	case HEALTH_HEALTHY:
		return "healthy";
	case HEALTH_DEGRADED:
		return "degraded";
	default:
		return "unhealthy";
	}
}
