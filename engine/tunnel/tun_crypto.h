/* SPDX-License-Identifier: MIT */
/*
 * tun_crypto - the primitives the tunnel handshake needs: HMAC-SHA256 over a few byte
 * ranges, random bytes, constant-time compare, wiping.
 *
 * engine/crypto/ (the p2p work) is the project's single BoringSSL boundary; until it has
 * landed on main, tun_crypto_bssl.c is the only file of engine/tunnel that includes
 * <openssl/...>, and it folds into engine/crypto when that lands.
 */
#ifndef NATX_TUN_CRYPTO_H
#define NATX_TUN_CRYPTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define TUN_HMAC_LEN 32

struct tun_iov {
	const void *p;
	size_t len;
};

/* tun_hmac_sha256 - out = HMAC-SHA256(key, iov[0] || ... || iov[n-1]). Returns 0 or -EIO. */
int tun_hmac_sha256(uint8_t out[TUN_HMAC_LEN], const void *key, size_t key_len,
		    const struct tun_iov *iov, size_t n) __attribute__((warn_unused_result));

/* tun_random - CSPRNG bytes; the default tun_random_fn. Returns 0 or -EIO. arg is unused. */
int tun_random(void *arg, void *buf, size_t len);

/* tun_memeq - constant-time equality. */
bool tun_memeq(const void *a, const void *b, size_t len) __attribute__((warn_unused_result));

/* tun_wipe - zero memory in a way the compiler keeps. */
void tun_wipe(void *p, size_t len);

#endif
