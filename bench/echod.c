// SPDX-License-Identifier: MIT
/*
 * bench-echod - TCP and UDP echo server for the benchmarks, built so that the echo is never the
 * bottleneck: one epoll thread per --threads with its own SO_REUSEPORT listener, and one UDP
 * thread that echoes with recvmmsg/sendmmsg batches.
 *
 *   bench-echod [--tcp ADDR] [--udp ADDR] [--threads N]
 *
 * Prints "tcp=PORT udp=PORT" and "ready" on stdout once every socket is bound (port 0 in ADDR
 * picks a free port), then serves until killed. A TCP connection whose peer stops reading is
 * not read from either (at most ECHO_BUF_SIZE bytes pending per connection).
 */
#include "bench_util.h"

#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

enum {
	ECHO_BUF_SIZE = 16 * 1024,
	ECHO_THREADS_MAX = 64,
	ECHO_UDP_BATCH = 64,
	ECHO_UDP_MTU = 65536,
	ECHO_EVENTS = 256,
};

/* One TCP connection; pend holds bytes read but not yet written back. */
struct echo_conn {
	int fd;
	size_t pend_off;
	size_t pend_len;
	uint8_t pend[ECHO_BUF_SIZE];
};

struct echo_tcp_thread {
	pthread_t tid;
	int lfd;
};

/* echo_listen_open - a bound, listening (TCP) or bound (UDP) socket with SO_REUSEPORT. */
static int echo_listen_open(const struct sockaddr_storage *ss, socklen_t len, int type)
{
	int one = 1;
	int fd = socket(ss->ss_family, type | SOCK_CLOEXEC, 0);

	if (fd < 0) {
		return -errno;
	}
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
	    setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) < 0 ||
	    bind(fd, (const struct sockaddr *)ss, len) < 0 ||
	    (type == SOCK_STREAM && listen(fd, 4096) < 0)) {
		int err = -errno;

		close(fd);
		return err;
	}
	return fd;
}

/* echo_conn_close - drop a connection from epoll and free it. */
static void echo_conn_close(struct echo_conn *c)
{
	close(c->fd);
	free(c);
}

/*
 * echo_conn_flush - write pending bytes. Returns 1 when everything was written, 0 when the
 * socket is full (wait for EPOLLOUT), -1 when the connection failed.
 */
static int echo_conn_flush(struct echo_conn *c)
{
	while (c->pend_off < c->pend_len) {
		ssize_t n =
			send(c->fd, c->pend + c->pend_off, c->pend_len - c->pend_off, MSG_NOSIGNAL);

		if (n < 0) {
			return (errno == EAGAIN || errno == EWOULDBLOCK) ? 0 : -1;
		}
		c->pend_off += (size_t)n;
	}
	c->pend_off = 0;
	c->pend_len = 0;
	return 1;
}

/* echo_conn_serve - handle readiness on @c. Returns false when the connection is done. */
static bool echo_conn_serve(int ep, struct echo_conn *c, uint32_t events)
{
	struct epoll_event ev = { .data.ptr = c };
	int r;

	if (c->pend_len) {
		r = echo_conn_flush(c);
		if (r < 0) {
			return false;
		}
		if (r == 0) {
			return true;
		}
		ev.events = EPOLLIN | EPOLLRDHUP;
		if (epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev) < 0) {
			return false;
		}
	}
	/* Level-triggered: read one buffer per wakeup so many connections share the thread. */
	ssize_t n = recv(c->fd, c->pend, sizeof(c->pend), 0);

	if (n == 0) {
		return false;
	}
	if (n < 0) {
		return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR;
	}
	c->pend_len = (size_t)n;
	r = echo_conn_flush(c);
	if (r < 0) {
		return false;
	}
	if (r == 0) {
		ev.events = EPOLLOUT;
		if (epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev) < 0) {
			return false;
		}
	}
	(void)events;
	return true;
}

/* echo_tcp_accept - accept every pending connection on @lfd into @ep. */
static void echo_tcp_accept(int ep, int lfd)
{
	for (int i = 0; i < 64; i++) {
		int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

		if (fd < 0) {
			return;
		}
		struct echo_conn *c = malloc(sizeof(*c));

		if (!c) {
			close(fd);
			continue;
		}
		c->fd = fd;
		c->pend_off = 0;
		c->pend_len = 0;

		struct epoll_event ev = { .events = EPOLLIN | EPOLLRDHUP, .data.ptr = c };

		if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) < 0) {
			echo_conn_close(c);
		}
	}
}

/* echo_tcp_run - one TCP echo thread: its own listener and epoll, forever. */
static void *echo_tcp_run(void *arg)
{
	struct echo_tcp_thread *t = arg;
	struct epoll_event evs[ECHO_EVENTS];
	int ep = epoll_create1(EPOLL_CLOEXEC);

	if (ep < 0) {
		perror("bench-echod: epoll_create1");
		exit(1);
	}
	struct epoll_event lev = { .events = EPOLLIN, .data.ptr = NULL };

	if (bench_fd_nonblock_set(t->lfd) < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, t->lfd, &lev) < 0) {
		perror("bench-echod: listener");
		exit(1);
	}
	for (;;) {
		int n = epoll_wait(ep, evs, ECHO_EVENTS, -1);

		for (int i = 0; i < n; i++) {
			struct echo_conn *c = evs[i].data.ptr;

			if (!c) {
				echo_tcp_accept(ep, t->lfd);
			} else if (!echo_conn_serve(ep, c, evs[i].events)) {
				echo_conn_close(c);
			}
		}
	}
	return NULL;
}

