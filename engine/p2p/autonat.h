/* SPDX-License-Identifier: MIT */
/*
 * AutoNAT v1 (/libp2p/autonat/1.0.0, libp2p/specs autonat/autonat-v1.md): a server that dials
 * peers back on the addresses they claim, and a client that learns from several servers'
 * answers whether it is publicly reachable. Sans-IO on p2p_conn streams; the dial-back itself
 * is a host action (ops->dial_back) reported with autonat_server_dial_done.
 *
 * Server rules: requests over relayed connections are refused (E_DIAL_REFUSED), the peer ID
 * in the request must be the connection's, only addresses whose IP equals the observed IP of
 * the requesting connection are dialled (at most AUTONAT_MAX_DIAL), requests are throttled per
 * peer and globally per minute (E_DIAL_REFUSED beyond).
 *
 * Client: each answer is an observation (OK: public, E_DIAL_ERROR: private; refusals and
 * errors do not count). The reachability flips after a contrary observation only when the
 * confidence is 0; same-direction observations raise the confidence to AUTONAT_MAX_CONFIDENCE,
 * contrary ones lower it (go-libp2p's rule).
 */
#ifndef NATX_P2P_AUTONAT_H
#define NATX_P2P_AUTONAT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "conn.h"
#include "relay_msg.h"

#define AUTONAT_PROTOCOL "/libp2p/autonat/1.0.0"

enum {
	AUTONAT_MAX_MSG = 4096,
	AUTONAT_MAX_DIAL = 16, /* addresses dialled per request (go) */
	AUTONAT_PER_PEER = 3, /* requests per peer per minute (go) */
	AUTONAT_GLOBAL = 30, /* requests per minute (go) */
	AUTONAT_TIMEOUT_MS = 30000, /* request or dial-back */
	AUTONAT_MAX_CONFIDENCE = 3,
	AUTONAT_TRACKED_PEERS = 256, /* per-peer throttle table */
};

enum autonat_type { AUTONAT_DIAL = 0, AUTONAT_DIAL_RESPONSE = 1 };

enum autonat_status {
	AUTONAT_OK = 0,
	AUTONAT_E_DIAL_ERROR = 100,
	AUTONAT_E_DIAL_REFUSED = 101,
	AUTONAT_E_BAD_REQUEST = 200,
	AUTONAT_E_INTERNAL_ERROR = 300,
};

/* struct autonat_msg - Message: DIAL{peer{id, addrs}} or DIAL_RESPONSE{status, text, addr}. */
struct autonat_msg {
	int type;
	bool has_peer;
	struct peer_id peer;
	struct relay_addrs addrs;
	bool has_response;
	uint32_t status;
	char text[128];
	uint8_t addr[RELAY_MAX_ADDR];
	size_t addr_len;
};

/* autonat_encode - length-prefixed; 0 with *@len or -NATX_E_TOO_BIG. */
int autonat_encode(const struct autonat_msg *m, uint8_t *out, size_t cap, size_t *len);

/* autonat_decode - one body; 0, -NATX_E_PROTO (malformed, no type, bad peer id), -NATX_E_TOO_BIG. */
int autonat_decode(struct autonat_msg *m, const uint8_t *buf, size_t len);

/* ---- server ---- */

struct autonat_server;
struct autonat_req;

struct autonat_server_ops {
	/*
	 * dial_back - try a fresh connection to @peer at @addrs (already restricted to the
	 * observed IP), not from the listen port. Report with autonat_server_dial_done(@req).
	 */
	void (*dial_back)(void *ctx, struct autonat_req *req, const struct peer_id *peer,
			  const struct relay_addrs *addrs);
};

struct autonat_server_stats {
	uint64_t requests, ok, dial_errors, refused, bad_requests;
};

struct autonat_server *autonat_server_new(struct p2p_clock *clock,
					  const struct autonat_server_ops *ops, void *ctx,
					  int *err);
void autonat_server_free(struct autonat_server *srv);

/*
 * autonat_server_accept - take an inbound AutoNAT stream. @observed: the connection's remote
 * address; @relayed: the connection runs over a relay.
 */
void autonat_server_accept(struct autonat_server *srv, struct p2p_stream *s,
			   const struct sockaddr *observed, bool relayed);

/*
 * autonat_server_dial_done - the dial-back of @req ended: @err 0 with the address that
 * worked (@addr), or an error. @req is invalid afterwards. Ignored for requests that ended
 * (timeout, stream gone): the host may call it late.
 */
void autonat_server_dial_done(struct autonat_server *srv, struct autonat_req *req, int err,
			      const uint8_t *addr, size_t addr_len);

/* autonat_server_tick - time out dial-backs. */
void autonat_server_tick(struct autonat_server *srv);

/*
 * autonat_server_allow_private - also dial back private, loopback and link-local addresses
 * (default: refused with E_DIAL_REFUSED, as the spec asks; for tests and private labs).
 */
void autonat_server_allow_private(struct autonat_server *srv, bool allow);

const struct autonat_server_stats *autonat_server_stats(const struct autonat_server *srv);

/* ---- client ---- */

enum autonat_reachability { AUTONAT_UNKNOWN, AUTONAT_PUBLIC, AUTONAT_PRIVATE };

struct autonat_client;

struct autonat_client_ops {
	/* on_status - reachability or confidence changed; @addr: the last address a server reached. */
	void (*on_status)(void *ctx, enum autonat_reachability r, int confidence,
			  const uint8_t *addr, size_t addr_len);
	/*
	 * on_response - optional: every answer a server gave on @c (also refusals, which do not
	 * change the reachability), with its status text (NUL-terminated, may be empty).
	 */
	void (*on_response)(void *ctx, struct p2p_conn *c, uint32_t status, const char *text);
};

/* autonat_client_new - @addrs: the addresses we ask servers to dial (borrowed). */
struct autonat_client *autonat_client_new(const struct p2p_identity *idn, struct p2p_clock *clock,
					  const struct autonat_client_ops *ops, void *ctx,
					  const uint8_t *const *addrs, const size_t *addr_lens,
					  size_t n_addrs, int *err);
void autonat_client_free(struct autonat_client *cl);

/* autonat_client_set_addrs - replace the addresses we ask servers to dial (borrowed). */
void autonat_client_set_addrs(struct autonat_client *cl, const uint8_t *const *addrs,
			      const size_t *addr_lens, size_t n_addrs);

/* autonat_client_probe - ask the server at the other end of @c to dial us back. */
int autonat_client_probe(struct autonat_client *cl, struct p2p_conn *c);

/* autonat_client_conn_gone - @c is closing: drop its probe. */
void autonat_client_conn_gone(struct autonat_client *cl, struct p2p_conn *c);

/* autonat_client_tick - time out probes. */
void autonat_client_tick(struct autonat_client *cl);

/* autonat_client_status - current reachability and confidence (0..AUTONAT_MAX_CONFIDENCE). */
enum autonat_reachability autonat_client_status(const struct autonat_client *cl, int *confidence);

#endif
