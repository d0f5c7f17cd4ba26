// SPDX-License-Identifier: MIT
/*
 * Tests for engine/crypto against published vectors:
 *   X25519            RFC 7748 §5.2 (first vector) and §6.1 (Alice/Bob exchange)
 *   Ed25519           RFC 8032 §7.1 TEST 1 and TEST 2
 *   ChaCha20-Poly1305 RFC 8439 §2.8.2
 *   SHA-256           FIPS 180-2 "abc"; HMAC-SHA256 RFC 4231 test case 2; HKDF RFC 5869 A.1
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>

#include "natx/err.h"
#include "crypto.h"
#include "p2p/t_p2p.h"

#define HEX(buf, s) cr_assert_eq(t_unhex(buf, sizeof(buf), s), (int)sizeof(buf))

Test(crypto, x25519_rfc7748)
{
	uint8_t k[32], u[32], want[32], out[32];

	HEX(k, "a546e36bf0527c9d3b16154b82465edd62144c0ac1fc5a18506a2244ba449ac4");
	HEX(u, "e6db6867583030db3594c1a424b15f7c726624ec26b3353b10a903a6d0ab1c4c");
	HEX(want, "c3da55379de9c6908e94ea4df28d084f32eccf03491c71f754b4075577a28552");
	cr_assert_eq(crypto_x25519(out, k, u), 0);
	cr_assert_arr_eq(out, want, 32);

	uint8_t a[32], apub[32], b[32], bpub[32], s1[32], s2[32], pub[32];

	HEX(a, "77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a");
	HEX(apub, "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a");
	HEX(b, "5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb");
	HEX(bpub, "de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f");
	HEX(want, "4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742");
	crypto_x25519_public(pub, a);
	cr_assert_arr_eq(pub, apub, 32);
	crypto_x25519_public(pub, b);
	cr_assert_arr_eq(pub, bpub, 32);
	cr_assert_eq(crypto_x25519(s1, a, bpub), 0);
	cr_assert_eq(crypto_x25519(s2, b, apub), 0);
	cr_assert_arr_eq(s1, want, 32);
	cr_assert_arr_eq(s2, want, 32);
}

Test(crypto, x25519_rejects_small_order_point)
{
	uint8_t k[32] = { 1 }, zero[32] = { 0 }, out[32];

	memset(out, 0xaa, sizeof(out));
	cr_assert_eq(crypto_x25519(out, k, zero), -NATX_E_AUTH);
	cr_assert_arr_eq(out, zero, 32);
}

Test(crypto, ed25519_rfc8032)
{
	static const struct {
		const char *seed, *pub, *msg, *sig;
	} v[] = {
		{ "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
		  "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a", "",
		  "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b" },
		{ "4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb",
		  "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c", "72",
		  "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00" },
	};

	for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
		uint8_t seed[32], pub[32], want_pub[32], priv[64], sig[64], want_sig[64], msg[8];
		int mlen = t_unhex(msg, sizeof(msg), v[i].msg);

		HEX(seed, v[i].seed);
		HEX(want_pub, v[i].pub);
		HEX(want_sig, v[i].sig);
		crypto_ed25519_from_seed(pub, priv, seed);
		cr_assert_arr_eq(pub, want_pub, 32);
		cr_assert_eq(crypto_ed25519_sign(sig, msg, (size_t)mlen, priv), 0);
		cr_assert_arr_eq(sig, want_sig, 64);
		cr_assert_eq(crypto_ed25519_verify(sig, msg, (size_t)mlen, pub), 0);
		sig[10] ^= 1;
		cr_assert_eq(crypto_ed25519_verify(sig, msg, (size_t)mlen, pub), -NATX_E_AUTH);
	}
}

Test(crypto, chacha20_poly1305_rfc8439_in_place)
{
	static const char pt[] =
		"Ladies and Gentlemen of the class of '99: If I could offer you only one tip for the future, sunscreen would be it.";
	uint8_t key[32], nonce[12], ad[12], want[114 + 16], buf[114 + 16];
	struct crypto_aead a;

	for (int i = 0; i < 32; i++) {
		key[i] = (uint8_t)(0x80 + i);
	}
	HEX(nonce, "070000004041424344454647");
	HEX(ad, "50515253c0c1c2c3c4c5c6c7");
	HEX(want,
	    "d31a8d34648e60db7b86afbc53ef7ec2a4aded51296e08fea9e2b5a736ee62d63dbea45e8ca9671282fafb69da92728b1a71de0a9e060b2905d6a5b67ecd3b3692ddbd7f2d778b8c9803aee328091b58fab324e4fad675945585808b4831d7bc3ff4def08e4b7a9de576d26586cec64b6116"
	    "1ae10b594f09e26a7e902ecbd0600691");
	cr_assert_eq(sizeof(pt) - 1, 114);
	memcpy(buf, pt, 114);
	cr_assert_eq(crypto_aead_init(&a, key), 0);
	cr_assert_eq(crypto_aead_seal(&a, nonce, ad, sizeof(ad), buf, 114), 0);
	cr_assert_arr_eq(buf, want, sizeof(want));
	cr_assert_eq(crypto_aead_open(&a, nonce, ad, sizeof(ad), buf, sizeof(buf)), 0);
	cr_assert_arr_eq(buf, pt, 114);

	memcpy(buf, want, sizeof(want));
	buf[3] ^= 0x40;
	cr_assert_eq(crypto_aead_open(&a, nonce, ad, sizeof(ad), buf, sizeof(buf)), -NATX_E_AUTH);
	memcpy(buf, want, sizeof(want));
	cr_assert_eq(crypto_aead_open(&a, nonce, ad, 11, buf, sizeof(buf)), -NATX_E_AUTH);
	cr_assert_eq(crypto_aead_open(&a, nonce, NULL, 0, buf, 15), -EINVAL);
	crypto_aead_cleanup(&a);
	crypto_aead_cleanup(&a); /* idempotent */
}

