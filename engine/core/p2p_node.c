// SPDX-License-Identifier: MIT
/*
 * libp2p node side on shard 0 (docs/libp2p.md "Relay in the engine"): kept connections
 * (bootstrap peers and relays we reserve on, redialled with backoff: the p2p_keep table),
 * reservations through a relay_client (renewed by it), inbound circuits (stop streams) and
 * circuits we ask for (ping / identify / p2p forward to a /p2p-circuit address). A circuit
 * carries a whole relayed p2p_conn (p2p_link) that takes a slot of the connection table
 * (is_link, outer = the relay connection's slot), so requests and bridges work on it exactly
 * as on a TCP connection. Also the requests the control thread sends to shards (p2p_host.h).
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
};

static int64_t p2p_unix_now(void *ctx)
{
	return (int64_t)time(NULL);
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

cJSON *p2p_keep_json(struct p2p_shard *ps, const struct p2p_keep *k)
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
	cJSON_AddBoolToObject(o, "discovered", k->disc);
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
	struct p2p_sconn *L = p2p_dcu_direct(ps, target);

	if (L) {
		return L; /* upgraded by DCUtR: new streams take the direct connection */
	}
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
	case P2P_REQ_UPGRADES:
		if (ps->sh->idx == 0) {
			p2p_req_finish(pe, r, 0, p2p_dcu_json(ps));
			return;
		}
		break;
	case P2P_REQ_NAT_PROBE:
	case P2P_REQ_NAT:
		if (ps->sh->idx == 0) {
			if (q->kind == P2P_REQ_NAT_PROBE) {
				p2p_atn_probe_now(ps);
			}
			p2p_req_finish(pe, r, 0, p2p_atn_json(ps));
			return;
		}
		break;
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
