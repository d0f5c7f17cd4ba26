// SPDX-License-Identifier: MIT
/* STUN parsing and building: see stun_msg.h and stun_wire.h. */
#include <errno.h>
#include <string.h>

#include "natx/err.h"
#include "natx/rd.h"
#include "stun_crc32_table.h"
#include "stun_msg.h"

uint32_t stun_crc32(const uint8_t *buf, size_t len)
{
	uint32_t crc = 0xffffffff;

	for (size_t i = 0; i < len; i++) {
		crc = stun_crc32_table[(crc ^ buf[i]) & 0xff] ^ (crc >> 8);
	}
	return ~crc;
}

/*
 * stun_addr_decode - decode a (XOR-)MAPPED-ADDRESS value of @len bytes. @xor selects the XOR
 * form, whose key is the cookie (port, IPv4) or cookie || transaction id (IPv6).
 */
static int stun_addr_decode(struct stun_addr *a, const uint8_t *v, size_t len, bool xor,
			    const uint8_t txid[STUN_TXID_LEN])
{
	uint8_t key[16] = { 0x21, 0x12, 0xa4, 0x42 };
	uint8_t zero, family;
	uint16_t port;
	size_t alen;
	struct rd r;

	rd_init(&r, v, len);
	if (rd_u8(&r, &zero) || rd_u8(&r, &family) || rd_be16(&r, &port)) {
		return -NATX_E_PROTO;
	}
	if (family == STUN_FAMILY_IPV4) {
		alen = 4;
	} else if (family == STUN_FAMILY_IPV6) {
		alen = 16;
	} else {
		return -NATX_E_PROTO;
	}
	if (rd_left(&r) != alen || rd_copy(&r, a->addr, alen)) {
		return -NATX_E_PROTO;
	}
	memcpy(key + 4, txid, STUN_TXID_LEN);
	a->family = family;
	a->port = xor? (uint16_t)(port ^ (STUN_MAGIC_COOKIE >> 16)) : port;
	if (xor) {
		for (size_t i = 0; i < alen; i++) {
			a->addr[i] ^= key[i];
		}
	}
	return 0;
}

int stun_msg_parse(struct stun_msg *m, const uint8_t *buf, size_t len)
{
	uint32_t cookie, fp;
	struct rd r;
	int err;

	memset(m, 0, sizeof(*m));
	if (len < 1 || (buf[0] & 0xc0)) {
		return -ENOMSG;
	}
	rd_init(&r, buf, len);
	if (rd_be16(&r, &m->type) || rd_be16(&r, &m->len) || rd_be32(&r, &cookie) ||
	    rd_copy(&r, m->txid, STUN_TXID_LEN)) {
		return -NATX_E_PROTO;
	}
	if (cookie != STUN_MAGIC_COOKIE || (m->len & 3) || rd_left(&r) != m->len) {
		return -NATX_E_PROTO;
	}
	while (rd_left(&r)) {
		size_t at = (size_t)(r.p - buf), pad;
		uint16_t atype, alen;
		const uint8_t *val, *skip;

		if (m->fingerprint) {
			return -NATX_E_PROTO; /* FINGERPRINT must be last */
		}
		if (rd_be16(&r, &atype) || rd_be16(&r, &alen) || rd_bytes(&r, alen, &val)) {
			return -NATX_E_PROTO;
		}
		pad = (4 - (alen & 3)) & 3;
		if (rd_bytes(&r, pad, &skip)) {
			return -NATX_E_PROTO;
		}
		switch (atype) {
		case STUN_ATTR_FINGERPRINT: {
			struct rd fr;

			rd_init(&fr, val, alen);
			if (alen != 4 || rd_be32(&fr, &fp) ||
			    (stun_crc32(buf, at) ^ STUN_FINGERPRINT_XOR) != fp) {
				return -NATX_E_PROTO;
			}
			m->fingerprint = true;
			continue;
		}
		case STUN_ATTR_XOR_MAPPED_ADDRESS:
		case STUN_ATTR_MAPPED_ADDRESS:
			if (m->type == STUN_BINDING_SUCCESS) {
				bool x = atype == STUN_ATTR_XOR_MAPPED_ADDRESS;

				err = stun_addr_decode(x ? &m->xor_mapped : &m->mapped, val, alen,
						       x, m->txid);
				if (err) {
					return err;
				}
				*(x ? &m->has_xor_mapped : &m->has_mapped) = true;
				continue;
			}
			break;
		default:
			break;
		}
		if (atype < STUN_ATTR_OPTIONAL_MIN) {
			if (m->n_unknown < STUN_UNKNOWN_MAX) {
				m->unknown[m->n_unknown] = atype;
			}
			m->n_unknown++;
		}
	}
	return 0;
}

enum stun_verdict stun_request_judge(const struct stun_msg *m)
{
	if (m->type != STUN_BINDING_REQUEST) {
		return STUN_V_IGNORE;
	}
	return m->n_unknown ? STUN_V_UNKNOWN : STUN_V_ANSWER;
}

