// SPDX-License-Identifier: MIT
/*
 * interop_driver - drives the natx sans-IO libp2p stack (engine/p2p/conn.h) over blocking
 * loopback TCP sockets, against a js-libp2p peer (tests/interop/peer.mjs). The sockets are only
 * the test transport; all protocol work happens in p2p_conn.
 *
 *   interop_driver dial MULTIADDR [--no-early]
 *       connect, check js's identify (agent js-libp2p/...), ping 3 times, send 1 MiB through
 *       js's /natx/echo/1.0.0 and compare (once more with the first 16 KiB pipelined behind
 *       the multistream proposal), then 50 concurrent 64 KiB echo streams, check that an unknown protocol is refused with "na",
 *       close. --no-early: do not offer the Noise stream_muxers extension (mss for the muxer).
 *   interop_driver hold MULTIADDR
 *       connect, identify, serve the ping js's connection monitor sends after 10 s, print
 *       "ready" and wait until the peer disappears (the test kills it): the loss must surface
 *       as a clean EOF/reset, not a hang or a crash.
 *   interop_driver listen
 *       print our multiaddr (with /p2p/), accept one connection, serve identify, ping and an
 *       echo service until the peer leaves; succeed if js identified as js-libp2p, pinged us
 *       and echoed data through us.
 * Every wait is bounded (DRIVER_TIMEOUT_MS). Exit 0 on success, 1 on failure.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "natx/err.h"
#include "conn.h"
#include "multiaddr.h"

#define ECHO_PROTO "/natx/echo/1.0.0"

enum {
	DRIVER_TIMEOUT_MS = 20000,
	ECHO_BYTES = 1 << 20,
	CONCURRENT_STREAMS = 50,
	CONCURRENT_BYTES = 64 * 1024,
};

/* struct echo_client - one stream through the peer's echo service. */
struct echo_client {
	struct p2p_stream *s;
	uint8_t *data;
	size_t len, sent, got;
	bool fin, mismatch, reset;
};

struct driver {
	struct p2p_conn *c;
	int fd;
	bool eof;
	/* observations */
	int identified, identify_err;
	char agent[128];
	int pings, ping_err;
	int64_t rtt;
	/* echo clients: streams we opened to the peer's echo service */
	struct echo_client *echo;
	size_t n_echo;
	int refused; /* reset with -NATX_E_UNAVAILABLE */
	/* echo server */
	struct p2p_stream *srv;
	uint8_t *pend;
	size_t pend_len;
	bool pend_fin;
	uint64_t served;
	bool srv_fin;
};

static void on_identify(void *ctx, struct p2p_conn *c, const struct identify_record *rec, int err)
{
	struct driver *d = ctx;

	d->identified++;
	d->identify_err = err;
	if (!err && rec->agent_version) {
		snprintf(d->agent, sizeof(d->agent), "%s", rec->agent_version);
	}
	printf("identify: err=%d agent=%s protocols=%zu addrs=%zu\n", err, d->agent,
	       rec->n_protocols, rec->n_addrs);
}

static void on_ping(void *ctx, struct p2p_conn *c, int64_t rtt, int err)
{
	struct driver *d = ctx;

	d->pings++;
	d->ping_err = err;
	d->rtt = rtt;
	printf("ping: err=%d rtt=%lld ms\n", err, (long long)rtt);
}

static void srv_flush(struct driver *d)
{
	long w;

	if (!d->srv || !d->pend_len) {
		return;
	}
	w = p2p_stream_write(d->srv, d->pend, d->pend_len);
	if (w <= 0) {
		return;
	}
	p2p_stream_consumed(d->srv, (size_t)w);
	memmove(d->pend, d->pend + w, d->pend_len - (size_t)w);
	d->pend_len -= (size_t)w;
	d->served += (uint64_t)w;
	if (!d->pend_len && d->pend_fin) {
		p2p_stream_close(d->srv);
	}
}

static void on_stream_open(void *ctx, struct p2p_stream *s, const char *proto)
{
	struct driver *d = ctx;

	if (!p2p_stream_user(s)) {
		d->srv = s;
		p2p_stream_set_manual_window(s, true); /* credit only what we echoed */
	}
}

