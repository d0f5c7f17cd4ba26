// SPDX-License-Identifier: MIT
/*
 * The shard: one pinned thread, one io_uring, one buffer ring, one flow pool and table.
 * shard_main() runs the loop; handle_cqe() is the one switch over completion types.
 */
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "engine.h"
#include "natx/log.h"
#include "natx/udata.h"
#include "p2p_host.h"
#include "punch_eng.h"
#include "stun_eng.h"
#include "tun_eng.h"

#define MOD "shard"

enum { TICK_MS = 250 };

struct io_uring_sqe *shard_sqe(struct shard *sh)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&sh->ring);

	while (!sqe) {
		/* SQ full: push what we have; completions are reaped by the loop. */
		io_uring_submit(&sh->ring);
		sqe = io_uring_get_sqe(&sh->ring);
	}
	return sqe;
}

struct flow *shard_flow(struct shard *sh, uint32_t slot)
{
	if (slot >= sh->nalloc) {
		return NULL;
	}
	return &sh->chunks[slot / FLOW_CHUNK][slot % FLOW_CHUNK];
}

/* flow_pool_grow - add one chunk of FLOW_CHUNK free flows. */
static int flow_pool_grow(struct shard *sh)
{
	struct flow **nc, *chunk;

	if (sh->nalloc + FLOW_CHUNK > sh->eng->cfg->max_flows + FLOW_CHUNK - 1) {
		return -ENOSPC;
	}
	nc = realloc(sh->chunks, (sh->nchunks + 1) * sizeof(*nc));
	if (!nc) {
		return -ENOMEM;
	}
	sh->chunks = nc;
	chunk = calloc(FLOW_CHUNK, sizeof(*chunk));
	if (!chunk) {
		return -ENOMEM;
	}
	sh->chunks[sh->nchunks++] = chunk;
	for (uint32_t i = FLOW_CHUNK; i-- > 0;) {
		chunk[i].next_free = sh->free_head;
		sh->free_head = sh->nalloc + i;
	}
	sh->nalloc += FLOW_CHUNK;
	return 0;
}

struct flow *flow_alloc(struct shard *sh, uint32_t *slot)
{
	struct flow *f;

	if (sh->free_head == UINT32_MAX || sh->nlive >= sh->eng->cfg->max_flows) {
		if (sh->nlive >= sh->eng->cfg->max_flows || flow_pool_grow(sh)) {
			return NULL;
		}
	}
	*slot = sh->free_head;
	f = shard_flow(sh, *slot);
	sh->free_head = f->next_free;
	memset(f, 0, sizeof(*f));
	f->fd[0] = f->fd[1] = -1;
	for (int i = 0; i < 2; i++) {
		f->d[i].qhead = f->d[i].qtail = BUF_NONE;
		f->d[i].pipe[0] = f->d[i].pipe[1] = -1;
	}
	f->last_ms = sh->now_ms;
	sh->nlive++;
	return f;
}

/* flow_drop_queue - give back every queued (not in-flight) buffer of direction @dir. */
static void flow_drop_queue(struct shard *sh, struct flow_dir *d)
{
	uint16_t bid = d->qhead;

	while (bid != BUF_NONE) {
		uint16_t next = sh->br.meta[bid].next;

		if (sh->br.meta[bid].state == BUF_QUEUED) {
			bufring_drop(&sh->br, bid);
		}
		/* A BUF_SENDING buffer is dropped by its send completion. */
		bid = next;
	}
	d->qhead = d->qtail = BUF_NONE;
	d->queued = 0;
}

