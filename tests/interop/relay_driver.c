// SPDX-License-Identifier: MIT
/*
 * relay_driver - circuit relay v2 and AutoNAT interop with js-libp2p: a small poll() loop over
 * non-blocking loopback sockets hosting several p2p_conns, with the sans-IO relay modules on
 * top (engine/p2p/relay.h, relay_client.h, link.h). The sockets are only the test transport.
 *
 *   relay_driver relay
 *       natx as hop server: print "listening <multiaddr>", accept connections, serve
 *       /libp2p/circuit/relay/0.2.0/hop (reservations, circuits spliced stream to stream).
 *       Runs until SIGTERM (at most DRIVER_RUN_MS); prints the relay counters and exits 0
 *       when at least one reservation and one circuit carried bytes.
 *   relay_driver reserve RELAY_MULTIADDR
 *       natx as a NATed node: connect to the (js) relay, reserve, print "reserved <circuit
 *       multiaddr>", accept the stop stream of an incoming circuit, run a p2p_conn over it
 *       (natx is the responder) and serve identify + ping on it. Exits 0 once the peer behind
 *       the circuit identified as js-libp2p and pinged us 3 times.
 *   relay_driver flood RELAY_MULTIADDR N
 *       one peer ID reserves on the relay over N connections at once; prints "flood: ok X
 *       refused Y failed Z" (the relay's per-peer limit decides X and Y).
 *   relay_driver autonat SERVER_MULTIADDR
 *       AutoNAT v1 client against a (js) server: send DIAL with our peer ID and a loopback
 *       address; js refuses to dial private addresses, so the expected answer is
 *       E_DIAL_REFUSED "no dialable addresses", which js gives only after it decoded the
 *       request and matched its peer ID to the connection (a malformed request or a wrong
 *       peer ID gets E_BAD_REQUEST). Exits 0 on exactly that answer.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "natx/err.h"
#include "conn.h"
#include "autonat.h"
#include "link.h"
#include "multiaddr.h"
#include "relay.h"
#include "relay_client.h"

enum {
	DRIVER_RUN_MS = 90000,
	DRIVER_WAIT_MS = 30000,
	MAX_SOCKS = 32,
	MAX_LINKS = 8,
};

/* struct sock - one TCP connection and its p2p_conn. */
struct sock {
	int fd;
	struct p2p_conn *c;
	struct sockaddr_storage peer;
	bool dead;
};

/* struct inner - a relayed connection (p2p_conn over a circuit stream). */
struct inner {
	struct p2p_link *l;
	int identified, identify_err, down;
	char agent[128];
};

static struct sock socks[MAX_SOCKS];
static size_t n_socks;
static struct inner inners[MAX_LINKS];
static size_t n_inners;
static struct relay *relay;
static struct relay_client *client;
static struct p2p_host host, inner_host;
static struct p2p_identity idn;
static volatile sig_atomic_t stop;
static int reserved, reserve_status;
static struct p2p_conn *relay_conn;
static uint8_t relay_ma[MADDR_MAX_LEN]; /* reserve: the relay's address as dialled */
static size_t relay_ma_len;

static int64_t mono_ms(void)
{
	return p2p_clock_system.now_ms(&p2p_clock_system);
}

static int64_t unix_now(void *ctx)
{
	return (int64_t)time(NULL);
}

static void on_sig(int sig)
{
	stop = 1;
}

static void on_stream_open(void *ctx, struct p2p_stream *s, const char *proto)
{
	struct sock *k = ctx;

	if (relay && !strcmp(proto, RELAY_HOP_PROTOCOL)) {
		relay_hop_accept(relay, s, (struct sockaddr *)&k->peer, false);
	} else if (client && !strcmp(proto, RELAY_STOP_PROTOCOL)) {
		relay_client_stop_accept(client, s);
	} else {
		p2p_stream_reset(s);
	}
}

static void on_identify(void *ctx, struct p2p_conn *c, const struct identify_record *rec, int err)
{
	printf("identify (direct): err=%d agent=%s\n", err,
	       rec && rec->agent_version ? rec->agent_version : "-");
}

