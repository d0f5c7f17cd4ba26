// SPDX-License-Identifier: MIT
/*
 * Tunnel conns on shard 0 (tun_eng.h): the table, one-shot polls with generations, exact
 * frame reads, buffered writes, the hand-over of a descriptor pair to an engine TCP flow,
 * and the shard hooks (completion dispatch, tick, teardown).
 */
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "engine.h"
#include "natx/log.h"
#include "natx/udata.h"
#include "tun_eng.h"
#include "tunnel/tun_crypto.h"

#define MOD "tunnel"

struct tun_conn *tun_conn_at(struct tun_eng *t, int idx)
{
	if (idx < 0 || idx >= TUN_CONN_MAX || t->conns[idx].kind == TC_FREE) {
		return NULL;
	}
	return &t->conns[idx];
}

int tun_conn_new(struct tun_eng *t, int fd, enum tun_conn_kind kind, int svc)
{
	struct tun_conn *c;
	uint16_t gen;
	int idx = t->conn_free;

	if (idx < 0) {
		return -ENOSPC;
	}
	c = &t->conns[idx];
	t->conn_free = c->next;
	gen = c->gen;
	memset(c, 0, sizeof(*c));
	c->gen = gen;
	c->kind = (uint8_t)kind;
	c->fd = fd;
	c->aux_fd = -1;
	c->svc = svc;
	c->next = -1;
	c->uch = -1;
	t->nconns++;
	return idx;
}

int tun_conn_buf(struct tun_conn *c, uint32_t in_cap, uint32_t out_cap)
{
	if (in_cap && !c->in) {
		c->in = malloc(in_cap);
		if (!c->in) {
			return -ENOMEM;
		}
		c->in_cap = in_cap;
	}
	if (out_cap && !c->out) {
		c->out = malloc(out_cap);
		if (!c->out) {
			return -ENOMEM;
		}
		c->out_cap = out_cap;
	}
	return 0;
}

void tun_conn_arm(struct shard *sh, struct tun_eng *t, int idx, bool in, bool out)
{
	struct tun_conn *c = tun_conn_at(t, idx);

	if (!c) {
		return;
	}
	for (unsigned int d = 0; d < 2; d++) {
		struct io_uring_sqe *sqe;

		if (!(d ? out : in) || (c->armed & (1U << d))) {
			continue;
		}
		sqe = shard_sqe(sh);
		if (d == 0 && c->nx && tun_nx_pending(c->nx)) {
			/* Input already decrypted in user space: the socket may never poll again. */
			io_uring_prep_nop(sqe);
		} else {
			io_uring_prep_poll_add(sqe, c->fd, d ? POLLOUT : POLLIN | POLLRDHUP);
		}
		io_uring_sqe_set_data64(sqe, udata_pack(UD_TUN, d, sh->idx, c->gen, (uint32_t)idx));
		c->armed |= (uint8_t)(1U << d);
	}
}

void tun_conn_kick(struct shard *sh, struct tun_eng *t, int idx)
{
	struct tun_conn *c = tun_conn_at(t, idx);
	struct io_uring_sqe *sqe;

	if (!c || (c->armed & 4U)) {
		return; /* an earlier kick is outstanding: its completion comes */
	}
	/* dir 2: its own armed bit, so an outstanding POLLIN (which may never fire) is no excuse */
	sqe = shard_sqe(sh);
	io_uring_prep_nop(sqe);
	io_uring_sqe_set_data64(sqe, udata_pack(UD_TUN, 2, sh->idx, c->gen, (uint32_t)idx));
	c->armed |= 4U;
}

