// SPDX-License-Identifier: MIT
/* natx-engine supervision (control/engine_sup.h). */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "engine_sup.h"
#include "natx/err.h"
#include "natx/log.h"
#include "tunnel_cfg.h"
#include "tunnel_sup.h"

#define MOD "sup"

void engine_sup_init(struct engine_sup *es, const char *path, const char *sock,
		     const struct clock *clk)
{
	memset(es, 0, sizeof(*es));
	snprintf(es->path, sizeof(es->path), "%s", path);
	snprintf(es->sock, sizeof(es->sock), "%s", sock);
	es->clk = clk;
	es->fd = -1;
	es->timeout_ms = 5000;
	es->drain_ms = 2000;
	es->state = ENGINE_DOWN;
	backoff_init(&es->bo, 200, 30000);
	ctl_rx_init(&es->rx);
}

const char *engine_sup_state_name(enum engine_state s)
{
	return s == ENGINE_UP ? "up" : "down";
}

/* engine_sup_map - engine error code (ENGINE-CTL contract) to -errno/-NATX_E_*. */
static int engine_sup_map(const char *code)
{
	static const struct {
		const char *code;
		int err;
	} map[] = {
		{ "bad_request", -NATX_E_PROTO },
		{ "bad_version", -EPROTONOSUPPORT },
		{ "unknown_cmd", -EOPNOTSUPP },
		{ "too_big", -NATX_E_TOO_BIG },
		{ "bad_spec", -EINVAL },
		{ "addr_in_use", -EADDRINUSE },
		{ "resolve_failed", -EADDRNOTAVAIL },
		{ "not_found", -ENOENT },
		{ "exists", -EEXIST },
	};

	for (unsigned i = 0; code && i < sizeof(map) / sizeof(map[0]); i++) {
		if (!strcmp(code, map[i].code)) {
			return map[i].err;
		}
	}
	return -EIO;
}

const char *engine_sup_error_text(const cJSON *reply, const char *def)
{
	const cJSON *e = cJSON_GetObjectItemCaseSensitive(reply, "error");
	const cJSON *m = cJSON_GetObjectItemCaseSensitive(e, "message");

	return cJSON_IsString(m) ? m->valuestring : def;
}

static void engine_sup_schedule(struct engine_sup *es)
{
	uint64_t d = backoff_next(&es->bo, es->clk->rand32(es->clk));

	es->restart_at_ms = es->clk->now_ms(es->clk) + d;
	pr_info(MOD, "next engine start in %llu ms", (unsigned long long)d);
}

/* engine_sup_down - forget the connection; the forwards stay desired, their ids are stale. */
static void engine_sup_down(struct engine_sup *es, const char *why)
{
	if (es->fd >= 0) {
		close(es->fd);
		es->fd = -1;
	}
	if (es->state == ENGINE_UP) {
		pr_warn(MOD, "engine pid %ld lost: %s", es->pid, why);
	}
	snprintf(es->last_error, sizeof(es->last_error), "%s", why);
	es->state = ENGINE_DOWN;
	ctl_rx_cleanup(&es->rx);
	for (unsigned i = 0; i < es->nfwd; i++) {
		es->fwd[i].id = 0;
	}
	for (unsigned i = 0; i < es->np2p; i++) {
		es->p2p[i].id = 0;
	}
	engine_sup_schedule(es);
}

/* engine_sup_match - parse @line; the reply when its id is @want, else NULL (dropped). */
static cJSON *engine_sup_match(const char *line, size_t len, double want)
{
	cJSON *r = cJSON_ParseWithLength(line, len);
	const cJSON *id = cJSON_GetObjectItemCaseSensitive(r, "id");

	if (cJSON_IsNumber(id) && id->valuedouble == want) {
		return r;
	}
	cJSON_Delete(r);
	return NULL;
}

