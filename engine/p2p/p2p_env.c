// SPDX-License-Identifier: MIT
/* p2p_env.c - the production clock and RNG (see p2p_env.h). */
#include <time.h>

#include "crypto.h"
#include "p2p_env.h"

static int64_t system_now_ms(struct p2p_clock *self)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void system_fill(struct p2p_rng *self, void *buf, size_t len)
{
	crypto_random_bytes(buf, len);
}

struct p2p_clock p2p_clock_system = { system_now_ms };
struct p2p_rng p2p_rng_system = { system_fill };
