/* SPDX-License-Identifier: MIT */
/*
 * The libp2p adapter: natx's free traversal service (type "libp2p"; direct, TCP, no payment).
 * It can reach targets given as multiaddrs with a peer ID (/ip4|ip6/A/tcp/P/p2p/ID); connect
 * dials the target from the engine and proves it with an authenticated libp2p ping (Noise
 * checks the peer ID), then returns the address it reached. Status and the active connection
 * count come from the engine's libp2p counters (p2p.peer).
 */
#ifndef NATX_CONTROL_ADAPTER_P2P_H
#define NATX_CONTROL_ADAPTER_P2P_H

#include "svc.h"

struct natxd;

extern const struct svc_ops p2p_adapter_ops;

/* p2p_adapter_register - register with @d's manager (ctx = @d, borrowed). svc_register's codes. */
int p2p_adapter_register(struct natxd *d);

/*
 * p2p_target_parse - 0 when @target is an ip+tcp multiaddr with /p2p/ID, or a circuit address
 * RELAY/p2p/R/p2p-circuit/p2p/ID with a dialable relay part; else -EINVAL.
 */
int p2p_target_parse(const char *target);

#endif
