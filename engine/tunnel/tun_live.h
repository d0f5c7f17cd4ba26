/* SPDX-License-Identifier: MIT */
/*
 * Control-channel liveness and client reconnect pacing, sans-IO (times are caller-supplied
 * milliseconds from a monotonic clock).
 *
 * Liveness: both ends send HEARTBEAT when they have sent nothing for interval_ms and answer
 * each HEARTBEAT with HEARTBEAT_ACK; a peer from which nothing at all was received for
 * timeout_ms is dead (rathole has no client->server liveness; this does).
 *
 * Backoff: capped exponential with jitter, reset once a session stayed up long enough.
 */
#ifndef NATX_TUN_LIVE_H
#define NATX_TUN_LIVE_H

#include <stdint.h>

enum tun_live_action {
	TUN_LIVE_OK = 0, /* nothing to do before tun_liveness_deadline() */
	TUN_LIVE_HEARTBEAT = 1, /* send a HEARTBEAT now (then call tun_liveness_sent) */
	TUN_LIVE_DEAD = 2, /* peer silent for timeout_ms: close and reconnect */
};

struct tun_liveness {
	int64_t last_rx_ms; /* last time any frame arrived */
	int64_t last_tx_ms; /* last time any frame was sent */
	uint32_t interval_ms; /* idle time before sending a heartbeat; 0 disables sending */
	uint32_t timeout_ms; /* silence before the peer is dead; 0 disables detection */
	uint32_t seq; /* next heartbeat sequence number */
};

/* tun_liveness_init - start both clocks at now_ms. */
void tun_liveness_init(struct tun_liveness *l, int64_t now_ms, uint32_t interval_ms,
		       uint32_t timeout_ms);

/* tun_liveness_received / tun_liveness_sent - note traffic in either direction. */
void tun_liveness_received(struct tun_liveness *l, int64_t now_ms);
void tun_liveness_sent(struct tun_liveness *l, int64_t now_ms);

/* tun_liveness_poll - what to do at now_ms (DEAD wins over HEARTBEAT). */
enum tun_live_action tun_liveness_poll(const struct tun_liveness *l, int64_t now_ms);

/* tun_liveness_deadline - the next time poll can return something other than OK. */
int64_t tun_liveness_deadline(const struct tun_liveness *l);

struct tun_backoff {
	uint32_t base_ms; /* first delay */
	uint32_t cap_ms; /* largest delay */
	uint32_t stable_ms; /* a session up this long resets the backoff */
	uint32_t attempt; /* consecutive failures so far */
};

/* tun_backoff_init - e.g. (200, 30000, 10000). */
void tun_backoff_init(struct tun_backoff *b, uint32_t base_ms, uint32_t cap_ms, uint32_t stable_ms);

/*
 * tun_backoff_next - delay before the next attempt: d = min(cap, base * 2^attempt), returned
 * as d/2 + (rnd % (d/2 + 1)) ("equal jitter": never below half, never above cap). rnd is a
 * caller-supplied random number. Increments attempt.
 */
uint32_t tun_backoff_next(struct tun_backoff *b, uint32_t rnd);

/* tun_backoff_session_ended - a session that lasted up_ms ended; reset if it was stable. */
void tun_backoff_session_ended(struct tun_backoff *b, uint32_t up_ms);

#endif
