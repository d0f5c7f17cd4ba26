// SPDX-License-Identifier: MIT
/* base64 and hex codecs (control/pay/pay_codec.c). RFC 4648 section 10 test vectors. */
#include <criterion/criterion.h>
#include <string.h>

#include "natx/err.h"
#include "pay_codec.h"

static const struct {
	const char *raw, *std;
} rfc4648[] = {
	{ "", "" },
	{ "f", "Zg==" },
	{ "fo", "Zm8=" },
	{ "foo", "Zm9v" },
	{ "foob", "Zm9vYg==" },
	{ "fooba", "Zm9vYmE=" },
	{ "foobar", "Zm9vYmFy" },
};

Test(codec, base64_rfc4648_vectors_encode_and_decode)
{
	for (size_t i = 0; i < sizeof(rfc4648) / sizeof(rfc4648[0]); i++) {
		char enc[64];
		uint8_t dec[64];
		size_t n = strlen(rfc4648[i].raw);
		long r = b64_encode(enc, sizeof(enc), rfc4648[i].raw, n, 0);

		cr_assert_eq(r, (long)strlen(rfc4648[i].std));
		cr_assert_str_eq(enc, rfc4648[i].std);
		r = b64_decode(dec, sizeof(dec), enc, strlen(enc));
		cr_assert_eq(r, (long)n);
		cr_assert_arr_eq(dec, rfc4648[i].raw, n);
		/* unpadded form decodes the same */
		r = b64_encode(enc, sizeof(enc), rfc4648[i].raw, n, B64_NO_PAD | B64_URL);
		cr_assert_eq(r, (long)b64_encoded_len(n, B64_NO_PAD));
		cr_assert_eq(b64_decode(dec, sizeof(dec), enc, strlen(enc)), (long)n);
		cr_assert_arr_eq(dec, rfc4648[i].raw, n);
	}
}

Test(codec, base64_url_alphabet_and_std_alphabet_both_decode)
{
	const uint8_t raw[] = { 0xfb, 0xff, 0xbf };
	uint8_t dec[8];
	char enc[8];

	b64_encode(enc, sizeof(enc), raw, 3, 0);
	cr_assert_str_eq(enc, "+/+/");
	b64_encode(enc, sizeof(enc), raw, 3, B64_URL);
	cr_assert_str_eq(enc, "-_-_");
	cr_assert_eq(b64_decode(dec, sizeof(dec), "+/+/", 4), 3);
	cr_assert_arr_eq(dec, raw, 3);
	cr_assert_eq(b64_decode(dec, sizeof(dec), "-_-_", 4), 3);
	cr_assert_arr_eq(dec, raw, 3);
}

Test(codec, base64_rejects_garbage_bad_padding_and_nonzero_tail_bits)
{
	uint8_t dec[16];
	const char *bad[] = { "Zg=", "Z===", "Zm9v=", "Zg==Zg==", "Zm9v!",
			      "Z",   "Zh==", "Zm9=",  "Zg =",	  "=" };

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		cr_assert_eq(b64_decode(dec, sizeof(dec), bad[i], strlen(bad[i])), -NATX_E_PROTO,
			     "accepted %s", bad[i]);
	}
	cr_assert_eq(b64_decode(dec, 2, "Zm9v", 4), -NATX_E_TOO_BIG);
}

Test(codec, base64_encode_reports_small_buffer)
{
	char out[4];

	cr_assert_eq(b64_encode(out, sizeof(out), "foo", 3, 0), -NATX_E_TOO_BIG);
	cr_assert_eq(out[0], '\0');
}

Test(codec, hex_round_trip_and_errors)
{
	const uint8_t raw[] = { 0x00, 0x7f, 0xab, 0xff };
	uint8_t dec[4];
	char enc[9];

	hex_encode(enc, raw, 4);
	cr_assert_str_eq(enc, "007fabff");
	cr_assert_eq(hex_decode(dec, 4, "007FABff", 8), 0);
	cr_assert_arr_eq(dec, raw, 4);
	cr_assert_eq(hex_decode(dec, 4, "007fabf", 7), -NATX_E_PROTO);
	cr_assert_eq(hex_decode(dec, 4, "007fabfg", 8), -NATX_E_PROTO);
}
