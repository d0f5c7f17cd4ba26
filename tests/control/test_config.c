// SPDX-License-Identifier: MIT
/* Config sources, precedence and errors with file:line. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "natx/err.h"

/* A fake environment: NAME=VALUE pairs set by each test. */
static const char *tenv[32][2];
static int ntenv;

static const char *tgetenv(const char *name)
{
	for (int i = 0; i < ntenv; i++) {
		if (!strcmp(tenv[i][0], name)) {
			return tenv[i][1];
		}
	}
	return NULL;
}

static void tsetenv(const char *name, const char *value)
{
	tenv[ntenv][0] = name;
	tenv[ntenv][1] = value;
	ntenv++;
}

static char tfile[64];

static const char *write_conf(const char *text)
{
	int fd;

	strcpy(tfile, "/tmp/natx-ctl-test-XXXXXX");
	fd = mkstemp(tfile);
	cr_assert_geq(fd, 0);
	cr_assert_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
	return tfile;
}

static void setup(void)
{
	ntenv = 0;
	tfile[0] = '\0';
}

static void teardown(void)
{
	if (tfile[0]) {
		unlink(tfile);
	}
}

TestSuite(config, .init = setup, .fini = teardown, .timeout = 10);

Test(config, embedded_defaults_without_a_file)
{
	static struct natx_config c;
	struct config_cli cli = { 0 };
	char err[CONFIG_ERR_MAX];

	tsetenv("XDG_RUNTIME_DIR", "/run/user/1234");
	tsetenv("HOME", "/home/u");
	cr_assert_eq(config_build(&c, &cli, tgetenv, err), 0, "%s", err);
	cr_assert_str_eq(c.server_address, "127.0.0.1:3001");
	cr_assert_not(c.enable_libp2p);
	cr_assert_not(c.enable_rathole);
	cr_assert(c.enable_hole_punching);
	if (geteuid() == 0) {
		cr_assert_str_eq(c.socket_path, "/run/natx/ctl.sock");
		cr_assert_str_eq(c.database, "/var/lib/natx/natx.db");
	} else {
		cr_assert_str_eq(c.socket_path, "/run/user/1234/natx/ctl.sock");
		cr_assert_str_eq(c.database, "/home/u/.local/state/natx/natx.db");
	}
	cr_assert_eq(c.nforwards, 0);
}

Test(config, precedence_cli_over_env_over_file_over_defaults)
{
	static struct natx_config c;
	struct config_cli cli = { 0 };
	char err[CONFIG_ERR_MAX];

	cli.config_file = write_conf("[server]\naddress = 127.0.0.1:4000\n"
				     "[nat_traversal]\nenable_libp2p = yes\nenable_rathole = on\n"
				     "libp2p_listen_addr = /ip4/0.0.0.0/tcp/1\n"
				     "[store]\ndatabase = /file/db.sqlite\n"
				     "[log]\nfilter = debug\n");
	/* file only */
	cr_assert_eq(config_build(&c, &cli, tgetenv, err), 0, "%s", err);
	cr_assert_str_eq(c.server_address, "127.0.0.1:4000");
	cr_assert(c.enable_libp2p);
	cr_assert(c.enable_rathole);
	cr_assert_str_eq(c.database, "/file/db.sqlite");
	cr_assert_str_eq(c.log_filter, "debug");
	cr_assert_str_eq(c.file, tfile);
	/* environment over file, with the exact variable names */
	tsetenv("SERVER_ADDRESS", "127.0.0.1:5000");
	tsetenv("NAT_TRAVERSAL_ENABLE_LIBP2P", "false");
	tsetenv("NAT_TRAVERSAL_ENABLE_RATHOLE", "0");
	tsetenv("NAT_TRAVERSAL_LIBP2P_LISTEN_ADDR", "/ip4/127.0.0.1/tcp/2");
	tsetenv("NAT_TRAVERSAL_LIBP2P_BOOTSTRAP_PEERS", "/ip4/192.0.2.1/tcp/1/p2p/A,/dns4/x/tcp/2");
	tsetenv("NAT_TRAVERSAL_ENABLE_HOLE_PUNCHING", "no");
	tsetenv("NAT_TRAVERSAL_ENABLE_RELAY_DISCOVERY", "off");
	tsetenv("DATABASE_URL", "sqlite:///env/db.sqlite");
	tsetenv("NATX_LOG", "warn,engine=trace");
	cr_assert_eq(config_build(&c, &cli, tgetenv, err), 0, "%s", err);
	cr_assert_str_eq(c.server_address, "127.0.0.1:5000");
	cr_assert_not(c.enable_libp2p);
	cr_assert_not(c.enable_rathole);
	cr_assert_not(c.enable_hole_punching);
	cr_assert_not(c.enable_relay_discovery);
	cr_assert_str_eq(c.libp2p_listen_addr, "/ip4/127.0.0.1/tcp/2");
	cr_assert_str_eq(c.libp2p_bootstrap_peers, "/ip4/192.0.2.1/tcp/1/p2p/A,/dns4/x/tcp/2");
	cr_assert_str_eq(c.database, "/env/db.sqlite");
	cr_assert_str_eq(c.log_filter, "warn,engine=trace");
	/* command line over environment */
	cli.server_address = "[::1]:6000";
	cli.database = "/cli/db";
	cli.log_filter = "error";
	cr_assert_eq(config_build(&c, &cli, tgetenv, err), 0, "%s", err);
	cr_assert_str_eq(c.server_address, "[::1]:6000");
	cr_assert_str_eq(c.database, "/cli/db");
	cr_assert_str_eq(c.log_filter, "error");
}

