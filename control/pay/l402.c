// SPDX-License-Identifier: MIT
/* L402 tokens: identifier, minting, headers, verification (l402.h). */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "natx/rd.h"
#include "l402.h"
#include "pay_codec.h"
#include "pay_crypto.h"
#include "pay_err.h"

/* ---- identifier ---- */

void l402_id_encode(uint8_t out[L402_ID_LEN], const struct l402_id *id)
{
	struct wr w;

	wr_init(&w, out, L402_ID_LEN);
	wr_be16(&w, id->version);
	wr_bytes(&w, id->payment_hash, L402_HASH_LEN);
	wr_bytes(&w, id->token_id, L402_TOKEN_ID_LEN);
}

int l402_id_decode(struct l402_id *id, const uint8_t *buf, size_t len)
{
	struct rd r;

	if (len != L402_ID_LEN) {
		return -PAY_E_L402_ID;
	}
	rd_init(&r, buf, len);
	rd_be16(&r, &id->version);
	if (id->version != 0) {
		return -PAY_E_L402_ID;
	}
	rd_copy(&r, id->payment_hash, L402_HASH_LEN);
	rd_copy(&r, id->token_id, L402_TOKEN_ID_LEN);
	return 0;
}

/* ---- minting ---- */

/* l402_name_ok - service names: 1..L402_SERVICE_MAX of [A-Za-z0-9._-]. */
static bool l402_name_ok(const char *s)
{
	size_t n = s ? strlen(s) : 0;

	if (n == 0 || n > L402_SERVICE_MAX) {
		return false;
	}
	for (size_t i = 0; i < n; i++) {
		char c = s[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '.' || c == '_' || c == '-')) {
			return false;
		}
	}
	return true;
}

/* l402_caps_ok - capability lists: 1..128 of [a-z0-9_,], no empty item. */
static bool l402_caps_ok(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > 128 || s[0] == ',' || s[n - 1] == ',' || strstr(s, ",,")) {
		return false;
	}
	for (size_t i = 0; i < n; i++) {
		char c = s[i];

		if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == ',')) {
			return false;
		}
	}
	return true;
}

int l402_mint(uint8_t *out, size_t cap, size_t *out_len, const uint8_t root_key[L402_ROOT_KEY_LEN],
	      const struct l402_id *id, const struct l402_terms *t)
{
	char cav[5][L402_SERVICE_MAX + 160];
	uint8_t raw_id[L402_ID_LEN];
	struct macaroon m;
	int n = 0, err;

	if (!l402_name_ok(t->service) || (t->capabilities && !l402_caps_ok(t->capabilities)) ||
	    t->valid_until < 0) {
		return -EINVAL;
	}
	l402_id_encode(raw_id, id);
	snprintf(cav[n++], sizeof(cav[0]), "services=%s:%u", t->service, t->tier);
	if (t->capabilities) {
		snprintf(cav[n++], sizeof(cav[0]), "%s_capabilities=%s", t->service,
			 t->capabilities);
	}
	if (t->valid_until) {
		snprintf(cav[n++], sizeof(cav[0]), "%s_valid_until=%lld", t->service,
			 (long long)t->valid_until);
	}
	if (t->max_bytes) {
		snprintf(cav[n++], sizeof(cav[0]), "%s_max_bytes=%llu", t->service,
			 (unsigned long long)t->max_bytes);
	}
	if (t->bandwidth_kbps) {
		snprintf(cav[n++], sizeof(cav[0]), "%s_bandwidth_kbps=%llu", t->service,
			 (unsigned long long)t->bandwidth_kbps);
	}
	err = macaroon_mint(&m, root_key, L402_ROOT_KEY_LEN, L402_LOCATION,
			    sizeof(L402_LOCATION) - 1, raw_id, sizeof(raw_id));
	for (int i = 0; !err && i < n; i++) {
		err = macaroon_add_first_party(&m, cav[i], strlen(cav[i]));
	}
	if (!err) {
		err = macaroon_encode(&m, out, cap, out_len);
	}
	pay_wipe(&m, sizeof(m));
	return err;
}

/* ---- headers ---- */

long l402_challenge_format(char *out, size_t cap, const char *scheme, const uint8_t *mac,
			   size_t mac_len, const char *invoice)
{
	size_t b64_len = b64_encoded_len(mac_len, 0);
	size_t inv_len = strlen(invoice), slen = strlen(scheme), need;
	size_t o = 0;

	for (size_t i = 0; i < inv_len; i++) {
		if (invoice[i] <= ' ' || invoice[i] > '~' || invoice[i] == '"' ||
		    invoice[i] == '\\') {
			return -EINVAL;
		}
	}
	need = slen + sizeof(" macaroon=\"") - 1 + b64_len + sizeof("\", invoice=\"") - 1 +
	       inv_len + 1;
	if (need + 1 > cap) {
		return -NATX_E_TOO_BIG;
	}
	memcpy(out + o, scheme, slen);
	o += slen;
	memcpy(out + o, " macaroon=\"", 11);
	o += 11;
	o += (size_t)b64_encode(out + o, cap - o, mac, mac_len, 0);
	memcpy(out + o, "\", invoice=\"", 12);
	o += 12;
	memcpy(out + o, invoice, inv_len);
	o += inv_len;
	out[o++] = '"';
	out[o] = '\0';
	return (long)o;
}

