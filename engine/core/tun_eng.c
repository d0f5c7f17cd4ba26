// SPDX-License-Identifier: MIT
/*
 * Tunnel control (control thread): the tunnel.* ctl commands (docs/tunnel.md). Sockets are
 * created and bound here, so a bad address or a port in use is answered at once; shard 0 is
 * then woken to take the change over (tun_eng.h).
 *
 *   tunnel.server {"listen":"host:port", "heartbeat_interval":s, "heartbeat_timeout":s,
 *                  "pending_max":N, "pending_per_ip":N, "handshake_timeout_ms":N,
 *                  "visitor_timeout_ms":N, "udp_idle_ms":N}         -> {"listen":"ip:port"}
 *   tunnel.client {"server":"host:port", "backoff_base_ms":N, "backoff_cap_ms":N,
 *                  "udp_idle_ms":N}                                   -> {"server":"ip:port"}
 *   tunnel.add    {"role":"server|client", "name", "type":"tcp|udp", "token",
 *                  server: "bind":"host:port", "max_conns", "bandwidth_kbps", "pool",
 *                  "udp_channels"
 *                  client: "local":"host:port", "proxy_protocol":bool, "udp_channels"}
 *                  -> {"service":{"id","name","role","addr"}}
 *   tunnel.rm     {"name", "role"}                                    -> {}
 *   tunnel.ls     -> {"server":{..counters..}|null, "client":{..}|null, "services":[..]}
 */
#include <ctype.h>
#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "engine.h"
#include "natx/log.h"
#include "natx/udata.h"
#include "spec.h"
#include "tun_eng.h"
#include "tunnel/tun_crypto.h"

#define MOD "tunnel"

/* tun_resolve - "host:port" / "[v6]:port" to an address (numeric or resolved once). */
static int tun_resolve(const char *text, struct sockaddr_storage *ss, socklen_t *len)
{
	char host[SPEC_HOST_MAX], *colon;
	const char *h = text, *port;
	struct addrinfo hints = { 0 }, *res;
	size_t hl;
	char *end;
	long p;

	if (text[0] == '[') {
		const char *rb = strchr(text, ']');

		if (!rb || rb[1] != ':') {
			return -EINVAL;
		}
		h = text + 1;
		hl = (size_t)(rb - h);
		port = rb + 2;
	} else {
		colon = strrchr(text, ':');
		if (!colon) {
			return -EINVAL;
		}
		hl = (size_t)(colon - text);
		port = colon + 1;
	}
	if (!hl || hl >= sizeof(host)) {
		return -EINVAL;
	}
	memcpy(host, h, hl);
	host[hl] = 0;
	p = strtol(port, &end, 10);
	if (!*port || *end || p < 0 || p > 65535) {
		return -EINVAL;
	}
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_NUMERICSERV;
	if (getaddrinfo(host, port, &hints, &res) || !res) {
		return -ENOENT;
	}
	memcpy(ss, res->ai_addr, res->ai_addrlen);
	*len = res->ai_addrlen;
	freeaddrinfo(res);
	return 0;
}

/* tun_bind - a bound non-blocking socket of @type; listening when @backlog. fd or -errno. */
static int tun_bind(struct sockaddr_storage *ss, socklen_t *len, int type, int backlog)
{
	int fd = socket(ss->ss_family, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0), err;

	if (fd < 0) {
		return -errno;
	}
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &(int){ 1 }, sizeof(int));
	if (bind(fd, (struct sockaddr *)ss, *len) || (backlog && listen(fd, backlog))) {
		err = -errno;
		close(fd);
		return err;
	}
	/* Port 0: keep the real port, so a later re-bind gets the same one. */
	*len = sizeof(*ss);
	getsockname(fd, (struct sockaddr *)ss, len);
	return fd;
}

/* tun_wake - tell shard 0 to apply a change now (MSG_RING, op UD_TUN dir 3). */
static void tun_wake(struct engine *eng)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&eng->ctl_ring);

	if (!sqe) {
		io_uring_submit(&eng->ctl_ring);
		sqe = io_uring_get_sqe(&eng->ctl_ring);
		if (!sqe) {
			return; /* the 250 ms tick applies it */
		}
	}
	io_uring_prep_msg_ring(sqe, eng->shards[0]->ring.ring_fd, 0,
			       udata_pack(UD_TUN, 3, 0xff, 0, 0), 0);
	io_uring_sqe_set_data64(sqe, udata_pack(UD_NONE, 0, 0, 0, 0));
	io_uring_submit(&eng->ctl_ring);
	/*
	 * Reap the MSG_RING's own completions so they never fill the control ring's CQ. Only
	 * UD_NONE ones: shard acks are awaited by engine.c, and none is outstanding between
	 * control commands (those wait for their acks before returning).
	 */
	for (;;) {
		struct io_uring_cqe *cqe;

		if (io_uring_peek_cqe(&eng->ctl_ring, &cqe) ||
		    udata_op(cqe->user_data) != UD_NONE) {
			break;
		}
		io_uring_cqe_seen(&eng->ctl_ring, cqe);
	}
}