int engine_sup_call(struct engine_sup *es, cJSON *req, cJSON **reply)
{
	uint64_t deadline = es->clk->now_ms(es->clk) + es->timeout_ms;
	cJSON *got = NULL;
	double want;
	const cJSON *ok, *e;
	char *line;
	size_t len, off = 0;

	*reply = NULL;
	if (es->fd < 0) {
		return -NATX_E_UNAVAILABLE;
	}
	want = (double)++es->next_id;
	cJSON_DeleteItemFromObjectCaseSensitive(req, "v");
	cJSON_DeleteItemFromObjectCaseSensitive(req, "id");
	if (!cJSON_AddNumberToObject(req, "v", CTL_PROTO_VERSION) ||
	    !cJSON_AddNumberToObject(req, "id", want)) {
		return -ENOMEM;
	}
	line = ctl_reply_line(req, &len);
	if (!line) {
		return -ENOMEM;
	}
	while (off < len) {
		ssize_t n = send(es->fd, line + off, len - off, MSG_NOSIGNAL);

		if (n < 0 && errno == EINTR) {
			continue;
		}
		if (n < 0 && errno == EAGAIN) {
			struct pollfd p = { .fd = es->fd, .events = POLLOUT };

			poll(&p, 1, 100);
			if (es->clk->now_ms(es->clk) >= deadline) {
				free(line);
				return -ETIMEDOUT;
			}
			continue;
		}
		if (n <= 0) {
			free(line);
			engine_sup_down(es, "control socket write failed");
			return -EPIPE;
		}
		off += (size_t)n;
	}
	free(line);
	while (!got) {
		uint64_t now = es->clk->now_ms(es->clk);
		struct pollfd p = { .fd = es->fd, .events = POLLIN };
		char buf[4096], *rl;
		size_t llen;
		ssize_t n;

		/* Lines already queued first: replies come in order, one per request. */
		while (!got && (rl = ctl_rx_line(&es->rx, &llen))) {
			got = engine_sup_match(rl, llen, want);
			free(rl);
		}
		if (got) {
			break;
		}
		if (now >= deadline) {
			pr_warn(MOD, "engine did not answer within %u ms", es->timeout_ms);
			return -ETIMEDOUT;
		}
		if (poll(&p, 1, (int)(deadline - now)) <= 0) {
			continue;
		}
		n = recv(es->fd, buf, sizeof(buf), 0);
		if (n < 0 && (errno == EINTR || errno == EAGAIN)) {
			continue;
		}
		if (n <= 0) {
			engine_sup_down(es, n ? "control socket read failed" :
						"engine closed its control socket");
			return -EPIPE;
		}
		if (ctl_rx_append(&es->rx, buf, (size_t)n)) {
			engine_sup_down(es, "engine reply too long");
			return -EPIPE;
		}
	}
	*reply = got;
	ok = cJSON_GetObjectItemCaseSensitive(got, "ok");
	if (cJSON_IsTrue(ok)) {
		return 0;
	}
	e = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(got, "error"),
					     "code");
	return engine_sup_map(cJSON_IsString(e) ? e->valuestring : NULL);
}

/* engine_sup_simple - call @cmd with one optional string/number argument. */
static int engine_sup_simple(struct engine_sup *es, const char *cmd, const char *skey,
			     const char *sval, const char *nkey, double nval, cJSON **reply)
{
	cJSON *req = cJSON_CreateObject();
	int rc;

	if (!req || !cJSON_AddStringToObject(req, "cmd", cmd) ||
	    (skey && !cJSON_AddStringToObject(req, skey, sval)) ||
	    (nkey && !cJSON_AddNumberToObject(req, nkey, nval))) {
		cJSON_Delete(req);
		return -ENOMEM;
	}
	rc = engine_sup_call(es, req, reply);
	cJSON_Delete(req);
	return rc;
}

static int engine_sup_connect(struct engine_sup *es)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd;

	if (strlen(es->sock) >= sizeof(sa.sun_path)) {
		return -ENAMETOOLONG;
	}
	strcpy(sa.sun_path, es->sock);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		return -errno;
	}
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa))) {
		int e = -errno;

		close(fd);
		return e;
	}
	es->fd = fd;
	es->conn_gen++;
	return 0;
}

/* engine_sup_hello - ask who is there; fills the hello fields. */
static int engine_sup_hello(struct engine_sup *es)
{
	cJSON *r = NULL;
	const cJSON *it;
	int rc = engine_sup_simple(es, "hello", NULL, NULL, NULL, 0, &r);

	if (rc) {
		cJSON_Delete(r);
		return rc;
	}
	it = cJSON_GetObjectItemCaseSensitive(r, "version");
	snprintf(es->version, sizeof(es->version), "%s",
		 cJSON_IsString(it) ? it->valuestring : "?");
	it = cJSON_GetObjectItemCaseSensitive(r, "pid");
	es->pid = cJSON_IsNumber(it) ? (long)it->valuedouble : 0;
	it = cJSON_GetObjectItemCaseSensitive(r, "shards");
	es->eng_shards = cJSON_IsNumber(it) ? (unsigned)it->valuedouble : 0;
	it = cJSON_GetObjectItemCaseSensitive(r, "started_at");
	es->started_at = cJSON_IsNumber(it) ? (uint64_t)it->valuedouble : 0;
	cJSON_Delete(r);
	return 0;
}

