// SPDX-License-Identifier: MIT
/*
 * The paid tunnel service ("rathole") as a natxd service adapter (control/adapter_tunnel.h).
 * It answers from SQLite only: nodes that offer a tunnel (can_reach) and the registration a
 * node bought with L402 (connect). It opens no connection itself; the tunnel data plane serves
 * the proxy address it returns.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "adapter_tunnel.h"
#include "tunnel_sup.h"
#include "l402_svc.h"
#include "natx/err.h"
#include "natx/log.h"
#include "pay_store.h"

#define MOD "rathole"

struct tunnel_adapter {
	struct store *st; /* borrowed */
	const struct clock *clk; /* borrowed */
	const struct natx_config *cfg; /* borrowed */
	struct l402_svc *ps; /* borrowed, for the backend name */
};

static unsigned tunnel_caps(void *ctx)
{
	return SVC_CAP_RELAY | SVC_CAP_TCP | SVC_CAP_UDP | SVC_CAP_PAID;
}

static bool tunnel_can_reach(void *ctx, const char *target)
{
	struct tunnel_adapter *t = ctx;
	struct store_node n;

	return store_node_get(t->st, target, &n) == 0 && n.offers_proxy;
}

static int tunnel_connect(void *ctx, const struct svc_request *req, struct svc_conn_info *out)
{
	struct tunnel_adapter *t = ctx;
	uint64_t now = t->clk->wall_s(t->clk);
	char host[CONFIG_STR_MAX];
	struct pay_reg *g = malloc(sizeof(*g));
	int rc;

	if (!g) {
		return -ENOMEM;
	}
	rc = pay_store_reg_by_node(t->st, req->target, g);
	if (rc) {
		pr_info(MOD, "connect %.64s: %s", req->target,
			rc == -ENOENT ? "no tunnel registration" : "database error");
		rc = rc == -ENOENT ? -NATX_E_NOT_FOUND : -EIO;
		goto free_reg;
	}
	if (g->revoked || strcmp(g->state, "active")) {
		/*
		 * Payment required, as the HTTP endpoint answers 402 for a revoked token: buying
		 * a new tunnel is the way back. Not -NATX_E_AUTH, which counts against the
		 * service's circuit breaker and so would let one node's revoked token shut the
		 * service for every other node.
		 */
		pr_warn(MOD, "connect %.64s refused: token %.16s… revoked", req->target,
			g->token_id);
		rc = -NATX_E_PAYMENT;
		goto free_reg;
	}
	if (g->expires_at && g->expires_at <= now) {
		pr_warn(MOD, "connect %.64s refused: registration expired at %llu", req->target,
			(unsigned long long)g->expires_at);
		rc = -NATX_E_PAYMENT;
		goto free_reg;
	}
	if (((req->need_caps & SVC_CAP_TCP) && strcmp(g->proto, "tcp")) ||
	    ((req->need_caps & SVC_CAP_UDP) && strcmp(g->proto, "udp"))) {
		pr_info(MOD, "connect %.64s: the registered service is %s", req->target, g->proto);
		rc = -NATX_E_NOT_FOUND;
		goto free_reg;
	}
	if (strlen(g->macaroon) >= sizeof(out->auth_token)) {
		rc = -EIO;
		goto free_reg;
	}
	memset(out, 0, sizeof(*out));
	l402_svc_public_host(t->cfg, host, sizeof(host));
	snprintf(out->target_node_id, sizeof(out->target_node_id), "%s", g->node_id);
	snprintf(out->traversal_type, sizeof(out->traversal_type), "rathole");
	snprintf(out->proxy_address, sizeof(out->proxy_address),
		 strchr(host, ':') ? "[%.100s]:%u" : "%.100s:%u", host, g->public_port);
	memcpy(out->auth_token, g->macaroon, strlen(g->macaroon) + 1); /* length checked above */
	out->expires_at = g->expires_at;
	out->payment_sats = 0; /* paid once at registration (payment_receipts), not per connect */
	rc = 0;
free_reg:
	free(g);
	return rc;
}