/* tun_eng_get - the tunnel state, created on first use. NULL when out of memory. */
static struct tun_eng *tun_eng_get(struct engine *eng)
{
	struct tun_eng *t = eng->tun;

	if (t) {
		return t;
	}
	t = calloc(1, sizeof(*t));
	if (!t) {
		return NULL;
	}
	t->conns = calloc(TUN_CONN_MAX, sizeof(*t->conns));
	if (!t->conns) {
		free(t);
		return NULL;
	}
	pthread_mutex_init(&t->lock, NULL);
	t->eng = eng;
	t->srv_fd = -1;
	t->srv_conn = -1;
	for (int i = TUN_CONN_MAX - 1; i >= 0; i--) {
		t->conns[i].fd = -1;
		t->conns[i].aux_fd = -1;
		t->conns[i].next = i == TUN_CONN_MAX - 1 ? -1 : i + 1;
	}
	t->conn_free = 0;
	t->hb_interval_s = 10;
	t->hb_timeout_s = 30;
	t->pending_max = 256;
	t->pending_per_ip = 64;
	t->hs_timeout_ms = 5000;
	t->visitor_timeout_ms = 10000;
	t->udp_idle_ms = 30000;
	t->backoff_base_ms = 200;
	t->backoff_cap_ms = 2000;
	t->next_svc_id = 1;
	__atomic_store_n(&eng->tun, t, __ATOMIC_RELEASE);
	return t;
}

/* tun_json_u32 - optional integer @key in [lo, hi]; false with @msg on a bad value. */
static bool tun_json_u32(const cJSON *args, const char *key, uint32_t lo, uint32_t hi,
			 uint32_t *out, char *msg, size_t msglen)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(args, key);

	if (!v) {
		return true;
	}
	if (!cJSON_IsNumber(v) || v->valuedouble < lo || v->valuedouble > hi ||
	    v->valuedouble != (double)(uint32_t)v->valuedouble) {
		snprintf(msg, msglen, "\"%s\" must be an integer %u..%u", key, lo, hi);
		return false;
	}
	*out = (uint32_t)v->valuedouble;
	return true;
}

/* tun_hex - decode @hex (even length, at most @cap bytes) into @out; length or -1. */
static long tun_hex(const char *hex, uint8_t *out, size_t cap)
{
	size_t n = strlen(hex);

	if (n % 2 || n / 2 > cap) {
		return -1;
	}
	for (size_t i = 0; i < n / 2; i++) {
		unsigned int v;

		if (!isxdigit((unsigned char)hex[2 * i]) ||
		    !isxdigit((unsigned char)hex[2 * i + 1]) ||
		    sscanf(hex + 2 * i, "%2x", &v) != 1) {
			return -1;
		}
		out[i] = (uint8_t)v;
	}
	return (long)(n / 2);
}

/* tun_json_str - string @key (required when @need); NULL when absent. */
static const char *tun_json_str(const cJSON *args, const char *key)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(args, key);

	return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* tun_transport_json - the server's transport and public key (never the private key). */
static void tun_transport_json(const struct tun_eng *t, cJSON *o)
{
	static const char *const names[] = { "plain", "noise", "both" };
	char hex[2 * TUN_NX_KEY_LEN + 1];

	cJSON_AddStringToObject(o, "transport", names[t->transport]);
	if (t->nx_key) {
		tun_nx_key_hex(t->nx_pub, hex);
		cJSON_AddStringToObject(o, "noise_pubkey", hex);
	} else {
		cJSON_AddNullToObject(o, "noise_pubkey");
	}
}

/*
 * tun_server_transport - "transport" plain|noise|both and "noise_key_hex" (the server's static
 * X25519 private key, 64 hex digits; required unless plain). false with @msg on a bad value;
 * nothing changes then.
 */
