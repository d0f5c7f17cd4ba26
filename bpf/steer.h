/* SPDX-License-Identifier: MIT */
/*
 * natx_steer: the SO_REUSEPORT steering program (bpf/steer_reuseport.bpf.c), loaded once per
 * engine and attached to each of its reuseport groups (a forward's per-shard TCP listeners or
 * UDP sockets, all with SO_REUSEPORT and bound to the same address and port; fds[i] is shard
 * i). The program sends each client to shard flow_key_hash(key) % n, key and hash being the
 * engine's (contract in natx_bpf_common.h). Not thread-safe: one caller (the engine's control
 * thread) at a time.
 */
#ifndef NATX_BPF_STEER_H
#define NATX_BPF_STEER_H

#include <stdint.h>

#include "natx_bpf_common.h"

struct natx_steer;

/*
 * natx_steer_open - load the program with room for @max_groups groups of up to @max_shards
 * sockets each (sockarray of max_groups * max_shards slots). Returns 0 with *@out set, or
 * -errno (-EINVAL for a zero size or max_shards > NATX_STEER_MAX_SHARDS; -EPERM without
 * CAP_BPF).
 */
int natx_steer_open(unsigned int max_groups, unsigned int max_shards, struct natx_steer **out);

/*
 * natx_steer_group_set - make @fds[0..n) group @group (< max_groups, n <= max_shards) for
 * forward id @fwd_id with NATX_STEER_F_* @flags: sockets into the sockarray in shard order,
 * their cookies into the group map, then SO_ATTACH_REUSEPORT_EBPF on fds[0]. A group index in
 * use is cleared first. On failure the group is left cleared. Returns 0 or -errno.
 */
int natx_steer_group_set(struct natx_steer *s, unsigned int group, const int *fds, unsigned int n,
			 uint32_t fwd_id, uint32_t flags);

/*
 * natx_steer_group_clear - forget group @group (its cookies and sockarray slots). The sockets
 * keep the program attached until they close; an unknown cookie makes it fall back to the
 * kernel's choice. No-op for an unused index.
 */
void natx_steer_group_clear(struct natx_steer *s, unsigned int group);

/* natx_steer_groups_used - how many groups are set. */
unsigned int natx_steer_groups_used(const struct natx_steer *s);

/* natx_steer_prog_id - the kernel's id of the loaded program (0 if unknown). */
uint32_t natx_steer_prog_id(const struct natx_steer *s);

/*
 * natx_steer_attach - one-group convenience: natx_steer_open(1, n) and group 0 = @fds for
 * @fwd_id. Returns 0 or -errno (-EINVAL for n == 0 or n > NATX_STEER_MAX_SHARDS).
 */
int natx_steer_attach(const int *fds, unsigned int n, uint32_t fwd_id, struct natx_steer **out);

/* natx_steer_free - release the loader's references; NULL is a no-op. Attached groups keep
 * the program until their sockets close. */
void natx_steer_free(struct natx_steer *s);

/* natx_steer_counters - steered/fallback counters summed over CPUs. */
int natx_steer_counters(struct natx_steer *s, uint64_t out[NATX_STEER_CNT_MAX]);

/* natx_steer_shard - the shard of @key among @n, as the program computes it (n > 0). */
unsigned int natx_steer_shard(const struct natx_flow_key *key, unsigned int n);

#endif
