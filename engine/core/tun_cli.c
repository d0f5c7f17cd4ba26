// SPDX-License-Identifier: MIT
/*
 * Tunnel client (node side) on shard 0: one control channel per service, kept up with capped
 * exponential backoff and jitter (tun_backoff); a data channel per CREATE_DATA, which after
 * START_TCP connects to the local service (optionally writing a PROXY v2 header first) and
 * becomes an engine TCP flow, or after START_UDP carries the service's UDP sessions.
 */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "engine.h"
#include "natx/log.h"
#include "tun_eng.h"
#include "tunnel/tun_crypto.h"
#include "tunnel/tun_pp2.h"

#define MOD "tunnel"

enum {
	TUN_CLI_CONNECT_MS = 5000, /* TCP connect + handshake of a control channel */
	TUN_CLI_DATA_MS = 10000, /* data channel: connect + handshake; local connect */
	TUN_CLI_STABLE_MS = 10000, /* a session up this long resets the backoff */
	TUN_CLI_HS_OUT = 4096,
};

enum { CS_CONNECTING = 0, CS_HANDSHAKE, CS_UP, CS_NOISE /* waiting for the server's NOISE */ };

/* tun_cli_socket - a non-blocking TCP socket connecting to @ss. fd or -errno. */
static int tun_cli_socket(const struct sockaddr_storage *ss, socklen_t len)
{
	int fd = socket(ss->ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

	if (fd < 0) {
		return -errno;
	}
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &(int){ 1 }, sizeof(int));
	if (connect(fd, (const struct sockaddr *)ss, len) && errno != EINPROGRESS) {
		int err = -errno;

		close(fd);
		return err;
	}
	return fd;
}

/* tun_cli_connected - the pending connect's result: 0 or -errno. */
static int tun_cli_connected(int fd)
{
	int err = 0;
	socklen_t len = sizeof(err);

	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len)) {
		return -errno;
	}
	return -err;
}

void tun_cli_svc_down(struct shard *sh, struct tun_eng *t, struct tun_svc *s, bool retry)
{
	uint32_t rnd = 0;

	if (s->ctrl >= 0) {
		struct tun_conn *c = tun_conn_at(t, s->ctrl);

		if (c && c->st == CS_UP && !retry) {
			struct wr w;

			tun_conn_out(c, &w);
			if (!tun_goaway_write(&w, TUN_R_SHUTDOWN)) {
				tun_conn_out_commit(c, &w);
			}
			tun_conn_flush(sh, t, s->ctrl);
		}
		tun_conn_close(sh, t, s->ctrl);
		s->ctrl = -1;
	}
	/*
	 * Data channels still handshaking belong to the old session. Channels connecting to the
	 * local service may finish on a reconnect, but not once the service is removed (its slot
	 * may be reused).
	 */
	for (int i = 0; i < TUN_CONN_MAX && t->nconns; i++) {
		struct tun_conn *c = &t->conns[i];

		if (c->svc == (int)(s - t->svc) &&
		    (c->kind == TC_CLI_DATA || (!retry && c->kind == TC_CLI_LOCAL))) {
			tun_conn_close(sh, t, i);
		}
	}
	tun_udp_svc_reset(sh, t, s);
	if (s->up) {
		tun_backoff_session_ended(&s->bo, (uint32_t)(sh->now_ms - s->up_since_ms));
	}
	s->up = false;
	crypto_wipe(s->session_key, sizeof(s->session_key));
	if (retry) {
		tun_random(NULL, &rnd, sizeof(rnd));
		s->next_try_ms = sh->now_ms + tun_backoff_next(&s->bo, rnd);
	}
}

/* tun_cli_ctrl_open - start a control channel attempt for @s. */
static void tun_cli_ctrl_open(struct shard *sh, struct tun_eng *t, struct tun_svc *s)
{
	struct tun_conn *c;
	int fd, idx, ret;

	if (s->st.ctrl_up || s->bo.attempt) {
		s->st.reconnects++;
	}
	fd = tun_cli_socket(&t->cli_server, t->cli_server_len);
	if (fd < 0) {
		pr_debug(MOD, "service %s: connect %s: %s", s->name, t->cli_txt, strerror(-fd));
		tun_cli_svc_down(sh, t, s, true);
		return;
	}
	idx = tun_conn_new(t, fd, TC_CLI_CTRL, (int)(s - t->svc));
	if (idx < 0) {
		close(fd);
		tun_cli_svc_down(sh, t, s, true);
		return;
	}
	c = &t->conns[idx];
	s->ctrl = idx;
	c->cl = calloc(1, sizeof(*c->cl));
	if (!c->cl || tun_conn_buf(c, TUN_HDR_LEN + TUN_CTRL_PAYLOAD_MAX, TUN_CTRL_BUF)) {
		tun_cli_svc_down(sh, t, s, true);
		return;
	}
	/* Kind 2: the L402 macaroon travels, the preimage (the key) never does. */
	ret = tun_client_control_init(c->cl, s->name, s->macaroon ? TUN_CRED_L402 : TUN_CRED_TOKEN,
				      s->macaroon, s->macaroon_len, s->key, s->key_len, tun_random,
				      NULL);
	if (ret) {
		pr_err(MOD, "service %s: cannot start the handshake: %s", s->name, strerror(-ret));
		tun_cli_svc_down(sh, t, s, true);
		return;
	}
	c->st = CS_CONNECTING;
	c->deadline_ms = sh->now_ms + TUN_CLI_CONNECT_MS;
	tun_conn_arm(sh, t, idx, false, true);
}