static int engine_sup_spawn(struct engine_sup *es)
{
	char shards[16], *argv[14];
	int argc = 0;
	pid_t pid;

	if (access(es->path, X_OK)) {
		int e = -errno;

		snprintf(es->last_error, sizeof(es->last_error), "cannot run %.150s: %s", es->path,
			 strerror(-e));
		return e;
	}
	argv[argc++] = es->path;
	argv[argc++] = "--ctl";
	argv[argc++] = es->sock;
	if (es->shards) {
		snprintf(shards, sizeof(shards), "%u", es->shards);
		argv[argc++] = "--shards";
		argv[argc++] = shards;
	}
	if (es->log_filter[0]) {
		argv[argc++] = "--log";
		argv[argc++] = es->log_filter;
	}
	if (es->p2p_key_file[0]) {
		argv[argc++] = "--p2p-key-file";
		argv[argc++] = es->p2p_key_file;
		argv[argc++] = "--p2p-listen";
		argv[argc++] = es->p2p_listen;
	}
	argv[argc] = NULL;
	pid = fork();
	if (pid < 0) {
		return -errno;
	}
	if (pid == 0) {
		sigset_t all;

		/* Own session: a signal to natxd's process group (Ctrl-C, kill -- -PGID) spares it. */
		setsid();
		sigemptyset(&all);
		sigprocmask(SIG_SETMASK, &all, NULL);
		signal(SIGPIPE, SIG_DFL);
		execv(es->path, argv);
		_exit(127);
	}
	es->child = pid;
	pr_info(MOD, "started %s (pid %d) on %s", es->path, (int)pid, es->sock);
	return 0;
}

/* engine_sup_wait_socket - connect to the spawned engine, bounded, watching for its death. */
static int engine_sup_wait_socket(struct engine_sup *es)
{
	uint64_t deadline = es->clk->now_ms(es->clk) + ENGINE_START_WAIT_MS;
	int rc = -ETIMEDOUT;

	while (es->clk->now_ms(es->clk) < deadline) {
		int status;

		rc = engine_sup_connect(es);
		if (!rc) {
			return 0;
		}
		if (es->child && waitpid(es->child, &status, WNOHANG) == es->child) {
			snprintf(es->last_error, sizeof(es->last_error),
				 "engine exited at startup (%s %d)",
				 WIFEXITED(status) ? "status" : "signal",
				 WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
			es->child = 0;
			return -ECHILD;
		}
		usleep(20000);
	}
	snprintf(es->last_error, sizeof(es->last_error), "engine socket %.150s not ready: %s",
		 es->sock, strerror(-rc));
	return rc;
}

/* engine_sup_fwd_id - forward id from an add reply ({"forward":{"id"}}) or an exists error. */
static unsigned long engine_sup_fwd_id(const cJSON *r)
{
	const cJSON *f = cJSON_GetObjectItemCaseSensitive(r, "forward");
	const cJSON *id = cJSON_GetObjectItemCaseSensitive(f, "id");

	if (!cJSON_IsNumber(id)) {
		id = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(r, "error"),
						      "id");
	}
	return cJSON_IsNumber(id) && id->valuedouble > 0 ? (unsigned long)id->valuedouble : 0;
}

/* engine_sup_push - run forward @i in the engine. 0 or the engine's error (recorded). */
static int engine_sup_push(struct engine_sup *es, unsigned i)
{
	struct engine_fwd *f = &es->fwd[i];
	cJSON *r = NULL;
	int rc;

	if (tunnel_spec_is(f->spec)) {
		return tunnel_sup_push(es, f); /* a tunnel engine object (tunnel_cfg.h) */
	}
	rc = engine_sup_simple(es, "forward.add", "spec", f->spec, NULL, 0, &r);

	if (rc == 0 || rc == -EEXIST) {
		f->id = engine_sup_fwd_id(r);
		f->error[0] = '\0';
		rc = f->id ? 0 : -EIO;
		if (rc) {
			snprintf(f->error, sizeof(f->error), "engine gave no forward id");
		}
	} else {
		const char *why = engine_sup_error_text(r, natx_strerror(rc));

		/* Retries of a failed forward repeat the warning only when the reason changes. */
		if (strncmp(f->error, why, sizeof(f->error) - 1)) {
			pr_warn(MOD, "forward %s: %s", f->spec, why);
		}
		snprintf(f->error, sizeof(f->error), "%s", why);
	}
	cJSON_Delete(r);
	return rc;
}

