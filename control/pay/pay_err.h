/* SPDX-License-Identifier: MIT */
/*
 * Error codes of control/pay. Like NATX_E_* (include/natx/err.h) they are returned negated;
 * they sit in their own range above NATX_E_MAX so every way a credential can fail has its
 * own code (logged, counted, and mapped to an HTTP status by natxd through pay_err_http()).
 */
#ifndef NATX_PAY_ERR_H
#define NATX_PAY_ERR_H

enum pay_err {
	PAY_E_BASE = 4352,
	PAY_E_MAC_FORMAT, /* macaroon bytes are not valid version-2 binary */
	PAY_E_MAC_SIG, /* HMAC chain mismatch: wrong root key or tampered macaroon */
	PAY_E_MAC_THIRD_PARTY, /* macaroon has a third-party caveat; not supported here */
	PAY_E_L402_HEADER, /* Authorization / WWW-Authenticate value malformed */
	PAY_E_L402_ID, /* identifier is not an L402 v0 identifier */
	PAY_E_L402_PREIMAGE, /* sha256(preimage) != payment hash of the identifier */
	PAY_E_L402_UNKNOWN, /* no root key for this identifier: unknown or revoked */
	PAY_E_CAV_MALFORMED, /* a caveat this verifier knows has an unparseable value */
	PAY_E_CAV_SERVICE, /* the service is not among the macaroon's services */
	PAY_E_CAV_CAPABILITY, /* the capability (tcp, udp) is not allowed */
	PAY_E_CAV_EXPIRED, /* now >= <service>_valid_until */
	PAY_E_CAV_QUOTA, /* bytes used >= <service>_max_bytes */
	PAY_E_CAV_BANDWIDTH, /* requested bandwidth > <service>_bandwidth_kbps */
	PAY_E_INVOICE_FORMAT, /* BOLT11 string malformed (bech32, fields, amount) */
	PAY_E_INVOICE_SIG, /* BOLT11 signature does not verify / recover */
	PAY_E_INVOICE_UNPAID, /* invoice exists but is not settled */
	PAY_E_MAX,
};

/* pay_strerror - text for 0, -errno, -NATX_E_* or -PAY_E_*. Static string, never NULL. */
const char *pay_strerror(int err);

/*
 * pay_err_http - HTTP status natxd should answer for a failed L402 check: 402 when paying
 * (again) would help (expired, quota, unpaid, unknown/revoked), 401 for a forged or malformed
 * credential, 403 for a valid credential that does not cover the request, 500 otherwise.
 */
int pay_err_http(int err);

#endif
