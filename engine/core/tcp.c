// SPDX-License-Identifier: MIT
/*
 * TCP forwarding on a shard. A flow is two sockets: fd[0] (client, accepted) and fd[1]
 * (upstream, connected). Direction i carries bytes read from fd[i] to fd[1 - i].
 *
 * uring mode: multishot recv with provided buffers on both sockets; each received buffer is
 * queued on its direction and sent from the same memory to the peer (one send in flight per
 * direction, so bytes stay in order); the buffer returns to the ring on the send's CQE (or
 * the zero-copy notification). When a direction has flow_buffer_limit bytes queued its recv
 * is cancelled and re-armed once half of that has been sent.
 *
 * splice mode: one-shot POLLIN on the source; when it fires the shard moves bytes with
 * splice(2) socket -> pipe -> socket without copying them through user space. The pipe
 * (created on the first data, sized flow_buffer_limit) is the direction's bound: a full pipe
 * waits for POLLOUT on the destination instead of reading more.
 *
 * Both modes: EOF on fd[i] shuts down fd[1 - i] for writing once direction i is drained;
 * the flow closes when both directions are shut. A reset or error on either side closes
 * both with SO_LINGER 0, so the other end sees a reset too.
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "engine.h"
#include "natx/log.h"
#include "natx/udata.h"

#define MOD "tcp"

/* tcp_dir_finish - propagate EOF of direction @i once everything read has been sent. */
static void tcp_dir_finish(struct shard *sh, struct flow *f, uint32_t slot, unsigned int i)
{
	struct flow_dir *d = &f->d[i];

	if (f->state != FS_OPEN || !d->eof || d->shut || d->queued || d->qhead != BUF_NONE ||
	    d->send_busy) {
		return;
	}
	/*
	 * The last shutdown is left to the close: fd[1 - i] has read to EOF and holds no
	 * unread data, so closing it sends the same FIN, one syscall fewer per flow (and for
	 * a direct descriptor, a shutdown through the ring runs in a worker and could
	 * otherwise race the close of its slot).
	 */
	if (!f->d[1 - i].shut) {
		flow_fd_shutdown_wr(sh, f, 1 - i);
	}
	d->shut = 1;
	if (f->d[0].shut && f->d[1].shut) {
		flow_abort(sh, f, slot, false);
	}
}

/* tcp_maybe_rearm - resume reading fd[@i] when its direction has drained enough. */
static void tcp_maybe_rearm(struct shard *sh, struct flow *f, uint32_t slot, unsigned int i)
{
	struct flow_dir *d = &f->d[i];

	if (!d->recv_armed && !d->eof && !d->starved &&
	    d->queued <= sh->eng->cfg->flow_buffer_limit / 2) {
		flow_arm_recv(sh, f, slot, i);
	}
}

/* tcp_send_kick - start sending the head buffer of direction @i, if idle. */
static void tcp_send_kick(struct shard *sh, struct flow *f, uint32_t slot, unsigned int i)
{
	struct flow_dir *d = &f->d[i];
	struct io_uring_sqe *sqe;
	struct buf_meta *m;
	uint32_t zc = sh->eng->cfg->zc_threshold, len;
	uint16_t bid = d->qhead;
	enum udata_op op = UD_SEND;

	if (d->send_busy || bid == BUF_NONE || f->state != FS_OPEN) {
		return;
	}
	m = &sh->br.meta[bid];
	len = m->len - m->off;
	sqe = shard_sqe(sh);
	if (zc && len >= zc) {
		io_uring_prep_send_zc(sqe, f->fd[1 - i], bufring_data(&sh->br, bid) + m->off, len,
				      MSG_NOSIGNAL | MSG_WAITALL, 0);
		op = UD_SEND_ZC;
	} else {
		io_uring_prep_send(sqe, f->fd[1 - i], bufring_data(&sh->br, bid) + m->off, len,
				   MSG_NOSIGNAL | MSG_WAITALL);
	}
	flow_sqe_fd(f, 1 - i, sqe);
	io_uring_sqe_set_data64(sqe, udata_pack(op, i, sh->idx, bid, slot));
	bufring_send_start(&sh->br, bid);
	d->send_busy = 1;
	f->inflight++;
}

