// SPDX-License-Identifier: MIT
/*
 * bench-idleflows - open many TCP flows through a proxy to an echo server and hold them idle,
 * so the harness can read the proxy's memory at N open flows.
 *
 *   bench-idleflows --connect ADDR [--count N] [--concurrency C] [--payload BYTES]
 *                   [--hold SEC] [--timeout SEC] [--setup-limit SEC]
 *
 * Phase 1 opens N connections, at most C being set up at once. A flow counts as open only when
 * its BYTES-byte payload came back from the echo server, i.e. the proxy holds both legs. A flow
 * fails when its setup takes over --timeout seconds (default 5); phase 1 as a whole ends after
 * --setup-limit seconds (default 60): flows still in setup then, or never started, count as
 * failed, so a forwarder that refuses flows is reported at the count it reached.
 * Then it prints "open=N failed=F secs=S" and "ready" on stdout and holds every flow idle until
 * SIGTERM/SIGINT or --hold seconds, whichever comes first, and prints "closed_early=K" (flows the
 * proxy closed while held). Exit 0 when all N flows opened and none closed early, 1 otherwise,
 * 2 on usage.
 */
#include "bench_util.h"

#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

enum {
	IF_PAYLOAD_MAX = 1024,
	IF_COUNT_MAX = 1000000,
};

enum if_state { IF_CONNECTING, IF_READING, IF_OPEN, IF_DEAD };

struct if_flow {
	int fd;
	enum if_state state;
	uint16_t got;
	uint64_t deadline_ns;
};

static volatile sig_atomic_t if_stop;
static uint8_t if_pattern[IF_PAYLOAD_MAX];
static uint64_t if_payload = 16;

/* if_on_signal - ask the hold loop to stop. */
static void if_on_signal(int sig)
{
	(void)sig;
	if_stop = 1;
}

/* if_flow_fail - close a flow that failed during setup. */
static void if_flow_fail(struct if_flow *f)
{
	close(f->fd);
	f->fd = -1;
	f->state = IF_DEAD;
}

/* if_flow_start - begin connecting flow @f. Returns 0 or -1 (flow is dead). */
static int if_flow_start(int ep, struct if_flow *f, const struct sockaddr_storage *ss,
			 socklen_t len, uint64_t timeout_ns)
{
	f->fd = socket(ss->ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (f->fd < 0) {
		f->state = IF_DEAD;
		return -1;
	}
	struct epoll_event ev = { .events = EPOLLOUT, .data.ptr = f };

	if ((connect(f->fd, (const struct sockaddr *)ss, len) < 0 && errno != EINPROGRESS) ||
	    epoll_ctl(ep, EPOLL_CTL_ADD, f->fd, &ev) < 0) {
		if_flow_fail(f);
		return -1;
	}
	f->state = IF_CONNECTING;
	f->got = 0;
	f->deadline_ns = bench_now_ns() + timeout_ns;
	return 0;
}

/* if_flow_step - advance a flow in setup. Returns 1 when open, 0 for more, -1 when failed. */
static int if_flow_step(int ep, struct if_flow *f)
{
	if (f->state == IF_CONNECTING) {
		int soerr = 0;
		socklen_t l = sizeof(soerr);
		struct epoll_event ev = { .events = EPOLLIN | EPOLLRDHUP, .data.ptr = f };

		if (getsockopt(f->fd, SOL_SOCKET, SO_ERROR, &soerr, &l) < 0 || soerr ||
		    send(f->fd, if_pattern, if_payload, MSG_NOSIGNAL) != (ssize_t)if_payload ||
		    epoll_ctl(ep, EPOLL_CTL_MOD, f->fd, &ev) < 0) {
			return -1;
		}
		f->state = IF_READING;
		return 0;
	}
	uint8_t buf[IF_PAYLOAD_MAX];
	ssize_t n = recv(f->fd, buf, if_payload - f->got, 0);

	if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
		return 0;
	}
	if (n <= 0 || memcmp(buf, if_pattern + f->got, (size_t)n) != 0) {
		return -1;
	}
	f->got += (uint16_t)n;
	if (f->got < if_payload) {
		return 0;
	}
	f->state = IF_OPEN;
	return 1;
}

/* if_usage - print the command line and exit with @status. */
static void if_usage(int status)
{
	fprintf(status ? stderr : stdout,
		"usage: bench-idleflows --connect ADDR [--count N] [--concurrency C]\n"
		"                       [--payload BYTES] [--hold SEC] [--timeout SEC]\n"
		"                       [--setup-limit SEC]\n");
	exit(status);
}

