// SPDX-License-Identifier: MIT
/*
 * XDP STUN reflector under BPF_PROG_TEST_RUN (style.md §14 rule 15): fixture tables of
 * {description, input frame, expected verdict, expected output, expected counter}. A TX
 * verdict is checked byte by byte against the user-space builder's answer plus independent
 * checks of MACs, addresses, ports, lengths and both checksums; a PASS must leave the frame
 * untouched. Skipped (cr_skip_test) without CAP_BPF.
 */
#include <criterion/criterion.h>
#include <linux/bpf.h>
#include <string.h>
#include <time.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "bpf/bpf_helpers_test.h"
#include "stun/stun_fixtures.h"
#include "stun_msg.h"
#include "stun_reflect.skel.h"

TestSuite(stun_reflect, .timeout = 60);

#define PORT 3478
#define CLIENT_PORT 40000

static struct stun_reflect_bpf *load_default(uint32_t rate, uint32_t burst)
{
	struct natx_bpf_cfg cfg;

	cr_assert_eq(natx_bpf_cfg_init(&cfg, "test0"), 0);
	cfg.ports[1] = 5349;
	cfg.rate = rate;
	cfg.burst = burst;
	return t_skel_load_or_skip(&cfg);
}

/* check_response - every byte that matters of a reflected frame. */
static void check_response(const char *what, const struct t_frame *in, const struct t_frame *out,
			   bool fp)
{
	const uint8_t *ri = in->b, *ro = out->b;
	size_t l3 = 14, stun_len = (in->v6 ? STUN_RESP6_LEN : STUN_RESP4_LEN) +
				   (fp ? STUN_FINGERPRINT_LEN : 0);
	uint8_t want[STUN_RESP_MAX_LEN];
	struct stun_addr src = { 0 };
	struct stun_msg req, m;
	size_t n;

	cr_assert_eq(out->len, out->pay + stun_len, "%s: frame length %zu", what, out->len);
	/* Ethernet: MACs swapped, same ethertype. */
	cr_assert_arr_eq(ro, ri + 6, 6, "%s: dst MAC", what);
	cr_assert_arr_eq(ro + 6, ri, 6, "%s: src MAC", what);
	cr_assert_arr_eq(ro + 12, ri + 12, 2, "%s: ethertype", what);
	if (in->v6) {
		cr_assert_eq(ro[l3] >> 4, 6, "%s", what);
		cr_assert_eq(ro[l3 + 4] << 8 | ro[l3 + 5], 8 + stun_len, "%s: payload_len", what);
		cr_assert_eq(ro[l3 + 6], 17, "%s: next header", what);
		cr_assert_eq(ro[l3 + 7], 64, "%s: hop limit", what);
		cr_assert_arr_eq(ro + l3 + 8, ri + l3 + 24, 16, "%s: src addr", what);
		cr_assert_arr_eq(ro + l3 + 24, ri + l3 + 8, 16, "%s: dst addr", what);
		src.family = STUN_FAMILY_IPV6;
		memcpy(src.addr, ri + l3 + 8, 16);
	} else {
		cr_assert_eq(ro[l3], 0x45, "%s", what);
		cr_assert_eq(ro[l3 + 2] << 8 | ro[l3 + 3], 20 + 8 + stun_len, "%s: tot_len", what);
		cr_assert_eq(ro[l3 + 6] & 0x3f, 0, "%s: not a fragment", what);
		cr_assert_eq(ro[l3 + 7], 0, "%s: not a fragment", what);
		cr_assert_eq(ro[l3 + 8], 64, "%s: ttl", what);
		cr_assert_eq(ro[l3 + 9], 17, "%s: protocol", what);
		cr_assert_arr_eq(ro + l3 + 12, ri + l3 + 16, 4, "%s: src addr", what);
		cr_assert_arr_eq(ro + l3 + 16, ri + l3 + 12, 4, "%s: dst addr", what);
		cr_assert_eq(t_csum_fold(t_csum_add(0, ro + l3, 20)), 0xffff,
			     "%s: IPv4 header checksum", what);
		src.family = STUN_FAMILY_IPV4;
		memcpy(src.addr, ri + l3 + 12, 4);
	}
	/* UDP: ports swapped, length, checksum valid and non-zero. */
	cr_assert_arr_eq(ro + out->l4, ri + in->l4 + 2, 2, "%s: src port", what);
	cr_assert_arr_eq(ro + out->l4 + 2, ri + in->l4, 2, "%s: dst port", what);
	cr_assert_eq(ro[out->l4 + 4] << 8 | ro[out->l4 + 5], 8 + stun_len, "%s: udp len", what);
	cr_assert(t_udp_csum_ok(out), "%s: UDP checksum", what);
	/* STUN: exactly the user-space responder's bytes for the same request and source. */
	src.port = (uint16_t)(ri[in->l4] << 8 | ri[in->l4 + 1]);
	/* The request's own UDP length: the frame may carry an Ethernet trailer. */
	cr_assert_eq(stun_msg_parse(&req, ri + in->pay,
				    (size_t)(ri[in->l4 + 4] << 8 | ri[in->l4 + 5]) - 8),
		     0, "%s", what);
	cr_assert_eq(stun_binding_success_build(want, sizeof(want), &n, &req, &src), 0);
	cr_assert_eq(n, stun_len, "%s", what);
	cr_assert_arr_eq(ro + out->pay, want, n, "%s: STUN bytes differ from user space", what);
	/* And it decodes to the client's address with FINGERPRINT exactly when asked. */
	cr_assert_eq(stun_msg_parse(&m, ro + out->pay, stun_len), 0, "%s", what);
	cr_assert_eq(m.fingerprint, fp, "%s: FINGERPRINT", what);
	cr_assert_eq(m.xor_mapped.port, CLIENT_PORT, "%s", what);
	cr_assert_arr_eq(m.xor_mapped.addr, src.addr, 16, "%s", what);
}