/*
 * tcp_sock_opts - per-socket options of forwarded socket fd[@i]. TCP_NODELAY is set on the
 * listener and inherited by accepted sockets (engine_listen_socket), so the client side
 * needs a call only for --keepalive. Through the ring for a direct descriptor.
 */
static void tcp_sock_opts(struct shard *sh, struct flow *f, unsigned int i)
{
	static const int one = 1;
	struct io_uring_sqe *sqe;

	if (i == 1) {
		sqe = flow_fd_setsockopt(sh, f, i, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		if (sqe) {
			sqe->flags |= IOSQE_IO_LINK; /* socket -> options -> connect */
		}
	}
	if (sh->eng->cfg->keepalive) {
		sqe = flow_fd_setsockopt(sh, f, i, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof(one));
		if (sqe && i == 1) {
			sqe->flags |= IOSQE_IO_LINK;
		}
	}
}

/*
 * tcp_upstream_open - create fd[1]: a direct socket at index dhalf + @slot, linked ahead of
 * the connect (its option SQEs follow it, also linked), or a normal socket.
 * 0 or -errno.
 */
static int tcp_upstream_open(struct shard *sh, struct flow *f, uint32_t slot)
{
	int family = f->fwd->addr.upstream.ss_family;

	if (sh->direct && slot < sh->dhalf) {
		struct io_uring_sqe *sqe = shard_sqe(sh);

		f->fd[1] = (int)(sh->dhalf + slot);
		f->fixed |= 2;
		io_uring_prep_socket_direct(sqe, family, SOCK_STREAM | SOCK_NONBLOCK, 0,
					    (unsigned int)f->fd[1], 0);
		/* A failure cancels the linked connect, which reports it. */
		sqe->flags |= IOSQE_IO_LINK | IOSQE_CQE_SKIP_SUCCESS;
		io_uring_sqe_set_data64(sqe, udata_pack(UD_NONE, 0, sh->idx, 0, slot));
		return 0;
	}
	f->fd[1] = socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	return f->fd[1] < 0 ? -errno : 0;
}

void tcp_handle_accept(struct shard *sh, struct io_uring_cqe *cqe)
{
	uint32_t l = udata_slot(cqe->user_data), slot;
	struct listener *lis = &sh->lis[l % FWD_MAX];
	struct io_uring_sqe *sqe;
	struct forward *fwd;
	struct flow *f;
	int cfd = cqe->res, ret;

	if (!(cqe->flags & IORING_CQE_F_MORE)) {
		lis->armed = 0;
		if (lis->closing) {
			if (cfd >= 0) {
				shard_fd_close(sh, cfd, sh->direct);
			}
			shard_listener_ended(sh, l);
			return;
		}
		if (lis->fwd) {
			/* An error ends the multishot: retry on the next tick, not in a loop. */
			lis->rearm = 1;
		}
	}
	if (cfd < 0) {
		if (cfd != -ECANCELED) {
			pr_debug(MOD, "shard %u: accept: %s", sh->idx, strerror(-cfd));
		}
		return;
	}
	fwd = lis->fwd;
	if (!fwd || lis->closing || sh->draining) {
		shard_fd_close(sh, cfd, sh->direct);
		return;
	}
	f = flow_alloc(sh, &slot);
	if (!f) {
		static const struct linger lg = { .l_onoff = 1, .l_linger = 0 };

		stat_add(&sh->st.drops, 1);
		if (sh->direct) {
			sqe = shard_sqe(sh);
			direct_prep_setsockopt(sqe, cfd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
			sqe->flags |= IOSQE_CQE_SKIP_SUCCESS;
			io_uring_sqe_set_data64(sqe, udata_pack(UD_NONE, 0, sh->idx, 0, 0));
		} else {
			setsockopt(cfd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
		}
		shard_fd_close(sh, cfd, sh->direct);
		return;
	}
	f->kind = FLOW_TCP;
	f->state = FS_CONNECTING;
	f->fwd = fwd;
	f->fwd_slot = l;
	forward_get(fwd);
	f->fd[0] = cfd;
	f->fixed = sh->direct ? 1 : 0;
	stat_add(&sh->st.flows_open, 1);
	stat_add(&sh->st.flows_total, 1);
	stat_add(&fwd->st[sh->idx].flows_open, 1);
	stat_add(&fwd->st[sh->idx].flows_total, 1);
	/*
	 * TCP flows are not entered in the flow table: nothing looks them up (the kernel's
	 * SO_REUSEPORT hash picks the shard), and the peer address would cost a getpeername()
	 * per accept (a direct accept has none to read).
	 */
	tcp_sock_opts(sh, f, 0);
	ret = tcp_upstream_open(sh, f, slot);
	if (ret) {
		pr_warn(MOD, "shard %u: upstream socket: %s", sh->idx, strerror(-ret));
		flow_abort(sh, f, slot, true);
		return;
	}
	tcp_sock_opts(sh, f, 1);
	sqe = shard_sqe(sh);
	io_uring_prep_connect(sqe, f->fd[1], (struct sockaddr *)&fwd->addr.upstream,
			      fwd->addr.upstream_len);
	flow_sqe_fd(f, 1, sqe);
	io_uring_sqe_set_data64(sqe, udata_pack(UD_CONNECT, 0, sh->idx, 0, slot));
	sqe->flags |= IOSQE_IO_LINK;
	sqe = shard_sqe(sh);
	io_uring_prep_link_timeout(sqe, &sh->connect_ts, 0);
	io_uring_sqe_set_data64(sqe, udata_pack(UD_LINK_TIMEOUT, 0, sh->idx, 0, slot));
	f->inflight += 2;
}

static void tcp_splice_pump(struct shard *sh, struct flow *f, uint32_t slot, unsigned int i);

void tcp_flow_start(struct shard *sh, struct flow *f, uint32_t slot)
{
	for (unsigned int i = 0; i < 2; i++) {
		if (sh->eng->cfg->tcp_mode == TCP_MODE_URING) {
			flow_arm_recv(sh, f, slot, i);
		} else if (i == 0) {
			/*
			 * The client has usually sent its first bytes while the upstream connect
			 * ran: splice them now instead of a POLLIN round trip (the pump arms
			 * POLLIN itself when nothing is there yet).
			 */
			tcp_splice_pump(sh, f, slot, 0);
			if (f->state != FS_OPEN) {
				return;
			}
		} else {
			struct io_uring_sqe *sqe = shard_sqe(sh);

			io_uring_prep_poll_add(sqe, f->fd[i], POLLIN | POLLRDHUP);
			flow_sqe_fd(f, i, sqe);
			io_uring_sqe_set_data64(sqe, udata_pack(UD_POLL, i, sh->idx, 0, slot));
			f->d[i].recv_armed = 1;
			f->inflight++;
		}
	}
}

void tcp_handle_connect(struct shard *sh, struct io_uring_cqe *cqe)
{
	uint32_t slot = udata_slot(cqe->user_data);
	struct flow *f = shard_flow(sh, slot);

	if (!f || f->kind != FLOW_TCP) {
		return;
	}
	f->inflight--;
	if (udata_op(cqe->user_data) == UD_LINK_TIMEOUT || f->state == FS_CLOSING) {
		flow_maybe_free(sh, f, slot);
		return;
	}
	if (cqe->res < 0) {
		/* Refused, unreachable or timed out (the link timeout cancels the connect). */
		stat_add(&sh->st.conn_refused, 1);
		pr_debug(MOD, "shard %u: upstream connect: %s", sh->idx,
			 strerror(cqe->res == -ECANCELED ? ETIMEDOUT : -cqe->res));
		flow_abort(sh, f, slot, true);
		return;
	}
	f->state = FS_OPEN;
	f->last_ms = sh->now_ms;
	tcp_flow_start(sh, f, slot);
}

void tcp_handle_recv(struct shard *sh, struct io_uring_cqe *cqe)
{
	uint32_t slot = udata_slot(cqe->user_data), limit = sh->eng->cfg->flow_buffer_limit;
	unsigned int i = udata_dir(cqe->user_data) & 1;
	struct flow *f = shard_flow(sh, slot);
	bool more = cqe->flags & IORING_CQE_F_MORE;
	struct flow_dir *d;
	int res = cqe->res;

	if (!f || f->kind != FLOW_TCP) {
		return;
	}
	d = &f->d[i];
	if (!more) {
		d->recv_armed = 0;
		f->inflight--;
	}
	if (res > 0 && (cqe->flags & IORING_CQE_F_BUFFER)) {
		uint16_t bid = (uint16_t)(cqe->flags >> IORING_CQE_BUFFER_SHIFT);

		if (bufring_take(&sh->br, bid, 0, (uint32_t)res)) {
			pr_err(MOD, "shard %u: buffer %u delivered twice", sh->idx, bid);
			flow_abort(sh, f, slot, true);
			return;
		}
		stat_add(&sh->st.bytes_in, (uint64_t)res);
		stat_add(&sh->st.packets_in, 1);
		stat_add(&f->fwd->st[sh->idx].bytes, (uint64_t)res);
		f->last_ms = sh->now_ms;
		if (f->state != FS_OPEN) {
			bufring_drop(&sh->br, bid);
			flow_maybe_free(sh, f, slot);
			return;
		}
		if (d->qtail == BUF_NONE) {
			d->qhead = bid;
		} else {
			sh->br.meta[d->qtail].next = bid;
		}
		d->qtail = bid;
		d->queued += (uint32_t)res;
		tcp_send_kick(sh, f, slot, i);
		if (d->queued >= limit && d->recv_armed && !d->cancel_pending) {
			/* Back-pressure: stop reading until the peer has taken half. */
			struct io_uring_sqe *sqe = shard_sqe(sh);

			io_uring_prep_cancel64(sqe, udata_pack(UD_RECV, i, sh->idx, 0, slot), 0);
			io_uring_sqe_set_data64(sqe, udata_pack(UD_NONE, 0, sh->idx, 0, slot));
			d->cancel_pending = 1;
		}
	} else if (res == 0) {
		d->eof = 1;
		tcp_dir_finish(sh, f, slot, i);
	} else if (res == -ENOBUFS) {
		stat_add(&sh->st.bufring_exhausted, 1);
		if (f->state == FS_OPEN) {
			flow_starve(sh, f, slot, i);
		}
	} else if (res == -ECANCELED) {
		d->cancel_pending = 0;
	} else if (res < 0) {
		pr_debug(MOD, "shard %u: recv: %s", sh->idx, strerror(-res));
		flow_abort(sh, f, slot, true);
		return;
	}
	if (f->state == FS_OPEN && !more) {
		tcp_maybe_rearm(sh, f, slot, i);
	}
	flow_maybe_free(sh, f, slot);
}

void tcp_handle_send(struct shard *sh, struct io_uring_cqe *cqe)
{
	uint32_t slot = udata_slot(cqe->user_data);
	unsigned int i = udata_dir(cqe->user_data) & 1;
	uint16_t bid = (uint16_t)udata_bid(cqe->user_data);
	bool zc = udata_op(cqe->user_data) == UD_SEND_ZC, notif, done = false;
	struct flow *f = shard_flow(sh, slot);
	struct flow_dir *d;
	uint16_t next;

	if (!f || f->kind != FLOW_TCP) {
		return;
	}
	d = &f->d[i];
	if (zc && (cqe->flags & IORING_CQE_F_NOTIF)) {
		bufring_zc_notif(&sh->br, bid);
		f->inflight--;
		flow_maybe_free(sh, f, slot);
		return;
	}
	notif = zc && (cqe->flags & IORING_CQE_F_MORE);
	if (!notif) {
		f->inflight--;
	}
	d->send_busy = 0;
	next = sh->br.meta[bid].next;
	if (cqe->res < 0) {
		if (notif) {
			sh->br.meta[bid].zc_refs++;
		}
		bufring_drop(&sh->br, bid);
		d->qhead = next;
		if (next == BUF_NONE) {
			d->qtail = BUF_NONE;
		}
		pr_debug(MOD, "shard %u: send: %s", sh->idx, strerror(-cqe->res));
		flow_abort(sh, f, slot, true);
		flow_maybe_free(sh, f, slot);
		return;
	}
	if (bufring_send_done(&sh->br, bid, (uint32_t)cqe->res, notif, &done)) {
		pr_err(MOD, "shard %u: send completion for buffer %u in a bad state", sh->idx, bid);
		flow_abort(sh, f, slot, true);
		return;
	}
	d->queued -= (uint32_t)cqe->res;
	stat_add(&sh->st.bytes_out, (uint64_t)cqe->res);
	stat_add(&sh->st.packets_out, 1);
	if (done) {
		d->qhead = next;
		if (next == BUF_NONE) {
			d->qtail = BUF_NONE;
		}
	}
	if (f->state != FS_OPEN) {
		flow_abort(sh, f, slot, f->reset);
		if (d->qhead != BUF_NONE) {
			uint16_t b = d->qhead;

			while (b != BUF_NONE) {
				uint16_t n = sh->br.meta[b].next;

				bufring_drop(&sh->br, b);
				b = n;
			}
			d->qhead = d->qtail = BUF_NONE;
			d->queued = 0;
		}
		flow_maybe_free(sh, f, slot);
		return;
	}
	tcp_send_kick(sh, f, slot, i);
	tcp_maybe_rearm(sh, f, slot, i);
	tcp_dir_finish(sh, f, slot, i);
}

/* tcp_pipe_open - the direction's pipe, sized to the flow buffer limit. */
static int tcp_pipe_open(struct shard *sh, struct flow_dir *d)
{
	int sz;

	if (d->pipe[0] >= 0) {
		return 0;
	}
	if (sh->npipes) {
		sh->npipes--;
		d->pipe[0] = sh->pipes[sh->npipes][0];
		d->pipe[1] = sh->pipes[sh->npipes][1];
		d->pipe_cap = (uint32_t)sh->pipes[sh->npipes][2];
		return 0;
	}
	if (pipe2(d->pipe, O_NONBLOCK | O_CLOEXEC)) {
		d->pipe[0] = d->pipe[1] = -1;
		return -errno;
	}
	sz = fcntl(d->pipe[1], F_SETPIPE_SZ, (int)sh->eng->cfg->flow_buffer_limit);
	if (sz < 0) {
		sz = fcntl(d->pipe[1], F_GETPIPE_SZ);
	}
	d->pipe_cap = sz > 0 ? (uint32_t)sz : 65536;
	return 0;
}

/* tcp_splice_pump - move what can move now on direction @i, then wait for readiness. */
static void tcp_splice_pump(struct shard *sh, struct flow *f, uint32_t slot, unsigned int i)
{
	struct flow_dir *d = &f->d[i];
	int in = f->fd[i], out = f->fd[1 - i];
	uint64_t got = 0;
	bool drained = false;
	int ret;

	ret = tcp_pipe_open(sh, d);
	if (ret) {
		pr_warn(MOD, "shard %u: pipe: %s", sh->idx, strerror(-ret));
		flow_abort(sh, f, slot, true);
		return;
	}
	for (int iter = 0; iter < 16; iter++) {
		bool progress = false;
		ssize_t n;

		if (!d->eof && !drained && d->queued < d->pipe_cap) {
			size_t want = d->pipe_cap - d->queued;

			n = splice(in, NULL, d->pipe[1], NULL, want,
				   SPLICE_F_NONBLOCK | SPLICE_F_MOVE);
			if (n > 0) {
				d->queued += (uint32_t)n;
				got += (uint64_t)n;
				progress = true;
				/*
				 * A small read, less than asked: the socket is most likely empty
				 * (short messages); another try would be an EAGAIN syscall. The
				 * re-armed POLLIN fires at once if more (or the FIN) has arrived
				 * meanwhile. Bulk reads keep looping: a splice is often short of
				 * @want only because the pipe ran out of slots.
				 */
				drained = (size_t)n < want && n < 4096;
			} else if (n == 0) {
				d->eof = 1;
			} else if (errno != EAGAIN && errno != EINTR) {
				pr_debug(MOD, "shard %u: splice in: %s", sh->idx, strerror(errno));
				flow_abort(sh, f, slot, true);
				return;
			}
		}
		if (d->queued) {
			n = splice(d->pipe[0], NULL, out, NULL, d->queued,
				   SPLICE_F_NONBLOCK | SPLICE_F_MOVE);
			if (n > 0) {
				d->queued -= (uint32_t)n;
				stat_add(&sh->st.bytes_out, (uint64_t)n);
				stat_add(&sh->st.packets_out, 1);
				progress = true;
			} else if (n < 0 && errno != EAGAIN && errno != EINTR) {
				pr_debug(MOD, "shard %u: splice out: %s", sh->idx, strerror(errno));
				flow_abort(sh, f, slot, true);
				return;
			}
		}
		if (!progress) {
			break;
		}
	}
	if (got) {
		stat_add(&sh->st.bytes_in, got);
		stat_add(&sh->st.packets_in, 1);
		stat_add(&f->fwd->st[sh->idx].bytes, got);
		f->last_ms = sh->now_ms;
	}
	if (!d->queued && sh->npipes < PIPE_POOL) {
		/* Empty: back to the pool, so an idle flow holds no pipe between bursts. */
		flow_pipe_release(sh, d);
	}
	if (d->queued && !d->out_armed) {
		struct io_uring_sqe *sqe = shard_sqe(sh);

		io_uring_prep_poll_add(sqe, out, POLLOUT);
		io_uring_sqe_set_data64(sqe, udata_pack(UD_POLL, i | 2, sh->idx, 0, slot));
		d->out_armed = 1;
		f->inflight++;
	}
	if (!d->eof && (d->pipe[0] < 0 || d->queued < d->pipe_cap) && !d->recv_armed) {
		struct io_uring_sqe *sqe = shard_sqe(sh);

		io_uring_prep_poll_add(sqe, in, POLLIN | POLLRDHUP);
		io_uring_sqe_set_data64(sqe, udata_pack(UD_POLL, i, sh->idx, 0, slot));
		d->recv_armed = 1;
		f->inflight++;
	}
	tcp_dir_finish(sh, f, slot, i);
}

void tcp_handle_poll(struct shard *sh, struct io_uring_cqe *cqe)
{
	uint32_t slot = udata_slot(cqe->user_data);
	unsigned int dir = udata_dir(cqe->user_data), i = dir & 1;
	struct flow *f = shard_flow(sh, slot);

	if (!f || f->kind != FLOW_TCP) {
		return;
	}
	f->inflight--;
	if (dir & 2) {
		f->d[i].out_armed = 0;
	} else {
		f->d[i].recv_armed = 0;
	}
	if (f->state != FS_OPEN || cqe->res < 0) {
		if (f->state == FS_OPEN && cqe->res != -ECANCELED) {
			flow_abort(sh, f, slot, true);
		}
		flow_maybe_free(sh, f, slot);
		return;
	}
	tcp_splice_pump(sh, f, slot, i);
	flow_maybe_free(sh, f, slot);
}