/* tun_cli_data_open - a data channel answering CREATE_DATA(@nonce). */
static void tun_cli_data_open(struct shard *sh, struct tun_eng *t, struct tun_svc *s,
			      const uint8_t nonce[TUN_NONCE_LEN])
{
	struct tun_conn *c;
	int fd, idx;

	fd = tun_cli_socket(&t->cli_server, t->cli_server_len);
	if (fd < 0) {
		return;
	}
	idx = tun_conn_new(t, fd, TC_CLI_DATA, (int)(s - t->svc));
	if (idx < 0) {
		close(fd);
		return;
	}
	c = &t->conns[idx];
	c->cl = calloc(1, sizeof(*c->cl));
	if (!c->cl || tun_conn_buf(c, TUN_HDR_LEN + TUN_CTRL_PAYLOAD_MAX, 256)) {
		tun_conn_close(sh, t, idx);
		return;
	}
	tun_client_data_init(c->cl, s->session_id, s->session_key, nonce);
	c->cl->random = tun_random;
	c->st = CS_CONNECTING;
	c->deadline_ms = sh->now_ms + TUN_CLI_DATA_MS;
	tun_conn_arm(sh, t, idx, false, true);
}

/* tun_cli_hello - the connect finished: send HELLO and wait for the CHALLENGE. 0 or -errno. */
static int tun_cli_hello(struct shard *sh, struct tun_eng *t, int idx)
{
	struct tun_conn *c = &t->conns[idx];
	struct wr w;
	int ret = tun_cli_connected(c->fd);

	if (ret) {
		return ret;
	}
	if (t->svc[c->svc].noise) {
		/* Encrypted transport: NOISE (NK message 1) first, HELLO once it is answered. */
		uint8_t buf[TUN_NX_FRAME_LEN];

		c->nx = tun_nx_new();
		if (!c->nx || !(c->nx->nk = calloc(1, sizeof(*c->nx->nk)))) {
			return -ENOMEM;
		}
		wr_init(&w, buf, sizeof(buf));
		ret = tun_nk_client_start(c->nx->nk, t->svc[c->svc].server_pub, tun_random, NULL,
					  &w);
		if (!ret) {
			ret = tun_nx_raw(c->nx, buf, (size_t)(w.p - buf));
		}
		if (ret) {
			return ret;
		}
		c->st = CS_NOISE;
		ret = tun_conn_flush(sh, t, idx);
		if (!ret) {
			tun_conn_arm(sh, t, idx, true, false);
		}
		return ret;
	}
	tun_conn_out(c, &w);
	ret = tun_client_hello(c->cl, &w);
	if (ret) {
		return ret;
	}
	tun_conn_out_commit(c, &w);
	c->st = CS_HANDSHAKE;
	ret = tun_conn_flush(sh, t, idx);
	if (!ret) {
		tun_conn_arm(sh, t, idx, true, false);
	}
	return ret;
}

/*
 * tun_cli_noise - the server's answer to NOISE: on success the transport is on and HELLO is
 * queued (sealed); a refusal or a server that does not hold the pinned key's private half is
 * counted and logged. 0 or the error.
 */
