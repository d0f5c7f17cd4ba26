// SPDX-License-Identifier: MIT
/*
 * tun_crypto on BoringSSL: the only file of engine/tunnel that includes <openssl/...>. It
 * folds into engine/crypto/ (style.md rule 4) once that boundary has landed on main.
 */
#include <errno.h>

#include <openssl/crypto.h>
#include <openssl/hmac.h>
#include <openssl/mem.h>
#include <openssl/rand.h>

#include "tun_crypto.h"

int tun_hmac_sha256(uint8_t out[TUN_HMAC_LEN], const void *key, size_t key_len,
		    const struct tun_iov *iov, size_t n)
{
	unsigned int out_len = TUN_HMAC_LEN;
	HMAC_CTX ctx;
	int err = 0;

	HMAC_CTX_init(&ctx);
	if (!HMAC_Init_ex(&ctx, key, key_len, EVP_sha256(), NULL)) {
		err = -EIO;
		goto out_ctx;
	}
	for (size_t i = 0; i < n; i++) {
		if (!HMAC_Update(&ctx, iov[i].p, iov[i].len)) {
			err = -EIO;
			goto out_ctx;
		}
	}
	if (!HMAC_Final(&ctx, out, &out_len)) {
		err = -EIO;
	}

out_ctx:
	HMAC_CTX_cleanup(&ctx);
	if (err) {
		OPENSSL_cleanse(out, TUN_HMAC_LEN);
	}
	return err;
}

int tun_random(void *arg, void *buf, size_t len)
{
	(void)arg;
	if (!RAND_bytes(buf, len)) {
		OPENSSL_cleanse(buf, len);
		return -EIO;
	}
	return 0;
}

bool tun_memeq(const void *a, const void *b, size_t len)
{
	return CRYPTO_memcmp(a, b, len) == 0;
}

void tun_wipe(void *p, size_t len)
{
	OPENSSL_cleanse(p, len);
}
