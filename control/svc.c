// SPDX-License-Identifier: MIT
/* Service registry (control/svc.h). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "svc.h"

void svc_mgr_init(struct svc_mgr *mgr, const struct clock *clk, const struct svc_params *p)
{
	memset(mgr, 0, sizeof(*mgr));
	mgr->clk = clk;
	mgr->p = *p;
}

static void svc_free(struct svc *s)
{
	if (!s) {
		return;
	}
	if (s->ops->destroy) {
		s->ops->destroy(s->ctx);
	}
	free(s);
}

void svc_mgr_cleanup(struct svc_mgr *mgr)
{
	for (unsigned i = 0; i < mgr->n; i++) {
		svc_free(mgr->v[i]);
		mgr->v[i] = NULL;
	}
	mgr->n = 0;
}

struct svc *svc_find(struct svc_mgr *mgr, const char *type)
{
	for (unsigned i = 0; i < mgr->n; i++) {
		if (!strcmp(mgr->v[i]->ops->type, type)) {
			return mgr->v[i];
		}
	}
	return NULL;
}

int svc_register(struct svc_mgr *mgr, const struct svc_ops *ops, void *ctx)
{
	struct svc *s;

	if (svc_find(mgr, ops->type)) {
		return -EEXIST;
	}
	if (mgr->n == SVC_MAX) {
		return -ENOSPC;
	}
	s = calloc(1, sizeof(*s));
	if (!s) {
		return -ENOMEM;
	}
	s->ops = ops;
	s->ctx = ctx;
	breaker_init(&s->br, mgr->p.breaker_failures, mgr->p.breaker_cooldown_ms);
	health_init(&s->health, mgr->p.health_window_ms, mgr->clk->wall_s(mgr->clk));
	s->registered_s = mgr->clk->wall_s(mgr->clk);
	mgr->v[mgr->n++] = s;
	return 0;
}

int svc_unregister(struct svc_mgr *mgr, const char *type)
{
	for (unsigned i = 0; i < mgr->n; i++) {
		if (strcmp(mgr->v[i]->ops->type, type)) {
			continue;
		}
		metrics_add(&mgr->gone, &mgr->v[i]->m);
		svc_free(mgr->v[i]);
		memmove(&mgr->v[i], &mgr->v[i + 1], sizeof(mgr->v[0]) * (mgr->n - i - 1));
		mgr->v[--mgr->n] = NULL;
		return 0;
	}
	return -ENOENT;
}

void svc_params_apply(struct svc_mgr *mgr, const struct svc_params *p)
{
	mgr->p = *p;
	for (unsigned i = 0; i < mgr->n; i++) {
		struct svc *s = mgr->v[i];

		s->br.threshold = p->breaker_failures ? p->breaker_failures : 1;
		s->br.cooldown_ms = p->breaker_cooldown_ms;
		s->health.window_ms = p->health_window_ms ? p->health_window_ms : 60000;
	}
}

void svc_upgrade_record(struct svc *s, bool ok)
{
	metrics_upgrade(&s->m, ok);
}

int svc_caps_to_json(unsigned caps, cJSON *obj)
{
	if (!cJSON_AddBoolToObject(obj, "direct", !!(caps & SVC_CAP_DIRECT)) ||
	    !cJSON_AddBoolToObject(obj, "relay", !!(caps & SVC_CAP_RELAY)) ||
	    !cJSON_AddBoolToObject(obj, "tcp", !!(caps & SVC_CAP_TCP)) ||
	    !cJSON_AddBoolToObject(obj, "udp", !!(caps & SVC_CAP_UDP)) ||
	    !cJSON_AddBoolToObject(obj, "paid", !!(caps & SVC_CAP_PAID))) {
		return -ENOMEM;
	}
	return 0;
}

cJSON *svc_to_json(struct svc_mgr *mgr, struct svc *s)
{
	uint64_t now = mgr->clk->now_ms(mgr->clk);
	uint64_t wall = mgr->clk->wall_s(mgr->clk);
	struct svc_status st = { 0 };
	cJSON *o = cJSON_CreateObject();
	cJSON *caps, *h, *br;
	uint32_t calls, fails;

	if (!o) {
		return NULL;
	}
	s->ops->status(s->ctx, &st);
	st.operational = s->ops->operational(s->ctx);
	health_eval(&s->health, now, wall, st.operational);
	health_rate(&s->health, now, &calls, &fails);
	cJSON_AddStringToObject(o, "type", s->ops->type);
	caps = cJSON_AddObjectToObject(o, "capabilities");
	if (!caps || svc_caps_to_json(s->ops->capabilities(s->ctx), caps)) {
		goto free_obj;
	}
	cJSON_AddBoolToObject(o, "operational", st.operational);
	cJSON_AddStringToObject(o, "status", health_state_name(s->health.state));
	cJSON_AddStringToObject(o, "detail", st.detail);
	cJSON_AddNumberToObject(o, "active_connections", st.active_connections);
	br = cJSON_AddObjectToObject(o, "breaker");
	h = cJSON_AddObjectToObject(o, "health");
	if (!br || !h) {
		goto free_obj;
	}
	cJSON_AddStringToObject(br, "state", breaker_state_name(breaker_state_at(&s->br, now)));
	cJSON_AddNumberToObject(br, "consecutive_failures", s->br.failures);
	cJSON_AddStringToObject(h, "state", health_state_name(s->health.state));
	cJSON_AddNumberToObject(h, "since", (double)s->health.since_s);
	cJSON_AddNumberToObject(h, "window_calls", calls);
	cJSON_AddNumberToObject(h, "window_failures", fails);
	if (s->health.last_error_s) {
		cJSON_AddStringToObject(h, "last_error", s->health.last_error);
		cJSON_AddNumberToObject(h, "last_error_at", (double)s->health.last_error_s);
	} else {
		cJSON_AddNullToObject(h, "last_error");
		cJSON_AddNullToObject(h, "last_error_at");
	}
	if (s->latency_known) {
		cJSON_AddNumberToObject(o, "latency_ms", (double)s->latency_ewma_ms);
	} else {
		cJSON_AddNullToObject(o, "latency_ms");
	}
	if (s->ops->available_proxies) {
		cJSON *px = cJSON_AddArrayToObject(o, "proxies");

		if (!px || s->ops->available_proxies(s->ctx, px)) {
			goto free_obj;
		}
	}
	return o;

free_obj:
	cJSON_Delete(o);
	return NULL;
}

void svc_metrics_total(const struct svc_mgr *mgr, struct metrics *out, unsigned *active)
{
	*out = mgr->gone;
	*active = 0;
	for (unsigned i = 0; i < mgr->n; i++) {
		struct svc_status st = { 0 };

		metrics_add(out, &mgr->v[i]->m);
		mgr->v[i]->ops->status(mgr->v[i]->ctx, &st);
		*active += st.active_connections;
	}
}