static bool tun_server_transport(struct tun_eng *t, const cJSON *args, char *msg, size_t msglen)
{
	const char *tr = tun_json_str(args, "transport"),
		   *key = tun_json_str(args, "noise_key_hex");
	uint8_t priv[TUN_NX_KEY_LEN];
	uint8_t mode = TUN_TRANSPORT_PLAIN;

	if (!tr && !key) {
		return true; /* unchanged */
	}
	if (tr && !strcmp(tr, "noise")) {
		mode = TUN_TRANSPORT_NOISE;
	} else if (tr && !strcmp(tr, "both")) {
		mode = TUN_TRANSPORT_BOTH;
	} else if (tr && strcmp(tr, "plain")) {
		snprintf(msg, msglen, "\"transport\" must be \"plain\", \"noise\" or \"both\"");
		return false;
	}
	if (key && (strlen(key) != 2 * TUN_NX_KEY_LEN || tun_hex(key, priv, sizeof(priv)) != 32)) {
		snprintf(msg, msglen,
			 "\"noise_key_hex\" must be 64 hex digits (X25519 private key)");
		return false;
	}
	if (mode != TUN_TRANSPORT_PLAIN && !key && !t->nx_key) {
		snprintf(msg, msglen, "transport \"%s\" needs \"noise_key_hex\"", tr);
		return false;
	}
	if (key) {
		memcpy(t->nx_priv, priv, sizeof(priv));
		tun_nx_pubkey(t->nx_pub, priv);
		t->nx_key = true;
		crypto_wipe(priv, sizeof(priv));
	}
	if (tr) {
		t->transport = mode;
	}
	return true;
}

static const char *tun_cmd_server(struct engine *eng, struct tun_eng *t, const cJSON *args,
				  cJSON *reply, char *msg, size_t msglen)
{
	const char *listen_txt = tun_json_str(args, "listen");
	uint32_t hbi = t->hb_interval_s, hbt = t->hb_timeout_s;
	struct sockaddr_storage ss;
	socklen_t len;
	int fd, ret;

	if (!listen_txt) {
		snprintf(msg, msglen, "tunnel.server needs \"listen\":\"host:port\"");
		return "bad_request";
	}
	if (!tun_json_u32(args, "heartbeat_interval", 1, 3600, &hbi, msg, msglen) ||
	    !tun_json_u32(args, "heartbeat_timeout", 2, 7200, &hbt, msg, msglen) ||
	    !tun_json_u32(args, "pending_max", 1, 65536, &t->pending_max, msg, msglen) ||
	    !tun_json_u32(args, "pending_per_ip", 1, 65536, &t->pending_per_ip, msg, msglen) ||
	    !tun_json_u32(args, "handshake_timeout_ms", 100, 600000, &t->hs_timeout_ms, msg,
			  msglen) ||
	    !tun_json_u32(args, "visitor_timeout_ms", 100, 600000, &t->visitor_timeout_ms, msg,
			  msglen) ||
	    !tun_json_u32(args, "udp_idle_ms", 100, 86400000, &t->udp_idle_ms, msg, msglen)) {
		return "bad_request";
	}
	if (hbt <= hbi) {
		snprintf(msg, msglen, "heartbeat_timeout must be greater than heartbeat_interval");
		return "bad_request";
	}
	if (!tun_server_transport(t, args, msg, msglen)) {
		return "bad_request";
	}
	t->hb_interval_s = (uint16_t)hbi;
	t->hb_timeout_s = (uint16_t)hbt;
	if (t->server_on) {
		/* Parameters updated; the listener stays. */
		cJSON_AddStringToObject(reply, "listen", t->srv_txt);
		tun_transport_json(t, reply);
		return NULL;
	}
	ret = tun_resolve(listen_txt, &ss, &len);
	if (ret) {
		snprintf(msg, msglen, "tunnel listen address '%.100s': %s", listen_txt,
			 ret == -ENOENT ? "does not resolve" : "expected host:port");
		return ret == -ENOENT ? "resolve_failed" : "bad_spec";
	}
	fd = tun_bind(&ss, &len, SOCK_STREAM, 1024);
	if (fd < 0) {
		snprintf(msg, msglen, "tunnel listen %.100s: %s", listen_txt, strerror(-fd));
		return "addr_in_use";
	}
	t->srv_fd = fd;
	t->srv_addr = ss;
	t->srv_addr_len = len;
	spec_addr_format(&ss, t->srv_txt, sizeof(t->srv_txt));
	t->server_on = true;
	t->dirty = true;
	pr_info(MOD, "tunnel server listening on %s", t->srv_txt);
	cJSON_AddStringToObject(reply, "listen", t->srv_txt);
	tun_transport_json(t, reply);
	return NULL;
}

