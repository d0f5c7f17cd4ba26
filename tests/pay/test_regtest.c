// SPDX-License-Identifier: MIT
/*
 * The regtest payment backend (control/pay/pay_regtest.c): real BOLT11 invoices that our own
 * decoder accepts, random preimages, settle by operator, expiry with an injected clock, and
 * the whole L402 purchase flow on top of it.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>

#include "bolt11.h"
#include "l402.h"
#include "natx/err.h"
#include "pay_backend.h"
#include "pay_crypto.h"
#include "pay_err.h"
#include "pay_t.h"

static int64_t t_clock(void *arg)
{
	return *(int64_t *)arg;
}

Test(regtest, invoices_are_valid_bolt11_signed_by_the_backend_node)
{
	int64_t now = 1800000000;
	int err = 0;
	struct pay_backend *b = pay_regtest_new(NULL, 0, t_clock, &now, &err);
	struct pay_invoice in;
	struct bolt11 dec;
	uint8_t h[32];

	cr_assert_not_null(b, "%d", err);
	cr_assert_not(b->ops->moves_real_money);
	cr_assert_str_eq(b->ops->name, "regtest");
	cr_assert_eq(pay_backend_invoice_create(b, 21000, "natx tunnel tcp 1h", 600, &in), 0);
	cr_assert_eq(strncmp(in.bolt11, "lnbcrt210n1", 11), 0, "%s", in.bolt11);
	cr_assert_eq(bolt11_decode(&dec, in.bolt11, strlen(in.bolt11)), 0);
	cr_assert_arr_eq(dec.node_id, b->node_id, 33);
	cr_assert_str_eq(dec.currency, "bcrt");
	cr_assert_eq(dec.amount_msat, 21000);
	cr_assert_eq(dec.timestamp, (uint64_t)now);
	cr_assert_eq(dec.expiry, 600);
	cr_assert_eq(dec.min_final_cltv, 80);
	cr_assert_str_eq(dec.description, "natx tunnel tcp 1h");
	cr_assert_arr_eq(dec.payment_hash, in.payment_hash, 32);
	cr_assert_arr_eq(dec.payment_secret, in.payment_secret, 32);
	cr_assert(bolt11_feature_get(&dec, BOLT11_F_PAYMENT_SECRET));
	pay_sha256(h, in.preimage, 32);
	cr_assert_arr_eq(h, in.payment_hash, 32);
	cr_assert_eq(in.state, PAY_INVOICE_OPEN);
	pay_backend_free(b);
}

Test(regtest, fixed_node_key_gives_that_node_id)
{
	uint8_t priv[32];
	int err = 0;
	struct pay_backend *b;

	t_unhex(priv, sizeof(priv),
		"e126f68f7eafcc8b74f54d269fe206be715000f94dac067d1c04a8ca3b2db734");
	b = pay_regtest_new(priv, 0, NULL, NULL, &err);
	cr_assert_not_null(b);
	cr_assert_str_eq(t_hex(b->node_id, 33),
			 "03e7156ae33b0a208d0744199163177e909e80176e55d97a2f221ede0f934dd9ad");
	pay_backend_free(b);
	memset(priv, 0, sizeof(priv));
	cr_assert_null(pay_regtest_new(priv, 0, NULL, NULL, &err));
	cr_assert_eq(err, -EINVAL);
	pay_backend_free(NULL);
}

Test(regtest, preimages_are_random_and_distinct)
{
	int err = 0;
	struct pay_backend *b = pay_regtest_new(NULL, 0, NULL, NULL, &err);
	struct pay_invoice a, c;

	cr_assert_not_null(b);
	cr_assert_eq(pay_backend_invoice_create(b, 1000, NULL, 0, &a), 0);
	cr_assert_eq(pay_backend_invoice_create(b, 1000, NULL, 0, &c), 0);
	cr_assert_arr_neq(a.preimage, c.preimage, 32);
	cr_assert_arr_neq(a.payment_hash, c.payment_hash, 32);
	cr_assert_str_neq(a.bolt11, c.bolt11);
	cr_assert_eq(a.expiry, 3600);
	pay_backend_free(b);
}

Test(regtest, settle_lookup_and_expiry)
{
	int64_t now = 1800000000;
	int err = 0;
	struct pay_backend *b = pay_regtest_new(NULL, 0, t_clock, &now, &err);
	struct pay_invoice in, got, late;
	uint8_t unknown[32] = { 1 };

	cr_assert_eq(pay_backend_invoice_create(b, 5000, "x", 60, &in), 0);
	cr_assert_eq(pay_backend_invoice_create(b, 5000, "y", 60, &late), 0);
	cr_assert_eq(pay_backend_invoice_lookup(b, in.payment_hash, &got), 0);
	cr_assert_eq(got.state, PAY_INVOICE_OPEN);
	now += 30;
	cr_assert_eq(pay_backend_invoice_settle(b, in.payment_hash), 0);
	cr_assert_eq(pay_backend_invoice_settle(b, in.payment_hash), 0); /* idempotent */
	cr_assert_eq(pay_backend_invoice_lookup(b, in.payment_hash, &got), 0);
	cr_assert_eq(got.state, PAY_INVOICE_SETTLED);
	cr_assert_eq(got.settled_at, now);
	now += 31;
	cr_assert_eq(pay_backend_invoice_lookup(b, in.payment_hash, &got), 0);
	cr_assert_eq(got.state, PAY_INVOICE_SETTLED, "a paid invoice stays paid");
	cr_assert_eq(pay_backend_invoice_settle(b, late.payment_hash), -ETIMEDOUT);
	cr_assert_eq(pay_backend_invoice_lookup(b, late.payment_hash, &got), 0);
	cr_assert_eq(got.state, PAY_INVOICE_EXPIRED);
	cr_assert_eq(pay_backend_invoice_lookup(b, unknown, &got), -NATX_E_NOT_FOUND);
	cr_assert_eq(pay_backend_invoice_settle(b, unknown), -NATX_E_NOT_FOUND);
	pay_backend_free(b);
}

