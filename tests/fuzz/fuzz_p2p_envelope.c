// SPDX-License-Identifier: MIT
/*
 * libFuzzer: signed envelope and relay voucher verification on arbitrary bytes. Oracle: a
 * voucher that verifies names its signer as the relay; the fixed relay key signs and verifies
 * whatever voucher the input describes.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "envelope.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct p2p_identity idn;
	static int have_idn;
	static uint8_t payload[ENVELOPE_MAX_PAYLOAD], env[ENVELOPE_MAX];
	struct relay_voucher v, v2;
	struct peer_id signer;
	size_t plen, len;

	if (!have_idn) {
		uint8_t seed[32] = { 7 };

		p2p_identity_from_seed(&idn, seed);
		have_idn = 1;
	}
	(void)envelope_open(data, size, RELAY_RSVP_DOMAIN, relay_rsvp_payload_type, 2, &signer,
			    payload, sizeof(payload), &plen);
	(void)relay_voucher_open(data, size, &v);
	/* sign a voucher for a peer id taken from the input, then it must verify */
	if (size >= 8 && !peerid_from_bytes(&v.peer, data + 8, size - 8)) {
		v.relay = idn.id;
		memcpy(&v.expiration, data, 8);
		if (relay_voucher_seal(&idn, &v, env, sizeof(env), &len) ||
		    relay_voucher_open(env, len, &v2) || v2.expiration != v.expiration ||
		    !peerid_equal(&v2.peer, &v.peer)) {
			abort();
		}
	}
	return 0;
}
