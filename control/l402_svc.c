// SPDX-License-Identifier: MIT
/* natxd's payment state: root key, regtest backend, offers, counters (control/l402_svc.h). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "crypto.h"
#include "fwdspec.h"
#include "l402_svc.h"
#include "natx/err.h"
#include "natx/log.h"
#include "pay_codec.h"
#include "pay_err.h"
#include "pay_store.h"

#define MOD "l402"

static const char *const l402_reason_names[L402_R_MAX] = {
	[L402_R_BAD_REQUEST] = "bad_request",
	[L402_R_DISABLED] = "disabled",
	[L402_R_HEADER] = "header",
	[L402_R_FORMAT] = "format",
	[L402_R_SIGNATURE] = "signature",
	[L402_R_PREIMAGE] = "preimage",
	[L402_R_UNKNOWN] = "unknown",
	[L402_R_REVOKED] = "revoked",
	[L402_R_CAVEAT] = "caveat",
	[L402_R_SERVICE] = "service",
	[L402_R_EXPIRED] = "expired",
	[L402_R_QUOTA] = "quota",
	[L402_R_BANDWIDTH] = "bandwidth",
	[L402_R_UNPAID] = "unpaid",
	[L402_R_LIMIT] = "limit",
	[L402_R_CONFLICT] = "conflict",
	[L402_R_INTERNAL] = "internal",
	[L402_R_RATE_LIMITED] = "rate_limited",
};

const char *l402_reason_name(enum l402_reason r)
{
	return r < L402_R_MAX ? l402_reason_names[r] : "internal";
}

enum l402_reason l402_reason_of(const struct l402_svc *ps, int err)
{
	switch (err) {
	case -PAY_E_L402_HEADER:
		return L402_R_HEADER;
	case -PAY_E_MAC_FORMAT:
	case -PAY_E_L402_ID:
		return L402_R_FORMAT;
	case -PAY_E_MAC_SIG:
	case -PAY_E_MAC_THIRD_PARTY:
		return L402_R_SIGNATURE;
	case -PAY_E_L402_PREIMAGE:
		return L402_R_PREIMAGE;
	case -PAY_E_L402_UNKNOWN:
		return ps->last_revoked ? L402_R_REVOKED : L402_R_UNKNOWN;
	case -PAY_E_CAV_MALFORMED:
		return L402_R_CAVEAT;
	case -PAY_E_CAV_SERVICE:
	case -PAY_E_CAV_CAPABILITY:
		return L402_R_SERVICE;
	case -PAY_E_CAV_EXPIRED:
		return L402_R_EXPIRED;
	case -PAY_E_CAV_QUOTA:
		return L402_R_QUOTA;
	case -PAY_E_CAV_BANDWIDTH:
		return L402_R_BANDWIDTH;
	case -PAY_E_INVOICE_UNPAID:
		return L402_R_UNPAID;
	case -NATX_E_LIMIT:
		return L402_R_LIMIT;
	default:
		return L402_R_INTERNAL;
	}
}

/* l402_derive - HMAC-SHA256(root, label || data): per-purpose keys from the root key. */
static void l402_derive(const struct l402_svc *ps, const char *label, const uint8_t *data,
			size_t len, uint8_t out[32])
{
	uint8_t msg[64 + 32];
	size_t n = strlen(label);

	memcpy(msg, label, n);
	if (len) {
		memcpy(msg + n, data, len);
	}
	crypto_hmac_sha256(out, ps->root, sizeof(ps->root), msg, n + len);
	crypto_wipe(msg, sizeof(msg));
}

/*
 * l402_key_load - read STATE_DIR/l402-root.key, or create it (0600, O_EXCL) on first start.
 * A file of the wrong size, not a regular file, owned by someone else or readable by group or
 * others is refused rather than trusted or replaced.
 */