/* tun_conn_release - remove the conn's polls, free its memory and slot; the fd is kept. */
static void tun_conn_release(struct shard *sh, struct tun_eng *t, int idx)
{
	struct tun_conn *c = &t->conns[idx];
	uint16_t gen;

	for (unsigned int d = 0; d < 2; d++) {
		if (c->armed & (1U << d)) {
			struct io_uring_sqe *sqe = shard_sqe(sh);

			io_uring_prep_poll_remove(
				sqe, udata_pack(UD_TUN, d, sh->idx, c->gen, (uint32_t)idx));
			io_uring_sqe_set_data64(sqe, udata_pack(UD_NONE, 0, sh->idx, 0, 0));
		}
	}
	if (c->hs) {
		tun_server_cleanup(c->hs);
		free(c->hs);
	}
	if (c->cl) {
		tun_client_cleanup(c->cl);
		free(c->cl);
	}
	tun_nx_free(c->nx);
	tun_nx_free(c->aux_nx);
	if (c->nxb) {
		tun_nxb_release(sh, t, idx);
	}
	free(c->in);
	free(c->out);
	gen = c->gen;
	memset(c, 0, sizeof(*c));
	c->gen = (uint16_t)(gen + 1);
	c->kind = TC_FREE;
	c->fd = -1;
	c->aux_fd = -1;
	c->next = t->conn_free;
	t->conn_free = idx;
	t->nconns--;
}

int tun_conn_detach(struct shard *sh, struct tun_eng *t, int idx)
{
	int fd = t->conns[idx].fd;

	tun_conn_release(sh, t, idx);
	return fd;
}

void tun_conn_close(struct shard *sh, struct tun_eng *t, int idx)
{
	struct tun_conn *c = tun_conn_at(t, idx);
	int fd, aux;

	if (!c) {
		return;
	}
	if (c->kind == TC_SRV_HS && t->pending) {
		t->pending--;
	}
	fd = c->fd;
	aux = c->aux_fd;
	tun_conn_release(sh, t, idx);
	if (fd >= 0) {
		close(fd);
	}
	if (aux >= 0) {
		close(aux);
	}
}

ssize_t tun_conn_recv(struct tun_conn *c, void *buf, size_t len)
{
	ssize_t n;

	if (c->nx && c->nx->on) {
		int ret = tun_nx_fill(c->fd, c->nx);

		if (ret) {
			return ret;
		}
		if (c->nx->fin && !c->nx->pt_len) {
			return -EPIPE; /* the authenticated end of stream */
		}
		n = (ssize_t)(len < c->nx->pt_len ? len : c->nx->pt_len);
		memcpy(buf, c->nx->pt, (size_t)n);
		c->nx->pt += n;
		c->nx->pt_len -= (uint32_t)n;
		return n;
	}
	n = recv(c->fd, buf, len, 0);
	if (n == 0) {
		return -EPIPE;
	}
	if (n < 0) {
		return errno == EINTR || errno == EAGAIN ? -EAGAIN : -errno;
	}
	return n;
}

int tun_conn_read_frame(struct tun_conn *c, size_t limit, struct tun_frame *f)
{
	for (;;) {
		size_t need = TUN_HDR_LEN;
		ssize_t n;
		int ret;

		if (c->in_len >= TUN_HDR_LEN) {
			ret = tun_frame_parse(c->in, c->in_len, limit, f);
			if (ret == 0) {
				return 0;
			}
			if (ret != -EAGAIN) {
				return ret;
			}
			need = TUN_HDR_LEN + ((size_t)c->in[2] << 8 | c->in[3]);
		} else if (c->in_len) {
			/* Judge type and flags as early as tun_frame_parse does. */
			ret = tun_frame_parse(c->in, c->in_len, limit, f);
			if (ret != -EAGAIN) {
				return ret;
			}
		}
		if (need > c->in_cap) {
			return -NATX_E_TOO_BIG;
		}
		n = tun_conn_recv(c, c->in + c->in_len, need - c->in_len);
		if (n < 0) {
			return (int)n;
		}
		c->in_len += (uint32_t)n;
	}
}

void tun_conn_out(struct tun_conn *c, struct wr *w)
{
	wr_init(w, c->out + c->out_len, c->out_cap - c->out_len);
}

void tun_conn_out_commit(struct tun_conn *c, const struct wr *w)
{
	c->out_len = (uint32_t)(w->p - c->out);
}

