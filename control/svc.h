/* SPDX-License-Identifier: MIT */
/*
 * The NAT-traversal service abstraction. Each traversal method (libp2p, rathole-style tunnel
 * proxy, ...) is an adapter behind struct svc_ops (runtime-selected, so a vtable: style.md rule
 * 19) and registers with the manager at start according to the configuration. The manager wraps
 * each adapter with its circuit breaker, health and metrics; select.c picks one per target.
 *
 * Adapters that are not implemented are not registered: the manager never invents services.
 */
#ifndef NATX_CTL_SVC_H
#define NATX_CTL_SVC_H

#include <stdbool.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "breaker.h"
#include "clock.h"
#include "health.h"
#include "metrics.h"
#include "natx/ctl_proto.h"

enum svc_cap {
	SVC_CAP_DIRECT = 1u << 0, /* end-to-end path without a relay in the data path */
	SVC_CAP_RELAY = 1u << 1, /* traffic goes through a relay or proxy */
	SVC_CAP_TCP = 1u << 2, /* can carry TCP streams */
	SVC_CAP_UDP = 1u << 3, /* can carry UDP datagrams */
	SVC_CAP_PAID = 1u << 4, /* using it costs money (payment required) */
};

enum {
	SVC_MAX = 16, /* services registered at once */
	SVC_TYPE_MAX = 32, /* bytes of a type name, NUL included */
	SVC_ADDR_MAX = 256, /* bytes of an address in connection info (a circuit multiaddr fits) */
	SVC_TOKEN_MAX = 1024, /* bytes of an auth token */
};

/* What a caller asks for. */
struct svc_request {
	const char *target; /* node id to reach, borrowed, non-empty */
	unsigned need_caps; /* SVC_CAP_DIRECT/TCP/UDP bits the service must have */
	bool allow_payment; /* false: services with SVC_CAP_PAID are not candidates */
	bool prefer_libp2p; /* order services of type "libp2p" first */
};

/* What a successful connect returns (the HTTP API's connection_info). */
struct svc_conn_info {
	char target_node_id[CTL_TARGET_MAX];
	char traversal_type[SVC_TYPE_MAX]; /* type of the service that connected */
	char public_address[SVC_ADDR_MAX]; /* "" when none */
	char proxy_address[SVC_ADDR_MAX]; /* "" when none */
	char auth_token[SVC_TOKEN_MAX]; /* "" when none */
	uint64_t expires_at; /* unix seconds, 0 = no expiry */
	uint64_t payment_sats; /* paid for this connection, sats */
	char detail[256]; /* how the adapter got there (addresses tried), "" when nothing to say */
};

struct svc_status {
	bool operational; /* can serve connects now */
	unsigned active_connections; /* connections it currently carries */
	char detail[160]; /* human text, "" when nothing to say */
};

/*
 * struct svc_ops - one adapter. Every callback gets the ctx given to svc_register(). All are
 * required except available_proxies and destroy. connect returns 0 and fills @out, or -NATX_E_*
 * (PAYMENT, AUTH, CONNECT, NOT_FOUND, UNAVAILABLE) / -errno; it must not block for long.
 */
struct svc_ops {
	const char *type; /* "libp2p", "rathole", ... */
	unsigned (*capabilities)(void *ctx); /* SVC_CAP_* bits */
	bool (*can_reach)(void *ctx, const char *target); /* knows a way to @target */
	int (*connect)(void *ctx, const struct svc_request *req, struct svc_conn_info *out);
	int (*available_proxies)(void *ctx, cJSON *array); /* append proxy objects; 0/-errno */
	bool (*operational)(void *ctx);
	void (*status)(void *ctx, struct svc_status *out);
	void (*destroy)(void *ctx); /* release ctx at unregister */
};

struct svc {
	const struct svc_ops *ops;
	void *ctx; /* adapter state, owned by the adapter, released by ops->destroy */
	struct breaker br;
	struct health health;
	struct metrics m;
	uint64_t latency_ewma_ms; /* smoothed successful connect latency, ms */
	bool latency_known; /* latency_ewma_ms holds at least one sample */
	uint64_t registered_s; /* unix time of registration */
};

/* Tunables of the manager (config [selection]). */
struct svc_params {
	unsigned breaker_failures; /* consecutive failures that open a breaker */
	uint64_t breaker_cooldown_ms;
	unsigned retry_max; /* extra attempts per service on a retryable error */
	uint64_t retry_base_ms; /* first backoff delay between attempts */
	uint64_t retry_max_ms; /* ceiling of a backoff delay */
	uint64_t health_window_ms;
};

struct svc_mgr {
	struct svc *v[SVC_MAX]; /* registered services, in registration order */
	unsigned n;
	const struct clock *clk; /* borrowed */
	struct svc_params p;
	struct metrics gone; /* metrics of services unregistered since start */
};

/* svc_mgr_init - empty manager using @clk (borrowed, must outlive it). */
void svc_mgr_init(struct svc_mgr *mgr, const struct clock *clk, const struct svc_params *p);

/* svc_mgr_cleanup - unregister (destroy) every service. Safe on an initialised empty manager. */
void svc_mgr_cleanup(struct svc_mgr *mgr);

/*
 * svc_register - add an adapter. Takes ownership of @ctx on success only (ops->destroy releases
 * it). Returns 0, -EEXIST (type already registered), -ENOSPC (SVC_MAX) or -ENOMEM.
 */
int svc_register(struct svc_mgr *mgr, const struct svc_ops *ops, void *ctx);

/* svc_unregister - remove and destroy the service of @type. 0 or -ENOENT. */
int svc_unregister(struct svc_mgr *mgr, const char *type);

/* svc_find - the service of @type, or NULL. */
struct svc *svc_find(struct svc_mgr *mgr, const char *type);

/* svc_params_apply - new tunables: breakers keep their state, thresholds/cool-downs change. */
void svc_params_apply(struct svc_mgr *mgr, const struct svc_params *p);

/* svc_upgrade_record - an adapter reports a relayed->direct upgrade attempt and its outcome. */
void svc_upgrade_record(struct svc *s, bool ok);

/* svc_caps_to_json - add capability flags of @caps to object @obj. 0 or -ENOMEM. */
int svc_caps_to_json(unsigned caps, cJSON *obj);

/*
 * svc_to_json - one service as an object: type, capabilities, operational, status detail,
 * breaker, health (state, since, last_error), latency. NULL on allocation failure.
 */
cJSON *svc_to_json(struct svc_mgr *mgr, struct svc *s);

/* svc_metrics_total - sum of every service's metrics (and of unregistered ones). */
void svc_metrics_total(const struct svc_mgr *mgr, struct metrics *out, unsigned *active);

#endif
