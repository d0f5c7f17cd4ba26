// SPDX-License-Identifier: MIT
/*
 * Macaroon v2 binary codec and HMAC chain (control/pay/macaroon.c) against published vectors:
 *
 * - libmacaroons (github.com/rescrv/libmacaroons @ ca0211d) test/unit/root_v2_1.vtest,
 *   root_v2_2.vtest, caveat_v2_1..6.vtest, test/unit/serialization_{1,2,3}: v2 binary
 *   macaroons in base64 with root key "this is the key"; authorized / unauthorized outcomes.
 * - libmacaroons README (same commit), lines 150-188 and 441-484: signatures e3d9e029...,
 *   1efe4763..., 1434e674..., d27db2fd... (the last one after a third-party caveat).
 * - go-macaroon (github.com/go-macaroon/macaroon @ 1679699) macaroon_test.go
 *   "V2_base64_encoded_binary": the exact v2 bytes of the README's third-party macaroon.
 */
#include <criterion/criterion.h>
#include <string.h>

#include "macaroon.h"
#include "natx/err.h"
#include "pay_codec.h"
#include "pay_err.h"
#include "pay_t.h"

#define LM_KEY "this is the key"

/* libmacaroons root_v2_1 / serialization_1: no caveats. */
static const char lm_root[] =
	"AgETaHR0cDovL2V4YW1wbGUub3JnLwIFa2V5aWQAAAYgfN7nklEcW8b1KEhYBd_psk54XijiqZMB-dcRxgnjjvc";
/* libmacaroons caveat_v2_1 / serialization_2: "account = 3735928559". */
static const char lm_cav1[] = "AgETaHR0cDovL2V4YW1wbGUub3JnLwIFa2V5aWQAAhRhY2NvdW50ID0gMzczNTkyOD"
			      "U1OQAABiD1SAf23G7fiL8PcwazgiVio2JTPb9zObphdl2kvSWdhw";
/* libmacaroons caveat_v2_4 / serialization_3: plus "user = alice". */
static const char lm_cav2[] = "AgETaHR0cDovL2V4YW1wbGUub3JnLwIFa2V5aWQAAhRhY2NvdW50ID0gMzczNTkyOD"
			      "U1OQACDHVzZXIgPSBhbGljZQAABiBL6WfNHqDGsmuvakqU7psFsViG2guoXoxCqTyNDh"
			      "Je_A";
/* serialization_3 "v2" line: the same bytes in padded URL-safe base64. */
static const char lm_cav2_padded[] =
	"AgETaHR0cDovL2V4YW1wbGUub3JnLwIFa2V5aWQAAhRhY2NvdW50ID0gMzczNTkyODU1OQACDHVzZXIgPSBhbGl"
	"jZQAABiBL6WfNHqDGsmuvakqU7psFsViG2guoXoxCqTyNDhJe_A==";

/* go-macaroon macaroon_test.go "V2_base64_encoded_binary" (hex of the raw bytes). */
static const char gm_third_party_hex[] =
	"02010e687474703a2f2f6d7962616e6b2f021c77652075736564206f7572206f"
	"7468657220736563726574206b65790002146163636f756e74203d2033373335"
	"393238353539000113687474703a2f2f617574682e6d7962616e6b2f02277468"
	"69732077617320686f772077652072656d696e642061757468206f66206b6579"
	"2f707265640448000000000000000000000000000000000000000000000000d3"
	"6ec502e05886d1f0279f055fa52554d16d16c1b14074bbb83ff0fdd79dc2fe09"
	"8f0ed4a2b091130e6b5db46a20a86b00000620d27db2fd1f22760e4c3dae8137"
	"e2d8fc1df6c0741c18aed4b97256bf78d1f55c";

static size_t t_b64(uint8_t *buf, size_t cap, const char *text)
{
	long n = b64_decode(buf, cap, text, strlen(text));

	cr_assert_gt(n, 0, "bad base64 vector");
	return (size_t)n;
}

static bool t_cav_is(const struct mac_caveat *c, const char *s)
{
	return c->id_len == strlen(s) && !memcmp(c->id, s, c->id_len);
}

Test(macaroon, libmacaroons_root_v2_vector_decodes_and_verifies)
{
	uint8_t buf[512];
	struct macaroon m;
	size_t n = t_b64(buf, sizeof(buf), lm_root);

	cr_assert_eq(macaroon_decode(&m, buf, n), 0);
	cr_assert_eq(m.loc_len, strlen("http://example.org/"));
	cr_assert_arr_eq(m.loc, "http://example.org/", m.loc_len);
	cr_assert_eq(m.id_len, 5);
	cr_assert_arr_eq(m.id, "keyid", 5);
	cr_assert_eq(m.n_cav, 0);
	cr_assert_str_eq(t_hex(m.sig, 32),
			 "7cdee792511c5bc6f528485805dfe9b24e785e28e2a99301f9d711c609e38ef7");
	/* root_v2_1: authorized with the right key; root_v2_2: unauthorized with another. */
	cr_assert_eq(macaroon_verify_sig(&m, LM_KEY, strlen(LM_KEY)), 0);
	cr_assert_eq(macaroon_verify_sig(&m, "this is not the key", 19), -PAY_E_MAC_SIG);
}

