/* SPDX-License-Identifier: MIT */
/*
 * natx-engine command line (contract: ENGINE-CTL.md). args_parse() fills struct engine_cfg
 * and validates every value; it does no I/O and resolves nothing (specs are only
 * syntax-checked here, resolved when the forward is added).
 */
#ifndef NATX_ENGINE_ARGS_H
#define NATX_ENGINE_ARGS_H

#include <stdbool.h>
#include <stdint.h>

#include "spec.h"

enum { ARGS_FORWARDS_MAX = 256, ARGS_ERR_MAX = 320 };

enum tcp_mode { TCP_MODE_SPLICE = 0, TCP_MODE_URING = 1 };

/* --steer: who picks a reuseport group's shard (steer_eng.h). */
enum steer_mode { STEER_AUTO = 0, STEER_BPF = 1, STEER_KERNEL = 2 };

struct engine_cfg {
	unsigned int shards; /* 0 = one per online CPU */
	const char *forwards[ARGS_FORWARDS_MAX]; /* borrowed from argv */
	unsigned int nforwards;
	const char *ctl_path; /* NULL: no control socket */
	const char *stats_file; /* NULL: SIGUSR1 prints to stderr */
	const char *forwards_file; /* NULL: SIGHUP only logs */
	const char *log; /* NATX_LOG-style filter, NULL = env/default */
	const char *p2p_key_file; /* libp2p identity (PrivateKey protobuf); NULL: libp2p off */
	const char *p2p_listen; /* libp2p listen multiaddr */
	uint32_t drain_timeout_ms; /* SIGTERM / shutdown deadline */
	uint32_t idle_timeout_s; /* TCP: close a flow idle this long, 0 = never */
	uint32_t udp_idle_timeout_s; /* UDP: end a session idle this long */
	uint32_t connect_timeout_s; /* upstream connect deadline */
	uint32_t flow_buffer_limit; /* bytes in flight per direction before reads stop */
	uint32_t buf_size; /* provided buffer size (bytes, power of two) */
	uint32_t buf_count; /* provided buffers per shard (power of two) */
	uint32_t udp_buf_size; /* UDP provided buffer size: largest datagram + 44 bytes */
	uint32_t udp_buf_count; /* UDP provided buffers per shard (power of two) */
	uint32_t zc_threshold; /* uring mode: SEND_ZC at or above this size, 0 = never */
	uint32_t max_flows; /* per shard */
	enum tcp_mode tcp_mode;
	enum steer_mode steer; /* default auto: BPF when it loads, kernel hash otherwise */
	const char *stun_listen; /* engine STUN Binding responder address, NULL = off */
	uint32_t stun_rate; /* per-source Binding requests/s, 0 = unlimited */
	uint32_t stun_burst; /* bucket size, 0 = rate */
	uint32_t p2p_keepalive_s; /* libp2p ping interval, 0 = P2P_KEEPALIVE_MS */
	uint32_t p2p_keepalive_timeout_s; /* unanswered ping: connection dead, 0 = interval */
	const char *punch_pin_root; /* punch sk_lookup pins (punch_eng.h), NULL = loader default */
	bool keepalive; /* SO_KEEPALIVE on both sockets of a TCP flow */
	bool no_pin; /* leave shard threads unpinned (shared benchmark machines) */
	bool help;
	bool version;
};

/* args_defaults - fill @cfg with the documented defaults. */
void args_defaults(struct engine_cfg *cfg);

/*
 * args_parse - parse argv[1..argc) into @cfg (defaults applied first). Returns 0, or -EINVAL
 * with a one-line reason in @err (ARGS_ERR_MAX bytes). @cfg keeps pointers into @argv.
 */
int args_parse(int argc, char **argv, struct engine_cfg *cfg, char *err);

/* args_usage - the --help text. */
const char *args_usage(void);

#endif
