/* SPDX-License-Identifier: MIT */
/*
 * Control-socket request framing and parsing (include/natx/ctl_proto.h for the format). Both
 * halves read untrusted bytes and have a libFuzzer target (tests/fuzz/fuzz_ctl_req.c).
 *
 * Framing: ctl_lines splits a byte stream into lines of at most CTL_LINE_MAX bytes. A longer
 * line is reported once as too big and skipped up to its newline; the stream stays usable.
 * Parsing: ctl_req_parse checks one line: a JSON object (cJSON), "v" == 1, "cmd" a short
 * lowercase name, "id" absent, a number or a short string.
 */
#ifndef NATX_CTL_REQ_H
#define NATX_CTL_REQ_H

#include <stdbool.h>
#include <stddef.h>

#include <cjson/cJSON.h>

#include "natx/ctl_proto.h"

enum { CTL_ID_MAX = 128 }; /* bytes of a string id */

struct ctl_lines {
	size_t len; /* bytes of the current partial line in buf */
	bool discarding; /* skipping the rest of a too-big line */
	char buf[CTL_LINE_MAX + 1];
};

/*
 * ctl_line_fn - called for each complete line (@line NUL-terminated, @len bytes, newline and a
 * trailing '\r' removed, @err 0) or once per too-big line (@line NULL, @err
 * -NATX_E_TOO_BIG). A non-zero return stops ctl_lines_feed and is returned by it.
 */
typedef int (*ctl_line_fn)(void *arg, char *line, size_t len, int err);

/* ctl_lines_init - empty framer. */
void ctl_lines_init(struct ctl_lines *l);

/* ctl_lines_feed - consume @n bytes of @data, calling @fn per event. 0 or @fn's value. */
int ctl_lines_feed(struct ctl_lines *l, const char *data, size_t n, ctl_line_fn fn, void *arg);

/*
 * Reply reader for clients (natxctl, natxd talking to the engine): replies are not bound by the
 * request limit (a forward list can be long), so the buffer grows up to CTL_REPLY_MAX.
 */
enum { CTL_REPLY_MAX = 16 << 20 };

struct ctl_rx {
	char *buf; /* received bytes not yet returned as lines, malloc'd */
	size_t len; /* bytes in buf */
	size_t cap; /* allocated size of buf */
};

/* ctl_rx_init - empty reader. ctl_rx_cleanup - free it; safe twice. */
void ctl_rx_init(struct ctl_rx *rx);
void ctl_rx_cleanup(struct ctl_rx *rx);

/* ctl_rx_append - queue @n bytes. 0, -ENOMEM, or -NATX_E_TOO_BIG past CTL_REPLY_MAX. */
int ctl_rx_append(struct ctl_rx *rx, const char *data, size_t n);

/*
 * ctl_rx_line - the next complete line (newline removed, NUL-terminated, malloc'd: the caller
 * frees it) with its length in @len, or NULL when no full line is queued (or on ENOMEM).
 */
char *ctl_rx_line(struct ctl_rx *rx, size_t *len);

struct ctl_req {
	cJSON *root; /* the parsed object; owned, freed by ctl_req_cleanup */
	const cJSON *id; /* "id" member (number or string), NULL if absent; inside root */
	const char *cmd; /* "cmd" value; inside root; NULL unless parse succeeded */
};

/*
 * ctl_req_parse - parse one line. Returns 0, or -NATX_E_TOO_BIG, -NATX_E_PROTO (not JSON, not
 * an object, bad "id"/"cmd"), -EPROTONOSUPPORT (missing or wrong "v"), with @why set to static
 * text. Even on failure req->root/id are set when the line was a JSON object, so the error
 * reply can echo the id. Always call ctl_req_cleanup.
 */
int ctl_req_parse(const char *line, size_t len, struct ctl_req *req, const char **why);

/* ctl_req_cleanup - free the request; safe on a zeroed or cleaned-up one. */
void ctl_req_cleanup(struct ctl_req *req);

/*
 * ctl_req_str - string argument @name of at most @max bytes. Returns the string (inside the
 * request), or NULL with @err = -ENOENT (absent) or -EINVAL (not a string / too long / has
 * control characters).
 */
const char *ctl_req_str(const struct ctl_req *req, const char *name, size_t max, int *err);

/* ctl_req_bool - boolean argument, @def when absent. 0 or -EINVAL (present, not a boolean). */
int ctl_req_bool(const struct ctl_req *req, const char *name, bool def, bool *out);

/* ctl_req_uint - non-negative integer argument up to @max. 0, -ENOENT or -EINVAL. */
int ctl_req_uint(const struct ctl_req *req, const char *name, unsigned long max,
		 unsigned long *out);

/* ctl_reply_new - {"v":1,"id":<copy of @id>,"ok":@ok}. NULL on allocation failure. */
cJSON *ctl_reply_new(const cJSON *id, bool ok);

/*
 * ctl_reply_error - error reply {"v":1,"id":..,"ok":false,"error":{"code","message"}} for
 * @err (-errno/-NATX_E_*), with @msg (NULL: the code's standard text). NULL on ENOMEM.
 */
cJSON *ctl_reply_error(const cJSON *id, int err, const char *msg);

/*
 * ctl_reply_line - serialise @reply (not freed) as one line ending in '\n'. Returns a malloc'd
 * string and its length in @len, or NULL on ENOMEM.
 */
char *ctl_reply_line(const cJSON *reply, size_t *len);

#endif
