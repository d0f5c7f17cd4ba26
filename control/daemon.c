// SPDX-License-Identifier: MIT
/* natxd operations shared by the control socket and the HTTP API (control/daemon.h). */
#include <errno.h>
#include <grp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "adapter_p2p.h"
#include "adapter_tunnel.h"
#include "daemon.h"
#include "natx/err.h"
#include "natx/log.h"

#define MOD "natxd"

void natxd_register_services(struct natxd *d)
{
	struct svc *rh = svc_find(&d->svcs, "rathole");
	int rc;

	/* The free libp2p service follows nat_traversal.enable_libp2p (adapter_p2p.c). */
	if (d->cfg.enable_libp2p && !svc_find(&d->svcs, "libp2p")) {
		rc = p2p_adapter_register(d);
		if (rc) {
			pr_err(MOD, "libp2p adapter not registered: %s", natx_strerror(rc));
		}
	} else if (!d->cfg.enable_libp2p && svc_find(&d->svcs, "libp2p")) {
		svc_unregister(&d->svcs, "libp2p");
		pr_info(MOD, "libp2p adapter unregistered (disabled by the configuration)");
	}
	/* The paid tunnel service follows nat_traversal.enable_rathole, also across reloads. */
	if (d->cfg.enable_rathole && !rh) {
		rc = d->pay.be ?
			     tunnel_adapter_register(&d->svcs, &d->st, d->clk, &d->cfg, &d->pay) :
			     -NATX_E_UNAVAILABLE;
		if (rc) {
			pr_err(MOD, "rathole adapter not registered: %s", natx_strerror(rc));
		} else {
			char host[CONFIG_STR_MAX];

			l402_svc_public_host(&d->cfg, host, sizeof(host));
			if (!host[0] || !strcmp(host, "0.0.0.0") || !strcmp(host, "::")) {
				pr_warn(MOD,
					"rathole: server_address %s is a wildcard and public_host is "
					"unset: handed-out addresses will read '%s'; set "
					"rathole.public_host",
					d->cfg.rathole_server_address, host);
			}
			pr_info(MOD, "rathole (paid tunnel) adapter registered; payments: %s%s",
				d->pay.be->ops->name,
				d->pay.be->ops->moves_real_money ? "" :
								   " (regtest: no real money)");
		}
	} else if (!d->cfg.enable_rathole && rh && rh->ops == &tunnel_adapter_ops) {
		svc_unregister(&d->svcs, "rathole");
		pr_info(MOD, "rathole adapter unregistered (disabled by the configuration)");
	}
}

void natxd_params(const struct natx_config *c, struct svc_params *p)
{
	*p = (struct svc_params){
		.breaker_failures = c->breaker_failures,
		.breaker_cooldown_ms = c->breaker_cooldown_ms,
		.retry_max = c->retry_max,
		.retry_base_ms = c->retry_base_ms,
		.retry_max_ms = c->retry_max_ms,
		.health_window_ms = (uint64_t)c->health_window_s * 1000,
	};
}

/* natxd_keep - a key that only takes effect at restart: keep the running value, say so. */
static void natxd_keep(const char *key, char *running, const char *wanted, size_t size)
{
	if (strcmp(running, wanted)) {
		pr_warn(MOD, "reload: %s changed to '%s'; it takes effect when natxd restarts", key,
			wanted);
	}
	(void)size;
}