/* stun_hdr_put - message header with a placeholder length, patched by stun_finish(). */
static int stun_hdr_put(struct wr *w, uint16_t type, const uint8_t txid[STUN_TXID_LEN])
{
	int err = wr_be16(w, type);

	err = err ? err : wr_be16(w, 0);
	err = err ? err : wr_be32(w, STUN_MAGIC_COOKIE);
	return err ? err : wr_bytes(w, txid, STUN_TXID_LEN);
}

/* stun_finish - set the length, append FINGERPRINT when asked, report the total size. */
static int stun_finish(uint8_t *out, struct wr *w, bool fingerprint, size_t *n)
{
	size_t len = (size_t)(w->p - out);
	size_t total = len + (fingerprint ? STUN_FINGERPRINT_LEN : 0);
	int err;

	out[2] = (uint8_t)((total - STUN_HDR_LEN) >> 8);
	out[3] = (uint8_t)(total - STUN_HDR_LEN);
	if (fingerprint) {
		err = wr_be16(w, STUN_ATTR_FINGERPRINT);
		err = err ? err : wr_be16(w, 4);
		err = err ? err : wr_be32(w, stun_crc32(out, len) ^ STUN_FINGERPRINT_XOR);
		if (err) {
			return err;
		}
	}
	*n = total;
	return 0;
}

static int stun_addr_put(struct wr *w, uint16_t type, const struct stun_addr *a, bool xor,
			 const uint8_t txid[STUN_TXID_LEN])
{
	uint8_t key[16] = { 0x21, 0x12, 0xa4, 0x42 }, addr[16];
	size_t alen = a->family == STUN_FAMILY_IPV6 ? 16 : 4;
	int err;

	memcpy(key + 4, txid, STUN_TXID_LEN);
	for (size_t i = 0; i < alen; i++) {
		addr[i] = xor? a->addr[i] ^ key[i] : a->addr[i];
	}
	err = wr_be16(w, type);
	err = err ? err : wr_be16(w, (uint16_t)(4 + alen));
	err = err ? err : wr_u8(w, 0);
	err = err ? err : wr_u8(w, alen == 16 ? STUN_FAMILY_IPV6 : STUN_FAMILY_IPV4);
	err = err ? err :
		    wr_be16(w, xor? (uint16_t)(a->port ^ (STUN_MAGIC_COOKIE >> 16)) : a->port);
	return err ? err : wr_bytes(w, addr, alen);
}

int stun_binding_success_build(uint8_t *out, size_t cap, size_t *n, const struct stun_msg *req,
			       const struct stun_addr *src)
{
	struct wr w;
	int err;

	wr_init(&w, out, cap);
	err = stun_hdr_put(&w, STUN_BINDING_SUCCESS, req->txid);
	err = err ? err : stun_addr_put(&w, STUN_ATTR_XOR_MAPPED_ADDRESS, src, true, req->txid);
	err = err ? err : stun_addr_put(&w, STUN_ATTR_MAPPED_ADDRESS, src, false, req->txid);
	return err ? err : stun_finish(out, &w, req->fingerprint, n);
}

int stun_unknown_attr_build(uint8_t *out, size_t cap, size_t *n, const struct stun_msg *req)
{
	static const char reason[] = "Unknown Attribute"; /* 17 bytes, padded to 20 */
	unsigned int k = req->n_unknown < STUN_UNKNOWN_MAX ? req->n_unknown : STUN_UNKNOWN_MAX;
	static const uint8_t zeros[4];
	struct wr w;
	int err;

	wr_init(&w, out, cap);
	err = stun_hdr_put(&w, STUN_BINDING_ERROR, req->txid);
	err = err ? err : wr_be16(&w, STUN_ATTR_ERROR_CODE);
	err = err ? err : wr_be16(&w, (uint16_t)(4 + sizeof(reason) - 1));
	err = err ? err : wr_be16(&w, 0);
	err = err ? err : wr_u8(&w, 4); /* class 4xx */
	err = err ? err : wr_u8(&w, 20); /* number: 420 */
	err = err ? err : wr_bytes(&w, reason, sizeof(reason) - 1);
	err = err ? err : wr_bytes(&w, zeros, (4 - ((sizeof(reason) - 1) & 3)) & 3);
	err = err ? err : wr_be16(&w, STUN_ATTR_UNKNOWN_ATTRIBUTES);
	err = err ? err : wr_be16(&w, (uint16_t)(2 * k));
	for (unsigned int i = 0; !err && i < k; i++) {
		err = wr_be16(&w, req->unknown[i]);
	}
	err = err ? err : wr_bytes(&w, zeros, (2 * k) & 2);
	return err ? err : stun_finish(out, &w, req->fingerprint, n);
}

int stun_binding_request_build(uint8_t *out, size_t cap, size_t *n,
			       const uint8_t txid[STUN_TXID_LEN], bool fingerprint)
{
	struct wr w;
	int err;

	wr_init(&w, out, cap);
	err = stun_hdr_put(&w, STUN_BINDING_REQUEST, txid);
	return err ? err : stun_finish(out, &w, fingerprint, n);
}
