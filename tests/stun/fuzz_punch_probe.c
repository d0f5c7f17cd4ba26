// SPDX-License-Identifier: MIT
/*
 * libFuzzer target for the natx punch probe codec: parse arbitrary bytes; whatever parses
 * must re-encode to the same bytes except the flags (written as 0) and parse again to the same
 * fields; whatever does not parse must be refused with a protocol or size error.
 */
#include <stdlib.h>
#include <string.h>

#include "natx/err.h"
#include "punch_probe.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t out[NATX_PUNCH_MAX_LEN], want[NATX_PUNCH_MAX_LEN];
	struct punch_probe p, q;
	size_t n;
	int err = punch_probe_parse(&p, data, size);

	if (err) {
		if (err != -NATX_E_PROTO && err != -NATX_E_TOO_BIG) {
			abort();
		}
		return 0;
	}
	if (!punch_probe_is(data, size) || size < NATX_PUNCH_HDR_LEN || size > NATX_PUNCH_MAX_LEN ||
	    p.auth_len != size - NATX_PUNCH_HDR_LEN) {
		abort();
	}
	if (punch_probe_build(out, sizeof(out), &n, &p) || n != size) {
		abort();
	}
	memcpy(want, data, size);
	want[6] = want[7] = 0;
	if (memcmp(out, want, size) || punch_probe_parse(&q, out, n) || q.type != p.type ||
	    q.seq != p.seq || memcmp(q.sid, p.sid, sizeof(p.sid)) || q.flags != 0) {
		abort();
	}
	return 0;
}
