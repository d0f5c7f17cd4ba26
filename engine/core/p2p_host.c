// SPDX-License-Identifier: MIT
/* libp2p connections on the engine's shards (see p2p_host.h). */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "engine.h"
#include "natx/err.h"
#include "natx/log.h"
#include "natx/udata.h"
#include "p2p/conn.h"
#include "p2p_host.h"
#include "p2p_int.h"

#define MOD "p2p"

struct p2p_shard_stats *p2p_st(struct p2p_shard *ps)
{
	return &ps->sh->eng->p2p->st[ps->sh->idx];
}

/* ---- requests (shard side) ----------------------------------------------------------------- */

/* p2p_req_finish - publish @result for request @r (or free it if the caller gave up). */
void p2p_req_finish(struct p2p_eng *pe, int r, int err, cJSON *result)
{
	struct p2p_req *q = &pe->req[r];
	int expect = P2P_REQ_QUEUED;

	if (q->result && q->result != result) {
		cJSON_Delete(q->result); /* partial ping results of a failed request */
	}
	q->err = err;
	q->result = result;
	if (!__atomic_compare_exchange_n(&q->state, &expect, P2P_REQ_DONE, false, __ATOMIC_ACQ_REL,
					 __ATOMIC_ACQUIRE)) {
		/* ABANDONED: nobody will read it. */
		cJSON_Delete(result);
		q->result = NULL;
		__atomic_store_n(&q->state, P2P_REQ_FREE, __ATOMIC_RELEASE);
	}
}

/* p2p_sconn_req_fail - the connection ends before its request finished. */
void p2p_sconn_req_fail(struct p2p_sconn *sc, int err)
{
	if (sc->req < 0) {
		return;
	}
	p2p_req_finish(sc->ps->sh->eng->p2p, sc->req, err ? err : -ECONNRESET, NULL);
	sc->req = -1;
}

/* ---- connection I/O ------------------------------------------------------------------------ */

/* p2p_sconn_fail - mark @sc dead with @err (0: orderly EOF) and count it. */
void p2p_sconn_fail(struct p2p_sconn *sc, int err)
{
	struct p2p_shard_stats *st = p2p_st(sc->ps);

	if (sc->dead) {
		return;
	}
	sc->dead = true;
	if (sc->tcp_up && !sc->established) {
		/* Any close before Noise + yamux are up: garbage, Noise failure, abandoned. */
		stat_add(&st->handshake_failed, 1);
	}
	if (err && err != -ECONNRESET && err != -EPIPE) {
		stat_add(&st->conns_failed, 1);
		pr_debug(MOD, "shard %u conn %u closed: %s", sc->ps->sh->idx, sc->slot,
			 natx_strerror(err));
	}
	if (err && sc->established && sc->c && (err == -ETIMEDOUT || p2p_conn_streams(sc->c))) {
		/* why the flows of this connection end (relay gone, path dark: keepalive timeout) */
		const struct peer_id *who = p2p_conn_remote(sc->c);
		char id[PEERID_TEXT_MAX] = "?";

		if (who) {
			peerid_to_text(who, id, sizeof(id));
		}
		pr_info(MOD, "%s connection to %s lost: %s (%zu stream(s) reset)",
			sc->is_link ? "relayed" : "direct", id, natx_strerror(err),
			p2p_conn_streams(sc->c));
	}
	p2p_sconn_req_fail(sc, err);
}

/* p2p_sconn_free - last step: no request in flight; close and give the slot back. */
static void p2p_sconn_free(struct p2p_sconn *sc)
{
	struct p2p_shard *ps = sc->ps;
	struct p2p_shard_stats *st = p2p_st(ps);

	struct p2p_conn *c = sc->c;

	stat_add(&st->pings_served, p2p_conn_stats(c)->pings_served);
	p2p_sconn_req_fail(sc, -ECONNRESET);
	p2p_bridge_conn_gone(ps, sc->slot);
	p2p_dcu_conn_gone(ps, sc);
	p2p_atn_conn_gone(ps, sc);
	p2p_relay_conn_gone(ps, sc); /* relay, reservations, links over it, kept entries */
	/* Cleared first: bridges reacting to on_stream_close must not pump this connection. */
	sc->c = NULL;
	p2p_conn_free(c);
	free(sc->hand); /* parked streams were closed with the connection */
	sc->hand = NULL;
	if (sc->fd >= 0) {
		close(sc->fd);
	}
	sc->fd = -1;
	stat_sub(&st->conns_open, 1);
	p2p_sconn_release(ps, sc);
}

