/* SPDX-License-Identifier: MIT */
/*
 * Service selection for one target. Candidates are the registered services that are
 * operational, whose breaker lets a call through (closed, or half-open for its probe), that have
 * every requested capability, that are free unless payment is allowed, and that can reach the
 * target. They are tried in this order: type "libp2p" first when the caller prefers libp2p; free
 * before paid; lower measured latency first (services without a measurement after measured
 * ones); registration order. A retryable failure is retried on the same service with backoff
 * (bounded by retry_max and retry_max_ms), then the next candidate is tried.
 */
#ifndef NATX_CTL_SELECT_H
#define NATX_CTL_SELECT_H

#include "svc.h"

/*
 * select_candidates - fill @out (room for SVC_MAX) with the candidates for @req in trial order
 * and return their count, or a negative code when there are none:
 * -NATX_E_UNAVAILABLE  no registered service is operational with a passing breaker and the
 *                      requested capabilities;
 * -NATX_E_PAYMENT      only paid services could serve and payment is not allowed;
 * -NATX_E_NOT_FOUND    services could serve but none can reach the target.
 */
int select_candidates(struct svc_mgr *mgr, const struct svc_request *req, struct svc **out);

/*
 * select_connect - connect to req->target through the best candidate, falling through the
 * chain. Returns 0 with @out filled and *@used set to the service that connected, or the
 * select_candidates error, or the last adapter error when every candidate failed. Updates
 * breakers, health, metrics and latency of every service tried.
 */
int select_connect(struct svc_mgr *mgr, const struct svc_request *req, struct svc_conn_info *out,
		   struct svc **used);

/* struct select_trace - why each service was chosen or passed over, "; "-separated. */
struct select_trace {
	char text[512];
	size_t len;
};

/* select_trace_add - append one reason (printf format); silently cut when full. */
void select_trace_add(struct select_trace *tr, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* select_connect_traced - select_connect, recording each decision in @tr (may be NULL). */
int select_connect_traced(struct svc_mgr *mgr, const struct svc_request *req,
			  struct svc_conn_info *out, struct svc **used, struct select_trace *tr);

#endif
