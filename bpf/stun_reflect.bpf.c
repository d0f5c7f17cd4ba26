// SPDX-License-Identifier: (GPL-2.0-only OR MIT)
/*
 * natx XDP STUN reflector: answers STUN Binding requests (RFC 8489) on the configured UDP
 * ports with a Binding success response built in the received frame and sent back out of the
 * same interface with XDP_TX. Policy and wire format: engine/stun/stun_wire.h; maps, counters
 * and pins: natx_bpf_common.h; design notes: docs/bpf.md.
 *
 * Scope decisions (each one passes the packet up untouched, counted PASSED):
 *  - Ethernet II only: VLAN-tagged frames are not parsed (the relay interface is untagged).
 *  - IPv4 without options (ihl == 5) and with a valid header checksum; IPv4 fragments.
 *  - IPv6 whose next header is UDP directly: extension headers (fragments included) pass.
 *  - Zero/multicast/broadcast source or destination addresses, source port 0.
 * The UDP checksum of the request is not verified here (the kernel would); FINGERPRINT, when
 * present, is verified. Requests over their source's rate budget are dropped (XDP_DROP): a
 * flood must not reach user space either.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/udp.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#include "natx_bpf_common.h"
#include "parse.h"
#include "stun_crc32_table.h"
#include "stun_wire.h"

char LICENSE[] SEC("license") = "Dual MIT/GPL";

/* Tunables, set through the skeleton before load (loader.c). Ports in host order, 0 = unused. */
const volatile __u16 cfg_ports[NATX_STUN_MAX_PORTS] = { 3478 };
const volatile __u64 cfg_rl_interval_ns = 0; /* 1e9 / rate; 0 disables the rate limit */
const volatile __u32 cfg_rl_burst = 1; /* bucket size in requests, >= 1 */

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, NATX_STUN_CNT_MAX);
	__type(key, __u32);
	__type(value, __u64);
} natx_stun_cnt SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, NATX_RL_MAX_ENTRIES);
	__type(key, struct natx_rl_key);
	__type(value, struct natx_rl_state);
} natx_stun_rl SEC(".maps");

/* What the parser learned from a request; everything the response needs after adjust_tail. */
struct stun_req {
	__u8 smac[ETH_ALEN];
	__u8 dmac[ETH_ALEN];
	__be32 saddr[4];
	__be32 daddr[4];
	__be16 sport;
	__be16 dport;
	__u32 txid[3]; /* raw wire bytes */
	__u32 fingerprint; /* request carried FINGERPRINT */
};

enum stun_verdict {
	STUN_ANSWER = 0,
	STUN_PASS,
	STUN_MALFORMED,
};

static __always_inline int count(__u32 idx, int action)
{
	__u64 *c = bpf_map_lookup_elem(&natx_stun_cnt, &idx);

	if (c) {
		*c += 1;
	}
	return action;
}

static __always_inline int port_is_stun(__be16 port)
{
	__u16 p = bpf_ntohs(port);

	if (!p) {
		return 0;
	}
	for (int i = 0; i < NATX_STUN_MAX_PORTS; i++) {
		if (cfg_ports[i] == p) {
			return 1;
		}
	}
	return 0;
}

static __always_inline __u32 crc32_byte(__u32 crc, __u8 b)
{
	return stun_crc32_table[(crc ^ b) & 0xff] ^ (crc >> 8);
}

/* Per-CPU scratch copy of one STUN message: attribute walk and CRC index it with masks. */
struct stun_scratch {
	__u8 b[NATX_STUN_XDP_MAX_MSG];
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct stun_scratch);
} natx_stun_scr SEC(".maps");

#define SCR_MASK (NATX_STUN_XDP_MAX_MSG - 1)