void flow_abort(struct shard *sh, struct flow *f, uint32_t slot, bool reset)
{
	if (f->state == FS_CLOSING) {
		return;
	}
	f->state = FS_CLOSING;
	f->reset = reset;
	if (f->in_table) {
		flowtab_remove(&sh->ft, &f->key);
		f->in_table = 0;
	}
	for (int i = 0; i < 2; i++) {
		struct io_uring_sqe *sqe;

		if (f->fd[i] < 0) {
			continue;
		}
		if (reset) {
			static const struct linger lg = { .l_onoff = 1, .l_linger = 0 };

			flow_fd_setsockopt(sh, f, (unsigned int)i, SOL_SOCKET, SO_LINGER, &lg,
					   sizeof(lg));
		}
		if (f->inflight) {
			sqe = shard_sqe(sh);
			io_uring_prep_cancel_fd(
				sqe, f->fd[i],
				IORING_ASYNC_CANCEL_ALL |
					(f->fixed & (1U << i) ? IORING_ASYNC_CANCEL_FD_FIXED : 0));
			io_uring_sqe_set_data64(sqe, udata_pack(UD_NONE, 0, sh->idx, 0, slot));
		}
	}
	for (int i = 0; i < 2; i++) {
		if (f->d[i].qhead != BUF_NONE && !f->d[i].send_busy) {
			flow_drop_queue(sh, &f->d[i]);
		}
	}
	flow_maybe_free(sh, f, slot);
}

void flow_maybe_free(struct shard *sh, struct flow *f, uint32_t slot)
{
	if (f->kind == FLOW_FREE || f->state != FS_CLOSING || f->inflight) {
		return;
	}
	for (int i = 0; i < 2; i++) {
		/* Before flow_drop_queue(): it zeroes the byte count the pipe pool trusts. */
		flow_pipe_release(sh, &f->d[i]);
		flow_drop_queue(sh, &f->d[i]);
		if (f->fd[i] >= 0) {
			shard_fd_close(sh, f->fd[i], f->fixed & (1U << i));
		}
	}
	if (f->in_table) {
		flowtab_remove(&sh->ft, &f->key);
	}
	stat_sub(&sh->st.flows_open, 1);
	if (f->fwd) {
		stat_sub(&f->fwd->st[sh->idx].flows_open, 1);
		forward_put(f->fwd);
	}
	f->kind = FLOW_FREE;
	f->fwd = NULL;
	f->next_free = sh->free_head;
	sh->free_head = slot;
	sh->nlive--;
}

/*
 * flow_pipe_release - give a direction's pipe back to the shard's pool when it is empty (a
 * short connection then costs no pipe2/fcntl/close), else close it. A pipe that still holds
 * bytes of a dead flow is closed: reusing it would deliver them on the next flow.
 */
void flow_pipe_release(struct shard *sh, struct flow_dir *d)
{
	int left = -1;

	if (d->pipe[0] < 0) {
		return;
	}

	/* Only a pipe the kernel says is empty may carry another flow's bytes. */
	if (!d->queued && sh->pipes && sh->npipes < PIPE_POOL &&
	    !ioctl(d->pipe[0], FIONREAD, &left) && left == 0) {
		sh->pipes[sh->npipes][0] = d->pipe[0];
		sh->pipes[sh->npipes][1] = d->pipe[1];
		sh->pipes[sh->npipes][2] = (int)d->pipe_cap;
		sh->npipes++;
	} else {
		close(d->pipe[0]);
		close(d->pipe[1]);
	}
	d->pipe[0] = d->pipe[1] = -1;
}

void flow_starve(struct shard *sh, struct flow *f, uint32_t slot, unsigned int dir)
{
	if (f->d[dir].starved) {
		return;
	}
	if (sh->nstarved == sh->starved_cap) {
		uint32_t cap = sh->starved_cap ? sh->starved_cap * 2 : 256;
		uint32_t *n = realloc(sh->starved, cap * sizeof(*n));

		if (!n) {
			flow_abort(sh, f, slot, true);
			return;
		}
		sh->starved = n;
		sh->starved_cap = cap;
	}
	f->d[dir].starved = 1;
	sh->starved[sh->nstarved++] = slot << 1 | dir;
}