static int l402_key_load(const char *dir, uint8_t key[32], char *err)
{
	char path[PATH_MAX];
	struct stat sb;
	ssize_t n;
	int fd;

	if ((size_t)snprintf(path, sizeof(path), "%s/%s", dir, L402_SVC_KEY_FILE) >= sizeof(path)) {
		snprintf(err, 256, "state directory path too long");
		return -ENAMETOOLONG;
	}
	fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0 && errno == ENOENT) {
		fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
		if (fd < 0) {
			snprintf(err, 256, "%.200s: %s", path, strerror(errno));
			return -errno;
		}
		crypto_random_bytes(key, 32);
		n = write(fd, key, 32);
		if (n != 32 || fsync(fd)) {
			snprintf(err, 256, "%.200s: cannot write", path);
			close(fd);
			unlink(path);
			crypto_wipe(key, 32);
			return -EIO;
		}
		close(fd);
		pr_info(MOD, "created the L402 root key in %s (mode 0600)", path);
		return 0;
	}
	if (fd < 0) {
		snprintf(err, 256, "%.200s: %s", path, strerror(errno));
		return -errno;
	}
	if (fstat(fd, &sb) || !S_ISREG(sb.st_mode) || sb.st_size != 32 || sb.st_uid != geteuid() ||
	    (sb.st_mode & 077)) {
		snprintf(err, 256,
			 "%.120s: refused: must be a 32-byte file owned by uid %u, mode 0600", path,
			 (unsigned)geteuid());
		close(fd);
		return -EACCES;
	}
	n = read(fd, key, 32);
	close(fd);
	if (n != 32) {
		snprintf(err, 256, "%.200s: short read", path);
		crypto_wipe(key, 32);
		return -EIO;
	}
	return 0;
}

static int64_t l402_backend_clock(void *arg)
{
	const struct clock *c = arg;

	return (int64_t)c->wall_s(c);
}

int l402_svc_open(struct l402_svc *ps, const char *state_dir, struct store *st,
		  const struct clock *clk, const struct natx_config *cfg, char *err)
{
	uint8_t node_key[32];
	int rc;

	memset(ps, 0, sizeof(*ps));
	ps->st = st;
	ps->clk = clk;
	ps->cfg = cfg;
	ratelimit_init(&ps->rl, cfg->rathole_offer_rate, cfg->rathole_offer_burst);
	rc = l402_key_load(state_dir, ps->root, err);
	if (rc) {
		return rc;
	}
	l402_derive(ps, "natx-regtest-node-v1", NULL, 0, node_key);
	ps->be = pay_regtest_new(node_key, 0, l402_backend_clock, (void *)clk, &rc);
	crypto_wipe(node_key, sizeof(node_key));
	if (!ps->be) {
		snprintf(err, 256, "regtest payment backend: %s", natx_strerror(rc));
		crypto_wipe(ps->root, sizeof(ps->root));
		return rc;
	}
	pr_info(MOD, "payment backend: %s (regtest simulator: no real money moves)",
		ps->be->ops->name);
	return 0;
}

void l402_svc_close(struct l402_svc *ps)
{
	pay_backend_free(ps->be);
	ps->be = NULL;
	crypto_wipe(ps->root, sizeof(ps->root));
}

int l402_svc_root_key(void *arg, const struct l402_id *id, uint8_t key[L402_ROOT_KEY_LEN])
{
	struct l402_svc *ps = arg;
	char hex[PAY_HEX32_LEN];
	bool revoked = false;
	int rc;

	ps->last_revoked = false;
	hex_encode(hex, id->token_id, sizeof(id->token_id));
	rc = pay_store_token_state(ps->st, hex, &revoked);
	if (rc && rc != -ENOENT) {
		return rc;
	}
	if (!rc && revoked) {
		ps->last_revoked = true;
		return -NATX_E_NOT_FOUND;
	}
	l402_derive(ps, "natx-l402-token-v1", id->token_id, sizeof(id->token_id), key);
	return 0;
}

