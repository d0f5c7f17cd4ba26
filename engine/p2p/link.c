// SPDX-License-Identifier: MIT
/* link.c - a p2p_conn over a p2p_stream (see link.h). */
#include <errno.h>
#include <stdlib.h>

#include "link.h"

struct p2p_link {
	struct p2p_stream *outer; /* NULL once closed */
	struct p2p_conn *inner;
	p2p_link_down_fn on_down;
	void *ctx;
	int down; /* error the link died with */
	bool in_flush;
};

/* link_die - report the end once; the inner connection is kept until p2p_link_free. */
static void link_die(struct p2p_link *l, int err)
{
	if (l->down) {
		return;
	}
	l->down = err ? err : -ECONNRESET;
	if (l->outer) {
		struct p2p_stream *s = l->outer;

		l->outer = NULL; /* link_outer_close ignores it now */
		p2p_stream_reset(s);
	}
	if (l->on_down) {
		l->on_down(l->ctx, l, l->down);
	}
}

int p2p_link_flush(struct p2p_link *l)
{
	const uint8_t *p;
	size_t len;

	if (l->down || l->in_flush) {
		return l->down;
	}
	l->in_flush = true;
	for (;;) {
		long w;

		p2p_conn_out_peek(l->inner, &p, &len);
		if (!len || !l->outer) {
			break;
		}
		w = p2p_stream_write(l->outer, p, len);
		if (w < 0) {
			l->in_flush = false;
			link_die(l, (int)w);
			return l->down;
		}
		if (w == 0) {
			break; /* on_stream_writable resumes */
		}
		p2p_conn_out_advance(l->inner, (size_t)w);
	}
	l->in_flush = false;
	if (p2p_conn_error(l->inner)) {
		link_die(l, p2p_conn_error(l->inner));
	}
	return l->down;
}

static void link_outer_data(void *ctx, struct p2p_stream *s, const uint8_t *p, size_t n)
{
	struct p2p_link *l = ctx;
	int err;

	if (l->down) {
		return;
	}
	err = p2p_conn_consume(l->inner, p, n);
	if (err) {
		/* flush what the inner connection still has (GoAway) before dying */
		p2p_link_flush(l);
		link_die(l, err);
		return;
	}
	p2p_link_flush(l);
}

static void link_outer_writable(void *ctx, struct p2p_stream *s)
{
	p2p_link_flush(ctx);
}

static void link_outer_fin(void *ctx, struct p2p_stream *s)
{
	struct p2p_link *l = ctx;

	/* the remote end of the circuit closed: the inner connection cannot continue */
	link_die(l, -ECONNRESET);
}

static void link_outer_reset(void *ctx, struct p2p_stream *s, int err)
{
	struct p2p_link *l = ctx;

	l->outer = NULL; /* being torn down by the connection */
	link_die(l, err ? err : -ECONNRESET);
}

static void link_outer_close(void *ctx, struct p2p_stream *s)
{
	struct p2p_link *l = ctx;

	if (l->outer == s) {
		l->outer = NULL;
		link_die(l, -ECONNRESET);
	}
}

static const struct p2p_conn_ops link_outer_ops = {
	.on_stream_data = link_outer_data,
	.on_stream_fin = link_outer_fin,
	.on_stream_reset = link_outer_reset,
	.on_stream_writable = link_outer_writable,
	.on_stream_close = link_outer_close,
};

struct p2p_link *p2p_link_new(struct p2p_stream *outer, const struct p2p_host *host, bool dialer,
			      const struct peer_id *expected, const struct p2p_conn_ops *ops,
			      void *ctx, const uint8_t *early, size_t early_len,
			      p2p_link_down_fn on_down, int *err)
{
	struct p2p_link *l = calloc(1, sizeof(*l));

	if (!l) {
		*err = -ENOMEM;
		return NULL;
	}
	l->inner = p2p_conn_new(host, dialer, expected, ops, ctx, err);
	if (!l->inner) {
		goto out_free_link;
	}
	l->outer = outer;
	l->on_down = on_down;
	l->ctx = ctx;
	*err = dialer ? p2p_conn_start(l->inner) : 0;
	if (!*err && early_len) {
		*err = p2p_conn_consume(l->inner, early, early_len);
	}
	if (*err) {
		goto out_free_conn;
	}
	p2p_stream_set_ops(outer, &link_outer_ops, l);
	p2p_link_flush(l);
	return l;

out_free_conn:
	p2p_conn_free(l->inner);
out_free_link:
	free(l);
	return NULL;
}

void p2p_link_free(struct p2p_link *l)
{
	if (!l) {
		return;
	}
	l->on_down = NULL;
	if (l->outer) {
		struct p2p_stream *s = l->outer;

		l->outer = NULL;
		p2p_stream_reset(s);
	}
	p2p_conn_free(l->inner);
	free(l);
}

struct p2p_conn *p2p_link_conn(const struct p2p_link *l)
{
	return l->inner;
}

struct p2p_stream *p2p_link_outer(const struct p2p_link *l)
{
	return l->outer;
}

int p2p_link_down(const struct p2p_link *l)
{
	return l->down;
}
