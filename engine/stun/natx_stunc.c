// SPDX-License-Identifier: MIT
/*
 * natx-stunc - STUN Binding client and bounded load generator.
 *   natx-stunc SERVER:PORT [--bind ADDR:PORT] [--fingerprint] [--timeout-ms T]
 *       one request (3 tries): prints "mapped IP:PORT" from XOR-MAPPED-ADDRESS; exit 0,
 *       1 on timeout or an inconsistent answer (MAPPED != XOR-MAPPED, FINGERPRINT mismatch).
 *   natx-stunc SERVER:PORT --count N [--json] ...
 *       sends N requests with sendmmsg as fast as the socket takes them while draining answers,
 *       waits --timeout-ms after the last one, prints counts and answers per second.
 * Transaction ids are a random 32-bit run id followed by a 64-bit sequence number, so answers
 * from other runs are not counted.
 */
#include <errno.h>
#include <arpa/inet.h>
#include <getopt.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "natx/err.h"
#include "stun_server.h"

#define BATCH 64

struct gen {
	int fd;
	uint8_t run[4];
	bool fingerprint;
	uint64_t valid, invalid;
	uint64_t last_rx_ns;
	struct stun_addr last_mapped;
};

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* check_answer - a Binding success for this run, consistent with what we asked. */
static bool check_answer(struct gen *g, const uint8_t *buf, size_t len)
{
	struct stun_msg m;

	if (stun_msg_parse(&m, buf, len) || m.type != STUN_BINDING_SUCCESS || !m.has_xor_mapped ||
	    memcmp(m.txid, g->run, sizeof(g->run)) || m.fingerprint != g->fingerprint) {
		return false;
	}
	if (m.has_mapped && memcmp(&m.mapped, &m.xor_mapped, sizeof(m.mapped))) {
		return false;
	}
	g->last_mapped = m.xor_mapped;
	return true;
}

static void drain(struct gen *g)
{
	static uint8_t rx[BATCH][600];
	struct mmsghdr msg[BATCH];
	struct iovec iov[BATCH];
	int n;

	do {
		memset(msg, 0, sizeof(msg));
		for (int i = 0; i < BATCH; i++) {
			iov[i].iov_base = rx[i];
			iov[i].iov_len = sizeof(rx[i]);
			msg[i].msg_hdr.msg_iov = &iov[i];
			msg[i].msg_hdr.msg_iovlen = 1;
		}
		n = recvmmsg(g->fd, msg, BATCH, MSG_DONTWAIT, NULL);
		for (int i = 0; i < n; i++) {
			if (check_answer(g, rx[i], msg[i].msg_len)) {
				g->valid++;
				g->last_rx_ns = now_ns();
			} else {
				g->invalid++;
			}
		}
	} while (n == BATCH);
}

static void addr_print(const struct stun_addr *a)
{
	struct sockaddr_storage ss = { 0 };
	char buf[80];

	if (a->family == STUN_FAMILY_IPV4) {
		struct sockaddr_in *in = (struct sockaddr_in *)&ss;

		in->sin_family = AF_INET;
		in->sin_port = htons(a->port);
		memcpy(&in->sin_addr, a->addr, 4);
	} else {
		struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;

		in6->sin6_family = AF_INET6;
		in6->sin6_port = htons(a->port);
		memcpy(&in6->sin6_addr, a->addr, 16);
	}
	stun_sockaddr_format((struct sockaddr *)&ss, buf, sizeof(buf));
	printf("mapped %s\n", buf);
}

