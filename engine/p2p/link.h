/* SPDX-License-Identifier: MIT */
/*
 * p2p_link - a p2p_conn whose transport is a stream of another p2p_conn: how a relayed
 * connection runs (the bytes of a circuit are a raw hop/stop stream that carries a nested
 * multistream + Noise + yamux connection, exactly as over TCP).
 *
 * The link owns the inner connection and takes over the outer stream's callbacks
 * (p2p_stream_set_ops). Outer stream data is fed to the inner connection; the inner
 * connection's output is written to the outer stream as far as its yamux window and output
 * buffer take it, the rest stays queued in the inner connection (its own output buffer is the
 * only queue: nothing unbounded; inner stream writes return 0 while it is full). Received
 * bytes are processed synchronously by the inner connection, whose yamux windows throttle the
 * remote inner streams, so backpressure crosses the link in both directions.
 *
 * The inner connection produces output inside its own calls. The link flushes after every
 * call it makes itself (outer data, outer writable); after calling p2p_* functions on the
 * inner connection or its streams from outside the inner callbacks (e.g. opening a stream or
 * writing from a timer), the host calls p2p_link_flush.
 *
 * The link dies when the outer stream is reset or closed both ways, or the inner connection
 * fails: on_down(ctx, link, err) runs once; the host then calls p2p_link_free (not from
 * inside on_down).
 */
#ifndef NATX_P2P_LINK_H
#define NATX_P2P_LINK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "conn.h"

struct p2p_link;

/* p2p_link_down_fn - the link stopped carrying bytes; @err is why (-ECONNRESET, ...). */
typedef void (*p2p_link_down_fn)(void *ctx, struct p2p_link *l, int err);

/*
 * p2p_link_new - run a p2p_conn over @outer (an application stream whose protocol exchange is
 * over: relay hop after STATUS OK, stop after we answered OK). @dialer, @expected, @ops, @ctx
 * as for p2p_conn_new (the inner connection's callbacks get @ctx). @early/@early_len: bytes
 * that already arrived on @outer after the relay message (fed first). Dialers are started.
 * Returns NULL with *@err (-ENOMEM, or the inner connection's error on the early bytes); @outer
 * is then left untouched.
 */
struct p2p_link *p2p_link_new(struct p2p_stream *outer, const struct p2p_host *host, bool dialer,
			      const struct peer_id *expected, const struct p2p_conn_ops *ops,
			      void *ctx, const uint8_t *early, size_t early_len,
			      p2p_link_down_fn on_down, int *err);

/* p2p_link_free - free the inner connection; reset the outer stream if it is still open. */
void p2p_link_free(struct p2p_link *l);

/* p2p_link_conn - the inner connection. */
struct p2p_conn *p2p_link_conn(const struct p2p_link *l);

/* p2p_link_outer - the outer stream (NULL once it is gone). */
struct p2p_stream *p2p_link_outer(const struct p2p_link *l);

/* p2p_link_flush - move the inner connection's queued output into the outer stream. */
int p2p_link_flush(struct p2p_link *l);

/* p2p_link_down - 0 while the link works, else the error it died with. */
int p2p_link_down(const struct p2p_link *l);

#endif
