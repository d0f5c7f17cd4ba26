/* SPDX-License-Identifier: MIT */
/*
 * Noise_XX_25519_ChaChaPoly_SHA256 (Noise rev 34) as libp2p uses it (libp2p/specs noise/),
 * sans-IO and in place; and Noise_NK_25519_ChaChaPoly_SHA256 for the tunnel's encrypted
 * transport (docs/tunnel-protocol.md), which pins the responder's static key.
 *
 * Two layers:
 *   struct noise_hs      the plain XX handshake with caller-supplied keys, prologue and
 *                        payloads (what the cacophony test vectors exercise);
 *   struct noise_p2p     the libp2p handshake on top: empty prologue, NoiseHandshakePayload
 *                        with the identity key, the signature over
 *                        "noise-libp2p-static-key:" || static public key, the stream_muxers
 *                        extension, and the check of the remote peer ID against the dialled one.
 * After the handshake, struct noise_cipher pairs seal/open transport messages in place.
 *
 * Wire: every message is u16 big-endian length || body, body <= NOISE_MAX_MSG; transport body =
 * ciphertext || 16-byte tag, so at most NOISE_MAX_PLAINTEXT plaintext bytes per message.
 *
 * Errors: -NATX_E_PROTO malformed message or payload, -NATX_E_TOO_BIG over-long message,
 * -EBADMSG a MAC check failed (corrupted or forged message), -NATX_E_AUTH the identity
 * signature does not verify or a DH result is degenerate, -EKEYREJECTED the remote peer ID
 * differs from the one dialled, -EPROTONOSUPPORT the remote identity key type is not Ed25519,
 * -ENOPROTOOPT the muxer lists have no common entry, -EINVAL an API call out of order.
 * A handshake that returned an error is dead: only noise_*_cleanup may follow.
 */
#ifndef NATX_P2P_NOISE_H
#define NATX_P2P_NOISE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "crypto.h"
#include "peerid.h"

#define NOISE_PROTOCOL_NAME "Noise_XX_25519_ChaChaPoly_SHA256"
#define NOISE_NK_PROTOCOL_NAME "Noise_NK_25519_ChaChaPoly_SHA256"
#define NOISE_P2P_SIG_PREFIX "noise-libp2p-static-key:"
#define NOISE_P2P_PROTOCOL "/noise"
#define NOISE_P2P_YAMUX "/yamux/1.0.0"

enum {
	NOISE_LEN_PREFIX = 2, /* u16 big-endian length before every message */
	NOISE_MAX_MSG = 65535, /* longest message body */
	NOISE_TAG = CRYPTO_AEAD_TAG_LEN,
	NOISE_MAX_PLAINTEXT = NOISE_MAX_MSG - NOISE_TAG, /* 65519 */
	NOISE_DH = CRYPTO_X25519_LEN,
	NOISE_HASH = CRYPTO_SHA256_LEN,
	NOISE_P2P_MAX_PAYLOAD = 4096, /* longest handshake payload accepted from a peer */
};

/* struct noise_cipher - one direction of a Noise CipherState. Holds a key: cleanup it. */
struct noise_cipher {
	struct crypto_aead aead;
	uint64_t n; /* next nonce */
	bool has_key; /* false before the first MixKey */
};

/* Handshake patterns: XX (libp2p, the default of noise_hs_init) and NK (noise_hs_init_nk). */
enum noise_pattern { NOISE_PATTERN_XX = 0, NOISE_PATTERN_NK = 1 };

/* struct noise_hs - XX/NK handshake state (HandshakeState + SymmetricState). Secrets inside. */
struct noise_hs {
	struct noise_cipher cs;
	uint8_t h[NOISE_HASH]; /* handshake hash */
	uint8_t ck[NOISE_HASH]; /* chaining key */
	uint8_t s_priv[NOISE_DH]; /* local static */
	uint8_t s_pub[NOISE_DH];
	uint8_t e_priv[NOISE_DH]; /* local ephemeral */
	uint8_t e_pub[NOISE_DH];
	uint8_t re[NOISE_DH]; /* remote ephemeral */
	uint8_t rs[NOISE_DH]; /* remote static, valid once received */
	uint8_t step; /* index of the next handshake message, 0..3 (NK: 0..2) */
	uint8_t pattern; /* enum noise_pattern */
	bool initiator;
	bool failed;
};

/*
 * noise_hs_init - start an XX handshake with static key @s_priv and ephemeral key @e_priv
 * (both 32 random bytes from the caller's RNG) and @prologue. Returns 0.
 */
int noise_hs_init(struct noise_hs *hs, bool initiator, const uint8_t *prologue, size_t plen,
		  const uint8_t s_priv[NOISE_DH], const uint8_t e_priv[NOISE_DH]);

