// SPDX-License-Identifier: MIT
/*
 * Circuit Relay v2 on the engine's shards (docs/libp2p.md "Relay in the engine").
 *
 * Hop server. Shard 0 runs the one struct relay (engine/p2p/relay.c): one reservation table
 * and one set of limits for the whole engine, and every circuit spliced in one thread. A hop
 * stream that arrives on another shard parks (its first bytes kept, at most P2P_PARK_BYTES)
 * while its connection moves to shard 0: the shard stops the connection's recv (cancel), waits
 * until no request of it is in flight, queues the socket and the p2p_conn on
 * eng->p2p->handoffs (mutex) and wakes shard 0 with a MSG_RING; shard 0 adopts them
 * (p2p_conn_rebind) and gives the parked streams to the relay. So the target's connection
 * (it reserved) and the source's connection (it sent CONNECT) are both on shard 0, and the
 * relay's splice moves bytes between them with yamux back-pressure both ways. Nothing of a
 * connection is shared between shards: it is owned by one shard, then by shard 0.
 *
 * Node side (shard 0). A relay_client reserves on relays (kept connections: the p2p_keep
 * table, redialled with backoff, which also keeps bootstrap peers connected), accepts stop
 * streams, and asks relays for circuits. A circuit carries a whole relayed p2p_conn
 * (p2p_link); it takes a slot of the connection table (is_link, outer = the relay
 * connection's slot), so ping/identify requests and p2p expose/forward bridges work on it
 * exactly as on a TCP connection.
 *
 * Output. A call on one connection may queue bytes on another (a splice, a relayed
 * connection writing into its relay stream). p2p_host.on_output marks such connections dirty;
 * p2p_relay_flush pumps them after every completion and tick, at top level (never inside a
 * p2p_conn callback), and frees relayed connections that died.
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
	P2P_KEEP_BACKOFF_MIN_MS = 1000,
	P2P_KEEP_BACKOFF_MAX_MS = 60000,
	P2P_CIRC_TIMEOUT_MS = 15000, /* relay dial + CONNECT + the target's answer */
	P2P_TOP_TALKERS = 10,
	P2P_STATUS_CIRCUITS = 64, /* circuits listed in relay status */
};

static int64_t p2p_unix_now(void *ctx)
{
	return (int64_t)time(NULL);
}

static struct p2p_eng *p2p_pe(struct p2p_shard *ps)
{
	return ps->sh->eng->p2p;
}

/* ---- dirty connections -------------------------------------------------------------------- */

void p2p_sconn_mark(struct p2p_sconn *sc)
{
	struct p2p_shard *ps = sc->ps;

	if (sc->dirty) {
		return;
	}
	sc->dirty = true;
	ps->dirty[ps->n_dirty++] = sc->slot; /* at most once per slot: never overflows */
}

void p2p_relay_on_output(struct p2p_conn *c)
{
	struct p2p_sconn *sc = p2p_conn_user(c);

	if (sc) {
		p2p_sconn_mark(sc);
	}
}

/* p2p_link_slot_free - free relayed connection @L (top level only): link, inner conn, slot. */
static void p2p_link_slot_free(struct p2p_sconn *L)
{
	struct p2p_shard *ps = L->ps;
	struct p2p_conn *c = L->c;
	struct p2p_link *l = L->link;

	p2p_sconn_req_fail(L, -ECONNRESET);
	p2p_bridge_conn_gone(ps, L->slot);
	if (c) {
		stat_add(&p2p_st(ps)->pings_served, p2p_conn_stats(c)->pings_served);
		stat_sub(&p2p_st(ps)->relayed_open, 1);
		if (ps->relay) {
			relay_conn_gone(ps->relay, c);
		}
		if (ps->rcl) {
			relay_client_conn_gone(ps->rcl, c);
		}
	}
	/* Cleared first: bridges reacting to the inner streams' close must not pump it. */
	L->c = NULL;
	L->link = NULL;
	p2p_link_free(l); /* frees the inner connection, resets the relay stream if open */
	if (L->outer < P2P_CONNS_MAX && ps->conns[L->outer].c && !ps->conns[L->outer].is_link) {
		p2p_sconn_mark(&ps->conns[L->outer]);
	}
	L->dead = false;
	p2p_sconn_release(ps, L);
}

