// SPDX-License-Identifier: MIT
/* udp_wire - wire formats of UDP services between natx nodes (contract in udp_wire.h). */
#include "udp_wire.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "natx/err.h"
#include "natx/rd.h"

/* udpw_text_ok - @n bytes of @s are printable ASCII (no NUL, no control characters). */
static bool udpw_text_ok(const uint8_t *s, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (s[i] < 0x20 || s[i] > 0x7e) {
			return false;
		}
	}
	return true;
}

/* udpw_name_ok - a service name: [A-Za-z0-9._-], 1..UDPW_NAME_MAX bytes. */
static bool udpw_name_ok(const char *s)
{
	size_t n = strlen(s);

	if (!n || n > UDPW_NAME_MAX) {
		return false;
	}
	for (size_t i = 0; i < n; i++) {
		char c = s[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '.' || c == '_' || c == '-')) {
			return false;
		}
	}
	return true;
}

/* udpw_addr_rd - family u8 (4/6) | port be16 | 4 or 16 address bytes. */
static int udpw_addr_rd(struct rd *r, struct udpw_addr *a)
{
	memset(a, 0, sizeof(*a));
	if (rd_u8(r, &a->family) || rd_be16(r, &a->port)) {
		return -NATX_E_PROTO;
	}
	if (a->family != 4 && a->family != 6) {
		return -NATX_E_PROTO;
	}
	return rd_copy(r, a->addr, a->family == 4 ? 4 : 16) ? -NATX_E_PROTO : 0;
}

static int udpw_addr_wr(struct wr *w, const struct udpw_addr *a)
{
	if (a->family != 4 && a->family != 6) {
		return -EINVAL;
	}
	if (wr_u8(w, a->family) || wr_be16(w, a->port) ||
	    wr_bytes(w, a->addr, a->family == 4 ? 4 : 16)) {
		return -ENOSPC;
	}
	return 0;
}

/* udpw_text_rd - u8 length | text (checked, at most @max) into @out (NUL-terminated). */
static int udpw_text_rd(struct rd *r, char *out, size_t max)
{
	const uint8_t *p;
	uint8_t n;

	if (rd_u8(r, &n) || n > max || rd_bytes(r, n, &p) || !udpw_text_ok(p, n)) {
		return -NATX_E_PROTO;
	}
	memcpy(out, p, n);
	out[n] = 0;
	return 0;
}

static int udpw_text_wr(struct wr *w, const char *s, size_t max)
{
	size_t n = strlen(s);

	if (n > max || !udpw_text_ok((const uint8_t *)s, n)) {
		return -EINVAL;
	}
	return wr_u8(w, (uint8_t)n) || wr_bytes(w, s, n) ? -ENOSPC : 0;
}

/* udpw_body_parse - the body of @m->type in @r; the whole body must be consumed. */
static int udpw_body_parse(struct rd *r, struct udpw_msg *m)
{
	uint32_t hi = 0, lo = 0;
	const uint8_t *p;
	uint8_t u8;

	switch (m->type) {
	case UDPW_HELLO:
		if (rd_u8(r, &m->hello.version) || m->hello.version != UDPW_VERSION ||
		    rd_copy(r, m->hello.sid, UDPW_SID_LEN) ||
		    rd_copy(r, m->hello.key, UDPW_KEY_LEN) ||
		    udpw_text_rd(r, m->hello.name, UDPW_NAME_MAX) || !udpw_name_ok(m->hello.name) ||
		    udpw_addr_rd(r, &m->hello.stun)) {
			return -NATX_E_PROTO;
		}
		break;
	case UDPW_CANDS:
		if (rd_u8(r, &u8) || u8 > UDPW_CANDS_MAX) {
			return -NATX_E_PROTO;
		}
		m->cands.n = u8;
		for (unsigned int i = 0; i < m->cands.n; i++) {
			if (udpw_addr_rd(r, &m->cands.a[i])) {
				return -NATX_E_PROTO;
			}
		}
		break;
	case UDPW_PING:
	case UDPW_PONG:
		if (rd_be32(r, &hi) || rd_be32(r, &lo)) {
			return -NATX_E_PROTO;
		}
		m->stamp = (uint64_t)hi << 32 | lo; /* not rd_be64: GCC 12 sees its locals unset */
		break;
	case UDPW_SYNC:
		if (rd_be32(r, &m->round)) {
			return -NATX_E_PROTO;
		}
		break;
	case UDPW_RESULT:
		if (rd_u8(r, &u8) || u8 > 1) {
			return -NATX_E_PROTO;
		}
		m->result.direct = u8;
		if (m->result.direct && udpw_addr_rd(r, &m->result.peer)) {
			return -NATX_E_PROTO;
		}
		if (udpw_text_rd(r, m->result.reason, UDPW_REASON_MAX)) {
			return -NATX_E_PROTO;
		}
		break;
	case UDPW_DATA:
		if (rd_be32(r, &m->data.flow)) {
			return -NATX_E_PROTO;
		}
		m->data.len = rd_left(r);
		if (rd_bytes(r, m->data.len, &m->data.data)) {
			return -NATX_E_PROTO;
		}
		if (!m->data.len) {
			m->data.data = NULL;
		}
		break;
	case UDPW_ERROR: {
		size_t n = rd_left(r);

		if (n > UDPW_REASON_MAX || rd_bytes(r, n, &p) || !udpw_text_ok(p, n)) {
			return -NATX_E_PROTO;
		}
		memcpy(m->error, p, n);
		m->error[n] = 0;
		break;
	}
	default:
		return -NATX_E_PROTO;
	}
	return rd_left(r) ? -NATX_E_PROTO : 0;
}

