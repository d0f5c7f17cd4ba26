// SPDX-License-Identifier: MIT
/*
 * BOLT11 decode/encode (control/pay/bolt11.c) against the examples of BOLT #11 itself
 * (bolt11_vectors.h: github.com/lightning/bolts 11-payment-encoding.md @ a377265). All valid
 * examples are signed with priv_key e126f68f...b734, whose node id is 03e7156a...d9ad.
 */
#include <criterion/criterion.h>
#include <ctype.h>
#include <errno.h>
#include <string.h>

#include "bolt11.h"
#include "bolt11_vectors.h"
#include "natx/err.h"
#include "pay_err.h"
#include "pay_t.h"

#define SPEC_PRIV "e126f68f7eafcc8b74f54d269fe206be715000f94dac067d1c04a8ca3b2db734"
#define SPEC_NODE "03e7156ae33b0a208d0744199163177e909e80176e55d97a2f221ede0f934dd9ad"
#define SPEC_HASH "0001020304050607080900010203040506070809000102030405060708090102"
#define SPEC_SECRET "1111111111111111111111111111111111111111111111111111111111111111"
#define SPEC_TS 1496314658

#define N_VECTORS (sizeof(bolt11_vectors) / sizeof(bolt11_vectors[0]))

/* t_vec - the example whose title starts with prefix. */
static const char *t_vec(const char *prefix)
{
	for (size_t i = 0; i < N_VECTORS; i++) {
		if (!strncmp(bolt11_vectors[i].title, prefix, strlen(prefix))) {
			return bolt11_vectors[i].str;
		}
	}
	cr_assert_fail("no vector titled %s", prefix);
	return NULL;
}

static void t_decode_ok(struct bolt11 *inv, const char *s)
{
	int err = bolt11_decode(inv, s, strlen(s));

	cr_assert_eq(err, 0, "decode failed (%s): %.40s", pay_strerror(err), s);
	cr_assert_str_eq(t_hex(inv->node_id, 33), SPEC_NODE, "payee not recovered: %.40s", s);
}

/* t_reencode - encoding the decoded fields with the spec key gives the spec string back. */
static void t_reencode(struct bolt11 *inv, const char *want)
{
	uint8_t priv[32];
	char out[BOLT11_MAX_LEN];
	long n;

	t_unhex(priv, sizeof(priv), SPEC_PRIV);
	n = bolt11_encode(out, sizeof(out), inv, priv);
	cr_assert_eq(n, (long)strlen(want), "length %ld vs %zu", n, strlen(want));
	cr_assert_str_eq(out, want);
}

Test(bolt11, all_valid_examples_decode_to_the_spec_node)
{
	int n = 0;

	for (size_t i = 0; i < N_VECTORS; i++) {
		struct bolt11 inv;

		if (!bolt11_vectors[i].valid) {
			continue;
		}
		t_decode_ok(&inv, bolt11_vectors[i].str);
		cr_assert(inv.has_payment_secret);
		if (strncmp(bolt11_vectors[i].title, "Please send 0.00967878534", 25)) {
			cr_assert_str_eq(t_hex(inv.payment_secret, 32), SPEC_SECRET, "%s",
					 bolt11_vectors[i].title);
		}
		n++;
	}
	cr_assert_eq(n, 16);
}

Test(bolt11, examples_without_skipped_fields_reencode_byte_for_byte)
{
	int n = 0;

	for (size_t i = 0; i < N_VECTORS; i++) {
		char lower[BOLT11_MAX_LEN];
		struct bolt11 inv;

		/* libsecp256k1 always signs low-S, so the high-S example cannot be reproduced. */
		if (!bolt11_vectors[i].valid || strstr(bolt11_vectors[i].title, "high-S")) {
			continue;
		}
		t_decode_ok(&inv, bolt11_vectors[i].str);
		if (inv.n_skipped) {
			continue;
		}
		for (size_t j = 0; bolt11_vectors[i].str[j]; j++) {
			lower[j] = (char)tolower((unsigned char)bolt11_vectors[i].str[j]);
			lower[j + 1] = '\0';
		}
		t_reencode(&inv, lower);
		n++;
	}
	cr_assert_geq(n, 6, "only %d examples re-encoded", n);
}