/* p2p_sconn_release - give the slot back (the connection is freed or handed on). */
void p2p_sconn_release(struct p2p_shard *ps, struct p2p_sconn *sc)
{
	sc->c = NULL;
	sc->link_pending = false;
	sc->is_link = false;
	sc->next_free = ps->free_head;
	ps->free_head = sc->slot;
}

/* p2p_sconn_alloc - a free connection slot, or NULL. */
struct p2p_sconn *p2p_sconn_alloc(struct p2p_shard *ps)
{
	struct p2p_sconn *sc;

	if (ps->free_head != UINT32_MAX) {
		sc = &ps->conns[ps->free_head];
		ps->free_head = sc->next_free;
	} else if (ps->conns_hw < P2P_CONNS_MAX) {
		sc = &ps->conns[ps->conns_hw++]; /* first use: the table grows page by page */
	} else {
		return NULL;
	}
	memset(sc, 0, sizeof(*sc));
	sc->ps = ps;
	sc->slot = (uint32_t)(sc - ps->conns);
	sc->fd = -1;
	sc->req = -1;
	sc->gen = ++ps->gen_next;
	sc->since_ms = ps->sh->now_ms;
	return sc;
}

static uint64_t p2p_ud(struct p2p_sconn *sc, unsigned int dir)
{
	return udata_pack(UD_P2P, dir, sc->ps->sh->idx, 0, sc->slot);
}

/*
 * p2p_sconn_pump - after every event: start the send of queued output and the next recv, or,
 * for a dead connection, flush what is queued (a GoAway) once, cancel and close.
 */
void p2p_sconn_pump(struct p2p_sconn *sc)
{
	struct shard *sh = sc->ps->sh;
	struct io_uring_sqe *sqe;
	const uint8_t *p;
	size_t len;

	if (sc->is_link) {
		p2p_sconn_mark(sc); /* relayed: flushed into the relay stream after the event */
		return;
	}
	if (!sc->dead && sc->finishing) {
		/* Request done: GoAway, flushed by the dead path below, then close. */
		sc->finishing = false;
		p2p_conn_close(sc->c);
		p2p_sconn_fail(sc, 0);
	}
	if (sc->connecting) {
		if (sc->dead && sc->punch && !sc->cancelled) {
			/* a timed-out punch: its poll would only end with the kernel's SYN retries */
			sqe = shard_sqe(sh);
			io_uring_prep_cancel_fd(sqe, sc->fd, IORING_ASYNC_CANCEL_ALL);
			io_uring_sqe_set_data64(sqe, udata_pack(UD_NONE, 0, sh->idx, 0, sc->slot));
			sc->cancelled = true;
		}
		return;
	}
	if (sc->migrating && !sc->dead) {
		p2p_relay_migrate_pump(sc); /* may hand the connection to shard 0 */
		return;
	}
	if (!sc->send_busy && !(sc->dead && sc->sock_err)) {
		p2p_conn_out_peek(sc->c, &p, &len);
		if (len) {
			sqe = shard_sqe(sh);
			io_uring_prep_send(sqe, sc->fd, p, len, MSG_NOSIGNAL);
			io_uring_sqe_set_data64(sqe, p2p_ud(sc, P2P_D_SEND));
			sc->send_busy = true;
			sc->inflight++;
		}
	}
	if (!sc->dead && !sc->recv_busy) {
		uint8_t *rp;
		size_t cap;
		int ret = p2p_conn_recv_space(sc->c, &rp, &cap);

		if (ret < 0 || !cap) {
			p2p_sconn_fail(sc, ret < 0 ? ret : -ENOBUFS);
		} else {
			sqe = shard_sqe(sh);
			io_uring_prep_recv(sqe, sc->fd, rp, cap, 0);
			io_uring_sqe_set_data64(sqe, p2p_ud(sc, P2P_D_RECV));
			sc->recv_busy = true;
			sc->inflight++;
		}
	}
	if (!sc->dead) {
		return;
	}
	/*
	 * Dead: once the flush is done (a socket that failed, or a path that went dark, gets no
	 * flush: its send is cancelled), stop the recv and close when nothing is in flight.
	 */
	if (sc->send_busy && !sc->sock_err) {
		return;
	}
	if (sc->inflight && !sc->cancelled) {
		sqe = shard_sqe(sh);
		io_uring_prep_cancel_fd(sqe, sc->fd, IORING_ASYNC_CANCEL_ALL);
		io_uring_sqe_set_data64(sqe, udata_pack(UD_NONE, 0, sh->idx, 0, sc->slot));
		sc->cancelled = true;
	}
	if (!sc->inflight) {
		p2p_sconn_free(sc);
	}
}

