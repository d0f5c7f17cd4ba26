// SPDX-License-Identifier: MIT
/* Heartbeat / dead-peer timing and reconnect backoff (engine/tunnel/tun_live.c). */
#include <criterion/criterion.h>

#include "tun_live.h"

Test(tun_live, heartbeat_when_idle_and_dead_when_silent)
{
	struct tun_liveness l;

	tun_liveness_init(&l, 1000, 30000, 90000);
	cr_assert_eq(tun_liveness_poll(&l, 1000), TUN_LIVE_OK);
	cr_assert_eq(tun_liveness_deadline(&l), 31000);
	cr_assert_eq(tun_liveness_poll(&l, 30999), TUN_LIVE_OK);
	cr_assert_eq(tun_liveness_poll(&l, 31000), TUN_LIVE_HEARTBEAT);
	tun_liveness_sent(&l, 31000);
	cr_assert_eq(tun_liveness_poll(&l, 31001), TUN_LIVE_OK);
	/* the peer answers: silence restarts */
	tun_liveness_received(&l, 40000);
	cr_assert_eq(tun_liveness_deadline(&l), 61000);
	tun_liveness_sent(&l, 61000);
	tun_liveness_sent(&l, 91000);
	cr_assert_eq(tun_liveness_poll(&l, 120999), TUN_LIVE_OK);
	cr_assert_eq(tun_liveness_poll(&l, 129999), TUN_LIVE_HEARTBEAT);
	cr_assert_eq(tun_liveness_poll(&l, 130000), TUN_LIVE_DEAD);
	/* time going backwards (caller bug) never rewinds the clocks */
	tun_liveness_received(&l, 10);
	cr_assert_eq(l.last_rx_ms, 40000);
}

Test(tun_live, zero_disables)
{
	struct tun_liveness l;

	tun_liveness_init(&l, 0, 0, 0);
	cr_assert_eq(tun_liveness_poll(&l, INT64_MAX / 2), TUN_LIVE_OK);
	cr_assert_eq(tun_liveness_deadline(&l), INT64_MAX);
}

Test(tun_live, backoff_grows_caps_jitters_and_resets)
{
	struct tun_backoff b;
	uint32_t prev_hi = 0;

	tun_backoff_init(&b, 100, 5000, 10000);
	for (int i = 0; i < 12; i++) {
		uint32_t lo = tun_backoff_next(&b, 0);

		b.attempt--; /* same step again with the largest jitter */
		uint32_t hi = tun_backoff_next(&b, UINT32_MAX - 1);
		uint32_t d = 100u << (i < 6 ? i : 6);

		if (d > 5000) {
			d = 5000;
		}
		cr_assert_geq(lo, d / 2, "step %d", i);
		cr_assert_leq(hi, d, "step %d", i);
		cr_assert_geq(hi, prev_hi);
		prev_hi = hi;
	}
	cr_assert_leq(tun_backoff_next(&b, 12345), 5000);
	tun_backoff_session_ended(&b, 9999);
	cr_assert_gt(b.attempt, 0, "a short session does not reset");
	tun_backoff_session_ended(&b, 10000);
	cr_assert_eq(b.attempt, 0);
	cr_assert_leq(tun_backoff_next(&b, 777), 100);
}
