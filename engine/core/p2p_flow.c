// SPDX-License-Identifier: MIT
/*
 * p2p_flow - bridges in flow mode (docs/migration.md "In the engine"). A `p2p forward` with
 * "flow" opens each accepted TCP connection as a migratable flow: a /natx/flow/1.0.0 stream
 * that starts with OPEN(id, service), then mig_flow frames both ways. The expose side answers
 * any OPEN naming one of its exposed protocols. The forward side (initiator) owns the paths:
 *  - clean switch: when its active path runs over a relayed connection and a verified direct
 *    connection to the same peer exists (DCUtR), it ATTACHes a second path there; once the
 *    responder answered, both sides switch with MOVED and the old stream is closed when
 *    mig_path_finished says nothing more will come on it;
 *  - lost path: when the path in use dies, mig_flow rewinds to the last ACKed offset onto the
 *    other live path if there is one, else the initiator dials a new path to the peer (the
 *    forward's address or relay, or a direct connection) every P2P_FLOW_RETRY_MS for at most
 *    the forward's repair time and ATTACHes it; when none comes up the application's TCP
 *    connection is reset, the reason logged and counted (flows_failed). The responder waits
 *    the default repair time plus P2P_FLOW_GRACE_MS for an ATTACH, then does the same.
 * Bounds: the send ring (P2P_FLOW_RING) is the TCP -> flow back-pressure; a path's input is
 * credited to the peer's yamux window only when mig_flow took it, and mig_flow is fed only
 * while fewer than P2P_FLOW_QMAX delivered bytes wait for the TCP send, so a path's buffer
 * never holds more than the window it granted.
 * Flows live on the shard of their bridge; an ATTACH arriving on another shard is refused
 * (RESET unknown flow). Relayed and DCUtR connections both live on shard 0, like forwards.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <time.h>

#include "engine.h"
#include "natx/err.h"
#include "natx/log.h"
#include "p2p_int.h"

#define MOD "p2p"

enum {
	P2P_FLOW_RX_MAX = 16 * 1024 * 1024 + 2 * MIG_FRAME_MAX, /* yamux max window + slack */
};

static const struct p2p_conn_ops p2p_fpath_ops;
static const struct p2p_conn_ops p2p_fpend_ops;

static uint64_t p2p_flow_now(struct p2p_bridge *b)
{
	return p2p_bridge_shard(b)->sh->now_ms;
}

/* p2p_flow_idtxt - the first 4 bytes of the flow id in hex, for log lines. */
static const char *p2p_flow_idtxt(const struct p2p_flow *fl, char out[9])
{
	snprintf(out, 9, "%02x%02x%02x%02x", fl->f.id[0], fl->f.id[1], fl->f.id[2], fl->f.id[3]);
	return out;
}

/* p2p_flow_count - add one to a flow counter of the shard and of the bridge's service. */
static void p2p_flow_count(struct p2p_bridge *b, size_t shard_off, size_t svc_off)
{
	struct p2p_svc_stats *st = p2p_bridge_st(b);

	stat_add((uint64_t *)((char *)p2p_st(p2p_bridge_shard(b)) + shard_off), 1);
	if (st && svc_off != SIZE_MAX) {
		stat_add((uint64_t *)((char *)st + svc_off), 1);
	}
}

#define P2P_FLOW_COUNT(b, f) \
	p2p_flow_count(b, offsetof(struct p2p_shard_stats, f), offsetof(struct p2p_svc_stats, f))

int p2p_flow_new(struct p2p_bridge *b, bool initiator, const struct peer_id *peer,
		 uint32_t repair_ms)
{
	uint8_t id[MIG_ID_LEN];
	struct p2p_flow *fl;

	if (getrandom(id, sizeof(id), 0) != (ssize_t)sizeof(id)) {
		return -EIO;
	}
	fl = calloc(1, sizeof(*fl));
	if (!fl) {
		return -ENOMEM;
	}
	if (mig_flow_init(&fl->f, id, P2P_FLOW_RING)) {
		free(fl);
		return -ENOMEM;
	}
	for (unsigned int i = 0; i < MIG_PATHS; i++) {
		fl->p[i].b = b;
		fl->p[i].idx = (uint8_t)i;
	}
	fl->initiator = initiator;
	fl->dial = -1;
	fl->no_switch = UINT32_MAX;
	fl->repair_ms = repair_ms ? repair_ms : P2P_FLOW_REPAIR_MS;
	fl->peer = *peer;
	b->fl = fl;
	p2p_flow_count(b, offsetof(struct p2p_shard_stats, flows_open), SIZE_MAX);
	p2p_flow_count(b, offsetof(struct p2p_shard_stats, flows_total), SIZE_MAX);
	return 0;
}

/* p2p_fpath_clear - forget @p's stream and buffers (the stream is gone or let go). */
static void p2p_fpath_clear(struct p2p_fpath *p)
{
	p->s = NULL;
	p->attaching = false;
	p->closing = false;
	p->fin_rcvd = false;
	free(p->rx);
	p->rx = NULL;
	p->rx_len = p->rx_cap = 0;
	free(p->ob);
	p->ob = NULL;
	p->ob_len = p->ob_off = 0;
}

void p2p_flow_free(struct p2p_bridge *b)
{
	struct p2p_flow *fl = b->fl;

	for (unsigned int i = 0; i < MIG_PATHS; i++) {
		if (fl->p[i].s) {
			p2p_stream_detach(fl->p[i].s); /* teardown: no callback may reach us */
		}
		p2p_fpath_clear(&fl->p[i]);
	}
	stat_sub(&p2p_st(p2p_bridge_shard(b))->flows_open, 1);
	mig_flow_release(&fl->f);
	free(fl);
	b->fl = NULL;
}

