// SPDX-License-Identifier: MIT
/*
 * multiaddr.c - table-driven multiaddr codec (see multiaddr.h). Every binary read goes through
 * struct rd; text is parsed component by component between '/' separators.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "natx/err.h"
#include "natx/rd.h"
#include "multiaddr.h"

enum ma_kind {
	MAK_NONE, /* no value */
	MAK_IP4, /* 4 bytes */
	MAK_IP6, /* 16 bytes */
	MAK_PORT, /* 2 bytes big-endian */
	MAK_TEXT, /* uvarint length + UTF-8 host/zone name */
	MAK_PEER, /* uvarint length + peer ID multihash */
};

struct ma_proto {
	uint32_t code;
	const char *name;
	enum ma_kind kind;
};

static const struct ma_proto ma_protos[] = {
	{ MA_IP4, "ip4", MAK_IP4 },	     { MA_TCP, "tcp", MAK_PORT },
	{ MA_UDP, "udp", MAK_PORT },	     { MA_IP6, "ip6", MAK_IP6 },
	{ MA_IP6ZONE, "ip6zone", MAK_TEXT }, { MA_DNS, "dns", MAK_TEXT },
	{ MA_DNS4, "dns4", MAK_TEXT },	     { MA_DNS6, "dns6", MAK_TEXT },
	{ MA_DNSADDR, "dnsaddr", MAK_TEXT }, { MA_P2P_CIRCUIT, "p2p-circuit", MAK_NONE },
	{ MA_P2P, "p2p", MAK_PEER },	     { MA_QUIC, "quic", MAK_NONE },
	{ MA_QUIC_V1, "quic-v1", MAK_NONE },
};

static const struct ma_proto *ma_by_code(uint64_t code)
{
	for (size_t i = 0; i < sizeof(ma_protos) / sizeof(ma_protos[0]); i++) {
		if (ma_protos[i].code == code) {
			return &ma_protos[i];
		}
	}
	return NULL;
}

static const struct ma_proto *ma_by_name(const char *s, size_t n)
{
	if (n == 4 && !memcmp(s, "ipfs", 4)) {
		return ma_by_code(MA_P2P);
	}
	for (size_t i = 0; i < sizeof(ma_protos) / sizeof(ma_protos[0]); i++) {
		if (strlen(ma_protos[i].name) == n && !memcmp(ma_protos[i].name, s, n)) {
			return &ma_protos[i];
		}
	}
	return NULL;
}

/* ma_text_ok - a host/zone value: non-empty, bounded, printable, and free of '/'. */
static bool ma_text_ok(const uint8_t *s, size_t n)
{
	if (n == 0 || n > MADDR_DNS_MAX) {
		return false;
	}
	for (size_t i = 0; i < n; i++) {
		if (s[i] == '/' || s[i] < 0x21 || s[i] == 0x7f) {
			return false;
		}
	}
	return true;
}

/* ma_value_read - read and check one binary value of @p; @v and @vlen borrow it from @r. */
static int ma_value_read(struct rd *r, const struct ma_proto *p, const uint8_t **v, size_t *vlen)
{
	uint64_t n;
	struct peer_id id;

	switch (p->kind) {
	case MAK_NONE:
		*vlen = 0;
		*v = r->p;
		return 0;
	case MAK_IP4:
		*vlen = 4;
		return rd_bytes(r, 4, v);
	case MAK_IP6:
		*vlen = 16;
		return rd_bytes(r, 16, v);
	case MAK_PORT:
		*vlen = 2;
		return rd_bytes(r, 2, v);
	case MAK_TEXT:
	case MAK_PEER:
		if (rd_uvarint(r, &n) || n > rd_left(r)) {
			return -NATX_E_PROTO;
		}
		*vlen = (size_t)n;
		rd_bytes(r, *vlen, v);
		if (p->kind == MAK_TEXT) {
			return ma_text_ok(*v, *vlen) ? 0 : -NATX_E_PROTO;
		}
		return peerid_from_bytes(&id, *v, *vlen);
	}
	return -NATX_E_PROTO;
}

