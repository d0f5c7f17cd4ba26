// SPDX-License-Identifier: MIT
/*
 * bench-udpblast - UDP forwarding rate through a proxy to a UDP echo server.
 *
 *   bench-udpblast --target ADDR [--size BYTES] [--count N] [--window W] [--batch B]
 *                  [--time-limit SEC]
 *
 * Sends N datagrams of BYTES (>= 16) with sendmmsg and receives the echoes with recvmmsg on
 * the same socket. At most W datagrams are in flight (sent, not yet echoed) so the measurement
 * is the sustained round-trip rate, not how fast a socket buffer overflows. When nothing comes
 * back for 20 ms the outstanding datagrams are written off (counted as lost unless they show up
 * later) so one loss never stalls the window. Every datagram carries (run id, sequence) and a
 * pattern derived from them: a wrong byte counts as corrupt, a sequence seen twice as duplicate.
 * Output, one line on stdout:
 *   sent=N recv=M lost=L corrupt=C dup=D secs=S pps=P mbps=X
 * pps = echoed datagrams per second (each one crossed the proxy twice), mbps = payload bits of
 * echoed datagrams per second one way. Exit 0 when something came back, 1 otherwise, 2 on usage.
 */
#include "bench_util.h"

#include <errno.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum {
	UB_SIZE_MIN = 16,
	UB_SIZE_MAX = 9000,
	UB_BATCH_MAX = 256,
	UB_STALL_MS = 20,
	UB_DRAIN_MS = 300,
};

struct ub_run {
	uint64_t id, size, count, window, batch;
	uint64_t sent, recv, corrupt, dup, written_off;
	uint8_t *seen; /* one bit per sequence number */
};

/* ub_put64 / ub_get64 - little-endian 64-bit store and load. */
static void ub_put64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++) {
		p[i] = (uint8_t)(v >> (8 * i));
	}
}

static uint64_t ub_get64(const uint8_t *p)
{
	uint64_t v = 0;

	for (int i = 0; i < 8; i++) {
		v |= (uint64_t)p[i] << (8 * i);
	}
	return v;
}

/* ub_packet_fill - datagram @seq: run id, sequence, then the pattern of (id, seq). */
static void ub_packet_fill(const struct ub_run *r, uint8_t *p, uint64_t seq)
{
	ub_put64(p, r->id);
	ub_put64(p + 8, seq);
	bench_pattern_fill(p + 16, r->size - 16, r->id ^ seq, 0);
}

/* ub_packet_check - account one received datagram of @len bytes. */
static void ub_packet_check(struct ub_run *r, const uint8_t *p, size_t len)
{
	uint8_t want[UB_SIZE_MAX];
	uint64_t seq;

	if (len != r->size || ub_get64(p) != r->id || (seq = ub_get64(p + 8)) >= r->count) {
		r->corrupt++;
		return;
	}
	bench_pattern_fill(want, r->size - 16, r->id ^ seq, 0);
	if (memcmp(want, p + 16, r->size - 16) != 0) {
		r->corrupt++;
		return;
	}
	if (r->seen[seq >> 3] & (1u << (seq & 7))) {
		r->dup++;
		return;
	}
	r->seen[seq >> 3] |= (uint8_t)(1u << (seq & 7));
	r->recv++;
}

/* ub_recv_drain - receive everything queued (non-blocking). Returns datagrams received. */
static int ub_recv_drain(struct ub_run *r, int fd, uint8_t (*bufs)[UB_SIZE_MAX])
{
	struct mmsghdr msgs[UB_BATCH_MAX];
	struct iovec iov[UB_BATCH_MAX];
	int total = 0;

	for (int round = 0; round < 64; round++) {
		for (uint64_t i = 0; i < r->batch; i++) {
			iov[i].iov_base = bufs[i];
			iov[i].iov_len = UB_SIZE_MAX;
			memset(&msgs[i], 0, sizeof(msgs[i]));
			msgs[i].msg_hdr.msg_iov = &iov[i];
			msgs[i].msg_hdr.msg_iovlen = 1;
		}
		int n = recvmmsg(fd, msgs, (unsigned)r->batch, MSG_DONTWAIT, NULL);

		if (n <= 0) {
			break;
		}
		for (int i = 0; i < n; i++) {
			ub_packet_check(r, bufs[i], msgs[i].msg_len);
		}
		total += n;
	}
	return total;
}

/* ub_send_some - send up to @want datagrams. Returns the number sent. */
static uint64_t ub_send_some(struct ub_run *r, int fd, uint8_t (*bufs)[UB_SIZE_MAX], uint64_t want)
{
	struct mmsghdr msgs[UB_BATCH_MAX];
	struct iovec iov[UB_BATCH_MAX];

	if (want > r->batch) {
		want = r->batch;
	}
	if (want > r->count - r->sent) {
		want = r->count - r->sent;
	}
	for (uint64_t i = 0; i < want; i++) {
		ub_packet_fill(r, bufs[i], r->sent + i);
		iov[i].iov_base = bufs[i];
		iov[i].iov_len = r->size;
		memset(&msgs[i], 0, sizeof(msgs[i]));
		msgs[i].msg_hdr.msg_iov = &iov[i];
		msgs[i].msg_hdr.msg_iovlen = 1;
	}
	int n = sendmmsg(fd, msgs, (unsigned)want, MSG_DONTWAIT);

	return n > 0 ? (uint64_t)n : 0;
}