static const char *tun_cmd_client(struct engine *eng, struct tun_eng *t, const cJSON *args,
				  cJSON *reply, char *msg, size_t msglen)
{
	const char *srv = tun_json_str(args, "server");
	uint32_t base = t->backoff_base_ms, cap = t->backoff_cap_ms;
	int ret;

	if (!srv) {
		snprintf(msg, msglen, "tunnel.client needs \"server\":\"host:port\"");
		return "bad_request";
	}
	if (!tun_json_u32(args, "backoff_base_ms", 10, 60000, &base, msg, msglen) ||
	    !tun_json_u32(args, "backoff_cap_ms", 10, 600000, &cap, msg, msglen) ||
	    !tun_json_u32(args, "udp_idle_ms", 100, 86400000, &t->udp_idle_ms, msg, msglen)) {
		return "bad_request";
	}
	if (cap < base) {
		snprintf(msg, msglen, "backoff_cap_ms must be at least backoff_base_ms");
		return "bad_request";
	}
	ret = tun_resolve(srv, &t->cli_server, &t->cli_server_len);
	if (ret) {
		snprintf(msg, msglen, "tunnel server address '%.100s': %s", srv,
			 ret == -ENOENT ? "does not resolve" : "expected host:port");
		return ret == -ENOENT ? "resolve_failed" : "bad_spec";
	}
	t->backoff_base_ms = base;
	t->backoff_cap_ms = cap;
	spec_addr_format(&t->cli_server, t->cli_txt, sizeof(t->cli_txt));
	t->client_on = true;
	t->dirty = true;
	cJSON_AddStringToObject(reply, "server", t->cli_txt);
	return NULL;
}

