// SPDX-License-Identifier: MIT
/*
 * Circuit Relay v2 hop server on the engine's shards (docs/libp2p.md "Relay in the engine").
 *
 * Shard 0 runs the one struct relay (engine/p2p/relay.c): one reservation table and one set of
 * limits for the whole engine, and every circuit spliced in one thread. A hop stream that
 * arrives on another shard parks (its first bytes kept, at most P2P_PARK_BYTES) while its
 * connection moves to shard 0: the shard stops the connection's recv (cancel), waits until no
 * request of it is in flight, queues the socket and the p2p_conn on eng->p2p->handoffs (under
 * eng->p2p->lock) and wakes shard 0 with a MSG_RING; shard 0 adopts them (p2p_conn_rebind) and
 * gives the parked streams to the relay. So the target's connection (it reserved) and the
 * source's connection (it sent CONNECT) are both on shard 0, and the relay's splice moves bytes
 * between them with yamux back-pressure both ways. A connection is owned by one shard, then by
 * shard 0; nothing of it is shared.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "engine.h"
#include "natx/err.h"
#include "natx/log.h"
#include "natx/udata.h"
#include "p2p/link.h"
#include "p2p/relay.h"
#include "p2p/relay_client.h"
#include "p2p_int.h"

#define MOD "p2p"

enum {
	P2P_TOP_TALKERS = 10,
	P2P_STATUS_CIRCUITS = 64, /* circuits listed in relay status */
};

static int64_t p2p_unix_now(void *ctx)
{
	return (int64_t)time(NULL);
}

/* ---- hop server (shard 0) ------------------------------------------------------------------ */

/* p2p_talker_add - add @n relayed bytes to @peer's total (the smallest entry makes room). */
static void p2p_talker_add(struct p2p_shard *ps, const struct peer_id *peer, uint64_t n)
{
	struct p2p_talker *min = &ps->talkers[0];

	for (int i = 0; i < P2P_TALKERS_MAX; i++) {
		struct p2p_talker *t = &ps->talkers[i];

		if (t->bytes && peerid_equal(&t->peer, peer)) {
			t->bytes += n;
			return;
		}
		if (t->bytes < min->bytes) {
			min = t;
		}
	}
	if (min->bytes < n) {
		min->peer = *peer;
		min->bytes = n;
	}
}

static void p2p_on_circuit_end(void *ctx, const struct relay_circuit_info *ci)
{
	uint64_t n = ci->bytes[0] + ci->bytes[1];

	p2p_talker_add(ctx, &ci->src, n);
	p2p_talker_add(ctx, &ci->dst, n);
}

static const struct relay_ops p2p_relay_ops = {
	.unix_now = p2p_unix_now,
	.on_circuit_end = p2p_on_circuit_end,
};

/* p2p_relay_start - shard 0: create the hop server once the control thread turned it on. */
static void p2p_relay_start(struct p2p_shard *ps)
{
	struct p2p_eng *pe = p2p_pe(ps);
	const struct p2p_relay_conf *rc = &pe->relay_conf;
	struct relay_config cfg;
	int err;

	if (ps->relay || ps->sh->idx || !__atomic_load_n(&pe->relay_on, __ATOMIC_ACQUIRE)) {
		return;
	}
	relay_config_default(&cfg);
	cfg.max_rsvp = rc->max_rsvp;
	cfg.max_rsvp_per_peer = rc->max_rsvp_per_peer;
	cfg.max_rsvp_per_ip = rc->max_rsvp_per_ip;
	cfg.max_circuits = rc->max_circuits;
	cfg.max_circuits_per_peer = rc->max_circuits_per_peer;
	cfg.rsvp_ttl_s = rc->rsvp_ttl_s;
	cfg.duration_s = rc->duration_s;
	cfg.data = rc->data;
	cfg.allow = rc->allow;
	cfg.n_allow = rc->n_allow;
	cfg.deny = rc->deny;
	cfg.n_deny = rc->n_deny;
	for (uint32_t i = 0; i < rc->n_addrs && i < P2P_RELAY_ADDRS_MAX; i++) {
		ps->relay_addrs[i] = rc->addrs[i];
	}
	cfg.public_addrs = ps->relay_addrs;
	cfg.public_addr_lens = rc->addr_lens;
	cfg.n_public_addrs = rc->n_addrs;
	ps->relay = relay_new(&pe->idn, &cfg, &p2p_clock_system, &p2p_relay_ops, ps, &err);
	if (!ps->relay) {
		pr_err(MOD, "relay: %s", natx_strerror(err));
		return;
	}
	pr_info(MOD, "circuit relay v2 hop server on (shard 0)");
}

