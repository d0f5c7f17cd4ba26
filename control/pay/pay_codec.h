/* SPDX-License-Identifier: MIT */
/*
 * Text codecs used by L402: base64 (RFC 4648 standard and URL-safe alphabets, with or without
 * '=' padding) and lowercase hex. All functions write into caller buffers and never allocate.
 */
#ifndef NATX_PAY_CODEC_H
#define NATX_PAY_CODEC_H

#include <stddef.h>
#include <stdint.h>

enum b64_flags {
	B64_URL = 1 << 0, /* encode with '-' '_' instead of '+' '/' */
	B64_NO_PAD = 1 << 1, /* encode without trailing '=' */
};

/* b64_encoded_len - characters b64_encode writes for len bytes (without the NUL). */
size_t b64_encoded_len(size_t len, unsigned int flags);

/*
 * b64_encode - encode src into dst as a NUL-terminated string. dst_cap must hold
 * b64_encoded_len() + 1. Returns the string length, or -NATX_E_TOO_BIG (dst unchanged beyond
 * its first byte, which is set to NUL when dst_cap > 0).
 */
long b64_encode(char *dst, size_t dst_cap, const void *src, size_t len, unsigned int flags);

/*
 * b64_decode - decode text[0..len) written in either alphabet, padded or not (padding, when
 * present, must be complete and final). Trailing bits of the last character must be zero.
 * Returns the number of bytes written to dst, -NATX_E_PROTO for invalid text, or
 * -NATX_E_TOO_BIG when dst_cap is too small.
 */
long b64_decode(uint8_t *dst, size_t dst_cap, const char *text, size_t len);

/* hex_encode - lowercase hex of src into dst (2*len+1 bytes, NUL-terminated). */
void hex_encode(char *dst, const void *src, size_t len);

/*
 * hex_decode - exactly 2*len hex digits (either case) at text into dst[len]. Returns 0 or
 * -NATX_E_PROTO (dst contents then unspecified).
 */
int hex_decode(uint8_t *dst, size_t len, const char *text, size_t text_len);

#endif
