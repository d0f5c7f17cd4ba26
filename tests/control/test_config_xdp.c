// SPDX-License-Identifier: MIT
/* The [xdp] configuration keys: defaults, file, exact environment names, precedence, errors. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "natx/err.h"

static const char *xenv[16][2];
static int nxenv;

static const char *xgetenv(const char *name)
{
	for (int i = 0; i < nxenv; i++) {
		if (!strcmp(xenv[i][0], name)) {
			return xenv[i][1];
		}
	}
	return NULL;
}

static void xsetenv(const char *name, const char *value)
{
	xenv[nxenv][0] = name;
	xenv[nxenv][1] = value;
	nxenv++;
}

static char xfile[64];

static const char *xwrite_conf(const char *text)
{
	int fd;

	strcpy(xfile, "/tmp/natx-xdp-test-XXXXXX");
	fd = mkstemp(xfile);
	cr_assert_geq(fd, 0);
	cr_assert_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
	return xfile;
}

static void xsetup(void)
{
	nxenv = 0;
	xfile[0] = '\0';
}

static void xteardown(void)
{
	if (xfile[0]) {
		unlink(xfile);
	}
}

TestSuite(config_xdp, .init = xsetup, .fini = xteardown, .timeout = 10);

Test(config_xdp, defaults)
{
	static struct natx_config c;
	struct config_cli cli = { 0 };
	char err[CONFIG_ERR_MAX];

	cr_assert_eq(config_build(&c, &cli, xgetenv, err), 0, "%s", err);
	cr_assert_str_eq(c.xdp_interface, "");
	cr_assert_eq(c.xdp_mode, CONFIG_XDP_NATIVE);
	cr_assert_eq(c.stun_port, 3478);
	cr_assert_eq(c.stun_rate, 20);
	cr_assert_eq(c.stun_burst, 0);
	cr_assert_eq(c.stun_fallback, CONFIG_STUN_FALLBACK_AUTO);
	cr_assert(c.xdp_keep_on_exit);
	cr_assert_str_eq(c.xdp_pin_root, "/sys/fs/bpf/natx");
}

Test(config_xdp, file_keys)
{
	static struct natx_config c;
	struct config_cli cli = { 0 };
	char err[CONFIG_ERR_MAX];

	cli.config_file = xwrite_conf("[xdp]\ninterface = eth1\nmode = Generic\nstun_port = 3479\n"
				      "rate = 100\nburst = 300\nfallback = always\n"
				      "keep_on_exit = no\npin_root = /sys/fs/bpf/t\n");
	cr_assert_eq(config_build(&c, &cli, xgetenv, err), 0, "%s", err);
	cr_assert_str_eq(c.xdp_interface, "eth1");
	cr_assert_eq(c.xdp_mode, CONFIG_XDP_GENERIC);
	cr_assert_eq(c.stun_port, 3479);
	cr_assert_eq(c.stun_rate, 100);
	cr_assert_eq(c.stun_burst, 300);
	cr_assert_eq(c.stun_fallback, CONFIG_STUN_FALLBACK_ALWAYS);
	cr_assert_not(c.xdp_keep_on_exit);
	cr_assert_str_eq(c.xdp_pin_root, "/sys/fs/bpf/t");
	cr_assert_str_eq(config_xdp_mode_name(c.xdp_mode), "generic");
	cr_assert_str_eq(config_stun_fallback_name(c.stun_fallback), "always");
}

Test(config_xdp, environment_overrides_file_with_exact_names)
{
	static struct natx_config c;
	struct config_cli cli = { 0 };
	char err[CONFIG_ERR_MAX];

	cli.config_file = xwrite_conf("[xdp]\ninterface = eth1\nmode = generic\nstun_port = 3479\n"
				      "rate = 100\n");
	xsetenv("NAT_TRAVERSAL_XDP_INTERFACE", "veth0");
	xsetenv("NAT_TRAVERSAL_XDP_MODE", "off");
	xsetenv("NAT_TRAVERSAL_STUN_PORT", "3480");
	xsetenv("NAT_TRAVERSAL_STUN_RATE", "0");
	xsetenv("NAT_TRAVERSAL_STUN_BURST", "7");
	xsetenv("NAT_TRAVERSAL_STUN_FALLBACK", "off");
	cr_assert_eq(config_build(&c, &cli, xgetenv, err), 0, "%s", err);
	cr_assert_str_eq(c.xdp_interface, "veth0");
	cr_assert_eq(c.xdp_mode, CONFIG_XDP_OFF);
	cr_assert_eq(c.stun_port, 3480);
	cr_assert_eq(c.stun_rate, 0);
	cr_assert_eq(c.stun_burst, 7);
	cr_assert_eq(c.stun_fallback, CONFIG_STUN_FALLBACK_OFF);

	/* An empty NAT_TRAVERSAL_XDP_INTERFACE means "no XDP", also over the file. */
	nxenv = 0;
	xsetenv("NAT_TRAVERSAL_XDP_INTERFACE", "");
	cr_assert_eq(config_build(&c, &cli, xgetenv, err), 0, "%s", err);
	cr_assert_str_eq(c.xdp_interface, "");
	cr_assert_eq(c.xdp_mode, CONFIG_XDP_GENERIC);
}