long l402_auth_format(char *out, size_t cap, const uint8_t *mac, size_t mac_len,
		      const uint8_t preimage[L402_PREIMAGE_LEN])
{
	size_t need = 5 + b64_encoded_len(mac_len, 0) + 1 + 2 * L402_PREIMAGE_LEN;
	size_t o = 0;

	if (need + 1 > cap) {
		return -NATX_E_TOO_BIG;
	}
	memcpy(out, "L402 ", 5);
	o = 5;
	o += (size_t)b64_encode(out + o, cap - o, mac, mac_len, 0);
	out[o++] = ':';
	hex_encode(out + o, preimage, L402_PREIMAGE_LEN);
	o += 2 * L402_PREIMAGE_LEN;
	return (long)o;
}

static bool l402_is_space(char c)
{
	return c == ' ' || c == '\t';
}

int l402_auth_parse(struct l402_auth *a, const char *v, size_t len)
{
	size_t i = 0, end = len, tok, colon;
	long n;

	memset(a, 0, sizeof(*a));
	if (len > L402_HEADER_MAX) {
		return -PAY_E_L402_HEADER;
	}
	while (i < end && l402_is_space(v[i])) {
		i++;
	}
	while (end > i && l402_is_space(v[end - 1])) {
		end--;
	}
	/* scheme, then at least one space */
	if (end - i < 5 || (strncasecmp(v + i, "L402", 4) && strncasecmp(v + i, "LSAT", 4)) ||
	    !l402_is_space(v[i + 4])) {
		return -PAY_E_L402_HEADER;
	}
	i += 4;
	while (i < end && l402_is_space(v[i])) {
		i++;
	}
	tok = i;
	colon = end;
	for (size_t j = tok; j < end; j++) {
		if (v[j] == ':') {
			if (colon != end) {
				return -PAY_E_L402_HEADER; /* second ':' */
			}
			colon = j;
		} else if (v[j] == ',') {
			return -PAY_E_L402_HEADER; /* several macaroons: discharges unsupported */
		} else if (l402_is_space(v[j]) || v[j] == '\0') {
			return -PAY_E_L402_HEADER;
		}
	}
	if (colon == end || colon == tok) {
		return -PAY_E_L402_HEADER;
	}
	n = b64_decode(a->mac, sizeof(a->mac), v + tok, colon - tok);
	if (n <= 0) {
		goto out_wipe;
	}
	a->mac_len = (size_t)n;
	if (hex_decode(a->preimage, L402_PREIMAGE_LEN, v + colon + 1, end - colon - 1)) {
		goto out_wipe;
	}
	return 0;

out_wipe:
	pay_wipe(a->preimage, sizeof(a->preimage));
	a->mac_len = 0;
	return -PAY_E_L402_HEADER;
}

/* ---- caveats ---- */

/* l402_parse_u64 - strict decimal (digits only, no sign, no overflow). */
static int l402_parse_u64(const uint8_t *s, size_t n, uint64_t *out)
{
	uint64_t v = 0;

	if (n == 0 || n > 20) {
		return -1;
	}
	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9') {
			return -1;
		}
		if (v > (UINT64_MAX - (uint64_t)(s[i] - '0')) / 10) {
			return -1;
		}
		v = v * 10 + (uint64_t)(s[i] - '0');
	}
	*out = v;
	return 0;
}

/* l402_eq - does the byte range equal the NUL-terminated string s? */
static bool l402_eq(const uint8_t *p, size_t n, const char *s)
{
	return strlen(s) == n && memcmp(p, s, n) == 0;
}

/*
 * l402_list_has - does the ','-separated list contain item? With tiered=true each element is
 * "name:tier" and the tier of the match goes to *tier. Returns 1 found, 0 not found, -1 if
 * the list is malformed.
 */
static int l402_list_has(const uint8_t *p, size_t n, const char *item, bool tiered, uint32_t *tier)
{
	int found = 0;
	size_t i = 0;

	if (n == 0) {
		return -1;
	}
	while (i <= n) {
		size_t j = i, name_end;
		uint64_t t = 0;

		while (j < n && p[j] != ',') {
			j++;
		}
		name_end = j;
		if (tiered) {
			size_t c = i;

			while (c < j && p[c] != ':') {
				c++;
			}
			if (c == j || l402_parse_u64(p + c + 1, j - c - 1, &t) || t > UINT32_MAX) {
				return -1;
			}
			name_end = c;
		}
		if (name_end == i) {
			return -1;
		}
		if (!found && l402_eq(p + i, name_end - i, item)) {
			found = 1;
			if (tier) {
				*tier = (uint32_t)t;
			}
		}
		i = j + 1;
	}
	return found;
}

