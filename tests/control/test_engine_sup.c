// SPDX-License-Identifier: MIT
/*
 * engine_sup against a test-only peer that speaks the engine's control protocol (ENGINE-CTL
 * contract) from a thread: attach, reconcile, loss and reattach, timeouts, failed spawn.
 * The peer keeps forwards in a table and moves no bytes; the real engine is exercised by
 * tests/integration/control_engine.sh.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "engine_sup.h"
#include "natx/err.h"

struct peer {
	char path[108];
	int lfd;
	pthread_t th;
	volatile bool stop;
	volatile bool mute; /* read requests but never answer */
	volatile bool drop_next; /* close the current connection after the next request */
	volatile bool port1_free; /* accept listen port 1 (normally "in use") */
	pthread_mutex_t mu;
	char specs[16][CTL_SPEC_MAX + 1];
	unsigned long ids[16];
	unsigned n;
	unsigned long next_id;
	unsigned adds, rms, conns;
};

static struct peer P;

static void peer_reply(int fd, cJSON *r)
{
	char *s = cJSON_PrintUnformatted(r);

	(void)!write(fd, s, strlen(s));
	(void)!write(fd, "\n", 1);
	free(s);
	cJSON_Delete(r);
}

static cJSON *peer_handle(struct peer *p, cJSON *req)
{
	const char *cmd = cJSON_GetObjectItem(req, "cmd")->valuestring;
	cJSON *r = cJSON_CreateObject();

	cJSON_AddNumberToObject(r, "v", 1);
	cJSON_AddItemToObject(r, "id", cJSON_Duplicate(cJSON_GetObjectItem(req, "id"), 1));
	pthread_mutex_lock(&p->mu);
	if (!strcmp(cmd, "hello")) {
		cJSON_AddTrueToObject(r, "ok");
		cJSON_AddStringToObject(r, "version", "0.1.0-test");
		cJSON_AddNumberToObject(r, "pid", 4242);
		cJSON_AddNumberToObject(r, "shards", 2);
		cJSON_AddNumberToObject(r, "started_at", 1700000000);
	} else if (!strcmp(cmd, "forward.list")) {
		cJSON *a = cJSON_AddArrayToObject(r, "forwards");

		cJSON_AddTrueToObject(r, "ok");
		for (unsigned i = 0; i < p->n; i++) {
			cJSON *f = cJSON_CreateObject();

			cJSON_AddNumberToObject(f, "id", (double)p->ids[i]);
			cJSON_AddStringToObject(f, "spec", p->specs[i]);
			cJSON_AddNumberToObject(f, "flows_open", 0);
			cJSON_AddItemToArray(a, f);
		}
	} else if (!strcmp(cmd, "forward.add")) {
		const char *spec = cJSON_GetObjectItem(req, "spec")->valuestring;
		unsigned i;

		p->adds++;
		for (i = 0; i < p->n && strcmp(p->specs[i], spec); i++) {
		}
		if (strstr(spec, ":1=") && !p->port1_free) {
			cJSON *e = cJSON_AddObjectToObject(r, "error");

			cJSON_AddFalseToObject(r, "ok");
			cJSON_AddStringToObject(e, "code", "addr_in_use");
			cJSON_AddStringToObject(e, "message", "listen 127.0.0.1:1: address in use");
		} else if (i < p->n) {
			cJSON *e = cJSON_AddObjectToObject(r, "error");

			cJSON_AddFalseToObject(r, "ok");
			cJSON_AddStringToObject(e, "code", "exists");
			cJSON_AddStringToObject(e, "message", "exists");
			cJSON_AddNumberToObject(e, "id", (double)p->ids[i]);
		} else {
			cJSON *f = cJSON_AddObjectToObject(r, "forward");

			strcpy(p->specs[p->n], spec);
			p->ids[p->n] = ++p->next_id;
			cJSON_AddTrueToObject(r, "ok");
			cJSON_AddNumberToObject(f, "id", (double)p->ids[p->n]);
			cJSON_AddStringToObject(f, "spec", spec);
			p->n++;
		}
	} else if (!strcmp(cmd, "forward.rm")) {
		const char *spec = cJSON_GetObjectItem(req, "spec")->valuestring;

		p->rms++;
		for (unsigned i = 0; i < p->n; i++) {
			if (!strcmp(p->specs[i], spec)) {
				memmove(&p->specs[i], &p->specs[i + 1],
					sizeof(p->specs[0]) * (p->n - i - 1));
				memmove(&p->ids[i], &p->ids[i + 1],
					sizeof(p->ids[0]) * (p->n - i - 1));
				p->n--;
				break;
			}
		}
		cJSON_AddTrueToObject(r, "ok");
	} else {
		cJSON *e = cJSON_AddObjectToObject(r, "error");

		cJSON_AddFalseToObject(r, "ok");
		cJSON_AddStringToObject(e, "code", "unknown_cmd");
		cJSON_AddStringToObject(e, "message", "unknown");
	}
	pthread_mutex_unlock(&p->mu);
	return r;
}

