/* SPDX-License-Identifier: MIT */
/*
 * Bounds-checked cursors for parsing and building wire formats (style.md rule 9).
 *
 * struct rd reads from [p, end); every read returns 0 or -NATX_E_PROTO and never moves past
 * end. struct wr writes into [p, end) and returns -NATX_E_TOO_BIG when out of room. No parser
 * in natx does pointer arithmetic on network bytes outside these helpers.
 */
#ifndef NATX_RD_H
#define NATX_RD_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "natx/err.h"

struct rd {
	const uint8_t *p; /* next byte to read */
	const uint8_t *end; /* one past the last readable byte */
};

struct wr {
	uint8_t *p; /* next byte to write */
	uint8_t *end; /* one past the last writable byte */
};

static inline void rd_init(struct rd *r, const void *buf, size_t len)
{
	r->p = buf;
	r->end = r->p + len;
}

static inline size_t rd_left(const struct rd *r)
{
	return (size_t)(r->end - r->p);
}

static inline int rd_u8(struct rd *r, uint8_t *v)
{
	if (rd_left(r) < 1) {
		return -NATX_E_PROTO;
	}
	*v = *r->p++;
	return 0;
}

static inline int rd_be16(struct rd *r, uint16_t *v)
{
	if (rd_left(r) < 2) {
		return -NATX_E_PROTO;
	}
	*v = (uint16_t)(r->p[0] << 8 | r->p[1]);
	r->p += 2;
	return 0;
}

static inline int rd_be32(struct rd *r, uint32_t *v)
{
	if (rd_left(r) < 4) {
		return -NATX_E_PROTO;
	}
	*v = (uint32_t)r->p[0] << 24 | (uint32_t)r->p[1] << 16 | (uint32_t)r->p[2] << 8 |
	     (uint32_t)r->p[3];
	r->p += 4;
	return 0;
}

static inline int rd_be64(struct rd *r, uint64_t *v)
{
	uint32_t hi, lo;

	if (rd_left(r) < 8) {
		return -NATX_E_PROTO;
	}
	rd_be32(r, &hi);
	rd_be32(r, &lo);
	*v = (uint64_t)hi << 32 | lo;
	return 0;
}

/* rd_bytes - borrow @len bytes in place: *out points into the buffer being read. */
static inline int rd_bytes(struct rd *r, size_t len, const uint8_t **out)
{
	if (rd_left(r) < len) {
		return -NATX_E_PROTO;
	}
	*out = r->p;
	r->p += len;
	return 0;
}

static inline int rd_copy(struct rd *r, void *dst, size_t len)
{
	const uint8_t *src;
	int err = rd_bytes(r, len, &src);

	if (!err) {
		memcpy(dst, src, len);
	}
	return err;
}

/* rd_uvarint - unsigned LEB128 as used by multiformats: at most 9 bytes, minimal encoding. */
static inline int rd_uvarint(struct rd *r, uint64_t *v)
{
	uint64_t x = 0;
	unsigned int shift = 0;

	for (int i = 0; i < 9; i++) {
		uint8_t b;

		if (rd_u8(r, &b)) {
			return -NATX_E_PROTO;
		}
		x |= (uint64_t)(b & 0x7f) << shift;
		if (!(b & 0x80)) {
			if (b == 0 && i > 0) {
				return -NATX_E_PROTO; /* not minimal */
			}
			*v = x;
			return 0;
		}
		shift += 7;
	}
	return -NATX_E_PROTO;
}

static inline void wr_init(struct wr *w, void *buf, size_t len)
{
	w->p = buf;
	w->end = w->p + len;
}

static inline size_t wr_left(const struct wr *w)
{
	return (size_t)(w->end - w->p);
}

static inline int wr_bytes(struct wr *w, const void *src, size_t len)
{
	if (wr_left(w) < len) {
		return -NATX_E_TOO_BIG;
	}
	memcpy(w->p, src, len);
	w->p += len;
	return 0;
}

static inline int wr_u8(struct wr *w, uint8_t v)
{
	return wr_bytes(w, &v, 1);
}

static inline int wr_be16(struct wr *w, uint16_t v)
{
	uint8_t b[2] = { (uint8_t)(v >> 8), (uint8_t)v };

	return wr_bytes(w, b, 2);
}

static inline int wr_be32(struct wr *w, uint32_t v)
{
	uint8_t b[4] = { (uint8_t)(v >> 24), (uint8_t)(v >> 16), (uint8_t)(v >> 8), (uint8_t)v };

	return wr_bytes(w, b, 4);
}

static inline int wr_be64(struct wr *w, uint64_t v)
{
	int err = wr_be32(w, (uint32_t)(v >> 32));

	return err ? err : wr_be32(w, (uint32_t)v);
}

static inline int wr_uvarint(struct wr *w, uint64_t v)
{
	do {
		uint8_t b = v & 0x7f;

		v >>= 7;
		if (v) {
			b |= 0x80;
		}
		if (wr_u8(w, b)) {
			return -NATX_E_TOO_BIG;
		}
	} while (v);
	return 0;
}

#endif
