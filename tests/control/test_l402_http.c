// SPDX-License-Identifier: MIT
/*
 * The paid tunnel service inside natxd with an injected clock: POST /api/rathole/proxy/register
 * logic (l402_http.c), the root key file (l402_svc.c), the store side (pay_store.c) and the
 * rathole adapter (adapter_tunnel.c) including selection with and without payment allowed.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "adapter_tunnel.h"
#include "l402_http.h"
#include "l402_svc.h"
#include "natx/err.h"
#include "pay_codec.h"
#include "pay_err.h"
#include "pay_store.h"
#include "select.h"
#include "tclock.h"

static struct tclock clk;
static struct natx_config cfg;
static struct store st;
static struct l402_svc ps;
static struct l402_http_reply rep;
static char dir[64];

static const char *no_env(const char *name)
{
	return NULL;
}

static void setup(void)
{
	struct config_cli cli = { 0 };
	char db[128], err[STORE_ERR_MAX];

	tclock_init(&clk);
	strcpy(dir, "/tmp/natx-l402-http-XXXXXX");
	cr_assert_not_null(mkdtemp(dir));
	cli.state_dir = dir;
	cr_assert_eq(config_build(&cfg, &cli, no_env, err), 0, "%s", err);
	cfg.enable_rathole = true;
	strcpy(cfg.rathole_server_address, "192.0.2.7:2333");
	cfg.rathole_port_min = 41000;
	cfg.rathole_port_max = 41001;
	cfg.rathole_token_duration_s = 600;
	snprintf(db, sizeof(db), "%s/natx.db", dir);
	cr_assert_eq(store_open(&st, db, true, err), 0, "%s", err);
	cr_assert_eq(l402_svc_open(&ps, dir, &st, &clk.c, &cfg, err), 0, "%s", err);
}

static void teardown(void)
{
	char cmd[160];

	cJSON_Delete(rep.body);
	rep.body = NULL;
	l402_svc_close(&ps);
	store_close(&st);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	cr_assert_eq(system(cmd), 0);
}

TestSuite(l402_http, .init = setup, .fini = teardown, .timeout = 20);

static void post(const char *authz, const char *body)
{
	cJSON_Delete(rep.body);
	l402_http_register(&ps, "ip:192.0.2.1", authz, body, strlen(body), false, &rep);
	cr_assert_not_null(rep.body);
}

static const char *jstr(const char *k)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(rep.body, k);

	return cJSON_IsString(v) ? v->valuestring : "";
}

static double jnum(const char *k)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(rep.body, k);

	return cJSON_IsNumber(v) ? v->valuedouble : -1;
}

static const char *ecode(void)
{
	const cJSON *c = cJSON_GetObjectItem(cJSON_GetObjectItem(rep.body, "error"), "code");

	return cJSON_IsString(c) ? c->valuestring : "ok";
}

static const char *emsg(void)
{
	const cJSON *c = cJSON_GetObjectItem(cJSON_GetObjectItem(rep.body, "error"), "message");

	return cJSON_IsString(c) ? c->valuestring : "";
}

/* A 402 for @node; returns the macaroon (b64) and payment hash in the given buffers. */
static void offer(const char *node, const char *type, char *mac, size_t maclen, uint8_t hash[32])
{
	char body[256], want[256];

	snprintf(body, sizeof(body), "{\"service_type\":\"%s\",\"node_id\":\"%s\"}", type, node);
	post(NULL, body);
	cr_assert_eq(rep.status, 402);
	cr_assert_str_eq(ecode(), "payment_required");
	snprintf(mac, maclen, "%s", jstr("macaroon"));
	cr_assert_eq(hex_decode(hash, 32, jstr("payment_hash"), 64), 0);
	snprintf(want, sizeof(want), "L402 macaroon=\"%s\", invoice=\"", mac);
	cr_assert(!strncmp(rep.www_l402, want, strlen(want)), "%s", rep.www_l402);
	cr_assert(!strncmp(rep.www_lsat, "LSAT macaroon=", 14));
	cr_assert(strstr(rep.www_l402, jstr("invoice")));
	cr_assert(!strncmp(jstr("invoice"), "lnbcrt", 6));
	cr_assert_eq(cJSON_IsFalse(cJSON_GetObjectItem(rep.body, "real_money")), true);
}

/* The Authorization value for @mac with the backend's preimage of @hash (XOR @flip). */
static void authz_for(char *out, size_t len, const char *mac, const uint8_t hash[32], int flip)
{
	struct pay_invoice inv;
	char pre[65];

	cr_assert_eq(pay_backend_invoice_lookup(ps.be, hash, &inv), 0);
	inv.preimage[31] ^= (uint8_t)flip;
	hex_encode(pre, inv.preimage, 32);
	snprintf(out, len, "L402 %s:%s", mac, pre);
}

