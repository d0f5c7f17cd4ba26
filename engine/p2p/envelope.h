/* SPDX-License-Identifier: MIT */
/*
 * Signed envelopes (libp2p/specs RFC/0002-signed-envelopes.md) and the relay reservation
 * voucher they carry (relay/circuit-v2.md).
 *
 * An envelope is the protobuf {1 public_key, 2 payload_type, 3 payload, 5 signature}; the
 * signature is over uvarint(len(domain)) || domain || uvarint(len(type)) || type ||
 * uvarint(len(payload)) || payload, made by the identity key. The domain is not on the wire:
 * the verifier supplies it. Payload types are raw bytes (the relay voucher's is 03 02).
 */
#ifndef NATX_P2P_ENVELOPE_H
#define NATX_P2P_ENVELOPE_H

#include <stddef.h>
#include <stdint.h>

#include "peerid.h"

#define RELAY_RSVP_DOMAIN "libp2p-relay-rsvp"

enum {
	ENVELOPE_MAX = 2048, /* largest envelope we sign or accept */
	ENVELOPE_MAX_PAYLOAD = 1024,
};

extern const uint8_t relay_rsvp_payload_type[2]; /* 03 02 */

/*
 * envelope_seal - sign @payload under @domain/@type with @idn and write the Envelope protobuf
 * into @out. Returns 0 with *@len, -NATX_E_TOO_BIG when it does not fit @cap or the limits.
 */
int envelope_seal(const struct p2p_identity *idn, const char *domain, const uint8_t *type,
		  size_t type_len, const uint8_t *payload, size_t payload_len, uint8_t *out,
		  size_t cap, size_t *len);

/*
 * envelope_open - parse and verify an Envelope: the payload type must equal @type and the
 * signature must verify under @domain. On success the signer's peer ID is in *@signer and the
 * payload is copied into @payload (room @cap) with *@payload_len. Returns 0, -NATX_E_PROTO
 * (malformed, wrong type, fields missing), -NATX_E_TOO_BIG, -NATX_E_AUTH (bad signature),
 * -EPROTONOSUPPORT (signer key type other than Ed25519), -ENOMEM.
 */
int envelope_open(const uint8_t *buf, size_t len, const char *domain, const uint8_t *type,
		  size_t type_len, struct peer_id *signer, uint8_t *payload, size_t cap,
		  size_t *payload_len);

/* struct relay_voucher - ReservationVoucher {1 relay, 2 peer, 3 expiration (UNIX s)}. */
struct relay_voucher {
	struct peer_id relay;
	struct peer_id peer;
	uint64_t expiration;
};

/* relay_voucher_seal - the signed voucher envelope the relay @idn gives @v->peer. */
int relay_voucher_seal(const struct p2p_identity *idn, const struct relay_voucher *v, uint8_t *out,
		       size_t cap, size_t *len);

/*
 * relay_voucher_open - verify a voucher envelope: signature under "libp2p-relay-rsvp", payload
 * type 03 02, and the signer is the voucher's relay. Returns 0 or envelope_open's errors
 * (-NATX_E_AUTH also when the signer is not v->relay).
 */
int relay_voucher_open(const uint8_t *buf, size_t len, struct relay_voucher *v);

#endif
