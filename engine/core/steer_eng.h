/* SPDX-License-Identifier: MIT */
/*
 * Shard steering of the engine's SO_REUSEPORT groups (docs/engine.md "Steering"). With
 * "bpf" the engine loads bpf/steer_reuseport.bpf.c once and attaches it to every group it
 * opens, so the kernel hands each client to shard flow_key_hash(key) % nshards, the shard the
 * engine's own flow hash names; with "kernel" the kernel's reuseport hash picks. Group
 * indexes: a forward's slot (0 .. FWD_MAX - 1), STEER_GROUP_P2P, STEER_GROUP_STUN.
 * Control thread only.
 */
#ifndef NATX_ENGINE_STEER_ENG_H
#define NATX_ENGINE_STEER_ENG_H

#include <stdint.h>

#include <cjson/cJSON.h>

#include "engine.h"

enum { STEER_GROUP_P2P = FWD_MAX, STEER_GROUP_STUN = FWD_MAX + 1, STEER_GROUPS = FWD_MAX + 2 };

/* Group flag: key on the client address only (same value as NATX_STEER_F_ADDR_ONLY). */
#define STEER_ADDR_ONLY 1u

/*
 * steer_eng_start - apply eng->cfg->steer: "kernel" loads nothing; "auto" loads the program
 * and falls back to "kernel" (reason kept) when it cannot; "bpf" fails with -errno and @err
 * set when it cannot. Called once shards are known, before any group is opened.
 */
int steer_eng_start(struct engine *eng, char *err, size_t errlen);

/*
 * steer_eng_group_add - attach the program to group @group = @fds (shard order) keyed by
 * @fwd_id. No-op with kernel steering. A failure is logged and counted (attach_failed): the
 * group then keeps the kernel's hash, which is always a working choice.
 */
void steer_eng_group_add(struct engine *eng, unsigned int group, const int *fds, unsigned int n,
			 uint32_t fwd_id, uint32_t flags);

/* steer_eng_group_del - forget group @group (its sockets are closing). */
void steer_eng_group_del(struct engine *eng, unsigned int group);

/* steer_eng_mode - "bpf" or "kernel": what steers the groups opened from now on. */
const char *steer_eng_mode(const struct engine *eng);

/* steer_eng_json - {"mode","configured","reason","prog_id","groups","steered","fallback",
 * "attach_failed"} as "steering" into @o. */
void steer_eng_json(struct engine *eng, cJSON *o);

/* steer_eng_stop - release the program (groups still open keep it until they close). */
void steer_eng_stop(struct engine *eng);

#endif
