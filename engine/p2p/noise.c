// SPDX-License-Identifier: MIT
/*
 * noise.c - Noise_XX_25519_ChaChaPoly_SHA256 (libp2p) and Noise_NK_25519_ChaChaPoly_SHA256
 * (the tunnel's encrypted transport) handshakes and transport ciphers (see noise.h).
 * Handshake steps carry the Noise pattern tokens as comments so the code can be audited line by
 * line against the patterns:
 *   XX:  -> e                 NK:  <- s
 *        <- e, ee, s, es           ...
 *        -> s, se                  -> e, es
 *                                  <- e, ee
 */
#include <errno.h>
#include <string.h>

#include "natx/err.h"
#include "noise.h"

_Static_assert(sizeof(NOISE_PROTOCOL_NAME) - 1 == NOISE_HASH,
	       "protocol name is used as h without hashing only when it is exactly HASHLEN");
_Static_assert(sizeof(NOISE_NK_PROTOCOL_NAME) - 1 == NOISE_HASH,
	       "protocol name is used as h without hashing only when it is exactly HASHLEN");

/* noise_hs_nmsg - the number of handshake messages of the pattern. */
static unsigned int noise_hs_nmsg(const struct noise_hs *hs)
{
	return hs->pattern == NOISE_PATTERN_NK ? 2 : 3;
}

/* ---- CipherState ---- */

static void noise_nonce(uint8_t nonce[CRYPTO_AEAD_NONCE_LEN], uint64_t n)
{
	memset(nonce, 0, 4);
	for (int i = 0; i < 8; i++) {
		nonce[4 + i] = (uint8_t)(n >> (8 * i)); /* 64-bit little-endian counter */
	}
}

static int noise_cipher_key(struct noise_cipher *c, const uint8_t key[CRYPTO_AEAD_KEY_LEN])
{
	if (c->has_key) {
		crypto_aead_cleanup(&c->aead);
	}
	c->n = 0;
	c->has_key = false;
	if (crypto_aead_init(&c->aead, key)) {
		return -EIO;
	}
	c->has_key = true;
	return 0;
}

static int noise_cipher_seal_ad(struct noise_cipher *c, const uint8_t *ad, size_t ad_len,
				uint8_t *buf, size_t len)
{
	uint8_t nonce[CRYPTO_AEAD_NONCE_LEN];

	if (c->n == UINT64_MAX) {
		return -EOVERFLOW; /* 2^64-1 is reserved by the Noise spec */
	}
	noise_nonce(nonce, c->n);
	if (crypto_aead_seal(&c->aead, nonce, ad, ad_len, buf, len)) {
		return -EIO;
	}
	c->n++;
	return 0;
}

static int noise_cipher_open_ad(struct noise_cipher *c, const uint8_t *ad, size_t ad_len,
				uint8_t *buf, size_t len)
{
	uint8_t nonce[CRYPTO_AEAD_NONCE_LEN];

	if (len < NOISE_TAG) {
		return -NATX_E_PROTO;
	}
	if (c->n == UINT64_MAX) {
		return -EOVERFLOW;
	}
	noise_nonce(nonce, c->n);
	if (crypto_aead_open(&c->aead, nonce, ad, ad_len, buf, len)) {
		return -EBADMSG;
	}
	c->n++;
	return 0;
}

int noise_seal(struct noise_cipher *c, uint8_t *buf, size_t len)
{
	if (len > NOISE_MAX_PLAINTEXT) {
		return -NATX_E_TOO_BIG;
	}
	if (!c->has_key) {
		return -EINVAL;
	}
	return noise_cipher_seal_ad(c, NULL, 0, buf, len);
}

int noise_open(struct noise_cipher *c, uint8_t *buf, size_t len)
{
	if (len > NOISE_MAX_MSG) {
		return -NATX_E_TOO_BIG;
	}
	if (!c->has_key) {
		return -EINVAL;
	}
	return noise_cipher_open_ad(c, NULL, 0, buf, len);
}

void noise_cipher_cleanup(struct noise_cipher *c)
{
	crypto_aead_cleanup(&c->aead);
	c->n = 0;
	c->has_key = false;
}

/* ---- SymmetricState ---- */

static void noise_mix_hash(struct noise_hs *hs, const uint8_t *data, size_t len)
{
	struct crypto_sha256 s;

	crypto_sha256_init(&s);
	crypto_sha256_update(&s, hs->h, NOISE_HASH);
	crypto_sha256_update(&s, data, len);
	crypto_sha256_final(&s, hs->h);
}

