/* SPDX-License-Identifier: MIT */
/*
 * natxd's payment state for the paid tunnel service (docs/l402.md): the payment backend (the
 * embedded regtest simulator: it MOVES NO REAL MONEY), natxd's L402 root key, the offers made
 * recently, and the counters of challenges, registrations and refusals.
 *
 * Root key: 32 random bytes created on first start in STATE_DIR/l402-root.key (mode 0600,
 * owned by natxd's user; a file readable by others is refused), never logged. Each token's
 * macaroon root key is HMAC-SHA256(root key, "natx-l402-token-v1" || token_id), so nothing
 * secret per token is stored; the regtest backend's node key is derived the same way, so the
 * payee is stable across restarts. A token is refused once its row in `tokens` is revoked.
 *
 * Everything runs on natxd's one thread (the regtest backend has no locking).
 */
#ifndef NATX_CTL_L402_SVC_H
#define NATX_CTL_L402_SVC_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include <cjson/cJSON.h>

#include "clock.h"
#include "config.h"
#include "l402_flow.h"
#include "ratelimit.h"
#include "store.h"

#define L402_SVC_SERVICE "tunnel" /* service name in every caveat */
#define L402_SVC_KEY_FILE "l402-root.key"

/* Why a registration was refused: one counter each (natx_l402_refused_total{reason}). */
enum l402_reason {
	L402_R_BAD_REQUEST, /* body malformed */
	L402_R_DISABLED, /* nat_traversal.enable_rathole is off */
	L402_R_HEADER, /* Authorization value malformed */
	L402_R_FORMAT, /* not a v2 macaroon / not an L402 identifier */
	L402_R_SIGNATURE, /* HMAC chain mismatch: tampered or forged */
	L402_R_PREIMAGE, /* sha256(preimage) != payment hash */
	L402_R_UNKNOWN, /* no root key for the token */
	L402_R_REVOKED, /* token revoked with natxctl token revoke */
	L402_R_CAVEAT, /* malformed caveat value */
	L402_R_SERVICE, /* token for another service or capability */
	L402_R_EXPIRED, /* past the valid_until caveat */
	L402_R_QUOTA, /* byte quota used up */
	L402_R_BANDWIDTH, /* more bandwidth asked than granted */
	L402_R_UNPAID, /* invoice not settled */
	L402_R_LIMIT, /* no free public port / invoice table full */
	L402_R_CONFLICT, /* the node already has a live service of that name */
	L402_R_INTERNAL, /* database or backend failure */
	L402_R_RATE_LIMITED, /* too many offers for one client address */
	L402_R_MAX,
};

enum { L402_SVC_OFFERS_MAX = 256 }; /* offers remembered for `invoice list` */

struct l402_svc_offer_rec {
	uint8_t hash[32];
	uint64_t amount_msat;
	uint64_t created;
	char service_type[4];
};

struct l402_svc {
	struct pay_backend *be;
	uint8_t root[32]; /* secret: never logged, wiped at close */
	struct store *st; /* borrowed */
	const struct clock *clk; /* borrowed */
	const struct natx_config *cfg; /* borrowed: natxd's live configuration */
	bool last_revoked; /* the last root-key lookup met a revoked token */
	uint64_t challenges; /* 402 answers with a fresh offer */
	uint64_t registrations; /* tunnels registered */
	uint64_t settled; /* invoices settled with natxctl invoice settle */
	uint64_t refused[L402_R_MAX];
	struct ratelimit rl; /* offers per client (rathole.offer_rate / offer_burst) */
	const char *client; /* rate-limit key of the request being handled, NULL = none */
	struct l402_svc_offer_rec offers[L402_SVC_OFFERS_MAX]; /* ring */
	unsigned noffers, next;
};

/* l402_reason_name - short label of a reason ("expired", "revoked", ...). */
const char *l402_reason_name(enum l402_reason r);

/* l402_reason_of - the reason a -PAY_E_* result stands for (revoked taken from @ps). */
enum l402_reason l402_reason_of(const struct l402_svc *ps, int err);

/*
 * l402_svc_open - load (or create on first start) the root key in @state_dir and start the
 * regtest backend. @st, @clk and @cfg are borrowed and must outlive @ps. Returns 0 or a
 * negative code with a one-line message in @err (room 256).
 */
int l402_svc_open(struct l402_svc *ps, const char *state_dir, struct store *st,
		  const struct clock *clk, const struct natx_config *cfg, char *err);

/* l402_svc_close - stop the backend and wipe the keys; safe on a zeroed struct. */
void l402_svc_close(struct l402_svc *ps);

/*
 * l402_svc_offer - a fresh offer for a tunnel of @service_type ("tcp"/"udp") on the configured
 * terms: invoice for rathole.price_msat, token with caveats services=tunnel:0,
 * tunnel_capabilities, tunnel_valid_until (token_duration_s), tunnel_max_bytes (quota_mib),
 * tunnel_bandwidth_kbps. Wipe @o afterwards. Returns 0 or the l402_offer_create codes.
 */
int l402_svc_offer(struct l402_svc *ps, const char *service_type, struct l402_offer *o);

/* l402_svc_root_key - l402_root_key_fn over @arg = struct l402_svc (revoked -> not found). */
int l402_svc_root_key(void *arg, const struct l402_id *id, uint8_t key[L402_ROOT_KEY_LEN]);

/*
 * l402_svc_settle - regtest: mark the invoice with hash @hex paid; @inv gets its state (with
 * the preimage: wipe it). 0, -EINVAL (not 64 hex digits), -NATX_E_NOT_FOUND, -ETIMEDOUT.
 */
int l402_svc_settle(struct l402_svc *ps, const char *hex, struct pay_invoice *inv);

/* l402_svc_invoices_json - recent offers with their live state, plus stored receipts. */
cJSON *l402_svc_invoices_json(struct l402_svc *ps);

/* l402_svc_status_json - backend, real_money, counters. NULL on allocation failure. */
cJSON *l402_svc_status_json(const struct l402_svc *ps);

/* l402_svc_prometheus - the natx_l402_* series. */
void l402_svc_prometheus(const struct l402_svc *ps, FILE *f);

/* l402_svc_public_host - rathole.public_host, or the host of rathole.server_address. */
void l402_svc_public_host(const struct natx_config *cfg, char *out, size_t len);

#endif
