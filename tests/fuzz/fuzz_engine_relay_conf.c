// SPDX-License-Identifier: MIT
/*
 * libFuzzer: p2p_relay_conf_parse on arbitrary JSON (the relay settings natxd sends with
 * p2p.relay.setup). Oracle: it either refuses with a reason or returns counts within their
 * bounds, and parsing the same input twice gives byte-identical settings (the engine compares
 * them with memcmp to tell "same settings again" from "other settings").
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/p2p_relay_conf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct p2p_identity idn;
	static uint8_t laddr[MADDR_MAX_LEN];
	static size_t laddr_len;
	static int ready;
	static struct p2p_relay_conf a, b;
	char err[256] = "";
	cJSON *j;
	int ra, rb;

	if (!ready) {
		uint8_t seed[32] = { 5 };

		p2p_identity_from_seed(&idn, seed);
		maddr_from_text("/ip4/127.0.0.1/tcp/4001", laddr, sizeof(laddr), &laddr_len);
		ready = 1;
	}
	j = cJSON_ParseWithLength((const char *)data, size);
	if (!j) {
		return 0;
	}
	ra = p2p_relay_conf_parse(j, &idn.id, laddr, laddr_len, &a, err, sizeof(err));
	if (ra) {
		if (ra != -EINVAL || !err[0]) {
			abort();
		}
	} else {
		if (a.n_allow > P2P_RELAY_ACL_MAX || a.n_deny > P2P_RELAY_ACL_MAX ||
		    a.n_addrs > P2P_RELAY_ADDRS_MAX) {
			abort();
		}
		for (uint32_t i = 0; i < a.n_addrs; i++) {
			if (!a.addr_lens[i] || a.addr_lens[i] > MADDR_MAX_LEN) {
				abort();
			}
		}
		rb = p2p_relay_conf_parse(j, &idn.id, laddr, laddr_len, &b, err, sizeof(err));
		if (rb || memcmp(&a, &b, sizeof(a))) {
			abort();
		}
	}
	cJSON_Delete(j);
	return 0;
}
