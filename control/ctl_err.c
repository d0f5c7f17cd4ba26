// SPDX-License-Identifier: MIT
/* Stable control-protocol error codes and their exit/HTTP statuses (include/natx/ctl_proto.h). */
#include <errno.h>
#include <stddef.h>
#include <string.h>

#include "natx/ctl_proto.h"
#include "natx/err.h"

/* Row 0 is the fallback ("internal"); codes are only ever appended. */
static const struct ctl_errmap ctl_errmap[] = {
	{ "internal", -EIO, CTL_EXIT_INTERNAL, 500 },
	{ "bad_request", -NATX_E_PROTO, 4, 400 },
	{ "bad_version", -EPROTONOSUPPORT, 4, 400 },
	{ "unknown_cmd", -EOPNOTSUPP, 4, 404 },
	{ "too_big", -NATX_E_TOO_BIG, 4, 413 },
	{ "invalid_argument", -EINVAL, 4, 400 },
	{ "resolve_failed", -EADDRNOTAVAIL, 4, 400 },
	{ "permission_denied", -EACCES, 5, 403 },
	{ "service_unavailable", -NATX_E_UNAVAILABLE, 10, 503 },
	{ "payment_required", -NATX_E_PAYMENT, 11, 402 },
	{ "connection_failed", -NATX_E_CONNECT, 12, 502 },
	{ "timeout", -ETIMEDOUT, 12, 504 },
	{ "authentication_failed", -NATX_E_AUTH, 13, 401 },
	{ "node_not_found", -NATX_E_NOT_FOUND, 14, 404 },
	{ "not_found", -ENOENT, 14, 404 },
	{ "configuration_error", -NATX_E_CONFIG, 15, 500 },
	{ "rate_limited", -NATX_E_RATE_LIMITED, 16, 429 },
	{ "exists", -EEXIST, 17, 409 },
	{ "address_in_use", -EADDRINUSE, 17, 409 },
	{ "limit_reached", -NATX_E_LIMIT, 18, 503 },
	{ NULL, 0, 0, 0 },
};

const struct ctl_errmap *ctl_err_by_code(const char *code)
{
	if (!code) {
		return &ctl_errmap[0];
	}
	for (const struct ctl_errmap *m = ctl_errmap; m->code; m++) {
		if (!strcmp(m->code, code)) {
			return m;
		}
	}
	return &ctl_errmap[0];
}

const struct ctl_errmap *ctl_err_by_err(int err)
{
	if (err == -EPERM) {
		err = -EACCES;
	}
	for (const struct ctl_errmap *m = ctl_errmap; m->code; m++) {
		if (m->err == err) {
			return m;
		}
	}
	return &ctl_errmap[0];
}

const struct ctl_errmap *ctl_errmap_table(void)
{
	return ctl_errmap;
}
