/* SPDX-License-Identifier: MIT */
/*
 * Shard-side internals shared by p2p_host.c (connections) and p2p_bridge.c (streams bridged to
 * TCP). Everything here is owned and touched by one shard thread only.
 */
#ifndef NATX_ENGINE_P2P_INT_H
#define NATX_ENGINE_P2P_INT_H

#include <stdbool.h>
#include <linux/time_types.h>
#include <stdint.h>
#include <sys/socket.h>

#include "mig_flow.h"
#include "p2p/conn.h"
#include "p2p_host.h"

struct p2p_bridge;
struct relay;
struct relay_client;
struct p2p_link;

enum { P2P_D_ACCEPT = 0, P2P_D_RECV = 1, P2P_D_SEND = 2, P2P_D_MSG = 3 };

/*
 * Control message slots (dir P2P_D_MSG): 0 start, 1..P2P_REQ_MAX requests, refresh (services,
 * relay on), adopt (shard 0: take the connections in eng->p2p->handoffs).
 */
enum { P2P_MSG_REFRESH = 64, P2P_MSG_ADOPT = 65 };

enum {
	P2P_PARK_MAX = 4, /* hop streams parked on one connection while it moves to shard 0 */
	P2P_PARK_BYTES = 4096, /* bytes a parked hop stream may receive (one hop request) */
	P2P_TALKERS_MAX = 64, /* per-peer relayed byte totals kept for top talkers */
};

/* struct p2p_park - a hop stream that arrived on a shard other than 0, with its first bytes. */
struct p2p_park {
	struct p2p_stream *s; /* NULL: free or gone */
	size_t len;
	uint8_t data[P2P_PARK_BYTES];
};

/*
 * struct p2p_handoff - a connection moving from shard k to shard 0 (which runs the relay):
 * shard k stops its I/O, fills this and queues it on eng->p2p->handoffs (under the lock);
 * shard 0 adopts the socket and the p2p_conn (p2p_conn_rebind) and hands the parked hop
 * streams to the relay. Nothing of it is touched by shard k after the queueing.
 */
struct p2p_handoff {
	struct p2p_handoff *next;
	struct p2p_conn *c;
	int fd;
	bool established;
	uint64_t since_ms;
	struct sockaddr_storage ss; /* remote address */
	struct p2p_park park[P2P_PARK_MAX];
};

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
	bool dialer; /* we made the TCP connection */
	int req; /* dial request index, -1 none */
	unsigned int pings_done;
	uint64_t deadline_ms; /* dials: give up when not done by then (0: none) */
	struct peer_id peer; /* fwd: the dialled peer; links: the peer behind the relay */
	struct sockaddr_storage
		ss; /* connect target (stable while the SQE is in flight) / remote */
	uint64_t since_ms; /* when the connection was made (age in `peers`) */
	uint32_t gen; /* distinguishes reuses of the slot (circuit requests carry it) */
	bool dirty; /* on the shard's dirty list: pump at the end of the event */
	bool migrating; /* moving to shard 0: no new recv, hand off once nothing is in flight */
	bool mig_cancel; /* the recv cancel was submitted */
	bool is_link; /* a relayed connection: c runs over a stream of conns[outer] (p2p_link) */
	bool link_pending; /* is_link, the circuit is not up yet (c is NULL) */
	bool connect_sent; /* link_pending: CONNECT sent on the relay connection */
	bool link_dialer; /* is_link: we asked for the circuit */
	uint32_t outer; /* is_link: slot of the connection to the relay */
	struct p2p_link *link;
	struct p2p_handoff *hand; /* parked hop streams (shards other than 0) */
	/* DCUtR (p2p_dcutr.c, shard 0) */
	bool dcu_pending; /* is_link, inbound: start an upgrade on the next tick (we are B) */
	bool dcu_wait; /* is_link: B, waiting for the direct connection from the peer */
	bool upgraded; /* is_link: a direct connection replaced it; closed when idle */
	bool dcu_direct; /* direct: verified by a DCUtR upgrade (circuit forwards to the peer use it) */
	bool punch; /* connecting: a hole punch (p2p_sconn_punch), completion by poll */
	bool dcu_dial; /* direct: a hole-punch dial for the link dcu_link (generation dcu_gen) */
	uint32_t dcu_link, dcu_gen;
	bool dcu_acc; /* accepted from the address we punch to as A: we are its client */
	bool punch_wait; /* punch: waiting (timeout punch_ts in flight) before its connect */
	struct __kernel_timespec punch_ts;
	uint8_t dcu_dials; /* is_link: hole-punch dials of the current attempt still running */
	uint8_t dcu_att; /* is_link: the current attempt; punch: the attempt it belongs to */
	/* AutoNAT (p2p_autonat.c, shard 0) */
	bool atn_dial; /* a dial-back for the server request atn_req */
	struct autonat_req *atn_req;
};

