// SPDX-License-Identifier: MIT
/*
 * fuzz_mig_flow - arbitrary bytes as the frames of two paths of one flow (the first byte picks
 * how the input is split): decoding and the flow state must never crash, read out of bounds,
 * deliver more than once past EOF, or loop.
 */
#include <stddef.h>
#include <stdint.h>

#include "mig_flow.h"

static size_t delivered;

static void sink(void *ctx, const uint8_t *buf, size_t len)
{
	(void)ctx;
	(void)buf;
	delivered += len;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static uint8_t out[4 * MIG_FRAME_MAX];
	uint8_t id[MIG_ID_LEN] = { 0 };
	struct mig_flow f;
	size_t split, used, at[2], end[2];

	if (size < 2 || mig_flow_init(&f, id, 4096)) {
		return 0;
	}
	mig_flow_write(&f, data, size < 4096 ? size : 4096);
	mig_path_up(&f, 0, 0);
	mig_path_up(&f, 1, 0);
	split = 1 + (size_t)data[0] * (size - 1) / 256;
	at[0] = 1;
	end[0] = split;
	at[1] = split;
	end[1] = size;
	/* Bounded: every round either consumes bytes or stops. */
	for (int round = 0; round < 64; round++) {
		bool moved = false;

		for (unsigned int p = 0; p < 2; p++) {
			if (at[p] >= end[p]) {
				continue;
			}
			if (mig_path_input(&f, p, data + at[p], end[p] - at[p], &used, sink,
					   NULL)) {
				at[p] = end[p];
				continue;
			}
			at[p] += used;
			moved |= used > 0;
			mig_path_output(&f, p, out, sizeof(out));
		}
		if (!moved) {
			mig_path_lost(&f, round & 1);
		}
	}
	mig_flow_release(&f);
	return 0;
}