int udpw_msg_parse(const uint8_t *buf, size_t len, struct udpw_msg *m, size_t *used)
{
	struct rd r, body;
	const uint8_t *p;
	uint16_t blen;
	uint8_t type;
	int rc;

	rd_init(&r, buf, len);
	if (rd_u8(&r, &type) || rd_be16(&r, &blen)) {
		return -EAGAIN;
	}
	if (type < UDPW_HELLO || type > UDPW_ERROR) {
		return -NATX_E_PROTO; /* known before the body arrives */
	}
	if (rd_bytes(&r, blen, &p)) {
		return -EAGAIN;
	}
	memset(m, 0, sizeof(*m));
	m->type = type;
	rd_init(&body, p, blen);
	rc = udpw_body_parse(&body, m);
	if (rc) {
		return rc;
	}
	*used = UDPW_HDR_LEN + (size_t)blen;
	return 0;
}

int udpw_msg_build(uint8_t *buf, size_t cap, size_t *n, const struct udpw_msg *m)
{
	struct wr w;
	size_t blen;
	int rc = 0;

	if (cap < UDPW_HDR_LEN) {
		return -ENOSPC;
	}
	wr_init(&w, buf + UDPW_HDR_LEN,
		cap - UDPW_HDR_LEN > UDPW_BODY_MAX ? UDPW_BODY_MAX : cap - UDPW_HDR_LEN);
	switch (m->type) {
	case UDPW_HELLO:
		if (!udpw_name_ok(m->hello.name)) {
			return -EINVAL;
		}
		if (wr_u8(&w, UDPW_VERSION) || wr_bytes(&w, m->hello.sid, UDPW_SID_LEN) ||
		    wr_bytes(&w, m->hello.key, UDPW_KEY_LEN)) {
			return -ENOSPC;
		}
		rc = udpw_text_wr(&w, m->hello.name, UDPW_NAME_MAX);
		if (!rc) {
			rc = udpw_addr_wr(&w, &m->hello.stun);
		}
		break;
	case UDPW_CANDS:
		if (m->cands.n > UDPW_CANDS_MAX) {
			return -EINVAL;
		}
		if (wr_u8(&w, (uint8_t)m->cands.n)) {
			return -ENOSPC;
		}
		for (unsigned int i = 0; i < m->cands.n && !rc; i++) {
			rc = udpw_addr_wr(&w, &m->cands.a[i]);
		}
		break;
	case UDPW_PING:
	case UDPW_PONG:
		rc = wr_be64(&w, m->stamp) ? -ENOSPC : 0;
		break;
	case UDPW_SYNC:
		rc = wr_be32(&w, m->round) ? -ENOSPC : 0;
		break;
	case UDPW_RESULT:
		if (wr_u8(&w, m->result.direct ? 1 : 0)) {
			return -ENOSPC;
		}
		if (m->result.direct) {
			rc = udpw_addr_wr(&w, &m->result.peer);
		}
		if (!rc) {
			rc = udpw_text_wr(&w, m->result.reason, UDPW_REASON_MAX);
		}
		break;
	case UDPW_DATA:
		if (m->data.len > UDPW_DATA_MAX) {
			return -EINVAL;
		}
		if (wr_be32(&w, m->data.flow) ||
		    (m->data.len && wr_bytes(&w, m->data.data, m->data.len))) {
			return -ENOSPC;
		}
		break;
	case UDPW_ERROR: {
		size_t l = strlen(m->error);

		if (l > UDPW_REASON_MAX || !udpw_text_ok((const uint8_t *)m->error, l)) {
			return -EINVAL;
		}
		rc = wr_bytes(&w, m->error, l) ? -ENOSPC : 0;
		break;
	}
	default:
		return -EINVAL;
	}
	if (rc) {
		return rc;
	}
	blen = (size_t)(w.p - (buf + UDPW_HDR_LEN));
	buf[0] = m->type;
	buf[1] = (uint8_t)(blen >> 8);
	buf[2] = (uint8_t)blen;
	*n = UDPW_HDR_LEN + blen;
	return 0;
}

