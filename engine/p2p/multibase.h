/* SPDX-License-Identifier: MIT */
/*
 * The two text encodings libp2p needs: base58btc (bitcoin alphabet, legacy peer IDs and /p2p/
 * values) and RFC 4648 base32 lower-case without padding (multibase prefix 'b', CIDv1 peer IDs).
 * Inputs and outputs are caller buffers; nothing allocates.
 */
#ifndef NATX_P2P_MULTIBASE_H
#define NATX_P2P_MULTIBASE_H

#include <stddef.h>
#include <stdint.h>

enum {
	BASE58_MAX_BIN = 128, /* longest binary value accepted by the base58 codec */
};

/*
 * base58_encode - encode @len (<= BASE58_MAX_BIN) bytes into @out as a NUL-terminated string.
 * Returns the text length, -NATX_E_TOO_BIG when @cap is too small or @len too large.
 */
int base58_encode(const uint8_t *in, size_t len, char *out, size_t cap);

/*
 * base58_decode - decode @len characters of base58btc text. Returns the binary length, or
 * -NATX_E_PROTO for a character outside the alphabet or an empty input, -NATX_E_TOO_BIG when the
 * result does not fit @cap (or BASE58_MAX_BIN).
 */
int base58_decode(const char *in, size_t len, uint8_t *out, size_t cap);

/* base32_encode - RFC 4648 lower-case, no padding; same return convention as base58_encode. */
int base32_encode(const uint8_t *in, size_t len, char *out, size_t cap);

/*
 * base32_decode - decode lower- or upper-case RFC 4648 base32 without padding. Returns the
 * binary length, -NATX_E_PROTO on a bad character or non-zero trailing bits, -NATX_E_TOO_BIG.
 */
int base32_decode(const char *in, size_t len, uint8_t *out, size_t cap);

#endif