/* p2p_link_pump_now - move a relayed connection's output into its relay stream. */
static void p2p_link_pump_now(struct p2p_sconn *L)
{
	struct p2p_shard *ps = L->ps;

	if (L->c && !L->dead && L->finishing) {
		/* Request done: GoAway into the circuit, then the circuit is closed. */
		L->finishing = false;
		p2p_conn_close(L->c);
		p2p_sconn_fail(L, 0);
	}
	if (L->link && !p2p_link_down(L->link)) {
		int err = p2p_link_flush(L->link);

		if (err < 0 && !L->dead) {
			p2p_sconn_fail(L, err);
		}
	}
	if (!L->link_pending && L->outer < P2P_CONNS_MAX && ps->conns[L->outer].c) {
		p2p_sconn_mark(&ps->conns[L->outer]);
	}
	if (L->dead) {
		ps->sweep = true;
	}
}

void p2p_link_pump(struct p2p_sconn *sc)
{
	p2p_sconn_mark(sc);
}

void p2p_relay_flush(struct p2p_shard *ps)
{
	for (int round = 0; round < 8 && (ps->n_dirty || ps->sweep); round++) {
		while (ps->n_dirty) {
			struct p2p_sconn *sc = &ps->conns[ps->dirty[--ps->n_dirty]];

			sc->dirty = false;
			if (sc->is_link) {
				p2p_link_pump_now(sc);
			} else if (sc->c) {
				p2p_sconn_pump(sc);
			}
		}
		if (ps->sweep) {
			ps->sweep = false;
			for (uint32_t i = 0; i < P2P_CONNS_MAX; i++) {
				if (ps->conns[i].is_link && ps->conns[i].dead) {
					p2p_link_slot_free(&ps->conns[i]);
				}
			}
		}
	}
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
		p2p_sconn_pump(sc);
	}
}

/* ---- node side: kept connections and reservations (shard 0) ------------------------------- */

static struct p2p_keep *p2p_keep_by_slot(struct p2p_shard *ps, uint32_t slot)
{
	for (int i = 0; i < P2P_KEEP_MAX; i++) {
		if (ps->keep[i].used && ps->keep[i].slot == (int)slot) {
			return &ps->keep[i];
		}
	}
	return NULL;
}

/* p2p_circ_publish - our /p2p-circuit addresses, for p2p.peer (control thread). */
static void p2p_circ_publish(struct p2p_shard *ps)
{
	struct p2p_eng *pe = p2p_pe(ps);
	unsigned int n = 0;

	pthread_mutex_lock(&pe->lock);
	for (int i = 0; i < P2P_KEEP_MAX; i++) {
		if (ps->keep[i].used && ps->keep[i].reserved && ps->keep[i].circuit[0]) {
			memcpy(pe->circ_addrs[n++], ps->keep[i].circuit, MADDR_TEXT_MAX);
		}
	}
	pe->n_circ_addrs = n;
	pthread_mutex_unlock(&pe->lock);
}

static cJSON *p2p_keep_json(struct p2p_shard *ps, const struct p2p_keep *k)
{
	cJSON *o = cJSON_CreateObject();
	char txt[MADDR_TEXT_MAX];
	bool up = k->slot >= 0 && ps->conns[k->slot].established && !ps->conns[k->slot].dead;

	peerid_to_text(&k->peer, txt, sizeof(txt));
	cJSON_AddStringToObject(o, "peer_id", txt);
	if (maddr_to_text(k->addr, k->addr_len, txt, sizeof(txt)) > 0) {
		cJSON_AddStringToObject(o, "addr", txt);
	}
	cJSON_AddBoolToObject(o, "connected", up);
	cJSON_AddBoolToObject(o, "bootstrap", k->bootstrap);
	cJSON_AddBoolToObject(o, "reserve", k->reserve);
	cJSON_AddBoolToObject(o, "reserved", k->reserved);
	if (k->reserved) {
		cJSON_AddStringToObject(o, "circuit_addr", k->circuit);
		cJSON_AddNumberToObject(o, "expire_in_s",
					(double)((int64_t)k->expire - time(NULL)));
	}
	if (k->last_status) {
		cJSON_AddStringToObject(o, "last_refusal", relay_status_name(k->last_status));
	}
	cJSON_AddNumberToObject(o, "dials", k->dials);
	cJSON_AddNumberToObject(o, "losses", k->losses);
	return o;
}