size_t p2p_relay_protocols(struct p2p_shard *ps, const char **out)
{
	size_t n = 0;

	if (__atomic_load_n(&p2p_pe(ps)->relay_on, __ATOMIC_ACQUIRE)) {
		out[n++] = RELAY_HOP_PROTOCOL;
		p2p_relay_start(ps);
	}
	out[n++] = RELAY_STOP_PROTOCOL; /* reachable through relays we reserve on */
	return n;
}

/* ---- moving a connection to shard 0 -------------------------------------------------------- */

static void p2p_park_data(void *ctx, struct p2p_stream *s, const uint8_t *p, size_t n)
{
	struct p2p_park *pk = ctx;

	if (n > P2P_PARK_BYTES - pk->len) {
		p2p_stream_reset(s); /* more than a hop request before the relay saw it */
		return;
	}
	memcpy(pk->data + pk->len, p, n);
	pk->len += n;
}

static void p2p_park_fin(void *ctx, struct p2p_stream *s)
{
	p2p_stream_reset(s); /* a FIN before the answer: nothing the relay could serve */
}

static void p2p_park_close(void *ctx, struct p2p_stream *s)
{
	struct p2p_park *pk = ctx;

	pk->s = NULL;
	pk->len = 0;
}

static const struct p2p_conn_ops p2p_park_ops = {
	.on_stream_data = p2p_park_data,
	.on_stream_fin = p2p_park_fin,
	.on_stream_close = p2p_park_close,
};

/* p2p_sconn_movable - nothing else of the shard refers to @sc (no bridge, request, keep). */
static bool p2p_sconn_movable(struct p2p_sconn *sc)
{
	struct p2p_shard *ps = sc->ps;

	if (sc->req >= 0 || sc->fwd || sc->is_link || sc->dead || !sc->tcp_up || !sc->established) {
		return false;
	}
	for (uint32_t i = 0; i < P2P_BRIDGES_MAX; i++) {
		if (ps->br[i].used && ps->br[i].conn == sc->slot) {
			return false;
		}
	}
	return true;
}

bool p2p_relay_move_to_shard0(struct p2p_sconn *sc)
{
	if (sc->ps->sh->idx == 0 || sc->migrating || !p2p_sconn_movable(sc)) {
		return false;
	}
	if (!sc->hand) {
		sc->hand = calloc(1, sizeof(*sc->hand));
	}
	if (!sc->hand) {
		return false;
	}
	sc->migrating = true; /* p2p_sconn_pump now stops the I/O and hands it over */
	return true;
}

/* p2p_hop_open - an inbound hop stream: serve it (shard 0) or park it and move the connection. */
static void p2p_hop_open(struct p2p_sconn *sc, struct p2p_stream *s)
{
	struct p2p_shard *ps = sc->ps;
	struct p2p_park *pk = NULL;

	if (!__atomic_load_n(&p2p_pe(ps)->relay_on, __ATOMIC_ACQUIRE)) {
		p2p_stream_reset(s);
		return;
	}
	if (ps->sh->idx == 0) {
		p2p_relay_start(ps);
		if (!ps->relay) {
			p2p_stream_reset(s);
			return;
		}
		relay_hop_accept(ps->relay, s, sc->is_link ? NULL : (struct sockaddr *)&sc->ss,
				 sc->is_link);
		return;
	}
	if (!sc->migrating && !p2p_sconn_movable(sc)) {
		stat_add(&p2p_st(ps)->hop_unmovable, 1);
		p2p_stream_reset(s);
		return;
	}
	if (!sc->hand) {
		sc->hand = calloc(1, sizeof(*sc->hand));
	}
	for (int i = 0; sc->hand && i < P2P_PARK_MAX; i++) {
		if (!sc->hand->park[i].s) {
			pk = &sc->hand->park[i];
			break;
		}
	}
	if (!pk) {
		p2p_stream_reset(s);
		return;
	}
	pk->s = s;
	pk->len = 0;
	p2p_stream_set_ops(s, &p2p_park_ops, pk);
	sc->migrating = true; /* p2p_sconn_pump now stops the I/O and hands it over */
}