static void *peer_main(void *arg)
{
	struct peer *p = arg;

	while (!p->stop) {
		struct pollfd pf = { .fd = p->lfd, .events = POLLIN };
		char buf[65536];
		size_t len = 0;
		int fd;

		if (poll(&pf, 1, 50) <= 0) {
			continue;
		}
		fd = accept(p->lfd, NULL, NULL);
		if (fd < 0) {
			continue;
		}
		p->conns++;
		while (!p->stop) {
			struct pollfd cf = { .fd = fd, .events = POLLIN };
			char *nl;
			ssize_t n;

			if (poll(&cf, 1, 50) <= 0) {
				continue;
			}
			n = read(fd, buf + len, sizeof(buf) - len - 1);
			if (n <= 0) {
				break;
			}
			len += (size_t)n;
			while ((nl = memchr(buf, '\n', len))) {
				cJSON *req = cJSON_ParseWithLength(buf, (size_t)(nl - buf));

				memmove(buf, nl + 1, len - (size_t)(nl + 1 - buf));
				len -= (size_t)(nl + 1 - buf);
				if (p->drop_next) {
					p->drop_next = false;
					cJSON_Delete(req);
					goto close_conn;
				}
				if (req && !p->mute) {
					peer_reply(fd, peer_handle(p, req));
				}
				cJSON_Delete(req);
			}
		}
close_conn:
		close(fd);
	}
	return NULL;
}

