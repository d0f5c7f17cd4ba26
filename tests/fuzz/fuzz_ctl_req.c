// SPDX-License-Identifier: MIT
/*
 * libFuzzer target: natxd's control-socket input path. Bytes go through the line framer, each
 * line through the request parser and the argument getters, and a reply is serialised, exactly
 * as ctl_server does for a client. Forward specs found in requests go through fwdspec_parse.
 * The same bytes also go through the client-side reply reader (ctl_rx).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ctl_cmdtab.h"
#include "ctl_req.h"
#include "fwdspec.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int fuzz_line(void *arg, char *line, size_t len, int err)
{
	struct ctl_req req;
	const char *why = NULL, *s;
	struct fwdspec fs;
	unsigned long u;
	cJSON *reply;
	char *out;
	size_t outlen;
	bool b;
	int e;

	if (err) {
		reply = ctl_reply_error(NULL, err, "too big");
	} else {
		err = ctl_req_parse(line, len, &req, &why);
		if (err) {
			reply = ctl_reply_error(req.id, err, why);
		} else {
			reply = ctl_reply_new(req.id, ctl_cmd_by_name(req.cmd) != NULL);
			s = ctl_req_str(&req, "spec", CTL_SPEC_MAX, &e);
			if (s) {
				fwdspec_parse(s, &fs, &why);
			}
			ctl_req_str(&req, "target", CTL_TARGET_MAX - 1, &e);
			ctl_req_bool(&req, "prefer_libp2p", false, &b);
			ctl_req_uint(&req, "forward", 1000000, &u);
		}
		ctl_req_cleanup(&req);
	}
	if (reply) {
		out = ctl_reply_line(reply, &outlen);
		if (out && (outlen == 0 || out[outlen - 1] != '\n')) {
			abort();
		}
		free(out);
		cJSON_Delete(reply);
	}
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct ctl_lines lines;
	size_t half = size / 2;

	/* Two chunks, so lines that span reads are exercised too. */
	ctl_lines_init(&lines);
	ctl_lines_feed(&lines, (const char *)data, half, fuzz_line, NULL);
	ctl_lines_feed(&lines, (const char *)data + half, size - half, fuzz_line, NULL);
	ctl_lines_feed(&lines, "\n", 1, fuzz_line, NULL);

	/* The client-side reply reader over the same bytes. */
	{
		struct ctl_rx rx;
		size_t len;
		char *line;

		ctl_rx_init(&rx);
		ctl_rx_append(&rx, (const char *)data, half);
		ctl_rx_append(&rx, (const char *)data + half, size - half);
		while ((line = ctl_rx_line(&rx, &len))) {
			if (strlen(line) > len) {
				abort();
			}
			free(line);
		}
		ctl_rx_cleanup(&rx);
	}
	return 0;
}
