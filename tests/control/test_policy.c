// SPDX-License-Identifier: MIT
/* Breaker, backoff, rate limit, health and metrics with an injected clock. */
#include <criterion/criterion.h>
#include <stdio.h>

#include "backoff.h"
#include "breaker.h"
#include "health.h"
#include "metrics.h"
#include "natx/err.h"
#include "ratelimit.h"

Test(breaker, opens_after_threshold_then_half_open_probe_then_closes, .timeout = 10)
{
	struct breaker b;

	breaker_init(&b, 3, 1000);
	for (int i = 0; i < 2; i++) {
		cr_assert(breaker_allow(&b, 0));
		breaker_failure(&b, 0);
		cr_assert_eq(b.state, BREAKER_CLOSED);
	}
	cr_assert(breaker_allow(&b, 10));
	breaker_failure(&b, 10);
	cr_assert_eq(b.state, BREAKER_OPEN);
	cr_assert_not(breaker_permits(&b, 500));
	cr_assert_not(breaker_allow(&b, 1009));
	cr_assert_eq(breaker_state_at(&b, 1010), BREAKER_HALF_OPEN);
	/* exactly one probe in half-open */
	cr_assert(breaker_allow(&b, 1010));
	cr_assert_not(breaker_allow(&b, 1011));
	cr_assert_not(breaker_permits(&b, 1011));
	breaker_success(&b, 1020);
	cr_assert_eq(b.state, BREAKER_CLOSED);
	cr_assert_eq(b.failures, 0);
	cr_assert(breaker_allow(&b, 1021));
}

Test(breaker, failed_probe_reopens_for_a_full_cooldown, .timeout = 10)
{
	struct breaker b;

	breaker_init(&b, 1, 100);
	breaker_allow(&b, 0);
	breaker_failure(&b, 0);
	cr_assert_eq(b.state, BREAKER_OPEN);
	cr_assert(breaker_allow(&b, 100));
	breaker_failure(&b, 150);
	cr_assert_eq(b.state, BREAKER_OPEN);
	cr_assert_not(breaker_permits(&b, 249));
	cr_assert(breaker_permits(&b, 250));
}

Test(breaker, success_resets_consecutive_count, .timeout = 10)
{
	struct breaker b;

	breaker_init(&b, 2, 100);
	breaker_failure(&b, 0);
	breaker_success(&b, 1);
	breaker_failure(&b, 2);
	cr_assert_eq(b.state, BREAKER_CLOSED);
	breaker_failure(&b, 3);
	cr_assert_eq(b.state, BREAKER_OPEN);
}

Test(backoff, delays_double_stay_within_bounds_and_reset, .timeout = 10)
{
	struct backoff b;
	uint64_t nominal = 100;

	backoff_init(&b, 100, 5000);
	for (int i = 0; i < 20; i++) {
		uint64_t lo = backoff_next(&(struct backoff){ b.base_ms, b.max_ms, b.attempt }, 0);
		uint64_t hi = backoff_next(&(struct backoff){ b.base_ms, b.max_ms, b.attempt },
					   UINT32_MAX - 7);
		uint64_t d = backoff_next(&b, (uint32_t)i * 2654435761u);

		cr_assert_eq(lo, nominal / 2, "attempt %d: low end %llu", i,
			     (unsigned long long)lo);
		cr_assert(d >= nominal / 2 && d <= nominal, "attempt %d: %llu not in [%llu, %llu]",
			  i, (unsigned long long)d, (unsigned long long)nominal / 2,
			  (unsigned long long)nominal);
		cr_assert(hi <= 5000);
		nominal = nominal * 2 > 5000 ? 5000 : nominal * 2;
	}
	backoff_reset(&b);
	cr_assert_leq(backoff_next(&b, UINT32_MAX), 100);
}

Test(backoff, huge_attempt_counts_do_not_overflow, .timeout = 10)
{
	struct backoff b;

	backoff_init(&b, 1, UINT64_MAX / 4);
	b.attempt = 200;
	cr_assert_leq(backoff_next(&b, 12345), UINT64_MAX / 4);
	backoff_init(&b, 0, 0);
	cr_assert_eq(b.base_ms, 1);
	cr_assert_leq(backoff_next(&b, 99), 1);
}