static const struct p2p_conn_ops sock_ops = {
	.on_stream_open = on_stream_open,
	.on_identify = on_identify,
};

static void inner_identify(void *ctx, struct p2p_conn *c, const struct identify_record *rec,
			   int err)
{
	struct inner *in = ctx;

	in->identified++;
	in->identify_err = err;
	if (!err && rec->agent_version) {
		snprintf(in->agent, sizeof(in->agent), "%s", rec->agent_version);
	}
	printf("identify (relayed): err=%d agent=%s\n", err, in->agent);
}

static void inner_open(void *ctx, struct p2p_stream *s, const char *proto)
{
	p2p_stream_reset(s); /* only the built-in identify and ping are served */
}

static const struct p2p_conn_ops inner_ops = {
	.on_stream_open = inner_open,
	.on_identify = inner_identify,
};

static void inner_down(void *ctx, struct p2p_link *l, int err)
{
	struct inner *in = ctx;

	in->down = err;
	printf("relayed connection down: %s\n", natx_strerror(err));
}

static void on_reserved(void *ctx, struct p2p_conn *c, int err, uint32_t status,
			const struct relay_reservation *rsvp)
{
	uint8_t ma[MADDR_MAX_LEN];
	char text[MADDR_TEXT_MAX];
	size_t len;

	reserved++;
	reserve_status = err ? -1 : (int)status;
	if (err || status != RELAY_OK) {
		printf("reservation failed: err=%s status=%s\n", natx_strerror(err),
		       relay_status_name(status));
		return;
	}
	printf("reservation: expire in %lld s, %zu addrs, voucher %s, limit %s dur=%u data=%llu\n",
	       (long long)rsvp->expire - (long long)time(NULL), rsvp->addrs.n,
	       rsvp->voucher_ok ? "verified" : "absent", rsvp->limit.present ? "yes" : "no",
	       rsvp->limit.duration_s, (unsigned long long)rsvp->limit.data);
	for (size_t i = 0; i < rsvp->addrs.n; i++) {
		if (maddr_to_text(rsvp->addrs.b[i], rsvp->addrs.lens[i], text, sizeof(text)) > 0) {
			printf("relay address in the reservation: %s\n", text);
		}
	}
	/* the address we dialled the relay at is the one the test peers can use */
	if (!relay_circuit_addr(relay_ma, relay_ma_len, &rsvp->relay, &idn.id, ma, sizeof(ma),
				&len) &&
	    maddr_to_text(ma, len, text, sizeof(text)) > 0) {
		printf("reserved %s\n", text);
	}
	fflush(stdout);
}

static void on_circuit(void *ctx, struct p2p_stream *s, const struct peer_id *remote, bool dialer,
		       const struct relay_limit *limit, const uint8_t *early, size_t early_len,
		       void *user)
{
	struct inner *in;
	int err;

	if (n_inners == MAX_LINKS) {
		p2p_stream_reset(s);
		return;
	}
	in = &inners[n_inners];
	in->l = p2p_link_new(s, &inner_host, dialer, dialer ? remote : NULL, &inner_ops, in, early,
			     early_len, inner_down, &err);
	if (!in->l) {
		printf("p2p_link_new: %s\n", natx_strerror(err));
		p2p_stream_reset(s);
		return;
	}
	n_inners++;
	printf("circuit from the relay accepted (limit %s)\n", limit->present ? "yes" : "no");
}

static const struct relay_client_ops client_ops = {
	.unix_now = unix_now,
	.on_reserved = on_reserved,
	.on_circuit = on_circuit,
};

static const struct relay_ops relay_ops = { .unix_now = unix_now };

static struct sock *sock_add(int fd, bool dialer, const struct peer_id *expect,
			     const struct sockaddr_storage *peer)
{
	struct sock *k;
	int err;

	if (n_socks == MAX_SOCKS) {
		close(fd);
		return NULL;
	}
	k = &socks[n_socks];
	memset(k, 0, sizeof(*k));
	k->fd = fd;
	k->peer = *peer;
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
	k->c = p2p_conn_new(&host, dialer, expect, &sock_ops, k, &err);
	if (!k->c) {
		close(fd);
		return NULL;
	}
	p2p_conn_set_remote_addr(k->c, (const struct sockaddr *)peer);
	if (dialer) {
		p2p_conn_start(k->c);
	}
	n_socks++;
	return k;
}