/* p2p_fpath_kick - let @p's connection send what the last stream call queued. */
static void p2p_fpath_kick(struct p2p_bridge *b, const struct p2p_fpath *p)
{
	struct p2p_sconn *sc = &p2p_bridge_shard(b)->conns[p->conn];

	if (sc->c) {
		p2p_sconn_pump(sc);
	}
}

/* p2p_fpath_bind - path @i of @b's flow takes stream @s of connection slot @conn. */
static int p2p_fpath_bind(struct p2p_bridge *b, unsigned int i, struct p2p_stream *s, uint32_t conn)
{
	struct p2p_fpath *p = &b->fl->p[i];

	p->ob = malloc(P2P_FLOW_OBUF);
	if (!p->ob) {
		return -ENOMEM;
	}
	p->s = s;
	p->conn = conn;
	p->ob_len = p->ob_off = 0;
	p2p_stream_set_ops(s, &p2p_fpath_ops, p);
	p2p_stream_set_manual_window(s, true);
	return 0;
}

/* p2p_fpath_put - append frame @fr to @p's output (start of a path: OPEN, ATTACH). */
static void p2p_fpath_put(struct p2p_fpath *p, const struct mig_frame *fr)
{
	int n = mig_frame_encode(fr, p->ob + p->ob_len, P2P_FLOW_OBUF - p->ob_len);

	if (n > 0) {
		p->ob_len += (size_t)n;
	}
}

/* p2p_flow_free_path - a path index with neither a stream nor a live mig_flow path, or -1. */
static int p2p_flow_free_path(const struct p2p_flow *fl)
{
	for (int i = 0; i < MIG_PATHS; i++) {
		if (!fl->p[i].s && fl->f.p[i].state != MIG_P_UP &&
		    fl->f.p[i].state != MIG_P_MOVED) {
			return i;
		}
	}
	return -1;
}

/* p2p_flow_release_paths - let every path's stream go: RESET first when @reset, then FIN. */
static void p2p_flow_release_paths(struct p2p_bridge *b, bool reset)
{
	struct p2p_flow *fl = b->fl;

	for (unsigned int i = 0; i < MIG_PATHS; i++) {
		struct p2p_fpath *p = &fl->p[i];
		struct p2p_stream *s = p->s;

		if (!s) {
			continue;
		}
		if (reset && p->ob_off == p->ob_len) {
			uint8_t rst[2] = { MIG_T_RESET, MIG_R_ABORT };

			p2p_stream_write(s, rst, sizeof(rst)); /* best effort: FIN follows */
		}
		p2p_fpath_clear(p);
		p2p_stream_release(s, false);
		p2p_fpath_kick(b, p);
	}
}

void p2p_flow_abort(struct p2p_bridge *b)
{
	if (!b->fl) {
		return;
	}
	b->fl->failed = true;
	p2p_flow_release_paths(b, true);
}

const char *p2p_flow_why_text(uint64_t code)
{
	switch (code) {
	case P2P_FW_NO_PATH:
		return "no_path";
	case P2P_FW_PEER_RESET:
		return "peer_reset";
	case P2P_FW_PROTOCOL:
		return "protocol";
	case P2P_FW_REFUSED:
		return "refused";
	case P2P_FW_LOCAL:
		return "local";
	default:
		return "";
	}
}

/*
 * p2p_flow_fail - the flow cannot go on: log @why, count it (and remember @code as the
 * service's last failure), RESET the paths and mark the
 * bridge dead (its TCP connection is reset when it is freed). The caller's event ends with
 * p2p_bridge_progress.
 */
static void p2p_flow_fail(struct p2p_bridge *b, enum p2p_flow_why code, const char *why)
{
	struct p2p_svc_stats *st = p2p_bridge_st(b);
	char idt[9];

	if (b->dead || b->fl->failed) {
		return;
	}
	pr_warn(MOD, "flow %s (%s): closed: %s", p2p_flow_idtxt(b->fl, idt),
		b->fl->initiator ? "forward" : "expose", why);
	P2P_FLOW_COUNT(b, flows_failed);
	if (st) {
		/* p2p ls: the service's last failure (read by the control thread, each word atomic) */
		__atomic_store_n(&st->flow_fail_why, (uint64_t)code, __ATOMIC_RELAXED);
		__atomic_store_n(&st->flow_fail_at, (uint64_t)time(NULL), __ATOMIC_RELEASE);
	}
	b->dead = true;
	p2p_flow_abort(b);
}

/* ---- starting paths ------------------------------------------------------------------------- */

void p2p_flow_start(struct p2p_bridge *b, struct p2p_sconn *sc)
{
	struct p2p_shard *ps = p2p_bridge_shard(b);
	struct p2p_flow *fl = b->fl;
	const char *name = ps->views[b->svc].protocol;
	struct mig_frame fr = { .type = MIG_T_OPEN };
	struct p2p_stream *s;
	int err;

	s = p2p_stream_open(sc->c, P2P_FLOW_PROTOCOL, &err);
	if (!s) {
		p2p_flow_fail(b, P2P_FW_LOCAL, "cannot open a stream to the peer");
		return;
	}
	if (p2p_fpath_bind(b, 0, s, sc->slot)) {
		p2p_stream_reset(s);
		p2p_flow_fail(b, P2P_FW_LOCAL, "out of memory");
		return;
	}
	memcpy(fr.id, fl->f.id, MIG_ID_LEN);
	fr.name_len = (uint8_t)strnlen(name, MIG_NAME_MAX);
	fr.name = (const uint8_t *)name;
	p2p_fpath_put(&fl->p[0], &fr);
	mig_path_up(&fl->f, 0, 0);
	p2p_flow_pump(b);
}

