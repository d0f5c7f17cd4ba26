// SPDX-License-Identifier: MIT
/*
 * Output of connections other than the one an event was for (docs/libp2p.md "Relay in the
 * engine"). A call on one connection may queue bytes on another: a relay splice writes into the
 * other end's connection, a relayed connection (p2p_link) writes into its relay stream.
 * p2p_host.on_output marks such connections dirty; p2p_relay_flush pumps them after every
 * completion and tick, at top level (never inside a p2p_conn callback), and frees relayed
 * connections that died (their slot, the p2p_link and the inner connection).
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
void p2p_link_slot_free(struct p2p_sconn *L)
{
	struct p2p_shard *ps = L->ps;
	struct p2p_conn *c = L->c;
	struct p2p_link *l = L->link;

	p2p_sconn_req_fail(L, -ECONNRESET);
	p2p_bridge_conn_gone(ps, L->slot);
	p2p_dcu_conn_gone(ps, L); /* ends a DCUtR upgrade running over it */
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
