// SPDX-License-Identifier: MIT
/* Service registry and selection with test-only adapters and an injected clock. */
#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>

#include "natx/err.h"
#include "select.h"
#include "tclock.h"

static struct tclock clk;
static struct svc_mgr mgr;
static const struct svc_params params = {
	.breaker_failures = 2,
	.breaker_cooldown_ms = 1000,
	.retry_max = 2,
	.retry_base_ms = 10,
	.retry_max_ms = 40,
	.health_window_ms = 60000,
};

static void setup(void)
{
	tclock_init(&clk);
	svc_mgr_init(&mgr, &clk.c, &params);
}

static void teardown(void)
{
	svc_mgr_cleanup(&mgr);
}

static const char *pick(const struct svc_request *req)
{
	struct svc *out[SVC_MAX];
	int n = select_candidates(&mgr, req, out);

	return n > 0 ? out[0]->ops->type : NULL;
}

TestSuite(select, .init = setup, .fini = teardown, .timeout = 10);

Test(select, empty_registry_is_unavailable)
{
	struct svc_request req = { .target = "n1" };
	struct svc_conn_info ci;
	struct svc *used;

	cr_assert_eq(select_connect(&mgr, &req, &ci, &used), -NATX_E_UNAVAILABLE);
	cr_assert_null(used);
}

Test(select, registration_rejects_duplicates)
{
	static struct tsvc a;

	tsvc_init(&a, &clk, "libp2p", SVC_CAP_TCP);
	cr_assert_eq(svc_register(&mgr, &a.ops, &a), 0);
	cr_assert_eq(svc_register(&mgr, &a.ops, &a), -EEXIST);
	cr_assert_eq(svc_find(&mgr, "libp2p")->ctx, &a);
	cr_assert_eq(svc_unregister(&mgr, "libp2p"), 0);
	cr_assert_eq(svc_unregister(&mgr, "libp2p"), -ENOENT);
}

Test(select, free_before_paid_then_lower_latency)
{
	static struct tsvc paid, slow, fast;
	struct svc_request req = { .target = "n1", .allow_payment = true };
	struct svc *out[SVC_MAX];

	tsvc_init(&paid, &clk, "rathole", SVC_CAP_RELAY | SVC_CAP_TCP | SVC_CAP_PAID);
	tsvc_init(&slow, &clk, "slow", SVC_CAP_RELAY | SVC_CAP_TCP);
	tsvc_init(&fast, &clk, "fast", SVC_CAP_DIRECT | SVC_CAP_TCP);
	cr_assert_eq(svc_register(&mgr, &paid.ops, &paid), 0);
	cr_assert_eq(svc_register(&mgr, &slow.ops, &slow), 0);
	cr_assert_eq(svc_register(&mgr, &fast.ops, &fast), 0);
	/* nothing measured: free ones first, in registration order; paid last */
	cr_assert_eq(select_candidates(&mgr, &req, out), 3);
	cr_assert_str_eq(out[0]->ops->type, "slow");
	cr_assert_str_eq(out[1]->ops->type, "fast");
	cr_assert_str_eq(out[2]->ops->type, "rathole");
	/* measured latency reorders the free ones; paid stays last even when fastest */
	svc_find(&mgr, "slow")->latency_known = true;
	svc_find(&mgr, "slow")->latency_ewma_ms = 80;
	svc_find(&mgr, "fast")->latency_known = true;
	svc_find(&mgr, "fast")->latency_ewma_ms = 5;
	svc_find(&mgr, "rathole")->latency_known = true;
	svc_find(&mgr, "rathole")->latency_ewma_ms = 1;
	cr_assert_eq(select_candidates(&mgr, &req, out), 3);
	cr_assert_str_eq(out[0]->ops->type, "fast");
	cr_assert_str_eq(out[1]->ops->type, "slow");
	cr_assert_str_eq(out[2]->ops->type, "rathole");
}

Test(select, capabilities_and_payment_filter)
{
	static struct tsvc relay, paid;
	struct svc_request req = { .target = "n1" };

	tsvc_init(&relay, &clk, "libp2p", SVC_CAP_RELAY | SVC_CAP_TCP);
	tsvc_init(&paid, &clk, "rathole", SVC_CAP_RELAY | SVC_CAP_TCP | SVC_CAP_UDP | SVC_CAP_PAID);
	svc_register(&mgr, &relay.ops, &relay);
	svc_register(&mgr, &paid.ops, &paid);
	cr_assert_str_eq(pick(&req), "libp2p");
	/* UDP: only the paid service has it */
	req.need_caps = SVC_CAP_UDP;
	cr_assert_null(pick(&req));
	{
		struct svc *out[SVC_MAX];

		cr_assert_eq(select_candidates(&mgr, &req, out), -NATX_E_PAYMENT);
	}
	req.allow_payment = true;
	cr_assert_str_eq(pick(&req), "rathole");
	/* direct: nobody */
	req.need_caps = SVC_CAP_DIRECT;
	{
		struct svc *out[SVC_MAX];

		cr_assert_eq(select_candidates(&mgr, &req, out), -NATX_E_UNAVAILABLE);
	}
}