/* engine_sup_stun_push - send the wanted STUN responder state. 0 or the engine's error. */
static int engine_sup_stun_push(struct engine_sup *es)
{
	cJSON *req = cJSON_CreateObject(), *r = NULL;
	int rc;

	if (!req ||
	    !cJSON_AddStringToObject(req, "cmd", es->stun_want ? "stun.set" : "stun.stop") ||
	    (es->stun_want && (!cJSON_AddStringToObject(req, "listen", es->stun_listen) ||
			       !cJSON_AddNumberToObject(req, "rate", es->stun_rate) ||
			       !cJSON_AddNumberToObject(req, "burst", es->stun_burst)))) {
		cJSON_Delete(req);
		return -ENOMEM;
	}
	rc = engine_sup_call(es, req, &r);
	cJSON_Delete(req);
	if (rc && rc != -NATX_E_UNAVAILABLE && rc != -EPIPE && rc != -ETIMEDOUT) {
		snprintf(es->stun_error, sizeof(es->stun_error), "%s",
			 engine_sup_error_text(r, natx_strerror(rc)));
		pr_warn(MOD, "engine STUN responder on %s: %s", es->stun_listen, es->stun_error);
	} else if (!rc) {
		es->stun_error[0] = '\0';
	}
	cJSON_Delete(r);
	return rc;
}

int engine_sup_stun_set(struct engine_sup *es, const char *listen, unsigned rate, unsigned burst)
{
	es->stun_decided = true;
	es->stun_want = listen != NULL;
	snprintf(es->stun_listen, sizeof(es->stun_listen), "%s", listen ? listen : "");
	es->stun_rate = rate;
	es->stun_burst = burst;
	es->stun_error[0] = '\0';
	return es->state == ENGINE_UP ? engine_sup_stun_push(es) : -NATX_E_UNAVAILABLE;
}

/*
 * engine_sup_reconcile - make the engine run exactly the desired forwards: match running ones
 * by spec, add missing ones, remove ones nobody wants (their open flows continue).
 */
static int engine_sup_reconcile(struct engine_sup *es)
{
	cJSON *r = NULL;
	const cJSON *list, *it;
	int rc = engine_sup_simple(es, "forward.list", NULL, NULL, NULL, 0, &r);

	if (rc) {
		cJSON_Delete(r);
		return rc;
	}
	list = cJSON_GetObjectItemCaseSensitive(r, "forwards");
	cJSON_ArrayForEach(it, list)
	{
		const cJSON *spec = cJSON_GetObjectItemCaseSensitive(it, "spec");
		const cJSON *id = cJSON_GetObjectItemCaseSensitive(it, "id");
		int i;

		if (!cJSON_IsString(spec) || !cJSON_IsNumber(id)) {
			continue;
		}
		i = engine_sup_forward_find(es, spec->valuestring, 0);
		if (i >= 0) {
			es->fwd[i].id = (unsigned long)id->valuedouble;
			es->fwd[i].error[0] = '\0';
		}
	}
	for (unsigned i = 0; i < es->nfwd && es->state == ENGINE_UP; i++) {
		if (!es->fwd[i].id) {
			engine_sup_push(es, i);
		}
	}
	cJSON_ArrayForEach(it, list)
	{
		const cJSON *id = cJSON_GetObjectItemCaseSensitive(it, "id");
		const cJSON *spec = cJSON_GetObjectItemCaseSensitive(it, "spec");
		cJSON *rr = NULL;

		if (!cJSON_IsNumber(id) || !cJSON_IsString(spec) || es->state != ENGINE_UP ||
		    engine_sup_forward_find(es, NULL, (unsigned long)id->valuedouble) >= 0) {
			continue;
		}
		pr_info(MOD, "removing forward %s that natxd no longer wants", spec->valuestring);
		/* By spec: a request's "id" member is its request id, so it cannot name a forward. */
		engine_sup_simple(es, "forward.rm", "spec", spec->valuestring, NULL, 0, &rr);
		cJSON_Delete(rr);
	}
	cJSON_Delete(r);
	if (es->stun_decided && es->state == ENGINE_UP) {
		engine_sup_stun_push(es);
	}
	if (es->state == ENGINE_UP) {
		tunnel_sup_prune(es);
	}
	return es->state == ENGINE_UP ? 0 : -EPIPE;
}

/* ---- libp2p services (p2p.expose / p2p.forward) ------------------------------------------- */

int engine_sup_p2p_listen_hostport(const char *ma, char *out, size_t cap)
{
	const char *a = ma + 5, *t;
	unsigned long port;
	size_t alen;
	char *end;
	bool v6;
	int n;

	if (!strncmp(ma, "/ip4/", 5)) {
		v6 = false;
	} else if (!strncmp(ma, "/ip6/", 5)) {
		v6 = true;
	} else {
		return -EINVAL;
	}
	t = strstr(a, "/tcp/");
	if (!t || t == a || memchr(a, '/', (size_t)(t - a))) {
		return -EINVAL;
	}
	alen = (size_t)(t - a);
	errno = 0;
	port = strtoul(t + 5, &end, 10);
	if (errno || *end || end == t + 5 || t[5] < '0' || t[5] > '9' || !port || port > 65535) {
		return -EINVAL;
	}
	n = snprintf(out, cap, v6 ? "[%.*s]:%lu" : "%.*s:%lu", (int)alen, a, port);
	return n < 0 || (size_t)n >= cap ? -EINVAL : 0;
}