/* expect_one - run @in, check verdict, output and that exactly counter @cnt moved by one. */
static void expect_one(struct stun_reflect_bpf *skel, const char *what, const struct t_frame *in,
		       int verdict, int cnt, int fp)
{
	uint64_t before[NATX_STUN_CNT_MAX], after[NATX_STUN_CNT_MAX];
	struct t_frame out;
	int v;

	t_counters(skel, before);
	v = t_run(skel, in, &out);
	t_counters(skel, after);
	cr_assert_eq(v, verdict, "%s: verdict %d, want %d", what, v, verdict);
	for (int c = 0; c < NATX_STUN_CNT_MAX; c++) {
		cr_assert_eq(after[c] - before[c], c == cnt ? 1u : 0u, "%s: counter %s", what,
			     natx_bpf_counter_name(c));
	}
	if (verdict == XDP_TX) {
		check_response(what, in, &out, fp);
	} else if (verdict == XDP_PASS) {
		cr_assert_eq(out.len, in->len, "%s: PASS must not resize", what);
		cr_assert_arr_eq(out.b, in->b, in->len, "%s: PASS must not touch the frame", what);
	}
}

static void run_stun_table(int v6)
{
	struct stun_reflect_bpf *skel = load_default(0, 0);

	for (size_t i = 0; i < STUN_FIXTURES_N; i++) {
		const struct stun_fixture *fx = &stun_fixtures[i];
		struct t_frame f;

		t_frame_build(&f, v6, fx->msg, fx->len, CLIENT_PORT, PORT);
		switch (fx->expect) {
		case FX_ANSWER:
		case FX_ANSWER_FP:
			expect_one(skel, fx->name, &f, XDP_TX, NATX_STUN_CNT_ANSWERED,
				   fx->expect == FX_ANSWER_FP);
			break;
		case FX_420:
		case FX_420_FP:
		case FX_PASS:
			expect_one(skel, fx->name, &f, XDP_PASS, NATX_STUN_CNT_PASSED, 0);
			break;
		case FX_MALFORMED:
			expect_one(skel, fx->name, &f, XDP_PASS, NATX_STUN_CNT_MALFORMED, 0);
			break;
		}
	}
	stun_reflect_bpf__destroy(skel);
}

Test(stun_reflect, shared_stun_fixtures_over_ipv4)
{
	run_stun_table(0);
}

Test(stun_reflect, shared_stun_fixtures_over_ipv6)
{
	run_stun_table(1);
}

/* Frame-level mutations of a valid IPv4 or IPv6 Binding request. */
struct l3_case {
	const char *name;
	int v6;
	void (*mutate)(struct t_frame *f);
	int verdict;
	int counter;
};

