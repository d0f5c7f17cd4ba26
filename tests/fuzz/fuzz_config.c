// SPDX-License-Identifier: MIT
/*
 * libFuzzer target: natxd's config file parser (libinih driven by config.c's reader and key
 * table, including every value validator). A parse either succeeds or yields a FILE:LINE
 * message; it must never crash, overrun or leak.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *fuzz_getenv(const char *name)
{
	return NULL;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct natx_config cfg;
	char err[CONFIG_ERR_MAX];
	char *text = malloc(size + 1);
	int rc;

	if (!text) {
		return 0;
	}
	memcpy(text, data, size);
	text[size] = '\0';
	config_defaults(&cfg, fuzz_getenv);
	rc = config_parse_string(&cfg, "fuzz.conf", text, err);
	if (rc && strncmp(err, "fuzz.conf", 9)) {
		abort(); /* every error names its source */
	}
	if (!rc && cfg.nforwards > CONFIG_FORWARDS_MAX) {
		abort();
	}
	free(text);
	return 0;
}
