/* SPDX-License-Identifier: MIT */
/*
 * lpm - reader of one length-prefixed ("delimited") protobuf at a time: uvarint(len) || msg, as
 * relay v2 hop/stop, DCUtR and AutoNAT use. It takes exactly the bytes of one message and never
 * more, because after a relay STATUS OK the same stream carries raw circuit bytes.
 */
#ifndef NATX_P2P_LPM_H
#define NATX_P2P_LPM_H

#include <stddef.h>
#include <stdint.h>

enum {
	LPM_MAX = 4096, /* largest message accepted (go's cap for relay, DCUtR, AutoNAT) */
};

/* struct lpm - partial message state; zero-initialize, or lpm_init with a smaller limit. */
struct lpm {
	size_t max; /* message limit (0: LPM_MAX) */
	size_t need; /* body length once the prefix is known, else 0 */
	size_t have; /* bytes in buf */
	uint8_t pre[10]; /* the varint prefix so far */
	size_t pre_len;
	uint8_t buf[LPM_MAX];
};

/* lpm_init - reset with a message limit (<= LPM_MAX). */
void lpm_init(struct lpm *m, size_t max);

/*
 * lpm_feed - take bytes of @p (up to the end of the current message). *@used is how many were
 * taken. Returns 1 with @msg and @len set (valid until the next lpm_* call) when a message is
 * complete, 0 when more bytes are needed, -NATX_E_PROTO for a bad prefix, -NATX_E_TOO_BIG for
 * a length over the limit. After a message the reader is ready for the next one.
 */
int lpm_feed(struct lpm *m, const uint8_t *p, size_t n, size_t *used, const uint8_t **msg,
	     size_t *len);

/* lpm_decode_fn - decode @len bytes into the message struct @dst; 0 or a negative error. */
typedef int (*lpm_decode_fn)(void *dst, const uint8_t *buf, size_t len);

/*
 * lpm_take - the read step the protocol state machines share: lpm_feed, and once a message is
 * complete, decode it with @decode into a new @size-byte allocation. Returns that message (the
 * caller frees it) with *@err 0, or NULL with *@err 0 when more bytes are needed or negative:
 * lpm_feed's error, -ENOMEM, or @decode's. *@used as for lpm_feed: later bytes are not taken.
 */
void *lpm_take(struct lpm *m, const uint8_t *p, size_t n, size_t *used, lpm_decode_fn decode,
	       size_t size, int *err);

/* lpm_frame - write uvarint(@len) into @out (10 bytes); returns the prefix length. */
size_t lpm_frame(uint8_t out[10], size_t len);

#endif
