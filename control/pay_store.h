/* SPDX-License-Identifier: MIT */
/*
 * SQLite side of the paid tunnel service (docs/l402.md): issued tokens, payment receipts and
 * tunnel registrations, in the tables of store.c (migration 1). Token ids and payment hashes
 * are stored as lowercase hex. A token row exists once its tunnel is registered; revoking it
 * (revoked = 1) refuses it from then on at the HTTP endpoint and in connect. Root keys are
 * never stored: they are derived from natxd's root key (l402_svc.c).
 */
#ifndef NATX_CTL_PAY_STORE_H
#define NATX_CTL_PAY_STORE_H

#include <stdbool.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "store.h"

enum {
	PAY_HEX32_LEN = 65, /* 32 bytes as hex + NUL */
	PAY_NAME_MAX = 64, /* service name, NUL included */
	PAY_LOCAL_MAX = 128, /* local address of the node's service, NUL included */
	PAY_MAC_B64_MAX = 2048, /* base64 macaroon, NUL included */
	PAY_CAVEATS_MAX = 512, /* caveat summary text, NUL included */
};

/* One registration joined with its token. */
struct pay_reg {
	int64_t id;
	char node_id[CTL_TARGET_MAX];
	char service_name[PAY_NAME_MAX];
	char proto[4]; /* "tcp" or "udp" */
	char local_addr[PAY_LOCAL_MAX];
	unsigned public_port;
	char token_id[PAY_HEX32_LEN];
	char state[16]; /* "active" or "revoked" */
	uint64_t created_at;
	uint64_t expires_at; /* unix seconds, 0 = no expiry */
	char macaroon[PAY_MAC_B64_MAX]; /* the token (base64), the service credential */
	bool revoked; /* the token is revoked */
};

/* What pay_store_register writes besides the registration. */
struct pay_issue {
	const char *macaroon; /* base64 */
	const char *payment_hash; /* hex */
	const char *preimage; /* hex */
	const char *caveats; /* human summary of the caveats */
	uint64_t amount_sats;
	uint64_t settled_at;
	const char *public_host; /* host of the node's proxy address */
	unsigned port_min, port_max; /* public port range */
	uint64_t now;
};

/*
 * pay_store_register - in one transaction: allocate the lowest public port of the range not
 * held by a live registration (active and not expired), insert the registration (@r: node_id,
 * service_name, proto, local_addr, token_id, expires_at in; id, public_port, state,
 * created_at out), its token, the payment receipt, and mark the node as offering a tunnel
 * with that proxy address. Returns 0, -NATX_E_LIMIT (no free port), -EEXIST (the node already
 * has a live service of that name) or -EIO. Nothing is written on failure.
 */
int pay_store_register(struct store *st, struct pay_reg *r, const struct pay_issue *is);

/* pay_store_reg_by_token - the registration of token @token_id (hex). 0, -ENOENT, -EIO. */
int pay_store_reg_by_token(struct store *st, const char *token_id, struct pay_reg *out);

/* pay_store_reg_by_node - the newest registration of @node_id. 0, -ENOENT, -EIO. */
int pay_store_reg_by_node(struct store *st, const char *node_id, struct pay_reg *out);

/*
 * pay_store_token_state - does token @token_id (hex) exist, and is it revoked? 0 with
 * @revoked set, -ENOENT, or -EIO.
 */
int pay_store_token_state(struct store *st, const char *token_id, bool *revoked);

/*
 * pay_store_token_revoke - revoke the token whose id is @id or starts with @id (at least 8 hex
 * digits, unique), and mark its registration revoked. The full id is copied to @full (room
 * PAY_HEX32_LEN). Returns 0, -ENOENT, -EEXIST (prefix names several tokens), -EINVAL (not
 * 8..64 hex digits) or -EIO.
 */
int pay_store_token_revoke(struct store *st, const char *id, uint64_t now, char *full);

/* pay_store_tokens_json - every token (without the macaroon) as an array; NULL on error. */
cJSON *pay_store_tokens_json(struct store *st);

/* pay_store_regs_json - every registration as an array, @now decides "expired"; NULL on error. */
cJSON *pay_store_regs_json(struct store *st, uint64_t now);

/*
 * pay_store_receipt_json - the receipt of @payment_hash (hex) as an object, or NULL when there
 * is none.
 */
cJSON *pay_store_receipt_json(struct store *st, const char *payment_hash);

/* pay_store_receipts_json - every receipt as an array; NULL on error. */
cJSON *pay_store_receipts_json(struct store *st);

#endif