int engine_sup_p2p_find(const struct engine_sup *es, uint64_t key, unsigned long id)
{
	for (unsigned i = 0; i < es->np2p; i++) {
		if ((key && es->p2p[i].key == key) || (!key && id && es->p2p[i].id == id)) {
			return (int)i;
		}
	}
	return -1;
}

/* engine_sup_p2p_match - index of the desired service that engine entry @it is, or -1. */
static int engine_sup_p2p_match(const struct engine_sup *es, const cJSON *it)
{
	const cJSON *kind = cJSON_GetObjectItemCaseSensitive(it, "kind");
	const cJSON *proto = cJSON_GetObjectItemCaseSensitive(it, "protocol");
	const cJSON *target = cJSON_GetObjectItemCaseSensitive(it, "target");
	const cJSON *listen = cJSON_GetObjectItemCaseSensitive(it, "listen");
	const cJSON *peer = cJSON_GetObjectItemCaseSensitive(it, "peer");
	char hp[ENGINE_P2P_ADDR_MAX];
	bool fwd;

	if (!cJSON_IsString(kind) || !cJSON_IsString(proto)) {
		return -1;
	}
	fwd = !strcmp(kind->valuestring, "forward");
	if (fwd && (!cJSON_IsString(listen) || !cJSON_IsString(peer) ||
		    engine_sup_p2p_listen_hostport(listen->valuestring, hp, sizeof(hp)))) {
		return -1;
	}
	if (!fwd && !cJSON_IsString(target)) {
		return -1;
	}
	for (unsigned i = 0; i < es->np2p; i++) {
		const struct engine_p2p *p = &es->p2p[i];

		if (p->forward != fwd || strcmp(p->protocol, proto->valuestring)) {
			continue;
		}
		if (fwd ? !strcmp(p->addr, hp) && !strcmp(p->peer, peer->valuestring) :
			  !strcmp(p->addr, target->valuestring)) {
			return (int)i;
		}
	}
	return -1;
}

/* engine_sup_p2p_fail - record why service @i is not running; log when the reason changed. */
static void engine_sup_p2p_fail(struct engine_sup *es, unsigned i, const char *why)
{
	struct engine_p2p *p = &es->p2p[i];

	if (strncmp(p->error, why, sizeof(p->error) - 1)) {
		pr_warn(MOD, "p2p %s %s %s: %s", p->forward ? "forward" : "expose", p->protocol,
			p->addr, why);
	}
	snprintf(p->error, sizeof(p->error), "%s", why);
	p->id = 0;
}

/* engine_sup_p2p_push - run service @i in the engine. 0 or the engine's error (recorded). */
/* engine_sup_p2p_alts - "alt_addrs": the space-separated multiaddrs of @alt. false: no memory. */
static bool engine_sup_p2p_alts(cJSON *req, const char *alt)
{
	cJSON *a = cJSON_AddArrayToObject(req, "alt_addrs");
	char buf[ENGINE_P2P_ALT_LEN], *save, *ma;

	if (!a) {
		return false;
	}
	snprintf(buf, sizeof(buf), "%s", alt);
	for (ma = strtok_r(buf, " ", &save); ma; ma = strtok_r(NULL, " ", &save)) {
		if (!cJSON_AddItemToArray(a, cJSON_CreateString(ma))) {
			return false;
		}
	}
	return true;
}

static int engine_sup_p2p_push(struct engine_sup *es, unsigned i)
{
	struct engine_p2p *p = &es->p2p[i];
	cJSON *req = cJSON_CreateObject(), *r = NULL;
	const cJSON *sid;
	int rc;

	if (!es->p2p_key_file[0]) {
		engine_sup_p2p_fail(es, i, "libp2p is off");
		return -NATX_E_UNAVAILABLE;
	}
	if (!req ||
	    !cJSON_AddStringToObject(req, "cmd", p->forward ? "p2p.forward" : "p2p.expose") ||
	    !cJSON_AddStringToObject(req, "protocol", p->protocol) ||
	    !cJSON_AddStringToObject(req, p->forward ? "listen" : "target", p->addr) ||
	    (p->forward && !cJSON_AddStringToObject(req, "addr", p->peer)) ||
	    (p->flow && !cJSON_AddBoolToObject(req, "flow", true)) ||
	    (p->flow && p->alt[0] && !engine_sup_p2p_alts(req, p->alt))) {
		cJSON_Delete(req);
		return -ENOMEM;
	}
	rc = engine_sup_call(es, req, &r);
	cJSON_Delete(req);
	sid = cJSON_GetObjectItemCaseSensitive(r, "service_id");
	if (!rc && cJSON_IsNumber(sid) && sid->valuedouble >= 1) {
		p->id = (unsigned long)sid->valuedouble;
		p->error[0] = '\0';
	} else {
		engine_sup_p2p_fail(es, i,
				    rc ? engine_sup_error_text(r, natx_strerror(rc)) :
					 "engine gave no service id");
		rc = rc ? rc : -EIO;
	}
	cJSON_Delete(r);
	return rc;
}