static void m_none(struct t_frame *f)
{
}
static void m_wrong_port(struct t_frame *f)
{
	f->b[f->l4 + 3] ^= 1; /* 3478 -> 3479 */
	t_frame_fix(f);
}
static void m_second_port(struct t_frame *f)
{
	f->b[f->l4 + 2] = 5349 >> 8;
	f->b[f->l4 + 3] = 5349 & 0xff;
	t_frame_fix(f);
}
static void m_sport_zero(struct t_frame *f)
{
	f->b[f->l4] = f->b[f->l4 + 1] = 0;
	t_frame_fix(f);
}
static void m_tcp(struct t_frame *f)
{
	f->b[f->v6 ? 14 + 6 : 14 + 9] = 6;
	t_frame_fix(f);
}
static void m_arp(struct t_frame *f)
{
	f->b[12] = 0x08;
	f->b[13] = 0x06;
}
static void m_vlan(struct t_frame *f)
{
	memmove(f->b + 16, f->b + 12, f->len - 12);
	f->b[12] = 0x81;
	f->b[13] = 0x00;
	f->b[14] = 0x00;
	f->b[15] = 0x07;
	f->len += 4;
}
static void m_frag_mf(struct t_frame *f)
{
	f->b[14 + 6] = 0x20; /* more fragments */
	t_frame_fix(f);
}
static void m_frag_offset(struct t_frame *f)
{
	f->b[14 + 6] = 0x00;
	f->b[14 + 7] = 0x10; /* offset 128 bytes, last fragment */
	t_frame_fix(f);
}
static void m_ip_options(struct t_frame *f)
{
	/* ihl 6: one 4-byte option (NOP x3 + EOL) inserted before UDP. */
	memmove(f->b + 14 + 24, f->b + 14 + 20, f->len - 34);
	memcpy(f->b + 14 + 20, "\x01\x01\x01\x00", 4);
	f->b[14] = 0x46;
	f->b[14 + 3] += 4;
	f->len += 4;
	f->l4 += 4;
	f->pay += 4;
	t_frame_fix(f);
}
static void m_bad_ip_csum(struct t_frame *f)
{
	f->b[14 + 10] ^= 0xff;
}
static void m_tot_len_beyond_frame(struct t_frame *f)
{
	f->b[14 + 3] += 8;
	t_frame_fix(f);
}
static void m_udp_len_mismatch(struct t_frame *f)
{
	f->b[f->l4 + 5] -= 4;
	t_frame_fix(f);
}
static void m_mcast_src(struct t_frame *f)
{
	f->b[14 + 12] = 224;
	t_frame_fix(f);
}
static void m_bcast_dst(struct t_frame *f)
{
	memset(f->b + 14 + 16, 0xff, 4);
	t_frame_fix(f);
}
static void m_trailer(struct t_frame *f)
{
	memcpy(f->b + f->len, "\xde\xad\xbe\xef", 4); /* Ethernet padding after the datagram */
	f->len += 4;
}
static void m_eth_only(struct t_frame *f)
{
	f->len = 14;
}
static void m_ip_cut(struct t_frame *f)
{
	f->len = 14 + 12;
}
static void m_stun_cut(struct t_frame *f)
{
	f->len -= 4; /* IP and UDP lengths now point past the frame */
}
static void m_v6_hbh(struct t_frame *f)
{
	/* Hop-by-hop options header (8 bytes of PadN) in front of UDP. */
	memmove(f->b + f->l4 + 8, f->b + f->l4, f->len - f->l4);
	memcpy(f->b + f->l4, "\x11\x00\x01\x04\x00\x00\x00\x00", 8);
	f->b[14 + 6] = 0;
	f->b[14 + 5] += 8;
	f->len += 8;
	f->l4 += 8;
	f->pay += 8;
}
static void m_v6_zero_csum(struct t_frame *f)
{
	f->b[f->l4 + 6] = f->b[f->l4 + 7] = 0;
}
static void m_v6_mcast_dst(struct t_frame *f)
{
	f->b[14 + 24] = 0xff;
	f->b[14 + 25] = 0x02;
	t_frame_fix(f);
}

