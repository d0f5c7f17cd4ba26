// SPDX-License-Identifier: MIT
/* Circuit breaker (control/breaker.h). */
#include "breaker.h"

void breaker_init(struct breaker *b, unsigned threshold, uint64_t cooldown_ms)
{
	*b = (struct breaker){ .state = BREAKER_CLOSED,
			       .threshold = threshold ? threshold : 1,
			       .cooldown_ms = cooldown_ms };
}

enum breaker_state breaker_state_at(const struct breaker *b, uint64_t now)
{
	if (b->state == BREAKER_OPEN && now - b->opened_at_ms >= b->cooldown_ms) {
		return BREAKER_HALF_OPEN;
	}
	return b->state;
}

bool breaker_permits(const struct breaker *b, uint64_t now)
{
	switch (breaker_state_at(b, now)) {
	case BREAKER_CLOSED:
		return true;
	case BREAKER_HALF_OPEN:
		return b->state == BREAKER_OPEN || !b->probe_inflight;
	default:
		return false;
	}
}

bool breaker_allow(struct breaker *b, uint64_t now)
{
	if (!breaker_permits(b, now)) {
		return false;
	}
	if (breaker_state_at(b, now) == BREAKER_HALF_OPEN) {
		b->state = BREAKER_HALF_OPEN;
		b->probe_inflight = true;
	}
	return true;
}

void breaker_success(struct breaker *b, uint64_t now)
{
	b->state = BREAKER_CLOSED;
	b->failures = 0;
	b->probe_inflight = false;
}

void breaker_failure(struct breaker *b, uint64_t now)
{
	b->probe_inflight = false;
	if (b->state == BREAKER_HALF_OPEN || ++b->failures >= b->threshold) {
		b->state = BREAKER_OPEN;
		b->opened_at_ms = now;
		b->failures = 0;
	}
}

const char *breaker_state_name(enum breaker_state s)
{
	switch (s) {
	case BREAKER_CLOSED:
		return "closed";
	case BREAKER_OPEN:
		return "open";
	default:
		return "half_open";
	}
}