/* p2p_sconn_check - a p2p_conn call returned @ret: a negative value other than -EAGAIN kills. */
static void p2p_sconn_check(struct p2p_sconn *sc, int ret)
{
	if (ret < 0 && ret != -EAGAIN) {
		p2p_sconn_fail(sc, ret);
	}
}

/* ---- p2p_conn callbacks -------------------------------------------------------------------- */

static void p2p_on_established(void *ctx, struct p2p_conn *c)
{
	struct p2p_sconn *sc = ctx;
	struct p2p_req *q;

	if (!sc->c) {
		sc->c = c; /* a relayed connection established inside p2p_link_new */
	}
	sc->established = true;
	stat_add(&p2p_st(sc->ps)->conns_established, 1);
	p2p_relay_conn_up(sc->ps, sc);
	p2p_dcu_conn_up(sc->ps, sc); /* DCUtR: start as B, or a hole-punched connection */
	p2p_atn_conn_up(sc->ps, sc); /* an AutoNAT dial-back */
	if (sc->fwd) {
		p2p_bridge_conn_up(sc->ps, sc);
	}
	if (sc->req < 0) {
		return;
	}
	q = &sc->ps->sh->eng->p2p->req[sc->req];
	if (q->kind == P2P_REQ_PING) {
		p2p_sconn_check(sc, p2p_conn_ping(c));
	}
}

/* p2p_identify_json - the remote's identify record as JSON. */
static cJSON *p2p_identify_json(struct p2p_conn *c, const struct identify_record *rec)
{
	cJSON *o = cJSON_CreateObject(), *a;
	char txt[MADDR_TEXT_MAX];

	peerid_to_text(p2p_conn_remote(c), txt, sizeof(txt));
	cJSON_AddStringToObject(o, "peer_id", txt);
	cJSON_AddStringToObject(o, "agent_version", rec->agent_version ? rec->agent_version : "");
	cJSON_AddStringToObject(o, "protocol_version",
				rec->protocol_version ? rec->protocol_version : "");
	a = cJSON_AddArrayToObject(o, "protocols");
	for (size_t i = 0; i < rec->n_protocols; i++) {
		cJSON_AddItemToArray(a, cJSON_CreateString(rec->protocols[i]));
	}
	a = cJSON_AddArrayToObject(o, "listen_addrs");
	for (size_t i = 0; i < rec->n_addrs; i++) {
		if (maddr_to_text(rec->addrs[i], rec->addr_lens[i], txt, sizeof(txt)) >= 0) {
			cJSON_AddItemToArray(a, cJSON_CreateString(txt));
		}
	}
	if (rec->observed_len &&
	    maddr_to_text(rec->observed, rec->observed_len, txt, sizeof(txt)) >= 0) {
		cJSON_AddStringToObject(o, "observed_addr", txt);
	}
	return o;
}

static void p2p_on_identify(void *ctx, struct p2p_conn *c, const struct identify_record *rec,
			    int err)
{
	struct p2p_sconn *sc = ctx;

	if (sc->req < 0 || sc->ps->sh->eng->p2p->req[sc->req].kind != P2P_REQ_IDENTIFY) {
		return;
	}
	p2p_req_finish(sc->ps->sh->eng->p2p, sc->req, err, err ? NULL : p2p_identify_json(c, rec));
	sc->req = -1;
	sc->finishing = true;
}

