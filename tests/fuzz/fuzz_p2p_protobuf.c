// SPDX-License-Identifier: MIT
/* libFuzzer: protobuf readers: identify (delimited, merged), PublicKey, PrivateKey, peer IDs. */
#include <stdint.h>
#include <stdlib.h>

#include "identify.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct identify_record rec = { 0 };
	struct p2p_identity idn;
	struct peer_id id;
	uint8_t pub[32];

	if (!identify_decode(&rec, data, size)) {
		if (rec.n_addrs > IDENTIFY_MAX_ADDRS || rec.n_protocols > IDENTIFY_MAX_PROTOS) {
			abort();
		}
		(void)identify_has_protocol(&rec, PING_PROTOCOL);
		(void)identify_check_peer(&rec, &id);
	}
	identify_record_cleanup(&rec);
	(void)p2p_pubkey_decode_ed25519(data, size, pub);
	if (!p2p_identity_from_privkey(&idn, data, size)) {
		p2p_identity_cleanup(&idn);
	}
	(void)peerid_from_bytes(&id, data, size);
	(void)peerid_from_pubkey(&id, data, size);
	return 0;
}