/* p2p_flow_attach - initiator: a new path on established connection @sc (ATTACH). */
static int p2p_flow_attach(struct p2p_bridge *b, struct p2p_sconn *sc)
{
	struct p2p_flow *fl = b->fl;
	struct mig_frame fr = { .type = MIG_T_ATTACH };
	struct p2p_stream *s;
	int i = p2p_flow_free_path(fl), err;

	if (i < 0 || !sc->c || !sc->established || sc->dead) {
		return -EBUSY;
	}
	s = p2p_stream_open(sc->c, P2P_FLOW_PROTOCOL, &err);
	if (!s) {
		return err ? err : -EIO;
	}
	if (p2p_fpath_bind(b, (unsigned int)i, s, sc->slot)) {
		p2p_stream_reset(s);
		return -ENOMEM;
	}
	fl->p[i].attaching = true;
	memcpy(fr.id, fl->f.id, MIG_ID_LEN);
	fr.off = fl->f.rx_off;
	p2p_fpath_put(&fl->p[i], &fr);
	stat_add(&p2p_st(p2p_bridge_shard(b))->flow_paths, 1);
	pr_debug(MOD, "flow: attaching path %d on %s connection %u", i,
		 sc->is_link ? "relayed" : "direct", sc->slot);
	return 0;
}

/* p2p_flow_direct - a verified direct (not relayed) connection to @peer on @ps, or NULL. */
static struct p2p_sconn *p2p_flow_direct(struct p2p_shard *ps, const struct peer_id *peer)
{
	struct p2p_sconn *sc = p2p_dcu_direct(ps, peer);

	if (sc) {
		return sc;
	}
	for (uint32_t i = 0; i < P2P_CONNS_MAX; i++) {
		sc = &ps->conns[i];
		if (sc->c && sc->fwd && !sc->is_link && !sc->dead && sc->established &&
		    !sc->finishing && peerid_equal(&sc->peer, peer)) {
			return sc;
		}
	}
	return NULL;
}

/* p2p_flow_refused_conn - the peer refused a path of this flow over @sc. */
static bool p2p_flow_refused_conn(const struct p2p_flow *fl, const struct p2p_sconn *sc)
{
	return sc->slot == fl->no_switch && sc->gen == fl->no_switch_gen;
}

/*
 * p2p_flow_redial - initiator without a path: a connection to the peer (direct if there is
 * one, else the forward's address or relay, then each alternative address in turn) and
 * ATTACH on it once it is up (p2p_flow_conn_up).
 */
static void p2p_flow_redial(struct p2p_bridge *b)
{
	struct p2p_shard *ps = p2p_bridge_shard(b);
	struct p2p_svc_view *view = &ps->views[b->svc];
	struct p2p_flow *fl = b->fl;
	struct p2p_sconn *sc;

	fl->retry_ms = ps->sh->now_ms + P2P_FLOW_RETRY_MS;
	sc = p2p_flow_direct(ps, &fl->peer);
	if (sc && p2p_flow_refused_conn(fl, sc)) {
		sc = NULL; /* the peer refused this flow over it */
	}
	if (!sc && view->id == b->svc_id &&
	    (view->kind == P2P_SVC_FORWARD || view->kind == P2P_SVC_CLOSING)) {
		const struct p2p_fwd_addr main = { .addr = view->addr,
						   .circuit = view->circuit,
						   .relay = view->relay };
		unsigned int k = fl->attempt++ % (1 + view->n_alt);
		const struct p2p_fwd_addr *a = k ? &view->alt[k - 1] : &main;

		sc = a->circuit ? p2p_circ_dial_fwd(ps, &a->addr, &a->relay, &view->peer) :
				  p2p_sconn_dial_fwd(ps, &a->addr, &view->peer);
	}
	if (!sc || p2p_flow_refused_conn(fl, sc)) {
		return;
	}
	if (sc->established) {
		p2p_flow_attach(b, sc);
	} else {
		fl->dial = (int)sc->slot;
	}
}

/* p2p_flow_active_relayed - the initiator's active path runs over a relayed connection. */
static bool p2p_flow_active_relayed(struct p2p_bridge *b)
{
	struct p2p_flow *fl = b->fl;
	int a = fl->f.active;

	return a >= 0 && fl->p[a].s && !fl->p[a].attaching &&
	       p2p_bridge_shard(b)->conns[fl->p[a].conn].is_link;
}

/* p2p_flow_try_switch - initiator on a relayed path: ATTACH on a direct connection if any. */
static void p2p_flow_try_switch(struct p2p_bridge *b)
{
	struct p2p_flow *fl = b->fl;
	struct p2p_sconn *sc;

	if (fl->switching || fl->failed || !p2p_flow_active_relayed(b) ||
	    p2p_flow_free_path(fl) < 0) {
		return;
	}
	sc = p2p_flow_direct(p2p_bridge_shard(b), &fl->peer);
	if (sc && p2p_flow_refused_conn(fl, sc)) {
		return; /* the peer refused a switch over it */
	}
	if (sc && !p2p_flow_attach(b, sc)) {
		fl->switching = true;
	}
}

/* ---- input ---------------------------------------------------------------------------------- */

/* p2p_flow_deliver - mig_deliver_fn: in-order bytes (or the EOF) for the TCP side. */
static void p2p_flow_deliver(void *ctx, const uint8_t *buf, size_t len)
{
	struct p2p_bridge *b = ctx;
	struct p2p_chunk *c;

	if (!len) {
		b->stream_fin = true;
		return;
	}
	c = malloc(sizeof(*c) + len);
	if (!c) {
		p2p_flow_fail(b, P2P_FW_LOCAL, "out of memory");
		return;
	}
	memcpy(c->data, buf, len);
	c->len = len;
	c->off = 0;
	c->next = NULL;
	if (b->q_tail) {
		b->q_tail->next = c;
	} else {
		b->q_head = c;
	}
	b->q_tail = c;
	b->queued += len;
}