/* l402_cond_is - is cond "<service><suffix>"? */
static bool l402_cond_is(const uint8_t *cond, size_t n, const char *service, const char *suffix)
{
	size_t sl = strlen(service), xl = strlen(suffix);

	return n == sl + xl && memcmp(cond, service, sl) == 0 && memcmp(cond + sl, suffix, xl) == 0;
}

int l402_caveats_check(const struct macaroon *m, const struct l402_request *req,
		       struct l402_grant *g)
{
	bool have_services = false;
	int err = 0;

	g->tier = 0;
	g->valid_until = INT64_MAX;
	g->max_bytes = UINT64_MAX;
	g->bandwidth_kbps = 0;
	if (!req->service || !l402_name_ok(req->service)) {
		return -EINVAL;
	}
	for (unsigned int i = 0; i < m->n_cav && !err; i++) {
		const struct mac_caveat *c = &m->cav[i];
		const uint8_t *eq = c->vid ? NULL : memchr(c->id, '=', c->id_len);
		const uint8_t *val;
		size_t clen, vlen;
		uint64_t v;
		int r;

		if (c->vid) {
			return -PAY_E_MAC_THIRD_PARTY;
		}
		if (!eq) {
			continue; /* not a condition=value caveat: someone else's, skip */
		}
		clen = (size_t)(eq - c->id);
		val = eq + 1;
		vlen = c->id_len - clen - 1;
		if (l402_eq(c->id, clen, "services")) {
			uint32_t tier = 0;

			r = l402_list_has(val, vlen, req->service, true, &tier);
			if (r < 0) {
				err = -PAY_E_CAV_MALFORMED;
			} else if (r == 0) {
				err = -PAY_E_CAV_SERVICE;
			} else {
				have_services = true;
				g->tier = tier;
			}
		} else if (l402_cond_is(c->id, clen, req->service, "_capabilities")) {
			r = l402_list_has(val, vlen, req->capability ? req->capability : "", false,
					  NULL);
			if (r < 0) {
				err = -PAY_E_CAV_MALFORMED;
			} else if (r == 0 && req->capability) {
				err = -PAY_E_CAV_CAPABILITY;
			}
		} else if (l402_cond_is(c->id, clen, req->service, "_valid_until")) {
			if (l402_parse_u64(val, vlen, &v) || v > INT64_MAX) {
				err = -PAY_E_CAV_MALFORMED;
			} else if ((int64_t)v < g->valid_until) {
				g->valid_until = (int64_t)v;
			}
		} else if (l402_cond_is(c->id, clen, req->service, "_max_bytes")) {
			if (l402_parse_u64(val, vlen, &v)) {
				err = -PAY_E_CAV_MALFORMED;
			} else if (v < g->max_bytes) {
				g->max_bytes = v;
			}
		} else if (l402_cond_is(c->id, clen, req->service, "_bandwidth_kbps")) {
			if (l402_parse_u64(val, vlen, &v) || v == 0) {
				err = -PAY_E_CAV_MALFORMED;
			} else if (!g->bandwidth_kbps || v < g->bandwidth_kbps) {
				g->bandwidth_kbps = v;
			}
		}
	}
	if (err) {
		return err;
	}
	if (!have_services) {
		return -PAY_E_CAV_SERVICE;
	}
	if (req->now >= g->valid_until) {
		return -PAY_E_CAV_EXPIRED;
	}
	if (req->bytes_used >= g->max_bytes) {
		return -PAY_E_CAV_QUOTA;
	}
	if (req->want_kbps && g->bandwidth_kbps && req->want_kbps > g->bandwidth_kbps) {
		return -PAY_E_CAV_BANDWIDTH;
	}
	return 0;
}

int l402_verify(const struct macaroon *m, const uint8_t preimage[L402_PREIMAGE_LEN],
		l402_root_key_fn get_key, void *arg, const struct l402_request *req,
		struct l402_grant *g)
{
	uint8_t hash[L402_HASH_LEN], key[L402_ROOT_KEY_LEN];
	int err;

	memset(g, 0, sizeof(*g));
	err = l402_id_decode(&g->id, m->id, m->id_len);
	if (err) {
		return err;
	}
	pay_sha256(hash, preimage, L402_PREIMAGE_LEN);
	if (!pay_memeq(hash, g->id.payment_hash, L402_HASH_LEN)) {
		return -PAY_E_L402_PREIMAGE;
	}
	err = get_key(arg, &g->id, key);
	if (err) {
		pay_wipe(key, sizeof(key));
		return err == -NATX_E_NOT_FOUND ? -PAY_E_L402_UNKNOWN : err;
	}
	err = macaroon_verify_sig(m, key, sizeof(key));
	pay_wipe(key, sizeof(key));
	if (err) {
		return err;
	}
	return l402_caveats_check(m, req, g);
}
