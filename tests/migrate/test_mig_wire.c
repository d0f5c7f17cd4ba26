// SPDX-License-Identifier: MIT
/* Unit tests of engine/migrate/mig_wire.c: every frame type round trips; partial, unknown,
 * empty and oversized frames are told apart. */
#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>

#include "engine/migrate/mig_wire.h"
#include "natx/err.h"

static int roundtrip(const struct mig_frame *in, struct mig_frame *out, uint8_t *buf, size_t cap)
{
	int n = mig_frame_encode(in, buf, cap);

	cr_assert_gt(n, 0, "encode type %#x: %d", in->type, n);
	/* Every proper prefix is "incomplete", never an error or a frame. */
	for (int i = 0; i < n; i++) {
		cr_assert_eq(mig_frame_decode(buf, (size_t)i, out), 0, "type %#x prefix %d",
			     in->type, i);
	}
	cr_assert_eq(mig_frame_decode(buf, (size_t)n, out), n);
	cr_assert_eq(out->type, in->type);
	return n;
}

Test(mig_wire, control_frames_round_trip)
{
	const uint8_t types[] = { MIG_T_ACK, MIG_T_NACK, MIG_T_FIN, MIG_T_MOVED };
	uint8_t buf[64];
	struct mig_frame in = { 0 }, out;

	for (size_t i = 0; i < sizeof(types); i++) {
		in.type = types[i];
		in.off = 0x0102030405060708ull + i;
		cr_assert_eq(roundtrip(&in, &out, buf, sizeof(buf)), MIG_CTRL_LEN);
		cr_assert_eq(out.off, in.off);
		cr_assert_eq(buf[1], 0x01, "big-endian offset");
	}
}

Test(mig_wire, data_open_attach_reset_round_trip)
{
	static uint8_t buf[MIG_FRAME_MAX + 8], payload[MIG_DATA_MAX];
	struct mig_frame in = { 0 }, out;

	memset(payload, 0xab, sizeof(payload));
	in.type = MIG_T_DATA;
	in.off = 77;
	in.len = MIG_DATA_MAX;
	in.data = payload;
	cr_assert_eq(roundtrip(&in, &out, buf, sizeof(buf)), MIG_DATA_HDR + MIG_DATA_MAX);
	cr_assert_eq(out.off, 77);
	cr_assert_eq(out.len, MIG_DATA_MAX);
	cr_assert_eq(out.data, buf + MIG_DATA_HDR, "payload is borrowed in place");

	memset(&in, 0, sizeof(in));
	in.type = MIG_T_OPEN;
	memset(in.id, 7, MIG_ID_LEN);
	in.name = (const uint8_t *)"/echo/1";
	in.name_len = 7;
	cr_assert_eq(roundtrip(&in, &out, buf, sizeof(buf)), 1 + MIG_ID_LEN + 1 + 7);
	cr_assert_eq(memcmp(out.id, in.id, MIG_ID_LEN), 0);
	cr_assert_eq(out.name_len, 7);
	cr_assert_eq(memcmp(out.name, "/echo/1", 7), 0);

	in.name_len = 0;
	in.name = NULL;
	cr_assert_eq(roundtrip(&in, &out, buf, sizeof(buf)), 1 + MIG_ID_LEN + 1);

	memset(&in, 0, sizeof(in));
	in.type = MIG_T_ATTACH;
	memset(in.id, 9, MIG_ID_LEN);
	in.off = 123456789;
	cr_assert_eq(roundtrip(&in, &out, buf, sizeof(buf)), 1 + MIG_ID_LEN + 8);
	cr_assert_eq(out.off, 123456789);

	memset(&in, 0, sizeof(in));
	in.type = MIG_T_RESET;
	in.reason = 3;
	cr_assert_eq(roundtrip(&in, &out, buf, sizeof(buf)), 2);
	cr_assert_eq(out.reason, 3);
}

Test(mig_wire, bad_frames_are_refused)
{
	uint8_t unknown[] = { 0x7f, 0, 0, 0, 0, 0, 0, 0, 0 };
	uint8_t empty_data[] = { MIG_T_DATA, 0, 0, 0, 0, 0, 0, 0, 0, 0x00, 0x00 };
	uint8_t big_data[] = { MIG_T_DATA, 0, 0, 0, 0, 0, 0, 0, 0, 0x40, 0x01 };
	uint8_t long_name[1 + MIG_ID_LEN + 1] = { MIG_T_OPEN };
	struct mig_frame fr;

	long_name[1 + MIG_ID_LEN] = MIG_NAME_MAX + 1;
	cr_assert_eq(mig_frame_decode(unknown, sizeof(unknown), &fr), -NATX_E_PROTO);
	cr_assert_eq(mig_frame_decode(unknown, 1, &fr), -NATX_E_PROTO, "known from its first byte");
	cr_assert_eq(mig_frame_decode(empty_data, sizeof(empty_data), &fr), -NATX_E_PROTO);
	cr_assert_eq(mig_frame_decode(big_data, sizeof(big_data), &fr), -NATX_E_PROTO,
		     "16385 bytes announced: refused before they arrive");
	cr_assert_eq(mig_frame_decode(long_name, sizeof(long_name), &fr), -NATX_E_PROTO);
	cr_assert_eq(mig_frame_decode(unknown, 0, &fr), 0);
}

Test(mig_wire, encode_checks_room_and_limits)
{
	uint8_t buf[16], payload[4] = { 1, 2, 3, 4 };
	struct mig_frame fr = { .type = MIG_T_DATA, .off = 1, .len = 4, .data = payload };

	cr_assert_eq(mig_frame_encode(&fr, buf, MIG_DATA_HDR + 3), -ENOSPC);
	cr_assert_eq(mig_frame_encode(&fr, buf, sizeof(buf)), MIG_DATA_HDR + 4);
	fr.len = 0;
	cr_assert_eq(mig_frame_encode(&fr, buf, sizeof(buf)), -EINVAL);
	fr.len = MIG_DATA_MAX + 1;
	cr_assert_eq(mig_frame_encode(&fr, buf, sizeof(buf)), -EINVAL);
	fr.type = 0x42;
	cr_assert_eq(mig_frame_encode(&fr, buf, sizeof(buf)), -EINVAL);
}
