// SPDX-License-Identifier: MIT
/* Text and HTTP mapping for control/pay results (pay_err.h). */
#include "natx/err.h"
#include "pay_err.h"

static const char *const pay_err_names[PAY_E_MAX - PAY_E_BASE] = {
	[PAY_E_MAC_FORMAT - PAY_E_BASE] = "malformed macaroon",
	[PAY_E_MAC_SIG - PAY_E_BASE] = "macaroon signature mismatch",
	[PAY_E_MAC_THIRD_PARTY - PAY_E_BASE] = "third-party caveats not supported",
	[PAY_E_L402_HEADER - PAY_E_BASE] = "malformed L402 header",
	[PAY_E_L402_ID - PAY_E_BASE] = "not an L402 v0 identifier",
	[PAY_E_L402_PREIMAGE - PAY_E_BASE] = "preimage does not match payment hash",
	[PAY_E_L402_UNKNOWN - PAY_E_BASE] = "unknown or revoked token",
	[PAY_E_CAV_MALFORMED - PAY_E_BASE] = "malformed caveat",
	[PAY_E_CAV_SERVICE - PAY_E_BASE] = "service not covered by token",
	[PAY_E_CAV_CAPABILITY - PAY_E_BASE] = "capability not covered by token",
	[PAY_E_CAV_EXPIRED - PAY_E_BASE] = "token expired",
	[PAY_E_CAV_QUOTA - PAY_E_BASE] = "byte quota exhausted",
	[PAY_E_CAV_BANDWIDTH - PAY_E_BASE] = "bandwidth above token limit",
	[PAY_E_INVOICE_FORMAT - PAY_E_BASE] = "malformed BOLT11 invoice",
	[PAY_E_INVOICE_SIG - PAY_E_BASE] = "bad BOLT11 signature",
	[PAY_E_INVOICE_UNPAID - PAY_E_BASE] = "invoice not paid",
};

const char *pay_strerror(int err)
{
	int e = err < 0 ? -err : err;

	if (e > PAY_E_BASE && e < PAY_E_MAX && pay_err_names[e - PAY_E_BASE]) {
		return pay_err_names[e - PAY_E_BASE];
	}
	return natx_strerror(err);
}

int pay_err_http(int err)
{
	switch (err < 0 ? -err : err) {
	case PAY_E_CAV_EXPIRED:
	case PAY_E_CAV_QUOTA:
	case PAY_E_INVOICE_UNPAID:
	case PAY_E_L402_UNKNOWN:
	case NATX_E_PAYMENT:
		return 402;
	case PAY_E_MAC_FORMAT:
	case PAY_E_MAC_SIG:
	case PAY_E_MAC_THIRD_PARTY:
	case PAY_E_L402_HEADER:
	case PAY_E_L402_ID:
	case PAY_E_L402_PREIMAGE:
	case PAY_E_CAV_MALFORMED:
	case NATX_E_AUTH:
		return 401;
	case PAY_E_CAV_SERVICE:
	case PAY_E_CAV_CAPABILITY:
	case PAY_E_CAV_BANDWIDTH:
		return 403;
	default:
		return 500;
	}
}
