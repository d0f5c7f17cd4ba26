/* SPDX-License-Identifier: MIT */
/*
 * p2p_host - libp2p inside the engine's shards (docs/libp2p.md "In the engine"). The control
 * thread loads the identity and binds one SO_REUSEPORT TCP listener per shard
 * (p2p_eng_start); each shard accepts on its own listener and runs one p2p_conn (engine/p2p)
 * per TCP connection, driven by io_uring completions: one recv and one send in flight per
 * connection, recv straight into the connection's input buffer, send straight from its output
 * buffer, p2p_conn_tick on the shard's 250 ms tick. Dials (ping, identify) are requests the
 * control thread hands to shard 0 through MSG_RING and waits for (p2p_eng_request).
 *
 * user_data: op UD_P2P; dir 0 = accept (slot unused), 1 = recv, 2 = send or connect (the
 * connection's state says which), 3 = control message (slot 0 = start, slot r + 1 = request
 * r); slot = connection index in the shard's table. A connection is freed only when none of
 * its requests is in flight, so a late completion never reaches a reused slot.
 *
 * A connection that fails (garbage, Noise failure, protocol violation, EOF) is closed alone and
 * counted; nothing else on the shard is touched.
 */
#ifndef NATX_ENGINE_P2P_HOST_H
#define NATX_ENGINE_P2P_HOST_H

#include <cjson/cJSON.h>
#include <liburing.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include "p2p/multiaddr.h"
#include "p2p/peerid.h"

struct engine;
struct shard;

enum {
	/*
	 * libp2p connections per shard. A relay holds one per reservation, all on shard 0: 16384
	 * lets one engine hold 10,000+ reservations (bench/relay.sh). Slots are handed out from a
	 * high-water mark, so table pages never used stay untouched (not resident).
	 */
	P2P_CONNS_MAX = 16384,
	P2P_REQ_MAX = 8, /* dial requests in flight (control thread -> shard 0) */
	P2P_PING_MAX = 32, /* pings one request may ask for */
	P2P_DIAL_TIMEOUT_MS = 10000, /* a dial request fails after this long */
};

/* struct p2p_shard_stats - counters of one shard, written only by it. */
struct p2p_shard_stats {
	uint64_t conns_open;
	uint64_t conns_in; /* accepted */
	uint64_t conns_out; /* dialled */
	uint64_t conns_established; /* Noise + yamux up */
	uint64_t conns_failed; /* closed with a protocol error (not EOF / reset) */
	uint64_t handshake_failed; /* closed for any reason before Noise + yamux were up */
	uint64_t conns_refused; /* accepted but no free slot */
	uint64_t bytes_in, bytes_out; /* wire bytes */
	uint64_t pings_served; /* inbound pings answered (summed when connections end) */
	uint64_t dials_failed; /* outbound TCP connects that failed or timed out */
	uint64_t conns_migrated; /* handed to shard 0 because they spoke to the relay */
	uint64_t hop_unmovable; /* hop streams refused: their connection could not move */
	uint64_t relayed_open; /* relayed connections (p2p_link) open */
	uint64_t relayed_in, relayed_out; /* circuits accepted (stop) / made (hop CONNECT) */
	uint64_t relayed_failed; /* circuits we asked for that the relay or the target refused */
	/* Migratable flows (/natx/flow/1.0.0, p2p_flow.c), both ends. */
	uint64_t flows_open, flows_total;
	uint64_t flows_migrated; /* moved to a direct path by a clean switch */
	uint64_t flows_repaired; /* continued on a new path after the one in use died */
	uint64_t flows_failed; /* closed (application connection reset) for lack of a path */
	uint64_t flow_paths; /* paths attached after the first (switches and repairs) */
	uint64_t flow_resent; /* bytes sent again after a lost path or a NACK */
} __attribute__((aligned(64)));

/*
 * Request kinds. PING / IDENTIFY dial (directly, or through a relay when @circuit); RESERVE
 * keeps a connection to a relay and a reservation on it; KEEP keeps a connection to a peer
 * (bootstrap peers); RELAY_STATUS reads the relay's counters; PEERS lists one shard's
 * connections. All run on shard 0 except PEERS, which runs on the shard it is sent to.
 */
