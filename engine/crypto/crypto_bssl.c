// SPDX-License-Identifier: MIT
/*
 * crypto_bssl.c - the BoringSSL backend of engine/crypto/crypto.h and the only natx file that
 * includes <openssl/...> (style.md §14 rule 4). BoringSSL's 1/0 results become 0/-errno here;
 * the error queue is never inspected, only cleared when a failure is reported.
 */
#include <errno.h>

#include <openssl/aead.h>
#include <openssl/crypto.h>
#include <openssl/curve25519.h>
#include <openssl/digest.h>
#include <openssl/err.h>
#include <openssl/hkdf.h>
#include <openssl/hmac.h>
#include <openssl/mem.h>
#include <openssl/rand.h>
#include <openssl/sha.h>

#include "natx/err.h"
#include "crypto.h"

_Static_assert(sizeof(EVP_AEAD_CTX) <= sizeof(((struct crypto_aead *)0)->opaque),
	       "struct crypto_aead too small for EVP_AEAD_CTX");
_Static_assert(_Alignof(EVP_AEAD_CTX) <= 16, "struct crypto_aead under-aligned");
_Static_assert(sizeof(SHA256_CTX) <= sizeof(((struct crypto_sha256 *)0)->opaque),
	       "struct crypto_sha256 too small for SHA256_CTX");

static EVP_AEAD_CTX *aead_ctx(const struct crypto_aead *a)
{
	return (EVP_AEAD_CTX *)(void *)a->opaque;
}

int crypto_random_bytes(void *buf, size_t len)
{
	RAND_bytes(buf, len); /* BoringSSL: always succeeds or aborts */
	return 0;
}

void crypto_wipe(void *p, size_t len)
{
	OPENSSL_cleanse(p, len);
}

bool crypto_memeq(const void *a, const void *b, size_t len)
{
	return CRYPTO_memcmp(a, b, len) == 0;
}

void crypto_x25519_public(uint8_t pub[CRYPTO_X25519_LEN], const uint8_t priv[CRYPTO_X25519_LEN])
{
	X25519_public_from_private(pub, priv);
}

int crypto_x25519(uint8_t out[CRYPTO_X25519_LEN], const uint8_t priv[CRYPTO_X25519_LEN],
		  const uint8_t peer_pub[CRYPTO_X25519_LEN])
{
	if (!X25519(out, priv, peer_pub)) {
		OPENSSL_cleanse(out, CRYPTO_X25519_LEN);
		ERR_clear_error();
		return -NATX_E_AUTH;
	}
	return 0;
}

void crypto_ed25519_from_seed(uint8_t pub[CRYPTO_ED25519_PUB_LEN],
			      uint8_t priv[CRYPTO_ED25519_PRIV_LEN],
			      const uint8_t seed[CRYPTO_ED25519_SEED_LEN])
{
	ED25519_keypair_from_seed(pub, priv, seed);
}

int crypto_ed25519_sign(uint8_t sig[CRYPTO_ED25519_SIG_LEN], const void *msg, size_t len,
			const uint8_t priv[CRYPTO_ED25519_PRIV_LEN])
{
	if (!ED25519_sign(sig, msg, len, priv)) {
		ERR_clear_error();
		return -EIO;
	}
	return 0;
}

int crypto_ed25519_verify(const uint8_t sig[CRYPTO_ED25519_SIG_LEN], const void *msg, size_t len,
			  const uint8_t pub[CRYPTO_ED25519_PUB_LEN])
{
	if (!ED25519_verify(msg, len, sig, pub)) {
		ERR_clear_error();
		return -NATX_E_AUTH;
	}
	return 0;
}

void crypto_sha256(uint8_t out[CRYPTO_SHA256_LEN], const void *data, size_t len)
{
	SHA256(data, len, out);
}

void crypto_sha256_init(struct crypto_sha256 *s)
{
	SHA256_Init((SHA256_CTX *)(void *)s->opaque);
}

void crypto_sha256_update(struct crypto_sha256 *s, const void *data, size_t len)
{
	SHA256_Update((SHA256_CTX *)(void *)s->opaque, data, len);
}

void crypto_sha256_final(struct crypto_sha256 *s, uint8_t out[CRYPTO_SHA256_LEN])
{
	SHA256_Final(out, (SHA256_CTX *)(void *)s->opaque);
	OPENSSL_cleanse(s, sizeof(*s));
}

void crypto_hmac_sha256(uint8_t out[CRYPTO_SHA256_LEN], const void *key, size_t key_len,
			const void *data, size_t len)
{
	unsigned int out_len = CRYPTO_SHA256_LEN;

	/* HMAC() only fails on allocation failure, which BoringSSL's one-shot never does for SHA-256. */
	if (!HMAC(EVP_sha256(), key, key_len, data, len, out, &out_len)) {
		ERR_clear_error();
		OPENSSL_cleanse(out, CRYPTO_SHA256_LEN);
	}
}

int crypto_hkdf_sha256(uint8_t *out, size_t out_len, const void *salt, size_t salt_len,
		       const void *ikm, size_t ikm_len, const void *info, size_t info_len)
{
	if (!HKDF(out, out_len, EVP_sha256(), ikm, ikm_len, salt, salt_len, info, info_len)) {
		ERR_clear_error();
		OPENSSL_cleanse(out, out_len);
		return -EINVAL;
	}
	return 0;
}

int crypto_aead_init(struct crypto_aead *a, const uint8_t key[CRYPTO_AEAD_KEY_LEN])
{
	if (!EVP_AEAD_CTX_init(aead_ctx(a), EVP_aead_chacha20_poly1305(), key, CRYPTO_AEAD_KEY_LEN,
			       CRYPTO_AEAD_TAG_LEN, NULL)) {
		ERR_clear_error();
		OPENSSL_cleanse(a, sizeof(*a));
		return -EIO;
	}
	return 0;
}

void crypto_aead_cleanup(struct crypto_aead *a)
{
	/* Zeroed storage is a valid "never initialised" context for EVP_AEAD_CTX_cleanup. */
	EVP_AEAD_CTX_cleanup(aead_ctx(a));
	OPENSSL_cleanse(a, sizeof(*a));
}

int crypto_aead_seal(const struct crypto_aead *a, const uint8_t nonce[CRYPTO_AEAD_NONCE_LEN],
		     const void *ad, size_t ad_len, uint8_t *buf, size_t len)
{
	size_t out_len;

	if (!EVP_AEAD_CTX_seal(aead_ctx(a), buf, &out_len, len + CRYPTO_AEAD_TAG_LEN, nonce,
			       CRYPTO_AEAD_NONCE_LEN, buf, len, ad, ad_len)) {
		ERR_clear_error();
		return -EIO;
	}
	return 0;
}

int crypto_aead_open(const struct crypto_aead *a, const uint8_t nonce[CRYPTO_AEAD_NONCE_LEN],
		     const void *ad, size_t ad_len, uint8_t *buf, size_t len)
{
	size_t out_len;

	if (len < CRYPTO_AEAD_TAG_LEN) {
		return -EINVAL;
	}
	if (!EVP_AEAD_CTX_open(aead_ctx(a), buf, &out_len, len, nonce, CRYPTO_AEAD_NONCE_LEN, buf,
			       len, ad, ad_len)) {
		ERR_clear_error();
		return -NATX_E_AUTH;
	}
	return 0;
}