static void on_stream_data(void *ctx, struct p2p_stream *s, const uint8_t *p, size_t n)
{
	struct driver *d = ctx;
	struct echo_client *e = p2p_stream_user(s);

	if (e) {
		if (e->got + n > e->len || memcmp(p, e->data + e->got, n)) {
			e->mismatch = true;
		}
		e->got += n;
		return;
	}
	uint8_t *b = realloc(d->pend, d->pend_len + n);

	if (!b) {
		p2p_stream_reset(s);
		return;
	}
	d->pend = b;
	memcpy(d->pend + d->pend_len, p, n);
	d->pend_len += n;
	srv_flush(d);
}

static void on_stream_fin(void *ctx, struct p2p_stream *s)
{
	struct driver *d = ctx;
	struct echo_client *e = p2p_stream_user(s);

	if (e) {
		e->fin = true;
		return;
	}
	d->srv_fin = true;
	d->pend_fin = true;
	if (!d->pend_len) {
		p2p_stream_close(s);
	}
}

static void on_stream_reset(void *ctx, struct p2p_stream *s, int err)
{
	struct driver *d = ctx;

	printf("stream %u (%s) reset: %s\n", p2p_stream_id(s), p2p_stream_protocol(s),
	       natx_strerror(err));
	if (err == -NATX_E_UNAVAILABLE) {
		d->refused++;
	}
	if (p2p_stream_user(s)) {
		((struct echo_client *)p2p_stream_user(s))->reset = true;
	}
}

static void on_stream_writable(void *ctx, struct p2p_stream *s)
{
	struct driver *d = ctx;

	if (s == d->srv) {
		srv_flush(d);
	}
}

static void on_stream_close(void *ctx, struct p2p_stream *s)
{
	struct driver *d = ctx;
	struct echo_client *e = p2p_stream_user(s);

	if (e) {
		e->s = NULL;
	}
	if (s == d->srv) {
		d->srv = NULL;
		d->pend_len = 0;
	}
}

static const struct p2p_conn_ops driver_ops = {
	.on_stream_open = on_stream_open,
	.on_stream_data = on_stream_data,
	.on_stream_fin = on_stream_fin,
	.on_stream_reset = on_stream_reset,
	.on_stream_writable = on_stream_writable,
	.on_stream_close = on_stream_close,
	.on_identify = on_identify,
	.on_ping = on_ping,
};

/* flush - send everything queued (blocking socket). */
static int flush(struct driver *d)
{
	for (;;) {
		const uint8_t *p;
		size_t len;
		ssize_t n;

		p2p_conn_out_peek(d->c, &p, &len);
		if (!len) {
			return 0;
		}
		n = send(d->fd, p, len, MSG_NOSIGNAL);
		if (n < 0) {
			return -errno;
		}
		p2p_conn_out_advance(d->c, (size_t)n);
	}
}

/* step - one round: flush, wait up to @wait_ms for input, process it. */
static int step(struct driver *d, int wait_ms)
{
	struct pollfd pfd = { .fd = d->fd, .events = POLLIN };
	uint8_t *space;
	size_t cap;
	ssize_t n;
	int err = flush(d);

	if (err) {
		return err;
	}
	if (poll(&pfd, 1, wait_ms) <= 0) {
		return p2p_conn_tick(d->c);
	}
	err = p2p_conn_recv_space(d->c, &space, &cap);
	if (err) {
		return err;
	}
	n = recv(d->fd, space, cap, 0);
	if (n == 0) {
		d->eof = true;
		return 0;
	}
	if (n < 0) {
		return -errno;
	}
	err = p2p_conn_recv_commit(d->c, (size_t)n);
	if (!err) {
		err = flush(d);
	}
	return err;
}

static int64_t mono_ms(void)
{
	return p2p_clock_system.now_ms(&p2p_clock_system);
}