void flow_arm_recv(struct shard *sh, struct flow *f, uint32_t slot, unsigned int dir)
{
	uint32_t limit = sh->eng->cfg->flow_buffer_limit;
	struct io_uring_sqe *sqe;

	if (f->d[dir].recv_armed || f->d[dir].eof || f->state != FS_OPEN || f->fd[dir] < 0) {
		return;
	}
	if (f->kind == FLOW_TCP && sh->eng->recv_cap && f->d[dir].queued >= limit) {
		return; /* re-armed when the peer has taken half */
	}
	sqe = shard_sqe(sh);
	/* UDP: MSG_TRUNC makes res the real datagram length, so truncation is visible. */
	io_uring_prep_recv_multishot(sqe, f->fd[dir], NULL, 0, f->kind == FLOW_UDP ? MSG_TRUNC : 0);
	flow_sqe_fd(f, dir, sqe);
	sqe->flags |= IOSQE_BUFFER_SELECT;
	sqe->buf_group = f->kind == FLOW_UDP ? UDP_BUF_GROUP : BUF_GROUP;
	if (f->kind == FLOW_TCP && sh->eng->recv_cap) {
		/*
		 * Byte cap for the whole multishot (sqe->optlen, which shares the slot with
		 * file_index): the kernel ends it after ~limit - queued bytes, so one burst
		 * cannot overshoot the flow's budget by more than one buffer.
		 */
		sqe->file_index = limit - f->d[dir].queued;
	}
	io_uring_sqe_set_data64(sqe, udata_pack(UD_RECV, dir, sh->idx, 0, slot));
	f->d[dir].recv_armed = 1;
	f->d[dir].cancel_pending = 0;
	f->inflight++;
}

/* shard_has_buffers - more than a quarter of @b's buffers are back in the kernel. */
static bool shard_has_buffers(const struct bufring *b)
{
	return b->in_kernel > b->count / 4;
}

/* shard_unstarve - re-arm receives that ran out of buffers, once their ring has refilled. */
static void shard_unstarve(struct shard *sh)
{
	uint32_t keep = 0;

	for (uint32_t l = 0; sh->lis_starved && l < FWD_MAX && shard_has_buffers(&sh->ubr); l++) {
		struct listener *lis = &sh->lis[l];

		if (lis->starved) {
			lis->starved = 0;
			sh->lis_starved--;
			if (lis->fwd && !lis->closing) {
				udp_listener_arm(sh, l);
			}
		}
	}
	for (uint32_t i = 0; i < sh->nstarved; i++) {
		uint32_t slot = sh->starved[i] >> 1, dir = sh->starved[i] & 1;
		struct flow *f = shard_flow(sh, slot);

		if (!f || f->kind == FLOW_FREE || !f->d[dir].starved) {
			continue;
		}
		if (!shard_has_buffers(f->kind == FLOW_UDP ? &sh->ubr : &sh->br)) {
			sh->starved[keep++] = sh->starved[i];
			continue;
		}
		f->d[dir].starved = 0;
		if (f->kind == FLOW_UDP || f->d[dir].queued < sh->eng->cfg->flow_buffer_limit) {
			flow_arm_recv(sh, f, slot, dir);
		}
	}
	sh->nstarved = keep;
}

void shard_ack(struct shard *sh, enum shard_msg cmd, uint32_t slot, int res)
{
	struct io_uring_sqe *sqe = shard_sqe(sh);

	io_uring_prep_msg_ring(sqe, sh->eng->ctl_ring.ring_fd, (unsigned int)res,
			       udata_pack(UD_ACK, cmd, sh->idx, 0, slot), 0);
	io_uring_sqe_set_data64(sqe, udata_pack(UD_NONE, 0, sh->idx, 0, 0));
}

/* listener_release - close a listener no request refers to any more; @ack answers the remover. */
static void listener_release(struct shard *sh, uint32_t l, bool ack)
{
	struct listener *lis = &sh->lis[l];

	close(lis->fd);
	forward_put(lis->fwd);
	memset(lis, 0, sizeof(*lis));
	lis->fd = -1;
	if (ack) {
		shard_ack(sh, MSG_LISTEN_RM, l, 0);
	}
}

