// SPDX-License-Identifier: MIT
/*
 * STUN parser/builder: RFC 5769 test vectors, the shared fixture table (stun_fixtures.h),
 * truncation of every prefix, builder round trips.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>

#include "natx/err.h"
#include "stun/stun_fixtures.h"
#include "stun_msg.h"

TestSuite(stun_msg, .timeout = 10);

/*
 * RFC 5769 ("Test Vectors for STUN", April 2010) §2.1 sample request, §2.2 IPv4 and §2.3 IPv6
 * sample responses, byte for byte. Padding of SOFTWARE/USERNAME is 0x20, as in the RFC.
 */
static const uint8_t rfc5769_req[] = {
	0x00, 0x01, 0x00, 0x58, 0x21, 0x12, 0xa4, 0x42, 0xb7, 0xe7, 0xa7, 0x01, 0xbc, 0x34,
	0xd6, 0x86, 0xfa, 0x87, 0xdf, 0xae, 0x80, 0x22, 0x00, 0x10, 0x53, 0x54, 0x55, 0x4e,
	0x20, 0x74, 0x65, 0x73, 0x74, 0x20, 0x63, 0x6c, 0x69, 0x65, 0x6e, 0x74, 0x00, 0x24,
	0x00, 0x04, 0x6e, 0x00, 0x01, 0xff, 0x80, 0x29, 0x00, 0x08, 0x93, 0x2f, 0xf9, 0xb1,
	0x51, 0x26, 0x3b, 0x36, 0x00, 0x06, 0x00, 0x09, 0x65, 0x76, 0x74, 0x6a, 0x3a, 0x68,
	0x36, 0x76, 0x59, 0x20, 0x20, 0x20, 0x00, 0x08, 0x00, 0x14, 0x9a, 0xea, 0xa7, 0x0c,
	0xbf, 0xd8, 0xcb, 0x56, 0x78, 0x1e, 0xf2, 0xb5, 0xb2, 0xd3, 0xf2, 0x49, 0xc1, 0xb5,
	0x71, 0xa2, 0x80, 0x28, 0x00, 0x04, 0xe5, 0x7a, 0x3b, 0xcf,
};
static const uint8_t rfc5769_resp4[] = {
	0x01, 0x01, 0x00, 0x3c, 0x21, 0x12, 0xa4, 0x42, 0xb7, 0xe7, 0xa7, 0x01, 0xbc, 0x34,
	0xd6, 0x86, 0xfa, 0x87, 0xdf, 0xae, 0x80, 0x22, 0x00, 0x0b, 0x74, 0x65, 0x73, 0x74,
	0x20, 0x76, 0x65, 0x63, 0x74, 0x6f, 0x72, 0x20, 0x00, 0x20, 0x00, 0x08, 0x00, 0x01,
	0xa1, 0x47, 0xe1, 0x12, 0xa6, 0x43, 0x00, 0x08, 0x00, 0x14, 0x2b, 0x91, 0xf5, 0x99,
	0xfd, 0x9e, 0x90, 0xc3, 0x8c, 0x74, 0x89, 0xf9, 0x2a, 0xf9, 0xba, 0x53, 0xf0, 0x6b,
	0xe7, 0xd7, 0x80, 0x28, 0x00, 0x04, 0xc0, 0x7d, 0x4c, 0x96,
};
static const uint8_t rfc5769_resp6[] = {
	0x01, 0x01, 0x00, 0x48, 0x21, 0x12, 0xa4, 0x42, 0xb7, 0xe7, 0xa7, 0x01, 0xbc, 0x34,
	0xd6, 0x86, 0xfa, 0x87, 0xdf, 0xae, 0x80, 0x22, 0x00, 0x0b, 0x74, 0x65, 0x73, 0x74,
	0x20, 0x76, 0x65, 0x63, 0x74, 0x6f, 0x72, 0x20, 0x00, 0x20, 0x00, 0x14, 0x00, 0x02,
	0xa1, 0x47, 0x01, 0x13, 0xa9, 0xfa, 0xa5, 0xd3, 0xf1, 0x79, 0xbc, 0x25, 0xf4, 0xb5,
	0xbe, 0xd2, 0xb9, 0xd9, 0x00, 0x08, 0x00, 0x14, 0xa3, 0x82, 0x95, 0x4e, 0x4b, 0xe6,
	0x7b, 0xf1, 0x17, 0x84, 0xc9, 0x7c, 0x82, 0x92, 0xc2, 0x75, 0xbf, 0xe3, 0xed, 0x41,
	0x80, 0x28, 0x00, 0x04, 0xc8, 0xfb, 0x0b, 0x4c,
};

