// SPDX-License-Identifier: MIT
/*
 * bench-connrate - new-connection rate through a TCP proxy to an echo server.
 *
 *   bench-connrate --connect ADDR [--count N] [--time-limit SEC] [--threads T]
 *                  [--concurrency C] [--payload BYTES] [--timeout SEC]
 *
 * Each of T threads keeps C connections in flight on its own epoll. One connection is:
 * non-blocking connect, send BYTES of a known pattern, read the same BYTES back, compare, close.
 * The run stops after N connections were started (and finished) or after SEC seconds, whichever
 * comes first. A connection that fails at any step, echoes wrong bytes, or makes no progress for
 * --timeout seconds counts as an error. Output, one line on stdout:
 *   ok=N err=E connect_err=.. io_err=.. mismatch=.. timeout=.. secs=S rate=R
 * (rate = ok / secs). Exit status 0 when at least one connection completed, 1 otherwise,
 * 2 on a usage error.
 */
#include "bench_util.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

enum {
	CR_PAYLOAD_MAX = 16384,
	CR_THREADS_MAX = 64,
	CR_CONC_MAX = 4096,
};

enum cr_state { CR_IDLE, CR_CONNECTING, CR_READING };

struct cr_slot {
	int fd;
	enum cr_state state;
	size_t got;
	uint64_t deadline_ns;
};

struct cr_stats {
	uint64_t ok, connect_err, io_err, mismatch, timeout;
};

static struct sockaddr_storage cr_addr;
static socklen_t cr_addr_len;
static uint64_t cr_count = 10000, cr_threads = 2, cr_conc = 32, cr_payload = 64;
static uint64_t cr_time_ns, cr_timeout_ns, cr_start_ns;
static atomic_uint_fast64_t cr_started;
static uint8_t cr_pattern[CR_PAYLOAD_MAX];

/* cr_budget_take - claim one connection from the global budget; false when it is spent. */
static bool cr_budget_take(void)
{
	if (bench_now_ns() - cr_start_ns >= cr_time_ns) {
		return false;
	}
	return atomic_fetch_add(&cr_started, 1) < cr_count;
}

/* cr_slot_end - close the slot's socket and mark it idle. */
static void cr_slot_end(struct cr_slot *s)
{
	if (s->fd >= 0) {
		close(s->fd);
	}
	s->fd = -1;
	s->state = CR_IDLE;
}

/* cr_slot_start - begin a new connection in @s. Returns false when the budget is spent. */
static bool cr_slot_start(int ep, struct cr_slot *s, struct cr_stats *st)
{
	while (cr_budget_take()) {
		int fd = socket(cr_addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

		if (fd < 0) {
			st->connect_err++;
			continue;
		}
		if (connect(fd, (struct sockaddr *)&cr_addr, cr_addr_len) < 0 &&
		    errno != EINPROGRESS) {
			close(fd);
			st->connect_err++;
			continue;
		}
		struct epoll_event ev = { .events = EPOLLOUT, .data.ptr = s };

		if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) < 0) {
			close(fd);
			st->io_err++;
			continue;
		}
		s->fd = fd;
		s->state = CR_CONNECTING;
		s->got = 0;
		s->deadline_ns = bench_now_ns() + cr_timeout_ns;
		return true;
	}
	return false;
}

/* cr_slot_connected - the connect finished: check it and send the payload. */
static int cr_slot_connected(int ep, struct cr_slot *s, struct cr_stats *st)
{
	int soerr = 0;
	socklen_t l = sizeof(soerr);

	if (getsockopt(s->fd, SOL_SOCKET, SO_ERROR, &soerr, &l) < 0 || soerr) {
		st->connect_err++;
		return -1;
	}
	/* A small payload always fits an empty socket buffer: a short send is an error. */
	ssize_t n = send(s->fd, cr_pattern, cr_payload, MSG_NOSIGNAL);

	if (n != (ssize_t)cr_payload) {
		st->io_err++;
		return -1;
	}
	struct epoll_event ev = { .events = EPOLLIN, .data.ptr = s };

	if (epoll_ctl(ep, EPOLL_CTL_MOD, s->fd, &ev) < 0) {
		st->io_err++;
		return -1;
	}
	s->state = CR_READING;
	return 0;
}

/* cr_slot_readable - read echoed bytes. Returns 1 when complete, 0 for more, -1 on error. */
static int cr_slot_readable(struct cr_slot *s, struct cr_stats *st)
{
	uint8_t buf[CR_PAYLOAD_MAX];
	ssize_t n = recv(s->fd, buf, cr_payload - s->got, 0);

	if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
		return 0;
	}
	if (n <= 0) {
		st->io_err++;
		return -1;
	}
	if (memcmp(buf, cr_pattern + s->got, (size_t)n) != 0) {
		st->mismatch++;
		return -1;
	}
	s->got += (size_t)n;
	return s->got == cr_payload ? 1 : 0;
}

