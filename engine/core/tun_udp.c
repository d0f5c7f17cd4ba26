// SPDX-License-Identifier: MIT
/*
 * UDP services of the tunnel (shard 0). The server keeps one session per visitor address on
 * the service's public socket and binds each new session to one of the service's UDP data
 * channels, round-robin, announcing it with UDP_OPEN; datagrams travel as UDP_DATA frames
 * (explicit length, never truncated). The client opens one connected UDP socket towards the
 * local service per session, so replies are routed back to the right visitor. Sessions idle
 * for udp_idle_ms are closed with UDP_CLOSE by either side. A channel whose output buffer is
 * full drops datagrams of its own sessions only (UDP semantics); other channels are unaffected.
 */
#include <errno.h>
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

enum { TUN_UDP_BATCH = 64 };

/* tun_usess_find - session @id on channel @ch, or NULL. */
static struct tun_usess *tun_usess_find(struct tun_svc *s, uint32_t id, int ch)
{
	for (uint32_t i = 0; s->usess && i < TUN_USESS_MAX; i++) {
		if (s->usess[i].used && s->usess[i].id == id && s->usess[i].ch == ch) {
			return &s->usess[i];
		}
	}
	return NULL;
}

/* tun_usess_free - forget a session (closing the client's local socket). */
static void tun_usess_free(struct shard *sh, struct tun_eng *t, struct tun_svc *s,
			   struct tun_usess *u)
{
	if (s->role == TUN_ROLE_CLIENT && u->conn >= 0) {
		tun_conn_close(sh, t, u->conn);
	}
	memset(u, 0, sizeof(*u));
	u->conn = -1;
	s->nusess--;
}

/* tun_uch_send - queue one frame on UDP channel @ch; false when it does not fit (dropped). */
static bool tun_uch_send(struct shard *sh, struct tun_eng *t, struct tun_svc *s, int ch,
			 enum tun_type type, uint32_t id, const void *data, size_t len,
			 const struct tun_udp *open)
{
	struct tun_conn *c = ch >= 0 && ch < TUN_UCH_MAX ? tun_conn_at(t, s->uch[ch]) : NULL;
	struct wr w;
	int ret;

	if (!c) {
		return false;
	}
	tun_conn_out(c, &w);
	switch (type) {
	case TUN_T_UDP_OPEN:
		ret = tun_udp_open_write(&w, open);
		break;
	case TUN_T_UDP_DATA:
		ret = tun_udp_data_write(&w, id, data, len);
		break;
	default:
		ret = tun_udp_close_write(&w, id);
		break;
	}
	if (ret) {
		return false; /* the writer holds a partial frame: not committed */
	}
	tun_conn_out_commit(c, &w);
	return true;
}

/* tun_uch_lost - channel @ch is gone: drop its sessions, ask for a replacement. */
static void tun_uch_lost(struct shard *sh, struct tun_eng *t, struct tun_svc *s, int ch)
{
	int idx = s->uch[ch];

	s->uch[ch] = -1;
	for (uint32_t i = 0; s->usess && i < TUN_USESS_MAX; i++) {
		if (s->usess[i].used && s->usess[i].ch == ch) {
			tun_usess_free(sh, t, s, &s->usess[i]);
		}
	}
	tun_conn_close(sh, t, idx);
	if (s->role == TUN_ROLE_SERVER && s->sess_live && s->ctrl >= 0) {
		struct tun_conn *c = tun_conn_at(t, s->ctrl);
		struct wr w;

		tun_conn_out(c, &w);
		if (!tun_session_data_request(&s->sess, tun_random, NULL, &w)) {
			tun_conn_out_commit(c, &w);
		}
		tun_conn_flush(sh, t, s->ctrl);
	}
}