/* noise_mix_key - ck, k = HKDF(ck, ikm); the cipher is re-keyed with k and n = 0. */
static int noise_mix_key(struct noise_hs *hs, const uint8_t *ikm, size_t len)
{
	uint8_t out[2 * NOISE_HASH];
	int err = crypto_hkdf_sha256(out, sizeof(out), hs->ck, NOISE_HASH, ikm, len, NULL, 0);

	if (err) {
		goto out;
	}
	memcpy(hs->ck, out, NOISE_HASH);
	err = noise_cipher_key(&hs->cs, out + NOISE_HASH);
out:
	crypto_wipe(out, sizeof(out));
	return err;
}

/* noise_mix_dh - MixKey(DH(priv, pub)); a degenerate (all-zero) DH fails the handshake. */
static int __must_check noise_mix_dh(struct noise_hs *hs, const uint8_t priv[NOISE_DH],
				     const uint8_t pub[NOISE_DH])
{
	uint8_t dh[NOISE_DH];
	int err = crypto_x25519(dh, priv, pub);

	if (!err) {
		err = noise_mix_key(hs, dh, sizeof(dh));
	}
	crypto_wipe(dh, sizeof(dh));
	return err;
}

/* noise_encrypt_and_hash - in place at @buf: @len plaintext bytes become the ciphertext. */
static int noise_encrypt_and_hash(struct noise_hs *hs, uint8_t *buf, size_t len, size_t *olen)
{
	int err = 0;

	if (hs->cs.has_key) {
		err = noise_cipher_seal_ad(&hs->cs, hs->h, NOISE_HASH, buf, len);
		len += NOISE_TAG;
	}
	if (!err) {
		noise_mix_hash(hs, buf, len);
		*olen = len;
	}
	return err;
}

/* noise_decrypt_and_hash - in place; h absorbs the ciphertext, so hash before decrypting. */
static int noise_decrypt_and_hash(struct noise_hs *hs, uint8_t *buf, size_t len, size_t *plen)
{
	uint8_t old_h[NOISE_HASH];
	int err = 0;

	memcpy(old_h, hs->h, NOISE_HASH);
	noise_mix_hash(hs, buf, len);
	if (hs->cs.has_key) {
		err = noise_cipher_open_ad(&hs->cs, old_h, NOISE_HASH, buf, len);
		len -= NOISE_TAG;
	}
	*plen = len;
	return err;
}

/* ---- HandshakeState ---- */

int noise_hs_init(struct noise_hs *hs, bool initiator, const uint8_t *prologue, size_t plen,
		  const uint8_t s_priv[NOISE_DH], const uint8_t e_priv[NOISE_DH])
{
	memset(hs, 0, sizeof(*hs));
	hs->initiator = initiator;
	memcpy(hs->h, NOISE_PROTOCOL_NAME, NOISE_HASH);
	memcpy(hs->ck, hs->h, NOISE_HASH);
	noise_mix_hash(hs, prologue, plen);
	memcpy(hs->s_priv, s_priv, NOISE_DH);
	crypto_x25519_public(hs->s_pub, s_priv);
	memcpy(hs->e_priv, e_priv, NOISE_DH);
	crypto_x25519_public(hs->e_pub, e_priv);
	return 0;
}

bool noise_hs_my_turn(const struct noise_hs *hs)
{
	return hs->step < noise_hs_nmsg(hs) && !hs->failed &&
	       ((hs->step % 2 == 0) == hs->initiator);
}

bool noise_hs_done(const struct noise_hs *hs)
{
	return hs->step == noise_hs_nmsg(hs) && !hs->failed;
}

/*
 * noise_tokens_e_ee - the XX tokens both sides process alike: `e` in messages 1 and 2 (@e, the
 * ephemeral key just written or read, is hashed and *@o moves past it) and `ee` in message 2.
 */
static int __must_check noise_tokens_e_ee(struct noise_hs *hs, const uint8_t e[NOISE_DH], size_t *o)
{
	if (hs->step <= 1) {
		noise_mix_hash(hs, e, NOISE_DH);
		*o = NOISE_DH;
	}
	if (hs->step == 1) {
		return noise_mix_dh(hs, hs->e_priv, hs->re);
	}
	return 0;
}

/* ---- NK ---- */