Test(ratelimit, burst_then_refill_per_client, .timeout = 10)
{
	static struct ratelimit rl;
	uint64_t t = 5000;

	ratelimit_init(&rl, 2, 3);
	for (int i = 0; i < 3; i++) {
		cr_assert_eq(ratelimit_take(&rl, "uid:1", t), 0);
	}
	cr_assert_eq(ratelimit_take(&rl, "uid:1", t), -NATX_E_RATE_LIMITED);
	/* another client is unaffected */
	cr_assert_eq(ratelimit_take(&rl, "uid:2", t), 0);
	/* 2 tokens/s: one token after 500 ms, not before */
	cr_assert_eq(ratelimit_take(&rl, "uid:1", t + 499), -NATX_E_RATE_LIMITED);
	cr_assert_eq(ratelimit_take(&rl, "uid:1", t + 500), 0);
	cr_assert_eq(ratelimit_take(&rl, "uid:1", t + 500), -NATX_E_RATE_LIMITED);
	/* refill never exceeds the burst */
	for (int i = 0; i < 3; i++) {
		cr_assert_eq(ratelimit_take(&rl, "uid:1", t + 100000), 0);
	}
	cr_assert_eq(ratelimit_take(&rl, "uid:1", t + 100000), -NATX_E_RATE_LIMITED);
}

Test(ratelimit, zero_rate_is_unlimited_and_table_is_bounded, .timeout = 10)
{
	static struct ratelimit rl;
	char key[32];

	ratelimit_init(&rl, 0, 1);
	for (int i = 0; i < 1000; i++) {
		cr_assert_eq(ratelimit_take(&rl, "x", 0), 0);
	}
	ratelimit_init(&rl, 1, 1);
	for (int i = 0; i < 3 * RATELIMIT_KEYS; i++) {
		snprintf(key, sizeof(key), "ip:10.0.%d.%d", i / 256, i % 256);
		cr_assert_eq(ratelimit_take(&rl, key, (uint64_t)i), 0);
	}
	cr_assert_eq(rl.n, RATELIMIT_KEYS);
}

Test(health, degraded_above_ten_percent_errors_then_ages_out, .timeout = 10)
{
	struct health h;
	uint64_t t = 100000;

	health_init(&h, 10000, 50);
	for (int i = 0; i < 10; i++) {
		health_record(&h, t, 50, true, NULL);
	}
	health_record(&h, t, 51, false, "connection failed");
	/* 1 of 11 = 9.1%: still healthy */
	cr_assert_eq(health_eval(&h, t, 52, true), HEALTH_HEALTHY);
	health_record(&h, t + 1, 53, false, "timeout");
	/* 2 of 12 = 16.7%: degraded, since stamped */
	cr_assert_eq(health_eval(&h, t + 1, 54, true), HEALTH_DEGRADED);
	cr_assert_eq(h.since_s, 54);
	cr_assert_str_eq(h.last_error, "timeout");
	cr_assert_eq(h.last_error_s, 53);
	cr_assert_eq(health_eval(&h, t + 2, 55, false), HEALTH_UNHEALTHY);
	cr_assert_eq(h.since_s, 55);
	/* after the window the failures are forgotten */
	cr_assert_eq(health_eval(&h, t + 10000 + 1000, 70, true), HEALTH_HEALTHY);
	cr_assert_eq(h.since_s, 70);
	cr_assert_str_eq(h.last_error, "timeout");
}

Test(metrics, histogram_counts_and_sum, .timeout = 10)
{
	struct metrics m = { 0 }, tot = { 0 };
	cJSON *o = cJSON_CreateObject();
	const cJSON *hist;

	metrics_result(&m, true, 0);
	metrics_result(&m, true, 7);
	metrics_result(&m, false, 999999);
	metrics_upgrade(&m, true);
	metrics_upgrade(&m, false);
	metrics_payment(&m, 21);
	cr_assert_eq(m.lat_bucket[0], 1);
	cr_assert_eq(m.lat_bucket[2], 1);
	cr_assert_eq(m.lat_bucket[METRICS_LAT_BUCKETS - 1], 1);
	metrics_add(&tot, &m);
	metrics_add(&tot, &m);
	cr_assert_eq(tot.attempted, 6);
	cr_assert_eq(tot.failed, 2);
	cr_assert_eq(tot.payment_sats, 42);
	cr_assert_eq(metrics_to_json(&m, 4, o), 0);
	cr_assert_eq(cJSON_GetObjectItem(o, "connections_attempted")->valuedouble, 3);
	cr_assert_eq(cJSON_GetObjectItem(o, "upgrade_successes")->valuedouble, 1);
	cr_assert_eq(cJSON_GetObjectItem(o, "active_connections")->valuedouble, 4);
	hist = cJSON_GetObjectItem(o, "latency_histogram_ms");
	cr_assert_eq(cJSON_GetArraySize(hist), METRICS_LAT_BUCKETS);
	/* cumulative: the +Inf bucket holds every observation */
	cr_assert_eq(cJSON_GetObjectItem(cJSON_GetArrayItem(hist, METRICS_LAT_BUCKETS - 1), "count")
			     ->valuedouble,
		     3);
	cJSON_Delete(o);
}
