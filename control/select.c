// SPDX-License-Identifier: MIT
/* Service selection and the fall-through chain (control/select.h). */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backoff.h"
#include "natx/err.h"
#include "select.h"

struct select_key {
	struct svc *s;
	unsigned order; /* registration order, last tie-breaker */
	bool libp2p_first;
};

static int select_cmp(const void *a, const void *b)
{
	const struct select_key *x = a, *y = b;
	bool xp = x->s->ops->capabilities(x->s->ctx) & SVC_CAP_PAID;
	bool yp = y->s->ops->capabilities(y->s->ctx) & SVC_CAP_PAID;

	if (x->libp2p_first != y->libp2p_first) {
		return x->libp2p_first ? -1 : 1;
	}
	if (xp != yp) {
		return xp ? 1 : -1;
	}
	if (x->s->latency_known != y->s->latency_known) {
		return x->s->latency_known ? -1 : 1;
	}
	if (x->s->latency_known && x->s->latency_ewma_ms != y->s->latency_ewma_ms) {
		return x->s->latency_ewma_ms < y->s->latency_ewma_ms ? -1 : 1;
	}
	return x->order < y->order ? -1 : (x->order > y->order);
}

/* select_trace_put - account for @n bytes vsnprintf wanted to write at the end of @tr. */
static void select_trace_put(struct select_trace *tr, int n)
{
	size_t room = sizeof(tr->text) - tr->len;

	if (n > 0) {
		tr->len += (size_t)n < room ? (size_t)n : room - 1;
	}
}

void select_trace_add(struct select_trace *tr, const char *fmt, ...)
{
	va_list ap;

	if (!tr || tr->len + 1 >= sizeof(tr->text)) {
		return;
	}
	if (tr->len) {
		select_trace_put(tr,
				 snprintf(tr->text + tr->len, sizeof(tr->text) - tr->len, "; "));
	}
	va_start(ap, fmt);
	select_trace_put(tr, vsnprintf(tr->text + tr->len, sizeof(tr->text) - tr->len, fmt, ap));
	va_end(ap);
}

/* select_filter - candidates for @req in trial order; why others were passed over to @tr. */
static int select_filter(struct svc_mgr *mgr, const struct svc_request *req, struct svc **out,
			 struct select_trace *tr)
{
	uint64_t now = mgr->clk->now_ms(mgr->clk);
	struct select_key keys[SVC_MAX];
	bool paid_skipped = false, unreachable = false;
	unsigned n = 0;

	for (unsigned i = 0; i < mgr->n; i++) {
		struct svc *s = mgr->v[i];
		unsigned caps = s->ops->capabilities(s->ctx);

		if (!s->ops->operational(s->ctx)) {
			select_trace_add(tr, "%s: not operational", s->ops->type);
			continue;
		}
		if (!breaker_permits(&s->br, now)) {
			select_trace_add(tr, "%s: circuit breaker open", s->ops->type);
			continue;
		}
		if ((caps & req->need_caps) != req->need_caps) {
			select_trace_add(tr, "%s: lacks a requested capability", s->ops->type);
			continue;
		}
		if ((caps & SVC_CAP_PAID) && !req->allow_payment) {
			select_trace_add(tr, "%s: paid and payment not allowed", s->ops->type);
			paid_skipped = true;
			continue;
		}
		if (!s->ops->can_reach(s->ctx, req->target)) {
			select_trace_add(tr, "%s: knows no way to the target", s->ops->type);
			unreachable = true;
			continue;
		}
		keys[n] = (struct select_key){ .s = s,
					       .order = i,
					       .libp2p_first = req->prefer_libp2p &&
							       !strcmp(s->ops->type, "libp2p") };
		n++;
	}
	if (!n) {
		if (paid_skipped) {
			return -NATX_E_PAYMENT;
		}
		return unreachable ? -NATX_E_NOT_FOUND : -NATX_E_UNAVAILABLE;
	}
	qsort(keys, n, sizeof(keys[0]), select_cmp);
	for (unsigned i = 0; i < n; i++) {
		out[i] = keys[i].s;
	}
	return (int)n;
}

