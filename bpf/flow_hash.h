/* SPDX-License-Identifier: MIT */
/*
 * natx_flow_hash - the engine's flow_key_hash() for one struct natx_flow_key (24 bytes):
 * XXH3_64bits (xxHash 0.8, seed 0, default secret), 0 mapped to 1, written out for BPF,
 * where libxxhash cannot run. For 17..32-byte
 * inputs XXH3 is: acc = len * PRIME64_1 + mix16B(in, secret) + mix16B(in + len - 16,
 * secret + 16); return avalanche(acc). tests/bpf/test_steer.c checks it against libxxhash.
 * Only the 32 secret bytes this length uses are included.
 */
#ifndef NATX_BPF_FLOW_HASH_H
#define NATX_BPF_FLOW_HASH_H

#include <linux/types.h>

#include "natx_bpf_common.h"

#ifndef __always_inline /* user space (tests): BPF gets it from bpf_helpers.h */
#define __always_inline inline __attribute__((always_inline))
#endif

#define XXH3_PRIME64_1 0x9E3779B185EBCA87ULL

/* First 32 bytes of XXH3's default secret (kSecret), as little-endian 64-bit words. */
#define XXH3_SECRET_W0 0xbe4ba423396cfeb8ULL
#define XXH3_SECRET_W1 0x1cad21f72c81017cULL
#define XXH3_SECRET_W2 0xdb979083e96dd4deULL
#define XXH3_SECRET_W3 0x1f67b3b7a4a44072ULL

/* flow_mul128_fold64 - low ^ high half of the 128-bit product, in 32-bit pieces (no __int128). */
static __always_inline __u64 flow_mul128_fold64(__u64 a, __u64 b)
{
	__u64 a_lo = (__u32)a, a_hi = a >> 32, b_lo = (__u32)b, b_hi = b >> 32;
	__u64 lo_lo = a_lo * b_lo, hi_lo = a_hi * b_lo, lo_hi = a_lo * b_hi, hi_hi = a_hi * b_hi;
	__u64 cross = (lo_lo >> 32) + (hi_lo & 0xffffffff) + lo_hi;
	__u64 upper = (hi_lo >> 32) + (cross >> 32) + hi_hi;
	__u64 lower = (cross << 32) | (lo_lo & 0xffffffff);

	return lower ^ upper;
}

/* flow_read64 - the 8 key bytes at @off as XXH_readLE64 reads them. */
static __always_inline __u64 flow_read64(const struct natx_flow_key *k, int off)
{
	__u64 v;

	__builtin_memcpy(&v, (const __u8 *)k + off, 8);
	return v; /* little-endian host: the same value XXH_readLE64 gives */
}

/* natx_flow_hash - see the header comment: XXH3_64bits of the 24-byte key, 0 -> 1. */
static __always_inline __u64 natx_flow_hash(const struct natx_flow_key *k)
{
	__u64 acc = sizeof(*k) * XXH3_PRIME64_1;

	_Static_assert(sizeof(struct natx_flow_key) == 24, "flow key is 24 bytes");
	acc += flow_mul128_fold64(flow_read64(k, 0) ^ XXH3_SECRET_W0,
				  flow_read64(k, 8) ^ XXH3_SECRET_W1);
	acc += flow_mul128_fold64(flow_read64(k, 8) ^ XXH3_SECRET_W2,
				  flow_read64(k, 16) ^ XXH3_SECRET_W3);
	acc ^= acc >> 37;
	acc *= 0x165667919E3779F9ULL;
	acc ^= acc >> 32;
	return acc ? acc : 1; /* as flow_key_hash(): 0 marks an empty flow-table slot */
}

#endif
