// SPDX-License-Identifier: MIT
/*
 * libFuzzer target: forward spec parsing (engine/core/spec.c, spec_parse only: no DNS).
 * Accepted specs must round-trip their fields within bounds.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/spec.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char text[SPEC_TEXT_MAX + 16], err[SPEC_ERR_MAX];
	struct spec s;
	int ret;

	if (size >= sizeof(text)) {
		size = sizeof(text) - 1;
	}
	memcpy(text, data, size);
	text[size] = '\0';
	err[0] = '\0';
	ret = spec_parse(text, &s, err);
	if (ret == 0) {
		if ((s.proto != SPEC_TCP && s.proto != SPEC_UDP) || !s.upstream.port ||
		    !s.listen.host[0] || !s.upstream.host[0] ||
		    strlen(s.listen.host) >= SPEC_HOST_MAX) {
			abort();
		}
	} else if (ret != -EINVAL || !err[0]) {
		abort();
	}
	return 0;
}