int noise_hs_init_nk(struct noise_hs *hs, bool initiator, const uint8_t *prologue, size_t plen,
		     const uint8_t s_priv[NOISE_DH], const uint8_t rs[NOISE_DH],
		     const uint8_t e_priv[NOISE_DH])
{
	if (initiator ? !rs : !s_priv) {
		return -EINVAL;
	}
	memset(hs, 0, sizeof(*hs));
	hs->pattern = NOISE_PATTERN_NK;
	hs->initiator = initiator;
	memcpy(hs->h, NOISE_NK_PROTOCOL_NAME, NOISE_HASH);
	memcpy(hs->ck, hs->h, NOISE_HASH);
	noise_mix_hash(hs, prologue, plen);
	if (initiator) {
		memcpy(hs->rs, rs, NOISE_DH);
	} else {
		memcpy(hs->s_priv, s_priv, NOISE_DH);
		crypto_x25519_public(hs->s_pub, s_priv);
	}
	/* pre-message: <- s */
	noise_mix_hash(hs, initiator ? hs->rs : hs->s_pub, NOISE_DH);
	memcpy(hs->e_priv, e_priv, NOISE_DH);
	crypto_x25519_public(hs->e_pub, e_priv);
	return 0;
}

/*
 * noise_nk_write - message 1 (initiator: e, es) or 2 (responder: e, ee), then the payload
 * (always encrypted: es already keyed the cipher).
 */
static int noise_nk_write(struct noise_hs *hs, const uint8_t *payload, size_t plen, uint8_t *out,
			  size_t cap, size_t *olen)
{
	size_t need = NOISE_DH + plen + NOISE_TAG, n;
	int err;

	if (need > cap || need > NOISE_MAX_MSG) {
		return -NATX_E_TOO_BIG;
	}
	/* e */
	memcpy(out, hs->e_pub, NOISE_DH);
	noise_mix_hash(hs, hs->e_pub, NOISE_DH);
	/* es (initiator: DH(e, rs)) / ee (responder: DH(e, re)) */
	err = noise_mix_dh(hs, hs->e_priv, hs->step == 0 ? hs->rs : hs->re);
	if (err) {
		goto fail;
	}
	if (plen) {
		memcpy(out + NOISE_DH, payload, plen);
	}
	err = noise_encrypt_and_hash(hs, out + NOISE_DH, plen, &n);
	if (err) {
		goto fail;
	}
	*olen = NOISE_DH + n;
	hs->step++;
	return 0;
fail:
	hs->failed = true;
	return err;
}

/*
 * noise_nk_read - message 1 (responder: e, es) or 2 (initiator: e, ee). A responder whose static
 * key is not the one the initiator pinned fails here with -EBADMSG (the payload tag), and so does
 * an initiator talking to a server without the pinned key's private half.
 */
static int noise_nk_read(struct noise_hs *hs, uint8_t *msg, size_t len, uint8_t **payload,
			 size_t *plen)
{
	int err;

	if (len < NOISE_DH + NOISE_TAG) {
		err = -NATX_E_PROTO;
		goto fail;
	}
	/* e */
	memcpy(hs->re, msg, NOISE_DH);
	noise_mix_hash(hs, hs->re, NOISE_DH);
	/* es (responder: DH(s, re)) / ee (initiator: DH(e, re)) */
	err = noise_mix_dh(hs, hs->step == 0 ? hs->s_priv : hs->e_priv, hs->re);
	if (err) {
		goto fail;
	}
	err = noise_decrypt_and_hash(hs, msg + NOISE_DH, len - NOISE_DH, plen);
	if (err) {
		goto fail;
	}
	*payload = msg + NOISE_DH;
	hs->step++;
	return 0;
fail:
	hs->failed = true;
	return err;
}

