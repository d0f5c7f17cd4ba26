// SPDX-License-Identifier: MIT
/* POST /api/rathole/proxy/register: L402 challenge, verification, registration (l402_http.h). */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "crypto.h"
#include "l402_http.h"
#include "natx/ctl_proto.h"
#include "natx/err.h"
#include "natx/log.h"
#include "pay_codec.h"
#include "pay_err.h"
#include "pay_store.h"

#define MOD "l402"

/* What the body asks for. */
struct l402_http_req {
	const char *service_type; /* "tcp" / "udp" */
	const char *node_id;
	const char *local_addr; /* "" when absent */
	const char *service_name; /* NULL when absent */
};

/* l402_http_error - {"error":{"code","message"}} with the HTTP status of @err's code. */
static void l402_http_error(struct l402_http_reply *out, int err, const char *msg)
{
	const struct ctl_errmap *m = ctl_err_by_err(err);
	cJSON *e;

	out->status = (unsigned)m->http_status;
	out->body = cJSON_CreateObject();
	e = out->body ? cJSON_AddObjectToObject(out->body, "error") : NULL;
	if (e) {
		cJSON_AddStringToObject(e, "code", m->code);
		cJSON_AddStringToObject(e, "message", msg);
	}
}

/* l402_http_refuse - a refusal: log line, counter, error body. */
static void l402_http_refuse(struct l402_svc *ps, struct l402_http_reply *out, enum l402_reason why,
			     int err, const char *node, const char *msg)
{
	ps->refused[why]++;
	pr_warn(MOD, "register refused (node %.64s): %s [%s]", node && node[0] ? node : "?", msg,
		l402_reason_name(why));
	l402_http_error(out, err, msg);
}

static bool l402_name_ok(const char *s, size_t max, const char *extra)
{
	size_t n = strlen(s);

	if (!n || n >= max) {
		return false;
	}
	for (size_t i = 0; i < n; i++) {
		if (!isalnum((unsigned char)s[i]) && !strchr(extra, s[i])) {
			return false;
		}
	}
	return true;
}

/* l402_http_parse - validate the body into @r (strings point into @root). NULL or a reason. */
static const char *l402_http_parse(const cJSON *root, struct l402_http_req *r)
{
	const cJSON *t = cJSON_GetObjectItemCaseSensitive(root, "service_type");
	const cJSON *n = cJSON_GetObjectItemCaseSensitive(root, "node_id");
	const cJSON *l = cJSON_GetObjectItemCaseSensitive(root, "local_addr");
	const cJSON *s = cJSON_GetObjectItemCaseSensitive(root, "service_name");

	if (!cJSON_IsObject(root)) {
		return "body must be a JSON object";
	}
	if (!cJSON_IsString(t) ||
	    (strcmp(t->valuestring, "tcp") && strcmp(t->valuestring, "udp"))) {
		return "service_type must be tcp or udp";
	}
	if (!cJSON_IsString(n) || !l402_name_ok(n->valuestring, CTL_TARGET_MAX, "._:-@+=/")) {
		return "node_id must be 1..255 bytes of letters, digits and ._:-@+=/";
	}
	if (l && (!cJSON_IsString(l) || strlen(l->valuestring) >= PAY_LOCAL_MAX ||
		  strpbrk(l->valuestring, "\"\\ \t\r\n"))) {
		return "local_addr must be a host:port string of at most 127 bytes";
	}
	if (s && (!cJSON_IsString(s) || !l402_name_ok(s->valuestring, PAY_NAME_MAX, "._-"))) {
		return "service_name must be 1..63 bytes of letters, digits and ._-";
	}
	r->service_type = t->valuestring;
	r->node_id = n->valuestring;
	r->local_addr = l ? l->valuestring : "";
	r->service_name = s ? s->valuestring : NULL;
	return NULL;
}

/*
 * l402_http_challenge - a fresh offer into @out: 402, both WWW-Authenticate values, and the
 * invoice in the body. @msg is the message of the error object.
 */
