// SPDX-License-Identifier: MIT
/*
 * SO_REUSEPORT steering: the BPF flow hash equals libxxhash's XXH3_64bits and the engine's
 * flow_key_hash(); the BPF key is byte for byte the engine's flow_key_from_sockaddr(); and in
 * a reuseport group of 4 sockets (private netns, loopback) every datagram of a flow lands on
 * socket flow_key_hash(engine key) % 4, for IPv4 and IPv6; one loaded program steers several
 * groups at once (two UDP groups with different forward ids, a TCP listener group by SYN), a
 * cleared group falls back to the kernel, and NATX_STEER_F_ADDR_ONLY keys on the address only.
 */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <net/if.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/random.h>
#include <unistd.h>

#include <xxhash.h>

#include "core/flowtab.h"
#include "flow_hash.h"
#include "steer.h"

TestSuite(steer, .timeout = 60);

#define SHARDS 4
#define CLIENTS 64
#define PER_CLIENT 5

#define FWD_ID 7

Test(steer, bpf_flow_hash_equals_libxxhash_xxh3)
{
	for (int i = 0; i < 20000; i++) {
		struct natx_flow_key k;
		uint64_t want;

		cr_assert_eq(getrandom(&k, sizeof(k), 0), (ssize_t)sizeof(k));
		want = XXH3_64bits(&k, sizeof(k));
		cr_assert_eq(natx_flow_hash(&k), want ? want : 1, "key %d", i);
	}
}

/* bpf_key - the key exactly as steer_reuseport.bpf.c builds it from a datagram. */
static void bpf_key(struct natx_flow_key *k, uint32_t fwd_id, const struct sockaddr *sa)
{
	memset(k, 0, sizeof(*k));
	k->fwd_id = fwd_id;
	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *in = (const void *)sa;

		k->family = NATX_FLOW_FAMILY_V4;
		k->rport = in->sin_port;
		memcpy(k->raddr, &in->sin_addr, 4);
	} else {
		const struct sockaddr_in6 *in6 = (const void *)sa;

		k->family = NATX_FLOW_FAMILY_V6;
		k->rport = in6->sin6_port;
		memcpy(k->raddr, &in6->sin6_addr, 16);
	}
}

Test(steer, key_and_hash_are_the_engines)
{
	_Static_assert(sizeof(struct flow_key) == sizeof(struct natx_flow_key), "same size");
	for (int i = 0; i < 5000; i++) {
		struct sockaddr_storage ss = { 0 };
		struct natx_flow_key mine;
		struct flow_key eng;
		uint32_t fwd;

		cr_assert_eq(getrandom(&fwd, sizeof(fwd), 0), (ssize_t)sizeof(fwd));
		if (i & 1) {
			struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;

			in6->sin6_family = AF_INET6;
			getrandom(&in6->sin6_port, 2, 0);
			getrandom(&in6->sin6_addr, 16, 0);
		} else {
			struct sockaddr_in *in = (struct sockaddr_in *)&ss;

			in->sin_family = AF_INET;
			getrandom(&in->sin_port, 2, 0);
			getrandom(&in->sin_addr, 4, 0);
		}
		flow_key_from_sockaddr(&eng, fwd, (struct sockaddr *)&ss);
		bpf_key(&mine, fwd, (struct sockaddr *)&ss);
		cr_assert_eq(memcmp(&eng, &mine, sizeof(mine)), 0, "key bytes differ (case %d)", i);
		cr_assert_eq(natx_flow_hash(&mine), flow_key_hash(&eng));
		cr_assert_eq(natx_steer_shard(&mine, 5), flow_key_hash(&eng) % 5);
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
	struct sockaddr_storage caddr[CLIENTS];
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
	err = natx_steer_attach(shard, SHARDS, FWD_ID, &st);
	if (err == -EPERM) {
		cr_skip_test("loading BPF needs CAP_BPF");
	}
	cr_assert_eq(err, 0, "attach: %s", strerror(-err));

	for (int c = 0; c < CLIENTS; c++) {
		socklen_t ml = sizeof(caddr[c]);

		client[c] = socket(family, SOCK_DGRAM, 0);
		cr_assert_eq(connect(client[c], (struct sockaddr *)&ss, len), 0);
		cr_assert_eq(getsockname(client[c], (struct sockaddr *)&caddr[c], &ml), 0);
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
				struct flow_key key;
				unsigned int want;

				cr_assert(c >= 0 && c < CLIENTS);
				/* The shard the engine itself computes for this client. */
				flow_key_from_sockaddr(&key, FWD_ID, (struct sockaddr *)&caddr[c]);
				want = (unsigned int)(flow_key_hash(&key) % SHARDS);
				cr_assert_eq(want, (unsigned int)i,
					     "client %d landed on shard %d, the engine says %u", c,
					     i, want);
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

/* bind_group - @n SO_REUSEPORT sockets of @type on 127.0.0.1:port (0: pick), port returned. */
static uint16_t bind_group(int type, int *fds, int n, uint16_t port)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(port) };
	socklen_t len = sizeof(a);
	int one = 1;

	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	for (int i = 0; i < n; i++) {
		fds[i] = socket(AF_INET, type | SOCK_NONBLOCK, 0);
		cr_assert_geq(fds[i], 0);
		cr_assert_eq(setsockopt(fds[i], SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)), 0);
		cr_assert_eq(bind(fds[i], (struct sockaddr *)&a, len), 0, "bind: %s",
			     strerror(errno));
		if (type == SOCK_STREAM) {
			cr_assert_eq(listen(fds[i], 64), 0);
		}
		if (i == 0) {
			cr_assert_eq(getsockname(fds[0], (struct sockaddr *)&a, &len), 0);
		}
	}
	return ntohs(a.sin_port);
}

