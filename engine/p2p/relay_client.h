/* SPDX-License-Identifier: MIT */
/*
 * relay_client - the node side of Circuit Relay v2: reserve (and renew) a slot on a relay,
 * connect to a peer through a relay (hop CONNECT), accept incoming circuits (stop handler).
 * Sans-IO on top of p2p_conn streams; one per shard.
 *
 * A finished circuit is handed to the host as a raw stream (ops->on_circuit): the host runs a
 * p2p_conn over it with p2p_link_new (dialer = the side that sent CONNECT, as the spec says),
 * or resets it. Reservations are renewed by relay_client_tick before they expire (at
 * expire - 5 min, or halfway for short reservations); a reservation dies with its connection
 * (relay_client_conn_gone).
 */
#ifndef NATX_P2P_RELAY_CLIENT_H
#define NATX_P2P_RELAY_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "conn.h"
#include "relay_msg.h"

enum {
	RELAY_CLIENT_TIMEOUT_MS = 30000, /* one hop/stop exchange */
	RELAY_CLIENT_MAX_RSVP = 16, /* relays we hold reservations on */
};

/* struct relay_reservation - what a relay granted us. */
struct relay_reservation {
	struct peer_id relay;
	uint64_t expire; /* UNIX seconds */
	struct relay_addrs addrs; /* the relay's addresses (as sent) */
	struct relay_limit limit;
	bool voucher_ok; /* a voucher came and verified (signer = relay, peer = us) */
};

struct relay_client;

/* struct relay_client_ops - host callbacks; ctx is relay_client_new's @ctx. */
struct relay_client_ops {
	/* unix_now - wall-clock UNIX seconds. Required. */
	int64_t (*unix_now)(void *ctx);
	/*
	 * on_reserved - a RESERVE on @relay_conn ended: @err 0 and @status RELAY_OK with @rsvp, or
	 * a refusal @status, or @err < 0 (stream failed, timeout, malformed answer, bad voucher:
	 * -NATX_E_AUTH).
	 */
	void (*on_reserved)(void *ctx, struct p2p_conn *relay_conn, int err, uint32_t status,
			    const struct relay_reservation *rsvp);
	/*
	 * on_circuit - a circuit to/from @remote is ready on @s: bytes from here on are the
	 * relayed connection. @dialer: we asked for it (run the inner connection as dialer).
	 * @early: bytes that already followed the relay message. The host must call
	 * p2p_link_new(s, ...) or p2p_stream_reset(s) before returning. @user: relay_client_connect's.
	 */
	void (*on_circuit)(void *ctx, struct p2p_stream *s, const struct peer_id *remote,
			   bool dialer, const struct relay_limit *limit, const uint8_t *early,
			   size_t early_len, void *user);
	/* on_connect_failed - a CONNECT through a relay failed (@status from the relay, or @err). */
	void (*on_connect_failed)(void *ctx, const struct peer_id *target, int err, uint32_t status,
				  void *user);
	/* accept_stop - optional: RELAY_OK to accept a circuit from @src, or a refusal status. */
	uint32_t (*accept_stop)(void *ctx, const struct peer_id *src);
};

/* relay_client_new - Returns NULL with *@err = -ENOMEM / -EINVAL (no unix_now). */
struct relay_client *relay_client_new(const struct p2p_identity *idn, struct p2p_clock *clock,
				      const struct relay_client_ops *ops, void *ctx, int *err);

/* relay_client_free - reset the client's streams and free. NULL ok. */
void relay_client_free(struct relay_client *cl);

/*
 * relay_client_reserve - reserve on the relay at the other end of @relay_conn (established,
 * direct) and keep renewing. Returns 0, -EALREADY (already reserving there), -ENOSPC, or
 * p2p_stream_open's errors.
 */
int relay_client_reserve(struct relay_client *cl, struct p2p_conn *relay_conn);

/* relay_client_conn_gone - @c is closing: forget reservations and requests on it. */
void relay_client_conn_gone(struct relay_client *cl, struct p2p_conn *c);

/*
 * relay_client_connect - ask the relay at @relay_conn for a circuit to @target; the outcome
 * comes through on_circuit or on_connect_failed (with @user). Returns 0 or -errno.
 */
int relay_client_connect(struct relay_client *cl, struct p2p_conn *relay_conn,
			 const struct peer_id *target, void *user);

/*
 * relay_client_stop_accept - take an inbound stop stream (call from on_stream_open for
 * RELAY_STOP_PROTOCOL). Circuits are accepted only on connections we hold a reservation on.
 */
void relay_client_stop_accept(struct relay_client *cl, struct p2p_stream *s);

/* relay_client_tick - renew reservations, time out exchanges. */
void relay_client_tick(struct relay_client *cl);

/* relay_client_reservation - our reservation on @relay_conn, NULL when none is live. */
const struct relay_reservation *relay_client_reservation(const struct relay_client *cl,
							 const struct p2p_conn *relay_conn);

/*
 * relay_circuit_addr - the binary address peers dial us at through a reservation address:
 * @relay_addr [+ /p2p/<relay> if missing] + /p2p-circuit/p2p/<self>. Returns 0 with *@len,
 * or multiaddr errors.
 */
int relay_circuit_addr(const uint8_t *relay_addr, size_t relay_addr_len,
		       const struct peer_id *relay, const struct peer_id *self, uint8_t *out,
		       size_t cap, size_t *len);

/*
 * relay_circuit_parse - split a /p2p-circuit address (<relay addr>/p2p/<relay>/p2p-circuit/
 * p2p/<target>) into the relay's address (binary, with its /p2p/ part, to dial), the relay's
 * and the target's peer IDs. Returns 0, -NATX_E_PROTO when it is not such an address, or
 * multiaddr errors.
 */
int relay_circuit_parse(const uint8_t *ma, size_t len, uint8_t *relay_addr, size_t cap,
			size_t *relay_len, struct peer_id *relay, struct peer_id *target);

#endif