Test(stun_msg, crc32_matches_the_standard_check_value)
{
	/* The CRC-32/ISO-HDLC check value of "123456789" (as zlib's crc32). */
	cr_assert_eq(stun_crc32((const uint8_t *)"123456789", 9), 0xcbf43926u);
	cr_assert_eq(stun_crc32(NULL, 0), 0);
}

Test(stun_msg, rfc5769_request_parses_with_fingerprint_and_needs_420)
{
	struct stun_msg m;

	cr_assert_eq(stun_msg_parse(&m, rfc5769_req, sizeof(rfc5769_req)), 0);
	cr_assert_eq(m.type, STUN_BINDING_REQUEST);
	cr_assert(m.fingerprint);
	/* PRIORITY (0x0024), USERNAME (0x0006), MESSAGE-INTEGRITY (0x0008) are not ours. */
	cr_assert_eq(m.n_unknown, 3);
	cr_assert_eq(m.unknown[0], 0x0024);
	cr_assert_eq(m.unknown[1], 0x0006);
	cr_assert_eq(m.unknown[2], 0x0008);
	cr_assert_eq(stun_request_judge(&m), STUN_V_UNKNOWN);
}

Test(stun_msg, rfc5769_ipv4_response_decodes_192_0_2_1_port_32853)
{
	static const uint8_t want[4] = { 192, 0, 2, 1 };
	struct stun_msg m;

	cr_assert_eq(stun_msg_parse(&m, rfc5769_resp4, sizeof(rfc5769_resp4)), 0);
	cr_assert_eq(m.type, STUN_BINDING_SUCCESS);
	cr_assert(m.fingerprint);
	cr_assert(m.has_xor_mapped);
	cr_assert_eq(m.xor_mapped.family, STUN_FAMILY_IPV4);
	cr_assert_eq(m.xor_mapped.port, 32853);
	cr_assert_arr_eq(m.xor_mapped.addr, want, 4);
	cr_assert_eq(stun_request_judge(&m), STUN_V_IGNORE);
}

Test(stun_msg, rfc5769_ipv6_response_decodes_2001_db8)
{
	static const uint8_t want[16] = { 0x20, 0x01, 0x0d, 0xb8, 0x12, 0x34, 0x56, 0x78,
					  0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77 };
	struct stun_msg m;

	cr_assert_eq(stun_msg_parse(&m, rfc5769_resp6, sizeof(rfc5769_resp6)), 0);
	cr_assert(m.fingerprint);
	cr_assert_eq(m.xor_mapped.family, STUN_FAMILY_IPV6);
	cr_assert_eq(m.xor_mapped.port, 32853);
	cr_assert_arr_eq(m.xor_mapped.addr, want, 16);
}

Test(stun_msg, rfc5769_vectors_with_one_flipped_bit_fail_the_fingerprint)
{
	uint8_t buf[sizeof(rfc5769_resp4)];
	struct stun_msg m;

	/* Flip a bit inside the SOFTWARE value: framing stays valid, only the CRC breaks. */
	memcpy(buf, rfc5769_resp4, sizeof(buf));
	buf[26] ^= 0x01;
	cr_assert_eq(stun_msg_parse(&m, buf, sizeof(buf)), -NATX_E_PROTO);
}