void tun_udp_channel_up(struct shard *sh, struct tun_eng *t, struct tun_svc *s, int idx)
{
	struct tun_conn *c = &t->conns[idx];
	uint8_t *in, *out;
	int ch = -1;

	for (int i = 0; i < TUN_UCH_MAX && i < (int)s->udp_channels; i++) {
		if (s->uch[i] < 0) {
			ch = i;
			break;
		}
	}
	if (s->role == TUN_ROLE_CLIENT && ch < 0) {
		for (int i = 0; i < TUN_UCH_MAX; i++) {
			if (s->uch[i] < 0) {
				ch = i;
				break;
			}
		}
	}
	if (!s->usess) {
		s->usess = calloc(TUN_USESS_MAX, sizeof(*s->usess));
	}
	in = realloc(c->in, TUN_HDR_LEN + TUN_UDP_PAYLOAD_MAX);
	if (in) {
		c->in = in;
		c->in_cap = TUN_HDR_LEN + TUN_UDP_PAYLOAD_MAX;
	}
	out = in ? realloc(c->out, TUN_UCH_BUF) : NULL;
	if (out) {
		c->out = out;
		c->out_cap = TUN_UCH_BUF;
	}
	if (ch < 0 || !s->usess || !in || !out) {
		tun_conn_close(sh, t, idx);
		return;
	}
	c->kind = s->role == TUN_ROLE_SERVER ? TC_SRV_UCH : TC_CLI_UCH;
	c->uch = ch;
	c->svc = (int)(s - t->svc);
	c->deadline_ms = 0;
	c->in_len = 0;
	s->uch[ch] = idx;
	if (s->role == TUN_ROLE_SERVER) {
		struct wr w;

		tun_conn_out(c, &w);
		if (tun_start_write(&w, true, NULL) || (tun_conn_out_commit(c, &w), 0) ||
		    tun_conn_flush(sh, t, idx)) {
			tun_uch_lost(sh, t, s, ch);
			return;
		}
	}
	tun_conn_arm(sh, t, idx, true, false);
}

void tun_udp_svc_reset(struct shard *sh, struct tun_eng *t, struct tun_svc *s)
{
	for (uint32_t i = 0; s->usess && i < TUN_USESS_MAX; i++) {
		if (s->usess[i].used) {
			tun_usess_free(sh, t, s, &s->usess[i]);
		}
	}
	for (int ch = 0; ch < TUN_UCH_MAX; ch++) {
		if (s->uch[ch] >= 0) {
			tun_conn_close(sh, t, s->uch[ch]);
			s->uch[ch] = -1;
		}
	}
	s->nusess = 0;
}

/* tun_udp_pub_input - datagrams from visitors on a service's public socket (server). */
static void tun_udp_pub_input(struct shard *sh, struct tun_eng *t, int idx)
{
	struct tun_svc *s = &t->svc[t->conns[idx].svc];
	bool flush[TUN_UCH_MAX] = { false };

	for (int n = 0; n < TUN_UDP_BATCH; n++) {
		struct sockaddr_storage ss;
		socklen_t len = sizeof(ss);
		struct tun_usess *u = NULL, *fr = NULL;
		ssize_t got;

		got = recvfrom(s->pub_fd, t->udp_buf, TUN_UDP_DGRAM_MAX, 0, (struct sockaddr *)&ss,
			       &len);
		if (got < 0) {
			break;
		}
		s->st.udp_in++;
		for (uint32_t i = 0; s->usess && i < TUN_USESS_MAX; i++) {
			if (!s->usess[i].used) {
				fr = fr ? fr : &s->usess[i];
			} else if (s->usess[i].peer_len == len &&
				   !memcmp(&s->usess[i].peer, &ss, len)) {
				u = &s->usess[i];
				break;
			}
		}
		if (!u) {
			struct tun_udp open = { 0 };
			int ch = -1;

			for (uint32_t k = 0; k < s->udp_channels; k++) {
				uint32_t c = (s->next_usess + k) % s->udp_channels;

				if (s->uch[c] >= 0) {
					ch = (int)c;
					break;
				}
			}
			if (!fr || ch < 0) {
				s->st.udp_drops++;
				continue;
			}
			open.session = ++s->next_usess;
			if (tun_addr_from_sockaddr(&open.src, (struct sockaddr *)&ss, len) ||
			    tun_addr_from_sockaddr(&open.dst, (struct sockaddr *)&s->addr,
						   s->addr_len) ||
			    !tun_uch_send(sh, t, s, ch, TUN_T_UDP_OPEN, open.session, NULL, 0,
					  &open)) {
				s->st.udp_drops++;
				continue;
			}
			u = fr;
			u->used = true;
			u->id = open.session;
			u->ch = (uint8_t)ch;
			u->conn = -1;
			u->peer = ss;
			u->peer_len = len;
			s->nusess++;
			s->st.visitors++;
		}
		u->last_ms = sh->now_ms;
		if (tun_uch_send(sh, t, s, u->ch, TUN_T_UDP_DATA, u->id, t->udp_buf, (size_t)got,
				 NULL)) {
			s->st.udp_bytes += (uint64_t)got;
			flush[u->ch] = true;
		} else {
			s->st.udp_drops++;
		}
	}
	for (int ch = 0; ch < TUN_UCH_MAX; ch++) {
		if (flush[ch] && s->uch[ch] >= 0 && tun_conn_flush(sh, t, s->uch[ch])) {
			tun_uch_lost(sh, t, s, ch);
		}
	}
	tun_conn_arm(sh, t, idx, true, false);
}

