/* SPDX-License-Identifier: MIT */
/*
 * The paid tunnel service adapter, type "rathole" (docs/l402.md, docs/control.md): requires
 * payment, not direct, TCP and UDP, connection limit rathole.max_connections.
 *   can_reach(target) - the node is in `nodes` with offers_proxy = 1
 *   connect(target)   - the node's newest registration: proxy address (public host + its
 *                       port), auth token (the registration's macaroon), expires_at;
 *                       no registration -> -NATX_E_NOT_FOUND, revoked token or expired ->
 *                       -NATX_E_PAYMENT (pay again; never a breaker fault, so one node's
 *                       refusal leaves the service up for the others), other protocol
 *                       asked -> -NATX_E_NOT_FOUND
 */
#ifndef NATX_CTL_ADAPTER_TUNNEL_H
#define NATX_CTL_ADAPTER_TUNNEL_H

#include "config.h"
#include "store.h"
#include "svc.h"

struct l402_svc;

extern const struct svc_ops tunnel_adapter_ops;

/*
 * tunnel_adapter_register - register the adapter with @mgr over borrowed @st, @clk, @cfg and
 * @ps (all must outlive the registration). 0 or svc_register's codes.
 */
int tunnel_adapter_register(struct svc_mgr *mgr, struct store *st, const struct clock *clk,
			    const struct natx_config *cfg, struct l402_svc *ps);

#endif