Test(stun_msg, fixture_table_gets_the_expected_verdict)
{
	for (size_t i = 0; i < STUN_FIXTURES_N; i++) {
		const struct stun_fixture *fx = &stun_fixtures[i];
		struct stun_msg m;
		int err = stun_msg_parse(&m, fx->msg, fx->len);

		switch (fx->expect) {
		case FX_ANSWER:
		case FX_ANSWER_FP:
			cr_assert_eq(err, 0, "%s: parse %d", fx->name, err);
			cr_assert_eq(stun_request_judge(&m), STUN_V_ANSWER, "%s", fx->name);
			cr_assert_eq(m.fingerprint, fx->expect == FX_ANSWER_FP, "%s", fx->name);
			break;
		case FX_420:
		case FX_420_FP:
			cr_assert_eq(err, 0, "%s: parse %d", fx->name, err);
			cr_assert_eq(stun_request_judge(&m), STUN_V_UNKNOWN, "%s", fx->name);
			cr_assert_eq(m.fingerprint, fx->expect == FX_420_FP, "%s", fx->name);
			break;
		case FX_PASS:
			cr_assert(err == -ENOMSG ||
					  (!err && stun_request_judge(&m) == STUN_V_IGNORE),
				  "%s: %d", fx->name, err);
			break;
		case FX_MALFORMED:
			cr_assert_eq(err, -NATX_E_PROTO, "%s: %d", fx->name, err);
			break;
		}
	}
}

Test(stun_msg, every_truncation_of_a_valid_request_is_rejected)
{
	const struct stun_fixture *fx = &stun_fixtures[2]; /* SOFTWARE + FINGERPRINT */
	struct stun_msg m;

	cr_assert_eq(fx->expect, FX_ANSWER_FP);
	for (size_t len = 0; len < fx->len; len++) {
		int err = stun_msg_parse(&m, fx->msg, len);

		cr_assert(err == -NATX_E_PROTO || (len == 0 && err == -ENOMSG), "len %zu: %d", len,
			  err);
	}
	cr_assert_eq(stun_msg_parse(&m, fx->msg, fx->len), 0);
}

static void check_success(const uint8_t *buf, size_t n, const struct stun_addr *src, bool fp)
{
	struct stun_msg m;

	cr_assert_eq(stun_msg_parse(&m, buf, n), 0);
	cr_assert_eq(m.type, STUN_BINDING_SUCCESS);
	cr_assert_eq(m.fingerprint, fp);
	cr_assert(m.has_xor_mapped && m.has_mapped);
	cr_assert_eq(m.xor_mapped.family, src->family);
	cr_assert_eq(m.xor_mapped.port, src->port);
	cr_assert_arr_eq(m.xor_mapped.addr, src->addr, 16);
	cr_assert_eq(m.mapped.family, src->family);
	cr_assert_eq(m.mapped.port, src->port);
	cr_assert_arr_eq(m.mapped.addr, src->addr, 16);
}

Test(stun_msg, success_response_round_trips_ipv4_and_ipv6_with_and_without_fingerprint)
{
	struct stun_addr a4 = { .family = STUN_FAMILY_IPV4,
				.port = 40000,
				.addr = { 198, 51, 100, 7 } };
	struct stun_addr a6 = { .family = STUN_FAMILY_IPV6,
				.port = 1,
				.addr = { 0x20, 0x01, 0x0d, 0xb8, [15] = 0x42 } };
	uint8_t out[STUN_RESP_MAX_LEN];
	struct stun_msg req;
	size_t n;

	cr_assert_eq(stun_msg_parse(&req, stun_fixtures[0].msg, stun_fixtures[0].len), 0);
	cr_assert_eq(stun_binding_success_build(out, sizeof(out), &n, &req, &a4), 0);
	cr_assert_eq(n, STUN_RESP4_LEN);
	cr_assert_arr_eq(out + 8, req.txid, STUN_TXID_LEN);
	check_success(out, n, &a4, false);
	cr_assert_eq(stun_binding_success_build(out, sizeof(out), &n, &req, &a6), 0);
	cr_assert_eq(n, STUN_RESP6_LEN);
	check_success(out, n, &a6, false);

	cr_assert_eq(stun_msg_parse(&req, stun_fixtures[1].msg, stun_fixtures[1].len), 0);
	cr_assert_eq(stun_binding_success_build(out, sizeof(out), &n, &req, &a4), 0);
	cr_assert_eq(n, STUN_RESP4_LEN + STUN_FINGERPRINT_LEN);
	check_success(out, n, &a4, true);
	cr_assert_eq(stun_binding_success_build(out, sizeof(out), &n, &req, &a6), 0);
	cr_assert_eq(n, STUN_RESP_MAX_LEN);
	check_success(out, n, &a6, true);
	/* Too small a buffer is an error, not an overflow. */
	cr_assert_eq(stun_binding_success_build(out, STUN_RESP6_LEN, &n, &req, &a6),
		     -NATX_E_TOO_BIG);
}

