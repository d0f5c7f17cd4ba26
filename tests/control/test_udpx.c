// SPDX-License-Identifier: MIT
/*
 * Loopback tests of control/udpx.c without an engine: two udpx instances in this process, A's
 * coordination stream connected straight to B's gateway (where the engines' p2p forward and
 * expose would bridge a libp2p stream), a STUN Binding responder thread (engine/stun) and a UDP
 * echo thread standing in for the service. On loopback nothing blocks the probes, so the path
 * goes direct; datagrams of two clients come back to the right client.
 */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "stun_msg.h"
#include "udpx.h"

static atomic_bool stop;

struct srv {
	int fd;
	uint16_t port;
	bool stun; /* answer Binding requests (else echo) */
	atomic_uint count;
	pthread_t thr;
};

static void *srv_main(void *arg)
{
	struct srv *s = arg;
	uint8_t b[2048], out[128];

	while (!atomic_load(&stop)) {
		struct pollfd p = { .fd = s->fd, .events = POLLIN };
		struct sockaddr_in from;
		socklen_t fl = sizeof(from);
		ssize_t n;

		if (poll(&p, 1, 50) <= 0) {
			continue;
		}
		n = recvfrom(s->fd, b, sizeof(b), 0, (struct sockaddr *)&from, &fl);
		if (n < 0) {
			continue;
		}
		atomic_fetch_add(&s->count, 1);
		if (s->stun) {
			struct stun_msg m;
			struct stun_addr a = { .family = STUN_FAMILY_IPV4,
					       .port = ntohs(from.sin_port) };
			size_t on;

			memcpy(a.addr, &from.sin_addr, 4);
			if (!stun_msg_parse(&m, b, (size_t)n) &&
			    stun_request_judge(&m) == STUN_V_ANSWER &&
			    !stun_binding_success_build(out, sizeof(out), &on, &m, &a)) {
				sendto(s->fd, out, on, 0, (struct sockaddr *)&from, fl);
			}
		} else {
			sendto(s->fd, b, (size_t)n, 0, (struct sockaddr *)&from, fl);
		}
	}
	return NULL;
}

static void srv_start(struct srv *s, bool stun)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t al = sizeof(a);

	s->stun = stun;
	atomic_store(&s->count, 0);
	s->fd = socket(AF_INET, SOCK_DGRAM, 0);
	cr_assert_geq(s->fd, 0);
	cr_assert_eq(bind(s->fd, (struct sockaddr *)&a, sizeof(a)), 0);
	cr_assert_eq(getsockname(s->fd, (struct sockaddr *)&a, &al), 0);
	s->port = ntohs(a.sin_port);
	cr_assert_eq(pthread_create(&s->thr, NULL, srv_main, s), 0);
}

static void srv_stop(struct srv *s)
{
	pthread_join(s->thr, NULL);
	close(s->fd);
}

static void sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	nanosleep(&ts, NULL);
}

/* wait_path - poll connection @id's path until it is @want (5 s). */
static bool wait_path(struct udpx *u, uint32_t id, const char *want, char *reason, size_t rlen)
{
	char path[32];

	for (int i = 0; i < 250; i++) {
		if (!udpx_conn_path(u, id, path, sizeof(path), reason, rlen) &&
		    !strcmp(path, want)) {
			return true;
		}
		sleep_ms(20);
	}
	return false;
}

/* client_echo - @n datagrams "TAG:i" from a fresh socket to @port, every echo checked. */
static void client_echo(uint16_t port, const char *tag, int n)
{
	struct sockaddr_in to = { .sin_family = AF_INET,
				  .sin_port = htons(port),
				  .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	struct timeval tv = { 2, 0 };
	int fd = socket(AF_INET, SOCK_DGRAM, 0);

	cr_assert_geq(fd, 0);
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	for (int i = 0; i < n; i++) {
		char msg[64], got[128];
		ssize_t r;

		snprintf(msg, sizeof(msg), "%s:%d", tag, i);
		cr_assert_eq(sendto(fd, msg, strlen(msg), 0, (struct sockaddr *)&to, sizeof(to)),
			     (ssize_t)strlen(msg));
		r = recv(fd, got, sizeof(got) - 1, 0);
		cr_assert_eq(r, (ssize_t)strlen(msg), "echo %s: got %zd bytes", msg, r);
		got[r] = 0;
		cr_assert_str_eq(got, msg);
	}
	close(fd);
}

static int count_of(struct udpx *u, const char *name)
{
	cJSON *j = udpx_json(u);
	const cJSON *c = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItem(j, "counters"), name);
	int v = cJSON_IsNumber(c) ? (int)c->valuedouble : -1;

	cJSON_Delete(j);
	return v;
}

