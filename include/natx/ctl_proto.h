/* SPDX-License-Identifier: MIT */
/*
 * natx control protocol: limits, stable error codes and their mapping to exit statuses and HTTP
 * statuses. Shared by natxd (control/), natxctl and the tests (style.md rule 16).
 *
 * Wire format (docs/control.md): one JSON object per line on a unix SOCK_STREAM socket.
 *   request: {"v":1,"id":<number|string, optional, echoed>,"cmd":"<name>", ...arguments}
 *   reply:   {"v":1,"id":..,"ok":true, ...results}
 *         or {"v":1,"id":..,"ok":false,"error":{"code":"<stable code>","message":"<text>"}}
 * A line longer than CTL_LINE_MAX bytes is answered with "too_big" and discarded; the
 * connection stays usable.
 */
#ifndef NATX_CTL_PROTO_H
#define NATX_CTL_PROTO_H

#include <stdbool.h>

enum {
	CTL_PROTO_VERSION = 1,
	CTL_LINE_MAX = 65536, /* bytes per request line, newline excluded */
	CTL_CMD_NAME_MAX = 32, /* bytes of a "cmd" value */
	CTL_TARGET_MAX = 256, /* bytes of a node id / connect target */
	CTL_SPEC_MAX = 300, /* bytes of a forward spec */
	CTL_HTTP_BODY_MAX = 16384, /* bytes of an HTTP request body */
};

/*
 * Stable error codes, end to end. Each row ties the string on the socket to the int natx
 * functions return, the natxctl exit status and the HTTP status. The strings never change
 * meaning; new codes are only appended.
 */
struct ctl_errmap {
	const char *code; /* stable string on the wire */
	int err; /* -errno or -NATX_E_* it stands for */
	int exit_status; /* natxctl exit status */
	int http_status; /* HTTP API status */
};

/* natxctl exit statuses that are not error codes of a reply. */
enum {
	CTL_EXIT_OK = 0,
	CTL_EXIT_INTERNAL = 1, /* "internal" or anything unexpected */
	CTL_EXIT_USAGE = 2, /* bad natxctl command line */
	CTL_EXIT_NO_DAEMON = 3, /* natxd's socket cannot be reached */
};

/*
 * ctl_err_by_code - the row for a wire code; the "internal" row for an unknown or NULL code.
 * Never returns NULL.
 */
const struct ctl_errmap *ctl_err_by_code(const char *code);

/*
 * ctl_err_by_err - the row for a -errno/-NATX_E_* result (err < 0); unknown errors map to the
 * "internal" row. Never returns NULL.
 */
const struct ctl_errmap *ctl_err_by_err(int err);

/* ctl_errmap_table - the whole table (for natxctl --help and docs), terminated by code NULL. */
const struct ctl_errmap *ctl_errmap_table(void);

#endif
