// SPDX-License-Identifier: MIT
/*
 * libFuzzer target: any datagram through the STUN parser, the judge, both builders and the
 * responder's per-datagram decision. Every answer must itself parse back.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#include "stun_server.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct stun_server s = { .fd = -1 };
	struct sockaddr_in src = { .sin_family = AF_INET, .sin_port = htons(9) };
	uint8_t out[512];
	struct stun_msg m, back;
	size_t n;

	src.sin_addr.s_addr = htonl(0x0a000001);
	if (!stun_msg_parse(&m, data, size)) {
		struct stun_addr a = { .family = STUN_FAMILY_IPV6, .port = 7 };

		if (stun_binding_success_build(out, sizeof(out), &n, &m, &a) ||
		    stun_msg_parse(&back, out, n)) {
			abort();
		}
		if (stun_unknown_attr_build(out, sizeof(out), &n, &m) ||
		    stun_msg_parse(&back, out, n)) {
			abort();
		}
	}
	if (stun_server_respond(&s, data, size, (struct sockaddr *)&src, 0, out, sizeof(out), &n) &&
	    stun_msg_parse(&back, out, n)) {
		abort();
	}
	return 0;
}
