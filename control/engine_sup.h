/* SPDX-License-Identifier: MIT */
/*
 * Supervision of natx-engine over its private control socket (ENGINE-CTL contract,
 * docs/control.md). natxd holds the desired state (forwards from the config file and from
 * `natxctl forward add`); the engine holds the running state. engine_sup:
 *  - attaches to an engine already listening on the socket (natxd restarted: flows keep running),
 *    or spawns one (its own session, so signals to natxd's process group never reach it);
 *  - reconciles: adds desired forwards the engine lacks, removes ones nobody wants;
 *  - notices the engine's death (socket EOF / child exit) and restarts it with exponential
 *    backoff and jitter, then pushes the state back.
 * Calls are synchronous with a deadline (engine.timeout_ms); the engine answers in order.
 */
#ifndef NATX_CTL_ENGINE_SUP_H
#define NATX_CTL_ENGINE_SUP_H

#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include <cjson/cJSON.h>

#include "backoff.h"
#include "clock.h"
#include "ctl_req.h"

enum {
	ENGINE_FWD_MAX = 256, /* desired forwards (config + stored) */
	ENGINE_ERR_MAX = 256, /* bytes of an error text */
	ENGINE_STABLE_MS = 10000, /* up this long: the restart backoff starts over */
	ENGINE_START_WAIT_MS = 5000, /* a spawned engine must answer within this */
	ENGINE_FWD_RETRY_MS = 5000, /* failed forwards (port busy, name unresolvable) retried */
	ENGINE_P2P_MAX = 32, /* desired libp2p services (the engine holds 32) */
	ENGINE_P2P_PROTO_MAX = 128, /* protocol name, NUL included */
	ENGINE_P2P_ADDR_MAX = 256, /* host:port */
	ENGINE_P2P_PEER_MAX = 1024, /* peer multiaddr text */
	ENGINE_P2P_ALT_LEN = 2048, /* a flow forward's other peer addresses, space-separated */
};

enum engine_state {
	ENGINE_DOWN, /* not connected; restart_at_ms says when we try again */
	ENGINE_UP, /* connected, hello answered, state pushed */
};

enum engine_fwd_source {
	ENGINE_FWD_CONFIG, /* from the config file / command line */
	ENGINE_FWD_STORED, /* from `forward add`, persisted in SQLite */
};

struct engine_fwd {
	char spec[CTL_SPEC_MAX + 1];
	enum engine_fwd_source source;
	unsigned long id; /* engine's forward id, 0 when not running in the engine */
	char error[ENGINE_ERR_MAX]; /* why it is not running, "" when it is or when unknown */
};

/*
 * A desired libp2p service (`natxctl p2p expose|forward`, persisted by natxd). @key is natxd's
 * stable id (the store's row id); @id the engine's, which changes when the engine restarts.
 */
struct engine_p2p {
	uint64_t key;
	bool forward; /* forward (else expose) */
	bool flow; /* forward: streams are /natx/flow/1.0.0 flows (docs/migration.md) */
	char alt[ENGINE_P2P_ALT_LEN]; /* flow: other multiaddrs of the peer, space-separated */
	char protocol[ENGINE_P2P_PROTO_MAX];
	char addr
		[ENGINE_P2P_ADDR_MAX]; /* expose: target host:port; forward: bound listen ip:port */
	char peer[ENGINE_P2P_PEER_MAX]; /* forward: peer multiaddr with /p2p/ID */
	unsigned long id; /* engine's service id, 0 when not running in the engine */
	char error[ENGINE_ERR_MAX]; /* why it is not running, "" when it is or when unknown */
};

struct engine_sup {
	char path[PATH_MAX]; /* natx-engine binary */
	char sock[PATH_MAX]; /* private control socket */
	char log_filter[256]; /* passed as --log */
	char p2p_key_file[PATH_MAX]; /* passed as --p2p-key-file when set (libp2p on) */
	char p2p_listen[256]; /* passed as --p2p-listen with it */
	unsigned shards; /* passed as --shards when non-zero */
	unsigned timeout_ms; /* deadline of one call */
	unsigned drain_ms; /* drain asked at stop */
	const struct clock *clk; /* borrowed */

	enum engine_state state;
	int fd; /* connected control socket, -1 when down */
	unsigned conn_gen; /* bumped on every new connection (event-loop registration) */
	pid_t child; /* engine we spawned and must reap, 0 when attached/none */
	bool attached; /* current engine was found running, not spawned by us */
	struct backoff bo; /* restart delays */
	uint64_t restart_at_ms; /* next start attempt while down (injected clock) */
	uint64_t up_since_ms; /* when it came up */
	uint64_t fwd_retry_at_ms; /* next retry of forwards that failed to start */
	unsigned restarts; /* engine (re)starts after the first, since natxd started */
	unsigned long next_id; /* request id */
	char last_error[ENGINE_ERR_MAX];

	/* from "hello" */
	char version[32];
	long pid;
	unsigned eng_shards;
	uint64_t started_at; /* unix seconds */

	struct engine_fwd fwd[ENGINE_FWD_MAX];
	unsigned nfwd;
	struct engine_p2p p2p[ENGINE_P2P_MAX];
	unsigned np2p;

	/* The engine's STUN responder as natxd wants it (bpf_mgr.c); pushed on every (re)connect
	 * once stun_decided. */
	bool stun_decided, stun_want;
	char stun_listen[64];
	unsigned stun_rate, stun_burst;
	char stun_error[ENGINE_ERR_MAX]; /* why the last stun.set failed, "" when it did not */

