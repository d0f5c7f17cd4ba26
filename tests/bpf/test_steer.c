// SPDX-License-Identifier: MIT
/*
 * SO_REUSEPORT steering: the BPF flow hash equals libxxhash's XXH3_64bits over struct
 * natx_flow_key, and in a reuseport group of 4 sockets (private netns, loopback) every
 * datagram of a flow lands on socket XXH3(key) % 4, for IPv4 and IPv6.
 */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <net/if.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/random.h>
#include <unistd.h>

#include <xxhash.h>

#include "flow_hash.h"
#include "steer.h"

TestSuite(steer, .timeout = 60);

#define SHARDS 4
#define CLIENTS 64
#define PER_CLIENT 5

Test(steer, bpf_flow_hash_equals_libxxhash_xxh3)
{
	for (int i = 0; i < 20000; i++) {
		struct natx_flow_key k;

		cr_assert_eq(getrandom(&k, sizeof(k), 0), (ssize_t)sizeof(k));
		cr_assert_eq(natx_flow_hash(&k), XXH3_64bits(&k, sizeof(k)), "key %d", i);
	}
}

static void netns_lo_or_skip(void)
{
	struct ifreq ifr = { 0 };
	int fd;

	if (unshare(CLONE_NEWNET)) {
		cr_skip_test("no network namespace (%s)", strerror(errno));
	}
	fd = socket(AF_INET, SOCK_DGRAM, 0);
	strcpy(ifr.ifr_name, "lo");
	cr_assert_eq(ioctl(fd, SIOCGIFFLAGS, &ifr), 0);
	ifr.ifr_flags |= IFF_UP;
	cr_assert_eq(ioctl(fd, SIOCSIFFLAGS, &ifr), 0);
	close(fd);
}

static void run_group(int family)
{
	struct sockaddr_storage ss = { 0 };
	socklen_t len =
		family == AF_INET ? sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6);
	int shard[SHARDS], client[CLIENTS], got = 0, used = 0, one = 1, per_shard[SHARDS] = { 0 };
	uint16_t cport[CLIENTS], port;
	uint64_t cnt[NATX_STEER_CNT_MAX];
	struct natx_steer *st;
	int err;

	netns_lo_or_skip();
	ss.ss_family = (sa_family_t)family;
	if (family == AF_INET) {
		((struct sockaddr_in *)&ss)->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	} else {
		((struct sockaddr_in6 *)&ss)->sin6_addr = in6addr_loopback;
	}
	for (int i = 0; i < SHARDS; i++) {
		shard[i] = socket(family, SOCK_DGRAM | SOCK_NONBLOCK, 0);
		cr_assert_geq(shard[i], 0);
		cr_assert_eq(setsockopt(shard[i], SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)), 0);
		cr_assert_eq(bind(shard[i], (struct sockaddr *)&ss, len), 0, "bind: %s",
			     strerror(errno));
		if (i == 0) {
			cr_assert_eq(getsockname(shard[0], (struct sockaddr *)&ss, &len), 0);
		}
	}
	port = family == AF_INET ? ((struct sockaddr_in *)&ss)->sin_port :
				   ((struct sockaddr_in6 *)&ss)->sin6_port;
	err = natx_steer_attach(shard, SHARDS, &st);
	if (err == -EPERM) {
		cr_skip_test("loading BPF needs CAP_BPF");
	}
	cr_assert_eq(err, 0, "attach: %s", strerror(-err));

	for (int c = 0; c < CLIENTS; c++) {
		struct sockaddr_storage me;
		socklen_t ml = sizeof(me);

		client[c] = socket(family, SOCK_DGRAM, 0);
		cr_assert_eq(connect(client[c], (struct sockaddr *)&ss, len), 0);
		cr_assert_eq(getsockname(client[c], (struct sockaddr *)&me, &ml), 0);
		cport[c] = family == AF_INET ? ((struct sockaddr_in *)&me)->sin_port :
					       ((struct sockaddr_in6 *)&me)->sin6_port;
		for (int k = 0; k < PER_CLIENT; k++) {
			cr_assert_eq(send(client[c], &c, sizeof(c), 0), (ssize_t)sizeof(c));
		}
	}
	for (int spins = 0; got < CLIENTS * PER_CLIENT && spins < 200; spins++) {
		struct pollfd p[SHARDS];

		for (int i = 0; i < SHARDS; i++) {
			p[i].fd = shard[i];
			p[i].events = POLLIN;
		}
		poll(p, SHARDS, 10);
		for (int i = 0; i < SHARDS; i++) {
			int c;

			while (recv(shard[i], &c, sizeof(c), 0) == (ssize_t)sizeof(c)) {
				struct natx_flow_key key = { .rport = cport[c], .lport = port };

				cr_assert(c >= 0 && c < CLIENTS);
				if (family == AF_INET) {
					key.family = NATX_RL_FAMILY_V4;
					key.raddr[0] = htonl(INADDR_LOOPBACK);
				} else {
					key.family = NATX_RL_FAMILY_V6;
					memcpy(key.raddr, &in6addr_loopback, 16);
				}
				cr_assert_eq(natx_steer_shard(&key, SHARDS), (unsigned int)i,
					     "client %d (port %u) landed on shard %d, XXH3 says %u",
					     c, ntohs(cport[c]), i, natx_steer_shard(&key, SHARDS));
				per_shard[i]++;
				got++;
			}
		}
	}
	cr_assert_eq(got, CLIENTS * PER_CLIENT);
	for (int i = 0; i < SHARDS; i++) {
		used += per_shard[i] > 0;
	}
	cr_assert_geq(used, 2, "64 flows should spread over the shards");
	cr_assert_eq(natx_steer_counters(st, cnt), 0);
	cr_assert_eq(cnt[NATX_STEER_CNT_STEERED], CLIENTS * PER_CLIENT);
	cr_assert_eq(cnt[NATX_STEER_CNT_FALLBACK], 0);
	natx_steer_free(st);
	for (int c = 0; c < CLIENTS; c++) {
		close(client[c]);
	}
	for (int i = 0; i < SHARDS; i++) {
		close(shard[i]);
	}
}

Test(steer, every_flow_lands_on_its_xxh3_shard_ipv4)
{
	run_group(AF_INET);
}

Test(steer, every_flow_lands_on_its_xxh3_shard_ipv6)
{
	run_group(AF_INET6);
}

Test(steer, bad_shard_counts_are_refused)
{
	int fd = -1;
	struct natx_steer *st;

	cr_assert_eq(natx_steer_attach(&fd, 0, &st), -EINVAL);
	cr_assert_null(st);
	cr_assert_eq(natx_steer_attach(&fd, NATX_STEER_MAX_SHARDS + 1, &st), -EINVAL);
	natx_steer_free(NULL);
}