/* p2p_fpath_take - @n bytes of @p's input were used: drop them and credit the peer. */
static void p2p_fpath_take(struct p2p_fpath *p, size_t n)
{
	memmove(p->rx, p->rx + n, p->rx_len - n);
	p->rx_len -= n;
	if (p->s) {
		p2p_stream_consumed(p->s, n);
	}
}

/*
 * p2p_flow_path_up - path @i is agreed (the responder's ATTACH answer, or an ATTACH from the
 * initiator): add it to mig_flow and switch to it when another path is active.
 */
static int p2p_flow_path_up(struct p2p_bridge *b, unsigned int i, uint64_t peer_rx)
{
	struct p2p_flow *fl = b->fl;
	bool repair = fl->f.active < 0;
	char idt[9];
	int ret;

	ret = mig_path_up(&fl->f, i, peer_rx);
	if (ret) {
		return ret;
	}
	if (!repair) {
		ret = mig_flow_switch(&fl->f, i);
		if (ret) {
			return ret;
		}
	}
	if (repair || fl->lost_ms) {
		P2P_FLOW_COUNT(b, flows_repaired);
	} else {
		P2P_FLOW_COUNT(b, flows_migrated);
	}
	pr_info(MOD, "flow %s (%s): %s onto %s path %u after %llu/%llu bytes",
		p2p_flow_idtxt(fl, idt), fl->initiator ? "forward" : "expose",
		repair || fl->lost_ms ? "repaired" : "switched",
		p2p_bridge_shard(b)->conns[fl->p[i].conn].is_link ? "a relayed" : "a direct", i,
		(unsigned long long)fl->f.tx_end, (unsigned long long)fl->f.rx_off);
	fl->lost_ms = 0;
	fl->switching = false;
	fl->refused = false;
	return 0;
}

/*
 * p2p_fpath_refused - initiator: the responder refused path @p with RESET @reason (the
 * connection reached another of its shards, or it is out of paths). Let the path go; no
 * further path is tried over that connection (a switch stays on the path in use, a repair
 * goes on with other connections).
 */
static void p2p_fpath_refused(struct p2p_bridge *b, struct p2p_fpath *p, uint8_t reason)
{
	struct p2p_flow *fl = b->fl;
	struct p2p_stream *s = p->s;

	fl->no_switch = p->conn;
	fl->no_switch_gen = p2p_bridge_shard(b)->conns[p->conn].gen;
	fl->switching = false;
	fl->refused = fl->f.active < 0;
	p2p_fpath_clear(p);
	p2p_stream_release(s, false);
	p2p_fpath_kick(b, p);
	pr_info(MOD, "flow: the peer refused a %s over connection %u (reason %u)",
		fl->f.active < 0 ? "repair" : "switch", fl->no_switch, reason);
}

/* p2p_fpath_hello - initiator: read the responder's answer to ATTACH on path @i. */
static void p2p_fpath_hello(struct p2p_bridge *b, unsigned int i)
{
	struct p2p_fpath *p = &b->fl->p[i];
	struct mig_frame fr;
	int n = mig_frame_decode(p->rx, p->rx_len, &fr);

	if (!n) {
		return;
	}
	if (n > 0 && fr.type == MIG_T_RESET) {
		/* a switch: stay on the path in use; a repair: try other connections until
		 * the repair time is over (then the flow fails as "refused") */
		p2p_fpath_refused(b, p, fr.reason);
		return;
	}
	if (n < 0 || fr.type != MIG_T_ATTACH || memcmp(fr.id, b->fl->f.id, MIG_ID_LEN)) {
		p2p_flow_fail(b, P2P_FW_PROTOCOL, "the peer broke the protocol answering ATTACH");
		return;
	}
	p2p_fpath_take(p, (size_t)n);
	p->attaching = false;
	if (p2p_flow_path_up(b, i, fr.off)) {
		p2p_flow_fail(b, P2P_FW_PROTOCOL,
			      "the peer's ATTACH acknowledges bytes never sent");
	}
}

/* p2p_fpath_input - give path @i's input to mig_flow while the TCP queue has room. */
static bool p2p_fpath_input(struct p2p_bridge *b, unsigned int i)
{
	struct p2p_fpath *p = &b->fl->p[i];
	bool progress = false;
	size_t used;
	int ret;

	while (p->rx_len && p->s && b->queued < P2P_FLOW_QMAX && !b->fl->failed) {
		ret = mig_path_input(&b->fl->f, i, p->rx, p->rx_len, &used, p2p_flow_deliver, b);
		if (used) {
			p2p_fpath_take(p, used);
			progress = true;
		}
		if (ret == -ECONNRESET) {
			p2p_flow_fail(b, P2P_FW_PEER_RESET, "the peer reset the flow");
			return false;
		}
		if (ret < 0) {
			p2p_flow_fail(b, P2P_FW_PROTOCOL, "the peer broke the flow protocol");
			return false;
		}
		if (!used) {
			break; /* a partial frame, or a frame that waits for the other path */
		}
	}
	return progress;
}

/* ---- output --------------------------------------------------------------------------------- */

/* p2p_fpath_output - write what is due on path @i until its stream takes no more. */
static void p2p_fpath_output(struct p2p_bridge *b, unsigned int i)
{
	struct p2p_fpath *p = &b->fl->p[i];

	while (p->s && !b->fl->failed) {
		long n;

		if (p->ob_off == p->ob_len) {
			p->ob_off = 0;
			p->ob_len = mig_path_output(&b->fl->f, i, p->ob, P2P_FLOW_OBUF);
			if (!p->ob_len) {
				break;
			}
		}
		n = p2p_stream_write(p->s, p->ob + p->ob_off, p->ob_len - p->ob_off);
		if (n < 0) {
			p2p_stream_reset(p->s); /* on_stream_close: the path is lost */
			break;
		}
		if (!n) {
			break; /* window or output full: on_stream_writable resumes */
		}
		p->ob_off += (size_t)n;
	}
}