static void l402_http_challenge(struct l402_svc *ps, struct l402_http_reply *out,
				const struct l402_http_req *r, const char *msg)
{
	struct l402_offer *o = calloc(1, sizeof(*o));
	const struct natx_config *c = ps->cfg;
	char hash[PAY_HEX32_LEN], *b64 = NULL;
	size_t blen;
	int rc;

	/* Each offer holds an invoice in the backend's bounded table: limit them per client. */
	if (ps->rl.rate != c->rathole_offer_rate || ps->rl.burst != c->rathole_offer_burst) {
		ratelimit_init(&ps->rl, c->rathole_offer_rate, c->rathole_offer_burst);
	}
	if (ps->client && ratelimit_take(&ps->rl, ps->client, ps->clk->now_ms(ps->clk))) {
		l402_http_refuse(ps, out, L402_R_RATE_LIMITED, -NATX_E_RATE_LIMITED, r->node_id,
				 "too many invoices for this client: rathole.offer_rate");
		free(o);
		return;
	}
	rc = o ? l402_svc_offer(ps, r->service_type, o) : -ENOMEM;
	if (rc) {
		l402_http_refuse(ps, out, rc == -NATX_E_LIMIT ? L402_R_LIMIT : L402_R_INTERNAL,
				 rc == -NATX_E_LIMIT ? -NATX_E_LIMIT : -EIO, r->node_id,
				 rc == -NATX_E_LIMIT ? "invoice table full, try again later" :
						       "cannot create an invoice");
		free(o);
		return;
	}
	blen = b64_encoded_len(o->mac_len, 0) + 1;
	b64 = malloc(blen);
	if (!b64 || b64_encode(b64, blen, o->mac, o->mac_len, 0) < 0) {
		l402_http_refuse(ps, out, L402_R_INTERNAL, -EIO, r->node_id, "out of memory");
		goto free_offer;
	}
	l402_http_error(out, -NATX_E_PAYMENT, msg);
	snprintf(out->www_l402, sizeof(out->www_l402), "%s", o->header);
	snprintf(out->www_lsat, sizeof(out->www_lsat), "%s", o->header_lsat);
	hex_encode(hash, o->invoice.payment_hash, 32);
	if (out->body) {
		cJSON_AddStringToObject(out->body, "invoice", o->invoice.bolt11);
		cJSON_AddStringToObject(out->body, "payment_hash", hash);
		cJSON_AddNumberToObject(out->body, "amount_msat", (double)o->invoice.amount_msat);
		cJSON_AddStringToObject(out->body, "macaroon", b64);
		cJSON_AddStringToObject(out->body, "backend", ps->be->ops->name);
		cJSON_AddBoolToObject(out->body, "real_money", ps->be->ops->moves_real_money);
	}
	pr_info(MOD, "402 for node %.64s: %s tunnel, invoice %s, %llu msat", r->node_id,
		r->service_type, hash, (unsigned long long)o->invoice.amount_msat);
free_offer:
	free(b64);
	l402_offer_wipe(o);
	free(o);
}

/* l402_http_ok - 200 with registration @g. */
static void l402_http_ok(struct l402_svc *ps, struct l402_http_reply *out, const struct pay_reg *g,
			 const struct l402_grant *gr)
{
	char host[CONFIG_STR_MAX], addr[CONFIG_STR_MAX + 16];
	cJSON *o = cJSON_CreateObject(), *cred;

	out->status = 200;
	out->body = o;
	if (!o) {
		return;
	}
	l402_svc_public_host(ps->cfg, host, sizeof(host));
	snprintf(addr, sizeof(addr), strchr(host, ':') ? "[%s]:%u" : "%s:%u", host, g->public_port);
	cJSON_AddStringToObject(o, "service", g->service_name);
	cJSON_AddStringToObject(o, "service_type", g->proto);
	cJSON_AddStringToObject(o, "node_id", g->node_id);
	cJSON_AddStringToObject(o, "server_address", ps->cfg->rathole_server_address);
	cJSON_AddStringToObject(o, "public_address", addr);
	cJSON_AddStringToObject(o, "proxy_address", addr);
	cJSON_AddNumberToObject(o, "public_port", g->public_port);
	cred = cJSON_AddObjectToObject(o, "credential");
	if (cred) {
		cJSON_AddStringToObject(cred, "kind", "l402");
		cJSON_AddStringToObject(cred, "token", g->macaroon);
	}
	cJSON_AddStringToObject(o, "token_id", g->token_id);
	if (g->expires_at) {
		cJSON_AddNumberToObject(o, "expires_at", (double)g->expires_at);
	} else {
		cJSON_AddNullToObject(o, "expires_at");
	}
	if (gr) {
		cJSON_AddNumberToObject(o, "max_bytes",
					gr->max_bytes == UINT64_MAX ? 0 : (double)gr->max_bytes);
		cJSON_AddNumberToObject(o, "bandwidth_kbps", (double)gr->bandwidth_kbps);
	}
	cJSON_AddStringToObject(o, "backend", ps->be->ops->name);
	cJSON_AddBoolToObject(o, "real_money", ps->be->ops->moves_real_money);
}

