// SPDX-License-Identifier: MIT
/* p2p.forward's flow options in the engine's control parser (engine/core/ctl_parse.c). */
#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>

#include "core/ctl_parse.h"

static int parse(const char *line, struct ctl_req *req, const char **code, char *msg)
{
	memset(req, 0, sizeof(*req));
	return ctl_req_parse(line, strlen(line), req, code, msg);
}

#define FWD                                                                                           \
	"{\"v\":1,\"id\":1,\"cmd\":\"p2p.forward\",\"protocol\":\"/x/1\",\"listen\":\"127.0.0.1:0\"," \
	"\"addr\":\"/ip4/1.2.3.4/tcp/1/p2p/Qm\""

Test(flow_ctl, flow_and_repair_ms, .timeout = 5)
{
	char msg[CTL_MSG_MAX];
	struct ctl_req r;
	const char *code;

	cr_assert_eq(parse(FWD "}", &r, &code, msg), 0);
	cr_assert(!r.flow && r.repair_ms == 0, "no flag: a plain forward");
	ctl_req_cleanup(&r);
	cr_assert_eq(parse(FWD ",\"flow\":true,\"repair_ms\":2500}", &r, &code, msg), 0);
	cr_assert(r.cmd == CTL_P2P_FORWARD && r.flow && r.repair_ms == 2500);
	ctl_req_cleanup(&r);
	cr_assert_eq(parse(FWD ",\"flow\":false}", &r, &code, msg), 0);
	cr_assert(!r.flow);
	ctl_req_cleanup(&r);
	/* other commands ignore the keys (they may mean something else there) */
	cr_assert_eq(parse("{\"v\":1,\"id\":1,\"cmd\":\"stats\",\"flow\":7,\"repair_ms\":\"x\"}",
			   &r, &code, msg),
		     0);
	cr_assert(!r.flow && !r.repair_ms);
	ctl_req_cleanup(&r);
}

Test(flow_ctl, alt_addrs, .timeout = 5)
{
	char msg[CTL_MSG_MAX];
	struct ctl_req r;
	const char *code;

	cr_assert_eq(parse(FWD ",\"flow\":true,\"alt_addrs\":[\"/ip4/5.6.7.8/tcp/2/p2p/Qm\","
			       "\"/dns4/x/tcp/3\"]}",
			   &r, &code, msg),
		     0);
	cr_assert_eq(r.n_alt, 2);
	cr_assert_str_eq(r.alt_addrs[0], "/ip4/5.6.7.8/tcp/2/p2p/Qm");
	cr_assert_str_eq(r.alt_addrs[1], "/dns4/x/tcp/3");
	ctl_req_cleanup(&r);
	cr_assert_eq(parse(FWD ",\"flow\":true,\"alt_addrs\":[]}", &r, &code, msg), 0);
	cr_assert_eq(r.n_alt, 0);
	ctl_req_cleanup(&r);
}

Test(flow_ctl, bad_values, .timeout = 5)
{
	static const char *const bad[] = {
		FWD ",\"flow\":1}",
		FWD ",\"flow\":\"yes\"}",
		FWD ",\"flow\":null}",
		FWD ",\"repair_ms\":99}",
		FWD ",\"repair_ms\":600001}",
		FWD ",\"repair_ms\":-1}",
		FWD ",\"repair_ms\":1000.5}",
		FWD ",\"repair_ms\":\"10\"}",
		FWD ",\"alt_addrs\":\"/ip4/1.2.3.4/tcp/1\"}",
		FWD ",\"alt_addrs\":[1]}",
		FWD ",\"alt_addrs\":[\"\"]}",
		FWD ",\"alt_addrs\":[\"a\",\"b\",\"c\",\"d\",\"e\"]}",
	};
	char msg[CTL_MSG_MAX];
	struct ctl_req r;
	const char *code;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		msg[0] = '\0';
		cr_assert_eq(parse(bad[i], &r, &code, msg), -EINVAL, "%s", bad[i]);
		cr_assert_str_eq(code, "bad_request", "%s", bad[i]);
		cr_assert(strstr(msg, "flow") || strstr(msg, "repair_ms") ||
				  strstr(msg, "alt_addrs"),
			  "%s: %s", bad[i], msg);
		ctl_req_cleanup(&r);
	}
}
