/* SPDX-License-Identifier: MIT */
/*
 * The one header shared by natx's BPF programs and their user-space loader (style.md §14
 * rule 10): map names, pin paths, counter indices and map key/value layouts. Fixed-width
 * kernel types only (__u8 .. __u64, __be16, __be32); the user side checks the sizes with
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
#define NATX_BPF_PIN_PUNCH_RL "natx_punch_rl" /* punch-probe buckets, per interface */
/* Punch steering state is per network namespace: NATX_BPF_PIN_ROOT/punch/ */
#define NATX_BPF_PIN_PUNCH_DIR "punch"
#define NATX_BPF_PIN_PUNCH_LINK "link" /* bpf_link of the sk_lookup program */
#define NATX_BPF_PIN_PUNCH_FLOWS "natx_punch_flows" /* shared by XDP (learns) and sk_lookup */
#define NATX_BPF_PIN_PUNCH_SOCKS "natx_punch_socks"
#define NATX_BPF_PIN_PUNCH_CNT "natx_punch_cnt"

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
	NATX_STUN_CNT_PUNCH_PASSED = 4, /* natx punch probe within budget, passed up */
	NATX_STUN_CNT_PUNCH_RATE_LIMITED = 5, /* punch-magic datagram over budget, dropped */
	NATX_STUN_CNT_MAX = 6,
};
/* MALFORMED also counts punch-magic datagrams (below) that are not a valid probe. */

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

/*
 * natx punch probe: the UDP payload natx engines send to each other while hole punching
 * (DCUtR-coordinated, one punch session per peer pair, session id chosen by natxd), sent to
 * and from the engine's punch port(s). Byte layout, all multi-byte fields network order:
 *   offset 0  magic    4  0x0E 'N' 'X' 'P' (0x0E4E5850). First byte 0x0E lies in 4..15,
 *                         unassigned by RFC 7983/9443, so it never looks like STUN, DTLS,
 *                         TURN ChannelData, QUIC or RTP on a shared port.
 *   offset 4  version  1  1
 *   offset 5  type     1  1 = PROBE, 2 = PROBE_ACK
 *   offset 6  flags    2  0; receivers ignore them
 *   offset 8  session  8  opaque punch session id (the steering key)
 *   offset 16 seq      4  probe sequence number
 *   offset 20 auth     0..108 bytes, engine-defined (e.g. a MAC under the session key); the
 *                         XDP program neither needs nor checks it
 * Total 20..NATX_PUNCH_MAX_LEN bytes. XDP on the configured punch ports: every datagram that
 * starts with the magic is charged to its source address's punch bucket (natx_punch_rl, same
 * GCRA as STUN, own rate); over budget it is dropped (PUNCH_RATE_LIMITED). Within budget a
 * valid probe (version, type, length) is passed up (PUNCH_PASSED) and its flow learnt for
 * steering (natx_punch_flows); an invalid one is passed up as MALFORMED. Datagrams without the
 * magic (the punched flow's own traffic) pass untouched, counted PASSED, never charged.
 */
#define NATX_PUNCH_MAGIC 0x0E4E5850u
#define NATX_PUNCH_VERSION 1
#define NATX_PUNCH_TYPE_PROBE 1
#define NATX_PUNCH_TYPE_ACK 2
#define NATX_PUNCH_HDR_LEN 20
#define NATX_PUNCH_MAX_LEN 128
#define NATX_PUNCH_SID_LEN 8

struct natx_punch_hdr {
	__be32 magic;
	__u8 version;
	__u8 type;
	__be16 flags;
	__u8 session[NATX_PUNCH_SID_LEN];
	__be32 seq;
};

/* Punch session id as a map key (natx_punch_socks): the 8 wire bytes. */
struct natx_punch_sid {
	__u8 b[NATX_PUNCH_SID_LEN];
};

#ifndef NATX_PUNCH_MAX_FLOWS
#define NATX_PUNCH_MAX_FLOWS 65536 /* natx_punch_flows entries (LRU) */
#endif
#ifndef NATX_PUNCH_MAX_SESSIONS
#define NATX_PUNCH_MAX_SESSIONS 16384 /* natx_punch_socks entries */
#endif

/*
 * natx_punch_flows key: one UDP flow as the receiving host sees it. XDP fills it from each
 * valid probe; user space may add flows it knows (natx_punch_steer_flow_add). The sk_lookup
 * program builds the same key from the socket lookup. Local address deliberately absent: the
 * session sockets are bound to the punch port on every address.
 */
