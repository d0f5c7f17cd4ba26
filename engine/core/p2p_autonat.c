// SPDX-License-Identifier: MIT
/*
 * AutoNAT v1 in the engine (docs/libp2p.md "AutoNAT in the engine"): shard 0 runs the sans-IO
 * engine/p2p/autonat.c server and client over the connections it holds.
 *
 * Server: inbound /libp2p/autonat/1.0.0 streams on shard 0 connections are served (a request
 * on another shard is reset and its connection moved to shard 0, where the retry lands); the
 * dial-back is a fresh TCP connection (ephemeral source port, not the listen port) to the first
 * address the sans-IO server kept (observed IP of the requesting connection, public only unless
 * NATX_AUTONAT_ALLOW_PRIVATE=1 is in the engine's environment), which must prove to be the
 * requester (Noise). Established: OK, closed at once; failed or P2P_ATN_DIAL_MS: E_DIAL_ERROR.
 *
 * Client: every P2P_ATN_PERIOD_MS (P2P_ATN_RETRY_MS while unknown) shard 0 asks up to
 * P2P_ATN_ASK established direct connections to dial us back at the addresses identify says
 * the peers see us at, with our listen port.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "engine.h"
#include "natx/err.h"
#include "natx/log.h"
#include "p2p/autonat.h"
#include "p2p/dcutr.h"
#include "p2p/identify.h"
#include "p2p_host.h"
#include "p2p_int.h"

#define MOD "p2p"

enum {
	P2P_ATN_ADDRS = 4, /* addresses we claim */
	P2P_ATN_RESULTS = 16, /* answers kept (a ring) */
	P2P_ATN_ASK = 3, /* servers asked per round */
	P2P_ATN_PERIOD_MS = 60000,
	P2P_ATN_RETRY_MS = 10000,
	P2P_ATN_DIAL_MS = 10000, /* dial-back deadline */
};

/* struct p2p_atn_result - one answer a server gave us. */
struct p2p_atn_result {
	bool used;
	struct peer_id peer;
	uint32_t status;
	char text[64];
	int64_t unix_s;
};

struct p2p_atn {
	struct autonat_server *srv;
	struct autonat_client *cl;
	uint8_t addrs[P2P_ATN_ADDRS][MADDR_MAX_LEN];
	const uint8_t *ap[P2P_ATN_ADDRS];
	size_t alen[P2P_ATN_ADDRS];
	size_t n_addrs;
	enum autonat_reachability reach;
	int confidence;
	char reached[MADDR_TEXT_MAX]; /* last address a server reached */
	struct p2p_atn_result res[P2P_ATN_RESULTS];
	uint32_t res_next;
	uint64_t next_ms;
	uint64_t rounds, probes, probe_errors, dialbacks, dialback_errors;
};

/* p2p_atn_addrs_refresh - our claimed addresses: identify-observed IPs with the listen port. */
static void p2p_atn_addrs_refresh(struct p2p_shard *ps)
{
	struct p2p_atn *a = ps->atn;

	a->n_addrs = p2p_observed_addrs(ps, false, a->addrs, a->alen, P2P_ATN_ADDRS);
	for (size_t k = 0; k < a->n_addrs; k++) {
		a->ap[k] = a->addrs[k];
	}
	autonat_client_set_addrs(a->cl, a->ap, a->alen, a->n_addrs);
}

/* ---- server ---------------------------------------------------------------------------------- */

static void p2p_atn_dial_back(void *ctx, struct autonat_req *req, const struct peer_id *peer,
			      const struct relay_addrs *addrs)
{
	struct p2p_shard *ps = ctx;
	struct p2p_atn *a = ps->atn;
	struct sockaddr_storage ss;
	struct p2p_sconn *D;
	int has_id, fd, err = -EDESTADDRREQ;

	a->dialbacks++;
	if (!addrs->n || maddr_to_sockaddr(addrs->b[0], addrs->lens[0], &ss, NULL, &has_id)) {
		goto fail;
	}
	fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		err = -errno;
		goto fail;
	}
	D = p2p_sconn_connect(ps, fd, &ss, peer);
	if (!D) {
		close(fd);
		err = -ENOSPC;
		goto fail;
	}
	D->atn_dial = true;
	D->atn_req = req;
	D->deadline_ms = ps->sh->now_ms + P2P_ATN_DIAL_MS;
	return;
fail:
	a->dialback_errors++;
	autonat_server_dial_done(a->srv, req, err, NULL, 0);
}

static const struct autonat_server_ops p2p_atn_sops = { .dial_back = p2p_atn_dial_back };

/* ---- client ---------------------------------------------------------------------------------- */

static void p2p_atn_on_status(void *ctx, enum autonat_reachability r, int confidence,
			      const uint8_t *addr, size_t addr_len)
{
	struct p2p_shard *ps = ctx;
	struct p2p_atn *a = ps->atn;

	if (a->reach != r) {
		pr_info(MOD, "autonat: reachability %s",
			r == AUTONAT_PUBLIC  ? "public" :
			r == AUTONAT_PRIVATE ? "private" :
					       "unknown");
	}
	a->reach = r;
	a->confidence = confidence;
	if (addr_len) {
		maddr_to_text(addr, addr_len, a->reached, sizeof(a->reached));
	}
}

