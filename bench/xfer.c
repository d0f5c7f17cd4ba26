// SPDX-License-Identifier: MIT
/*
 * bench-xfer - move a large byte stream through a proxy and compare checksums at both ends.
 *
 *   bench-xfer recv --listen ADDR [--conns N] [--timeout SEC]
 *   bench-xfer send --connect ADDR --bytes N [--seed S] [--timeout SEC]
 *
 * recv binds ADDR (port 0 picks one), prints "port=P" and "ready", accepts N connections
 * (default 1), each served by its own thread: read to EOF while hashing (XXH3-64), then write
 * "bytes=N xxh3=H\n" back on the same connection and print the same line on stdout. It exits 0
 * once every connection is done (lines in completion order: match them by checksum).
 * send writes N bytes of the deterministic pattern of seed S, hashing as it goes, half-closes
 * (FIN), then waits for recv's line. It prints
 *   sent_bytes=N sent_xxh3=H peer_bytes=M peer_xxh3=K match=yes|no|noreply secs=T gbps=G
 * and exits 0 on a match, 1 on a mismatch, 3 when no reply came back (a proxy that does not
 * carry a half-close; the harness then compares with recv's stdout), 2 on usage or I/O errors.
 * Every blocking call has a --timeout (default 60 s), so neither side can hang forever.
 */
#include "bench_util.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <unistd.h>
#include <xxhash.h>

enum {
	XF_CHUNK = 256 * 1024,
	XF_CONNS_MAX = 64,
};

/* xf_timeout_set - bound every blocking send/recv on @fd to @sec seconds. */
static void xf_timeout_set(int fd, uint64_t sec)
{
	struct timeval tv = { .tv_sec = (time_t)sec };

	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
}

/* xf_send_all - write all of @buf. Returns 0 or -errno. */
static int xf_send_all(int fd, const uint8_t *buf, size_t len)
{
	while (len) {
		ssize_t n = send(fd, buf, len, MSG_NOSIGNAL);

		if (n < 0) {
			if (errno == EINTR) {
				continue;
			}
			return -errno;
		}
		buf += n;
		len -= (size_t)n;
	}
	return 0;
}

static pthread_mutex_t xf_out_lock = PTHREAD_MUTEX_INITIALIZER;

/* xf_recv_conn - one received connection: hash to EOF, reply, print. Takes ownership of fd. */
static void *xf_recv_conn(void *arg)
{
	int fd = (int)(intptr_t)arg;
	uint8_t *buf = malloc(XF_CHUNK);
	XXH3_state_t *st = XXH3_createState();
	uint64_t total = 0;

	if (!buf || !st || XXH3_64bits_reset(st) != XXH_OK) {
		fprintf(stderr, "bench-xfer recv: out of memory\n");
		exit(2);
	}
	for (;;) {
		ssize_t n = recv(fd, buf, XF_CHUNK, 0);

		if (n == 0) {
			break;
		}
		if (n < 0) {
			if (errno == EINTR) {
				continue;
			}
			perror("bench-xfer recv: recv");
			exit(2);
		}
		XXH3_64bits_update(st, buf, (size_t)n);
		total += (uint64_t)n;
	}
	char line[96];
	int l = snprintf(line, sizeof(line), "bytes=%llu xxh3=%016llx\n", (unsigned long long)total,
			 (unsigned long long)XXH3_64bits_digest(st));

	XXH3_freeState(st);
	free(buf);
	/* The reply is best effort: a proxy without half-close has already closed this side. */
	xf_send_all(fd, (const uint8_t *)line, (size_t)l);
	pthread_mutex_lock(&xf_out_lock);
	fputs(line, stdout);
	fflush(stdout);
	pthread_mutex_unlock(&xf_out_lock);
	close(fd);
	return NULL;
}

/* xf_recv_main - the receiving end: @conns connections, one thread each. */
static int xf_recv_main(const struct sockaddr_storage *ss, socklen_t len, uint64_t conns,
			uint64_t timeout_s)
{
	int one = 1;
	int lfd = socket(ss->ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_storage bound;
	socklen_t blen = sizeof(bound);
	pthread_t tids[XF_CONNS_MAX];

	if (lfd < 0 || setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
	    bind(lfd, (const struct sockaddr *)ss, len) < 0 || listen(lfd, 64) < 0 ||
	    getsockname(lfd, (struct sockaddr *)&bound, &blen) < 0) {
		perror("bench-xfer recv: listen");
		return 2;
	}
	printf("port=%u\nready\n", bench_addr_port(&bound));
	fflush(stdout);
	xf_timeout_set(lfd, timeout_s);
	for (uint64_t i = 0; i < conns; i++) {
		int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);

		if (fd < 0) {
			perror("bench-xfer recv: accept");
			return 2;
		}
		xf_timeout_set(fd, timeout_s);
		if (pthread_create(&tids[i], NULL, xf_recv_conn, (void *)(intptr_t)fd) != 0) {
			fprintf(stderr, "bench-xfer recv: pthread_create failed\n");
			return 2;
		}
	}
	close(lfd);
	for (uint64_t i = 0; i < conns; i++) {
		pthread_join(tids[i], NULL);
	}
	return 0;
}