static const char *tun_cmd_add(struct engine *eng, struct tun_eng *t, const cJSON *args,
			       cJSON *reply, char *msg, size_t msglen)
{
	const char *role = tun_json_str(args, "role"), *name = tun_json_str(args, "name");
	const char *type = tun_json_str(args, "type"), *token = tun_json_str(args, "token");
	const char *key_hex = tun_json_str(args, "key_hex"),
		   *mac_hex = tun_json_str(args, "macaroon_hex");
	const cJSON *l402 = cJSON_GetObjectItemCaseSensitive(args, "l402");
	const char *pay_hash = l402 ? tun_json_str(l402, "payment_hash") : NULL;
	uint8_t keybuf[TUN_KEY_MAX], hashbuf[32];
	uint8_t *macaroon = NULL;
	long mac_len = 0;
	const char *addr = NULL;
	const cJSON *pp = cJSON_GetObjectItemCaseSensitive(args, "proxy_protocol");
	const char *tr = tun_json_str(args, "transport"),
		   *spub = tun_json_str(args, "server_pubkey");
	uint8_t pubbuf[TUN_NX_KEY_LEN];
	struct tun_svc *s = NULL;
	struct forward *fwd;
	uint32_t bw = 0;
	enum tun_role r;
	cJSON *o;
	int ret;

	if (!role || (strcmp(role, "server") && strcmp(role, "client"))) {
		snprintf(msg, msglen, "\"role\" must be \"server\" or \"client\"");
		return "bad_request";
	}
	r = role[0] == 's' ? TUN_ROLE_SERVER : TUN_ROLE_CLIENT;
	if (!name || !tun_service_name_ok((const uint8_t *)name, strlen(name))) {
		snprintf(msg, msglen, "\"name\" must be 1-%d characters of [A-Za-z0-9._-]",
			 TUN_SERVICE_MAX);
		return "bad_request";
	}
	if (!type || (strcmp(type, "tcp") && strcmp(type, "udp"))) {
		snprintf(msg, msglen, "\"type\" must be \"tcp\" or \"udp\"");
		return "bad_request";
	}
	if (!key_hex && (!token || !token[0] || strlen(token) > TUN_KEY_MAX)) {
		snprintf(msg, msglen,
			 "\"token\" must be a string of 1-%d bytes (or give \"key_hex\")",
			 TUN_KEY_MAX);
		return "bad_request";
	}
	if (key_hex && (tun_hex(key_hex, keybuf, sizeof(keybuf)) <= 0)) {
		snprintf(msg, msglen, "\"key_hex\" must be 1-%d bytes as hex", TUN_KEY_MAX);
		return "bad_request";
	}
	if (l402 && (r != TUN_ROLE_SERVER || !cJSON_IsObject(l402) || !pay_hash ||
		     tun_hex(pay_hash, hashbuf, sizeof(hashbuf)) != 32 || !key_hex)) {
		snprintf(msg, msglen,
			 "\"l402\" (server only, with \"key_hex\" = the preimage) needs "
			 "{\"payment_hash\": 64 hex digits, \"expires_at\", \"max_bytes\"}");
		return "bad_request";
	}
	if (mac_hex && (r != TUN_ROLE_CLIENT || !key_hex || strlen(mac_hex) / 2 > TUN_CRED_MAX)) {
		snprintf(
			msg, msglen,
			"\"macaroon_hex\" (client only, with \"key_hex\" = the preimage) is at most "
			"%d bytes",
			TUN_CRED_MAX);
		return "bad_request";
	}
	addr = tun_json_str(args, r == TUN_ROLE_SERVER ? "bind" : "local");
	if (!addr) {
		snprintf(msg, msglen, "a %s service needs \"%s\":\"host:port\"", role,
			 r == TUN_ROLE_SERVER ? "bind" : "local");
		return "bad_request";
	}
	if (tr && strcmp(tr, "plain") && strcmp(tr, "noise")) {
		snprintf(msg, msglen, "\"transport\" must be \"plain\" or \"noise\"");
		return "bad_request";
	}
	if (tr && !strcmp(tr, "noise") &&
	    (r != TUN_ROLE_CLIENT || !spub || tun_nx_key_parse(spub, pubbuf))) {
		snprintf(msg, msglen,
			 r != TUN_ROLE_CLIENT ?
				 "a server service's transport is the server's (tunnel.server)" :
				 "transport \"noise\" needs \"server_pubkey\": the server's X25519 "
				 "public key, 64 hex digits or base64");
		return "bad_request";
	}
	if (pp && !cJSON_IsBool(pp)) {
		snprintf(msg, msglen, "\"proxy_protocol\" must be true or false");
		return "bad_request";
	}
	if (r == TUN_ROLE_SERVER && !t->server_on) {
		snprintf(msg, msglen, "no tunnel server: send tunnel.server first");
		return "bad_request";
	}
	if (r == TUN_ROLE_CLIENT && !t->client_on) {
		snprintf(msg, msglen, "no tunnel client: send tunnel.client first");
		return "bad_request";
	}
	if (tun_svc_find(t, r, name, strlen(name)) >= 0) {
		snprintf(msg, msglen, "%s service '%s' exists", role, name);
		return "exists";
	}
	for (int i = 0; i < TUN_SVC_MAX; i++) {
		if (t->svc[i].state == TUN_SS_FREE) {
			s = &t->svc[i];
			break;
		}
	}
	if (!s) {
		snprintf(msg, msglen, "at most %d tunnel services", TUN_SVC_MAX);
		return "internal";
	}
	memset(s, 0, sizeof(*s));
	s->pub_fd = -1;
	s->pub_conn = -1;
	s->ctrl = -1;
	s->pool_head = s->vis_head = s->vis_tail = -1;
	for (int u = 0; u < TUN_UCH_MAX; u++) {
		s->uch[u] = -1;
	}
	s->pool = 4;
	s->udp_channels = 2;
	if (!tun_json_u32(args, "max_conns", 0, 1000000, &s->max_conns, msg, msglen) ||
	    !tun_json_u32(args, "bandwidth_kbps", 0, 100000000, &bw, msg, msglen) ||
	    !tun_json_u32(args, "pool", 0, 32, &s->pool, msg, msglen) ||
	    !tun_json_u32(args, "udp_channels", 1, TUN_UCH_MAX, &s->udp_channels, msg, msglen)) {
		return "bad_request";
	}
	if (l402) {
		double exp = 0, maxb = 0;
		const cJSON *v = cJSON_GetObjectItemCaseSensitive(l402, "expires_at");

		if (cJSON_IsNumber(v)) {
			exp = v->valuedouble;
		}
		v = cJSON_GetObjectItemCaseSensitive(l402, "max_bytes");
		if (cJSON_IsNumber(v)) {
			maxb = v->valuedouble;
		}
		if (exp < 0 || maxb < 0) {
			snprintf(msg, msglen, "l402 expires_at / max_bytes must not be negative");
			return "bad_request";
		}
		s->l402 = true;
		memcpy(s->pay_hash, hashbuf, 32);
		s->expires_at = (int64_t)exp;
		s->max_bytes = (uint64_t)maxb;
	}
	if (mac_hex) {
		macaroon = malloc(strlen(mac_hex) / 2 + 1);
		mac_len = macaroon ? tun_hex(mac_hex, macaroon, strlen(mac_hex) / 2) : -1;
		if (mac_len <= 0) {
			free(macaroon);
			snprintf(msg, msglen, "\"macaroon_hex\" must be hex");
			return "bad_request";
		}
	}
	ret = tun_resolve(addr, &s->addr, &s->addr_len);
	if (ret) {
		free(macaroon);
		snprintf(msg, msglen, "address '%.100s': %s", addr,
			 ret == -ENOENT ? "does not resolve" : "expected host:port");
		return ret == -ENOENT ? "resolve_failed" : "bad_spec";
	}
	s->role = r;
	s->type = type[0] == 't' ? TUN_SVC_TCP : TUN_SVC_UDP;
	s->bw_bytes = (uint64_t)bw * 1000 / 8;
	if (r == TUN_ROLE_SERVER) {
		int fd = tun_bind(&s->addr, &s->addr_len,
				  s->type == TUN_SVC_TCP ? SOCK_STREAM : SOCK_DGRAM, 0);

		if (fd < 0) {
			free(macaroon);
			snprintf(msg, msglen, "bind %.100s: %s", addr, strerror(-fd));
			return "addr_in_use";
		}
		s->pub_fd = fd;
	}
	fwd = calloc(1, sizeof(*fwd));
	if (fwd) {
		/* Cache-line aligned like engine.c's: struct fwd_stats is aligned(64). */
		fwd->st = aligned_alloc(64, sizeof(*fwd->st) * eng->nshards);
		if (fwd->st) {
			memset(fwd->st, 0, sizeof(*fwd->st) * eng->nshards);
		}
	}
	if (!fwd || !fwd->st) {
		if (fwd) {
			free(fwd);
		}
		if (s->pub_fd >= 0) {
			close(s->pub_fd);
		}
		free(macaroon);
		snprintf(msg, msglen, "out of memory");
		return "internal";
	}
	fwd->refcnt = 1;
	fwd->id = 0;
	fwd->slot = UINT32_MAX;
	snprintf(fwd->spec, sizeof(fwd->spec), "tunnel:%s", name);
	s->fwd = fwd;
	snprintf(s->name, sizeof(s->name), "%s", name);
	if (key_hex) {
		s->key_len = (size_t)tun_hex(key_hex, s->key, sizeof(s->key));
	} else {
		memcpy(s->key, token, strlen(token));
		s->key_len = strlen(token);
	}
	crypto_wipe(keybuf, sizeof(keybuf));
	s->macaroon = macaroon;
	s->macaroon_len = (size_t)mac_len;
	s->proxy_protocol = cJSON_IsTrue(pp);
	s->noise = tr && !strcmp(tr, "noise");
	if (s->noise) {
		memcpy(s->server_pub, pubbuf, sizeof(pubbuf));
	}
	spec_addr_format(&s->addr, s->addr_txt, sizeof(s->addr_txt));
	tun_backoff_init(&s->bo, t->backoff_base_ms, t->backoff_cap_ms, 10000);
	s->id = t->next_svc_id++;
	s->state = TUN_SS_NEW;
	t->dirty = true;
	pr_info(MOD, "%s service %s (%s) added: %s", role, name, type, s->addr_txt);
	o = cJSON_AddObjectToObject(reply, "service");
	cJSON_AddNumberToObject(o, "id", s->id);
	cJSON_AddStringToObject(o, "name", s->name);
	cJSON_AddStringToObject(o, "role", role);
	cJSON_AddStringToObject(o, "addr", s->addr_txt);
	return NULL;
}