static void p2p_on_ping(void *ctx, struct p2p_conn *c, int64_t rtt_ms, int err)
{
	struct p2p_sconn *sc = ctx;
	struct p2p_eng *pe = sc->ps->sh->eng->p2p;
	struct p2p_req *q;

	p2p_flow_on_ping(sc->ps, sc, err); /* a flow's liveness probe (p2p_flow.c) */
	if (sc->req < 0 || pe->req[sc->req].kind != P2P_REQ_PING) {
		return;
	}
	q = &pe->req[sc->req];
	if (err) {
		p2p_sconn_req_fail(sc, err);
		sc->finishing = true;
		return;
	}
	if (!q->result) {
		char txt[PEERID_TEXT_MAX];

		/* Built by the shard, handed over with the DONE state (release). */
		q->result = cJSON_CreateObject();
		peerid_to_text(p2p_conn_remote(c), txt, sizeof(txt));
		cJSON_AddStringToObject(q->result, "peer_id", txt);
		cJSON_AddArrayToObject(q->result, "rtt_ms");
	}
	cJSON_AddItemToArray(cJSON_GetObjectItem(q->result, "rtt_ms"),
			     cJSON_CreateNumber((double)rtt_ms));
	if (++sc->pings_done < q->count) {
		p2p_sconn_check(sc, p2p_conn_ping(c));
		return;
	}
	p2p_req_finish(sc->ps->sh->eng->p2p, sc->req, 0, q->result);
	sc->req = -1;
	sc->finishing = true;
}

static void p2p_on_stream_open(void *ctx, struct p2p_stream *s, const char *protocol)
{
	struct p2p_sconn *sc = ctx;

	/* Only inbound application streams reach here (bridges set their own ops). */
	if (p2p_relay_stream_open(sc, s, protocol)) {
		return; /* hop / stop */
	}
	if (p2p_dcu_stream_open(sc, s, protocol)) {
		return;
	}
	if (p2p_atn_stream_open(sc, s, protocol)) {
		return;
	}
	if (sc->migrating) {
		p2p_stream_reset(s); /* this connection is leaving the shard */
		return;
	}
	p2p_bridge_on_stream_open(sc, s, protocol);
}

const struct p2p_conn_ops p2p_sconn_ops = {
	.on_established = p2p_on_established,
	.on_stream_open = p2p_on_stream_open,
	.on_identify = p2p_on_identify,
	.on_ping = p2p_on_ping,
};

/* ---- completions --------------------------------------------------------------------------- */

/* p2p_sconn_new - wrap socket @fd (accepted or connecting) in a connection; NULL when full. */
static struct p2p_sconn *p2p_sconn_new(struct p2p_shard *ps, int fd, bool dialer,
				       const struct peer_id *expect)
{
	struct p2p_shard_stats *st = p2p_st(ps);
	struct p2p_sconn *sc;
	int one = 1, err;

	if (ps->svc_gen != __atomic_load_n(&ps->sh->eng->p2p->svc_gen, __ATOMIC_ACQUIRE)) {
		p2p_svc_refresh(ps); /* new connections must offer the exposed protocols */
	}
	sc = p2p_sconn_alloc(ps);

	if (!sc) {
		stat_add(&st->conns_refused, 1);
		return NULL;
	}
	sc->c = p2p_conn_new(&ps->host, dialer, expect, &p2p_sconn_ops, sc, &err);
	if (!sc->c) {
		sc->next_free = ps->free_head;
		ps->free_head = sc->slot;
		stat_add(&st->conns_refused, 1);
		return NULL;
	}
	p2p_conn_set_user(sc->c, sc);
	sc->dialer = dialer;
	sc->fd = fd;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	stat_add(&st->conns_open, 1);
	stat_add(dialer ? &st->conns_out : &st->conns_in, 1);
	return sc;
}

