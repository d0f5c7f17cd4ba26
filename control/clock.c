// SPDX-License-Identifier: MIT
/* The real clock for natxd (control/clock.h). */
#include <sys/random.h>
#include <time.h>

#include "clock.h"

static uint64_t clock_sys_now_ms(const struct clock *c)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static uint64_t clock_sys_wall_s(const struct clock *c)
{
	return (uint64_t)time(NULL);
}

static void clock_sys_sleep_ms(const struct clock *c, uint64_t ms)
{
	struct timespec ts = { .tv_sec = (time_t)(ms / 1000),
			       .tv_nsec = (long)(ms % 1000) * 1000000 };

	while (nanosleep(&ts, &ts) != 0) {
	}
}

/* clock_sys_rand32 - xorshift32 seeded once from getrandom(); jitter needs no crypto quality. */
static uint32_t clock_sys_rand32(const struct clock *c)
{
	static uint32_t s;

	if (!s) {
		if (getrandom(&s, sizeof(s), 0) != sizeof(s) || !s) {
			s = (uint32_t)clock_sys_now_ms(c) | 1;
		}
	}
	s ^= s << 13;
	s ^= s >> 17;
	s ^= s << 5;
	return s;
}

const struct clock clock_system = {
	.now_ms = clock_sys_now_ms,
	.wall_s = clock_sys_wall_s,
	.sleep_ms = clock_sys_sleep_ms,
	.rand32 = clock_sys_rand32,
	.ctx = 0,
};