/* xf_send_main - the sending end. */
static int xf_send_main(const struct sockaddr_storage *ss, socklen_t len, uint64_t bytes,
			uint64_t seed, uint64_t timeout_s)
{
	static uint8_t buf[XF_CHUNK];
	int fd = socket(ss->ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0) {
		perror("bench-xfer send: socket");
		return 2;
	}
	xf_timeout_set(fd, timeout_s);
	if (connect(fd, (const struct sockaddr *)ss, len) < 0) {
		perror("bench-xfer send: connect");
		return 2;
	}
	XXH3_state_t *st = XXH3_createState();
	uint64_t off = 0, start = bench_now_ns();

	if (!st || XXH3_64bits_reset(st) != XXH_OK) {
		fprintf(stderr, "bench-xfer send: xxhash state\n");
		return 2;
	}
	while (off < bytes) {
		size_t n = bytes - off < XF_CHUNK ? (size_t)(bytes - off) : XF_CHUNK;
		int err;

		bench_pattern_fill(buf, n, seed, off);
		XXH3_64bits_update(st, buf, n);
		err = xf_send_all(fd, buf, n);
		if (err < 0) {
			fprintf(stderr, "bench-xfer send: send at %llu: %s\n",
				(unsigned long long)off, strerror(-err));
			return 2;
		}
		off += n;
	}
	uint64_t mine = XXH3_64bits_digest(st);

	XXH3_freeState(st);
	shutdown(fd, SHUT_WR);

	char reply[128];
	size_t got = 0;

	while (got < sizeof(reply) - 1) {
		ssize_t n = recv(fd, reply + got, sizeof(reply) - 1 - got, 0);

		if (n <= 0) {
			break;
		}
		got += (size_t)n;
		if (memchr(reply, '\n', got)) {
			break;
		}
	}
	reply[got] = '\0';

	double secs = (double)(bench_now_ns() - start) / 1e9;
	unsigned long long peer_bytes = 0, peer_hash = 0;
	int have = sscanf(reply, "bytes=%llu xxh3=%llx", &peer_bytes, &peer_hash) == 2;
	const char *match = !have				       ? "noreply" :
			    (peer_bytes == bytes && peer_hash == mine) ? "yes" :
									 "no";

	printf("sent_bytes=%llu sent_xxh3=%016llx peer_bytes=%llu peer_xxh3=%016llx match=%s "
	       "secs=%.3f gbps=%.2f\n",
	       (unsigned long long)bytes, (unsigned long long)mine, peer_bytes, peer_hash, match,
	       secs, secs > 0 ? (double)bytes * 8 / secs / 1e9 : 0.0);
	close(fd);
	return !have ? 3 : strcmp(match, "yes") ? 1 : 0;
}

/* xf_usage - print the command line and exit with @status. */
static void xf_usage(int status)
{
	fprintf(status ? stderr : stdout,
		"usage: bench-xfer recv --listen ADDR [--conns N] [--timeout SEC]\n"
		"       bench-xfer send --connect ADDR --bytes N [--seed S] [--timeout SEC]\n");
	exit(status);
}

int main(int argc, char **argv)
{
	struct sockaddr_storage ss;
	socklen_t sslen = 0;
	uint64_t bytes = 0, seed = 1, timeout_s = 60, conns = 1;

	if (argc < 2 || (strcmp(argv[1], "recv") && strcmp(argv[1], "send"))) {
		xf_usage(argc >= 2 && !strcmp(argv[1], "--help") ? 0 : 2);
	}
	bool is_send = !strcmp(argv[1], "send");

	for (int i = 2; i < argc; i += 2) {
		const char *v = i + 1 < argc ? argv[i + 1] : NULL;
		int bad = 0;

		if (!v) {
			xf_usage(2);
		} else if (!strcmp(argv[i], is_send ? "--connect" : "--listen")) {
			bad = bench_addr_parse(v, &ss, &sslen);
		} else if (is_send && !strcmp(argv[i], "--bytes")) {
			bad = bench_u64_parse(v, 1ull << 40, &bytes);
		} else if (!is_send && !strcmp(argv[i], "--conns")) {
			bad = bench_u64_parse(v, XF_CONNS_MAX, &conns) ?: !conns;
		} else if (is_send && !strcmp(argv[i], "--seed")) {
			bad = bench_u64_parse(v, UINT64_MAX, &seed);
		} else if (!strcmp(argv[i], "--timeout")) {
			bad = bench_u64_parse(v, 3600, &timeout_s) ?: !timeout_s;
		} else {
			xf_usage(2);
		}
		if (bad) {
			fprintf(stderr, "bench-xfer: bad value '%s' for %s\n", v, argv[i]);
			return 2;
		}
	}
	if (!sslen) {
		xf_usage(2);
	}
	return is_send ? xf_send_main(&ss, sslen, bytes, seed, timeout_s) :
			 xf_recv_main(&ss, sslen, conns, timeout_s);
}