/* open_or_skip - natx_steer_open, skipping without CAP_BPF. */
static struct natx_steer *open_or_skip(unsigned int groups, unsigned int shards)
{
	struct natx_steer *st;
	int err = natx_steer_open(groups, shards, &st);

	if (err == -EPERM) {
		cr_skip_test("loading BPF needs CAP_BPF");
	}
	cr_assert_eq(err, 0, "open: %s", strerror(-err));
	return st;
}

/* udp_expect - send one datagram from each of @nc new clients to @port, check each arrives on
 * fds[shard of (fwd, client[, port])]. Returns the number received on the expected socket. */
static int udp_expect(const int *fds, int n, uint16_t port, uint32_t fwd, bool addr_only, int nc)
{
	struct sockaddr_in srv = { .sin_family = AF_INET, .sin_port = htons(port) };
	int ok = 0;

	srv.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	for (int c = 0; c < nc; c++) {
		struct sockaddr_in me;
		socklen_t ml = sizeof(me);
		struct flow_key key;
		int cfd = socket(AF_INET, SOCK_DGRAM, 0), got = -1;
		unsigned int want;

		cr_assert_eq(connect(cfd, (struct sockaddr *)&srv, sizeof(srv)), 0);
		cr_assert_eq(getsockname(cfd, (struct sockaddr *)&me, &ml), 0);
		cr_assert_eq(send(cfd, &c, sizeof(c), 0), (ssize_t)sizeof(c));
		if (addr_only) {
			me.sin_port = 0;
		}
		flow_key_from_sockaddr(&key, fwd, (struct sockaddr *)&me);
		want = (unsigned int)(flow_key_hash(&key) % (unsigned int)n);
		for (int spins = 0; got < 0 && spins < 2000; spins++) {
			for (int i = 0; i < n && got < 0; i++) {
				int v;

				if (recv(fds[i], &v, sizeof(v), 0) == (ssize_t)sizeof(v)) {
					cr_assert_eq(v, c);
					got = i;
				}
			}
			if (got < 0) {
				usleep(1000);
			}
		}
		cr_assert_geq(got, 0, "datagram of client %d lost", c);
		ok += (unsigned int)got == want;
		close(cfd);
	}
	return ok;
}

Test(steer, one_program_steers_two_udp_groups_and_a_cleared_one_falls_back)
{
	int a[3], b[2];
	uint64_t cnt[NATX_STEER_CNT_MAX];
	struct natx_steer *st;
	uint16_t pa, pb;

	netns_lo_or_skip();
	st = open_or_skip(4, 3);
	pa = bind_group(SOCK_DGRAM, a, 3, 0);
	pb = bind_group(SOCK_DGRAM, b, 2, 0);
	cr_assert_eq(natx_steer_group_set(st, 1, a, 3, 11, 0), 0);
	cr_assert_eq(natx_steer_group_set(st, 3, b, 2, 12, 0), 0);
	cr_assert_eq(natx_steer_groups_used(st), 2);
	cr_assert_neq(natx_steer_prog_id(st), 0);
	cr_assert_eq(udp_expect(a, 3, pa, 11, false, 40), 40);
	cr_assert_eq(udp_expect(b, 2, pb, 12, false, 40), 40);
	cr_assert_eq(natx_steer_counters(st, cnt), 0);
	cr_assert_eq(cnt[NATX_STEER_CNT_STEERED], 80);
	cr_assert_eq(cnt[NATX_STEER_CNT_FALLBACK], 0);
	/* Group index out of range / too many sockets: refused, nothing changed. */
	cr_assert_eq(natx_steer_group_set(st, 4, a, 3, 11, 0), -EINVAL);
	cr_assert_eq(natx_steer_group_set(st, 0, a, 4, 11, 0), -EINVAL);
	/* Cleared: the program stays attached but now leaves the choice to the kernel. */
	natx_steer_group_clear(st, 1);
	natx_steer_group_clear(st, 1);
	cr_assert_eq(natx_steer_groups_used(st), 1);
	udp_expect(a, 3, pa, 11, false, 10);
	cr_assert_eq(natx_steer_counters(st, cnt), 0);
	cr_assert_eq(cnt[NATX_STEER_CNT_STEERED], 80);
	cr_assert_eq(cnt[NATX_STEER_CNT_FALLBACK], 10);
	natx_steer_free(st);
	for (int i = 0; i < 3; i++) {
		close(a[i]);
	}
	close(b[0]);
	close(b[1]);
}

