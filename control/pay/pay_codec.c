// SPDX-License-Identifier: MIT
/* base64 and hex (pay_codec.h). */
#include "natx/err.h"
#include "pay_codec.h"

static const char b64_std[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
static const char b64_url[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

size_t b64_encoded_len(size_t len, unsigned int flags)
{
	if (flags & B64_NO_PAD) {
		return len / 3 * 4 + (len % 3 ? len % 3 + 1 : 0);
	}
	return (len + 2) / 3 * 4;
}

long b64_encode(char *dst, size_t dst_cap, const void *src, size_t len, unsigned int flags)
{
	const char *alpha = flags & B64_URL ? b64_url : b64_std;
	const uint8_t *s = src;
	size_t need = b64_encoded_len(len, flags);
	size_t o = 0, i = 0;

	if (dst_cap < need + 1) {
		if (dst_cap) {
			dst[0] = '\0';
		}
		return -NATX_E_TOO_BIG;
	}
	for (; i + 3 <= len; i += 3) {
		uint32_t v = (uint32_t)s[i] << 16 | (uint32_t)s[i + 1] << 8 | s[i + 2];

		dst[o++] = alpha[v >> 18];
		dst[o++] = alpha[(v >> 12) & 63];
		dst[o++] = alpha[(v >> 6) & 63];
		dst[o++] = alpha[v & 63];
	}
	if (len - i == 1) {
		uint32_t v = (uint32_t)s[i] << 16;

		dst[o++] = alpha[v >> 18];
		dst[o++] = alpha[(v >> 12) & 63];
		if (!(flags & B64_NO_PAD)) {
			dst[o++] = '=';
			dst[o++] = '=';
		}
	} else if (len - i == 2) {
		uint32_t v = (uint32_t)s[i] << 16 | (uint32_t)s[i + 1] << 8;

		dst[o++] = alpha[v >> 18];
		dst[o++] = alpha[(v >> 12) & 63];
		dst[o++] = alpha[(v >> 6) & 63];
		if (!(flags & B64_NO_PAD)) {
			dst[o++] = '=';
		}
	}
	dst[o] = '\0';
	return (long)o;
}

/* b64_value - 6-bit value of c in either alphabet, or -1. */
static int b64_value(char c)
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
	if (c == '+' || c == '-') {
		return 62;
	}
	if (c == '/' || c == '_') {
		return 63;
	}
	return -1;
}

long b64_decode(uint8_t *dst, size_t dst_cap, const char *text, size_t len)
{
	size_t n = len, o = 0, rem;
	uint32_t acc = 0;
	unsigned int bits = 0;

	/* Padding: only as the final 1 or 2 characters of a multiple-of-4 string. */
	if (n && text[n - 1] == '=') {
		if (n % 4) {
			return -NATX_E_PROTO;
		}
		n--;
		if (n && text[n - 1] == '=') {
			n--;
		}
	}
	rem = n % 4;
	if (rem == 1) {
		return -NATX_E_PROTO;
	}
	if (len != n && (rem == 0 || len - n != 4 - rem)) {
		return -NATX_E_PROTO;
	}
	if (n / 4 * 3 + (rem ? rem - 1 : 0) > dst_cap) {
		return -NATX_E_TOO_BIG;
	}
	for (size_t i = 0; i < n; i++) {
		int v = b64_value(text[i]);

		if (v < 0) {
			return -NATX_E_PROTO;
		}
		acc = acc << 6 | (uint32_t)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			dst[o++] = (uint8_t)(acc >> bits);
		}
	}
	/* Left-over bits (2 or 4) must be zero for a canonical encoding. */
	if (acc & ((1u << bits) - 1)) {
		return -NATX_E_PROTO;
	}
	return (long)o;
}

void hex_encode(char *dst, const void *src, size_t len)
{
	static const char digits[] = "0123456789abcdef";
	const uint8_t *s = src;

	for (size_t i = 0; i < len; i++) {
		dst[2 * i] = digits[s[i] >> 4];
		dst[2 * i + 1] = digits[s[i] & 15];
	}
	dst[2 * len] = '\0';
}

/* hex_value - value of one hex digit, or -1. */
static int hex_value(char c)
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

int hex_decode(uint8_t *dst, size_t len, const char *text, size_t text_len)
{
	if (text_len != 2 * len) {
		return -NATX_E_PROTO;
	}
	for (size_t i = 0; i < len; i++) {
		int hi = hex_value(text[2 * i]), lo = hex_value(text[2 * i + 1]);

		if (hi < 0 || lo < 0) {
			return -NATX_E_PROTO;
		}
		dst[i] = (uint8_t)(hi << 4 | lo);
	}
	return 0;
}
