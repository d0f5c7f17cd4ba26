// SPDX-License-Identifier: MIT
/* Unit tests of control/udp_wire.c: the stream messages and direct datagram headers of UDP
 * services between natx nodes (docs/udp-punch.md "Wire formats"). */
#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>

#include "natx/err.h"
#include "udp_wire.h"

static struct udpw_addr addr4(uint8_t a, uint8_t b, uint8_t c, uint8_t d, uint16_t port)
{
	struct udpw_addr x = { .family = 4, .port = port };

	x.addr[0] = a;
	x.addr[1] = b;
	x.addr[2] = c;
	x.addr[3] = d;
	return x;
}

/* roundtrip - build @m, check every proper prefix is -EAGAIN, parse it back into @out. */
static size_t roundtrip(const struct udpw_msg *m, struct udpw_msg *out, uint8_t *buf, size_t cap)
{
	size_t n = 0, used = 0;

	cr_assert_eq(udpw_msg_build(buf, cap, &n, m), 0);
	cr_assert_geq(n, UDPW_HDR_LEN);
	cr_assert_eq(buf[0], m->type);
	cr_assert_eq((size_t)(buf[1] << 8 | buf[2]), n - UDPW_HDR_LEN);
	for (size_t k = 0; k < n; k++) {
		cr_assert_eq(udpw_msg_parse(buf, k, out, &used), -EAGAIN, "prefix %zu of %zu", k,
			     n);
	}
	cr_assert_eq(udpw_msg_parse(buf, n, out, &used), 0);
	cr_assert_eq(used, n);
	cr_assert_eq(out->type, m->type);
	return n;
}

Test(udp_wire, hello_roundtrip_and_layout)
{
	struct udpw_msg m = { .type = UDPW_HELLO }, o;
	uint8_t b[256];
	size_t n;

	for (int i = 0; i < UDPW_SID_LEN; i++) {
		m.hello.sid[i] = (uint8_t)(0xa0 + i);
	}
	for (int i = 0; i < UDPW_KEY_LEN; i++) {
		m.hello.key[i] = (uint8_t)i;
	}
	strcpy(m.hello.name, "echo");
	m.hello.stun = addr4(198, 18, 0, 2, 3478);
	n = roundtrip(&m, &o, b, sizeof(b));
	/* type 1, len, version 1, sid, key, name_len 4 "echo", family 4, port, addr */
	cr_assert_eq(n, 3 + 1 + 8 + 32 + 1 + 4 + 1 + 2 + 4);
	cr_assert_eq(b[3], UDPW_VERSION);
	cr_assert_eq(b[4], 0xa0);
	cr_assert_eq(b[3 + 1 + 8 + 32], 4);
	cr_assert_eq(memcmp(b + 3 + 1 + 8 + 32 + 1, "echo", 4), 0);
	cr_assert_eq(b[n - 7], 4);
	cr_assert_eq(b[n - 6], 3478 >> 8);
	cr_assert_eq(b[n - 5], 3478 & 0xff);
	cr_assert_eq(b[n - 4], 198);
	cr_assert_eq(memcmp(o.hello.sid, m.hello.sid, UDPW_SID_LEN), 0);
	cr_assert_eq(memcmp(o.hello.key, m.hello.key, UDPW_KEY_LEN), 0);
	cr_assert_str_eq(o.hello.name, "echo");
	cr_assert_eq(o.hello.stun.port, 3478);
	cr_assert_eq(memcmp(o.hello.stun.addr, m.hello.stun.addr, 4), 0);
}

