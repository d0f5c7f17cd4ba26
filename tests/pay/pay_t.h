/* SPDX-License-Identifier: MIT */
/* Small helpers shared by the control/pay tests. */
#ifndef NATX_TESTS_PAY_T_H
#define NATX_TESTS_PAY_T_H

#include <criterion/criterion.h>
#include <string.h>

#include "pay_codec.h"

/* t_unhex - decode a hex literal into buf (asserting it is valid); returns its byte length. */
static inline size_t t_unhex(uint8_t *buf, size_t cap, const char *hex)
{
	size_t n = strlen(hex) / 2;

	cr_assert_leq(n, cap);
	cr_assert_eq(hex_decode(buf, n, hex, strlen(hex)), 0, "bad hex literal %s", hex);
	return n;
}

/* t_hex - lowercase hex of buf in a static buffer (one use per expression). */
static inline const char *t_hex(const void *buf, size_t len)
{
	static char out[4096];

	cr_assert_lt(2 * len, sizeof(out));
	hex_encode(out, buf, len);
	return out;
}

#endif