Test(steer, addr_only_group_keys_on_the_address)
{
	int a[4];
	struct natx_steer *st;
	uint16_t pa;

	netns_lo_or_skip();
	st = open_or_skip(1, 4);
	pa = bind_group(SOCK_DGRAM, a, 4, 0);
	cr_assert_eq(natx_steer_group_set(st, 0, a, 4, 0, NATX_STEER_F_ADDR_ONLY), 0);
	/* Every client is 127.0.0.1: all on the one shard of (0, AF_INET, port 0, 127.0.0.1). */
	cr_assert_eq(udp_expect(a, 4, pa, 0, true, 30), 30);
	natx_steer_free(st);
	for (int i = 0; i < 4; i++) {
		close(a[i]);
	}
}

Test(steer, tcp_listener_group_is_steered_by_syn)
{
	struct sockaddr_in srv = { .sin_family = AF_INET };
	int l[3], per[3] = { 0 };
	uint64_t cnt[NATX_STEER_CNT_MAX];
	struct natx_steer *st;

	netns_lo_or_skip();
	st = open_or_skip(2, 3);
	srv.sin_port = htons(bind_group(SOCK_STREAM, l, 3, 0));
	srv.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	cr_assert_eq(natx_steer_group_set(st, 1, l, 3, 5, 0), 0);
	for (int c = 0; c < 48; c++) {
		struct sockaddr_in me;
		socklen_t ml = sizeof(me);
		struct flow_key key;
		int cfd = socket(AF_INET, SOCK_STREAM, 0), got = -1;
		unsigned int want;

		cr_assert_eq(connect(cfd, (struct sockaddr *)&srv, sizeof(srv)), 0);
		cr_assert_eq(getsockname(cfd, (struct sockaddr *)&me, &ml), 0);
		flow_key_from_sockaddr(&key, 5, (struct sockaddr *)&me);
		want = (unsigned int)(flow_key_hash(&key) % 3);
		for (int spins = 0; got < 0 && spins < 2000; spins++) {
			for (int i = 0; i < 3 && got < 0; i++) {
				struct sockaddr_in peer;
				socklen_t pl = sizeof(peer);
				int afd = accept(l[i], (struct sockaddr *)&peer, &pl);

				if (afd >= 0) {
					cr_assert_eq(peer.sin_port, me.sin_port);
					close(afd);
					got = i;
				}
			}
			if (got < 0) {
				usleep(1000);
			}
		}
		cr_assert_eq(got, (int)want, "connection %d accepted on %d, hash says %u", c, got,
			     want);
		per[got]++;
		close(cfd);
	}
	cr_assert((per[0] > 0) + (per[1] > 0) + (per[2] > 0) >= 2);
	cr_assert_eq(natx_steer_counters(st, cnt), 0);
	cr_assert_eq(cnt[NATX_STEER_CNT_STEERED], 48);
	natx_steer_free(st);
	for (int i = 0; i < 3; i++) {
		close(l[i]);
	}
}

Test(steer, bad_shard_counts_are_refused)
{
	int fd = -1;
	struct natx_steer *st;

	cr_assert_eq(natx_steer_attach(&fd, 0, 1, &st), -EINVAL);
	cr_assert_null(st);
	cr_assert_eq(natx_steer_attach(&fd, NATX_STEER_MAX_SHARDS + 1, 1, &st), -EINVAL);
	natx_steer_free(NULL);
	cr_assert_eq(natx_steer_open(0, 4, &st), -EINVAL);
	cr_assert_eq(natx_steer_open(4, 0, &st), -EINVAL);
	cr_assert_eq(natx_steer_open(4, NATX_STEER_MAX_SHARDS + 1, &st), -EINVAL);
	cr_assert_null(st);
}
