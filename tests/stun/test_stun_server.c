// SPDX-License-Identifier: MIT
/*
 * User-space responder: the per-datagram decision over the shared fixture table (counters,
 * answers), the rate limit, and one real round trip over loopback.
 */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <netinet/in.h>
#include <string.h>
#include <unistd.h>

#include "stun/stun_fixtures.h"
#include "stun_server.h"

TestSuite(stun_server, .timeout = 20);

static struct sockaddr_in peer4(uint8_t last, uint16_t port)
{
	struct sockaddr_in in = { .sin_family = AF_INET, .sin_port = htons(port) };

	in.sin_addr.s_addr = htonl(0xc6336400u | last); /* 198.51.100.x */
	return in;
}

Test(stun_server, fixture_table_answers_and_counts_like_the_policy_says)
{
	struct stun_server s = { .fd = -1 };
	struct sockaddr_in src = peer4(7, 40000);
	uint8_t out[256];
	size_t n;

	for (size_t i = 0; i < STUN_FIXTURES_N; i++) {
		const struct stun_fixture *fx = &stun_fixtures[i];
		uint64_t before[NATX_STUN_CNT_MAX];
		struct stun_msg m;
		int r;

		memcpy(before, s.counters, sizeof(before));
		r = stun_server_respond(&s, fx->msg, fx->len, (struct sockaddr *)&src, 0, out,
					sizeof(out), &n);
		switch (fx->expect) {
		case FX_ANSWER:
		case FX_ANSWER_FP:
		case FX_420:
		case FX_420_FP:
			cr_assert_eq(r, 1, "%s", fx->name);
			cr_assert_eq(s.counters[NATX_STUN_CNT_ANSWERED],
				     before[NATX_STUN_CNT_ANSWERED] + 1, "%s", fx->name);
			cr_assert_eq(stun_msg_parse(&m, out, n), 0, "%s", fx->name);
			cr_assert_arr_eq(m.txid, fx->msg + 8, STUN_TXID_LEN, "%s", fx->name);
			cr_assert_eq(m.fingerprint,
				     fx->expect == FX_ANSWER_FP || fx->expect == FX_420_FP, "%s",
				     fx->name);
			if (fx->expect == FX_ANSWER || fx->expect == FX_ANSWER_FP) {
				cr_assert_eq(m.type, STUN_BINDING_SUCCESS, "%s", fx->name);
				cr_assert_eq(m.xor_mapped.port, 40000);
				cr_assert_eq(memcmp(m.xor_mapped.addr, &src.sin_addr, 4), 0);
			} else {
				cr_assert_eq(m.type, STUN_BINDING_ERROR, "%s", fx->name);
			}
			break;
		case FX_PASS:
			cr_assert_eq(r, 0, "%s", fx->name);
			cr_assert_eq(s.counters[NATX_STUN_CNT_PASSED],
				     before[NATX_STUN_CNT_PASSED] + 1, "%s", fx->name);
			break;
		case FX_MALFORMED:
			cr_assert_eq(r, 0, "%s", fx->name);
			cr_assert_eq(s.counters[NATX_STUN_CNT_MALFORMED],
				     before[NATX_STUN_CNT_MALFORMED] + 1, "%s", fx->name);
			break;
		}
	}
}

Test(stun_server, v4_mapped_ipv6_source_is_answered_as_ipv4)
{
	struct stun_server s = { .fd = -1 };
	struct sockaddr_in6 src = { .sin6_family = AF_INET6, .sin6_port = htons(1234) };
	static const uint8_t want[4] = { 203, 0, 113, 9 };
	uint8_t out[256];
	struct stun_msg m;
	size_t n;

	inet_pton(AF_INET6, "::ffff:203.0.113.9", &src.sin6_addr);
	cr_assert_eq(stun_server_respond(&s, stun_fixtures[0].msg, stun_fixtures[0].len,
					 (struct sockaddr *)&src, 0, out, sizeof(out), &n),
		     1);
	cr_assert_eq(n, STUN_RESP4_LEN);
	cr_assert_eq(stun_msg_parse(&m, out, n), 0);
	cr_assert_eq(m.xor_mapped.family, STUN_FAMILY_IPV4);
	cr_assert_arr_eq(m.xor_mapped.addr, want, 4);
}

