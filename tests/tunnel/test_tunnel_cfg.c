// SPDX-License-Identifier: MIT
/* natxd tunnel configuration and the engine specs derived from it (control/tunnel_cfg.h). */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "tunnel_cfg.h"

static const char *no_env(const char *name)
{
	(void)name;
	return NULL;
}

/* build - defaults + @text + finish; 0 or the error in @err. */
static int build(struct natx_config *c, const char *text, char *err)
{
	int rc;

	config_defaults(c, no_env);
	rc = config_parse_string(c, "t.conf", text, err);
	return rc ? rc : tunnel_cfg_finish(c, err);
}

static const char relay[] = "[nat_traversal]\nenable_rathole = yes\n"
			    "[rathole]\nserver_address = 127.0.0.1:2333\nclient_address = r:1\n"
			    "[tunnel]\nheartbeat_interval = 2\nheartbeat_timeout = 9\n"
			    "[tunnel.ssh]\ntype = tcp\ntoken = s3cret\nbind = 0.0.0.0:2222\n"
			    "max_conns = 7\nbandwidth_kbps = 800\n"
			    "[tunnel.dns]\ntype = udp\ntoken = other\nlocal = 127.0.0.1:53\n"
			    "proxy_protocol = yes\nudp_channels = 3\n";

Test(tunnel_cfg, specs_in_order_without_tokens)
{
	struct natx_config *c = calloc(1, sizeof(*c));
	char err[CONFIG_ERR_MAX];

	cr_assert_eq(build(c, relay, err), 0, "%s", err);
	cr_assert_eq(c->nforwards, 4);
	cr_assert(!strncmp(c->forwards[0], "tunnel-server 127.0.0.1:2333 hb=2/9 ", 36), "%s",
		  c->forwards[0]);
	cr_assert(!strncmp(c->forwards[1], "tunnel-client r:1 ", 18), "%s", c->forwards[1]);
	cr_assert(!strncmp(c->forwards[2], "tunnel-svc server ssh tcp 0.0.0.0:2222 cred=", 44),
		  "%s", c->forwards[2]);
	cr_assert(strstr(c->forwards[2], "max_conns=7"), "%s", c->forwards[2]);
	cr_assert(!strncmp(c->forwards[3], "tunnel-svc client dns udp 127.0.0.1:53 cred=", 44),
		  "%s", c->forwards[3]);
	for (unsigned i = 0; i < c->nforwards; i++) {
		cr_assert(tunnel_spec_is(c->forwards[i]));
		cr_assert_null(strstr(c->forwards[i], "s3cret"));
		cr_assert_null(strstr(c->forwards[i], "other"));
	}
	free(c);
}

Test(tunnel_cfg, request_carries_the_token_and_options)
{
	struct natx_config *c = calloc(1, sizeof(*c));
	char err[CONFIG_ERR_MAX], role[8], name[65];
	cJSON *r;

	cr_assert_eq(build(c, relay, err), 0, "%s", err);
	r = tunnel_spec_request(c->forwards[0], false);
	cr_assert_not_null(r);
	cr_assert_str_eq(cJSON_GetObjectItem(r, "cmd")->valuestring, "tunnel.server");
	cr_assert_str_eq(cJSON_GetObjectItem(r, "listen")->valuestring, "127.0.0.1:2333");
	cr_assert_eq(cJSON_GetObjectItem(r, "heartbeat_timeout")->valueint, 9);
	cr_assert_eq(cJSON_GetObjectItem(r, "pending_per_ip")->valueint, 64);
	cr_assert_str_eq(cJSON_GetObjectItem(r, "transport")->valuestring, "plain");
	cr_assert_null(cJSON_GetObjectItem(r, "noise_key_file"));
	cJSON_Delete(r);
	cr_assert_null(tunnel_spec_request(c->forwards[0], true), "server stays until restart");

	r = tunnel_spec_request(c->forwards[2], false);
	cr_assert_not_null(r);
	cr_assert_str_eq(cJSON_GetObjectItem(r, "cmd")->valuestring, "tunnel.add");
	cr_assert_str_eq(cJSON_GetObjectItem(r, "token")->valuestring, "s3cret");
	cr_assert_str_eq(cJSON_GetObjectItem(r, "bind")->valuestring, "0.0.0.0:2222");
	cr_assert_eq(cJSON_GetObjectItem(r, "max_conns")->valueint, 7);
	cr_assert_eq(cJSON_GetObjectItem(r, "bandwidth_kbps")->valueint, 800);
	cJSON_Delete(r);

	r = tunnel_spec_request(c->forwards[3], false);
	cr_assert_not_null(r);
	cr_assert_str_eq(cJSON_GetObjectItem(r, "token")->valuestring, "other");
	cr_assert(cJSON_IsTrue(cJSON_GetObjectItem(r, "proxy_protocol")));
	cr_assert_eq(cJSON_GetObjectItem(r, "udp_channels")->valueint, 3);
	cJSON_Delete(r);

	r = tunnel_spec_request(c->forwards[3], true);
	cr_assert_str_eq(cJSON_GetObjectItem(r, "cmd")->valuestring, "tunnel.rm");
	cr_assert_str_eq(cJSON_GetObjectItem(r, "role")->valuestring, "client");
	cJSON_Delete(r);
	cr_assert(tunnel_spec_svc(c->forwards[2], role, name));
	cr_assert_str_eq(role, "server");
	cr_assert_str_eq(name, "ssh");
	cr_assert(!tunnel_spec_svc(c->forwards[0], role, name));
	free(c);
}

