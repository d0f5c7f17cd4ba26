// SPDX-License-Identifier: (GPL-2.0-only OR MIT)
/*
 * natx_punch_steer - sk_lookup program (attached to a network namespace): delivers the UDP
 * datagrams of a punch session's flows to the engine socket that owns the session.
 *
 * A flow (peer address and port, local punch port) maps to a punch session id in
 * natx_punch_flows: the XDP reflector learns the mapping from each valid punch probe before
 * the probe itself reaches the socket lookup (stun_reflect.bpf.c), and user space may add
 * flows it knows in advance. The session id maps to a socket in the SOCKHASH
 * natx_punch_socks (natx_punch_steer_register()). For a UDP lookup on a punch port with both
 * entries present, the socket is assigned with BPF_SK_LOOKUP_F_NO_REUSEPORT (the session's
 * socket, not a reuseport sibling). Everything else, and every failure, falls back to the
 * kernel's normal lookup (SK_PASS without assignment). Formats and counters:
 * natx_bpf_common.h.
 */
#include <linux/bpf.h>
#include <linux/in.h>
#include <bpf/bpf_helpers.h>

#include "natx_bpf_common.h"

char LICENSE[] SEC("license") = "Dual MIT/GPL";

/* Local UDP ports steered (host order, inclusive), set through the skeleton before load. */
const volatile __u16 cfg_port_lo = 0;
const volatile __u16 cfg_port_hi = 0;

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, NATX_PUNCH_MAX_FLOWS);
	__type(key, struct natx_punch_flow_key);
	__type(value, struct natx_punch_flow_val);
} natx_punch_flows SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_SOCKHASH);
	__uint(max_entries, NATX_PUNCH_MAX_SESSIONS);
	__type(key, struct natx_punch_sid);
	__type(value, __u64);
} natx_punch_socks SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, NATX_PUNCH_CNT_MAX);
	__type(key, __u32);
	__type(value, __u64);
} natx_punch_cnt SEC(".maps");

/* count - bump per-CPU counter @idx; always SK_PASS (assignment, if any, already made). */
static __always_inline int count(__u32 idx)
{
	__u64 *c = bpf_map_lookup_elem(&natx_punch_cnt, &idx);

	if (c) {
		*c += 1;
	}
	return SK_PASS;
}

SEC("sk_lookup")
int natx_punch_steer(struct bpf_sk_lookup *ctx)
{
	struct natx_punch_flow_key key = {};
	struct natx_punch_flow_val *v;
	struct bpf_sock *sk;
	__u32 lport = ctx->local_port;
	long err;

	if (ctx->protocol != IPPROTO_UDP || lport < cfg_port_lo || lport > cfg_port_hi ||
	    !cfg_port_lo) {
		return SK_PASS; /* not ours, not counted */
	}
	if (ctx->family == NATX_FLOW_FAMILY_V4) {
		key.family = NATX_RL_FAMILY_V4;
		key.raddr[0] = ctx->remote_ip4;
	} else if (ctx->family == NATX_FLOW_FAMILY_V6) {
		key.family = NATX_RL_FAMILY_V6;
		key.raddr[0] = ctx->remote_ip6[0];
		key.raddr[1] = ctx->remote_ip6[1];
		key.raddr[2] = ctx->remote_ip6[2];
		key.raddr[3] = ctx->remote_ip6[3];
	} else {
		return SK_PASS;
	}
	key.rport = ctx->remote_port;
	key.lport = (__u16)lport;

	v = bpf_map_lookup_elem(&natx_punch_flows, &key);
	if (!v) {
		return count(NATX_PUNCH_CNT_NO_FLOW);
	}
	sk = bpf_map_lookup_elem(&natx_punch_socks, &v->sid);
	if (!sk) {
		return count(NATX_PUNCH_CNT_NO_SOCKET);
	}
	err = bpf_sk_assign(ctx, sk, BPF_SK_LOOKUP_F_NO_REUSEPORT);
	bpf_sk_release(sk);
	return count(err ? NATX_PUNCH_CNT_ASSIGN_FAILED : NATX_PUNCH_CNT_STEERED);
}