/* struct p2p_chunk - stream bytes waiting to be sent to the TCP side. */
struct p2p_chunk {
	struct p2p_chunk *next;
	size_t len, off;
	uint8_t data[];
};

enum {
	P2P_FLOW_RING = 512 * 1024, /* a flow's send ring: unacknowledged bytes (mig_flow) */
	P2P_FLOW_OBUF = 2 * MIG_FRAME_MAX, /* frames made for a path, not yet taken by it */
	P2P_FLOW_QMAX = 256 * 1024, /* delivered bytes queued for TCP before input stops */
	P2P_FLOW_RETRY_MS = 1000, /* repair: pause between dials of a path */
	P2P_FLOW_GRACE_MS = 5000, /* responder: waits repair + this for the initiator's ATTACH */
	P2P_FLOW_STALL_MS = 2000, /* unacknowledged bytes and no progress this long: probe */
	P2P_FLOW_PROBE_MS = 3000, /* a probe (ping on the path's connection) unanswered: dead */
	P2P_FLOW_IDLE_MS = 10000, /* no bytes either way this long: idle, not probed */
};

/* struct p2p_fpath - one path of a flow: a /natx/flow/1.0.0 stream (p2p_flow.c). */
struct p2p_fpath {
	struct p2p_bridge *b;
	uint8_t idx; /* index in fl->p and in mig_flow */
	struct p2p_stream *s; /* NULL: no stream */
	uint32_t conn; /* connection slot of @s */
	bool attaching; /* initiator: ATTACH sent, the responder's answer not read yet */
	bool closing; /* finished: our FIN is sent, waiting for the stream's close */
	bool fin_rcvd; /* the peer's FIN came on a path in use (lost once its input is read) */
	uint8_t *rx; /* bytes received, not yet taken by mig_path_input */
	size_t rx_len, rx_cap;
	uint8_t *ob; /* P2P_FLOW_OBUF: frames made, [ob_off, ob_len) not yet written */
	size_t ob_len, ob_off;
};

/* struct p2p_flow - the flow state of a bridge in flow mode (p2p_flow.c). */
struct p2p_flow {
	struct mig_flow f;
	struct p2p_fpath p[MIG_PATHS];
	bool initiator; /* forward side: opens, attaches, repairs */
	bool failed; /* aborted: no more I/O on the flow */
	bool switching; /* initiator: a path is being attached to replace a relayed one */
	bool ended; /* finished cleanly, paths let go */
	bool refused; /* repair: the peer refused a path (its last answer) */
	bool pumping, again; /* p2p_flow_pump is running / must run once more */
	uint64_t lost_ms; /* when the flow last found itself without a path, 0: it has one */
	uint64_t retry_ms; /* repair: next dial attempt */
	int dial; /* repair: connection slot awaited, -1 none */
	uint32_t no_switch, no_switch_gen; /* connection (slot, gen) the peer refused a switch on */
	uint32_t repair_ms;
	uint32_t attempt; /* repair: dials so far (the forward's address, then each alternative) */
	struct peer_id peer;
	uint64_t resent_seen; /* f.st.resent_bytes already counted in flow_resent */
	/* Liveness of the active path (initiator): a silently dropped path is found by a ping. */
	uint64_t prog_tx, prog_rx; /* f.tx_acked and f.rx_off when they last moved */
	uint64_t prog_ms; /* when they last moved, or a probe was answered */
	uint64_t moved_ms; /* when they last moved */
	uint64_t probe_ms; /* a ping is out on connection (probe_conn, probe_gen), 0 none */
	uint32_t probe_conn, probe_gen;
};

