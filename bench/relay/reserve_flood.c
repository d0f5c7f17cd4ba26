// SPDX-License-Identifier: MIT
/*
 * bench-reserve-flood - hold many Circuit Relay v2 reservations on one relay, each from its
 * own TCP connection and its own Ed25519 identity (a distinct peer), to measure what a relay
 * spends per idle reservation. Built on the sans-IO libp2p stack (engine/p2p: multistream,
 * Noise XX, yamux, relay_client) over non-blocking sockets and one epoll loop.
 *
 *   bench-reserve-flood --relay /ip4/A/tcp/P/p2p/ID --count N [--src-ips K] [--conc C]
 *                       [--timeout S] [--hold S]
 *
 * Every connection: connect (from 127.0.0.(2 + i % K) when K > 0, so no source address runs out
 * of ports), multistream + Noise XX with a fresh identity + yamux, then a hop RESERVE
 * (relay_client_reserve: the voucher is verified when the relay sends one). At most C
 * connections are being set up at once; the rest wait. When every connection is answered (or
 * --timeout passed) it prints on stdout
 *
 *   reserved ok=N refused=R failed=F vouchers=V secs=S rate=X first_refusal=STATUS first_error=E
 *   ready
 *
 * and then holds the connections open (answering pings and whatever the relay sends) until
 * SIGTERM/SIGINT or --hold seconds, then prints
 *
 *   held alive=A died=D
 *
 * (died: reserved connections the relay or the kernel closed while held) and closes them all.
 * Progress goes to stderr. Exit 0 when it ran (whatever the relay answered), 1 on a setup
 * failure, 2 on usage errors. Raises RLIMIT_NOFILE to N + 64 (the hard limit too when allowed).
 * Never registered as a test of speed.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "natx/err.h"
#include "conn.h"
#include "multiaddr.h"
#include "relay.h"
#include "relay_client.h"

#ifndef IP_BIND_ADDRESS_NO_PORT
#define IP_BIND_ADDRESS_NO_PORT 24
#endif

enum {
	RF_MAX_COUNT = 200000,
	RF_OUT_CAP = 2 * P2P_OUT_HEADROOM, /* the smallest output buffer p2p_conn accepts */
	RF_EVENTS = 256,
};

enum rf_state {
	RF_WAITING, /* not started yet */
	RF_CONNECTING, /* TCP connect in flight */
	RF_HANDSHAKE, /* multistream / Noise / yamux */
	RF_RESERVING, /* RESERVE sent */
	RF_RESERVED, /* the relay answered OK: held */
	RF_REFUSED, /* the relay answered with a refusal status */
	RF_FAILED, /* connection or exchange failed */
};

/* struct rf_peer - one connection with its own identity. */
struct rf_peer {
	int fd;
	enum rf_state state;
	bool want_out; /* EPOLLOUT is registered */
	bool closed; /* socket gone */
	struct p2p_identity idn;
	struct p2p_host host;
	struct p2p_conn *c;
	struct relay_client *cl;
};

struct rf_opts {
	const char *relay;
	long count, src_ips, conc;
	long timeout_s, hold_s;
};

static struct rf_peer *peers;
static long n_peers;
static int ep = -1;
static struct sockaddr_storage relay_ss;
static struct peer_id relay_id;
static long n_ok, n_refused, n_failed, n_vouchers, n_busy, n_died;
static uint32_t first_refusal;
static int first_error;
static volatile sig_atomic_t stop;

static int64_t rf_now_ms(void)
{
	return p2p_clock_system.now_ms(&p2p_clock_system);
}

static int64_t rf_unix_now(void *ctx)
{
	(void)ctx;
	return (int64_t)time(NULL);
}

static void rf_on_signal(int sig)
{
	(void)sig;
	stop = 1;
}

/* rf_finish - @p reached a final setup state: count it and free a setup slot. */
static void rf_finish(struct rf_peer *p, enum rf_state st, int err)
{
	if (p->state >= RF_RESERVED) {
		return;
	}
	if (p->state != RF_WAITING) {
		n_busy--;
	}
	p->state = st;
	if (st == RF_RESERVED) {
		n_ok++;
	} else if (st == RF_REFUSED) {
		n_refused++;
	} else {
		n_failed++;
		if (!first_error) {
			first_error = err ? err : -EIO;
		}
	}
}

/* rf_close - drop the socket and the connection state of @p (it stays counted as it ended). */
static void rf_close(struct rf_peer *p)
{
	if (p->closed) {
		return;
	}
	p->closed = true;
	if (p->cl && p->c) {
		relay_client_conn_gone(p->cl, p->c);
	}
	relay_client_free(p->cl);
	p->cl = NULL;
	p2p_conn_free(p->c);
	p->c = NULL;
	if (p->fd >= 0) {
		close(p->fd);
	}
	p->fd = -1;
}

