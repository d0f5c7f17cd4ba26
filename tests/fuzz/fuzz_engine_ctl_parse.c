// SPDX-License-Identifier: MIT
/*
 * libFuzzer target: the engine's control request parser (engine/core/ctl_parse.c). Any
 * byte string must give 0 or -EINVAL with a known error code, never a crash or leak.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/ctl_parse.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char msg[CTL_MSG_MAX];
	struct ctl_req req;
	const char *code = NULL;
	int ret = ctl_req_parse((const char *)data, size, &req, &code, msg);

	if (ret != 0 && ret != -EINVAL) {
		abort();
	}
	if (ret == 0) {
		if (req.cmd < CTL_HELLO || req.cmd > CTL_SHUTDOWN) {
			abort();
		}
		if (req.cmd == CTL_FWD_ADD && !req.has_spec) {
			abort();
		}
		if (req.cmd == CTL_FWD_RM && !req.has_spec && !req.has_fwd_id) {
			abort();
		}
	} else if (!code || !*code || !memchr(msg, '\0', sizeof(msg))) {
		abort();
	}
	ctl_req_cleanup(&req);
	return 0;
}