static void sock_kill(struct sock *k)
{
	if (k->dead) {
		return;
	}
	k->dead = true;
	if (relay) {
		relay_conn_gone(relay, k->c);
	}
	if (client) {
		relay_client_conn_gone(client, k->c);
	}
}

/* sock_flush - send what the connection has queued, without blocking. */
static void sock_flush(struct sock *k)
{
	for (;;) {
		const uint8_t *p;
		size_t len;
		ssize_t n;

		p2p_conn_out_peek(k->c, &p, &len);
		if (!len) {
			return;
		}
		n = send(k->fd, p, len, MSG_NOSIGNAL);
		if (n < 0) {
			if (errno != EAGAIN && errno != EWOULDBLOCK) {
				sock_kill(k);
			}
			return;
		}
		p2p_conn_out_advance(k->c, (size_t)n);
	}
}

/* loop_once - flush everything, wait up to 50 ms, read what arrived, run timers. */
static void loop_once(int lfd)
{
	struct pollfd pfd[MAX_SOCKS + 1];
	size_t n = 0;

	for (size_t i = 0; i < n_inners; i++) {
		if (inners[i].l && !inners[i].down) {
			p2p_link_flush(inners[i].l);
		}
	}
	for (size_t i = 0; i < n_socks; i++) {
		const uint8_t *p;
		size_t len;

		if (socks[i].dead) {
			pfd[n++] = (struct pollfd){ .fd = -1 };
			continue;
		}
		sock_flush(&socks[i]);
		p2p_conn_out_peek(socks[i].c, &p, &len);
		pfd[n++] = (struct pollfd){ .fd = socks[i].fd,
					    .events = POLLIN | (len ? POLLOUT : 0) };
	}
	pfd[n] = (struct pollfd){ .fd = lfd, .events = POLLIN };
	if (poll(pfd, n + 1, 50) > 0) {
		for (size_t i = 0; i < n_socks; i++) {
			struct sock *k = &socks[i];
			uint8_t *space;
			size_t cap;
			ssize_t r;

			if (k->dead || !(pfd[i].revents & (POLLIN | POLLHUP | POLLERR))) {
				continue;
			}
			if (p2p_conn_recv_space(k->c, &space, &cap)) {
				sock_kill(k);
				continue;
			}
			r = recv(k->fd, space, cap, 0);
			if (r <= 0) {
				if (r == 0 || (errno != EAGAIN && errno != EWOULDBLOCK)) {
					sock_kill(k);
				}
				continue;
			}
			if (p2p_conn_recv_commit(k->c, (size_t)r)) {
				printf("connection failed: %s\n",
				       natx_strerror(p2p_conn_error(k->c)));
				sock_flush(k);
				sock_kill(k);
			}
		}
		if (lfd >= 0 && (pfd[n].revents & POLLIN)) {
			struct sockaddr_storage ss;
			socklen_t slen = sizeof(ss);
			int fd = accept(lfd, (struct sockaddr *)&ss, &slen);

			if (fd >= 0) {
				sock_add(fd, false, NULL, &ss);
			}
		}
	}
	for (size_t i = 0; i < n_socks; i++) {
		if (!socks[i].dead) {
			p2p_conn_tick(socks[i].c);
		} else if (socks[i].c) {
			/* freeing resets its streams: the relay and the links hear about it */
			p2p_conn_free(socks[i].c);
			socks[i].c = NULL;
			close(socks[i].fd);
			socks[i].fd = -1;
		}
	}
	if (relay) {
		relay_tick(relay);
	}
	if (client) {
		relay_client_tick(client);
	}
}

static void setup(const char *const *protos, size_t n)
{
	static const char *const none[] = { NULL };

	p2p_identity_generate(&idn);
	host = (struct p2p_host){ .idn = &idn,
				  .protocols = protos,
				  .n_protocols = n,
				  .clock = &p2p_clock_system,
				  .rng = &p2p_rng_system,
				  .early_muxer = true };
	inner_host = host;
	inner_host.protocols = none;
	inner_host.n_protocols = 0;
}