Test(udp_wire, cands_ping_sync_result_data_error_roundtrip)
{
	struct udpw_msg m = { .type = UDPW_CANDS }, o;
	uint8_t b[2048], payload[1000];
	size_t n;

	m.cands.n = 2;
	m.cands.a[0] = addr4(198, 18, 1, 2, 40000);
	m.cands.a[1].family = 6;
	m.cands.a[1].port = 1;
	memset(m.cands.a[1].addr, 0xfe, 16);
	n = roundtrip(&m, &o, b, sizeof(b));
	cr_assert_eq(n, 3 + 1 + 7 + 19);
	cr_assert_eq(o.cands.n, 2);
	cr_assert_eq(o.cands.a[0].port, 40000);
	cr_assert_eq(o.cands.a[1].family, 6);
	cr_assert_eq(memcmp(o.cands.a[1].addr, m.cands.a[1].addr, 16), 0);

	m = (struct udpw_msg){ .type = UDPW_PING, .stamp = 0x0102030405060708ULL };
	cr_assert_eq(roundtrip(&m, &o, b, sizeof(b)), 11);
	cr_assert_eq(o.stamp, 0x0102030405060708ULL);
	m.type = UDPW_PONG;
	roundtrip(&m, &o, b, sizeof(b));
	cr_assert_eq(o.stamp, m.stamp);

	m = (struct udpw_msg){ .type = UDPW_SYNC, .round = 3 };
	cr_assert_eq(roundtrip(&m, &o, b, sizeof(b)), 7);
	cr_assert_eq(o.round, 3);

	m = (struct udpw_msg){ .type = UDPW_RESULT };
	m.result.direct = true;
	m.result.peer = addr4(198, 18, 2, 2, 5555);
	strcpy(m.result.reason, "punched in 12 ms");
	roundtrip(&m, &o, b, sizeof(b));
	cr_assert(o.result.direct);
	cr_assert_eq(o.result.peer.port, 5555);
	cr_assert_str_eq(o.result.reason, "punched in 12 ms");
	m.result.direct = false;
	n = roundtrip(&m, &o, b, sizeof(b));
	cr_assert_eq(n, 3 + 1 + 1 + strlen("punched in 12 ms"));
	cr_assert_not(o.result.direct);

	for (size_t i = 0; i < sizeof(payload); i++) {
		payload[i] = (uint8_t)(i * 13);
	}
	m = (struct udpw_msg){ .type = UDPW_DATA };
	m.data.flow = 0xdeadbeef;
	m.data.data = payload;
	m.data.len = sizeof(payload);
	n = roundtrip(&m, &o, b, sizeof(b));
	cr_assert_eq(n, 3 + 4 + sizeof(payload));
	cr_assert_eq(o.data.flow, 0xdeadbeef);
	cr_assert_eq(o.data.len, sizeof(payload));
	cr_assert_eq(memcmp(o.data.data, payload, sizeof(payload)), 0);
	cr_assert(o.data.data >= b && o.data.data < b + n, "DATA borrows from the buffer");
	{
		uint8_t h[UDPW_HDR_LEN + 4];

		udpw_data_hdr_build(h, 0xdeadbeef, sizeof(payload));
		cr_assert_eq(memcmp(h, b, sizeof(h)), 0,
			     "the fast-path header matches the builder");
	}
	m.data.len = 0;
	cr_assert_eq(roundtrip(&m, &o, b, sizeof(b)), 7);
	cr_assert_eq(o.data.len, 0);

	m = (struct udpw_msg){ .type = UDPW_ERROR };
	strcpy(m.error, "no UDP service x");
	roundtrip(&m, &o, b, sizeof(b));
	cr_assert_str_eq(o.error, "no UDP service x");
}

Test(udp_wire, two_messages_in_one_buffer)
{
	struct udpw_msg a = { .type = UDPW_SYNC, .round = 1 },
			c = { .type = UDPW_PING, .stamp = 9 };
	struct udpw_msg o;
	uint8_t b[64];
	size_t n1, n2, used;

	cr_assert_eq(udpw_msg_build(b, sizeof(b), &n1, &a), 0);
	cr_assert_eq(udpw_msg_build(b + n1, sizeof(b) - n1, &n2, &c), 0);
	cr_assert_eq(udpw_msg_parse(b, n1 + n2, &o, &used), 0);
	cr_assert_eq(used, n1);
	cr_assert_eq(o.round, 1);
	cr_assert_eq(udpw_msg_parse(b + used, n1 + n2 - used, &o, &used), 0);
	cr_assert_eq(o.stamp, 9);
}