int maddr_validate(const uint8_t *b, size_t len)
{
	struct rd r;

	if (len == 0 || len > MADDR_MAX_LEN) {
		return len ? -NATX_E_TOO_BIG : -NATX_E_PROTO;
	}
	rd_init(&r, b, len);
	while (rd_left(&r)) {
		const struct ma_proto *p;
		const uint8_t *v;
		uint64_t code;
		size_t vlen;
		int err;

		if (rd_uvarint(&r, &code)) {
			return -NATX_E_PROTO;
		}
		p = ma_by_code(code);
		if (!p) {
			return -EPROTONOSUPPORT;
		}
		err = ma_value_read(&r, p, &v, &vlen);
		if (err) {
			return err;
		}
	}
	return 0;
}

/* ma_value_write - parse the text value @s/@n of @p and append its binary form. */
static int ma_value_write(struct wr *w, const struct ma_proto *p, const char *s, size_t n)
{
	char tmp[INET6_ADDRSTRLEN + 1];
	uint8_t addr[16];
	struct peer_id id;
	char *end;
	unsigned long port;

	switch (p->kind) {
	case MAK_NONE:
		return 0;
	case MAK_IP4:
	case MAK_IP6:
		if (n >= sizeof(tmp)) {
			return -NATX_E_PROTO;
		}
		memcpy(tmp, s, n);
		tmp[n] = '\0';
		if (inet_pton(p->kind == MAK_IP4 ? AF_INET : AF_INET6, tmp, addr) != 1) {
			return -NATX_E_PROTO;
		}
		return wr_bytes(w, addr, p->kind == MAK_IP4 ? 4 : 16);
	case MAK_PORT:
		if (n == 0 || n > 5 || s[0] < '0' || s[0] > '9') {
			return -NATX_E_PROTO;
		}
		memcpy(tmp, s, n);
		tmp[n] = '\0';
		port = strtoul(tmp, &end, 10);
		if (*end || port > 65535) {
			return -NATX_E_PROTO;
		}
		return wr_be16(w, (uint16_t)port);
	case MAK_TEXT:
		if (!ma_text_ok((const uint8_t *)s, n)) {
			return -NATX_E_PROTO;
		}
		return wr_uvarint(w, n) ?: wr_bytes(w, s, n);
	case MAK_PEER:
		if (peerid_from_text(&id, s, n)) {
			return -NATX_E_PROTO;
		}
		return wr_uvarint(w, id.len) ?: wr_bytes(w, id.b, id.len);
	}
	return -NATX_E_PROTO;
}

int maddr_from_text(const char *s, uint8_t *out, size_t cap, size_t *len)
{
	size_t slen = strnlen(s, MADDR_TEXT_MAX + 1);
	const char *p = s, *end = s + slen;
	struct wr w;

	if (slen > MADDR_TEXT_MAX) {
		return -NATX_E_TOO_BIG;
	}
	if (slen < 2 || s[0] != '/') {
		return -NATX_E_PROTO;
	}
	wr_init(&w, out, cap < MADDR_MAX_LEN ? cap : MADDR_MAX_LEN);
	while (p < end) {
		const struct ma_proto *mp;
		const char *name, *val = NULL;
		size_t nlen, vlen = 0;
		int err;

		if (*p != '/') {
			return -NATX_E_PROTO;
		}
		name = ++p;
		while (p < end && *p != '/') {
			p++;
		}
		nlen = (size_t)(p - name);
		if (nlen == 0) {
			/* a single trailing '/' is tolerated, as go and js do */
			if (p == end && w.p != out) {
				break;
			}
			return -NATX_E_PROTO;
		}
		mp = ma_by_name(name, nlen);
		if (!mp) {
			return -EPROTONOSUPPORT;
		}
		if (mp->kind != MAK_NONE) {
			if (p == end) {
				return -NATX_E_PROTO;
			}
			val = ++p;
			while (p < end && *p != '/') {
				p++;
			}
			vlen = (size_t)(p - val);
		}
		err = wr_uvarint(&w, mp->code);
		if (!err) {
			err = ma_value_write(&w, mp, val, vlen);
		}
		if (err) {
			return err;
		}
	}
	*len = (size_t)(w.p - out);
	return 0;
}