static void p2p_handle_accept(struct p2p_shard *ps, struct io_uring_cqe *cqe)
{
	struct shard *sh = ps->sh;
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	struct p2p_sconn *sc;
	struct peer_id want;
	bool named, client;

	if (!(cqe->flags & IORING_CQE_F_MORE)) {
		ps->accept_armed = false; /* re-armed on the next tick */
	}
	if (cqe->res < 0) {
		return;
	}
	named = !getpeername(cqe->res, (struct sockaddr *)&ss, &sl);
	/* a DCUtR peer's punch socket reaching us: we are its client (p2p_dcu_accept_client) */
	client = named && p2p_dcu_accept_client(ps, &ss, &want);
	sc = p2p_sconn_new(ps, cqe->res, client, client ? &want : NULL);
	if (!sc) {
		close(cqe->res);
		return;
	}
	sc->tcp_up = true;
	if (named) {
		p2p_conn_set_remote_addr(sc->c, (struct sockaddr *)&ss);
		sc->ss = ss; /* the relay's per-IP limit, `peers` */
	}
	(void)sh;
	if (client) {
		sc->dcu_acc = true;
		p2p_sconn_check(sc, p2p_conn_start(sc->c));
	}
	p2p_sconn_pump(sc);
}

static void p2p_accept_arm(struct p2p_shard *ps)
{
	struct shard *sh = ps->sh;
	struct io_uring_sqe *sqe;

	if (ps->accept_armed || sh->draining || sh->idx >= sh->eng->p2p->nlfd) {
		return;
	}
	sqe = shard_sqe(sh);
	io_uring_prep_multishot_accept(sqe, sh->eng->p2p->lfd[sh->idx], NULL, NULL,
				       SOCK_NONBLOCK | SOCK_CLOEXEC);
	io_uring_sqe_set_data64(sqe, udata_pack(UD_P2P, P2P_D_ACCEPT, sh->idx, 0, 0));
	ps->accept_armed = true;
}

/* p2p_shard_init - the shard's host and connection table (on the shard thread). */
static struct p2p_shard *p2p_shard_init(struct shard *sh)
{
	struct p2p_eng *pe = sh->eng->p2p;
	struct p2p_shard *ps = calloc(1, sizeof(*ps));

	if (!ps) {
		return NULL;
	}
	ps->sh = sh;
	ps->host.idn = &pe->idn;
	ps->host.listen_addrs = pe->laddrs;
	ps->host.listen_addr_lens = pe->laddr_lens;
	ps->host.n_listen_addrs = 1;
	ps->host.clock = &p2p_clock_system;
	ps->host.rng = &p2p_rng_system;
	ps->host.early_muxer = true;
	ps->host.keepalive_ms = sh->eng->cfg->p2p_keepalive_s * 1000;
	ps->host.keepalive_timeout_ms = sh->eng->cfg->p2p_keepalive_timeout_s * 1000;
	ps->host.on_output = p2p_relay_on_output;
	ps->svc_gen = pe->svc_gen - 1; /* build the protocol list before the first connection */
	/* no slot is on the free list yet: p2p_sconn_alloc takes new ones at conns_hw */
	ps->free_head = UINT32_MAX;
	p2p_relay_shard_init(ps);
	p2p_dcu_shard_init(ps);
	p2p_atn_shard_init(ps);
	return ps;
}

/* p2p_dial - start request @r: socket + IORING_OP_CONNECT. */
void p2p_dial(struct p2p_shard *ps, int r)
{
	struct p2p_req *q = &ps->sh->eng->p2p->req[r];
	struct io_uring_sqe *sqe;
	struct p2p_sconn *sc;
	int fd;

	fd = socket(q->ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		p2p_req_finish(ps->sh->eng->p2p, r, -errno, NULL);
		return;
	}
	sc = p2p_sconn_new(ps, fd, true, q->has_id ? &q->id : NULL);
	if (!sc) {
		close(fd);
		p2p_req_finish(ps->sh->eng->p2p, r, -ENOSPC, NULL);
		return;
	}
	sc->req = r;
	sc->ss = q->ss;
	sc->connecting = true;
	sc->deadline_ms = ps->sh->now_ms + P2P_DIAL_TIMEOUT_MS;
	p2p_conn_set_remote_addr(sc->c, (struct sockaddr *)&sc->ss);
	sqe = shard_sqe(ps->sh);
	io_uring_prep_connect(sqe, fd, (struct sockaddr *)&sc->ss,
			      sc->ss.ss_family == AF_INET6 ? sizeof(struct sockaddr_in6) :
							     sizeof(struct sockaddr_in));
	io_uring_sqe_set_data64(sqe, p2p_ud(sc, P2P_D_SEND));
	sc->inflight++;
}

