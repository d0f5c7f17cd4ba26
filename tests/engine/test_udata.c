// SPDX-License-Identifier: MIT
/* user_data packing: every field round-trips and fields never bleed into each other. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>

#include "natx/udata.h"

Test(udata, round_trips_every_field, .timeout = 5)
{
	for (unsigned int op = 0; op < UD_OP_MAX; op++) {
		for (unsigned int dir = 0; dir < 4; dir++) {
			static const uint32_t slots[] = { 0, 1, 0x7fffffff, 0xffffffff };
			static const unsigned int bids[] = { 0, 1, 0x7fff, 0xffff };

			for (int k = 0; k < 4; k++) {
				uint64_t ud = udata_pack(op, dir, 0xa5, bids[k], slots[k]);

				cr_assert_eq(udata_op(ud), op);
				cr_assert_eq(udata_dir(ud), dir);
				cr_assert_eq(udata_shard(ud), 0xa5);
				cr_assert_eq(udata_bid(ud), bids[k]);
				cr_assert_eq(udata_slot(ud), slots[k]);
			}
		}
	}
}

Test(udata, oversized_fields_are_truncated_not_spilled, .timeout = 5)
{
	uint64_t ud = udata_pack(UD_SEND, 7, 0x1ff, 0x1ffff, 5);

	cr_assert_eq(udata_op(ud), UD_SEND);
	cr_assert_eq(udata_dir(ud), 3);
	cr_assert_eq(udata_shard(ud), 0xff);
	cr_assert_eq(udata_bid(ud), 0xffff);
	cr_assert_eq(udata_slot(ud), 5);
	cr_assert_lt(UD_OP_MAX, 64, "op must fit 6 bits");
}

Test(udata, distinct_ops_give_distinct_words, .timeout = 5)
{
	cr_assert_neq(udata_pack(UD_RECV, 0, 0, 0, 9), udata_pack(UD_SEND, 0, 0, 0, 9));
	cr_assert_neq(udata_pack(UD_RECV, 0, 0, 0, 9), udata_pack(UD_RECV, 1, 0, 0, 9));
	cr_assert_neq(udata_pack(UD_NONE, 0, 0, 0, 0), udata_pack(UD_ACCEPT, 0, 0, 0, 0));
}