/* p2p_flow_end - the flow finished cleanly: flush done, let the paths go (FIN). */
static void p2p_flow_end(struct p2p_bridge *b)
{
	struct p2p_flow *fl = b->fl;

	for (unsigned int i = 0; i < MIG_PATHS; i++) {
		if (fl->p[i].s && fl->p[i].ob_off < fl->p[i].ob_len) {
			return; /* the last ACK is still on its way out */
		}
	}
	p2p_flow_release_paths(b, false);
	fl->failed = true; /* no more I/O: p2p_flow_done */
	fl->ended = true;
}

void p2p_flow_pump(struct p2p_bridge *b)
{
	struct p2p_flow *fl = b->fl;
	bool again;

	if (!fl || fl->failed || b->dead) {
		return;
	}
	if (fl->pumping) {
		fl->again = true;
		return;
	}
	fl->pumping = true;
	do {
		fl->again = false;
		again = false;
		for (unsigned int i = 0; i < MIG_PATHS && !fl->failed; i++) {
			if (fl->p[i].s && fl->p[i].attaching) {
				p2p_fpath_hello(b, i);
			}
			if (fl->p[i].s && !fl->p[i].attaching) {
				again |= p2p_fpath_input(b, i);
			}
		}
		for (unsigned int i = 0; i < MIG_PATHS && !fl->failed; i++) {
			struct p2p_fpath *p = &fl->p[i];

			p2p_fpath_output(b, i);
			if (p->s && !p->closing && p->ob_off == p->ob_len &&
			    mig_path_finished(&fl->f, i)) {
				/* switched away on both sides: our FIN, then the stream closes */
				p->closing = true;
				p2p_stream_close(p->s);
			}
		}
		if (!fl->failed && mig_flow_done(&fl->f)) {
			p2p_flow_end(b);
		}
		for (unsigned int i = 0; i < MIG_PATHS && !fl->failed; i++) {
			struct p2p_fpath *p = &fl->p[i];

			if (p->s && p->fin_rcvd && !p->rx_len && !p->closing &&
			    !fl->f.p[i].peer_moved) {
				/* all read and the flow not done: a path lost (on_stream_close) */
				p2p_stream_reset(p->s);
			}
		}
	} while ((again || fl->again) && !fl->failed);
	fl->pumping = false;
	for (unsigned int i = 0; i < MIG_PATHS; i++) {
		if (fl->p[i].s) {
			p2p_fpath_kick(b, &fl->p[i]);
		}
	}
	if (fl->f.st.resent_bytes > fl->resent_seen) {
		stat_add(&p2p_st(p2p_bridge_shard(b))->flow_resent,
			 fl->f.st.resent_bytes - fl->resent_seen);
		fl->resent_seen = fl->f.st.resent_bytes;
	}
	p2p_bridge_tcp_send(b);
	if (!fl->failed && b->r_off < b->r_len && fl->f.tx_end - fl->f.tx_acked < fl->f.cap) {
		p2p_bridge_to_stream(b); /* ACKs made room in the ring for the rest of the read */
	}
}

bool p2p_flow_done(struct p2p_bridge *b)
{
	return b->fl->ended;
}

size_t p2p_flow_write(struct p2p_bridge *b, const uint8_t *p, size_t n)
{
	return b->fl->failed ? 0 : mig_flow_write(&b->fl->f, p, n);
}

void p2p_flow_shut(struct p2p_bridge *b)
{
	mig_flow_shutdown(&b->fl->f);
}

/* ---- path stream callbacks ----------------------------------------------------------------- */

/* p2p_fpath_lost - path @p's stream is gone without finishing: rewind or repair. */
static void p2p_fpath_lost(struct p2p_bridge *b, struct p2p_fpath *p)
{
	struct p2p_flow *fl = b->fl;
	bool attaching = p->attaching;
	char idt[9];

	p2p_fpath_clear(p);
	if (fl->failed) {
		return;
	}
	if (attaching) {
		fl->switching = false; /* the new path failed: the old one still works */
		return;
	}
	mig_path_lost(&fl->f, p->idx);
	if (fl->f.active < 0 && !fl->lost_ms) {
		fl->lost_ms = p2p_flow_now(b);
		fl->retry_ms = fl->lost_ms;
		pr_info(MOD, "flow %s (%s): path %u lost at %llu/%llu bytes, %s",
			p2p_flow_idtxt(fl, idt), fl->initiator ? "forward" : "expose", p->idx,
			(unsigned long long)fl->f.tx_acked, (unsigned long long)fl->f.rx_off,
			fl->initiator ? "looking for a new path" : "waiting for the peer");
		/* the dial waits for the tick: this runs inside a connection's teardown */
	}
	p2p_flow_pump(b);
}

static void p2p_fpath_on_data(void *ctx, struct p2p_stream *s, const uint8_t *d, size_t n)
{
	struct p2p_fpath *p = ctx;
	struct p2p_bridge *b = p->b;

	if (b->fl->failed || !n) {
		return;
	}
	if (p->rx_len + n > p->rx_cap) {
		size_t cap = p->rx_cap ? p->rx_cap * 2 : 64 * 1024;
		uint8_t *nb;

		while (cap < p->rx_len + n) {
			cap *= 2;
		}
		if (cap > P2P_FLOW_RX_MAX || !(nb = realloc(p->rx, cap))) {
			p2p_flow_fail(b, P2P_FW_PROTOCOL, "path input beyond the stream window");
			p2p_bridge_progress(b);
			return;
		}
		p->rx = nb;
		p->rx_cap = cap;
	}
	memcpy(p->rx + p->rx_len, d, n);
	p->rx_len += n;
	p2p_flow_pump(b);
	p2p_bridge_progress(b);
}

