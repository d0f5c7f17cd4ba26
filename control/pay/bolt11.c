// SPDX-License-Identifier: MIT
/* BOLT11 invoice decode/encode (bolt11.h), written from BOLT #11. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <secp256k1.h>
#include <secp256k1_recovery.h>

#include "natx/err.h"
#include "bech32.h"
#include "bolt11.h"
#include "pay_crypto.h"
#include "pay_err.h"

enum {
	B11_TS_GROUPS = 7, /* 35-bit timestamp */
	B11_SIG_GROUPS = 104, /* 520-bit signature + recovery id */
	B11_HASH_GROUPS = 52, /* 256 bits + 4 padding bits */
	B11_NODE_GROUPS = 53, /* 264 bits + 1 padding bit */
	B11_INT_MAX_GROUPS = 12,
};

enum b11_tag {
	B11_TAG_P = 1,
	B11_TAG_9 = 5,
	B11_TAG_X = 6,
	B11_TAG_D = 13,
	B11_TAG_S = 16,
	B11_TAG_N = 19,
	B11_TAG_H = 23,
	B11_TAG_C = 24,
};

static const char *const b11_currencies[] = { "bc", "tb", "bcrt", "tbs", "sb" };

static bool b11_currency_ok(const char *c)
{
	for (size_t i = 0; i < sizeof(b11_currencies) / sizeof(b11_currencies[0]); i++) {
		if (!strcmp(c, b11_currencies[i])) {
			return true;
		}
	}
	return false;
}

void bolt11_feature_set(struct bolt11 *inv, unsigned int bit)
{
	if (bit < BOLT11_FEATURE_BYTES * 8) {
		inv->features[bit / 8] |= (uint8_t)(1u << (bit % 8));
	}
}

bool bolt11_feature_get(const struct bolt11 *inv, unsigned int bit)
{
	return bit < BOLT11_FEATURE_BYTES * 8 && (inv->features[bit / 8] >> (bit % 8) & 1);
}

/* b11_known_feature - even or odd bit of a feature this decoder understands. */
static bool b11_known_feature(unsigned int bit)
{
	unsigned int even = bit & ~1u;

	return even == BOLT11_F_VAR_ONION || even == BOLT11_F_PAYMENT_SECRET ||
	       even == BOLT11_F_BASIC_MPP || even == BOLT11_F_PAYMENT_METADATA;
}

/* b11_amount_parse - "<digits>[m|u|n|p]" (may be empty) into msat. */
static int b11_amount_parse(struct bolt11 *inv, const char *s)
{
	size_t n = strlen(s), digits = n;
	uint64_t v = 0, mul = 100000000000ull, div = 1;

	if (n == 0) {
		return 0;
	}
	switch (s[n - 1]) {
	case 'm':
		mul = 100000000ull;
		digits--;
		break;
	case 'u':
		mul = 100000ull;
		digits--;
		break;
	case 'n':
		mul = 100;
		digits--;
		break;
	case 'p':
		mul = 1;
		div = 10;
		digits--;
		break;
	default:
		break;
	}
	if (digits == 0 || digits > 20 || s[0] == '0') {
		return -PAY_E_INVOICE_FORMAT;
	}
	for (size_t i = 0; i < digits; i++) {
		if (s[i] < '0' || s[i] > '9' || __builtin_mul_overflow(v, 10, &v) ||
		    __builtin_add_overflow(v, (uint64_t)(s[i] - '0'), &v)) {
			return -PAY_E_INVOICE_FORMAT;
		}
	}
	if (div == 10 && v % 10) {
		return -PAY_E_INVOICE_FORMAT; /* sub-millisatoshi precision */
	}
	if (__builtin_mul_overflow(v / div, mul, &inv->amount_msat)) {
		return -PAY_E_INVOICE_FORMAT;
	}
	inv->has_amount = true;
	return 0;
}

/* b11_hrp_parse - "ln" <currency letters> <amount>. */
static int b11_hrp_parse(struct bolt11 *inv, const char *hrp)
{
	size_t i = 2, c = 0;

	if (strncmp(hrp, "ln", 2)) {
		return -PAY_E_INVOICE_FORMAT;
	}
	while (hrp[i] >= 'a' && hrp[i] <= 'z') {
		if (c + 1 >= sizeof(inv->currency)) {
			return -PAY_E_INVOICE_FORMAT;
		}
		inv->currency[c++] = hrp[i++];
	}
	inv->currency[c] = '\0';
	if (!b11_currency_ok(inv->currency)) {
		return -PAY_E_INVOICE_FORMAT;
	}
	return b11_amount_parse(inv, hrp + i);
}