	struct ctl_rx rx; /* reply framing (replies may exceed the request limit) */
};

/* engine_sup_init - down, no forwards; nothing started. Strings are copied. */
void engine_sup_init(struct engine_sup *es, const char *path, const char *sock,
		     const struct clock *clk);

/*
 * engine_sup_start - attach to a running engine or spawn one, then reconcile forwards.
 * 0 when up; otherwise a negative code, last_error set and a restart scheduled.
 */
int engine_sup_start(struct engine_sup *es);

/*
 * engine_sup_sync - when up, reconcile the engine with the desired forwards now (after a reload
 * changed them). 0, -NATX_E_UNAVAILABLE when down, or an engine error.
 */
int engine_sup_sync(struct engine_sup *es);

/*
 * engine_sup_tick - while down, start again when the backoff delay has passed; while up, retry
 * forwards that failed to start (every ENGINE_FWD_RETRY_MS).
 */
void engine_sup_tick(struct engine_sup *es);

/* engine_sup_timeout_ms - ms until engine_sup_tick has work, -1 when none. */
int engine_sup_timeout_ms(const struct engine_sup *es);

/* engine_sup_readable - the control socket is readable/hung up: EOF means the engine is gone. */
void engine_sup_readable(struct engine_sup *es);

/* engine_sup_child_exited - @pid exited (SIGCHLD, already reaped) with wait @status. */
void engine_sup_child_exited(struct engine_sup *es, pid_t pid, int status);

/*
 * engine_sup_call - send request @req (a JSON object; "v" and "id" are added; not freed) and
 * wait for its reply. Returns 0 with *@reply (caller frees) on "ok":true; on "ok":false the
 * mapped error (-EINVAL bad_spec, -EADDRINUSE, -EADDRNOTAVAIL, -ENOENT, -EEXIST, ...) with the
 * reply still returned for its message; -NATX_E_UNAVAILABLE when down; -ETIMEDOUT; -EPIPE
 * when the engine went away (then it is marked down).
 */
int engine_sup_call(struct engine_sup *es, cJSON *req, cJSON **reply);

/* engine_sup_error_text - "message" of an error reply, or @def. */
const char *engine_sup_error_text(const cJSON *reply, const char *def);

/*
 * engine_sup_forward_add - add a desired forward and run it if the engine is up. Returns 0,
 * -EEXIST (already desired), -ENOSPC, -NATX_E_UNAVAILABLE (engine down: nothing recorded), or
 * the engine's error (nothing recorded) with text in @msg (ENGINE_ERR_MAX).
 */
int engine_sup_forward_add(struct engine_sup *es, const char *spec, enum engine_fwd_source src,
			   char *msg);

/*
 * engine_sup_forward_rm - forget the desired forward at index @i and remove it from the engine
 * (open flows of it continue). 0 or the engine's error (the forward is forgotten anyway).
 */
int engine_sup_forward_rm(struct engine_sup *es, unsigned i);

/* engine_sup_forward_find - index of the forward with @spec or engine @id (id 0: by spec). */
int engine_sup_forward_find(const struct engine_sup *es, const char *spec, unsigned long id);

/* engine_sup_forward_define - record a desired forward without talking to the engine. */
int engine_sup_forward_define(struct engine_sup *es, const char *spec, enum engine_fwd_source src);

/*
 * engine_sup_p2p_define - record a desired libp2p service (copied; @p->id says whether it
 * already runs in the engine). 0, -EEXIST (same key), -ENOSPC. Pushed by the next reconcile
 * (engine start, restart, engine_sup_sync) or retry tick when its id is 0.
 */
int engine_sup_p2p_define(struct engine_sup *es, const struct engine_p2p *p);

/* engine_sup_p2p_find - index of the service with natxd key @key, or of engine @id (key 0). */
int engine_sup_p2p_find(const struct engine_sup *es, uint64_t key, unsigned long id);

/*
 * engine_sup_p2p_rm - forget the desired service at index @i and close it in the engine when
 * it runs there (open streams continue). 0 or the engine's error (forgotten anyway).
 */
int engine_sup_p2p_rm(struct engine_sup *es, unsigned i);

/*
 * engine_sup_p2p_listen_hostport - the engine's listen multiaddr (/ip4/A/tcp/P, /ip6/A/tcp/P)
 * as "A:P" / "[A]:P" in @out (room @cap). 0 or -EINVAL.
 */
int engine_sup_p2p_listen_hostport(const char *ma, char *out, size_t cap);

/*
 * engine_sup_stop - natxd is exiting: with @keep, just disconnect (flows keep running);
 * otherwise ask the engine to shut down with drain_ms and wait (bounded) for it to go.
 */
void engine_sup_stop(struct engine_sup *es, bool keep);

/*
 * engine_sup_stun_set - want the engine's STUN responder on @listen with @rate/@burst, or
 * none (@listen NULL). Recorded, and sent now (stun.set / stun.stop) when the engine is up;
 * pushed again whenever the engine comes back. Returns 0, -NATX_E_UNAVAILABLE (down: applied
 * when it comes up), or the engine's error with stun_error set.
 */
int engine_sup_stun_set(struct engine_sup *es, const char *listen, unsigned rate, unsigned burst);

/* engine_sup_state_name - "up" or "down". */
const char *engine_sup_state_name(enum engine_state s);

#endif
