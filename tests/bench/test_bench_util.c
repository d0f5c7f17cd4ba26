// SPDX-License-Identifier: MIT
/*
 * Unit tests of bench/bench_util.c: the transfer pattern is the same bytes whichever way a
 * transfer is cut into pieces (word at a time or byte at a time), so both ends of a transfer
 * and every forwarder in between agree on what the stream must be.
 */
#include <criterion/criterion.h>
#include <string.h>

#include "bench_util.h"

/* ref_byte - byte @pos of the stream, from its definition: word pos/8 = mix64(seed ^ (pos/8)). */
static uint8_t ref_byte(uint64_t seed, uint64_t pos)
{
	uint8_t w[8];

	bench_pattern_fill(w, 1, seed, pos); /* one byte: the byte-at-a-time path */
	return w[0];
}

Test(bench_util, pattern_is_the_same_however_it_is_cut)
{
	static uint8_t whole[4096], piece[4096];
	const uint64_t seed = 0x1234abcd;

	bench_pattern_fill(whole, sizeof(whole), seed, 1000);
	for (size_t i = 0; i < sizeof(whole); i++) {
		cr_assert_eq(whole[i], ref_byte(seed, 1000 + i), "byte %zu", i);
	}
	/* Unaligned starts and odd lengths give the same bytes as the whole run. */
	for (size_t start = 0; start < 64; start += 3) {
		for (size_t len = 1; len < 200; len += 7) {
			bench_pattern_fill(piece, len, seed, 1000 + start);
			cr_assert_eq(memcmp(piece, whole + start, len), 0, "start %zu len %zu",
				     start, len);
		}
	}
}

/* ref_mix64 - splitmix64's finaliser, as the stream's definition names it. */
static uint64_t ref_mix64(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ull;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
	return x ^ (x >> 31);
}

Test(bench_util, pattern_words_are_little_endian_mix64)
{
	uint8_t b[16];

	bench_pattern_fill(b, sizeof(b), 7, 0);
	for (int k = 0; k < 2; k++) {
		uint64_t w = 0;

		for (int i = 7; i >= 0; i--) {
			w = w << 8 | b[8 * k + i];
		}
		cr_assert_neq(w, 0);
		cr_assert_eq(w, ref_mix64(7 ^ (uint64_t)k));
	}
}
