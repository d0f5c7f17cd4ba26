// SPDX-License-Identifier: MIT
/* Control request framing, parsing, replies and the error-code table. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl_cmdtab.h"
#include "ctl_req.h"
#include "fwdspec.h"
#include "natx/err.h"

struct seen {
	int lines;
	int too_big;
	char last[256];
};

static int on_line(void *arg, char *line, size_t len, int err)
{
	struct seen *s = arg;

	if (err) {
		cr_assert_eq(err, -NATX_E_TOO_BIG);
		cr_assert_null(line);
		s->too_big++;
		return 0;
	}
	cr_assert_eq(strlen(line), len);
	snprintf(s->last, sizeof(s->last), "%s", line);
	s->lines++;
	return 0;
}

Test(ctl_lines, splits_across_chunks_and_strips_cr, .timeout = 10)
{
	static struct ctl_lines l;
	struct seen s = { 0 };

	ctl_lines_init(&l);
	cr_assert_eq(ctl_lines_feed(&l, "{\"a\":", 5, on_line, &s), 0);
	cr_assert_eq(s.lines, 0);
	cr_assert_eq(ctl_lines_feed(&l, "1}\r\n{}\n", 7, on_line, &s), 0);
	cr_assert_eq(s.lines, 2);
	cr_assert_str_eq(s.last, "{}");
}

Test(ctl_lines, oversized_line_reported_once_and_stream_recovers, .timeout = 10)
{
	static struct ctl_lines l;
	struct seen s = { 0 };
	size_t big = CTL_LINE_MAX + 10;
	char *junk = malloc(big);

	memset(junk, 'x', big);
	ctl_lines_init(&l);
	/* fed in odd chunks, never with a newline until the end */
	for (size_t off = 0; off < big; off += 1000) {
		ctl_lines_feed(&l, junk + off, big - off < 1000 ? big - off : 1000, on_line, &s);
	}
	cr_assert_eq(s.too_big, 1);
	ctl_lines_feed(&l, "tail\nok\n", 8, on_line, &s);
	cr_assert_eq(s.too_big, 1);
	cr_assert_eq(s.lines, 1);
	cr_assert_str_eq(s.last, "ok");
	/* a line of exactly CTL_LINE_MAX bytes is fine */
	ctl_lines_feed(&l, junk, CTL_LINE_MAX, on_line, &s);
	ctl_lines_feed(&l, "\n", 1, on_line, &s);
	cr_assert_eq(s.lines, 2);
	cr_assert_eq(s.too_big, 1);
	/* too big with the newline in the same chunk */
	junk[big - 1] = '\n';
	ctl_lines_feed(&l, junk, big, on_line, &s);
	cr_assert_eq(s.too_big, 2);
	ctl_lines_feed(&l, "z\n", 2, on_line, &s);
	cr_assert_str_eq(s.last, "z");
	free(junk);
}

struct parse_case {
	const char *line;
	int err;
	const char *cmd;
};

Test(ctl_req, parse_table, .timeout = 10)
{
	static const struct parse_case cases[] = {
		{ "{\"v\":1,\"cmd\":\"status\"}", 0, "status" },
		{ "{\"v\":1,\"id\":7,\"cmd\":\"forward.add\",\"spec\":\"x\"}", 0, "forward.add" },
		{ "  {\"v\":1,\"id\":\"abc\",\"cmd\":\"engine.stats\"}  ", 0, "engine.stats" },
		{ "", -NATX_E_PROTO, NULL },
		{ "garbage", -NATX_E_PROTO, NULL },
		{ "[1,2]", -NATX_E_PROTO, NULL },
		{ "\"str\"", -NATX_E_PROTO, NULL },
		{ "{\"v\":1,\"cmd\":\"status\"} trailing", -NATX_E_PROTO, NULL },
		{ "{\"v\":2,\"cmd\":\"status\"}", -EPROTONOSUPPORT, NULL },
		{ "{\"cmd\":\"status\"}", -EPROTONOSUPPORT, NULL },
		{ "{\"v\":\"1\",\"cmd\":\"status\"}", -EPROTONOSUPPORT, NULL },
		{ "{\"v\":1}", -NATX_E_PROTO, NULL },
		{ "{\"v\":1,\"cmd\":5}", -NATX_E_PROTO, NULL },
		{ "{\"v\":1,\"cmd\":\"Status\"}", -NATX_E_PROTO, NULL },
		{ "{\"v\":1,\"cmd\":\"../etc\"}", -NATX_E_PROTO, NULL },
		{ "{\"v\":1,\"cmd\":\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"}", -NATX_E_PROTO,
		  NULL },
		{ "{\"v\":1,\"id\":[1],\"cmd\":\"status\"}", -NATX_E_PROTO, NULL },
		{ "{\"v\":1,\"id\":{},\"cmd\":\"status\"}", -NATX_E_PROTO, NULL },
		{ "{\"v\":1,\"cmd\":\"status\"", -NATX_E_PROTO, NULL },
	};

	for (unsigned i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct ctl_req req;
		const char *why = NULL;
		int rc = ctl_req_parse(cases[i].line, strlen(cases[i].line), &req, &why);

		cr_assert_eq(rc, cases[i].err, "case %u '%s': rc %d", i, cases[i].line, rc);
		if (!rc) {
			cr_assert_str_eq(req.cmd, cases[i].cmd);
		} else {
			cr_assert_not_null(why);
			cr_assert_null(req.cmd);
		}
		ctl_req_cleanup(&req);
	}
}