/* shard_listener_close - cancel the listener's multishot; ack once it has ended. */
static void shard_listener_close(struct shard *sh, uint32_t l, bool ack)
{
	struct listener *lis = &sh->lis[l];

	if (!lis->fwd) {
		if (ack) {
			shard_ack(sh, MSG_LISTEN_RM, l, -ENOENT);
		}
		return;
	}
	if (lis->fwd->addr.proto == SPEC_UDP) {
		/* Sessions reply through the listener socket: they end with it. */
		for (uint32_t s = 0; s < sh->nalloc; s++) {
			struct flow *f = shard_flow(sh, s);

			if (f->kind == FLOW_UDP && f->fwd_slot == l) {
				flow_abort(sh, f, s, false);
			}
		}
	}
	lis->closing = 1 + ack;
	if (lis->armed) {
		struct io_uring_sqe *sqe = shard_sqe(sh);
		enum udata_op op = lis->fwd->addr.proto == SPEC_TCP ? UD_ACCEPT : UD_UDP_RECV;

		io_uring_prep_cancel64(sqe, udata_pack(op, 0, sh->idx, 0, l), 0);
		io_uring_sqe_set_data64(sqe, udata_pack(UD_NONE, 0, sh->idx, 0, l));
		return;
	}
	listener_release(sh, l, ack);
}

/* shard_listener_ended - the listener's multishot ended; finish a pending close. */
void shard_listener_ended(struct shard *sh, uint32_t l)
{
	struct listener *lis = &sh->lis[l];
	bool ack = lis->closing == 2;

	lis->armed = 0;
	if (!lis->closing) {
		return;
	}
	listener_release(sh, l, ack);
}

/* shard_listener_arm - start accepting (TCP) or receiving (UDP) on listener @l. */
static void shard_listener_arm(struct shard *sh, uint32_t l)
{
	struct listener *lis = &sh->lis[l];

	if (lis->fwd->addr.proto == SPEC_UDP) {
		udp_listener_arm(sh, l);
		return;
	}
	struct io_uring_sqe *sqe = shard_sqe(sh);

	if (sh->direct) {
		/* Into the ring's table (CLOEXEC does not apply to direct descriptors). */
		io_uring_prep_multishot_accept_direct(sqe, lis->fd, NULL, NULL, SOCK_NONBLOCK);
	} else {
		io_uring_prep_multishot_accept(sqe, lis->fd, NULL, NULL,
					       SOCK_NONBLOCK | SOCK_CLOEXEC);
	}
	io_uring_sqe_set_data64(sqe, udata_pack(UD_ACCEPT, 0, sh->idx, 0, l));
	lis->armed = 1;
}

/* shard_handle_msg - a control command delivered by MSG_RING. */
static void shard_handle_msg(struct shard *sh, struct io_uring_cqe *cqe)
{
	uint32_t slot = udata_slot(cqe->user_data);

	switch ((enum shard_msg)udata_dir(cqe->user_data)) {
	case MSG_LISTEN_ADD: {
		struct forward *fwd = slot < FWD_MAX ? sh->eng->fwd[slot] : NULL;
		struct listener *lis = slot < FWD_MAX ? &sh->lis[slot] : NULL;

		if (!fwd || lis->fwd || sh->draining) {
			close(cqe->res);
			shard_ack(sh, MSG_LISTEN_ADD, slot, -EINVAL);
			break;
		}
		forward_get(fwd);
		memset(lis, 0, sizeof(*lis));
		lis->fwd = fwd;
		lis->fd = cqe->res;
		shard_listener_arm(sh, slot);
		shard_ack(sh, MSG_LISTEN_ADD, slot, 0);
		break;
	}
	case MSG_LISTEN_RM:
		if (slot < FWD_MAX) {
			shard_listener_close(sh, slot, true);
		}
		break;
	case MSG_DRAIN:
		sh->draining = true;
		for (uint32_t l = 0; l < FWD_MAX; l++) {
			if (sh->lis[l].fwd && !sh->lis[l].closing) {
				shard_listener_close(sh, l, false);
			}
		}
		shard_ack(sh, MSG_DRAIN, 0, 0);
		break;
	case MSG_STOP:
		sh->stop = true;
		break;
	}
}

