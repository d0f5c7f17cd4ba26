// SPDX-License-Identifier: MIT
/*
 * natx punch probes at XDP (natx_bpf_common.h format) under BPF_PROG_TEST_RUN: a fixture table
 * of probe variants (valid PROBE/ACK over IPv4 and IPv6, no magic, short, long, bad version,
 * bad type, outside the punch ports, punch disabled) with verdict, counter and whether the
 * flow is learnt; then the per-source punch bucket: burst, drop, other source, independence
 * from the STUN bucket, refill. Every PASS leaves the frame byte-identical and every run moves
 * exactly one counter; on the punch ports the user-space codec (engine/stun/punch_probe.c) must
 * classify every case the same way. Skipped without CAP_BPF.
 */
#include <criterion/criterion.h>
#include <linux/bpf.h>
#include <string.h>
#include <time.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "bpf/bpf_helpers_test.h"
#include "punch_probe.h"
#include "stun/stun_fixtures.h"
#include "stun_reflect.skel.h"

TestSuite(punch_xdp, .timeout = 60);

#define PUNCH_LO 4000
#define PUNCH_HI 4001
#define PEER_PORT 40000

static const uint8_t sid_a[8] = { 0xa1, 2, 3, 4, 5, 6, 7, 8 };

/* probe_build - a punch datagram of @len bytes (>= 20 for a full header) into @p. */
static size_t probe_build(uint8_t *p, size_t len, uint8_t version, uint8_t type, const uint8_t *sid)
{
	memset(p, 0x5a, len);
	memcpy(p, "\x0eNXP", len < 4 ? len : 4);
	if (len >= NATX_PUNCH_HDR_LEN) {
		p[4] = version;
		p[5] = type;
		p[6] = p[7] = 0;
		memcpy(p + 8, sid, 8);
		memcpy(p + 16, "\0\0\0\x07", 4);
	}
	return len;
}

static struct stun_reflect_bpf *load_punch(uint16_t lo, uint16_t hi, uint32_t prate,
					   uint32_t pburst, uint32_t stun_rate)
{
	struct natx_bpf_cfg cfg;

	cr_assert_eq(natx_bpf_cfg_init(&cfg, "test0"), 0);
	cfg.punch_port_lo = lo;
	cfg.punch_port_hi = hi;
	cfg.punch_rate = prate;
	cfg.punch_burst = pburst;
	cfg.rate = stun_rate;
	cfg.burst = stun_rate;
	return t_skel_load_or_skip(&cfg);
}

/* flow_key_of - the natx_punch_flows key XDP must build for frame @f (to port @lport). */
static struct natx_punch_flow_key flow_key_of(const struct t_frame *f)
{
	struct natx_punch_flow_key k = { .family = f->v6 ? NATX_RL_FAMILY_V6 : NATX_RL_FAMILY_V4 };

	memcpy(&k.rport, f->b + f->l4, 2);
	k.lport = (uint16_t)(f->b[f->l4 + 2] << 8 | f->b[f->l4 + 3]);
	memcpy(k.raddr, f->b + 14 + (f->v6 ? 8 : 12), f->v6 ? 16 : 4);
	return k;
}

/* expect - run @in; verdict @verdict, only counter @cnt moved by one, frame untouched. */
static void expect(struct stun_reflect_bpf *skel, const char *what, const struct t_frame *in,
		   int verdict, int cnt)
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
	if (verdict == XDP_PASS) {
		cr_assert_eq(out.len, in->len, "%s: PASS must not resize", what);
		cr_assert_arr_eq(out.b, in->b, in->len, "%s: PASS must not touch the frame", what);
	}
}

/* learnt - natx_punch_flows holds @f's flow with session @sid (1), or has no entry (0). */
static int learnt(struct stun_reflect_bpf *skel, const struct t_frame *f, const uint8_t *sid)
{
	struct natx_punch_flow_key k = flow_key_of(f);
	struct natx_punch_flow_val v;

	if (bpf_map_lookup_elem(bpf_map__fd(skel->maps.natx_punch_flows), &k, &v)) {
		return 0;
	}
	cr_assert_arr_eq(v.sid.b, sid, 8, "learnt session id");
	cr_assert_gt(v.seen_ns, 0);
	return 1;
}

struct probe_case {
	const char *name;
	int v6;
	size_t len;
	uint8_t version, type;
	int magic; /* 0: first byte changed, no magic */
	uint16_t dport;
	int verdict, counter, learns;
};