int natxd_reload(struct natxd *d, char *err)
{
	struct natx_config *nc = malloc(sizeof(*nc));
	struct svc_params p;
	int rc;

	if (!nc) {
		snprintf(err, CONFIG_ERR_MAX, "out of memory");
		return -ENOMEM;
	}
	rc = config_build(nc, &d->cli, d->get_env, err);
	if (rc) {
		pr_err(MOD, "reload rejected, keeping the running configuration: %s", err);
		snprintf(d->reload_error, sizeof(d->reload_error), "%s", err);
		free(nc);
		return rc;
	}
	if (nc->ctl_group[0] && !getgrnam(nc->ctl_group)) {
		snprintf(err, CONFIG_ERR_MAX, "control.group: no group named '%.64s'",
			 nc->ctl_group);
		pr_err(MOD, "reload rejected, keeping the running configuration: %s", err);
		snprintf(d->reload_error, sizeof(d->reload_error), "%s", err);
		free(nc);
		return -NATX_E_CONFIG;
	}
	if (nc->ctl_group[0]) {
		ctl_server_set_group(&d->ctl, true, getgrnam(nc->ctl_group)->gr_gid);
	} else {
		ctl_server_set_group(&d->ctl, false, 0);
	}
	natxd_keep("control.socket", d->cfg.socket_path, nc->socket_path, 0);
	natxd_keep("server.address", d->cfg.server_address, nc->server_address, 0);
	natxd_keep("store.database", d->cfg.database, nc->database, 0);
	natxd_keep("engine.path", d->cfg.engine_path, nc->engine_path, 0);
	natxd_keep("engine.socket", d->cfg.engine_socket, nc->engine_socket, 0);
	memcpy(nc->socket_path, d->cfg.socket_path, sizeof(nc->socket_path));
	memcpy(nc->server_address, d->cfg.server_address, sizeof(nc->server_address));
	memcpy(nc->state_dir, d->cfg.state_dir, sizeof(nc->state_dir));
	memcpy(nc->database, d->cfg.database, sizeof(nc->database));
	memcpy(nc->engine_path, d->cfg.engine_path, sizeof(nc->engine_path));
	memcpy(nc->engine_socket, d->cfg.engine_socket, sizeof(nc->engine_socket));

	log_filter_set(nc->log_filter);
	natxd_params(nc, &p);
	svc_params_apply(&d->svcs, &p);
	if (nc->connect_rate != d->cfg.connect_rate || nc->connect_burst != d->cfg.connect_burst) {
		ratelimit_init(&d->rl, nc->connect_rate, nc->connect_burst);
	}
	d->eng.timeout_ms = nc->engine_timeout_ms;
	d->eng.drain_ms = nc->engine_drain_ms;
	d->eng.bo.base_ms = nc->engine_restart_base_ms;
	d->eng.bo.max_ms = nc->engine_restart_max_ms;
	snprintf(d->eng.log_filter, sizeof(d->eng.log_filter), "%s", nc->log_filter);
	d->eng.shards = nc->engine_shards;

	/* Config forwards: drop the ones gone from the file, define the new ones, then sync. */
	for (unsigned i = 0; i < d->eng.nfwd;) {
		const struct engine_fwd *f = &d->eng.fwd[i];
		bool keep = f->source != ENGINE_FWD_CONFIG;

		for (unsigned j = 0; !keep && j < nc->nforwards; j++) {
			keep = !strcmp(nc->forwards[j], f->spec);
		}
		if (keep) {
			i++;
			continue;
		}
		pr_info(MOD, "reload: forward %s removed from the configuration", f->spec);
		engine_sup_forward_rm(&d->eng, i);
	}
	for (unsigned j = 0; j < nc->nforwards; j++) {
		if (engine_sup_forward_define(&d->eng, nc->forwards[j], ENGINE_FWD_CONFIG) == 0) {
			pr_info(MOD, "reload: forward %s added by the configuration",
				nc->forwards[j]);
		}
	}
	if (d->eng.state == ENGINE_UP) {
		engine_sup_sync(&d->eng);
	}
	d->cfg = *nc;
	free(nc);
	bpf_mgr_apply(&d->bpf, &d->cfg);
	natxd_register_services(d);
	d->reloads++;
	d->reload_error[0] = '\0';
	pr_info(MOD, "configuration reloaded (%u)", d->reloads);
	return 0;
}

int natxd_connect(struct natxd *d, const struct svc_request *req, const char *who_key,
		  struct svc_conn_info *out, struct svc **used, char *msg)
{
	return natxd_connect_traced(d, req, who_key, out, used, msg, NULL);
}

int natxd_connect_traced(struct natxd *d, const struct svc_request *req, const char *who_key,
			 struct svc_conn_info *out, struct svc **used, char *msg,
			 struct select_trace *tr)
{
	uint64_t t0 = d->clk->now_ms(d->clk);
	int rc = ratelimit_take(&d->rl, who_key, t0);

	*used = NULL;
	if (rc) {
		snprintf(msg, 256,
			 "rate limited: at most %u connects per second per client (burst %u)",
			 d->cfg.connect_rate, d->cfg.connect_burst);
		return rc;
	}
	if (!d->cfg.enable_libp2p) {
		/* not registered at all: say so, or the reason would not mention libp2p */
		select_trace_add(tr, "libp2p: disabled (NAT_TRAVERSAL_ENABLE_LIBP2P=false)");
	}
	rc = select_connect_traced(&d->svcs, req, out, used, tr);
	store_history_add(&d->st, req->target, *used ? (*used)->ops->type : "", rc == 0,
			  rc ? ctl_err_by_err(rc)->code : "", d->clk->now_ms(d->clk) - t0,
			  d->clk->wall_s(d->clk));
	if (!rc) {
		return 0;
	}
	switch (rc) {
	case -NATX_E_UNAVAILABLE:
		if (!d->svcs.n) {
			snprintf(msg, 256,
				 "no NAT-traversal service is registered (libp2p %s, rathole %s; "
				 "their adapters are not part of this build)",
				 d->cfg.enable_libp2p ? "enabled" : "disabled",
				 d->cfg.enable_rathole ? "enabled" : "disabled");
		} else {
			snprintf(msg, 256,
				 "no operational service with the requested capabilities");
		}
		break;
	case -NATX_E_PAYMENT:
		snprintf(msg, 256,
			 "payment required: only paid services can reach %s and payment is not "
			 "allowed",
			 req->target);
		break;
	case -NATX_E_NOT_FOUND:
		snprintf(msg, 256, "node not found: no service knows a way to node %s",
			 req->target);
		break;
	default:
		snprintf(msg, 256, "every candidate service failed; last error: %s",
			 natx_strerror(rc));
		break;
	}
	return rc;
}
