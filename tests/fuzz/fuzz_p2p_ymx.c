// SPDX-License-Identifier: MIT
/*
 * libFuzzer: yamux session decoder. The first byte splits the input into two chunks (frames
 * crossing calls); callbacks exercise writes, resets and window credit from inside the parser.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>

#include "ymx.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int64_t fz_now(struct p2p_clock *c)
{
	return 1;
}

static struct p2p_clock fz_clock = { fz_now };
static size_t fz_out;

static int fz_write(void *ctx, const uint8_t *hdr, const uint8_t *body, size_t blen)
{
	fz_out += 12 + blen;
	return fz_out > (1u << 26) ? -ENOBUFS : 0;
}

static void fz_data(void *ctx, struct ymx_stream *s, const uint8_t *p, size_t n)
{
	struct ymx_session *ys = ctx;

	if (n && p[0] == 0xee) {
		ymx_stream_reset(ys, s);
		return;
	}
	if (n && p[0] == 0xef) {
		ymx_stream_close(ys, s);
	}
	if (ymx_stream_find(ys, s->id)) {
		ymx_stream_write(ys, s, p, n);
		ymx_stream_consumed(ys, s, n);
	}
}

static const struct ymx_ops fz_ops = { .write = fz_write, .on_data = fz_data };

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ymx_session ys;
	size_t split;

	if (size < 1) {
		return 0;
	}
	split = data[0] % size;
	data++;
	size--;
	fz_out = 0;
	ymx_session_init(&ys, size & 1, &fz_ops, &ys, &fz_clock);
	if (!ymx_consume(&ys, data, split < size ? split : size) && split < size) {
		ymx_consume(&ys, data + split, size - split);
	}
	ymx_session_cleanup(&ys);
	return 0;
}
