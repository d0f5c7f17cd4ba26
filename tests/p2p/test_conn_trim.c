// SPDX-License-Identifier: MIT
/*
 * Idle output buffers give their pages back (p2p_conn_tick -> conn_out_trim): a relay holds one
 * connection per reservation, so an idle connection must not keep its output pages resident.
 * Two p2p_conn in one process (multistream muxer negotiation after Noise, so the setup state is
 * used and freed on the long path), deterministic RNG, fake clock (no keepalive pings). Checked
 * with mincore(): the pages written are resident before and not after the second idle tick, the
 * trim is counted once, and bytes written after it arrive intact.
 */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "conn.h"
#include "p2p/t_p2p.h"

#define PROTO "/natx/test-trim/1.0.0"

enum { TR_BYTES = 200 * 1024, TR_PERIOD = 65521 };

static int64_t tr_now(struct p2p_clock *c)
{
	return 1000;
}

static struct p2p_clock tr_clock = { tr_now };

struct tr_rng {
	struct p2p_rng rng;
	uint64_t state;
};

static void tr_fill(struct p2p_rng *r, void *buf, size_t len)
{
	t_rng_fill(&((struct tr_rng *)r)->state, buf, len);
}

struct tr_node {
	struct p2p_identity idn;
	struct p2p_host host;
	struct tr_rng rng;
	struct p2p_conn *c;
	const char *protos[1];
	struct p2p_stream *s;
	int established;
	uint64_t got, bad;
};

static uint8_t tr_pat(uint64_t i)
{
	i %= TR_PERIOD;
	return (uint8_t)(i * 13 + (i >> 8));
}

static void tr_on_established(void *ctx, struct p2p_conn *c)
{
	((struct tr_node *)ctx)->established++;
}

static void tr_on_open(void *ctx, struct p2p_stream *s, const char *protocol)
{
	((struct tr_node *)ctx)->s = s;
}

static void tr_on_data(void *ctx, struct p2p_stream *s, const uint8_t *p, size_t len)
{
	struct tr_node *n = ctx;

	for (size_t i = 0; i < len; i++) {
		n->bad += p[i] != tr_pat(n->got + i);
	}
	n->got += len;
}

static const struct p2p_conn_ops tr_ops = {
	.on_established = tr_on_established,
	.on_stream_open = tr_on_open,
	.on_stream_data = tr_on_data,
};

static void tr_node_init(struct tr_node *n, uint64_t seed)
{
	uint8_t key[32];

	memset(n, 0, sizeof(*n));
	n->rng.rng.fill = tr_fill;
	n->rng.state = seed;
	tr_fill(&n->rng.rng, key, sizeof(key));
	p2p_identity_from_seed(&n->idn, key);
	n->protos[0] = PROTO;
	n->host = (struct p2p_host){ .idn = &n->idn,
				     .protocols = n->protos,
				     .n_protocols = 1,
				     .clock = &tr_clock,
				     .rng = &n->rng.rng,
				     .no_identify = true };
}

/* tr_move - hand what @from has queued to @to; 1 when bytes moved, 0 when none. */
static int tr_move(struct tr_node *from, struct tr_node *to)
{
	const uint8_t *p;
	size_t len;
	uint8_t *copy;

	p2p_conn_out_peek(from->c, &p, &len);
	if (!len) {
		return 0;
	}
	copy = malloc(len);
	cr_assert_not_null(copy);
	memcpy(copy, p, len);
	p2p_conn_out_advance(from->c, len);
	cr_assert_eq(p2p_conn_consume(to->c, copy, len), 0);
	free(copy);
	return 1;
}

static void tr_pump(struct tr_node *a, struct tr_node *b)
{
	for (int i = 0; i < 1000; i++) {
		int r = tr_move(a, b) | tr_move(b, a);

		if (!r) {
			return;
		}
	}
	cr_assert_fail("the connections kept talking");
}