/* struct p2p_fpend - an inbound /natx/flow/1.0.0 stream whose OPEN/ATTACH was not read yet. */
struct p2p_fpend {
	struct p2p_fpend *next;
	struct p2p_shard *ps;
	struct p2p_stream *s;
	uint32_t conn;
	uint8_t buf[MIG_ID_LEN + MIG_NAME_MAX + 16];
	size_t len;
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
	struct p2p_flow *fl; /* flow mode (p2p_flow.c): paths instead of @s */
};

/* struct p2p_svc_view - a shard's copy of one service. */
struct p2p_svc_view {
	int kind;
	uint32_t id;
	char protocol[P2P_PROTO_MAX];
	struct sockaddr_storage addr;
	struct peer_id peer;
	bool circuit;
	struct peer_id relay;
	bool flow;
	uint32_t repair_ms;
	struct p2p_fwd_addr alt[P2P_FWD_ALT_MAX];
	uint32_t n_alt;
	int lfd;
	bool accept_armed; /* shard 0: multishot accept on lfd */
};

/* struct p2p_talker - bytes relayed for one peer (both directions, finished circuits). */
struct p2p_talker {
	struct peer_id peer;
	uint64_t bytes;
};

/* struct p2p_keep - a connection kept up (bootstrap peer, or a relay we reserve on): shard 0. */
struct p2p_keep {
	bool used;
	bool reserve; /* keep a reservation on it */
	bool reserved; /* a reservation is live */
	bool rsvp_busy; /* a RESERVE is on its way */
	bool ever_reserved;
	bool bootstrap; /* kept for its own sake (bootstrap peer), not only for a reservation */
	bool disc; /* the reservation was asked for by relay discovery (p2p_relay_disc.c) */
	struct sockaddr_storage ss;
	struct peer_id peer;
	uint8_t addr[MADDR_MAX_LEN]; /* as dialled, with /p2p/<peer> */
	size_t addr_len;
	int slot; /* connection slot, -1 none */
	int req; /* a RESERVE request waiting for the answer, -1 none */
	uint64_t next_ms; /* next dial (or reserve) attempt */
	uint32_t backoff_ms;
	uint32_t dials, losses;
	uint64_t expire; /* reservation expiry, UNIX seconds */
	uint32_t last_status; /* last refusal status, 0 none */
	int last_err;
	char circuit[MADDR_TEXT_MAX]; /* our /p2p-circuit address through it */
};

struct p2p_shard {
	struct shard *sh;
	struct p2p_host host;
	struct p2p_sconn conns[P2P_CONNS_MAX];
	uint32_t free_head; /* released slots */
	uint32_t
		conns_hw; /* slots [conns_hw, P2P_CONNS_MAX) were never used (zero, not resident) */
	bool accept_armed;
	bool started;
	uint32_t svc_gen; /* eng->p2p->svc_gen this view was built from */
	struct p2p_svc_view views[P2P_SVC_MAX];
	const char
		*protos[P2P_SVC_MAX + 5]; /* host.protocols: exposed, flow, relay, dcutr, autonat */
	char proto_store[P2P_SVC_MAX][P2P_PROTO_MAX]; /* never freed: conns keep pointers */
	struct p2p_bridge br[P2P_BRIDGES_MAX];
	struct p2p_fpend *fpend; /* inbound flow streams not yet read (p2p_flow.c) */
	/* Relay and relayed connections (p2p_relay.c). */
	uint32_t dirty[P2P_CONNS_MAX]; /* slots to pump at the end of the event */
	uint32_t n_dirty;
	bool sweep; /* a relayed connection died: free it at the end of the event */
	uint32_t gen_next;
	struct relay *relay; /* shard 0, relay on */
	const uint8_t *relay_addrs[P2P_RELAY_ADDRS_MAX]; /* relay_conf.addrs, for relay_config */
	struct relay_client *rcl; /* shard 0 */
	struct p2p_keep keep[P2P_KEEP_MAX];
	struct p2p_talker talkers[P2P_TALKERS_MAX];
	struct p2p_dcu *dcu; /* shard 0: DCUtR (p2p_dcutr.c) */
	struct p2p_atn *atn; /* shard 0: AutoNAT (p2p_autonat.c) */
};

struct p2p_shard_stats *p2p_st(struct p2p_shard *ps);
void p2p_sconn_pump(struct p2p_sconn *sc);
void p2p_sconn_fail(struct p2p_sconn *sc, int err);