/* p2p_keep_backoff - schedule the next attempt after a failure. */
static void p2p_keep_backoff(struct p2p_shard *ps, struct p2p_keep *k)
{
	k->next_ms = ps->sh->now_ms + k->backoff_ms;
	k->backoff_ms = k->backoff_ms * 2 > P2P_KEEP_BACKOFF_MAX_MS ? P2P_KEEP_BACKOFF_MAX_MS :
								      k->backoff_ms * 2;
}

/* p2p_keep_fail_req - the RESERVE request waiting on @k fails with @err (+ @status). */
static void p2p_keep_fail_req(struct p2p_shard *ps, struct p2p_keep *k, int err, uint32_t status)
{
	cJSON *o = NULL;

	if (k->req < 0) {
		return;
	}
	if (status) {
		o = cJSON_CreateObject();
		cJSON_AddStringToObject(o, "relay_status", relay_status_name(status));
	}
	p2p_req_finish(p2p_pe(ps), k->req, err, o);
	k->req = -1;
	if (!k->ever_reserved) {
		/* A reservation that never worked is not retried behind the user's back. */
		k->reserve = false;
		if (!k->bootstrap) {
			k->used = false;
		}
	}
}

static void p2p_keep_reserve(struct p2p_shard *ps, struct p2p_keep *k)
{
	int err = relay_client_reserve(ps->rcl, ps->conns[k->slot].c);

	if (!err) {
		k->rsvp_busy = true;
		return;
	}
	if (err == -EALREADY) {
		return;
	}
	k->last_err = err;
	p2p_keep_backoff(ps, k);
	p2p_keep_fail_req(ps, k, err, 0);
}

/* p2p_keep_run - dial @k when it has no connection and its time has come; reserve when up. */
static void p2p_keep_run(struct p2p_shard *ps, struct p2p_keep *k)
{
	struct p2p_sconn *sc;

	if (!k->used || ps->sh->now_ms < k->next_ms) {
		return;
	}
	if (k->slot < 0) {
		sc = p2p_sconn_dial_fwd(ps, &k->ss, &k->peer);
		if (!sc) {
			p2p_keep_backoff(ps, k);
			p2p_keep_fail_req(ps, k, -ENOSPC, 0);
			return;
		}
		k->slot = (int)sc->slot;
		k->dials++;
		if (!sc->established) {
			return; /* p2p_relay_conn_up continues */
		}
	}
	sc = &ps->conns[k->slot];
	if (k->reserve && !k->reserved && !k->rsvp_busy && sc->established && !sc->dead) {
		p2p_keep_reserve(ps, k);
	}
}

static void p2p_on_reserved(void *ctx, struct p2p_conn *relay_conn, int err, uint32_t status,
			    const struct relay_reservation *rsvp)
{
	struct p2p_shard *ps = ctx;
	struct p2p_sconn *sc = p2p_conn_user(relay_conn);
	struct p2p_keep *k = sc ? p2p_keep_by_slot(ps, sc->slot) : NULL;
	uint8_t ma[MADDR_MAX_LEN];
	size_t len;

	if (!k) {
		return;
	}
	k->rsvp_busy = false;
	if (err || status != RELAY_OK) {
		k->reserved = false;
		k->last_status = err ? 0 : status;
		k->last_err = err;
		p2p_keep_backoff(ps, k);
		p2p_circ_publish(ps);
		p2p_keep_fail_req(ps, k, err ? err : -ECONNREFUSED, err ? 0 : status);
		return;
	}
	k->reserved = true;
	k->ever_reserved = true;
	k->expire = rsvp->expire;
	k->last_status = 0;
	k->last_err = 0;
	k->backoff_ms = P2P_KEEP_BACKOFF_MIN_MS;
	k->circuit[0] = '\0';
	if (!relay_circuit_addr(k->addr, k->addr_len, &rsvp->relay, &p2p_pe(ps)->idn.id, ma,
				sizeof(ma), &len)) {
		maddr_to_text(ma, len, k->circuit, sizeof(k->circuit));
	}
	p2p_circ_publish(ps);
	if (k->req >= 0) {
		p2p_req_finish(p2p_pe(ps), k->req, 0, p2p_keep_json(ps, k));
		k->req = -1;
	}
}