Test(bolt11, donation_example_fields)
{
	struct bolt11 inv;

	t_decode_ok(&inv, t_vec("Please make a donation"));
	cr_assert_str_eq(inv.currency, "bc");
	cr_assert_not(inv.has_amount);
	cr_assert_eq(inv.timestamp, SPEC_TS);
	cr_assert_str_eq(t_hex(inv.payment_hash, 32), SPEC_HASH);
	cr_assert_str_eq(inv.description, "Please consider supporting this project");
	cr_assert_eq(inv.expiry, 3600);
	cr_assert_eq(inv.min_final_cltv, 18);
	cr_assert(bolt11_feature_get(&inv, 8));
	cr_assert(bolt11_feature_get(&inv, 14));
	cr_assert_eq(inv.n_skipped, 0);
}

Test(bolt11, coffee_examples_amount_expiry_and_utf8)
{
	struct bolt11 inv;

	t_decode_ok(&inv, t_vec("Please send $3 for a cup of coffee"));
	cr_assert(inv.has_amount);
	cr_assert_eq(inv.amount_msat, 250000000ull);
	cr_assert_str_eq(inv.description, "1 cup coffee");
	cr_assert_eq(inv.expiry, 60);

	t_decode_ok(&inv, t_vec("Please send 0.0025 BTC for a cup of nonsense"));
	cr_assert_str_eq(inv.description, "ナンセンス 1杯");
}

Test(bolt11, hashed_description_example)
{
	struct bolt11 inv;

	t_decode_ok(&inv, t_vec("Now send $24"));
	cr_assert_eq(inv.amount_msat, 2000000000ull);
	cr_assert(inv.has_description_hash);
	cr_assert_not(inv.has_description);
	cr_assert_str_eq(t_hex(inv.description_hash, 32),
			 "3925b6f67e2c340036ed12093dd44e0368df1b6ea26c53dbe4811f58fd5db8c1");
}

Test(bolt11, fallback_and_routing_examples_skip_what_they_must)
{
	const char *titles[] = { "The same, on testnet",
				 "On mainnet, with fallback address",
				 "On mainnet, with fallback (P2SH)",
				 "On mainnet, with fallback (P2WPKH)",
				 "On mainnet, with fallback (P2WSH)",
				 "On mainnet, with fallback (P2TR)" };

	for (size_t i = 0; i < sizeof(titles) / sizeof(titles[0]); i++) {
		struct bolt11 inv;

		t_decode_ok(&inv, t_vec(titles[i]));
		cr_assert_str_eq(t_hex(inv.payment_hash, 32), SPEC_HASH);
		cr_assert_eq(inv.amount_msat, 2000000000ull);
		cr_assert(inv.n_skipped > 0, "%s: f/r fields not counted as skipped", titles[i]);
	}
	{
		struct bolt11 inv;

		t_decode_ok(&inv, t_vec("The same, on testnet"));
		cr_assert_str_eq(inv.currency, "tb");
	}
}

Test(bolt11, pico_amount_example)
{
	struct bolt11 inv;

	t_decode_ok(&inv, t_vec("Please send 0.00967878534"));
	cr_assert_eq(inv.amount_msat, 967878534ull);
	cr_assert_eq(inv.timestamp, 1572468703ull);
	cr_assert_eq(inv.expiry, 604800);
	cr_assert_eq(inv.min_final_cltv, 10);
	cr_assert_str_eq(t_hex(inv.payment_hash, 32),
			 "462264ede7e14047e9b249da94fefc47f41f7d02ee9b091815a5506bc8abf75f");
	cr_assert_eq(strncmp(inv.description, "Blockstream Store: 88.85 USD", 28), 0);
}