/*
 * tun_conn_flush_nx - flush through the Noise transport: queued raw bytes (the NOISE frame)
 * first, then the output buffer sealed one message at a time once the transport is on.
 */
static int tun_conn_flush_nx(struct shard *sh, struct tun_eng *t, int idx, struct tun_conn *c)
{
	struct tun_nx *nx = c->nx;
	bool moved = false;
	int ret;

	for (;;) {
		uint32_t before = nx->ct_len - nx->ct_off;

		ret = tun_nx_send(c->fd, nx);
		moved |= before != nx->ct_len - nx->ct_off;
		if (ret == -EAGAIN) {
			break;
		}
		if (ret) {
			return ret;
		}
		if (!c->out_len || !nx->on) {
			break;
		}
		{
			uint32_t n = c->out_len < TUN_NX_PLAIN_MAX ? c->out_len : TUN_NX_PLAIN_MAX;

			ret = tun_nx_seal_out(nx, c->out, n);
			if (ret) {
				return ret;
			}
			memmove(c->out, c->out + n, c->out_len - n);
			c->out_len -= n;
		}
	}
	if (moved) {
		c->last_ms = sh->now_ms;
		tun_liveness_sent(&c->live, (int64_t)sh->now_ms);
	}
	if (nx->ct_len > nx->ct_off || (c->out_len && nx->on)) {
		tun_conn_arm(sh, t, idx, false, true);
	}
	return 0;
}

int tun_conn_flush(struct shard *sh, struct tun_eng *t, int idx)
{
	struct tun_conn *c = tun_conn_at(t, idx);
	uint32_t off = 0;

	if (!c) {
		return -ENOENT;
	}
	if (c->nx) {
		return tun_conn_flush_nx(sh, t, idx, c);
	}
	while (off < c->out_len) {
		ssize_t n = send(c->fd, c->out + off, c->out_len - off, MSG_NOSIGNAL);

		if (n < 0) {
			if (errno == EINTR) {
				continue;
			}
			if (errno == EAGAIN) {
				break;
			}
			return -errno;
		}
		off += (uint32_t)n;
	}
	if (off) {
		memmove(c->out, c->out + off, c->out_len - off);
		c->out_len -= off;
		c->last_ms = sh->now_ms;
		tun_liveness_sent(&c->live, (int64_t)sh->now_ms);
	}
	if (c->out_len) {
		tun_conn_arm(sh, t, idx, false, true);
	}
	return 0;
}

uint64_t tun_svc_flows_open(struct engine *eng, const struct tun_svc *s)
{
	uint64_t n = 0;

	for (unsigned int i = 0; s->fwd && i < eng->nshards; i++) {
		n += stat_get(&s->fwd->st[i].flows_open);
	}
	return n;
}

int tun_flow_start(struct shard *sh, struct tun_svc *s, int fd0, int fd1)
{
	struct flow *f;
	uint32_t slot;

	f = sh->draining ? NULL : flow_alloc(sh, &slot); /* draining: no new flows */
	if (!f) {
		stat_add(&sh->st.drops, 1);
		close(fd0);
		close(fd1);
		return -ENOSPC;
	}
	f->kind = FLOW_TCP;
	f->state = FS_OPEN;
	f->fwd = s->fwd;
	forward_get(s->fwd);
	f->fd[0] = fd0;
	f->fd[1] = fd1;
	f->fixed = 0;
	f->last_ms = sh->now_ms;
	stat_add(&sh->st.flows_open, 1);
	stat_add(&sh->st.flows_total, 1);
	stat_add(&s->fwd->st[sh->idx].flows_open, 1);
	stat_add(&s->fwd->st[sh->idx].flows_total, 1);
	if (s->bw_bytes) {
		/* Paced before the first byte moves; the tick re-divides later. */
		s->bw_flows = 0;
		tun_bw_apply(sh, s);
	}
	tcp_flow_start(sh, f, slot);
	return 0;
}

