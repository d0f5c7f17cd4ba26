/* SPDX-License-Identifier: MIT */
/*
 * Health of one service: unhealthy when it is not operational, degraded when more than 10% of
 * the calls in the last `window_ms` failed, healthy otherwise. The window is HEALTH_BUCKETS
 * equal buckets, so old outcomes age out in steps of window_ms / HEALTH_BUCKETS. Every change of
 * state records its wall-clock time ("since"); the last error is kept with its time.
 */
#ifndef NATX_CTL_HEALTH_H
#define NATX_CTL_HEALTH_H

#include <stdbool.h>
#include <stdint.h>

enum {
	HEALTH_BUCKETS = 10,
	HEALTH_DEGRADED_PERCENT = 10, /* failures above this share of calls: degraded */
	HEALTH_ERROR_MAX = 160, /* bytes of the last error text, NUL included */
};

enum health_state {
	HEALTH_HEALTHY,
	HEALTH_DEGRADED,
	HEALTH_UNHEALTHY,
};

struct health_bucket {
	uint64_t start_ms; /* start of the bucket's slice, ms on the injected clock */
	uint32_t ok; /* successful calls in the slice */
	uint32_t fail; /* failed calls in the slice */
};

struct health {
	uint64_t window_ms; /* length of the error-rate window, ms */
	struct health_bucket b[HEALTH_BUCKETS];
	enum health_state state; /* state at the last health_eval() */
	uint64_t since_s; /* unix time the state began */
	char last_error[HEALTH_ERROR_MAX]; /* "" when there was none */
	uint64_t last_error_s; /* unix time of last_error, 0 if none */
};

/* health_init - healthy since @wall_s, empty window of @window_ms (0 becomes 60000). */
void health_init(struct health *h, uint64_t window_ms, uint64_t wall_s);

/* health_record - count one call outcome at @now_ms; @err (may be NULL) is kept on failure. */
void health_record(struct health *h, uint64_t now_ms, uint64_t wall_s, bool ok, const char *err);

/* health_rate - calls and failures inside the window ending at @now_ms. */
void health_rate(const struct health *h, uint64_t now_ms, uint32_t *calls, uint32_t *fails);

/* health_eval - recompute the state at @now_ms; a change stamps since_s with @wall_s. */
enum health_state health_eval(struct health *h, uint64_t now_ms, uint64_t wall_s, bool operational);

/* health_state_name - "healthy", "degraded" or "unhealthy". */
const char *health_state_name(enum health_state s);

#endif
