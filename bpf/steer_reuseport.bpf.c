// SPDX-License-Identifier: (GPL-2.0-only OR MIT)
/*
 * natx_steer_reuseport - SO_REUSEPORT shard selection for every reuseport group of one engine
 * (TCP listeners: runs on each SYN; UDP sockets: on each datagram). The group is found by the
 * cookie of the socket the kernel looked up (map natx_steer_groups, natx_bpf_common.h); the
 * client goes to socket base + natx_flow_hash(key) % n of natx_steer_socks, key being the
 * engine's struct flow_key for the client, so the shard the engine computes for a flow is the
 * one that receives it, whatever the kernel's own reuseport hash would have picked. Anything
 * else (unknown group, empty slot, not TCP/UDP) falls back to the kernel's choice, counted.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/stddef.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#include "flow_hash.h"
#include "natx_bpf_common.h"

char LICENSE[] SEC("license") = "Dual MIT/GPL";

struct {
	__uint(type, BPF_MAP_TYPE_REUSEPORT_SOCKARRAY);
	__uint(max_entries, NATX_STEER_MAX_SHARDS); /* resized by the loader before load */
	__type(key, __u32);
	__type(value, __u64);
} natx_steer_socks SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, NATX_STEER_MAX_SHARDS); /* resized by the loader before load */
	__type(key, __u64); /* socket cookie */
	__type(value, struct natx_steer_group);
} natx_steer_groups SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, NATX_STEER_CNT_MAX);
	__type(key, __u32);
	__type(value, __u64);
} natx_steer_cnt SEC(".maps");

/* steer_count - bump per-CPU steering counter @idx and return @verdict. */
static __always_inline int steer_count(__u32 idx, int verdict)
{
	__u64 *c = bpf_map_lookup_elem(&natx_steer_cnt, &idx);

	if (c) {
		*c += 1;
	}
	return verdict;
}

SEC("sk_reuseport")
int natx_steer_reuseport(struct sk_reuseport_md *md)
{
	struct natx_flow_key key = {};
	struct natx_steer_group *g;
	__be16 *sport = md->data; /* TCP and UDP: data starts at the header, source port first */
	struct bpf_sock *sk = md->sk;
	__u64 cookie;
	__u32 idx;

	if ((md->ip_protocol != IPPROTO_UDP && md->ip_protocol != IPPROTO_TCP) ||
	    (void *)(sport + 2) > md->data_end || !sk) {
		return steer_count(NATX_STEER_CNT_FALLBACK, SK_PASS);
	}
	cookie = bpf_get_socket_cookie(sk);
	g = bpf_map_lookup_elem(&natx_steer_groups, &cookie);
	if (!g || !g->n || g->n > NATX_STEER_MAX_SHARDS) {
		return steer_count(NATX_STEER_CNT_FALLBACK, SK_PASS);
	}
	key.fwd_id = g->fwd_id;
	if (md->eth_protocol == bpf_htons(ETH_P_IP)) {
		key.family = NATX_FLOW_FAMILY_V4;
		if (bpf_skb_load_bytes_relative(md, offsetof(struct iphdr, saddr), key.raddr, 4,
						BPF_HDR_START_NET)) {
			return steer_count(NATX_STEER_CNT_FALLBACK, SK_PASS);
		}
	} else if (md->eth_protocol == bpf_htons(ETH_P_IPV6)) {
		key.family = NATX_FLOW_FAMILY_V6;
		if (bpf_skb_load_bytes_relative(md, offsetof(struct ipv6hdr, saddr), key.raddr, 16,
						BPF_HDR_START_NET)) {
			return steer_count(NATX_STEER_CNT_FALLBACK, SK_PASS);
		}
	} else {
		return steer_count(NATX_STEER_CNT_FALLBACK, SK_PASS);
	}
	if (!(g->flags & NATX_STEER_F_ADDR_ONLY)) {
		key.rport = *sport;
	}
	idx = g->base + (__u32)(natx_flow_hash(&key) % g->n);
	if (bpf_sk_select_reuseport(md, &natx_steer_socks, &idx, 0)) {
		return steer_count(NATX_STEER_CNT_FALLBACK, SK_PASS);
	}
	return steer_count(NATX_STEER_CNT_STEERED, SK_PASS);
}
