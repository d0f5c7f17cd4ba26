/* SPDX-License-Identifier: MIT */
/*
 * nodes - what natxd knows about other nodes (SQLite table nodes, docs/control.md "Nodes"):
 * `natxctl node set NODE MULTIADDR...` records the libp2p addresses of a node (direct ones and
 * /p2p-circuit ones through relays), so that `connect NODE` can try them in order: direct
 * addresses first, then relayed ones. The paid tunnel service writes the same table when a
 * node buys a tunnel (proxy address, price); `node set` keeps those fields.
 */
#ifndef NATX_CONTROL_NODES_H
#define NATX_CONTROL_NODES_H

#include <cjson/cJSON.h>

#include "ctl_req.h"

struct natxd;
struct ctl_caller;

enum {
	NODES_ADDRS_MAX = 8, /* multiaddrs kept per node */
	NODES_ADDR_LEN = 256, /* bytes of one multiaddr, NUL included */
};

/*
 * nodes_candidates - the libp2p addresses to try for @target, in trial order, into @out
 * (room NODES_ADDRS_MAX): @target itself when it is a multiaddr with /p2p/, else the node's
 * stored addresses, direct ones before /p2p-circuit ones. Returns their count (0: none known).
 */
int nodes_candidates(struct natxd *d, const char *target, char out[][NODES_ADDR_LEN]);

/* Control command handlers: node.set, node.ls, node.rm. */
int natxd_cmd_node(struct natxd *d, const struct ctl_caller *who, const struct ctl_req *req,
		   cJSON *reply, char *msg);

#endif