Test(select, prefer_libp2p_orders_it_first)
{
	static struct tsvc other, p2p;
	struct svc_request req = { .target = "n1" };

	tsvc_init(&other, &clk, "other", SVC_CAP_TCP);
	tsvc_init(&p2p, &clk, "libp2p", SVC_CAP_TCP);
	svc_register(&mgr, &other.ops, &other);
	svc_register(&mgr, &p2p.ops, &p2p);
	cr_assert_str_eq(pick(&req), "other");
	req.prefer_libp2p = true;
	cr_assert_str_eq(pick(&req), "libp2p");
}

Test(select, unreachable_target_is_node_not_found_and_not_operational_is_skipped)
{
	static struct tsvc a, b;
	struct svc_request req = { .target = "ghost" };
	struct svc_conn_info ci;
	struct svc *used;

	tsvc_init(&a, &clk, "a", SVC_CAP_TCP);
	tsvc_init(&b, &clk, "b", SVC_CAP_TCP);
	a.reach = false;
	b.operational = false;
	svc_register(&mgr, &a.ops, &a);
	svc_register(&mgr, &b.ops, &b);
	cr_assert_eq(select_connect(&mgr, &req, &ci, &used), -NATX_E_NOT_FOUND);
	cr_assert_eq(a.calls + b.calls, 0);
	a.operational = false;
	cr_assert_eq(select_connect(&mgr, &req, &ci, &used), -NATX_E_UNAVAILABLE);
}

Test(select, falls_through_the_chain_with_bounded_retries)
{
	static struct tsvc first, second;
	struct svc_request req = { .target = "n1" };
	struct svc_conn_info ci;
	struct svc *used;

	tsvc_init(&first, &clk, "first", SVC_CAP_TCP);
	tsvc_init(&second, &clk, "second", SVC_CAP_TCP);
	first.fail_n = 100;
	first.err = -NATX_E_CONNECT;
	second.latency_ms = 7;
	svc_register(&mgr, &first.ops, &first);
	svc_register(&mgr, &second.ops, &second);
	cr_assert_eq(select_connect(&mgr, &req, &ci, &used), 0);
	cr_assert_eq(used, svc_find(&mgr, "second"));
	cr_assert_str_eq(ci.traversal_type, "second");
	cr_assert_str_eq(ci.target_node_id, "n1");
	cr_assert_str_eq(ci.proxy_address, "198.51.100.1:7000");
	/* breaker threshold 2 stops the retries of "first" after 2 attempts (retry_max 2) */
	cr_assert_eq(first.calls, 2);
	cr_assert_eq(clk.sleeps, 1);
	cr_assert(clk.slept >= 5 && clk.slept <= 10, "first retry delay %llu",
		  (unsigned long long)clk.slept);
	cr_assert_eq(svc_find(&mgr, "first")->br.state, BREAKER_OPEN);
	cr_assert_eq(svc_find(&mgr, "first")->m.failed, 2);
	cr_assert_eq(svc_find(&mgr, "second")->m.succeeded, 1);
	cr_assert_eq(svc_find(&mgr, "second")->latency_ewma_ms, 7);
	/* while open, "first" is not even tried */
	cr_assert_eq(select_connect(&mgr, &req, &ci, &used), 0);
	cr_assert_eq(first.calls, 2);
	/* after the cool-down one probe goes to "first"; it succeeds and closes the breaker */
	first.fail_n = 0;
	clk.now += 1000;
	second.latency_ms = 0;
	svc_find(&mgr, "second")->latency_known = false;
	cr_assert_eq(select_connect(&mgr, &req, &ci, &used), 0);
	cr_assert_eq(first.calls, 3);
	cr_assert_eq(svc_find(&mgr, "first")->br.state, BREAKER_CLOSED);
}