Test(udpx, loopback_punch_direct_echo_and_close)
{
	struct srv st, echo;
	struct udpx *a, *b;
	char stun[32], stream[32], bound[64], msg[256], reason[256];
	struct udpx_conn_req r = { .name = "echo", .local = "127.0.0.1:0", .target = "test" };
	uint32_t id;
	int err;

	atomic_store(&stop, false);
	srv_start(&st, true);
	srv_start(&echo, false);
	a = udpx_new(&err);
	b = udpx_new(&err);
	cr_assert(a && b);
	snprintf(stun, sizeof(stun), "127.0.0.1:%u", st.port);
	snprintf(stream, sizeof(stream), "127.0.0.1:%u", udpx_gateway_port(b));
	snprintf(msg, sizeof(msg), "127.0.0.1:%u", echo.port);
	cr_assert_eq(udpx_service_add(b, "echo", msg, reason, sizeof(reason)), 0);
	cr_assert_eq(udpx_service_add(b, "echo", msg, reason, sizeof(reason)), -EEXIST);
	cr_assert_eq(udpx_service_add(b, "bad name", msg, reason, sizeof(reason)), -EINVAL);
	cr_assert_eq(udpx_service_add(b, "x", "nohost", reason, sizeof(reason)), -EINVAL);
	r.stream = stream;
	r.stun = stun;
	cr_assert_eq(udpx_conn_open(a, &r, &id, bound, msg, sizeof(msg)), 0, "%s", msg);
	cr_assert_eq(strncmp(bound, "udp:127.0.0.1:", 14), 0);
	cr_assert(wait_path(a, id, "udp-direct", reason, sizeof(reason)), "not direct: %s", reason);
	cr_assert_geq(atomic_load(&st.count), 2, "both sides asked STUN");
	client_echo((uint16_t)atoi(bound + 14), "one", 50);
	client_echo((uint16_t)atoi(bound + 14), "two", 50);
	cr_assert_eq(count_of(a, "punch_successes"), 1);
	cr_assert_eq(count_of(a, "datagrams_direct_out"), 100);
	cr_assert_eq(count_of(b, "datagrams_direct_in"), 100);
	cr_assert_eq(count_of(b, "datagrams_relayed_in"), 0);
	cr_assert_eq(atomic_load(&echo.count), 100);
	{
		char *text = NULL;
		size_t len = 0;
		FILE *f = open_memstream(&text, &len);

		udpx_prom(a, f);
		fclose(f);
		cr_assert(strstr(text, "natx_udp_punch_total{result=\"success\"} 1\n"), "%s", text);
		cr_assert(strstr(text, "natx_udp_sessions{path=\"direct\"} 1\n"), "%s", text);
		cr_assert(strstr(text,
				 "natx_udp_datagrams_total{path=\"direct\",dir=\"out\"} 100\n"));
		free(text);
	}
	cr_assert_eq(udpx_conn_close(a, id), 0);
	cr_assert_eq(udpx_conn_close(a, id), -ENOENT);
	cr_assert_eq(udpx_conn_path(a, id, msg, 32, reason, sizeof(reason)), -ENOENT);
	udpx_free(a);
	udpx_free(b);
	atomic_store(&stop, true);
	srv_stop(&st);
	srv_stop(&echo);
}

Test(udpx, relayed_without_stun_and_unknown_service)
{
	struct srv echo;
	struct udpx *a, *b;
	char stream[32], bound[64], msg[256], reason[256];
	struct udpx_conn_req r = { .name = "echo", .local = "127.0.0.1:0" };
	uint32_t id, id2;
	int err;

	atomic_store(&stop, false);
	srv_start(&echo, false);
	a = udpx_new(&err);
	b = udpx_new(&err);
	cr_assert(a && b);
	snprintf(stream, sizeof(stream), "127.0.0.1:%u", udpx_gateway_port(b));
	snprintf(msg, sizeof(msg), "127.0.0.1:%u", echo.port);
	cr_assert_eq(udpx_service_add(b, "echo", msg, reason, sizeof(reason)), 0);
	/* no STUN server: no candidates, so the datagrams stay on the stream */
	r.stream = stream;
	cr_assert_eq(udpx_conn_open(a, &r, &id, bound, msg, sizeof(msg)), 0, "%s", msg);
	cr_assert(wait_path(a, id, "udp-relayed", reason, sizeof(reason)), "%s", reason);
	for (int i = 0; i < 100 && !strstr(reason, "no UDP candidates"); i++) {
		wait_path(a, id, "udp-relayed", reason, sizeof(reason));
		sleep_ms(20);
	}
	cr_assert(strstr(reason, "no UDP candidates"), "%s", reason);
	client_echo((uint16_t)atoi(bound + 14), "rel", 50);
	cr_assert_eq(count_of(b, "datagrams_relayed_in"), 50);
	cr_assert_eq(count_of(a, "datagrams_relayed_in"), 50);
	cr_assert_eq(count_of(a, "datagrams_direct_out"), 0);
	/* a service B does not offer: B answers ERROR, A says why and keeps retrying */
	r.name = "nope";
	cr_assert_eq(udpx_conn_open(a, &r, &id2, bound, msg, sizeof(msg)), 0, "%s", msg);
	cr_assert(wait_path(a, id2, "udp-connecting", reason, sizeof(reason)));
	for (int i = 0; i < 100 && !strstr(reason, "no UDP service nope"); i++) {
		udpx_conn_path(a, id2, msg, 32, reason, sizeof(reason));
		sleep_ms(20);
	}
	cr_assert(strstr(reason, "no UDP service nope"), "%s", reason);
	/* bad arguments change nothing */
	r.name = "echo";
	r.local = "nonsense";
	cr_assert_eq(udpx_conn_open(a, &r, &id2, bound, msg, sizeof(msg)), -EINVAL);
	r.local = "127.0.0.1:0";
	r.stream = "[::1]:5";
	cr_assert_eq(udpx_conn_open(a, &r, &id2, bound, msg, sizeof(msg)), -EINVAL);
	udpx_free(a);
	udpx_free(b);
	atomic_store(&stop, true);
	srv_stop(&echo);
}