/* p2p_migrate_out - hand @sc (nothing in flight) to shard 0. */
static void p2p_migrate_out(struct p2p_sconn *sc)
{
	struct p2p_shard *ps = sc->ps;
	struct shard *sh = ps->sh;
	struct p2p_eng *pe = p2p_pe(ps);
	struct p2p_handoff *h = sc->hand;
	struct io_uring_sqe *sqe;

	h->c = sc->c;
	h->fd = sc->fd;
	h->established = sc->established;
	h->since_ms = sc->since_ms;
	h->ss = sc->ss;
	p2p_conn_set_user(sc->c, NULL); /* on_output must not mark the old slot */
	sc->hand = NULL;
	sc->fd = -1;
	sc->migrating = false;
	sc->mig_cancel = false;
	stat_sub(&p2p_st(ps)->conns_open, 1);
	stat_add(&p2p_st(ps)->conns_migrated, 1);
	p2p_sconn_release(ps, sc);
	pthread_mutex_lock(&pe->lock);
	h->next = pe->handoffs;
	__atomic_store_n(&pe->handoffs, h, __ATOMIC_RELEASE); /* shard 0's tick peeks at it */
	pthread_mutex_unlock(&pe->lock);
	/* Wake shard 0; if this message is lost, shard 0's tick finds the queue anyway. */
	sqe = shard_sqe(sh);
	io_uring_prep_msg_ring(sqe, sh->eng->shards[0]->ring.ring_fd, 0,
			       udata_pack(UD_P2P, P2P_D_MSG, sh->idx, 0, P2P_MSG_ADOPT), 0);
	io_uring_sqe_set_data64(sqe, udata_pack(UD_NONE, 0, sh->idx, 0, 0));
}

void p2p_relay_migrate_pump(struct p2p_sconn *sc)
{
	struct shard *sh = sc->ps->sh;
	struct io_uring_sqe *sqe;

	if (sc->recv_busy) {
		if (!sc->mig_cancel) {
			sqe = shard_sqe(sh);
			io_uring_prep_cancel64(
				sqe, udata_pack(UD_P2P, P2P_D_RECV, sh->idx, 0, sc->slot), 0);
			io_uring_sqe_set_data64(sqe, udata_pack(UD_NONE, 0, sh->idx, 0, sc->slot));
			sc->mig_cancel = true;
		}
		return;
	}
	if (sc->send_busy || sc->inflight) {
		return; /* the send completes first; queued output moves with the connection */
	}
	p2p_migrate_out(sc);
}

/* Callbacks of a connection nobody serves any more (dropped handoffs). */
static const struct p2p_conn_ops p2p_null_ops;
static const struct p2p_host p2p_null_host;

/* p2p_handoff_drop - close a handed-off connection that cannot be adopted. */
static void p2p_handoff_drop(struct p2p_handoff *h)
{
	for (int i = 0; i < P2P_PARK_MAX; i++) {
		if (h->park[i].s) {
			p2p_stream_detach(h->park[i].s);
		}
	}
	p2p_conn_rebind(h->c, &p2p_null_host, &p2p_null_ops, NULL);
	p2p_conn_free(h->c);
	close(h->fd);
	free(h);
}

void p2p_handoffs_drop(struct p2p_eng *pe)
{
	struct p2p_handoff *h, *next;

	pthread_mutex_lock(&pe->lock);
	h = pe->handoffs;
	__atomic_store_n(&pe->handoffs, NULL, __ATOMIC_RELAXED);
	pthread_mutex_unlock(&pe->lock);
	for (; h; h = next) {
		next = h->next;
		p2p_handoff_drop(h);
	}
}

