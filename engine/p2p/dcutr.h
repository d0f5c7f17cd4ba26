/* SPDX-License-Identifier: MIT */
/*
 * DCUtR (/libp2p/dcutr, libp2p/specs relay/DCUtR.md): coordinating a direct connection (TCP
 * simultaneous open) over a relayed connection. Sans-IO: the module runs the CONNECT/SYNC
 * exchange, measures the RTT and tells the host when to dial which addresses (ops->dial); the
 * host does the socket work (bind to the listen port with SO_REUSEADDR/SO_REUSEPORT, connect)
 * and reports the outcome with dcutr_dial_done.
 *
 * Roles (spec): B, the peer that received the relayed connection (it holds the reservation),
 * opens the stream: CONNECT{B's addrs} -> A answers CONNECT{A's addrs} -> B measures
 * RTT = time from sending CONNECT to receiving A's, sends SYNC and dials A at now + RTT/2; A
 * dials B as soon as SYNC arrives. On the direct connection A is the client (multistream
 * dialer, Noise initiator, yamux odd ids) and B the server. B makes DCUTR_ATTEMPTS attempts,
 * each with a fresh exchange on a new stream.
 */
#ifndef NATX_P2P_DCUTR_H
#define NATX_P2P_DCUTR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "conn.h"
#include "relay_msg.h"

#define DCUTR_PROTOCOL "/libp2p/dcutr"

enum {
	DCUTR_TYPE_CONNECT = 100,
	DCUTR_TYPE_SYNC = 300,
	DCUTR_MAX_MSG = 4096,
	DCUTR_ATTEMPTS = 3, /* go maxRetries, js retries */
	DCUTR_ATTEMPT_TIMEOUT_MS = 10000, /* exchange + dial of one attempt (go dials 10 s) */
};

/* struct dcutr_msg - a HolePunch message; addresses as in relay_msg.h. */
struct dcutr_msg {
	uint32_t type;
	struct relay_addrs addrs;
};

/* dcutr_encode - write @m length-prefixed. Returns 0 with *@len or -NATX_E_TOO_BIG. */
int dcutr_encode(const struct dcutr_msg *m, uint8_t *out, size_t cap, size_t *len);

/*
 * dcutr_decode - one message body. Returns 0, -NATX_E_PROTO (malformed, no or unknown type),
 * -NATX_E_TOO_BIG.
 */
int dcutr_decode(struct dcutr_msg *m, const uint8_t *buf, size_t len);

/*
 * dcutr_filter_addrs - keep the addresses a hole punch can use: /ip4|ip6/.../tcp/N without
 * /p2p-circuit, and (unless @allow_private) not private, loopback or link-local.
 */
void dcutr_filter_addrs(struct relay_addrs *a, bool allow_private);

/* enum dcutr_outcome - how one attempt ended. */
enum dcutr_outcome {
	DCUTR_IN_PROGRESS,
	DCUTR_SUCCEEDED,
	DCUTR_FAILED, /* the dial failed, or the exchange was refused / malformed */
	DCUTR_TIMED_OUT,
};

/* struct dcutr_attempt - one attempt's record (metrics). */
struct dcutr_attempt {
	enum dcutr_outcome outcome;
	int64_t start_ms, end_ms; /* monotonic */
	int64_t rtt_ms; /* B: measured; A: -1 */
	int err;
};

struct dcutr;

/* struct dcutr_ops - host callbacks; ctx is dcutr_new's @ctx. */
struct dcutr_ops {
	/*
	 * dial - open a direct TCP connection to @addrs (already filtered) at monotonic time
	 * @at_ms (<= now: at once), from the listen port. @client: our role on the new
	 * connection (true for A). Report with dcutr_dial_done(d, relayed, err).
	 */
	void (*dial)(void *ctx, struct p2p_conn *relayed, const struct relay_addrs *addrs,
		     int64_t at_ms, bool client, unsigned attempt);
	/* on_done - the upgrade for @relayed ended: 0 = direct connection up, else the last error. */
	void (*on_done)(void *ctx, struct p2p_conn *relayed, int err,
			const struct dcutr_attempt *log, size_t n_attempts);
};

/* struct dcutr_stats - counters for natxd's upgrade metrics. */
struct dcutr_stats {
	uint64_t attempts, succeeded, failed, timed_out, refused_streams;
};

/*
 * dcutr_new - @addrs: our public addresses to announce (binary multiaddrs, borrowed).
 * @allow_private: accept private addresses from peers (labs). NULL with *@err = -ENOMEM.
 */
struct dcutr *dcutr_new(struct p2p_clock *clock, const struct dcutr_ops *ops, void *ctx,
			const uint8_t *const *addrs, const size_t *addr_lens, size_t n_addrs,
			bool allow_private, int *err);

/*
 * dcutr_set_addrs - replace the addresses announced in CONNECT (borrowed like dcutr_new's; they
 * must stay valid until the next call or dcutr_free).
 */
void dcutr_set_addrs(struct dcutr *d, const uint8_t *const *addrs, const size_t *addr_lens,
		     size_t n_addrs);

/* dcutr_busy - an upgrade of @relayed is running. */
bool dcutr_busy(const struct dcutr *d, const struct p2p_conn *relayed);

/* dcutr_free - reset the module's streams and free. NULL ok. */
void dcutr_free(struct dcutr *d);

/* dcutr_start - as B, begin upgrading @relayed. Returns 0, -EALREADY, -ENOMEM, open errors. */
int dcutr_start(struct dcutr *d, struct p2p_conn *relayed);

/* dcutr_accept - as A, take an inbound /libp2p/dcutr stream (from on_stream_open). */
void dcutr_accept(struct dcutr *d, struct p2p_stream *s);

/* dcutr_dial_done - the dial ops->dial asked for ended: 0 = direct connection verified. */
void dcutr_dial_done(struct dcutr *d, struct p2p_conn *relayed, int err);

/* dcutr_conn_gone - @c is closing. */
void dcutr_conn_gone(struct dcutr *d, struct p2p_conn *c);

/*
 * dcutr_set_attempt_timeout - how long one attempt (exchange + dial) may take before it counts
 * as timed out, and how long A waits for B's next attempt; 0 = DCUTR_ATTEMPT_TIMEOUT_MS.
 */
void dcutr_set_attempt_timeout(struct dcutr *d, uint32_t ms);

/* dcutr_tick - attempt timeouts. */
void dcutr_tick(struct dcutr *d);

/* dcutr_stats - counters. */
const struct dcutr_stats *dcutr_stats(const struct dcutr *d);

#endif
