// SPDX-License-Identifier: MIT
/* envelope.c - signed envelopes and relay vouchers through protobuf-c (see envelope.h). */
#include <errno.h>
#include <string.h>

#include "natx/err.h"
#include "natx/rd.h"
#include "circuit.pb-c.h"
#include "envelope.h"
#include "envelope.pb-c.h"

const uint8_t relay_rsvp_payload_type[2] = { 0x03, 0x02 };

/* envelope_signed_bytes - the signature input (see envelope.h) into @out. */
static int envelope_signed_bytes(const char *domain, const uint8_t *type, size_t type_len,
				 const uint8_t *payload, size_t payload_len, uint8_t *out,
				 size_t cap, size_t *len)
{
	size_t dlen = strlen(domain);
	struct wr w;

	wr_init(&w, out, cap);
	if (wr_uvarint(&w, dlen) || wr_bytes(&w, domain, dlen) || wr_uvarint(&w, type_len) ||
	    wr_bytes(&w, type, type_len) || wr_uvarint(&w, payload_len) ||
	    wr_bytes(&w, payload, payload_len)) {
		return -NATX_E_TOO_BIG;
	}
	*len = (size_t)(w.p - out);
	return 0;
}

int envelope_seal(const struct p2p_identity *idn, const char *domain, const uint8_t *type,
		  size_t type_len, const uint8_t *payload, size_t payload_len, uint8_t *out,
		  size_t cap, size_t *len)
{
	P2p__Envelope pb = P2P__ENVELOPE__INIT;
	uint8_t tbs[ENVELOPE_MAX], sig[CRYPTO_ED25519_SIG_LEN];
	size_t tbs_len, n;
	int err;

	if (payload_len > ENVELOPE_MAX_PAYLOAD || type_len > 64) {
		return -NATX_E_TOO_BIG;
	}
	err = envelope_signed_bytes(domain, type, type_len, payload, payload_len, tbs, sizeof(tbs),
				    &tbs_len);
	if (err) {
		return err;
	}
	err = p2p_identity_sign(idn, sig, tbs, tbs_len);
	if (err) {
		return err;
	}
	pb.has_public_key = pb.has_payload_type = pb.has_payload = pb.has_signature = 1;
	pb.public_key.data = (uint8_t *)idn->pubkey_pb;
	pb.public_key.len = sizeof(idn->pubkey_pb);
	pb.payload_type.data = (uint8_t *)type;
	pb.payload_type.len = type_len;
	pb.payload.data = (uint8_t *)payload;
	pb.payload.len = payload_len;
	pb.signature.data = sig;
	pb.signature.len = sizeof(sig);
	n = p2p__envelope__get_packed_size(&pb);
	if (n > cap || n > ENVELOPE_MAX) {
		return -NATX_E_TOO_BIG;
	}
	*len = p2p__envelope__pack(&pb, out);
	return 0;
}

int envelope_open(const uint8_t *buf, size_t len, const char *domain, const uint8_t *type,
		  size_t type_len, struct peer_id *signer, uint8_t *payload, size_t cap,
		  size_t *payload_len)
{
	P2p__Envelope *pb;
	uint8_t tbs[ENVELOPE_MAX];
	size_t tbs_len;
	int err;

	if (len > ENVELOPE_MAX) {
		return -NATX_E_TOO_BIG;
	}
	pb = p2p__envelope__unpack(NULL, len, buf);
	if (!pb) {
		return -NATX_E_PROTO;
	}
	err = -NATX_E_PROTO;
	if (!pb->has_public_key || !pb->has_payload_type || !pb->has_signature ||
	    pb->payload_type.len != type_len || memcmp(pb->payload_type.data, type, type_len)) {
		goto out_free;
	}
	err = -NATX_E_TOO_BIG;
	if (pb->payload.len > ENVELOPE_MAX_PAYLOAD || pb->payload.len > cap) {
		goto out_free;
	}
	err = envelope_signed_bytes(domain, type, type_len, pb->payload.data, pb->payload.len, tbs,
				    sizeof(tbs), &tbs_len);
	if (err) {
		goto out_free;
	}
	err = p2p_pubkey_verify(pb->public_key.data, pb->public_key.len, pb->signature.data,
				pb->signature.len, tbs, tbs_len);
	if (err) {
		goto out_free;
	}
	err = peerid_from_pubkey(signer, pb->public_key.data, pb->public_key.len);
	if (err) {
		goto out_free;
	}
	if (pb->payload.len) {
		memcpy(payload, pb->payload.data, pb->payload.len);
	}
	*payload_len = pb->payload.len;
out_free:
	p2p__envelope__free_unpacked(pb, NULL);
	return err;
}

int relay_voucher_seal(const struct p2p_identity *idn, const struct relay_voucher *v, uint8_t *out,
		       size_t cap, size_t *len)
{
	P2p__ReservationVoucher pb = P2P__RESERVATION_VOUCHER__INIT;
	uint8_t payload[3 * PEERID_MAX_LEN + 32];

	pb.has_relay = pb.has_peer = pb.has_expiration = 1;
	pb.relay.data = (uint8_t *)v->relay.b;
	pb.relay.len = v->relay.len;
	pb.peer.data = (uint8_t *)v->peer.b;
	pb.peer.len = v->peer.len;
	pb.expiration = v->expiration;
	if (p2p__reservation_voucher__get_packed_size(&pb) > sizeof(payload)) {
		return -NATX_E_TOO_BIG;
	}
	return envelope_seal(idn, RELAY_RSVP_DOMAIN, relay_rsvp_payload_type,
			     sizeof(relay_rsvp_payload_type), payload,
			     p2p__reservation_voucher__pack(&pb, payload), out, cap, len);
}

int relay_voucher_open(const uint8_t *buf, size_t len, struct relay_voucher *v)
{
	uint8_t payload[ENVELOPE_MAX_PAYLOAD];
	P2p__ReservationVoucher *pb;
	struct peer_id signer;
	size_t plen;
	int err;

	err = envelope_open(buf, len, RELAY_RSVP_DOMAIN, relay_rsvp_payload_type,
			    sizeof(relay_rsvp_payload_type), &signer, payload, sizeof(payload),
			    &plen);
	if (err) {
		return err;
	}
	pb = p2p__reservation_voucher__unpack(NULL, plen, payload);
	if (!pb) {
		return -NATX_E_PROTO;
	}
	err = -NATX_E_PROTO;
	if (!pb->has_relay || !pb->has_peer || !pb->has_expiration ||
	    peerid_from_bytes(&v->relay, pb->relay.data, pb->relay.len) ||
	    peerid_from_bytes(&v->peer, pb->peer.data, pb->peer.len)) {
		goto out_free;
	}
	v->expiration = pb->expiration;
	err = peerid_equal(&signer, &v->relay) ? 0 : -NATX_E_AUTH;
out_free:
	p2p__reservation_voucher__free_unpacked(pb, NULL);
	return err;
}