/* parse_raw - parse @n bytes given as a literal. */
static int parse_raw(const uint8_t *b, size_t n)
{
	struct udpw_msg o;
	size_t used;

	return udpw_msg_parse(b, n, &o, &used);
}

Test(udp_wire, malformed_messages_are_refused)
{
	/* unknown types are refused from the header alone */
	static const uint8_t t0[] = { 0, 0, 0 }, t9[] = { 9, 0, 0 }, tff[] = { 0xff, 0xff, 0xff };
	/* SYNC with a trailing byte; PING one byte short of its body (complete frame) */
	static const uint8_t sync_long[] = { UDPW_SYNC, 0, 5, 0, 0, 0, 1, 7 };
	static const uint8_t ping_short[] = { UDPW_PING, 0, 7, 0, 0, 0, 0, 0, 0, 0 };
	/* CANDS: 9 candidates; bad family 5; truncated address */
	static const uint8_t cands_many[] = { UDPW_CANDS, 0, 1, 9 };
	static const uint8_t cands_fam[] = { UDPW_CANDS, 0, 8, 1, 5, 0, 1, 1, 2, 3, 4 };
	static const uint8_t cands_trunc[] = { UDPW_CANDS, 0, 5, 1, 4, 0, 1, 1 };
	/* RESULT direct = 2; reason with a control character; reason longer than its frame */
	static const uint8_t res_bad[] = { UDPW_RESULT, 0, 2, 2, 0 };
	static const uint8_t res_ctl[] = { UDPW_RESULT, 0, 3, 0, 1, '\n' };
	static const uint8_t res_len[] = { UDPW_RESULT, 0, 3, 0, 5, 'a' };
	/* DATA without its flow id; ERROR with a NUL */
	static const uint8_t data_short[] = { UDPW_DATA, 0, 3, 0, 0, 1 };
	static const uint8_t err_nul[] = { UDPW_ERROR, 0, 2, 'a', 0 };
	uint8_t hello[64];
	struct udpw_msg m = { .type = UDPW_HELLO };
	size_t n;

	cr_assert_eq(parse_raw(t0, sizeof(t0)), -NATX_E_PROTO);
	cr_assert_eq(parse_raw(t9, sizeof(t9)), -NATX_E_PROTO);
	cr_assert_eq(parse_raw(tff, 1), -EAGAIN, "one byte: header not complete");
	cr_assert_eq(parse_raw(tff, sizeof(tff)), -NATX_E_PROTO);
	cr_assert_eq(parse_raw(sync_long, sizeof(sync_long)), -NATX_E_PROTO);
	cr_assert_eq(parse_raw(ping_short, sizeof(ping_short)), -NATX_E_PROTO);
	cr_assert_eq(parse_raw(cands_many, sizeof(cands_many)), -NATX_E_PROTO);
	cr_assert_eq(parse_raw(cands_fam, sizeof(cands_fam)), -NATX_E_PROTO);
	cr_assert_eq(parse_raw(cands_trunc, sizeof(cands_trunc)), -NATX_E_PROTO);
	cr_assert_eq(parse_raw(res_bad, sizeof(res_bad)), -NATX_E_PROTO);
	cr_assert_eq(parse_raw(res_ctl, sizeof(res_ctl)), -NATX_E_PROTO);
	cr_assert_eq(parse_raw(res_len, sizeof(res_len)), -NATX_E_PROTO);
	cr_assert_eq(parse_raw(data_short, sizeof(data_short)), -NATX_E_PROTO);
	cr_assert_eq(parse_raw(err_nul, sizeof(err_nul)), -NATX_E_PROTO);

	/* HELLO: wrong version, empty name, name with a space */
	strcpy(m.hello.name, "x");
	m.hello.stun = addr4(1, 2, 3, 4, 5);
	cr_assert_eq(udpw_msg_build(hello, sizeof(hello), &n, &m), 0);
	cr_assert_eq(parse_raw(hello, n), 0);
	hello[3] = 2;
	cr_assert_eq(parse_raw(hello, n), -NATX_E_PROTO, "version 2");
	hello[3] = 1;
	hello[3 + 1 + 8 + 32 + 1] = ' ';
	cr_assert_eq(parse_raw(hello, n), -NATX_E_PROTO, "a space in the name");
}

