// SPDX-License-Identifier: MIT
/* Heartbeat/dead-peer timing and reconnect backoff (tun_live.h). */
#include "tun_live.h"

void tun_liveness_init(struct tun_liveness *l, int64_t now_ms, uint32_t interval_ms,
		       uint32_t timeout_ms)
{
	l->last_rx_ms = now_ms;
	l->last_tx_ms = now_ms;
	l->interval_ms = interval_ms;
	l->timeout_ms = timeout_ms;
	l->seq = 0;
}

void tun_liveness_received(struct tun_liveness *l, int64_t now_ms)
{
	if (now_ms > l->last_rx_ms) {
		l->last_rx_ms = now_ms;
	}
}

void tun_liveness_sent(struct tun_liveness *l, int64_t now_ms)
{
	if (now_ms > l->last_tx_ms) {
		l->last_tx_ms = now_ms;
	}
}

enum tun_live_action tun_liveness_poll(const struct tun_liveness *l, int64_t now_ms)
{
	if (l->timeout_ms && now_ms - l->last_rx_ms >= (int64_t)l->timeout_ms) {
		return TUN_LIVE_DEAD;
	}
	if (l->interval_ms && now_ms - l->last_tx_ms >= (int64_t)l->interval_ms) {
		return TUN_LIVE_HEARTBEAT;
	}
	return TUN_LIVE_OK;
}

int64_t tun_liveness_deadline(const struct tun_liveness *l)
{
	int64_t d = INT64_MAX;

	if (l->timeout_ms) {
		d = l->last_rx_ms + l->timeout_ms;
	}
	if (l->interval_ms && l->last_tx_ms + (int64_t)l->interval_ms < d) {
		d = l->last_tx_ms + l->interval_ms;
	}
	return d;
}

void tun_backoff_init(struct tun_backoff *b, uint32_t base_ms, uint32_t cap_ms, uint32_t stable_ms)
{
	b->base_ms = base_ms ? base_ms : 1;
	b->cap_ms = cap_ms < b->base_ms ? b->base_ms : cap_ms;
	b->stable_ms = stable_ms;
	b->attempt = 0;
}

uint32_t tun_backoff_next(struct tun_backoff *b, uint32_t rnd)
{
	uint64_t d = b->base_ms;

	for (uint32_t i = 0; i < b->attempt && d < b->cap_ms; i++) {
		d *= 2;
	}
	if (d > b->cap_ms) {
		d = b->cap_ms;
	}
	if (b->attempt < UINT32_MAX) {
		b->attempt++;
	}
	return (uint32_t)(d / 2 + rnd % (d / 2 + 1));
}

void tun_backoff_session_ended(struct tun_backoff *b, uint32_t up_ms)
{
	if (up_ms >= b->stable_ms) {
		b->attempt = 0;
	}
}