Test(bolt11, features_example_and_upper_case)
{
	struct bolt11 inv, up;

	t_decode_ok(&inv, t_vec("Please send $30 for coffee beans"));
	cr_assert_eq(inv.amount_msat, 2500000000ull);
	cr_assert_str_eq(t_hex(inv.payment_secret, 32), SPEC_SECRET);
	cr_assert(bolt11_feature_get(&inv, 8));
	cr_assert(bolt11_feature_get(&inv, 14));
	cr_assert(bolt11_feature_get(&inv, 99));
	cr_assert_not(bolt11_feature_get(&inv, 9));
	cr_assert_eq(inv.feature_groups, 20);

	t_decode_ok(&up, t_vec("Same, but all upper case"));
	cr_assert_str_eq(t_hex(up.payment_hash, 32), t_hex(inv.payment_hash, 32));
	cr_assert_arr_eq(up.signature, inv.signature, 64);
}

Test(bolt11, fields_that_must_be_ignored_are_ignored)
{
	struct bolt11 inv;

	t_decode_ok(&inv, t_vec("Same, but including fields which must be ignored"));
	cr_assert_str_eq(t_hex(inv.payment_hash, 32), SPEC_HASH);
	cr_assert_str_eq(t_hex(inv.payment_secret, 32), SPEC_SECRET);
	cr_assert_not(inv.has_description_hash);
	cr_assert_not(inv.has_node_id);
	cr_assert_geq(inv.n_skipped, 10);
}

Test(bolt11, high_s_signature_is_recovered_without_n)
{
	struct bolt11 inv;

	t_decode_ok(&inv, t_vec("Public-key recovery with high-S signature"));
	cr_assert_eq(inv.recovery_id, 1);
	cr_assert_str_eq(t_hex(inv.signature, 64),
			 "8d3ce9e28357337f62da0162d9454df827f83cfe499aeb1c1db349d4d8112742"
			 "a1bcb35d66d6bf93dc445e51753935cc32a3a411efd8a7c7bd85b25815a01b50");
}

Test(bolt11, invalid_examples_are_refused_with_the_right_error)
{
	static const struct {
		const char *title;
		int err;
	} want[] = {
		{ "Same, but adding invalid unknown feature 100", -PAY_E_INVOICE_FORMAT },
		{ "Bech32 checksum is invalid", -PAY_E_INVOICE_FORMAT },
		{ "Malformed bech32 string (no 1)", -PAY_E_INVOICE_FORMAT },
		{ "Malformed bech32 string (mixed case)", -PAY_E_INVOICE_FORMAT },
		{ "Signature is not recoverable", -PAY_E_INVOICE_SIG },
		{ "String is too short", -PAY_E_INVOICE_FORMAT },
		{ "Invalid multiplier", -PAY_E_INVOICE_FORMAT },
		{ "Invalid sub-millisatoshi precision", -PAY_E_INVOICE_FORMAT },
		{ "Missing required `s` field", -PAY_E_INVOICE_FORMAT },
		{ "Non canonical signature (high-S) with 'n' field defined", -PAY_E_INVOICE_SIG },
	};
	int n = 0;

	for (size_t i = 0; i < N_VECTORS; i++) {
		struct bolt11 inv;
		int expect = 0;

		if (bolt11_vectors[i].valid) {
			continue;
		}
		for (size_t j = 0; j < sizeof(want) / sizeof(want[0]); j++) {
			if (!strncmp(bolt11_vectors[i].title, want[j].title,
				     strlen(want[j].title))) {
				expect = want[j].err;
			}
		}
		cr_assert_neq(expect, 0, "no expectation for %s", bolt11_vectors[i].title);
		cr_assert_eq(
			bolt11_decode(&inv, bolt11_vectors[i].str, strlen(bolt11_vectors[i].str)),
			expect, "%s", bolt11_vectors[i].title);
		n++;
	}
	cr_assert_eq(n, 10);
}