enum p2p_req_kind {
	P2P_REQ_PING = 1,
	P2P_REQ_IDENTIFY,
	P2P_REQ_RESERVE,
	P2P_REQ_KEEP,
	P2P_REQ_RELAY_STATUS,
	P2P_REQ_PEERS,
	P2P_REQ_UPGRADES, /* shard 0: DCUtR upgrade records and counters (p2p_dcutr.c) */
	P2P_REQ_NAT, /* shard 0: AutoNAT reachability (p2p_autonat.c) */
	P2P_REQ_NAT_PROBE, /* shard 0: the same, after starting a round of dial-back requests */
};
enum p2p_req_state { P2P_REQ_FREE = 0, P2P_REQ_QUEUED, P2P_REQ_DONE, P2P_REQ_ABANDONED };

/*
 * struct p2p_req - one dial request. The control thread fills it and moves state FREE ->
 * QUEUED; the shard fills @result and moves QUEUED -> DONE (release). A control thread that
 * stops waiting moves QUEUED -> ABANDONED and the shard then frees the result and the slot.
 */
struct p2p_req {
	int state; /* enum p2p_req_state, atomic */
	enum p2p_req_kind kind;
	struct sockaddr_storage ss;
	struct peer_id id;
	int has_id;
	unsigned int count; /* pings */
	bool circuit; /* ss/id are the relay's, target the peer behind it */
	struct peer_id target;
	uint8_t addr[MADDR_MAX_LEN]; /* the dialled address (of the relay for circuits) */
	size_t addr_len;
	uint32_t timeout_ms;
	cJSON *result; /* filled by the shard: {"peer_id":...} or {"error":...} */
	int err; /* 0 or -errno / -NATX_E_* */
};

enum {
	P2P_SVC_MAX = 32, /* p2p expose + forward entries */
	P2P_PROTO_MAX = 128, /* bytes of a protocol name, NUL included */
	P2P_BRIDGES_MAX = 256, /* bridged streams per shard */
	P2P_BRIDGE_BUF = 64 * 1024, /* TCP -> stream read buffer per bridge */
	P2P_FLOW_REPAIR_MS = 10000, /* default: a flow without a path looks this long for one */
};

enum p2p_svc_kind { P2P_SVC_FREE = 0, P2P_SVC_EXPOSE, P2P_SVC_FORWARD, P2P_SVC_CLOSING };

enum { P2P_FWD_ALT_MAX = 4 /* other addresses of a flow forward's peer */ };

/* enum p2p_flow_why - why a flow failed (p2p ls "last_flow_failure"). */
enum p2p_flow_why {
	P2P_FW_NO_PATH = 1, /* no path to the peer within the repair time: "no_path" */
	P2P_FW_PEER_RESET, /* the peer sent RESET (its application failed): "peer_reset" */
	P2P_FW_PROTOCOL, /* the peer broke /natx/flow/1.0.0: "protocol" */
	P2P_FW_REFUSED, /* the peer refused the path that was to repair the flow: "refused" */
	P2P_FW_LOCAL, /* out of memory or streams here: "local" */
};

/* p2p_flow_why_text - the stable name of an enum p2p_flow_why ("" for 0). */
const char *p2p_flow_why_text(uint64_t code);

/* struct p2p_fwd_addr - one way to reach a forward's peer: its address, or a relay's. */
struct p2p_fwd_addr {
	struct sockaddr_storage addr; /* the peer's, or the relay's when @circuit */
	bool circuit;
	struct peer_id relay;
};

/*
 * struct p2p_fwd_opts - p2p_eng_forward's options. @flow: streams are migratable flows;
 * @repair_ms: how long a flow without a path looks for one (0: P2P_FLOW_REPAIR_MS); @alt:
 * other multiaddrs of the same peer (direct or /p2p-circuit through other relays) a flow's
 * repair dials in turn after the main one.
 */
