// SPDX-License-Identifier: MIT
/*
 * noise_p2p.c - the libp2p Noise handshake (see noise.h): NoiseHandshakePayload through
 * protobuf-c, identity signature, peer ID check, early muxer negotiation.
 */
#include <errno.h>
#include <string.h>

#include "natx/err.h"
#include "noise.h"
#include "noise.pb-c.h"

enum {
	SIG_INPUT_LEN = sizeof(NOISE_P2P_SIG_PREFIX) - 1 + NOISE_DH,
};

int noise_p2p_init(struct noise_p2p *np, bool initiator, const struct p2p_identity *idn,
		   const uint8_t s_priv[NOISE_DH], const uint8_t e_priv[NOISE_DH],
		   const struct peer_id *expected, bool send_muxers)
{
	memset(np, 0, sizeof(*np));
	np->idn = idn;
	np->send_muxers = send_muxers;
	if (expected) {
		np->expected = *expected;
		np->has_expected = true;
	}
	/* libp2p uses an empty prologue */
	return noise_hs_init(&np->hs, initiator, NULL, 0, s_priv, e_priv);
}

/* noise_p2p_payload - our NoiseHandshakePayload; returns its length in @out or an error. */
static int noise_p2p_payload(struct noise_p2p *np, uint8_t *out, size_t cap)
{
	P2p__NoiseHandshakePayload pl = P2P__NOISE_HANDSHAKE_PAYLOAD__INIT;
	P2p__NoiseExtensions ext = P2P__NOISE_EXTENSIONS__INIT;
	uint8_t sig_input[SIG_INPUT_LEN], sig[CRYPTO_ED25519_SIG_LEN];
	char *muxers[1] = { (char *)NOISE_P2P_YAMUX };
	size_t n;
	int err;

	memcpy(sig_input, NOISE_P2P_SIG_PREFIX, sizeof(NOISE_P2P_SIG_PREFIX) - 1);
	memcpy(sig_input + sizeof(NOISE_P2P_SIG_PREFIX) - 1, np->hs.s_pub, NOISE_DH);
	err = p2p_identity_sign(np->idn, sig, sig_input, sizeof(sig_input));
	if (err) {
		return err;
	}
	pl.has_identity_key = 1;
	pl.identity_key.data = (uint8_t *)np->idn->pubkey_pb;
	pl.identity_key.len = sizeof(np->idn->pubkey_pb);
	pl.has_identity_sig = 1;
	pl.identity_sig.data = sig;
	pl.identity_sig.len = sizeof(sig);
	if (np->send_muxers) {
		ext.n_stream_muxers = 1;
		ext.stream_muxers = muxers;
		pl.extensions = &ext;
	}
	n = p2p__noise_handshake_payload__get_packed_size(&pl);
	if (n > cap) {
		return -NATX_E_TOO_BIG;
	}
	return (int)p2p__noise_handshake_payload__pack(&pl, out);
}

int noise_p2p_write(struct noise_p2p *np, uint8_t *out, size_t cap, size_t *olen)
{
	uint8_t payload[256];
	size_t n;
	int plen = 0, err;

	if (cap < NOISE_LEN_PREFIX) {
		return -NATX_E_TOO_BIG;
	}
	/* the initiator's first message carries no payload; the two others carry ours */
	if (np->hs.step > 0) {
		plen = noise_p2p_payload(np, payload, sizeof(payload));
		if (plen < 0) {
			return plen;
		}
	}
	err = noise_hs_write(&np->hs, payload, (size_t)plen, out + NOISE_LEN_PREFIX,
			     cap - NOISE_LEN_PREFIX, &n);
	if (err) {
		return err;
	}
	out[0] = (uint8_t)(n >> 8);
	out[1] = (uint8_t)n;
	*olen = n + NOISE_LEN_PREFIX;
	if (noise_hs_done(&np->hs) && !np->remote_verified) {
		return -EINVAL; /* unreachable: XX authenticates the responder before message 3 */
	}
	return 0;
}

/* noise_p2p_check_muxers - record the remote's stream_muxers and decide early negotiation. */
static int noise_p2p_check_muxers(struct noise_p2p *np, const P2p__NoiseExtensions *ext)
{
	bool yamux = false;

	if (!ext || ext->n_stream_muxers == 0) {
		return 0; /* no list: the muxer is negotiated with multistream-select */
	}
	np->remote_sent_muxers = true;
	for (size_t i = 0; i < ext->n_stream_muxers; i++) {
		if (ext->stream_muxers[i] && !strcmp(ext->stream_muxers[i], NOISE_P2P_YAMUX)) {
			yamux = true;
		}
	}
	if (!np->send_muxers) {
		return 0; /* we sent no list, so both sides fall back to multistream-select */
	}
	if (!yamux) {
		return -ENOPROTOOPT;
	}
	np->early_yamux = true;
	return 0;
}

/* noise_p2p_verify - check the remote's NoiseHandshakePayload against its static key. */
static int noise_p2p_verify(struct noise_p2p *np, const uint8_t *payload, size_t plen)
{
	P2p__NoiseHandshakePayload *pl;
	uint8_t sig_input[SIG_INPUT_LEN];
	int err;

	if (plen > NOISE_P2P_MAX_PAYLOAD) {
		return -NATX_E_TOO_BIG;
	}
	pl = p2p__noise_handshake_payload__unpack(NULL, plen, payload);
	if (!pl) {
		return -NATX_E_PROTO;
	}
	if (!pl->has_identity_key || !pl->has_identity_sig) {
		err = -NATX_E_PROTO;
		goto out_free;
	}
	memcpy(sig_input, NOISE_P2P_SIG_PREFIX, sizeof(NOISE_P2P_SIG_PREFIX) - 1);
	memcpy(sig_input + sizeof(NOISE_P2P_SIG_PREFIX) - 1, np->hs.rs, NOISE_DH);
	err = p2p_pubkey_verify(pl->identity_key.data, pl->identity_key.len, pl->identity_sig.data,
				pl->identity_sig.len, sig_input, sizeof(sig_input));
	if (err) {
		goto out_free;
	}
	peerid_from_pubkey(&np->remote, pl->identity_key.data, pl->identity_key.len);
	if (np->has_expected && !peerid_equal(&np->remote, &np->expected)) {
		err = -EKEYREJECTED;
		goto out_free;
	}
	err = noise_p2p_check_muxers(np, pl->extensions);
	if (!err) {
		np->remote_verified = true;
	}
out_free:
	p2p__noise_handshake_payload__free_unpacked(pl, NULL);
	return err;
}

int noise_p2p_read(struct noise_p2p *np, uint8_t *msg, size_t len)
{
	uint8_t *payload;
	size_t plen;
	int err = noise_hs_read(&np->hs, msg, len, &payload, &plen);

	if (err) {
		return err;
	}
	/* message 1 (initiator reads) and message 2 (responder reads) carry the remote identity */
	if (np->hs.step >= 2) {
		err = noise_p2p_verify(np, payload, plen);
		if (err) {
			np->hs.failed = true;
		}
	}
	return err;
}

bool noise_p2p_done(const struct noise_p2p *np)
{
	return noise_hs_done(&np->hs) && np->remote_verified;
}

void noise_p2p_cleanup(struct noise_p2p *np)
{
	noise_hs_cleanup(&np->hs);
	crypto_wipe(np, sizeof(*np));
}
