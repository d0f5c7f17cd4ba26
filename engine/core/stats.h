/* SPDX-License-Identifier: MIT */
/*
 * Per-shard counters. Each counter has exactly one writer (its shard) which updates it with
 * stat_add(); readers on other threads use stat_get(). Both are relaxed atomics: no locks,
 * no contended read-modify-write on the hot path, and no torn 64-bit reads.
 */
#ifndef NATX_ENGINE_STATS_H
#define NATX_ENGINE_STATS_H

#include <stdint.h>

struct shard_stats {
	uint64_t flows_open;
	uint64_t flows_total;
	uint64_t bytes_in; /* bytes read from any socket */
	uint64_t bytes_out; /* bytes written to any socket */
	uint64_t packets_in; /* recv completions / datagrams read */
	uint64_t packets_out; /* send completions / datagrams sent */
	uint64_t drops; /* datagrams dropped, flows refused for lack of room */
	uint64_t bufring_exhausted; /* recvs ended with -ENOBUFS */
	uint64_t conn_refused; /* upstream refused, unreachable or timed out */
} __attribute__((aligned(64)));

/* Per shard, per forward: what forward.list reports. */
struct fwd_stats {
	uint64_t flows_open;
	uint64_t flows_total;
	uint64_t bytes;
} __attribute__((aligned(64)));

/* stat_add - single-writer increment (plain load + relaxed store). */
static inline void stat_add(uint64_t *p, uint64_t n)
{
	__atomic_store_n(p, __atomic_load_n(p, __ATOMIC_RELAXED) + n, __ATOMIC_RELAXED);
}

/* stat_sub - single-writer decrement. */
static inline void stat_sub(uint64_t *p, uint64_t n)
{
	__atomic_store_n(p, __atomic_load_n(p, __ATOMIC_RELAXED) - n, __ATOMIC_RELAXED);
}

static inline uint64_t stat_get(const uint64_t *p)
{
	return __atomic_load_n(p, __ATOMIC_RELAXED);
}

#endif
