// SPDX-License-Identifier: MIT
/*
 * Tunnel server (relay side) on shard 0: the control/data listener with the pending-handshake
 * caps, handshakes (tun_hs), control channels with heartbeats and dead-peer detection, the
 * public listeners of each service (listening only while its client is up), the data-channel
 * pool and the pairing of visitors with data channels into engine TCP flows.
 */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "engine.h"
#include "natx/log.h"
#include "spec.h"
#include "tun_eng.h"
#include "tunnel/tun_crypto.h"
#include "tunnel/tun_pp2.h"
#include "l402.h"
#include "macaroon.h"

#define MOD "tunnel"

enum { TUN_HS_OUT = 512, TUN_ACCEPT_BATCH = 64 };

/* tun_log_every - true for the 1st, 2nd, 4th, 8th ... event: bounded logging of floods. */
static bool tun_log_every(uint64_t n)
{
	return (n & (n - 1)) == 0;
}

/*
 * tun_log_ok - refusals are logged, at most TUN_LOG_PER_S lines a second (a flood of bad
 * handshakes must not flood the log; the counters still count every one).
 */
static bool tun_log_ok(struct tun_eng *t, uint64_t now_ms)
{
	enum { TUN_LOG_PER_S = 20 };

	if (now_ms / 1000 != t->log_sec) {
		t->log_sec = now_ms / 1000;
		t->log_n = 0;
	}
	return t->log_n++ < TUN_LOG_PER_S;
}

/* tun_svc_bytes - bytes moved by service @s (TCP flows and UDP datagrams). */
static uint64_t tun_svc_bytes(struct engine *eng, const struct tun_svc *s)
{
	uint64_t n = s->st.udp_bytes;

	for (unsigned int i = 0; s->fwd && i < eng->nshards; i++) {
		n += stat_get(&s->fwd->st[i].bytes);
	}
	return n;
}

/* tun_srv_l402_ended - TUN_R_EXPIRED / TUN_R_QUOTA once a paid service's access ended, else 0. */
static int tun_srv_l402_ended(struct tun_eng *t, struct tun_svc *s)
{
	if (!s->ended && s->expires_at && time(NULL) >= s->expires_at) {
		s->ended = TUN_R_EXPIRED;
	}
	if (!s->ended && s->max_bytes && tun_svc_bytes(t->eng, s) >= s->max_bytes) {
		s->ended = TUN_R_QUOTA;
	}
	return s->ended;
}

static int tun_srv_cred_get(void *arg, uint8_t kind, const uint8_t *service, size_t service_len,
			    const uint8_t *cred, size_t cred_len, uint8_t *key, size_t *key_len)
{
	struct tun_eng *t = arg;
	int i = tun_svc_find(t, TUN_ROLE_SERVER, (const char *)service, service_len);
	struct tun_svc *s;

	if (i < 0) {
		return TUN_R_UNKNOWN_SERVICE;
	}
	s = &t->svc[i];
	if (s->l402) {
		/*
		 * A paid service: the macaroon must name this service's payment hash; the key is
		 * the preimage, so the handshake MAC proves the client paid. The macaroon's
		 * signature and caveats were checked by natxd when it sold the service, and its
		 * expiry and quota were handed to us with it.
		 */
		struct macaroon m;
		struct l402_id id;
		int ended = tun_srv_l402_ended(t, s);

		if (kind != TUN_CRED_L402) {
			return TUN_R_PAYMENT;
		}
		if (macaroon_decode(&m, cred, cred_len) || l402_id_decode(&id, m.id, m.id_len) ||
		    !crypto_memeq(id.payment_hash, s->pay_hash, 32)) {
			return TUN_R_AUTH;
		}
		if (ended) {
			return ended;
		}
	} else if (kind != TUN_CRED_TOKEN) {
		return TUN_R_AUTH; /* macaroons only for paid services */
	}
	memcpy(key, t->svc[i].key, t->svc[i].key_len);
	*key_len = t->svc[i].key_len;
	return 0;
}

static struct tun_session *tun_srv_session_find(void *arg, const uint8_t id[TUN_SESSION_ID_LEN])
{
	struct tun_eng *t = arg;

	for (int i = 0; i < TUN_SVC_MAX; i++) {
		struct tun_svc *s = &t->svc[i];

		if (s->state == TUN_SS_ACTIVE && s->role == TUN_ROLE_SERVER && s->sess_live &&
		    !memcmp(s->sess.id, id, TUN_SESSION_ID_LEN)) {
			return &s->sess;
		}
	}
	return NULL;
}

