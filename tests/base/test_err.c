// SPDX-License-Identifier: MIT
#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>

#include "natx/err.h"

Test(err, names_protocol_errors_and_errno, .timeout = 10)
{
	cr_assert_str_eq(natx_strerror(0), "success");
	cr_assert_str_eq(natx_strerror(-NATX_E_PAYMENT), "payment required");
	cr_assert_str_eq(natx_strerror(-NATX_E_NOT_FOUND), "node not found");
	cr_assert_str_eq(natx_strerror(-ECONNREFUSED), "Connection refused");
	cr_assert_str_eq(natx_strerror(-NATX_E_MAX - 5), "unknown error");
	for (int e = NATX_E_BASE + 1; e < NATX_E_MAX; e++) {
		cr_assert_neq(strcmp(natx_strerror(-e), "unknown error"), 0, "code %d unnamed", e);
	}
}
