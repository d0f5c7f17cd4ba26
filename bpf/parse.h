/* SPDX-License-Identifier: MIT */
/*
 * Checksum and byte helpers for natx XDP programs. static __always_inline only; every packet
 * access in the callers is preceded by an "if (p + n > end)" check against data_end.
 */
#ifndef NATX_BPF_PARSE_H
#define NATX_BPF_PARSE_H

#include <linux/types.h>

/*
 * csum_fold - fold a 64-bit one's-complement accumulator to 16 bits (not inverted). Sums of
 * words loaded in host order give the right checksum when stored back in host order
 * (RFC 1071 §2(B), byte-order independence).
 */
static __always_inline __u16 csum_fold(__u64 s)
{
	s = (s & 0xffffffff) + (s >> 32);
	s = (s & 0xffffffff) + (s >> 32);
	s = (s & 0xffff) + (s >> 16);
	s = (s & 0xffff) + (s >> 16);
	return (__u16)s;
}

/* csum_words - add @n 32-bit words at @w (stack memory) to the accumulator @s. */
static __always_inline __u64 csum_words(__u64 s, const __u32 *w, int n)
{
	for (int i = 0; i < n; i++) {
		s += w[i];
	}
	return s;
}

/* ip_is_bad_src4 - source addresses a reflector must never answer (zero, multicast, broadcast). */
static __always_inline int ip4_is_bad_unicast(__be32 a)
{
	__u32 h = __builtin_bswap32(a);

	return h == 0 || (h & 0xf0000000) == 0xe0000000 || h == 0xffffffff;
}

#endif