Test(macaroon, libmacaroons_caveat_v2_vectors_verify)
{
	uint8_t buf[512];
	struct macaroon m;
	size_t n = t_b64(buf, sizeof(buf), lm_cav1);

	cr_assert_eq(macaroon_decode(&m, buf, n), 0);
	cr_assert_eq(m.n_cav, 1);
	cr_assert(t_cav_is(&m.cav[0], "account = 3735928559"));
	cr_assert_null(m.cav[0].vid);
	cr_assert_eq(macaroon_verify_sig(&m, LM_KEY, strlen(LM_KEY)), 0);

	n = t_b64(buf, sizeof(buf), lm_cav2);
	cr_assert_eq(macaroon_decode(&m, buf, n), 0);
	cr_assert_eq(m.n_cav, 2);
	cr_assert(t_cav_is(&m.cav[0], "account = 3735928559"));
	cr_assert(t_cav_is(&m.cav[1], "user = alice"));
	cr_assert_eq(macaroon_verify_sig(&m, LM_KEY, strlen(LM_KEY)), 0);
}

Test(macaroon, padded_and_unpadded_base64_give_the_same_macaroon)
{
	uint8_t a[512], b[512];
	size_t na = t_b64(a, sizeof(a), lm_cav2), nb = t_b64(b, sizeof(b), lm_cav2_padded);

	cr_assert_eq(na, nb);
	cr_assert_arr_eq(a, b, na);
}

Test(macaroon, minting_reproduces_the_libmacaroons_vectors_byte_for_byte)
{
	uint8_t want[512], out[512];
	struct macaroon m;
	size_t wn = t_b64(want, sizeof(want), lm_cav2), on;

	cr_assert_eq(
		macaroon_mint(&m, LM_KEY, strlen(LM_KEY), "http://example.org/", 19, "keyid", 5),
		0);
	cr_assert_eq(macaroon_add_first_party(&m, "account = 3735928559", 20), 0);
	cr_assert_eq(macaroon_add_first_party(&m, "user = alice", 12), 0);
	cr_assert_eq(macaroon_encode(&m, out, sizeof(out), &on), 0);
	cr_assert_eq(on, wn);
	cr_assert_arr_eq(out, want, wn);
}

Test(macaroon, readme_signature_chain_with_key_derivation)
{
	const char *key = "this is our super secret key; only we should know it";
	struct macaroon m;

	cr_assert_eq(macaroon_mint(&m, key, strlen(key), "http://mybank/", 14,
				   "we used our secret key", 22),
		     0);
	cr_assert_str_eq(t_hex(m.sig, 32),
			 "e3d9e02908526c4c0039ae15114115d97fdd68bf2ba379b342aaf0f617d0552f");
	cr_assert_eq(macaroon_add_first_party(&m, "account = 3735928559", 20), 0);
	cr_assert_str_eq(t_hex(m.sig, 32),
			 "1efe4763f290dbce0c1d08477367e11f4eee456a64933cf662d79772dbb82128");
}

Test(macaroon, go_macaroon_third_party_vector_decodes_signs_and_is_refused)
{
	const char *key = "this is a different super-secret key; never use the same secret twice";
	uint8_t buf[512], out[512], sig[32];
	struct macaroon m, first;
	size_t n = t_unhex(buf, sizeof(buf), gm_third_party_hex), on;

	cr_assert_eq(macaroon_decode(&m, buf, n), 0);
	cr_assert_eq(m.n_cav, 2);
	cr_assert(t_cav_is(&m.cav[0], "account = 3735928559"));
	cr_assert(t_cav_is(&m.cav[1], "this was how we remind auth of key/pred"));
	cr_assert_eq(m.cav[1].vid_len, 72);
	cr_assert_eq(m.cav[1].loc_len, 19);
	cr_assert_arr_eq(m.cav[1].loc, "http://auth.mybank/", 19);

	/* README: after the first caveat the signature is 1434e674... */
	first = m;
	first.n_cav = 1;
	macaroon_signature_compute(&first, key, strlen(key), sig);
	cr_assert_str_eq(t_hex(sig, 32),
			 "1434e674ad84fdfdc9bc1aa00785325c8b6d57341fc7ce200ba4680c80786dda");
	/* ... and the third-party step HMAC(sig, HMAC(sig, vid) || HMAC(sig, cid)) gives d27db2fd. */
	macaroon_signature_compute(&m, key, strlen(key), sig);
	cr_assert_arr_eq(sig, m.sig, 32);
	cr_assert_str_eq(t_hex(sig, 32),
			 "d27db2fd1f22760e4c3dae8137e2d8fc1df6c0741c18aed4b97256bf78d1f55c");
	/* Discharge macaroons are unsupported: refused clearly, before any signature check. */
	cr_assert_eq(macaroon_verify_sig(&m, key, strlen(key)), -PAY_E_MAC_THIRD_PARTY);
	/* The codec round-trips the exact bytes. */
	cr_assert_eq(macaroon_encode(&m, out, sizeof(out), &on), 0);
	cr_assert_eq(on, n);
	cr_assert_arr_eq(out, buf, n);
}