static const struct probe_case probe_cases[] = {
	{ "IPv4 PROBE", 0, 20, 1, 1, 1, PUNCH_LO, XDP_PASS, NATX_STUN_CNT_PUNCH_PASSED, 1 },
	{ "IPv6 PROBE", 1, 20, 1, 1, 1, PUNCH_LO, XDP_PASS, NATX_STUN_CNT_PUNCH_PASSED, 1 },
	{ "IPv4 ACK, second punch port, auth tail", 0, 52, 1, 2, 1, PUNCH_HI, XDP_PASS,
	  NATX_STUN_CNT_PUNCH_PASSED, 1 },
	{ "IPv6 ACK, longest", 1, NATX_PUNCH_MAX_LEN, 1, 2, 1, PUNCH_LO, XDP_PASS,
	  NATX_STUN_CNT_PUNCH_PASSED, 1 },
	{ "no magic (punched flow traffic)", 0, 40, 1, 1, 0, PUNCH_LO, XDP_PASS,
	  NATX_STUN_CNT_PASSED, 0 },
	{ "empty datagram", 0, 0, 1, 1, 1, PUNCH_LO, XDP_PASS, NATX_STUN_CNT_PASSED, 0 },
	{ "magic only", 0, 4, 1, 1, 1, PUNCH_LO, XDP_PASS, NATX_STUN_CNT_MALFORMED, 0 },
	{ "19 bytes", 1, 19, 1, 1, 1, PUNCH_LO, XDP_PASS, NATX_STUN_CNT_MALFORMED, 0 },
	{ "129 bytes", 0, NATX_PUNCH_MAX_LEN + 1, 1, 1, 1, PUNCH_LO, XDP_PASS,
	  NATX_STUN_CNT_MALFORMED, 0 },
	{ "version 2", 0, 20, 2, 1, 1, PUNCH_LO, XDP_PASS, NATX_STUN_CNT_MALFORMED, 0 },
	{ "type 0", 0, 20, 1, 0, 1, PUNCH_LO, XDP_PASS, NATX_STUN_CNT_MALFORMED, 0 },
	{ "type 3", 1, 20, 1, 3, 1, PUNCH_LO, XDP_PASS, NATX_STUN_CNT_MALFORMED, 0 },
	{ "probe below the punch ports", 0, 20, 1, 1, 1, PUNCH_LO - 1, XDP_PASS,
	  NATX_STUN_CNT_PASSED, 0 },
	{ "probe above the punch ports", 0, 20, 1, 1, 1, PUNCH_HI + 1, XDP_PASS,
	  NATX_STUN_CNT_PASSED, 0 },
};

Test(punch_xdp, probe_fixture_table)
{
	struct stun_reflect_bpf *skel = load_punch(PUNCH_LO, PUNCH_HI, 0, 0, 0);

	for (size_t i = 0; i < sizeof(probe_cases) / sizeof(probe_cases[0]); i++) {
		const struct probe_case *pc = &probe_cases[i];
		uint8_t pay[256];
		struct t_frame f;
		size_t n = probe_build(pay, pc->len, pc->version, pc->type, sid_a);

		if (!pc->magic) {
			pay[0] = 0x0f;
		}
		/* A distinct source port per case, so learnt flows do not mix. */
		t_frame_build(&f, pc->v6, pay, n, (uint16_t)(PEER_PORT + i), pc->dport);
		expect(skel, pc->name, &f, pc->verdict, pc->counter);
		cr_assert_eq(learnt(skel, &f, sid_a), pc->learns, "%s: flow learnt", pc->name);
		if (pc->dport >= PUNCH_LO && pc->dport <= PUNCH_HI) {
			struct punch_probe pp;

			/* XDP and the engine's codec (punch_probe.c) agree on what is a probe. */
			cr_assert_eq(pc->counter == NATX_STUN_CNT_PUNCH_PASSED,
				     punch_probe_parse(&pp, pay, n) == 0, "%s: codec disagrees",
				     pc->name);
			cr_assert_eq(pc->counter != NATX_STUN_CNT_PASSED, punch_probe_is(pay, n),
				     "%s: magic check disagrees", pc->name);
		}
	}
	stun_reflect_bpf__destroy(skel);
}

Test(punch_xdp, punch_disabled_passes_probes_untouched)
{
	struct stun_reflect_bpf *skel = load_punch(0, 0, 1, 1, 0);
	uint8_t pay[32];
	struct t_frame f;

	t_frame_build(&f, 0, pay, probe_build(pay, 20, 1, 1, sid_a), PEER_PORT, PUNCH_LO);
	for (int i = 0; i < 3; i++) {
		expect(skel, "no punch ports", &f, XDP_PASS, NATX_STUN_CNT_PASSED);
	}
	cr_assert_eq(learnt(skel, &f, sid_a), 0);
	stun_reflect_bpf__destroy(skel);
}