/* engine_sup_p2p_close - p2p.close of engine service @id (its open streams continue). */
static int engine_sup_p2p_close(struct engine_sup *es, unsigned long id)
{
	cJSON *r = NULL;
	int rc = engine_sup_simple(es, "p2p.close", NULL, NULL, "fwd_id", (double)id, &r);

	cJSON_Delete(r);
	return rc;
}

/*
 * engine_sup_p2p_reconcile - make the engine run exactly the desired libp2p services: match
 * running ones by kind, protocol and address, close the ones nobody wants (first, so an
 * unwanted expose does not hold a protocol), add the missing ones.
 */
static int engine_sup_p2p_reconcile(struct engine_sup *es)
{
	const cJSON *list, *it;
	cJSON *r = NULL;
	int rc;

	if (!es->p2p_key_file[0]) {
		for (unsigned i = 0; i < es->np2p; i++) {
			engine_sup_p2p_fail(es, i, "libp2p is off");
		}
		return 0;
	}
	rc = engine_sup_simple(es, "p2p.ls", NULL, NULL, NULL, 0, &r);
	if (rc) {
		for (unsigned i = 0; i < es->np2p && es->state == ENGINE_UP; i++) {
			engine_sup_p2p_fail(es, i, engine_sup_error_text(r, natx_strerror(rc)));
		}
		cJSON_Delete(r);
		return rc;
	}
	list = cJSON_GetObjectItemCaseSensitive(r, "services");
	cJSON_ArrayForEach(it, list)
	{
		const cJSON *id = cJSON_GetObjectItemCaseSensitive(it, "id");
		int i = engine_sup_p2p_match(es, it);
		unsigned long eid;

		if (!cJSON_IsNumber(id) || id->valuedouble < 1 || es->state != ENGINE_UP) {
			continue;
		}
		eid = (unsigned long)id->valuedouble;
		if (i >= 0 && (!es->p2p[i].id || es->p2p[i].id == eid)) {
			es->p2p[i].id = eid;
			es->p2p[i].error[0] = '\0';
			continue;
		}
		pr_info(MOD, "closing p2p service %lu that natxd does not want", eid);
		engine_sup_p2p_close(es, eid);
	}
	cJSON_Delete(r);
	for (unsigned i = 0; i < es->np2p && es->state == ENGINE_UP; i++) {
		if (!es->p2p[i].id) {
			engine_sup_p2p_push(es, i);
		}
	}
	return es->state == ENGINE_UP ? 0 : -EPIPE;
}

int engine_sup_p2p_define(struct engine_sup *es, const struct engine_p2p *p)
{
	if (engine_sup_p2p_find(es, p->key, 0) >= 0) {
		return -EEXIST;
	}
	if (es->np2p == ENGINE_P2P_MAX) {
		return -ENOSPC;
	}
	es->p2p[es->np2p++] = *p;
	return 0;
}

int engine_sup_p2p_rm(struct engine_sup *es, unsigned i)
{
	unsigned long id = es->p2p[i].id;

	memmove(&es->p2p[i], &es->p2p[i + 1], sizeof(es->p2p[0]) * (es->np2p - i - 1));
	es->np2p--;
	return id && es->state == ENGINE_UP ? engine_sup_p2p_close(es, id) : 0;
}

int engine_sup_sync(struct engine_sup *es)
{
	int rc;

	if (es->state != ENGINE_UP) {
		return -NATX_E_UNAVAILABLE;
	}
	rc = engine_sup_reconcile(es);
	if (es->state == ENGINE_UP) {
		int r2 = engine_sup_p2p_reconcile(es);

		rc = rc ? rc : r2;
	}
	return rc;
}