/* tun_srv_apply - start polling a newly configured server listener. */
void tun_srv_apply(struct shard *sh, struct tun_eng *t)
{
	int idx;

	t->ops.random = tun_random;
	t->ops.cred_get = tun_srv_cred_get;
	t->ops.session_find = tun_srv_session_find;
	t->ops.arg = t;
	t->ops.heartbeat_interval = t->hb_interval_s;
	t->ops.heartbeat_timeout = t->hb_timeout_s;
	if (!t->server_on || t->srv_conn >= 0 || t->srv_fd < 0) {
		return;
	}
	idx = tun_conn_new(t, t->srv_fd, TC_SRV_LISTEN, -1);
	if (idx < 0) {
		pr_err(MOD, "no conn slot for the tunnel listener");
		return;
	}
	t->srv_conn = idx;
	tun_conn_arm(sh, t, idx, true, false);
}

/* tun_sa_same_ip - same family and address (port ignored). */
static bool tun_sa_same_ip(const struct sockaddr_storage *a, const struct sockaddr_storage *b)
{
	if (a->ss_family != b->ss_family) {
		return false;
	}
	if (a->ss_family == AF_INET) {
		return ((const struct sockaddr_in *)a)->sin_addr.s_addr ==
		       ((const struct sockaddr_in *)b)->sin_addr.s_addr;
	}
	return !memcmp(&((const struct sockaddr_in6 *)a)->sin6_addr,
		       &((const struct sockaddr_in6 *)b)->sin6_addr, 16);
}

/* tun_srv_accept - new connections on the tunnel listener, within the pending caps. */
static void tun_srv_accept(struct shard *sh, struct tun_eng *t, int lidx)
{
	for (int n = 0; n < TUN_ACCEPT_BATCH; n++) {
		struct sockaddr_storage ss;
		socklen_t len = sizeof(ss);
		uint32_t same = 0;
		struct tun_conn *c;
		int fd, idx;

		fd = accept4(t->srv_fd, (struct sockaddr *)&ss, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) {
			break;
		}
		/* Stop once every pending handshake was seen (live conns sit at low indexes). */
		for (uint32_t i = 0, seen = 0; i < TUN_CONN_MAX && seen < t->pending; i++) {
			if (t->conns[i].kind == TC_SRV_HS) {
				seen++;
				same += tun_sa_same_ip(&t->conns[i].peer, &ss);
			}
		}
		if (t->pending >= t->pending_max || same >= t->pending_per_ip) {
			char a[64];

			t->st.pending_refused++;
			if (tun_log_ok(t, sh->now_ms)) {
				spec_addr_format(&ss, a, sizeof(a));
				pr_warn(MOD,
					"refused connection from %s: %s pending-handshake cap (%lu refused so far)",
					a, same >= t->pending_per_ip ? "per-address" : "global",
					(unsigned long)t->st.pending_refused);
			}
			close(fd);
			continue;
		}
		idx = tun_conn_new(t, fd, TC_SRV_HS, -1);
		if (idx < 0) {
			close(fd);
			continue;
		}
		c = &t->conns[idx];
		c->peer = ss;
		c->peer_len = len;
		c->hs = calloc(1, sizeof(*c->hs));
		if (!c->hs || tun_conn_buf(c, TUN_HDR_LEN + TUN_CTRL_PAYLOAD_MAX, TUN_HS_OUT)) {
			tun_conn_close(sh, t, idx);
			continue;
		}
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &(int){ 1 }, sizeof(int));
		tun_server_init(c->hs, &t->ops);
		c->deadline_ms = sh->now_ms + t->hs_timeout_ms;
		t->pending++;
		t->st.hs_accepted++;
		tun_conn_arm(sh, t, idx, true, false);
	}
	tun_conn_arm(sh, t, lidx, true, false);
}

/* tun_pub_rebind - close a service's public socket and bind a fresh one (not listening). */
static void tun_pub_rebind(struct tun_svc *s)
{
	int fd, type = s->type == TUN_SVC_TCP ? SOCK_STREAM : SOCK_DGRAM;

	if (s->pub_fd >= 0) {
		close(s->pub_fd);
		s->pub_fd = -1;
	}
	s->pub_listening = false;
	fd = socket(s->addr.ss_family, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		return;
	}
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &(int){ 1 }, sizeof(int));
	if (bind(fd, (struct sockaddr *)&s->addr, s->addr_len)) {
		pr_warn(MOD, "service %s: rebind %s: %s", s->name, s->addr_txt, strerror(errno));
		close(fd);
		return;
	}
	s->pub_fd = fd;
}