Test(punch_xdp, configure_rejects_bad_ranges)
{
	struct stun_reflect_bpf *skel = stun_reflect_bpf__open();
	struct natx_bpf_cfg cfg;

	cr_assert_not_null(skel);
	cr_assert_eq(natx_bpf_cfg_init(&cfg, "test0"), 0);
	cfg.punch_port_lo = 5000;
	cfg.punch_port_hi = 4999;
	cr_assert_eq(natx_bpf_skel_configure(skel, &cfg), -EINVAL);
	cfg.punch_port_lo = 0;
	cfg.punch_port_hi = 5000;
	cr_assert_eq(natx_bpf_skel_configure(skel, &cfg), -EINVAL);
	cfg.punch_port_hi = 0;
	cfg.punch_rate = 1000000001u;
	cr_assert_eq(natx_bpf_skel_configure(skel, &cfg), -EINVAL);
	stun_reflect_bpf__destroy(skel);
}

static uint64_t mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

Test(punch_xdp, per_source_punch_bucket)
{
	/* 1 probe/s, burst 2; STUN limited too (1/s burst 1) but in its own bucket. */
	struct stun_reflect_bpf *skel = load_punch(PUNCH_LO, PUNCH_HI, 1, 2, 1);
	int rl_fd = bpf_map__fd(skel->maps.natx_punch_rl);
	struct natx_rl_key key = { .family = NATX_RL_FAMILY_V4 };
	struct natx_rl_state st;
	uint8_t pay[64], junk[40];
	struct t_frame f, g, s;

	t_frame_build(&f, 0, pay, probe_build(pay, 20, 1, 1, sid_a), PEER_PORT, PUNCH_LO);
	memcpy(key.addr, f.b + 14 + 12, 4);

	/* Flow traffic without the magic never takes a token. */
	memset(junk, 0x42, sizeof(junk));
	t_frame_build(&g, 0, junk, sizeof(junk), PEER_PORT, PUNCH_LO);
	for (int i = 0; i < 5; i++) {
		expect(skel, "punched flow data", &g, XDP_PASS, NATX_STUN_CNT_PASSED);
	}
	cr_assert_neq(bpf_map_lookup_elem(rl_fd, &key, &st), 0, "no bucket for data traffic");

	expect(skel, "probe 1 of burst 2", &f, XDP_PASS, NATX_STUN_CNT_PUNCH_PASSED);
	/* A malformed probe charges the same bucket: it is the second token. */
	t_frame_build(&g, 0, pay, probe_build(pay, 20, 9, 1, sid_a), PEER_PORT, PUNCH_LO);
	expect(skel, "malformed probe 2 of burst 2", &g, XDP_PASS, NATX_STUN_CNT_MALFORMED);
	expect(skel, "over budget", &f, XDP_DROP, NATX_STUN_CNT_PUNCH_RATE_LIMITED);
	expect(skel, "still over", &f, XDP_DROP, NATX_STUN_CNT_PUNCH_RATE_LIMITED);
	t_frame_build(&g, 0, junk, sizeof(junk), PEER_PORT, PUNCH_LO);
	expect(skel, "data from a limited source still passes", &g, XDP_PASS, NATX_STUN_CNT_PASSED);
	cr_assert_eq(bpf_map_lookup_elem(rl_fd, &key, &st), 0);
	cr_assert_gt(st.tat_ns, mono_ns() + 1000000000ull);

	/* The STUN bucket is separate: the same source still gets its Binding answer. */
	t_frame_build(&s, 0, stun_fixtures[0].msg, stun_fixtures[0].len, PEER_PORT, 3478);
	expect(skel, "STUN from a punch-limited source", &s, XDP_TX, NATX_STUN_CNT_ANSWERED);
	expect(skel, "STUN over its own budget", &s, XDP_DROP, NATX_STUN_CNT_RATE_LIMITED);
	cr_assert_eq(bpf_map_lookup_elem(rl_fd, &key, &st), 0, "punch bucket untouched by STUN");

	/* Another source (also IPv6) has its own bucket. */
	t_frame_build(&g, 0, pay, probe_build(pay, 20, 1, 1, sid_a), PEER_PORT, PUNCH_LO);
	g.b[14 + 15] ^= 1;
	t_frame_fix(&g);
	expect(skel, "second IPv4 source", &g, XDP_PASS, NATX_STUN_CNT_PUNCH_PASSED);
	t_frame_build(&g, 1, pay, probe_build(pay, 20, 1, 1, sid_a), PEER_PORT, PUNCH_LO);
	expect(skel, "IPv6 source", &g, XDP_PASS, NATX_STUN_CNT_PUNCH_PASSED);

	/* 1.5 s later (tat moved back): exactly one token again. */
	cr_assert_eq(bpf_map_lookup_elem(rl_fd, &key, &st), 0);
	st.tat_ns -= 1500000000ull;
	cr_assert_eq(bpf_map_update_elem(rl_fd, &key, &st, BPF_EXIST), 0);
	expect(skel, "after one refill", &f, XDP_PASS, NATX_STUN_CNT_PUNCH_PASSED);
	expect(skel, "refill used up", &f, XDP_DROP, NATX_STUN_CNT_PUNCH_RATE_LIMITED);
	cr_assert_eq(learnt(skel, &f, sid_a), 1);
	stun_reflect_bpf__destroy(skel);
}