int l402_svc_offer(struct l402_svc *ps, const char *service_type, struct l402_offer *o)
{
	const struct natx_config *c = ps->cfg;
	uint64_t now = ps->clk->wall_s(ps->clk);
	struct l402_terms terms = {
		.service = L402_SVC_SERVICE,
		.capabilities = service_type,
		.valid_until = c->rathole_token_duration_s ?
				       (int64_t)(now + c->rathole_token_duration_s) :
				       0,
		.max_bytes = (uint64_t)c->rathole_quota_mib << 20,
		.bandwidth_kbps = c->rathole_bandwidth_kbps,
	};
	struct l402_svc_offer_rec *rec;
	char memo[64];
	long n;
	int rc;

	snprintf(memo, sizeof(memo), "natx tunnel %s", service_type);
	memset(o, 0, sizeof(*o));
	rc = pay_backend_invoice_create(ps->be, c->rathole_price_msat, memo,
					c->rathole_invoice_expiry_s, &o->invoice);
	if (rc) {
		goto out_wipe;
	}
	crypto_random_bytes(o->id.token_id, sizeof(o->id.token_id));
	memcpy(o->id.payment_hash, o->invoice.payment_hash, L402_HASH_LEN);
	l402_derive(ps, "natx-l402-token-v1", o->id.token_id, sizeof(o->id.token_id), o->root_key);
	rc = l402_mint(o->mac, sizeof(o->mac), &o->mac_len, o->root_key, &o->id, &terms);
	if (rc) {
		goto out_wipe;
	}
	n = l402_challenge_format(o->header, sizeof(o->header), "L402", o->mac, o->mac_len,
				  o->invoice.bolt11);
	if (n >= 0) {
		n = l402_challenge_format(o->header_lsat, sizeof(o->header_lsat), "LSAT", o->mac,
					  o->mac_len, o->invoice.bolt11);
	}
	if (n < 0) {
		rc = (int)n;
		goto out_wipe;
	}
	rec = &ps->offers[ps->next];
	memcpy(rec->hash, o->invoice.payment_hash, sizeof(rec->hash));
	rec->amount_msat = o->invoice.amount_msat;
	rec->created = now;
	snprintf(rec->service_type, sizeof(rec->service_type), "%s", service_type);
	ps->next = (ps->next + 1) % L402_SVC_OFFERS_MAX;
	if (ps->noffers < L402_SVC_OFFERS_MAX) {
		ps->noffers++;
	}
	ps->challenges++;
	return 0;

out_wipe:
	l402_offer_wipe(o);
	return rc;
}

int l402_svc_settle(struct l402_svc *ps, const char *hex, struct pay_invoice *inv)
{
	uint8_t hash[32];
	int rc;

	if (strlen(hex) != 64 || hex_decode(hash, sizeof(hash), hex, 64)) {
		return -EINVAL;
	}
	rc = pay_backend_invoice_settle(ps->be, hash);
	if (rc) {
		return rc;
	}
	rc = pay_backend_invoice_lookup(ps->be, hash, inv);
	if (!rc) {
		ps->settled++;
		pr_info(MOD, "invoice %s settled by the operator (regtest: no real money)", hex);
	}
	return rc;
}

static const char *l402_state_name(enum pay_invoice_state s)
{
	return s == PAY_INVOICE_SETTLED ? "settled" : s == PAY_INVOICE_EXPIRED ? "expired" : "open";
}

cJSON *l402_svc_invoices_json(struct l402_svc *ps)
{
	cJSON *a = cJSON_CreateArray(), *receipts = pay_store_receipts_json(ps->st), *it;
	static struct pay_invoice inv;

	if (!a || !receipts) {
		cJSON_Delete(a);
		cJSON_Delete(receipts);
		return NULL;
	}
	/* newest offer first */
	for (unsigned k = 0; k < ps->noffers; k++) {
		unsigned i = (ps->next + L402_SVC_OFFERS_MAX - 1 - k) % L402_SVC_OFFERS_MAX;
		const struct l402_svc_offer_rec *r = &ps->offers[i];
		char hex[PAY_HEX32_LEN];
		cJSON *o = cJSON_CreateObject();
		bool known = pay_backend_invoice_lookup(ps->be, r->hash, &inv) == 0;

		if (!o) {
			break;
		}
		cJSON_AddItemToArray(a, o);
		hex_encode(hex, r->hash, sizeof(r->hash));
		cJSON_AddStringToObject(o, "payment_hash", hex);
		cJSON_AddNumberToObject(o, "amount_msat", (double)r->amount_msat);
		cJSON_AddStringToObject(o, "service_type", r->service_type);
		cJSON_AddStringToObject(o, "state", known ? l402_state_name(inv.state) : "unknown");
		cJSON_AddNumberToObject(o, "created", (double)r->created);
		cJSON_AddNumberToObject(o, "expires_at",
					known ? (double)(inv.created + inv.expiry) : 0);
		cJSON_AddNumberToObject(o, "settled_at", known ? (double)inv.settled_at : 0);
		if (known) {
			cJSON_AddStringToObject(o, "bolt11", inv.bolt11);
		}
		cJSON_AddBoolToObject(o, "registered", false);
		crypto_wipe(&inv, sizeof(inv));
	}
	/* receipts: mark offers that led to a registration; older ones (before a restart) too */
	cJSON_ArrayForEach(it, receipts)
	{
		const cJSON *h = cJSON_GetObjectItemCaseSensitive(it, "payment_hash");
		cJSON *e, *hit = NULL;

		cJSON_ArrayForEach(e, a)
		{
			const cJSON *eh = cJSON_GetObjectItemCaseSensitive(e, "payment_hash");

			if (cJSON_IsString(h) && !strcmp(eh->valuestring, h->valuestring)) {
				hit = e;
			}
		}
		if (!hit) {
			const cJSON *amt = cJSON_GetObjectItemCaseSensitive(it, "amount_sats");

			hit = cJSON_CreateObject();
			if (!hit) {
				break;
			}
			cJSON_AddItemToArray(a, hit);
			cJSON_AddItemToObject(hit, "payment_hash", cJSON_Duplicate(h, 0));
			cJSON_AddNumberToObject(hit, "amount_msat",
						cJSON_IsNumber(amt) ? amt->valuedouble * 1000 : 0);
			cJSON_AddStringToObject(hit, "state", "settled");
			cJSON_AddItemToObject(
				hit, "settled_at",
				cJSON_Duplicate(cJSON_GetObjectItemCaseSensitive(it, "settled_at"),
						0));
			cJSON_AddBoolToObject(hit, "registered", false);
		}
		cJSON_ReplaceItemInObjectCaseSensitive(hit, "registered", cJSON_CreateTrue());
		cJSON_AddItemToObject(
			hit, "token_id",
			cJSON_Duplicate(cJSON_GetObjectItemCaseSensitive(it, "token_id"), 0));
	}
	cJSON_Delete(receipts);
	return a;
}

