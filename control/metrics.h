/* SPDX-License-Identifier: MIT */
/*
 * Connection metrics of one service (and their sum): attempts, successes, failures, upgrade
 * attempts and successes, payment amounts in sats, and a latency histogram with fixed bucket
 * bounds (milliseconds, cumulative "le" buckets in the Prometheus sense).
 */
#ifndef NATX_CTL_METRICS_H
#define NATX_CTL_METRICS_H

#include <stdbool.h>
#include <stdint.h>

#include <cjson/cJSON.h>

enum { METRICS_LAT_BUCKETS = 12 }; /* 11 finite bounds + "+Inf" */

/* metrics_lat_bounds_ms - the finite upper bounds of the histogram buckets, ms. */
extern const uint32_t metrics_lat_bounds_ms[METRICS_LAT_BUCKETS - 1];

struct metrics {
	uint64_t attempted; /* connect attempts */
	uint64_t succeeded; /* attempts that returned connection info */
	uint64_t failed; /* attempts that failed */
	uint64_t upgrade_attempts; /* relayed -> direct upgrade attempts */
	uint64_t upgrade_successes; /* upgrades that succeeded */
	uint64_t payment_sats; /* sum of payments made for connections, sats */
	uint64_t lat_count; /* latencies observed */
	uint64_t lat_sum_ms; /* sum of latencies, ms */
	uint64_t lat_bucket[METRICS_LAT_BUCKETS]; /* non-cumulative counts per bucket */
};

/* metrics_result - count one connect attempt, its outcome and its latency (ms). */
void metrics_result(struct metrics *m, bool ok, uint64_t latency_ms);

/* metrics_upgrade - count one upgrade attempt and whether it succeeded. */
void metrics_upgrade(struct metrics *m, bool ok);

/* metrics_payment - add a payment of @sats. */
void metrics_payment(struct metrics *m, uint64_t sats);

/* metrics_add - sum @src into @dst. */
void metrics_add(struct metrics *dst, const struct metrics *src);

/*
 * metrics_to_json - add the fields of @m, and @active (active connections), to object @obj.
 * Returns 0 or -ENOMEM.
 */
int metrics_to_json(const struct metrics *m, unsigned active, cJSON *obj);

#endif
