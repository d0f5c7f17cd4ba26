// SPDX-License-Identifier: MIT
/*
 * p2p expose / p2p forward on a shard: libp2p streams bridged to TCP connections (see
 * p2p_host.h). Stream -> TCP: delivered bytes are queued as chunks and credited back to the
 * peer (p2p_stream_consumed, manual window) only once the TCP send completed, so the yamux
 * window is the back-pressure and a bridge never holds more than the window it granted.
 * TCP -> stream: one recv of up to P2P_BRIDGE_BUF bytes at a time; the next recv starts only
 * when the stream accepted all of it (on_stream_writable resumes a partial write).
 * FIN maps to FIN both ways; a reset or an error on either side resets the other.
 */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine.h"
#include "natx/log.h"
#include "natx/udata.h"
#include "p2p_int.h"

#define MOD "p2p"

struct p2p_shard *p2p_bridge_shard(struct p2p_bridge *b)
{
	/* Bridges live in their shard's array: recover the shard from the element. */
	return (struct p2p_shard *)((char *)(b - b->idx) - offsetof(struct p2p_shard, br));
}

struct p2p_svc_stats *p2p_bridge_st(struct p2p_bridge *b)
{
	struct p2p_shard *ps = p2p_bridge_shard(b);
	struct p2p_svc *v = &ps->sh->eng->p2p->svc[b->svc];

	if (__atomic_load_n(&v->id, __ATOMIC_RELAXED) != b->svc_id) {
		return NULL; /* the service was closed and its slot reused */
	}
	return &v->st[ps->sh->idx];
}

static uint64_t p2p_bridge_ud(struct p2p_bridge *b, unsigned int dir)
{
	struct p2p_shard *ps = p2p_bridge_shard(b);

	return udata_pack(UD_P2P, dir, ps->sh->idx, 0, P2P_CONNS_MAX + b->idx);
}

/* p2p_bridge_kick - let the bridge's connection send what the last stream call queued. */
static void p2p_bridge_kick(struct p2p_bridge *b)
{
	struct p2p_sconn *sc = &p2p_bridge_shard(b)->conns[b->conn];

	if (sc->c) {
		p2p_sconn_pump(sc);
	}
}

struct p2p_bridge *p2p_bridge_alloc(struct p2p_shard *ps, uint32_t v)
{
	struct p2p_bridge *b = NULL;
	struct p2p_svc_stats *st;

	for (uint32_t i = 0; i < P2P_BRIDGES_MAX; i++) {
		if (!ps->br[i].used) {
			b = &ps->br[i];
			break;
		}
	}
	if (!b) {
		return NULL;
	}
	memset(b, 0, sizeof(*b));
	b->idx = (uint32_t)(b - ps->br);
	b->rbuf = malloc(P2P_BRIDGE_BUF);
	if (!b->rbuf) {
		return NULL;
	}
	b->used = true;
	b->fd = -1;
	b->svc = v;
	b->svc_id = ps->views[v].id;
	st = p2p_bridge_st(b);
	if (st) {
		stat_add(&st->streams_open, 1);
		stat_add(&st->streams_total, 1);
	}
	return b;
}

