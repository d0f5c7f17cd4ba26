// SPDX-License-Identifier: MIT
/*
 * libFuzzer target: the untrusted-input path of an L402 request. The input is taken both as
 * raw v2 macaroon bytes and as an Authorization header value; whatever decodes is re-encoded
 * (must reproduce the input bytes exactly, since the format is canonical for what we accept)
 * and run through signature and caveat checks. Must never crash, leak or read out of bounds.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "l402.h"
#include "macaroon.h"

static void fuzz_one_macaroon(const uint8_t *data, size_t size)
{
	static uint8_t out[MAC_MAX_LEN + 64];
	struct l402_request req = { .service = "tunnel", .capability = "tcp", .now = 1 };
	struct l402_grant g;
	struct macaroon m;
	size_t n;

	if (macaroon_decode(&m, data, size)) {
		return;
	}
	if (macaroon_encode(&m, out, sizeof(out), &n) || n != size || memcmp(out, data, n)) {
		abort(); /* decode/encode must round-trip exactly */
	}
	(void)macaroon_verify_sig(&m, "k", 1);
	(void)l402_caveats_check(&m, &req, &g);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct l402_auth auth;

	fuzz_one_macaroon(data, size);
	if (l402_auth_parse(&auth, (const char *)data, size) == 0) {
		fuzz_one_macaroon(auth.mac, auth.mac_len);
	}
	return 0;
}