void p2p_relay_adopt(struct p2p_shard *ps)
{
	struct p2p_eng *pe = p2p_pe(ps);
	struct p2p_handoff *h, *next;

	if (ps->sh->idx != 0) {
		return;
	}
	pthread_mutex_lock(&pe->lock);
	h = pe->handoffs;
	__atomic_store_n(&pe->handoffs, NULL, __ATOMIC_RELAXED);
	pthread_mutex_unlock(&pe->lock);
	if (h && ps->svc_gen != __atomic_load_n(&pe->svc_gen, __ATOMIC_ACQUIRE)) {
		p2p_svc_refresh(ps);
	}
	for (; h; h = next) {
		struct p2p_sconn *sc = p2p_sconn_alloc(ps);

		next = h->next;
		if (!sc) {
			stat_add(&p2p_st(ps)->conns_refused, 1);
			p2p_handoff_drop(h);
			continue;
		}
		sc->c = h->c;
		sc->fd = h->fd;
		sc->tcp_up = true;
		sc->established = h->established;
		sc->since_ms = h->since_ms;
		sc->ss = h->ss;
		p2p_conn_rebind(sc->c, &ps->host, &p2p_sconn_ops, sc);
		p2p_conn_set_user(sc->c, sc);
		stat_add(&p2p_st(ps)->conns_open, 1);
		p2p_relay_start(ps);
		for (int i = 0; i < P2P_PARK_MAX; i++) {
			struct p2p_park *pk = &h->park[i];

			if (!pk->s) {
				continue;
			}
			if (ps->relay) {
				relay_hop_accept_early(ps->relay, pk->s, (struct sockaddr *)&sc->ss,
						       false, pk->data, pk->len);
			} else {
				p2p_stream_reset(pk->s);
			}
		}
		free(h);
		p2p_dcu_conn_up(ps, sc); /* a hole-punched connection accepted by another shard */
		p2p_sconn_pump(sc);
	}
}

/* ---- hooks from p2p_host.c ------------------------------------------------------------------ */

bool p2p_relay_stream_open(struct p2p_sconn *sc, struct p2p_stream *s, const char *protocol)
{
	if (!strcmp(protocol, RELAY_HOP_PROTOCOL)) {
		p2p_hop_open(sc, s);
		return true;
	}
	if (!strcmp(protocol, RELAY_STOP_PROTOCOL)) {
		/* Circuits come on connections we reserved on: dialled by shard 0. */
		if (sc->ps->rcl && !sc->is_link) {
			relay_client_stop_accept(sc->ps->rcl, s);
		} else {
			p2p_stream_reset(s);
		}
		return true;
	}
	return false;
}
/* ---- requests -------------------------------------------------------------------------------- */
static int p2p_talker_cmp(const void *a, const void *b)
{
	const struct p2p_talker *x = a, *y = b;

	return x->bytes < y->bytes ? 1 : x->bytes > y->bytes ? -1 : 0;
}

