/* SPDX-License-Identifier: MIT */
/*
 * Injected time and randomness for the policy code (breaker, backoff, rate limit, health,
 * selection), in the quicly style: unit tests pass a struct whose callbacks they drive, natxd
 * passes clock_system.
 */
#ifndef NATX_CTL_CLOCK_H
#define NATX_CTL_CLOCK_H

#include <stdint.h>

struct clock {
	uint64_t (*now_ms)(const struct clock *c); /* monotonic time, milliseconds */
	uint64_t (*wall_s)(const struct clock *c); /* unix time, seconds */
	void (*sleep_ms)(const struct clock *c, uint64_t ms); /* block (tests: advance) */
	uint32_t (*rand32)(const struct clock *c); /* jitter source, uniform */
	void *ctx; /* owner's state for the callbacks */
};

/* clock_system - CLOCK_MONOTONIC, CLOCK_REALTIME, nanosleep and getrandom-seeded xorshift. */
extern const struct clock clock_system;

#endif