/* tun_srv_request - ask the client for @n data channels. */
static void tun_srv_request(struct shard *sh, struct tun_eng *t, struct tun_svc *s, uint32_t n)
{
	struct tun_conn *c = tun_conn_at(t, s->ctrl);

	if (!c || !s->sess_live) {
		return;
	}
	for (uint32_t i = 0; i < n; i++) {
		struct wr w;

		tun_conn_out(c, &w);
		if (tun_session_data_request(&s->sess, tun_random, NULL, &w)) {
			break;
		}
		tun_conn_out_commit(c, &w);
	}
	s->last_req_ms = sh->now_ms;
	tun_conn_flush(sh, t, s->ctrl);
}

/*
 * tun_srv_refill - keep (outstanding requests + pooled channels) at (waiting visitors + pool
 * size), never above the session's nonce ring (a request beyond it would forget the oldest).
 */
static void tun_srv_refill(struct shard *sh, struct tun_eng *t, struct tun_svc *s)
{
	uint32_t pending, want, have;

	if (!s->sess_live || s->type != TUN_SVC_TCP) {
		return;
	}
	pending = tun_session_pending(&s->sess);
	want = s->vis_n + s->pool;
	have = pending + s->pool_n;
	if (have < want) {
		uint32_t n = want - have;

		if (n > TUN_PENDING_MAX - pending) {
			n = TUN_PENDING_MAX - pending;
		}
		tun_srv_request(sh, t, s, n);
	}
}

/* tun_list_remove - unlink conn @idx from the list at *head (and fix *tail). */
static void tun_list_remove(struct tun_eng *t, int *head, int *tail, int idx)
{
	int prev = -1;

	for (int i = *head; i >= 0; prev = i, i = t->conns[i].next) {
		if (i != idx) {
			continue;
		}
		if (prev < 0) {
			*head = t->conns[i].next;
		} else {
			t->conns[prev].next = t->conns[i].next;
		}
		if (tail && *tail == idx) {
			*tail = prev;
		}
		return;
	}
}

void tun_srv_svc_down(struct shard *sh, struct tun_eng *t, struct tun_svc *s, uint8_t reason)
{
	if (s->ctrl >= 0) {
		struct tun_conn *c = tun_conn_at(t, s->ctrl);

		if (c && reason) {
			struct wr w;

			tun_conn_out(c, &w);
			if (!tun_goaway_write(&w, reason)) {
				tun_conn_out_commit(c, &w);
			}
			tun_conn_flush(sh, t, s->ctrl);
		}
		tun_conn_close(sh, t, s->ctrl);
		s->ctrl = -1;
	}
	if (s->sess_live) {
		tun_session_cleanup(&s->sess);
		s->sess_live = false;
	}
	while (s->pool_head >= 0) {
		int i = s->pool_head;

		s->pool_head = t->conns[i].next;
		tun_conn_close(sh, t, i);
	}
	s->pool_n = 0;
	while (s->vis_head >= 0) {
		int i = s->vis_head;

		s->vis_head = t->conns[i].next;
		tun_conn_close(sh, t, i);
	}
	s->vis_tail = -1;
	s->vis_n = 0;
	tun_udp_svc_reset(sh, t, s);
	if (s->pub_conn >= 0) {
		tun_conn_detach(sh, t, s->pub_conn);
		s->pub_conn = -1;
	}
	if (s->state == TUN_SS_ACTIVE && s->pub_listening) {
		tun_pub_rebind(
			s); /* stop listening: visitors are refused while the client is away */
	}
}