Test(config, state_dir_derives_database_unless_set)
{
	static struct natx_config c;
	struct config_cli cli = { .state_dir = "/srv/natx" };
	char err[CONFIG_ERR_MAX];

	cr_assert_eq(config_build(&c, &cli, tgetenv, err), 0, "%s", err);
	cr_assert_str_eq(c.database, "/srv/natx/natx.db");
}

Test(config, forwards_from_file_and_cli_accumulate)
{
	static struct natx_config c;
	struct config_cli cli = { 0 };
	char err[CONFIG_ERR_MAX];

	cli.config_file = write_conf("forward = tcp:0.0.0.0:8080=127.0.0.1:80\n"
				     "[forward]\nforward = udp:[::1]:5353=[::1]:53\n"
				     "forward = tcp:127.0.0.1:0=example.com:443\n");
	cli.forwards[cli.nforwards++] = "tcp:127.0.0.1:9000=127.0.0.1:9001";
	cr_assert_eq(config_build(&c, &cli, tgetenv, err), 0, "%s", err);
	cr_assert_eq(c.nforwards, 4);
	cr_assert_str_eq(c.forwards[0], "tcp:0.0.0.0:8080=127.0.0.1:80");
	cr_assert_str_eq(c.forwards[1], "udp:[::1]:5353=[::1]:53");
	cr_assert_str_eq(c.forwards[3], "tcp:127.0.0.1:9000=127.0.0.1:9001");
}

struct bad_case {
	const char *text;
	const char *expect; /* substring of the message after "FILE:" */
};

Test(config, errors_name_file_and_line)
{
	static const struct bad_case cases[] = {
		{ "[server]\naddress = 127.0.0.1:1\nbogus = 1\n",
		  ":3: unknown key 'bogus' in section [server]" },
		{ "# c\n\n[nat_traversal]\nenable_libp2p = maybe\n",
		  ":4: nat_traversal.enable_libp2p = 'maybe': expected a boolean" },
		{ "[selection]\nbreaker_failures = 0\n",
		  ":2: selection.breaker_failures = '0': expected an integer in [1, 1000]" },
		{ "[selection]\nretry_max = 3x\n", ":2: selection.retry_max = '3x'" },
		{ "[selection]\nretry_max = -1\n", ":2: selection.retry_max = '-1'" },
		{ "[server]\naddress = nohost\n", ":2: server.address = 'nohost': missing :port" },
		{ "[server]\naddress = 1.2.3.4:99999\n",
		  ":2: server.address = '1.2.3.4:99999': port out of range" },
		{ "[forward]\nforward = sctp:1.2.3.4:1=5.6.7.8:2\n",
		  ":2: forward.forward = 'sctp:1.2.3.4:1=5.6.7.8:2': spec must start with tcp: or udp:" },
		{ "[forward]\nforward = tcp:1.2.3.4:1=5.6.7.8:0\n",
		  ":2: forward.forward = 'tcp:1.2.3.4:1=5.6.7.8:0': upstream port must not be 0" },
		{ "[log]\nfilter = loud\n", ":2: log.filter = 'loud': bad log filter" },
		{ "[store]\nstate_dir = relative/dir\n",
		  ":2: store.state_dir = 'relative/dir': must be an absolute path" },
		{ "[server]\nthis line has no equals sign\n", ":2: syntax error" },
		{ "[server\naddress = 1.2.3.4:5\n", ":1: syntax error" },
		{ "[nosuch]\nkey = 1\n", ":2: unknown key 'key' in section [nosuch]" },
		{ "[forward]\nforward = tcp:1.2.3.4:1=5.6.7.8:2\nforward = tcp:1.2.3.4:1=5.6.7.8:2\n",
		  ":3: forward.forward = 'tcp:1.2.3.4:1=5.6.7.8:2': duplicate forward" },
	};

	for (unsigned i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		static struct natx_config c;
		struct config_cli cli = { 0 };
		char err[CONFIG_ERR_MAX], want[CONFIG_ERR_MAX];

		cli.config_file = write_conf(cases[i].text);
		cr_assert_eq(config_build(&c, &cli, tgetenv, err), -NATX_E_CONFIG, "case %u passed",
			     i);
		snprintf(want, sizeof(want), "%s%s", tfile, cases[i].expect);
		cr_assert(!strncmp(err, want, strlen(want)), "case %u: got '%s', want prefix '%s'",
			  i, err, want);
		unlink(tfile);
		tfile[0] = '\0';
	}
}