static void p2p_atn_on_response(void *ctx, struct p2p_conn *c, uint32_t status, const char *text)
{
	struct p2p_shard *ps = ctx;
	struct p2p_atn *a = ps->atn;
	struct p2p_atn_result *e = &a->res[a->res_next++ % P2P_ATN_RESULTS];
	const struct peer_id *id = p2p_conn_remote(c);

	memset(e, 0, sizeof(*e));
	e->used = true;
	if (id) {
		e->peer = *id;
	}
	e->status = status;
	snprintf(e->text, sizeof(e->text), "%s", text ? text : "");
	e->unix_s = (int64_t)time(NULL);
}

static const struct autonat_client_ops p2p_atn_cops = {
	.on_status = p2p_atn_on_status,
	.on_response = p2p_atn_on_response,
};

/* p2p_atn_round - ask up to P2P_ATN_ASK connected peers to dial us back. */
static void p2p_atn_round(struct p2p_shard *ps)
{
	struct p2p_atn *a = ps->atn;
	unsigned int asked = 0;

	p2p_atn_addrs_refresh(ps);
	if (!a->n_addrs) {
		a->next_ms = ps->sh->now_ms + 2000; /* no observed address yet */
		return;
	}
	a->rounds++;
	for (uint32_t i = 0; i < P2P_CONNS_MAX && asked < P2P_ATN_ASK; i++) {
		struct p2p_sconn *sc = &ps->conns[i];

		if (!sc->c || sc->is_link || sc->dead || !sc->established || sc->finishing ||
		    sc->atn_dial || !p2p_conn_remote(sc->c)) {
			continue;
		}
		if (autonat_client_probe(a->cl, sc->c)) {
			a->probe_errors++;
			continue;
		}
		a->probes++;
		asked++;
		p2p_sconn_mark(sc);
	}
	a->next_ms = ps->sh->now_ms +
		     (a->reach == AUTONAT_UNKNOWN || !asked ? P2P_ATN_RETRY_MS : P2P_ATN_PERIOD_MS);
}

/* ---- hooks ----------------------------------------------------------------------------------- */

void p2p_atn_shard_init(struct p2p_shard *ps)
{
	const char *env = getenv("NATX_AUTONAT_ALLOW_PRIVATE");
	int err;

	if (ps->sh->idx != 0) {
		return;
	}
	ps->atn = calloc(1, sizeof(*ps->atn));
	if (!ps->atn) {
		pr_err(MOD, "autonat: out of memory");
		return;
	}
	ps->atn->srv = autonat_server_new(&p2p_clock_system, &p2p_atn_sops, ps, &err);
	if (ps->atn->srv) {
		ps->atn->cl = autonat_client_new(&p2p_pe(ps)->idn, &p2p_clock_system, &p2p_atn_cops,
						 ps, NULL, NULL, 0, &err);
	}
	if (!ps->atn->cl) {
		pr_err(MOD, "autonat: %s", natx_strerror(err));
		autonat_server_free(ps->atn->srv);
		free(ps->atn);
		ps->atn = NULL;
		return;
	}
	autonat_server_allow_private(ps->atn->srv, env && !strcmp(env, "1"));
}

void p2p_atn_shard_teardown(struct p2p_shard *ps)
{
	if (!ps->atn) {
		return;
	}
	autonat_client_free(ps->atn->cl);
	autonat_server_free(ps->atn->srv);
	free(ps->atn);
	ps->atn = NULL;
}

size_t p2p_atn_protocols(struct p2p_shard *ps, const char **out)
{
	(void)ps; /* every shard: other shards move the connection to shard 0 */
	out[0] = AUTONAT_PROTOCOL;
	return 1;
}

bool p2p_atn_stream_open(struct p2p_sconn *sc, struct p2p_stream *s, const char *protocol)
{
	struct p2p_shard *ps = sc->ps;

	if (strcmp(protocol, AUTONAT_PROTOCOL)) {
		return false;
	}
	if (!ps->atn) {
		/*
		 * Shard k > 0: the server runs on shard 0. This request is refused (reset: the
		 * client does not count it), and the connection moves to shard 0 so that the
		 * client's next probe (10 s later while it does not know) is served there.
		 */
		p2p_stream_reset(s);
		if (ps->sh->idx != 0 && !sc->is_link) {
			p2p_relay_move_to_shard0(sc);
		}
		return true;
	}
	/* relayed: no observed address of the peer's own; the server refuses it */
	autonat_server_accept(ps->atn->srv, s, (const struct sockaddr *)&sc->ss, sc->is_link);
	return true;
}

