// SPDX-License-Identifier: (GPL-2.0-only OR MIT)
/*
 * natx_stun_count - bench receiver: on the generator's veth, counts STUN Binding success
 * responses from UDP port cfg_port whose transaction id starts with cfg_tag (this run's
 * requests) and drops them; every other frame passes (ARP, ...). Being an XDP program it also
 * lets veth deliver the responder's XDP_TX frames (docs/bpf.md, "veth"). Counter index 0:
 * answers; 1: other STUN-looking frames from cfg_port (wrong type or tag, still dropped).
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/udp.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

char LICENSE[] SEC("license") = "Dual MIT/GPL";

const volatile __u16 cfg_port = 3478; /* host order */
const volatile __u32 cfg_tag = 0; /* first 4 transaction-id bytes, as loaded from the wire */

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 2);
	__type(key, __u32);
	__type(value, __u64);
} natx_bench_cnt SEC(".maps");

/* bump - add one to per-CPU counter @idx. */
static __always_inline void bump(__u32 idx)
{
	__u64 *c = bpf_map_lookup_elem(&natx_bench_cnt, &idx);

	if (c) {
		*c += 1;
	}
}

SEC("xdp")
int natx_stun_count(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct iphdr *ip = (void *)(eth + 1);
	struct udphdr *udp = (void *)(ip + 1);
	__u32 *stun = (void *)(udp + 1);

	if ((void *)(stun + 3) > end || eth->h_proto != bpf_htons(ETH_P_IP) || ip->ihl != 5 ||
	    ip->protocol != IPPROTO_UDP || udp->source != bpf_htons(cfg_port)) {
		return XDP_PASS;
	}
	if ((bpf_ntohl(stun[0]) >> 16) == 0x0101 && stun[1] == bpf_htonl(0x2112A442) &&
	    stun[2] == cfg_tag) {
		bump(0);
	} else {
		bump(1);
	}
	return XDP_DROP;
}
