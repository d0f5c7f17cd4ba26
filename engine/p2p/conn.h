/* SPDX-License-Identifier: MIT */
/*
 * p2p_conn - one libp2p connection over a byte stream (TCP), sans-IO: multistream-select
 * (/noise) -> Noise XX -> multistream-select (/yamux/1.0.0, skipped when both sides negotiated
 * it inside Noise) -> yamux, with identify, identify push and ping served built in, and
 * application protocols handed to the caller as p2p_stream objects.
 *
 * The caller owns the socket. Data path (one recv and one send in flight at a time):
 *   receive:  p2p_conn_recv_space() gives the free tail of the connection's input buffer; read
 *             into it (io_uring recv), then p2p_conn_recv_commit(n). Or p2p_conn_consume() to
 *             copy from a caller buffer (provided-buffer rings). Noise frames are decrypted in
 *             place in that buffer and yamux payload is delivered from there, zero-copy.
 *   send:     p2p_conn_out_peek() returns the encrypted bytes ready to send (stable until
 *             p2p_conn_out_advance(); appends never move them); after the send completes call
 *             p2p_conn_out_advance(sent). Stream data is copied once into the output buffer,
 *             framed and encrypted there in place.
 * Every call may produce output: the caller checks p2p_conn_out_peek() after each call.
 *
 * A call that returns a negative value other than -EAGAIN marks the connection failed (the
 * same code stays in p2p_conn_error()): the caller flushes what p2p_conn_out_peek() still has
 * (a yamux GoAway when applicable), closes the socket and frees the connection. Other
 * connections are never affected. Error codes: see noise.h, ymx.h, mss.h, plus -ENOBUFS when
 * the peer makes us queue more control output than the buffer holds.
 *
 * Objects: p2p_conn_new/p2p_conn_free (heap). Streams are owned by the connection; a stream
 * pointer stays valid until ops->on_stream_close for it returns (and never after
 * p2p_conn_free). Callbacks run inside p2p_conn_* calls and may call any p2p_* function.
 */
#ifndef NATX_P2P_CONN_H
#define NATX_P2P_CONN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "identify.h"
#include "p2p_env.h"
#include "peerid.h"

#define P2P_AGENT "natx/" NATX_VERSION

enum {
	P2P_IN_CAP = 256 * 1024, /* input buffer per connection (> 2 full Noise messages) */
	P2P_OUT_CAP = 1024 * 1024, /* default output buffer per connection */
	P2P_OUT_HEADROOM = 128 * 1024, /* part of the output buffer kept for control frames */
	P2P_KEEPALIVE_MS = 30000, /* yamux ping interval, as js */
	P2P_MAX_PROTOCOLS = 64, /* application protocols a host may register */
	P2P_EARLY_MAX = 16 * 1024, /* first data bytes p2p_stream_open_lazy may carry */
};

struct p2p_conn;
struct p2p_stream;

/*
 * struct p2p_host - what connections of one node share (one per shard). Every pointer is
 * borrowed and must outlive the connections.
 */
struct p2p_host {
	const struct p2p_identity *idn;
	const char *agent_version; /* NULL: P2P_AGENT */
	const char *const *protocols; /* application protocols accepted inbound */
	size_t n_protocols;
	const uint8_t *const *listen_addrs; /* binary multiaddrs for identify */
	const size_t *listen_addr_lens;
	size_t n_listen_addrs;
	struct p2p_clock *clock;
	struct p2p_rng *rng;
	size_t out_cap; /* 0: P2P_OUT_CAP */
	bool early_muxer; /* advertise stream_muxers = ["/yamux/1.0.0"] inside Noise */
	bool no_identify; /* do not run identify on new connections */
	/*
	 * Dead-connection detection: a yamux ping every @keepalive_ms (0: P2P_KEEPALIVE_MS); a
	 * connection whose ping stays unanswered @keepalive_timeout_ms (0: the interval) fails
	 * with -ETIMEDOUT (p2p_conn_tick), which resets its streams.
	 */
	uint32_t keepalive_ms, keepalive_timeout_ms;
	/*
	 * on_output - optional: a yamux frame was queued on @c (data, window update, FIN, RST).
	 * Lets a host that drives many connections learn that a call on one connection (a relay
	 * splice, a relayed connection) left bytes to send on another. Must not call p2p_* on @c.
	 */
	void (*on_output)(struct p2p_conn *c);
};