/*
 * tun_bw_apply - the cap is the kernel's per-socket pacing (SO_MAX_PACING_RATE, bytes/s) on
 * both sockets of each of the service's flows: the relay sends at most cap/n towards the
 * visitors and cap/n towards the node, n = open flows. Re-divided when n changes (tick and
 * new flows), so the service as a whole stays under the cap in each direction.
 */
void tun_bw_apply(struct shard *sh, struct tun_svc *s)
{
	uint64_t n = 0, rate;

	if (!s->bw_bytes || !s->fwd) {
		return;
	}
	for (uint32_t i = 0; i < sh->nalloc; i++) {
		struct flow *f = shard_flow(sh, i);

		n += f->kind == FLOW_TCP && f->state == FS_OPEN && f->fwd == s->fwd;
	}
	/* Encrypted flows (tun_noise.c) share the cap: paced the same way, both sockets. */
	for (int i = 0; i < TUN_CONN_MAX && sh->eng->tun; i++) {
		const struct tun_conn *c = &sh->eng->tun->conns[i];

		n += c->kind == TC_NXB_NOISE && c->nxb && c->nxb->fwd == s->fwd;
	}
	if (n == s->bw_flows) {
		return;
	}
	s->bw_flows = n;
	rate = n ? s->bw_bytes / n : s->bw_bytes;
	if (!rate) {
		rate = 1;
	}
	for (uint32_t i = 0; n && i < sh->nalloc; i++) {
		struct flow *f = shard_flow(sh, i);

		if (f->kind != FLOW_TCP || f->state != FS_OPEN || f->fwd != s->fwd) {
			continue;
		}
		for (int d = 0; d < 2; d++) {
			if (!(f->fixed & (1U << d)) && f->fd[d] >= 0) {
				setsockopt(f->fd[d], SOL_SOCKET, SO_MAX_PACING_RATE, &rate,
					   sizeof(rate));
			}
		}
	}
	for (int i = 0; n && i < TUN_CONN_MAX && sh->eng->tun; i++) {
		const struct tun_conn *c = &sh->eng->tun->conns[i];

		if ((c->kind == TC_NXB_NOISE || c->kind == TC_NXB_PLAIN) && c->nxb &&
		    c->nxb->fwd == s->fwd) {
			setsockopt(c->fd, SOL_SOCKET, SO_MAX_PACING_RATE, &rate, sizeof(rate));
		}
	}
}

int tun_svc_find(struct tun_eng *t, enum tun_role role, const char *name, size_t len)
{
	for (int i = 0; i < TUN_SVC_MAX; i++) {
		const struct tun_svc *s = &t->svc[i];

		if ((s->state == TUN_SS_ACTIVE || s->state == TUN_SS_NEW) && s->role == role &&
		    strlen(s->name) == len && !memcmp(s->name, name, len)) {
			return i;
		}
	}
	return -1;
}

/* tun_apply - take over what the control thread changed (new and removed services). */
static void tun_apply(struct shard *sh, struct tun_eng *t)
{
	t->dirty = false;
	tun_srv_apply(sh, t);
	for (int i = 0; i < TUN_SVC_MAX; i++) {
		struct tun_svc *s = &t->svc[i];

		if (s->state == TUN_SS_NEW) {
			s->state = TUN_SS_ACTIVE;
			if (s->role == TUN_ROLE_CLIENT) {
				s->next_try_ms = sh->now_ms;
			}
		} else if (s->state == TUN_SS_REMOVING) {
			if (s->role == TUN_ROLE_SERVER) {
				tun_srv_svc_down(sh, t, s, TUN_R_SHUTDOWN);
				if (s->pub_fd >= 0) {
					close(s->pub_fd);
					s->pub_fd = -1;
				}
			} else {
				tun_cli_svc_down(sh, t, s, false);
			}
			forward_put(s->fwd);
			free(s->usess);
			free(s->macaroon);
			crypto_wipe(s->key, sizeof(s->key));
			memset(s, 0, sizeof(*s));
			s->state = TUN_SS_FREE;
		}
	}
	if (t->client_on) {
		tun_cli_tick(sh, t);
	}
}

