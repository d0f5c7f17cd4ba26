// SPDX-License-Identifier: MIT
/*
 * Paid tunnel registrations -> engine services (control/tunnel_sup.h "tunnel_paid_*").
 *
 * Once a second while the engine is up (and the paid adapter is registered), natxd compares
 * the registrations in SQLite with what it pushed: each active one becomes a server service
 * named "paid-PORT" (PORT = its public port, which the node got in the registration reply)
 * whose key is the invoice preimage and which carries the macaroon's payment hash, expiry,
 * byte quota and bandwidth (from l402_caveats_check over the stored macaroon); a revoked or
 * expired one is removed. A new engine connection (restart, re-attach) pushes everything again.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crypto.h"
#include "l402.h"
#include "l402_svc.h"
#include "macaroon.h"
#include "natx/err.h"
#include "natx/log.h"
#include "pay_backend.h"
#include "pay_codec.h"
#include "pay_store.h"
#include "tunnel_sup.h"

#define MOD "tunnel"

enum { PAID_MAX = 1024, PAID_SYNC_MS = 1000 };

static struct {
	struct store *st; /* borrowed from the adapter registration */
	struct l402_svc *ps;
	unsigned conn_gen; /* engine connection the pushed set belongs to */
	uint64_t next_ms;
	int64_t pushed[PAID_MAX]; /* registration ids running in the engine */
	unsigned npushed;
} paid;

void tunnel_paid_source(struct store *st, struct l402_svc *ps)
{
	paid.st = st;
	paid.ps = ps;
	paid.npushed = 0;
}

/* paid_find - index of registration @id in the pushed set, or -1. */
static int paid_find(int64_t id)
{
	for (unsigned i = 0; i < paid.npushed; i++) {
		if (paid.pushed[i] == id) {
			return (int)i;
		}
	}
	return -1;
}

/* paid_host - the host of rathole.server_address, where public ports are bound. */
static void paid_host(char *out, size_t len)
{
	const char *a = paid.ps->cfg->rathole_server_address, *c = strrchr(a, ':');
	size_t n = c ? (size_t)(c - a) : 0;

	snprintf(out, len, "%.*s", (int)n, a);
	if (!out[0]) {
		snprintf(out, len, "0.0.0.0");
	}
}

/* paid_hex - lower-case hex of @n bytes. */
static void paid_hex(char *out, const uint8_t *b, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		snprintf(out + 2 * i, 3, "%02x", b[i]);
	}
}

/*
 * paid_request - the tunnel.add for registration @reg_id (token @token_id, @proto, @port).
 * NULL when it cannot be served (unknown token, unpaid invoice, caveats no longer hold).
 */
static cJSON *paid_request(int64_t reg_id, const char *token_id, const char *proto, unsigned port)
{
	struct pay_reg *reg = calloc(1, sizeof(*reg));
	uint8_t *raw = malloc(PAY_MAC_B64_MAX);
	struct l402_request req = { .service = "tunnel", .capability = proto };
	char name[32], bind[300], host[256], hex[65], pre[65];
	struct pay_invoice inv = { 0 };
	struct l402_grant gr;
	struct macaroon m;
	struct l402_id id;
	cJSON *o = NULL, *l;
	long n;

	if (!reg || !raw || pay_store_reg_by_token(paid.st, token_id, reg)) {
		goto out;
	}
	n = b64_decode(raw, PAY_MAC_B64_MAX, reg->macaroon, strlen(reg->macaroon));
	req.now = (int64_t)paid.ps->clk->wall_s(paid.ps->clk);
	if (n <= 0 || macaroon_decode(&m, raw, (size_t)n) || l402_id_decode(&id, m.id, m.id_len) ||
	    l402_caveats_check(&m, &req, &gr) ||
	    pay_backend_invoice_lookup(paid.ps->be, id.payment_hash, &inv) || !inv.settled_at) {
		goto out;
	}
	snprintf(name, sizeof(name), "paid-%u", port);
	paid_host(host, sizeof(host));
	snprintf(bind, sizeof(bind), strchr(host, ':') ? "[%s]:%u" : "%s:%u", host, port);
	paid_hex(hex, id.payment_hash, 32);
	paid_hex(pre, inv.preimage, 32);
	o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "cmd", "tunnel.add");
	cJSON_AddStringToObject(o, "role", "server");
	cJSON_AddStringToObject(o, "name", name);
	cJSON_AddStringToObject(o, "type", proto);
	cJSON_AddStringToObject(o, "bind", bind);
	cJSON_AddStringToObject(o, "key_hex", pre);
	cJSON_AddNumberToObject(o, "max_conns", paid.ps->cfg->rathole_max_connections);
	cJSON_AddNumberToObject(o, "bandwidth_kbps", (double)gr.bandwidth_kbps);
	l = cJSON_AddObjectToObject(o, "l402");
	cJSON_AddStringToObject(l, "payment_hash", hex);
	cJSON_AddNumberToObject(l, "expires_at",
				gr.valid_until == INT64_MAX ? 0 : (double)gr.valid_until);
	cJSON_AddNumberToObject(l, "max_bytes",
				gr.max_bytes == UINT64_MAX ? 0 : (double)gr.max_bytes);
	crypto_wipe(pre, sizeof(pre));
	(void)reg_id;
