/* SPDX-License-Identifier: MIT */
/*
 * Yamux (libp2p/specs yamux/README.md), sans-IO, interoperable with js-libp2p-yamux 8.x and
 * go-yamux. Frames: a 12-byte big-endian header (version 0, type, flags, stream id, length)
 * followed, for Data frames only, by length payload bytes.
 *
 * The session parses bytes handed to ymx_consume and delivers stream payload in place
 * (pointers into the caller's buffer, valid during the callback only). Frames it emits go to
 * ops->write as header + optional body; the caller frames them further (Noise) and sends them.
 *
 * Flow control: per-stream windows start at YMX_INITIAL_WINDOW. We never send more than the
 * peer granted. Our receive window is restored when the application reports consumed bytes
 * (ymx_stream_consumed); an update goes out once half the window is consumed, and, as js does,
 * the window doubles (up to YMX_MAX_WINDOW) when updates come faster than 4 RTTs apart (RTT
 * from yamux pings). A peer that sends more than the window gets that stream reset (RST);
 * nothing else is affected.
 *
 * Stream lifetime: ymx_stream objects are owned by the session. ops->on_close is called exactly
 * once per stream, right before the session frees it: after both sides sent FIN, after a reset
 * in either direction, or at ymx_session_cleanup. Callbacks may call any ymx_* function,
 * including ymx_stream_reset on the stream being delivered.
 *
 * Connection-fatal errors (returned by ymx_consume; the caller sends ymx_goaway and closes):
 * -NATX_E_PROTO bad version/type/flags, stream-0 misuse, unsolicited ping ACK, the peer using our
 * stream id parity; -ENOBUFS ops->write could not take a control frame.
 */
#ifndef NATX_P2P_YMX_H
#define NATX_P2P_YMX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "p2p_env.h"

#define YMX_PROTOCOL "/yamux/1.0.0"

enum {
	YMX_HDR_LEN = 12,
	YMX_INITIAL_WINDOW = 256 * 1024,
	YMX_MAX_WINDOW = 16 * 1024 * 1024,
	YMX_DEFAULT_MAX_STREAMS = 1000, /* per direction, as js */
	YMX_MAX_UNACKED = 256, /* outbound streams awaiting ACK (spec ACK backlog) */
	YMX_BUCKETS = 64, /* stream hash; per session, so kept small (a relay holds thousands) */
};

enum ymx_type {
	YMX_DATA = 0,
	YMX_WINDOW_UPDATE = 1,
	YMX_PING = 2,
	YMX_GO_AWAY = 3,
};

enum ymx_flag {
	YMX_SYN = 0x1,
	YMX_ACK = 0x2,
	YMX_FIN = 0x4,
	YMX_RST = 0x8,
};

enum ymx_goaway_code {
	YMX_GOAWAY_NORMAL = 0,
	YMX_GOAWAY_PROTO = 1,
	YMX_GOAWAY_INTERNAL = 2,
};

/* struct ymx_hdr - a decoded frame header, host byte order (wire: all fields big-endian). */
struct ymx_hdr {
	uint8_t version; /* always 0 */
	uint8_t type; /* enum ymx_type */
	uint16_t flags; /* enum ymx_flag bits */
	uint32_t stream_id; /* 0 = session */
	uint32_t length; /* data bytes, window delta, ping opaque or GoAway code */
};

/* ymx_hdr_encode / ymx_hdr_decode - the 12-byte wire form. */
void ymx_hdr_encode(uint8_t out[YMX_HDR_LEN], const struct ymx_hdr *h);
void ymx_hdr_decode(struct ymx_hdr *h, const uint8_t in[YMX_HDR_LEN]);

/* struct ymx_stream - one multiplexed stream. Read fields freely; write only user. */
struct ymx_stream {
	struct ymx_stream *next; /* hash chain */
	void *user; /* application pointer */
	uint32_t id;
	uint32_t send_window; /* bytes we may still send */
	uint32_t recv_window; /* bytes the peer may still send */
	uint32_t recv_max; /* current size of our receive window */
	uint32_t recv_pending; /* consumed bytes not yet credited to the peer */
	int64_t last_update_ms; /* when we last sent a window update */
	bool outbound; /* we opened it */
	bool acked; /* outbound: the peer's ACK arrived */
	bool local_fin; /* we sent FIN */
	bool remote_fin; /* the peer sent FIN */
	bool reset; /* reset in either direction */
};

struct ymx_session;

