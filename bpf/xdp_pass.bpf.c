// SPDX-License-Identifier: (GPL-2.0-only OR MIT)
/*
 * natx_xdp_pass - passes every frame. Attached to the peer end of a veth whose other end runs
 * the reflector: veth only delivers XDP_TX frames to a peer that has an XDP program (native
 * mode), see docs/bpf.md. Used by the namespace lab and the bench.
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

char LICENSE[] SEC("license") = "Dual MIT/GPL";

SEC("xdp")
int natx_xdp_pass(struct xdp_md *ctx)
{
	return XDP_PASS;
}
