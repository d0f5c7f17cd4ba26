/* SPDX-License-Identifier: MIT */
/*
 * natx_steer: attach the SO_REUSEPORT steering program (bpf/steer_reuseport.bpf.c) to a group
 * of shard sockets: the sockets of one engine UDP forward, all with SO_REUSEPORT and bound to
 * the same address and port; fds[i] is shard i. The program sends each client to shard
 * flow_key_hash(key) % n, key and hash being the engine's (contract in natx_bpf_common.h).
 */
#ifndef NATX_BPF_STEER_H
#define NATX_BPF_STEER_H

#include <stdint.h>

#include "natx_bpf_common.h"

struct natx_steer;

/*
 * natx_steer_attach - load the program for forward @fwd_id with @n shards, put @fds into its socket array and
 * attach it to the group (SO_ATTACH_REUSEPORT_EBPF on fds[0]). *@out holds the program and
 * maps; free it with natx_steer_free() (the group keeps the program until its sockets close).
 * Returns 0 or -errno (-EINVAL for n == 0 or n > NATX_STEER_MAX_SHARDS).
 */
int natx_steer_attach(const int *fds, unsigned int n, uint32_t fwd_id, struct natx_steer **out);

/* natx_steer_free - release the loader's references; NULL is a no-op. */
void natx_steer_free(struct natx_steer *s);

/* natx_steer_counters - steered/fallback counters summed over CPUs. */
int natx_steer_counters(struct natx_steer *s, uint64_t out[NATX_STEER_CNT_MAX]);

/* natx_steer_shard - the shard of @key among @n, as the program computes it (n > 0). */
unsigned int natx_steer_shard(const struct natx_flow_key *key, unsigned int n);

#endif
