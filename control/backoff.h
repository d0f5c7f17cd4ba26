/* SPDX-License-Identifier: MIT */
/*
 * Exponential backoff with bounded jitter. The n-th delay (n from 0) is drawn uniformly from
 * [d/2, d] where d = min(max_ms, base_ms * 2^n): never more than max_ms, never less than half
 * the nominal step, so retries spread out without collapsing to zero.
 */
#ifndef NATX_CTL_BACKOFF_H
#define NATX_CTL_BACKOFF_H

#include <stdint.h>

struct backoff {
	uint64_t base_ms; /* first nominal delay, ms (>= 1) */
	uint64_t max_ms; /* ceiling of every delay, ms (>= base_ms) */
	unsigned attempt; /* delays handed out since the last reset */
};

/* backoff_init - zero attempts; base 0 becomes 1 and max below base becomes base. */
void backoff_init(struct backoff *b, uint64_t base_ms, uint64_t max_ms);

/* backoff_next - the next delay in ms, jittered with @rnd; advances the attempt count. */
uint64_t backoff_next(struct backoff *b, uint32_t rnd);

/* backoff_reset - start again from base_ms (after a success). */
void backoff_reset(struct backoff *b);

#endif
