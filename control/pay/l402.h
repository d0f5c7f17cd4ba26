/* SPDX-License-Identifier: MIT */
/*
 * L402 (formerly LSAT, bLIP-26): HTTP 402 challenges, Authorization headers, token minting
 * and verification, with aperture's identifier layout and caveat names.
 *
 * Identifier (v0, 66 bytes): u16 BE version = 0 || payment_hash[32] || token_id[32].
 * Location: "lsat" (what aperture sets).
 * Caveats (first-party, "condition=value", split at the first '='):
 *   services=<name>:<tier>[,<name>:<tier>...]   the request's service must be listed in every one
 *   <svc>_capabilities=<cap>[,<cap>...]         e.g. tcp,udp; every one must list the capability
 *   <svc>_valid_until=<unix seconds>            the smallest one counts; now must be before it
 *   <svc>_max_bytes=<n>                         the smallest one counts; bytes used must be below
 *   <svc>_bandwidth_kbps=<n>                    the smallest one counts; the granted cap
 * Unknown conditions are skipped (as aperture does), so other verifiers' caveats coexist; a
 * repeated condition can only narrow the grant, never widen it (attenuation).
 *
 * The root key is looked up by the caller (natxd keeps it in SQLite under the token id);
 * deleting it revokes the token.
 */
#ifndef NATX_PAY_L402_H
#define NATX_PAY_L402_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "macaroon.h"

enum {
	L402_ID_LEN = 66,
	L402_HASH_LEN = 32,
	L402_TOKEN_ID_LEN = 32,
	L402_PREIMAGE_LEN = 32,
	L402_ROOT_KEY_LEN = 32,
	L402_SERVICE_MAX = 64, /* longest service name accepted in caveats */
	L402_HEADER_MAX = 24576, /* longest Authorization / WWW-Authenticate value handled */
};

#define L402_LOCATION "lsat"

struct l402_id {
	uint16_t version; /* 0 */
	uint8_t payment_hash[L402_HASH_LEN]; /* sha256(preimage) of the invoice */
	uint8_t token_id[L402_TOKEN_ID_LEN]; /* random, names the token */
};

/* l402_id_encode - 66-byte v0 identifier of id into out. */
void l402_id_encode(uint8_t out[L402_ID_LEN], const struct l402_id *id);

/* l402_id_decode - parse an identifier. Returns 0 or -PAY_E_L402_ID (length or version). */
int l402_id_decode(struct l402_id *id, const uint8_t *buf, size_t len);

/* What a token is minted for. Zero/NULL fields add no caveat. */
struct l402_terms {
	const char *service; /* required: "services=<service>:<tier>" */
	uint32_t tier;
	const char *capabilities; /* "tcp,udp" or NULL for all */
	int64_t valid_until; /* unix seconds; 0 = no expiry caveat */
	uint64_t max_bytes; /* 0 = no quota caveat */
	uint64_t bandwidth_kbps; /* 0 = no bandwidth caveat */
};

/*
 * l402_mint - build and serialize a token: identifier from id, location "lsat", caveats from
 * terms (in the order services, capabilities, valid_until, max_bytes, bandwidth_kbps), signed
 * with root_key. Writes *out_len bytes into out. Returns 0, -EINVAL (no/oversized service
 * name, or a name with ',', ':' or '='), or -NATX_E_TOO_BIG (out too small).
 */
int l402_mint(uint8_t *out, size_t cap, size_t *out_len, const uint8_t root_key[L402_ROOT_KEY_LEN],
	      const struct l402_id *id, const struct l402_terms *terms);

/*
 * l402_challenge_format - the WWW-Authenticate value
 *   <scheme> macaroon="<base64 std padded>", invoice="<bolt11>"
 * scheme is "L402" or "LSAT" (aperture emits both headers). NUL-terminated into out.
 * Returns the length or -NATX_E_TOO_BIG / -EINVAL (invoice with '"' or control characters).
 */
