// SPDX-License-Identifier: MIT
/*
 * bench-spliceref - the reference forwarder of issue 3's throughput target: a plain TCP
 * forwarder with two blocking threads per connection, each moving one direction with
 * splice(2) socket -> pipe (1 MiB) -> socket. No event loop, no limits, no features: it
 * shows what splice alone reaches on the machine, so bench/run.sh can put natx-engine next
 * to it in the same run. Not for production use (a thread pair per connection).
 *
 *   bench-spliceref --listen ADDR --upstream ADDR
 *
 * Prints "ready" on stdout once listening, then serves until killed.
 */
#include "bench_util.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum { REF_PIPE_SIZE = 1 << 20 };

/* struct ref_conn - one forwarded connection; the last of its two threads closes it. */
struct ref_conn {
	int fd[2]; /* 0 = client, 1 = upstream */
	atomic_int refs;
};

struct ref_dir {
	struct ref_conn *c;
	int from;
};

/* ref_pump - move direction @from -> !from until EOF or error, then half-close the far end. */
static void *ref_pump(void *arg)
{
	struct ref_dir *d = arg;
	struct ref_conn *c = d->c;
	int in = c->fd[d->from], out = c->fd[!d->from], p[2];
	ssize_t n, m;

	if (pipe2(p, O_CLOEXEC) == 0) {
		fcntl(p[1], F_SETPIPE_SZ, REF_PIPE_SIZE);
		for (;;) {
			n = splice(in, NULL, p[1], NULL, REF_PIPE_SIZE, SPLICE_F_MOVE);
			if (n <= 0) {
				break;
			}
			while (n > 0) {
				m = splice(p[0], NULL, out, NULL, (size_t)n, SPLICE_F_MOVE);
				if (m <= 0) {
					goto out_pipe;
				}
				n -= m;
			}
		}
out_pipe:
		close(p[0]);
		close(p[1]);
	}
	shutdown(out, SHUT_WR);
	free(d);
	if (atomic_fetch_sub(&c->refs, 1) == 1) {
		close(c->fd[0]);
		close(c->fd[1]);
		free(c);
	}
	return NULL;
}

/* ref_start - one thread per direction of @c; 0 or -errno (then @c is closed and freed). */
static int ref_start(struct ref_conn *c)
{
	pthread_t t;
	int i, started = 0;

	atomic_init(&c->refs, 2);
	for (i = 0; i < 2; i++) {
		struct ref_dir *d = malloc(sizeof(*d));

		if (!d) {
			break;
		}
		d->c = c;
		d->from = i;
		if (pthread_create(&t, NULL, ref_pump, d)) {
			free(d);
			break;
		}
		pthread_detach(t);
		started++;
	}
	if (started == 2) {
		return 0;
	}
	/* A direction that could not start: end the other one and drop its reference. */
	shutdown(c->fd[0], SHUT_RDWR);
	shutdown(c->fd[1], SHUT_RDWR);
	if (atomic_fetch_sub(&c->refs, 2 - started) == 2 - started) {
		close(c->fd[0]);
		close(c->fd[1]);
		free(c);
	}
	return -EAGAIN;
}

int main(int argc, char **argv)
{
	struct sockaddr_storage lss, uss;
	socklen_t llen, ulen;
	int lfd, one = 1;

	if (argc != 5 || strcmp(argv[1], "--listen") || strcmp(argv[3], "--upstream") ||
	    bench_addr_parse(argv[2], &lss, &llen) || bench_addr_parse(argv[4], &uss, &ulen)) {
		fprintf(stderr, "usage: bench-spliceref --listen ADDR --upstream ADDR\n");
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);
	lfd = socket(lss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (lfd < 0 || setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) ||
	    bind(lfd, (struct sockaddr *)&lss, llen) || listen(lfd, 1024)) {
		fprintf(stderr, "bench-spliceref: listen %s: %s\n", argv[2], strerror(errno));
		return 2;
	}
	printf("ready\n");
	fflush(stdout);
	for (;;) {
		struct ref_conn *c;
		int cfd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC), ufd;

		if (cfd < 0) {
			if (errno == EMFILE || errno == ENFILE) {
				usleep(10000);
			}
			continue;
		}
		ufd = socket(uss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
		c = malloc(sizeof(*c));
		if (ufd < 0 || !c || connect(ufd, (struct sockaddr *)&uss, ulen)) {
			if (ufd >= 0) {
				close(ufd);
			}
			free(c);
			close(cfd);
			continue;
		}
		c->fd[0] = cfd;
		c->fd[1] = ufd;
		ref_start(c);
	}
}
