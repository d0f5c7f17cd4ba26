// SPDX-License-Identifier: MIT
/* Connection metrics (control/metrics.h). */
#include <errno.h>

#include "metrics.h"

const uint32_t metrics_lat_bounds_ms[METRICS_LAT_BUCKETS - 1] = { 1,   5,   10,	  25,	50,  100,
								  250, 500, 1000, 2500, 5000 };

void metrics_result(struct metrics *m, bool ok, uint64_t latency_ms)
{
	unsigned i = 0;

	m->attempted++;
	if (ok) {
		m->succeeded++;
	} else {
		m->failed++;
	}
	while (i < METRICS_LAT_BUCKETS - 1 && latency_ms > metrics_lat_bounds_ms[i]) {
		i++;
	}
	m->lat_bucket[i]++;
	m->lat_count++;
	m->lat_sum_ms += latency_ms;
}

void metrics_upgrade(struct metrics *m, bool ok)
{
	m->upgrade_attempts++;
	if (ok) {
		m->upgrade_successes++;
	}
}

void metrics_payment(struct metrics *m, uint64_t sats)
{
	m->payment_sats += sats;
}

void metrics_add(struct metrics *dst, const struct metrics *src)
{
	dst->attempted += src->attempted;
	dst->succeeded += src->succeeded;
	dst->failed += src->failed;
	dst->upgrade_attempts += src->upgrade_attempts;
	dst->upgrade_successes += src->upgrade_successes;
	dst->payment_sats += src->payment_sats;
	dst->lat_count += src->lat_count;
	dst->lat_sum_ms += src->lat_sum_ms;
	for (unsigned i = 0; i < METRICS_LAT_BUCKETS; i++) {
		dst->lat_bucket[i] += src->lat_bucket[i];
	}
}

int metrics_to_json(const struct metrics *m, unsigned active, cJSON *obj)
{
	cJSON *hist, *b;
	uint64_t cum = 0;

	if (!cJSON_AddNumberToObject(obj, "connections_attempted", (double)m->attempted) ||
	    !cJSON_AddNumberToObject(obj, "connections_successful", (double)m->succeeded) ||
	    !cJSON_AddNumberToObject(obj, "connections_failed", (double)m->failed) ||
	    !cJSON_AddNumberToObject(obj, "upgrade_attempts", (double)m->upgrade_attempts) ||
	    !cJSON_AddNumberToObject(obj, "upgrade_successes", (double)m->upgrade_successes) ||
	    !cJSON_AddNumberToObject(obj, "payment_sats", (double)m->payment_sats) ||
	    !cJSON_AddNumberToObject(obj, "active_connections", active) ||
	    !cJSON_AddNumberToObject(obj, "latency_count", (double)m->lat_count) ||
	    !cJSON_AddNumberToObject(obj, "latency_sum_ms", (double)m->lat_sum_ms)) {
		return -ENOMEM;
	}
	hist = cJSON_AddArrayToObject(obj, "latency_histogram_ms");
	if (!hist) {
		return -ENOMEM;
	}
	for (unsigned i = 0; i < METRICS_LAT_BUCKETS; i++) {
		cum += m->lat_bucket[i];
		b = cJSON_CreateObject();
		if (!b) {
			return -ENOMEM;
		}
		cJSON_AddItemToArray(hist, b);
		if (i < METRICS_LAT_BUCKETS - 1) {
			cJSON_AddNumberToObject(b, "le", metrics_lat_bounds_ms[i]);
		} else {
			cJSON_AddStringToObject(b, "le", "+Inf");
		}
		cJSON_AddNumberToObject(b, "count", (double)cum);
	}
	return 0;
}
