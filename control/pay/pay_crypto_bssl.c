// SPDX-License-Identifier: MIT
/*
 * pay_crypto on BoringSSL. The only file in control/pay that includes <openssl/...>; it
 * folds into engine/crypto/ (the project's BoringSSL boundary, style.md rule 4) once that has
 * landed on main. BoringSSL's 1/0 results are turned into 0/-errno here.
 */
#include <errno.h>

#include <openssl/crypto.h>
#include <openssl/hmac.h>
#include <openssl/mem.h>
#include <openssl/rand.h>
#include <openssl/sha.h>

#include "pay_crypto.h"

void pay_sha256(uint8_t out[PAY_SHA256_LEN], const void *data, size_t len)
{
	SHA256(data, len, out);
}

void pay_hmac_sha256(uint8_t out[PAY_SHA256_LEN], const void *key, size_t key_len, const void *data,
		     size_t len)
{
	unsigned int out_len = PAY_SHA256_LEN;

	/* HMAC() with SHA-256 only fails on allocation, which the one-shot form never does. */
	if (!HMAC(EVP_sha256(), key, key_len, data, len, out, &out_len)) {
		OPENSSL_cleanse(out, PAY_SHA256_LEN);
	}
}

int pay_random(void *buf, size_t len)
{
	if (!RAND_bytes(buf, len)) {
		OPENSSL_cleanse(buf, len);
		return -EIO;
	}
	return 0;
}

bool pay_memeq(const void *a, const void *b, size_t len)
{
	return CRYPTO_memcmp(a, b, len) == 0;
}

void pay_wipe(void *p, size_t len)
{
	OPENSSL_cleanse(p, len);
}