struct p2p_sconn *p2p_sconn_connect(struct p2p_shard *ps, int fd, const struct sockaddr_storage *ss,
				    const struct peer_id *peer)
{
	struct io_uring_sqe *sqe;
	struct p2p_sconn *sc;

	sc = p2p_sconn_new(ps, fd, true, peer);
	if (!sc) {
		return NULL;
	}
	sc->ss = *ss;
	sc->connecting = true;
	sc->deadline_ms = ps->sh->now_ms + P2P_DIAL_TIMEOUT_MS;
	p2p_conn_set_remote_addr(sc->c, (struct sockaddr *)&sc->ss);
	sqe = shard_sqe(ps->sh);
	io_uring_prep_connect(sqe, fd, (struct sockaddr *)&sc->ss,
			      sc->ss.ss_family == AF_INET6 ? sizeof(struct sockaddr_in6) :
							     sizeof(struct sockaddr_in));
	io_uring_sqe_set_data64(sqe, p2p_ud(sc, P2P_D_SEND));
	sc->inflight++;
	return sc;
}

/* p2p_punch_poll - wait for the hole-punch socket of @sc to become writable (or fail). */
static void p2p_punch_poll(struct p2p_sconn *sc)
{
	struct io_uring_sqe *sqe = shard_sqe(sc->ps->sh);

	io_uring_prep_poll_add(sqe, sc->fd, POLLOUT);
	io_uring_sqe_set_data64(sqe, p2p_ud(sc, P2P_D_SEND));
	sc->connecting = true;
	sc->inflight++;
}

/*
 * p2p_punch_check - the punch socket polled writable or in error: 1 connected, 0 still
 * connecting (the ICMP time-exceeded of the first SYN is a soft error: SO_ERROR reports it once
 * while the kernel keeps retransmitting), -errno failed.
 */
static int p2p_punch_check(struct p2p_sconn *sc)
{
	struct tcp_info ti;
	socklen_t sl = sizeof(int);
	int e = 0;

	getsockopt(sc->fd, SOL_SOCKET, SO_ERROR, &e, &sl);
	sl = sizeof(ti);
	if (getsockopt(sc->fd, IPPROTO_TCP, TCP_INFO, &ti, &sl)) {
		return -errno;
	}
	if (ti.tcpi_state == TCP_ESTABLISHED) {
		return 1;
	}
	if ((ti.tcpi_state == TCP_SYN_SENT || ti.tcpi_state == TCP_SYN_RECV) &&
	    (!e || e == EHOSTUNREACH || e == ENETUNREACH)) {
		return 0;
	}
	return -(e ? e : ECONNREFUSED);
}

struct p2p_sconn *p2p_sconn_punch(struct p2p_shard *ps, int fd, const struct sockaddr_storage *ss,
				  const struct peer_id *peer, bool client, uint32_t wait_ms)
{
	struct p2p_sconn *sc = p2p_sconn_new(ps, fd, client, peer);
	struct io_uring_sqe *sqe;

	if (!sc) {
		return NULL;
	}
	sc->ss = *ss;
	sc->punch = true;
	sc->deadline_ms = ps->sh->now_ms + wait_ms + P2P_DIAL_TIMEOUT_MS;
	p2p_conn_set_remote_addr(sc->c, (struct sockaddr *)&sc->ss);
	if (!wait_ms) {
		p2p_punch_poll(sc);
		return sc;
	}
	/* DCUtR's half-RTT wait: the connect starts when this timeout completes */
	sc->punch_wait = true;
	sc->punch_ts.tv_sec = wait_ms / 1000;
	sc->punch_ts.tv_nsec = (long long)(wait_ms % 1000) * 1000000;
	sqe = shard_sqe(ps->sh);
	io_uring_prep_timeout(sqe, &sc->punch_ts, 0, 0);
	io_uring_sqe_set_data64(sqe, p2p_ud(sc, P2P_D_SEND));
	sc->connecting = true;
	sc->inflight++;
	return sc;
}

