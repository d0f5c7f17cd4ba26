// SPDX-License-Identifier: MIT
/*
 * libFuzzer target: natxd's tunnel configuration ([tunnel] / [tunnel.NAME] sections through
 * config.c and control/tunnel_cfg.c, then tunnel_cfg_finish) and the spec reader that turns
 * engine-object specs back into engine requests. The input is also read as a spec itself.
 * Errors must name their source; nothing may crash, overrun or leak.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "tunnel_cfg.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *fuzz_getenv(const char *name)
{
	(void)name;
	return NULL;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct natx_config cfg;
	char err[CONFIG_ERR_MAX], role[8], name[65];
	char *text = malloc(size + 1);

	if (!text) {
		return 0;
	}
	memcpy(text, data, size);
	text[size] = '\0';
	for (int rm = 0; rm < 2; rm++) {
		cJSON_Delete(tunnel_spec_request(text, rm));
	}
	tunnel_spec_svc(text, role, name);
	config_defaults(&cfg, fuzz_getenv);
	if (!config_parse_string(&cfg, "fuzz.conf", text, err)) {
		if (!tunnel_cfg_finish(&cfg, err)) {
			if (cfg.nforwards > CONFIG_FORWARDS_MAX) {
				abort();
			}
			for (unsigned i = 0; i < cfg.nforwards; i++) {
				cJSON *r = tunnel_spec_request(cfg.forwards[i], false);

				/* Every spec finish produced must read back. */
				if (tunnel_spec_is(cfg.forwards[i]) && !r) {
					abort();
				}
				cJSON_Delete(r);
			}
		}
	} else if (strncmp(err, "fuzz.conf", 9)) {
		abort(); /* every parse error names its source */
	}
	free(text);
	return 0;
}
