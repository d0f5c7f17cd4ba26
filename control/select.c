// SPDX-License-Identifier: MIT
/* Service selection and the fall-through chain (control/select.h). */
#include <errno.h>
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

int select_candidates(struct svc_mgr *mgr, const struct svc_request *req, struct svc **out)
{
	uint64_t now = mgr->clk->now_ms(mgr->clk);
	struct select_key keys[SVC_MAX];
	bool paid_skipped = false, unreachable = false;
	unsigned n = 0;

	for (unsigned i = 0; i < mgr->n; i++) {
		struct svc *s = mgr->v[i];
		unsigned caps = s->ops->capabilities(s->ctx);

		if (!s->ops->operational(s->ctx) || !breaker_permits(&s->br, now) ||
		    (caps & req->need_caps) != req->need_caps) {
			continue;
		}
		if ((caps & SVC_CAP_PAID) && !req->allow_payment) {
			paid_skipped = true;
			continue;
		}
		if (!s->ops->can_reach(s->ctx, req->target)) {
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

int select_connect(struct svc_mgr *mgr, const struct svc_request *req, struct svc_conn_info *out,
		   struct svc **used)
{
	const struct clock *clk = mgr->clk;
	struct svc *cand[SVC_MAX];
	int n, rc = -NATX_E_UNAVAILABLE;

	*used = NULL;
	n = select_candidates(mgr, req, cand);
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
				break;
			}
			if (attempt) {
				clk->sleep_ms(clk, backoff_next(&bo, clk->rand32(clk)));
			}
			memset(out, 0, sizeof(*out));
			t0 = clk->now_ms(clk);
			rc = s->ops->connect(s->ctx, req, out);
			select_account(mgr, s, rc, t0);
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
