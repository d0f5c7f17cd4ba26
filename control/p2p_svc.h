/* SPDX-License-Identifier: MIT */
/*
 * natxd's libp2p side (docs/control.md "libp2p"): the identity file, the engine options that
 * turn libp2p on in natx-engine, and the peer / ping / identify commands, which natxd answers
 * by asking the engine (p2p.peer, p2p.ping, p2p.identify on the engine control socket).
 */
#ifndef NATX_CONTROL_P2P_SVC_H
#define NATX_CONTROL_P2P_SVC_H

#include <cjson/cJSON.h>
#include <stdio.h>

#include "ctl_req.h"

struct natxd;
struct ctl_caller;

/* File name of the identity inside the state directory. */
#define P2P_KEY_FILE_NAME "libp2p.key"

/*
 * natxd_p2p_setup - load the stored p2p services into the engine supervisor (desired, pushed
 * when the engine starts; they wait with an error while libp2p is off). Then, when
 * nat_traversal.enable_libp2p: create or load the identity in the state
 * directory and tell the engine supervisor to pass --p2p-key-file / --p2p-listen. A failure is
 * logged and leaves libp2p off (d->p2p_error says why); natxd keeps running.
 */
void natxd_p2p_setup(struct natxd *d);

/*
 * p2p_engine_call - send @req (consumed) to the engine with a deadline of @ms and move the
 * reply's members (without v/id/ok) into @reply. 0, or -NATX_E_UNAVAILABLE (libp2p off, engine
 * down), -EINVAL (bad address), -ETIMEDOUT, -NATX_E_LIMIT, -NATX_E_CONNECT (dial, Noise or
 * protocol failure) with a line in @msg (CTL_MSG_MAX = 512 bytes).
 */
int p2p_engine_call(struct natxd *d, cJSON *req, unsigned ms, cJSON *reply, char *msg);

/* Control command handlers (rows "peer", "ping", "identify" of ctl_cmd_table). */
int natxd_cmd_peer(struct natxd *d, const struct ctl_caller *who, const struct ctl_req *req,
		   cJSON *reply, char *msg);
int natxd_cmd_ping(struct natxd *d, const struct ctl_caller *who, const struct ctl_req *req,
		   cJSON *reply, char *msg);
/*
 * natxd_cmd_p2p_svc - p2p.expose / p2p.forward / p2p.ls / p2p.close. A service the engine
 * accepted is stored (SQLite p2p_services) and kept desired in the engine supervisor, which
 * pushes it again when the engine restarts; its id is natxd's (the row id), stable across
 * restarts. A forward is stored with the listen address the engine bound (port 0 resolved), so
 * it comes back on the same port. p2p.close forgets it (store and engine).
 */
int natxd_cmd_p2p_svc(struct natxd *d, const struct ctl_caller *who, const struct ctl_req *req,
		      cJSON *reply, char *msg);
/*
 * p2p_svc_forward_add - what `p2p forward PROTOCOL LISTEN PEER` does, for natxd's own callers
 * (with @flow: each connection a migratable /natx/flow/1.0.0 flow, docs/migration.md, whose
 * repair may also dial @alts, other multiaddrs of the peer, space-separated, or NULL):
 * the engine runs it and it is persisted; @reply gets "service_id" (natxd's id) and "service"
 * (with "listen", the bound address). 0 or the errors of p2p_engine_call / persistence.
 */
int p2p_svc_forward_add(struct natxd *d, const char *protocol, const char *listen, const char *peer,
			bool flow, const char *alts, cJSON *reply, char *msg);

/* p2p_svc_remove - `p2p close ID` for natxd's own callers. 0, -ENOENT, or -EIO with @msg. */
int p2p_svc_remove(struct natxd *d, unsigned long long id, char *msg);
/* natxd_cmd_peers / reserve / relay_status - engine p2p.peers / p2p.reserve / p2p.relay.status. */
int natxd_cmd_peers(struct natxd *d, const struct ctl_caller *who, const struct ctl_req *req,
		    cJSON *reply, char *msg);
int natxd_cmd_reserve(struct natxd *d, const struct ctl_caller *who, const struct ctl_req *req,
		      cJSON *reply, char *msg);
/* natxd_cmd_nat - engine p2p.nat (AutoNAT reachability, confidence, answers, server counters). */
int natxd_cmd_nat(struct natxd *d, const struct ctl_caller *who, const struct ctl_req *req,
		  cJSON *reply, char *msg);
/* natxd_cmd_nat_probe - engine p2p.nat.probe: the same, after starting a round of requests. */
int natxd_cmd_nat_probe(struct natxd *d, const struct ctl_caller *who, const struct ctl_req *req,
			cJSON *reply, char *msg);
/* natxd_cmd_upgrades - engine p2p.upgrades (DCUtR state and records). */
int natxd_cmd_upgrades(struct natxd *d, const struct ctl_caller *who, const struct ctl_req *req,
		       cJSON *reply, char *msg);
int natxd_cmd_relay_status(struct natxd *d, const struct ctl_caller *who, const struct ctl_req *req,
			   cJSON *reply, char *msg);

/*
 * natxd_p2p_tick - from the main loop: once per engine instance (a new or restarted engine),
 * turn the relay on with the [relay] settings, hand it the bootstrap peers to keep connected
 * and set hole punching from NAT_TRAVERSAL_ENABLE_HOLE_PUNCHING (p2p.relay.setup, p2p.keep,
 * p2p.dcutr). Every few seconds, the engine's finished DCUtR upgrades are added to the
 * libp2p service's upgrade metrics (svc_upgrade_record).
 */
void natxd_p2p_tick(struct natxd *d);

/*
 * natxd_p2p_relay_metrics - add "flows": {open, total, migrated_total, ...} (the engine's
 * migratable flow counters) when libp2p runs, and "relay": {counters} when the relay runs.
 */
void natxd_p2p_relay_metrics(struct natxd *d, cJSON *o);

/*
 * natxd_p2p_relay_prom - the flow counters (natx_flow_*) when libp2p runs and the relay's
 * (natx_relay_*) when it runs, as Prometheus text.
 */
void natxd_p2p_relay_prom(struct natxd *d, FILE *f);

int natxd_cmd_identify(struct natxd *d, const struct ctl_caller *who, const struct ctl_req *req,
		       cJSON *reply, char *msg);

#endif
