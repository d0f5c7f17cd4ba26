/* SPDX-License-Identifier: MIT */
/*
 * In-process libp2p network for protocol tests (t_ prefix): nodes with deterministic
 * identities, connections over in-memory pipes, an injected clock, and a pump that moves
 * bytes until every pipe is quiet. Each connection end has a struct t_end given to the
 * connection callbacks; tests hook protocol handling through t_end->node->on_open.
 */
#ifndef T_NET_H
#define T_NET_H

#include <criterion/criterion.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "conn.h"
#include "link.h"
#include "multiaddr.h"
#include "p2p/t_p2p.h"

#define T_ECHO "/natx/test-echo/1.0.0"
#define T_MAX_ENDS 64

static int64_t t_now_ms = 1000;

static inline int64_t t_fake_now(struct p2p_clock *c)
{
	(void)c;
	return t_now_ms;
}

static struct p2p_clock t_clock = { t_fake_now };

/* t_unix - wall clock of the test world */
static inline int64_t t_unix(void *ctx)
{
	(void)ctx;
	return 1700000000 + t_now_ms / 1000;
}

struct t_rng {
	struct p2p_rng rng;
	uint64_t state;
};

static inline void t_fill(struct p2p_rng *r, void *buf, size_t len)
{
	t_rng_fill(&((struct t_rng *)r)->state, buf, len);
}

struct t_node;
struct t_end;

/* struct t_end - one side of a connection (outer or inner over a link). */
struct t_end {
	struct t_node *node;
	struct p2p_conn *c;
	struct t_end *peer; /* other side of an in-memory pipe (NULL for link ends) */
	struct p2p_link *link; /* for inner connections */
	bool relayed;
	int established, identified, identify_err, pings, ping_err, link_down;
	char agent[64];
	/* echo / sink stream state */
	struct p2p_stream *app;
	bool echo;
	uint8_t *pend;
	size_t pend_len;
	bool pend_fin;
	uint64_t rx_bytes, rx_sum;
	int fins, resets;
};

struct t_node {
	struct p2p_identity idn;
	struct p2p_host host;
	struct t_rng rng;
	const char *protos[4];
	/* protocol hook: return true when the stream was taken */
	bool (*on_open)(struct t_node *n, struct t_end *e, struct p2p_stream *s, const char *proto);
	void *user;
};

static struct t_end *t_ends[T_MAX_ENDS];
static size_t t_n_ends;

static inline void t_on_established(void *ctx, struct p2p_conn *c)
{
	((struct t_end *)ctx)->established++;
}

static inline void t_on_identify(void *ctx, struct p2p_conn *c, const struct identify_record *rec,
				 int err)
{
	struct t_end *e = ctx;

	e->identified++;
	e->identify_err = err;
	if (!err && rec->agent_version) {
		snprintf(e->agent, sizeof(e->agent), "%s", rec->agent_version);
	}
}

static inline void t_on_ping(void *ctx, struct p2p_conn *c, int64_t rtt, int err)
{
	struct t_end *e = ctx;

	e->pings++;
	e->ping_err = err;
}

static inline void t_on_stream_open(void *ctx, struct p2p_stream *s, const char *proto)
{
	struct t_end *e = ctx;

	if (e->node->on_open && e->node->on_open(e->node, e, s, proto)) {
		return;
	}
	if (!strcmp(proto, T_ECHO)) {
		e->app = s;
		if (e->echo) {
			p2p_stream_set_manual_window(s, true);
		}
	}
}

static inline void t_on_stream_data(void *ctx, struct p2p_stream *s, const uint8_t *p, size_t len)
{
	struct t_end *e = ctx;

	e->rx_bytes += len;
	for (size_t i = 0; i < len; i++) {
		e->rx_sum = e->rx_sum * 31 + p[i];
	}
	if (e->echo) {
		long w = e->pend_len ? 0 : p2p_stream_write(s, p, len);

		cr_assert_geq(w, 0);
		p2p_stream_consumed(s, (size_t)w);
		if ((size_t)w < len) {
			e->pend = realloc(e->pend, e->pend_len + len - (size_t)w);
			memcpy(e->pend + e->pend_len, p + w, len - (size_t)w);
			e->pend_len += len - (size_t)w;
		}
	}
}

static inline void t_echo_drain(struct t_end *e)
{
	long w;

	if (!e->echo || !e->pend_len || !e->app) {
		return;
	}
	w = p2p_stream_write(e->app, e->pend, e->pend_len);
	if (w < 0) {
		return;
	}
	p2p_stream_consumed(e->app, (size_t)w);
	memmove(e->pend, e->pend + w, e->pend_len - (size_t)w);
	e->pend_len -= (size_t)w;
	if (!e->pend_len && e->pend_fin) {
		p2p_stream_close(e->app);
	}
}

static inline void t_on_stream_writable(void *ctx, struct p2p_stream *s)
{
	t_echo_drain(ctx);
}

static inline void t_on_stream_fin(void *ctx, struct p2p_stream *s)
{
	struct t_end *e = ctx;

	e->fins++;
	if (e->echo && !e->pend_len) {
		p2p_stream_close(s);
	} else if (e->echo) {
		e->pend_fin = true;
	}
}

