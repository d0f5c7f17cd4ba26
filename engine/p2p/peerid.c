// SPDX-License-Identifier: MIT
/*
 * peerid.c - peer IDs, key protobufs and the Ed25519 identity (see peerid.h). Key protobufs
 * go through protobuf-c (keys.proto); proto2 required fields give the deterministic encoding
 * peer ID derivation needs.
 */
#include <errno.h>
#include <string.h>

#include "natx/err.h"
#include "natx/rd.h"
#include "keys.pb-c.h"
#include "multibase.h"
#include "peerid.h"

void p2p_pubkey_encode_ed25519(uint8_t out[P2P_PUBKEY_ED25519_LEN],
			       const uint8_t pub[CRYPTO_ED25519_PUB_LEN])
{
	P2p__PublicKey pk = P2P__PUBLIC_KEY__INIT;

	pk.type = P2P__KEY_TYPE__Ed25519;
	pk.data.data = (uint8_t *)pub;
	pk.data.len = CRYPTO_ED25519_PUB_LEN;
	p2p__public_key__pack(&pk, out); /* 08 01 12 20 <32>: exactly 36 bytes */
}

int p2p_pubkey_decode_ed25519(const uint8_t *buf, size_t len, uint8_t pub[CRYPTO_ED25519_PUB_LEN])
{
	P2p__PublicKey *pk = p2p__public_key__unpack(NULL, len, buf);
	int err = 0;

	if (!pk) {
		return -NATX_E_PROTO;
	}
	if (pk->type != P2P__KEY_TYPE__Ed25519) {
		err = -EPROTONOSUPPORT;
	} else if (pk->data.len != CRYPTO_ED25519_PUB_LEN) {
		err = -NATX_E_PROTO;
	} else {
		memcpy(pub, pk->data.data, CRYPTO_ED25519_PUB_LEN);
	}
	p2p__public_key__free_unpacked(pk, NULL);
	return err;
}

int p2p_pubkey_verify(const uint8_t *pk, size_t pk_len, const uint8_t *sig, size_t sig_len,
		      const void *msg, size_t len)
{
	uint8_t pub[CRYPTO_ED25519_PUB_LEN];
	int err = p2p_pubkey_decode_ed25519(pk, pk_len, pub);

	if (err) {
		return err;
	}
	if (sig_len != CRYPTO_ED25519_SIG_LEN) {
		return -NATX_E_AUTH;
	}
	return crypto_ed25519_verify(sig, msg, len, pub);
}

int p2p_identity_from_seed(struct p2p_identity *idn, const uint8_t seed[CRYPTO_ED25519_SEED_LEN])
{
	memcpy(idn->seed, seed, CRYPTO_ED25519_SEED_LEN);
	crypto_ed25519_from_seed(idn->pub, idn->priv, seed);
	p2p_pubkey_encode_ed25519(idn->pubkey_pb, idn->pub);
	return peerid_from_pubkey(&idn->id, idn->pubkey_pb, sizeof(idn->pubkey_pb));
}

int p2p_identity_generate(struct p2p_identity *idn)
{
	uint8_t seed[CRYPTO_ED25519_SEED_LEN];
	int err;

	crypto_random_bytes(seed, sizeof(seed));
	err = p2p_identity_from_seed(idn, seed);
	crypto_wipe(seed, sizeof(seed));
	return err;
}

void p2p_identity_to_privkey(const struct p2p_identity *idn, uint8_t out[P2P_PRIVKEY_ED25519_LEN])
{
	P2p__PrivateKey pk = P2P__PRIVATE_KEY__INIT;

	pk.type = P2P__KEY_TYPE__Ed25519;
	pk.data.data = (uint8_t *)idn->priv; /* seed || pub, as js and go store it */
	pk.data.len = CRYPTO_ED25519_PRIV_LEN;
	p2p__private_key__pack(&pk, out);
}

int p2p_identity_from_privkey(struct p2p_identity *idn, const uint8_t *buf, size_t len)
{
	P2p__PrivateKey *pk = p2p__private_key__unpack(NULL, len, buf);
	int err = 0;

	if (!pk) {
		return -NATX_E_PROTO;
	}
	if (pk->type != P2P__KEY_TYPE__Ed25519) {
		err = -EPROTONOSUPPORT;
		goto out_free;
	}
	if (pk->data.len != 64 && pk->data.len != 96) {
		err = -NATX_E_PROTO;
		goto out_free;
	}
	p2p_identity_from_seed(idn, pk->data.data);
	if (!crypto_memeq(idn->pub, pk->data.data + 32, 32) ||
	    (pk->data.len == 96 && !crypto_memeq(idn->pub, pk->data.data + 64, 32))) {
		p2p_identity_cleanup(idn);
		err = -NATX_E_AUTH;
	}
out_free:
	crypto_wipe(pk->data.data, pk->data.len);
	p2p__private_key__free_unpacked(pk, NULL);
	return err;
}