/* cr_thread_run - drive cr_conc connections until the budget is spent and all are done. */
static void *cr_thread_run(void *arg)
{
	struct cr_stats *st = arg;
	struct cr_slot *slots = calloc(cr_conc, sizeof(*slots));
	struct epoll_event evs[256];
	int ep = epoll_create1(EPOLL_CLOEXEC);
	uint64_t active = 0;

	if (!slots || ep < 0) {
		fprintf(stderr, "bench-connrate: out of memory or epoll\n");
		exit(1);
	}
	for (uint64_t i = 0; i < cr_conc; i++) {
		slots[i].fd = -1;
		if (cr_slot_start(ep, &slots[i], st)) {
			active++;
		}
	}
	while (active) {
		int n = epoll_wait(ep, evs, 256, 50);

		for (int i = 0; i < n; i++) {
			struct cr_slot *s = evs[i].data.ptr;
			int r;

			if (s->state == CR_CONNECTING) {
				r = cr_slot_connected(ep, s, st) < 0 ? -1 : 0;
			} else {
				r = cr_slot_readable(s, st);
			}
			if (r == 1) {
				st->ok++;
			}
			if (r != 0) {
				cr_slot_end(s);
				if (!cr_slot_start(ep, s, st)) {
					active--;
				}
			} else {
				s->deadline_ns = bench_now_ns() + cr_timeout_ns;
			}
		}
		uint64_t now = bench_now_ns();

		for (uint64_t i = 0; i < cr_conc; i++) {
			if (slots[i].state != CR_IDLE && now > slots[i].deadline_ns) {
				st->timeout++;
				cr_slot_end(&slots[i]);
				if (!cr_slot_start(ep, &slots[i], st)) {
					active--;
				}
			}
		}
	}
	close(ep);
	free(slots);
	return NULL;
}

/* cr_usage - print the command line and exit with @status. */
static void cr_usage(int status)
{
	fprintf(status ? stderr : stdout,
		"usage: bench-connrate --connect ADDR [--count N] [--time-limit SEC] [--threads T]\n"
		"                      [--concurrency C] [--payload BYTES] [--timeout SEC]\n");
	exit(status);
}

int main(int argc, char **argv)
{
	uint64_t time_s = 10, timeout_s = 5;
	static struct cr_stats stats[CR_THREADS_MAX];
	pthread_t tids[CR_THREADS_MAX];

	for (int i = 1; i < argc; i += 2) {
		const char *v = i + 1 < argc ? argv[i + 1] : NULL;
		int bad = 0;

		if (!strcmp(argv[i], "--help")) {
			cr_usage(0);
		} else if (!v) {
			cr_usage(2);
		} else if (!strcmp(argv[i], "--connect")) {
			bad = bench_addr_parse(v, &cr_addr, &cr_addr_len);
		} else if (!strcmp(argv[i], "--count")) {
			bad = bench_u64_parse(v, 100000000, &cr_count);
		} else if (!strcmp(argv[i], "--time-limit")) {
			bad = bench_u64_parse(v, 3600, &time_s);
		} else if (!strcmp(argv[i], "--threads")) {
			bad = bench_u64_parse(v, CR_THREADS_MAX, &cr_threads) ?: !cr_threads;
		} else if (!strcmp(argv[i], "--concurrency")) {
			bad = bench_u64_parse(v, CR_CONC_MAX, &cr_conc) ?: !cr_conc;
		} else if (!strcmp(argv[i], "--payload")) {
			bad = bench_u64_parse(v, CR_PAYLOAD_MAX, &cr_payload) ?: !cr_payload;
		} else if (!strcmp(argv[i], "--timeout")) {
			bad = bench_u64_parse(v, 600, &timeout_s) ?: !timeout_s;
		} else {
			cr_usage(2);
		}
		if (bad) {
			fprintf(stderr, "bench-connrate: bad value '%s' for %s\n", v, argv[i]);
			return 2;
		}
	}
	if (!cr_addr_len) {
		cr_usage(2);
	}
	if (bench_nofile_raise(cr_threads * cr_conc + 64) < 0) {
		fprintf(stderr, "bench-connrate: cannot raise the open-file limit\n");
		return 2;
	}
	bench_pattern_fill(cr_pattern, sizeof(cr_pattern), 0x636f6e6e, 0);
	cr_time_ns = time_s * 1000000000ull;
	cr_timeout_ns = timeout_s * 1000000000ull;
	cr_start_ns = bench_now_ns();
	for (uint64_t i = 0; i < cr_threads; i++) {
		if (pthread_create(&tids[i], NULL, cr_thread_run, &stats[i]) != 0) {
			fprintf(stderr, "bench-connrate: pthread_create failed\n");
			return 1;
		}
	}
	struct cr_stats sum = { 0 };

	for (uint64_t i = 0; i < cr_threads; i++) {
		pthread_join(tids[i], NULL);
		sum.ok += stats[i].ok;
		sum.connect_err += stats[i].connect_err;
		sum.io_err += stats[i].io_err;
		sum.mismatch += stats[i].mismatch;
		sum.timeout += stats[i].timeout;
	}
	double secs = (double)(bench_now_ns() - cr_start_ns) / 1e9;
	uint64_t err = sum.connect_err + sum.io_err + sum.mismatch + sum.timeout;

	printf("ok=%llu err=%llu connect_err=%llu io_err=%llu mismatch=%llu timeout=%llu "
	       "secs=%.3f rate=%.0f\n",
	       (unsigned long long)sum.ok, (unsigned long long)err,
	       (unsigned long long)sum.connect_err, (unsigned long long)sum.io_err,
	       (unsigned long long)sum.mismatch, (unsigned long long)sum.timeout, secs,
	       secs > 0 ? (double)sum.ok / secs : 0.0);
	return sum.ok ? 0 : 1;
}