/* b11_groups_uint - big-endian integer of n groups (n <= 12). */
static uint64_t b11_groups_uint(const uint8_t *g, size_t n)
{
	uint64_t v = 0;

	for (size_t i = 0; i < n; i++) {
		v = v << 5 | g[i];
	}
	return v;
}

/* b11_pack - groups into bytes, zero-padding the last byte (the signed message form). */
static size_t b11_pack(uint8_t *out, const uint8_t *g, size_t n)
{
	uint32_t acc = 0;
	unsigned int bits = 0;
	size_t o = 0;

	for (size_t i = 0; i < n; i++) {
		acc = (acc << 5 | g[i]) & 0xfff;
		bits += 5;
		if (bits >= 8) {
			bits -= 8;
			out[o++] = (uint8_t)(acc >> bits);
		}
	}
	if (bits) {
		out[o++] = (uint8_t)(acc << (8 - bits));
	}
	return o;
}

/* b11_sighash - SHA-256(hrp || packed data groups). */
static void b11_sighash(uint8_t out[32], const char *hrp, const uint8_t *g, size_t n)
{
	uint8_t msg[BECH32_HRP_MAX + BOLT11_MAX_LEN];
	size_t hl = strlen(hrp);

	memcpy(msg, hrp, hl);
	pay_sha256(out, msg, hl + b11_pack(msg + hl, g, n));
}

/* b11_order_note - remember the first position of an understood field (for re-encoding). */
static void b11_order_note(struct bolt11 *inv, unsigned int tag)
{
	for (unsigned int i = 0; i < inv->n_order; i++) {
		if (inv->field_order[i] == tag) {
			return;
		}
	}
	if (inv->n_order < sizeof(inv->field_order)) {
		inv->field_order[inv->n_order++] = (uint8_t)tag;
	}
}

/* b11_field - apply one tagged field to inv (skipping what the spec says to skip). */
static int b11_field(struct bolt11 *inv, unsigned int tag, const uint8_t *f, size_t n)
{
	uint8_t tmp[BOLT11_DESC_MAX + 1];
	long got;

	switch (tag) {
	case B11_TAG_P:
	case B11_TAG_S:
	case B11_TAG_H: {
		bool *has = tag == B11_TAG_P ? &inv->has_payment_hash :
			    tag == B11_TAG_S ? &inv->has_payment_secret :
					       &inv->has_description_hash;
		uint8_t *dst = tag == B11_TAG_P ? inv->payment_hash :
			       tag == B11_TAG_S ? inv->payment_secret :
						  inv->description_hash;

		if (n == B11_HASH_GROUPS && !*has) {
			bech32_bits_to_bytes(tmp, sizeof(tmp), f, n);
			memcpy(dst, tmp, 32);
			*has = true;
			b11_order_note(inv, tag);
		} else {
			inv->n_skipped++;
		}
		return 0;
	}
	case B11_TAG_N:
		if (n == B11_NODE_GROUPS && !inv->has_node_id) {
			bech32_bits_to_bytes(tmp, sizeof(tmp), f, n);
			memcpy(inv->node_id, tmp, BOLT11_PUBKEY_LEN);
			inv->has_node_id = true;
		} else {
			inv->n_skipped++;
		}
		return 0;
	case B11_TAG_D:
		if (!inv->has_description) {
			got = bech32_bits_to_bytes(tmp, sizeof(tmp), f, n);
			if (got < 0 || got > BOLT11_DESC_MAX) {
				return -PAY_E_INVOICE_FORMAT;
			}
			memcpy(inv->description, tmp, (size_t)got);
			inv->description[got] = '\0';
			inv->description_len = (size_t)got;
			inv->has_description = true;
			b11_order_note(inv, tag);
		} else {
			inv->n_skipped++;
		}
		return 0;
	case B11_TAG_X:
	case B11_TAG_C:
		if (n > B11_INT_MAX_GROUPS || (n && f[0] == 0)) {
			return -PAY_E_INVOICE_FORMAT; /* too long, or non-minimal length */
		}
		b11_order_note(inv, tag);
		if (tag == B11_TAG_X && !inv->has_expiry) {
			inv->expiry = b11_groups_uint(f, n);
			inv->has_expiry = true;
		} else if (tag == B11_TAG_C && !inv->has_min_final_cltv) {
			inv->min_final_cltv = b11_groups_uint(f, n);
			inv->has_min_final_cltv = true;
		}
		return 0;
	case B11_TAG_9:
		if (inv->feature_groups) {
			inv->n_skipped++;
			return 0;
		}
		if (n && f[0] == 0) {
			return -PAY_E_INVOICE_FORMAT; /* non-minimal length */
		}
		b11_order_note(inv, tag);
		inv->feature_groups = n;
		for (size_t j = 0; j < n; j++) {
			for (unsigned int b = 0; b < 5; b++) {
				size_t bit = (n - 1 - j) * 5 + b;

				if (!(f[j] >> b & 1)) {
					continue;
				}
				if (bit >= BOLT11_FEATURE_BYTES * 8) {
					if (!(bit & 1)) {
						return -PAY_E_INVOICE_FORMAT; /* unknown even bit */
					}
					continue;
				}
				bolt11_feature_set(inv, (unsigned int)bit);
			}
		}
		return 0;
	default:
		inv->n_skipped++;
		return 0; /* f, r, m, t and unknown fields: skipped */
	}
}

