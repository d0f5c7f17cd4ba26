/* SPDX-License-Identifier: MIT */
/*
 * The engine's user-space STUN Binding responder: the fallback natxd asks for (ctl
 * "stun.set", or --stun-listen at start) when the XDP reflector is not attached. One
 * SO_REUSEPORT UDP socket per shard on the STUN port (steering group STEER_GROUP_STUN, keyed
 * on the client address only, so with BPF steering one source always meets the same shard and
 * its rate limit is exact; with the kernel hash a source spreading over ports can meet every
 * shard's bucket). Each shard receives with a multishot recvmsg from its UDP buffer ring,
 * decides with the sans-IO stun_server_respond() (engine/stun: same policy, bytes and counters
 * as natx-stund and the XDP reflector) and sends the answer with an io_uring sendmsg from one
 * of 1024 per-shard slots, from the address the request was sent to (IP_PKTINFO /
 * IPV6_PKTINFO), so a wildcard socket answers correctly on a host with several addresses.
 */
#ifndef NATX_ENGINE_STUN_ENG_H
#define NATX_ENGINE_STUN_ENG_H

#include <liburing.h>

#include <cjson/cJSON.h>

#include "engine.h"

/*
 * stun_eng_open - control thread: bind @listen ("IPv4:PORT" / "[IPv6]:PORT"; port 0 picks
 * one; an IPv6 wildcard also takes IPv4) once per shard, attach steering, and (when the shards
 * run) have every shard answer before returning. Before the shards start (--stun-listen) they
 * pick it up themselves. A running responder with the same settings is kept (0); otherwise it
 * is stopped first. Returns 0, or -errno with @err set (-EINVAL bad address, -EADDRINUSE when
 * anything holds the port).
 */
int stun_eng_open(struct engine *eng, const char *listen, uint32_t rate, uint32_t burst, char *err,
		  size_t errlen);

/* stun_eng_close - control thread: stop answering on every shard, close the sockets, free. */
void stun_eng_close(struct engine *eng);

/* stun_eng_shard_start - shard thread, after setup: answer if a responder is open. */
void stun_eng_shard_start(struct shard *sh);

/* stun_eng_handle_cqe - a UD_STUN completion: dir 0 receive, 1 send of slot @slot, 2 control
 * message (bid 1 start, 0 stop). */
void stun_eng_handle_cqe(struct shard *sh, struct io_uring_cqe *cqe);

/* stun_eng_shard_tick - re-arm a receive that ended (buffers ran out, error). */
void stun_eng_shard_tick(struct shard *sh);

/* stun_eng_json - "stun": {"listen","rate","burst","counters":{..},"shards":[{..}]} or null. */
void stun_eng_json(struct engine *eng, cJSON *o);

#endif