/* struct ymx_ops - the session's outputs. ctx is ymx_session.ctx. */
struct ymx_ops {
	/* write - emit one frame: 12-byte header + @blen body bytes. Return 0 or -ENOBUFS. */
	int (*write)(void *ctx, const uint8_t *hdr, const uint8_t *body, size_t blen);
	/* on_open - the peer opened @s (it is already ACKed). */
	void (*on_open)(void *ctx, struct ymx_stream *s);
	/* on_data - @n payload bytes for @s (borrowed, valid during the call). */
	void (*on_data)(void *ctx, struct ymx_stream *s, const uint8_t *p, size_t n);
	/* on_fin - the peer will send no more data on @s. */
	void (*on_fin)(void *ctx, struct ymx_stream *s);
	/* on_reset - @s was reset (by the peer, or by us for a window violation). */
	void (*on_reset)(void *ctx, struct ymx_stream *s);
	/* on_writable - the send window of @s grew. Optional. */
	void (*on_writable)(void *ctx, struct ymx_stream *s);
	/* on_close - @s is about to be freed. */
	void (*on_close)(void *ctx, struct ymx_stream *s);
	/* on_ping - an ACK for our ping arrived after @rtt_ms. Optional. */
	void (*on_ping)(void *ctx, uint32_t id, int64_t rtt_ms);
	/* on_goaway - the peer sent GoAway with @code. Optional. */
	void (*on_goaway)(void *ctx, uint32_t code);
};

/* struct ymx_session - one yamux session (a connection). */
struct ymx_session {
	const struct ymx_ops *ops;
	void *ctx;
	struct p2p_clock *clock;
	struct ymx_stream *buckets[YMX_BUCKETS];
	uint32_t next_id; /* next id we open: odd for the client, even for the server */
	uint32_t n_in, n_out; /* live inbound / outbound streams */
	uint32_t max_in, max_out;
	uint32_t unacked; /* outbound streams without ACK */
	uint32_t max_frame; /* largest Data payload we emit */
	/* decoder */
	uint8_t hdr[YMX_HDR_LEN];
	uint8_t hdr_len;
	uint32_t body_left; /* Data bytes still to come for body_id */
	uint32_t body_id; /* 0: discard the body */
	uint16_t body_flags; /* FIN/RST of the frame whose body is being delivered */
	/* keepalive */
	bool ping_outstanding;
	uint32_t ping_id; /* id of the outstanding ping */
	uint32_t ping_next; /* next ping id */
	int64_t ping_sent_ms;
	int64_t rtt_ms; /* last measured RTT, 0 = unknown */
	bool client;
	bool goaway_sent;
	bool goaway_received;
	uint32_t goaway_code; /* what the peer sent */
	/* counters */
	uint64_t window_violations; /* streams reset because the peer overran our window */
	uint64_t streams_refused; /* inbound SYNs refused (limits, GoAway) */
};

/*
 * ymx_session_init - start a session. @client picks odd stream ids (the connection dialer).
 * @ops, @ctx and @clock are borrowed for the session's life. Returns 0.
 */
int ymx_session_init(struct ymx_session *ys, bool client, const struct ymx_ops *ops, void *ctx,
		     struct p2p_clock *clock);

/* ymx_session_cleanup - free every stream (on_close is called for each). */
void ymx_session_cleanup(struct ymx_session *ys);

/*
 * ymx_consume - parse @len received bytes. Complete frames are processed; a partial header is
 * kept inside the session, Data payload is delivered as it arrives. Always consumes all of @in
 * unless it fails. Returns 0 or a connection-fatal error (see top).
 */
int ymx_consume(struct ymx_session *ys, const uint8_t *in, size_t len);

/*
 * ymx_stream_open - open an outbound stream (sends Window Update + SYN). Returns the stream or
 * NULL with *@err = -NATX_E_LIMIT (stream or ACK-backlog limit), -ECONNABORTED (GoAway seen or
 * sent), -EOVERFLOW (ids exhausted), -ENOMEM, -ENOBUFS.
 */
struct ymx_stream *ymx_stream_open(struct ymx_session *ys, int *err);

/* ymx_stream_find - the live stream with @id, or NULL. */
struct ymx_stream *ymx_stream_find(struct ymx_session *ys, uint32_t id);

/*
 * ymx_stream_write - send up to @len bytes of @p as Data frames, never beyond the peer's
 * window. Returns the bytes accepted (0 when the window is closed: wait for on_writable), or
 * -EPIPE after our FIN or a reset, -ENOBUFS from ops->write.
 */
long ymx_stream_write(struct ymx_session *ys, struct ymx_stream *s, const uint8_t *p, size_t len);

/* ymx_stream_close - half-close: send FIN. Frees the stream when the peer's FIN was seen. */
int ymx_stream_close(struct ymx_session *ys, struct ymx_stream *s);

/* ymx_stream_reset - send RST and free the stream (on_close runs). @s is invalid afterwards. */
int ymx_stream_reset(struct ymx_session *ys, struct ymx_stream *s);

/*
 * ymx_stream_consumed - the application is done with @n delivered bytes; credits the peer
 * (sending a Window Update when worthwhile). Returns 0 or -ENOBUFS.
 */
int ymx_stream_consumed(struct ymx_session *ys, struct ymx_stream *s, size_t n);

/* ymx_ping - send a ping (one outstanding at a time). Returns 0, -EBUSY, -ENOBUFS. */
int ymx_ping(struct ymx_session *ys);

/* ymx_goaway - send GoAway(@code); no new streams are opened or accepted afterwards. */
int ymx_goaway(struct ymx_session *ys, uint32_t code);

#endif
