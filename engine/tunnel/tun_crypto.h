/* SPDX-License-Identifier: MIT */
/*
 * tun_crypto - the two conveniences the tunnel handshake adds on top of engine/crypto
 * (crypto.h, the project's BoringSSL boundary): HMAC-SHA256 over a list of byte ranges (the
 * labelled transcripts), and a random source with the tun_random_fn signature.
 * Constant-time compares and wiping are crypto_memeq() / crypto_wipe() directly.
 */
#ifndef NATX_TUN_CRYPTO_H
#define NATX_TUN_CRYPTO_H

#include <stddef.h>
#include <stdint.h>

#include "crypto.h"

#define TUN_HMAC_LEN CRYPTO_SHA256_LEN

/* Largest transcript tun_hmac_sha256 accepts: an AUTH payload plus labels and nonces. */
#define TUN_HMAC_INPUT_MAX 4800

struct tun_iov {
	const void *p;
	size_t len;
};

/*
 * tun_hmac_sha256 - out = HMAC-SHA256(key, iov[0] || ... || iov[n-1]). Returns 0, or -EINVAL
 * (out wiped) when the pieces add up to more than TUN_HMAC_INPUT_MAX bytes.
 */
int tun_hmac_sha256(uint8_t out[TUN_HMAC_LEN], const void *key, size_t key_len,
		    const struct tun_iov *iov, size_t n) __attribute__((warn_unused_result));

/* tun_random - the default tun_random_fn: CSPRNG bytes. Returns 0. arg is unused. */
int tun_random(void *arg, void *buf, size_t len);

#endif