/* p2p_keep_req - RESERVE / KEEP request @r. */
static void p2p_keep_req(struct p2p_shard *ps, int r)
{
	struct p2p_eng *pe = p2p_pe(ps);
	struct p2p_req *q = &pe->req[r];
	struct p2p_keep *k = NULL, *free_k = NULL;

	for (int i = 0; i < P2P_KEEP_MAX; i++) {
		if (ps->keep[i].used && peerid_equal(&ps->keep[i].peer, &q->id)) {
			k = &ps->keep[i];
			break;
		}
		if (!ps->keep[i].used && !free_k) {
			free_k = &ps->keep[i];
		}
	}
	if (!k) {
		if (!free_k) {
			p2p_req_finish(pe, r, -ENOSPC, NULL);
			return;
		}
		k = free_k;
		memset(k, 0, sizeof(*k));
		k->used = true;
		k->ss = q->ss;
		k->peer = q->id;
		memcpy(k->addr, q->addr, q->addr_len);
		k->addr_len = q->addr_len;
		k->slot = -1;
		k->req = -1;
		k->backoff_ms = P2P_KEEP_BACKOFF_MIN_MS;
	}
	if (q->kind == P2P_REQ_KEEP) {
		k->bootstrap = true;
		k->next_ms = 0;
		p2p_req_finish(pe, r, 0, p2p_keep_json(ps, k));
		p2p_keep_run(ps, k);
		return;
	}
	k->reserve = true;
	if (k->reserved) {
		p2p_req_finish(pe, r, 0, p2p_keep_json(ps, k));
		return;
	}
	if (k->req >= 0) {
		p2p_req_finish(pe, r, -EBUSY, NULL);
		return;
	}
	k->req = r;
	k->next_ms = 0;
	p2p_keep_run(ps, k);
}

/* ---- circuits we ask for (shard 0) --------------------------------------------------------- */

/* p2p_circ_tag - the CONNECT's user pointer: slot and generation of the pending link. */
static void *p2p_circ_tag(const struct p2p_sconn *L)
{
	return (void *)(uintptr_t)((uint64_t)L->gen << 32 | L->slot);
}

static struct p2p_sconn *p2p_circ_by_tag(struct p2p_shard *ps, void *user)
{
	uint64_t t = (uint64_t)(uintptr_t)user;
	uint32_t slot = (uint32_t)t;
	struct p2p_sconn *L;

	if (slot >= P2P_CONNS_MAX) {
		return NULL;
	}
	L = &ps->conns[slot];
	return L->is_link && L->link_pending && !L->dead && L->gen == (uint32_t)(t >> 32) ? L :
											    NULL;
}

static void p2p_circ_connect(struct p2p_shard *ps, struct p2p_sconn *L)
{
	struct p2p_sconn *R = &ps->conns[L->outer];
	int err;

	L->connect_sent = true;
	err = relay_client_connect(ps->rcl, R->c, &L->peer, p2p_circ_tag(L));
	if (err) {
		stat_add(&p2p_st(ps)->relayed_failed, 1);
		p2p_sconn_fail(L, err);
		ps->sweep = true;
	}
}

/* p2p_circ_dial - a relayed connection to @target through @relay (kept TCP connection). */
static struct p2p_sconn *p2p_circ_dial(struct p2p_shard *ps, const struct sockaddr_storage *rss,
				       const struct peer_id *relay, const struct peer_id *target)
{
	struct p2p_sconn *L, *R;

	if (ps->sh->idx != 0 || !ps->rcl) {
		return NULL;
	}
	L = p2p_sconn_alloc(ps);
	if (!L) {
		return NULL;
	}
	L->is_link = true;
	L->link_pending = true;
	L->link_dialer = true;
	L->peer = *target;
	L->deadline_ms = ps->sh->now_ms + P2P_CIRC_TIMEOUT_MS;
	R = p2p_sconn_dial_fwd(ps, rss, relay);
	if (!R) {
		p2p_sconn_release(ps, L);
		return NULL;
	}
	L->outer = R->slot;
	stat_add(&p2p_st(ps)->relayed_out, 1);
	if (R->established) {
		p2p_circ_connect(ps, L);
	}
	return L;
}

