/* SPDX-License-Identifier: MIT */
/* Helpers shared by the p2p tests: hex decoding and a deterministic RNG (t_ prefix). */
#ifndef T_P2P_H
#define T_P2P_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

/* t_unhex - decode the hex string @hex into @out (room for @cap bytes); returns length or -1. */
static inline int t_unhex(uint8_t *out, size_t cap, const char *hex)
{
	size_t n = strlen(hex);

	if (n % 2 || n / 2 > cap) {
		return -1;
	}
	for (size_t i = 0; i < n / 2; i++) {
		unsigned int v;

		if (sscanf(hex + 2 * i, "%2x", &v) != 1) {
			return -1;
		}
		out[i] = (uint8_t)v;
	}
	return (int)(n / 2);
}

/* t_rng - xorshift64* stream: deterministic "random" bytes for reproducible protocol tests. */
static inline void t_rng_fill(uint64_t *state, void *buf, size_t len)
{
	uint8_t *p = buf;

	for (size_t i = 0; i < len; i++) {
		uint64_t x = *state;

		x ^= x >> 12;
		x ^= x << 25;
		x ^= x >> 27;
		*state = x;
		p[i] = (uint8_t)((x * 0x2545F4914F6CDD1DULL) >> 56);
	}
}

#endif