/* tun_srv_pair - START_TCP on data channel @didx, then visitor + channel become a flow. */
static void tun_srv_pair(struct shard *sh, struct tun_eng *t, struct tun_svc *s, int vfd,
			 const struct sockaddr_storage *peer, socklen_t peer_len, int didx)
{
	struct tun_conn *d = &t->conns[didx];
	struct sockaddr_storage me;
	socklen_t me_len = sizeof(me);
	struct tun_start st = { 0 };
	uint8_t buf[64];
	struct wr w;
	ssize_t n;
	int dfd;

	if (tun_addr_from_sockaddr(&st.src, (const struct sockaddr *)peer, peer_len) ||
	    getsockname(vfd, (struct sockaddr *)&me, &me_len) ||
	    tun_addr_from_sockaddr(&st.dst, (const struct sockaddr *)&me, me_len)) {
		close(vfd);
		tun_conn_close(sh, t, didx);
		return;
	}
	wr_init(&w, buf, sizeof(buf));
	if (tun_start_write(&w, false, &st)) {
		close(vfd);
		tun_conn_close(sh, t, didx);
		return;
	}
	if (d->nx) {
		/* Encrypted: START_TCP sealed, then a user-space flow (tun_noise.c). */
		struct tun_nx *nx = d->nx;

		if (tun_nx_seal_out(nx, buf, (size_t)(w.p - buf))) {
			close(vfd);
			tun_conn_close(sh, t, didx);
			return;
		}
		d->nx = NULL;
		dfd = tun_conn_detach(sh, t, didx);
		s->st.visitors++;
		tun_nxb_start(sh, t, s, vfd, dfd, nx);
		return;
	}
	/* A fresh, idle socket: the few bytes go into its empty send buffer at once. */
	n = send(d->fd, buf, (size_t)(w.p - buf), MSG_NOSIGNAL);
	if (n != w.p - buf) {
		close(vfd);
		tun_conn_close(sh, t, didx);
		return;
	}
	dfd = tun_conn_detach(sh, t, didx);
	s->st.visitors++;
	tun_flow_start(sh, s, vfd, dfd);
}

/* tun_srv_data_ready - an authenticated TCP data channel: serve a visitor or pool it. */
static void tun_srv_data_ready(struct shard *sh, struct tun_eng *t, struct tun_svc *s, int idx)
{
	struct tun_conn *c = &t->conns[idx];

	c->svc = (int)(s - t->svc);
	c->deadline_ms = 0;
	if (s->vis_head >= 0) {
		int v = s->vis_head;
		struct sockaddr_storage peer = t->conns[v].peer;
		socklen_t plen = t->conns[v].peer_len;
		int vfd;

		s->vis_head = t->conns[v].next;
		if (s->vis_head < 0) {
			s->vis_tail = -1;
		}
		s->vis_n--;
		vfd = tun_conn_detach(sh, t, v);
		tun_srv_pair(sh, t, s, vfd, &peer, plen, idx);
		return;
	}
	c->kind = TC_SRV_POOL;
	/*
	 * A pooled channel is never read by us again and START_TCP is sent directly: drop the
	 * buffers (unless DATA_OK is still partly queued, which a fresh socket never leaves).
	 */
	free(c->in);
	c->in = NULL;
	c->in_cap = c->in_len = 0;
	if (!c->out_len) {
		free(c->out);
		c->out = NULL;
		c->out_cap = 0;
	}
	c->next = s->pool_head;
	s->pool_head = idx;
	s->pool_n++;
	/* Readable while pooled = the client closed it (or broke the protocol). */
	tun_conn_arm(sh, t, idx, true, false);
}

/* tun_srv_ctrl_up - a control channel authenticated for service @s. */
static void tun_srv_ctrl_up(struct shard *sh, struct tun_eng *t, struct tun_svc *s, int idx)
{
	struct tun_conn *c = &t->conns[idx];
	char a[64];
	uint8_t *out;

	if (s->ctrl >= 0) {
		pr_info(MOD, "service %s: a new control channel replaces the old one", s->name);
		tun_srv_svc_down(sh, t, s, TUN_R_REPLACED);
	}
	tun_session_init(&s->sess, c->hs);
	s->sess_live = true;
	tun_server_cleanup(c->hs);
	free(c->hs);
	c->hs = NULL;
	out = realloc(c->out, TUN_CTRL_BUF);
	if (!out) {
		tun_srv_svc_down(sh, t, s, 0);
		tun_conn_close(sh, t, idx);
		return;
	}
	c->out = out;
	c->out_cap = TUN_CTRL_BUF;
	c->kind = TC_SRV_CTRL;
	c->svc = (int)(s - t->svc);
	c->deadline_ms = 0;
	tun_liveness_init(&c->live, (int64_t)sh->now_ms, (uint32_t)t->hb_interval_s * 1000,
			  (uint32_t)t->hb_timeout_s * 1000);
	s->ctrl = idx;
	s->st.ctrl_up++;
	spec_addr_format(&c->peer, a, sizeof(a));
	pr_info(MOD, "service %s: client %s authenticated, public %s %s", s->name, a,
		s->type == TUN_SVC_TCP ? "tcp" : "udp", s->addr_txt);
	if (s->pub_fd < 0) {
		tun_pub_rebind(s);
	}
	if (s->pub_fd >= 0) {
		if (s->type == TUN_SVC_TCP && !s->pub_listening && listen(s->pub_fd, 1024)) {
			pr_warn(MOD, "service %s: listen %s: %s", s->name, s->addr_txt,
				strerror(errno));
		} else {
			s->pub_listening = true;
			s->pub_conn = tun_conn_new(t, s->pub_fd,
						   s->type == TUN_SVC_TCP ? TC_PUB_TCP : TC_PUB_UDP,
						   c->svc);
			tun_conn_arm(sh, t, s->pub_conn, true, false);
		}
	}
	if (s->type == TUN_SVC_TCP) {
		tun_srv_refill(sh, t, s);
	} else {
		tun_srv_request(sh, t, s, s->udp_channels);
	}
	tun_conn_arm(sh, t, idx, true, false);
}