int bolt11_decode(struct bolt11 *inv, const char *str, size_t len)
{
	char hrp[BECH32_HRP_MAX + 1];
	uint8_t g[BOLT11_MAX_LEN], sig[65], hash[32];
	const secp256k1_context *ctx = secp256k1_context_static;
	secp256k1_ecdsa_recoverable_signature rsig;
	secp256k1_pubkey pk;
	size_t n, pos, end, klen = BOLT11_PUBKEY_LEN;
	uint8_t recovered[BOLT11_PUBKEY_LEN];
	int err;

	memset(inv, 0, sizeof(*inv));
	inv->expiry = 3600;
	inv->min_final_cltv = 18;
	if (len > BOLT11_MAX_LEN || bech32_decode(hrp, sizeof(hrp), g, sizeof(g), &n, str, len)) {
		return -PAY_E_INVOICE_FORMAT;
	}
	err = b11_hrp_parse(inv, hrp);
	if (err) {
		return err;
	}
	if (n < B11_TS_GROUPS + B11_SIG_GROUPS) {
		return -PAY_E_INVOICE_FORMAT;
	}
	inv->timestamp = b11_groups_uint(g, B11_TS_GROUPS);
	end = n - B11_SIG_GROUPS;
	for (pos = B11_TS_GROUPS; pos < end;) {
		unsigned int tag;
		size_t flen;

		if (end - pos < 3) {
			return -PAY_E_INVOICE_FORMAT;
		}
		tag = g[pos];
		flen = (size_t)g[pos + 1] << 5 | g[pos + 2];
		pos += 3;
		if (flen > end - pos) {
			return -PAY_E_INVOICE_FORMAT;
		}
		err = b11_field(inv, tag, g + pos, flen);
		if (err) {
			return err;
		}
		pos += flen;
	}
	if (!inv->has_payment_hash || !inv->has_payment_secret ||
	    inv->has_description == inv->has_description_hash) {
		return -PAY_E_INVOICE_FORMAT;
	}
	for (unsigned int bit = 0; bit < BOLT11_FEATURE_BYTES * 8; bit += 2) {
		if (bolt11_feature_get(inv, bit) && !b11_known_feature(bit)) {
			return -PAY_E_INVOICE_FORMAT;
		}
	}
	bech32_bits_to_bytes(sig, sizeof(sig), g + end, B11_SIG_GROUPS);
	memcpy(inv->signature, sig, 64);
	inv->recovery_id = sig[64];
	b11_sighash(hash, hrp, g, end);
	if (inv->has_node_id) {
		secp256k1_ecdsa_signature esig;

		/* With n: verify under n; ecdsa_verify refuses high-S, as the spec requires. */
		if (!secp256k1_ec_pubkey_parse(ctx, &pk, inv->node_id, BOLT11_PUBKEY_LEN) ||
		    !secp256k1_ecdsa_signature_parse_compact(ctx, &esig, sig) ||
		    !secp256k1_ecdsa_verify(ctx, &esig, hash, &pk)) {
			return -PAY_E_INVOICE_SIG;
		}
		return 0;
	}
	/*
	 * Without n: recover, accepting high-S. The spec's high-S example keeps the recovery id
	 * of the low-S form, so s is normalized to low-S before recovering (the same key the
	 * writer's low-S signature gives).
	 */
	if (sig[64] > 3) {
		return -PAY_E_INVOICE_SIG;
	}
	{
		secp256k1_ecdsa_signature esig;

		if (!secp256k1_ecdsa_signature_parse_compact(ctx, &esig, sig)) {
			return -PAY_E_INVOICE_SIG;
		}
		secp256k1_ecdsa_signature_normalize(ctx, &esig, &esig);
		secp256k1_ecdsa_signature_serialize_compact(ctx, sig, &esig);
	}
	if (!secp256k1_ecdsa_recoverable_signature_parse_compact(ctx, &rsig, sig, sig[64]) ||
	    !secp256k1_ecdsa_recover(ctx, &pk, &rsig, hash) ||
	    !secp256k1_ec_pubkey_serialize(ctx, recovered, &klen, &pk, SECP256K1_EC_COMPRESSED)) {
		return -PAY_E_INVOICE_SIG;
	}
	memcpy(inv->node_id, recovered, BOLT11_PUBKEY_LEN);
	return 0;
}

