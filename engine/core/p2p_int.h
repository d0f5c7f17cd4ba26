/* SPDX-License-Identifier: MIT */
/*
 * Shard-side internals shared by p2p_host.c (connections) and p2p_bridge.c (streams bridged to
 * TCP). Everything here is owned and touched by one shard thread only.
 */
#ifndef NATX_ENGINE_P2P_INT_H
#define NATX_ENGINE_P2P_INT_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include "p2p/conn.h"
#include "p2p_host.h"

enum { P2P_D_ACCEPT = 0, P2P_D_RECV = 1, P2P_D_SEND = 2, P2P_D_MSG = 3 };

/* Control message slots (dir P2P_D_MSG): 0 start, 1..P2P_REQ_MAX requests, then refresh. */
enum { P2P_MSG_REFRESH = 64 };

/* struct p2p_sconn - one libp2p connection of a shard. */
struct p2p_sconn {
	struct p2p_shard *ps;
	struct p2p_conn *c; /* NULL: slot free */
	int fd;
	uint32_t slot;
	uint32_t inflight; /* SQEs whose CQE has not arrived */
	uint32_t next_free;
	bool recv_busy, send_busy;
	bool connecting; /* dial: IORING_OP_CONNECT in flight */
	bool dead; /* failed or finished: flush, cancel, close */
	bool sock_err; /* the socket itself failed: do not flush */
	bool cancelled; /* cancel submitted */
	bool finishing; /* request done: GoAway and close on the next pump */
	bool tcp_up; /* accepted, or the connect succeeded */
	bool established; /* on_established ran */
	bool fwd; /* dialled for p2p forward: kept open, reused for the same peer */
	int req; /* dial request index, -1 none */
	unsigned int pings_done;
	uint64_t deadline_ms; /* dials: give up when not done by then (0: none) */
	struct peer_id peer; /* fwd: the dialled peer */
	struct sockaddr_storage ss; /* connect target (stable while the SQE is in flight) */
};

/* struct p2p_chunk - stream bytes waiting to be sent to the TCP side. */
struct p2p_chunk {
	struct p2p_chunk *next;
	size_t len, off;
	uint8_t data[];
};

/* struct p2p_bridge - one libp2p stream bridged to one TCP connection. */
struct p2p_bridge {
	bool used;
	uint32_t idx;
	uint32_t svc; /* index in eng->p2p->svc */
	uint32_t svc_id; /* its id when the bridge started (stats only while it matches) */
	struct p2p_stream *s; /* NULL once closed */
	uint32_t conn; /* connection slot of @s (or being dialled) */
	int fd;
	uint32_t inflight;
	bool tcp_connecting; /* expose: connect to the target in flight */
	bool waiting_conn; /* forward: the libp2p connection is not up yet */
	bool recv_busy, send_busy;
	bool tcp_eof; /* TCP side sent FIN */
	bool fin_sent; /* we closed our side of the stream */
	bool stream_fin; /* the peer closed its side of the stream */
	bool tcp_shut; /* shutdown(SHUT_WR) done */
	bool dead; /* aborted: reset + close */
	bool cancelled;
	struct p2p_chunk *q_head, *q_tail; /* stream -> TCP */
	size_t queued;
	uint8_t *rbuf; /* TCP -> stream, P2P_BRIDGE_BUF */
	size_t r_len, r_off; /* bytes read / already written to the stream */
	struct sockaddr_storage ss; /* expose: connect target */
};

/* struct p2p_svc_view - a shard's copy of one service. */
struct p2p_svc_view {
	int kind;
	uint32_t id;
	char protocol[P2P_PROTO_MAX];
	struct sockaddr_storage addr;
	struct peer_id peer;
	int lfd;
	bool accept_armed; /* shard 0: multishot accept on lfd */
};

struct p2p_shard {
	struct shard *sh;
	struct p2p_host host;
	struct p2p_sconn conns[P2P_CONNS_MAX];
	uint32_t free_head;
	bool accept_armed;
	bool started;
	uint32_t svc_gen; /* eng->p2p->svc_gen this view was built from */
	struct p2p_svc_view views[P2P_SVC_MAX];
	const char *protos[P2P_SVC_MAX]; /* host.protocols: exposed protocols */
	char proto_store[P2P_SVC_MAX][P2P_PROTO_MAX]; /* never freed: conns keep pointers */
	struct p2p_bridge br[P2P_BRIDGES_MAX];
};

struct p2p_shard_stats *p2p_st(struct p2p_shard *ps);
void p2p_sconn_pump(struct p2p_sconn *sc);
void p2p_sconn_fail(struct p2p_sconn *sc, int err);

/* p2p_sconn_dial - a kept connection to @peer at @ss (shard 0, p2p forward), or NULL. */
struct p2p_sconn *p2p_sconn_dial_fwd(struct p2p_shard *ps, const struct sockaddr_storage *ss,
				     const struct peer_id *peer);

/* Bridges (p2p_bridge.c). */
void p2p_svc_refresh(struct p2p_shard *ps);
void p2p_bridge_on_stream_open(struct p2p_sconn *sc, struct p2p_stream *s, const char *protocol);
void p2p_bridge_handle_cqe(struct p2p_shard *ps, uint32_t b, unsigned int dir, int res);
void p2p_bridge_fwd_accept(struct p2p_shard *ps, uint32_t v, struct io_uring_cqe *cqe);
void p2p_bridge_conn_up(struct p2p_shard *ps, struct p2p_sconn *sc);
void p2p_bridge_conn_gone(struct p2p_shard *ps, uint32_t slot);
void p2p_bridge_teardown(struct p2p_shard *ps);

#endif
