// SPDX-License-Identifier: MIT
/* natx-engine command line: defaults, every option, every error case. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "core/args.h"
#include "natx/log.h"

/* parse - args_parse over a NULL-terminated list (argv[0] added). */
static int parse(struct engine_cfg *cfg, char *err, const char **list)
{
	char *argv[64] = { "natx-engine" };
	int argc = 1;

	for (; list[argc - 1]; argc++) {
		argv[argc] = (char *)list[argc - 1];
	}
	return args_parse(argc, argv, cfg, err);
}

Test(args, defaults, .timeout = 5)
{
	struct engine_cfg cfg;
	char err[ARGS_ERR_MAX];
	const char *none[] = { NULL };

	cr_assert_eq(parse(&cfg, err, none), 0);
	cr_assert_eq(cfg.shards, 0);
	cr_assert_eq(cfg.nforwards, 0);
	cr_assert_eq(cfg.tcp_mode, TCP_MODE_SPLICE);
	cr_assert_eq(cfg.drain_timeout_ms, 10000);
	cr_assert_eq(cfg.udp_idle_timeout_s, 60);
	cr_assert_eq(cfg.flow_buffer_limit, 256 * 1024);
}

Test(args, every_option, .timeout = 5)
{
	struct engine_cfg cfg;
	char err[ARGS_ERR_MAX];
	const char *list[] = { "--udp-buf-size",
			       "4096",
			       "--udp-buf-count",
			       "512",
			       "--shards",
			       "3",
			       "--forward",
			       "tcp:127.0.0.1:1=127.0.0.1:2",
			       "--forward=udp:[::1]:5=[::1]:6",
			       "--ctl",
			       "/tmp/x.sock",
			       "--stats-file",
			       "/tmp/s.json",
			       "--drain-timeout",
			       "7",
			       "--idle-timeout=30",
			       "--udp-idle-timeout",
			       "9",
			       "--connect-timeout",
			       "4",
			       "--flow-buffer-limit",
			       "65536",
			       "--tcp-mode",
			       "uring",
			       "--zc-threshold",
			       "16384",
			       "--buf-size",
			       "16384",
			       "--buf-count",
			       "256",
			       "--max-flows",
			       "5000",
			       "--keepalive",
			       "--no-pin",
			       "--forwards-file",
			       "/tmp/f",
			       "--log",
			       "debug",
			       NULL };

	cr_assert_eq(parse(&cfg, err, list), 0, "%s", err);
	cr_assert_eq(cfg.shards, 3);
	cr_assert_eq(cfg.nforwards, 2);
	cr_assert_str_eq(cfg.forwards[1], "udp:[::1]:5=[::1]:6");
	cr_assert_str_eq(cfg.ctl_path, "/tmp/x.sock");
	cr_assert_str_eq(cfg.stats_file, "/tmp/s.json");
	cr_assert_eq(cfg.drain_timeout_ms, 7000);
	cr_assert_eq(cfg.idle_timeout_s, 30);
	cr_assert_eq(cfg.udp_idle_timeout_s, 9);
	cr_assert_eq(cfg.connect_timeout_s, 4);
	cr_assert_eq(cfg.flow_buffer_limit, 65536);
	cr_assert_eq(cfg.tcp_mode, TCP_MODE_URING);
	cr_assert_eq(cfg.zc_threshold, 16384);
	cr_assert_eq(cfg.buf_size, 16384);
	cr_assert_eq(cfg.buf_count, 256);
	cr_assert_eq(cfg.max_flows, 5000);
	cr_assert_eq(cfg.udp_buf_size, 4096);
	cr_assert_eq(cfg.udp_buf_count, 512);
	cr_assert(cfg.keepalive && cfg.no_pin);
	cr_assert_str_eq(cfg.forwards_file, "/tmp/f");
	log_filter_set(NULL);
}

Test(args, rejects_every_bad_input, .timeout = 5)
{
	static const char *const cases[][4] = {
		{ "positional", NULL },
		{ "--nope", NULL },
		{ "--shards", NULL },
		{ "--shards", "0", NULL },
		{ "--shards", "256", NULL },
		{ "--shards", "two", NULL },
		{ "--shards", "", NULL },
		{ "--shards", "99999999999999999999", NULL },
		{ "--forward", "tcp:1.2.3.4=5.6.7.8:9", NULL },
		{ "--forward", "bogus", NULL },
		{ "--drain-timeout", "-1", NULL },
		{ "--udp-idle-timeout", "0", NULL },
		{ "--connect-timeout", "0", NULL },
		{ "--flow-buffer-limit", "100", NULL },
		{ "--tcp-mode", "sendfile", NULL },
		{ "--buf-size", "3000", NULL },
		{ "--buf-size", "1024", NULL },
		{ "--buf-count", "100", NULL },
		{ "--buf-count", "65536", NULL },
		{ "--max-flows", "1", NULL },
		{ "--udp-buf-size", "1024", NULL },
		{ "--udp-buf-size", "5000", NULL },
		{ "--udp-buf-size", "131072", NULL },
		{ "--udp-buf-count", "8", NULL },
		{ "--udp-buf-count", "1000", NULL },
		{ "--log", "loud", NULL },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct engine_cfg cfg;
		char err[ARGS_ERR_MAX] = "";

		cr_assert_eq(parse(&cfg, err, (const char **)cases[i]), -EINVAL, "case %zu (%s %s)",
			     i, cases[i][0], cases[i][1] ? cases[i][1] : "");
		cr_assert_neq(err[0], '\0');
		cr_assert_null(strchr(err, '\n'), "error must be one line: %s", err);
	}
}

Test(args, error_names_the_option, .timeout = 5)
{
	struct engine_cfg cfg;
	char err[ARGS_ERR_MAX];
	const char *l1[] = { "--forward", "tcp:1.2.3.4:80=x:0", NULL };
	const char *l2[] = { "--buf-count", "7", NULL };

	cr_assert_eq(parse(&cfg, err, l1), -EINVAL);
	cr_assert(strstr(err, "--forward") && strstr(err, "upstream port"), "%s", err);
	cr_assert_eq(parse(&cfg, err, l2), -EINVAL);
	cr_assert(strstr(err, "--buf-count"), "%s", err);
}

Test(args, help_and_version_flags, .timeout = 5)
{
	struct engine_cfg cfg;
	char err[ARGS_ERR_MAX];
	const char *l[] = { "--help", "--version", NULL };

	cr_assert_eq(parse(&cfg, err, l), 0);
	cr_assert(cfg.help && cfg.version);
	cr_assert(strstr(args_usage(), "--forward SPEC"));
}