struct p2p_fwd_opts {
	bool flow;
	uint32_t repair_ms;
	const char *alt[P2P_FWD_ALT_MAX];
	size_t n_alt;
};

/* struct p2p_svc_stats - per service, per shard (written only by that shard). */
struct p2p_svc_stats {
	uint64_t streams_open, streams_total, streams_failed;
	uint64_t bytes_to_tcp, bytes_to_p2p;
	uint64_t flows_migrated, flows_repaired, flows_failed; /* flow forwards and exposes */
	uint64_t flow_fail_at; /* unix seconds of the last failed flow, 0 none */
	uint64_t flow_fail_why; /* its enum p2p_flow_why */
} __attribute__((aligned(64)));

/*
 * struct p2p_svc - one `p2p expose` or `p2p forward`. Written by the control thread under the
 * seqlock @seq (odd while writing); shards copy it (retrying when @seq moved) when @svc_gen
 * changes. A closing forward's listener is closed by shard 0, which then frees the entry.
 */
struct p2p_svc {
	uint32_t seq;
	int kind; /* enum p2p_svc_kind, atomic */
	uint32_t id;
	char protocol[P2P_PROTO_MAX];
	struct sockaddr_storage
		addr; /* expose: TCP target; forward: the peer's (relay's) address */
	struct peer_id peer; /* forward: the peer to dial */
	bool circuit; /* forward: reach @peer through the relay @relay at @addr */
	struct peer_id relay;
	bool flow; /* forward: streams are /natx/flow/1.0.0 flows (p2p_flow.c) */
	uint32_t repair_ms; /* forward, flow: how long a flow without a path looks for one */
	struct p2p_fwd_addr alt[P2P_FWD_ALT_MAX]; /* forward, flow: repair also dials these */
	uint32_t n_alt;
	char alt_text[P2P_FWD_ALT_MAX][MADDR_TEXT_MAX];
	char text[MADDR_TEXT_MAX]; /* expose: target host:port; forward: peer multiaddr */
	char listen_txt[64]; /* forward: bound listen address */
	int lfd; /* forward: listener (accepted on shard 0) */
	struct p2p_svc_stats st[64];
};

enum {
	P2P_RELAY_ACL_MAX = 64, /* peer IDs in the relay's allow / deny lists */
	P2P_RELAY_ADDRS_MAX = 4, /* addresses announced in reservations */
	P2P_KEEP_MAX = 16, /* kept connections (bootstrap peers, relays we reserve on) */
	P2P_PUNCH_MAX = 16, /* peers awaited by DCUtR at once */
	/*
	 * B's prime SYN: TTL 2 passes our NAT (1 hop) and expires at the next router, before the
	 * peer's NAT (docs/libp2p.md "DCUtR in the engine").
	 */
	P2P_DCUTR_PRIME_TTL = 2,
};

/*
 * struct p2p_relay_conf - the hop server's settings (docs/libp2p.md "Relay in the engine").
 * Written once by the control thread before relay_on is set (release); read-only afterwards.
 */
struct p2p_relay_conf {
	uint32_t max_rsvp, max_rsvp_per_peer, max_rsvp_per_ip; /* 0: default */
	uint32_t max_circuits, max_circuits_per_peer; /* 0: default */
	uint32_t rsvp_ttl_s; /* 0: default */
	uint32_t duration_s; /* per circuit, 0 = unlimited */
	uint64_t data; /* per circuit and direction, 0 = unlimited */
	struct peer_id allow[P2P_RELAY_ACL_MAX], deny[P2P_RELAY_ACL_MAX];
	uint32_t n_allow, n_deny;
	uint8_t addrs[P2P_RELAY_ADDRS_MAX][MADDR_MAX_LEN]; /* announced, with /p2p/<us> */
	size_t addr_lens[P2P_RELAY_ADDRS_MAX];
	uint32_t n_addrs;
};

struct p2p_handoff;

