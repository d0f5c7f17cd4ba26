// SPDX-License-Identifier: MIT
/*
 * Relay discovery in the engine (docs/libp2p.md "Relay discovery"): with
 * NAT_TRAVERSAL_ENABLE_RELAY_DISCOVERY on (natxd pushes it with p2p.dcutr "relay_discovery"),
 * shard 0 turns AutoNAT's verdict into reservations. While the reachability is private it asks
 * for a reservation on up to P2P_DISC_MAX of its kept bootstrap peers whose identify record lists
 * the hop protocol; the kept-connection machinery of p2p_node.c then makes and renews it (and
 * redials, and reserves again after a loss) exactly as for `natxctl reserve`, and the circuit
 * address shows up in p2p.peer. When the node is public (or discovery is turned off), requests
 * that have not produced a reservation yet are withdrawn; live reservations stay until their
 * connection goes (the relay client has no release, and a held slot costs the relay little).
 */
#include <stdlib.h>
#include <string.h>

#include "engine.h"
#include "natx/log.h"
#include "p2p/autonat.h"
#include "p2p/identify.h"
#include "p2p/relay_msg.h"
#include "p2p_host.h"
#include "p2p_int.h"

#define MOD "p2p"

enum {
	P2P_DISC_MAX = 2, /* relays reserved on at once (go-libp2p autorelay's default) */
};

/* p2p_disc_speaks_hop - the identify record of @sc lists the circuit relay hop protocol. */
static bool p2p_disc_speaks_hop(const struct p2p_sconn *sc)
{
	const struct identify_record *rec = sc->c ? p2p_conn_remote_info(sc->c) : NULL;

	for (size_t i = 0; rec && i < rec->n_protocols; i++) {
		if (rec->protocols[i] && !strcmp(rec->protocols[i], RELAY_HOP_PROTOCOL)) {
			return true;
		}
	}
	return false;
}

/* p2p_disc_withdraw - stop asking for the discovered reservations that are not live. */
static void p2p_disc_withdraw(struct p2p_shard *ps)
{
	for (int i = 0; i < P2P_KEEP_MAX; i++) {
		struct p2p_keep *k = &ps->keep[i];

		if (k->used && k->disc && k->reserve && !k->reserved && !k->rsvp_busy &&
		    k->req < 0) {
			k->reserve = false;
			k->disc = false;
		}
	}
}

void p2p_disc_tick(struct p2p_shard *ps, int reach)
{
	bool on = __atomic_load_n(&p2p_pe(ps)->relay_disc, __ATOMIC_ACQUIRE);
	int n = 0;

	if (ps->sh->idx != 0) {
		return;
	}
	if (!on || reach != AUTONAT_PRIVATE) {
		if (!on || reach == AUTONAT_PUBLIC) {
			p2p_disc_withdraw(ps);
		}
		return;
	}
	for (int i = 0; i < P2P_KEEP_MAX; i++) {
		n += ps->keep[i].used && ps->keep[i].reserve;
	}
	for (int i = 0; i < P2P_KEEP_MAX && n < P2P_DISC_MAX; i++) {
		struct p2p_keep *k = &ps->keep[i];
		const struct p2p_sconn *sc;
		char txt[PEERID_TEXT_MAX];

		if (!k->used || !k->bootstrap || k->reserve || k->slot < 0) {
			continue;
		}
		sc = &ps->conns[k->slot];
		if (!sc->established || sc->dead || !p2p_disc_speaks_hop(sc)) {
			continue;
		}
		/* p2p_keep_run (relay tick) sends the RESERVE and keeps it renewed */
		k->reserve = true;
		k->disc = true;
		k->next_ms = 0;
		n++;
		peerid_to_text(&k->peer, txt, sizeof(txt));
		pr_info(MOD, "relay discovery: private, reserving on bootstrap relay %s", txt);
	}
}

cJSON *p2p_disc_json(struct p2p_shard *ps)
{
	cJSON *o = cJSON_CreateObject(), *a;

	if (!o) {
		return NULL;
	}
	cJSON_AddBoolToObject(o, "enabled",
			      __atomic_load_n(&p2p_pe(ps)->relay_disc, __ATOMIC_ACQUIRE));
	a = cJSON_AddArrayToObject(o, "relays");
	for (int i = 0; a && i < P2P_KEEP_MAX; i++) {
		const struct p2p_keep *k = &ps->keep[i];

		if (k->used && k->disc) {
			cJSON_AddItemToArray(a, p2p_keep_json(ps, k));
		}
	}
	return o;
}

void p2p_eng_relay_disc_set(struct engine *eng, bool on)
{
	if (eng->p2p) {
		__atomic_store_n(&eng->p2p->relay_disc, on, __ATOMIC_RELEASE);
	}
}
