// SPDX-License-Identifier: MIT
/* Per-source GCRA token bucket (engine/stun/stun_rl.c), with an injected clock. */
#include <criterion/criterion.h>
#include <errno.h>

#include "stun_rl.h"
#include "stun_wire.h"

TestSuite(stun_rl, .timeout = 10);

static struct stun_rl_key key4(uint8_t last)
{
	struct stun_rl_key k = { .family = STUN_FAMILY_IPV4, .addr = { 10, 0, 0, last } };

	return k;
}

Test(stun_rl, burst_then_refill_at_rate)
{
	struct stun_rl rl;
	struct stun_rl_key a = key4(1);
	uint64_t t = 5000000000ull;

	cr_assert_eq(stun_rl_init(&rl, 10, 5, 64), 0); /* 10/s, burst 5: one token per 100 ms */
	for (int i = 0; i < 5; i++) {
		cr_assert(stun_rl_allow(&rl, &a, t), "request %d of the burst", i);
	}
	cr_assert_not(stun_rl_allow(&rl, &a, t));
	cr_assert_not(stun_rl_allow(&rl, &a, t + 99999999));
	cr_assert(stun_rl_allow(&rl, &a, t + 100000000)); /* one token after 100 ms */
	cr_assert_not(stun_rl_allow(&rl, &a, t + 100000000));
	/* An idle second refills the bucket to its size, not beyond. */
	t += 2000000000ull;
	for (int i = 0; i < 5; i++) {
		cr_assert(stun_rl_allow(&rl, &a, t));
	}
	cr_assert_not(stun_rl_allow(&rl, &a, t));
	stun_rl_cleanup(&rl);
}

Test(stun_rl, sources_are_independent)
{
	struct stun_rl rl;
	struct stun_rl_key a = key4(1), b = key4(2);
	struct stun_rl_key v6 = { .family = STUN_FAMILY_IPV6, .addr = { 0x20, 0x01, [15] = 1 } };

	cr_assert_eq(stun_rl_init(&rl, 1, 1, 64), 0);
	cr_assert(stun_rl_allow(&rl, &a, 1000));
	cr_assert_not(stun_rl_allow(&rl, &a, 1000));
	cr_assert(stun_rl_allow(&rl, &b, 1000));
	cr_assert(stun_rl_allow(&rl, &v6, 1000));
	cr_assert_not(stun_rl_allow(&rl, &v6, 1000));
	stun_rl_cleanup(&rl);
}

Test(stun_rl, rate_zero_is_unlimited_and_bad_rate_rejected)
{
	struct stun_rl rl;
	struct stun_rl_key a = key4(1);

	cr_assert_eq(stun_rl_init(&rl, 0, 0, 64), 0);
	for (int i = 0; i < 1000; i++) {
		cr_assert(stun_rl_allow(&rl, &a, 0));
	}
	stun_rl_cleanup(&rl);
	stun_rl_cleanup(&rl); /* idempotent */
	cr_assert_eq(stun_rl_init(&rl, 1000000001u, 1, 64), -EINVAL);
}

Test(stun_rl, a_full_table_keeps_answering_new_sources)
{
	struct stun_rl rl;

	/* 4 entries: the fifth source evicts the idlest one and still gets its full bucket. */
	cr_assert_eq(stun_rl_init(&rl, 1, 1, 4), 0);
	for (uint8_t i = 0; i < 200; i++) {
		struct stun_rl_key k = key4(i);

		cr_assert(stun_rl_allow(&rl, &k, 1000), "source %u", i);
	}
	stun_rl_cleanup(&rl);
}