/* tun_udp_local_open - client: UDP_OPEN, a socket towards the local service. */
static void tun_udp_local_open(struct shard *sh, struct tun_eng *t, struct tun_svc *s, int ch,
			       uint32_t id)
{
	struct tun_usess *u = NULL;
	int fd, c;

	if (tun_usess_find(s, id, ch)) {
		return;
	}
	for (uint32_t i = 0; i < TUN_USESS_MAX; i++) {
		if (!s->usess[i].used) {
			u = &s->usess[i];
			break;
		}
	}
	if (!u) {
		s->st.udp_drops++;
		return;
	}
	fd = socket(s->addr.ss_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		return;
	}
	if (connect(fd, (struct sockaddr *)&s->addr, s->addr_len)) {
		close(fd);
		return;
	}
	c = tun_conn_new(t, fd, TC_CLI_USESS, (int)(s - t->svc));
	if (c < 0) {
		close(fd);
		return;
	}
	t->conns[c].uch = ch;
	t->conns[c].st = 0;
	u->used = true;
	u->id = id;
	u->ch = (uint8_t)ch;
	u->conn = c;
	u->last_ms = sh->now_ms;
	s->nusess++;
	s->st.visitors++;
	memcpy(&t->conns[c].peer, &id, sizeof(id)); /* the session id, for replies */
	tun_conn_arm(sh, t, c, true, false);
}

/* tun_udp_ch_input - frames on a UDP data channel (both sides). */
static void tun_udp_ch_input(struct shard *sh, struct tun_eng *t, int idx)
{
	struct tun_conn *c = &t->conns[idx];
	struct tun_svc *s = &t->svc[c->svc];
	int ch = c->uch;

	for (int n = 0; n < TUN_UDP_BATCH * 4; n++) {
		struct tun_usess *u;
		struct tun_frame f;
		struct tun_udp m;
		int ret = tun_conn_read_frame(c, TUN_UDP_PAYLOAD_MAX, &f);

		if (ret == -EAGAIN) {
			tun_conn_arm(sh, t, idx, true, false);
			return;
		}
		if (ret ||
		    (f.type != TUN_T_UDP_OPEN && f.type != TUN_T_UDP_DATA &&
		     f.type != TUN_T_UDP_CLOSE) ||
		    tun_udp_read(&f, &m) ||
		    (f.type == TUN_T_UDP_OPEN && s->role == TUN_ROLE_SERVER)) {
			if (ret != -EPIPE) {
				pr_warn(MOD, "service %s: UDP channel %d: %s", s->name, ch,
					ret ? natx_strerror(ret) : "unexpected frame");
			}
			tun_uch_lost(sh, t, s, ch);
			return;
		}
		c->in_len = 0;
		if (f.type == TUN_T_UDP_OPEN) {
			tun_udp_local_open(sh, t, s, ch, m.session);
			continue;
		}
		u = tun_usess_find(s, m.session, ch);
		if (!u) {
			continue; /* closed meanwhile */
		}
		if (f.type == TUN_T_UDP_CLOSE) {
			tun_usess_free(sh, t, s, u);
			continue;
		}
		u->last_ms = sh->now_ms;
		if (s->role == TUN_ROLE_SERVER) {
			if (sendto(s->pub_fd, m.data, m.len, 0, (struct sockaddr *)&u->peer,
				   u->peer_len) < 0) {
				s->st.udp_drops++;
			} else {
				s->st.udp_out++;
			}
		} else {
			struct tun_conn *sc = tun_conn_at(t, u->conn);

			if (!sc || send(sc->fd, m.data, m.len, 0) < 0) {
				s->st.udp_drops++;
			} else {
				s->st.udp_in++;
				s->st.udp_bytes += m.len;
			}
		}
	}
	tun_conn_arm(sh, t, idx, true, false);
}

