/* SPDX-License-Identifier: MIT */
/*
 * Per-source token bucket for the user-space STUN responder, with the same semantics as the
 * XDP reflector's natx_stun_rl map (GCRA form, see bpf/natx_bpf_common.h): a source starts
 * with a full bucket of @burst requests refilled at @rate per second; one request costs one
 * token. Sources live in a fixed table (4-way set-associative, XXH3 of the address); a new
 * source evicts the idlest entry of its set, as the kernel's LRU map evicts the least recently
 * used one. Single-threaded: one table per responder thread.
 */
#ifndef NATX_STUN_RL_H
#define NATX_STUN_RL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct stun_rl_key {
	uint8_t family; /* STUN_FAMILY_IPV4 or STUN_FAMILY_IPV6 */
	uint8_t addr[16]; /* IPv4 in the first 4 bytes, the rest zero */
};

struct stun_rl_entry {
	struct stun_rl_key key;
	bool used;
	uint64_t tat_ns; /* theoretical arrival time */
};

struct stun_rl {
	uint64_t interval_ns; /* 1e9 / rate; 0 = unlimited */
	uint64_t tolerance_ns; /* (burst - 1) * interval */
	size_t nsets; /* power of two */
	struct stun_rl_entry *tab; /* nsets * 4 entries */
};

/*
 * stun_rl_init - @rate requests/s (0 = no limit), @burst (0 = rate), room for about @entries
 * sources (rounded up to a power of two, at least 4). Returns 0, -EINVAL or -ENOMEM.
 */
int stun_rl_init(struct stun_rl *rl, uint32_t rate, uint32_t burst, size_t entries);

/* stun_rl_cleanup - free the table; safe on a zeroed or cleaned-up limiter. */
void stun_rl_cleanup(struct stun_rl *rl);

/* stun_rl_allow - charge one request from @key at monotonic time @now_ns; true if allowed. */
bool stun_rl_allow(struct stun_rl *rl, const struct stun_rl_key *key, uint64_t now_ns);

#endif