Test(tunnel_cfg, changed_token_changes_the_spec)
{
	struct natx_config *a = calloc(1, sizeof(*a)), *b = calloc(1, sizeof(*b));
	char err[CONFIG_ERR_MAX], *text = strdup(relay);

	cr_assert_eq(build(a, relay, err), 0, "%s", err);
	memcpy(strstr(text, "s3cret"), "s3creT", 6);
	cr_assert_eq(build(b, text, err), 0, "%s", err);
	cr_assert_str_neq(a->forwards[2], b->forwards[2]);
	cr_assert_str_eq(a->forwards[3], b->forwards[3]);
	cr_assert_eq(build(b, relay, err), 0, "%s", err);
	cr_assert_str_eq(a->forwards[2], b->forwards[2], "same token, same spec");
	free(text);
	free(a);
	free(b);
}

Test(tunnel_cfg, errors_name_file_and_line)
{
	static const struct {
		const char *text, *want;
	} bad[] = {
		{ "[tunnel.x]\ntype = quic\n",
		  "t.conf:2: [tunnel.x] type = 'quic': expected tcp or udp" },
		{ "[tunnel.x]\nbind = nowhere\n",
		  "t.conf:2: [tunnel.x] bind = 'nowhere': expected host:port" },
		{ "[tunnel.x]\ncolour = red\n",
		  "t.conf:2: [tunnel.x] colour = 'red': unknown key" },
		{ "[tunnel]\nheartbeat_interval = 0\n", "t.conf:2: [tunnel] heartbeat_interval" },
		{ "[tunnel.a/b]\ntype = tcp\n",
		  "t.conf:2: [tunnel.a/b] type = 'tcp': service name" },
		{ "[tunnel.x]\npool = 99\n", "t.conf:2: [tunnel.x] pool = '99': out of range" },
		{ "\n[tunnel.x]\ntype = tcp\ntoken = t\n", "t.conf:3: [tunnel.x] needs bind" },
		{ "[tunnel.x]\ntype = tcp\nbind = 1.2.3.4:5\n",
		  "t.conf:2: [tunnel.x] needs token" },
		{ "[tunnel]\nheartbeat_interval = 9\nheartbeat_timeout = 9\n",
		  "heartbeat_timeout (9) must be above heartbeat_interval (9)" },
	};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct natx_config *c = calloc(1, sizeof(*c));
		char err[CONFIG_ERR_MAX] = "";

		cr_assert_neq(build(c, bad[i].text, err), 0, "accepted: %s", bad[i].text);
		cr_assert(strstr(err, bad[i].want), "for %s: got '%s'", bad[i].text, err);
		free(c);
	}
}

Test(tunnel_cfg, malformed_specs_are_refused)
{
	static const char *const bad[] = {
		"tunnel-svc server",
		"tunnel-svc server x tcp 1.2.3.4:5 cred=999999",
		"tunnel-svc server x tcp 1.2.3.4:5 cred=abc",
		"tunnel-svc relay x tcp 1.2.3.4:5 cred=0",
		"tunnel-svc server x tcp 1.2.3.4:5 bogus=1",
		"tunnel-server 1.2.3.4:5 hb=3",
		"tunnel-server 1.2.3.4:5 hb=3/x",
		"tunnel-client 1.2.3.4:5 hb=1/2",
		"tunnel-nothing",
		"",
	};

	cr_assert_geq(tunnel_cred_intern("t"), 0);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		cr_assert_null(tunnel_spec_request(bad[i], false), "accepted '%s'", bad[i]);
	}
}

/* ---- the encrypted transport (Noise) ---- */

static const char noise_relay[] =
	"[nat_traversal]\nenable_rathole = yes\n"
	"[store]\nstate_dir = /var/lib/tn-test\n"
	"[rathole]\nserver_address = 127.0.0.1:2333\nclient_address = r:1\n"
	"[tunnel]\ntransport = noise\n"
	"[tunnel.ssh]\ntype = tcp\ntoken = s3cret\nbind = 0.0.0.0:2222\n"
	"[tunnel.dns]\ntype = udp\ntoken = other\nlocal = 127.0.0.1:53\n"
	"server_pubkey = AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\n"
	"[tunnel.web]\ntype = tcp\ntoken = t\nlocal = 127.0.0.1:80\n";