/*
 * stun_check - validate the STUN message of @mlen bytes at byte @off of the frame against the
 * policy in stun_wire.h. @off is a compile-time constant at each call site so the verifier
 * sees fixed packet offsets. The header is read in place; the whole message (at most
 * NATX_STUN_XDP_MAX_MSG bytes) is then copied to a per-CPU scratch buffer for the attribute
 * walk and the FINGERPRINT CRC. Fills rq->txid and rq->fingerprint.
 */
static __always_inline enum stun_verdict stun_check(struct xdp_md *ctx, __u32 off, __u32 mlen,
						    struct stun_req *rq)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	__u8 *h = data + off;
	__u32 a = STUN_HDR_LEN, fp_at = 0, fp_val = 0, unknown = 0, zero = 0;
	struct stun_scratch *scr;
	__u16 type, len;
	__u8 *m;

	if (mlen < 1 || (void *)(h + 1) > end) {
		return STUN_PASS;
	}
	if (h[0] & 0xc0) {
		return STUN_PASS; /* not STUN (RFC 7983 demultiplexing) */
	}
	if (mlen < STUN_HDR_LEN || (void *)(h + STUN_HDR_LEN) > end) {
		return STUN_MALFORMED;
	}
	type = (__u16)(h[0] << 8 | h[1]);
	len = (__u16)(h[2] << 8 | h[3]);
	if (*(__be32 *)(h + 4) != bpf_htonl(STUN_MAGIC_COOKIE)) {
		return STUN_MALFORMED;
	}
	if ((len & 3) || STUN_HDR_LEN + len != mlen) {
		return STUN_MALFORMED;
	}
	if (type != STUN_BINDING_REQUEST) {
		return STUN_PASS;
	}
	if (mlen > NATX_STUN_XDP_MAX_MSG) {
		return STUN_PASS; /* legal but long: user space handles it */
	}
	__builtin_memcpy(rq->txid, h + 8, STUN_TXID_LEN);
	if (mlen == STUN_HDR_LEN) {
		return STUN_ANSWER; /* no attributes: the common case needs no copy */
	}
	scr = bpf_map_lookup_elem(&natx_stun_scr, &zero);
	if (!scr ||
	    bpf_xdp_load_bytes(ctx, off, scr->b, mlen & (SCR_MASK | NATX_STUN_XDP_MAX_MSG))) {
		return STUN_MALFORMED;
	}
	m = scr->b;

	for (int i = 0; i < NATX_STUN_XDP_MAX_ATTRS; i++) {
		__u16 atype, alen;
		__u32 next;

		if (a >= mlen) {
			break;
		}
		if (fp_at) {
			return STUN_MALFORMED; /* FINGERPRINT must be last */
		}
		if (a + STUN_ATTR_HDR_LEN > mlen) {
			return STUN_MALFORMED;
		}
		atype = (__u16)(m[a & SCR_MASK] << 8 | m[(a + 1) & SCR_MASK]);
		alen = (__u16)(m[(a + 2) & SCR_MASK] << 8 | m[(a + 3) & SCR_MASK]);
		next = a + STUN_ATTR_HDR_LEN + ((alen + 3u) & ~3u);
		if (next > mlen) {
			return STUN_MALFORMED;
		}
		if (atype == STUN_ATTR_FINGERPRINT) {
			if (alen != 4) {
				return STUN_MALFORMED;
			}
			fp_at = a;
			fp_val = (__u32)m[(a + 4) & SCR_MASK] << 24 |
				 (__u32)m[(a + 5) & SCR_MASK] << 16 |
				 (__u32)m[(a + 6) & SCR_MASK] << 8 | m[(a + 7) & SCR_MASK];
		} else if (atype < STUN_ATTR_OPTIONAL_MIN) {
			unknown = 1;
		}
		a = next;
	}
	if (a < mlen) {
		return STUN_PASS; /* more attributes than XDP walks */
	}
	if (fp_at) {
		__u32 crc = 0xffffffff;

		for (__u32 i = 0; i < NATX_STUN_XDP_MAX_MSG; i++) {
			if (i >= fp_at) {
				break;
			}
			crc = crc32_byte(crc, m[i & SCR_MASK]);
		}
		if ((~crc ^ STUN_FINGERPRINT_XOR) != fp_val) {
			return STUN_MALFORMED;
		}
		rq->fingerprint = 1;
	}
	if (unknown) {
		return STUN_PASS; /* user space answers 420 Unknown Attribute */
	}
	return STUN_ANSWER;
}