static void p2p_fpath_on_fin(void *ctx, struct p2p_stream *s)
{
	struct p2p_fpath *p = ctx;
	struct p2p_bridge *b = p->b;

	if (b->fl->failed || p->closing || b->fl->f.p[p->idx].peer_moved) {
		return; /* a finished path: it closes once ours is finished too */
	}
	/*
	 * The peer ended the flow (its last frames precede the FIN) or gave up a path in use:
	 * p2p_flow_pump decides once the frames before the FIN are taken.
	 */
	p->fin_rcvd = true;
	p2p_flow_pump(b);
	p2p_bridge_progress(b);
}

static void p2p_fpath_on_writable(void *ctx, struct p2p_stream *s)
{
	struct p2p_fpath *p = ctx;

	p2p_flow_pump(p->b);
	p2p_bridge_progress(p->b);
}

static void p2p_fpath_on_open(void *ctx, struct p2p_stream *s, const char *protocol)
{
	p2p_fpath_on_writable(ctx, s);
}

static void p2p_fpath_on_close(void *ctx, struct p2p_stream *s)
{
	struct p2p_fpath *p = ctx;
	struct p2p_bridge *b = p->b;

	if (p->s != s) {
		return;
	}
	if (p->closing) {
		p2p_fpath_clear(p);
		mig_path_lost(&b->fl->f, p->idx); /* finished and closed: the slot is free */
		p2p_flow_pump(b);
	} else {
		p2p_fpath_lost(b, p);
	}
	p2p_bridge_progress(b);
}

static const struct p2p_conn_ops p2p_fpath_ops = {
	.on_stream_open = p2p_fpath_on_open,
	.on_stream_data = p2p_fpath_on_data,
	.on_stream_fin = p2p_fpath_on_fin,
	.on_stream_writable = p2p_fpath_on_writable,
	.on_stream_close = p2p_fpath_on_close,
};

/* ---- inbound flow streams: OPEN or ATTACH --------------------------------------------------- */

/* p2p_fpend_drop - free pending stream @pd; @s let go (RESET frame @reason first when != 0). */
static void p2p_fpend_drop(struct p2p_fpend *pd, uint8_t reason)
{
	struct p2p_fpend **pp = &pd->ps->fpend;
	struct p2p_sconn *sc = &pd->ps->conns[pd->conn];

	while (*pp && *pp != pd) {
		pp = &(*pp)->next;
	}
	if (*pp) {
		*pp = pd->next;
	}
	if (pd->s) {
		if (reason) {
			uint8_t rst[2] = { MIG_T_RESET, reason };

			p2p_stream_write(pd->s, rst, sizeof(rst));
		}
		p2p_stream_release(pd->s, false);
		if (sc->c) {
			p2p_sconn_pump(sc);
		}
	}
	free(pd);
}

/* p2p_fpend_open - OPEN @fr on @pd: a new flow to the exposed service it names. */
static uint8_t p2p_fpend_open(struct p2p_fpend *pd, const struct mig_frame *fr,
			      struct p2p_bridge **out)
{
	struct p2p_shard *ps = pd->ps;
	struct p2p_sconn *sc = &ps->conns[pd->conn];
	const struct peer_id *peer = sc->c ? p2p_conn_remote(sc->c) : NULL;
	struct p2p_bridge *b;
	uint32_t v;

	for (v = 0; v < P2P_SVC_MAX; v++) {
		if (ps->views[v].kind == P2P_SVC_EXPOSE &&
		    strlen(ps->views[v].protocol) == fr->name_len &&
		    !memcmp(ps->views[v].protocol, fr->name, fr->name_len)) {
			break;
		}
	}
	if (v == P2P_SVC_MAX || !peer) {
		return MIG_R_NO_SERVICE;
	}
	b = p2p_bridge_alloc(ps, v);
	if (!b) {
		return MIG_R_LIMIT;
	}
	if (p2p_flow_new(b, false, peer, 0)) {
		b->dead = true;
		p2p_bridge_progress(b);
		return MIG_R_LIMIT;
	}
	memcpy(b->fl->f.id, fr->id, MIG_ID_LEN);
	if (p2p_fpath_bind(b, 0, pd->s, pd->conn)) {
		b->dead = true;
		p2p_bridge_progress(b);
		return MIG_R_LIMIT;
	}
	b->conn = pd->conn;
	mig_path_up(&b->fl->f, 0, 0);
	*out = b;
	return 0;
}

/* p2p_fpend_attach - ATTACH @fr on @pd: a new path of a flow of this shard. */
static uint8_t p2p_fpend_attach(struct p2p_fpend *pd, const struct mig_frame *fr,
				struct p2p_bridge **out)
{
	struct p2p_shard *ps = pd->ps;
	struct mig_frame ans = { .type = MIG_T_ATTACH };
	struct p2p_bridge *b = NULL;
	int i;