static const struct l3_case l3_cases[] = {
	{ "valid IPv4 request", 0, m_none, XDP_TX, NATX_STUN_CNT_ANSWERED },
	{ "valid IPv6 request", 1, m_none, XDP_TX, NATX_STUN_CNT_ANSWERED },
	{ "IPv4 to the second configured port", 0, m_second_port, XDP_TX, NATX_STUN_CNT_ANSWERED },
	{ "IPv6 to the second configured port", 1, m_second_port, XDP_TX, NATX_STUN_CNT_ANSWERED },
	{ "IPv4 Ethernet trailer after the datagram", 0, m_trailer, XDP_TX,
	  NATX_STUN_CNT_ANSWERED },
	{ "IPv6 Ethernet trailer after the datagram", 1, m_trailer, XDP_TX,
	  NATX_STUN_CNT_ANSWERED },
	{ "IPv4 wrong port", 0, m_wrong_port, XDP_PASS, NATX_STUN_CNT_PASSED },
	{ "IPv6 wrong port", 1, m_wrong_port, XDP_PASS, NATX_STUN_CNT_PASSED },
	{ "IPv4 source port 0", 0, m_sport_zero, XDP_PASS, NATX_STUN_CNT_PASSED },
	{ "IPv4 TCP", 0, m_tcp, XDP_PASS, NATX_STUN_CNT_PASSED },
	{ "IPv6 TCP", 1, m_tcp, XDP_PASS, NATX_STUN_CNT_PASSED },
	{ "ARP ethertype", 0, m_arp, XDP_PASS, NATX_STUN_CNT_PASSED },
	{ "802.1Q VLAN tag (not parsed)", 0, m_vlan, XDP_PASS, NATX_STUN_CNT_PASSED },
	{ "IPv4 first fragment (MF)", 0, m_frag_mf, XDP_PASS, NATX_STUN_CNT_PASSED },
	{ "IPv4 later fragment (offset)", 0, m_frag_offset, XDP_PASS, NATX_STUN_CNT_PASSED },
	{ "IPv4 with options (ihl 6)", 0, m_ip_options, XDP_PASS, NATX_STUN_CNT_PASSED },
	{ "IPv4 bad header checksum", 0, m_bad_ip_csum, XDP_PASS, NATX_STUN_CNT_PASSED },
	{ "IPv4 total length beyond the frame", 0, m_tot_len_beyond_frame, XDP_PASS,
	  NATX_STUN_CNT_PASSED },
	{ "IPv4 UDP length mismatch", 0, m_udp_len_mismatch, XDP_PASS, NATX_STUN_CNT_PASSED },
	{ "IPv6 UDP length mismatch", 1, m_udp_len_mismatch, XDP_PASS, NATX_STUN_CNT_PASSED },
	{ "IPv4 multicast source", 0, m_mcast_src, XDP_PASS, NATX_STUN_CNT_PASSED },
	{ "IPv4 broadcast destination", 0, m_bcast_dst, XDP_PASS, NATX_STUN_CNT_PASSED },
	{ "Ethernet header only", 0, m_eth_only, XDP_PASS, NATX_STUN_CNT_PASSED },
	{ "IPv4 header cut short", 0, m_ip_cut, XDP_PASS, NATX_STUN_CNT_PASSED },
	{ "IPv4 frame shorter than its lengths", 0, m_stun_cut, XDP_PASS, NATX_STUN_CNT_PASSED },
	{ "IPv6 frame shorter than its lengths", 1, m_stun_cut, XDP_PASS, NATX_STUN_CNT_PASSED },
	{ "IPv6 hop-by-hop extension header", 1, m_v6_hbh, XDP_PASS, NATX_STUN_CNT_PASSED },
	{ "IPv6 zero UDP checksum", 1, m_v6_zero_csum, XDP_PASS, NATX_STUN_CNT_PASSED },
	{ "IPv6 multicast destination", 1, m_v6_mcast_dst, XDP_PASS, NATX_STUN_CNT_PASSED },
};

Test(stun_reflect, frame_level_fixture_table)
{
	struct stun_reflect_bpf *skel = load_default(0, 0);
	const struct stun_fixture *req = &stun_fixtures[1]; /* with FINGERPRINT */

	for (size_t i = 0; i < sizeof(l3_cases) / sizeof(l3_cases[0]); i++) {
		const struct l3_case *c = &l3_cases[i];
		struct t_frame f;

		t_frame_build(&f, c->v6, req->msg, req->len, CLIENT_PORT, PORT);
		c->mutate(&f);
		expect_one(skel, c->name, &f, c->verdict, c->counter, 1);
	}
	stun_reflect_bpf__destroy(skel);
}