/*
 * rl_allow - charge one request to the source's token bucket (GCRA, natx_bpf_common.h).
 * Concurrent CPUs update one source with compare-and-swap; after four lost races the request
 * counts as over budget, which only happens under a flood from that very source.
 */
static __always_inline int rl_allow(__u32 family, const __be32 *addr)
{
	struct natx_rl_key key = { .family = family };
	struct natx_rl_state *st;
	__u64 now, tol;

	if (!cfg_rl_interval_ns) {
		return 1;
	}
	__builtin_memcpy(key.addr, addr, sizeof(key.addr));
	now = bpf_ktime_get_ns();
	st = bpf_map_lookup_elem(&natx_stun_rl, &key);
	if (!st) {
		struct natx_rl_state fresh = { .tat_ns = now + cfg_rl_interval_ns };

		bpf_map_update_elem(&natx_stun_rl, &key, &fresh, BPF_NOEXIST);
		return 1;
	}
	tol = (cfg_rl_burst ? cfg_rl_burst - 1 : 0) * cfg_rl_interval_ns;
	for (int i = 0; i < 4; i++) {
		__u64 old = st->tat_ns;
		__u64 tat = old > now ? old : now;

		if (tat - now > tol) {
			return 0;
		}
		if (__sync_val_compare_and_swap(&st->tat_ns, old, tat + cfg_rl_interval_ns) ==
		    old) {
			return 1;
		}
	}
	return 0;
}

/*
 * resp_build - write the Binding success response for @rq into @rb (word-aligned stack) and
 * return its length. Layout: header, XOR-MAPPED-ADDRESS, MAPPED-ADDRESS, [FINGERPRINT].
 */
static __always_inline __u32 resp_build(__u32 *rb, const struct stun_req *rq, int v6)
{
	__u16 port = bpf_ntohs(rq->sport);
	__u32 len = v6 ? STUN_RESP6_LEN : STUN_RESP4_LEN;
	__u32 w = 5, crc = 0xffffffff;
	__u8 *bytes = (__u8 *)rb;

	if (rq->fingerprint) {
		len += STUN_FINGERPRINT_LEN;
	}
	rb[0] = bpf_htonl(STUN_BINDING_SUCCESS << 16 | (len - STUN_HDR_LEN));
	rb[1] = bpf_htonl(STUN_MAGIC_COOKIE);
	rb[2] = rq->txid[0];
	rb[3] = rq->txid[1];
	rb[4] = rq->txid[2];
	if (!v6) {
		rb[5] = bpf_htonl(STUN_ATTR_XOR_MAPPED_ADDRESS << 16 | 8);
		rb[6] = bpf_htonl(STUN_FAMILY_IPV4 << 16 | (port ^ (STUN_MAGIC_COOKIE >> 16)));
		rb[7] = rq->saddr[0] ^ bpf_htonl(STUN_MAGIC_COOKIE);
		rb[8] = bpf_htonl(STUN_ATTR_MAPPED_ADDRESS << 16 | 8);
		rb[9] = bpf_htonl(STUN_FAMILY_IPV4 << 16 | port);
		rb[10] = rq->saddr[0];
		w = 11;
	} else {
		rb[5] = bpf_htonl(STUN_ATTR_XOR_MAPPED_ADDRESS << 16 | 20);
		rb[6] = bpf_htonl(STUN_FAMILY_IPV6 << 16 | (port ^ (STUN_MAGIC_COOKIE >> 16)));
		rb[7] = rq->saddr[0] ^ bpf_htonl(STUN_MAGIC_COOKIE);
		rb[8] = rq->saddr[1] ^ rq->txid[0];
		rb[9] = rq->saddr[2] ^ rq->txid[1];
		rb[10] = rq->saddr[3] ^ rq->txid[2];
		rb[11] = bpf_htonl(STUN_ATTR_MAPPED_ADDRESS << 16 | 20);
		rb[12] = bpf_htonl(STUN_FAMILY_IPV6 << 16 | port);
		rb[13] = rq->saddr[0];
		rb[14] = rq->saddr[1];
		rb[15] = rq->saddr[2];
		rb[16] = rq->saddr[3];
		w = 17;
	}
	if (rq->fingerprint) {
		for (__u32 i = 0; i < STUN_RESP6_LEN; i++) {
			if (i >= w * 4) {
				break;
			}
			crc = crc32_byte(crc, bytes[i]);
		}
		if (v6) {
			rb[17] = bpf_htonl(STUN_ATTR_FINGERPRINT << 16 | 4);
			rb[18] = bpf_htonl(~crc ^ STUN_FINGERPRINT_XOR);
		} else {
			rb[11] = bpf_htonl(STUN_ATTR_FINGERPRINT << 16 | 4);
			rb[12] = bpf_htonl(~crc ^ STUN_FINGERPRINT_XOR);
		}
	}
	return len;
}

