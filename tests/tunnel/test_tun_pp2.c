// SPDX-License-Identifier: MIT
/*
 * PROXY protocol v2 header (engine/tunnel/tun_pp2.c), checked byte for byte against the
 * layout of haproxy doc/proxy-protocol.txt section 2.2.
 */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>

#include "natx/err.h"
#include "tun_pp2.h"

static const uint8_t sig[12] = { 0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d,
				 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a };

Test(tun_pp2, tcp4_header_bytes)
{
	struct tun_addr src = { 4, 51000, { 203, 0, 113, 9 } }, dst = { 4, 443, { 192, 0, 2, 1 } };
	const uint8_t want_tail[] = { 0x21, 0x11, 0x00, 0x0c, 203,  0,	  113,	9,
				      192,  0,	  2,	1,    0xc7, 0x38, 0x01, 0xbb };
	uint8_t out[64];
	struct wr w;

	wr_init(&w, out, sizeof(out));
	cr_assert_eq(tun_pp2_write(&w, false, &src, &dst), 0);
	cr_assert_eq((size_t)(w.p - out), TUN_PP2_V4_LEN);
	cr_assert_arr_eq(out, sig, 12);
	cr_assert_arr_eq(out + 12, want_tail, sizeof(want_tail));
}

Test(tun_pp2, udp6_and_mixed_families_round_trip)
{
	struct tun_addr src = { 6, 5353, { 0x20, 0x01, 0x0d, 0xb8, [15] = 7 } },
			dst = { 4, 53, { 192, 0, 2, 53 } }, s2, d2;
	uint8_t out[64];
	size_t used;
	bool udp;
	struct wr w;

	wr_init(&w, out, sizeof(out));
	cr_assert_eq(tun_pp2_write(&w, true, &src, &dst), 0);
	cr_assert_eq((size_t)(w.p - out), TUN_PP2_V6_LEN);
	cr_assert_eq(out[13], 0x22);
	cr_assert_eq(tun_pp2_read(out, (size_t)(w.p - out), &s2, &d2, &udp, &used), 0);
	cr_assert(udp);
	cr_assert_eq(used, TUN_PP2_V6_LEN);
	cr_assert_arr_eq(s2.addr, src.addr, 16);
	cr_assert_eq(s2.port, 5353);
	/* the IPv4 destination comes back v4-mapped */
	cr_assert_arr_eq(d2.addr, "\0\0\0\0\0\0\0\0\0\0\xff\xff\xc0\x00\x02\x35", 16);
	cr_assert_eq(d2.port, 53);
	for (size_t i = 0; i < used; i++) {
		cr_assert_eq(tun_pp2_read(out, i, &s2, &d2, &udp, &used), -EAGAIN, "prefix %zu", i);
		used = TUN_PP2_V6_LEN;
	}
}

Test(tun_pp2, garbage_is_refused_and_bad_families_rejected)
{
	struct tun_addr a = { 4, 1, { 1, 2, 3, 4 } }, bad = { 5, 1, { 0 } }, s, d;
	uint8_t out[64] = "GET / HTTP/1.1\r\n\r\n";
	size_t used;
	bool udp;
	struct wr w;

	cr_assert_eq(tun_pp2_read(out, 18, &s, &d, &udp, &used), -NATX_E_PROTO);
	wr_init(&w, out, sizeof(out));
	cr_assert_eq(tun_pp2_write(&w, false, &a, &bad), -EINVAL);
	wr_init(&w, out, 20);
	cr_assert_eq(tun_pp2_write(&w, false, &a, &a), -NATX_E_TOO_BIG);
	wr_init(&w, out, sizeof(out));
	cr_assert_eq(tun_pp2_write(&w, false, &a, &a), 0);
	out[12] = 0x20; /* LOCAL command */
	cr_assert_eq(tun_pp2_read(out, TUN_PP2_V4_LEN, &s, &d, &udp, &used), -NATX_E_PROTO);
}

Test(tun_pp2, sockaddr_conversion_round_trips)
{
	struct sockaddr_in6 in6 = { .sin6_family = AF_INET6, .sin6_port = htons(8443) };
	struct sockaddr_storage ss;
	struct tun_addr a;
	socklen_t len;

	inet_pton(AF_INET6, "2001:db8::42", &in6.sin6_addr);
	cr_assert_eq(tun_addr_from_sockaddr(&a, (struct sockaddr *)&in6, sizeof(in6)), 0);
	cr_assert_eq(a.family, 6);
	cr_assert_eq(a.port, 8443);
	cr_assert_eq(tun_addr_to_sockaddr(&a, &ss, &len), 0);
	cr_assert_eq(len, sizeof(in6));
	cr_assert_arr_eq(&((struct sockaddr_in6 *)&ss)->sin6_addr, &in6.sin6_addr, 16);
	cr_assert_eq(tun_addr_from_sockaddr(&a, (struct sockaddr *)&in6, 4), -EINVAL);
}
