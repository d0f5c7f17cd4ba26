// SPDX-License-Identifier: MIT
/* Bech32 codec (bech32.h), written from BIP-173. */
#include <errno.h>
#include <stdbool.h>
#include <string.h>

#include "natx/err.h"
#include "bech32.h"

static const char bech32_charset[] = "qpzry9x8gf2tvdw0s3jn54khce6mua7l";

/* bech32_polymod_step - one step of the BIP-173 BCH checksum. */
static uint32_t bech32_polymod_step(uint32_t pre)
{
	uint8_t b = pre >> 25;

	return ((pre & 0x1ffffff) << 5) ^ (-((b >> 0) & 1) & 0x3b6a57b2UL) ^
	       (-((b >> 1) & 1) & 0x26508e6dUL) ^ (-((b >> 2) & 1) & 0x1ea119faUL) ^
	       (-((b >> 3) & 1) & 0x3d4233ddUL) ^ (-((b >> 4) & 1) & 0x2a1462b3UL);
}

/* bech32_hrp_polymod - checksum state after the expanded hrp. */
static uint32_t bech32_hrp_polymod(const char *hrp, size_t n)
{
	uint32_t chk = 1;

	for (size_t i = 0; i < n; i++) {
		chk = bech32_polymod_step(chk) ^ ((uint8_t)hrp[i] >> 5);
	}
	chk = bech32_polymod_step(chk);
	for (size_t i = 0; i < n; i++) {
		chk = bech32_polymod_step(chk) ^ ((uint8_t)hrp[i] & 0x1f);
	}
	return chk;
}

static int bech32_rev(char c)
{
	const char *p = c ? strchr(bech32_charset, c) : NULL;

	return p ? (int)(p - bech32_charset) : -1;
}

int bech32_decode(char *hrp, size_t hrp_cap, uint8_t *data, size_t data_cap, size_t *data_len,
		  const char *str, size_t len)
{
	bool lower = false, upper = false;
	size_t sep = len;
	uint32_t chk;

	if (len > BECH32_MAX_LEN) {
		return -NATX_E_TOO_BIG;
	}
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)str[i];

		if (c < 33 || c > 126) {
			return -NATX_E_PROTO;
		}
		lower |= c >= 'a' && c <= 'z';
		upper |= c >= 'A' && c <= 'Z';
		if (c == '1') {
			sep = i;
		}
	}
	if (lower && upper) {
		return -NATX_E_PROTO;
	}
	if (sep == len || sep == 0 || len - sep - 1 < 6 || sep > BECH32_HRP_MAX) {
		return -NATX_E_PROTO;
	}
	if (hrp_cap < sep + 1 || data_cap < len - sep - 1 - 6) {
		return -NATX_E_TOO_BIG;
	}
	for (size_t i = 0; i < sep; i++) {
		char c = str[i];

		hrp[i] = (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
	}
	hrp[sep] = '\0';
	chk = bech32_hrp_polymod(hrp, sep);
	for (size_t i = sep + 1; i < len; i++) {
		char c = str[i];
		int v = bech32_rev((c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c);

		if (v < 0) {
			return -NATX_E_PROTO;
		}
		chk = bech32_polymod_step(chk) ^ (uint32_t)v;
		if (i + 6 < len) {
			data[i - sep - 1] = (uint8_t)v;
		}
	}
	if (chk != 1) {
		return -NATX_E_PROTO;
	}
	*data_len = len - sep - 1 - 6;
	return 0;
}

long bech32_encode(char *out, size_t cap, const char *hrp, const uint8_t *data, size_t data_len)
{
	size_t hl = strlen(hrp), o = 0;
	uint32_t chk;

	if (hl == 0 || hl > BECH32_HRP_MAX) {
		return -EINVAL;
	}
	for (size_t i = 0; i < hl; i++) {
		if (hrp[i] < 33 || hrp[i] > 126 || (hrp[i] >= 'A' && hrp[i] <= 'Z')) {
			return -EINVAL;
		}
	}
	if (hl + 1 + data_len + 6 > BECH32_MAX_LEN || hl + 1 + data_len + 6 + 1 > cap) {
		return -NATX_E_TOO_BIG;
	}
	chk = bech32_hrp_polymod(hrp, hl);
	memcpy(out, hrp, hl);
	o = hl;
	out[o++] = '1';
	for (size_t i = 0; i < data_len; i++) {
		if (data[i] > 31) {
			return -EINVAL;
		}
		chk = bech32_polymod_step(chk) ^ data[i];
		out[o++] = bech32_charset[data[i]];
	}
	for (int i = 0; i < 6; i++) {
		chk = bech32_polymod_step(chk);
	}
	chk ^= 1;
	for (int i = 0; i < 6; i++) {
		out[o++] = bech32_charset[(chk >> (5 * (5 - i))) & 31];
	}
	out[o] = '\0';
	return (long)o;
}

long bech32_bits_to_bytes(uint8_t *out, size_t out_cap, const uint8_t *groups, size_t n)
{
	uint32_t acc = 0;
	unsigned int bits = 0;
	size_t o = 0;

	if (n * 5 / 8 > out_cap) {
		return -NATX_E_TOO_BIG;
	}
	for (size_t i = 0; i < n; i++) {
		acc = (acc << 5 | (groups[i] & 31)) & 0xfff;
		bits += 5;
		if (bits >= 8) {
			bits -= 8;
			out[o++] = (uint8_t)(acc >> bits);
		}
	}
	return (long)o;
}

long bech32_bytes_to_bits(uint8_t *out, size_t out_cap, const uint8_t *bytes, size_t n)
{
	uint32_t acc = 0;
	unsigned int bits = 0;
	size_t o = 0;

	if ((n * 8 + 4) / 5 > out_cap) {
		return -NATX_E_TOO_BIG;
	}
	for (size_t i = 0; i < n; i++) {
		acc = (acc << 8 | bytes[i]) & 0xfff;
		bits += 8;
		while (bits >= 5) {
			bits -= 5;
			out[o++] = (acc >> bits) & 31;
		}
	}
	if (bits) {
		out[o++] = (acc << (5 - bits)) & 31;
	}
	return (long)o;
}