int engine_sup_start(struct engine_sup *es)
{
	int rc;

	if (es->state == ENGINE_UP) {
		return 0;
	}
	es->attached = false;
	rc = engine_sup_connect(es);
	if (rc == 0) {
		es->state = ENGINE_UP; /* provisional, so engine_sup_call talks */
		rc = engine_sup_hello(es);
		if (rc) {
			es->state = ENGINE_DOWN;
			close(es->fd);
			es->fd = -1;
			pr_warn(MOD, "%s answers but not as an engine (%s); starting a new one",
				es->sock, natx_strerror(rc));
		} else {
			es->attached = true;
			pr_info(MOD, "reattached to running engine pid %ld (version %s)", es->pid,
				es->version);
		}
	}
	if (!es->attached) {
		if (rc == -ECONNREFUSED || rc) {
			unlink(es->sock); /* stale socket of a dead engine */
		}
		rc = engine_sup_spawn(es);
		if (!rc) {
			rc = engine_sup_wait_socket(es);
		}
		if (!rc) {
			es->state = ENGINE_UP;
			rc = engine_sup_hello(es);
		}
		if (rc) {
			if (es->child) {
				kill(es->child, SIGKILL);
				waitpid(es->child, NULL, 0);
				es->child = 0;
			}
			if (!es->last_error[0] || es->state == ENGINE_UP) {
				snprintf(es->last_error, sizeof(es->last_error), "engine start: %s",
					 natx_strerror(rc));
			}
			pr_err(MOD, "%s", es->last_error);
			es->state = ENGINE_DOWN;
			if (es->fd >= 0) {
				close(es->fd);
				es->fd = -1;
			}
			engine_sup_schedule(es);
			return rc;
		}
	}
	es->up_since_ms = es->clk->now_ms(es->clk);
	es->fwd_retry_at_ms = es->up_since_ms + ENGINE_FWD_RETRY_MS;
	es->last_error[0] = '\0';
	fcntl(es->fd, F_SETFL, fcntl(es->fd, F_GETFL) | O_NONBLOCK);
	rc = engine_sup_reconcile(es);
	if (rc && es->state == ENGINE_UP) {
		pr_warn(MOD, "reconcile: %s", natx_strerror(rc));
	}
	if (es->state == ENGINE_UP && (es->np2p || es->p2p_key_file[0])) {
		rc = engine_sup_p2p_reconcile(es);
		if (rc && es->state == ENGINE_UP) {
			pr_warn(MOD, "p2p reconcile: %s", natx_strerror(rc));
		}
	}
	return es->state == ENGINE_UP ? 0 : -EPIPE;
}

void engine_sup_tick(struct engine_sup *es)
{
	uint64_t now = es->clk->now_ms(es->clk);

	if (es->state == ENGINE_UP) {
		if (es->bo.attempt && now - es->up_since_ms >= ENGINE_STABLE_MS) {
			backoff_reset(&es->bo);
		}
		if (now >= es->fwd_retry_at_ms) {
			es->fwd_retry_at_ms = now + ENGINE_FWD_RETRY_MS;
			for (unsigned i = 0; i < es->nfwd && es->state == ENGINE_UP; i++) {
				if (!es->fwd[i].id && engine_sup_push(es, i) == 0) {
					pr_info(MOD, "forward %s is running now", es->fwd[i].spec);
				}
			}
			for (unsigned i = 0; i < es->np2p && es->state == ENGINE_UP; i++) {
				if (!es->p2p[i].id && engine_sup_p2p_push(es, i) == 0) {
					pr_info(MOD, "p2p service %s %s is running now",
						es->p2p[i].protocol, es->p2p[i].addr);
				}
			}
		}
		tunnel_paid_tick(es);
		return;
	}
	if (now >= es->restart_at_ms) {
		es->restarts++;
		engine_sup_start(es);
	}
}

int engine_sup_timeout_ms(const struct engine_sup *es)
{
	uint64_t now = es->clk->now_ms(es->clk);

	if (es->state == ENGINE_UP) {
		int paid = tunnel_paid_timeout_ms(es); /* paid tunnels: a sync each second */

		for (unsigned i = 0; i < es->nfwd + es->np2p; i++) {
			if (i < es->nfwd ? !es->fwd[i].id : !es->p2p[i - es->nfwd].id) {
				int t = es->fwd_retry_at_ms > now ?
						(int)(es->fwd_retry_at_ms - now) :
						0;

				return paid >= 0 && paid < t ? paid : t;
			}
		}
		if (paid >= 0) {
			return paid;
		}
		return es->bo.attempt ? ENGINE_STABLE_MS : -1;
	}
	return es->restart_at_ms > now ? (int)(es->restart_at_ms - now) : 0;
}

void engine_sup_readable(struct engine_sup *es)
{
	char buf[4096];
	ssize_t n;

	if (es->fd < 0) {
		return;
	}
	/* The engine sends nothing unasked; anything here is EOF or noise to drop. */
	n = recv(es->fd, buf, sizeof(buf), MSG_DONTWAIT);
	if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
		engine_sup_down(es, "engine closed its control socket");
	}
}