static void paid(const char *node, const char *type, char *authz, size_t len, char *mac)
{
	uint8_t hash[32];

	offer(node, type, mac, PAY_MAC_B64_MAX, hash);
	cr_assert_eq(pay_backend_invoice_settle(ps.be, hash), 0);
	authz_for(authz, len, mac, hash, 0);
}

Test(l402_http, disabled_and_bad_requests)
{
	cfg.enable_rathole = false;
	post(NULL, "{\"service_type\":\"tcp\",\"node_id\":\"n\"}");
	cr_assert_eq(rep.status, 503);
	cr_assert_eq(ps.refused[L402_R_DISABLED], 1);
	cfg.enable_rathole = true;

	static const char *const bad[] = {
		"",
		"[]",
		"{\"service_type\":\"tcp\"}",
		"{\"service_type\":\"sctp\",\"node_id\":\"n\"}",
		"{\"service_type\":\"tcp\",\"node_id\":\"\"}",
		"{\"service_type\":\"tcp\",\"node_id\":\"a b\"}",
		"{\"service_type\":\"tcp\",\"node_id\":\"n\",\"local_addr\":5}",
		"{\"service_type\":\"tcp\",\"node_id\":\"n\",\"service_name\":\"x/y\"}",
	};
	for (unsigned i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		post("L402 abc:00", bad[i]);
		cr_assert_eq(rep.status, 400, "%s", bad[i]);
		cr_assert_str_eq(ecode(), "bad_request");
	}
	cr_assert_eq(ps.refused[L402_R_BAD_REQUEST], sizeof(bad) / sizeof(bad[0]));
	cJSON_Delete(rep.body);
	l402_http_register(&ps, NULL, NULL, "{}", 2, true, &rep);
	cr_assert_eq(rep.status, 413);
	cr_assert_eq(ps.challenges, 0, "no offer for a bad request");
}

Test(l402_http, unpaid_then_paid_then_idempotent)
{
	char mac[PAY_MAC_B64_MAX], authz[4096];
	uint8_t hash[32];

	offer("node-a", "tcp", mac, sizeof(mac), hash);
	cr_assert_eq(ps.challenges, 1);
	/* right preimage (the test reads it from the backend), invoice not settled */
	authz_for(authz, sizeof(authz), mac, hash, 0);
	post(authz, "{\"service_type\":\"tcp\",\"node_id\":\"node-a\"}");
	cr_assert_eq(rep.status, 402);
	cr_assert_str_eq(emsg(), "invoice not paid");
	cr_assert_eq(ps.refused[L402_R_UNPAID], 1);
	cr_assert_eq(ps.challenges, 2, "a refusal with 402 carries a fresh offer");

	cr_assert_eq(pay_backend_invoice_settle(ps.be, hash), 0);
	post(authz,
	     "{\"service_type\":\"tcp\",\"node_id\":\"node-a\",\"local_addr\":\"10.0.0.2:80\"}");
	cr_assert_eq(rep.status, 200, "%s", cJSON_PrintUnformatted(rep.body));
	cr_assert_str_eq(jstr("proxy_address"), "192.0.2.7:41000");
	cr_assert_str_eq(jstr("server_address"), "192.0.2.7:2333");
	cr_assert_eq(jnum("expires_at"), 1700000000 + 600);
	cr_assert_eq(jnum("max_bytes"), 1024.0 * 1024 * 1024);
	cr_assert_str_eq(cJSON_GetObjectItem(cJSON_GetObjectItem(rep.body, "credential"), "token")
				 ->valuestring,
			 mac);
	cr_assert_eq(ps.registrations, 1);

	/* replay: same registration, nothing new stored */
	clk.wall += 10;
	post(authz, "{\"service_type\":\"tcp\",\"node_id\":\"node-a\"}");
	cr_assert_eq(rep.status, 200);
	cr_assert_eq(jnum("public_port"), 41000);
	cr_assert_eq(ps.registrations, 1);

	/* wrong preimage -> 401; a udp request with a tcp token -> 403 */
	authz_for(authz, sizeof(authz), mac, hash, 1);
	post(authz, "{\"service_type\":\"tcp\",\"node_id\":\"node-a\"}");
	cr_assert_eq(rep.status, 401);
	cr_assert_str_eq(ecode(), "authentication_failed");
	cr_assert_eq(ps.refused[L402_R_PREIMAGE], 1);
	authz_for(authz, sizeof(authz), mac, hash, 0);
	post(authz, "{\"service_type\":\"udp\",\"node_id\":\"node-a\"}");
	cr_assert_eq(rep.status, 403);
	cr_assert_eq(ps.refused[L402_R_SERVICE], 1);
}