/* tun_udp_sess_input - client: replies of the local service for one session. */
static void tun_udp_sess_input(struct shard *sh, struct tun_eng *t, int idx)
{
	struct tun_conn *c = &t->conns[idx];
	struct tun_svc *s = &t->svc[c->svc];
	int ch = c->uch;
	uint32_t id;
	struct tun_usess *u;
	bool sent = false;

	memcpy(&id, &c->peer, sizeof(id));
	u = tun_usess_find(s, id, ch);
	for (int n = 0; n < TUN_UDP_BATCH; n++) {
		ssize_t got = recv(c->fd, t->udp_buf, TUN_UDP_DGRAM_MAX, 0);

		if (got < 0) {
			break; /* EAGAIN, or ICMP refused from a local service that is down */
		}
		if (u) {
			u->last_ms = sh->now_ms;
		}
		if (tun_uch_send(sh, t, s, ch, TUN_T_UDP_DATA, id, t->udp_buf, (size_t)got, NULL)) {
			s->st.udp_out++;
			sent = true;
		} else {
			s->st.udp_drops++;
		}
	}
	tun_conn_arm(sh, t, idx, true, false);
	if (sent && s->uch[ch] >= 0 && tun_conn_flush(sh, t, s->uch[ch])) {
		tun_uch_lost(sh, t, s, ch);
	}
}

void tun_udp_event(struct shard *sh, struct tun_eng *t, int idx, bool in, bool out)
{
	struct tun_conn *c = &t->conns[idx];
	struct tun_svc *s = &t->svc[c->svc];

	switch (c->kind) {
	case TC_PUB_UDP:
		tun_udp_pub_input(sh, t, idx);
		break;
	case TC_SRV_UCH:
	case TC_CLI_UCH:
		if (out && tun_conn_flush(sh, t, idx)) {
			tun_uch_lost(sh, t, s, c->uch);
			return;
		}
		if (in) {
			tun_udp_ch_input(sh, t, idx);
		}
		break;
	case TC_CLI_USESS:
		tun_udp_sess_input(sh, t, idx);
		break;
	default:
		break;
	}
}

void tun_udp_tick(struct shard *sh, struct tun_eng *t)
{
	for (int i = 0; i < TUN_SVC_MAX; i++) {
		struct tun_svc *s = &t->svc[i];
		bool flush[TUN_UCH_MAX] = { false };

		if (s->state != TUN_SS_ACTIVE || !s->usess || !s->nusess) {
			continue;
		}
		for (uint32_t k = 0; k < TUN_USESS_MAX; k++) {
			struct tun_usess *u = &s->usess[k];

			if (!u->used || sh->now_ms - u->last_ms < t->udp_idle_ms) {
				continue;
			}
			if (tun_uch_send(sh, t, s, u->ch, TUN_T_UDP_CLOSE, u->id, NULL, 0, NULL)) {
				flush[u->ch] = true;
			}
			tun_usess_free(sh, t, s, u);
		}
		for (int ch = 0; ch < TUN_UCH_MAX; ch++) {
			if (flush[ch] && s->uch[ch] >= 0 && tun_conn_flush(sh, t, s->uch[ch])) {
				tun_uch_lost(sh, t, s, ch);
			}
		}
	}
}