Test(tunnel_cfg, noise_specs_name_the_key_file_and_pinned_key)
{
	struct natx_config *c = calloc(1, sizeof(*c));
	char err[CONFIG_ERR_MAX];
	cJSON *r;

	cr_assert_eq(build(c, noise_relay, err), 0, "%s", err);
	cr_assert(
		strstr(c->forwards[0], " transport=noise nxkey=/var/lib/tn-test/tunnel_noise.key"),
		"%s", c->forwards[0]);
	/* base64 normalised to hex; a service without a key stays plaintext */
	cr_assert(strstr(c->forwards[3],
			 " noise=000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"),
		  "%s", c->forwards[3]);
	cr_assert_null(strstr(c->forwards[4], "noise="), "%s", c->forwards[4]);
	r = tunnel_spec_request(c->forwards[0], false);
	cr_assert_not_null(r);
	cr_assert_str_eq(cJSON_GetObjectItem(r, "transport")->valuestring, "noise");
	cr_assert_str_eq(cJSON_GetObjectItem(r, "noise_key_file")->valuestring,
			 "/var/lib/tn-test/tunnel_noise.key");
	cJSON_Delete(r);
	r = tunnel_spec_request(c->forwards[3], false);
	cr_assert_not_null(r);
	cr_assert_str_eq(cJSON_GetObjectItem(r, "transport")->valuestring, "noise");
	cr_assert_str_eq(cJSON_GetObjectItem(r, "server_pubkey")->valuestring,
			 "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f");
	cJSON_Delete(r);
	free(c);
}

Test(tunnel_cfg, plaintext_default_keeps_the_old_specs)
{
	struct natx_config *c = calloc(1, sizeof(*c));
	char err[CONFIG_ERR_MAX];

	cr_assert_eq(build(c, relay, err), 0, "%s", err);
	for (unsigned i = 0; i < c->nforwards; i++) {
		cr_assert_null(strstr(c->forwards[i], "transport="), "%s", c->forwards[i]);
		cr_assert_null(strstr(c->forwards[i], "noise="), "%s", c->forwards[i]);
	}
	free(c);
}

Test(tunnel_cfg, tunnel_wide_pubkey_pins_every_client_service)
{
	struct natx_config *c = calloc(1, sizeof(*c));
	char err[CONFIG_ERR_MAX];
	static const char text[] =
		"[rathole]\nclient_address = r:1\n"
		"[tunnel]\nserver_pubkey = "
		"00112233445566778899AABBCCDDEEFF00112233445566778899aabbccddeeff\n"
		"[tunnel.a]\ntype = tcp\ntoken = t\nlocal = 127.0.0.1:1\n"
		"[tunnel.b]\ntype = tcp\ntoken = t\nlocal = 127.0.0.1:2\ntransport = plain\n";

	cr_assert_eq(build(c, text, err), 0, "%s", err);
	cr_assert(strstr(c->forwards[1],
			 " noise=00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"),
		  "%s", c->forwards[1]);
	cr_assert_null(strstr(c->forwards[2], "noise="), "%s", c->forwards[2]);
	free(c);
}

Test(tunnel_cfg, noise_errors_at_file_line)
{
	struct natx_config *c = calloc(1, sizeof(*c));
	char err[CONFIG_ERR_MAX];

	cr_assert_neq(build(c, "[tunnel]\ntransport = tls\n", err), 0);
	cr_assert(strstr(err, "t.conf:2") && strstr(err, "plain, noise or both"), "%s", err);
	cr_assert_neq(build(c, "[tunnel.x]\ntype = tcp\ntransport = both\n", err), 0);
	cr_assert(strstr(err, "t.conf:3") && strstr(err, "plain or noise"), "%s", err);
	cr_assert_neq(build(c, "[tunnel.x]\ntype = tcp\nserver_pubkey = 00ff\n", err), 0);
	cr_assert(strstr(err, "t.conf:3") && strstr(err, "public key"), "%s", err);
	/* non-zero base64 padding bits are not a key */
	cr_assert_neq(build(c,
			    "[tunnel.x]\nserver_pubkey = "
			    "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh9=\n",
			    err),
		      0);
	cr_assert_neq(build(c,
			    "[rathole]\nclient_address = r:1\n[tunnel.x]\ntype = tcp\ntoken = t\n"
			    "local = 127.0.0.1:1\ntransport = noise\n",
			    err),
		      0);
	cr_assert(strstr(err, "t.conf:4") && strstr(err, "needs server_pubkey"), "%s", err);
	cr_assert_neq(build(c, "[tunnel]\nnoise_key_file = /a b\n", err), 0);
	free(c);
}

Test(tunnel_cfg, pubkey_norm)
{
	char hex[TUNNEL_PUBKEY_HEX + 1];

	cr_assert_eq(tunnel_pubkey_norm("AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8", hex), 0);
	cr_assert_str_eq(hex, "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f");
	cr_assert_eq(tunnel_pubkey_norm("zz", hex), -EINVAL);
	cr_assert_eq(tunnel_pubkey_norm("", hex), -EINVAL);
	cr_assert_eq(
		tunnel_pubkey_norm(
			"000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1g", hex),
		-EINVAL);
}
