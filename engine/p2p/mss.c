// SPDX-License-Identifier: MIT
/* mss.c - multistream-select 1.0 dialer and listener state machines (see mss.h). */
#include <string.h>

#include "natx/err.h"
#include "mss.h"

void mss_dialer_init(struct mss *m, const char *const *protos, size_t n)
{
	memset(m, 0, sizeof(*m));
	m->protos = protos;
	m->nprotos = (uint8_t)(n > 255 ? 255 : n);
	m->dialer = true;
	m->selected = -1;
}

void mss_listener_init(struct mss *m, const char *const *protos, size_t n)
{
	mss_dialer_init(m, protos, n);
	m->dialer = false;
}

int mss_write_msg(struct wr *out, const char *s)
{
	size_t n = strlen(s);
	struct wr w = *out;
	int err = wr_uvarint(&w, n + 1) ?: wr_bytes(&w, s, n) ?: wr_u8(&w, '\n');

	if (!err) {
		*out = w; /* all or nothing */
	}
	return err;
}

int mss_dialer_start(struct mss *m, struct wr *out)
{
	struct wr w = *out;
	int err;

	if (!m->nprotos) {
		return -NATX_E_UNAVAILABLE;
	}
	err = mss_write_msg(&w, MSS_HEADER) ?: mss_write_msg(&w, m->protos[0]);
	if (!err) {
		*out = w;
	}
	return err;
}

/*
 * mss_read_msg - take one complete message from @r. Returns 1 with @body/@blen (newline
 * stripped, trailing whitespace trimmed as js does), 0 when incomplete, or an error.
 */
static int mss_read_msg(struct rd *r, const uint8_t **body, size_t *blen)
{
	struct rd t = *r;
	uint64_t n;
	size_t avail = rd_left(&t);

	if (rd_uvarint(&t, &n)) {
		/* Not decodable yet: incomplete if every byte has the continuation bit. */
		for (size_t i = 0; i < avail && i < 9; i++) {
			if (!(r->p[i] & 0x80)) {
				return -NATX_E_PROTO;
			}
		}
		return avail >= 9 ? -NATX_E_PROTO : 0;
	}
	if (n > MSS_MAX_MSG) {
		return -NATX_E_TOO_BIG;
	}
	if (n == 0) {
		return -NATX_E_PROTO;
	}
	if (rd_left(&t) < n) {
		return 0;
	}
	rd_bytes(&t, (size_t)n, body);
	if ((*body)[n - 1] != '\n') {
		return -NATX_E_PROTO;
	}
	*blen = (size_t)n - 1;
	while (*blen && ((*body)[*blen - 1] == ' ' || (*body)[*blen - 1] == '\r' ||
			 (*body)[*blen - 1] == '\t')) {
		(*blen)--;
	}
	*r = t;
	return 1;
}

static bool mss_eq(const uint8_t *b, size_t n, const char *s)
{
	return strlen(s) == n && memcmp(b, s, n) == 0;
}

/* mss_write_ls - the "ls" answer: one message whose body is the framed list plus '\n'. */
static int mss_write_ls(struct mss *m, struct wr *out)
{
	size_t body = 1;
	struct wr w = *out;
	int err;

	for (size_t i = 0; i < m->nprotos; i++) {
		size_t n = strlen(m->protos[i]) + 1;

		body += n + (n < 128 ? 1 : 2);
	}
	err = wr_uvarint(&w, body);
	for (size_t i = 0; !err && i < m->nprotos; i++) {
		err = mss_write_msg(&w, m->protos[i]);
	}
	err = err ?: wr_u8(&w, '\n');
	if (!err) {
		*out = w;
	}
	return err;
}

static int mss_listener_msg(struct mss *m, const uint8_t *b, size_t n, struct wr *out)
{
	if (++m->rounds > MSS_MAX_ROUNDS) {
		return -NATX_E_PROTO;
	}
	if (mss_eq(b, n, MSS_LS)) {
		return mss_write_ls(m, out);
	}
	for (size_t i = 0; i < m->nprotos; i++) {
		if (mss_eq(b, n, m->protos[i])) {
			int err = mss_write_msg(out, m->protos[i]);

			if (err) {
				return err;
			}
			m->selected = (int)i;
			return MSS_DONE;
		}
	}
	return mss_write_msg(out, MSS_NA);
}

static int mss_dialer_msg(struct mss *m, const uint8_t *b, size_t n, struct wr *out)
{
	if (mss_eq(b, n, m->protos[m->next])) {
		m->selected = m->next;
		return MSS_DONE;
	}
	if (!mss_eq(b, n, MSS_NA)) {
		return -NATX_E_PROTO;
	}
	if (++m->next >= m->nprotos) {
		return -NATX_E_UNAVAILABLE;
	}
	return mss_write_msg(out, m->protos[m->next]);
}

int mss_consume(struct mss *m, const uint8_t *in, size_t len, size_t *used, struct wr *out)
{
	struct rd r;
	int ret = 0;

	rd_init(&r, in, len);
	*used = 0;
	if (m->selected >= 0) {
		return MSS_DONE;
	}
	while (ret == 0) {
		const uint8_t *body;
		size_t blen;
		struct rd before = r;

		ret = mss_read_msg(&r, &body, &blen);
		if (ret <= 0) {
			break;
		}
		if (!m->header_seen) {
			if (!mss_eq(body, blen, MSS_HEADER)) {
				return -NATX_E_PROTO;
			}
			m->header_seen = true;
			ret = m->dialer ? 0 : mss_write_msg(out, MSS_HEADER);
		} else if (m->dialer) {
			ret = mss_dialer_msg(m, body, blen, out);
		} else {
			ret = mss_listener_msg(m, body, blen, out);
		}
		if (ret < 0) {
			r = before;
			break;
		}
		*used = (size_t)(r.p - in);
	}
	return ret;
}