/* shard_tick - idle timeouts and deferred re-arms, every TICK_MS. */
static void shard_tick(struct shard *sh)
{
	const struct engine_cfg *cfg = sh->eng->cfg;
	uint64_t tcp_idle = (uint64_t)cfg->idle_timeout_s * 1000;
	uint64_t udp_idle = (uint64_t)cfg->udp_idle_timeout_s * 1000;

	for (uint32_t l = 0; l < FWD_MAX; l++) {
		if (sh->lis[l].rearm && sh->lis[l].fwd && !sh->lis[l].closing) {
			sh->lis[l].rearm = 0;
			shard_listener_arm(sh, l);
		}
	}
	for (uint32_t s = 0; s < sh->nalloc; s++) {
		struct flow *f = shard_flow(sh, s);

		if (f->kind == FLOW_FREE || f->state == FS_CLOSING) {
			continue;
		}
		if (f->kind == FLOW_UDP && sh->now_ms - f->last_ms >= udp_idle) {
			flow_abort(sh, f, s, false);
		} else if (f->kind == FLOW_TCP && tcp_idle && sh->now_ms - f->last_ms >= tcp_idle) {
			flow_abort(sh, f, s, false);
		}
	}
	struct io_uring_sqe *sqe = shard_sqe(sh);

	io_uring_prep_timeout(sqe, &sh->tick_ts, 0, 0);
	io_uring_sqe_set_data64(sqe, udata_pack(UD_TICK, 0, sh->idx, 0, 0));
}

/* handle_cqe - dispatch one completion by its user_data op. */
static void handle_cqe(struct shard *sh, struct io_uring_cqe *cqe)
{
	switch (udata_op(cqe->user_data)) {
	case UD_ACCEPT:
		tcp_handle_accept(sh, cqe);
		break;
	case UD_CONNECT:
	case UD_LINK_TIMEOUT:
		tcp_handle_connect(sh, cqe);
		break;
	case UD_RECV: {
		struct flow *f = shard_flow(sh, udata_slot(cqe->user_data));

		if (f && f->kind == FLOW_UDP) {
			udp_handle_up_recv(sh, cqe);
		} else {
			tcp_handle_recv(sh, cqe);
		}
		break;
	}
	case UD_SEND:
	case UD_SEND_ZC:
		tcp_handle_send(sh, cqe);
		break;
	case UD_POLL:
		tcp_handle_poll(sh, cqe);
		break;
	case UD_UDP_RECV:
		udp_handle_recvmsg(sh, cqe);
		break;
	case UD_UDP_UP_SEND:
	case UD_UDP_CL_SEND:
		udp_handle_send(sh, cqe);
		break;
	case UD_TICK:
		sh->now_ms = now_ms_get();
		shard_tick(sh);
		p2p_shard_tick(sh);
		stun_eng_shard_tick(sh);
		punch_eng_shard_tick(sh);
		tun_shard_tick(sh);
		break;
	case UD_P2P:
		p2p_shard_handle_cqe(sh, cqe);
		break;
	case UD_STUN:
		stun_eng_handle_cqe(sh, cqe);
		break;
	case UD_PUNCH:
		punch_eng_handle_cqe(sh, cqe);
		break;
	case UD_TUN:
		tun_shard_handle_cqe(sh, cqe);
		break;
	case UD_MSG:
		shard_handle_msg(sh, cqe);
		break;
	case UD_NONE:
	case UD_ACK:
	case UD_OP_MAX:
		break;
	}
}

/* shard_ring_init - create the ring, trying the cheapest task-run modes first. */
static int shard_ring_init(struct shard *sh)
{
	static const struct {
		unsigned int flags;
		const char *name;
	} modes[] = {
		{ IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN,
		  "SINGLE_ISSUER|DEFER_TASKRUN" },
		{ IORING_SETUP_COOP_TASKRUN, "COOP_TASKRUN" },
		{ 0, "default" },
	};
	int ret = -EINVAL;

	for (size_t i = 0; i < sizeof(modes) / sizeof(modes[0]); i++) {
		struct io_uring_params p = { 0 };

		p.flags = modes[i].flags | IORING_SETUP_CQSIZE | IORING_SETUP_SUBMIT_ALL;
		p.cq_entries = 16384;
		ret = io_uring_queue_init_params(2048, &sh->ring, &p);
		if (ret == -EINVAL) {
			/* Older kernels: try again without SUBMIT_ALL before giving up a mode. */
			p = (struct io_uring_params){ 0 };
			p.flags = modes[i].flags | IORING_SETUP_CQSIZE;
			p.cq_entries = 16384;
			ret = io_uring_queue_init_params(2048, &sh->ring, &p);
		}
		if (!ret) {
			sh->ring_mode = modes[i].name;
			return 0;
		}
	}
	return ret;
}

