/* SPDX-License-Identifier: MIT */
/*
 * BOLT11 Lightning invoices: decode (with signature recovery of the payee node id) and
 * encode+sign (for the regtest backend and for tests), written from the BOLT #11 text.
 *
 * Understood tagged fields: p (payment hash), s (payment secret), d (description), h
 * (description hash), n (payee node id), x (expiry), c (min_final_cltv_expiry), 9
 * (features). Others (f, r, m, t, unknown) are skipped. Reader rules enforced: s required,
 * exactly one of d / h, no unknown even feature bit, minimal x / c / 9 lengths, and with an
 * n field the signature is verified against it and must be low-S; without one the payee is
 * recovered (high-S accepted). Known fields of the wrong length are skipped, as the spec's
 * own "fields which must be ignored" example requires (its reader text says "fail"; the
 * example wins here because it is what implementations test against).
 *
 * Encoding writes the fields that are present in the order the decoder recorded
 * (field_order), else p, d, h, s, x, c, 9, and signs SHA-256(hrp || data bytes) with
 * libsecp256k1 (RFC 6979 nonces, so output is deterministic and reproduces the spec's
 * examples byte for byte).
 */
#ifndef NATX_PAY_BOLT11_H
#define NATX_PAY_BOLT11_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum {
	BOLT11_MAX_LEN = 4096, /* longest invoice string handled */
	BOLT11_DESC_MAX = 639, /* longest d field (1023 groups of 5 bits) */
	BOLT11_FEATURE_BYTES = 128, /* feature bits 0..1023 */
	BOLT11_PUBKEY_LEN = 33,
	BOLT11_SECKEY_LEN = 32,
};

/* BOLT 9 feature bits this decoder knows (even = compulsory, odd = optional). */
enum bolt11_feature {
	BOLT11_F_VAR_ONION = 8,
	BOLT11_F_PAYMENT_SECRET = 14,
	BOLT11_F_BASIC_MPP = 16,
	BOLT11_F_PAYMENT_METADATA = 48,
};

struct bolt11 {
	char currency[8]; /* "bc", "tb", "bcrt", "tbs", "sb" */
	bool has_amount;
	uint64_t amount_msat;
	uint64_t timestamp; /* unix seconds (35 bits) */
	bool has_payment_hash;
	uint8_t payment_hash[32];
	bool has_payment_secret;
	uint8_t payment_secret[32];
	bool has_description;
	size_t description_len;
	char description[BOLT11_DESC_MAX + 1]; /* UTF-8 bytes, NUL-terminated */
	bool has_description_hash;
	uint8_t description_hash[32];
	bool has_expiry;
	uint64_t expiry; /* seconds; 3600 when absent */
	bool has_min_final_cltv;
	uint64_t min_final_cltv; /* blocks; 18 when absent */
	size_t feature_groups; /* 5-bit groups of the 9 field; 0 = absent */
	uint8_t features[BOLT11_FEATURE_BYTES]; /* bit i = features[i / 8] >> (i % 8) & 1 */
	bool has_node_id; /* n field present */
	uint8_t node_id[BOLT11_PUBKEY_LEN]; /* payee: from n, else recovered from signature */
	uint8_t signature[64]; /* compact r || s */
	uint8_t recovery_id; /* 0..3 */
	uint8_t field_order[8]; /* tags of understood fields, first-seen order */
	unsigned int n_order;
	unsigned int n_skipped; /* fields skipped (unknown, f, r, m, wrong length) */
};

/*
 * bolt11_decode - parse and check an invoice (either all lower or all upper case). Fills *inv
 * including the payee node id (from n, else recovered). Returns 0, -PAY_E_INVOICE_FORMAT
 * (bech32, prefix, amount, missing p or s, d/h rule, unknown even feature, non-minimal
 * length) or -PAY_E_INVOICE_SIG (signature does not recover, or does not verify under n).
 */
int bolt11_decode(struct bolt11 *inv, const char *str, size_t len)
	__attribute__((warn_unused_result));

/* bolt11_feature_set / bolt11_feature_get - feature bit helpers (bit < 1024). */
void bolt11_feature_set(struct bolt11 *inv, unsigned int bit);
bool bolt11_feature_get(const struct bolt11 *inv, unsigned int bit);

/*
 * bolt11_encode - serialize inv and sign it with seckey. Uses currency, has_amount/amount_msat,
 * timestamp, and each field whose has_ flag is set (payment hash is required); the feature
 * field is written with the minimal number of groups when any bit is set. The n field is
 * never written (payers recover it). NUL-terminated into out; returns the length, -EINVAL
 * (missing payment hash, bad currency, timestamp >= 2^35, amount not representable, bad key)
 * or -NATX_E_TOO_BIG. On success inv->signature, recovery_id and node_id are updated.
 */
long bolt11_encode(char *out, size_t cap, struct bolt11 *inv,
		   const uint8_t seckey[BOLT11_SECKEY_LEN]);

#endif
