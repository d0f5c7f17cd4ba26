// SPDX-License-Identifier: MIT
/* Helpers for the XDP reflector tests: see bpf_helpers_test.h. */
#include <criterion/criterion.h>
#include <errno.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <stdlib.h>
#include <string.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "bpf/bpf_helpers_test.h"
#include "stun_reflect.skel.h"

static const uint8_t t_mac_client[6] = { 0x02, 0, 0, 0, 0, 0x01 };
static const uint8_t t_mac_server[6] = { 0x02, 0, 0, 0, 0, 0x02 };
static const uint8_t t_ip4_client[4] = { 198, 51, 100, 7 };
static const uint8_t t_ip4_server[4] = { 203, 0, 113, 1 };
static const uint8_t t_ip6_client[16] = { 0x20, 0x01, 0x0d, 0xb8, [15] = 7 };
static const uint8_t t_ip6_server[16] = { 0x20, 0x01, 0x0d, 0xb8, [15] = 1 };

uint32_t t_csum_add(uint32_t s, const uint8_t *p, size_t len)
{
	for (size_t i = 0; i + 1 < len; i += 2) {
		s += (uint32_t)(p[i] << 8 | p[i + 1]);
	}
	if (len & 1) {
		s += (uint32_t)(p[len - 1] << 8);
	}
	return s;
}

uint16_t t_csum_fold(uint32_t s)
{
	while (s >> 16) {
		s = (s & 0xffff) + (s >> 16);
	}
	return (uint16_t)s;
}

static void put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

static uint32_t t_pseudo(const struct t_frame *f, uint16_t ulen)
{
	uint8_t tail[4] = { 0, 0, 0, IPPROTO_UDP };
	uint32_t s = 0;

	if (f->v6) {
		s = t_csum_add(s, f->b + 14 + 8, 32);
		s += ulen;
		s = t_csum_add(s, tail, 4);
	} else {
		s = t_csum_add(s, f->b + 14 + 12, 8);
		s += IPPROTO_UDP;
		s += ulen;
	}
	return s;
}

void t_frame_fix(struct t_frame *f)
{
	uint8_t *u = f->b + f->l4;
	uint16_t ulen = (uint16_t)(u[4] << 8 | u[5]);
	uint16_t c;

	if (!f->v6) {
		size_t ihl = (size_t)(f->b[14] & 0xf) * 4;

		put16(f->b + 14 + 10, 0);
		put16(f->b + 14 + 10, (uint16_t)~t_csum_fold(t_csum_add(0, f->b + 14, ihl)));
	}
	put16(u + 6, 0);
	if (f->l4 + ulen > f->len) {
		return; /* deliberately inconsistent frame: leave the checksum zero */
	}
	c = (uint16_t)~t_csum_fold(t_csum_add(t_pseudo(f, ulen), u, ulen));
	put16(u + 6, c ? c : 0xffff);
}

int t_udp_csum_ok(const struct t_frame *f)
{
	const uint8_t *u = f->b + f->l4;
	uint16_t ulen = (uint16_t)(u[4] << 8 | u[5]);

	if (!(u[6] | u[7]) || f->l4 + ulen > f->len) {
		return 0;
	}
	return t_csum_fold(t_csum_add(t_pseudo(f, ulen), u, ulen)) == 0xffff;
}

void t_frame_build(struct t_frame *f, int v6, const uint8_t *pay, size_t plen, uint16_t sport,
		   uint16_t dport)
{
	uint8_t *p = f->b;
	uint16_t ulen = (uint16_t)(8 + plen);

	memset(f, 0, sizeof(*f));
	f->v6 = v6;
	memcpy(p, t_mac_server, 6);
	memcpy(p + 6, t_mac_client, 6);
	put16(p + 12, v6 ? ETH_P_IPV6 : ETH_P_IP);
	p += 14;
	if (v6) {
		p[0] = 0x60;
		put16(p + 4, ulen);
		p[6] = IPPROTO_UDP;
		p[7] = 64;
		memcpy(p + 8, t_ip6_client, 16);
		memcpy(p + 24, t_ip6_server, 16);
		p += 40;
	} else {
		p[0] = 0x45;
		put16(p + 2, (uint16_t)(20 + ulen));
		put16(p + 4, 0x1234);
		put16(p + 6, 0x4000); /* DF */
		p[8] = 61;
		p[9] = IPPROTO_UDP;
		memcpy(p + 12, t_ip4_client, 4);
		memcpy(p + 16, t_ip4_server, 4);
		p += 20;
	}
	f->l4 = (size_t)(p - f->b);
	put16(p, sport);
	put16(p + 2, dport);
	put16(p + 4, ulen);
	f->pay = f->l4 + 8;
	if (plen) {
		memcpy(f->b + f->pay, pay, plen);
	}
	f->len = f->pay + plen;
	t_frame_fix(f);
}

struct stun_reflect_bpf *t_skel_load_or_skip(const struct natx_bpf_cfg *cfg)
{
	struct stun_reflect_bpf *skel = stun_reflect_bpf__open();
	int err;

	cr_assert_not_null(skel, "opening the skeleton must work without privilege");
	cr_assert_eq(natx_bpf_skel_configure(skel, cfg), 0);
	err = stun_reflect_bpf__load(skel);
	if (err == -EPERM || err == -EACCES) {
		stun_reflect_bpf__destroy(skel);
		cr_skip_test("loading BPF needs CAP_BPF (%s)", strerror(-err));
	}
	cr_assert_eq(err, 0, "load: %s", strerror(-err));
	return skel;
}

void t_counters(struct stun_reflect_bpf *skel, uint64_t out[NATX_STUN_CNT_MAX])
{
	int ncpu = libbpf_num_possible_cpus();
	uint64_t *v = calloc((size_t)ncpu, sizeof(*v));

	cr_assert_not_null(v);
	for (uint32_t k = 0; k < NATX_STUN_CNT_MAX; k++) {
		cr_assert_eq(bpf_map_lookup_elem(bpf_map__fd(skel->maps.natx_stun_cnt), &k, v), 0);
		out[k] = 0;
		for (int c = 0; c < ncpu; c++) {
			out[k] += v[c];
		}
	}
	free(v);
}

int t_run(struct stun_reflect_bpf *skel, const struct t_frame *in, struct t_frame *out)
{
	LIBBPF_OPTS(bpf_test_run_opts, o, .data_in = in->b, .data_size_in = (uint32_t)in->len,
		    .data_out = out->b, .data_size_out = sizeof(out->b), .repeat = 1);
	int err;

	memset(out, 0, sizeof(*out));
	err = bpf_prog_test_run_opts(bpf_program__fd(skel->progs.natx_stun_reflect), &o);
	cr_assert_eq(err, 0, "test run: %s", strerror(-err));
	out->len = o.data_size_out;
	out->v6 = in->v6;
	out->l4 = in->l4;
	out->pay = in->pay;
	return (int)o.retval;
}
