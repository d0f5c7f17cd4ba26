// SPDX-License-Identifier: MIT
/* lpm.c - one delimited protobuf at a time (see lpm.h). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "natx/err.h"
#include "natx/rd.h"
#include "lpm.h"

void lpm_init(struct lpm *m, size_t max)
{
	m->max = max && max <= LPM_MAX ? max : LPM_MAX;
	m->need = m->have = m->pre_len = 0;
}

int lpm_feed(struct lpm *m, const uint8_t *p, size_t n, size_t *used, const uint8_t **msg,
	     size_t *len)
{
	size_t max = m->max ? m->max : LPM_MAX;
	size_t i = 0;

	*used = 0;
	while (!m->need && i < n) {
		struct rd r;
		uint64_t v;

		m->pre[m->pre_len++] = p[i++];
		if (m->pre[m->pre_len - 1] & 0x80) {
			if (m->pre_len == sizeof(m->pre) - 1) {
				return -NATX_E_PROTO;
			}
			continue;
		}
		rd_init(&r, m->pre, m->pre_len);
		if (rd_uvarint(&r, &v)) {
			return -NATX_E_PROTO;
		}
		if (v > max) {
			return -NATX_E_TOO_BIG;
		}
		m->pre_len = 0;
		if (v == 0) {
			/* an empty message: complete at once */
			*used = i;
			*msg = m->buf;
			*len = 0;
			return 1;
		}
		m->need = (size_t)v;
	}
	if (m->need && i < n) {
		size_t k = m->need - m->have < n - i ? m->need - m->have : n - i;

		memcpy(m->buf + m->have, p + i, k);
		m->have += k;
		i += k;
	}
	*used = i;
	if (m->need && m->have == m->need) {
		*msg = m->buf;
		*len = m->need;
		m->need = m->have = 0;
		return 1;
	}
	return 0;
}

void *lpm_take(struct lpm *m, const uint8_t *p, size_t n, size_t *used, lpm_decode_fn decode,
	       size_t size, int *err)
{
	const uint8_t *msg;
	size_t len;
	void *dst;
	int rc = lpm_feed(m, p, n, used, &msg, &len);

	*err = rc < 0 ? rc : 0;
	if (rc <= 0) {
		return NULL;
	}
	dst = malloc(size);
	if (!dst) {
		*err = -ENOMEM;
		return NULL;
	}
	*err = decode(dst, msg, len);
	if (*err) {
		free(dst);
		return NULL;
	}
	return dst;
}

size_t lpm_frame(uint8_t out[10], size_t len)
{
	struct wr w;

	wr_init(&w, out, 10);
	wr_uvarint(&w, len);
	return (size_t)(w.p - out);
}