static inline void t_on_stream_reset(void *ctx, struct p2p_stream *s, int err)
{
	((struct t_end *)ctx)->resets++;
}

static inline void t_on_stream_close(void *ctx, struct p2p_stream *s)
{
	struct t_end *e = ctx;

	if (e->app == s) {
		e->app = NULL;
	}
}

static const struct p2p_conn_ops t_ops = {
	.on_established = t_on_established,
	.on_stream_open = t_on_stream_open,
	.on_stream_data = t_on_stream_data,
	.on_stream_fin = t_on_stream_fin,
	.on_stream_reset = t_on_stream_reset,
	.on_stream_writable = t_on_stream_writable,
	.on_stream_close = t_on_stream_close,
	.on_identify = t_on_identify,
	.on_ping = t_on_ping,
};

/* t_node_init - a node with a deterministic identity; @protos: NULL-terminated. */
static inline void t_node_init(struct t_node *n, uint64_t seed, const char *const *protos)
{
	uint8_t key[32];
	size_t np = 0;

	memset(n, 0, sizeof(*n));
	n->rng.rng.fill = t_fill;
	n->rng.state = seed;
	t_fill(&n->rng.rng, key, sizeof(key));
	p2p_identity_from_seed(&n->idn, key);
	while (protos && protos[np] && np < 4) {
		n->protos[np] = protos[np];
		np++;
	}
	n->host = (struct p2p_host){
		.idn = &n->idn,
		.protocols = n->protos,
		.n_protocols = np,
		.clock = &t_clock,
		.rng = &n->rng.rng,
		.early_muxer = true,
	};
}

static inline struct t_end *t_end_new(struct t_node *n)
{
	struct t_end *e = calloc(1, sizeof(*e));

	cr_assert(e && t_n_ends < T_MAX_ENDS);
	e->node = n;
	t_ends[t_n_ends++] = e;
	return e;
}

/* t_connect - a TCP-like pipe from @d (dialer) to @l; returns the dialer's end. */
static inline struct t_end *t_connect(struct t_node *d, struct t_node *l)
{
	struct t_end *a = t_end_new(d), *b = t_end_new(l);
	int err;

	a->c = p2p_conn_new(&d->host, true, &l->idn.id, &t_ops, a, &err);
	b->c = p2p_conn_new(&l->host, false, NULL, &t_ops, b, &err);
	cr_assert(a->c && b->c);
	a->peer = b;
	b->peer = a;
	cr_assert_eq(p2p_conn_start(a->c), 0);
	return a;
}

/* t_move - what @e has queued goes to its pipe peer; 1 when bytes moved, <0 on error. */
static inline int t_move(struct t_end *e)
{
	const uint8_t *p;
	size_t len;
	uint8_t *copy;
	int err;

	if (!e->c || !e->peer || !e->peer->c) {
		return 0;
	}
	p2p_conn_out_peek(e->c, &p, &len);
	if (!len) {
		return 0;
	}
	copy = malloc(len);
	memcpy(copy, p, len);
	p2p_conn_out_advance(e->c, len);
	err = p2p_conn_consume(e->peer->c, copy, len);
	free(copy);
	return err ? err : 1;
}

/* t_pump - move bytes on every pipe (and run @step each round) until quiet. */
static inline int t_pump(void (*step)(void *), void *arg)
{
	for (int i = 0; i < 200000; i++) {
		int moved = 0;

		if (step) {
			step(arg);
		}
		for (size_t k = 0; k < t_n_ends; k++) {
			int r;

			if (t_ends[k]->link && !p2p_link_down(t_ends[k]->link)) {
				p2p_link_flush(t_ends[k]->link);
			}
			t_echo_drain(t_ends[k]);
			r = t_move(t_ends[k]);
			if (r < 0) {
				return r;
			}
			moved |= r;
		}
		if (!moved) {
			return 0;
		}
	}
	return -ETIMEDOUT;
}

static inline void t_link_down(void *ctx, struct p2p_link *l, int err)
{
	struct t_end *e = ctx;

	e->link_down = err ? err : -1;
}

/* t_link - run an inner connection for node @n over @s; returns its end. */
static inline struct t_end *t_link(struct t_node *n, struct p2p_stream *s, bool dialer,
				   const struct peer_id *expect, const uint8_t *early,
				   size_t early_len)
{
	struct t_end *e = t_end_new(n);
	int err;

	e->relayed = true;
	e->link = p2p_link_new(s, &n->host, dialer, expect, &t_ops, e, early, early_len,
			       t_link_down, &err);
	cr_assert(e->link, "p2p_link_new: %d", err);
	e->c = p2p_link_conn(e->link);
	return e;
}

/* t_net_free - free every connection (links first: they reset their outer streams). */
static inline void t_net_free(void)
{
	for (size_t k = 0; k < t_n_ends; k++) {
		if (t_ends[k]->link) {
			p2p_link_free(t_ends[k]->link);
			t_ends[k]->link = NULL;
			t_ends[k]->c = NULL;
		}
	}
	for (size_t k = 0; k < t_n_ends; k++) {
		p2p_conn_free(t_ends[k]->c);
		free(t_ends[k]->pend);
		free(t_ends[k]);
	}
	t_n_ends = 0;
}

#endif