/*
 * noise_hs_init_nk - start a Noise_NK_25519_ChaChaPoly_SHA256 handshake (two messages:
 * -> e, es; <- e, ee). The initiator passes the responder's pinned static public key @rs
 * (@s_priv NULL), the responder its static private key @s_priv (@rs NULL); both a random
 * ephemeral @e_priv. Returns 0 or -EINVAL (the key the role needs is missing). The same
 * noise_hs_write/read/split/cleanup calls drive it; both payloads are encrypted.
 */
int noise_hs_init_nk(struct noise_hs *hs, bool initiator, const uint8_t *prologue, size_t plen,
		     const uint8_t s_priv[NOISE_DH], const uint8_t rs[NOISE_DH],
		     const uint8_t e_priv[NOISE_DH]);

/* noise_hs_my_turn - true when the next handshake message is ours to write. */
bool noise_hs_my_turn(const struct noise_hs *hs);

/* noise_hs_done - true after all messages of the pattern (XX three, NK two). */
bool noise_hs_done(const struct noise_hs *hs);

/*
 * noise_hs_write - write the next handshake message body (no length prefix) carrying
 * @payload into @out (@cap bytes); its length goes to *@olen. @payload may alias nothing in
 * @out. Returns 0, -EINVAL (not our turn), -NATX_E_TOO_BIG.
 */
int noise_hs_write(struct noise_hs *hs, const uint8_t *payload, size_t plen, uint8_t *out,
		   size_t cap, size_t *olen);

/*
 * noise_hs_read - process the next handshake message body @msg (@len bytes), decrypting in
 * place; @payload and @plen then describe the plaintext payload inside @msg.
 */
int __must_check noise_hs_read(struct noise_hs *hs, uint8_t *msg, size_t len, uint8_t **payload,
			       size_t *plen);

/*
 * noise_hs_split - after the handshake, derive the transport ciphers (@tx for sending, @rx for
 * receiving) and wipe the handshake secrets (h stays readable for channel binding).
 */
int noise_hs_split(struct noise_hs *hs, struct noise_cipher *tx, struct noise_cipher *rx);

/* noise_hs_cleanup - wipe all handshake secrets. */
void noise_hs_cleanup(struct noise_hs *hs);

/*
 * noise_seal - encrypt @len (<= NOISE_MAX_PLAINTEXT) bytes at @buf in place with empty AD and
 * append the tag (@buf needs @len + NOISE_TAG bytes). Returns 0, -NATX_E_TOO_BIG, -EOVERFLOW
 * when the nonce space is exhausted.
 */
int noise_seal(struct noise_cipher *c, uint8_t *buf, size_t len);

/*
 * noise_open - authenticate and decrypt the message body @buf (@len bytes incl. tag) in place;
 * the plaintext is the first @len - NOISE_TAG bytes. Returns 0, -EBADMSG, -NATX_E_PROTO (shorter
 * than a tag), -EOVERFLOW.
 */
int __must_check noise_open(struct noise_cipher *c, uint8_t *buf, size_t len);

/* noise_cipher_cleanup - wipe the key. */
void noise_cipher_cleanup(struct noise_cipher *c);

/* ---- libp2p handshake ---- */

/* struct noise_p2p - the libp2p Noise handshake of one connection. */
struct noise_p2p {
	struct noise_hs hs;
	const struct p2p_identity *idn; /* borrowed: our identity */
	struct peer_id expected; /* the dialled peer, when has_expected */
	struct peer_id remote; /* the authenticated remote, once verified */
	bool has_expected;
	bool send_muxers; /* advertise stream_muxers = ["/yamux/1.0.0"] */
	bool remote_verified; /* remote identity checked */
	bool remote_sent_muxers; /* remote sent a non-empty stream_muxers list */
	bool early_yamux; /* both sent lists and yamux is common: skip muxer mss */
};

/*
 * noise_p2p_init - prepare the libp2p handshake. @s_priv is the per-connection (or
 * per-process) X25519 static key and @e_priv the ephemeral, both random from the caller.
 * @expected, when not NULL, is the peer ID the dialer intends to reach (copied).
 */
int noise_p2p_init(struct noise_p2p *np, bool initiator, const struct p2p_identity *idn,
		   const uint8_t s_priv[NOISE_DH], const uint8_t e_priv[NOISE_DH],
		   const struct peer_id *expected, bool send_muxers);

/*
 * noise_p2p_write - write our next handshake message, length prefix included, to @out.
 * Returns 0 with *@olen set, or the noise_hs_write errors.
 */
int noise_p2p_write(struct noise_p2p *np, uint8_t *out, size_t cap, size_t *olen);

/*
 * noise_p2p_read - process the remote's next message body (length prefix removed), in place.
 * Verifies the identity payload when it arrives. Returns 0 or an error listed above.
 */
int __must_check noise_p2p_read(struct noise_p2p *np, uint8_t *msg, size_t len);

/* noise_p2p_done - true when the handshake finished and the remote is verified. */
bool noise_p2p_done(const struct noise_p2p *np);

/* noise_p2p_cleanup - wipe the handshake. */
void noise_p2p_cleanup(struct noise_p2p *np);

#endif
