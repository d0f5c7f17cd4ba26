/* SPDX-License-Identifier: MIT */
/*
 * Tunnel engine objects in natxd's engine supervision (tunnel_cfg.h explains the specs):
 * engine_sup calls these for desired entries whose spec is a tunnel spec, and the control
 * commands natxctl tunnel add|rm|ls are built on them.
 */
#ifndef NATX_CTL_TUNNEL_SUP_H
#define NATX_CTL_TUNNEL_SUP_H

#include <cjson/cJSON.h>

#include "engine_sup.h"

/* Engine objects get ids above this (never equal to an engine forward id). */
#define TUNNEL_SUP_ID_BASE (1UL << 40)

/*
 * tunnel_sup_push - run tunnel entry @f in the engine (tunnel.server/client/add). 0 with f->id
 * set, or the engine's error with f->error set (logged when it changes).
 */
int tunnel_sup_push(struct engine_sup *es, struct engine_fwd *f);

/* tunnel_sup_rm - stop tunnel entry @spec in the engine (services only). 0 or the error. */
int tunnel_sup_rm(struct engine_sup *es, const char *spec);

/*
 * tunnel_sup_prune - remove services the engine runs that no desired entry names (an engine
 * natxd re-attached to after a restart with another configuration). 0 or the engine's error.
 */
int tunnel_sup_prune(struct engine_sup *es);

struct store;
struct l402_svc;

/*
 * Paid registrations (tunnel_paid.c). tunnel_paid_source - where they come from (the paid
 * adapter's store and payment state, borrowed), NULL to stop. tunnel_paid_sync - push active
 * registrations to the engine as "paid-PORT" services, remove revoked/expired ones.
 * tunnel_paid_tick / _timeout_ms - once a second from engine_sup's tick (-1: nothing to do).
 */
void tunnel_paid_source(struct store *st, struct l402_svc *ps);
int tunnel_paid_sync(struct engine_sup *es);
void tunnel_paid_tick(struct engine_sup *es);
int tunnel_paid_timeout_ms(const struct engine_sup *es);

struct natxd;
struct ctl_caller;
struct ctl_req;

/* natxctl tunnel add|rm|ls handlers (ctl_cmds.c binds them). */
/*
 * tunnel_sup_load - at start: define again the services `tunnel add` persisted (after the
 * configuration's, so a name the configuration now has is skipped).
 */
void tunnel_sup_load(struct natxd *d);

int tunnel_cmd_add(struct natxd *d, const struct ctl_caller *who, const struct ctl_req *req,
		   cJSON *reply, char *msg);
int tunnel_cmd_rm(struct natxd *d, const struct ctl_caller *who, const struct ctl_req *req,
		  cJSON *reply, char *msg);
int tunnel_cmd_ls(struct natxd *d, const struct ctl_caller *who, const struct ctl_req *req,
		  cJSON *reply, char *msg);

#endif