/* tun_srv_refusal - count and log a refused handshake. */
static void tun_srv_refusal(struct tun_eng *t, uint64_t now_ms, struct tun_conn *c, int ret)
{
	const struct tun_server *hs = c->hs;
	const char *what = hs->chan == TUN_CHAN_DATA ? "data" : "control";
	int si = hs->service_len ? tun_svc_find(t, TUN_ROLE_SERVER, (const char *)hs->service,
						hs->service_len) :
				   -1;
	char a[64];

	t->st.hs_failed++;
	switch (hs->reason) {
	case TUN_R_AUTH:
		t->st.auth_fail++;
		break;
	case TUN_R_REPLAY:
		t->st.replay++;
		break;
	case TUN_R_UNKNOWN_SERVICE:
		t->st.unknown_service++;
		break;
	case TUN_R_UNKNOWN_SESSION:
		t->st.unknown_session++;
		break;
	default:
		t->st.protocol++;
		break;
	}
	if (hs->reason == TUN_R_REPLAY || hs->reason == TUN_R_AUTH) {
		/* A data channel's service is the one whose session it named. */
		for (int i = 0; i < TUN_SVC_MAX && hs->chan == TUN_CHAN_DATA; i++) {
			if (t->svc[i].sess_live && hs->session == &t->svc[i].sess) {
				si = i;
			}
		}
	}
	if (si >= 0 && hs->reason == TUN_R_REPLAY) {
		t->svc[si].st.replay++;
	} else if (si >= 0 && hs->reason == TUN_R_AUTH) {
		t->svc[si].st.auth_fail++;
	}
	spec_addr_format(&c->peer, a, sizeof(a));
	if (tun_log_ok(t, now_ms)) {
		pr_warn(MOD, "refused %s channel from %s%s%s: %s (%s; %lu refused so far)", what, a,
			hs->service_len ? " for service " : "",
			hs->service_len ? (const char *)hs->service : "",
			tun_reason_name(hs->reason), natx_strerror(ret),
			(unsigned long)t->st.hs_failed);
	}
}

/*
 * tun_srv_transport - the first frame of a connection picks its transport: NOISE runs the
 * NK handshake (answered with NOISE, after which everything is sealed), anything else stays
 * plaintext. Either may be refused by the server's transport setting, as may a client that
 * pinned another key. 0 = plaintext, go on with this frame; 1 = encrypted, frame consumed;
 * -1 = refused and closed.
 */