/* run_until - step until @cond holds, the peer leaves or the deadline passes. */
static int run_until(struct driver *d, bool (*cond)(struct driver *), const char *what)
{
	int64_t deadline = mono_ms() + DRIVER_TIMEOUT_MS;

	while (!cond(d)) {
		int err;

		if (d->eof) {
			fprintf(stderr, "FAIL %s: peer closed the connection\n", what);
			return -ECONNRESET;
		}
		if (mono_ms() > deadline) {
			fprintf(stderr, "FAIL %s: timeout\n", what);
			return -ETIMEDOUT;
		}
		err = step(d, 50);
		if (err) {
			fprintf(stderr, "FAIL %s: %s\n", what, natx_strerror(err));
			return err;
		}
	}
	return 0;
}

static bool is_identified(struct driver *d)
{
	return d->identified > 0;
}

static bool is_pinged(struct driver *d)
{
	return d->pings > 0;
}

/* is_echoed - push pending echo data; true when every echo stream finished or failed. */
static bool is_echoed(struct driver *d)
{
	bool all = true;

	for (size_t i = 0; i < d->n_echo; i++) {
		struct echo_client *e = &d->echo[i];

		if (e->s && e->sent < e->len) {
			long w = p2p_stream_write(e->s, e->data + e->sent, e->len - e->sent);

			if (w > 0) {
				e->sent += (size_t)w;
				if (e->sent == e->len) {
					p2p_stream_close(e->s);
				}
			}
		}
		if (!(e->fin || e->mismatch || e->reset)) {
			all = false;
		}
	}
	return all;
}

/*
 * echo_run - @n concurrent streams of @len random bytes through the peer's echo service. @lazy:
 * open with p2p_stream_open_lazy, the first bytes riding with the multistream proposal.
 */
static int echo_run(struct driver *d, size_t n, size_t len, bool lazy)
{
	int err = 0;

	d->echo = calloc(n, sizeof(*d->echo));
	d->n_echo = n;
	for (size_t i = 0; i < n && !err; i++) {
		struct echo_client *e = &d->echo[i];

		e->len = len;
		e->data = malloc(len);
		p2p_rng_system.fill(&p2p_rng_system, e->data, len);
		if (lazy) {
			size_t first = len < P2P_EARLY_MAX ? len : P2P_EARLY_MAX;

			e->s = p2p_stream_open_lazy(d->c, ECHO_PROTO, e->data, first, &err);
			e->sent = e->s ? first : 0;
		} else {
			e->s = p2p_stream_open(d->c, ECHO_PROTO, &err);
		}
		if (e->s) {
			p2p_stream_set_user(e->s, e);
		}
	}
	if (!err) {
		err = run_until(d, is_echoed, "echo");
	}
	for (size_t i = 0; i < n; i++) {
		struct echo_client *e = &d->echo[i];

		if (!err && (e->mismatch || e->reset || e->got != len)) {
			fprintf(stderr,
				"FAIL echo stream %zu: got %zu of %zu bytes, mismatch=%d reset=%d\n",
				i, e->got, len, e->mismatch, e->reset);
			err = -NATX_E_PROTO;
		}
		if (e->s) {
			p2p_stream_set_user(e->s, NULL);
		}
		free(e->data);
	}
	free(d->echo);
	d->echo = NULL;
	d->n_echo = 0;
	return err;
}

static bool is_refused(struct driver *d)
{
	return d->refused > 0;
}

/* is_monitored - js's connection monitor pinged us (it does every 10 s on every connection). */
static bool is_monitored(struct driver *d)
{
	return p2p_conn_stats(d->c)->pings_served > 0;
}

static bool is_gone(struct driver *d)
{
	return d->eof;
}

static int setup_host(struct p2p_host *host, struct p2p_identity *idn, bool early)
{
	static const char *const protos[] = { ECHO_PROTO };

	p2p_identity_generate(idn);
	memset(host, 0, sizeof(*host));
	host->idn = idn;
	host->protocols = protos;
	host->n_protocols = 1;
	host->clock = &p2p_clock_system;
	host->rng = &p2p_rng_system;
	host->early_muxer = early;
	return 0;
}

