/* SPDX-License-Identifier: MIT */
/*
 * The one header shared by natx's BPF programs and their user-space loader (style.md §14
 * rule 10): map names, pin paths, counter indices and map key/value layouts. Fixed-width
 * kernel types only (__u32, __u64, __be32); the user side checks the sizes with
 * _Static_assert (bpf/loader.c). Never mirror these definitions elsewhere: include this file.
 */
#ifndef NATX_BPF_COMMON_H
#define NATX_BPF_COMMON_H

#include <linux/types.h>

/* Pins live under NATX_BPF_PIN_ROOT/<ifname>/ (bpffs). */
#define NATX_BPF_PIN_ROOT "/sys/fs/bpf/natx"
#define NATX_BPF_PIN_LINK "link" /* bpf_link of the XDP reflector */
#define NATX_BPF_PIN_COUNTERS "natx_stun_cnt" /* = map name, so libbpf can reuse the pin */
#define NATX_BPF_PIN_RATELIMIT "natx_stun_rl"

/* Sizes; override with -D at build time (both sides must agree, hence macros here). */
#ifndef NATX_STUN_MAX_PORTS
#define NATX_STUN_MAX_PORTS 4 /* UDP ports the reflector answers on */
#endif
#ifndef NATX_RL_MAX_ENTRIES
#define NATX_RL_MAX_ENTRIES 65536 /* sources tracked by the rate limiter (LRU) */
#endif
/* Longest STUN message (header + attributes) the XDP program parses; longer ones pass up. */
#define NATX_STUN_XDP_MAX_MSG 512
/* Most attributes the XDP program walks; requests with more pass up. */
#define NATX_STUN_XDP_MAX_ATTRS 16

/*
 * Per-CPU counters of the reflector (map natx_stun_cnt, PERCPU_ARRAY, value __u64 per CPU).
 * Every packet the program sees increments exactly one of them:
 *   ANSWERED      a Binding success response was sent back with XDP_TX
 *   RATE_LIMITED  a valid Binding request over its source's budget, dropped (XDP_DROP)
 *   PASSED        not for the reflector (other protocol/port, fragment, IP options, other STUN
 *                 method, unknown comprehension-required attribute...), XDP_PASS untouched
 *   MALFORMED     on a STUN port, starts like STUN (two zero bits) but is truncated, has a wrong
 *                 cookie, a length that does not match the datagram, broken attribute framing
 *                 or a wrong FINGERPRINT; XDP_PASS untouched (user space discards it)
 * The user-space responder keeps the same four counters with the same meaning.
 */
enum natx_stun_counter {
	NATX_STUN_CNT_ANSWERED = 0,
	NATX_STUN_CNT_RATE_LIMITED = 1,
	NATX_STUN_CNT_PASSED = 2,
	NATX_STUN_CNT_MALFORMED = 3,
	NATX_STUN_CNT_MAX = 4,
};

/* Rate-limiter key family values (not AF_*: the BPF side has no socket headers). */
#define NATX_RL_FAMILY_V4 4
#define NATX_RL_FAMILY_V6 6

/* natx_stun_rl key: the full source address (IPv6: all 128 bits, no prefix grouping). */
struct natx_rl_key {
	__u32 family; /* NATX_RL_FAMILY_V4 or NATX_RL_FAMILY_V6 */
	__be32 addr[4]; /* IPv4 in addr[0], addr[1..3] zero */
};

/*
 * natx_stun_rl value: token bucket in GCRA form. tat_ns is the theoretical arrival time on
 * CLOCK_MONOTONIC (bpf_ktime_get_ns). With interval T = 1e9 / rate and burst B, a request at
 * time now is allowed when max(tat, now) - now <= (B - 1) * T, and then tat = max(tat, now) + T.
 * That is a bucket of B tokens refilled at rate per second, starting full.
 */
struct natx_rl_state {
	__u64 tat_ns;
};

#endif