static int tun_srv_transport(struct shard *sh, struct tun_eng *t, int idx,
			     const struct tun_frame *f)
{
	struct tun_conn *c = &t->conns[idx];
	uint8_t buf[TUN_NX_FRAME_LEN + 8], reason;
	struct tun_refuse r = { .min_version = TUN_VERSION_MIN, .max_version = TUN_VERSION_MAX };
	const char *what = "plaintext", *why = "";
	struct wr w;
	char a[64];
	int ret;

	if (f->type != TUN_T_NOISE) {
		c->st = 1;
		if (t->transport != TUN_TRANSPORT_NOISE) {
			return 0;
		}
		reason = TUN_R_NOISE_REQUIRED;
		why = "this server accepts only the encrypted transport";
		t->st.noise_required++;
		goto refuse;
	}
	what = "encrypted";
	if (t->transport == TUN_TRANSPORT_PLAIN || !t->nx_key) {
		reason = TUN_R_NOISE_UNAVAILABLE;
		why = "this server has no encrypted transport";
		t->st.noise_unavailable++;
		goto refuse;
	}
	c->nx = tun_nx_new();
	if (!c->nx || !(c->nx->nk = calloc(1, sizeof(*c->nx->nk))) ||
	    tun_nk_server_init(c->nx->nk, t->nx_priv, tun_random, NULL)) {
		tun_conn_close(sh, t, idx);
		return -1;
	}
	wr_init(&w, buf, sizeof(buf));
	ret = tun_nk_server_consume(c->nx->nk, f, &w);
	if (ret == -EKEYREJECTED) {
		reason = TUN_R_NOISE_KEY;
		why = "the client pinned another server key";
		t->st.noise_key++;
		goto refuse;
	}
	if (ret) {
		reason = ret == -EPROTONOSUPPORT ? TUN_R_VERSION : TUN_R_PROTOCOL;
		why = natx_strerror(ret);
		t->st.protocol++;
		goto refuse;
	}
	if (tun_nx_raw(c->nx, buf, (size_t)(w.p - buf)) || tun_nx_start(c->nx) ||
	    tun_conn_flush(sh, t, idx)) {
		tun_conn_close(sh, t, idx);
		return -1;
	}
	c->st = 2;
	t->st.noise_ok++;
	return 1;
refuse:
	/* REFUSE goes out in plaintext: the client has no transport keys. */
	tun_nx_free(c->nx);
	c->nx = NULL;
	r.reason = reason;
	tun_conn_out(c, &w);
	if (!tun_refuse_write(&w, &r)) {
		tun_conn_out_commit(c, &w);
	}
	tun_conn_flush(sh, t, idx);
	t->st.hs_failed++;
	if (tun_log_ok(t, sh->now_ms)) {
		spec_addr_format(&c->peer, a, sizeof(a));
		pr_warn(MOD, "refused %s channel from %s: %s (%s; %lu refused so far)", what, a,
			tun_reason_name(reason), why, (unsigned long)t->st.hs_failed);
	}
	tun_conn_close(sh, t, idx);
	return -1;
}

/* tun_srv_hs_input - drive a handshake with the frames that have arrived. */
static void tun_srv_hs_input(struct shard *sh, struct tun_eng *t, int idx)
{
	struct tun_conn *c = &t->conns[idx];

	for (;;) {
		struct tun_frame f;
		struct wr w;
		int ret;

		ret = tun_conn_read_frame(c, TUN_CTRL_PAYLOAD_MAX, &f);
		if (ret == -EAGAIN) {
			tun_conn_arm(sh, t, idx, true, false);
			return;
		}
		if (ret) {
			t->st.hs_failed++;
			if (ret != -EPIPE && ret != -ECONNRESET) {
				t->st.protocol++;
			}
			tun_conn_close(sh, t, idx);
			return;
		}
		if (c->st == 0) {
			ret = tun_srv_transport(sh, t, idx, &f);
			if (ret < 0) {
				return;
			}
			if (ret == 1) {
				c->in_len = 0;
				continue;
			}
		}
		tun_conn_out(c, &w);
		ret = tun_server_consume(c->hs, &f, &w);
		tun_conn_out_commit(c, &w);
		c->in_len = 0;
		if (tun_conn_flush(sh, t, idx) && ret >= 0) {
			tun_conn_close(sh, t, idx);
			return;
		}
		if (ret < 0) {
			tun_srv_refusal(t, sh->now_ms, c, ret);
			tun_conn_close(sh, t, idx);
			return;
		}
		if (ret == 1) {
			break;
		}
	}
	t->pending--;
	t->st.hs_done++;
	/* No longer a pending handshake (closing it must not count it again); set below. */
	c->kind = TC_SRV_POOL;
	if (c->hs->chan == TUN_CHAN_CONTROL) {
		int si = tun_svc_find(t, TUN_ROLE_SERVER, (const char *)c->hs->service,
				      c->hs->service_len);

		if (si < 0) {
			tun_conn_close(sh, t, idx);
			return;
		}
		tun_srv_ctrl_up(sh, t, &t->svc[si], idx);
		return;
	}
	for (int i = 0; i < TUN_SVC_MAX; i++) {
		struct tun_svc *s = &t->svc[i];

		if (!s->sess_live || c->hs->session != &s->sess) {
			continue;
		}
		tun_server_cleanup(c->hs);
		free(c->hs);
		c->hs = NULL;
		c->svc = i;
		s->st.data_channels++;
		if (s->type == TUN_SVC_TCP) {
			tun_srv_data_ready(sh, t, s, idx);
		} else {
			tun_udp_channel_up(sh, t, s, idx);
		}
		return;
	}
	tun_conn_close(sh, t, idx);
}