/* udp_csum - UDP checksum over pseudo-header, header words @uh and payload @rb of @plen. */
static __always_inline __u16 udp_csum(const struct stun_req *rq, int v6, const __u32 *uh,
				      const __u32 *rb, __u32 plen)
{
	__u32 ulen = sizeof(struct udphdr) + plen;
	__u64 s = 0;
	__u16 c;

	if (v6) {
		s = csum_words(s, rq->saddr, 4);
		s = csum_words(s, rq->daddr, 4);
		s += bpf_htonl(ulen);
		s += bpf_htonl(IPPROTO_UDP);
	} else {
		s += rq->saddr[0];
		s += rq->daddr[0];
		s += bpf_htonl(IPPROTO_UDP << 16 | ulen);
	}
	s = csum_words(s, uh, 2);
	s = csum_words(s, rb, STUN_RESP_MAX_LEN / 4); /* unused tail words are zero */
	c = (__u16)~csum_fold(s);
	return c ? c : 0xffff;
}

/*
 * reflect - turn the frame into the response: resize it, swap MACs, addresses and ports,
 * rewrite lengths and checksums. Offsets are compile-time constants per address family.
 */
static __always_inline int reflect(struct xdp_md *ctx, struct stun_req *rq, int v6)
{
	__u32 rb[STUN_RESP_MAX_LEN / 4] = {};
	__u32 l4off = v6 ? sizeof(struct ethhdr) + sizeof(struct ipv6hdr) :
			   sizeof(struct ethhdr) + sizeof(struct iphdr);
	__u32 plen = resp_build(rb, rq, v6);
	__u32 want = l4off + sizeof(struct udphdr) + plen;
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	struct ethhdr *eth;
	struct udphdr *udp;
	__u32 uh[2];

	if (bpf_xdp_adjust_tail(ctx, (int)want - (int)bpf_xdp_get_buff_len(ctx))) {
		return count(NATX_STUN_CNT_PASSED, XDP_PASS); /* no tailroom: user space answers */
	}
	data = (void *)(long)ctx->data;
	end = (void *)(long)ctx->data_end;
	eth = data;
	if (data + want > end) {
		return XDP_ABORTED; /* cannot happen: the tail was just set to want */
	}
	__builtin_memcpy(eth->h_dest, rq->smac, ETH_ALEN);
	__builtin_memcpy(eth->h_source, rq->dmac, ETH_ALEN);

	if (v6) {
		struct ipv6hdr *ip6 = (void *)(eth + 1);

		if ((void *)(ip6 + 1) > end) {
			return XDP_ABORTED;
		}
		ip6->payload_len = bpf_htons(sizeof(struct udphdr) + plen);
		ip6->hop_limit = 64;
		__builtin_memcpy(&ip6->saddr, rq->daddr, 16);
		__builtin_memcpy(&ip6->daddr, rq->saddr, 16);
		udp = (void *)(ip6 + 1);
	} else {
		struct iphdr *ip = (void *)(eth + 1);
		__u32 *iw = (void *)ip;
		__u64 s = 0;

		if ((void *)(ip + 1) > end) {
			return XDP_ABORTED;
		}
		ip->tot_len = bpf_htons(sizeof(struct iphdr) + sizeof(struct udphdr) + plen);
		ip->ttl = 64;
		ip->saddr = rq->daddr[0];
		ip->daddr = rq->saddr[0];
		ip->check = 0;
		for (int i = 0; i < 5; i++) {
			s += iw[i];
		}
		ip->check = (__u16)~csum_fold(s);
		udp = (void *)(ip + 1);
	}
	if ((void *)(udp + 1) > end) {
		return XDP_ABORTED;
	}
	udp->source = rq->dport;
	udp->dest = rq->sport;
	udp->len = bpf_htons(sizeof(struct udphdr) + plen);
	udp->check = 0;
	__builtin_memcpy(uh, udp, sizeof(uh));
	udp->check = udp_csum(rq, v6, uh, rb, plen);

	/* Copy the response with a constant length per case (the verifier wants fixed sizes). */
	if (v6) {
		if (rq->fingerprint) {
			if ((void *)(udp + 1) + STUN_RESP6_LEN + 8 > end) {
				return XDP_ABORTED;
			}
			__builtin_memcpy(udp + 1, rb, STUN_RESP6_LEN + 8);
		} else {
			if ((void *)(udp + 1) + STUN_RESP6_LEN > end) {
				return XDP_ABORTED;
			}
			__builtin_memcpy(udp + 1, rb, STUN_RESP6_LEN);
		}
	} else {
		if (rq->fingerprint) {
			if ((void *)(udp + 1) + STUN_RESP4_LEN + 8 > end) {
				return XDP_ABORTED;
			}
			__builtin_memcpy(udp + 1, rb, STUN_RESP4_LEN + 8);
		} else {
			if ((void *)(udp + 1) + STUN_RESP4_LEN > end) {
				return XDP_ABORTED;
			}
			__builtin_memcpy(udp + 1, rb, STUN_RESP4_LEN);
		}
	}
	return count(NATX_STUN_CNT_ANSWERED, XDP_TX);
}

