/* SPDX-License-Identifier: MIT */
/*
 * Bech32 (BIP-173, the original constant-1 checksum) as BOLT11 uses it: no 90-character limit
 * (BECH32_MAX_LEN instead), all-lowercase or all-uppercase input, data as 5-bit groups.
 */
#ifndef NATX_PAY_BECH32_H
#define NATX_PAY_BECH32_H

#include <stddef.h>
#include <stdint.h>

enum {
	BECH32_MAX_LEN = 4096, /* longest string accepted or produced */
	BECH32_HRP_MAX = 83, /* longest human-readable part */
};

/*
 * bech32_decode - split str[0..len) at its last '1' into a lowercased hrp (NUL-terminated,
 * hrp_cap >= BECH32_HRP_MAX + 1) and data groups (values 0..31) without the 6-group checksum.
 * Returns 0, -NATX_E_PROTO (mixed case, bad character, no separator, bad checksum, too
 * short) or -NATX_E_TOO_BIG (len > BECH32_MAX_LEN or data_cap too small).
 */
int bech32_decode(char *hrp, size_t hrp_cap, uint8_t *data, size_t data_cap, size_t *data_len,
		  const char *str, size_t len) __attribute__((warn_unused_result));

/*
 * bech32_encode - hrp (lowercase) + '1' + data groups + checksum, NUL-terminated into out.
 * Returns the string length, -EINVAL (bad hrp or group value > 31) or -NATX_E_TOO_BIG.
 */
long bech32_encode(char *out, size_t cap, const char *hrp, const uint8_t *data, size_t data_len);

/*
 * bech32_bits_to_bytes / bech32_bytes_to_bits - regroup between 5-bit groups and bytes,
 * big-endian bit order. bits_to_bytes drops trailing bits that do not fill a byte;
 * bytes_to_bits pads the last group with zero bits. Both return the number of output
 * elements, or -NATX_E_TOO_BIG when out_cap is too small.
 */
long bech32_bits_to_bytes(uint8_t *out, size_t out_cap, const uint8_t *groups, size_t n);
long bech32_bytes_to_bits(uint8_t *out, size_t out_cap, const uint8_t *bytes, size_t n);

#endif