/*
 * ub_inflight - datagrams sent, not echoed and not written off. Late echoes of written-off
 * datagrams can make recv overtake the written-off mark; the window then counts as empty.
 */
static uint64_t ub_inflight(const struct ub_run *r)
{
	uint64_t outstanding = r->sent - r->recv;

	return outstanding > r->written_off ? outstanding - r->written_off : 0;
}

/* ub_usage - print the command line and exit with @status. */
static void ub_usage(int status)
{
	fprintf(status ? stderr : stdout,
		"usage: bench-udpblast --target ADDR [--size BYTES] [--count N] [--window W]\n"
		"                      [--batch B] [--time-limit SEC]\n");
	exit(status);
}

int main(int argc, char **argv)
{
	struct ub_run r = { .size = 64, .count = 1000000, .window = 256, .batch = 32 };
	struct sockaddr_storage ss;
	socklen_t sslen = 0;
	uint64_t time_s = 10;
	static uint8_t sbufs[UB_BATCH_MAX][UB_SIZE_MAX], rbufs[UB_BATCH_MAX][UB_SIZE_MAX];

	for (int i = 1; i < argc; i += 2) {
		const char *v = i + 1 < argc ? argv[i + 1] : NULL;
		int bad = 0;

		if (!strcmp(argv[i], "--help")) {
			ub_usage(0);
		} else if (!v) {
			ub_usage(2);
		} else if (!strcmp(argv[i], "--target")) {
			bad = bench_addr_parse(v, &ss, &sslen);
		} else if (!strcmp(argv[i], "--size")) {
			bad = bench_u64_parse(v, UB_SIZE_MAX, &r.size) ?: r.size < UB_SIZE_MIN;
		} else if (!strcmp(argv[i], "--count")) {
			bad = bench_u64_parse(v, 1ull << 32, &r.count) ?: !r.count;
		} else if (!strcmp(argv[i], "--window")) {
			bad = bench_u64_parse(v, 1 << 20, &r.window) ?: !r.window;
		} else if (!strcmp(argv[i], "--batch")) {
			bad = bench_u64_parse(v, UB_BATCH_MAX, &r.batch) ?: !r.batch;
		} else if (!strcmp(argv[i], "--time-limit")) {
			bad = bench_u64_parse(v, 3600, &time_s) ?: !time_s;
		} else {
			ub_usage(2);
		}
		if (bad) {
			fprintf(stderr, "bench-udpblast: bad value '%s' for %s\n", v, argv[i]);
			return 2;
		}
	}
	if (!sslen) {
		ub_usage(2);
	}
	r.seen = calloc((r.count + 7) / 8, 1);
	if (!r.seen) {
		fprintf(stderr, "bench-udpblast: out of memory\n");
		return 1;
	}
	int fd = socket(ss.ss_family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	int big = 8 << 20;

	if (fd < 0 || connect(fd, (struct sockaddr *)&ss, sslen) < 0) {
		perror("bench-udpblast: socket/connect");
		return 1;
	}
	setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &big, sizeof(big));
	setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &big, sizeof(big));
	r.id = bench_now_ns() ^ ((uint64_t)getpid() << 32);

	uint64_t start = bench_now_ns(), end_by = start + time_s * 1000000000ull;

	while (r.sent < r.count && bench_now_ns() < end_by) {
		uint64_t inflight = ub_inflight(&r), sent_now = 0;

		if (inflight < r.window) {
			sent_now = ub_send_some(&r, fd, sbufs, r.window - inflight);
			r.sent += sent_now;
		}
		if (ub_recv_drain(&r, fd, rbufs) > 0) {
			continue;
		}
		if (ub_inflight(&r) < r.window) {
			if (!sent_now) {
				/* Send buffer full and nothing to read: do not spin. */
				struct pollfd w = { .fd = fd, .events = POLLIN | POLLOUT };

				poll(&w, 1, 1);
			}
			continue;
		}
		/* Window full and nothing queued: wait a little, then write the window off. */
		struct pollfd pfd = { .fd = fd, .events = POLLIN };

		if (poll(&pfd, 1, UB_STALL_MS) == 0) {
			r.written_off = r.sent - r.recv;
		}
	}
	/* Stragglers: wait until everything is back or nothing arrived for UB_DRAIN_MS. */
	uint64_t last_ns = bench_now_ns();

	while (r.recv < r.sent && bench_now_ns() - last_ns < UB_DRAIN_MS * 1000000ull) {
		struct pollfd pfd = { .fd = fd, .events = POLLIN };

		if (poll(&pfd, 1, 10) > 0 && ub_recv_drain(&r, fd, rbufs) > 0) {
			last_ns = bench_now_ns();
		}
	}
	/* The rate counts only the echo phase, not the straggler wait. */
	double secs = (double)(last_ns - start) / 1e9;

	printf("sent=%llu recv=%llu lost=%llu corrupt=%llu dup=%llu secs=%.3f pps=%.0f mbps=%.1f\n",
	       (unsigned long long)r.sent, (unsigned long long)r.recv,
	       (unsigned long long)(r.sent - r.recv), (unsigned long long)r.corrupt,
	       (unsigned long long)r.dup, secs, secs > 0 ? (double)r.recv / secs : 0.0,
	       secs > 0 ? (double)r.recv * (double)r.size * 8 / secs / 1e6 : 0.0);
	close(fd);
	free(r.seen);
	return r.recv ? 0 : 1;
}