/* build_long - Binding request of exactly @total bytes: SOFTWARE padding, then FINGERPRINT. */
static size_t build_long(uint8_t *buf, size_t total, int nattrs)
{
	static const uint8_t txid[STUN_TXID_LEN] = { 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12 };
	size_t off = STUN_HDR_LEN, room = total - STUN_HDR_LEN - STUN_FINGERPRINT_LEN;
	uint32_t crc;

	memset(buf, 0, total);
	buf[1] = 1;
	buf[2] = (uint8_t)((total - STUN_HDR_LEN) >> 8);
	buf[3] = (uint8_t)(total - STUN_HDR_LEN);
	memcpy(buf + 4, "\x21\x12\xa4\x42", 4);
	memcpy(buf + 8, txid, STUN_TXID_LEN);
	for (int i = 0; i < nattrs; i++) {
		size_t vlen = i == nattrs - 1 ? room - 4 : 0;

		buf[off] = 0x80; /* optional attribute 0x80f0 */
		buf[off + 1] = 0xf0;
		buf[off + 2] = (uint8_t)(vlen >> 8);
		buf[off + 3] = (uint8_t)vlen;
		memset(buf + off + 4, 'x', vlen);
		off += 4 + vlen;
		room -= 4 + vlen;
	}
	crc = stun_crc32(buf, off) ^ STUN_FINGERPRINT_XOR;
	buf[off] = 0x80;
	buf[off + 1] = 0x28;
	buf[off + 3] = 4;
	buf[off + 4] = (uint8_t)(crc >> 24);
	buf[off + 5] = (uint8_t)(crc >> 16);
	buf[off + 6] = (uint8_t)(crc >> 8);
	buf[off + 7] = (uint8_t)crc;
	return off + 8;
}

Test(stun_reflect, message_size_and_attribute_count_limits)
{
	struct stun_reflect_bpf *skel = load_default(0, 0);
	uint8_t msg[1024];
	struct stun_msg m;
	struct t_frame f;
	size_t n;

	/* The largest message XDP answers: the FINGERPRINT CRC runs over 504 bytes. */
	n = build_long(msg, NATX_STUN_XDP_MAX_MSG, 1);
	cr_assert_eq(n, NATX_STUN_XDP_MAX_MSG);
	cr_assert_eq(stun_msg_parse(&m, msg, n), 0);
	t_frame_build(&f, 0, msg, n, CLIENT_PORT, PORT);
	expect_one(skel, "512-byte request", &f, XDP_TX, NATX_STUN_CNT_ANSWERED, 1);
	t_frame_build(&f, 1, msg, n, CLIENT_PORT, PORT);
	expect_one(skel, "512-byte request over IPv6", &f, XDP_TX, NATX_STUN_CNT_ANSWERED, 1);

	/* One word longer: valid STUN, left to user space. */
	n = build_long(msg, NATX_STUN_XDP_MAX_MSG + 4, 1);
	cr_assert_eq(stun_msg_parse(&m, msg, n), 0);
	t_frame_build(&f, 0, msg, n, CLIENT_PORT, PORT);
	expect_one(skel, "516-byte request", &f, XDP_PASS, NATX_STUN_CNT_PASSED, 0);

	/* 16 attributes (15 + FINGERPRINT) are walked; 17 pass up. */
	n = build_long(msg, 200, NATX_STUN_XDP_MAX_ATTRS - 1);
	cr_assert_eq(stun_msg_parse(&m, msg, n), 0);
	t_frame_build(&f, 0, msg, n, CLIENT_PORT, PORT);
	expect_one(skel, "16 attributes", &f, XDP_TX, NATX_STUN_CNT_ANSWERED, 1);
	n = build_long(msg, 200, NATX_STUN_XDP_MAX_ATTRS);
	cr_assert_eq(stun_msg_parse(&m, msg, n), 0);
	t_frame_build(&f, 0, msg, n, CLIENT_PORT, PORT);
	expect_one(skel, "17 attributes", &f, XDP_PASS, NATX_STUN_CNT_PASSED, 0);
	stun_reflect_bpf__destroy(skel);
}

static uint64_t mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts); /* the clock bpf_ktime_get_ns() reads */
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void set_client(struct t_frame *f, uint8_t last)
{
	f->b[14 + 15] = last; /* 198.51.100.<last> */
	t_frame_fix(f);
}

