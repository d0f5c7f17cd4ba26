// SPDX-License-Identifier: MIT
/* keytext - 32-byte keys as text (contract in include/natx/keytext.h). */
#include "natx/keytext.h"

#include <errno.h>
#include <string.h>

/* key_b64_val - the value of a standard base64 digit, or -1. */
static int key_b64_val(char c)
{
	if (c >= 'A' && c <= 'Z') {
		return c - 'A';
	}
	if (c >= 'a' && c <= 'z') {
		return c - 'a' + 26;
	}
	if (c >= '0' && c <= '9') {
		return c - '0' + 52;
	}
	return c == '+' ? 62 : c == '/' ? 63 : -1;
}

/* key_hex_val - the value of a hex digit, or -1. */
static int key_hex_val(char c)
{
	if (c >= '0' && c <= '9') {
		return c - '0';
	}
	if (c >= 'a' && c <= 'f') {
		return c - 'a' + 10;
	}
	if (c >= 'A' && c <= 'F') {
		return c - 'A' + 10;
	}
	return -1;
}

int key32_parse(const char *text, uint8_t out[KEY32_LEN])
{
	size_t n = strlen(text);
	uint32_t acc = 0;
	size_t o = 0;
	int bits = 0;

	if (n == 2 * KEY32_LEN) {
		for (size_t i = 0; i < KEY32_LEN; i++) {
			int hi = key_hex_val(text[2 * i]), lo = key_hex_val(text[2 * i + 1]);

			if (hi < 0 || lo < 0) {
				return -EINVAL;
			}
			out[i] = (uint8_t)(hi << 4 | lo);
		}
		return 0;
	}
	/* 32 bytes = 43 base64 digits (the last carries 2 zero bits) and one '=' */
	if (n == 44 && text[43] == '=') {
		n = 43;
	}
	if (n != 43) {
		return -EINVAL;
	}
	for (size_t i = 0; i < n; i++) {
		int v = key_b64_val(text[i]);

		if (v < 0) {
			return -EINVAL;
		}
		acc = acc << 6 | (uint32_t)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			out[o++] = (uint8_t)(acc >> bits);
			acc &= (1U << bits) - 1;
		}
	}
	return o == KEY32_LEN && acc == 0 ? 0 : -EINVAL;
}

void key32_hex(const uint8_t key[KEY32_LEN], char out[2 * KEY32_LEN + 1])
{
	static const char dig[] = "0123456789abcdef";

	for (size_t i = 0; i < KEY32_LEN; i++) {
		out[2 * i] = dig[key[i] >> 4];
		out[2 * i + 1] = dig[key[i] & 15];
	}
	out[2 * KEY32_LEN] = 0;
}