int noise_hs_write(struct noise_hs *hs, const uint8_t *payload, size_t plen, uint8_t *out,
		   size_t cap, size_t *olen)
{
	size_t need, o = 0, n;
	int err;

	if (!noise_hs_my_turn(hs)) {
		return -EINVAL;
	}
	if (hs->pattern == NOISE_PATTERN_NK) {
		return noise_nk_write(hs, payload, plen, out, cap, olen);
	}
	need = (hs->step == 0 ? NOISE_DH :
		hs->step == 1 ? 2 * NOISE_DH + NOISE_TAG :
				NOISE_DH + NOISE_TAG) +
	       plen + (hs->step == 0 ? 0 : NOISE_TAG);
	if (need > cap || need > NOISE_MAX_MSG) {
		return -NATX_E_TOO_BIG;
	}
	if (hs->step <= 1) {
		memcpy(out, hs->e_pub, NOISE_DH);
	}
	err = noise_tokens_e_ee(hs, hs->e_pub, &o);
	if (err) {
		goto fail;
	}
	if (hs->step >= 1) {
		/* s */
		memcpy(out + o, hs->s_pub, NOISE_DH);
		err = noise_encrypt_and_hash(hs, out + o, NOISE_DH, &n);
		if (err) {
			goto fail;
		}
		o += n;
		/* es (responder) / se (initiator): both are DH(our s, their e) */
		err = noise_mix_dh(hs, hs->s_priv, hs->re);
		if (err) {
			goto fail;
		}
	}
	if (plen) {
		memcpy(out + o, payload, plen);
	}
	err = noise_encrypt_and_hash(hs, out + o, plen, &n);
	if (err) {
		goto fail;
	}
	*olen = o + n;
	hs->step++;
	return 0;
fail:
	hs->failed = true;
	return err;
}

int noise_hs_read(struct noise_hs *hs, uint8_t *msg, size_t len, uint8_t **payload, size_t *plen)
{
	size_t o = 0, need, n;
	int err;

	if (hs->step >= noise_hs_nmsg(hs) || hs->failed || noise_hs_my_turn(hs)) {
		return -EINVAL;
	}
	if (len > NOISE_MAX_MSG) {
		err = -NATX_E_TOO_BIG;
		goto fail;
	}
	if (hs->pattern == NOISE_PATTERN_NK) {
		return noise_nk_read(hs, msg, len, payload, plen);
	}
	need = hs->step == 0 ? NOISE_DH :
	       hs->step == 1 ? 2 * NOISE_DH + 2 * NOISE_TAG :
			       NOISE_DH + 2 * NOISE_TAG;
	if (len < need) {
		err = -NATX_E_PROTO;
		goto fail;
	}
	if (hs->step <= 1) {
		memcpy(hs->re, msg, NOISE_DH);
	}
	err = noise_tokens_e_ee(hs, hs->re, &o);
	if (err) {
		goto fail;
	}
	if (hs->step >= 1) {
		/* s */
		err = noise_decrypt_and_hash(hs, msg + o, NOISE_DH + NOISE_TAG, &n);
		if (err) {
			goto fail;
		}
		memcpy(hs->rs, msg + o, NOISE_DH);
		o += NOISE_DH + NOISE_TAG;
		/* es (initiator) / se (responder): both are DH(our e, their s) */
		err = noise_mix_dh(hs, hs->e_priv, hs->rs);
		if (err) {
			goto fail;
		}
	}
	err = noise_decrypt_and_hash(hs, msg + o, len - o, &n);
	if (err) {
		goto fail;
	}
	*payload = msg + o;
	*plen = n;
	hs->step++;
	return 0;
fail:
	hs->failed = true;
	return err;
}

int noise_hs_split(struct noise_hs *hs, struct noise_cipher *tx, struct noise_cipher *rx)
{
	uint8_t out[2 * NOISE_HASH];
	int err;

	if (!noise_hs_done(hs)) {
		return -EINVAL;
	}
	memset(tx, 0, sizeof(*tx));
	memset(rx, 0, sizeof(*rx));
	err = crypto_hkdf_sha256(out, sizeof(out), hs->ck, NOISE_HASH, NULL, 0, NULL, 0);
	if (err) {
		goto out;
	}
	err = noise_cipher_key(hs->initiator ? tx : rx, out);
	err = err ?: noise_cipher_key(hs->initiator ? rx : tx, out + NOISE_HASH);
	if (err) {
		noise_cipher_cleanup(tx);
		noise_cipher_cleanup(rx);
	}
out:
	crypto_wipe(out, sizeof(out));
	/* keep h (public transcript hash); drop every secret */
	noise_cipher_cleanup(&hs->cs);
	crypto_wipe(hs->ck, sizeof(hs->ck));
	crypto_wipe(hs->s_priv, sizeof(hs->s_priv));
	crypto_wipe(hs->e_priv, sizeof(hs->e_priv));
	return err;
}

void noise_hs_cleanup(struct noise_hs *hs)
{
	noise_cipher_cleanup(&hs->cs);
	crypto_wipe(hs, sizeof(*hs));
}