/* tun_stats_json - the service's counters. */
static void tun_svc_json(struct engine *eng, const struct tun_svc *s, cJSON *o)
{
	uint64_t total = 0, bytes = 0;

	for (unsigned int i = 0; s->fwd && i < eng->nshards; i++) {
		total += stat_get(&s->fwd->st[i].flows_total);
		bytes += stat_get(&s->fwd->st[i].bytes);
	}
	cJSON_AddNumberToObject(o, "id", s->id);
	cJSON_AddStringToObject(o, "name", s->name);
	cJSON_AddStringToObject(o, "role", s->role == TUN_ROLE_SERVER ? "server" : "client");
	cJSON_AddStringToObject(o, "type", s->type == TUN_SVC_TCP ? "tcp" : "udp");
	cJSON_AddStringToObject(o, s->role == TUN_ROLE_SERVER ? "bind" : "local", s->addr_txt);
	cJSON_AddStringToObject(o, "state",
				s->state == TUN_SS_REMOVING			    ? "removing" :
				(s->role == TUN_ROLE_SERVER ? s->sess_live : s->up) ? "up" :
										      "down");
	cJSON_AddNumberToObject(o, "flows_open", (double)tun_svc_flows_open(eng, s));
	cJSON_AddNumberToObject(o, "flows_total", (double)total);
	cJSON_AddNumberToObject(o, "bytes", (double)(bytes + s->st.udp_bytes));
	cJSON_AddNumberToObject(o, "max_conns", s->max_conns);
	cJSON_AddNumberToObject(o, "bandwidth_kbps", (double)(s->bw_bytes * 8 / 1000));
	if (s->l402) {
		cJSON *l = cJSON_AddObjectToObject(o, "l402");

		cJSON_AddNumberToObject(l, "expires_at", (double)s->expires_at);
		cJSON_AddNumberToObject(l, "max_bytes", (double)s->max_bytes);
		cJSON_AddStringToObject(l, "ended", s->ended ? tun_reason_name(s->ended) : "");
	}
	cJSON_AddNumberToObject(o, "pool", s->pool_n);
	cJSON_AddNumberToObject(o, "visitors_waiting", s->vis_n);
	cJSON_AddNumberToObject(o, "udp_sessions", s->nusess);
	cJSON_AddNumberToObject(o, "control_ups", (double)s->st.ctrl_up);
	cJSON_AddNumberToObject(o, "data_channels", (double)s->st.data_channels);
	cJSON_AddNumberToObject(o, "visitors", (double)s->st.visitors);
	cJSON_AddNumberToObject(o, "refused_limit", (double)s->st.refused_limit);
	cJSON_AddNumberToObject(o, "visitor_timeouts", (double)s->st.visitor_timeout);
	cJSON_AddNumberToObject(o, "auth_failures", (double)s->st.auth_fail);
	cJSON_AddNumberToObject(o, "replays", (double)s->st.replay);
	cJSON_AddNumberToObject(o, "reconnects", (double)s->st.reconnects);
	cJSON_AddNumberToObject(o, "udp_in", (double)s->st.udp_in);
	cJSON_AddNumberToObject(o, "udp_out", (double)s->st.udp_out);
	cJSON_AddNumberToObject(o, "udp_drops", (double)s->st.udp_drops);
	if (s->role == TUN_ROLE_CLIENT) {
		char hex[2 * TUN_NX_KEY_LEN + 1];

		cJSON_AddStringToObject(o, "transport", s->noise ? "noise" : "plain");
		if (s->noise) {
			tun_nx_key_hex(s->server_pub, hex);
			cJSON_AddStringToObject(o, "server_pubkey", hex);
		}
		cJSON_AddNumberToObject(o, "noise_failures", (double)s->st.noise_fail);
	}
}