/* handle - common tail after L3: verdict, rate limit, reflect. */
static __always_inline int handle(struct xdp_md *ctx, struct stun_req *rq, __u32 off, __u32 mlen,
				  int v6)
{
	switch (stun_check(ctx, off, mlen, rq)) {
	case STUN_ANSWER:
		break;
	case STUN_MALFORMED:
		return count(NATX_STUN_CNT_MALFORMED, XDP_PASS);
	default:
		return count(NATX_STUN_CNT_PASSED, XDP_PASS);
	}
	if (!rl_allow(v6 ? NATX_RL_FAMILY_V6 : NATX_RL_FAMILY_V4, rq->saddr)) {
		return count(NATX_STUN_CNT_RATE_LIMITED, XDP_DROP);
	}
	return reflect(ctx, rq, v6);
}

SEC("xdp")
int natx_stun_reflect(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct stun_req rq = {};
	struct udphdr *udp;

	if ((void *)(eth + 1) > end) {
		return count(NATX_STUN_CNT_PASSED, XDP_PASS);
	}
	if (eth->h_source[0] & 1) {
		return count(NATX_STUN_CNT_PASSED, XDP_PASS); /* multicast source MAC: bogus */
	}
	__builtin_memcpy(rq.smac, eth->h_source, ETH_ALEN);
	__builtin_memcpy(rq.dmac, eth->h_dest, ETH_ALEN);

	if (eth->h_proto == bpf_htons(ETH_P_IP)) {
		struct iphdr *ip = (void *)(eth + 1);
		__u32 *iw = (void *)ip;
		__u64 s = 0;
		__u16 tot;

		if ((void *)(ip + 1) > end) {
			return count(NATX_STUN_CNT_PASSED, XDP_PASS);
		}
		if (ip->version != 4 || ip->ihl != 5 || ip->protocol != IPPROTO_UDP ||
		    (ip->frag_off & bpf_htons(0x3fff))) {
			return count(NATX_STUN_CNT_PASSED, XDP_PASS);
		}
		for (int i = 0; i < 5; i++) {
			s += iw[i];
		}
		if (csum_fold(s) != 0xffff) {
			return count(NATX_STUN_CNT_PASSED, XDP_PASS); /* the kernel drops it */
		}
		if (ip4_is_bad_unicast(ip->saddr) || ip4_is_bad_unicast(ip->daddr)) {
			return count(NATX_STUN_CNT_PASSED, XDP_PASS);
		}
		tot = bpf_ntohs(ip->tot_len);
		udp = (void *)(ip + 1);
		if ((void *)(udp + 1) > end || tot < sizeof(*ip) + sizeof(*udp) ||
		    (void *)ip + tot > end || bpf_ntohs(udp->len) != tot - sizeof(*ip)) {
			return count(NATX_STUN_CNT_PASSED, XDP_PASS);
		}
		if (!port_is_stun(udp->dest) || !udp->source) {
			return count(NATX_STUN_CNT_PASSED, XDP_PASS);
		}
		rq.saddr[0] = ip->saddr;
		rq.daddr[0] = ip->daddr;
		rq.sport = udp->source;
		rq.dport = udp->dest;
		return handle(ctx, &rq, sizeof(*eth) + sizeof(*ip) + sizeof(*udp),
			      tot - sizeof(*ip) - sizeof(*udp), 0);
	}
	if (eth->h_proto == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr *ip6 = (void *)(eth + 1);
		__u16 pl;

		if ((void *)(ip6 + 1) > end) {
			return count(NATX_STUN_CNT_PASSED, XDP_PASS);
		}
		if (ip6->version != 6 || ip6->nexthdr != IPPROTO_UDP) {
			return count(NATX_STUN_CNT_PASSED, XDP_PASS);
		}
		__builtin_memcpy(rq.saddr, &ip6->saddr, 16);
		__builtin_memcpy(rq.daddr, &ip6->daddr, 16);
		/* unspecified or multicast (ff00::/8) source, multicast destination */
		if ((!rq.saddr[0] && !rq.saddr[1] && !rq.saddr[2] && !rq.saddr[3]) ||
		    (rq.saddr[0] & bpf_htonl(0xff000000)) == bpf_htonl(0xff000000) ||
		    (rq.daddr[0] & bpf_htonl(0xff000000)) == bpf_htonl(0xff000000)) {
			return count(NATX_STUN_CNT_PASSED, XDP_PASS);
		}
		pl = bpf_ntohs(ip6->payload_len);
		udp = (void *)(ip6 + 1);
		if ((void *)(udp + 1) > end || pl < sizeof(*udp) || (void *)udp + pl > end ||
		    bpf_ntohs(udp->len) != pl || !udp->check) {
			return count(NATX_STUN_CNT_PASSED, XDP_PASS);
		}
		if (!port_is_stun(udp->dest) || !udp->source) {
			return count(NATX_STUN_CNT_PASSED, XDP_PASS);
		}
		rq.sport = udp->source;
		rq.dport = udp->dest;
		return handle(ctx, &rq, sizeof(*eth) + sizeof(*ip6) + sizeof(*udp),
			      pl - sizeof(*udp), 1);
	}
	return count(NATX_STUN_CNT_PASSED, XDP_PASS);
}