/*
 * p2p_sconn_connect - wrap socket @fd (ours to close on NULL) in a dialling connection to @ss
 * that must prove to be @peer, and start the connect. NULL when the table is full.
 */
struct p2p_sconn *p2p_sconn_connect(struct p2p_shard *ps, int fd, const struct sockaddr_storage *ss,
				    const struct peer_id *peer);
/*
 * p2p_sconn_punch - wrap @fd, a hole-punch socket, in a connection with role @client that must
 * prove to be @peer; completion is polled (a soft ICMP error of the TTL-limited first SYN is not
 * a failure). @wait_ms 0: connect() to @ss is already in progress; otherwise the connection
 * waits @wait_ms (an io_uring timeout) and then p2p_dcu_punch_fire starts the connect. NULL
 * when the table is full.
 */
struct p2p_sconn *p2p_sconn_punch(struct p2p_shard *ps, int fd, const struct sockaddr_storage *ss,
				  const struct peer_id *peer, bool client, uint32_t wait_ms);
/* p2p_dcu_punch_fire - the delayed punch @sc: connect() to sc->ss now (p2p_dcutr.c); -errno. */
int p2p_dcu_punch_fire(struct p2p_sconn *sc);
/* p2p_relay_move_to_shard0 - hand @sc (shard k != 0) to shard 0 after this event; false if busy. */
bool p2p_relay_move_to_shard0(struct p2p_sconn *sc);

/* p2p_sconn_dial - a kept connection to @peer at @ss (shard 0, p2p forward), or NULL. */
struct p2p_sconn *p2p_sconn_dial_fwd(struct p2p_shard *ps, const struct sockaddr_storage *ss,
				     const struct peer_id *peer);

/* Relay, relayed connections, kept connections (p2p_relay.c). */
void p2p_relay_shard_init(struct p2p_shard *ps);
void p2p_relay_shard_teardown(struct p2p_shard *ps);
void p2p_relay_on_output(struct p2p_conn *c);
void p2p_sconn_mark(struct p2p_sconn *sc);
void p2p_relay_flush(struct p2p_shard *ps);
void p2p_relay_tick(struct p2p_shard *ps);
bool p2p_relay_stream_open(struct p2p_sconn *sc, struct p2p_stream *s, const char *protocol);
void p2p_relay_conn_up(struct p2p_shard *ps, struct p2p_sconn *sc);
void p2p_relay_conn_gone(struct p2p_shard *ps, struct p2p_sconn *sc);
void p2p_relay_migrate_pump(struct p2p_sconn *sc);
void p2p_relay_adopt(struct p2p_shard *ps);
void p2p_handoffs_drop(struct p2p_eng *pe);
void p2p_link_pump(struct p2p_sconn *sc);
void p2p_relay_req_start(struct p2p_shard *ps, int r);
struct p2p_sconn *p2p_circ_dial_fwd(struct p2p_shard *ps, const struct sockaddr_storage *relay_ss,
				    const struct peer_id *relay, const struct peer_id *target);
size_t p2p_relay_protocols(struct p2p_shard *ps, const char **out);

/* DCUtR (p2p_dcutr.c). */
struct p2p_dcu;
void p2p_dcu_shard_init(struct p2p_shard *ps);
void p2p_dcu_shard_teardown(struct p2p_shard *ps);
void p2p_dcu_tick(struct p2p_shard *ps);
/* p2p_dcu_conn_up - @sc is established (or adopted by shard 0): links, hole-punch dials. */
void p2p_dcu_conn_up(struct p2p_shard *ps, struct p2p_sconn *sc);
/*
 * p2p_dcu_accept_client - any shard, before wrapping an accepted socket from @from: true with
 * *@peer when @from's IP is the address of a peer we are punching to as A, so the connection
 * is B's punch socket reaching our listener: we are its client (the spec's roles, whatever the
 * TCP direction).
 */
bool p2p_dcu_accept_client(struct p2p_shard *ps, const struct sockaddr_storage *from,
			   struct peer_id *peer);
/* p2p_dcu_conn_gone - @sc is being freed. */
void p2p_dcu_conn_gone(struct p2p_shard *ps, struct p2p_sconn *sc);
/* p2p_dcu_stream_open - an inbound /libp2p/dcutr stream; true when taken. */
bool p2p_dcu_stream_open(struct p2p_sconn *sc, struct p2p_stream *s, const char *protocol);
/* p2p_dcu_direct - shard 0: the verified direct connection a DCUtR upgrade made to @peer, or NULL. */
struct p2p_sconn *p2p_dcu_direct(struct p2p_shard *ps, const struct peer_id *peer);
cJSON *p2p_dcu_json(struct p2p_shard *ps);
size_t p2p_dcu_protocols(struct p2p_shard *ps, const char **out);