static int cmd_dial(const char *text, bool early)
{
	struct driver d = { .fd = -1 };
	struct sockaddr_storage ss;
	struct p2p_identity idn;
	struct p2p_host host;
	uint8_t ma[MADDR_MAX_LEN];
	struct peer_id expect;
	size_t ma_len;
	int has_id, err, ok = 0;

	if (maddr_from_text(text, ma, sizeof(ma), &ma_len) ||
	    maddr_to_sockaddr(ma, ma_len, &ss, &expect, &has_id) || !has_id) {
		fprintf(stderr, "FAIL: %s is not /ip4|ip6/.../tcp/N/p2p/ID\n", text);
		return 1;
	}
	setup_host(&host, &idn, early);
	d.fd = socket(ss.ss_family, SOCK_STREAM, 0);
	if (d.fd < 0 || connect(d.fd, (struct sockaddr *)&ss, sizeof(ss)) < 0) {
		perror("connect");
		return 1;
	}
	d.c = p2p_conn_new(&host, true, &expect, &driver_ops, &d, &err);
	if (!d.c) {
		return 1;
	}
	p2p_conn_set_remote_addr(d.c, (struct sockaddr *)&ss);
	p2p_conn_start(d.c);

	if (run_until(&d, is_identified, "identify")) {
		goto out;
	}
	if (d.identify_err || strncmp(d.agent, "js-libp2p/", 10)) {
		fprintf(stderr, "FAIL identify: err=%d agent=%s\n", d.identify_err, d.agent);
		goto out;
	}
	printf("ok identify (early muxer %s)\n", early ? "on" : "off");
	for (int i = 0; i < 3; i++) {
		d.pings = 0;
		if (p2p_conn_ping(d.c) || run_until(&d, is_pinged, "ping")) {
			goto out;
		}
		if (d.ping_err) {
			fprintf(stderr, "FAIL ping: %s\n", natx_strerror(d.ping_err));
			goto out;
		}
	}
	printf("ok ping x3\n");
	if (echo_run(&d, 1, ECHO_BYTES, false)) {
		goto out;
	}
	printf("ok echo %d bytes\n", ECHO_BYTES);
	if (echo_run(&d, 1, ECHO_BYTES, true)) {
		goto out;
	}
	printf("ok lazy echo (data pipelined behind the proposal) %d bytes\n", ECHO_BYTES);
	if (echo_run(&d, CONCURRENT_STREAMS, CONCURRENT_BYTES, false)) {
		goto out;
	}
	printf("ok %d concurrent echo streams of %d bytes\n", CONCURRENT_STREAMS, CONCURRENT_BYTES);
	if (!p2p_stream_open(d.c, "/natx/does-not-exist/1.0.0", &err) ||
	    run_until(&d, is_refused, "na")) {
		goto out;
	}
	printf("ok unknown protocol refused\n");
	ok = 1;
	p2p_conn_close(d.c);
	flush(&d);
out:
	printf("stats: in %llu out %llu frames %llu/%llu\n",
	       (unsigned long long)p2p_conn_stats(d.c)->bytes_in,
	       (unsigned long long)p2p_conn_stats(d.c)->bytes_out,
	       (unsigned long long)p2p_conn_stats(d.c)->frames_in,
	       (unsigned long long)p2p_conn_stats(d.c)->frames_out);
	p2p_conn_free(d.c);
	free(d.pend);
	close(d.fd);
	p2p_identity_cleanup(&idn);
	return ok ? 0 : 1;
}

/*
 * cmd_hold - connect, wait for identify, print "ready", then wait for the peer to vanish (the
 * test kills it with SIGKILL). Success: the loss is reported as a clean connection error.
 */
static int cmd_hold(const char *text)
{
	struct driver d = { .fd = -1 };
	struct sockaddr_storage ss;
	struct p2p_identity idn;
	struct p2p_host host;
	uint8_t ma[MADDR_MAX_LEN];
	struct peer_id expect;
	size_t ma_len;
	int has_id, err;

	if (maddr_from_text(text, ma, sizeof(ma), &ma_len) ||
	    maddr_to_sockaddr(ma, ma_len, &ss, &expect, &has_id) || !has_id) {
		return 1;
	}
	setup_host(&host, &idn, true);
	d.fd = socket(ss.ss_family, SOCK_STREAM, 0);
	if (d.fd < 0 || connect(d.fd, (struct sockaddr *)&ss, sizeof(ss)) < 0) {
		perror("connect");
		return 1;
	}
	d.c = p2p_conn_new(&host, true, &expect, &driver_ops, &d, &err);
	if (!d.c) {
		return 1;
	}
	p2p_conn_start(d.c);
	if (run_until(&d, is_identified, "identify") ||
	    run_until(&d, is_monitored, "js connection-monitor ping")) {
		return 1;
	}
	printf("ready: js connection monitor ping served\n");
	err = run_until(&d, is_gone, "hold");
	printf("peer gone: eof=%d err=%s\n", d.eof, natx_strerror(err));
	p2p_conn_free(d.c);
	close(d.fd);
	p2p_identity_cleanup(&idn);
	/* EOF or a reset are the two clean outcomes; a timeout means we never noticed */
	return (d.eof || err == -ECONNRESET) ? 0 : 1;
}

