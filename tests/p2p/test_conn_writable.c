// SPDX-License-Identifier: MIT
/*
 * on_stream_writable for a lazily negotiated outbound stream (regression). Data may be written
 * to an outbound stream before the listener echoes the protocol (lazy multistream-select), so
 * a write that stopped on a full output buffer or an exhausted yamux window must be resumed by
 * on_stream_writable even when the echo has not arrived yet. conn.c used to drop the callback
 * for streams that were not negotiated, and a writer that resumes only from
 * on_stream_writable then stalled (the bridge in engine/core/p2p_bridge.c worked around it
 * from on_stream_open). Two p2p_conn in one process, deterministic RNG, fake clock.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "conn.h"
#include "p2p/t_p2p.h"

#define PROTO "/natx/test-lazy/1.0.0"

enum { W_TOTAL = 3 * 1024 * 1024 + 12345, W_CHUNK = 48 * 1024, W_PERIOD = 65521 };

static int64_t fake_now(struct p2p_clock *c)
{
	return 1000;
}

static struct p2p_clock fake_clock = { fake_now };

struct w_rng {
	struct p2p_rng rng;
	uint64_t state;
};

static void w_fill(struct p2p_rng *r, void *buf, size_t len)
{
	t_rng_fill(&((struct w_rng *)r)->state, buf, len);
}

struct w_node {
	struct p2p_identity idn;
	struct p2p_host host;
	struct w_rng rng;
	struct p2p_conn *c;
	const char *protos[1];
	struct p2p_stream *s;
	int established, opened, writable_calls, writable_before_open;
	bool writable;
	uint64_t got, bad;
};

static uint8_t w_pat(uint64_t i)
{
	i %= W_PERIOD;
	return (uint8_t)(i * 7 + (i >> 9));
}

static void w_on_established(void *ctx, struct p2p_conn *c)
{
	((struct w_node *)ctx)->established++;
}

static void w_on_open(void *ctx, struct p2p_stream *s, const char *protocol)
{
	struct w_node *n = ctx;

	/* Deliberately no write from here: only on_stream_writable resumes the writer. */
	n->opened++;
	n->s = s;
}

static void w_on_data(void *ctx, struct p2p_stream *s, const uint8_t *p, size_t len)
{
	struct w_node *n = ctx;

	for (size_t i = 0; i < len; i++) {
		n->bad += p[i] != w_pat(n->got + i);
	}
	n->got += len;
}

static void w_on_writable(void *ctx, struct p2p_stream *s)
{
	struct w_node *n = ctx;

	n->writable_calls++;
	n->writable_before_open += !n->opened;
	n->writable = true;
}

static const struct p2p_conn_ops w_ops = {
	.on_established = w_on_established,
	.on_stream_open = w_on_open,
	.on_stream_data = w_on_data,
	.on_stream_writable = w_on_writable,
};

static void w_node_init(struct w_node *n, uint64_t seed, size_t out_cap)
{
	uint8_t key[32];

	memset(n, 0, sizeof(*n));
	n->rng.rng.fill = w_fill;
	n->rng.state = seed;
	w_fill(&n->rng.rng, key, sizeof(key));
	p2p_identity_from_seed(&n->idn, key);
	n->protos[0] = PROTO;
	n->host = (struct p2p_host){
		.idn = &n->idn,
		.protocols = n->protos,
		.n_protocols = 1,
		.clock = &fake_clock,
		.rng = &n->rng.rng,
		.out_cap = out_cap,
		.no_identify = true,
	};
}

/* w_move - hand what @from has queued to @to; 1 when bytes moved, 0 when none, <0 error. */
static int w_move(struct w_node *from, struct w_node *to)
{
	const uint8_t *p;
	size_t len;
	uint8_t *copy;
	int err;

	p2p_conn_out_peek(from->c, &p, &len);
	if (!len) {
		return 0;
	}
	copy = malloc(len);
	cr_assert_not_null(copy);
	memcpy(copy, p, len);
	p2p_conn_out_advance(from->c, len);
	err = p2p_conn_consume(to->c, copy, len);
	free(copy);
	return err ? err : 1;
}