Test(udp_wire, build_refuses_what_parse_would)
{
	struct udpw_msg m = { .type = UDPW_CANDS };
	uint8_t b[64];
	static uint8_t big[UDPW_DATA_MAX + 1];
	size_t n;

	m.cands.n = UDPW_CANDS_MAX + 1;
	cr_assert_eq(udpw_msg_build(b, sizeof(b), &n, &m), -EINVAL);
	m.cands.n = 1;
	m.cands.a[0].family = 5;
	cr_assert_eq(udpw_msg_build(b, sizeof(b), &n, &m), -EINVAL);
	m = (struct udpw_msg){ .type = UDPW_HELLO };
	m.hello.stun = addr4(1, 2, 3, 4, 5);
	cr_assert_eq(udpw_msg_build(b, sizeof(b), &n, &m), -EINVAL, "empty name");
	strcpy(m.hello.name, "a\tb");
	cr_assert_eq(udpw_msg_build(b, sizeof(b), &n, &m), -EINVAL, "control character");
	strcpy(m.hello.name, "ok");
	cr_assert_eq(udpw_msg_build(b, 20, &n, &m), -ENOSPC, "no room");
	m = (struct udpw_msg){ .type = UDPW_DATA,
			       .data = { .flow = 1, .data = big, .len = sizeof(big) } };
	cr_assert_eq(udpw_msg_build(b, sizeof(b), &n, &m), -EINVAL);
	m = (struct udpw_msg){ .type = 42 };
	cr_assert_eq(udpw_msg_build(b, sizeof(b), &n, &m), -EINVAL);
	cr_assert_eq(udpw_msg_build(b, 2, &n, &m), -ENOSPC);
}

Test(udp_wire, direct_datagram_header)
{
	static const uint8_t sid[UDPW_SID_LEN] = { 1, 2, 3, 4, 5, 6, 7, 8 };
	uint8_t b[UDPW_DGRAM_HDR_LEN + UDPW_DGRAM_TAG_LEN + 3] = { 0 };
	struct udpw_dgram d;

	udpw_dgram_hdr_build(b, sid, 0x11223344, 0x0102030405060708ULL);
	cr_assert_eq(memcmp(b, "\x0dNXD", 4), 0);
	cr_assert(udpw_dgram_is(b, sizeof(b)));
	cr_assert_eq(udpw_dgram_parse(b, sizeof(b), &d), 0);
	cr_assert_eq(memcmp(d.sid, sid, sizeof(sid)), 0);
	cr_assert_eq(d.flow, 0x11223344);
	cr_assert_eq(d.seq, 0x0102030405060708ULL);
	cr_assert_eq(d.sealed, b + UDPW_DGRAM_HDR_LEN);
	cr_assert_eq(d.sealed_len, UDPW_DGRAM_TAG_LEN + 3);
	cr_assert_eq(udpw_dgram_parse(b, UDPW_DGRAM_HDR_LEN + UDPW_DGRAM_TAG_LEN - 1, &d),
		     -NATX_E_PROTO, "shorter than header + tag");
	b[3] = 'X';
	cr_assert_not(udpw_dgram_is(b, sizeof(b)));
	cr_assert_eq(udpw_dgram_parse(b, sizeof(b), &d), -NATX_E_PROTO, "wrong magic");
	cr_assert_not(udpw_dgram_is(b, 3));
}

Test(udp_wire, addr_fmt)
{
	struct udpw_addr a = addr4(198, 18, 0, 2, 3478);
	char s[64];

	udpw_addr_fmt(&a, s, sizeof(s));
	cr_assert_str_eq(s, "198.18.0.2:3478");
	a.family = 6;
	memset(a.addr, 0, 16);
	a.addr[15] = 1;
	udpw_addr_fmt(&a, s, sizeof(s));
	cr_assert_str_eq(s, "[::1]:3478");
	cr_assert_str_eq(udpw_type_name(UDPW_RESULT), "RESULT");
	cr_assert_str_eq(udpw_type_name(200), "?");
}
