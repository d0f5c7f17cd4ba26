// SPDX-License-Identifier: (GPL-2.0-only OR MIT)
/*
 * natx_steer_reuseport - SO_REUSEPORT shard selection for one engine UDP forward (forward id
 * cfg_fwd_id, cfg_nshards shard sockets). Every datagram goes to socket
 * natx_flow_hash(key) % cfg_nshards, key being the engine's struct flow_key for the client
 * (contract in natx_bpf_common.h), so the shard that owns a flow in the engine's flow table
 * receives all of its packets, whatever the kernel's own reuseport hash would have picked. Non-UDP traffic or an empty slot falls back to the
 * kernel's choice and is counted.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/stddef.h>
#include <linux/udp.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#include "flow_hash.h"
#include "natx_bpf_common.h"

char LICENSE[] SEC("license") = "Dual MIT/GPL";

const volatile __u32 cfg_nshards = 1;
const volatile __u32 cfg_fwd_id = 0;

struct {
	__uint(type, BPF_MAP_TYPE_REUSEPORT_SOCKARRAY);
	__uint(max_entries, NATX_STEER_MAX_SHARDS);
	__type(key, __u32);
	__type(value, __u64);
} natx_steer_socks SEC(".maps");

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
	struct udphdr *uh = md->data; /* UDP lookup: data starts at the UDP header */
	__u32 shard;

	if (md->ip_protocol != IPPROTO_UDP || (void *)(uh + 1) > md->data_end || !cfg_nshards) {
		return steer_count(NATX_STEER_CNT_FALLBACK, SK_PASS);
	}
	key.fwd_id = cfg_fwd_id;
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
	key.rport = uh->source;
	shard = (__u32)(natx_flow_hash(&key) % cfg_nshards);
	if (bpf_sk_select_reuseport(md, &natx_steer_socks, &shard, 0)) {
		return steer_count(NATX_STEER_CNT_FALLBACK, SK_PASS);
	}
	return steer_count(NATX_STEER_CNT_STEERED, SK_PASS);
}