struct p2p_sconn *p2p_sconn_dial_fwd(struct p2p_shard *ps, const struct sockaddr_storage *ss,
				     const struct peer_id *peer)
{
	struct p2p_sconn *sc;
	int fd;

	for (uint32_t i = 0; i < P2P_CONNS_MAX; i++) {
		sc = &ps->conns[i];
		if (sc->c && sc->fwd && !sc->dead && !sc->is_link &&
		    peerid_equal(&sc->peer, peer)) {
			return sc;
		}
	}
	fd = socket(ss->ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		return NULL;
	}
	sc = p2p_sconn_connect(ps, fd, ss, peer);
	if (!sc) {
		close(fd);
		return NULL;
	}
	sc->fwd = true;
	sc->peer = *peer;
	return sc;
}

static void p2p_shard_handle_one(struct shard *sh, struct io_uring_cqe *cqe);

void p2p_shard_handle_cqe(struct shard *sh, struct io_uring_cqe *cqe)
{
	p2p_shard_handle_one(sh, cqe);
	if (sh->p2p) {
		/* Connections other than the completed one that got bytes to send (relay splices,
		 * relayed connections), and relayed connections that died. */
		p2p_relay_flush(sh->p2p);
	}
}

static void p2p_shard_handle_one(struct shard *sh, struct io_uring_cqe *cqe)
{
	struct p2p_shard *ps = sh->p2p;
	unsigned int dir = udata_dir(cqe->user_data);
	uint32_t slot = udata_slot(cqe->user_data);
	struct p2p_sconn *sc;
	int ret;

	if (dir == P2P_D_MSG) {
		if (!ps && sh->eng->p2p) {
			ps = sh->p2p = p2p_shard_init(sh);
		}
		if (!ps) {
			if (slot) {
				p2p_req_finish(sh->eng->p2p, (int)slot - 1, -ENOMEM, NULL);
			}
			return;
		}
		ps->started = true;
		if (slot == 0) {
			p2p_accept_arm(ps);
		} else if (slot == P2P_MSG_REFRESH) {
			p2p_svc_refresh(ps);
		} else if (slot == P2P_MSG_ADOPT) {
			p2p_relay_adopt(ps);
		} else if (slot <= P2P_REQ_MAX) {
			p2p_relay_req_start(ps, (int)slot - 1);
		}
		return;
	}
	if (!ps) {
		return;
	}
	if (dir == P2P_D_ACCEPT) {
		if (slot == 0) {
			p2p_handle_accept(ps, cqe);
		} else if (slot <= P2P_SVC_MAX) {
			p2p_bridge_fwd_accept(ps, slot - 1, cqe);
		}
		return;
	}
	if (slot >= P2P_CONNS_MAX) {
		p2p_bridge_handle_cqe(ps, slot - P2P_CONNS_MAX, dir, cqe->res);
		return;
	}
	if (!ps->conns[slot].c) {
		return;
	}
	sc = &ps->conns[slot];
	sc->inflight--;
	if (dir == P2P_D_RECV) {
		if (cqe->res <= 0) {
			sc->recv_busy = false;
			if (cqe->res != -ECANCELED) {
				sc->sock_err = cqe->res < 0;
				p2p_sconn_fail(sc, cqe->res ? cqe->res : -ECONNRESET);
			}
		} else if (!sc->dead) {
			stat_add(&p2p_st(ps)->bytes_in, (uint64_t)cqe->res);
			/*
			 * recv_busy stays set while the bytes are processed: a callback that pumps
			 * this connection (a bridge) must not start a recv into the input buffer,
			 * which recv_commit compacts when it returns.
			 */
			ret = p2p_conn_recv_commit(sc->c, (size_t)cqe->res);
			sc->recv_busy = false;
			p2p_sconn_check(sc, ret);
		} else {
			sc->recv_busy = false;
		}
	} else if (sc->connecting) {
		sc->connecting = false;
		ret = cqe->res;
		if (sc->punch_wait) {
			/* the wait before a delayed punch is over (-ETIME): connect now */
			sc->punch_wait = false;
			ret = sc->dead ? -ECANCELED : p2p_dcu_punch_fire(sc);
			if (!ret) {
				p2p_punch_poll(sc);
				return;
			}
		} else if (sc->punch && ret >= 0 && !sc->dead) {
			ret = p2p_punch_check(sc);
			if (!ret) {
				p2p_punch_poll(
					sc); /* still in SYN_SENT: the retransmission is due */
				return;
			}
			ret = ret < 0 ? ret : 0;
		} else if (sc->punch && sc->dead) {
			ret = -ECANCELED;
		}
		if (ret < 0) {
			stat_add(&p2p_st(ps)->dials_failed, 1);
			sc->sock_err = true;
			p2p_sconn_fail(sc, ret);
		} else {
			sc->tcp_up = true;
			p2p_sconn_check(sc, p2p_conn_start(sc->c));
		}
	} else {
		sc->send_busy = false;
		if (cqe->res < 0) {
			sc->sock_err = true;
			p2p_sconn_fail(sc, cqe->res);
		} else {
			stat_add(&p2p_st(ps)->bytes_out, (uint64_t)cqe->res);
			p2p_conn_out_advance(sc->c, (size_t)cqe->res);
			if (sc->dead) {
				/* Flushed the last bytes (GoAway): close now. */
				sc->sock_err = true;
			}
		}
	}
	p2p_sconn_pump(sc);
}

