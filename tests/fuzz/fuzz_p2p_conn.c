// SPDX-License-Identifier: MIT
/*
 * libFuzzer: a listening p2p_conn fed arbitrary bytes (first byte = chunk size), so garbage at
 * every stage of the upgrade is parsed by the real state machine.
 */
#include <stdint.h>
#include <stdlib.h>

#include "conn.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct p2p_identity fz_id;
static bool fz_init;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const struct p2p_conn_ops ops = { 0 };
	struct p2p_host host = { 0 };
	struct p2p_conn *c;
	size_t chunk;
	int err;

	if (!fz_init) {
		uint8_t seed[32] = { 7 };

		p2p_identity_from_seed(&fz_id, seed);
		fz_init = true;
	}
	if (size < 1) {
		return 0;
	}
	chunk = data[0] ? data[0] : size;
	host.idn = &fz_id;
	host.clock = &p2p_clock_system;
	host.rng = &p2p_rng_system;
	host.early_muxer = size & 1;
	c = p2p_conn_new(&host, size & 2, NULL, &ops, NULL, &err);
	if (!c) {
		return 0;
	}
	p2p_conn_start(c);
	for (size_t off = 1; off < size;) {
		size_t k = size - off < chunk ? size - off : chunk;
		const uint8_t *p;
		size_t len;

		if (p2p_conn_consume(c, data + off, k)) {
			break;
		}
		off += k;
		p2p_conn_out_peek(c, &p, &len);
		p2p_conn_out_advance(c, len);
	}
	p2p_conn_free(c);
	return 0;
}