/* shard_pin - bind the calling thread to sh->cpu. */
static void shard_pin(struct shard *sh)
{
	cpu_set_t set;

	CPU_ZERO(&set);
	CPU_SET(sh->cpu, &set);
	if (pthread_setaffinity_np(pthread_self(), sizeof(set), &set)) {
		pr_warn(MOD, "shard %u: cannot pin to cpu %d", sh->idx, sh->cpu);
	}
}

/*
 * shard_cancel_all - cancel every request on the ring and wait for them to finish. A pending
 * request holds a reference to its socket, and io_uring_queue_exit() drops those references
 * asynchronously: without this, a listener could keep its port bound for a moment after the
 * engine has exited (and "exit 2, nothing half-started" would be false).
 */
static void shard_cancel_all(struct shard *sh)
{
	struct io_uring_sync_cancel_reg reg = { 0 };
	struct io_uring_cqe *cqe;

	reg.fd = -1;
	reg.flags = IORING_ASYNC_CANCEL_ANY | IORING_ASYNC_CANCEL_ALL;
	reg.timeout.tv_sec = -1;
	reg.timeout.tv_nsec = -1;
	io_uring_submit(&sh->ring);
	if (io_uring_register_sync_cancel(&sh->ring, &reg) < 0) {
		/* Older kernel: fall back to async cancel and a bounded wait. */
		struct io_uring_sqe *sqe = io_uring_get_sqe(&sh->ring);
		struct __kernel_timespec ts = { .tv_nsec = 200000000 };

		if (sqe) {
			io_uring_prep_cancel(sqe, NULL,
					     IORING_ASYNC_CANCEL_ANY | IORING_ASYNC_CANCEL_ALL);
			io_uring_submit_and_wait_timeout(&sh->ring, &cqe, 1, &ts, NULL);
		}
	}
	/*
	 * Cancelled requests complete (and drop their file references) in task work, which
	 * with DEFER_TASKRUN runs only when this thread asks for events: run it until no
	 * more completions appear.
	 */
	for (int round = 0; round < 16; round++) {
		unsigned int n = 0;

		io_uring_get_events(&sh->ring);
		while (!io_uring_peek_cqe(&sh->ring, &cqe)) {
			io_uring_cqe_seen(&sh->ring, cqe);
			n++;
		}
		if (!n && round) {
			break;
		}
	}
}

/* shard_teardown - close every flow and listener and free the shard's memory. */
static void shard_teardown(struct shard *sh)
{
	shard_cancel_all(sh);
	p2p_shard_teardown(sh);
	tun_shard_teardown(sh);
	for (uint32_t s = 0; s < sh->nalloc; s++) {
		struct flow *f = shard_flow(sh, s);

		if (f->kind == FLOW_FREE) {
			continue;
		}
		/* The ring goes away below, taking every request with it. */
		f->inflight = 0;
		f->state = FS_OPEN;
		flow_abort(sh, f, s, false);
	}
	for (uint32_t l = 0; l < FWD_MAX; l++) {
		if (sh->lis[l].fwd) {
			close(sh->lis[l].fd);
			forward_put(sh->lis[l].fwd);
			sh->lis[l].fwd = NULL;
		}
	}
	io_uring_queue_exit(&sh->ring);
	bufring_cleanup(&sh->br, NULL);
	bufring_cleanup(&sh->ubr, NULL);
	flowtab_cleanup(&sh->ft);
	for (uint32_t c = 0; c < sh->nchunks; c++) {
		free(sh->chunks[c]);
	}
	free(sh->chunks);
	sh->chunks = NULL;
	for (uint32_t p = 0; p < sh->npipes; p++) {
		close(sh->pipes[p][0]);
		close(sh->pipes[p][1]);
	}
	free(sh->pipes);
	sh->pipes = NULL;
	free(sh->starved);
	free(sh->umsg);
	free(sh->uiov);
}