int maddr_to_text(const uint8_t *b, size_t len, char *out, size_t cap)
{
	size_t o = 0;
	struct rd r;
	int err = maddr_validate(b, len);

	if (err) {
		return err;
	}
	rd_init(&r, b, len);
	while (rd_left(&r)) {
		char val[MADDR_DNS_MAX + 1 > INET6_ADDRSTRLEN ? MADDR_DNS_MAX + 1 :
								INET6_ADDRSTRLEN];
		const struct ma_proto *p;
		const uint8_t *v;
		uint64_t code = 0;
		size_t vlen;
		struct peer_id id;
		int n;

		rd_uvarint(&r, &code);
		p = ma_by_code(code);
		ma_value_read(&r, p, &v, &vlen);
		switch (p->kind) {
		case MAK_NONE:
			val[0] = '\0';
			break;
		case MAK_IP4:
		case MAK_IP6:
			inet_ntop(p->kind == MAK_IP4 ? AF_INET : AF_INET6, v, val, sizeof(val));
			break;
		case MAK_PORT:
			snprintf(val, sizeof(val), "%u", (unsigned int)(v[0] << 8 | v[1]));
			break;
		case MAK_TEXT:
			memcpy(val, v, vlen);
			val[vlen] = '\0';
			break;
		case MAK_PEER:
			peerid_from_bytes(&id, v, vlen);
			if (peerid_to_text(&id, val, sizeof(val)) < 0) {
				return -NATX_E_TOO_BIG;
			}
			break;
		}
		n = snprintf(out + o, cap - o, p->kind == MAK_NONE ? "/%s" : "/%s/%s", p->name,
			     val);
		if (n < 0 || (size_t)n >= cap - o) {
			return -NATX_E_TOO_BIG;
		}
		o += (size_t)n;
	}
	return (int)o;
}

int maddr_from_sockaddr(const struct sockaddr *sa, uint8_t *out, size_t cap, size_t *len)
{
	struct wr w;
	int err;

	wr_init(&w, out, cap);
	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *in = (const struct sockaddr_in *)sa;

		err = wr_u8(&w, MA_IP4) ?: wr_bytes(&w, &in->sin_addr, 4);
		err = err ?: wr_u8(&w, MA_TCP) ?: wr_be16(&w, ntohs(in->sin_port));
	} else if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;

		err = wr_u8(&w, MA_IP6) ?: wr_bytes(&w, &in6->sin6_addr, 16);
		err = err ?: wr_u8(&w, MA_TCP) ?: wr_be16(&w, ntohs(in6->sin6_port));
	} else {
		return -EAFNOSUPPORT;
	}
	if (err) {
		return err;
	}
	*len = (size_t)(w.p - out);
	return 0;
}

int maddr_to_sockaddr(const uint8_t *b, size_t len, struct sockaddr_storage *ss, struct peer_id *id,
		      int *has_id)
{
	const uint8_t *ip = NULL, *port = NULL;
	uint64_t family = 0;
	struct rd r;
	int err = maddr_validate(b, len);

	if (err) {
		return err;
	}
	*has_id = 0;
	rd_init(&r, b, len);
	for (int i = 0; rd_left(&r); i++) {
		const struct ma_proto *p;
		const uint8_t *v;
		uint64_t code = 0;
		size_t vlen;

		rd_uvarint(&r, &code);
		p = ma_by_code(code);
		ma_value_read(&r, p, &v, &vlen);
		if (i == 0 && (code == MA_IP4 || code == MA_IP6)) {
			family = code;
			ip = v;
		} else if (i == 1 && code == MA_TCP) {
			port = v;
		} else if (i == 2 && code == MA_P2P) {
			if (id) {
				peerid_from_bytes(id, v, vlen);
			}
			*has_id = 1;
		} else {
			return -EAFNOSUPPORT;
		}
	}
	if (!ip || !port) {
		return -EAFNOSUPPORT;
	}
	memset(ss, 0, sizeof(*ss));
	if (family == MA_IP4) {
		struct sockaddr_in *in = (struct sockaddr_in *)ss;

		in->sin_family = AF_INET;
		memcpy(&in->sin_addr, ip, 4);
		in->sin_port = htons((uint16_t)(port[0] << 8 | port[1]));
	} else {
		struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;

		in6->sin6_family = AF_INET6;
		memcpy(&in6->sin6_addr, ip, 16);
		in6->sin6_port = htons((uint16_t)(port[0] << 8 | port[1]));
	}
	return 0;
}