/* ---- encoding ---- */

struct b11_out {
	uint8_t g[BOLT11_MAX_LEN];
	size_t n;
};

static int b11_put(struct b11_out *o, const uint8_t *groups, size_t n)
{
	if (n > sizeof(o->g) - o->n) {
		return -NATX_E_TOO_BIG;
	}
	memcpy(o->g + o->n, groups, n);
	o->n += n;
	return 0;
}

/* b11_put_field - tag, 10-bit length, data groups. */
static int b11_put_field(struct b11_out *o, unsigned int tag, const uint8_t *groups, size_t n)
{
	uint8_t hdr[3] = { (uint8_t)tag, (uint8_t)(n >> 5), (uint8_t)(n & 31) };

	if (n > 1023) {
		return -EINVAL;
	}
	return b11_put(o, hdr, 3) ?: b11_put(o, groups, n);
}

static int b11_put_bytes(struct b11_out *o, unsigned int tag, const void *bytes, size_t len)
{
	uint8_t groups[1100];
	long n = bech32_bytes_to_bits(groups, sizeof(groups), bytes, len);

	return n < 0 ? -EINVAL : b11_put_field(o, tag, groups, (size_t)n);
}

static int b11_put_uint(struct b11_out *o, unsigned int tag, uint64_t v)
{
	uint8_t groups[B11_INT_MAX_GROUPS + 1];
	size_t n = 0;

	/* minimal length: no leading zero groups (0 is encoded with no groups at all) */
	while (n < 13 && (v >> (5 * n))) {
		n++;
	}
	for (size_t i = 0; i < n; i++) {
		groups[i] = (v >> (5 * (n - 1 - i))) & 31;
	}
	return b11_put_field(o, tag, groups, n);
}

/* The encoder's field order when the decoder recorded none (or for fields it did not see). */
static const uint8_t b11_default_order[] = { B11_TAG_P, B11_TAG_D, B11_TAG_H, B11_TAG_S,
					     B11_TAG_X, B11_TAG_C, B11_TAG_9 };

/* b11_put_tag - write field tag of inv if it is present; anything else writes nothing. */
static int b11_put_tag(struct b11_out *o, const struct bolt11 *inv, unsigned int tag)
{
	switch (tag) {
	case B11_TAG_P:
		return b11_put_bytes(o, tag, inv->payment_hash, 32);
	case B11_TAG_D:
		if (!inv->has_description) {
			return 0;
		}
		if (inv->description_len > BOLT11_DESC_MAX) {
			return -EINVAL;
		}
		return b11_put_bytes(o, tag, inv->description, inv->description_len);
	case B11_TAG_H:
		return inv->has_description_hash ?
			       b11_put_bytes(o, tag, inv->description_hash, 32) :
			       0;
	case B11_TAG_S:
		return inv->has_payment_secret ? b11_put_bytes(o, tag, inv->payment_secret, 32) : 0;
	case B11_TAG_X:
		return inv->has_expiry ? b11_put_uint(o, tag, inv->expiry) : 0;
	case B11_TAG_C:
		return inv->has_min_final_cltv ? b11_put_uint(o, tag, inv->min_final_cltv) : 0;
	case B11_TAG_9: {
		uint8_t fg[BOLT11_FEATURE_BYTES * 8 / 5 + 1];
		int top = -1;
		size_t ng;

		for (int bit = BOLT11_FEATURE_BYTES * 8 - 1; bit >= 0 && top < 0; bit--) {
			if (bolt11_feature_get(inv, (unsigned int)bit)) {
				top = bit;
			}
		}
		if (top < 0) {
			return 0;
		}
		ng = (size_t)top / 5 + 1;
		for (size_t j = 0; j < ng; j++) {
			fg[j] = 0;
			for (unsigned int b = 0; b < 5; b++) {
				unsigned int bit = (unsigned int)((ng - 1 - j) * 5 + b);

				fg[j] |= (uint8_t)(bolt11_feature_get(inv, bit) << b);
			}
		}
		return b11_put_field(o, tag, fg, ng);
	}
	default:
		return 0;
	}
}

