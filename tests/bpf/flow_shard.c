// SPDX-License-Identifier: MIT
/*
 * natx-flowshard - print the shard the engine's flow hash assigns to clients, for integration
 * tests: built from the engine's own flow_key_from_sockaddr() and flow_key_hash()
 * (engine/core/flowtab.c), so it predicts what SO_REUSEPORT steering must deliver.
 *   natx-flowshard FWD_ID NSHARDS ADDR PORT...   ->  one "PORT SHARD" line per port
 * ADDR is an IPv4 or IPv6 literal. Exit 2 on bad arguments.
 */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/flowtab.h"

/* flow_shard_num - decimal @s in [lo, hi] into *@v; -1 if not. */
static int flow_shard_num(const char *s, unsigned long lo, unsigned long hi, unsigned long *v)
{
	char *e;

	*v = strtoul(s, &e, 10);
	return (!*s || *e || *v < lo || *v > hi) ? -1 : 0;
}

int main(int argc, char **argv)
{
	struct sockaddr_storage ss = { 0 };
	struct sockaddr_in *in = (struct sockaddr_in *)&ss;
	struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;
	unsigned long fwd, n, port;

	if (argc < 5 || flow_shard_num(argv[1], 0, 0xffffffffUL, &fwd) ||
	    flow_shard_num(argv[2], 1, 255, &n)) {
		fprintf(stderr, "usage: natx-flowshard FWD_ID NSHARDS ADDR PORT...\n");
		return 2;
	}
	if (inet_pton(AF_INET, argv[3], &in->sin_addr) == 1) {
		in->sin_family = AF_INET;
	} else if (inet_pton(AF_INET6, argv[3], &in6->sin6_addr) == 1) {
		in6->sin6_family = AF_INET6;
	} else {
		fprintf(stderr, "natx-flowshard: '%s' is not an IP address\n", argv[3]);
		return 2;
	}
	for (int i = 4; i < argc; i++) {
		struct flow_key k;

		if (flow_shard_num(argv[i], 0, 65535, &port)) {
			fprintf(stderr, "natx-flowshard: bad port '%s'\n", argv[i]);
			return 2;
		}
		if (ss.ss_family == AF_INET) {
			in->sin_port = htons((uint16_t)port);
		} else {
			in6->sin6_port = htons((uint16_t)port);
		}
		flow_key_from_sockaddr(&k, (uint32_t)fwd, (struct sockaddr *)&ss);
		printf("%lu %llu\n", port, (unsigned long long)(flow_key_hash(&k) % n));
	}
	return 0;
}
