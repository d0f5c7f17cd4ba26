/* SPDX-License-Identifier: MIT */
/*
 * udpx - UDP services between two natx nodes (docs/udp-punch.md): UDP hole punching
 * coordinated over the libp2p stream /natx/udp/NAME/1.0.0 (which runs over the relayed
 * connection), with the datagrams relayed over that stream while punching and when punching
 * fails.
 *
 * The exposing node (B) registers services NAME -> HOST:PORT and accepts coordination streams
 * on a loopback TCP "gateway" that the engine's p2p expose bridges each stream to. The
 * connecting node (A) opens a local UDP port; each local client address is a flow (id chosen
 * by A), which B maps to its own connected UDP socket towards the service, so replies come
 * back to the right client. Flows end after UDPX_FLOW_IDLE_MS without traffic.
 *
 * Per connection, both sides learn their public UDP address from a STUN Binding request sent
 * from the socket they punch from (the relay's binding reflector: XDP or the engine's
 * user-space responder), exchange candidates, measure the stream RTT, and on SYNC both send
 * authenticated probes (natx punch probe format, HMAC tail under a per-session key) for up to
 * UDPX_ROUNDS rounds. An authenticated answer makes the path direct: datagrams then go over
 * the punched sockets sealed with ChaCha20-Poly1305 under the session key; otherwise they stay
 * on the stream (bounded queue: a datagram that does not fit is dropped and counted).
 *
 * All sockets and state live in one thread of natxd with its own epoll; the functions below
 * are called from natxd's main thread and take the module's lock (never held across I/O
 * waits). Nothing here talks to the engine: natxd (udpx_ctl.c) sets up the p2p expose and
 * forward and passes their addresses in.
 */
#ifndef NATX_CONTROL_UDPX_H
#define NATX_CONTROL_UDPX_H

#include <stdint.h>
#include <stdio.h>

#include <cjson/cJSON.h>

struct udpx;

enum {
	UDPX_SERVICES_MAX = 32,
	UDPX_SESS_MAX = 64, /* coordination sessions (both roles) */
	UDPX_FLOWS_MAX = 256, /* flows per session */
	UDPX_FLOW_IDLE_MS = 60000,
	UDPX_ROUNDS = 3, /* punch rounds before the relayed path is final */
	UDPX_ROUND_PROBES = 10, /* probes per candidate per round */
	UDPX_PROBE_GAP_MS = 100,
	UDPX_TXQ_MAX = 256 * 1024, /* bytes queued on a stream before datagrams are dropped */
	UDPX_KEEPALIVE_MS = 5000, /* direct path: probe when idle this long */
	UDPX_DIRECT_DEAD_MS = 20000, /* direct path: no authenticated packet this long -> relayed */
};

/* udpx_new - start the thread with its gateway listening on 127.0.0.1:0. NULL with *@err. */
struct udpx *udpx_new(int *err);

/* udpx_free - stop the thread, close every socket; NULL is a no-op. */
void udpx_free(struct udpx *u);

/* udpx_gateway_port - the loopback TCP port the p2p exposes of UDP services target. */
uint16_t udpx_gateway_port(const struct udpx *u);

/*
 * udpx_service_add - expose @name ([A-Za-z0-9._-], 1..63 bytes) = UDP @target ("IPv4:PORT" or
 * "[IPv6]:PORT"). 0, -EINVAL (with @msg), -EEXIST, -NATX_E_LIMIT.
 */
int udpx_service_add(struct udpx *u, const char *name, const char *target, char *msg,
		     size_t msglen);

/* udpx_service_rm - stop accepting new sessions for @name (open ones continue). 0 or -ENOENT. */
int udpx_service_rm(struct udpx *u, const char *name);

struct udpx_conn_req {
	const char *name; /* service name at the target */
	const char *local; /* UDP address to bind ("IPv4:PORT", port 0 = any) */
	const char *stream; /* "127.0.0.1:PORT": the engine's p2p forward to the target */
	const char *stun; /* "IP:PORT" of the STUN responder to learn the public address from */
	const char *target; /* for listings */
};

/*
 * udpx_conn_open - bind the local UDP port and start the coordination session. *@id gets the
 * connection id, @bound (64 bytes) the bound local address. 0 or -EINVAL / -EADDRINUSE /
 * -NATX_E_LIMIT / -errno with @msg.
 */
int udpx_conn_open(struct udpx *u, const struct udpx_conn_req *req, uint32_t *id, char *bound,
		   char *msg, size_t msglen);

/* udpx_conn_close - close connection @id (local port, session, flows). 0 or -ENOENT. */
int udpx_conn_close(struct udpx *u, uint32_t id);

/*
 * udpx_conn_path - the path of connection @id now ("udp-direct", "udp-relayed", or
 * "udp-connecting") into @path and the reason into @reason. 0 or -ENOENT.
 */
int udpx_conn_path(struct udpx *u, uint32_t id, char *path, size_t plen, char *reason, size_t rlen);

/* udpx_json - {"gateway","services":[..],"sessions":[..],"counters":{..}}. NULL on ENOMEM. */
cJSON *udpx_json(struct udpx *u);

/* udpx_prom - the natx_udp_* series (Prometheus text) to @f. */
void udpx_prom(struct udpx *u, FILE *f);

#endif