static void tun_cmd_ls(struct engine *eng, struct tun_eng *t, cJSON *reply)
{
	cJSON *a;

	if (t->server_on) {
		cJSON *o = cJSON_AddObjectToObject(reply, "server");

		cJSON_AddStringToObject(o, "listen", t->srv_txt);
		cJSON_AddNumberToObject(o, "pending", t->pending);
		cJSON_AddNumberToObject(o, "pending_max", t->pending_max);
		cJSON_AddNumberToObject(o, "pending_per_ip", t->pending_per_ip);
		cJSON_AddNumberToObject(o, "handshakes", (double)t->st.hs_accepted);
		cJSON_AddNumberToObject(o, "handshakes_ok", (double)t->st.hs_done);
		cJSON_AddNumberToObject(o, "handshakes_failed", (double)t->st.hs_failed);
		cJSON_AddNumberToObject(o, "handshake_timeouts", (double)t->st.hs_timeout);
		cJSON_AddNumberToObject(o, "pending_refused", (double)t->st.pending_refused);
		cJSON_AddNumberToObject(o, "auth_failures", (double)t->st.auth_fail);
		cJSON_AddNumberToObject(o, "replays", (double)t->st.replay);
		cJSON_AddNumberToObject(o, "unknown_service", (double)t->st.unknown_service);
		cJSON_AddNumberToObject(o, "unknown_session", (double)t->st.unknown_session);
		cJSON_AddNumberToObject(o, "protocol_errors", (double)t->st.protocol);
		tun_transport_json(t, o);
		cJSON_AddNumberToObject(o, "noise_ok", (double)t->st.noise_ok);
		cJSON_AddNumberToObject(o, "noise_key_refused", (double)t->st.noise_key);
		cJSON_AddNumberToObject(o, "noise_required_refused", (double)t->st.noise_required);
		cJSON_AddNumberToObject(o, "noise_unavailable_refused",
					(double)t->st.noise_unavailable);
	} else {
		cJSON_AddNullToObject(reply, "server");
	}
	if (t->client_on) {
		cJSON *o = cJSON_AddObjectToObject(reply, "client");

		cJSON_AddStringToObject(o, "server", t->cli_txt);
	} else {
		cJSON_AddNullToObject(reply, "client");
	}
	a = cJSON_AddArrayToObject(reply, "services");
	for (int i = 0; i < TUN_SVC_MAX; i++) {
		if (t->svc[i].state != TUN_SS_FREE) {
			cJSON *o = cJSON_CreateObject();

			tun_svc_json(eng, &t->svc[i], o);
			cJSON_AddItemToArray(a, o);
		}
	}
}