Test(select, retries_use_backoff_and_stop_on_non_retryable_errors)
{
	static struct tsvc only;
	struct svc_request req = { .target = "n1" };
	struct svc_conn_info ci;
	struct svc *used;
	struct svc_params p = params;

	p.breaker_failures = 100;
	svc_params_apply(&mgr, &p);
	mgr.p = p;
	tsvc_init(&only, &clk, "only", SVC_CAP_TCP);
	only.fail_n = 100;
	only.err = -ETIMEDOUT;
	svc_register(&mgr, &only.ops, &only);
	clk.rnd = UINT32_MAX; /* top of each jitter range */
	cr_assert_eq(select_connect(&mgr, &req, &ci, &used), -ETIMEDOUT);
	cr_assert_eq(only.calls, 3);
	cr_assert_eq(clk.sleeps, 2);
	cr_assert_leq(clk.slept, 10 + 20);
	cr_assert_geq(clk.slept, 5 + 10);
	/* payment required is an answer: no retry, no breaker failure */
	only.calls = 0;
	only.err = -NATX_E_PAYMENT;
	cr_assert_eq(select_connect(&mgr, &req, &ci, &used), -NATX_E_PAYMENT);
	cr_assert_eq(only.calls, 1);
	cr_assert_eq(svc_find(&mgr, "only")->br.failures, 0);
}

Test(select, metrics_health_and_json_view)
{
	static struct tsvc s;
	struct svc_request req = { .target = "n1" };
	struct svc_conn_info ci;
	struct svc *used;
	struct metrics tot;
	unsigned active;
	cJSON *o;

	tsvc_init(&s, &clk, "svc", SVC_CAP_TCP | SVC_CAP_UDP);
	s.sats = 100;
	s.active = 3;
	svc_register(&mgr, &s.ops, &s);
	cr_assert_eq(select_connect(&mgr, &req, &ci, &used), 0);
	s.fail_n = 1;
	s.err = -NATX_E_AUTH;
	cr_assert_eq(select_connect(&mgr, &req, &ci, &used), -NATX_E_AUTH);
	svc_metrics_total(&mgr, &tot, &active);
	cr_assert_eq(tot.attempted, 2);
	cr_assert_eq(tot.succeeded, 1);
	cr_assert_eq(tot.payment_sats, 100);
	cr_assert_eq(active, 3);
	o = svc_to_json(&mgr, used ? used : svc_find(&mgr, "svc"));
	cr_assert_not_null(o);
	cr_assert_str_eq(cJSON_GetObjectItem(o, "type")->valuestring, "svc");
	cr_assert_str_eq(
		cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(o, "proxies"), 0),
				    "address")
			->valuestring,
		"198.51.100.1:7000");
	cr_assert(cJSON_IsTrue(cJSON_GetObjectItem(cJSON_GetObjectItem(o, "capabilities"), "udp")));
	/* 1 failure of 2 calls: degraded */
	cr_assert_str_eq(cJSON_GetObjectItem(o, "status")->valuestring, "degraded");
	cr_assert_str_eq(
		cJSON_GetObjectItem(cJSON_GetObjectItem(o, "health"), "last_error")->valuestring,
		"authentication failed");
	cJSON_Delete(o);
}

Test(select, trace_says_why_each_service_was_passed_over_or_chosen)
{
	static struct tsvc down, paid, nowhere, flaky;
	struct svc_request req = { .target = "n1" };
	struct select_trace tr = { 0 };
	struct svc_conn_info ci;
	struct svc *used;

	tsvc_init(&down, &clk, "down", SVC_CAP_TCP);
	tsvc_init(&paid, &clk, "rathole", SVC_CAP_TCP | SVC_CAP_PAID);
	tsvc_init(&nowhere, &clk, "nowhere", SVC_CAP_TCP);
	tsvc_init(&flaky, &clk, "libp2p", SVC_CAP_TCP | SVC_CAP_DIRECT);
	down.operational = false;
	nowhere.reach = false;
	flaky.fail_n = 1;
	flaky.err = -NATX_E_CONNECT;
	flaky.latency_ms = 3;
	svc_register(&mgr, &down.ops, &down);
	svc_register(&mgr, &paid.ops, &paid);
	svc_register(&mgr, &nowhere.ops, &nowhere);
	svc_register(&mgr, &flaky.ops, &flaky);
	cr_assert_eq(select_connect_traced(&mgr, &req, &ci, &used, &tr), 0);
	cr_assert_str_eq(used->ops->type, "libp2p");
	cr_assert_str_eq(tr.text,
			 "down: not operational; rathole: paid and payment not allowed; "
			 "nowhere: knows no way to the target; libp2p: attempt 1 failed: "
			 "connection failed; libp2p: chosen (free, direct, 3 ms)",
			 "trace: %s", tr.text);
	cr_assert_eq(tr.len, strlen(tr.text));
}

Test(select, trace_is_cut_not_overrun)
{
	struct select_trace tr = { 0 };

	for (int i = 0; i < 200; i++) {
		select_trace_add(&tr, "service-%d: a reason long enough to fill the buffer", i);
	}
	cr_assert_eq(tr.len, sizeof(tr.text) - 1);
	cr_assert_eq(strlen(tr.text), tr.len);
	select_trace_add(NULL, "no trace: %d", 1); /* callers without a trace pass NULL */
}
