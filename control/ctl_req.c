// SPDX-License-Identifier: MIT
/* Control-socket framing, request parsing and reply building (control/ctl_req.h). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "ctl_req.h"
#include "natx/err.h"

void ctl_lines_init(struct ctl_lines *l)
{
	l->len = 0;
	l->discarding = false;
}

int ctl_lines_feed(struct ctl_lines *l, const char *data, size_t n, ctl_line_fn fn, void *arg)
{
	while (n) {
		const char *nl = memchr(data, '\n', n);
		size_t take = nl ? (size_t)(nl - data) : n;
		int rc;

		if (l->discarding) {
			if (nl) {
				l->discarding = false;
			}
		} else if (l->len + take > CTL_LINE_MAX) {
			l->len = 0;
			l->discarding = !nl;
			rc = fn(arg, NULL, 0, -NATX_E_TOO_BIG);
			if (rc) {
				return rc;
			}
		} else {
			memcpy(l->buf + l->len, data, take);
			l->len += take;
			if (nl) {
				size_t len = l->len;

				if (len && l->buf[len - 1] == '\r') {
					len--;
				}
				l->buf[len] = '\0';
				l->len = 0;
				rc = fn(arg, l->buf, len, 0);
				if (rc) {
					return rc;
				}
			}
		}
		take += nl ? 1 : 0;
		data += take;
		n -= take;
	}
	return 0;
}

void ctl_rx_init(struct ctl_rx *rx)
{
	rx->buf = NULL;
	rx->len = 0;
	rx->cap = 0;
}

void ctl_rx_cleanup(struct ctl_rx *rx)
{
	free(rx->buf);
	ctl_rx_init(rx);
}

int ctl_rx_append(struct ctl_rx *rx, const char *data, size_t n)
{
	if (n > CTL_REPLY_MAX - rx->len) {
		return -NATX_E_TOO_BIG;
	}
	if (rx->len + n > rx->cap) {
		size_t cap = rx->cap ? rx->cap : 4096;
		char *b;

		while (cap < rx->len + n) {
			cap *= 2;
		}
		b = realloc(rx->buf, cap);
		if (!b) {
			return -ENOMEM;
		}
		rx->buf = b;
		rx->cap = cap;
	}
	memcpy(rx->buf + rx->len, data, n);
	rx->len += n;
	return 0;
}

char *ctl_rx_line(struct ctl_rx *rx, size_t *len)
{
	char *nl = rx->len ? memchr(rx->buf, '\n', rx->len) : NULL;
	size_t n;
	char *line;

	if (!nl) {
		return NULL;
	}
	n = (size_t)(nl - rx->buf);
	line = malloc(n + 1);
	if (!line) {
		return NULL;
	}
	memcpy(line, rx->buf, n);
	line[n] = '\0';
	memmove(rx->buf, nl + 1, rx->len - n - 1);
	rx->len -= n + 1;
	*len = n;
	return line;
}

static bool ctl_name_ok(const char *s)
{
	size_t n = strlen(s);

	if (!n || n >= CTL_CMD_NAME_MAX) {
		return false;
	}
	for (size_t i = 0; i < n; i++) {
		if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '.' ||
		      s[i] == '_')) {
			return false;
		}
	}
	return true;
}

int ctl_req_parse(const char *line, size_t len, struct ctl_req *req, const char **why)
{
	const char *end = NULL;
	const cJSON *v, *cmd, *id;

	memset(req, 0, sizeof(*req));
	if (len > CTL_LINE_MAX) {
		*why = "request line too long";
		return -NATX_E_TOO_BIG;
	}
	req->root = cJSON_ParseWithLengthOpts(line, len, &end, 0);
	if (!req->root) {
		*why = "request is not valid JSON";
		return -NATX_E_PROTO;
	}
	for (; end && end < line + len; end++) {
		if (*end != ' ' && *end != '\t' && *end != '\r' && *end != '\0') {
			*why = "trailing bytes after the JSON object";
			return -NATX_E_PROTO;
		}
	}
	if (!cJSON_IsObject(req->root)) {
		*why = "request must be a JSON object";
		return -NATX_E_PROTO;
	}
	id = cJSON_GetObjectItemCaseSensitive(req->root, "id");
	if (id) {
		if (!cJSON_IsNumber(id) &&
		    !(cJSON_IsString(id) && strnlen(id->valuestring, CTL_ID_MAX) < CTL_ID_MAX)) {
			*why = "\"id\" must be a number or a string of less than 128 bytes";
			return -NATX_E_PROTO;
		}
		req->id = id;
	}
	v = cJSON_GetObjectItemCaseSensitive(req->root, "v");
	if (!cJSON_IsNumber(v) || v->valuedouble != CTL_PROTO_VERSION) {
		*why = "unsupported protocol version (expected \"v\":1)";
		return -EPROTONOSUPPORT;
	}
	cmd = cJSON_GetObjectItemCaseSensitive(req->root, "cmd");
	if (!cJSON_IsString(cmd) || !ctl_name_ok(cmd->valuestring)) {
		*why = "\"cmd\" must be a command name ([a-z0-9._], under 32 bytes)";
		return -NATX_E_PROTO;
	}
	req->cmd = cmd->valuestring;
	return 0;
}

void ctl_req_cleanup(struct ctl_req *req)
{
	cJSON_Delete(req->root);
	memset(req, 0, sizeof(*req));
}

const char *ctl_req_str(const struct ctl_req *req, const char *name, size_t max, int *err)
{
	const cJSON *it = cJSON_GetObjectItemCaseSensitive(req->root, name);
	const char *s;
	size_t n;

	if (!it || cJSON_IsNull(it)) {
		*err = -ENOENT;
		return NULL;
	}
	if (!cJSON_IsString(it)) {
		*err = -EINVAL;
		return NULL;
	}
	s = it->valuestring;
	n = strnlen(s, max + 1);
	if (n > max || !n) {
		*err = -EINVAL;
		return NULL;
	}
	for (size_t i = 0; i < n; i++) {
		if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f) {
			*err = -EINVAL;
			return NULL;
		}
	}
	*err = 0;
	return s;
}

int ctl_req_bool(const struct ctl_req *req, const char *name, bool def, bool *out)
{
	const cJSON *it = cJSON_GetObjectItemCaseSensitive(req->root, name);

	if (!it || cJSON_IsNull(it)) {
		*out = def;
		return 0;
	}
	if (!cJSON_IsBool(it)) {
		return -EINVAL;
	}
	*out = cJSON_IsTrue(it);
	return 0;
}

int ctl_req_uint(const struct ctl_req *req, const char *name, unsigned long max, unsigned long *out)
{
	const cJSON *it = cJSON_GetObjectItemCaseSensitive(req->root, name);
	double d;

	if (!it || cJSON_IsNull(it)) {
		return -ENOENT;
	}
	if (!cJSON_IsNumber(it)) {
		return -EINVAL;
	}
	d = it->valuedouble;
	if (!(d >= 0) || d > (double)max || d != (double)(unsigned long)d) {
		return -EINVAL;
	}
	*out = (unsigned long)d;
	return 0;
}

cJSON *ctl_reply_new(const cJSON *id, bool ok)
{
	cJSON *r = cJSON_CreateObject();

	if (!r) {
		return NULL;
	}
	if (!cJSON_AddNumberToObject(r, "v", CTL_PROTO_VERSION)) {
		goto free_reply;
	}
	if (id) {
		cJSON *dup = cJSON_Duplicate(id, 0);

		if (!dup) {
			goto free_reply;
		}
		cJSON_AddItemToObject(r, "id", dup);
	}
	if (!cJSON_AddBoolToObject(r, "ok", ok)) {
		goto free_reply;
	}
	return r;

free_reply:
	cJSON_Delete(r);
	return NULL;
}

cJSON *ctl_reply_error(const cJSON *id, int err, const char *msg)
{
	const struct ctl_errmap *m = ctl_err_by_err(err);
	cJSON *r = ctl_reply_new(id, false);
	cJSON *e;

	if (!r) {
		return NULL;
	}
	e = cJSON_AddObjectToObject(r, "error");
	if (!e || !cJSON_AddStringToObject(e, "code", m->code) ||
	    !cJSON_AddStringToObject(e, "message", msg ? msg : natx_strerror(err))) {
		cJSON_Delete(r);
		return NULL;
	}
	return r;
}

char *ctl_reply_line(const cJSON *reply, size_t *len)
{
	char *s = cJSON_PrintUnformatted(reply);
	size_t n;
	char *line;

	if (!s) {
		return NULL;
	}
	n = strlen(s);
	line = realloc(s, n + 2);
	if (!line) {
		free(s);
		return NULL;
	}
	line[n] = '\n';
	line[n + 1] = '\0';
	*len = n + 1;
	return line;
}