/* rf_fail - the connection of @p failed: count it (setup) or as died (held), close it. */
static void rf_fail(struct rf_peer *p, int err)
{
	if (p->state == RF_RESERVED) {
		n_died++;
	} else {
		rf_finish(p, RF_FAILED, err);
	}
	rf_close(p);
}

static void rf_on_reserved(void *ctx, struct p2p_conn *c, int err, uint32_t status,
			   const struct relay_reservation *rsvp)
{
	struct rf_peer *p = ctx;

	(void)c;
	if (p->state != RF_RESERVING) {
		return; /* a renewal: nothing to count */
	}
	if (err) {
		rf_finish(p, RF_FAILED, err);
	} else if (status != RELAY_OK) {
		if (!first_refusal) {
			first_refusal = status;
		}
		rf_finish(p, RF_REFUSED, 0);
	} else {
		n_vouchers += rsvp->voucher_ok;
		rf_finish(p, RF_RESERVED, 0);
	}
}

static void rf_on_circuit(void *ctx, struct p2p_stream *s, const struct peer_id *remote,
			  bool dialer, const struct relay_limit *limit, const uint8_t *early,
			  size_t early_len, void *user)
{
	p2p_stream_reset(s); /* idle reservations only */
}

static const struct relay_client_ops rf_client_ops = {
	.unix_now = rf_unix_now,
	.on_reserved = rf_on_reserved,
	.on_circuit = rf_on_circuit,
};

static void rf_on_stream_open(void *ctx, struct p2p_stream *s, const char *proto)
{
	struct rf_peer *p = ctx;

	if (p->cl && !strcmp(proto, RELAY_STOP_PROTOCOL)) {
		relay_client_stop_accept(p->cl, s);
	} else {
		p2p_stream_reset(s);
	}
}

static const struct p2p_conn_ops rf_conn_ops = {
	.on_stream_open = rf_on_stream_open,
};

/* rf_epoll_update - register EPOLLOUT exactly while @p has output queued. */
static void rf_epoll_update(struct rf_peer *p)
{
	const uint8_t *buf;
	size_t len = 0;
	bool want;
	struct epoll_event ev;

	if (p->closed) {
		return;
	}
	if (p->state == RF_CONNECTING) {
		want = true;
	} else {
		p2p_conn_out_peek(p->c, &buf, &len);
		want = len > 0;
	}
	if (want == p->want_out) {
		return;
	}
	ev.events = EPOLLIN | (want ? EPOLLOUT : 0);
	ev.data.ptr = p;
	if (!epoll_ctl(ep, EPOLL_CTL_MOD, p->fd, &ev)) {
		p->want_out = want;
	}
}

/* rf_flush - send what the connection queued, without blocking. Returns -errno when dead. */
static int rf_flush(struct rf_peer *p)
{
	for (;;) {
		const uint8_t *buf;
		size_t len;
		ssize_t n;

		p2p_conn_out_peek(p->c, &buf, &len);
		if (!len) {
			return 0;
		}
		n = send(p->fd, buf, len, MSG_NOSIGNAL);
		if (n < 0) {
			return errno == EAGAIN || errno == EWOULDBLOCK ? 0 : -errno;
		}
		p2p_conn_out_advance(p->c, (size_t)n);
	}
}

/* rf_progress - after any event on @p: reserve once established, flush, fix epoll. */
static void rf_progress(struct rf_peer *p)
{
	int err;

	if (p->closed) {
		return;
	}
	if (p->state == RF_HANDSHAKE && p2p_conn_established(p->c)) {
		p->cl = relay_client_new(&p->idn, &p2p_clock_system, &rf_client_ops, p, &err);
		if (p->cl) {
			err = relay_client_reserve(p->cl, p->c);
		}
		if (!p->cl || err) {
			rf_fail(p, err);
			return;
		}
		p->state = RF_RESERVING;
	}
	err = rf_flush(p);
	if (err) {
		rf_fail(p, err);
		return;
	}
	if (p->state == RF_REFUSED || p->state == RF_FAILED) {
		rf_close(p); /* answered: nothing to hold */
		return;
	}
	rf_epoll_update(p);
}

