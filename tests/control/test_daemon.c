// SPDX-License-Identifier: MIT
/*
 * The command handlers and daemon operations (ctl_cmds.c, daemon.c) with a natxd state built in
 * the test: test-only adapters, a temporary SQLite store, an engine supervisor whose engine is
 * absent. Covers what the natxd binary cannot show while no real adapter exists: a successful
 * connect end to end through the command table, its metrics, health, history and Prometheus
 * text.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ctl_cmdtab.h"
#include "daemon.h"
#include "http.h"
#include "natx/err.h"
#include "tclock.h"

static struct tclock clk;
static struct natxd d;
static struct tsvc p2p, tunnel;
static char dir[64];
static const struct ctl_caller root = { .uid = 0, .privileged = true, .key = "uid:0" };
static const struct ctl_caller nobody = { .uid = 65534, .privileged = false, .key = "uid:65534" };

static const char *no_env(const char *name)
{
	return NULL;
}

static void setup(void)
{
	char db[128], err[STORE_ERR_MAX];
	struct svc_params p;

	tclock_init(&clk);
	memset(&d, 0, sizeof(d));
	strcpy(dir, "/tmp/natx-ctl-daemon-XXXXXX");
	cr_assert_not_null(mkdtemp(dir));
	d.get_env = no_env;
	d.clk = &clk.c;
	d.cli.state_dir = dir;
	cr_assert_eq(config_build(&d.cfg, &d.cli, no_env, err), 0, "%s", err);
	snprintf(db, sizeof(db), "%s/natx.db", dir);
	cr_assert_eq(store_open(&d.st, db, true, err), 0, "%s", err);
	natxd_params(&d.cfg, &p);
	svc_mgr_init(&d.svcs, d.clk, &p);
	ratelimit_init(&d.rl, 1, 3);
	engine_sup_init(&d.eng, "/nonexistent/natx-engine", "/tmp/natx-ctl-daemon-none.sock",
			&clock_system);
	tsvc_init(&p2p, &clk, "libp2p", SVC_CAP_RELAY | SVC_CAP_TCP);
	tsvc_init(&tunnel, &clk, "rathole",
		  SVC_CAP_RELAY | SVC_CAP_TCP | SVC_CAP_UDP | SVC_CAP_PAID);
	tunnel.sats = 250;
	p2p.latency_ms = 12;
	cr_assert_eq(svc_register(&d.svcs, &p2p.ops, &p2p), 0);
	cr_assert_eq(svc_register(&d.svcs, &tunnel.ops, &tunnel), 0);
}

static void teardown(void)
{
	char cmd[160];

	svc_mgr_cleanup(&d.svcs);
	store_close(&d.st);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	cr_assert_eq(system(cmd), 0);
}

/* run - one request line through the parser and the command table; returns the reply. */
static cJSON *run(const struct ctl_caller *who, const char *line)
{
	struct ctl_req req;
	const char *why;
	cJSON *r;

	cr_assert_eq(ctl_req_parse(line, strlen(line), &req, &why), 0, "%s", line);
	r = ctl_cmds_run(&d, who, &req);
	ctl_req_cleanup(&req);
	cr_assert_not_null(r);
	return r;
}

static const char *code(const cJSON *r)
{
	const cJSON *c = cJSON_GetObjectItem(cJSON_GetObjectItem(r, "error"), "code");

	return cJSON_IsString(c) ? c->valuestring : "ok";
}

TestSuite(daemon, .init = setup, .fini = teardown, .timeout = 20);

Test(daemon, every_table_row_has_a_handler)
{
	cr_assert_eq(ctl_cmds_check(), 0);
}