/* p2p_relay_status_json - shard 0: the hop server's settings, counters, circuits, top talkers. */
cJSON *p2p_relay_status_json(struct p2p_shard *ps)
{
	struct p2p_eng *pe = p2p_pe(ps);
	const struct p2p_relay_conf *rc = &pe->relay_conf;
	struct relay_circuit_info *ci;
	struct p2p_talker *tt;
	const struct relay_stats *st;
	cJSON *o = cJSON_CreateObject(), *lim, *cnt, *a, *e;
	size_t n, nt = 0;
	bool on = __atomic_load_n(&pe->relay_on, __ATOMIC_ACQUIRE);

	p2p_relay_start(ps);
	cJSON_AddBoolToObject(o, "enabled", on && ps->relay);
	a = cJSON_AddArrayToObject(o, "node_reservations");
	for (int i = 0; i < P2P_KEEP_MAX; i++) {
		if (ps->keep[i].used && ps->keep[i].reserve) {
			cJSON_AddItemToArray(a, p2p_keep_json(ps, &ps->keep[i]));
		}
	}
	if (!ps->relay) {
		return o;
	}
	lim = cJSON_AddObjectToObject(o, "limits");
#define LIM(k, v, d) cJSON_AddNumberToObject(lim, k, (double)((v) ? (v) : (d)))
	LIM("max_reservations", rc->max_rsvp, RELAY_DEF_MAX_RSVP);
	LIM("max_reservations_per_peer", rc->max_rsvp_per_peer, RELAY_DEF_MAX_RSVP_PER_PEER);
	LIM("max_reservations_per_ip", rc->max_rsvp_per_ip, RELAY_DEF_MAX_RSVP_PER_IP);
	LIM("max_circuits", rc->max_circuits, RELAY_DEF_MAX_CIRCUITS);
	LIM("max_circuits_per_peer", rc->max_circuits_per_peer, RELAY_DEF_MAX_CIRCUITS_PER_PEER);
	LIM("reservation_ttl_s", rc->rsvp_ttl_s, RELAY_DEF_RSVP_TTL_S);
#undef LIM
	cJSON_AddNumberToObject(lim, "circuit_duration_s", rc->duration_s);
	cJSON_AddNumberToObject(lim, "circuit_data_bytes", (double)rc->data);
	cJSON_AddNumberToObject(lim, "allow_peers", rc->n_allow);
	cJSON_AddNumberToObject(lim, "deny_peers", rc->n_deny);
	st = relay_stats(ps->relay);
	cnt = cJSON_AddObjectToObject(o, "counters");
#define CNT(k, v) cJSON_AddNumberToObject(cnt, k, (double)(v))
	CNT("reservations_active", st->rsvp_active);
	CNT("reservations_total", st->rsvp_total);
	CNT("reservations_refused", st->rsvp_refused);
	CNT("reservations_renewed", st->rsvp_renewed);
	CNT("circuits_active", st->circuits_active);
	CNT("circuits_total", st->circuits_total);
	CNT("circuits_refused", st->circuits_refused);
	CNT("circuits_limited", st->circuits_limited);
	CNT("bytes_relayed", st->bytes_relayed);
	CNT("malformed", st->malformed);
#undef CNT
	ci = calloc(P2P_STATUS_CIRCUITS, sizeof(*ci));
	tt = calloc(P2P_TALKERS_MAX + 2 * P2P_STATUS_CIRCUITS, sizeof(*tt));
	a = cJSON_AddArrayToObject(o, "circuits");
	if (!ci || !tt) {
		free(ci);
		free(tt);
		return o;
	}
	n = relay_circuits(ps->relay, ci, P2P_STATUS_CIRCUITS);
	n = n < P2P_STATUS_CIRCUITS ? n : P2P_STATUS_CIRCUITS;
	for (int i = 0; i < P2P_TALKERS_MAX; i++) {
		if (ps->talkers[i].bytes) {
			tt[nt++] = ps->talkers[i];
		}
	}
	for (size_t i = 0; i < n; i++) {
		uint64_t b = ci[i].bytes[0] + ci[i].bytes[1];

		e = cJSON_CreateObject();
		p2p_json_peer(e, "src", &ci[i].src);
		p2p_json_peer(e, "dst", &ci[i].dst);
		cJSON_AddNumberToObject(e, "bytes_src_to_dst", (double)ci[i].bytes[0]);
		cJSON_AddNumberToObject(e, "bytes_dst_to_src", (double)ci[i].bytes[1]);
		cJSON_AddNumberToObject(e, "age_ms", (double)ci[i].age_ms);
		cJSON_AddItemToArray(a, e);
		/* live circuits count for their peers too */
		for (int side = 0; side < 2; side++) {
			const struct peer_id *p = side ? &ci[i].dst : &ci[i].src;
			size_t j;

			for (j = 0; j < nt && !peerid_equal(&tt[j].peer, p); j++) {
			}
			if (j == nt) {
				tt[nt].peer = *p;
				tt[nt++].bytes = 0;
			}
			tt[j].bytes += b;
		}
	}
	qsort(tt, nt, sizeof(*tt), p2p_talker_cmp);
	a = cJSON_AddArrayToObject(o, "top_talkers");
	for (size_t i = 0; i < nt && i < P2P_TOP_TALKERS; i++) {
		if (!tt[i].bytes) {
			break;
		}
		e = cJSON_CreateObject();
		p2p_json_peer(e, "peer_id", &tt[i].peer);
		cJSON_AddNumberToObject(e, "bytes", (double)tt[i].bytes);
		cJSON_AddItemToArray(a, e);
	}
	free(ci);
	free(tt);
	return o;
}

/* p2p_peers_json - this shard's established connections (and, on shard 0, the kept ones). */