/* tunnel_live - live registrations (active, not expired), or -EIO. */
static int tunnel_live(struct tunnel_adapter *t)
{
	sqlite3_stmt *q;
	int n = -EIO;

	if (sqlite3_prepare_v2(t->st->db,
			       "SELECT count(*) FROM registrations WHERE state = 'active' AND"
			       " (expires_at = 0 OR expires_at IS NULL OR expires_at > ?)",
			       -1, &q, NULL) != SQLITE_OK) {
		return -EIO;
	}
	sqlite3_bind_int64(q, 1, (sqlite3_int64)t->clk->wall_s(t->clk));
	if (sqlite3_step(q) == SQLITE_ROW) {
		n = sqlite3_column_int(q, 0);
	}
	sqlite3_finalize(q);
	return n;
}

static int tunnel_proxies(void *ctx, cJSON *array)
{
	struct tunnel_adapter *t = ctx;
	char host[CONFIG_STR_MAX];
	cJSON *o = cJSON_CreateObject();

	if (!o) {
		return -ENOMEM;
	}
	l402_svc_public_host(t->cfg, host, sizeof(host));
	cJSON_AddItemToArray(array, o);
	cJSON_AddStringToObject(o, "server_address", t->cfg->rathole_server_address);
	cJSON_AddStringToObject(o, "public_host", host);
	cJSON_AddNumberToObject(o, "port_min", t->cfg->rathole_port_min);
	cJSON_AddNumberToObject(o, "port_max", t->cfg->rathole_port_max);
	cJSON_AddNumberToObject(o, "connection_limit", t->cfg->rathole_max_connections);
	cJSON_AddNumberToObject(o, "price_msat", t->cfg->rathole_price_msat);
	cJSON_AddNumberToObject(o, "live_registrations", tunnel_live(t));
	cJSON_AddStringToObject(o, "payment_backend", t->ps->be->ops->name);
	cJSON_AddBoolToObject(o, "real_money", t->ps->be->ops->moves_real_money);
	return 0;
}

static bool tunnel_operational(void *ctx)
{
	struct tunnel_adapter *t = ctx;

	return t->cfg->enable_rathole && t->st->db && t->ps->be;
}

static void tunnel_status(void *ctx, struct svc_status *out)
{
	struct tunnel_adapter *t = ctx;

	out->operational = tunnel_operational(ctx);
	out->active_connections = 0; /* counted by the tunnel data plane, not natxd */
	snprintf(out->detail, sizeof(out->detail),
		 "%d live registration(s), connection limit %u, payments: %s%s", tunnel_live(t),
		 t->cfg->rathole_max_connections, t->ps->be->ops->name,
		 t->ps->be->ops->moves_real_money ? "" : " (no real money)");
}

static void tunnel_destroy(void *ctx)
{
	tunnel_paid_source(NULL, NULL); /* no more paid registrations pushed to the engine */
	free(ctx);
}

const struct svc_ops tunnel_adapter_ops = {
	.type = "rathole",
	.capabilities = tunnel_caps,
	.can_reach = tunnel_can_reach,
	.connect = tunnel_connect,
	.available_proxies = tunnel_proxies,
	.operational = tunnel_operational,
	.status = tunnel_status,
	.destroy = tunnel_destroy,
};

int tunnel_adapter_register(struct svc_mgr *mgr, struct store *st, const struct clock *clk,
			    const struct natx_config *cfg, struct l402_svc *ps)
{
	struct tunnel_adapter *t = calloc(1, sizeof(*t));
	int rc;

	if (!t) {
		return -ENOMEM;
	}
	*t = (struct tunnel_adapter){ .st = st, .clk = clk, .cfg = cfg, .ps = ps };
	rc = svc_register(mgr, &tunnel_adapter_ops, t);
	if (rc) {
		free(t);
		return rc;
	}
	/* Registrations it sells become engine services (tunnel_paid.c). */
	tunnel_paid_source(st, ps);
	return 0;
}