Test(ctl_req, error_reply_echoes_id_and_uses_stable_code, .timeout = 10)
{
	struct ctl_req req;
	const char *why;
	char *line;
	size_t len;
	cJSON *r;

	cr_assert_eq(ctl_req_parse("{\"v\":9,\"id\":\"q1\",\"cmd\":\"status\"}", 33, &req, &why),
		     -EPROTONOSUPPORT);
	r = ctl_reply_error(req.id, -EPROTONOSUPPORT, why);
	line = ctl_reply_line(r, &len);
	cr_assert_eq(line[len - 1], '\n');
	cr_assert(strstr(line, "\"id\":\"q1\""), "%s", line);
	cr_assert(strstr(line, "\"ok\":false"), "%s", line);
	cr_assert(strstr(line, "\"code\":\"bad_version\""), "%s", line);
	free(line);
	cJSON_Delete(r);
	ctl_req_cleanup(&req);
}

Test(ctl_req, argument_getters_validate, .timeout = 10)
{
	struct ctl_req req;
	const char *why, *s;
	const char *line = "{\"v\":1,\"cmd\":\"connect\",\"target\":\"node-1\",\"b\":true,\"n\":3,"
			   "\"neg\":-1,\"frac\":1.5,\"ctl\":\"a\\u0001b\",\"num\":5}";
	unsigned long u;
	bool b;
	int err;

	cr_assert_eq(ctl_req_parse(line, strlen(line), &req, &why), 0);
	s = ctl_req_str(&req, "target", 10, &err);
	cr_assert_str_eq(s, "node-1");
	cr_assert_null(ctl_req_str(&req, "target", 3, &err));
	cr_assert_eq(err, -EINVAL);
	cr_assert_null(ctl_req_str(&req, "missing", 10, &err));
	cr_assert_eq(err, -ENOENT);
	cr_assert_null(ctl_req_str(&req, "ctl", 10, &err));
	cr_assert_eq(err, -EINVAL);
	cr_assert_null(ctl_req_str(&req, "num", 10, &err));
	cr_assert_eq(ctl_req_bool(&req, "b", false, &b), 0);
	cr_assert(b);
	cr_assert_eq(ctl_req_bool(&req, "absent", true, &b), 0);
	cr_assert(b);
	cr_assert_eq(ctl_req_bool(&req, "n", false, &b), -EINVAL);
	cr_assert_eq(ctl_req_uint(&req, "n", 10, &u), 0);
	cr_assert_eq(u, 3);
	cr_assert_eq(ctl_req_uint(&req, "n", 2, &u), -EINVAL);
	cr_assert_eq(ctl_req_uint(&req, "neg", 10, &u), -EINVAL);
	cr_assert_eq(ctl_req_uint(&req, "frac", 10, &u), -EINVAL);
	ctl_req_cleanup(&req);
}

Test(ctl_err, codes_map_both_ways_with_exit_and_http_status, .timeout = 10)
{
	static const struct {
		int err;
		const char *code;
		int exit_status, http;
	} want[] = {
		{ -NATX_E_UNAVAILABLE, "service_unavailable", 10, 503 },
		{ -NATX_E_PAYMENT, "payment_required", 11, 402 },
		{ -NATX_E_CONNECT, "connection_failed", 12, 502 },
		{ -NATX_E_AUTH, "authentication_failed", 13, 401 },
		{ -NATX_E_NOT_FOUND, "node_not_found", 14, 404 },
		{ -NATX_E_CONFIG, "configuration_error", 15, 500 },
		{ -NATX_E_RATE_LIMITED, "rate_limited", 16, 429 },
		{ -EACCES, "permission_denied", 5, 403 },
		{ -EPERM, "permission_denied", 5, 403 },
		{ -NATX_E_TOO_BIG, "too_big", 4, 413 },
		{ -12345, "internal", 1, 500 },
	};

	for (unsigned i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
		const struct ctl_errmap *m = ctl_err_by_err(want[i].err);

		cr_assert_str_eq(m->code, want[i].code);
		cr_assert_eq(m->exit_status, want[i].exit_status);
		cr_assert_eq(m->http_status, want[i].http);
		cr_assert_eq(ctl_err_by_code(want[i].code), m);
	}
	cr_assert_str_eq(ctl_err_by_code("no-such-code")->code, "internal");
	cr_assert_str_eq(ctl_err_by_code(NULL)->code, "internal");
	/* codes are unique, exit statuses above 3 (0-3 belong to natxctl itself) */
	for (const struct ctl_errmap *a = ctl_errmap_table(); a->code; a++) {
		cr_assert(a == ctl_errmap_table() || a->exit_status > 3, "%s", a->code);
		for (const struct ctl_errmap *b = a + 1; b->code; b++) {
			cr_assert_str_neq(a->code, b->code);
			cr_assert_neq(a->err, b->err);
		}
	}
}