/* AutoNAT (p2p_autonat.c): shard 0 only; the hooks do nothing elsewhere. */
struct p2p_atn;
struct autonat_req;
void p2p_atn_shard_init(struct p2p_shard *ps);
void p2p_atn_shard_teardown(struct p2p_shard *ps);
void p2p_atn_tick(struct p2p_shard *ps);
/* p2p_atn_conn_up - @sc is established: a dial-back succeeded. */
void p2p_atn_conn_up(struct p2p_shard *ps, struct p2p_sconn *sc);
/* p2p_atn_conn_gone - @sc is being freed: drop its probe, fail its dial-back. */
void p2p_atn_conn_gone(struct p2p_shard *ps, struct p2p_sconn *sc);
/* p2p_atn_stream_open - an inbound /libp2p/autonat/1.0.0 stream; true when taken. */
bool p2p_atn_stream_open(struct p2p_sconn *sc, struct p2p_stream *s, const char *protocol);
size_t p2p_atn_protocols(struct p2p_shard *ps, const char **out);
/* p2p_atn_probe_now - start a round of dial-back requests on the next tick. */
void p2p_atn_probe_now(struct p2p_shard *ps);
/* p2p_atn_json - reachability, confidence, claimed addresses, answers, server counters. */
cJSON *p2p_atn_json(struct p2p_shard *ps);

/*
 * Relay discovery (p2p_relay_disc.c), shard 0: p2p_disc_tick - with AutoNAT's verdict @reach
 * (enum autonat_reachability), reserve on hop-capable bootstrap peers while private.
 * p2p_disc_json - the state for p2p.nat.
 */
void p2p_disc_tick(struct p2p_shard *ps, int reach);
cJSON *p2p_disc_json(struct p2p_shard *ps);

/*
 * p2p_observed_addrs - our addresses as @ps's established direct connections see them
 * (identify observedAddr) with our listen port, deduplicated, at most @max into @addrs/@alen;
 * with @public_only just public, dialable ones (dcutr_filter_addrs). Returns how many.
 */
size_t p2p_observed_addrs(struct p2p_shard *ps, bool public_only, uint8_t (*addrs)[MADDR_MAX_LEN],
			  size_t *alen, size_t max);

/* p2p_pe - the engine's libp2p state of @ps's engine. */
static inline struct p2p_eng *p2p_pe(struct p2p_shard *ps)
{
	return ps->sh->eng->p2p;
}

/* p2p_json_peer - @id as text under @key of @o. */
static inline void p2p_json_peer(cJSON *o, const char *key, const struct peer_id *id)
{
	char txt[PEERID_TEXT_MAX];

	peerid_to_text(id, txt, sizeof(txt));
	cJSON_AddStringToObject(o, key, txt);
}

/* p2p_keep_json - a kept connection's state (p2p_node.c). */
cJSON *p2p_keep_json(struct p2p_shard *ps, const struct p2p_keep *k);
/* p2p_relay_status_json - shard 0: the relay's settings, counters, circuits (p2p_relay.c). */
cJSON *p2p_relay_status_json(struct p2p_shard *ps);
/* p2p_link_slot_free - free a relayed connection and its slot, top level only (p2p_flush.c). */
void p2p_link_slot_free(struct p2p_sconn *L);

/* p2p_shard_msg - control thread: MSG_RING to shard @i, control message @slot (p2p_eng.c). */
int p2p_shard_msg(struct engine *eng, unsigned int i, uint32_t slot);

/* p2p_host.c helpers used by p2p_relay.c */
struct p2p_sconn *p2p_sconn_alloc(struct p2p_shard *ps);
void p2p_sconn_release(struct p2p_shard *ps, struct p2p_sconn *sc);
void p2p_req_finish(struct p2p_eng *pe, int r, int err, cJSON *result);
void p2p_sconn_req_fail(struct p2p_sconn *sc, int err);
extern const struct p2p_conn_ops p2p_sconn_ops;
void p2p_dial(struct p2p_shard *ps, int r);