static void teardown(void)
{
	for (size_t i = 0; i < n_inners; i++) {
		p2p_link_free(inners[i].l);
	}
	relay_free(relay);
	relay_client_free(client);
	for (size_t i = 0; i < n_socks; i++) {
		p2p_conn_free(socks[i].c);
		if (socks[i].fd >= 0) {
			close(socks[i].fd);
		}
	}
	p2p_identity_cleanup(&idn);
}

static int cmd_relay(void)
{
	static const char *const protos[] = { RELAY_HOP_PROTOCOL };
	struct sockaddr_in sin = { .sin_family = AF_INET,
				   .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t slen = sizeof(sin);
	struct relay_config cfg;
	uint8_t ma[MADDR_MAX_LEN];
	const uint8_t *mas[1] = { ma };
	size_t ma_len, lens[1];
	char text[MADDR_TEXT_MAX], id[PEERID_TEXT_MAX];
	int lfd, err, ok;
	int64_t end;
	const struct relay_stats *st;

	setup(protos, 1);
	lfd = socket(AF_INET, SOCK_STREAM, 0);
	if (lfd < 0 || bind(lfd, (struct sockaddr *)&sin, sizeof(sin)) < 0 || listen(lfd, 8) < 0 ||
	    getsockname(lfd, (struct sockaddr *)&sin, &slen) < 0) {
		perror("listen");
		return 1;
	}
	peerid_to_text(&idn.id, id, sizeof(id));
	snprintf(text, sizeof(text), "/ip4/127.0.0.1/tcp/%u/p2p/%s", ntohs(sin.sin_port), id);
	if (maddr_from_text(text, ma, sizeof(ma), &ma_len)) {
		return 1;
	}
	lens[0] = ma_len;
	relay_config_default(&cfg);
	cfg.public_addrs = mas;
	cfg.public_addr_lens = lens;
	cfg.n_public_addrs = 1;
	relay = relay_new(&idn, &cfg, &p2p_clock_system, &relay_ops, NULL, &err);
	if (!relay) {
		return 1;
	}
	printf("listening %s\n", text);
	fflush(stdout);
	end = mono_ms() + DRIVER_RUN_MS;
	while (!stop && mono_ms() < end) {
		loop_once(lfd);
	}
	st = relay_stats(relay);
	printf("relay: reservations total %llu refused %llu renewed %llu; circuits total %llu "
	       "refused %llu limited %llu; bytes relayed %llu\n",
	       (unsigned long long)st->rsvp_total, (unsigned long long)st->rsvp_refused,
	       (unsigned long long)st->rsvp_renewed, (unsigned long long)st->circuits_total,
	       (unsigned long long)st->circuits_refused, (unsigned long long)st->circuits_limited,
	       (unsigned long long)st->bytes_relayed);
	ok = st->rsvp_total >= 1 && st->circuits_total >= 1 && st->bytes_relayed > 0;
	close(lfd);
	teardown();
	return ok ? 0 : 1;
}

static int cmd_reserve(const char *text)
{
	static const char *const protos[] = { RELAY_STOP_PROTOCOL };
	struct sockaddr_storage ss;
	uint8_t ma[MADDR_MAX_LEN];
	struct peer_id expect;
	size_t ma_len;
	int has_id, fd, err, ok = 0;
	int64_t end;
	struct sock *k;

	if (maddr_from_text(text, ma, sizeof(ma), &ma_len) ||
	    maddr_to_sockaddr(ma, ma_len, &ss, &expect, &has_id) || !has_id) {
		fprintf(stderr, "FAIL: %s is not /ip4/.../tcp/N/p2p/ID\n", text);
		return 1;
	}
	memcpy(relay_ma, ma, ma_len);
	relay_ma_len = ma_len;
	setup(protos, 1);
	client = relay_client_new(&idn, &p2p_clock_system, &client_ops, NULL, &err);
	fd = socket(ss.ss_family, SOCK_STREAM, 0);
	if (!client || fd < 0 || connect(fd, (struct sockaddr *)&ss, sizeof(ss)) < 0) {
		perror("connect");
		return 1;
	}
	k = sock_add(fd, true, &expect, &ss);
	if (!k) {
		return 1;
	}
	relay_conn = k->c;
	end = mono_ms() + DRIVER_WAIT_MS;
	while (!stop && mono_ms() < end && !k->dead && !p2p_conn_established(relay_conn)) {
		loop_once(-1);
	}
	err = !k->dead && p2p_conn_established(relay_conn) ?
		      relay_client_reserve(client, relay_conn) :
		      -ENOTCONN;
	if (err) {
		fprintf(stderr, "FAIL: no connection to the relay (%s)\n", natx_strerror(err));
		teardown();
		return 1;
	}
	end = mono_ms() + DRIVER_RUN_MS;
	while (!stop && mono_ms() < end && !k->dead) {
		loop_once(-1);
		if (reserved && reserve_status != RELAY_OK) {
			break;
		}
		for (size_t i = 0; i < n_inners; i++) {
			struct p2p_conn *c = p2p_link_conn(inners[i].l);

			if (inners[i].identified && !strncmp(inners[i].agent, "js-libp2p/", 10) &&
			    p2p_conn_stats(c)->pings_served >= 3) {
				ok = 1;
			}
		}
		if (ok) {
			/* let the last echoes leave */
			for (int i = 0; i < 10; i++) {
				loop_once(-1);
			}
			break;
		}
	}
	for (size_t i = 0; i < n_inners; i++) {
		printf("relayed connection %zu: identify %d agent=%s pings served %llu\n", i,
		       inners[i].identified, inners[i].agent,
		       (unsigned long long)p2p_conn_stats(p2p_link_conn(inners[i].l))
			       ->pings_served);
	}
	printf("%s\n", ok ? "ok: js reached natx through the js relay (identify + 3 pings)" :
			    "FAIL: no js peer identified and pinged us through the relay");
	teardown();
	return ok ? 0 : 1;
}

/* flood: answers to the reservations of one peer over several connections */
static int flood_ok, flood_refused, flood_failed;

static void flood_reserved(void *ctx, struct p2p_conn *c, int err, uint32_t status,
			   const struct relay_reservation *rsvp)
{
	if (err) {
		flood_failed++;
	} else if (status == RELAY_OK) {
		flood_ok++;
	} else {
		flood_refused++;
		printf("refused: %s\n", relay_status_name(status));
	}
}

static const struct relay_client_ops flood_ops = {
	.unix_now = unix_now,
	.on_reserved = flood_reserved,
	.on_circuit = on_circuit,
};

/*
 * cmd_flood - one peer ID reserves on the relay over @n connections; prints the answers.
 * Exits 0 when every reservation was answered (accepted or refused).
 */
static int cmd_flood(const char *text, int n)
{
	static const char *const protos[] = { RELAY_STOP_PROTOCOL };
	struct sockaddr_storage ss;
	uint8_t ma[MADDR_MAX_LEN];
	struct peer_id expect;
	size_t ma_len;
	int has_id, err;
	bool asked[MAX_SOCKS] = { false };
	int64_t end;

	if (n < 1 || n > MAX_SOCKS || maddr_from_text(text, ma, sizeof(ma), &ma_len) ||
	    maddr_to_sockaddr(ma, ma_len, &ss, &expect, &has_id) || !has_id) {
		fprintf(stderr, "FAIL: usage flood /ip4/.../tcp/N/p2p/ID COUNT(1..%d)\n",
			MAX_SOCKS);
		return 2;
	}
	setup(protos, 1);
	client = relay_client_new(&idn, &p2p_clock_system, &flood_ops, NULL, &err);
	if (!client) {
		return 1;
	}
	for (int i = 0; i < n; i++) {
		int fd = socket(ss.ss_family, SOCK_STREAM, 0);

		if (fd < 0 || connect(fd, (struct sockaddr *)&ss, sizeof(ss)) < 0 ||
		    !sock_add(fd, true, &expect, &ss)) {
			perror("connect");
			teardown();
			return 1;
		}
	}
	end = mono_ms() + DRIVER_WAIT_MS;
	while (!stop && mono_ms() < end && flood_ok + flood_refused + flood_failed < n) {
		loop_once(-1);
		for (size_t i = 0; i < n_socks; i++) {
			if (!asked[i] && !socks[i].dead && p2p_conn_established(socks[i].c)) {
				asked[i] = true;
				if (relay_client_reserve(client, socks[i].c)) {
					flood_failed++;
				}
			}
		}
	}
	printf("flood: ok %d refused %d failed %d\n", flood_ok, flood_refused, flood_failed);
	teardown();
	return flood_ok + flood_refused + flood_failed == n ? 0 : 1;
}

static uint32_t an_status = UINT32_MAX;
static char an_text[128];

static void an_response(void *ctx, struct p2p_conn *c, uint32_t status, const char *text)
{
	an_status = status;
	snprintf(an_text, sizeof(an_text), "%s", text);
	printf("autonat response: status=%u text=\"%s\"\n", status, text);
}

static const struct autonat_client_ops an_ops = { .on_response = an_response };

static int cmd_autonat(const char *text)
{
	static const char *const protos[] = { AUTONAT_PROTOCOL };
	struct autonat_client *ac;
	struct sockaddr_storage ss;
	uint8_t ma[MADDR_MAX_LEN], mine[64];
	const uint8_t *addrs[1] = { mine };
	size_t ma_len, lens[1];
	struct peer_id expect;
	int has_id, fd, err, ok;
	int64_t end;
	struct sock *k;

	if (maddr_from_text(text, ma, sizeof(ma), &ma_len) ||
	    maddr_to_sockaddr(ma, ma_len, &ss, &expect, &has_id) || !has_id ||
	    maddr_from_text("/ip4/127.0.0.1/tcp/4001", mine, sizeof(mine), &lens[0])) {
		fprintf(stderr, "FAIL: %s is not /ip4/.../tcp/N/p2p/ID\n", text);
		return 1;
	}
	setup(protos, 1);
	ac = autonat_client_new(&idn, &p2p_clock_system, &an_ops, NULL, addrs, lens, 1, &err);
	fd = socket(ss.ss_family, SOCK_STREAM, 0);
	if (!ac || fd < 0 || connect(fd, (struct sockaddr *)&ss, sizeof(ss)) < 0) {
		perror("connect");
		return 1;
	}
	k = sock_add(fd, true, &expect, &ss);
	if (!k) {
		return 1;
	}
	end = mono_ms() + DRIVER_WAIT_MS;
	while (mono_ms() < end && !k->dead && !p2p_conn_established(k->c)) {
		loop_once(-1);
	}
	err = !k->dead && p2p_conn_established(k->c) ? autonat_client_probe(ac, k->c) : -ENOTCONN;
	while (!err && mono_ms() < end && !k->dead && an_status == UINT32_MAX) {
		loop_once(-1);
	}
	ok = an_status == AUTONAT_E_DIAL_REFUSED && !strcmp(an_text, "no dialable addresses");
	printf("%s\n",
	       ok ? "ok: js decoded our DIAL (peer ID matched) and refused the loopback address" :
		    "FAIL: unexpected or no AutoNAT answer");
	autonat_client_free(ac);
	teardown();
	return ok ? 0 : 1;
}

int main(int argc, char **argv)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	signal(SIGTERM, on_sig);
	signal(SIGINT, on_sig);
	signal(SIGPIPE, SIG_IGN);
	if (argc >= 2 && !strcmp(argv[1], "relay")) {
		return cmd_relay();
	}
	if (argc >= 3 && !strcmp(argv[1], "reserve")) {
		return cmd_reserve(argv[2]);
	}
	if (argc >= 4 && !strcmp(argv[1], "flood")) {
		return cmd_flood(argv[2], atoi(argv[3]));
	}
	if (argc >= 3 && !strcmp(argv[1], "autonat")) {
		return cmd_autonat(argv[2]);
	}
	fprintf(stderr,
		"usage: %s relay | reserve RELAY_MULTIADDR | flood RELAY_MULTIADDR N | autonat "
		"SERVER_MULTIADDR\n",
		argv[0]);
	return 2;
}
