/* SPDX-License-Identifier: MIT */
/*
 * The two halves of an L402 sale, composed from l402.h and pay_backend.h so natxd's HTTP
 * endpoint (POST /api/rathole/proxy/register) and the tunnel's credential callback need one
 * call each. docs/l402.md shows where each call goes.
 *
 *   offer:     invoice from the backend + fresh token id and root key + minted macaroon +
 *              the WWW-Authenticate value. The caller stores (token_id -> root_key,
 *              payment_hash, terms) before answering 402, and wipes the offer.
 *   authorize: Authorization header (HTTP) or macaroon bytes (tunnel AUTH) -> parsed,
 *              decoded, verified (l402_verify) and the invoice confirmed SETTLED with the
 *              backend -> grant.
 */
#ifndef NATX_PAY_L402_FLOW_H
#define NATX_PAY_L402_FLOW_H

#include <stddef.h>
#include <stdint.h>

#include "l402.h"
#include "pay_backend.h"

enum {
	L402_OFFER_MAC_MAX = 1024, /* a minted tunnel token is ~250 bytes */
	L402_OFFER_HEADER_MAX = 2560, /* "L402 macaroon=\"...\", invoice=\"...\"" */
};

struct l402_offer {
	struct pay_invoice invoice; /* from the backend (holds the preimage: wipe) */
	struct l402_id id; /* payment hash of the invoice + random token id */
	uint8_t root_key[L402_ROOT_KEY_LEN]; /* random; store it under id.token_id */
	uint8_t mac[L402_OFFER_MAC_MAX]; /* serialized macaroon */
	size_t mac_len;
	char header[L402_OFFER_HEADER_MAX]; /* WWW-Authenticate value, scheme L402 */
	char header_lsat[L402_OFFER_HEADER_MAX]; /* the same with scheme LSAT (older clients) */
};

/*
 * l402_offer_create - everything a 402 answer needs. amount_msat/memo/invoice_expiry go to
 * the backend; terms (service, capabilities, expiry, quota, bandwidth) go into the macaroon.
 * Returns 0, or the backend's / l402_mint's error (-EINVAL, -NATX_E_LIMIT, -EIO, -ENOMEM,
 * -NATX_E_TOO_BIG); on error *offer is wiped. Wipe a successful offer with l402_offer_wipe()
 * after storing what you need.
 */
int l402_offer_create(struct pay_backend *b, uint64_t amount_msat, const char *memo,
		      uint32_t invoice_expiry, const struct l402_terms *terms,
		      struct l402_offer *offer) __attribute__((warn_unused_result));

/* l402_offer_wipe - zero the offer (root key, preimage). */
void l402_offer_wipe(struct l402_offer *offer);

/*
 * l402_authorize_header - the HTTP side: parse the Authorization value, decode the macaroon,
 * l402_verify() it with the presented preimage and get_key, then require the invoice to be
 * SETTLED in the backend. Returns 0 with *grant filled, or a -PAY_E_* code (map it with
 * pay_err_http): _L402_HEADER, _MAC_FORMAT, any l402_verify code, _INVOICE_UNPAID (invoice
 * unknown to the backend or not settled).
 */
int l402_authorize_header(struct pay_backend *b, const char *value, size_t len,
			  l402_root_key_fn get_key, void *arg, const struct l402_request *req,
			  struct l402_grant *grant) __attribute__((warn_unused_result));

/*
 * l402_authorize_macaroon - the tunnel side (tun_server_ops.cred_get for TUN_CRED_L402): the
 * client sends only the macaroon and proves the preimage with its handshake MAC, so the
 * preimage comes from the backend: the invoice named by the identifier must be SETTLED
 * (-PAY_E_INVOICE_UNPAID otherwise), then l402_verify() runs with the backend's preimage.
 * On success the preimage (the handshake key K) is copied to preimage_out. Same error codes
 * as above.
 */
int l402_authorize_macaroon(struct pay_backend *b, const uint8_t *mac, size_t mac_len,
			    l402_root_key_fn get_key, void *arg, const struct l402_request *req,
			    struct l402_grant *grant, uint8_t preimage_out[L402_PREIMAGE_LEN])
	__attribute__((warn_unused_result));

#endif