	for (uint32_t k = 0; k < P2P_BRIDGES_MAX; k++) {
		struct p2p_bridge *c = &ps->br[k];

		if (c->used && c->fl && !c->fl->initiator && !c->fl->failed && !c->dead &&
		    !memcmp(c->fl->f.id, fr->id, MIG_ID_LEN)) {
			b = c;
			break;
		}
	}
	if (!b) {
		return MIG_R_UNKNOWN_FLOW;
	}
	i = p2p_flow_free_path(b->fl);
	if (i < 0 || p2p_fpath_bind(b, (unsigned int)i, pd->s, pd->conn)) {
		return MIG_R_LIMIT;
	}
	memcpy(ans.id, fr->id, MIG_ID_LEN);
	ans.off = b->fl->f.rx_off;
	p2p_fpath_put(&b->fl->p[i], &ans);
	stat_add(&p2p_st(ps)->flow_paths, 1);
	if (p2p_flow_path_up(b, (unsigned int)i, fr->off)) {
		p2p_flow_fail(b, P2P_FW_PROTOCOL,
			      "the peer's ATTACH acknowledges bytes never sent");
		p2p_bridge_progress(b);
		return 0; /* the path was bound: p2p_flow_fail let it go */
	}
	*out = b;
	return 0;
}

static void p2p_fpend_on_data(void *ctx, struct p2p_stream *s, const uint8_t *d, size_t n)
{
	struct p2p_fpend *pd = ctx;
	size_t had = pd->len, k = sizeof(pd->buf) - had < n ? sizeof(pd->buf) - had : n;
	struct p2p_bridge *b = NULL;
	struct mig_frame fr;
	uint8_t reason;
	size_t rest;
	int len;

	memcpy(pd->buf + had, d, k);
	pd->len += k;
	len = mig_frame_decode(pd->buf, pd->len, &fr);
	if (!len) {
		if (pd->len == sizeof(pd->buf)) {
			p2p_fpend_drop(pd, MIG_R_PROTOCOL);
		}
		return;
	}
	if (len < 0 || (fr.type != MIG_T_OPEN && fr.type != MIG_T_ATTACH)) {
		p2p_fpend_drop(pd, MIG_R_PROTOCOL);
		return;
	}
	reason =
		fr.type == MIG_T_OPEN ? p2p_fpend_open(pd, &fr, &b) : p2p_fpend_attach(pd, &fr, &b);
	if (reason || !b) {
		if (!reason) {
			pd->s = NULL; /* taken and let go by the failed flow */
		}
		p2p_fpend_drop(pd, reason);
		return;
	}
	/* The stream is the flow's now: the frame is consumed, what followed it is path input. */
	p2p_stream_consumed(s, (size_t)len);
	rest = n - ((size_t)len - had);
	pd->s = NULL;
	p2p_fpend_drop(pd, 0);
	if (fr.type == MIG_T_OPEN) {
		p2p_bridge_expose_connect(b, b->svc); /* may abort (and free) the bridge */
	}
	if (!b->used || !b->fl || b->dead) {
		return;
	}
	for (unsigned int i = 0; rest && i < MIG_PATHS; i++) {
		if (b->fl->p[i].s == s) {
			p2p_fpath_on_data(&b->fl->p[i], s, d + (n - rest), rest);
			return;
		}
	}
	p2p_flow_pump(b);
	p2p_bridge_progress(b);
}

static void p2p_fpend_on_fin(void *ctx, struct p2p_stream *s)
{
	p2p_fpend_drop(ctx, 0); /* ended before its first frame */
}

static void p2p_fpend_on_close(void *ctx, struct p2p_stream *s)
{
	struct p2p_fpend *pd = ctx;

	pd->s = NULL;
	p2p_fpend_drop(pd, 0);
}

static const struct p2p_conn_ops p2p_fpend_ops = {
	.on_stream_data = p2p_fpend_on_data,
	.on_stream_fin = p2p_fpend_on_fin,
	.on_stream_close = p2p_fpend_on_close,
};

void p2p_flow_stream_open(struct p2p_sconn *sc, struct p2p_stream *s)
{
	struct p2p_fpend *pd = calloc(1, sizeof(*pd));

	if (!pd) {
		p2p_stream_reset(s);
		return;
	}
	pd->ps = sc->ps;
	pd->s = s;
	pd->conn = sc->slot;
	pd->next = sc->ps->fpend;
	sc->ps->fpend = pd;
	p2p_stream_set_ops(s, &p2p_fpend_ops, pd);
	p2p_stream_set_manual_window(s, true);
}

/* ---- connections and time ------------------------------------------------------------------- */

void p2p_flow_conn_up(struct p2p_shard *ps, struct p2p_sconn *sc)
{
	for (uint32_t i = 0; i < P2P_BRIDGES_MAX; i++) {
		struct p2p_bridge *b = &ps->br[i];
		struct p2p_flow *fl = b->fl;

		if (!b->used || !fl || !fl->initiator || fl->failed || b->dead) {
			continue;
		}
		if (fl->dial == (int)sc->slot ||
		    (fl->f.active < 0 && fl->lost_ms && peerid_equal(&sc->peer, &fl->peer))) {
			/* repairing: any connection to the peer that came up (ours or an earlier
			 * dial's) takes the flow */
			if (fl->dial == (int)sc->slot) {
				fl->dial = -1;
			}
			if (fl->f.active < 0 && !fl->p[0].attaching && !fl->p[1].attaching &&
			    !p2p_flow_refused_conn(fl, sc) && !p2p_flow_attach(b, sc)) {
				p2p_flow_pump(b);
			}
		} else if (!sc->is_link && peerid_equal(&sc->peer, &fl->peer)) {
			p2p_flow_try_switch(b);
			p2p_flow_pump(b);
		}
		p2p_bridge_progress(b);
	}
}

void p2p_flow_conn_gone(struct p2p_shard *ps, uint32_t slot)
{
	for (uint32_t i = 0; i < P2P_BRIDGES_MAX; i++) {
		struct p2p_bridge *b = &ps->br[i];

		if (b->used && b->fl && b->fl->dial == (int)slot) {
			b->fl->dial = -1; /* the redial failed: the next tick tries again */
		}
	}
}