/* struct p2p_conn_ops - callbacks; every member is optional. ctx is p2p_conn_new's @ctx. */
struct p2p_conn_ops {
	/* on_established - security and muxer are up; the remote peer ID is authenticated. */
	void (*on_established)(void *ctx, struct p2p_conn *c);
	/* on_stream_open - an application stream negotiated @protocol (inbound or outbound). */
	void (*on_stream_open)(void *ctx, struct p2p_stream *s, const char *protocol);
	/* on_stream_data - @n bytes (borrowed, valid during the call). */
	void (*on_stream_data)(void *ctx, struct p2p_stream *s, const uint8_t *p, size_t n);
	/* on_stream_fin - the remote closed its side. */
	void (*on_stream_fin)(void *ctx, struct p2p_stream *s);
	/* on_stream_reset - reset by the peer, refused ("na": -NATX_E_UNAVAILABLE) or broken. */
	void (*on_stream_reset)(void *ctx, struct p2p_stream *s, int err);
	/* on_stream_writable - the send window or output room grew. */
	void (*on_stream_writable)(void *ctx, struct p2p_stream *s);
	/* on_stream_close - last call for @s; it is freed when this returns. */
	void (*on_stream_close)(void *ctx, struct p2p_stream *s);
	/* on_identify - the remote's identify (or push) arrived; @err != 0 when it was invalid. */
	void (*on_identify)(void *ctx, struct p2p_conn *c, const struct identify_record *rec,
			    int err);
	/* on_ping - a /ipfs/ping/1.0.0 round trip finished (@err 0) or failed. */
	void (*on_ping)(void *ctx, struct p2p_conn *c, int64_t rtt_ms, int err);
};

/* struct p2p_conn_stats - counters of one connection. */
struct p2p_conn_stats {
	uint64_t bytes_in, bytes_out; /* wire bytes */
	uint64_t frames_in, frames_out; /* Noise transport messages */
	uint64_t streams_in, streams_out; /* streams opened */
	uint64_t window_violations; /* streams reset for overrunning our window */
	uint64_t streams_refused; /* inbound streams refused (limits, GoAway) */
	uint64_t negotiation_failures; /* stream protocol negotiations that failed */
	uint64_t identify_failures; /* invalid identify records */
	uint64_t pings_served; /* inbound /ipfs/ping/1.0.0 payloads echoed */
	uint64_t out_trims; /* idle output buffer pages given back (p2p_conn_tick) */
};

/*
 * p2p_conn_new - a connection over a new socket. @dialer: we initiated the TCP connection (we
 * are multistream dialer, Noise initiator, yamux client). @expected: the peer ID being dialled
 * (copied; NULL accepts any). Returns NULL with *@err = -ENOMEM.
 */
struct p2p_conn *p2p_conn_new(const struct p2p_host *host, bool dialer,
			      const struct peer_id *expected, const struct p2p_conn_ops *ops,
			      void *ctx, int *err);

/* p2p_conn_free - free the connection and every stream (on_stream_close is called). NULL ok. */
void p2p_conn_free(struct p2p_conn *c);

/* p2p_conn_start - dialer: queue the multistream header and /noise. Listener: no-op. */
int p2p_conn_start(struct p2p_conn *c);

/* p2p_conn_set_remote_addr - the socket's peer address, sent back as identify observedAddr. */
void p2p_conn_set_remote_addr(struct p2p_conn *c, const struct sockaddr *sa);

/* p2p_conn_recv_space - free input space: read at most *@cap bytes into *@p. */
int p2p_conn_recv_space(struct p2p_conn *c, uint8_t **p, size_t *cap);

/* p2p_conn_recv_commit - @n bytes were read into the recv space: process them. */
int p2p_conn_recv_commit(struct p2p_conn *c, size_t n);

/* p2p_conn_consume - copy @n received bytes from @p and process them. */
int p2p_conn_consume(struct p2p_conn *c, const uint8_t *p, size_t n);

/* p2p_conn_out_peek - bytes ready to send (may be 0). */
void p2p_conn_out_peek(struct p2p_conn *c, const uint8_t **p, size_t *len);

/* p2p_conn_out_advance - @n bytes from p2p_conn_out_peek were sent. */
void p2p_conn_out_advance(struct p2p_conn *c, size_t n);

/*
 * p2p_conn_tick - timers: the keepalive ping (p2p_host.keepalive_ms) and its timeout
 * (-ETIMEDOUT: the connection failed). Call at least every few hundred milliseconds: the
 * timeout is noticed on the first tick after it passed. Also gives back the pages of an output
 * buffer that stayed empty since the previous call (idle connections hold no output page); the
 * caller must not hold a pointer from p2p_conn_out_peek across it when that reported nothing to
 * send (there is none then).
 */
int p2p_conn_tick(struct p2p_conn *c);

/* p2p_conn_close - graceful close: yamux GoAway(0). Then flush and close the socket. */
int p2p_conn_close(struct p2p_conn *c);

/* p2p_conn_error - 0 while healthy, else the error that killed the connection. */
int p2p_conn_error(const struct p2p_conn *c);

/* p2p_conn_established - true once yamux runs. */
bool p2p_conn_established(const struct p2p_conn *c);

/* p2p_conn_remote - the authenticated remote peer ID, NULL before the Noise handshake ends. */
const struct peer_id *p2p_conn_remote(const struct p2p_conn *c);

/* p2p_conn_remote_info - the remote's identify record (empty until on_identify). */
const struct identify_record *p2p_conn_remote_info(const struct p2p_conn *c);