Test(daemon, connect_through_the_table_picks_free_then_paid)
{
	cJSON *r = run(&root, "{\"v\":1,\"id\":5,\"cmd\":\"connect\",\"target\":\"node-a\"}");
	const cJSON *ci = cJSON_GetObjectItem(r, "connection_info");

	cr_assert_str_eq(code(r), "ok");
	cr_assert_eq(cJSON_GetObjectItem(r, "id")->valuedouble, 5);
	cr_assert_str_eq(cJSON_GetObjectItem(ci, "traversal_type")->valuestring, "libp2p");
	cr_assert_str_eq(cJSON_GetObjectItem(ci, "target_node_id")->valuestring, "node-a");
	cr_assert(cJSON_IsNull(cJSON_GetObjectItem(ci, "auth_token")));
	cJSON_Delete(r);
	/* the free service cannot reach: paid one only with allow_payment */
	p2p.reach = false;
	r = run(&root, "{\"v\":1,\"cmd\":\"connect\",\"target\":\"node-a\"}");
	cr_assert_str_eq(code(r), "payment_required");
	cJSON_Delete(r);
	r = run(&root,
		"{\"v\":1,\"cmd\":\"connect\",\"target\":\"node-a\",\"allow_payment\":true}");
	cr_assert_str_eq(code(r), "ok");
	cr_assert_str_eq(
		cJSON_GetObjectItem(cJSON_GetObjectItem(r, "connection_info"), "traversal_type")
			->valuestring,
		"rathole");
	cJSON_Delete(r);
	/* burst of 3 at 1/s: the 4th connect in the same instant is rate limited */
	r = run(&root,
		"{\"v\":1,\"cmd\":\"connect\",\"target\":\"node-a\",\"allow_payment\":true}");
	cr_assert_str_eq(code(r), "rate_limited");
	cJSON_Delete(r);
	/* another client still may */
	r = run(&(struct ctl_caller){ .privileged = true, .key = "uid:7" },
		"{\"v\":1,\"cmd\":\"connect\",\"target\":\"node-a\",\"allow_payment\":true}");
	cr_assert_str_eq(code(r), "ok");
	cJSON_Delete(r);
	/* every connect that got past the rate limit is a history row */
	cr_assert_eq(store_history_count(&d.st, false), 4);
	cr_assert_eq(store_history_count(&d.st, true), 3);
}

Test(daemon, bad_arguments_and_unprivileged_callers_are_refused)
{
	static const char *const bad[] = {
		"{\"v\":1,\"cmd\":\"connect\"}",
		"{\"v\":1,\"cmd\":\"connect\",\"target\":\"\"}",
		"{\"v\":1,\"cmd\":\"connect\",\"target\":5}",
		"{\"v\":1,\"cmd\":\"connect\",\"target\":\"n\",\"proto\":\"sctp\"}",
		"{\"v\":1,\"cmd\":\"connect\",\"target\":\"n\",\"direct\":\"yes\"}",
		"{\"v\":1,\"cmd\":\"forward.add\",\"spec\":\"tcp:nope\"}",
		"{\"v\":1,\"cmd\":\"forward.add\"}",
		"{\"v\":1,\"cmd\":\"forward.rm\",\"forward\":[1]}",
	};
	cJSON *r;

	for (unsigned i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		r = run(&root, bad[i]);
		cr_assert_str_eq(code(r), "invalid_argument", "%s -> %s", bad[i], code(r));
		cJSON_Delete(r);
	}
	r = run(&nobody, "{\"v\":1,\"cmd\":\"connect\",\"target\":\"n\"}");
	cr_assert_str_eq(code(r), "permission_denied");
	cJSON_Delete(r);
	r = run(&nobody, "{\"v\":1,\"cmd\":\"reload\"}");
	cr_assert_str_eq(code(r), "permission_denied");
	cJSON_Delete(r);
	r = run(&nobody, "{\"v\":1,\"cmd\":\"status\"}");
	cr_assert_str_eq(code(r), "ok");
	cJSON_Delete(r);
	r = run(&root, "{\"v\":1,\"cmd\":\"no.such\"}");
	cr_assert_str_eq(code(r), "unknown_cmd");
	cJSON_Delete(r);
	cr_assert_eq(p2p.calls + tunnel.calls, 0);
}

