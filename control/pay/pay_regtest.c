// SPDX-License-Identifier: MIT
/*
 * The regtest payment backend (pay_backend.h). It signs real BOLT11 invoices on currency
 * "bcrt" with its own node key and random preimages, keeps them in memory, and settles them
 * only when told to. It moves no real money.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <secp256k1.h>

#include "natx/err.h"
#include "natx/log.h"
#include "pay_backend.h"
#include "pay_crypto.h"

enum {
	REGTEST_DEFAULT_MAX = 65536,
	REGTEST_DEFAULT_EXPIRY = 3600,
	REGTEST_MIN_FINAL_CLTV = 80,
};

struct regtest {
	struct pay_backend base; /* must be first */
	uint8_t seckey[BOLT11_SECKEY_LEN];
	struct pay_invoice *inv; /* table, grown by doubling up to max */
	size_t n, cap, max;
	pay_clock_fn clock;
	void *clock_arg;
};

static int64_t regtest_now(const struct regtest *rt)
{
	return rt->clock ? rt->clock(rt->clock_arg) : (int64_t)time(NULL);
}

/* regtest_state_refresh - OPEN invoices past their expiry become EXPIRED. */
static void regtest_state_refresh(const struct regtest *rt, struct pay_invoice *in)
{
	if (in->state == PAY_INVOICE_OPEN && regtest_now(rt) >= in->created + (int64_t)in->expiry) {
		in->state = PAY_INVOICE_EXPIRED;
	}
}

static struct pay_invoice *regtest_find(struct regtest *rt, const uint8_t hash[32])
{
	for (size_t i = 0; i < rt->n; i++) {
		if (!memcmp(rt->inv[i].payment_hash, hash, 32)) {
			regtest_state_refresh(rt, &rt->inv[i]);
			return &rt->inv[i];
		}
	}
	return NULL;
}

/* regtest_prune - drop expired unpaid invoices to make room. */
static void regtest_prune(struct regtest *rt)
{
	size_t o = 0;

	for (size_t i = 0; i < rt->n; i++) {
		regtest_state_refresh(rt, &rt->inv[i]);
		if (rt->inv[i].state == PAY_INVOICE_EXPIRED) {
			pay_wipe(&rt->inv[i], sizeof(rt->inv[i]));
			continue;
		}
		if (o != i) {
			rt->inv[o] = rt->inv[i];
			pay_wipe(&rt->inv[i], sizeof(rt->inv[i]));
		}
		o++;
	}
	rt->n = o;
}

/* regtest_slot - a free table slot, growing or pruning as needed. */
static struct pay_invoice *regtest_slot(struct regtest *rt)
{
	if (rt->n == rt->cap) {
		size_t ncap = rt->cap ? rt->cap * 2 : 16;
		struct pay_invoice *ni;

		if (rt->n >= rt->max) {
			regtest_prune(rt);
			if (rt->n >= rt->max) {
				return NULL;
			}
			return &rt->inv[rt->n];
		}
		if (ncap > rt->max) {
			ncap = rt->max;
		}
		ni = calloc(ncap, sizeof(*ni));
		if (!ni) {
			return NULL;
		}
		if (rt->n) {
			memcpy(ni, rt->inv, rt->n * sizeof(*ni));
			pay_wipe(rt->inv, rt->n * sizeof(*ni));
		}
		free(rt->inv);
		rt->inv = ni;
		rt->cap = ncap;
	}
	return &rt->inv[rt->n];
}

static int regtest_invoice_create(struct pay_backend *b, uint64_t amount_msat, const char *memo,
				  uint32_t expiry, struct pay_invoice *out)
{
	struct regtest *rt = (struct regtest *)b;
	struct pay_invoice *slot, in;
	struct bolt11 b11;
	size_t mlen = memo ? strlen(memo) : 0;
	long len;
	int err;

	if (amount_msat == 0 || mlen > PAY_MEMO_MAX) {
		return -EINVAL;
	}
	memset(&in, 0, sizeof(in));
	memset(&b11, 0, sizeof(b11));
	err = pay_random(in.preimage, sizeof(in.preimage)) ?:
		      pay_random(in.payment_secret, sizeof(in.payment_secret));
	if (err) {
		goto out_wipe;
	}
	pay_sha256(in.payment_hash, in.preimage, sizeof(in.preimage));
	in.amount_msat = amount_msat;
	in.created = regtest_now(rt);
	in.expiry = expiry ? expiry : REGTEST_DEFAULT_EXPIRY;
	in.state = PAY_INVOICE_OPEN;

	strcpy(b11.currency, "bcrt");
	b11.has_amount = true;
	b11.amount_msat = amount_msat;
	b11.timestamp = (uint64_t)in.created;
	b11.has_payment_hash = true;
	memcpy(b11.payment_hash, in.payment_hash, 32);
	b11.has_payment_secret = true;
	memcpy(b11.payment_secret, in.payment_secret, 32);
	b11.has_description = true;
	memcpy(b11.description, memo ? memo : "", mlen);
	b11.description_len = mlen;
	b11.has_expiry = true;
	b11.expiry = in.expiry;
	b11.has_min_final_cltv = true;
	b11.min_final_cltv = REGTEST_MIN_FINAL_CLTV;
	bolt11_feature_set(&b11, BOLT11_F_VAR_ONION);
	bolt11_feature_set(&b11, BOLT11_F_PAYMENT_SECRET);
	bolt11_feature_set(&b11, BOLT11_F_BASIC_MPP + 1);
	len = bolt11_encode(in.bolt11, sizeof(in.bolt11), &b11, rt->seckey);
	if (len < 0) {
		err = (int)len;
		goto out_wipe;
	}
	slot = regtest_slot(rt);
	if (!slot) {
		err = rt->n >= rt->max ? -NATX_E_LIMIT : -ENOMEM;
		goto out_wipe;
	}
	*slot = in;
	rt->n++;
	*out = in;
	pr_info("pay", "regtest invoice created: %llu msat, expiry %u s (regtest: no real money)",
		(unsigned long long)amount_msat, in.expiry);
	err = 0;

out_wipe:
	pay_wipe(&in, sizeof(in));
	pay_wipe(&b11, sizeof(b11));
	return err;
}