static int tun_cli_noise(struct shard *sh, struct tun_eng *t, int idx, const struct tun_frame *f)
{
	struct tun_conn *c = &t->conns[idx];
	struct tun_svc *s = &t->svc[c->svc];
	uint8_t reason;
	struct wr w;
	int ret = tun_nk_client_consume(c->nx->nk, f, &reason);

	if (ret) {
		s->st.noise_fail++;
		pr_warn(MOD, "service %s: server %s refused the encrypted %s channel: %s (%s)",
			s->name, t->cli_txt, c->kind == TC_CLI_CTRL ? "control" : "data",
			reason ? tun_reason_name(reason) : "bad NOISE answer",
			ret == -EKEYREJECTED ? "the server's key is not the pinned server_pubkey" :
					       natx_strerror(ret));
		return ret;
	}
	ret = tun_nx_start(c->nx);
	if (ret) {
		return ret;
	}
	tun_conn_out(c, &w);
	ret = tun_client_hello(c->cl, &w);
	if (ret) {
		return ret;
	}
	tun_conn_out_commit(c, &w);
	c->st = CS_HANDSHAKE;
	(void)sh;
	return 0;
}

/* tun_cli_ctrl_frame - one frame on an established control channel; 0 or negative = down. */
static int tun_cli_ctrl_frame(struct shard *sh, struct tun_eng *t, struct tun_svc *s,
			      struct tun_conn *c, const struct tun_frame *f)
{
	uint8_t nonce[TUN_NONCE_LEN], reason;
	uint32_t seq;
	struct wr w;

	tun_liveness_received(&c->live, (int64_t)sh->now_ms);
	switch (f->type) {
	case TUN_T_CREATE_DATA:
		if (tun_create_data_read(f, nonce)) {
			return -NATX_E_PROTO;
		}
		tun_cli_data_open(sh, t, s, nonce);
		return 0;
	case TUN_T_HEARTBEAT:
		if (tun_heartbeat_read(f, &seq)) {
			return -NATX_E_PROTO;
		}
		tun_conn_out(c, &w);
		if (!tun_heartbeat_write(&w, true, seq)) {
			tun_conn_out_commit(c, &w);
		}
		return 0;
	case TUN_T_HEARTBEAT_ACK:
		return tun_heartbeat_read(f, &seq) ? -NATX_E_PROTO : 0;
	case TUN_T_GOAWAY:
		if (tun_goaway_read(f, &reason)) {
			return -NATX_E_PROTO;
		}
		pr_info(MOD, "service %s: server sent GOAWAY (%s)", s->name,
			tun_reason_name(reason));
		return -ECONNRESET;
	default:
		return -NATX_E_PROTO;
	}
}

/* tun_cli_ctrl_input - handshake and control frames. */
static void tun_cli_ctrl_input(struct shard *sh, struct tun_eng *t, int idx)
{
	struct tun_conn *c = &t->conns[idx];
	struct tun_svc *s = &t->svc[c->svc];

	for (;;) {
		struct tun_frame f;
		struct wr w;
		int ret = tun_conn_read_frame(c, TUN_CTRL_PAYLOAD_MAX, &f);

		if (ret == -EAGAIN) {
			tun_conn_arm(sh, t, idx, true, false);
			return;
		}
		if (ret) {
			pr_info(MOD, "service %s: control channel to %s lost (%s)", s->name,
				t->cli_txt, ret == -EPIPE ? "EOF" : natx_strerror(ret));
			tun_cli_svc_down(sh, t, s, true);
			return;
		}
		if (c->st == CS_UP) {
			ret = tun_cli_ctrl_frame(sh, t, s, c, &f);
		} else if (c->st == CS_NOISE) {
			ret = tun_cli_noise(sh, t, idx, &f);
		} else {
			tun_conn_out(c, &w);
			ret = tun_client_consume(c->cl, &f, &w);
			tun_conn_out_commit(c, &w);
			if (ret < 0) {
				pr_warn(MOD,
					"service %s: server %s refused the control channel: %s (%s)",
					s->name, t->cli_txt,
					c->cl->refused.reason ?
						tun_reason_name(c->cl->refused.reason) :
						"bad server proof or frame",
					natx_strerror(ret));
			} else if (ret == 1) {
				memcpy(s->session_id, c->cl->session_id, TUN_SESSION_ID_LEN);
				memcpy(s->session_key, c->cl->session_key, TUN_SESSION_KEY_LEN);
				tun_liveness_init(&c->live, (int64_t)sh->now_ms,
						  (uint32_t)c->cl->heartbeat_interval * 1000,
						  (uint32_t)c->cl->heartbeat_timeout * 1000);
				tun_client_cleanup(c->cl);
				free(c->cl);
				c->cl = NULL;
				c->st = CS_UP;
				c->deadline_ms = 0;
				s->up = true;
				s->up_since_ms = sh->now_ms;
				s->st.ctrl_up++;
				pr_info(MOD, "service %s: control channel to %s up", s->name,
					t->cli_txt);
				ret = 0;
			}
		}
		c->in_len = 0;
		if (!ret) {
			ret = tun_conn_flush(sh, t, idx);
		}
		if (ret) {
			tun_cli_svc_down(sh, t, s, true);
			return;
		}
	}
}