/* b11_amount_format - shortest "<digits>[m|u|n|p]" for msat. */
static int b11_amount_format(char *out, size_t cap, uint64_t msat)
{
	static const struct {
		uint64_t unit;
		const char *suffix;
	} units[] = {
		{ 100000000000ull, "" }, { 100000000ull, "m" }, { 100000ull, "u" }, { 100ull, "n" }
	};

	if (msat == 0) {
		return -EINVAL;
	}
	for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
		if (msat % units[i].unit == 0) {
			snprintf(out, cap, "%llu%s", (unsigned long long)(msat / units[i].unit),
				 units[i].suffix);
			return 0;
		}
	}
	if (msat > UINT64_MAX / 10) {
		return -EINVAL;
	}
	snprintf(out, cap, "%llup", (unsigned long long)(msat * 10));
	return 0;
}

long bolt11_encode(char *out, size_t cap, struct bolt11 *inv,
		   const uint8_t seckey[BOLT11_SECKEY_LEN])
{
	struct b11_out o;
	char hrp[BECH32_HRP_MAX + 1], amount[32] = "";
	uint8_t hash[32], sig[65], seed[32], groups[B11_SIG_GROUPS];
	secp256k1_ecdsa_recoverable_signature rsig;
	secp256k1_context *ctx = NULL;
	secp256k1_pubkey pk;
	size_t klen = BOLT11_PUBKEY_LEN;
	uint32_t written = 0;
	int recid, err;
	long ret;

	if (!inv->has_payment_hash || !b11_currency_ok(inv->currency) ||
	    inv->timestamp >= (1ull << 35)) {
		return -EINVAL;
	}
	if (inv->has_amount && b11_amount_format(amount, sizeof(amount), inv->amount_msat)) {
		return -EINVAL;
	}
	snprintf(hrp, sizeof(hrp), "ln%s%s", inv->currency, amount);
	o.n = 0;
	for (int i = 0; i < B11_TS_GROUPS; i++) {
		groups[i] = (inv->timestamp >> (5 * (B11_TS_GROUPS - 1 - i))) & 31;
	}
	err = b11_put(&o, groups, B11_TS_GROUPS);
	for (unsigned int i = 0; !err && i < inv->n_order + sizeof(b11_default_order); i++) {
		unsigned int tag = i < inv->n_order ? inv->field_order[i] :
						      b11_default_order[i - inv->n_order];

		if (tag < 32 && !(written & (1u << tag))) {
			written |= 1u << tag;
			err = b11_put_tag(&o, inv, tag);
		}
	}
	if (err) {
		return err;
	}
	b11_sighash(hash, hrp, o.g, o.n);
	ctx = secp256k1_context_create(SECP256K1_CONTEXT_NONE);
	if (!ctx) {
		return -ENOMEM;
	}
	ret = -EINVAL;
	if (pay_random(seed, sizeof(seed)) || !secp256k1_context_randomize(ctx, seed) ||
	    !secp256k1_ecdsa_sign_recoverable(ctx, &rsig, hash, seckey, NULL, NULL) ||
	    !secp256k1_ecdsa_recoverable_signature_serialize_compact(ctx, sig, &recid, &rsig) ||
	    !secp256k1_ec_pubkey_create(ctx, &pk, seckey) ||
	    !secp256k1_ec_pubkey_serialize(ctx, inv->node_id, &klen, &pk,
					   SECP256K1_EC_COMPRESSED)) {
		goto out_ctx;
	}
	sig[64] = (uint8_t)recid;
	memcpy(inv->signature, sig, 64);
	inv->recovery_id = (uint8_t)recid;
	bech32_bytes_to_bits(groups, sizeof(groups), sig, sizeof(sig));
	ret = b11_put(&o, groups, B11_SIG_GROUPS);
	if (!ret) {
		ret = bech32_encode(out, cap, hrp, o.g, o.n);
	}

out_ctx:
	secp256k1_context_destroy(ctx);
	pay_wipe(seed, sizeof(seed));
	return ret;
}