long l402_challenge_format(char *out, size_t cap, const char *scheme, const uint8_t *mac,
			   size_t mac_len, const char *invoice);

/* A parsed Authorization header. The decoded macaroon bytes live in mac[]. */
struct l402_auth {
	uint8_t mac[MAC_MAX_LEN]; /* decoded macaroon bytes */
	size_t mac_len;
	uint8_t preimage[L402_PREIMAGE_LEN];
};

/*
 * l402_auth_parse - parse an Authorization header value "L402 <b64 macaroon>:<64 hex>" (scheme
 * case-insensitive, "LSAT" accepted, base64 standard or URL-safe, padded or not, hex either
 * case, surrounding spaces/tabs ignored). Exactly one macaroon: a comma-separated list
 * (discharge macaroons) is refused. Returns 0 or -PAY_E_L402_HEADER; the macaroon bytes are
 * not validated here (macaroon_decode does that).
 */
int l402_auth_parse(struct l402_auth *a, const char *value, size_t len)
	__attribute__((warn_unused_result));

/*
 * l402_auth_format - "L402 <b64 std padded>:<hex preimage>" into out (what a client sends).
 * Returns the length or -NATX_E_TOO_BIG.
 */
long l402_auth_format(char *out, size_t cap, const uint8_t *mac, size_t mac_len,
		      const uint8_t preimage[L402_PREIMAGE_LEN]);

/* The request being authorized. */
struct l402_request {
	const char *service; /* service asked for, e.g. "tunnel" */
	const char *capability; /* "tcp"/"udp", or NULL to skip the capabilities check */
	int64_t now; /* unix seconds, from the caller's clock (tests inject it) */
	uint64_t bytes_used; /* bytes already used under this token (data plane counter) */
	uint64_t want_kbps; /* bandwidth the caller will apply; 0 = no check */
};

/* The effective limits after all caveats. */
struct l402_grant {
	struct l402_id id;
	uint32_t tier; /* tier from the last services caveat naming the service */
	int64_t valid_until; /* INT64_MAX when no expiry caveat */
	uint64_t max_bytes; /* UINT64_MAX when no quota caveat */
	uint64_t bandwidth_kbps; /* 0 when no bandwidth caveat (unlimited) */
};

/*
 * l402_root_key_fn - the caller's root-key store: fill key for the token named by id.
 * Returns 0, or -NATX_E_NOT_FOUND when unknown or revoked (any other negative value is
 * passed through).
 */
typedef int (*l402_root_key_fn)(void *arg, const struct l402_id *id,
				uint8_t key[L402_ROOT_KEY_LEN]);

/*
 * l402_verify - full check of macaroon m presented with preimage, in aperture's order:
 * identifier (-PAY_E_L402_ID), sha256(preimage) == payment hash (-PAY_E_L402_PREIMAGE), root
 * key lookup (-PAY_E_L402_UNKNOWN), HMAC chain (-PAY_E_MAC_SIG / -PAY_E_MAC_THIRD_PARTY), then
 * caveats against req (-PAY_E_CAV_MALFORMED, _SERVICE, _CAPABILITY, _EXPIRED, _QUOTA,
 * _BANDWIDTH). A token without any services caveat is refused (-PAY_E_CAV_SERVICE). Fills
 * *grant on success (and id on every path past the identifier check). Fails closed.
 */
int l402_verify(const struct macaroon *m, const uint8_t preimage[L402_PREIMAGE_LEN],
		l402_root_key_fn get_key, void *arg, const struct l402_request *req,
		struct l402_grant *grant) __attribute__((warn_unused_result));

/*
 * l402_caveats_check - only the caveat step of l402_verify, for a macaroon whose signature
 * was already checked (e.g. re-checking expiry and quota on a live tunnel).
 */
int l402_caveats_check(const struct macaroon *m, const struct l402_request *req,
		       struct l402_grant *grant) __attribute__((warn_unused_result));

#endif