/* tun_cli_local_open - START_TCP arrived on data channel @idx: connect to the local service. */
static void tun_cli_local_open(struct shard *sh, struct tun_eng *t, int idx)
{
	struct tun_conn *c = &t->conns[idx];
	struct tun_svc *s = &t->svc[c->svc];
	int fd = tun_cli_socket(&s->addr, s->addr_len);

	if (fd < 0) {
		pr_warn(MOD, "service %s: local %s: %s", s->name, s->addr_txt, strerror(-fd));
		tun_conn_close(sh, t, idx);
		return;
	}
	c->aux_fd = c->fd;
	c->fd = fd;
	c->aux_nx = c->nx; /* the data channel's transport (bytes after START may wait in it) */
	c->nx = NULL;
	c->kind = TC_CLI_LOCAL;
	c->deadline_ms = sh->now_ms + TUN_CLI_DATA_MS;
	tun_conn_arm(sh, t, idx, false, true);
}

/* tun_cli_local_up - the local connect finished: PROXY header, then the flow. */
static void tun_cli_local_up(struct shard *sh, struct tun_eng *t, int idx)
{
	struct tun_conn *c = &t->conns[idx];
	struct tun_svc *s = &t->svc[c->svc];
	int ret = tun_cli_connected(c->fd), lfd, dfd;

	if (!ret && s->proxy_protocol) {
		uint8_t buf[TUN_PP2_V6_LEN];
		struct wr w;

		wr_init(&w, buf, sizeof(buf));
		ret = tun_pp2_write(&w, false, &c->start.src, &c->start.dst);
		if (!ret && send(c->fd, buf, (size_t)(w.p - buf), MSG_NOSIGNAL) != w.p - buf) {
			ret = -EIO;
		}
	}
	if (ret) {
		pr_warn(MOD, "service %s: local %s: %s", s->name, s->addr_txt, natx_strerror(ret));
		tun_conn_close(sh, t, idx);
		return;
	}
	dfd = c->aux_fd;
	c->aux_fd = -1;
	if (c->aux_nx) {
		struct tun_nx *nx = c->aux_nx;

		c->aux_nx = NULL;
		lfd = tun_conn_detach(sh, t, idx);
		s->st.visitors++;
		tun_nxb_start(sh, t, s, lfd, dfd, nx);
		return;
	}
	lfd = tun_conn_detach(sh, t, idx);
	s->st.visitors++;
	tun_flow_start(sh, s, dfd, lfd);
}

/*
 * tun_cli_data_shrink - an authenticated data channel waits (maybe long, in the server's
 * pool) for one START frame of at most 44 bytes: keep only that much buffer.
 */
static void tun_cli_data_shrink(struct tun_conn *c)
{
	enum { START_MAX = TUN_HDR_LEN + 40 };
	uint8_t *in;

	if (c->in_len <= START_MAX && c->in_cap > START_MAX) {
		in = realloc(c->in, START_MAX);
		if (in) {
			c->in = in;
			c->in_cap = START_MAX;
		}
	}
	if (!c->out_len) {
		free(c->out);
		c->out = NULL;
		c->out_cap = 0;
	}
}

/* tun_cli_data_input - data channel handshake, then its START frame. */
static void tun_cli_data_input(struct shard *sh, struct tun_eng *t, int idx)
{
	struct tun_conn *c = &t->conns[idx];
	struct tun_svc *s = &t->svc[c->svc];

	for (;;) {
		struct tun_frame f;
		struct wr w;
		int ret = tun_conn_read_frame(c, TUN_CTRL_PAYLOAD_MAX, &f);

		if (ret == -EAGAIN) {
			tun_conn_arm(sh, t, idx, true, false);
			return;
		}
		if (ret) {
			tun_conn_close(sh, t, idx);
			return;
		}
		if (c->st == CS_UP) {
			bool udp = f.type == TUN_T_START_UDP;

			c->in_len = 0;
			if ((f.type != TUN_T_START_TCP && !udp) || tun_start_read(&f, &c->start) ||
			    udp != (s->type == TUN_SVC_UDP)) {
				pr_warn(MOD, "service %s: bad START on a data channel (0x%02x)",
					s->name, f.type);
				tun_conn_close(sh, t, idx);
				return;
			}
			if (udp) {
				tun_udp_channel_up(sh, t, s, idx);
			} else {
				tun_cli_local_open(sh, t, idx);
			}
			return;
		}
		if (c->st == CS_NOISE) {
			c->in_len = 0;
			if (tun_cli_noise(sh, t, idx, &f) || tun_conn_flush(sh, t, idx)) {
				tun_conn_close(sh, t, idx);
				return;
			}
			continue;
		}
		tun_conn_out(c, &w);
		ret = tun_client_consume(c->cl, &f, &w);
		tun_conn_out_commit(c, &w);
		c->in_len = 0;
		if (ret < 0) {
			pr_warn(MOD, "service %s: data channel refused: %s", s->name,
				c->cl->refused.reason ? tun_reason_name(c->cl->refused.reason) :
							natx_strerror(ret));
			tun_conn_close(sh, t, idx);
			return;
		}
		if (ret == 1) {
			tun_client_cleanup(c->cl);
			free(c->cl);
			c->cl = NULL;
			c->st = CS_UP;
			c->deadline_ms = 0; /* pooled on the server until a visitor comes */
			s->st.data_channels++;
			tun_cli_data_shrink(c);
		}
		if (tun_conn_flush(sh, t, idx)) {
			tun_conn_close(sh, t, idx);
			return;
		}
	}
}