/* l402_http_caveats - human summary of the grant for the tokens table. */
static void l402_http_caveats(char *out, size_t len, const char *type, const struct l402_grant *g)
{
	snprintf(out, len,
		 "service=tunnel capabilities=%s valid_until=%lld max_bytes=%llu "
		 "bandwidth_kbps=%llu",
		 type, g->valid_until == INT64_MAX ? 0LL : (long long)g->valid_until,
		 g->max_bytes == UINT64_MAX ? 0ULL : (unsigned long long)g->max_bytes,
		 (unsigned long long)g->bandwidth_kbps);
}

/* l402_http_store - register the tunnel of a verified request. */
static void l402_http_store(struct l402_svc *ps, struct l402_http_reply *out,
			    const struct l402_http_req *r, const char *authz,
			    const struct l402_grant *gr)
{
	struct l402_auth *a = malloc(sizeof(*a));
	struct pay_reg *g = calloc(1, sizeof(*g));
	char hash[PAY_HEX32_LEN], pre[PAY_HEX32_LEN], cav[PAY_CAVEATS_MAX], host[CONFIG_STR_MAX];
	struct pay_invoice inv;
	struct pay_issue is;
	int rc;

	if (!a || !g || l402_auth_parse(a, authz, strlen(authz))) {
		l402_http_refuse(ps, out, L402_R_INTERNAL, -EIO, r->node_id, "internal error");
		goto free_all;
	}
	snprintf(g->node_id, sizeof(g->node_id), "%s", r->node_id);
	snprintf(g->proto, sizeof(g->proto), "%s", r->service_type);
	snprintf(g->local_addr, sizeof(g->local_addr), "%s", r->local_addr);
	hex_encode(g->token_id, gr->id.token_id, 32);
	if (r->service_name) {
		snprintf(g->service_name, sizeof(g->service_name), "%s", r->service_name);
	} else {
		snprintf(g->service_name, sizeof(g->service_name), "t-%.16s", g->token_id);
	}
	g->expires_at = gr->valid_until == INT64_MAX ? 0 : (uint64_t)gr->valid_until;
	if (b64_encode(g->macaroon, sizeof(g->macaroon), a->mac, a->mac_len, 0) < 0) {
		l402_http_refuse(ps, out, L402_R_INTERNAL, -EIO, r->node_id, "token too large");
		goto free_all;
	}
	hex_encode(hash, gr->id.payment_hash, 32);
	hex_encode(pre, a->preimage, 32);
	memset(&inv, 0, sizeof(inv));
	pay_backend_invoice_lookup(ps->be, gr->id.payment_hash, &inv);
	l402_http_caveats(cav, sizeof(cav), r->service_type, gr);
	l402_svc_public_host(ps->cfg, host, sizeof(host));
	is = (struct pay_issue){
		.macaroon = g->macaroon,
		.payment_hash = hash,
		.preimage = pre,
		.caveats = cav,
		.amount_sats = inv.amount_msat / 1000,
		.settled_at = (uint64_t)inv.settled_at,
		.public_host = host,
		.port_min = ps->cfg->rathole_port_min,
		.port_max = ps->cfg->rathole_port_max,
		.now = ps->clk->wall_s(ps->clk),
	};
	crypto_wipe(&inv, sizeof(inv));
	rc = pay_store_register(ps->st, g, &is);
	crypto_wipe(pre, sizeof(pre));
	if (rc == -NATX_E_LIMIT) {
		l402_http_refuse(ps, out, L402_R_LIMIT, -NATX_E_LIMIT, r->node_id,
				 "no free public port in rathole.port_min..port_max");
	} else if (rc == -EEXIST) {
		l402_http_refuse(ps, out, L402_R_CONFLICT, -EEXIST, r->node_id,
				 "the node already has a live tunnel service of that name");
	} else if (rc) {
		l402_http_refuse(ps, out, L402_R_INTERNAL, -EIO, r->node_id,
				 "cannot store the registration");
	} else {
		ps->registrations++;
		pr_info(MOD, "registered %s tunnel %s for node %.64s on port %u (token %.16s…)",
			g->proto, g->service_name, g->node_id, g->public_port, g->token_id);
		l402_http_ok(ps, out, g, gr);
	}
free_all:
	if (a) {
		crypto_wipe(a, sizeof(*a));
	}
	free(a);
	free(g);
}