/* rf_start - open the connection of @p (a fresh identity, a non-blocking connect). */
static int rf_start(struct rf_peer *p, long i, long src_ips)
{
	struct epoll_event ev = { .events = EPOLLIN | EPOLLOUT, .data.ptr = p };
	int one = 1, err;

	p->state = RF_CONNECTING;
	n_busy++;
	p2p_identity_generate(&p->idn);
	p->host = (struct p2p_host){ .idn = &p->idn,
				     .clock = &p2p_clock_system,
				     .rng = &p2p_rng_system,
				     .out_cap = RF_OUT_CAP,
				     .early_muxer = true,
				     .no_identify = true };
	p->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (p->fd < 0) {
		err = -errno;
		goto fail;
	}
	setsockopt(p->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (src_ips > 0) {
		struct sockaddr_in src = { .sin_family = AF_INET };

		src.sin_addr.s_addr = htonl(INADDR_LOOPBACK + 1 + (uint32_t)(i % src_ips));
		setsockopt(p->fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof(one));
		if (bind(p->fd, (struct sockaddr *)&src, sizeof(src))) {
			err = -errno;
			goto fail;
		}
	}
	p->c = p2p_conn_new(&p->host, true, &relay_id, &rf_conn_ops, p, &err);
	if (!p->c) {
		goto fail;
	}
	p2p_conn_set_remote_addr(p->c, (struct sockaddr *)&relay_ss);
	if (epoll_ctl(ep, EPOLL_CTL_ADD, p->fd, &ev)) {
		err = -errno;
		goto fail;
	}
	p->want_out = true;
	if (connect(p->fd, (struct sockaddr *)&relay_ss, sizeof(struct sockaddr_in)) &&
	    errno != EINPROGRESS) {
		err = -errno;
		goto fail;
	}
	return 0;
fail:
	rf_fail(p, err);
	return err;
}

/* rf_on_event - readiness of @p's socket. */
static void rf_on_event(struct rf_peer *p, uint32_t events)
{
	if (p->closed) {
		return;
	}
	if (p->state == RF_CONNECTING) {
		int soerr = 0;
		socklen_t sl = sizeof(soerr);

		if (!(events & (EPOLLOUT | EPOLLERR | EPOLLHUP))) {
			return;
		}
		getsockopt(p->fd, SOL_SOCKET, SO_ERROR, &soerr, &sl);
		if (soerr) {
			rf_fail(p, -soerr);
			return;
		}
		p->state = RF_HANDSHAKE;
		if (p2p_conn_start(p->c)) {
			rf_fail(p, p2p_conn_error(p->c));
			return;
		}
	}
	if (events & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
		for (;;) {
			uint8_t *space;
			size_t cap;
			ssize_t n;

			if (p2p_conn_recv_space(p->c, &space, &cap)) {
				rf_fail(p, p2p_conn_error(p->c));
				return;
			}
			n = recv(p->fd, space, cap, 0);
			if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
				break;
			}
			if (n <= 0) {
				rf_fail(p, n ? -errno : -ECONNRESET);
				return;
			}
			if (p2p_conn_recv_commit(p->c, (size_t)n)) {
				rf_fail(p, p2p_conn_error(p->c));
				return;
			}
			if (p->closed) {
				return;
			}
			if ((size_t)n < cap) {
				break;
			}
		}
	}
	rf_progress(p);
}

/* rf_tick - timers of every live connection (yamux keep-alive, relay client timeouts). */
static void rf_tick(void)
{
	for (long i = 0; i < n_peers; i++) {
		struct rf_peer *p = &peers[i];

		if (p->closed || p->state == RF_WAITING || p->state == RF_CONNECTING) {
			continue;
		}
		if (p2p_conn_tick(p->c)) {
			rf_fail(p, p2p_conn_error(p->c));
			continue;
		}
		if (p->cl) {
			relay_client_tick(p->cl);
		}
		rf_progress(p);
	}
}

/* rf_poll - wait up to @ms for events and handle them. */
static void rf_poll(int ms)
{
	struct epoll_event evs[RF_EVENTS];
	int n = epoll_wait(ep, evs, RF_EVENTS, ms);

	for (int i = 0; i < n; i++) {
		rf_on_event(evs[i].data.ptr, evs[i].events);
	}
}

static void rf_nofile(long need)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl)) {
		return;
	}
	if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max < (rlim_t)need) {
		rl.rlim_max = (rlim_t)need; /* needs CAP_SYS_RESOURCE; harmless when refused */
	}
	rl.rlim_cur = rl.rlim_max;
	if (setrlimit(RLIMIT_NOFILE, &rl)) {
		getrlimit(RLIMIT_NOFILE, &rl);
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	if (!getrlimit(RLIMIT_NOFILE, &rl) && rl.rlim_cur < (rlim_t)need) {
		fprintf(stderr, "reserve-flood: open-file limit %llu is below the %ld needed\n",
			(unsigned long long)rl.rlim_cur, need);
	}
}

static void usage(void)
{
	fprintf(stderr, "usage: bench-reserve-flood --relay /ip4/A/tcp/P/p2p/ID --count N "
			"[--src-ips K] [--conc C] [--timeout S] [--hold S]\n");
	exit(2);
}

static long arg_num(const char *s, long lo, long hi)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || end == s || *end || v < lo || v > hi) {
		usage();
	}
	return v;
}

