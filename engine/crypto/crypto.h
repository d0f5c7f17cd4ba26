/* SPDX-License-Identifier: MIT */
/*
 * natx cryptographic boundary (style.md §14 rule 4). Every primitive natx uses goes through
 * this header; engine/crypto/crypto_bssl.c is the only file in natx that includes
 * <openssl/...>. All functions return 0 on success and a negative code on failure
 * (-NATX_E_AUTH for a failed authentication, -EINVAL for bad sizes, -ENOMEM, -EIO when
 * BoringSSL refuses for another reason). Authentication results are __must_check and fail
 * closed: on failure the output buffers hold no usable plaintext or key.
 *
 * Buffers are always borrowed. Nothing here allocates except crypto_aead_init, which may
 * let BoringSSL set up internal state inside the caller's struct crypto_aead (no heap for
 * ChaCha20-Poly1305).
 */
#ifndef NATX_CRYPTO_H
#define NATX_CRYPTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define __must_check __attribute__((warn_unused_result))

enum {
	CRYPTO_X25519_LEN = 32, /* X25519 private, public and shared secret */
	CRYPTO_ED25519_SEED_LEN = 32, /* RFC 8032 private key (seed) */
	CRYPTO_ED25519_PUB_LEN = 32,
	CRYPTO_ED25519_PRIV_LEN = 64, /* BoringSSL expanded form: seed || public */
	CRYPTO_ED25519_SIG_LEN = 64,
	CRYPTO_AEAD_KEY_LEN = 32, /* ChaCha20-Poly1305 (RFC 8439) */
	CRYPTO_AEAD_NONCE_LEN = 12,
	CRYPTO_AEAD_TAG_LEN = 16,
	CRYPTO_SHA256_LEN = 32,
};

/*
 * struct crypto_aead - a keyed ChaCha20-Poly1305 context, embedded by the caller (it holds key
 * material: always crypto_aead_cleanup it). The storage is opaque here so that no natx header
 * depends on BoringSSL; crypto_bssl.c asserts at compile time that it is large enough.
 */
struct crypto_aead {
	_Alignas(16) uint8_t opaque[640];
};

/* struct crypto_sha256 - an incremental SHA-256 state (opaque, see struct crypto_aead). */
struct crypto_sha256 {
	_Alignas(8) uint8_t opaque[128];
};

/* crypto_random_bytes - fill @buf with @len bytes from the OS CSPRNG. Returns 0. */
int crypto_random_bytes(void *buf, size_t len);

/* crypto_wipe - overwrite @len bytes at @p with zeros in a way the compiler cannot elide. */
void crypto_wipe(void *p, size_t len);

/* crypto_memeq - constant-time comparison of @len bytes; true when equal. */
bool crypto_memeq(const void *a, const void *b, size_t len);

/* crypto_x25519_public - derive the public key @pub of the X25519 private key @priv. */
void crypto_x25519_public(uint8_t pub[CRYPTO_X25519_LEN], const uint8_t priv[CRYPTO_X25519_LEN]);

/*
 * crypto_x25519 - Diffie-Hellman: @out = X25519(@priv, @peer_pub). Returns -NATX_E_AUTH when
 * the result is all zeros (a small-order peer key, RFC 7748 §6.1); @out is then wiped.
 */
int __must_check crypto_x25519(uint8_t out[CRYPTO_X25519_LEN],
			       const uint8_t priv[CRYPTO_X25519_LEN],
			       const uint8_t peer_pub[CRYPTO_X25519_LEN]);

/*
 * crypto_ed25519_from_seed - expand the RFC 8032 seed into the public key and the 64-byte
 * private form used by crypto_ed25519_sign.
 */
void crypto_ed25519_from_seed(uint8_t pub[CRYPTO_ED25519_PUB_LEN],
			      uint8_t priv[CRYPTO_ED25519_PRIV_LEN],
			      const uint8_t seed[CRYPTO_ED25519_SEED_LEN]);

/* crypto_ed25519_sign - sign @len bytes of @msg (pure Ed25519, no prehash). Returns 0. */
int crypto_ed25519_sign(uint8_t sig[CRYPTO_ED25519_SIG_LEN], const void *msg, size_t len,
			const uint8_t priv[CRYPTO_ED25519_PRIV_LEN]);

/* crypto_ed25519_verify - check @sig over @msg with @pub. Returns 0 or -NATX_E_AUTH. */
int __must_check crypto_ed25519_verify(const uint8_t sig[CRYPTO_ED25519_SIG_LEN], const void *msg,
				       size_t len, const uint8_t pub[CRYPTO_ED25519_PUB_LEN]);

/* crypto_sha256 - one-shot SHA-256 of @len bytes at @data. */
void crypto_sha256(uint8_t out[CRYPTO_SHA256_LEN], const void *data, size_t len);

/* crypto_sha256_init/update/final - incremental SHA-256; final wipes the state. */
void crypto_sha256_init(struct crypto_sha256 *s);
void crypto_sha256_update(struct crypto_sha256 *s, const void *data, size_t len);
void crypto_sha256_final(struct crypto_sha256 *s, uint8_t out[CRYPTO_SHA256_LEN]);

/* crypto_hmac_sha256 - HMAC-SHA256 (RFC 2104) of @data under @key. */
void crypto_hmac_sha256(uint8_t out[CRYPTO_SHA256_LEN], const void *key, size_t key_len,
			const void *data, size_t len);

/*
 * crypto_hkdf_sha256 - RFC 5869 HKDF-SHA256: extract with @salt from @ikm, expand with @info
 * into @out_len bytes (at most 255 * 32). Noise's HKDF(ck, ikm) with two outputs is this
 * function with salt = ck, info empty and out_len = 64. Returns 0 or -EINVAL.
 */
int crypto_hkdf_sha256(uint8_t *out, size_t out_len, const void *salt, size_t salt_len,
		       const void *ikm, size_t ikm_len, const void *info, size_t info_len);

/* crypto_aead_init - key a ChaCha20-Poly1305 context with a 32-byte @key. Returns 0 or -EIO. */
int crypto_aead_init(struct crypto_aead *a, const uint8_t key[CRYPTO_AEAD_KEY_LEN]);

/* crypto_aead_cleanup - wipe the context; safe on a zeroed or cleaned-up context. */
void crypto_aead_cleanup(struct crypto_aead *a);

/*
 * crypto_aead_seal - encrypt @len bytes at @buf in place and write the 16-byte tag right after
 * them, so @buf must have room for @len + CRYPTO_AEAD_TAG_LEN bytes. @ad may be NULL when
 * @ad_len is 0. Returns 0 or -EIO.
 */
int crypto_aead_seal(const struct crypto_aead *a, const uint8_t nonce[CRYPTO_AEAD_NONCE_LEN],
		     const void *ad, size_t ad_len, uint8_t *buf, size_t len);

/*
 * crypto_aead_open - authenticate and decrypt @len bytes (ciphertext || tag) at @buf in place;
 * the plaintext is the first @len - 16 bytes. Returns 0, -NATX_E_AUTH on a bad tag (the
 * buffer content is then unspecified and must be discarded) or -EINVAL when @len < 16.
 */
int __must_check crypto_aead_open(const struct crypto_aead *a,
				  const uint8_t nonce[CRYPTO_AEAD_NONCE_LEN], const void *ad,
				  size_t ad_len, uint8_t *buf, size_t len);

#endif
