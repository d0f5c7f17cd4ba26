// SPDX-License-Identifier: MIT
/* libFuzzer: multiaddr binary and text parsers, peer ID text; round trips must be stable. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "multiaddr.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char text[MADDR_TEXT_MAX + 1], text2[MADDR_TEXT_MAX + 1];
	uint8_t bin[MADDR_MAX_LEN], bin2[MADDR_MAX_LEN];
	size_t len, len2;
	struct peer_id id;

	/* binary -> text -> binary must give the same bytes */
	if (maddr_to_text(data, size, text, sizeof(text)) >= 0) {
		if (maddr_from_text(text, bin, sizeof(bin), &len) || len != size ||
		    memcmp(bin, data, size)) {
			abort();
		}
	}
	/* text -> binary -> text -> binary is a fixed point */
	if (size <= MADDR_TEXT_MAX) {
		memcpy(text, data, size);
		text[size] = '\0';
		if (!maddr_from_text(text, bin, sizeof(bin), &len)) {
			if (maddr_to_text(bin, len, text2, sizeof(text2)) < 0 ||
			    maddr_from_text(text2, bin2, sizeof(bin2), &len2) || len2 != len ||
			    memcmp(bin, bin2, len)) {
				abort();
			}
		}
		(void)peerid_from_text(&id, text, size);
	}
	return 0;
}
