// SPDX-License-Identifier: MIT
/* libFuzzer: multistream-select listener and dialer fed arbitrary bytes. */
#include <stdint.h>
#include <stdlib.h>

#include "mss.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const protos[] = { "/noise", "/yamux/1.0.0", "/ipfs/ping/1.0.0" };
	uint8_t out[8192];
	size_t used;
	struct mss l, d;
	struct wr w;
	int r;

	mss_listener_init(&l, protos, 3);
	wr_init(&w, out, sizeof(out));
	r = mss_consume(&l, data, size, &used, &w);
	if (used > size || (r == MSS_DONE && (l.selected < 0 || l.selected > 2))) {
		abort();
	}
	mss_dialer_init(&d, protos, 3);
	wr_init(&w, out, sizeof(out));
	mss_dialer_start(&d, &w);
	r = mss_consume(&d, data, size, &used, &w);
	if (used > size || (r == MSS_DONE && d.selected < 0)) {
		abort();
	}
	return 0;
}