Test(l402_http, tampered_expired_revoked)
{
	char mac[PAY_MAC_B64_MAX], authz[4096], bad[4096], full[PAY_HEX32_LEN];
	uint8_t raw[1024];
	long n;
	char *cap;

	paid("node-a", "tcp", authz, sizeof(authz), mac);
	/* flip the capability caveat tcp -> udp: the HMAC chain no longer matches */
	n = b64_decode(raw, sizeof(raw), mac, strlen(mac));
	cr_assert_gt(n, 0);
	cap = memmem(raw, (size_t)n, "tunnel_capabilities=tcp", 23);
	cr_assert_not_null(cap);
	memcpy(cap + 20, "udp", 3);
	b64_encode(bad, sizeof(bad) - 70, raw, (size_t)n, 0);
	snprintf(bad + strlen(bad), 70, "%s", strchr(authz, ':'));
	memmove(bad + 5, bad, strlen(bad) + 1);
	memcpy(bad, "L402 ", 5);
	post(bad, "{\"service_type\":\"udp\",\"node_id\":\"node-a\"}");
	cr_assert_eq(rep.status, 401);
	cr_assert_eq(ps.refused[L402_R_SIGNATURE], 1);

	/* expired: 600 s later the same paid credential buys nothing */
	clk.wall += 600;
	post(authz, "{\"service_type\":\"tcp\",\"node_id\":\"node-a\"}");
	cr_assert_eq(rep.status, 402);
	cr_assert_str_eq(emsg(), "token expired");
	cr_assert_eq(ps.refused[L402_R_EXPIRED], 1);

	/* a registered token, then revoked */
	clk.wall -= 600;
	post(authz, "{\"service_type\":\"tcp\",\"node_id\":\"node-a\"}");
	cr_assert_eq(rep.status, 200);
	cr_assert_eq(pay_store_token_revoke(&st, jstr("token_id"), clk.wall, full), 0);
	post(authz, "{\"service_type\":\"tcp\",\"node_id\":\"node-a\"}");
	cr_assert_eq(rep.status, 402);
	cr_assert_str_eq(emsg(), "token revoked");
	cr_assert_eq(ps.refused[L402_R_REVOKED], 1);
	cr_assert_eq(pay_store_token_revoke(&st, "zz", clk.wall, full), -EINVAL);
	cr_assert_eq(pay_store_token_revoke(&st, "0123456789", clk.wall, full), -ENOENT);
}

Test(l402_http, port_range_exhausted_then_reused_after_expiry)
{
	char mac[PAY_MAC_B64_MAX], authz[3][4096];

	for (int i = 0; i < 3; i++) {
		char node[16];

		snprintf(node, sizeof(node), "node-%d", i);
		paid(node, "udp", authz[i], sizeof(authz[i]), mac);
	}
	post(authz[0], "{\"service_type\":\"udp\",\"node_id\":\"node-0\"}");
	cr_assert_eq(jnum("public_port"), 41000);
	post(authz[1], "{\"service_type\":\"udp\",\"node_id\":\"node-1\"}");
	cr_assert_eq(jnum("public_port"), 41001);
	post(authz[2], "{\"service_type\":\"udp\",\"node_id\":\"node-2\"}");
	cr_assert_eq(rep.status, 503);
	cr_assert_str_eq(ecode(), "limit_reached");
	cr_assert_eq(ps.refused[L402_R_LIMIT], 1);
	cr_assert_eq(ps.registrations, 2);
	/* once the first two have expired, their ports go to new registrations */
	clk.wall += 600;
	paid("node-3", "udp", authz[2], sizeof(authz[2]), mac);
	post(authz[2], "{\"service_type\":\"udp\",\"node_id\":\"node-3\"}");
	cr_assert_eq(rep.status, 200);
	cr_assert_eq(jnum("public_port"), 41000);
}

