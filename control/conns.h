/* SPDX-License-Identifier: MIT */
/*
 * conns - connections with a local port (`natxctl connect TARGET --service NAME --local
 * ADDR:PORT`, docs/control.md "Connections"). natxd selects the best service for the target
 * (control/select.c, with the reason for every choice), then opens ADDR:PORT in the engine so
 * that each local TCP connection reaches the target's service by that path:
 *  - libp2p: a `p2p forward` of protocol /natx/svc/NAME/1.0.0 (or NAME itself when it starts
 *    with '/') to the peer address the libp2p service verified;
 *  - tunnel (rathole, paid): an engine forward from ADDR:PORT to the tunnel's public address.
 * Connections are kept in SQLite (table connections) and listed by `natxctl connections`, with
 * the path, the address used and why it was chosen; `natxctl connections close ID` closes the
 * local port.
 */
#ifndef NATX_CONTROL_CONNS_H
#define NATX_CONTROL_CONNS_H

#include <cjson/cJSON.h>

#include "store.h"
#include "svc.h"

struct natxd;

enum {
	CONNS_MAX = 256, /* connections with a local port at once */
	CONNS_SERVICE_MAX = 64, /* bytes of a service name */
};

struct conns {
	struct store_conn *v[CONNS_MAX];
	unsigned int n;
	uint32_t next_id;
};

/* conns_load - the stored connections into @d->conns (at start). 0 or -EIO / -ENOMEM. */
int conns_load(struct natxd *d);

/* conns_free - forget the in-memory list (the engine and the store keep theirs). */
void conns_free(struct natxd *d);

/*
 * conns_protocol - the libp2p protocol of service @name into @out (@len bytes): @name itself
 * when it starts with '/', else /natx/svc/NAME/1.0.0 with NAME of [A-Za-z0-9._-]. 0 or -EINVAL.
 */
int conns_protocol(const char *name, char *out, size_t len);

/*
 * conns_peer_offers - 0 when @peer's identify record (asked through the engine) lists @proto,
 * -NATX_E_NOT_FOUND (reason in @msg, CTL_MSG_MAX) if not, or the engine call's error. With
 * @flow, *@flow is set when it also lists /natx/flow/1.0.0 (a natx node: flows can migrate).
 */
int conns_peer_offers(struct natxd *d, const char *peer, const char *proto, bool *flow, char *msg);

/*
 * conns_p2p_flow - the stored connection that uses natxd's p2p service @key as a flow forward
 * (/natx/flow/1.0.0, docs/migration.md), or NULL: the flag is kept in the connection's
 * handle, so a restarted natxd defines the forward in flow mode again.
 */
const struct store_conn *conns_p2p_flow(const struct natxd *d, unsigned long long key);

/*
 * conns_flow_alts - @target's libp2p addresses other than @used (the forward's), space-separated
 * into @out (@len bytes, "" when none; at most 4): a flow's repair dials them in turn when
 * its path dies (another relay).
 */
void conns_flow_alts(struct natxd *d, const char *target, const char *used, char *out, size_t len);

/*
 * conns_open - select a service for @req and open @local for @service through it; the reply
 * gets "connection_info" and "connection". 0 or a negative code with @msg (CTL_MSG_MAX):
 * the selection's errors, -EINVAL (bad service or local address, or no port for a tunnel),
 * -NATX_E_LIMIT (CONNS_MAX), or the engine's error opening the port (nothing is left open).
 */
int conns_open(struct natxd *d, const struct svc_request *req, const char *who_key,
	       const char *service, const char *local, cJSON *reply, char *msg);

/* conns_json - {"connections":[...]} items: id, target, service, local, type, path, via, reason,
 * created_at. NULL on allocation failure. */
cJSON *conns_json(struct natxd *d);

/* conns_close - close connection @id's local port and forget it. 0, -ENOENT, or -errno + @msg. */
int conns_close(struct natxd *d, uint32_t id, char *msg);

#endif
