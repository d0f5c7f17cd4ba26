// SPDX-License-Identifier: MIT
/*
 * Bech32 (control/pay/bech32.c) against the test vectors of BIP-173 itself
 * (github.com/bitcoin/bips bip-0173.mediawiki, "Test vectors"). BOLT11 lifts the 90-character
 * limit, so the "overall max length exceeded" vector is refused here for its 84-character
 * human-readable part instead (BECH32_HRP_MAX = 83, the BIP-173 maximum).
 */
#include <criterion/criterion.h>
#include <ctype.h>
#include <errno.h>
#include <string.h>

#include "bech32.h"
#include "natx/err.h"
#include "pay_t.h"

static const char *const valid[] = {
	"A12UEL5L",
	"a12uel5l",
	"an83characterlonghumanreadablepartthatcontainsthenumber1andtheexcludedcharactersbio1tt5tgs",
	"abcdef1qpzry9x8gf2tvdw0s3jn54khce6mua7lmqqqxw",
	"11qqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqc8247j",
	"split1checkupstagehandshakeupstreamerranterredcaperred2y9e3w",
	"?1ezyfcl",
	"BC1QW508D6QEJXTDG4Y5R3ZARVARY0C5XW7KV8F3T4",
	"tb1qrp33g0q5c5txsp9arysrx4k6zdkfs4nce4xj0gdcccefvpysxf3q0sl5k7",
	"bc1pw508d6qejxtdg4y5r3zarvary0c5xw7kw508d6qejxtdg4y5r3zarvary0c5xw7k7grplx",
	"BC1SW50QA3JX3S",
	"bc1zw508d6qejxtdg4y5r3zarvaryvg6kdaj",
	"tb1qqqqqp399et2xygdj5xreqhjjvcmzhxw4aywxecjdzew6hylgvsesrxh6hy",
};

static const char *const invalid[] = {
	"\x20"
	"1nwldj5",
	"\x7f"
	"1axkwrx",
	"\x80"
	"1eym55h",
	"an84characterslonghumanreadablepartthatcontainsthenumber1andtheexcludedcharactersbio1569pvx",
	"pzry9x0s0muk",
	"1pzry9x0s0muk",
	"x1b4n0q5v",
	"li1dgmt3",
	"de1lg7wt\xff",
	"A1G7SGD8",
	"10a06t8",
	"1qzzfhee",
	"bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t5",
	"tb1qrp33g0q5c5txsp9arysrx4k6zdkfs4nce4xj0gdcccefvpysxf3q0sL5k7",
};

Test(bech32, bip173_valid_strings_decode_and_reencode)
{
	for (size_t i = 0; i < sizeof(valid) / sizeof(valid[0]); i++) {
		char hrp[BECH32_HRP_MAX + 1], out[256], lower[256];
		uint8_t data[256];
		size_t n, len = strlen(valid[i]);

		cr_assert_eq(bech32_decode(hrp, sizeof(hrp), data, sizeof(data), &n, valid[i], len),
			     0, "%s", valid[i]);
		cr_assert_eq(bech32_encode(out, sizeof(out), hrp, data, n), (long)len);
		for (size_t j = 0; j <= len; j++) {
			lower[j] = (char)tolower((unsigned char)valid[i][j]);
		}
		cr_assert_str_eq(out, lower);
	}
}

Test(bech32, bip173_invalid_strings_are_refused)
{
	for (size_t i = 0; i < sizeof(invalid) / sizeof(invalid[0]); i++) {
		char hrp[BECH32_HRP_MAX + 1];
		uint8_t data[256];
		size_t n;

		cr_assert_eq(bech32_decode(hrp, sizeof(hrp), data, sizeof(data), &n, invalid[i],
					   strlen(invalid[i])),
			     -NATX_E_PROTO, "accepted vector %zu", i);
	}
}

Test(bech32, p2wpkh_program_regroups_to_its_script_hash)
{
	const char *addr = "BC1QW508D6QEJXTDG4Y5R3ZARVARY0C5XW7KV8F3T4";
	char hrp[BECH32_HRP_MAX + 1];
	uint8_t data[64], prog[64], back[64];
	size_t n;
	long m;

	cr_assert_eq(bech32_decode(hrp, sizeof(hrp), data, sizeof(data), &n, addr, strlen(addr)),
		     0);
	cr_assert_str_eq(hrp, "bc");
	cr_assert_eq(data[0], 0, "witness version 0");
	m = bech32_bits_to_bytes(prog, sizeof(prog), data + 1, n - 1);
	cr_assert_eq(m, 20);
	cr_assert_str_eq(t_hex(prog, 20), "751e76e8199196d454941c45d1b3a323f1433bd6");
	cr_assert_eq(bech32_bytes_to_bits(back, sizeof(back), prog, 20), (long)(n - 1));
	cr_assert_arr_eq(back, data + 1, n - 1);
}

Test(bech32, limits_and_bad_arguments)
{
	static char big[BECH32_MAX_LEN + 2];
	char hrp[BECH32_HRP_MAX + 1], out[32];
	uint8_t data[8] = { 0, 1, 2, 32 };
	size_t n;

	memset(big, 'q', sizeof(big) - 1);
	big[0] = 'a';
	big[1] = '1';
	cr_assert_eq(bech32_decode(hrp, sizeof(hrp), data, sizeof(data), &n, big, strlen(big)),
		     -NATX_E_TOO_BIG);
	cr_assert_eq(bech32_decode(hrp, sizeof(hrp), data, 2, &n, "a12uel5l", 8), 0);
	cr_assert_eq(bech32_decode(hrp, sizeof(hrp), data, 1, &n,
				   "abcdef1qpzry9x8gf2tvdw0s3jn54khce6mua7lmqqqxw", 45),
		     -NATX_E_TOO_BIG);
	cr_assert_eq(bech32_encode(out, sizeof(out), "a", data, 4), -EINVAL, "group value 32");
	cr_assert_eq(bech32_encode(out, sizeof(out), "A", data, 3), -EINVAL, "upper-case hrp");
	cr_assert_eq(bech32_encode(out, 8, "abc", data, 3), -NATX_E_TOO_BIG);
}