static int regtest_invoice_lookup(struct pay_backend *b, const uint8_t hash[32],
				  struct pay_invoice *out)
{
	struct pay_invoice *in = regtest_find((struct regtest *)b, hash);

	if (!in) {
		return -NATX_E_NOT_FOUND;
	}
	*out = *in;
	return 0;
}

static int regtest_invoice_settle(struct pay_backend *b, const uint8_t hash[32])
{
	struct regtest *rt = (struct regtest *)b;
	struct pay_invoice *in = regtest_find(rt, hash);

	if (!in) {
		return -NATX_E_NOT_FOUND;
	}
	if (in->state == PAY_INVOICE_EXPIRED) {
		return -ETIMEDOUT;
	}
	if (in->state == PAY_INVOICE_OPEN) {
		in->state = PAY_INVOICE_SETTLED;
		in->settled_at = regtest_now(rt);
		pr_info("pay", "regtest invoice settled by operator (no real money moved)");
	}
	return 0;
}

static void regtest_destroy(struct pay_backend *b)
{
	struct regtest *rt = (struct regtest *)b;

	if (rt->inv) {
		pay_wipe(rt->inv, rt->cap * sizeof(*rt->inv));
	}
	free(rt->inv);
	pay_wipe(rt, sizeof(*rt));
	free(rt);
}

static const struct pay_backend_ops regtest_ops = {
	.name = "regtest",
	.moves_real_money = false,
	.invoice_create = regtest_invoice_create,
	.invoice_lookup = regtest_invoice_lookup,
	.invoice_settle = regtest_invoice_settle,
	.destroy = regtest_destroy,
};

struct pay_backend *pay_regtest_new(const uint8_t *node_seckey, size_t max_invoices,
				    pay_clock_fn clock, void *clock_arg, int *err)
{
	const secp256k1_context *ctx = secp256k1_context_static;
	struct regtest *rt = calloc(1, sizeof(*rt));
	secp256k1_pubkey pk;
	size_t klen = BOLT11_PUBKEY_LEN;
	int e = 0;

	if (!rt) {
		*err = -ENOMEM;
		return NULL;
	}
	if (node_seckey) {
		memcpy(rt->seckey, node_seckey, sizeof(rt->seckey));
	} else {
		do {
			e = pay_random(rt->seckey, sizeof(rt->seckey));
		} while (!e && !secp256k1_ec_seckey_verify(ctx, rt->seckey));
		if (e) {
			goto out_free;
		}
	}
	if (!secp256k1_ec_seckey_verify(ctx, rt->seckey)) {
		e = -EINVAL;
		goto out_free;
	}
	/* Public key derivation needs a signing-capable context. */
	{
		secp256k1_context *sctx = secp256k1_context_create(SECP256K1_CONTEXT_NONE);

		if (!sctx) {
			e = -ENOMEM;
			goto out_free;
		}
		if (!secp256k1_ec_pubkey_create(sctx, &pk, rt->seckey) ||
		    !secp256k1_ec_pubkey_serialize(sctx, rt->base.node_id, &klen, &pk,
						   SECP256K1_EC_COMPRESSED)) {
			e = -EINVAL;
		}
		secp256k1_context_destroy(sctx);
		if (e) {
			goto out_free;
		}
	}
	rt->base.ops = &regtest_ops;
	rt->max = max_invoices ? max_invoices : REGTEST_DEFAULT_MAX;
	rt->clock = clock;
	rt->clock_arg = clock_arg;
	return &rt->base;

out_free:
	pay_wipe(rt, sizeof(*rt));
	free(rt);
	*err = e;
	return NULL;
}

int pay_backend_invoice_create(struct pay_backend *b, uint64_t amount_msat, const char *memo,
			       uint32_t expiry, struct pay_invoice *out)
{
	return b->ops->invoice_create(b, amount_msat, memo, expiry, out);
}

int pay_backend_invoice_lookup(struct pay_backend *b, const uint8_t hash[32],
			       struct pay_invoice *out)
{
	return b->ops->invoice_lookup(b, hash, out);
}

int pay_backend_invoice_settle(struct pay_backend *b, const uint8_t hash[32])
{
	return b->ops->invoice_settle(b, hash);
}

void pay_backend_free(struct pay_backend *b)
{
	if (b) {
		b->ops->destroy(b);
	}
}