struct p2p_sconn *p2p_circ_dial_fwd(struct p2p_shard *ps, const struct sockaddr_storage *relay_ss,
				    const struct peer_id *relay, const struct peer_id *target)
{
	struct p2p_sconn *L;

	for (uint32_t i = 0; i < P2P_CONNS_MAX; i++) {
		L = &ps->conns[i];
		/* the same peer through the same relay (the kept relay connection's peer) */
		if (L->is_link && L->fwd && !L->dead && L->link_dialer &&
		    peerid_equal(&L->peer, target) &&
		    peerid_equal(&ps->conns[L->outer].peer, relay)) {
			return L;
		}
	}
	L = p2p_circ_dial(ps, relay_ss, relay, target);
	if (L) {
		L->fwd = true;
	}
	return L;
}

static void p2p_on_link_down(void *ctx, struct p2p_link *l, int err)
{
	struct p2p_sconn *L = ctx;

	p2p_sconn_fail(L, err ? err : -ECONNRESET);
	L->ps->sweep = true;
}

static void p2p_on_circuit(void *ctx, struct p2p_stream *s, const struct peer_id *remote,
			   bool dialer, const struct relay_limit *limit, const uint8_t *early,
			   size_t early_len, void *user)
{
	struct p2p_shard *ps = ctx;
	struct p2p_sconn *R = p2p_conn_user(p2p_stream_conn(s)), *L;
	int err;

	if (dialer) {
		L = p2p_circ_by_tag(ps, user);
	} else {
		L = R ? p2p_sconn_alloc(ps) : NULL;
		if (L) {
			L->is_link = true;
			L->outer = R->slot;
			L->peer = *remote;
			stat_add(&p2p_st(ps)->relayed_in, 1);
		} else {
			stat_add(&p2p_st(ps)->conns_refused, 1);
		}
	}
	if (!L) {
		p2p_stream_reset(s);
		return;
	}
	L->link = p2p_link_new(s, &ps->host, dialer, dialer ? remote : NULL, &p2p_sconn_ops, L,
			       early, early_len, p2p_on_link_down, &err);
	if (!L->link) {
		p2p_stream_reset(s);
		if (dialer) {
			p2p_sconn_fail(L, err);
			ps->sweep = true;
		} else {
			p2p_sconn_release(ps, L);
		}
		return;
	}
	L->link_pending = false;
	L->c = p2p_link_conn(L->link);
	L->tcp_up = true;
	p2p_conn_set_user(L->c, L);
	stat_add(&p2p_st(ps)->relayed_open, 1);
	p2p_sconn_mark(L);
}

static void p2p_on_connect_failed(void *ctx, const struct peer_id *target, int err, uint32_t status,
				  void *user)
{
	struct p2p_shard *ps = ctx;
	struct p2p_sconn *L = p2p_circ_by_tag(ps, user);

	if (!L) {
		return;
	}
	stat_add(&p2p_st(ps)->relayed_failed, 1);
	if (L->req >= 0) {
		cJSON *o = NULL;

		if (status) {
			o = cJSON_CreateObject();
			cJSON_AddStringToObject(o, "relay_status", relay_status_name(status));
		}
		p2p_req_finish(p2p_pe(ps), L->req, err ? err : -ECONNREFUSED, o);
		L->req = -1;
	}
	p2p_sconn_fail(L, err ? err : -ECONNREFUSED);
	ps->sweep = true;
}

static const struct relay_client_ops p2p_rcl_ops = {
	.unix_now = p2p_unix_now,
	.on_reserved = p2p_on_reserved,
	.on_circuit = p2p_on_circuit,
	.on_connect_failed = p2p_on_connect_failed,
};

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

void p2p_relay_conn_up(struct p2p_shard *ps, struct p2p_sconn *sc)
{
	struct p2p_keep *k;

	if (sc->is_link || ps->sh->idx != 0) {
		return;
	}
	k = p2p_keep_by_slot(ps, sc->slot);
	if (k) {
		k->backoff_ms = P2P_KEEP_BACKOFF_MIN_MS;
		if (k->reserve && !k->reserved && !k->rsvp_busy) {
			p2p_keep_reserve(ps, k);
		}
	}
	for (uint32_t i = 0; i < P2P_CONNS_MAX; i++) {
		struct p2p_sconn *L = &ps->conns[i];

		if (L->link_pending && !L->dead && !L->connect_sent && L->outer == sc->slot) {
			p2p_circ_connect(ps, L);
		}
	}
}