/* shard_setup - ring, buffers, table; runs on the shard thread (SINGLE_ISSUER). */
static int shard_setup(struct shard *sh)
{
	const struct engine_cfg *cfg = sh->eng->cfg;
	int ret;

	sh->free_head = UINT32_MAX;
	for (uint32_t l = 0; l < FWD_MAX; l++) {
		sh->lis[l].fd = -1;
	}
	ret = shard_ring_init(sh);
	if (ret) {
		snprintf(sh->init_msg, sizeof(sh->init_msg), "io_uring setup failed: %s",
			 strerror(-ret));
		return ret;
	}
	ret = direct_setup(sh);
	if (ret && cfg->tcp_mode == TCP_MODE_URING) {
		pr_info(MOD, "shard %u: direct descriptors unavailable (%s), using normal fds",
			sh->idx, strerror(-ret));
	}
	ret = bufring_init(&sh->br, &sh->ring, BUF_GROUP, cfg->buf_size, cfg->buf_count);
	if (ret) {
		snprintf(sh->init_msg, sizeof(sh->init_msg), "buffer ring setup failed: %s",
			 strerror(-ret));
		goto exit_ring;
	}
	ret = bufring_init(&sh->ubr, &sh->ring, UDP_BUF_GROUP, cfg->udp_buf_size,
			   cfg->udp_buf_count);
	if (ret) {
		snprintf(sh->init_msg, sizeof(sh->init_msg), "UDP buffer ring setup failed: %s",
			 strerror(-ret));
		goto cleanup_br;
	}
	ret = flowtab_init(&sh->ft, 1024);
	if (ret) {
		goto cleanup_ubr;
	}
	sh->pipes = calloc(PIPE_POOL, sizeof(*sh->pipes));
	sh->umsg = calloc(cfg->udp_buf_count, sizeof(*sh->umsg));
	sh->uiov = calloc(cfg->udp_buf_count, sizeof(*sh->uiov));
	if (!sh->umsg || !sh->uiov || !sh->pipes) {
		ret = -ENOMEM;
		goto cleanup_ft;
	}
	return 0;

cleanup_ft:
	free(sh->pipes);
	sh->pipes = NULL;
	free(sh->umsg);
	free(sh->uiov);
	sh->umsg = NULL;
	sh->uiov = NULL;
	flowtab_cleanup(&sh->ft);
cleanup_ubr:
	bufring_cleanup(&sh->ubr, &sh->ring);
cleanup_br:
	bufring_cleanup(&sh->br, &sh->ring);
exit_ring:
	io_uring_queue_exit(&sh->ring);
	return ret;
}

void *shard_main(void *arg)
{
	struct shard *sh = arg;

	if (!sh->eng->cfg->no_pin) {
		shard_pin(sh);
	}
	sh->init_err = shard_setup(sh);
	engine_shard_ready(sh);
	if (sh->init_err) {
		return NULL;
	}
	pr_info(MOD, "shard %u on cpu %d: io_uring %s, %u x %u B buffers, %s", sh->idx, sh->cpu,
		sh->ring_mode, sh->br.count, sh->br.buf_size,
		sh->direct ? "direct descriptors" : "normal descriptors");
	sh->now_ms = now_ms_get();
	sh->tick_ts.tv_nsec = TICK_MS * 1000000L;
	sh->connect_ts.tv_sec = sh->eng->cfg->connect_timeout_s;
	shard_tick(sh);
	stun_eng_shard_start(sh);
	while (!sh->stop) {
		struct io_uring_cqe *cqe;
		unsigned int head, n = 0;
		int ret;

		ret = io_uring_submit_and_wait(&sh->ring, 1);
		if (ret < 0 && ret != -EINTR && ret != -EAGAIN && ret != -EBUSY) {
			pr_err(MOD, "shard %u: io_uring_submit_and_wait: %s", sh->idx,
			       strerror(-ret));
			break;
		}
		sh->now_ms = now_ms_get();
		io_uring_for_each_cqe(&sh->ring, head, cqe)
		{
			handle_cqe(sh, cqe);
			n++;
		}
		io_uring_cq_advance(&sh->ring, n);
		bufring_commit(&sh->br);
		bufring_commit(&sh->ubr);
		if (sh->nstarved || sh->lis_starved) {
			shard_unstarve(sh);
		}
	}
	sh->stop = true; /* also after a ring error: teardown closes synchronously */
	shard_teardown(sh);
	return NULL;
}
