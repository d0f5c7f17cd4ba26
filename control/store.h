/* SPDX-License-Identifier: MIT */
/*
 * natxd's SQLite store. The schema is versioned with PRAGMA user_version and grows by numbered
 * migrations, each applied in its own transaction (store.c, store_migrations[]). Tables:
 *   nodes              which nodes offer proxy/tunnel/relay service and how to reach them
 *   registrations      tunnel registrations (services a node exposes through a relay)
 *   tokens             access tokens (L402 macaroons) and their state
 *   payment_receipts   settled payments (payment hash, preimage, amount)
 *   forwards           forwards added with `natxctl forward add` (config ones are not stored)
 *   connection_history one row per connect request, for metrics
 *   p2p_services       libp2p services added with `natxctl p2p expose|forward` (version 4)
 *
 * A database that is corrupt, not a database, locked by another process or newer than this
 * natxd is reported with a clear message and left untouched: it is never silently recreated.
 */
#ifndef NATX_CTL_STORE_H
#define NATX_CTL_STORE_H

#include <stdbool.h>
#include <stdint.h>

#include <sqlite3.h>

#include "natx/ctl_proto.h"

enum {
	STORE_ERR_MAX = 512,
	STORE_BUSY_TIMEOUT_MS = 2000, /* wait this long for another writer before "locked" */
};

struct store {
	sqlite3 *db;
	char path[4096];
};

/* store_schema_version - the version this natxd's migrations produce. */
int store_schema_version(void);

/*
 * store_open - open @path. With @create, a missing file is created; without it, a missing file
 * is -ENOENT. Pending migrations are applied (each in a transaction). Returns 0, or a negative
 * code with a one-line message in @err (room STORE_ERR_MAX): -ENOENT, -EBUSY (locked),
 * -EIO (corrupt / not a database), -EPROTO (schema newer than this natxd), -errno.
 * On failure @st is left closed.
 */
int store_open(struct store *st, const char *path, bool create, char *err);

/* store_close - close; safe on a closed store. */
void store_close(struct store *st);

/* store_version - the database's current schema version, or a negative code. */
int store_version(struct store *st);

/* store_forward_add - persist a forward spec. 0, -EEXIST, or -EIO. */
int store_forward_add(struct store *st, const char *spec, uint64_t now_s);

/* store_forward_rm - forget a forward spec. 0, -ENOENT, or -EIO. */
int store_forward_rm(struct store *st, const char *spec);

/*
 * store_forward_each - call @fn for every stored forward spec in insertion order. Stops and
 * returns the first non-zero value of @fn; 0 or -EIO otherwise.
 */
int store_forward_each(struct store *st, int (*fn)(void *arg, const char *spec), void *arg);

/* store_history_add - record one connect request. 0 or -EIO. */
int store_history_add(struct store *st, const char *target, const char *service, bool ok,
		      const char *error_code, uint64_t latency_ms, uint64_t at_s);

/* store_history_count - rows in connection_history (ok_only: successful ones). >= 0 or -EIO. */
int64_t store_history_count(struct store *st, bool ok_only);

/* A node that offers service (the nodes table). */
struct store_node {
	char node_id[CTL_TARGET_MAX];
	bool offers_proxy; /* runs a tunnel/proxy service (rathole-style) */
	bool offers_relay; /* runs a libp2p circuit relay */
	char public_address[128];
	char proxy_address[128];
	char multiaddrs[1024];
	uint64_t price_sats; /* price of a tunnel, sats */
	uint64_t last_seen; /* unix seconds */
};

/* store_node_put - insert or replace a node. 0 or -EIO. */
int store_node_put(struct store *st, const struct store_node *n);

/*
 * store_tunnel_add - persist a run-time tunnel service: its tunnel.add @request (JSON, with the
 * token: the database is owner-only). 0, -EEXIST, or -EIO.
 */
int store_tunnel_add(struct store *st, const char *role, const char *name, const char *request,
		     uint64_t now_s);

/* store_tunnel_rm - forget a run-time tunnel service. 0, -ENOENT, or -EIO. */
int store_tunnel_rm(struct store *st, const char *role, const char *name);

/* store_tunnel_each - call @fn with every stored tunnel.add request, oldest first. */
int store_tunnel_each(struct store *st, int (*fn)(void *arg, const char *request), void *arg);

/* store_node_rm - forget a node. 0, -ENOENT, or -EIO. */
int store_node_rm(struct store *st, const char *node_id);

/* store_node_each - call @fn for every node by id; stops at its first non-zero result. */
int store_node_each(struct store *st, int (*fn)(void *arg, const struct store_node *n), void *arg);

/* store_node_get - fetch a node. 0, -ENOENT, or -EIO. */
int store_node_get(struct store *st, const char *node_id, struct store_node *out);

enum {
	STORE_P2P_PROTO_MAX = 128, /* bytes of a protocol name, NUL included (engine's limit) */
	STORE_P2P_ADDR_MAX = 256, /* host:port */
	STORE_P2P_PEER_MAX = 1024, /* peer multiaddr text */
};

/*
 * A libp2p service (the p2p_services table). @id is its row id: natxd's service id, stable
 * across natxd and engine restarts. @addr is the expose target (host:port as given) or the
 * forward's bound listen address ("ip:port" / "[ip6]:port", never port 0).
 */
struct store_p2p {
	uint64_t id;
	bool forward; /* forward (else expose) */
	char protocol[STORE_P2P_PROTO_MAX];
	char addr[STORE_P2P_ADDR_MAX];
	char peer[STORE_P2P_PEER_MAX]; /* forward: the peer multiaddr with /p2p/ID; "" for expose */
};

/*
 * store_p2p_add - persist @s and set s->id. 0, -EEXIST (same service, or a second expose of
 * the protocol), or -EIO.
 */
int store_p2p_add(struct store *st, struct store_p2p *s, uint64_t now_s);

/* store_p2p_rm - forget service @id. 0, -ENOENT, or -EIO. */
int store_p2p_rm(struct store *st, uint64_t id);

/*
 * store_p2p_each - call @fn for every stored service in id order. Stops and returns the first
 * non-zero value of @fn; 0 or -EIO otherwise.
 */
int store_p2p_each(struct store *st, int (*fn)(void *arg, const struct store_p2p *s), void *arg);

/* store_errmsg - the last SQLite message (for logs). */
const char *store_errmsg(struct store *st);

/* struct store_conn - one row of connections (control/conns.h describes the fields). */
struct store_conn {
	uint32_t id;
	char target[256];
	char service[72];
	char local[72];
	char type[32];
	char via[256];
	char handle[320];
	char reason[512];
	uint64_t created_s;
};

/* store_conn_add - persist a connection. 0, -EEXIST, or -EIO. */
int store_conn_add(struct store *st, const struct store_conn *c);

/* store_conn_rm - forget connection @id. 0, -ENOENT, or -EIO. */
int store_conn_rm(struct store *st, uint32_t id);

/* store_conn_each - call @fn for every stored connection by id; stops at its first non-zero. */
int store_conn_each(struct store *st, int (*fn)(void *arg, const struct store_conn *c), void *arg);

#endif