/* Garbage on B's gateway (a stream that is not the protocol) ends that session only. */
Test(udpx, gateway_garbage_closes_only_that_stream)
{
	struct udpx *b;
	struct sockaddr_in g = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	char reason[256];
	uint8_t junk[] = { 0x42, 0x00, 0x01, 0x00, 0xff };
	struct timeval tv = { 3, 0 };
	char buf[512];
	ssize_t n;
	int err, fd;

	b = udpx_new(&err);
	cr_assert(b);
	cr_assert_eq(udpx_service_add(b, "echo", "127.0.0.1:9", reason, sizeof(reason)), 0);
	g.sin_port = htons(udpx_gateway_port(b));
	fd = socket(AF_INET, SOCK_STREAM, 0);
	cr_assert_eq(connect(fd, (struct sockaddr *)&g, sizeof(g)), 0);
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	cr_assert_eq(send(fd, junk, sizeof(junk), 0), (ssize_t)sizeof(junk));
	/* an ERROR message (type 8) then end of stream */
	n = recv(fd, buf, sizeof(buf), MSG_WAITALL);
	cr_assert_gt(n, 3);
	cr_assert_eq((uint8_t)buf[0], 8);
	close(fd);
	sleep_ms(100);
	{
		cJSON *j = udpx_json(b);

		cr_assert_eq(cJSON_GetArraySize(cJSON_GetObjectItem(j, "sessions")), 0);
		cr_assert_eq(cJSON_GetArraySize(cJSON_GetObjectItem(j, "services")), 1);
		cJSON_Delete(j);
	}
	udpx_free(b);
}

/*
 * A stalled stream (a relay that stops reading): the datagrams that do not fit the stream's
 * bounded queue are dropped and counted, never buffered without bound, and udpx stays
 * responsive.
 */
Test(udpx, stalled_stream_drops_and_counts)
{
	struct sockaddr_in l = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t ll = sizeof(l);
	char stream[32], bound[64], msg[256], reason[256];
	struct udpx_conn_req r = { .name = "echo", .local = "127.0.0.1:0" };
	static char big[1400];
	struct sockaddr_in to = { .sin_family = AF_INET,
				  .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	struct udpx *a;
	uint32_t id;
	int lfd, cfd, fd, err, drops = 0;

	/* the "relay": accepts the stream and never reads it */
	lfd = socket(AF_INET, SOCK_STREAM, 0);
	cr_assert_eq(bind(lfd, (struct sockaddr *)&l, sizeof(l)), 0);
	cr_assert_eq(listen(lfd, 1), 0);
	cr_assert_eq(getsockname(lfd, (struct sockaddr *)&l, &ll), 0);
	a = udpx_new(&err);
	cr_assert(a);
	snprintf(stream, sizeof(stream), "127.0.0.1:%u", ntohs(l.sin_port));
	r.stream = stream;
	cr_assert_eq(udpx_conn_open(a, &r, &id, bound, msg, sizeof(msg)), 0, "%s", msg);
	cfd = accept(lfd, NULL, NULL);
	cr_assert_geq(cfd, 0);
	cr_assert(wait_path(a, id, "udp-relayed", reason, sizeof(reason)), "%s", reason);
	fd = socket(AF_INET, SOCK_DGRAM, 0);
	to.sin_port = htons((uint16_t)atoi(bound + 14));
	/* 40000 x 1400 B = 56 MB: far more than the socket buffers and the 256 KiB queue */
	for (int round = 0; round < 40 && drops <= 0; round++) {
		for (int i = 0; i < 1000; i++) {
			sendto(fd, big, sizeof(big), 0, (struct sockaddr *)&to, sizeof(to));
		}
		sleep_ms(20);
		drops = count_of(a, "dropped_queue_full");
	}
	cr_assert_gt(drops, 0, "no datagram was dropped");
	cr_assert_lt(count_of(a, "datagrams_relayed_out"), 40000);
	/* still responsive, the connection still listed */
	cr_assert(wait_path(a, id, "udp-relayed", reason, sizeof(reason)), "%s", reason);
	close(fd);
	close(cfd);
	close(lfd);
	udpx_free(a);
}