Test(ctl_cmdtab, rows_are_well_formed, .timeout = 10)
{
	for (const struct ctl_cmd *c = ctl_cmd_table; c->words; c++) {
		cr_assert_not_null(ctl_cmd_by_name(c->name));
		cr_assert_not_null(c->help);
		cr_assert_not_null(c->usage);
		for (const struct ctl_cmd *d = c + 1; d->words; d++) {
			cr_assert_str_neq(c->name, d->name);
			cr_assert_str_neq(c->words, d->words);
		}
	}
	cr_assert(ctl_cmd_by_name("forward.add")->mutating);
	cr_assert_not(ctl_cmd_by_name("status")->mutating);
	cr_assert_null(ctl_cmd_by_name("nope"));
}

Test(fwdspec, parses_and_rejects, .timeout = 10)
{
	struct fwdspec f;
	const char *why;
	static const char *const bad[] = {
		"tcp:0.0.0.0:8080",
		"tcp:=1.2.3.4:5",
		"tcp:1.2.3.4:5=",
		"tcp:::1:5=1.2.3.4:5",
		"tcp:[::1:5=1.2.3.4:5",
		"tcp:1.2.3.4:x=1.2.3.4:5",
		"tcp:1.2.3.4:123456=a:1",
		"tcp:a b:1=c:2",
		"icmp:1.2.3.4:1=5.6.7.8:2",
		"tcp:1.2.3.4:1=5.6.7.8:0",
		"",
	};

	cr_assert_eq(fwdspec_parse("tcp:0.0.0.0:8080=127.0.0.1:80", &f, &why), 0);
	cr_assert_str_eq(f.proto, "tcp");
	cr_assert_str_eq(f.listen_host, "0.0.0.0");
	cr_assert_eq(f.listen_port, 8080);
	cr_assert_str_eq(f.upstream_host, "127.0.0.1");
	cr_assert_eq(f.upstream_port, 80);
	cr_assert_eq(fwdspec_parse("udp:[::1]:5353=[fe80::1%eth0]:53", &f, &why), 0);
	cr_assert_str_eq(f.listen_host, "::1");
	cr_assert_str_eq(f.upstream_host, "fe80::1%eth0");
	cr_assert_eq(fwdspec_parse("tcp:localhost:0=example.org:443", &f, &why), 0);
	for (unsigned i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		cr_assert_eq(fwdspec_parse(bad[i], &f, &why), -EINVAL, "'%s' accepted", bad[i]);
	}
}

Test(ctl_rx, replies_longer_than_the_request_limit_are_read_whole, .timeout = 10)
{
	struct ctl_rx rx;
	size_t big = 3 * CTL_LINE_MAX, len;
	char *data = malloc(big + 1), *line;

	memset(data, 'r', big);
	data[big] = '\n';
	ctl_rx_init(&rx);
	cr_assert_null(ctl_rx_line(&rx, &len));
	for (size_t off = 0; off <= big; off += 5000) {
		cr_assert_eq(
			ctl_rx_append(&rx, data + off, big + 1 - off < 5000 ? big + 1 - off : 5000),
			0);
	}
	cr_assert_eq(ctl_rx_append(&rx, "x\ny", 3), 0);
	line = ctl_rx_line(&rx, &len);
	cr_assert_not_null(line);
	cr_assert_eq(len, big);
	cr_assert_eq(strlen(line), big);
	free(line);
	line = ctl_rx_line(&rx, &len);
	cr_assert_str_eq(line, "x");
	free(line);
	cr_assert_null(ctl_rx_line(&rx, &len)); /* "y" has no newline yet */
	cr_assert_eq(ctl_rx_append(&rx, data, CTL_REPLY_MAX), -NATX_E_TOO_BIG);
	ctl_rx_cleanup(&rx);
	ctl_rx_cleanup(&rx);
	free(data);
}