/* struct p2p_eng - what the control thread set up; read-only for shards after start. */
struct p2p_eng {
	struct p2p_identity idn;
	char peer_id[PEERID_TEXT_MAX];
	int lfd[64]; /* one listener per shard */
	unsigned int nlfd;
	uint8_t laddr[MADDR_MAX_LEN]; /* bound listen address (real port) */
	size_t laddr_len;
	char laddr_txt[MADDR_TEXT_MAX];
	const uint8_t *laddrs[1]; /* for p2p_host.listen_addrs */
	size_t laddr_lens[1];
	struct p2p_shard_stats st[64];
	struct p2p_req req[P2P_REQ_MAX];
	struct p2p_svc svc[P2P_SVC_MAX];
	uint32_t svc_gen; /* bumped after every change of svc[] */
	uint32_t next_svc_id;
	struct p2p_relay_conf relay_conf;
	int relay_on; /* atomic: relay_conf is set and the hop protocol is served */
	/*
	 * @lock protects @handoffs (connections on their way to shard 0, which runs the relay)
	 * and @circ_addrs (our /p2p-circuit addresses, written by shard 0).
	 */
	pthread_mutex_t lock;
	struct p2p_handoff *handoffs;
	char circ_addrs[P2P_KEEP_MAX][MADDR_TEXT_MAX];
	unsigned int n_circ_addrs;
	/*
	 * DCUtR (p2p_dcutr.c). @dcutr_on: atomic, hole punching allowed (default on; natxd sets
	 * NAT_TRAVERSAL_ENABLE_HOLE_PUNCHING). @punch (under @lock): peers shard 0 waits for a
	 * direct inbound connection from (it is B of an upgrade); a shard that accepts such a
	 * connection hands it to shard 0. @punch_addr: for an entry of A's, the address A dials
	 * (family 0 for B's): B's SYN from that IP can only land on A's listener when A's NAT
	 * forwards unsolicited packets (full cone) and B's NAT changed B's port (symmetric);
	 * A then takes the client role on the accepted connection (p2p_dcu_accept_client).
	 */
	int dcutr_on;
	int dcutr_ttl; /* atomic: IP TTL of B's prime SYN (0: the system default) */
	uint32_t dcutr_timeout_ms; /* atomic: one upgrade attempt's timeout (0: DCUtR's default) */
	struct peer_id punch[P2P_PUNCH_MAX];
	uint64_t punch_until[P2P_PUNCH_MAX]; /* monotonic ms, 0: free */
	struct sockaddr_storage punch_addr[P2P_PUNCH_MAX];
	int n_punch; /* atomic: entries in use (a cheap check before taking the lock) */
	/*
	 * Relay discovery (p2p_relay_disc.c). @relay_disc: atomic, reserve on hop-capable
	 * bootstrap peers while AutoNAT says we are private (NAT_TRAVERSAL_ENABLE_RELAY_DISCOVERY,
	 * default off).
	 */
	int relay_disc;
};

/*
 * p2p_eng_dcutr_set - control thread: allow (or stop) DCUtR upgrades from now on; @ttl >= 0
 * sets the prime SYN's IP TTL (0: system default, no early expiry), < 0 keeps it.
 */
void p2p_eng_dcutr_set(struct engine *eng, bool on, int ttl);

/* p2p_eng_dcutr_timeout_set - control thread: one upgrade attempt's timeout (0: the default). */
void p2p_eng_dcutr_timeout_set(struct engine *eng, uint32_t ms);

/* p2p_eng_relay_disc_set - control thread: turn relay discovery on or off from now on. */
void p2p_eng_relay_disc_set(struct engine *eng, bool on);

/*
 * p2p_eng_start - load the identity from @key_file (a libp2p PrivateKey protobuf, Ed25519),
 * bind @listen (/ip4|ip6/ADDR/tcp/PORT; port 0 = ephemeral, the same port on every shard) and
 * start accepting on every shard. Returns 0 or -errno / -NATX_E_* with a line in @err.
 */
int p2p_eng_start(struct engine *eng, const char *key_file, const char *listen, char *err,
		  size_t errlen);