/*
 * p2p_flow_probe - initiator: liveness of the active path. A path whose packets are dropped
 * (a NAT mapping gone, a firewall) stays open until the connection's keepalive fails (30 to
 * 60 s). When neither ACKs nor data moved for P2P_FLOW_STALL_MS while bytes of ours are
 * unacknowledged or bytes arrived within P2P_FLOW_IDLE_MS (a download that stopped), ping the
 * path's connection; an answer means the peer is only slow (its application does not
 * read); none within P2P_FLOW_PROBE_MS fails the connection, and the flow repairs.
 */
static void p2p_flow_probe(struct p2p_bridge *b, uint64_t now)
{
	struct p2p_shard *ps = p2p_bridge_shard(b);
	struct p2p_flow *fl = b->fl;
	struct p2p_fpath *p = fl->f.active >= 0 ? &fl->p[fl->f.active] : NULL;
	struct p2p_sconn *sc;
	char idt[9];

	if (!p || !p->s || p->attaching || fl->f.tx_acked != fl->prog_tx ||
	    fl->f.rx_off != fl->prog_rx) {
		fl->prog_tx = fl->f.tx_acked;
		fl->prog_rx = fl->f.rx_off;
		fl->prog_ms = fl->moved_ms = now;
		fl->probe_ms = 0;
		return;
	}
	/* idle (nothing of ours unacknowledged, nothing received for a while): no probes */
	if (fl->f.tx_end == fl->f.tx_acked && now - fl->moved_ms >= P2P_FLOW_IDLE_MS) {
		fl->probe_ms = 0;
		return;
	}
	if (!fl->probe_ms) {
		sc = &ps->conns[p->conn];
		if (now - fl->prog_ms >= P2P_FLOW_STALL_MS && sc->c && !sc->dead &&
		    !p2p_conn_ping(sc->c)) {
			fl->probe_ms = now;
			fl->probe_conn = sc->slot;
			fl->probe_gen = sc->gen;
			p2p_sconn_mark(sc);
		}
		return;
	}
	if (now - fl->probe_ms < P2P_FLOW_PROBE_MS) {
		return;
	}
	sc = &ps->conns[fl->probe_conn];
	fl->probe_ms = 0;
	fl->prog_ms = now;
	if (sc->c && !sc->dead && sc->gen == fl->probe_gen) {
		pr_warn(MOD,
			"flow %s: path over %s connection %u stalled, no answer to a ping in %u ms: "
			"closing the connection",
			p2p_flow_idtxt(fl, idt), sc->is_link ? "relayed" : "direct", sc->slot,
			(unsigned)P2P_FLOW_PROBE_MS);
		if (sc->is_link) {
			p2p_sconn_fail(sc, -ETIMEDOUT);
			ps->sweep = true; /* relayed connections are freed by the flush */
		} else {
			/* No flush: a send stuck on the silent path would hold the connection (and
			 * the flow's stream) until TCP gives up; shutdown ends the stuck I/O now. */
			shutdown(sc->fd, SHUT_RDWR);
			sc->sock_err = true;
			p2p_sconn_fail(sc, -ETIMEDOUT);
		}
	}
}

void p2p_flow_on_ping(struct p2p_shard *ps, struct p2p_sconn *sc, int err)
{
	for (uint32_t i = 0; !err && i < P2P_BRIDGES_MAX; i++) {
		struct p2p_flow *fl = ps->br[i].used ? ps->br[i].fl : NULL;

		if (fl && fl->probe_ms && fl->probe_conn == sc->slot && fl->probe_gen == sc->gen) {
			fl->probe_ms = 0; /* alive: the peer is slow, not gone */
			fl->prog_ms = ps->sh->now_ms;
		}
	}
}

/* p2p_flow_tick_one - ACKs, the switch to a direct path, repair and its deadline. */
static void p2p_flow_tick_one(struct p2p_bridge *b)
{
	struct p2p_flow *fl = b->fl;
	uint64_t now = p2p_flow_now(b);
	char why[96];

	mig_flow_tick(&fl->f);
	if (fl->initiator) {
		p2p_flow_try_switch(b);
		p2p_flow_probe(b, now);
	}
	if (fl->f.active < 0 && fl->lost_ms) {
		uint64_t limit = fl->repair_ms + (fl->initiator ? 0 : P2P_FLOW_GRACE_MS);

		if (now - fl->lost_ms >= limit) {
			snprintf(why, sizeof(why), "no path to the peer within %u ms%s",
				 (unsigned)limit, fl->refused ? " (the peer refused one)" : "");
			p2p_flow_fail(b, fl->refused ? P2P_FW_REFUSED : P2P_FW_NO_PATH, why);
			return;
		}
		/* a dial that did not come up within P2P_FLOW_RETRY_MS: try the next address */
		if (fl->initiator && now >= fl->retry_ms && p2p_flow_free_path(fl) >= 0 &&
		    !fl->p[0].attaching && !fl->p[1].attaching) {
			p2p_flow_redial(b);
		}
	}
	p2p_flow_pump(b);
}

void p2p_flow_tick(struct p2p_shard *ps)
{
	for (uint32_t i = 0; i < P2P_BRIDGES_MAX; i++) {
		struct p2p_bridge *b = &ps->br[i];

		if (b->used && b->fl && !b->fl->failed && !b->dead) {
			p2p_flow_tick_one(b);
			p2p_bridge_progress(b);
		}
	}
}

void p2p_flow_teardown(struct p2p_shard *ps)
{
	while (ps->fpend) {
		struct p2p_fpend *pd = ps->fpend;

		ps->fpend = pd->next;
		if (pd->s) {
			p2p_stream_detach(pd->s);
		}
		free(pd);
	}
}
