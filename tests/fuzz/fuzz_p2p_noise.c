// SPDX-License-Identifier: MIT
/*
 * libFuzzer: Noise handshake messages and payloads. The input is read as a responder's
 * message 1 and as an initiator's message 2 (after a genuine message 0/1 exchange), plus the
 * raw NoiseHandshakePayload verifier through an unencrypted first message.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "noise.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct p2p_identity fz_id;
static bool fz_init;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const uint8_t s1[32] = { 1 }, e1[32] = { 2 }, s2[32] = { 3 }, e2[32] = { 4 };
	uint8_t buf[70000], msg[1024];
	struct noise_p2p ini, rsp;
	size_t n;

	if (!fz_init) {
		uint8_t seed[32] = { 9 };

		p2p_identity_from_seed(&fz_id, seed);
		fz_init = true;
	}
	if (size > sizeof(buf)) {
		return 0;
	}
	/* responder reading an arbitrary message 0 */
	noise_p2p_init(&rsp, false, &fz_id, s2, e2, NULL, true);
	memcpy(buf, data, size);
	(void)noise_p2p_read(&rsp, buf, size);
	noise_p2p_cleanup(&rsp);

	/* initiator reading an arbitrary message 1 after its genuine message 0 */
	noise_p2p_init(&ini, true, &fz_id, s1, e1, NULL, true);
	if (!noise_p2p_write(&ini, msg, sizeof(msg), &n)) {
		memcpy(buf, data, size);
		(void)noise_p2p_read(&ini, buf, size);
	}
	noise_p2p_cleanup(&ini);

	/* responder reading an arbitrary (unauthenticated part of) message 2 */
	noise_p2p_init(&ini, true, &fz_id, s1, e1, NULL, false);
	noise_p2p_init(&rsp, false, &fz_id, s2, e2, NULL, false);
	if (!noise_p2p_write(&ini, msg, sizeof(msg), &n) && !noise_p2p_read(&rsp, msg + 2, n - 2) &&
	    !noise_p2p_write(&rsp, msg, sizeof(msg), &n) && !noise_p2p_read(&ini, msg + 2, n - 2)) {
		memcpy(buf, data, size);
		(void)noise_p2p_read(&rsp, buf, size);
	}
	noise_p2p_cleanup(&ini);
	noise_p2p_cleanup(&rsp);
	return 0;
}