Test(stun_msg, xor_mapped_address_bytes_follow_rfc8489)
{
	/* 192.0.2.1:32853 with the RFC 5769 transaction id must give "00 01 a1 47 e1 12 a6 43". */
	static const uint8_t want[] = { 0x00, 0x20, 0x00, 0x08, 0x00, 0x01,
					0xa1, 0x47, 0xe1, 0x12, 0xa6, 0x43 };
	struct stun_addr a = { .family = STUN_FAMILY_IPV4,
			       .port = 32853,
			       .addr = { 192, 0, 2, 1 } };
	struct stun_msg req = { .type = STUN_BINDING_REQUEST };
	uint8_t out[STUN_RESP_MAX_LEN];
	size_t n;

	memcpy(req.txid, rfc5769_req + 8, STUN_TXID_LEN);
	cr_assert_eq(stun_binding_success_build(out, sizeof(out), &n, &req, &a), 0);
	cr_assert_arr_eq(out + STUN_HDR_LEN, want, sizeof(want));
}

Test(stun_msg, unknown_attribute_error_lists_the_types)
{
	uint8_t out[128];
	struct stun_msg req, resp;
	size_t n;

	cr_assert_eq(stun_msg_parse(&req, rfc5769_req, sizeof(rfc5769_req)), 0);
	cr_assert_eq(stun_unknown_attr_build(out, sizeof(out), &n, &req), 0);
	cr_assert_eq(stun_msg_parse(&resp, out, n), 0);
	cr_assert_eq(resp.type, STUN_BINDING_ERROR);
	cr_assert(resp.fingerprint);
	cr_assert_arr_eq(resp.txid, req.txid, STUN_TXID_LEN);
	/* ERROR-CODE: class 4, number 20, reason "Unknown Attribute". */
	cr_assert_eq(out[20] << 8 | out[21], STUN_ATTR_ERROR_CODE);
	cr_assert_eq(out[26], 4);
	cr_assert_eq(out[27], 20);
	cr_assert_eq(memcmp(out + 28, "Unknown Attribute", 17), 0);
	/* UNKNOWN-ATTRIBUTES after the padded reason: 3 types, 6 bytes + 2 padding. */
	cr_assert_eq(out[48] << 8 | out[49], STUN_ATTR_UNKNOWN_ATTRIBUTES);
	cr_assert_eq(out[50] << 8 | out[51], 6);
	cr_assert_eq(out[52] << 8 | out[53], 0x0024);
	cr_assert_eq(out[54] << 8 | out[55], 0x0006);
	cr_assert_eq(out[56] << 8 | out[57], 0x0008);
	cr_assert_eq(n, 60 + STUN_FINGERPRINT_LEN);
}

Test(stun_msg, request_builder_output_is_a_valid_request)
{
	static const uint8_t txid[STUN_TXID_LEN] = { 9, 8, 7, 6, 5, 4, 3, 2, 1, 0, 1, 2 };
	uint8_t out[32];
	struct stun_msg m;
	size_t n;

	cr_assert_eq(stun_binding_request_build(out, sizeof(out), &n, txid, true), 0);
	cr_assert_eq(n, 28);
	cr_assert_eq(stun_msg_parse(&m, out, n), 0);
	cr_assert(m.fingerprint);
	cr_assert_eq(stun_request_judge(&m), STUN_V_ANSWER);
	cr_assert_arr_eq(m.txid, txid, STUN_TXID_LEN);
	/* Same bytes as the fixture with FINGERPRINT once the transaction id matches. */
	cr_assert_eq(
		stun_binding_request_build(out, sizeof(out), &n, stun_fixtures[1].msg + 8, true),
		0);
	cr_assert_eq(n, stun_fixtures[1].len);
	cr_assert_arr_eq(out, stun_fixtures[1].msg, n);
}