struct natx_punch_flow_key {
	__u32 family; /* NATX_RL_FAMILY_V4 or NATX_RL_FAMILY_V6 */
	__be16 rport; /* peer's UDP port, network order */
	__u16 lport; /* local punch port, host order */
	__be32 raddr[4]; /* peer address; IPv4 in raddr[0], rest zero */
};

struct natx_punch_flow_val {
	struct natx_punch_sid sid;
	__u64 seen_ns; /* CLOCK_MONOTONIC of the last probe (0: added by user space) */
};

/* Punch steering counters (map natx_punch_cnt, PERCPU_ARRAY), UDP lookups on punch ports. */
enum natx_punch_counter {
	NATX_PUNCH_CNT_STEERED = 0, /* delivered to the session's socket */
	NATX_PUNCH_CNT_NO_FLOW = 1, /* flow not known: normal lookup */
	NATX_PUNCH_CNT_NO_SOCKET = 2, /* flow known, session has no socket: normal lookup */
	NATX_PUNCH_CNT_ASSIGN_FAILED = 3, /* bpf_sk_assign refused it: normal lookup */
	NATX_PUNCH_CNT_MAX = 4,
};

/*
 * Steering (bpf/steer_reuseport.bpf.c). The engine (engine/core/engine.c) gives every forward
 * (TCP and UDP) one SO_REUSEPORT socket per shard and keys its per-shard flow table with struct flow_key
 * (engine/core/flowtab.h) hashed by flow_key_hash(): h = XXH3_64bits(&key, 24) (libxxhash,
 * seed 0, default secret), 0 replaced by 1. The steering program builds the same 24 bytes
 * from each datagram and delivers it to socket h % nshards, so shard i of a forward receives
 * exactly the flows the engine can compute as its own. The key, byte for byte:
 *   offset 0  fwd_id  4 bytes, host order: the engine's forward id (one reuseport group each)
 *   offset 4  family  2 bytes, host order: AF_INET (2) or AF_INET6 (10)
 *   offset 6  rport   2 bytes, the client's TCP/UDP port as on the wire (network order)
 *   offset 8  raddr  16 bytes, the client's address as on the wire; IPv4 in the first 4,
 *                     the rest zero
 * tests/bpf/test_steer.c checks this against the engine's own flow_key_from_sockaddr() and
 * flow_key_hash(). Change both or neither.
 */
#define NATX_FLOW_FAMILY_V4 2 /* AF_INET on Linux */
#define NATX_FLOW_FAMILY_V6 10 /* AF_INET6 on Linux */

struct natx_flow_key {
	__u32 fwd_id;
	__u16 family;
	__be16 rport;
	__u8 raddr[16];
};

/* Steering counters (map natx_steer_cnt, PERCPU_ARRAY). */
enum natx_steer_counter {
	NATX_STEER_CNT_STEERED = 0, /* delivered to the shard the hash chose */
	NATX_STEER_CNT_FALLBACK = 1, /* shard slot empty, unknown group, not TCP/UDP: kernel's */
	NATX_STEER_CNT_MAX = 2,
};

/*
 * One program serves every reuseport group of an engine (TCP listeners and UDP sockets alike:
 * for TCP it runs on each SYN, for UDP on each datagram). Map natx_steer_groups (HASH) maps
 * the socket cookie (SO_COOKIE) of every socket of a group to the group's entry; map
 * natx_steer_socks (REUSEPORT_SOCKARRAY) holds the group's sockets at base .. base + n - 1 in
 * shard order. The flow key's fwd_id is the entry's; with NATX_STEER_F_ADDR_ONLY the client
 * port is left 0 in the key (all traffic of one source address to one shard: the engine's
 * STUN responder keeps exact per-source rate limits that way).
 */
#define NATX_STEER_F_ADDR_ONLY 1u

struct natx_steer_group {
	__u32 fwd_id;
	__u32 base; /* first index in natx_steer_socks */
	__u32 n; /* sockets (shards) in the group, 1..NATX_STEER_MAX_SHARDS */
	__u32 flags; /* NATX_STEER_F_* */
};

#ifndef NATX_STEER_MAX_SHARDS
#define NATX_STEER_MAX_SHARDS 64
#endif

#endif
