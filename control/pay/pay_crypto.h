/* SPDX-License-Identifier: MIT */
/*
 * pay_crypto - the few primitives control/pay needs: SHA-256, HMAC-SHA256, random bytes,
 * constant-time compare and wiping.
 *
 * This is a deliberately tiny internal interface. engine/crypto/ (owned by the p2p work) is
 * the project's single BoringSSL boundary; until it has landed on main, pay_crypto_bssl.c is
 * the only file of control/pay that includes <openssl/...>, and it folds into engine/crypto
 * when that lands (these functions then become thin wrappers or disappear).
 */
#ifndef NATX_PAY_CRYPTO_H
#define NATX_PAY_CRYPTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PAY_SHA256_LEN 32

/* pay_sha256 - out = SHA-256(data[0..len)). Cannot fail. */
void pay_sha256(uint8_t out[PAY_SHA256_LEN], const void *data, size_t len);

/* pay_hmac_sha256 - out = HMAC-SHA256(key, data). Any key length. Cannot fail. */
void pay_hmac_sha256(uint8_t out[PAY_SHA256_LEN], const void *key, size_t key_len, const void *data,
		     size_t len);

/*
 * pay_random - fill buf with len bytes from the system CSPRNG. Returns 0, or -EIO (buf then
 * holds no usable secret and has been wiped).
 */
int pay_random(void *buf, size_t len) __attribute__((warn_unused_result));

/* pay_memeq - true when a and b are equal; time depends on len only, never on contents. */
bool pay_memeq(const void *a, const void *b, size_t len) __attribute__((warn_unused_result));

/* pay_wipe - overwrite len bytes at p with zeros in a way the compiler cannot elide. */
void pay_wipe(void *p, size_t len);

#endif