/* tun_srv_ctrl_input - frames on an established control channel. */
static void tun_srv_ctrl_input(struct shard *sh, struct tun_eng *t, int idx)
{
	struct tun_conn *c = &t->conns[idx];
	struct tun_svc *s = &t->svc[c->svc];

	for (;;) {
		struct tun_frame f;
		uint32_t seq;
		uint8_t reason;
		struct wr w;
		int ret = tun_conn_read_frame(c, TUN_CTRL_PAYLOAD_MAX, &f);

		if (ret == -EAGAIN) {
			tun_conn_arm(sh, t, idx, true, false);
			return;
		}
		if (ret) {
			pr_info(MOD, "service %s: control channel closed (%s)", s->name,
				ret == -EPIPE ? "EOF" : natx_strerror(ret));
			tun_srv_svc_down(sh, t, s, ret == -EPIPE ? 0 : TUN_R_PROTOCOL);
			return;
		}
		tun_liveness_received(&c->live, (int64_t)sh->now_ms);
		if (f.type == TUN_T_HEARTBEAT && !tun_heartbeat_read(&f, &seq)) {
			tun_conn_out(c, &w);
			if (!tun_heartbeat_write(&w, true, seq)) {
				tun_conn_out_commit(c, &w);
			}
		} else if (f.type == TUN_T_HEARTBEAT_ACK && !tun_heartbeat_read(&f, &seq)) {
			/* proof of life only */
		} else if (f.type == TUN_T_GOAWAY && !tun_goaway_read(&f, &reason)) {
			pr_info(MOD, "service %s: client went away (%s)", s->name,
				tun_reason_name(reason));
			tun_srv_svc_down(sh, t, s, 0);
			return;
		} else {
			pr_warn(MOD, "service %s: unexpected frame 0x%02x on the control channel",
				s->name, f.type);
			t->st.protocol++;
			tun_srv_svc_down(sh, t, s, TUN_R_PROTOCOL);
			return;
		}
		c->in_len = 0;
		if (tun_conn_flush(sh, t, idx)) {
			tun_srv_svc_down(sh, t, s, 0);
			return;
		}
	}
}

/* tun_srv_visitors - accept visitors on a public TCP listener. */
static void tun_srv_visitors(struct shard *sh, struct tun_eng *t, int lidx)
{
	struct tun_svc *s = &t->svc[t->conns[lidx].svc];

	for (int n = 0; n < TUN_ACCEPT_BATCH; n++) {
		struct sockaddr_storage ss;
		socklen_t len = sizeof(ss);
		int fd, v;

		fd = accept4(s->pub_fd, (struct sockaddr *)&ss, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) {
			break;
		}
		if (s->max_conns && tun_svc_flows_open(t->eng, s) + s->vis_n >= s->max_conns) {
			s->st.refused_limit++;
			if (tun_log_every(s->st.refused_limit)) {
				pr_warn(MOD,
					"service %s: visitor refused, max_conns %u reached (%lu so far)",
					s->name, s->max_conns, (unsigned long)s->st.refused_limit);
			}
			close(fd);
			continue;
		}
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &(int){ 1 }, sizeof(int));
		if (s->pool_head >= 0) {
			int d = s->pool_head;

			s->pool_head = t->conns[d].next;
			s->pool_n--;
			tun_srv_pair(sh, t, s, fd, &ss, len, d);
			tun_srv_refill(sh, t, s);
			continue;
		}
		v = tun_conn_new(t, fd, TC_VISITOR, (int)(s - t->svc));
		if (v < 0) {
			close(fd);
			continue;
		}
		t->conns[v].peer = ss;
		t->conns[v].peer_len = len;
		t->conns[v].deadline_ms = sh->now_ms + t->visitor_timeout_ms;
		if (s->vis_tail >= 0) {
			t->conns[s->vis_tail].next = v;
		} else {
			s->vis_head = v;
		}
		s->vis_tail = v;
		s->vis_n++;
		tun_srv_refill(sh, t, s);
	}
	tun_conn_arm(sh, t, lidx, true, false);
}

void tun_srv_event(struct shard *sh, struct tun_eng *t, int idx, bool in, bool out)
{
	struct tun_conn *c = &t->conns[idx];

	switch (c->kind) {
	case TC_SRV_LISTEN:
		tun_srv_accept(sh, t, idx);
		break;
	case TC_SRV_HS:
		if (out && tun_conn_flush(sh, t, idx)) {
			tun_conn_close(sh, t, idx);
			return;
		}
		if (in) {
			tun_srv_hs_input(sh, t, idx);
		}
		break;
	case TC_SRV_CTRL:
		if (out && tun_conn_flush(sh, t, idx)) {
			tun_srv_svc_down(sh, t, &t->svc[c->svc], 0);
			return;
		}
		if (in) {
			tun_srv_ctrl_input(sh, t, idx);
		}
		break;
	case TC_SRV_POOL: {
		struct tun_svc *s = &t->svc[c->svc];

		/* A pooled channel has nothing to say: readable means closed or broken. */
		tun_list_remove(t, &s->pool_head, NULL, idx);
		s->pool_n--;
		tun_conn_close(sh, t, idx);
		tun_srv_refill(sh, t, s);
		break;
	}
	case TC_PUB_TCP:
		tun_srv_visitors(sh, t, idx);
		break;
	default:
		break;
	}
}

