/* SPDX-License-Identifier: MIT */
/*
 * Circuit breaker per service. Closed: calls pass. After `threshold` consecutive failures it
 * opens: calls are refused until `cooldown_ms` has passed, then it is half-open: exactly one
 * probe call passes; its success closes the breaker, its failure opens it again for another
 * cool-down. Times come from the caller (an injected clock), in milliseconds.
 */
#ifndef NATX_CTL_BREAKER_H
#define NATX_CTL_BREAKER_H

#include <stdbool.h>
#include <stdint.h>

enum breaker_state {
	BREAKER_CLOSED,
	BREAKER_OPEN,
	BREAKER_HALF_OPEN,
};

struct breaker {
	enum breaker_state state;
	unsigned failures; /* consecutive failures while closed */
	unsigned threshold; /* failures that open the breaker, >= 1 */
	uint64_t cooldown_ms; /* open -> half-open delay, ms */
	uint64_t opened_at_ms; /* when it last opened, ms on the injected clock */
	bool probe_inflight; /* half-open: the single probe has been let through */
};

/* breaker_init - closed breaker; threshold 0 is taken as 1. */
void breaker_init(struct breaker *b, unsigned threshold, uint64_t cooldown_ms);

/* breaker_state_at - the state at @now without changing anything (open turns half-open). */
enum breaker_state breaker_state_at(const struct breaker *b, uint64_t now);

/* breaker_permits - true when a call would be let through at @now; changes nothing. */
bool breaker_permits(const struct breaker *b, uint64_t now);

/*
 * breaker_allow - take permission for one call at @now. Returns true when the call may go;
 * in half-open state only the first caller gets true until breaker_success/failure.
 */
bool breaker_allow(struct breaker *b, uint64_t now);

/* breaker_success - the call let through succeeded: closed, failure count reset. */
void breaker_success(struct breaker *b, uint64_t now);

/* breaker_failure - the call let through failed: count it, open at threshold or after a probe. */
void breaker_failure(struct breaker *b, uint64_t now);

/* breaker_state_name - "closed", "open" or "half_open". */
const char *breaker_state_name(enum breaker_state s);

#endif