void p2p_shard_tick(struct shard *sh)
{
	struct p2p_shard *ps = sh->p2p;

	if (!ps) {
		return;
	}
	if (!ps->accept_armed && ps->started) {
		p2p_accept_arm(ps);
	}
	if (ps->svc_gen != __atomic_load_n(&sh->eng->p2p->svc_gen, __ATOMIC_ACQUIRE)) {
		p2p_svc_refresh(ps);
	}
	for (uint32_t i = 0; i < P2P_CONNS_MAX; i++) {
		struct p2p_sconn *sc = &ps->conns[i];

		if (!sc->c || sc->dead) {
			continue;
		}
		if (sc->deadline_ms && sh->now_ms >= sc->deadline_ms &&
		    (sc->req >= 0 || !sc->established)) {
			if (sc->connecting) {
				stat_add(&p2p_st(ps)->dials_failed, 1);
			}
			sc->sock_err = sc->connecting;
			p2p_sconn_fail(sc, -ETIMEDOUT);
		} else if (!sc->connecting) {
			int err = p2p_conn_tick(sc->c);

			/* keepalive timeout: the path is dead, a send in flight never completes */
			sc->sock_err |= err == -ETIMEDOUT;
			p2p_sconn_check(sc, err);
		}
		p2p_sconn_pump(sc);
	}
	p2p_relay_tick(ps);
	p2p_dcu_tick(ps);
	p2p_atn_tick(ps);
	p2p_bridge_tick(ps); /* flows: ACKs, switches to direct paths, repairs */
	p2p_relay_flush(ps);
}

void p2p_shard_teardown(struct shard *sh)
{
	struct p2p_shard *ps = sh->p2p;

	if (!ps) {
		return;
	}
	/* The ring's requests are gone (shard_cancel_all ran). Bridges first: freeing a
	 * connection calls on_stream_close of its bridged streams. */
	p2p_bridge_teardown(ps);
	p2p_atn_shard_teardown(ps);
	p2p_dcu_shard_teardown(ps);
	p2p_relay_shard_teardown(ps); /* relayed connections, relay, client, handoffs */
	for (uint32_t i = 0; i < P2P_CONNS_MAX; i++) {
		if (ps->conns[i].c) {
			ps->conns[i].inflight = 0;
			ps->conns[i].req >= 0 ? p2p_sconn_req_fail(&ps->conns[i], -ESHUTDOWN) :
						(void)0;
			p2p_sconn_free(&ps->conns[i]);
		}
	}
	free(ps);
	sh->p2p = NULL;
}