cJSON *l402_svc_status_json(const struct l402_svc *ps)
{
	cJSON *o = cJSON_CreateObject(), *r;

	if (!o) {
		return NULL;
	}
	cJSON_AddStringToObject(o, "backend", ps->be ? ps->be->ops->name : "none");
	cJSON_AddBoolToObject(o, "real_money", ps->be && ps->be->ops->moves_real_money);
	cJSON_AddStringToObject(o, "note",
				ps->be && !ps->be->ops->moves_real_money ?
					"regtest: no real money (invoices are settled with "
					"natxctl invoice settle)" :
					"");
	cJSON_AddNumberToObject(o, "price_msat", ps->cfg->rathole_price_msat);
	cJSON_AddNumberToObject(o, "challenges", (double)ps->challenges);
	cJSON_AddNumberToObject(o, "registrations", (double)ps->registrations);
	cJSON_AddNumberToObject(o, "settled", (double)ps->settled);
	r = cJSON_AddObjectToObject(o, "refused");
	for (int i = 0; r && i < L402_R_MAX; i++) {
		cJSON_AddNumberToObject(r, l402_reason_names[i], (double)ps->refused[i]);
	}
	return o;
}

void l402_svc_prometheus(const struct l402_svc *ps, FILE *f)
{
	fprintf(f,
		"# HELP natx_l402_challenges_total 402 answers with a fresh invoice and token\n"
		"# TYPE natx_l402_challenges_total counter\nnatx_l402_challenges_total %llu\n",
		(unsigned long long)ps->challenges);
	fprintf(f,
		"# HELP natx_l402_registrations_total tunnels registered after payment\n"
		"# TYPE natx_l402_registrations_total counter\n"
		"natx_l402_registrations_total %llu\n",
		(unsigned long long)ps->registrations);
	fprintf(f,
		"# HELP natx_l402_settled_total invoices settled by the operator (regtest)\n"
		"# TYPE natx_l402_settled_total counter\nnatx_l402_settled_total %llu\n",
		(unsigned long long)ps->settled);
	fprintf(f, "# HELP natx_l402_refused_total tunnel registrations refused, by reason\n"
		   "# TYPE natx_l402_refused_total counter\n");
	for (int i = 0; i < L402_R_MAX; i++) {
		fprintf(f, "natx_l402_refused_total{reason=\"%s\"} %llu\n", l402_reason_names[i],
			(unsigned long long)ps->refused[i]);
	}
}

void l402_svc_public_host(const struct natx_config *cfg, char *out, size_t len)
{
	const char *why;
	uint16_t port;

	if (cfg->rathole_public_host[0]) {
		snprintf(out, len, "%s", cfg->rathole_public_host);
		return;
	}
	if (hostport_parse(cfg->rathole_server_address, strlen(cfg->rathole_server_address), out,
			   len, &port, &why)) {
		snprintf(out, len, "%s", "");
	}
}