void p2p_atn_conn_up(struct p2p_shard *ps, struct p2p_sconn *sc)
{
	uint8_t ma[MADDR_MAX_LEN];
	size_t len = 0;

	if (!ps->atn || !sc->atn_dial) {
		return;
	}
	sc->atn_dial = false;
	if (maddr_from_sockaddr((struct sockaddr *)&sc->ss, ma, sizeof(ma), &len)) {
		len = 0;
	}
	autonat_server_dial_done(ps->atn->srv, sc->atn_req, 0, ma, len);
	sc->atn_req = NULL;
	sc->finishing = true; /* the dial-back proved it; nobody uses it */
}

void p2p_atn_conn_gone(struct p2p_shard *ps, struct p2p_sconn *sc)
{
	if (!ps->atn) {
		return;
	}
	if (sc->c) {
		autonat_client_conn_gone(ps->atn->cl, sc->c);
	}
	if (sc->atn_dial) {
		sc->atn_dial = false;
		ps->atn->dialback_errors++;
		autonat_server_dial_done(ps->atn->srv, sc->atn_req, -ECONNREFUSED, NULL, 0);
		sc->atn_req = NULL;
	}
}

void p2p_atn_tick(struct p2p_shard *ps)
{
	struct p2p_atn *a = ps->atn;

	if (!a) {
		return;
	}
	autonat_server_tick(a->srv);
	autonat_client_tick(a->cl);
	if (ps->sh->now_ms >= a->next_ms) {
		p2p_atn_round(ps);
	}
	/* the verdict drives relay discovery (reservations while private) */
	p2p_disc_tick(ps, a->reach);
}

void p2p_atn_probe_now(struct p2p_shard *ps)
{
	if (ps->atn) {
		ps->atn->next_ms = 0;
	}
}

static const char *p2p_atn_reach_name(int r)
{
	return r == AUTONAT_PUBLIC ? "public" : r == AUTONAT_PRIVATE ? "private" : "unknown";
}

cJSON *p2p_atn_json(struct p2p_shard *ps)
{
	struct p2p_atn *a = ps->atn;
	cJSON *o = cJSON_CreateObject(), *arr, *sv, *e;
	const struct autonat_server_stats *st;
	int64_t now = (int64_t)time(NULL);
	char txt[MADDR_TEXT_MAX];

	if (!o) {
		return NULL;
	}
	if (!a) {
		cJSON_AddStringToObject(o, "reachability", "unknown");
		cJSON_AddBoolToObject(o, "enabled", false);
		return o;
	}
	cJSON_AddBoolToObject(o, "enabled", true);
	cJSON_AddStringToObject(o, "reachability", p2p_atn_reach_name(a->reach));
	cJSON_AddNumberToObject(o, "confidence", a->confidence);
	cJSON_AddNumberToObject(o, "max_confidence", AUTONAT_MAX_CONFIDENCE);
	cJSON_AddStringToObject(o, "reached_addr", a->reached);
	arr = cJSON_AddArrayToObject(o, "observed_addrs");
	for (size_t i = 0; arr && i < a->n_addrs; i++) {
		if (maddr_to_text(a->addrs[i], a->alen[i], txt, sizeof(txt)) >= 0) {
			cJSON_AddItemToArray(arr, cJSON_CreateString(txt));
		}
	}
	cJSON_AddNumberToObject(o, "rounds", (double)a->rounds);
	cJSON_AddNumberToObject(o, "probes", (double)a->probes);
	cJSON_AddNumberToObject(o, "probe_errors", (double)a->probe_errors);
	arr = cJSON_AddArrayToObject(o, "results");
	for (uint32_t k = 0; arr && k < P2P_ATN_RESULTS; k++) {
		const struct p2p_atn_result *r =
			&a->res[(a->res_next + P2P_ATN_RESULTS - 1 - k) % P2P_ATN_RESULTS];

		if (!r->used || !(e = cJSON_CreateObject())) {
			continue;
		}
		p2p_json_peer(e, "peer", &r->peer);
		cJSON_AddNumberToObject(e, "status", r->status);
		cJSON_AddStringToObject(e, "text", r->text);
		cJSON_AddNumberToObject(e, "age_s", (double)(now - r->unix_s));
		cJSON_AddItemToArray(arr, e);
	}
	st = autonat_server_stats(a->srv);
	sv = cJSON_AddObjectToObject(o, "server");
	if (sv) {
		cJSON_AddNumberToObject(sv, "requests", (double)st->requests);
		cJSON_AddNumberToObject(sv, "ok", (double)st->ok);
		cJSON_AddNumberToObject(sv, "dial_errors", (double)st->dial_errors);
		cJSON_AddNumberToObject(sv, "refused", (double)st->refused);
		cJSON_AddNumberToObject(sv, "bad_requests", (double)st->bad_requests);
		cJSON_AddNumberToObject(sv, "dialbacks", (double)a->dialbacks);
		cJSON_AddNumberToObject(sv, "dialback_errors", (double)a->dialback_errors);
	}
	cJSON_AddItemToObject(o, "relay_discovery", p2p_disc_json(ps));
	return o;
}
