// SPDX-License-Identifier: MIT
/*
 * multibase.c - base58btc and base32 codecs (see multibase.h). base58 is the quadratic
 * big-number conversion; inputs are bounded by BASE58_MAX_BIN so the cost is bounded too.
 */
#include <string.h>

#include "natx/err.h"
#include "multibase.h"

static const char b58_alphabet[] = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz";
static const char b32_alphabet[] = "abcdefghijklmnopqrstuvwxyz234567";

int base58_encode(const uint8_t *in, size_t len, char *out, size_t cap)
{
	uint8_t digits[BASE58_MAX_BIN * 138 / 100 + 1];
	size_t ndig = 0, zeros = 0, n;

	if (len > BASE58_MAX_BIN) {
		return -NATX_E_TOO_BIG;
	}
	while (zeros < len && in[zeros] == 0) {
		zeros++;
	}
	for (size_t i = zeros; i < len; i++) {
		unsigned int carry = in[i];

		for (size_t j = 0; j < ndig; j++) {
			carry += (unsigned int)digits[j] << 8;
			digits[j] = (uint8_t)(carry % 58);
			carry /= 58;
		}
		while (carry) {
			digits[ndig++] = (uint8_t)(carry % 58);
			carry /= 58;
		}
	}
	n = zeros + ndig;
	if (n + 1 > cap) {
		return -NATX_E_TOO_BIG;
	}
	memset(out, '1', zeros);
	for (size_t i = 0; i < ndig; i++) {
		out[zeros + i] = b58_alphabet[digits[ndig - 1 - i]];
	}
	out[n] = '\0';
	return (int)n;
}

static int b58_value(char c)
{
	const char *p = c ? strchr(b58_alphabet, c) : NULL;

	return p ? (int)(p - b58_alphabet) : -1;
}

int base58_decode(const char *in, size_t len, uint8_t *out, size_t cap)
{
	uint8_t bytes[BASE58_MAX_BIN];
	size_t nbytes = 0, zeros = 0;

	if (len == 0) {
		return -NATX_E_PROTO;
	}
	while (zeros < len && in[zeros] == '1') {
		zeros++;
	}
	for (size_t i = zeros; i < len; i++) {
		int v = b58_value(in[i]);
		unsigned int carry;

		if (v < 0) {
			return -NATX_E_PROTO;
		}
		carry = (unsigned int)v;
		for (size_t j = 0; j < nbytes; j++) {
			carry += (unsigned int)bytes[j] * 58;
			bytes[j] = (uint8_t)carry;
			carry >>= 8;
		}
		while (carry) {
			if (nbytes == sizeof(bytes)) {
				return -NATX_E_TOO_BIG;
			}
			bytes[nbytes++] = (uint8_t)carry;
			carry >>= 8;
		}
	}
	if (zeros + nbytes > cap || zeros + nbytes > BASE58_MAX_BIN) {
		return -NATX_E_TOO_BIG;
	}
	memset(out, 0, zeros);
	for (size_t i = 0; i < nbytes; i++) {
		out[zeros + i] = bytes[nbytes - 1 - i];
	}
	return (int)(zeros + nbytes);
}

int base32_encode(const uint8_t *in, size_t len, char *out, size_t cap)
{
	size_t n = (len * 8 + 4) / 5, o = 0;
	unsigned int acc = 0, bits = 0;

	if (n + 1 > cap) {
		return -NATX_E_TOO_BIG;
	}
	for (size_t i = 0; i < len; i++) {
		acc = (acc << 8 | in[i]) & 0xfff;
		bits += 8;
		while (bits >= 5) {
			out[o++] = b32_alphabet[(acc >> (bits - 5)) & 31];
			bits -= 5;
		}
	}
	if (bits) {
		out[o++] = b32_alphabet[(acc << (5 - bits)) & 31];
	}
	out[o] = '\0';
	return (int)o;
}

int base32_decode(const char *in, size_t len, uint8_t *out, size_t cap)
{
	unsigned int acc = 0, bits = 0;
	size_t o = 0;

	for (size_t i = 0; i < len; i++) {
		char c = in[i];
		int v;

		if (c >= 'a' && c <= 'z') {
			v = c - 'a';
		} else if (c >= 'A' && c <= 'Z') {
			v = c - 'A';
		} else if (c >= '2' && c <= '7') {
			v = c - '2' + 26;
		} else {
			return -NATX_E_PROTO;
		}
		acc = (acc << 5 | (unsigned int)v) & 0xfff;
		bits += 5;
		if (bits >= 8) {
			if (o == cap) {
				return -NATX_E_TOO_BIG;
			}
			out[o++] = (uint8_t)(acc >> (bits - 8));
			bits -= 8;
		}
	}
	/* Leftover bits must be padding zeros and fewer than 5 (a canonical encoding). */
	if (bits >= 5 || (acc & ((1u << bits) - 1))) {
		return -NATX_E_PROTO;
	}
	return (int)o;
}
