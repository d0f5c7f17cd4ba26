/* SPDX-License-Identifier: MIT */
/*
 * libp2p peer IDs and identities (libp2p/specs peer-ids/peer-ids.md).
 *
 * A peer ID is the multihash of the serialized PublicKey protobuf: the identity multihash
 * (00 <len> <bytes>) when that is at most 42 bytes (every Ed25519 key: 00 24 08 01 12 20 <32>),
 * sha2-256 (12 20 <digest>) otherwise. Text forms: base58btc of the multihash ("12D3KooW...",
 * "Qm...") and the CIDv1 form (multibase 'b' base32 of 01 72 <multihash>, "bafz...").
 *
 * struct p2p_identity is this node's Ed25519 key. It holds secrets: p2p_identity_cleanup wipes
 * it. Only Ed25519 identities can be created or verified; other key types parse as peer IDs.
 */
#ifndef NATX_P2P_PEERID_H
#define NATX_P2P_PEERID_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "crypto.h"

enum {
	PEERID_MAX_LEN = 48, /* sha2-256 multihash is 34, identity at most 2 + 42 */
	PEERID_IDENTITY_MAX = 42, /* longest PublicKey protobuf hashed with identity */
	PEERID_TEXT_MAX = 100, /* buffer size for either text form incl. NUL */
	P2P_PUBKEY_ED25519_LEN = 36, /* encoded PublicKey protobuf of an Ed25519 key */
	P2P_PRIVKEY_ED25519_LEN = 68, /* encoded PrivateKey protobuf: 08 01 12 40 seed||pub */
	P2P_KEY_ED25519 = 1, /* KeyType enum value */
	MH_IDENTITY = 0x00,
	MH_SHA2_256 = 0x12,
	CID_LIBP2P_KEY = 0x72,
};

/* struct peer_id - a peer ID in binary (multihash) form. */
struct peer_id {
	uint8_t len; /* bytes used in b */
	uint8_t b[PEERID_MAX_LEN]; /* the multihash */
};

/* struct p2p_identity - an Ed25519 identity; all fields are derived from seed. */
struct p2p_identity {
	uint8_t seed[CRYPTO_ED25519_SEED_LEN]; /* secret */
	uint8_t priv[CRYPTO_ED25519_PRIV_LEN]; /* secret: seed || pub */
	uint8_t pub[CRYPTO_ED25519_PUB_LEN]; /* raw public key */
	uint8_t pubkey_pb[P2P_PUBKEY_ED25519_LEN]; /* serialized PublicKey protobuf */
	struct peer_id id;
};

/* p2p_identity_from_seed - derive an identity from a 32-byte seed. Returns 0. */
int p2p_identity_from_seed(struct p2p_identity *idn, const uint8_t seed[CRYPTO_ED25519_SEED_LEN]);

/* p2p_identity_generate - a fresh identity from the CSPRNG. Returns 0. */
int p2p_identity_generate(struct p2p_identity *idn);

/*
 * p2p_identity_to_privkey - serialize as the libp2p PrivateKey protobuf (what js-libp2p's
 * privateKeyFromProtobuf reads) into @out (P2P_PRIVKEY_ED25519_LEN bytes). The output is secret.
 */
void p2p_identity_to_privkey(const struct p2p_identity *idn, uint8_t out[P2P_PRIVKEY_ED25519_LEN]);

/*
 * p2p_identity_from_privkey - parse a PrivateKey protobuf (Ed25519 data of 64 bytes seed||pub or
 * legacy 96 bytes seed||pub||pub). Returns 0, -NATX_E_PROTO when malformed, -NATX_E_AUTH when
 * the embedded public key does not match the seed, -EPROTONOSUPPORT for other key types.
 */
int p2p_identity_from_privkey(struct p2p_identity *idn, const uint8_t *buf, size_t len);

/* p2p_identity_sign - Ed25519 signature by the identity over @len bytes at @msg. */
int p2p_identity_sign(const struct p2p_identity *idn, uint8_t sig[CRYPTO_ED25519_SIG_LEN],
		      const void *msg, size_t len);

/* p2p_identity_cleanup - wipe every field. */
void p2p_identity_cleanup(struct p2p_identity *idn);

/* p2p_pubkey_encode_ed25519 - the 36-byte PublicKey protobuf of a raw Ed25519 key. */
void p2p_pubkey_encode_ed25519(uint8_t out[P2P_PUBKEY_ED25519_LEN],
			       const uint8_t pub[CRYPTO_ED25519_PUB_LEN]);

/*
 * p2p_pubkey_decode_ed25519 - parse a PublicKey protobuf and return its raw Ed25519 key.
 * Returns 0, -NATX_E_PROTO when malformed, -EPROTONOSUPPORT for other key types.
 */
int p2p_pubkey_decode_ed25519(const uint8_t *buf, size_t len, uint8_t pub[CRYPTO_ED25519_PUB_LEN]);

/*
 * p2p_pubkey_verify - verify a signature made by the key in PublicKey protobuf @pk.
 * Returns 0, -NATX_E_AUTH on a bad signature, or the errors of p2p_pubkey_decode_ed25519.
 */
int __must_check p2p_pubkey_verify(const uint8_t *pk, size_t pk_len, const uint8_t *sig,
				   size_t sig_len, const void *msg, size_t len);

/* peerid_from_pubkey - the peer ID of a serialized PublicKey protobuf (any key type). */
int peerid_from_pubkey(struct peer_id *id, const uint8_t *pk, size_t len);

/*
 * peerid_from_bytes - validate a binary multihash as a peer ID (identity or sha2-256 with the
 * right digest size, no trailing bytes). Returns 0 or -NATX_E_PROTO.
 */
int peerid_from_bytes(struct peer_id *id, const uint8_t *b, size_t len);

/*
 * peerid_from_text - parse either text form: base58btc multihash ("1..." / "Qm...") or a
 * multibase CIDv1 with codec libp2p-key (base32 'b'/'B' or base58btc 'z'). Returns 0,
 * -NATX_E_PROTO on bad text, -NATX_E_TOO_BIG on over-long text.
 */
int peerid_from_text(struct peer_id *id, const char *s, size_t len);

/* peerid_to_text - legacy base58btc text into @out; returns length or -NATX_E_TOO_BIG. */
int peerid_to_text(const struct peer_id *id, char *out, size_t cap);

/* peerid_to_cid_text - CIDv1 base32 text ("bafz..."); returns length or -NATX_E_TOO_BIG. */
int peerid_to_cid_text(const struct peer_id *id, char *out, size_t cap);

/* peerid_equal - true when both IDs have the same bytes. */
bool peerid_equal(const struct peer_id *a, const struct peer_id *b);

/*
 * peerid_pubkey - when @id is an identity multihash, point *pk at the embedded PublicKey
 * protobuf and return its length; -ENOENT for hashed IDs.
 */
int peerid_pubkey(const struct peer_id *id, const uint8_t **pk);

#endif