void engine_sup_child_exited(struct engine_sup *es, pid_t pid, int status)
{
	char why[96];

	if (pid != es->child) {
		return;
	}
	es->child = 0;
	snprintf(why, sizeof(why), "engine pid %d exited (%s %d)", (int)pid,
		 WIFEXITED(status) ? "status" : "signal",
		 WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
	if (es->state == ENGINE_UP) {
		engine_sup_down(es, why);
	} else {
		snprintf(es->last_error, sizeof(es->last_error), "%s", why);
	}
}

int engine_sup_forward_find(const struct engine_sup *es, const char *spec, unsigned long id)
{
	for (unsigned i = 0; i < es->nfwd; i++) {
		if ((spec && !strcmp(es->fwd[i].spec, spec)) ||
		    (!spec && id && es->fwd[i].id == id)) {
			return (int)i;
		}
	}
	return -1;
}

int engine_sup_forward_define(struct engine_sup *es, const char *spec, enum engine_fwd_source src)
{
	struct engine_fwd *f;

	if (engine_sup_forward_find(es, spec, 0) >= 0) {
		return -EEXIST;
	}
	if (es->nfwd == ENGINE_FWD_MAX) {
		return -ENOSPC;
	}
	if (strlen(spec) > CTL_SPEC_MAX) {
		return -EINVAL;
	}
	f = &es->fwd[es->nfwd++];
	memset(f, 0, sizeof(*f));
	strcpy(f->spec, spec);
	f->source = src;
	return 0;
}

int engine_sup_forward_add(struct engine_sup *es, const char *spec, enum engine_fwd_source src,
			   char *msg)
{
	int rc;

	if (es->state != ENGINE_UP) {
		snprintf(msg, ENGINE_ERR_MAX, "engine is not running: %.200s",
			 es->last_error[0] ? es->last_error : "not started");
		return -NATX_E_UNAVAILABLE;
	}
	rc = engine_sup_forward_define(es, spec, src);
	if (rc) {
		snprintf(msg, ENGINE_ERR_MAX, "%s",
			 rc == -EEXIST ? "forward already exists" : natx_strerror(rc));
		return rc;
	}
	rc = engine_sup_push(es, es->nfwd - 1);
	if (rc) {
		snprintf(msg, ENGINE_ERR_MAX, "%s", es->fwd[es->nfwd - 1].error);
		es->nfwd--;
	}
	return rc;
}

int engine_sup_forward_rm(struct engine_sup *es, unsigned i)
{
	struct engine_fwd f = es->fwd[i];
	int rc = 0;

	memmove(&es->fwd[i], &es->fwd[i + 1], sizeof(es->fwd[0]) * (es->nfwd - i - 1));
	es->nfwd--;
	if (f.id && es->state == ENGINE_UP && tunnel_spec_is(f.spec)) {
		rc = tunnel_sup_rm(es, f.spec);
	} else if (f.id && es->state == ENGINE_UP) {
		cJSON *r = NULL;

		rc = engine_sup_simple(es, "forward.rm", "spec", f.spec, NULL, 0, &r);
		cJSON_Delete(r);
	}
	return rc;
}

void engine_sup_stop(struct engine_sup *es, bool keep)
{
	uint64_t deadline;

	if (es->state != ENGINE_UP || keep) {
		if (es->state == ENGINE_UP) {
			pr_info(MOD, "leaving engine pid %ld running", es->pid);
		}
		goto close_fd;
	}
	{
		cJSON *r = NULL;

		engine_sup_simple(es, "shutdown", NULL, NULL, "drain_ms", es->drain_ms, &r);
		cJSON_Delete(r);
	}
	/* Wait for the engine to close the socket (and exit), bounded by drain + timeout. */
	deadline = es->clk->now_ms(es->clk) + es->drain_ms + es->timeout_ms;
	while (es->fd >= 0 && es->clk->now_ms(es->clk) < deadline) {
		struct pollfd p = { .fd = es->fd, .events = POLLIN };
		char buf[512];

		if (poll(&p, 1, 100) > 0 && recv(es->fd, buf, sizeof(buf), MSG_DONTWAIT) == 0) {
			break;
		}
	}
	if (es->child) {
		int status;

		while (es->clk->now_ms(es->clk) < deadline &&
		       waitpid(es->child, &status, WNOHANG) == 0) {
			usleep(20000);
		}
		if (waitpid(es->child, &status, WNOHANG) == 0) {
			pr_warn(MOD, "engine pid %d did not stop in time; killing it",
				(int)es->child);
			kill(es->child, SIGKILL);
			waitpid(es->child, &status, 0);
		}
		es->child = 0;
	}
close_fd:
	if (es->fd >= 0) {
		close(es->fd);
		es->fd = -1;
	}
	ctl_rx_cleanup(&es->rx);
	es->state = ENGINE_DOWN;
}