static void peer_start(struct peer *p)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };

	memset(p, 0, sizeof(*p));
	pthread_mutex_init(&p->mu, NULL);
	snprintf(p->path, sizeof(p->path), "/tmp/natx-ctl-eng-%d.sock", (int)getpid());
	unlink(p->path);
	strcpy(sa.sun_path, p->path);
	p->lfd = socket(AF_UNIX, SOCK_STREAM, 0);
	cr_assert_eq(bind(p->lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	cr_assert_eq(listen(p->lfd, 4), 0);
	cr_assert_eq(pthread_create(&p->th, NULL, peer_main, p), 0);
}

static void peer_stop(struct peer *p)
{
	p->stop = true;
	pthread_join(p->th, NULL);
	close(p->lfd);
	unlink(p->path);
}

static struct engine_sup es;

static void setup(void)
{
	peer_start(&P);
	engine_sup_init(&es, "/nonexistent/natx-engine", P.path, &clock_system);
	es.timeout_ms = 2000;
}

static void teardown(void)
{
	engine_sup_stop(&es, true);
	peer_stop(&P);
}

TestSuite(engine_sup, .init = setup, .fini = teardown, .timeout = 30);

Test(engine_sup, attaches_and_reconciles_forwards)
{
	char msg[ENGINE_ERR_MAX];

	/* the running engine has one wanted forward and one nobody wants any more */
	strcpy(P.specs[0], "tcp:127.0.0.1:8000=127.0.0.1:80");
	P.ids[0] = 1;
	strcpy(P.specs[1], "tcp:127.0.0.1:8001=127.0.0.1:81");
	P.ids[1] = 2;
	P.n = 2;
	P.next_id = 2;
	cr_assert_eq(engine_sup_forward_define(&es, "tcp:127.0.0.1:8000=127.0.0.1:80",
					       ENGINE_FWD_CONFIG),
		     0);
	cr_assert_eq(engine_sup_forward_define(&es, "udp:127.0.0.1:8002=127.0.0.1:82",
					       ENGINE_FWD_STORED),
		     0);
	cr_assert_eq(engine_sup_forward_define(&es, "udp:127.0.0.1:8002=127.0.0.1:82",
					       ENGINE_FWD_STORED),
		     -EEXIST);
	cr_assert_eq(engine_sup_start(&es), 0, "%s", es.last_error);
	cr_assert_eq(es.state, ENGINE_UP);
	cr_assert(es.attached);
	cr_assert_eq(es.pid, 4242);
	cr_assert_str_eq(es.version, "0.1.0-test");
	cr_assert_eq(es.eng_shards, 2);
	/* matched by spec: not re-added; the missing one added; the stray one removed */
	cr_assert_eq(P.adds, 1);
	cr_assert_eq(P.rms, 1);
	cr_assert_eq(P.n, 2);
	cr_assert_eq(es.fwd[0].id, 1);
	cr_assert_eq(es.fwd[1].id, 3);
	/* add through the supervisor; engine errors are returned and nothing is recorded */
	cr_assert_eq(engine_sup_forward_add(&es, "tcp:127.0.0.1:8003=127.0.0.1:83",
					    ENGINE_FWD_STORED, msg),
		     0, "%s", msg);
	cr_assert_eq(es.nfwd, 3);
	cr_assert_eq(
		engine_sup_forward_add(&es, "tcp:127.0.0.1:1=127.0.0.1:83", ENGINE_FWD_STORED, msg),
		-EADDRINUSE);
	cr_assert_str_eq(msg, "listen 127.0.0.1:1: address in use");
	cr_assert_eq(es.nfwd, 3);
	cr_assert_eq(engine_sup_forward_add(&es, "tcp:127.0.0.1:8003=127.0.0.1:83",
					    ENGINE_FWD_STORED, msg),
		     -EEXIST);
	cr_assert_eq(engine_sup_forward_rm(&es, 2), 0);
	cr_assert_eq(es.nfwd, 2);
	cr_assert_eq(P.n, 2);
}

Test(engine_sup, loss_schedules_a_bounded_restart_and_state_is_pushed_back)
{
	uint64_t t0;

	es.bo = (struct backoff){ .base_ms = 100, .max_ms = 400 };
	cr_assert_eq(engine_sup_forward_define(&es, "tcp:127.0.0.1:8100=127.0.0.1:80",
					       ENGINE_FWD_CONFIG),
		     0);
	cr_assert_eq(engine_sup_start(&es), 0, "%s", es.last_error);
	cr_assert_eq(P.n, 1);
	/* the "engine" dies: its table is gone and the connection closes */
	pthread_mutex_lock(&P.mu);
	P.n = 0;
	pthread_mutex_unlock(&P.mu);
	P.drop_next = true;
	t0 = clock_system.now_ms(&clock_system);
	{
		cJSON *req = cJSON_CreateObject(), *r = NULL;

		cJSON_AddStringToObject(req, "cmd", "hello");
		cr_assert_eq(engine_sup_call(&es, req, &r), -EPIPE);
		cJSON_Delete(req);
		cJSON_Delete(r);
	}
	cr_assert_eq(es.state, ENGINE_DOWN);
	cr_assert_eq(es.fwd[0].id, 0);
	cr_assert(es.restart_at_ms >= t0 + 50 && es.restart_at_ms <= t0 + 100 + 50,
		  "restart in %lld ms", (long long)(es.restart_at_ms - t0));
	/* calls while down are refused at once */
	{
		char msg[ENGINE_ERR_MAX];

		cr_assert_eq(engine_sup_forward_add(&es, "tcp:127.0.0.1:8101=127.0.0.1:80",
						    ENGINE_FWD_STORED, msg),
			     -NATX_E_UNAVAILABLE);
	}
	for (int i = 0; i < 100 && es.state != ENGINE_UP; i++) {
		usleep(10000);
		engine_sup_tick(&es);
	}
	cr_assert_eq(es.state, ENGINE_UP);
	cr_assert_eq(es.restarts, 1);
	cr_assert_eq(P.n, 1, "forward not pushed back");
	cr_assert_str_eq(P.specs[0], "tcp:127.0.0.1:8100=127.0.0.1:80");
	cr_assert_neq(es.fwd[0].id, 0);
}

Test(engine_sup, eof_on_the_socket_marks_it_down)
{
	cr_assert_eq(engine_sup_start(&es), 0, "%s", es.last_error);
	P.drop_next = true;
	{
		/* a request the peer drops, sent raw so only engine_sup_readable sees the EOF */
		static const char line[] = "{\"v\":1,\"id\":99,\"cmd\":\"hello\"}\n";

		cr_assert_eq(write(es.fd, line, sizeof(line) - 1), (ssize_t)sizeof(line) - 1);
	}
	for (int i = 0; i < 100 && es.state == ENGINE_UP; i++) {
		struct pollfd pf = { .fd = es.fd, .events = POLLIN };

		if (poll(&pf, 1, 20) > 0) {
			engine_sup_readable(&es);
		}
	}
	cr_assert_eq(es.state, ENGINE_DOWN);
	cr_assert_str_eq(es.last_error, "engine closed its control socket");
}

Test(engine_sup, silent_engine_times_out)
{
	cr_assert_eq(engine_sup_start(&es), 0, "%s", es.last_error);
	P.mute = true;
	es.timeout_ms = 200;
	{
		cJSON *req = cJSON_CreateObject(), *r = NULL;

		cJSON_AddStringToObject(req, "cmd", "stats");
		cr_assert_eq(engine_sup_call(&es, req, &r), -ETIMEDOUT);
		cr_assert_null(r);
		cJSON_Delete(req);
	}
}

Test(engine_sup, missing_binary_is_reported_and_retried_later)
{
	struct engine_sup other;

	engine_sup_init(&other, "/nonexistent/natx-engine", "/tmp/natx-ctl-none.sock",
			&clock_system);
	cr_assert_neq(engine_sup_start(&other), 0);
	cr_assert_eq(other.state, ENGINE_DOWN);
	cr_assert(strstr(other.last_error, "cannot run /nonexistent/natx-engine"), "%s",
		  other.last_error);
	cr_assert_geq(engine_sup_timeout_ms(&other), 0);
	engine_sup_stop(&other, false);
}

Test(engine_sup, forwards_that_failed_to_start_are_retried)
{
	cr_assert_eq(
		engine_sup_forward_define(&es, "tcp:127.0.0.1:1=127.0.0.1:2", ENGINE_FWD_CONFIG),
		0);
	cr_assert_eq(engine_sup_start(&es), 0, "%s", es.last_error);
	cr_assert_eq(es.fwd[0].id, 0);
	cr_assert_str_eq(es.fwd[0].error, "listen 127.0.0.1:1: address in use");
	cr_assert_gt(engine_sup_timeout_ms(&es), 0);
	/* not before the retry time */
	P.port1_free = true;
	engine_sup_tick(&es);
	cr_assert_eq(es.fwd[0].id, 0);
	es.fwd_retry_at_ms = 0;
	cr_assert_eq(engine_sup_timeout_ms(&es), 0);
	engine_sup_tick(&es);
	cr_assert_neq(es.fwd[0].id, 0);
	cr_assert_str_eq(es.fwd[0].error, "");
	cr_assert_eq(P.n, 1);
}

Test(engine_sup, p2p_listen_multiaddr_to_hostport)
{
	static const char *const bad[] = {
		"",
		"/ip4/127.0.0.1/tcp/0",
		"/ip4/127.0.0.1/tcp/65536",
		"/ip4/127.0.0.1/tcp/",
		"/ip4/127.0.0.1/tcp/12x",
		"/ip4/127.0.0.1/tcp/-1",
		"/ip4//tcp/80",
		"/ip4/1.2.3.4/udp/80",
		"/dns4/example.com/tcp/80",
		"/ip4/1.2.3.4/p2p/x/tcp/80",
		"127.0.0.1:80",
	};
	char out[64];

	cr_assert_eq(engine_sup_p2p_listen_hostport("/ip4/127.0.0.1/tcp/4100", out, sizeof(out)),
		     0);
	cr_assert_str_eq(out, "127.0.0.1:4100");
	cr_assert_eq(engine_sup_p2p_listen_hostport("/ip6/::1/tcp/65535", out, sizeof(out)), 0);
	cr_assert_str_eq(out, "[::1]:65535");
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		cr_assert_eq(engine_sup_p2p_listen_hostport(bad[i], out, sizeof(out)), -EINVAL,
			     "%s", bad[i]);
	}
	/* too small an output is refused, not truncated */
	cr_assert_eq(engine_sup_p2p_listen_hostport("/ip4/127.0.0.1/tcp/4100", out, 8), -EINVAL);
}
