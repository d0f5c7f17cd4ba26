/* SPDX-License-Identifier: MIT */
/*
 * natxd's state and the operations both front ends (control socket, HTTP API) use. One thread
 * runs everything from an epoll loop (natxd.c), so none of this is locked.
 */
#ifndef NATX_CTL_DAEMON_H
#define NATX_CTL_DAEMON_H

#include <stdbool.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "bpf_mgr.h"
#include "config.h"
#include "conns.h"
#include "ctl_req.h"
#include "ctl_server.h"
#include "engine_sup.h"
#include "l402_svc.h"
#include "ratelimit.h"
#include "select.h"
#include "store.h"
#include "svc.h"

struct http_server;
struct udpx_ctl;

enum {
	CTL_MSG_MAX = 512, /* bytes of the message a command handler explains an error with */
};

struct natxd {
	struct natx_config cfg;
	struct config_cli cli; /* command line, re-applied on reload */
	config_getenv_fn get_env;
	const struct clock *clk; /* borrowed */
	struct svc_mgr svcs;
	struct ratelimit rl; /* per-client connect limit */
	struct store st;
	struct l402_svc pay; /* payment state of the paid tunnel service (l402_svc.h) */
	struct engine_sup eng;
	struct bpf_mgr bpf; /* XDP STUN reflector or its user-space fallback (bpf_mgr.h) */
	struct ctl_server ctl;
	struct http_server *http; /* NULL when server.address = off */
	char http_bound[64]; /* "host:port" actually bound, "" when off */
	int epfd;
	uint64_t started_s;
	bool stop;
	unsigned reloads;
	char reload_error[CONFIG_ERR_MAX]; /* last rejected reload, "" when none */
	char p2p_peer[100]; /* libp2p peer ID (p2p_svc.c), "" when libp2p is off */
	char p2p_error[256]; /* why libp2p is off although enabled, "" when none */
	struct conns conns; /* connections with a local port (conns.h) */
	struct udpx_ctl *udp; /* UDP services between nodes (udpx_ctl.h), NULL when off */
};

/*
 * natxd_reload - build the configuration again from the same sources; on success apply it
 * (log filter, selection tunables, services, config forwards); on failure keep the old one.
 * 0 or -NATX_E_CONFIG with @err (CONFIG_ERR_MAX).
 */
int natxd_reload(struct natxd *d, char *err);

/*
 * natxd_connect - rate limit by @who_key, select and connect, record history. 0 with @out and
 * @used filled, or a negative code with @msg (room 256) explaining it.
 */
int natxd_connect(struct natxd *d, const struct svc_request *req, const char *who_key,
		  struct svc_conn_info *out, struct svc **used, char *msg);

/* natxd_connect_traced - natxd_connect, recording every selection decision in @tr. */
int natxd_connect_traced(struct natxd *d, const struct svc_request *req, const char *who_key,
			 struct svc_conn_info *out, struct svc **used, char *msg,
			 struct select_trace *tr);

/* natxd_params - the selection tunables of a configuration. */
void natxd_params(const struct natx_config *c, struct svc_params *p);

/* natxd_register_services - register the adapters the config enables and natx implements. */
void natxd_register_services(struct natxd *d);

/* ctl_cmds_check - every row of ctl_cmd_table has a handler. 0 or -ENOENT. */
int ctl_cmds_check(void);

/*
 * ctl_cmds_run - run command @req->cmd for @who; returns the reply object (never NULL unless
 * out of memory). Unknown commands get "unknown_cmd", unprivileged callers of mutating
 * commands "permission_denied".
 */
cJSON *ctl_cmds_run(struct natxd *d, const struct ctl_caller *who, struct ctl_req *req);

/* ctl_cmds_dispatch - ctl_dispatch_fn adapter for ctl_server (arg is the struct natxd). */
cJSON *ctl_cmds_dispatch(void *arg, const struct ctl_caller *who, struct ctl_req *req);

/* Objects shared by the socket and HTTP front ends; NULL on allocation failure. */
cJSON *natxd_status_json(struct natxd *d);
cJSON *natxd_services_json(struct natxd *d);
cJSON *natxd_metrics_json(struct natxd *d);
cJSON *natxd_conn_info_json(const struct svc_conn_info *ci);
cJSON *natxd_engine_json(struct natxd *d, bool with_stats);
cJSON *natxd_service_flags_json(struct natxd *d);

#endif