/*
 * tun_srv_l402_end - a paid service's access ended: GOAWAY(expired|quota) to its client, the
 * service down, and every open flow of it reset.
 */
static void tun_srv_l402_end(struct shard *sh, struct tun_eng *t, struct tun_svc *s)
{
	pr_warn(MOD, "service %s: paid access ended (%s): closing it and its flows", s->name,
		tun_reason_name(s->ended));
	tun_srv_svc_down(sh, t, s, s->ended);
	tun_nxb_abort_fwd(sh, t, s->fwd);
	for (uint32_t i = 0; i < sh->nalloc; i++) {
		struct flow *f = shard_flow(sh, i);

		if (f->kind != FLOW_FREE && f->state != FS_CLOSING && f->fwd == s->fwd) {
			flow_abort(sh, f, i, true);
		}
	}
}

void tun_srv_tick(struct shard *sh, struct tun_eng *t)
{
	for (int i = 0; i < TUN_SVC_MAX; i++) {
		struct tun_svc *s = &t->svc[i];

		if (s->state == TUN_SS_ACTIVE && s->l402 && !s->ended && tun_srv_l402_ended(t, s)) {
			tun_srv_l402_end(sh, t, s);
		}

		/*
		 * The oldest visitor has waited a second: a requested channel may never come
		 * (the client's connect failed). Ask once more; the nonce ring bounds this.
		 */
		if (s->state == TUN_SS_ACTIVE && s->vis_head >= 0 && s->sess_live &&
		    sh->now_ms + t->visitor_timeout_ms >=
			    t->conns[s->vis_head].deadline_ms + 1000) {
			tun_srv_request(sh, t, s, 1);
		}
		/*
		 * The pool is short and nothing was asked for 2 s: channels requested earlier were
		 * lost (the client's connect failed, a pending-handshake cap refused them). Their
		 * nonces still count as pending, so ask again outright; the ring forgets the oldest.
		 */
		if (s->state == TUN_SS_ACTIVE && s->sess_live && s->type == TUN_SVC_TCP &&
		    s->pool_n < s->pool && sh->now_ms >= s->last_req_ms + 2000) {
			tun_srv_request(sh, t, s, s->pool - s->pool_n);
		}
	}
	for (int i = 0; i < TUN_CONN_MAX && t->nconns; i++) {
		struct tun_conn *c = &t->conns[i];

		if (c->kind == TC_SRV_HS && c->deadline_ms && sh->now_ms >= c->deadline_ms) {
			t->st.hs_timeout++;
			t->st.hs_failed++;
			tun_conn_close(sh, t, i);
		} else if (c->kind == TC_VISITOR && sh->now_ms >= c->deadline_ms) {
			struct tun_svc *s = &t->svc[c->svc];

			s->st.visitor_timeout++;
			tun_list_remove(t, &s->vis_head, &s->vis_tail, i);
			s->vis_n--;
			tun_conn_close(sh, t, i);
		} else if (c->kind == TC_SRV_CTRL) {
			struct tun_svc *s = &t->svc[c->svc];
			struct wr w;

			switch (tun_liveness_poll(&c->live, (int64_t)sh->now_ms)) {
			case TUN_LIVE_DEAD:
				pr_warn(MOD,
					"service %s: client silent for %u s, closing its control channel",
					s->name, t->hb_timeout_s);
				tun_srv_svc_down(sh, t, s, 0);
				break;
			case TUN_LIVE_HEARTBEAT:
				tun_conn_out(c, &w);
				if (!tun_heartbeat_write(&w, false, c->live.seq++)) {
					tun_conn_out_commit(c, &w);
				}
				if (tun_conn_flush(sh, t, i)) {
					tun_srv_svc_down(sh, t, s, 0);
				}
				tun_liveness_sent(&c->live, (int64_t)sh->now_ms);
				break;
			default:
				break;
			}
		}
	}
}