out:
	crypto_wipe(&inv, sizeof(inv));
	free(raw);
	free(reg);
	return o;
}

/* paid_call - run @req (freed) in the engine; 0 or the error. */
static int paid_call(struct engine_sup *es, cJSON *req)
{
	cJSON *r = NULL;
	int rc = engine_sup_call(es, req, &r);

	if (rc && rc != -EEXIST && rc != -ENOENT) {
		pr_warn(MOD, "paid tunnel %s: %s",
			cJSON_GetStringValue(cJSON_GetObjectItem(req, "name")),
			engine_sup_error_text(r, natx_strerror(rc)));
	}
	cJSON_Delete(req);
	cJSON_Delete(r);
	return rc == -EEXIST ? 0 : rc;
}

int tunnel_paid_sync(struct engine_sup *es)
{
	cJSON *regs, *it;

	if (!paid.st || !paid.ps || es->state != ENGINE_UP) {
		return 0;
	}
	if (paid.conn_gen != es->conn_gen) {
		paid.conn_gen = es->conn_gen; /* a new engine runs nothing of ours yet */
		paid.npushed = 0;
	}
	regs = pay_store_regs_json(paid.st, paid.ps->clk->wall_s(paid.ps->clk));
	if (!regs) {
		return -EIO;
	}
	cJSON_ArrayForEach(it, regs)
	{
		const cJSON *id = cJSON_GetObjectItem(it, "id"),
			    *port = cJSON_GetObjectItem(it, "public_port");
		const char *state = cJSON_GetStringValue(cJSON_GetObjectItem(it, "state"));
		const char *token = cJSON_GetStringValue(cJSON_GetObjectItem(it, "token_id"));
		const char *proto = cJSON_GetStringValue(cJSON_GetObjectItem(it, "proto"));
		int64_t rid;
		int k;

		if (!cJSON_IsNumber(id) || !cJSON_IsNumber(port) || !state || !token || !proto) {
			continue;
		}
		rid = (int64_t)id->valuedouble;
		k = paid_find(rid);
		if (!strcmp(state, "active") && k < 0 && paid.npushed < PAID_MAX) {
			cJSON *req = paid_request(rid, token, proto, (unsigned)port->valuedouble);

			if (req && paid_call(es, req) == 0) {
				paid.pushed[paid.npushed++] = rid;
				pr_info(MOD, "paid tunnel %u (%s) running for registration %lld",
					(unsigned)port->valuedouble, proto, (long long)rid);
			}
		} else if (strcmp(state, "active") && k >= 0) {
			char name[32];
			cJSON *req = cJSON_CreateObject();

			snprintf(name, sizeof(name), "paid-%u", (unsigned)port->valuedouble);
			cJSON_AddStringToObject(req, "cmd", "tunnel.rm");
			cJSON_AddStringToObject(req, "role", "server");
			cJSON_AddStringToObject(req, "name", name);
			paid_call(es, req);
			paid.pushed[k] = paid.pushed[--paid.npushed];
			pr_info(MOD, "paid tunnel %s removed: registration %lld is %s", name,
				(long long)rid, state);
		}
	}
	cJSON_Delete(regs);
	return 0;
}

void tunnel_paid_tick(struct engine_sup *es)
{
	uint64_t now = es->clk->now_ms(es->clk);

	if (!paid.st || es->state != ENGINE_UP || now < paid.next_ms) {
		return;
	}
	paid.next_ms = now + PAID_SYNC_MS;
	tunnel_paid_sync(es);
}

int tunnel_paid_timeout_ms(const struct engine_sup *es)
{
	uint64_t now = es->clk->now_ms(es->clk);

	if (!paid.st || es->state != ENGINE_UP) {
		return -1;
	}
	return paid.next_ms > now ? (int)(paid.next_ms - now) : 0;
}