Test(stun_reflect, rate_limit_exhaustion_and_refill)
{
	/* 1 request/s, burst 3: a test run takes microseconds, so no token is earned meanwhile. */
	struct stun_reflect_bpf *skel = load_default(1, 3);
	struct natx_rl_key key = { .family = NATX_RL_FAMILY_V4 };
	struct natx_rl_state st;
	int rl_fd = bpf_map__fd(skel->maps.natx_stun_rl);
	struct t_frame f;

	t_frame_build(&f, 0, stun_fixtures[0].msg, stun_fixtures[0].len, CLIENT_PORT, PORT);
	for (int i = 0; i < 3; i++) {
		expect_one(skel, "within the burst", &f, XDP_TX, NATX_STUN_CNT_ANSWERED, 0);
	}
	expect_one(skel, "over the burst", &f, XDP_DROP, NATX_STUN_CNT_RATE_LIMITED, 0);
	expect_one(skel, "still over", &f, XDP_DROP, NATX_STUN_CNT_RATE_LIMITED, 0);

	/* The bucket state is what natx_bpf_common.h says: tat about now + 3 s. */
	memcpy(key.addr, f.b + 14 + 12, 4);
	cr_assert_eq(bpf_map_lookup_elem(rl_fd, &key, &st), 0);
	cr_assert_gt(st.tat_ns, mono_ns() + 2000000000ull);
	cr_assert_leq(st.tat_ns, mono_ns() + 3000000000ull);

	/* Another source is still answered while the first one is limited. */
	set_client(&f, 8);
	expect_one(skel, "second source", &f, XDP_TX, NATX_STUN_CNT_ANSWERED, 0);
	set_client(&f, 7);
	expect_one(skel, "first source again", &f, XDP_DROP, NATX_STUN_CNT_RATE_LIMITED, 0);

	/* Simulate 1.5 s passing: move tat back by 1.5 s: one token earned, not two. */
	st.tat_ns -= 1500000000ull;
	cr_assert_eq(bpf_map_update_elem(rl_fd, &key, &st, BPF_EXIST), 0);
	expect_one(skel, "after one refill", &f, XDP_TX, NATX_STUN_CNT_ANSWERED, 0);
	expect_one(skel, "refill used up", &f, XDP_DROP, NATX_STUN_CNT_RATE_LIMITED, 0);

	/* A bucket idle for long is full again: tat in the past. */
	st.tat_ns = mono_ns() - 60000000000ull;
	cr_assert_eq(bpf_map_update_elem(rl_fd, &key, &st, BPF_EXIST), 0);
	for (int i = 0; i < 3; i++) {
		expect_one(skel, "full again", &f, XDP_TX, NATX_STUN_CNT_ANSWERED, 0);
	}
	expect_one(skel, "empty again", &f, XDP_DROP, NATX_STUN_CNT_RATE_LIMITED, 0);
	stun_reflect_bpf__destroy(skel);
}

Test(stun_reflect, rate_limit_keys_ipv6_sources_by_full_address)
{
	struct stun_reflect_bpf *skel = load_default(1, 1);
	struct natx_rl_key key = { .family = NATX_RL_FAMILY_V6 };
	struct natx_rl_state st = { .tat_ns = mono_ns() + 10000000000ull };
	struct t_frame f;

	/* Exhausted through the map before the first packet: state set from user space. */
	t_frame_build(&f, 1, stun_fixtures[0].msg, stun_fixtures[0].len, CLIENT_PORT, PORT);
	memcpy(key.addr, f.b + 14 + 8, 16);
	cr_assert_eq(
		bpf_map_update_elem(bpf_map__fd(skel->maps.natx_stun_rl), &key, &st, BPF_NOEXIST),
		0);
	expect_one(skel, "pre-exhausted IPv6 source", &f, XDP_DROP, NATX_STUN_CNT_RATE_LIMITED, 0);
	f.b[14 + 8 + 15] ^= 1; /* a neighbour in the same /64 has its own bucket */
	t_frame_fix(&f);
	expect_one(skel, "neighbouring IPv6 source", &f, XDP_TX, NATX_STUN_CNT_ANSWERED, 0);
	/* Malformed and passed traffic never consumes tokens. */
	t_frame_build(&f, 1, stun_fixtures[13].msg, stun_fixtures[13].len, CLIENT_PORT, PORT);
	cr_assert_eq(stun_fixtures[13].expect, FX_MALFORMED);
	expect_one(skel, "malformed from a limited source", &f, XDP_PASS, NATX_STUN_CNT_MALFORMED,
		   0);
	stun_reflect_bpf__destroy(skel);
}