int main(int argc, char **argv)
{
	struct sockaddr_storage ss;
	socklen_t sslen = 0;
	uint64_t count = 10000, conc = 256, hold_s = 60, timeout_s = 5, setup_s = 60;

	for (int i = 1; i < argc; i += 2) {
		const char *v = i + 1 < argc ? argv[i + 1] : NULL;
		int bad = 0;

		if (!strcmp(argv[i], "--help")) {
			if_usage(0);
		} else if (!v) {
			if_usage(2);
		} else if (!strcmp(argv[i], "--connect")) {
			bad = bench_addr_parse(v, &ss, &sslen);
		} else if (!strcmp(argv[i], "--count")) {
			bad = bench_u64_parse(v, IF_COUNT_MAX, &count) ?: !count;
		} else if (!strcmp(argv[i], "--concurrency")) {
			bad = bench_u64_parse(v, 65536, &conc) ?: !conc;
		} else if (!strcmp(argv[i], "--payload")) {
			bad = bench_u64_parse(v, IF_PAYLOAD_MAX, &if_payload) ?: !if_payload;
		} else if (!strcmp(argv[i], "--hold")) {
			bad = bench_u64_parse(v, 86400, &hold_s);
		} else if (!strcmp(argv[i], "--timeout")) {
			bad = bench_u64_parse(v, 600, &timeout_s) ?: !timeout_s;
		} else if (!strcmp(argv[i], "--setup-limit")) {
			bad = bench_u64_parse(v, 3600, &setup_s) ?: !setup_s;
		} else {
			if_usage(2);
		}
		if (bad) {
			fprintf(stderr, "bench-idleflows: bad value '%s' for %s\n", v, argv[i]);
			return 2;
		}
	}
	if (!sslen) {
		if_usage(2);
	}
	if (bench_nofile_raise(count + 64) < 0) {
		fprintf(stderr, "bench-idleflows: cannot raise the open-file limit to %llu\n",
			(unsigned long long)count + 64);
		return 2;
	}
	signal(SIGTERM, if_on_signal);
	signal(SIGINT, if_on_signal);
	bench_pattern_fill(if_pattern, sizeof(if_pattern), 0x69646c65, 0);

	struct if_flow *flows = calloc(count, sizeof(*flows));
	struct epoll_event evs[512];
	int ep = epoll_create1(EPOLL_CLOEXEC);
	uint64_t timeout_ns = timeout_s * 1000000000ull;
	uint64_t next = 0, pending = 0, open = 0, failed = 0, start = bench_now_ns();

	if (!flows || ep < 0) {
		fprintf(stderr, "bench-idleflows: out of memory or epoll\n");
		return 1;
	}
	uint64_t setup_end = start + setup_s * 1000000000ull;

	while ((next < count || pending) && !if_stop && bench_now_ns() < setup_end) {
		while (next < count && pending < conc) {
			if (if_flow_start(ep, &flows[next++], &ss, sslen, timeout_ns) < 0) {
				failed++;
			} else {
				pending++;
			}
		}
		int n = epoll_wait(ep, evs, 512, 50);

		for (int i = 0; i < n; i++) {
			struct if_flow *f = evs[i].data.ptr;

			if (f->state != IF_CONNECTING && f->state != IF_READING) {
				continue;
			}
			int r = if_flow_step(ep, f);

			if (r == 1) {
				open++;
				pending--;
			} else if (r < 0) {
				if_flow_fail(f);
				failed++;
				pending--;
			}
		}
		/* Bound setup time per flow; scan only occasionally, it is O(N). */
		uint64_t now = bench_now_ns();

		for (uint64_t i = 0; n == 0 && i < next; i++) {
			struct if_flow *f = &flows[i];

			if ((f->state == IF_CONNECTING || f->state == IF_READING) &&
			    now > f->deadline_ns) {
				if_flow_fail(f);
				failed++;
				pending--;
			}
		}
	}
	/* Setup limit reached: whatever is not open by now has failed. */
	for (uint64_t i = 0; i < next; i++) {
		if (flows[i].state == IF_CONNECTING || flows[i].state == IF_READING) {
			if_flow_fail(&flows[i]);
		}
	}
	failed = count - open;
	printf("open=%llu failed=%llu secs=%.3f\nready\n", (unsigned long long)open,
	       (unsigned long long)failed, (double)(bench_now_ns() - start) / 1e9);
	fflush(stdout);

	/* Hold: any event on an open flow means the proxy closed (or sent on) it. */
	uint64_t closed = 0, hold_end = bench_now_ns() + hold_s * 1000000000ull;

	while (!if_stop && bench_now_ns() < hold_end) {
		int n = epoll_wait(ep, evs, 512, 100);

		for (int i = 0; i < n; i++) {
			struct if_flow *f = evs[i].data.ptr;

			if (f->state == IF_OPEN) {
				epoll_ctl(ep, EPOLL_CTL_DEL, f->fd, NULL);
				f->state = IF_DEAD;
				closed++;
			}
		}
	}
	printf("closed_early=%llu\n", (unsigned long long)closed);
	for (uint64_t i = 0; i < next; i++) {
		if (flows[i].fd >= 0) {
			close(flows[i].fd);
		}
	}
	close(ep);
	free(flows);
	return open == count && !closed ? 0 : 1;
}
