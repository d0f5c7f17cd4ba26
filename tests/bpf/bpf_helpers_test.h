/* SPDX-License-Identifier: MIT */
/*
 * Test helpers for the XDP reflector: frame builder, RFC 1071 checksums computed
 * independently of the BPF code, skeleton loading that skips without privilege.
 */
#ifndef NATX_TEST_BPF_HELPERS_H
#define NATX_TEST_BPF_HELPERS_H

#include <stddef.h>
#include <stdint.h>

#include "loader.h"

struct t_frame {
	uint8_t b[2048];
	size_t len;
	int v6;
	size_t l4; /* offset of the UDP header */
	size_t pay; /* offset of the UDP payload */
};

/* t_frame_build - Ethernet + IPv4/IPv6 + UDP frame carrying @pay, all checksums valid. */
void t_frame_build(struct t_frame *f, int v6, const uint8_t *pay, size_t plen, uint16_t sport,
		   uint16_t dport);

/* t_frame_fix - recompute the IPv4 header checksum and the UDP checksum after a mutation. */
void t_frame_fix(struct t_frame *f);

/* t_csum - RFC 1071 one's-complement sum of big-endian 16-bit words, not inverted. */
uint32_t t_csum_add(uint32_t s, const uint8_t *p, size_t len);
uint16_t t_csum_fold(uint32_t s);

/* t_udp_csum_ok - the UDP checksum of the frame verifies (pseudo-header included). */
int t_udp_csum_ok(const struct t_frame *f);

/* t_skel_load_or_skip - open, configure with @cfg, load; cr_skip_test() without CAP_BPF. */
struct stun_reflect_bpf *t_skel_load_or_skip(const struct natx_bpf_cfg *cfg);

/* t_counters - sum the per-CPU counters of a loaded skeleton. */
void t_counters(struct stun_reflect_bpf *skel, uint64_t out[NATX_STUN_CNT_MAX]);

/* t_run - BPF_PROG_TEST_RUN on @in; output frame to @out. Returns the XDP verdict. */
int t_run(struct stun_reflect_bpf *skel, const struct t_frame *in, struct t_frame *out);

#endif