int p2p_identity_sign(const struct p2p_identity *idn, uint8_t sig[CRYPTO_ED25519_SIG_LEN],
		      const void *msg, size_t len)
{
	return crypto_ed25519_sign(sig, msg, len, idn->priv);
}

void p2p_identity_cleanup(struct p2p_identity *idn)
{
	crypto_wipe(idn, sizeof(*idn));
}

int peerid_from_pubkey(struct peer_id *id, const uint8_t *pk, size_t len)
{
	if (len <= PEERID_IDENTITY_MAX) {
		id->b[0] = MH_IDENTITY;
		id->b[1] = (uint8_t)len; /* < 128: a one-byte uvarint */
		memcpy(id->b + 2, pk, len);
		id->len = (uint8_t)(len + 2);
	} else {
		id->b[0] = MH_SHA2_256;
		id->b[1] = CRYPTO_SHA256_LEN;
		crypto_sha256(id->b + 2, pk, len);
		id->len = 2 + CRYPTO_SHA256_LEN;
	}
	return 0;
}

int peerid_from_bytes(struct peer_id *id, const uint8_t *b, size_t len)
{
	uint64_t code, dlen;
	struct rd r;

	if (!len) {
		return -NATX_E_PROTO; /* an empty protobuf bytes field may come with b NULL */
	}
	rd_init(&r, b, len);
	if (rd_uvarint(&r, &code) || rd_uvarint(&r, &dlen) || dlen != rd_left(&r)) {
		return -NATX_E_PROTO;
	}
	if (code == MH_IDENTITY) {
		if (dlen == 0 || dlen > PEERID_IDENTITY_MAX) {
			return -NATX_E_PROTO;
		}
	} else if (code != MH_SHA2_256 || dlen != CRYPTO_SHA256_LEN) {
		return -NATX_E_PROTO;
	}
	memcpy(id->b, b, len);
	id->len = (uint8_t)len;
	return 0;
}

int peerid_from_text(struct peer_id *id, const char *s, size_t len)
{
	uint8_t buf[PEERID_MAX_LEN + 8];
	uint64_t version, codec;
	struct rd r;
	int n;

	if (len == 0) {
		return -NATX_E_PROTO;
	}
	if (len >= PEERID_TEXT_MAX) {
		return -NATX_E_TOO_BIG;
	}
	if (s[0] == '1' || (len >= 2 && s[0] == 'Q' && s[1] == 'm')) {
		n = base58_decode(s, len, buf, sizeof(buf));
		return n < 0 ? -NATX_E_PROTO : peerid_from_bytes(id, buf, (size_t)n);
	}
	if (s[0] == 'b' || s[0] == 'B') {
		n = base32_decode(s + 1, len - 1, buf, sizeof(buf));
	} else if (s[0] == 'z') {
		n = base58_decode(s + 1, len - 1, buf, sizeof(buf));
	} else {
		return -NATX_E_PROTO;
	}
	if (n < 0) {
		return -NATX_E_PROTO;
	}
	rd_init(&r, buf, (size_t)n);
	if (rd_uvarint(&r, &version) || version != 1 || rd_uvarint(&r, &codec) ||
	    codec != CID_LIBP2P_KEY) {
		return -NATX_E_PROTO;
	}
	return peerid_from_bytes(id, r.p, rd_left(&r));
}

int peerid_to_text(const struct peer_id *id, char *out, size_t cap)
{
	return base58_encode(id->b, id->len, out, cap);
}

int peerid_to_cid_text(const struct peer_id *id, char *out, size_t cap)
{
	uint8_t cid[2 + PEERID_MAX_LEN] = { 0x01, CID_LIBP2P_KEY };
	int n;

	if (cap < 2) {
		return -NATX_E_TOO_BIG;
	}
	memcpy(cid + 2, id->b, id->len);
	out[0] = 'b';
	n = base32_encode(cid, 2u + id->len, out + 1, cap - 1);
	return n < 0 ? n : n + 1;
}

bool peerid_equal(const struct peer_id *a, const struct peer_id *b)
{
	return a->len == b->len && memcmp(a->b, b->b, a->len) == 0;
}

int peerid_pubkey(const struct peer_id *id, const uint8_t **pk)
{
	if (id->len < 2 || id->b[0] != MH_IDENTITY) {
		return -ENOENT;
	}
	*pk = id->b + 2;
	return id->len - 2;
}
