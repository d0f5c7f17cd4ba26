// SPDX-License-Identifier: MIT
#include <criterion/criterion.h>

#include "natx/rd.h"

TestSuite(rd, .timeout = 10);

Test(rd, reads_big_endian_and_stops_at_end)
{
	const uint8_t buf[] = { 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07 };
	struct rd r;
	uint16_t a;
	uint32_t b;
	uint8_t c;

	rd_init(&r, buf, sizeof(buf));
	cr_assert_eq(rd_be16(&r, &a), 0);
	cr_assert_eq(a, 0x0102);
	cr_assert_eq(rd_be32(&r, &b), 0);
	cr_assert_eq(b, 0x03040506);
	cr_assert_eq(rd_be16(&r, &a), -NATX_E_PROTO);
	cr_assert_eq(rd_left(&r), 1, "a failed read must not consume");
	cr_assert_eq(rd_u8(&r, &c), 0);
	cr_assert_eq(c, 0x07);
	cr_assert_eq(rd_u8(&r, &c), -NATX_E_PROTO);
}

Test(rd, uvarint_round_trip_and_limits)
{
	const uint64_t vals[] = { 0, 1, 127, 128, 300, 16383, 16384, (1ull << 63) - 1 };
	uint8_t buf[16];

	for (size_t i = 0; i < sizeof(vals) / sizeof(vals[0]); i++) {
		struct wr w;
		struct rd r;
		uint64_t v;

		wr_init(&w, buf, sizeof(buf));
		cr_assert_eq(wr_uvarint(&w, vals[i]), 0);
		rd_init(&r, buf, (size_t)(w.p - buf));
		cr_assert_eq(rd_uvarint(&r, &v), 0);
		cr_assert_eq(v, vals[i]);
		cr_assert_eq(rd_left(&r), 0);
	}
	/* 300 is 0xac 0x02 in the multiformats spec. */
	{
		const uint8_t enc[] = { 0xac, 0x02 };
		struct rd r;
		uint64_t v;

		rd_init(&r, enc, sizeof(enc));
		cr_assert_eq(rd_uvarint(&r, &v), 0);
		cr_assert_eq(v, 300);
	}
}

Test(rd, uvarint_rejects_truncated_overlong_and_non_minimal)
{
	const uint8_t trunc[] = { 0x80 };
	const uint8_t nonmin[] = { 0x81, 0x00 };
	const uint8_t overlong[] = { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01 };
	struct rd r;
	uint64_t v;

	rd_init(&r, trunc, sizeof(trunc));
	cr_assert_eq(rd_uvarint(&r, &v), -NATX_E_PROTO);
	rd_init(&r, nonmin, sizeof(nonmin));
	cr_assert_eq(rd_uvarint(&r, &v), -NATX_E_PROTO);
	rd_init(&r, overlong, sizeof(overlong));
	cr_assert_eq(rd_uvarint(&r, &v), -NATX_E_PROTO);
}

Test(rd, writer_refuses_overflow)
{
	uint8_t buf[3];
	struct wr w;

	wr_init(&w, buf, sizeof(buf));
	cr_assert_eq(wr_be16(&w, 0xabcd), 0);
	cr_assert_eq(wr_be16(&w, 0x1234), -NATX_E_TOO_BIG);
	cr_assert_eq(wr_u8(&w, 0xef), 0);
	cr_assert_eq(buf[0], 0xab);
	cr_assert_eq(buf[2], 0xef);
}
