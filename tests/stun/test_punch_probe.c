// SPDX-License-Identifier: MIT
/*
 * natx punch probe codec: build/parse round trips (both types, empty and longest auth tail),
 * the exact header bytes, every truncation and every over-long size refused, version/type/
 * magic checks, flags ignored, builder argument checks, and @p untouched on error.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>

#include "natx/err.h"
#include "punch_probe.h"

TestSuite(punch_probe);

static const uint8_t sid[8] = { 0xde, 0xad, 0xbe, 0xef, 0, 1, 2, 3 };

Test(punch_probe, header_bytes_and_round_trip)
{
	static const uint8_t want[20] = { 0x0e, 'N',  'X', 'P', 1, 1, 0, 0, 0xde, 0xad,
					  0xbe, 0xef, 0,   1,	2, 3, 0, 0, 0x12, 0x34 };
	struct punch_probe p = { .type = NATX_PUNCH_TYPE_PROBE, .seq = 0x1234 }, q;
	uint8_t buf[NATX_PUNCH_MAX_LEN], auth[NATX_PUNCH_MAX_LEN - NATX_PUNCH_HDR_LEN];
	size_t n;

	memcpy(p.sid, sid, 8);
	cr_assert_eq(punch_probe_build(buf, sizeof(buf), &n, &p), 0);
	cr_assert_eq(n, 20);
	cr_assert_arr_eq(buf, want, 20);
	cr_assert(punch_probe_is(buf, n));
	cr_assert_eq(punch_probe_parse(&q, buf, n), 0);
	cr_assert_eq(q.type, NATX_PUNCH_TYPE_PROBE);
	cr_assert_eq(q.seq, 0x1234);
	cr_assert_arr_eq(q.sid, sid, 8);
	cr_assert_eq(q.auth_len, 0);
	cr_assert_null(q.auth);

	for (size_t i = 0; i < sizeof(auth); i++) {
		auth[i] = (uint8_t)(i * 7);
	}
	p.type = NATX_PUNCH_TYPE_ACK;
	p.auth = auth;
	p.auth_len = sizeof(auth);
	cr_assert_eq(punch_probe_build(buf, sizeof(buf), &n, &p), 0);
	cr_assert_eq(n, NATX_PUNCH_MAX_LEN);
	cr_assert_eq(punch_probe_parse(&q, buf, n), 0);
	cr_assert_eq(q.type, NATX_PUNCH_TYPE_ACK);
	cr_assert_eq(q.auth_len, sizeof(auth));
	cr_assert_eq(q.auth, buf + 20, "auth tail is borrowed in place");
	cr_assert_arr_eq(q.auth, auth, sizeof(auth));
}

Test(punch_probe, malformed_inputs_are_refused_and_leave_the_output_alone)
{
	struct punch_probe p = { .type = NATX_PUNCH_TYPE_PROBE }, q, keep;
	uint8_t buf[NATX_PUNCH_MAX_LEN + 8] = { 0 };
	size_t n;

	memcpy(p.sid, sid, 8);
	cr_assert_eq(punch_probe_build(buf, sizeof(buf), &n, &p), 0);
	memset(&q, 0xa5, sizeof(q));
	keep = q;
	for (size_t i = 0; i < 20; i++) {
		cr_assert_eq(punch_probe_parse(&q, buf, i), -NATX_E_PROTO, "truncated to %zu", i);
	}
	cr_assert_eq(punch_probe_parse(&q, buf, NATX_PUNCH_MAX_LEN + 1), -NATX_E_TOO_BIG);
	cr_assert_eq(punch_probe_parse(&q, buf, sizeof(buf)), -NATX_E_TOO_BIG);
	buf[4] = 2;
	cr_assert_eq(punch_probe_parse(&q, buf, 20), -NATX_E_PROTO, "version 2");
	buf[4] = 1;
	for (int t = 0; t < 256; t++) {
		buf[5] = (uint8_t)t;
		cr_assert_eq(punch_probe_parse(&q, buf, 20) == 0, t == 1 || t == 2, "type %d", t);
		if (t == 0) {
			cr_assert_arr_eq(&q, &keep, sizeof(q), "output untouched on error");
		}
	}
	buf[5] = 1;
	buf[0] = 0x0f;
	cr_assert_not(punch_probe_is(buf, 20));
	cr_assert_eq(punch_probe_parse(&q, buf, 20), -NATX_E_PROTO, "no magic");
	buf[0] = 0x0e;
	buf[6] = 0xff, buf[7] = 0x01;
	cr_assert_eq(punch_probe_parse(&q, buf, 20), 0, "flags are ignored");
	cr_assert_eq(q.flags, 0xff01);
	cr_assert_not(punch_probe_is(buf, 3));
}

Test(punch_probe, builder_checks_its_arguments)
{
	struct punch_probe p = { .type = 3 };
	uint8_t buf[NATX_PUNCH_MAX_LEN + 1], auth[NATX_PUNCH_MAX_LEN] = { 0 };
	size_t n = 77;

	cr_assert_eq(punch_probe_build(buf, sizeof(buf), &n, &p), -EINVAL);
	p.type = NATX_PUNCH_TYPE_PROBE;
	p.auth = auth;
	p.auth_len = NATX_PUNCH_MAX_LEN - NATX_PUNCH_HDR_LEN + 1;
	cr_assert_eq(punch_probe_build(buf, sizeof(buf), &n, &p), -EINVAL);
	p.auth = NULL;
	p.auth_len = 4;
	cr_assert_eq(punch_probe_build(buf, sizeof(buf), &n, &p), -EINVAL);
	p.auth = auth;
	cr_assert_eq(punch_probe_build(buf, 23, &n, &p), -ENOSPC);
	cr_assert_eq(n, 77, "length untouched on error");
	cr_assert_eq(punch_probe_build(buf, 24, &n, &p), 0);
	cr_assert_eq(n, 24);
}
