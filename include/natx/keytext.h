/* SPDX-License-Identifier: MIT */
/*
 * keytext - 32-byte keys (X25519 public keys: the tunnel's pinned Noise key) as operators write
 * them, shared by the engine and natxd so both accept exactly the same text.
 */
#ifndef NATX_KEYTEXT_H
#define NATX_KEYTEXT_H

#include <stdint.h>

#define KEY32_LEN 32

/*
 * key32_parse - a 32-byte key as 64 hex digits (either case) or standard base64 (44 characters
 * with '=' or 43 without, the unused low bits zero). 0 or -EINVAL.
 */
int key32_parse(const char *text, uint8_t out[KEY32_LEN]);

/* key32_hex - @key as 64 lower-case hex digits and a NUL. */
void key32_hex(const uint8_t key[KEY32_LEN], char out[2 * KEY32_LEN + 1]);

#endif
