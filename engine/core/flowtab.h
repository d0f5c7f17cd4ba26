/* SPDX-License-Identifier: MIT */
/*
 * A shard's flow table: open addressing with linear probing and backward-shift deletion,
 * keyed by struct flow_key hashed with XXH3 (DESIGN.md: the steering programs and the
 * engine agree on the hash). Values are flow slot indexes. One table per shard, no locks.
 */
#ifndef NATX_ENGINE_FLOWTAB_H
#define NATX_ENGINE_FLOWTAB_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

/*
 * The client side of a flow: which forward it came in on and from where. The BPF steering
 * program builds the same 24 bytes and the same XXH3 hash (docs/bpf.md): keep them in sync.
 */
struct flow_key {
	uint32_t fwd_id;
	uint16_t family; /* AF_INET / AF_INET6 */
	uint16_t port; /* network order */
	uint8_t addr[16];
};

/* Contract with bpf/natx_bpf_common.h (SO_REUSEPORT steering): 24 bytes, no padding. */
_Static_assert(sizeof(struct flow_key) == 24, "struct flow_key is a shared wire layout");

struct flowtab_entry {
	uint64_t hash; /* 0 = empty */
	struct flow_key key;
	uint32_t slot;
};

struct flowtab {
	struct flowtab_entry *e;
	uint32_t cap; /* power of two */
	uint32_t n;
};

/* flow_key_from_sockaddr - build a zero-padded key (hash input) from @ss. */
void flow_key_from_sockaddr(struct flow_key *k, uint32_t fwd_id, const struct sockaddr *sa);

/* flow_key_hash - XXH3-64 of the key bytes, never 0. */
uint64_t flow_key_hash(const struct flow_key *k);

/* flowtab_init - empty table with room for @cap_hint entries. Returns 0 or -ENOMEM. */
int flowtab_init(struct flowtab *t, uint32_t cap_hint);

/* flowtab_cleanup - free; safe on a zeroed table. */
void flowtab_cleanup(struct flowtab *t);

/* flowtab_insert - add @k -> @slot. -EEXIST if present, -ENOMEM if growing failed. */
int flowtab_insert(struct flowtab *t, const struct flow_key *k, uint32_t slot);

/* flowtab_lookup - slot of @k into *slot. Returns true when found. */
bool flowtab_lookup(const struct flowtab *t, const struct flow_key *k, uint32_t *slot);

/* flowtab_remove - delete @k. Returns 0 or -ENOENT. */
int flowtab_remove(struct flowtab *t, const struct flow_key *k);

#endif