/* tr_send - write @n pattern bytes from @d (offset @off) and deliver them. */
static void tr_send(struct tr_node *d, struct tr_node *l, uint64_t off, size_t n)
{
	uint8_t *buf = malloc(n);
	size_t done = 0;

	cr_assert_not_null(buf);
	for (size_t i = 0; i < n; i++) {
		buf[i] = tr_pat(off + i);
	}
	for (int i = 0; i < 1000 && done < n; i++) {
		long w = p2p_stream_write(d->s, buf + done, n - done);

		cr_assert_geq(w, 0);
		done += (size_t)w;
		tr_pump(d, l);
	}
	cr_assert_eq(done, n);
	free(buf);
}

/* tr_resident - pages of [@p, @p + @len) that are resident. */
static size_t tr_resident(const uint8_t *p, size_t len)
{
	size_t page = (size_t)sysconf(_SC_PAGESIZE), n = (len + page - 1) / page, k = 0;
	unsigned char *vec = calloc(n, 1);

	cr_assert_not_null(vec);
	cr_assert_eq((uintptr_t)p % page, 0, "the output buffer must be page-aligned");
	cr_assert_eq(mincore((void *)p, len, vec), 0);
	for (size_t i = 0; i < n; i++) {
		k += vec[i] & 1;
	}
	free(vec);
	return k;
}

Test(conn_trim, idle_output_buffer_pages_are_given_back_and_later_bytes_arrive_intact)
{
	struct tr_node d, l;
	const uint8_t *obuf;
	size_t len;
	int err;

	tr_node_init(&d, 11);
	tr_node_init(&l, 12);
	d.c = p2p_conn_new(&d.host, true, &l.idn.id, &tr_ops, &d, &err);
	l.c = p2p_conn_new(&l.host, false, NULL, &tr_ops, &l, &err);
	cr_assert(d.c && l.c);
	cr_assert_eq(p2p_conn_start(d.c), 0);
	tr_pump(&d, &l);
	cr_assert(d.established && l.established);
	d.s = p2p_stream_open(d.c, PROTO, &err);
	cr_assert_not_null(d.s, "open: %d", err);

	/* 200 KiB through d's output buffer: its first pages are written */
	tr_send(&d, &l, 0, TR_BYTES);
	cr_assert_eq(l.got, TR_BYTES);
	cr_assert_eq(l.bad, 0);
	p2p_conn_out_peek(d.c, &obuf, &len);
	cr_assert_eq(len, 0);
	cr_assert_geq(tr_resident(obuf, TR_BYTES), 8, "written output pages are resident");

	/* first tick: output moved since the last one, nothing is trimmed */
	cr_assert_eq(p2p_conn_tick(d.c), 0);
	cr_assert_eq(p2p_conn_stats(d.c)->out_trims, 0);
	cr_assert_geq(tr_resident(obuf, TR_BYTES), 8);
	/* second tick: idle and empty, the pages go back */
	cr_assert_eq(p2p_conn_tick(d.c), 0);
	cr_assert_eq(p2p_conn_stats(d.c)->out_trims, 1);
	cr_assert_eq(tr_resident(obuf, TR_BYTES), 0, "an idle output buffer keeps no page");
	/* nothing written since: no further trim (no syscall per tick for idle connections) */
	cr_assert_eq(p2p_conn_tick(d.c), 0);
	cr_assert_eq(p2p_conn_stats(d.c)->out_trims, 1);

	/* the connection works on: the next bytes arrive intact, both ways */
	tr_send(&d, &l, TR_BYTES, TR_BYTES);
	cr_assert_eq(l.got, 2 * TR_BYTES);
	cr_assert_eq(l.bad, 0);
	cr_assert_not_null(l.s);
	for (uint64_t i = 0; i < 3; i++) {
		cr_assert_eq(p2p_conn_tick(l.c), 0);
	}
	cr_assert_geq(p2p_conn_stats(l.c)->out_trims, 1,
		      "the listener's window updates were trimmed");
	d.got = 0;
	tr_send(&l, &d, 0, 64 * 1024);
	cr_assert_eq(d.got, 64 * 1024);
	cr_assert_eq(d.bad, 0);

	p2p_conn_free(d.c);
	p2p_conn_free(l.c);
	p2p_identity_cleanup(&d.idn);
	p2p_identity_cleanup(&l.idn);
}
