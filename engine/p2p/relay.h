/* SPDX-License-Identifier: MIT */
/*
 * relay - Circuit Relay v2 hop server (libp2p/specs relay/circuit-v2.md), sans-IO on top of
 * p2p_conn streams. One struct relay per shard.
 *
 * The host hands every inbound /libp2p/circuit/relay/0.2.0/hop stream to relay_hop_accept
 * (from on_stream_open) and tells the relay when a connection goes away (relay_conn_gone).
 * The relay then owns the stream (p2p_stream_set_ops). RESERVE: checked against the allow/deny
 * lists and the reservation limits, answered with the reservation (expiry, our public
 * addresses, a signed voucher) and the circuit limits. CONNECT: checked (reservation of the
 * target, circuit limits), then a stop stream is opened to the target through ops->open_stop
 * (default: on the connection that holds the target's reservation), the target's answer is
 * awaited and, on OK, both streams are spliced: bytes move stream to stream, each direction
 * credited to its sender only when written on (yamux backpressure, queues bounded by the
 * windows), counted against the data limit (per direction) and the duration limit.
 * On a limit both streams are reset (spec).
 *
 * Splicing needs both streams in the calling thread: a target on another shard must be
 * reached through ops->open_stop returning a stream of this shard (see docs/libp2p.md).
 */
#ifndef NATX_P2P_RELAY_H
#define NATX_P2P_RELAY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "conn.h"
#include "relay_msg.h"

/* Defaults (a public relay; go's values, js uses 15 reservations, 2 h TTL). */
enum {
	RELAY_DEF_MAX_RSVP = 128,
	RELAY_DEF_MAX_RSVP_PER_PEER = 1,
	RELAY_DEF_MAX_RSVP_PER_IP = 8,
	RELAY_DEF_MAX_CIRCUITS = 1024,
	RELAY_DEF_MAX_CIRCUITS_PER_PEER = 16,
	RELAY_DEF_RSVP_TTL_S = 3600,
	RELAY_DEF_DURATION_S = 120,
	RELAY_DEF_DATA = 128 * 1024,
	RELAY_HOP_TIMEOUT_MS = 30000, /* a hop/stop exchange must finish in this time */
};

/* struct relay_config - operator limits; 0 in a count means the default, see relay_config_default. */
struct relay_config {
	uint32_t max_rsvp; /* reservations in total */
	uint32_t max_rsvp_per_peer; /* reservations of one peer ID (over different connections) */
	uint32_t max_rsvp_per_ip; /* reservations from one IP address */
	uint32_t max_circuits; /* circuits in total */
	uint32_t max_circuits_per_peer; /* circuits one peer takes part in (either end) */
	uint32_t rsvp_ttl_s;
	uint32_t duration_s; /* per circuit, 0 = unlimited */
	uint64_t data; /* per circuit and direction, 0 = unlimited */
	const struct peer_id *allow; /* non-empty: only these peers may reserve */
	size_t n_allow;
	const struct peer_id *deny; /* may neither reserve nor connect */
	size_t n_deny;
	const uint8_t *const *public_addrs; /* our addresses for reservations, with /p2p/<us> */
	const size_t *public_addr_lens;
	size_t n_public_addrs;
};

/* relay_config_default - the defaults above, no lists, no addresses. */
void relay_config_default(struct relay_config *cfg);

struct relay;

/* struct relay_circuit_info - one active circuit (for top talkers in natxctl relay status). */
struct relay_circuit_info {
	struct peer_id src, dst; /* the peer that sent CONNECT, the peer it reached */
	uint64_t bytes[2]; /* relayed src -> dst, dst -> src */
	int64_t age_ms;
};

/* struct relay_ops - host callbacks; ctx is relay_new's @ctx. */
struct relay_ops {
	/* unix_now - wall-clock UNIX seconds (reservation expiry on the wire). Required. */
	int64_t (*unix_now)(void *ctx);
	/*
	 * open_stop - open a stop stream (p2p_stream_open(conn, RELAY_STOP_PROTOCOL)) towards
	 * @target, in this thread. @rsvp_conn is the connection that holds the reservation.
	 * NULL: use @rsvp_conn. Return NULL with *@err for CONNECTION_FAILED.
	 */
	struct p2p_stream *(*open_stop)(void *ctx, const struct peer_id *target,
					struct p2p_conn *rsvp_conn, int *err);
	/*
	 * on_circuit_end - optional: a circuit that carried bytes is gone (per-peer totals, top
	 * talkers). Called while the circuit is freed: must not call into the relay.
	 */
	void (*on_circuit_end)(void *ctx, const struct relay_circuit_info *ci);
};

/* struct relay_stats - counters (natxctl relay status, metrics). */
struct relay_stats {
	uint64_t rsvp_active, rsvp_total, rsvp_refused, rsvp_renewed;
	uint64_t circuits_active, circuits_total, circuits_refused, circuits_limited;
	uint64_t bytes_relayed;
	uint64_t malformed;
};

/*
 * relay_new - a hop server signing vouchers with @idn; @cfg is copied (its lists and
 * addresses are borrowed). Returns NULL with *@err = -ENOMEM / -EINVAL (no unix_now).
 */
struct relay *relay_new(const struct p2p_identity *idn, const struct relay_config *cfg,
			struct p2p_clock *clock, const struct relay_ops *ops, void *ctx, int *err);

/* relay_free - reset every relay stream and free. NULL ok. */
void relay_free(struct relay *r);

/*
 * relay_hop_accept - take an inbound hop stream (call from on_stream_open). @remote: the
 * connection's remote address (per-IP limit; NULL counts as one unknown address); @relayed: the
 * connection itself runs over a relay (such requests are refused, as go and js do).
 */
void relay_hop_accept(struct relay *r, struct p2p_stream *s, const struct sockaddr *remote,
		      bool relayed);

/*
 * relay_hop_accept_early - relay_hop_accept for a stream whose first @len bytes were already
 * delivered elsewhere (a host that parked the stream while it moved the connection to the
 * thread that runs the relay); they are processed as if they arrived now.
 */
void relay_hop_accept_early(struct relay *r, struct p2p_stream *s, const struct sockaddr *remote,
			    bool relayed, const uint8_t *early, size_t len);

/* relay_conn_gone - @c is closing: drop its reservations (call before p2p_conn_free). */
void relay_conn_gone(struct relay *r, struct p2p_conn *c);

/* relay_tick - expire reservations, enforce circuit durations, time out handshakes. */
void relay_tick(struct relay *r);

/* relay_has_reservation - true when @peer holds a live reservation. */
bool relay_has_reservation(const struct relay *r, const struct peer_id *peer);

/*
 * relay_circuits - fill @out with up to @cap active circuits; returns how many are active
 * (may exceed @cap).
 */
size_t relay_circuits(const struct relay *r, struct relay_circuit_info *out, size_t cap);

/* relay_stats - counters. */
const struct relay_stats *relay_stats(const struct relay *r);

#endif