static struct tun_eng *tun_of(struct shard *sh)
{
	return sh->idx == 0 ? __atomic_load_n(&sh->eng->tun, __ATOMIC_ACQUIRE) : NULL;
}

void tun_shard_handle_cqe(struct shard *sh, struct io_uring_cqe *cqe)
{
	struct tun_eng *t = tun_of(sh);
	uint32_t idx = udata_slot(cqe->user_data);
	unsigned int dir = udata_dir(cqe->user_data);
	struct tun_conn *c;

	if (!t) {
		return;
	}
	pthread_mutex_lock(&t->lock);
	if (dir == 3) {
		tun_apply(sh, t);
		goto unlock;
	}
	c = tun_conn_at(t, (int)idx);
	if (!c || c->gen != (uint16_t)udata_bid(cqe->user_data)) {
		goto unlock; /* a removed poll or a reused slot */
	}
	c->armed &= (uint8_t) ~(1U << dir);
	if (cqe->res == -ECANCELED) {
		goto unlock;
	}
	switch (c->kind) {
	case TC_SRV_LISTEN:
	case TC_SRV_HS:
	case TC_SRV_CTRL:
	case TC_SRV_POOL:
	case TC_PUB_TCP:
	case TC_VISITOR:
		tun_srv_event(sh, t, (int)idx, dir == 0, dir == 1);
		break;
	case TC_CLI_CTRL:
	case TC_CLI_DATA:
	case TC_CLI_LOCAL:
		tun_cli_event(sh, t, (int)idx, dir == 0, dir == 1);
		break;
	case TC_SRV_UCH:
	case TC_PUB_UDP:
	case TC_CLI_UCH:
	case TC_CLI_USESS:
		tun_udp_event(sh, t, (int)idx, dir == 0, dir == 1);
		break;
	case TC_NXB_PLAIN:
	case TC_NXB_NOISE:
		tun_nxb_event(sh, t, (int)idx, dir == 0, dir == 1);
		break;
	default:
		break;
	}
unlock:
	pthread_mutex_unlock(&t->lock);
}

void tun_shard_tick(struct shard *sh)
{
	struct tun_eng *t = tun_of(sh);

	if (!t) {
		return;
	}
	pthread_mutex_lock(&t->lock);
	if (t->dirty) {
		tun_apply(sh, t);
	}
	tun_srv_tick(sh, t);
	for (int i = 0; i < TUN_SVC_MAX; i++) {
		if (t->svc[i].state == TUN_SS_ACTIVE && t->svc[i].bw_bytes) {
			tun_bw_apply(sh, &t->svc[i]);
		}
	}
	tun_cli_tick(sh, t);
	tun_udp_tick(sh, t);
	pthread_mutex_unlock(&t->lock);
}

void tun_shard_teardown(struct shard *sh)
{
	struct tun_eng *t = tun_of(sh);

	if (!t) {
		return;
	}
	pthread_mutex_lock(&t->lock);
	/* The ring is going away: nothing is armed any more. */
	for (int i = 0; i < TUN_CONN_MAX; i++) {
		uint8_t k = t->conns[i].kind;

		if (k == TC_FREE) {
			continue;
		}
		t->conns[i].armed = 0;
		if (k == TC_SRV_LISTEN || k == TC_PUB_TCP || k == TC_PUB_UDP) {
			tun_conn_detach(sh, t, i); /* owned by tun_eng / the service */
		} else {
			tun_conn_close(sh, t, i);
		}
	}
	t->srv_conn = -1;
	for (int i = 0; i < TUN_SVC_MAX; i++) {
		struct tun_svc *s = &t->svc[i];

		s->ctrl = -1;
		s->pub_conn = -1;
		s->pool_head = s->vis_head = s->vis_tail = -1;
		s->pool_n = s->vis_n = 0;
		for (int u = 0; u < TUN_UCH_MAX; u++) {
			s->uch[u] = -1;
		}
		s->sess_live = false;
	}
	pthread_mutex_unlock(&t->lock);
}