static void rf_parse(int argc, char **argv, struct rf_opts *o)
{
	static const struct option longs[] = {
		{ "relay", required_argument, NULL, 'r' },
		{ "count", required_argument, NULL, 'n' },
		{ "src-ips", required_argument, NULL, 's' },
		{ "conc", required_argument, NULL, 'c' },
		{ "timeout", required_argument, NULL, 't' },
		{ "hold", required_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int ch;

	*o = (struct rf_opts){ .src_ips = 0, .conc = 128, .timeout_s = 300, .hold_s = 3600 };
	while ((ch = getopt_long(argc, argv, "", longs, NULL)) != -1) {
		switch (ch) {
		case 'r':
			o->relay = optarg;
			break;
		case 'n':
			o->count = arg_num(optarg, 1, RF_MAX_COUNT);
			break;
		case 's':
			o->src_ips = arg_num(optarg, 0, 250);
			break;
		case 'c':
			o->conc = arg_num(optarg, 1, 100000);
			break;
		case 't':
			o->timeout_s = arg_num(optarg, 1, 86400);
			break;
		case 'h':
			o->hold_s = arg_num(optarg, 0, 86400);
			break;
		default:
			usage();
		}
	}
	if (!o->relay || !o->count || optind != argc) {
		usage();
	}
}

int main(int argc, char **argv)
{
	struct rf_opts o;
	uint8_t ma[MADDR_MAX_LEN];
	size_t ma_len;
	int has_id;
	long next = 0, alive = 0;
	int64_t t0, end, last_tick, last_log;
	double secs;

	setvbuf(stdout, NULL, _IOLBF, 0);
	rf_parse(argc, argv, &o);
	if (maddr_from_text(o.relay, ma, sizeof(ma), &ma_len) ||
	    maddr_to_sockaddr(ma, ma_len, &relay_ss, &relay_id, &has_id) || !has_id ||
	    relay_ss.ss_family != AF_INET) {
		fprintf(stderr, "reserve-flood: --relay must be /ip4/A/tcp/P/p2p/ID\n");
		return 2;
	}
	rf_nofile(o.count + 64);
	signal(SIGPIPE, SIG_IGN);
	signal(SIGTERM, rf_on_signal);
	signal(SIGINT, rf_on_signal);
	peers = calloc((size_t)o.count, sizeof(*peers));
	ep = epoll_create1(EPOLL_CLOEXEC);
	if (!peers || ep < 0) {
		perror("reserve-flood: setup");
		return 1;
	}
	n_peers = o.count;
	for (long i = 0; i < n_peers; i++) {
		peers[i].fd = -1;
	}
	t0 = last_tick = last_log = rf_now_ms();
	end = t0 + o.timeout_s * 1000;
	while (!stop && n_ok + n_refused + n_failed < n_peers && rf_now_ms() < end) {
		while (next < n_peers && n_busy < o.conc) {
			rf_start(&peers[next], next, o.src_ips);
			next++;
		}
		rf_poll(50);
		if (rf_now_ms() - last_tick >= 200) {
			rf_tick();
			last_tick = rf_now_ms();
		}
		if (rf_now_ms() - last_log >= 2000) {
			fprintf(stderr,
				"reserve-flood: %.1f s ok %ld refused %ld failed %ld busy %ld\n",
				(double)(rf_now_ms() - t0) / 1000, n_ok, n_refused, n_failed,
				n_busy);
			last_log = rf_now_ms();
		}
	}
	secs = (double)(rf_now_ms() - t0) / 1000;
	/* whatever did not finish in time counts as failed */
	for (long i = 0; i < n_peers; i++) {
		if (peers[i].state < RF_RESERVED) {
			rf_fail(&peers[i], -ETIMEDOUT);
		}
	}
	printf("reserved ok=%ld refused=%ld failed=%ld vouchers=%ld secs=%.2f rate=%.0f "
	       "first_refusal=%s first_error=%s\n",
	       n_ok, n_refused, n_failed, n_vouchers, secs, secs > 0 ? (double)n_ok / secs : 0,
	       first_refusal ? relay_status_name(first_refusal) : "-",
	       first_error ? natx_strerror(first_error) : "-");
	printf("ready\n");
	end = rf_now_ms() + o.hold_s * 1000;
	while (!stop && rf_now_ms() < end) {
		rf_poll(200);
		if (rf_now_ms() - last_tick >= 1000) {
			rf_tick();
			last_tick = rf_now_ms();
		}
	}
	for (long i = 0; i < n_peers; i++) {
		alive += peers[i].state == RF_RESERVED && !peers[i].closed;
	}
	printf("held alive=%ld died=%ld\n", alive, n_died);
	for (long i = 0; i < n_peers; i++) {
		rf_close(&peers[i]);
		p2p_identity_cleanup(&peers[i].idn);
	}
	free(peers);
	close(ep);
	return 0;
}