void udpw_data_hdr_build(uint8_t hdr[UDPW_HDR_LEN + 4], uint32_t flow, size_t len)
{
	size_t blen = len + 4;

	hdr[0] = UDPW_DATA;
	hdr[1] = (uint8_t)(blen >> 8);
	hdr[2] = (uint8_t)blen;
	hdr[3] = (uint8_t)(flow >> 24);
	hdr[4] = (uint8_t)(flow >> 16);
	hdr[5] = (uint8_t)(flow >> 8);
	hdr[6] = (uint8_t)flow;
}

bool udpw_dgram_is(const uint8_t *buf, size_t len)
{
	return len >= 4 && buf[0] == 0x0d && buf[1] == 0x4e && buf[2] == 0x58 && buf[3] == 0x44;
}

int udpw_dgram_parse(const uint8_t *buf, size_t len, struct udpw_dgram *d)
{
	uint32_t magic = 0, hi = 0, lo = 0;
	struct rd r;

	rd_init(&r, buf, len);
	if (len < UDPW_DGRAM_HDR_LEN + UDPW_DGRAM_TAG_LEN) {
		return -NATX_E_PROTO;
	}
	/* the length check above makes every header read succeed */
	rd_be32(&r, &magic);
	rd_copy(&r, d->sid, UDPW_SID_LEN);
	rd_be32(&r, &d->flow);
	rd_be32(&r, &hi);
	rd_be32(&r, &lo);
	if (magic != UDPW_DGRAM_MAGIC) {
		return -NATX_E_PROTO;
	}
	d->seq = (uint64_t)hi << 32 | lo;
	d->sealed_len = rd_left(&r);
	return rd_bytes(&r, d->sealed_len, &d->sealed) ? -NATX_E_PROTO : 0;
}

void udpw_dgram_hdr_build(uint8_t hdr[UDPW_DGRAM_HDR_LEN], const uint8_t sid[UDPW_SID_LEN],
			  uint32_t flow, uint64_t seq)
{
	struct wr w;

	wr_init(&w, hdr, UDPW_DGRAM_HDR_LEN);
	wr_be32(&w, UDPW_DGRAM_MAGIC);
	wr_bytes(&w, sid, UDPW_SID_LEN);
	wr_be32(&w, flow);
	wr_be64(&w, seq);
}

void udpw_addr_fmt(const struct udpw_addr *a, char *out, size_t cap)
{
	char ip[INET6_ADDRSTRLEN] = "?";

	inet_ntop(a->family == 4 ? AF_INET : AF_INET6, a->addr, ip, sizeof(ip));
	snprintf(out, cap, a->family == 4 ? "%s:%u" : "[%s]:%u", ip, (unsigned int)a->port);
}

const char *udpw_type_name(uint8_t type)
{
	static const char *const names[] = { "?",    "HELLO",  "CANDS", "PING", "PONG",
					     "SYNC", "RESULT", "DATA",	"ERROR" };

	return type < sizeof(names) / sizeof(names[0]) ? names[type] : "?";
}