Test(crypto, sha256_hmac_hkdf_vectors)
{
	uint8_t out[32], want[32];
	struct crypto_sha256 s;

	HEX(want, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
	crypto_sha256(out, "abc", 3);
	cr_assert_arr_eq(out, want, 32);
	crypto_sha256_init(&s);
	crypto_sha256_update(&s, "a", 1);
	crypto_sha256_update(&s, "bc", 2);
	crypto_sha256_final(&s, out);
	cr_assert_arr_eq(out, want, 32);

	HEX(want, "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
	crypto_hmac_sha256(out, "Jefe", 4, "what do ya want for nothing?", 28);
	cr_assert_arr_eq(out, want, 32);

	uint8_t ikm[22], salt[13], info[10], okm[42], want_okm[42];

	memset(ikm, 0x0b, sizeof(ikm));
	for (int i = 0; i < 13; i++) {
		salt[i] = (uint8_t)i;
	}
	for (int i = 0; i < 10; i++) {
		info[i] = (uint8_t)(0xf0 + i);
	}
	HEX(want_okm,
	    "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865");
	cr_assert_eq(crypto_hkdf_sha256(okm, sizeof(okm), salt, sizeof(salt), ikm, sizeof(ikm),
					info, sizeof(info)),
		     0);
	cr_assert_arr_eq(okm, want_okm, sizeof(okm));
}

Test(crypto, memeq_and_wipe)
{
	uint8_t a[16] = { 1, 2, 3 }, b[16] = { 1, 2, 3 }, z[16] = { 0 };

	cr_assert(crypto_memeq(a, b, 16));
	b[15] = 9;
	cr_assert_not(crypto_memeq(a, b, 16));
	crypto_wipe(a, sizeof(a));
	cr_assert_arr_eq(a, z, 16);
}
