// SPDX-License-Identifier: MIT
/* Exponential backoff with bounded jitter (control/backoff.h). */
#include "backoff.h"

void backoff_init(struct backoff *b, uint64_t base_ms, uint64_t max_ms)
{
	b->base_ms = base_ms ? base_ms : 1;
	b->max_ms = max_ms < b->base_ms ? b->base_ms : max_ms;
	b->attempt = 0;
}

uint64_t backoff_next(struct backoff *b, uint32_t rnd)
{
	uint64_t d = b->base_ms;

	/* Doubling stops at the ceiling, so the shift never overflows. */
	for (unsigned i = 0; i < b->attempt && d < b->max_ms; i++) {
		d *= 2;
	}
	if (d > b->max_ms) {
		d = b->max_ms;
	}
	if (b->attempt < 64) {
		b->attempt++;
	}
	return d / 2 + rnd % (d - d / 2 + 1);
}

void backoff_reset(struct backoff *b)
{
	b->attempt = 0;
}
