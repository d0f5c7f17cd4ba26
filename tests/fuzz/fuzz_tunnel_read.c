// SPDX-License-Identifier: MIT
/*
 * libFuzzer target: the engine's incremental tunnel frame reader (tun_conn_read_frame in
 * engine/core/tun_conn.c), which reads a frame from a non-blocking socket in pieces and never
 * past its end. The input goes through a socketpair in chunks whose sizes the first byte
 * picks; the reader must return whole frames within the limit, -EAGAIN, or an error, and
 * never read more than it was given.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/tun_eng.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct tun_conn c = { 0 };
	size_t limit, chunk, off = 1, consumed = 0;
	int sv[2];

	if (size < 1 || size > 60000) {
		return 0;
	}
	limit = (data[0] & 1) ? TUN_UDP_PAYLOAD_MAX : TUN_CTRL_PAYLOAD_MAX;
	chunk = 1 + (data[0] >> 1);
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv)) {
		return 0;
	}
	c.fd = sv[0];
	c.in_cap = TUN_HDR_LEN + limit;
	c.in = malloc(c.in_cap);
	if (!c.in) {
		goto close_pair;
	}
	while (off < size || c.in_len) {
		struct tun_frame f;
		size_t n = size - off < chunk ? size - off : chunk;
		int ret;

		if (n && write(sv[1], data + off, n) != (ssize_t)n) {
			break;
		}
		off += n;
		if (off == size) {
			shutdown(sv[1], SHUT_WR);
		}
		ret = tun_conn_read_frame(&c, limit, &f);
		if (ret == -EAGAIN) {
			if (off == size) {
				abort(); /* EOF was written: the reader must see it */
			}
			continue;
		}
		if (ret) {
			break;
		}
		if (f.len > limit || f.total != c.in_len || f.total != TUN_HDR_LEN + f.len ||
		    memcmp(c.in, data + 1 + consumed, f.total)) {
			abort(); /* a frame is exactly the next bytes of the stream */
		}
		consumed += f.total;
		c.in_len = 0;
	}
	free(c.in);
close_pair:
	close(sv[0]);
	close(sv[1]);
	return 0;
}
