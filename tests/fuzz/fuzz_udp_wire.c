// SPDX-License-Identifier: MIT
/*
 * libFuzzer target for control/udp_wire.c: the stream messages of /natx/udp/NAME/1.0.0 and the
 * direct datagram header, both read from untrusted peers. Every message that parses is built
 * again and must give the same bytes (the format has one encoding); parsing walks a buffer of
 * several messages the way udpx's stream reader does.
 */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "udp_wire.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static uint8_t out[UDPW_HDR_LEN + UDPW_BODY_MAX];
	struct udpw_dgram d;
	size_t off = 0;

	while (off < size) {
		struct udpw_msg m;
		size_t used = 0, n = 0;
		int rc = udpw_msg_parse(data + off, size - off, &m, &used);

		if (rc) {
			if (rc != -EAGAIN && rc > -4096) {
				abort(); /* only -EAGAIN or a protocol error */
			}
			break;
		}
		if (used < UDPW_HDR_LEN || used > size - off) {
			abort();
		}
		if (udpw_msg_build(out, sizeof(out), &n, &m) || n != used ||
		    memcmp(out, data + off, n)) {
			abort(); /* what parses must encode back to the same bytes */
		}
		off += used;
	}
	if (!udpw_dgram_parse(data, size, &d)) {
		if (d.sealed_len < UDPW_DGRAM_TAG_LEN || d.sealed + d.sealed_len != data + size) {
			abort();
		}
	}
	return 0;
}