/* Bridges (p2p_bridge.c). */
void p2p_svc_refresh(struct p2p_shard *ps);
void p2p_bridge_on_stream_open(struct p2p_sconn *sc, struct p2p_stream *s, const char *protocol);
void p2p_bridge_handle_cqe(struct p2p_shard *ps, uint32_t b, unsigned int dir, int res);
void p2p_bridge_fwd_accept(struct p2p_shard *ps, uint32_t v, struct io_uring_cqe *cqe);
void p2p_bridge_conn_up(struct p2p_shard *ps, struct p2p_sconn *sc);
void p2p_bridge_conn_gone(struct p2p_shard *ps, uint32_t slot);
void p2p_bridge_teardown(struct p2p_shard *ps);
void p2p_bridge_tick(struct p2p_shard *ps);

/* Bridge internals shared with p2p_flow.c. */
struct p2p_shard *p2p_bridge_shard(struct p2p_bridge *b);
struct p2p_svc_stats *p2p_bridge_st(struct p2p_bridge *b);
struct p2p_bridge *p2p_bridge_alloc(struct p2p_shard *ps, uint32_t v);
void p2p_bridge_abort(struct p2p_bridge *b);
void p2p_bridge_progress(struct p2p_bridge *b);
void p2p_bridge_tcp_send(struct p2p_bridge *b);
void p2p_bridge_to_stream(struct p2p_bridge *b);
/* p2p_bridge_expose_connect - start the TCP connect of expose bridge @b to view @v's target. */
void p2p_bridge_expose_connect(struct p2p_bridge *b, uint32_t v);

/*
 * Flows (p2p_flow.c, docs/migration.md "In the engine"): a bridge in flow mode carries its
 * TCP connection's bytes over one or two /natx/flow/1.0.0 paths framed by mig_flow.
 */
#define P2P_FLOW_PROTOCOL "/natx/flow/1.0.0"
/* p2p_flow_new - @b becomes a flow bridge (@initiator: a forward); -ENOMEM. */
int p2p_flow_new(struct p2p_bridge *b, bool initiator, const struct peer_id *peer,
		 uint32_t repair_ms);
/* p2p_flow_free - free @b's flow; its paths must have no stream (p2p_flow_abort). */
void p2p_flow_free(struct p2p_bridge *b);
/* p2p_flow_start - forward: open the first path (OPEN) on established connection @sc. */
void p2p_flow_start(struct p2p_bridge *b, struct p2p_sconn *sc);
/* p2p_flow_abort - RESET and let go of every path (the bridge is dying). */
void p2p_flow_abort(struct p2p_bridge *b);
/* p2p_flow_write - TCP bytes into the flow; returns how many fit. */
size_t p2p_flow_write(struct p2p_bridge *b, const uint8_t *p, size_t n);
/* p2p_flow_shut - the TCP side sent FIN: FIN follows the last byte. */
void p2p_flow_shut(struct p2p_bridge *b);
/* p2p_flow_pump - after an event: deliver what the TCP queue has room for, send what is due. */
void p2p_flow_pump(struct p2p_bridge *b);
/* p2p_flow_done - the flow ended cleanly and its paths are let go: the bridge may be freed. */
bool p2p_flow_done(struct p2p_bridge *b);
/* p2p_flow_stream_open - an inbound /natx/flow/1.0.0 stream (read its OPEN or ATTACH). */
void p2p_flow_stream_open(struct p2p_sconn *sc, struct p2p_stream *s);
/* p2p_flow_conn_up / conn_gone - connection @sc (slot) came up / is being freed: repairs. */
void p2p_flow_conn_up(struct p2p_shard *ps, struct p2p_sconn *sc);
void p2p_flow_conn_gone(struct p2p_shard *ps, uint32_t slot);
/* p2p_flow_on_ping - a ping on @sc finished (@err 0: answered): a probed path is alive. */
void p2p_flow_on_ping(struct p2p_shard *ps, struct p2p_sconn *sc, int err);
/* p2p_flow_tick - the shard's tick: ACKs, switches to a direct path, repair deadlines. */
void p2p_flow_tick(struct p2p_shard *ps);
/* p2p_flow_teardown - free pending inbound flow streams (shard teardown). */
void p2p_flow_teardown(struct p2p_shard *ps);

#endif