void tun_cli_event(struct shard *sh, struct tun_eng *t, int idx, bool in, bool out)
{
	struct tun_conn *c = &t->conns[idx];
	struct tun_svc *s = &t->svc[c->svc];
	int ret;

	switch (c->kind) {
	case TC_CLI_CTRL:
		if (out && c->st == CS_CONNECTING) {
			ret = tun_cli_hello(sh, t, idx);
			if (ret) {
				pr_debug(MOD, "service %s: connect %s: %s", s->name, t->cli_txt,
					 strerror(-ret));
				tun_cli_svc_down(sh, t, s, true);
			}
			return;
		}
		if (out && tun_conn_flush(sh, t, idx)) {
			tun_cli_svc_down(sh, t, s, true);
			return;
		}
		if (in) {
			tun_cli_ctrl_input(sh, t, idx);
		}
		break;
	case TC_CLI_DATA:
		if (out && c->st == CS_CONNECTING) {
			if (tun_cli_hello(sh, t, idx)) {
				tun_conn_close(sh, t, idx);
			}
			return;
		}
		if (out && tun_conn_flush(sh, t, idx)) {
			tun_conn_close(sh, t, idx);
			return;
		}
		if (in) {
			tun_cli_data_input(sh, t, idx);
		}
		break;
	case TC_CLI_LOCAL:
		if (out) {
			tun_cli_local_up(sh, t, idx);
		}
		break;
	default:
		break;
	}
}

void tun_cli_tick(struct shard *sh, struct tun_eng *t)
{
	for (int i = 0; i < TUN_SVC_MAX && t->client_on; i++) {
		struct tun_svc *s = &t->svc[i];

		if (s->state == TUN_SS_ACTIVE && s->role == TUN_ROLE_CLIENT && s->ctrl < 0 &&
		    sh->now_ms >= s->next_try_ms) {
			tun_cli_ctrl_open(sh, t, s);
		}
	}
	for (int i = 0; i < TUN_CONN_MAX && t->nconns; i++) {
		struct tun_conn *c = &t->conns[i];
		struct tun_svc *s;
		struct wr w;

		if (c->kind != TC_CLI_CTRL && c->kind != TC_CLI_DATA && c->kind != TC_CLI_LOCAL) {
			continue;
		}
		s = &t->svc[c->svc];
		if (c->deadline_ms && sh->now_ms >= c->deadline_ms) {
			if (c->kind == TC_CLI_CTRL) {
				pr_debug(MOD, "service %s: control channel attempt timed out",
					 s->name);
				tun_cli_svc_down(sh, t, s, true);
			} else {
				tun_conn_close(sh, t, i);
			}
			continue;
		}
		if (c->kind != TC_CLI_CTRL || c->st != CS_UP) {
			continue;
		}
		switch (tun_liveness_poll(&c->live, (int64_t)sh->now_ms)) {
		case TUN_LIVE_DEAD:
			pr_warn(MOD, "service %s: server silent, reconnecting", s->name);
			tun_cli_svc_down(sh, t, s, true);
			break;
		case TUN_LIVE_HEARTBEAT:
			tun_conn_out(c, &w);
			if (!tun_heartbeat_write(&w, false, c->live.seq++)) {
				tun_conn_out_commit(c, &w);
			}
			if (tun_conn_flush(sh, t, i)) {
				tun_cli_svc_down(sh, t, s, true);
			}
			tun_liveness_sent(&c->live, (int64_t)sh->now_ms);
			break;
		default:
			break;
		}
	}
}