/* p2p_conn_stats - the connection's counters. */
const struct p2p_conn_stats *p2p_conn_stats(const struct p2p_conn *c);

/* p2p_conn_user / p2p_conn_set_user - an application pointer. */
void *p2p_conn_user(const struct p2p_conn *c);
void p2p_conn_set_user(struct p2p_conn *c, void *user);

/*
 * p2p_conn_rebind - move @c to another host (same identity; e.g. another shard's copy) and
 * callback table: streams that use the connection's callbacks follow, streams a module took
 * over (p2p_stream_set_ops) keep theirs. Call only between events, never from a callback.
 */
void p2p_conn_rebind(struct p2p_conn *c, const struct p2p_host *host,
		     const struct p2p_conn_ops *ops, void *ctx);

/* p2p_conn_rtt_ms - the last yamux ping round trip, 0 when none was measured yet. */
int64_t p2p_conn_rtt_ms(const struct p2p_conn *c);

/* p2p_conn_streams - yamux streams open now (both directions). */
size_t p2p_conn_streams(const struct p2p_conn *c);

/* p2p_conn_ping - run one /ipfs/ping/1.0.0 round trip; the result comes via ops->on_ping. */
int p2p_conn_ping(struct p2p_conn *c);

/*
 * p2p_conn_protocols_refresh - take the host's protocol list again (it changed: a service was
 * exposed or closed, the relay was turned on). Streams negotiated before keep their protocol;
 * new inbound streams and our identify record (p2p_conn_identify_push) see the new list.
 */
void p2p_conn_protocols_refresh(struct p2p_conn *c);

/* p2p_conn_identify_push - send our identify record with /ipfs/id/push/1.0.0. */
int p2p_conn_identify_push(struct p2p_conn *c);

/*
 * p2p_stream_open - open a stream and propose @protocol (borrowed, must outlive the stream).
 * Data may be written at once (lazy negotiation); ops->on_stream_open reports the echo.
 * Returns NULL with *@err: -ENOTCONN before establishment, or ymx_stream_open's errors.
 */
struct p2p_stream *p2p_stream_open(struct p2p_conn *c, const char *protocol, int *err);

/*
 * p2p_stream_open_lazy - like p2p_stream_open, but the multistream header, the proposal and the
 * first @len (<= P2P_EARLY_MAX) bytes of @data travel in one yamux frame, as go-libp2p does
 * when it knows the peer supports @protocol. If the peer answers "na" those bytes are lost and
 * the stream is reset (-NATX_E_UNAVAILABLE). Use only for protocols the peer's identify lists.
 */
struct p2p_stream *p2p_stream_open_lazy(struct p2p_conn *c, const char *protocol,
					const uint8_t *data, size_t len, int *err);

/*
 * p2p_stream_write - queue up to @len bytes. Returns the bytes accepted (0: window or output
 * buffer full, wait for on_stream_writable), -EPIPE after close/reset, or a fatal error.
 */
long p2p_stream_write(struct p2p_stream *s, const uint8_t *p, size_t len);

/* p2p_stream_close - half-close (FIN). */
int p2p_stream_close(struct p2p_stream *s);

/* p2p_stream_reset - abort (RST); on_stream_close runs before this returns. */
int p2p_stream_reset(struct p2p_stream *s);

/*
 * p2p_stream_set_manual_window - by default delivered bytes count as consumed when
 * on_stream_data returns; with @manual the caller reports them with p2p_stream_consumed (the
 * yamux window then provides backpressure to the peer).
 */
void p2p_stream_set_manual_window(struct p2p_stream *s, bool manual);
int p2p_stream_consumed(struct p2p_stream *s, size_t n);

/*
 * p2p_stream_set_ops - route @s's stream callbacks (open, data, fin, reset, writable, close) to
 * @ops with @ctx instead of the connection's; NULL restores the connection's. Lets a protocol
 * module (relay, DCUtR, AutoNAT, a tunnelled p2p_conn) own a stream the host handed it. Set it
 * right after p2p_stream_open, or inside on_stream_open for inbound streams.
 */
void p2p_stream_set_ops(struct p2p_stream *s, const struct p2p_conn_ops *ops, void *ctx);

/*
 * p2p_stream_detach - route @s's callbacks nowhere: a protocol module that lets go of @s (or
 * hands it on as a raw pipe) gets no further calls for it, not even on_stream_close.
 */
void p2p_stream_detach(struct p2p_stream *s);

/* p2p_stream_release - p2p_stream_detach, then reset (@reset) or half-close @s. */
void p2p_stream_release(struct p2p_stream *s, bool reset);

/* Accessors. */
struct p2p_conn *p2p_stream_conn(const struct p2p_stream *s);
const char *p2p_stream_protocol(const struct p2p_stream *s);
uint32_t p2p_stream_id(const struct p2p_stream *s);
void *p2p_stream_user(const struct p2p_stream *s);
void p2p_stream_set_user(struct p2p_stream *s, void *user);

#endif