Test(stun_server, flood_from_one_source_is_limited_another_source_still_answered)
{
	struct stun_server s = { .fd = -1 };
	struct sockaddr_in a = peer4(1, 5000), b = peer4(2, 5000);
	uint8_t out[256];
	size_t n;
	int answered = 0;

	cr_assert_eq(stun_rl_init(&s.rl, 100, 10, 1024), 0);
	for (int i = 0; i < 1000; i++) {
		answered += stun_server_respond(&s, stun_fixtures[0].msg, stun_fixtures[0].len,
						(struct sockaddr *)&a, 1000000000ull, out,
						sizeof(out), &n);
	}
	cr_assert_eq(answered, 10, "burst of 10 at one instant");
	cr_assert_eq(s.counters[NATX_STUN_CNT_RATE_LIMITED], 990);
	cr_assert_eq(stun_server_respond(&s, stun_fixtures[0].msg, stun_fixtures[0].len,
					 (struct sockaddr *)&b, 1000000000ull, out, sizeof(out),
					 &n),
		     1);
	/* 50 ms later source a has earned 5 tokens. */
	answered = 0;
	for (int i = 0; i < 100; i++) {
		answered += stun_server_respond(&s, stun_fixtures[0].msg, stun_fixtures[0].len,
						(struct sockaddr *)&a, 1050000000ull, out,
						sizeof(out), &n);
	}
	cr_assert_eq(answered, 5);
	stun_rl_cleanup(&s.rl);
}

Test(stun_server, answers_over_loopback)
{
	struct sockaddr_storage ss, bound;
	socklen_t len, blen = sizeof(bound);
	struct stun_server s;
	uint8_t rx[256];
	struct stun_msg m;
	struct sockaddr_in me;
	socklen_t mlen = sizeof(me);
	ssize_t r;
	int c;

	cr_assert_eq(stun_sockaddr_parse("127.0.0.1:0", &ss, &len), 0);
	cr_assert_eq(stun_server_init(&s, (struct sockaddr *)&ss, len, 0, 0), 0);
	cr_assert_eq(getsockname(s.fd, (struct sockaddr *)&bound, &blen), 0);
	c = socket(AF_INET, SOCK_DGRAM, 0);
	cr_assert_geq(c, 0);
	cr_assert_eq(connect(c, (struct sockaddr *)&bound, blen), 0);
	cr_assert_eq(getsockname(c, (struct sockaddr *)&me, &mlen), 0);
	cr_assert_eq(send(c, stun_fixtures[1].msg, stun_fixtures[1].len, 0),
		     (ssize_t)stun_fixtures[1].len);
	cr_assert_eq(stun_server_poll(&s, 2000), 1);
	r = recv(c, rx, sizeof(rx), 0);
	cr_assert_eq(r, STUN_RESP4_LEN + STUN_FINGERPRINT_LEN);
	cr_assert_eq(stun_msg_parse(&m, rx, (size_t)r), 0);
	cr_assert(m.fingerprint);
	cr_assert_eq(m.xor_mapped.port, ntohs(me.sin_port));
	cr_assert_eq(memcmp(m.xor_mapped.addr, &me.sin_addr, 4), 0);
	cr_assert_eq(s.counters[NATX_STUN_CNT_ANSWERED], 1);
	close(c);
	stun_server_cleanup(&s);
}

Test(stun_server, sockaddr_parse_accepts_both_families_and_rejects_garbage)
{
	struct sockaddr_storage ss;
	socklen_t len;
	char buf[80];

	cr_assert_eq(stun_sockaddr_parse("10.1.2.3:3478", &ss, &len), 0);
	stun_sockaddr_format((struct sockaddr *)&ss, buf, sizeof(buf));
	cr_assert_str_eq(buf, "10.1.2.3:3478");
	cr_assert_eq(stun_sockaddr_parse("[fd00::1]:0", &ss, &len), 0);
	stun_sockaddr_format((struct sockaddr *)&ss, buf, sizeof(buf));
	cr_assert_str_eq(buf, "[fd00::1]:0");
	cr_assert_eq(stun_sockaddr_parse("10.1.2.3", &ss, &len), -EINVAL);
	cr_assert_eq(stun_sockaddr_parse("10.1.2.3:65536", &ss, &len), -EINVAL);
	cr_assert_eq(stun_sockaddr_parse("[fd00::1:1", &ss, &len), -EINVAL);
	cr_assert_eq(stun_sockaddr_parse("host:1", &ss, &len), -EINVAL);
	cr_assert_eq(stun_sockaddr_parse("1.2.3.4:x", &ss, &len), -EINVAL);
}