/* w_write - write the pattern while the stream takes it; clears n->writable when it stops. */
static void w_write(struct w_node *n, const uint8_t *src, uint64_t *sent)
{
	while (n->writable && *sent < W_TOTAL) {
		size_t want = W_TOTAL - *sent < W_CHUNK ? (size_t)(W_TOTAL - *sent) : W_CHUNK;
		long w = p2p_stream_write(n->s, src + *sent % W_PERIOD, want);

		cr_assert_geq(w, 0, "write: %ld", w);
		if (!w) {
			n->writable = false;
			break;
		}
		*sent += (uint64_t)w;
	}
}

Test(conn_writable, lazy_stream_blocked_before_the_echo_is_resumed_by_on_stream_writable)
{
	struct w_node d, l;
	uint8_t *src = malloc(W_PERIOD + W_CHUNK);
	uint64_t sent = 0;
	int err, r1 = 1, r2 = 1;

	cr_assert_not_null(src);
	for (size_t i = 0; i < W_PERIOD + W_CHUNK; i++) {
		src[i] = w_pat(i);
	}
	/* The smallest output buffer: it fills (~128 KiB of data) before the 256 KiB window. */
	w_node_init(&d, 1, 2 * P2P_OUT_HEADROOM);
	w_node_init(&l, 2, 0);
	d.c = p2p_conn_new(&d.host, true, &l.idn.id, &w_ops, &d, &err);
	l.c = p2p_conn_new(&l.host, false, NULL, &w_ops, &l, &err);
	cr_assert(d.c && l.c);
	cr_assert_eq(p2p_conn_start(d.c), 0);
	for (int i = 0; i < 100 && (r1 || r2); i++) {
		r1 = w_move(&d, &l);
		r2 = w_move(&l, &d);
		cr_assert(r1 >= 0 && r2 >= 0);
	}
	cr_assert(d.established && l.established);

	/* Lazy open, then write until the output buffer is full: no echo can have arrived. */
	d.s = p2p_stream_open(d.c, PROTO, &err);
	cr_assert_not_null(d.s, "open: %d", err);
	d.writable = true;
	w_write(&d, src, &sent);
	cr_assert_not(d.writable);
	cr_assert(sent > 0 && sent < 256 * 1024, "blocked by the output buffer, not the window");
	cr_assert_eq(d.opened, 0);

	/* The bytes leave (the listener gets them, its answer is held back): room again. */
	cr_assert_eq(w_move(&d, &l), 1);
	cr_assert_eq(d.opened, 0, "the echo was held back");
	cr_assert_eq(d.writable_calls, 1, "room in the output buffer must be announced");
	cr_assert_eq(d.writable_before_open, 1);

	/* From here the writer is driven by on_stream_writable alone, window updates included. */
	for (int i = 0; i < 100000 && l.got < W_TOTAL; i++) {
		w_write(&d, src, &sent);
		r1 = w_move(&d, &l);
		r2 = w_move(&l, &d);
		cr_assert(r1 >= 0 && r2 >= 0);
		if (!r1 && !r2 && !d.writable) {
			break; /* stalled: nobody will resume the writer */
		}
	}
	cr_assert_eq(l.got, W_TOTAL, "delivered %llu of %d (writer stalled)",
		     (unsigned long long)l.got, W_TOTAL);
	cr_assert_eq(l.bad, 0);
	cr_assert_eq(d.opened, 1);
	cr_assert_gt(d.writable_calls, 1);
	p2p_conn_free(d.c);
	p2p_conn_free(l.c);
	p2p_identity_cleanup(&d.idn);
	p2p_identity_cleanup(&l.idn);
	free(src);
}
