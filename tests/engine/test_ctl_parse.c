// SPDX-License-Identifier: MIT
/* Control request parser: valid requests, every error code, id echo, limits. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "core/ctl_parse.h"

static int parse(const char *line, struct ctl_req *req, const char **code)
{
	char msg[CTL_MSG_MAX];

	return ctl_req_parse(line, strlen(line), req, code, msg);
}

Test(ctl_parse, commands_and_arguments, .timeout = 5)
{
	struct ctl_req r;
	const char *code;

	cr_assert_eq(parse("{\"v\":1,\"id\":7,\"cmd\":\"hello\"}", &r, &code), 0);
	cr_assert_eq(r.cmd, CTL_HELLO);
	cr_assert(cJSON_IsNumber(r.id) && r.id->valuedouble == 7);
	ctl_req_cleanup(&r);
	cr_assert_eq(parse("{\"v\":1,\"id\":\"a\",\"cmd\":\"forward.add\","
			   "\"spec\":\"tcp:1.2.3.4:1=1.2.3.4:2\"}",
			   &r, &code),
		     0);
	cr_assert_eq(r.cmd, CTL_FWD_ADD);
	cr_assert_str_eq(r.spec, "tcp:1.2.3.4:1=1.2.3.4:2");
	cr_assert_str_eq(r.id->valuestring, "a");
	ctl_req_cleanup(&r);
	cr_assert_eq(parse("{\"v\":1,\"id\":3,\"cmd\":\"forward.rm\"}", &r, &code), 0);
	cr_assert(r.has_fwd_id && r.fwd_id == 3);
	ctl_req_cleanup(&r);
	cr_assert_eq(parse("{\"v\":1,\"id\":\"x\",\"cmd\":\"forward.rm\",\"fwd_id\":9}", &r, &code),
		     0);
	cr_assert(r.has_fwd_id && r.fwd_id == 9);
	ctl_req_cleanup(&r);
	cr_assert_eq(parse("{\"v\":1,\"cmd\":\"forward.rm\",\"spec\":\"udp:a:1=b:2\"}", &r, &code),
		     0);
	cr_assert(r.has_spec && !r.has_fwd_id && !r.id);
	ctl_req_cleanup(&r);
	cr_assert_eq(parse("{\"v\":1,\"id\":1,\"cmd\":\"shutdown\",\"drain_ms\":2500}", &r, &code),
		     0);
	cr_assert(r.cmd == CTL_SHUTDOWN && r.has_drain_ms && r.drain_ms == 2500);
	ctl_req_cleanup(&r);
	cr_assert_eq(parse("{\"v\":1,\"id\":1,\"cmd\":\"forward.list\"}", &r, &code), 0);
	cr_assert_eq(r.cmd, CTL_FWD_LIST);
	ctl_req_cleanup(&r);
	cr_assert_eq(parse("{\"v\":1,\"id\":1,\"cmd\":\"stats\"}", &r, &code), 0);
	cr_assert_eq(r.cmd, CTL_STATS);
	ctl_req_cleanup(&r);
}

Test(ctl_parse, error_codes, .timeout = 5)
{
	static const struct {
		const char *line, *code;
		bool id_echoed;
	} cases[] = {
		{ "", "bad_request", false },
		{ "garbage", "bad_request", false },
		{ "{\"v\":1,", "bad_request", false },
		{ "[1,2]", "bad_request", false },
		{ "\"str\"", "bad_request", false },
		{ "{\"v\":1,\"id\":[1],\"cmd\":\"hello\"}", "bad_request", false },
		{ "{\"v\":2,\"id\":5,\"cmd\":\"hello\"}", "bad_version", true },
		{ "{\"id\":5,\"cmd\":\"hello\"}", "bad_version", true },
		{ "{\"v\":\"1\",\"id\":5,\"cmd\":\"hello\"}", "bad_version", true },
		{ "{\"v\":1,\"id\":5}", "bad_request", true },
		{ "{\"v\":1,\"id\":5,\"cmd\":3}", "bad_request", true },
		{ "{\"v\":1,\"id\":5,\"cmd\":\"reboot\"}", "unknown_cmd", true },
		{ "{\"v\":1,\"id\":5,\"cmd\":\"forward.add\"}", "bad_request", true },
		{ "{\"v\":1,\"id\":5,\"cmd\":\"forward.add\",\"spec\":5}", "bad_request", true },
		{ "{\"v\":1,\"id\":\"s\",\"cmd\":\"forward.rm\"}", "bad_request", true },
		{ "{\"v\":1,\"id\":-1,\"cmd\":\"forward.rm\"}", "bad_request", true },
		{ "{\"v\":1,\"id\":1.5,\"cmd\":\"forward.rm\"}", "bad_request", true },
		{ "{\"v\":1,\"id\":1,\"cmd\":\"forward.rm\",\"fwd_id\":\"x\"}", "bad_request",
		  true },
		{ "{\"v\":1,\"id\":1,\"cmd\":\"shutdown\",\"drain_ms\":-5}", "bad_request", true },
		{ "{\"v\":1,\"id\":1,\"cmd\":\"shutdown\",\"drain_ms\":1e12}", "bad_request",
		  true },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct ctl_req r;
		const char *code = NULL;

		cr_assert_eq(parse(cases[i].line, &r, &code), -EINVAL, "accepted %s",
			     cases[i].line);
		cr_assert_str_eq(code, cases[i].code, "%s", cases[i].line);
		cr_assert_eq(r.id != NULL, cases[i].id_echoed, "%s", cases[i].line);
		ctl_req_cleanup(&r);
	}
}

Test(ctl_parse, oversized_and_embedded_nul, .timeout = 5)
{
	static char big[CTL_LINE_MAX + 2];
	char msg[CTL_MSG_MAX];
	struct ctl_req r;
	const char *code;
	const char nul[] = "{\"v\":1,\"id\":1,\"cmd\":\"hel\0lo\"}";

	memset(big, ' ', sizeof(big));
	cr_assert_eq(ctl_req_parse(big, sizeof(big), &r, &code, msg), -EINVAL);
	cr_assert_str_eq(code, "too_big");
	ctl_req_cleanup(&r);
	cr_assert_eq(ctl_req_parse(nul, sizeof(nul) - 1, &r, &code, msg), -EINVAL);
	ctl_req_cleanup(&r);
	char spec[SPEC_TEXT_MAX + 100];
	char line[sizeof(spec) + 100];

	memset(spec, 'a', sizeof(spec) - 1);
	spec[sizeof(spec) - 1] = '\0';
	snprintf(line, sizeof(line), "{\"v\":1,\"id\":1,\"cmd\":\"forward.add\",\"spec\":\"%s\"}",
		 spec);
	cr_assert_eq(parse(line, &r, &code), -EINVAL);
	cr_assert_str_eq(code, "bad_request");
	ctl_req_cleanup(&r);
}

Test(ctl_parse, p2p_commands, .timeout = 5)
{
	static const char *const bad[] = {
		"{\"v\":1,\"cmd\":\"p2p.ping\"}", /* no addr */
		"{\"v\":1,\"cmd\":\"p2p.identify\",\"addr\":5}",
		"{\"v\":1,\"cmd\":\"p2p.ping\",\"addr\":\"/ip4/1.2.3.4/tcp/1\",\"count\":0}",
		"{\"v\":1,\"cmd\":\"p2p.ping\",\"addr\":\"/ip4/1.2.3.4/tcp/1\",\"count\":33}",
		"{\"v\":1,\"cmd\":\"p2p.ping\",\"addr\":\"/ip4/1.2.3.4/tcp/1\",\"count\":1.5}",
		"{\"v\":1,\"cmd\":\"p2p.ping\",\"addr\":\"/ip4/1.2.3.4/tcp/1\",\"timeout_ms\":-1}",
		"{\"v\":1,\"cmd\":\"p2p.expose\",\"protocol\":\"/x\"}", /* no target */
		"{\"v\":1,\"cmd\":\"p2p.expose\",\"protocol\":7,\"target\":\"a:1\"}",
		"{\"v\":1,\"cmd\":\"p2p.forward\",\"protocol\":\"/x\",\"listen\":\"a:1\"}",
		"{\"v\":1,\"cmd\":\"p2p.close\",\"fwd_id\":-3}",
	};
	struct ctl_req r;
	const char *code;

	cr_assert_eq(parse("{\"v\":1,\"cmd\":\"p2p.peer\"}", &r, &code), 0);
	cr_assert_eq(r.cmd, CTL_P2P_PEER);
	ctl_req_cleanup(&r);
	cr_assert_eq(parse("{\"v\":1,\"cmd\":\"p2p.ping\",\"addr\":\"/ip4/1.2.3.4/tcp/1\","
			   "\"count\":32,\"timeout_ms\":500}",
			   &r, &code),
		     0);
	cr_assert_eq(r.cmd, CTL_P2P_PING);
	cr_assert(r.has_addr);
	cr_assert_str_eq(r.addr, "/ip4/1.2.3.4/tcp/1");
	cr_assert_eq(r.count, 32);
	cr_assert_eq(r.timeout_ms, 500);
	ctl_req_cleanup(&r);
	cr_assert_eq(parse("{\"v\":1,\"cmd\":\"p2p.identify\",\"addr\":\"x\"}", &r, &code), 0);
	cr_assert_eq(r.cmd, CTL_P2P_IDENTIFY);
	cr_assert_eq(r.count, 0);
	ctl_req_cleanup(&r);
	cr_assert_eq(parse("{\"v\":1,\"cmd\":\"p2p.forward\",\"protocol\":\"/x\","
			   "\"listen\":\"127.0.0.1:0\",\"addr\":\"/ip4/1.2.3.4/tcp/1\"}",
			   &r, &code),
		     0);
	cr_assert_eq(r.cmd, CTL_P2P_FORWARD);
	cr_assert_str_eq(r.protocol, "/x");
	cr_assert_str_eq(r.listen, "127.0.0.1:0");
	ctl_req_cleanup(&r);
	cr_assert_eq(parse("{\"v\":1,\"cmd\":\"p2p.close\",\"fwd_id\":4}", &r, &code), 0);
	cr_assert(r.cmd == CTL_P2P_CLOSE && r.fwd_id == 4);
	ctl_req_cleanup(&r);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		cr_assert_eq(parse(bad[i], &r, &code), -EINVAL, "%s", bad[i]);
		cr_assert_str_eq(code, "bad_request", "%s", bad[i]);
		ctl_req_cleanup(&r);
	}
}