Test(config, first_error_wins_and_long_lines_are_refused)
{
	static struct natx_config c;
	char err[CONFIG_ERR_MAX], text[600];

	config_defaults(&c, tgetenv);
	cr_assert_eq(config_parse_string(&c, "x.conf", "[server]\nbad1 = 1\nbad2 = 2\n", err),
		     -NATX_E_CONFIG);
	cr_assert_str_eq(err, "x.conf:2: unknown key 'bad1' in section [server]");
	snprintf(text, sizeof(text), "[nat_traversal]\nlibp2p_listen_addr = /ip4/%0300d\n", 1);
	config_defaults(&c, tgetenv);
	cr_assert_eq(config_parse_string(&c, "y.conf", text, err), -NATX_E_CONFIG);
	cr_assert(!strncmp(err, "y.conf:2: line longer than", 26), "%s", err);
}

Test(config, bad_environment_and_cli_values_are_named)
{
	static struct natx_config c;
	struct config_cli cli = { 0 };
	char err[CONFIG_ERR_MAX];

	tsetenv("NAT_TRAVERSAL_ENABLE_RATHOLE", "perhaps");
	cr_assert_eq(config_build(&c, &cli, tgetenv, err), -NATX_E_CONFIG);
	cr_assert(strstr(err, "environment NAT_TRAVERSAL_ENABLE_RATHOLE='perhaps'"), "%s", err);
	ntenv = 0;
	tsetenv("NAT_TRAVERSAL_LIBP2P_BOOTSTRAP_PEERS", "not-a-multiaddr");
	cr_assert_eq(config_build(&c, &cli, tgetenv, err), -NATX_E_CONFIG);
	cr_assert(strstr(err, "NAT_TRAVERSAL_LIBP2P_BOOTSTRAP_PEERS"), "%s", err);
	ntenv = 0;
	cli.forwards[cli.nforwards++] = "tcp:nope";
	cr_assert_eq(config_build(&c, &cli, tgetenv, err), -NATX_E_CONFIG);
	cr_assert(strstr(err, "--forward 'tcp:nope'"), "%s", err);
	cli.nforwards = 0;
	cli.socket_path = "rel.sock";
	cr_assert_eq(config_build(&c, &cli, tgetenv, err), -NATX_E_CONFIG);
	cr_assert(strstr(err, "--socket 'rel.sock': must be an absolute path"), "%s", err);
	cli.socket_path = NULL;
	cli.config_file = "/nonexistent/natx.conf";
	cr_assert_eq(config_build(&c, &cli, tgetenv, err), -NATX_E_CONFIG);
	cr_assert(strstr(err, "/nonexistent/natx.conf: No such file"), "%s", err);
}

Test(config, example_config_in_deploy_is_valid)
{
	static struct natx_config c;
	struct config_cli cli = { .config_file = NATX_SRC "/deploy/natx.conf.example" };
	char err[CONFIG_ERR_MAX];
	unsigned n;
	const struct config_key_info *keys = config_keys(&n);
	FILE *f = fopen(cli.config_file, "r");
	static char text[65536];
	size_t len;

	cr_assert_eq(config_build(&c, &cli, tgetenv, err), 0, "%s", err);
	/* every key of the table is documented in the example */
	cr_assert_not_null(f);
	len = fread(text, 1, sizeof(text) - 1, f);
	text[len] = '\0';
	fclose(f);
	for (unsigned i = 0; i < n; i++) {
		char needle[80];

		snprintf(needle, sizeof(needle), "%s = ", keys[i].key);
		cr_assert(strstr(text, needle), "key %s.%s missing from the example",
			  keys[i].section, keys[i].key);
		if (keys[i].env) {
			cr_assert(strstr(text, keys[i].env), "env %s not documented", keys[i].env);
		}
	}
}

Test(config, bool_and_run_dir_helpers)
{
	static struct natx_config c;
	char out[PATH_MAX];
	bool b;

	cr_assert_eq(config_parse_bool("YES", &b), 0);
	cr_assert(b);
	cr_assert_eq(config_parse_bool("Off", &b), 0);
	cr_assert_not(b);
	cr_assert_eq(config_parse_bool("2", &b), -EINVAL);
	memset(&c, 0, sizeof(c));
	strcpy(c.socket_path, "/run/natx/ctl.sock");
	config_run_dir(&c, out, sizeof(out));
	cr_assert_str_eq(out, "/run/natx");
	config_engine_socket(&c, out, sizeof(out));
	cr_assert_str_eq(out, "/run/natx/engine.sock");
}