const char *tun_eng_ctl(struct engine *eng, const char *cmd, const cJSON *args, cJSON *reply,
			char *msg, size_t msglen)
{
	struct tun_eng *t = tun_eng_get(eng);
	const char *code = NULL;

	if (!t) {
		snprintf(msg, msglen, "out of memory");
		return "internal";
	}
	pthread_mutex_lock(&t->lock);
	if (!strcmp(cmd, "server")) {
		code = tun_cmd_server(eng, t, args, reply, msg, msglen);
	} else if (!strcmp(cmd, "client")) {
		code = tun_cmd_client(eng, t, args, reply, msg, msglen);
	} else if (!strcmp(cmd, "add")) {
		code = tun_cmd_add(eng, t, args, reply, msg, msglen);
	} else if (!strcmp(cmd, "ls")) {
		tun_cmd_ls(eng, t, reply);
	} else if (!strcmp(cmd, "rm")) {
		const char *name = tun_json_str(args, "name"), *role = tun_json_str(args, "role");
		enum tun_role r =
			role && !strcmp(role, "client") ? TUN_ROLE_CLIENT : TUN_ROLE_SERVER;
		int i = name ? tun_svc_find(t, r, name, strlen(name)) : -1;

		if (!name || (role && strcmp(role, "server") && strcmp(role, "client"))) {
			snprintf(msg, msglen,
				 "tunnel.rm needs \"name\" (and \"role\": server|client)");
			code = "bad_request";
		} else if (i < 0) {
			snprintf(msg, msglen, "no %s service '%.64s'",
				 r == TUN_ROLE_SERVER ? "server" : "client", name);
			code = "not_found";
		} else {
			uint32_t id = t->svc[i].id;

			t->svc[i].state = TUN_SS_REMOVING;
			t->dirty = true;
			pthread_mutex_unlock(&t->lock);
			tun_wake(eng);
			/* Wait (bounded) until shard 0 has closed it: the reply means "gone". */
			for (int n = 0; n < 200; n++) {
				bool gone;

				pthread_mutex_lock(&t->lock);
				gone = t->svc[i].state == TUN_SS_FREE || t->svc[i].id != id;
				pthread_mutex_unlock(&t->lock);
				if (gone) {
					break;
				}
				nanosleep(&(struct timespec){ .tv_nsec = 10000000 }, NULL);
			}
			pr_info(MOD, "service %s removed", name);
			return NULL;
		}
	} else {
		snprintf(msg, msglen, "unknown tunnel command");
		code = "unknown_cmd";
	}
	pthread_mutex_unlock(&t->lock);
	if (!code && strcmp(cmd, "ls")) {
		tun_wake(eng);
	}
	return code;
}

void tun_eng_free(struct engine *eng)
{
	struct tun_eng *t = eng->tun;

	if (!t) {
		return;
	}
	for (int i = 0; i < TUN_CONN_MAX; i++) {
		struct tun_conn *c = &t->conns[i];

		/* Only when shard 0 never ran its teardown (start failure). */
		if (c->kind != TC_FREE && c->kind != TC_SRV_LISTEN && c->kind != TC_PUB_TCP &&
		    c->kind != TC_PUB_UDP) {
			if (c->fd >= 0) {
				close(c->fd);
			}
			if (c->aux_fd >= 0) {
				close(c->aux_fd);
			}
		}
		free(c->in);
		free(c->out);
		free(c->hs);
		free(c->cl);
		tun_nx_free(c->nx);
		tun_nx_free(c->aux_nx);
		if (c->nxb && !--c->nxb->refs) {
			forward_put(c->nxb->fwd);
			free(c->nxb);
		}
	}
	if (t->srv_fd >= 0) {
		close(t->srv_fd);
	}
	for (int i = 0; i < TUN_SVC_MAX; i++) {
		struct tun_svc *s = &t->svc[i];

		if (s->state == TUN_SS_FREE) {
			continue;
		}
		if (s->pub_fd >= 0) {
			close(s->pub_fd);
		}
		forward_put(s->fwd);
		free(s->usess);
		free(s->macaroon);
		crypto_wipe(s->key, sizeof(s->key));
	}
	crypto_wipe(t->nx_priv, sizeof(t->nx_priv));
	pthread_mutex_destroy(&t->lock);
	free(t->conns);
	free(t);
	eng->tun = NULL;
}