/* p2p_eng_stop - after the shards have stopped: close listeners, wipe the key. NULL-safe. */
void p2p_eng_stop(struct engine *eng);

/* p2p_eng_error - why the last p2p_eng_start failed, "" when it did not. */
const char *p2p_eng_error(void);

/* p2p_eng_json - {"peer_id", "listen_addrs", "counters"} or NULL when libp2p is off. */
cJSON *p2p_eng_json(struct engine *eng);

/*
 * p2p_eng_request - control thread: dial @maddr (text, /ip4|ip6/.../tcp/N[/p2p/ID]) on shard 0
 * and run @kind (@count pings), waiting up to @timeout_ms. Returns 0 with *@out (caller frees)
 * or -errno with a line in @err: -ENOTCONN libp2p off, -EINVAL bad address, -EBUSY too many
 * requests, -ETIMEDOUT; a dial/protocol failure is returned as its code.
 */
int p2p_eng_request(struct engine *eng, enum p2p_req_kind kind, const char *maddr,
		    unsigned int count, uint32_t timeout_ms, cJSON **out, char *err, size_t errlen);

/*
 * p2p_eng_expose - accept inbound streams of @protocol (on connections made from now on) and
 * bridge each to a new TCP connection to @target ("host:port"). 0 with *@id, -EEXIST (already
 * exposed), -EINVAL, -ENOSPC, -ENOTCONN (libp2p off); @err gets a line.
 */
int p2p_eng_expose(struct engine *eng, const char *protocol, const char *target, uint32_t *id,
		   char *err, size_t errlen);

/*
 * p2p_eng_forward - listen on @listen ("host:port", port 0 = ephemeral) and bridge each
 * accepted TCP connection to a new stream of @protocol to @peer (multiaddr with /p2p/ID).
 * With @opt->flow each connection is a migratable flow instead (docs/migration.md): a stream
 * of /natx/flow/1.0.0 that OPENs service @protocol, moved to a direct connection to the peer
 * when one comes up and repaired onto a new path (@peer, then @opt->alt in turn) within
 * @opt->repair_ms when the one in use dies. @opt NULL: a plain forward. 0 with *@id, or
 * -errno with @err (-EINVAL also for an alternative address of another peer).
 */
int p2p_eng_forward(struct engine *eng, const char *protocol, const char *listen, const char *peer,
		    const struct p2p_fwd_opts *opt, uint32_t *id, char *err, size_t errlen);

/* p2p_eng_svc_close - stop service @id (open streams continue). 0 or -ENOENT. */
int p2p_eng_svc_close(struct engine *eng, uint32_t id);

/* p2p_eng_svc_json - the services as a JSON array with their counters. */
cJSON *p2p_eng_svc_json(struct engine *eng);

/*
 * p2p_eng_relay_setup - turn the hop server on with the settings in @conf (JSON object, keys
 * of docs/libp2p.md "Relay in the engine"). Applied once: the same settings again are a no-op,
 * different ones -EEXIST (restart the engine to change them). -EINVAL with @err for a bad
 * value, -ENOTCONN when libp2p is off.
 */
int p2p_eng_relay_setup(struct engine *eng, const cJSON *conf, char *err, size_t errlen);

/*
 * p2p_eng_call - control thread: run request @kind on shard @shard (see enum p2p_req_kind),
 * @maddr as for p2p_eng_request (NULL for RELAY_STATUS / PEERS). Same returns.
 */
int p2p_eng_call(struct engine *eng, unsigned int shard, enum p2p_req_kind kind, const char *maddr,
		 unsigned int count, uint32_t timeout_ms, cJSON **out, char *err, size_t errlen);

/* p2p_eng_peers_json - every shard's connections as one array (PEERS on each shard). */
int p2p_eng_peers_json(struct engine *eng, cJSON **out, char *err, size_t errlen);

/* Shard hooks (shard thread). */
void p2p_shard_handle_cqe(struct shard *sh, struct io_uring_cqe *cqe);
void p2p_shard_tick(struct shard *sh);
void p2p_shard_teardown(struct shard *sh);

#endif