static int run_flood(struct gen *g, uint64_t count, int timeout_ms, bool json)
{
	static uint8_t tx[BATCH][STUN_HDR_LEN + STUN_FINGERPRINT_LEN];
	struct mmsghdr msg[BATCH];
	struct iovec iov[BATCH];
	uint64_t sent = 0, t0 = now_ns(), t_sent, end;
	double secs;

	while (sent < count) {
		unsigned int k = count - sent < BATCH ? (unsigned int)(count - sent) : BATCH;
		int r;

		memset(msg, 0, sizeof(msg));
		for (unsigned int i = 0; i < k; i++) {
			uint8_t txid[STUN_TXID_LEN];
			uint64_t seq = sent + i;
			size_t n;

			memcpy(txid, g->run, 4);
			memcpy(txid + 4, &seq, 8);
			stun_binding_request_build(tx[i], sizeof(tx[i]), &n, txid, g->fingerprint);
			iov[i].iov_base = tx[i];
			iov[i].iov_len = n;
			msg[i].msg_hdr.msg_iov = &iov[i];
			msg[i].msg_hdr.msg_iovlen = 1;
		}
		r = sendmmsg(g->fd, msg, k, MSG_DONTWAIT);
		if (r < 0 && errno != EAGAIN && errno != ENOBUFS && errno != ECONNREFUSED) {
			perror("natx-stunc: sendmmsg");
			return 1;
		}
		if (r > 0) {
			sent += (uint64_t)r;
		} else {
			struct pollfd p = { .fd = g->fd, .events = POLLOUT | POLLIN };

			poll(&p, 1, 10);
		}
		drain(g);
	}
	t_sent = now_ns();
	end = t_sent + (uint64_t)timeout_ms * 1000000ull;
	while (now_ns() < end) {
		struct pollfd p = { .fd = g->fd, .events = POLLIN };

		if (poll(&p, 1, 20) > 0) {
			drain(g);
			end = now_ns() + (uint64_t)timeout_ms * 1000000ull;
			if (g->valid >= count) {
				break;
			}
		}
	}
	secs = (double)((g->last_rx_ns > t0 ? g->last_rx_ns : t_sent) - t0) / 1e9;
	if (secs <= 0) {
		secs = 1e-9;
	}
	if (json) {
		printf("{\"sent\":%llu,\"answered\":%llu,\"invalid\":%llu,\"seconds\":%.6f,"
		       "\"sent_per_s\":%.0f,\"answered_per_s\":%.0f}\n",
		       (unsigned long long)sent, (unsigned long long)g->valid,
		       (unsigned long long)g->invalid, secs,
		       (double)sent / ((double)(t_sent - t0) / 1e9), (double)g->valid / secs);
	} else {
		printf("sent %llu answered %llu invalid %llu in %.3f s: %.0f answers/s\n",
		       (unsigned long long)sent, (unsigned long long)g->valid,
		       (unsigned long long)g->invalid, secs, (double)g->valid / secs);
	}
	return 0;
}

static int run_once(struct gen *g, int timeout_ms)
{
	for (int attempt = 0; attempt < 3; attempt++) {
		uint8_t req[STUN_HDR_LEN + STUN_FINGERPRINT_LEN], txid[STUN_TXID_LEN], rx[600];
		uint64_t end = now_ns() + (uint64_t)timeout_ms * 1000000ull;
		size_t n;

		memcpy(txid, g->run, 4);
		getrandom(txid + 4, 8, 0);
		stun_binding_request_build(req, sizeof(req), &n, txid, g->fingerprint);
		if (send(g->fd, req, n, 0) < 0 && errno != ECONNREFUSED) {
			perror("natx-stunc: send");
			return 1;
		}
		while (now_ns() < end) {
			struct pollfd p = { .fd = g->fd, .events = POLLIN };
			ssize_t r;

			if (poll(&p, 1, (int)((end - now_ns()) / 1000000ull) + 1) <= 0) {
				continue;
			}
			r = recv(g->fd, rx, sizeof(rx), MSG_DONTWAIT);
			if (r > 0 && check_answer(g, rx, (size_t)r) &&
			    !memcmp(rx + 8, txid, STUN_TXID_LEN)) {
				addr_print(&g->last_mapped);
				return 0;
			}
		}
	}
	fprintf(stderr, "natx-stunc: no valid answer\n");
	return 1;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "count", required_argument, NULL, 'c' },
		{ "bind", required_argument, NULL, 'B' },
		{ "timeout-ms", required_argument, NULL, 't' },
		{ "fingerprint", no_argument, NULL, 'f' },
		{ "json", no_argument, NULL, 'j' },
		{ NULL, 0, NULL, 0 },
	};
	struct sockaddr_storage srv, loc;
	socklen_t slen, llen = 0;
	struct gen g = { 0 };
	uint64_t count = 1;
	int timeout_ms = 1000, c, sndbuf = 4 << 20;
	bool json = false;
	const char *bind_at = NULL;

	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'c':
			count = strtoull(optarg, NULL, 10);
			break;
		case 'B':
			bind_at = optarg;
			break;
		case 't':
			timeout_ms = atoi(optarg);
			break;
		case 'f':
			g.fingerprint = true;
			break;
		case 'j':
			json = true;
			break;
		default:
			return 2;
		}
	}
	if (optind + 1 != argc || stun_sockaddr_parse(argv[optind], &srv, &slen) || !count ||
	    count > 100000000ull || timeout_ms <= 0 ||
	    (bind_at && stun_sockaddr_parse(bind_at, &loc, &llen))) {
		fprintf(stderr, "usage: natx-stunc SERVER:PORT [--count N] [--bind ADDR:PORT] "
				"[--fingerprint] [--timeout-ms T] [--json]\n");
		return 2;
	}
	g.fd = socket(srv.ss_family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (g.fd < 0 || (bind_at && bind(g.fd, (struct sockaddr *)&loc, llen)) ||
	    connect(g.fd, (struct sockaddr *)&srv, slen)) {
		perror("natx-stunc");
		return 1;
	}
	setsockopt(g.fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf));
	setsockopt(g.fd, SOL_SOCKET, SO_RCVBUF, &sndbuf, sizeof(sndbuf));
	getrandom(g.run, sizeof(g.run), 0);
	c = count == 1 ? run_once(&g, timeout_ms) : run_flood(&g, count, timeout_ms, json);
	close(g.fd);
	return c;
}
