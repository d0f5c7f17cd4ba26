/* SPDX-License-Identifier: MIT */
/*
 * natx error codes. Functions return 0 on success and a negative number on failure:
 * -errno for system errors, -NATX_E_* for protocol and policy errors. The NATX_E_* values
 * start above the errno range so one int tells the two apart (style.md rule 3).
 *
 * Ranges: 4096-4351 natx-wide codes below; 4352-4607 payments (control/pay/pay_err.h,
 * PAY_E_*). A module that needs its own codes reserves a range here first.
 */
#ifndef NATX_ERR_H
#define NATX_ERR_H

enum natx_err {
	NATX_E_BASE = 4096,
	NATX_E_PROTO, /* peer sent bytes that violate the protocol */
	NATX_E_TOO_BIG, /* a frame or message exceeds its named limit */
	NATX_E_AUTH, /* authentication failed (signature, MAC, token) */
	NATX_E_PAYMENT, /* payment required */
	NATX_E_UNAVAILABLE, /* no service can serve the request */
	NATX_E_CONNECT, /* connection to the target failed */
	NATX_E_NOT_FOUND, /* node, peer or object not found */
	NATX_E_CONFIG, /* configuration error */
	NATX_E_RATE_LIMITED, /* caller exceeded its rate limit */
	NATX_E_LIMIT, /* a resource limit was reached */
	NATX_E_MAX,
	NATX_E_PAY_FIRST = 4352, /* PAY_E_* live in [NATX_E_PAY_FIRST, NATX_E_PAY_LAST] */
	NATX_E_PAY_LAST = 4607,
};

/*
 * natx_strerror - describe a 0/-errno/-NATX_E_* result. Returns a static string; never NULL.
 */
const char *natx_strerror(int err);

#endif
