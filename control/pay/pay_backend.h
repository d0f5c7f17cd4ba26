/* SPDX-License-Identifier: MIT */
/*
 * Payment backends: where invoices come from and who says they are paid. natxd talks to one
 * backend through this vtable (style.md rule 19: runtime-selected, so a vtable).
 *
 * The embedded default is the regtest backend (pay_regtest_new): it creates real,
 * correctly signed BOLT11 invoices on the "bcrt" (Bitcoin regtest) currency with random
 * preimages, and marks one paid only when pay_backend_invoice_settle() is called (natxctl
 * invoice settle HASH, or a test). IT MOVES NO REAL MONEY: nothing is routed, no channel or
 * node exists behind its node key, and a "settled" invoice only means an operator said so.
 * A future lnd backend implements the same ops.
 */
#ifndef NATX_PAY_BACKEND_H
#define NATX_PAY_BACKEND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bolt11.h"

enum pay_invoice_state {
	PAY_INVOICE_OPEN = 0, /* created, not paid, not expired */
	PAY_INVOICE_SETTLED = 1, /* paid (regtest: settled by the operator) */
	PAY_INVOICE_EXPIRED = 2, /* past created + expiry without being paid */
};

enum {
	PAY_INVOICE_STR_MAX = 1024, /* BOLT11 strings this backend produces fit in this */
	PAY_MEMO_MAX = 256,
};

struct pay_invoice {
	uint8_t payment_hash[32]; /* sha256(preimage) */
	uint8_t preimage[32]; /* the backend knows it (it created the invoice) */
	uint8_t payment_secret[32]; /* BOLT11 s field */
	uint64_t amount_msat;
	int64_t created; /* unix seconds */
	uint32_t expiry; /* seconds after created */
	enum pay_invoice_state state;
	int64_t settled_at; /* unix seconds; 0 while not settled */
	char bolt11[PAY_INVOICE_STR_MAX]; /* the invoice string */
};

struct pay_backend;

struct pay_backend_ops {
	const char *name;
	bool moves_real_money;
	int (*invoice_create)(struct pay_backend *b, uint64_t amount_msat, const char *memo,
			      uint32_t expiry, struct pay_invoice *out);
	int (*invoice_lookup)(struct pay_backend *b, const uint8_t hash[32],
			      struct pay_invoice *out);
	int (*invoice_settle)(struct pay_backend *b, const uint8_t hash[32]);
	void (*destroy)(struct pay_backend *b);
};

struct pay_backend {
	const struct pay_backend_ops *ops;
	uint8_t node_id[BOLT11_PUBKEY_LEN]; /* payee key invoices are signed with */
};

/* Clock for backends and tests: unix seconds. NULL means time(NULL). */
typedef int64_t (*pay_clock_fn)(void *arg);

/*
 * pay_regtest_new - the embedded regtest backend. node_seckey: 32-byte secp256k1 secret key
 * to sign with, or NULL for a fresh random one. max_invoices bounds the table (0: 65536);
 * expired unpaid invoices are pruned when it is full. Returns the backend (free with
 * pay_backend_free) or NULL with *err = -ENOMEM / -EINVAL (bad key) / -EIO (no randomness).
 */
struct pay_backend *pay_regtest_new(const uint8_t *node_seckey, size_t max_invoices,
				    pay_clock_fn clock, void *clock_arg, int *err);

/*
 * pay_backend_invoice_create - new invoice for amount_msat (> 0) with a memo (d field, at most
 * PAY_MEMO_MAX bytes, may be NULL) valid for expiry seconds (0: 3600). Fills *out.
 * Returns 0, -EINVAL, -NATX_E_LIMIT (table full of live invoices), -EIO or -ENOMEM.
 */
int pay_backend_invoice_create(struct pay_backend *b, uint64_t amount_msat, const char *memo,
			       uint32_t expiry, struct pay_invoice *out);

/* pay_backend_invoice_lookup - current state of the invoice with this payment hash.
 * Returns 0 or -NATX_E_NOT_FOUND. */
int pay_backend_invoice_lookup(struct pay_backend *b, const uint8_t hash[32],
			       struct pay_invoice *out);

/*
 * pay_backend_invoice_settle - mark the invoice paid. Idempotent for a settled invoice.
 * Returns 0, -NATX_E_NOT_FOUND, or -ETIMEDOUT when it expired before being settled.
 */
int pay_backend_invoice_settle(struct pay_backend *b, const uint8_t hash[32]);

/* pay_backend_free - destroy; NULL is a no-op. Wipes preimages. */
void pay_backend_free(struct pay_backend *b);

#endif