void p2p_relay_conn_gone(struct p2p_shard *ps, struct p2p_sconn *sc)
{
	struct p2p_keep *k;

	if (ps->relay) {
		relay_conn_gone(ps->relay, sc->c);
	}
	if (ps->rcl) {
		relay_client_conn_gone(ps->rcl, sc->c);
	}
	if (ps->sh->idx != 0) {
		return;
	}
	while ((k = p2p_keep_by_slot(ps, sc->slot))) {
		bool had = k->reserved;

		k->slot = -1;
		k->reserved = false;
		k->rsvp_busy = false;
		k->losses++;
		p2p_keep_backoff(ps, k);
		if (had) {
			p2p_circ_publish(ps);
		}
		p2p_keep_fail_req(ps, k, -ECONNRESET, 0);
	}
	for (uint32_t i = 0; i < P2P_CONNS_MAX; i++) {
		struct p2p_sconn *L = &ps->conns[i];

		if (L->link_pending && !L->dead && L->outer == sc->slot) {
			stat_add(&p2p_st(ps)->relayed_failed, 1);
			p2p_sconn_fail(L, -ECONNRESET);
			ps->sweep = true;
		}
	}
}

void p2p_relay_tick(struct p2p_shard *ps)
{
	struct p2p_eng *pe = p2p_pe(ps);

	if (ps->sh->idx != 0) {
		return;
	}
	if (__atomic_load_n(&pe->handoffs, __ATOMIC_RELAXED)) {
		p2p_relay_adopt(ps); /* a wake-up that did not arrive */
	}
	if (ps->relay) {
		relay_tick(ps->relay);
	}
	if (ps->rcl) {
		relay_client_tick(ps->rcl);
	}
	for (int i = 0; i < P2P_KEEP_MAX; i++) {
		p2p_keep_run(ps, &ps->keep[i]);
	}
	for (uint32_t i = 0; i < P2P_CONNS_MAX; i++) {
		struct p2p_sconn *L = &ps->conns[i];

		if (L->link_pending && !L->dead && ps->sh->now_ms >= L->deadline_ms) {
			stat_add(&p2p_st(ps)->relayed_failed, 1);
			p2p_sconn_fail(L, -ETIMEDOUT);
			ps->sweep = true;
		}
	}
}

/* ---- requests -------------------------------------------------------------------------------- */

static void p2p_json_peer(cJSON *o, const char *key, const struct peer_id *id)
{
	char txt[PEERID_TEXT_MAX];

	peerid_to_text(id, txt, sizeof(txt));
	cJSON_AddStringToObject(o, key, txt);
}

static int p2p_talker_cmp(const void *a, const void *b)
{
	const struct p2p_talker *x = a, *y = b;

	return x->bytes < y->bytes ? 1 : x->bytes > y->bytes ? -1 : 0;
}

