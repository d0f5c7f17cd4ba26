/* SPDX-License-Identifier: MIT */
/*
 * udpx_ctl - natxd's side of UDP services between natx nodes (udpx.h, docs/udp-punch.md):
 * the commands `udp expose NAME HOST:PORT`, `udp unexpose NAME`, `udp ls`, the UDP branch of
 * `connect TARGET --service NAME --local udp:ADDR:PORT` (conns.c), metrics. It sets up the
 * engine's side: each exposed service is a p2p expose of /natx/udp/NAME/1.0.0 to udpx's
 * loopback gateway, each connection a p2p forward of that protocol from a loopback port to the
 * peer; both are desired in the engine supervisor (pushed again after an engine restart) but
 * not stored: UDP services and connections last while natxd runs.
 */
#ifndef NATX_CONTROL_UDPX_CTL_H
#define NATX_CONTROL_UDPX_CTL_H

#include <stdbool.h>
#include <stdio.h>

#include <cjson/cJSON.h>

struct natxd;
struct ctl_caller;
struct ctl_req;
struct store_conn;

/* Prefix of store_conn.handle for UDP connections: "udp:<udpx id>:<engine p2p key>". */
#define UDPX_CTL_HANDLE "udp:"

/* natxd_udp_start - start udpx (d->udpx); a failure is logged and leaves UDP services off. */
void natxd_udp_start(struct natxd *d);

/* natxd_udp_stop - stop udpx and forget its engine services. */
void natxd_udp_stop(struct natxd *d);

/* natxd_cmd_udp - udp.expose {name, target} / udp.unexpose {name} / udp.ls. */
int natxd_cmd_udp(struct natxd *d, const struct ctl_caller *who, const struct ctl_req *req,
		  cJSON *reply, char *msg);

/*
 * udpx_ctl_is_udp - @local names a UDP address ("udp:" prefix) or @udp (connect --udp) is set;
 * *@bind gets the address without the prefix.
 */
bool udpx_ctl_is_udp(const char *local, bool udp, const char **bind);

/*
 * udpx_ctl_open - the UDP connection of `connect --local udp:...`: check that @peer (the
 * multiaddr the libp2p service verified) offers /natx/udp/@service/1.0.0, open the engine's
 * forward to it and udpx's local port @bind. Fills @c->local, @c->handle. 0 or -errno with
 * @msg (CTL_MSG_MAX); nothing stays open on failure.
 */
int udpx_ctl_open(struct natxd *d, const char *service, const char *bind, const char *peer,
		  struct store_conn *c, char *msg);

/* udpx_ctl_close - undo udpx_ctl_open for handle @h. 0 (also when already gone). */
int udpx_ctl_close(struct natxd *d, const char *h);

/*
 * udpx_ctl_path - "udp-direct" / "udp-relayed" / "udp-connecting" (or "udp-closed") of handle
 * @h into @path, the reason into @reason.
 */
void udpx_ctl_path(struct natxd *d, const char *h, char *path, size_t plen, char *reason,
		   size_t rlen);

/* natxd_udp_metrics - "udp": {counters} into @o (metrics command). */
void natxd_udp_metrics(struct natxd *d, cJSON *o);

/* natxd_udp_prom - the natx_udp_* series. */
void natxd_udp_prom(struct natxd *d, FILE *f);

#endif
