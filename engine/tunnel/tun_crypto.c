// SPDX-License-Identifier: MIT
/* Transcript HMAC and the default random source of the tunnel handshake (tun_crypto.h). */
#include <errno.h>
#include <string.h>

#include "tun_crypto.h"

int tun_hmac_sha256(uint8_t out[TUN_HMAC_LEN], const void *key, size_t key_len,
		    const struct tun_iov *iov, size_t n)
{
	uint8_t msg[TUN_HMAC_INPUT_MAX];
	size_t off = 0;

	for (size_t i = 0; i < n; i++) {
		if (iov[i].len > sizeof(msg) - off) {
			crypto_wipe(msg, off);
			crypto_wipe(out, TUN_HMAC_LEN);
			return -EINVAL;
		}
		if (iov[i].len) {
			memcpy(msg + off, iov[i].p, iov[i].len);
		}
		off += iov[i].len;
	}
	crypto_hmac_sha256(out, key, key_len, msg, off);
	crypto_wipe(msg, off);
	return 0;
}

int tun_random(void *arg, void *buf, size_t len)
{
	(void)arg;
	return crypto_random_bytes(buf, len);
}