Test(l402_http, offers_rate_limited_per_client)
{
	const char *body = "{\"service_type\":\"tcp\",\"node_id\":\"n\"}";

	cfg.rathole_offer_rate = 1;
	cfg.rathole_offer_burst = 2;
	post(NULL, body);
	cr_assert_eq(rep.status, 402);
	post(NULL, body);
	cr_assert_eq(rep.status, 402);
	post(NULL, body);
	cr_assert_eq(rep.status, 429);
	cr_assert_str_eq(ecode(), "rate_limited");
	cr_assert_eq(ps.refused[L402_R_RATE_LIMITED], 1);
	cr_assert_eq(ps.challenges, 2, "no invoice for a limited request");
	/* another client is not affected; the first one refills at 1/s */
	cJSON_Delete(rep.body);
	l402_http_register(&ps, "ip:192.0.2.2", NULL, body, strlen(body), false, &rep);
	cr_assert_eq(rep.status, 402);
	clk.now += 1000;
	post(NULL, body);
	cr_assert_eq(rep.status, 402);
}

Test(l402_http, root_key_file_persists_and_is_guarded)
{
	char path[128], mac[PAY_MAC_B64_MAX], authz[4096], err[256];
	uint8_t hash[32];
	struct stat sb;

	snprintf(path, sizeof(path), "%s/%s", dir, L402_SVC_KEY_FILE);
	cr_assert_eq(stat(path, &sb), 0);
	cr_assert_eq(sb.st_mode & 0777, 0600);
	cr_assert_eq(sb.st_size, 32);
	offer("node-a", "tcp", mac, sizeof(mac), hash);
	authz_for(authz, sizeof(authz), mac, hash, 0);
	/* a restarted natxd (same root key) still verifies the token: the signature passes and
	 * only the invoice, forgotten by the new regtest backend, is missing */
	l402_svc_close(&ps);
	cr_assert_eq(l402_svc_open(&ps, dir, &st, &clk.c, &cfg, err), 0, "%s", err);
	post(authz, "{\"service_type\":\"tcp\",\"node_id\":\"node-a\"}");
	cr_assert_eq(rep.status, 402);
	cr_assert_str_eq(emsg(), "invoice not paid");
	/* a key file others can read is refused */
	l402_svc_close(&ps);
	cr_assert_eq(chmod(path, 0644), 0);
	cr_assert_eq(l402_svc_open(&ps, dir, &st, &clk.c, &cfg, err), -EACCES);
	cr_assert(strstr(err, "refused"), "%s", err);
	cr_assert_eq(chmod(path, 0600), 0);
	cr_assert_eq(l402_svc_open(&ps, dir, &st, &clk.c, &cfg, err), 0, "%s", err);
}

Test(l402_http, rathole_adapter_and_selection)
{
	char mac_a[PAY_MAC_B64_MAX], mac_b[PAY_MAC_B64_MAX], authz[4096], full[PAY_HEX32_LEN];
	struct svc_request req = { .target = "node-a", .allow_payment = true };
	struct svc_params p = { .breaker_failures = 5,
				.breaker_cooldown_ms = 1000,
				.retry_max = 0,
				.retry_base_ms = 1,
				.retry_max_ms = 1,
				.health_window_ms = 60000 };
	struct svc_conn_info ci;
	struct svc_mgr mgr;
	struct tsvc p2p;
	struct svc *used, *rh;

	svc_mgr_init(&mgr, &clk.c, &p);
	tsvc_init(&p2p, &clk, "libp2p", SVC_CAP_RELAY | SVC_CAP_TCP);
	p2p.reach = false; /* libp2p knows no way to these nodes */
	cr_assert_eq(svc_register(&mgr, &p2p.ops, &p2p), 0);
	cr_assert_eq(tunnel_adapter_register(&mgr, &st, &clk.c, &cfg, &ps), 0);
	rh = svc_find(&mgr, "rathole");
	cr_assert_not_null(rh);
	cr_assert_eq(rh->ops->capabilities(rh->ctx),
		     SVC_CAP_RELAY | SVC_CAP_TCP | SVC_CAP_UDP | SVC_CAP_PAID);
	cr_assert(rh->ops->operational(rh->ctx));
	cr_assert(!rh->ops->can_reach(rh->ctx, "node-a"));
	cr_assert_eq(rh->ops->connect(rh->ctx, &req, &ci), -NATX_E_NOT_FOUND);

	paid("node-a", "tcp", authz, sizeof(authz), mac_a);
	post(authz, "{\"service_type\":\"tcp\",\"node_id\":\"node-a\"}");
	cr_assert_eq(rep.status, 200);
	paid("node-b", "udp", authz, sizeof(authz), mac_b);
	post(authz, "{\"service_type\":\"udp\",\"node_id\":\"node-b\"}");
	cr_assert_eq(rep.status, 200);
	cr_assert(rh->ops->can_reach(rh->ctx, "node-a"));

	/* libp2p preferred, cannot reach: falls to rathole when payment is allowed */
	req.prefer_libp2p = true;
	cr_assert_eq(select_connect(&mgr, &req, &ci, &used), 0);
	cr_assert_str_eq(used->ops->type, "rathole");
	cr_assert_str_eq(ci.traversal_type, "rathole");
	cr_assert_str_eq(ci.proxy_address, "192.0.2.7:41000");
	cr_assert_str_eq(ci.auth_token, mac_a);
	cr_assert_eq(ci.expires_at, 1700000000 + 600);
	req.allow_payment = false;
	cr_assert_eq(select_connect(&mgr, &req, &ci, &used), -NATX_E_PAYMENT);
	req.allow_payment = true;
	req.need_caps = SVC_CAP_UDP;
	cr_assert_eq(rh->ops->connect(rh->ctx, &req, &ci), -NATX_E_NOT_FOUND);
	req.need_caps = 0;

	/* revoked or expired -> payment required; other nodes unaffected */
	cr_assert_eq(pay_store_token_revoke(&st,
					    cJSON_GetObjectItem(rep.body, "token_id")->valuestring,
					    clk.wall, full),
		     0);
	req.target = "node-b";
	cr_assert_eq(rh->ops->connect(rh->ctx, &req, &ci), -NATX_E_PAYMENT);
	/* refusals for node-b never open the breaker: node-a still selectable afterwards */
	for (int i = 0; i < 10; i++) {
		cr_assert_eq(select_connect(&mgr, &req, &ci, &used), -NATX_E_PAYMENT);
	}
	req.target = "node-a";
	cr_assert_eq(select_connect(&mgr, &req, &ci, &used), 0);
	cr_assert_str_eq(ci.auth_token, mac_a);
	clk.wall += 600;
	cr_assert_eq(rh->ops->connect(rh->ctx, &req, &ci), -NATX_E_PAYMENT);
	svc_mgr_cleanup(&mgr);
}