/* p2p_bridge_free - last step: nothing in flight, the stream is gone. */
static void p2p_bridge_free(struct p2p_bridge *b)
{
	struct p2p_svc_stats *st = p2p_bridge_st(b);

	while (b->q_head) {
		struct p2p_chunk *c = b->q_head;

		b->q_head = c->next;
		free(c);
	}
	if (b->fl) {
		p2p_flow_free(b);
	}
	if (b->fd >= 0) {
		if (b->dead) {
			struct linger lg = { .l_onoff = 1, .l_linger = 0 };

			setsockopt(b->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
		}
		close(b->fd);
	}
	if (st) {
		stat_sub(&st->streams_open, 1);
		if (b->dead) {
			stat_add(&st->streams_failed, 1);
		}
	}
	free(b->rbuf);
	b->rbuf = NULL;
	b->used = false;
}

/* p2p_bridge_abort - reset the stream (the flow's paths) and the TCP connection. */
void p2p_bridge_abort(struct p2p_bridge *b)
{
	struct p2p_stream *s = b->s;

	if (!b->used || b->dead) {
		return;
	}
	b->dead = true;
	if (b->fl) {
		p2p_flow_abort(b);
	}
	if (s) {
		p2p_stream_reset(s); /* on_stream_close clears b->s */
		p2p_bridge_kick(b);
	}
	p2p_bridge_progress(b);
}

/* p2p_bridge_tcp_send - send the head chunk, or FIN once the stream ended and all is sent. */
void p2p_bridge_tcp_send(struct p2p_bridge *b)
{
	struct io_uring_sqe *sqe;
	struct p2p_chunk *c = b->q_head;

	if (b->send_busy || b->tcp_connecting || b->dead || b->fd < 0) {
		return;
	}
	if (!c) {
		if (b->stream_fin && !b->tcp_shut) {
			shutdown(b->fd, SHUT_WR);
			b->tcp_shut = true;
		}
		return;
	}
	sqe = shard_sqe(p2p_bridge_shard(b)->sh);
	io_uring_prep_send(sqe, b->fd, c->data + c->off, c->len - c->off, MSG_NOSIGNAL);
	io_uring_sqe_set_data64(sqe, p2p_bridge_ud(b, P2P_D_SEND));
	b->send_busy = true;
	b->inflight++;
}

/* p2p_bridge_tcp_recv - read the next TCP bytes once the previous ones are in the stream. */
static void p2p_bridge_tcp_recv(struct p2p_bridge *b)
{
	struct io_uring_sqe *sqe;

	if (b->recv_busy || b->tcp_eof || b->dead || b->tcp_connecting || b->waiting_conn ||
	    (b->fl ? b->fl->failed : !b->s) || b->fin_sent || b->r_off < b->r_len) {
		return;
	}
	sqe = shard_sqe(p2p_bridge_shard(b)->sh);
	io_uring_prep_recv(sqe, b->fd, b->rbuf, P2P_BRIDGE_BUF, 0);
	io_uring_sqe_set_data64(sqe, p2p_bridge_ud(b, P2P_D_RECV));
	b->recv_busy = true;
	b->inflight++;
}

/* p2p_bridge_to_flow - p2p_bridge_to_stream of a flow bridge: into the flow's send ring. */
static void p2p_bridge_to_flow(struct p2p_bridge *b)
{
	struct p2p_svc_stats *st = p2p_bridge_st(b);
	size_t n = 0;

	if (b->r_off < b->r_len) {
		n = p2p_flow_write(b, b->rbuf + b->r_off, b->r_len - b->r_off);
		b->r_off += n;
	}
	if (st && n) {
		stat_add(&st->bytes_to_p2p, (uint64_t)n);
	}
	if (b->r_off == b->r_len) {
		b->r_off = b->r_len = 0;
		if (b->tcp_eof && !b->fin_sent) {
			b->fin_sent = true;
			p2p_flow_shut(b);
		}
	}
	p2p_flow_pump(b);
	p2p_bridge_tcp_recv(b);
}

/* p2p_bridge_to_stream - write what the last recv read; FIN after EOF. */
void p2p_bridge_to_stream(struct p2p_bridge *b)
{
	struct p2p_svc_stats *st = p2p_bridge_st(b);

	if (b->fl) {
		if (!b->dead && !b->fl->failed) {
			p2p_bridge_to_flow(b);
		}
		return;
	}

	while (b->s && b->r_off < b->r_len) {
		long n = p2p_stream_write(b->s, b->rbuf + b->r_off, b->r_len - b->r_off);

		if (n < 0) {
			p2p_bridge_abort(b);
			return;
		}
		if (!n) {
			break; /* window or output full: on_stream_writable resumes */
		}
		b->r_off += (size_t)n;
		if (st) {
			stat_add(&st->bytes_to_p2p, (uint64_t)n);
		}
	}
	if (b->r_off == b->r_len) {
		b->r_off = b->r_len = 0;
		if (b->tcp_eof && b->s && !b->fin_sent) {
			b->fin_sent = true;
			p2p_stream_close(b->s);
		}
	}
	p2p_bridge_kick(b);
	p2p_bridge_tcp_recv(b);
}

/*
 * p2p_bridge_progress - after every event: a dead bridge cancels its TCP requests; a bridge
 * whose both directions ended (or that died) is freed once nothing is in flight and its
 * stream is gone.
 */
void p2p_bridge_progress(struct p2p_bridge *b)
{
	bool done;

	if (!b->used) {
		return;
	}
	done = b->dead || (b->tcp_eof && b->fin_sent && b->stream_fin && b->tcp_shut &&
			   !b->q_head && !b->s && (!b->fl || p2p_flow_done(b)));
	if (!done) {
		return;
	}
	if (b->s) {
		return; /* graceful: wait for the stream's close */
	}
	if (b->inflight && !b->cancelled && b->fd >= 0) {
		struct shard *sh = p2p_bridge_shard(b)->sh;
		struct io_uring_sqe *sqe = shard_sqe(sh);

		io_uring_prep_cancel_fd(sqe, b->fd, IORING_ASYNC_CANCEL_ALL);
		io_uring_sqe_set_data64(sqe, udata_pack(UD_NONE, 0, sh->idx, 0, 0));
		b->cancelled = true;
	}
	if (!b->inflight) {
		p2p_bridge_free(b);
	}
}

/* ---- stream callbacks ---------------------------------------------------------------------- */

static void p2p_bridge_on_data(void *ctx, struct p2p_stream *s, const uint8_t *p, size_t n)
{
	struct p2p_bridge *b = ctx;
	struct p2p_chunk *c;

	if (b->dead || !n) {
		return;
	}
	c = malloc(sizeof(*c) + n);
	if (!c) {
		p2p_bridge_abort(b);
		return;
	}
	memcpy(c->data, p, n);
	c->len = n;
	c->off = 0;
	c->next = NULL;
	if (b->q_tail) {
		b->q_tail->next = c;
	} else {
		b->q_head = c;
	}
	b->q_tail = c;
	b->queued += n;
	p2p_bridge_tcp_send(b);
}

static void p2p_bridge_on_fin(void *ctx, struct p2p_stream *s)
{
	struct p2p_bridge *b = ctx;

	b->stream_fin = true;
	p2p_bridge_tcp_send(b);
	p2p_bridge_progress(b);
}

static void p2p_bridge_on_reset(void *ctx, struct p2p_stream *s, int err)
{
	p2p_bridge_abort(ctx);
}

static void p2p_bridge_on_writable(void *ctx, struct p2p_stream *s)
{
	struct p2p_bridge *b = ctx;

	if (b->used && !b->dead) {
		p2p_bridge_to_stream(b);
	}
}

/*
 * p2p_bridge_on_negotiated - the peer echoed our protocol (forward). A window update that came
 * before the echo produced no on_stream_writable (the stream was not negotiated yet), so a
 * write the window had stopped is resumed here.
 */
static void p2p_bridge_on_negotiated(void *ctx, struct p2p_stream *s, const char *protocol)
{
	p2p_bridge_on_writable(ctx, s);
}

static void p2p_bridge_on_close(void *ctx, struct p2p_stream *s)
{
	struct p2p_bridge *b = ctx;

	if (!b->used) {
		return;
	}
	b->s = NULL;
	if (!(b->stream_fin && b->fin_sent)) {
		b->dead = true; /* the stream ended without both FINs (reset, connection lost) */
	}
	p2p_bridge_progress(b);
}

static const struct p2p_conn_ops p2p_bridge_ops = {
	.on_stream_open = p2p_bridge_on_negotiated,
	.on_stream_data = p2p_bridge_on_data,
	.on_stream_fin = p2p_bridge_on_fin,
	.on_stream_reset = p2p_bridge_on_reset,
	.on_stream_writable = p2p_bridge_on_writable,
	.on_stream_close = p2p_bridge_on_close,
};

/* p2p_bridge_attach - @b takes over stream @s. */
static void p2p_bridge_attach(struct p2p_bridge *b, struct p2p_stream *s, uint32_t conn)
{
	b->s = s;
	b->conn = conn;
	p2p_stream_set_ops(s, &p2p_bridge_ops, b);
	p2p_stream_set_manual_window(s, true);
}

/* ---- expose: inbound stream -> new TCP connection ------------------------------------------ */

void p2p_bridge_on_stream_open(struct p2p_sconn *sc, struct p2p_stream *s, const char *protocol)
{
	struct p2p_shard *ps = sc->ps;
	struct p2p_bridge *b;
	uint32_t v;

	if (!strcmp(protocol, P2P_FLOW_PROTOCOL)) {
		p2p_flow_stream_open(sc, s);
		return;
	}
	for (v = 0; v < P2P_SVC_MAX; v++) {
		if (ps->views[v].kind == P2P_SVC_EXPOSE &&
		    !strcmp(ps->views[v].protocol, protocol)) {
			break;
		}
	}
	b = v < P2P_SVC_MAX ? p2p_bridge_alloc(ps, v) : NULL;
	if (!b) {
		p2p_stream_reset(s); /* closed since the connection started, or no room */
		return;
	}
	p2p_bridge_attach(b, s, sc->slot);
	p2p_bridge_expose_connect(b, v);
}

void p2p_bridge_expose_connect(struct p2p_bridge *b, uint32_t v)
{
	struct p2p_shard *ps = p2p_bridge_shard(b);
	struct io_uring_sqe *sqe;

	b->ss = ps->views[v].addr;
	b->fd = socket(b->ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (b->fd < 0) {
		p2p_bridge_abort(b);
		return;
	}
	sqe = shard_sqe(ps->sh);
	io_uring_prep_connect(sqe, b->fd, (struct sockaddr *)&b->ss,
			      b->ss.ss_family == AF_INET6 ? sizeof(struct sockaddr_in6) :
							    sizeof(struct sockaddr_in));
	io_uring_sqe_set_data64(sqe, p2p_bridge_ud(b, P2P_D_SEND));
	b->tcp_connecting = true;
	b->inflight++;
}

/* ---- forward: accepted TCP connection -> new stream to the peer ---------------------------- */

/* p2p_bridge_open_stream - the connection is up: open the stream and start reading TCP. */
static void p2p_bridge_open_stream(struct p2p_shard *ps, struct p2p_bridge *b, struct p2p_sconn *sc)
{
	struct p2p_stream *s;
	int err;

	b->waiting_conn = false;
	if (b->fl) {
		p2p_flow_start(b, sc);
		p2p_bridge_tcp_recv(b);
		p2p_bridge_progress(b); /* the first path may have failed */
		return;
	}
	s = p2p_stream_open(sc->c, ps->views[b->svc].protocol, &err);
	if (!s) {
		p2p_bridge_abort(b);
		return;
	}
	p2p_bridge_attach(b, s, sc->slot);
	p2p_bridge_tcp_recv(b);
	p2p_bridge_kick(b);
}

void p2p_bridge_fwd_accept(struct p2p_shard *ps, uint32_t v, struct io_uring_cqe *cqe)
{
	struct p2p_svc_view *view = &ps->views[v];
	struct p2p_bridge *b;
	struct p2p_sconn *sc;
	int one = 1;

	if (!(cqe->flags & IORING_CQE_F_MORE)) {
		view->accept_armed = false;
		p2p_svc_refresh(ps); /* closing: close the listener; else re-arm */
	}
	if (cqe->res < 0) {
		return;
	}
	b = view->kind == P2P_SVC_FORWARD ? p2p_bridge_alloc(ps, v) : NULL;
	if (!b) {
		close(cqe->res);
		return;
	}
	b->fd = cqe->res;
	setsockopt(b->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (view->flow && p2p_flow_new(b, true, &view->peer, view->repair_ms)) {
		b->dead = true;
		p2p_bridge_progress(b);
		return;
	}
	b->waiting_conn = true;
	sc = view->circuit ? p2p_circ_dial_fwd(ps, &view->addr, &view->relay, &view->peer) :
			     p2p_sconn_dial_fwd(ps, &view->addr, &view->peer);
	if (!sc) {
		b->dead = true;
		p2p_bridge_progress(b);
		return;
	}
	b->conn = sc->slot;
	if (sc->established) {
		p2p_bridge_open_stream(ps, b, sc);
	}
}

void p2p_bridge_conn_up(struct p2p_shard *ps, struct p2p_sconn *sc)
{
	for (uint32_t i = 0; i < P2P_BRIDGES_MAX; i++) {
		struct p2p_bridge *b = &ps->br[i];

		if (b->used && b->waiting_conn && b->conn == sc->slot && !b->dead) {
			p2p_bridge_open_stream(ps, b, sc);
		}
	}
	p2p_flow_conn_up(ps, sc);
}

void p2p_bridge_conn_gone(struct p2p_shard *ps, uint32_t slot)
{
	p2p_flow_conn_gone(ps, slot);
	for (uint32_t i = 0; i < P2P_BRIDGES_MAX; i++) {
		struct p2p_bridge *b = &ps->br[i];

		if (b->used && b->waiting_conn && b->conn == slot) {
			b->waiting_conn = false;
			b->dead = true;
			p2p_bridge_progress(b);
		}
	}
}

/* ---- completions --------------------------------------------------------------------------- */

void p2p_bridge_handle_cqe(struct p2p_shard *ps, uint32_t i, unsigned int dir, int res)
{
	struct p2p_bridge *b;
	struct p2p_svc_stats *st;
	int one = 1;

	if (i >= P2P_BRIDGES_MAX || !ps->br[i].used) {
		return;
	}
	b = &ps->br[i];
	b->inflight--;
	if (dir == P2P_D_RECV) {
		b->recv_busy = false;
		if (res < 0) {
			if (res != -ECANCELED) {
				p2p_bridge_abort(b);
			}
		} else if (!b->dead) {
			b->r_len = (size_t)res;
			b->r_off = 0;
			b->tcp_eof = res == 0;
			p2p_bridge_to_stream(b);
		}
	} else if (b->tcp_connecting) {
		b->tcp_connecting = false;
		if (res < 0) {
			p2p_bridge_abort(b);
		} else {
			setsockopt(b->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
			p2p_bridge_tcp_send(b);
			p2p_bridge_tcp_recv(b);
			if (b->fl) {
				p2p_flow_pump(b);
			}
		}
	} else {
		b->send_busy = false;
		if (res < 0) {
			p2p_bridge_abort(b);
		} else if (b->q_head) {
			struct p2p_chunk *c = b->q_head;

			c->off += (size_t)res;
			st = p2p_bridge_st(b);
			if (st) {
				stat_add(&st->bytes_to_tcp, (uint64_t)res);
			}
			if (c->off == c->len) {
				b->q_head = c->next;
				if (!b->q_head) {
					b->q_tail = NULL;
				}
				b->queued -= c->len;
				if (b->fl && !b->dead) {
					/* room in the TCP queue: take more from the paths */
					p2p_flow_pump(b);
				} else if (b->s && !b->dead) {
					/* Credit the peer only now: the yamux window is the limit. */
					p2p_stream_consumed(b->s, c->len);
					p2p_bridge_kick(b);
				}
				free(c);
			}
			p2p_bridge_tcp_send(b);
		}
	}
	p2p_bridge_progress(b);
}

/* ---- services view ------------------------------------------------------------------------- */

/* p2p_svc_read - consistent copy of svc[@i] into @out; false when it was being written. */
static bool p2p_svc_read(struct p2p_svc *v, struct p2p_svc_view *out)
{
	uint32_t s1 = __atomic_load_n(&v->seq, __ATOMIC_ACQUIRE), s2;

	if (s1 & 1) {
		return false;
	}
	out->kind = __atomic_load_n(&v->kind, __ATOMIC_RELAXED);
	out->id = v->id;
	memcpy(out->protocol, v->protocol, sizeof(out->protocol));
	out->protocol[P2P_PROTO_MAX - 1] = '\0';
	out->addr = v->addr;
	out->peer = v->peer;
	out->circuit = v->circuit;
	out->relay = v->relay;
	out->flow = v->flow;
	out->repair_ms = v->repair_ms;
	out->n_alt = v->n_alt < P2P_FWD_ALT_MAX ? v->n_alt : P2P_FWD_ALT_MAX;
	memcpy(out->alt, v->alt, sizeof(out->alt));
	out->lfd = v->lfd;
	__atomic_thread_fence(__ATOMIC_ACQUIRE);
	s2 = __atomic_load_n(&v->seq, __ATOMIC_RELAXED);
	return s1 == s2;
}

/* p2p_protos_hash - FNV-1a over the shard's protocol list (to see whether a refresh changed it). */
static uint64_t p2p_protos_hash(const struct p2p_shard *ps)
{
	uint64_t h = 1469598103934665603ULL;

	for (size_t i = 0; ps->host.protocols && i < ps->host.n_protocols; i++) {
		for (const char *p = ps->host.protocols[i]; *p; p++) {
			h = (h ^ (uint8_t)*p) * 1099511628211ULL;
		}
		h = (h ^ 0xff) * 1099511628211ULL;
	}
	return h;
}

/*
 * p2p_protos_announce - the protocol list changed (a service exposed or closed, the relay or
 * hole punching turned on): connections made before take the new list, so a peer already
 * connected can open the new protocols (a relay restarted by natxd is connected to before natxd
 * turns its hop server on), and learn them from an identify push.
 */
static void p2p_protos_announce(struct p2p_shard *ps)
{
	for (uint32_t i = 0; i < ps->conns_hw; i++) {
		struct p2p_sconn *sc = &ps->conns[i];

		if (!sc->c || sc->dead) {
			continue;
		}
		p2p_conn_protocols_refresh(sc->c);
		if (sc->established && !p2p_conn_identify_push(sc->c)) {
			p2p_sconn_mark(sc); /* sent after the current event */
		}
	}
}

void p2p_svc_refresh(struct p2p_shard *ps)
{
	struct p2p_eng *pe = ps->sh->eng->p2p;
	uint32_t gen = __atomic_load_n(&pe->svc_gen, __ATOMIC_ACQUIRE);
	bool consistent = true, shard0 = ps->sh->idx == 0, exposes = false;
	uint64_t before = p2p_protos_hash(ps);
	size_t n = 0;

	for (uint32_t i = 0; i < P2P_SVC_MAX; i++) {
		struct p2p_svc_view nv, *cur = &ps->views[i];

		if (!p2p_svc_read(&pe->svc[i], &nv)) {
			consistent = false;
			continue;
		}
		if (nv.kind != cur->kind || nv.id != cur->id) {
			bool armed = cur->accept_armed;
			int lfd = cur->lfd;

			if (cur->kind == P2P_SVC_FORWARD && armed && cur->id == nv.id) {
				nv.lfd = lfd; /* FORWARD -> CLOSING: still the armed listener */
			}
			*cur = nv;
			cur->accept_armed = armed;
		}
		if (cur->kind == P2P_SVC_EXPOSE) {
			if (strcmp(ps->proto_store[i], cur->protocol)) {
				memcpy(ps->proto_store[i], cur->protocol, P2P_PROTO_MAX);
			}
			ps->protos[n++] = ps->proto_store[i];
			exposes = true;
		}
		if (!shard0) {
			continue;
		}
		if (cur->kind == P2P_SVC_FORWARD && !cur->accept_armed && !ps->sh->draining) {
			struct io_uring_sqe *sqe = shard_sqe(ps->sh);

			io_uring_prep_multishot_accept(sqe, cur->lfd, NULL, NULL,
						       SOCK_NONBLOCK | SOCK_CLOEXEC);
			io_uring_sqe_set_data64(sqe, udata_pack(UD_P2P, P2P_D_ACCEPT, 0, 0, 1 + i));
			cur->accept_armed = true;
		} else if (cur->kind == P2P_SVC_CLOSING && cur->accept_armed) {
			struct io_uring_sqe *sqe = shard_sqe(ps->sh);

			io_uring_prep_cancel64(sqe, udata_pack(UD_P2P, P2P_D_ACCEPT, 0, 0, 1 + i),
					       0);
			io_uring_sqe_set_data64(sqe, udata_pack(UD_NONE, 0, 0, 0, 0));
		} else if (cur->kind == P2P_SVC_CLOSING) {
			/* The accept has ended: close the listener and free the entry. */
			close(cur->lfd);
			cur->kind = P2P_SVC_FREE;
			__atomic_store_n(&pe->svc[i].kind, P2P_SVC_FREE, __ATOMIC_RELEASE);
			consistent = false; /* look again: the entry may be reused at once */
		}
	}
	if (exposes) {
		/* every exposed service can also be OPENed as a migratable flow (p2p_flow.c) */
		ps->protos[n++] = P2P_FLOW_PROTOCOL;
	}
	n += p2p_relay_protocols(ps, ps->protos + n); /* hop when the relay is on, stop */
	n += p2p_dcu_protocols(ps, ps->protos + n); /* /libp2p/dcutr when hole punching is on */
	n += p2p_atn_protocols(ps, ps->protos + n); /* /libp2p/autonat/1.0.0 on shard 0 */
	ps->host.protocols = ps->protos;
	ps->host.n_protocols = n;
	if (consistent) {
		ps->svc_gen = gen;
	}
	if (p2p_protos_hash(ps) != before) {
		p2p_protos_announce(ps);
	}
}

void p2p_bridge_tick(struct p2p_shard *ps)
{
	p2p_flow_tick(ps);
}

void p2p_bridge_teardown(struct p2p_shard *ps)
{
	p2p_flow_teardown(ps);
	for (uint32_t i = 0; i < P2P_BRIDGES_MAX; i++) {
		struct p2p_bridge *b = &ps->br[i];

		if (b->used) {
			b->inflight = 0;
			b->s = NULL;
			b->dead = true;
			p2p_bridge_free(b);
		}
	}
	if (ps->sh->idx == 0) {
		for (uint32_t i = 0; i < P2P_SVC_MAX; i++) {
			if (ps->views[i].kind == P2P_SVC_CLOSING) {
				close(ps->views[i].lfd);
			}
		}
	}
}