Test(ctl_parse, p2p_dcutr, .timeout = 5)
{
	static const char *const bad[] = {
		"{\"v\":1,\"cmd\":\"p2p.dcutr\"}", /* no enabled */
		"{\"v\":1,\"cmd\":\"p2p.dcutr\",\"enabled\":1}",
		"{\"v\":1,\"cmd\":\"p2p.dcutr\",\"enabled\":\"true\"}",
		"{\"v\":1,\"cmd\":\"p2p.dcutr\",\"enabled\":true,\"prime_ttl\":256}",
		"{\"v\":1,\"cmd\":\"p2p.dcutr\",\"enabled\":true,\"prime_ttl\":-1}",
		"{\"v\":1,\"cmd\":\"p2p.dcutr\",\"enabled\":true,\"prime_ttl\":2.5}",
		"{\"v\":1,\"cmd\":\"p2p.dcutr\",\"enabled\":true,\"relay_discovery\":1}",
		"{\"v\":1,\"cmd\":\"p2p.dcutr\",\"enabled\":true,\"relay_discovery\":\"on\"}",
		"{\"v\":1,\"cmd\":\"p2p.dcutr\",\"enabled\":true,\"attempt_timeout_ms\":999}",
		"{\"v\":1,\"cmd\":\"p2p.dcutr\",\"enabled\":true,\"attempt_timeout_ms\":600001}",
		"{\"v\":1,\"cmd\":\"p2p.dcutr\",\"enabled\":true,\"attempt_timeout_ms\":\"5s\"}",
	};
	struct ctl_req r;
	const char *code;

	cr_assert_eq(parse("{\"v\":1,\"cmd\":\"p2p.dcutr\",\"enabled\":false}", &r, &code), 0);
	cr_assert(r.cmd == CTL_P2P_DCUTR && r.has_enabled && !r.enabled && r.prime_ttl == -1);
	ctl_req_cleanup(&r);
	cr_assert_eq(parse("{\"v\":1,\"cmd\":\"p2p.dcutr\",\"enabled\":true,\"prime_ttl\":0}", &r,
			   &code),
		     0);
	cr_assert(r.enabled && r.prime_ttl == 0 && !r.has_relay_disc);
	ctl_req_cleanup(&r);
	cr_assert_eq(
		parse("{\"v\":1,\"cmd\":\"p2p.dcutr\",\"enabled\":true,\"relay_discovery\":true}",
		      &r, &code),
		0);
	cr_assert(r.enabled && r.has_relay_disc && r.relay_disc);
	ctl_req_cleanup(&r);
	cr_assert_eq(
		parse("{\"v\":1,\"cmd\":\"p2p.dcutr\",\"enabled\":true,\"relay_discovery\":false}",
		      &r, &code),
		0);
	cr_assert(r.has_relay_disc && !r.relay_disc && r.attempt_timeout_ms == 0);
	ctl_req_cleanup(&r);
	cr_assert_eq(
		parse("{\"v\":1,\"cmd\":\"p2p.dcutr\",\"enabled\":true,\"attempt_timeout_ms\":4000}",
		      &r, &code),
		0);
	cr_assert_eq(r.attempt_timeout_ms, 4000);
	ctl_req_cleanup(&r);
	cr_assert_eq(parse("{\"v\":1,\"cmd\":\"p2p.upgrades\"}", &r, &code), 0);
	cr_assert_eq(r.cmd, CTL_P2P_UPGRADES);
	ctl_req_cleanup(&r);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		cr_assert_eq(parse(bad[i], &r, &code), -EINVAL, "%s", bad[i]);
		cr_assert_str_eq(code, "bad_request", "%s", bad[i]);
		ctl_req_cleanup(&r);
	}
}