Test(regtest, bad_requests_and_a_full_table)
{
	int64_t now = 1800000000;
	int err = 0;
	struct pay_backend *b = pay_regtest_new(NULL, 2, t_clock, &now, &err);
	struct pay_invoice in;
	char memo[PAY_MEMO_MAX + 2];

	memset(memo, 'm', sizeof(memo) - 1);
	memo[sizeof(memo) - 1] = '\0';
	cr_assert_eq(pay_backend_invoice_create(b, 0, NULL, 0, &in), -EINVAL);
	cr_assert_eq(pay_backend_invoice_create(b, 1, memo, 0, &in), -EINVAL);
	cr_assert_eq(pay_backend_invoice_create(b, 1000, NULL, 10, &in), 0);
	cr_assert_eq(pay_backend_invoice_create(b, 1000, NULL, 10, &in), 0);
	cr_assert_eq(pay_backend_invoice_create(b, 1000, NULL, 10, &in), -NATX_E_LIMIT);
	now += 10; /* both expire unpaid: pruned to make room */
	cr_assert_eq(pay_backend_invoice_create(b, 1000, NULL, 10, &in), 0);
	pay_backend_free(b);
}

/* The whole purchase: 402 challenge, payment (operator settle), Authorization, verify. */
struct t_keys {
	uint8_t token_id[32], key[32];
};

static int t_keys_get(void *arg, const struct l402_id *id, uint8_t key[32])
{
	struct t_keys *k = arg;

	if (memcmp(k->token_id, id->token_id, 32)) {
		return -NATX_E_NOT_FOUND;
	}
	memcpy(key, k->key, 32);
	return 0;
}

Test(regtest, l402_purchase_flow_end_to_end)
{
	int64_t now = 1800000000;
	int err = 0;
	struct pay_backend *b = pay_regtest_new(NULL, 0, t_clock, &now, &err);
	struct pay_invoice in, got;
	struct t_keys keys;
	struct l402_id id;
	struct l402_auth auth;
	struct l402_grant g;
	struct macaroon m;
	struct l402_request req = { .service = "tunnel", .capability = "udp", .now = now };
	uint8_t mac[1024];
	size_t mac_len;
	char hdr[4096];
	long n;

	/* server: invoice + token committed to its payment hash */
	cr_assert_eq(pay_backend_invoice_create(b, 100000, "natx tunnel", 600, &in), 0);
	cr_assert_eq(pay_random(keys.key, 32), 0);
	cr_assert_eq(pay_random(keys.token_id, 32), 0);
	id.version = 0;
	memcpy(id.payment_hash, in.payment_hash, 32);
	memcpy(id.token_id, keys.token_id, 32);
	cr_assert_eq(l402_mint(mac, sizeof(mac), &mac_len, keys.key, &id,
			       &(struct l402_terms){ .service = "tunnel",
						     .capabilities = "tcp,udp",
						     .valid_until = now + 3600,
						     .max_bytes = 1 << 30 }),
		     0);
	n = l402_challenge_format(hdr, sizeof(hdr), "L402", mac, mac_len, in.bolt11);
	cr_assert_gt(n, 0);
	cr_assert_not_null(strstr(hdr, in.bolt11));

	/* not paid yet: the backend says open, natxd answers 402 */
	cr_assert_eq(pay_backend_invoice_lookup(b, in.payment_hash, &got), 0);
	cr_assert_eq(got.state, PAY_INVOICE_OPEN);

	/* operator settles (natxctl invoice settle HASH); the payer learns the preimage */
	cr_assert_eq(pay_backend_invoice_settle(b, in.payment_hash), 0);
	n = l402_auth_format(hdr, sizeof(hdr), mac, mac_len, got.preimage);
	cr_assert_gt(n, 0);

	/* server: parse, decode, verify, confirm settled */
	cr_assert_eq(l402_auth_parse(&auth, hdr, (size_t)n), 0);
	cr_assert_eq(macaroon_decode(&m, auth.mac, auth.mac_len), 0);
	cr_assert_eq(l402_verify(&m, auth.preimage, t_keys_get, &keys, &req, &g), 0);
	cr_assert_eq(pay_backend_invoice_lookup(b, g.id.payment_hash, &got), 0);
	cr_assert_eq(got.state, PAY_INVOICE_SETTLED);
	cr_assert_eq(g.max_bytes, 1u << 30);
	pay_backend_free(b);
}