/* p2p_relay_status_json - shard 0: the hop server's settings, counters, circuits, top talkers. */
static cJSON *p2p_relay_status_json(struct p2p_shard *ps)
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
static cJSON *p2p_peers_json(struct p2p_shard *ps)
{
	cJSON *o = cJSON_CreateObject(), *a = cJSON_AddArrayToObject(o, "peers"), *e;
	uint8_t ma[MADDR_MAX_LEN];
	char txt[MADDR_TEXT_MAX];
	size_t len;

	for (uint32_t i = 0; i < P2P_CONNS_MAX; i++) {
		struct p2p_sconn *sc = &ps->conns[i];
		const struct peer_id *id;

		if (!sc->c || sc->dead || !sc->established || !(id = p2p_conn_remote(sc->c))) {
			continue;
		}
		e = cJSON_CreateObject();
		p2p_json_peer(e, "peer_id", id);
		cJSON_AddStringToObject(e, "path", sc->is_link ? "relayed" : "direct");
		cJSON_AddStringToObject(e, "direction",
					(sc->is_link ? sc->link_dialer : sc->dialer) ? "out" :
										       "in");
		if (sc->is_link) {
			const struct p2p_sconn *R = &ps->conns[sc->outer];
			const struct peer_id *rid = R->c ? p2p_conn_remote(R->c) : NULL;

			if (rid) {
				p2p_json_peer(e, "relay", rid);
			}
		} else if (!maddr_from_sockaddr((struct sockaddr *)&sc->ss, ma, sizeof(ma), &len) &&
			   maddr_to_text(ma, len, txt, sizeof(txt)) > 0) {
			cJSON_AddStringToObject(e, "addr", txt);
		}
		cJSON_AddNumberToObject(e, "rtt_ms", (double)p2p_conn_rtt_ms(sc->c));
		cJSON_AddNumberToObject(e, "age_s",
					(double)(ps->sh->now_ms - sc->since_ms) / 1000.0);
		cJSON_AddNumberToObject(e, "shard", ps->sh->idx);
		if (p2p_keep_by_slot(ps, sc->slot)) {
			cJSON_AddTrueToObject(e, "kept");
		}
		cJSON_AddItemToArray(a, e);
	}
	a = cJSON_AddArrayToObject(o, "kept");
	for (int i = 0; ps->sh->idx == 0 && i < P2P_KEEP_MAX; i++) {
		if (ps->keep[i].used) {
			cJSON_AddItemToArray(a, p2p_keep_json(ps, &ps->keep[i]));
		}
	}
	return o;
}

void p2p_relay_req_start(struct p2p_shard *ps, int r)
{
	struct p2p_eng *pe = p2p_pe(ps);
	struct p2p_req *q = &pe->req[r];
	struct p2p_sconn *L;

	switch (q->kind) {
	case P2P_REQ_PING:
	case P2P_REQ_IDENTIFY:
		if (!q->circuit) {
			p2p_dial(ps, r);
			return;
		}
		L = p2p_circ_dial(ps, &q->ss, &q->id, &q->target);
		if (!L) {
			p2p_req_finish(pe, r, -ENOSPC, NULL);
			return;
		}
		L->req = r;
		return;
	case P2P_REQ_RESERVE:
	case P2P_REQ_KEEP:
		if (ps->sh->idx == 0) {
			p2p_keep_req(ps, r);
			return;
		}
		break;
	case P2P_REQ_RELAY_STATUS:
		if (ps->sh->idx == 0) {
			p2p_req_finish(pe, r, 0, p2p_relay_status_json(ps));
			return;
		}
		break;
	case P2P_REQ_PEERS:
		p2p_req_finish(pe, r, 0, p2p_peers_json(ps));
		return;
	}
	p2p_req_finish(pe, r, -EINVAL, NULL);
}

/* ---- shard life ------------------------------------------------------------------------------ */

void p2p_relay_shard_init(struct p2p_shard *ps)
{
	int err;

	for (int i = 0; i < P2P_KEEP_MAX; i++) {
		ps->keep[i].slot = -1;
		ps->keep[i].req = -1;
	}
	if (ps->sh->idx == 0) {
		ps->rcl = relay_client_new(&p2p_pe(ps)->idn, &p2p_clock_system, &p2p_rcl_ops, ps,
					   &err);
		if (!ps->rcl) {
			pr_err(MOD, "relay client: %s", natx_strerror(err));
		}
	}
}

void p2p_relay_shard_teardown(struct p2p_shard *ps)
{
	for (uint32_t i = 0; i < P2P_CONNS_MAX; i++) {
		if (ps->conns[i].is_link) {
			p2p_link_slot_free(&ps->conns[i]);
		}
	}
	relay_free(ps->relay);
	ps->relay = NULL;
	relay_client_free(ps->rcl);
	ps->rcl = NULL;
	for (int i = 0; i < P2P_KEEP_MAX; i++) {
		if (ps->keep[i].used && ps->keep[i].req >= 0) {
			p2p_req_finish(p2p_pe(ps), ps->keep[i].req, -ESHUTDOWN, NULL);
			ps->keep[i].req = -1;
		}
	}
	if (ps->sh->idx == 0) {
		p2p_handoffs_drop(p2p_pe(ps));
	}
}
