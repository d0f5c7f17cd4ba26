/* SPDX-License-Identifier: MIT */
/*
 * The engine's user-space STUN Binding responder (--stun-listen): the fallback natxd asks for
 * when the XDP reflector is not attached. One SO_REUSEPORT UDP socket per shard on the STUN
 * port (steering group STEER_GROUP_STUN, keyed on the client address only, so with BPF
 * steering one source always meets the same shard and its rate limit is exact); each shard
 * receives with a multishot recvmsg from its UDP buffer ring, decides with the sans-IO
 * stun_server_respond() (engine/stun: same policy, bytes and counters as natx-stund and the
 * XDP reflector) and sends the answer with an io_uring sendmsg from a per-shard slot.
 */
#ifndef NATX_ENGINE_STUN_ENG_H
#define NATX_ENGINE_STUN_ENG_H

#include <liburing.h>

#include <cjson/cJSON.h>

#include "engine.h"

/*
 * stun_eng_open - control thread, before the shards start: bind eng->cfg->stun_listen once per
 * shard (port 0 picks one; an IPv6 wildcard also takes IPv4) and attach steering. No-op
 * without --stun-listen. Returns 0, or -errno with @err set (-EADDRINUSE when anything holds
 * the port).
 */
int stun_eng_open(struct engine *eng, char *err, size_t errlen);

/* stun_eng_shard_start - shard thread, after setup: allocate its state and arm the receive.
 * Without memory the shard logs it and does not answer (counted nowhere else). */
void stun_eng_shard_start(struct shard *sh);

/* stun_eng_handle_cqe - a UD_STUN completion (dir 0 receive, 1 send of slot @slot). */
void stun_eng_handle_cqe(struct shard *sh, struct io_uring_cqe *cqe);

/* stun_eng_shard_tick - re-arm a receive that ended (buffers ran out, error). */
void stun_eng_shard_tick(struct shard *sh);

/* stun_eng_json - "stun": {"listen","rate","burst","counters":{..},"shards":[{..}]} or null. */
void stun_eng_json(struct engine *eng, cJSON *o);

/* stun_eng_close - control thread, after the shards stopped: close the sockets, free the
 * shards' state. */
void stun_eng_close(struct engine *eng);

#endif