Test(bolt11, every_single_character_change_is_caught)
{
	const char *ex = t_vec("Please send $3 for a cup of coffee");
	char s[BOLT11_MAX_LEN];

	for (size_t i = 0; i < strlen(ex); i++) {
		struct bolt11 inv;

		strcpy(s, ex);
		s[i] = s[i] == 'q' ? 'p' : 'q';
		cr_assert_neq(bolt11_decode(&inv, s, strlen(s)), 0, "change at %zu accepted", i);
	}
}

Test(bolt11, n_field_must_match_the_signer)
{
	uint8_t priv[32], other[32];
	struct bolt11 inv;
	char out[BOLT11_MAX_LEN];

	t_unhex(priv, sizeof(priv), SPEC_PRIV);
	memset(other, 0x42, sizeof(other));
	t_decode_ok(&inv, t_vec("Please send $3 for a cup of coffee"));
	/* Sign with another key: the recovered payee is that other key, not the spec node. */
	cr_assert_gt(bolt11_encode(out, sizeof(out), &inv, other), 0);
	cr_assert_eq(bolt11_decode(&inv, out, strlen(out)), 0);
	cr_assert_str_neq(t_hex(inv.node_id, 33), SPEC_NODE);
}

Test(bolt11, encoder_rejects_what_it_cannot_represent)
{
	uint8_t priv[32];
	struct bolt11 inv;
	char out[BOLT11_MAX_LEN];

	t_unhex(priv, sizeof(priv), SPEC_PRIV);
	t_decode_ok(&inv, t_vec("Please send $3 for a cup of coffee"));
	inv.timestamp = 1ull << 35;
	cr_assert_eq(bolt11_encode(out, sizeof(out), &inv, priv), -EINVAL);
	t_decode_ok(&inv, t_vec("Please send $3 for a cup of coffee"));
	inv.has_payment_hash = false;
	cr_assert_eq(bolt11_encode(out, sizeof(out), &inv, priv), -EINVAL);
	t_decode_ok(&inv, t_vec("Please send $3 for a cup of coffee"));
	strcpy(inv.currency, "xx");
	cr_assert_eq(bolt11_encode(out, sizeof(out), &inv, priv), -EINVAL);
	t_decode_ok(&inv, t_vec("Please send $3 for a cup of coffee"));
	cr_assert_eq(bolt11_encode(out, 50, &inv, priv), -NATX_E_TOO_BIG);
	memset(priv, 0, sizeof(priv)); /* not a valid secret key */
	cr_assert_eq(bolt11_encode(out, sizeof(out), &inv, priv), -EINVAL);
}

Test(bolt11, amounts_use_the_shortest_multiplier_and_round_trip)
{
	static const uint64_t msats[] = { 1,
					  10,
					  100,
					  150,
					  100000,
					  123456789,
					  100000000,
					  100000000000ull,
					  2100000000000000000ull };
	uint8_t priv[32];

	t_unhex(priv, sizeof(priv), SPEC_PRIV);
	for (size_t i = 0; i < sizeof(msats) / sizeof(msats[0]); i++) {
		struct bolt11 inv, back;
		char out[BOLT11_MAX_LEN];

		t_decode_ok(&inv, t_vec("Please send $3 for a cup of coffee"));
		strcpy(inv.currency, "bcrt");
		inv.amount_msat = msats[i];
		cr_assert_gt(bolt11_encode(out, sizeof(out), &inv, priv), 0);
		cr_assert_eq(strncmp(out, "lnbcrt", 6), 0);
		t_decode_ok(&back, out);
		cr_assert_eq(back.amount_msat, msats[i], "amount %llu",
			     (unsigned long long)msats[i]);
	}
}