static const char *rathole_env(const char *name)
{
	if (!strcmp(name, "RATHOLE_SERVER_ADDRESS")) {
		return "[2001:db8::1]:2444";
	}
	if (!strcmp(name, "RATHOLE_CLIENT_ADDRESS")) {
		return "relay.example:2444";
	}
	if (!strcmp(name, "RATHOLE_CONFIG_FILE_NAME")) {
		return "/etc/natx/tunnel-env.toml";
	}
	return NULL;
}

Test(l402_http, rathole_keys_env_over_file_and_public_host)
{
	struct natx_config c;
	char err[CONFIG_ERR_MAX], host[CONFIG_STR_MAX];

	config_defaults(&c, no_env);
	cr_assert_eq(config_parse_string(&c, "t.conf",
					 "[rathole]\nserver_address = 198.51.100.9:2333\n"
					 "config_file = /etc/natx/tunnel.toml\nprice_msat = 1000\n",
					 err),
		     0, "%s", err);
	cr_assert_str_eq(c.rathole_server_address, "198.51.100.9:2333");
	cr_assert_eq(c.rathole_price_msat, 1000);
	l402_svc_public_host(&c, host, sizeof(host));
	cr_assert_str_eq(host, "198.51.100.9");
	cr_assert_neq(config_parse_string(&c, "t.conf", "[rathole]\nconfig_file = rel\n", err), 0);
	cr_assert(strstr(err, "t.conf:2"), "%s", err);

	/* the environment beats the file, as for every natxd key */
	{
		struct config_cli cli = { .config_file = NULL, .state_dir = dir };
		FILE *f;
		char path[128];

		snprintf(path, sizeof(path), "%s/r.conf", dir);
		f = fopen(path, "w");
		cr_assert_not_null(f);
		fputs("[rathole]\nserver_address = 198.51.100.9:2333\nport_min = 50\n"
		      "port_max = 60\n",
		      f);
		fclose(f);
		cli.config_file = path;
		cr_assert_eq(config_build(&c, &cli, rathole_env, err), 0, "%s", err);
		cr_assert_str_eq(c.rathole_server_address, "[2001:db8::1]:2444");
		cr_assert_str_eq(c.rathole_client_address, "relay.example:2444");
		cr_assert_str_eq(c.rathole_config_file, "/etc/natx/tunnel-env.toml");
		cr_assert_eq(c.rathole_port_min, 50);
		l402_svc_public_host(&c, host, sizeof(host));
		cr_assert_str_eq(host, "2001:db8::1");
		f = fopen(path, "w");
		cr_assert_not_null(f);
		fputs("[rathole]\nport_min = 60\nport_max = 50\n", f);
		fclose(f);
		cr_assert_eq(config_build(&c, &cli, rathole_env, err), -NATX_E_CONFIG);
		cr_assert(strstr(err, "port_max"), "%s", err);
	}
}