int select_candidates(struct svc_mgr *mgr, const struct svc_request *req, struct svc **out)
{
	return select_filter(mgr, req, out, NULL);
}

/* select_retryable - errors worth a second attempt on the same service. */
static bool select_retryable(int err)
{
	return err != -NATX_E_PAYMENT && err != -NATX_E_AUTH && err != -NATX_E_NOT_FOUND &&
	       err != -EINVAL;
}

static void select_account(struct svc_mgr *mgr, struct svc *s, int rc, uint64_t t0)
{
	const struct clock *clk = mgr->clk;
	uint64_t now = clk->now_ms(clk);
	uint64_t lat = now - t0;

	metrics_result(&s->m, rc == 0, lat);
	health_record(&s->health, now, clk->wall_s(clk), rc == 0, natx_strerror(rc));
	if (rc == 0) {
		breaker_success(&s->br, now);
		/* EWMA with weight 1/4: recent latency matters, one outlier does not dominate. */
		s->latency_ewma_ms = s->latency_known ? (s->latency_ewma_ms * 3 + lat) / 4 : lat;
		s->latency_known = true;
	} else if (rc != -NATX_E_PAYMENT && rc != -NATX_E_NOT_FOUND) {
		/* Payment required or an unknown node is an answer, not a fault of the service. */
		breaker_failure(&s->br, now);
	} else {
		breaker_success(&s->br, now);
	}
}

int select_connect_traced(struct svc_mgr *mgr, const struct svc_request *req,
			  struct svc_conn_info *out, struct svc **used, struct select_trace *tr)
{
	const struct clock *clk = mgr->clk;
	struct svc *cand[SVC_MAX];
	int n, rc = -NATX_E_UNAVAILABLE;

	*used = NULL;
	n = select_filter(mgr, req, cand, tr);
	if (n < 0) {
		return n;
	}
	for (int i = 0; i < n; i++) {
		struct svc *s = cand[i];
		struct backoff bo;

		backoff_init(&bo, mgr->p.retry_base_ms, mgr->p.retry_max_ms);
		for (unsigned attempt = 0; attempt <= mgr->p.retry_max; attempt++) {
			uint64_t t0;

			if (!breaker_allow(&s->br, clk->now_ms(clk))) {
				select_trace_add(tr, "%s: circuit breaker opened", s->ops->type);
				break;
			}
			if (attempt) {
				clk->sleep_ms(clk, backoff_next(&bo, clk->rand32(clk)));
			}
			memset(out, 0, sizeof(*out));
			t0 = clk->now_ms(clk);
			rc = s->ops->connect(s->ctx, req, out);
			select_account(mgr, s, rc, t0);
			if (rc) {
				select_trace_add(tr, "%s: attempt %u failed: %s", s->ops->type,
						 attempt + 1, natx_strerror(rc));
			} else {
				unsigned caps = s->ops->capabilities(s->ctx);

				select_trace_add(tr, "%s: chosen (%s, %s, %llu ms)", s->ops->type,
						 caps & SVC_CAP_PAID ? "paid" : "free",
						 caps & SVC_CAP_DIRECT ? "direct" : "relayed",
						 (unsigned long long)(clk->now_ms(clk) - t0));
			}
			if (!rc) {
				strncpy(out->target_node_id, req->target,
					sizeof(out->target_node_id) - 1);
				strncpy(out->traversal_type, s->ops->type,
					sizeof(out->traversal_type) - 1);
				metrics_payment(&s->m, out->payment_sats);
				*used = s;
				return 0;
			}
			if (!select_retryable(rc)) {
				break;
			}
		}
	}
	return rc;
}

int select_connect(struct svc_mgr *mgr, const struct svc_request *req, struct svc_conn_info *out,
		   struct svc **used)
{
	return select_connect_traced(mgr, req, out, used, NULL);
}