Test(daemon, forwards_need_a_running_engine_and_nothing_is_stored_otherwise)
{
	cJSON *r =
		run(&root,
		    "{\"v\":1,\"cmd\":\"forward.add\",\"spec\":\"tcp:127.0.0.1:1=127.0.0.1:2\"}");

	cr_assert_str_eq(code(r), "service_unavailable");
	cJSON_Delete(r);
	r = run(&root, "{\"v\":1,\"cmd\":\"forward.list\"}");
	cr_assert_eq(cJSON_GetArraySize(cJSON_GetObjectItem(r, "forwards")), 0);
	cJSON_Delete(r);
	r = run(&root,
		"{\"v\":1,\"cmd\":\"forward.rm\",\"forward\":\"tcp:127.0.0.1:1=127.0.0.1:2\"}");
	cr_assert_str_eq(code(r), "not_found");
	cJSON_Delete(r);
}

Test(daemon, health_metrics_and_prometheus_reflect_outcomes)
{
	cJSON *r, *m;
	char *prom;

	r = run(&root, "{\"v\":1,\"cmd\":\"connect\",\"target\":\"x\"}");
	cJSON_Delete(r);
	p2p.fail_n = 10;
	p2p.err = -NATX_E_CONNECT;
	p2p.operational = true;
	r = run(&root, "{\"v\":1,\"cmd\":\"connect\",\"target\":\"x\"}");
	/* libp2p fails (retries), the paid one is not allowed: the last adapter error */
	cr_assert_str_eq(code(r), "connection_failed");
	cJSON_Delete(r);
	r = run(&root, "{\"v\":1,\"cmd\":\"health\"}");
	cr_assert_str_eq(cJSON_GetObjectItem(r, "overall")->valuestring, "degraded");
	m = cJSON_GetArrayItem(cJSON_GetObjectItem(r, "services"), 0);
	cr_assert_str_eq(cJSON_GetObjectItem(m, "state")->valuestring, "degraded");
	cr_assert_str_eq(cJSON_GetObjectItem(m, "last_error")->valuestring, "connection failed");
	cJSON_Delete(r);
	r = run(&root, "{\"v\":1,\"cmd\":\"metrics\"}");
	m = cJSON_GetObjectItem(cJSON_GetObjectItem(r, "metrics"), "total");
	cr_assert_eq(cJSON_GetObjectItem(m, "connections_successful")->valuedouble, 1);
	cr_assert_eq(cJSON_GetObjectItem(m, "connections_failed")->valuedouble, 3);
	cJSON_Delete(r);
	prom = http_prometheus(&d);
	cr_assert_not_null(prom);
	cr_assert(strstr(prom, "natx_connections_attempted_total{service=\"all\"} 4\n"), "%s",
		  prom);
	cr_assert(strstr(prom, "natx_connections_failed_total{service=\"libp2p\"} 3\n"), "%s",
		  prom);
	cr_assert(strstr(prom, "natx_connect_latency_ms_bucket{service=\"libp2p\",le=\"25\"} 4\n"),
		  "%s", prom);
	cr_assert(strstr(prom, "natx_service_health{service=\"libp2p\",state=\"degraded\"} 1\n"),
		  "%s", prom);
	cr_assert(strstr(prom, "natx_engine_up 0\n"), "%s", prom);
	free(prom);
	r = run(&root, "{\"v\":1,\"cmd\":\"services\"}");
	cr_assert_eq(cJSON_GetArraySize(cJSON_GetObjectItem(r, "services")), 2);
	cJSON_Delete(r);
	r = natxd_service_flags_json(&d);
	cr_assert(
		cJSON_IsTrue(cJSON_GetObjectItem(cJSON_GetObjectItem(r, "libp2p"), "registered")));
	cJSON_Delete(r);
}