/* echo_udp_run - echo every datagram on the socket back to its sender, in batches. */
static void *echo_udp_run(void *arg)
{
	int fd = *(int *)arg;
	static uint8_t bufs[ECHO_UDP_BATCH][ECHO_UDP_MTU];
	static struct sockaddr_storage from[ECHO_UDP_BATCH];
	struct mmsghdr msgs[ECHO_UDP_BATCH];
	struct iovec iov[ECHO_UDP_BATCH];

	for (;;) {
		for (int i = 0; i < ECHO_UDP_BATCH; i++) {
			iov[i].iov_base = bufs[i];
			iov[i].iov_len = ECHO_UDP_MTU;
			memset(&msgs[i], 0, sizeof(msgs[i]));
			msgs[i].msg_hdr.msg_iov = &iov[i];
			msgs[i].msg_hdr.msg_iovlen = 1;
			msgs[i].msg_hdr.msg_name = &from[i];
			msgs[i].msg_hdr.msg_namelen = sizeof(from[i]);
		}
		int n = recvmmsg(fd, msgs, ECHO_UDP_BATCH, MSG_WAITFORONE, NULL);

		if (n <= 0) {
			continue;
		}
		for (int i = 0; i < n; i++) {
			iov[i].iov_len = msgs[i].msg_len;
		}
		/* Best effort like any UDP service: a full socket buffer drops the rest. */
		int off = 0;

		while (off < n) {
			int s = sendmmsg(fd, msgs + off, (unsigned)(n - off), 0);

			if (s <= 0) {
				break;
			}
			off += s;
		}
	}
	return NULL;
}

/* echo_usage - print the command line and exit with @status. */
static void echo_usage(int status)
{
	fprintf(status ? stderr : stdout,
		"usage: bench-echod [--tcp ADDR] [--udp ADDR] [--threads N]\n"
		"  ADDR is a.b.c.d:port or [v6]:port; port 0 picks one (printed).\n");
	exit(status);
}

int main(int argc, char **argv)
{
	struct sockaddr_storage tss, uss;
	socklen_t tlen = 0, ulen = 0;
	uint64_t threads = 2;
	static struct echo_tcp_thread tt[ECHO_THREADS_MAX];
	int ufd = -1;
	uint16_t tport = 0, uport = 0;

	for (int i = 1; i < argc; i++) {
		const char *v = i + 1 < argc ? argv[i + 1] : NULL;

		if (!strcmp(argv[i], "--help")) {
			echo_usage(0);
		} else if (!strcmp(argv[i], "--tcp") && v) {
			if (bench_addr_parse(v, &tss, &tlen) < 0) {
				fprintf(stderr, "bench-echod: bad --tcp address '%s'\n", v);
				return 2;
			}
			i++;
		} else if (!strcmp(argv[i], "--udp") && v) {
			if (bench_addr_parse(v, &uss, &ulen) < 0) {
				fprintf(stderr, "bench-echod: bad --udp address '%s'\n", v);
				return 2;
			}
			i++;
		} else if (!strcmp(argv[i], "--threads") && v) {
			if (bench_u64_parse(v, ECHO_THREADS_MAX, &threads) < 0 || threads == 0) {
				fprintf(stderr, "bench-echod: --threads wants 1..%d\n",
					ECHO_THREADS_MAX);
				return 2;
			}
			i++;
		} else {
			echo_usage(2);
		}
	}
	if (!tlen && !ulen) {
		echo_usage(2);
	}
	bench_nofile_raise(65536);
	if (tlen) {
		for (uint64_t i = 0; i < threads; i++) {
			tt[i].lfd = echo_listen_open(&tss, tlen, SOCK_STREAM);
			if (tt[i].lfd < 0) {
				fprintf(stderr, "bench-echod: tcp listen: %s\n",
					strerror(-tt[i].lfd));
				return 2;
			}
			if (i == 0) {
				/* Port 0: every later listener joins the port the first one got. */
				socklen_t l = sizeof(tss);

				getsockname(tt[0].lfd, (struct sockaddr *)&tss, &l);
				tport = bench_addr_port(&tss);
			}
		}
	}
	if (ulen) {
		ufd = echo_listen_open(&uss, ulen, SOCK_DGRAM);
		if (ufd < 0) {
			fprintf(stderr, "bench-echod: udp bind: %s\n", strerror(-ufd));
			return 2;
		}
		int big = 8 << 20;

		setsockopt(ufd, SOL_SOCKET, SO_RCVBUF, &big, sizeof(big));
		setsockopt(ufd, SOL_SOCKET, SO_SNDBUF, &big, sizeof(big));
		socklen_t l = sizeof(uss);

		getsockname(ufd, (struct sockaddr *)&uss, &l);
		uport = bench_addr_port(&uss);
	}
	for (uint64_t i = 0; tlen && i < threads; i++) {
		if (pthread_create(&tt[i].tid, NULL, echo_tcp_run, &tt[i]) != 0) {
			fprintf(stderr, "bench-echod: pthread_create failed\n");
			return 1;
		}
	}
	pthread_t utid;

	if (ufd >= 0 && pthread_create(&utid, NULL, echo_udp_run, &ufd) != 0) {
		fprintf(stderr, "bench-echod: pthread_create failed\n");
		return 1;
	}
	printf("tcp=%u udp=%u\nready\n", tport, uport);
	fflush(stdout);
	for (;;) {
		pause();
	}
}
