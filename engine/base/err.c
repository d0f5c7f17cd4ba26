// SPDX-License-Identifier: MIT
/* Text for natx results: -errno or -NATX_E_* (see include/natx/err.h). */
#include <string.h>

#include "natx/err.h"

static const char *const natx_err_names[NATX_E_MAX - NATX_E_BASE] = {
	[NATX_E_PROTO - NATX_E_BASE] = "protocol violation",
	[NATX_E_TOO_BIG - NATX_E_BASE] = "message too big",
	[NATX_E_AUTH - NATX_E_BASE] = "authentication failed",
	[NATX_E_PAYMENT - NATX_E_BASE] = "payment required",
	[NATX_E_UNAVAILABLE - NATX_E_BASE] = "service unavailable",
	[NATX_E_CONNECT - NATX_E_BASE] = "connection failed",
	[NATX_E_NOT_FOUND - NATX_E_BASE] = "node not found",
	[NATX_E_CONFIG - NATX_E_BASE] = "configuration error",
	[NATX_E_RATE_LIMITED - NATX_E_BASE] = "rate limited",
	[NATX_E_LIMIT - NATX_E_BASE] = "resource limit reached",
};

const char *natx_strerror(int err)
{
	int e = err < 0 ? -err : err;

	if (e == 0) {
		return "success";
	}
	if (e > NATX_E_BASE && e < NATX_E_MAX && natx_err_names[e - NATX_E_BASE]) {
		return natx_err_names[e - NATX_E_BASE];
	}
	const char *s = strerrordesc_np(e);

	return s ? s : "unknown error";
}