Test(macaroon, tampered_caveat_fails_signature)
{
	uint8_t buf[512];
	struct macaroon m;
	size_t n = t_b64(buf, sizeof(buf), lm_cav1);
	uint8_t *p = memmem(buf, n, "3735928559", 10);

	cr_assert_not_null(p);
	p[0] = '4'; /* account = 4735928559 */
	cr_assert_eq(macaroon_decode(&m, buf, n), 0);
	cr_assert_eq(macaroon_verify_sig(&m, LM_KEY, strlen(LM_KEY)), -PAY_E_MAC_SIG);
}

Test(macaroon, removing_a_caveat_fails_signature)
{
	uint8_t buf[512];
	struct macaroon m;
	size_t n = t_b64(buf, sizeof(buf), lm_cav2);

	cr_assert_eq(macaroon_decode(&m, buf, n), 0);
	m.n_cav = 1; /* strip "user = alice" but keep the final signature */
	cr_assert_eq(macaroon_verify_sig(&m, LM_KEY, strlen(LM_KEY)), -PAY_E_MAC_SIG);
}

Test(macaroon, every_truncation_and_trailing_byte_is_rejected)
{
	uint8_t buf[512];
	struct macaroon m;
	size_t n = t_b64(buf, sizeof(buf), lm_cav2);

	for (size_t len = 0; len < n; len++) {
		cr_assert_eq(macaroon_decode(&m, buf, len), -PAY_E_MAC_FORMAT, "len %zu", len);
		cr_assert_eq(m.n_cav, 0);
		cr_assert_null(m.id);
	}
	buf[n] = 0;
	cr_assert_eq(macaroon_decode(&m, buf, n + 1), -PAY_E_MAC_FORMAT);
}

#define Z32 "0000000000000000000000000000000000000000000000000000000000000000"

Test(macaroon, malformed_structures_are_rejected)
{
	struct macaroon m;
	uint8_t buf[256];
	static const struct {
		const char *hex, *why;
	} bad[] = {
		{ "01020161000006"
		  "20" Z32,
		  "version byte 1" },
		{ "0202016101016200000620" Z32, "identifier before location" },
		{ "0203016102016100000620" Z32, "unknown field 3 in root" },
		{ "020101620000000620" Z32, "root without identifier" },
		{ "02020161000401780000000620" Z32, "caveat with vid but no id" },
		{ "02020161000201630201640000000620" Z32, "repeated id in one caveat" },
		{ "020201610000061f" Z32, "31-byte signature" },
		{ "0202016100000420" Z32, "signature with field type 4" },
		{ "0202016100000621" Z32 "00", "33-byte signature" },
		{ "0202ff0161", "length beyond the buffer" },
		{ "02028000", "non-minimal varint length" },
		{ "020201610000", "missing signature" },
	};
	/* The same skeleton with nothing wrong decodes: the table tests what it claims. */
	size_t n = t_unhex(buf, sizeof(buf),
			   "0202016100020163000006"
			   "20" Z32);

	cr_assert_eq(macaroon_decode(&m, buf, n), 0);
	cr_assert_eq(m.n_cav, 1);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		n = t_unhex(buf, sizeof(buf), bad[i].hex);
		cr_assert_eq(macaroon_decode(&m, buf, n), -PAY_E_MAC_FORMAT, "accepted: %s",
			     bad[i].why);
	}
}

Test(macaroon, too_many_caveats_is_too_big)
{
	uint8_t buf[1024], *p = buf;
	struct macaroon m;

	*p++ = 2;
	*p++ = 2;
	*p++ = 1;
	*p++ = 'k';
	*p++ = 0;
	for (int i = 0; i < MAC_MAX_CAVEATS + 1; i++) {
		*p++ = 2;
		*p++ = 1;
		*p++ = 'c';
		*p++ = 0;
	}
	*p++ = 0;
	*p++ = 6;
	*p++ = 32;
	memset(p, 0, 32);
	p += 32;
	cr_assert_eq(macaroon_decode(&m, buf, (size_t)(p - buf)), -NATX_E_TOO_BIG);
	cr_assert_eq(macaroon_add_first_party(&m, "x", 1), 0); /* m was zeroed: usable again */
}

Test(macaroon, encode_reports_small_buffer)
{
	uint8_t out[64];
	struct macaroon m;
	size_t n;
	const size_t exact = 1 + 15 + 1 + 1 + 34; /* version, id packet, EOS, EOS, signature */

	cr_assert_eq(macaroon_mint(&m, "k", 1, NULL, 0, "an identifier", 13), 0);
	cr_assert_eq(macaroon_encode(&m, out, exact - 1, &n), -NATX_E_TOO_BIG);
	cr_assert_eq(macaroon_encode(&m, out, exact, &n), 0);
	cr_assert_eq(n, exact);
}