/* l402_http_scheme - does @authz use the L402 (or older LSAT) scheme? */
static bool l402_http_scheme(const char *authz)
{
	while (authz && (*authz == ' ' || *authz == '\t')) {
		authz++;
	}
	return authz && (!strncasecmp(authz, "L402 ", 5) || !strncasecmp(authz, "LSAT ", 5));
}

void l402_http_register(struct l402_svc *ps, const char *client, const char *authz,
			const char *body, size_t len, bool too_big, struct l402_http_reply *out)
{
	struct l402_http_req r = { 0 };
	struct l402_request req;
	struct l402_grant gr;
	struct pay_reg *have;
	const char *why;
	cJSON *root;
	int rc;

	out->status = 500;
	out->body = NULL;
	out->www_l402[0] = out->www_lsat[0] = '\0';
	ps->client = client;
	if (!ps->cfg->enable_rathole) {
		l402_http_refuse(ps, out, L402_R_DISABLED, -NATX_E_UNAVAILABLE, NULL,
				 "the tunnel service is disabled (nat_traversal.enable_rathole)");
		return;
	}
	if (too_big) {
		l402_http_refuse(ps, out, L402_R_BAD_REQUEST, -NATX_E_TOO_BIG, NULL,
				 "request body larger than 16384 bytes");
		return;
	}
	root = cJSON_ParseWithLength(body, len);
	why = l402_http_parse(root, &r);
	if (why) {
		l402_http_refuse(ps, out, L402_R_BAD_REQUEST, -NATX_E_PROTO, NULL, why);
		goto free_root;
	}
	if (!l402_http_scheme(authz)) {
		l402_http_challenge(ps, out, &r,
				    "payment required: pay the invoice, then send "
				    "Authorization: L402 <macaroon>:<preimage>");
		goto free_root;
	}
	req = (struct l402_request){
		.service = L402_SVC_SERVICE,
		.capability = r.service_type,
		.now = (int64_t)ps->clk->wall_s(ps->clk),
	};
	rc = l402_authorize_header(ps->be, authz, strlen(authz), l402_svc_root_key, ps, &req, &gr);
	if (rc) {
		enum l402_reason why_r = l402_reason_of(ps, rc);
		int http = pay_err_http(rc);
		char msg[160];

		snprintf(msg, sizeof(msg), "%s",
			 why_r == L402_R_REVOKED ? "token revoked" : pay_strerror(rc));
		if (http == 402) {
			/* paying again helps: count and log the refusal, then offer afresh */
			ps->refused[why_r]++;
			pr_warn(MOD, "register refused (node %.64s): %s [%s]", r.node_id, msg,
				l402_reason_name(why_r));
			l402_http_challenge(ps, out, &r, msg);
		} else {
			l402_http_refuse(ps, out, why_r,
					 http == 401 ? -NATX_E_AUTH :
					 http == 403 ? -EACCES :
						       -EIO,
					 r.node_id, msg);
		}
		goto free_root;
	}
	/* Paying once buys one tunnel, however often the header is presented again. */
	have = malloc(sizeof(*have));
	if (!have) {
		l402_http_refuse(ps, out, L402_R_INTERNAL, -EIO, r.node_id, "out of memory");
		goto free_root;
	}
	hex_encode(have->token_id, gr.id.token_id, 32);
	rc = pay_store_reg_by_token(ps->st, have->token_id, have);
	if (!rc) {
		l402_http_ok(ps, out, have, &gr);
	} else if (rc == -ENOENT) {
		l402_http_store(ps, out, &r, authz, &gr);
	} else {
		l402_http_refuse(ps, out, L402_R_INTERNAL, -EIO, r.node_id, "database error");
	}
	free(have);
free_root:
	cJSON_Delete(root);
}