static int cmd_listen(bool early)
{
	struct sockaddr_in sin = { .sin_family = AF_INET,
				   .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t slen = sizeof(sin);
	struct driver d = { .fd = -1 };
	struct p2p_identity idn;
	struct p2p_host host;
	struct pollfd pfd;
	char id[PEERID_TEXT_MAX];
	int lfd, err, ok = 0;

	setup_host(&host, &idn, early);
	lfd = socket(AF_INET, SOCK_STREAM, 0);
	if (lfd < 0 || bind(lfd, (struct sockaddr *)&sin, sizeof(sin)) < 0 || listen(lfd, 4) < 0 ||
	    getsockname(lfd, (struct sockaddr *)&sin, &slen) < 0) {
		perror("listen");
		return 1;
	}
	peerid_to_text(&idn.id, id, sizeof(id));
	printf("listening /ip4/127.0.0.1/tcp/%u/p2p/%s\n", ntohs(sin.sin_port), id);
	fflush(stdout);
	pfd = (struct pollfd){ .fd = lfd, .events = POLLIN };
	if (poll(&pfd, 1, DRIVER_TIMEOUT_MS) != 1) {
		fprintf(stderr, "FAIL: nobody connected\n");
		return 1;
	}
	slen = sizeof(sin);
	d.fd = accept(lfd, (struct sockaddr *)&sin, &slen);
	close(lfd);
	if (d.fd < 0) {
		perror("accept");
		return 1;
	}
	d.c = p2p_conn_new(&host, false, NULL, &driver_ops, &d, &err);
	if (!d.c) {
		return 1;
	}
	p2p_conn_set_remote_addr(d.c, (struct sockaddr *)&sin);
	err = run_until(&d, is_gone, "serve");
	if (err == -ECONNRESET || err == -EPIPE) {
		d.eof = true; /* an abrupt close after the exchange is still a finished session */
	}
	const struct p2p_conn_stats *st = p2p_conn_stats(d.c);

	printf("served: pings %llu echo %llu bytes identify %d agent=%s\n",
	       (unsigned long long)st->pings_served, (unsigned long long)d.served, d.identified,
	       d.agent);
	ok = d.eof && d.identified && !d.identify_err && !strncmp(d.agent, "js-libp2p/", 10) &&
	     st->pings_served >= 3 && d.served == ECHO_BYTES && d.srv_fin;
	if (!ok) {
		fprintf(stderr, "FAIL listen: the js peer did not complete identify/ping/echo\n");
	} else {
		printf("ok listen: js identified, pinged and echoed\n");
	}
	p2p_conn_free(d.c);
	free(d.pend);
	close(d.fd);
	p2p_identity_cleanup(&idn);
	return ok ? 0 : 1;
}

int main(int argc, char **argv)
{
	bool early = !(argc > 3 && !strcmp(argv[3], "--no-early")) &&
		     !(argc > 2 && !strcmp(argv[2], "--no-early"));

	setvbuf(stdout, NULL, _IOLBF, 0);
	if (argc >= 3 && !strcmp(argv[1], "dial")) {
		return cmd_dial(argv[2], early);
	}
	if (argc >= 3 && !strcmp(argv[1], "hold")) {
		return cmd_hold(argv[2]);
	}
	if (argc >= 2 && !strcmp(argv[1], "listen")) {
		return cmd_listen(early);
	}
	fprintf(stderr,
		"usage: %s dial MULTIADDR [--no-early] | hold MULTIADDR | listen [--no-early]\n",
		argv[0]);
	return 2;
}