Test(config_xdp, bad_file_values_name_file_and_line)
{
	static const struct {
		const char *text;
		int line;
		const char *needle;
	} cases[] = {
		{ "[xdp]\nmode = turbo\n", 2, "expected native, generic or off" },
		{ "[xdp]\n\ninterface = averyveryverylongname0\n", 3, "interface name" },
		{ "[xdp]\ninterface = eth/0\n", 2, "interface name" },
		{ "[xdp]\ninterface = punch\n", 2, "interface name" },
		{ "[xdp]\ninterface = ..\n", 2, "interface name" },
		{ "[xdp]\nstun_port = 0\n", 2, "[1, 65535]" },
		{ "[xdp]\nstun_port = 65536\n", 2, "[1, 65535]" },
		{ "[xdp]\nstun_port = 34x\n", 2, "[1, 65535]" },
		{ "[xdp]\nrate = -1\n", 2, "integer" },
		{ "[xdp]\nburst = 100000001\n", 2, "integer" },
		{ "[xdp]\nfallback = maybe\n", 2, "expected auto, always or off" },
		{ "[xdp]\nkeep_on_exit = perhaps\n", 2, "boolean" },
		{ "[xdp]\npin_root = relative/dir\n", 2, "absolute path" },
		{ "[xdp]\nport = 3478\n", 2, "unknown key 'port'" },
	};

	for (unsigned i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		static struct natx_config c;
		struct config_cli cli = { 0 };
		char err[CONFIG_ERR_MAX], want[96];
		const char *f = xwrite_conf(cases[i].text);

		cli.config_file = f;
		cr_assert_eq(config_build(&c, &cli, xgetenv, err), -NATX_E_CONFIG, "case %u", i);
		snprintf(want, sizeof(want), "%s:%d: ", f, cases[i].line);
		cr_assert(!strncmp(err, want, strlen(want)), "case %u: '%s' lacks '%s'", i, err,
			  want);
		cr_assert(strstr(err, cases[i].needle), "case %u: '%s' lacks '%s'", i, err,
			  cases[i].needle);
		unlink(f);
		xfile[0] = '\0';
	}
}

Test(config_xdp, bad_environment_values_are_named)
{
	static const char *const cases[][2] = {
		{ "NAT_TRAVERSAL_XDP_MODE", "fast" },	  { "NAT_TRAVERSAL_XDP_INTERFACE", "a b" },
		{ "NAT_TRAVERSAL_STUN_PORT", "0" },	  { "NAT_TRAVERSAL_STUN_PORT", "" },
		{ "NAT_TRAVERSAL_STUN_RATE", "ten" },	  { "NAT_TRAVERSAL_STUN_BURST", "-5" },
		{ "NAT_TRAVERSAL_STUN_FALLBACK", "yes" },
	};

	for (unsigned i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		static struct natx_config c;
		struct config_cli cli = { 0 };
		char err[CONFIG_ERR_MAX], want[96];

		nxenv = 0;
		xsetenv(cases[i][0], cases[i][1]);
		cr_assert_eq(config_build(&c, &cli, xgetenv, err), -NATX_E_CONFIG, "case %u", i);
		snprintf(want, sizeof(want), "environment %s=", cases[i][0]);
		cr_assert(!strncmp(err, want, strlen(want)), "case %u: '%s'", i, err);
	}
}

Test(config_xdp, keys_are_listed_with_their_environment_names)
{
	static const char *const want[][2] = {
		{ "interface", "NAT_TRAVERSAL_XDP_INTERFACE" },
		{ "mode", "NAT_TRAVERSAL_XDP_MODE" },
		{ "stun_port", "NAT_TRAVERSAL_STUN_PORT" },
		{ "rate", "NAT_TRAVERSAL_STUN_RATE" },
		{ "burst", "NAT_TRAVERSAL_STUN_BURST" },
		{ "fallback", "NAT_TRAVERSAL_STUN_FALLBACK" },
	};
	unsigned n;
	const struct config_key_info *k = config_keys(&n);

	for (unsigned w = 0; w < sizeof(want) / sizeof(want[0]); w++) {
		bool found = false;

		for (unsigned i = 0; i < n; i++) {
			if (!strcmp(k[i].section, "xdp") && !strcmp(k[i].key, want[w][0])) {
				cr_assert_str_eq(k[i].env, want[w][1]);
				found = true;
			}
		}
		cr_assert(found, "xdp.%s missing", want[w][0]);
	}
}
