// SPDX-License-Identifier: MIT
/*
 * UDP forwarding on a shard. Each shard has its own SO_REUSEPORT socket per UDP forward
 * (the kernel hashes a client's 4-tuple to one socket, hence one shard). A datagram from a
 * new client address creates a session: its own socket connect()ed to the upstream, found
 * again through the flow table (key: forward id + client address). Client datagrams are
 * sent to the upstream from the receive buffer itself; upstream replies come back on the
 * session socket and are sendmsg()ed from the listener socket to the session's client.
 * Sessions end after udp_idle_timeout seconds without traffic, or when the forward is
 * removed. Datagrams that do not fit a buffer (MSG_TRUNC) are dropped and counted.
 */
#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "engine.h"
#include "natx/log.h"
#include "natx/udata.h"

#define MOD "udp"

/*
 * udp_session_budget - datagrams a session may have waiting for their send completion, per
 * direction: a quarter of the shard's UDP buffers, so one busy client cannot starve the rest.
 */
static uint32_t udp_session_budget(const struct shard *sh)
{
	return sh->ubr.count / 4;
}

void udp_listener_arm(struct shard *sh, uint32_t l)
{
	struct listener *lis = &sh->lis[l];
	struct io_uring_sqe *sqe = shard_sqe(sh);

	memset(&lis->msg, 0, sizeof(lis->msg));
	lis->msg.msg_namelen = sizeof(struct sockaddr_in6);
	io_uring_prep_recvmsg_multishot(sqe, lis->fd, &lis->msg, 0);
	sqe->flags |= IOSQE_BUFFER_SELECT;
	sqe->buf_group = UDP_BUF_GROUP;
	io_uring_sqe_set_data64(sqe, udata_pack(UD_UDP_RECV, 0, sh->idx, 0, l));
	lis->armed = 1;
}

/* udp_session_new - a session for client @sa on listener @l; NULL when out of room. */
static struct flow *udp_session_new(struct shard *sh, uint32_t l, const struct flow_key *key,
				    const struct sockaddr *sa, socklen_t salen, uint32_t *slot)
{
	struct forward *fwd = sh->lis[l].fwd;
	struct flow *f = flow_alloc(sh, slot);

	if (!f) {
		return NULL;
	}
	f->kind = FLOW_UDP;
	f->state = FS_OPEN;
	f->fwd = fwd;
	f->fwd_slot = l;
	forward_get(fwd);
	f->key = *key;
	memcpy(&f->peer, sa, salen);
	f->peer_len = salen;
	stat_add(&sh->st.flows_open, 1);
	stat_add(&sh->st.flows_total, 1);
	stat_add(&fwd->st[sh->idx].flows_open, 1);
	stat_add(&fwd->st[sh->idx].flows_total, 1);
	f->fd[1] =
		socket(fwd->addr.upstream.ss_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (f->fd[1] < 0 ||
	    connect(f->fd[1], (struct sockaddr *)&fwd->addr.upstream, fwd->addr.upstream_len)) {
		pr_warn(MOD, "shard %u: upstream socket: %s", sh->idx, strerror(errno));
		flow_abort(sh, f, *slot, false);
		return NULL;
	}
	f->in_table = !flowtab_insert(&sh->ft, key, *slot);
	flow_arm_recv(sh, f, *slot, 1);
	return f;
}

void udp_handle_recvmsg(struct shard *sh, struct io_uring_cqe *cqe)
{
	uint32_t l = udata_slot(cqe->user_data) % FWD_MAX, slot;
	struct listener *lis = &sh->lis[l];
	struct io_uring_recvmsg_out *out;
	struct io_uring_sqe *sqe;
	struct flow_key key;
	struct flow *f;
	uint16_t bid;
	uint8_t *data, *payload;
	uint32_t plen;

	if (!(cqe->flags & IORING_CQE_F_MORE)) {
		lis->armed = 0;
		if (lis->closing) {
			if (cqe->flags & IORING_CQE_F_BUFFER) {
				bid = (uint16_t)(cqe->flags >> IORING_CQE_BUFFER_SHIFT);
				if (!bufring_take(&sh->ubr, bid, 0, 0)) {
					bufring_drop(&sh->ubr, bid);
				}
			}
			shard_listener_ended(sh, l);
			return;
		}
		if (cqe->res == -ENOBUFS) {
			stat_add(&sh->st.bufring_exhausted, 1);
			if (!lis->starved) {
				lis->starved = 1;
				sh->lis_starved++;
			}
		} else if (lis->fwd) {
			if (cqe->res < 0) {
				lis->rearm = 1;
			} else {
				udp_listener_arm(sh, l);
			}
		}
	}
	if (cqe->res < 0 || !(cqe->flags & IORING_CQE_F_BUFFER)) {
		return;
	}
	bid = (uint16_t)(cqe->flags >> IORING_CQE_BUFFER_SHIFT);
	data = bufring_data(&sh->ubr, bid);
	if (bufring_take(&sh->ubr, bid, 0, 0)) {
		pr_err(MOD, "shard %u: buffer %u delivered twice", sh->idx, bid);
		return;
	}
	out = io_uring_recvmsg_validate(data, cqe->res, &lis->msg);
	if (!out || (out->flags & MSG_TRUNC) || !lis->fwd || lis->closing ||
	    out->namelen > sizeof(union flow_sa) || out->namelen < sizeof(struct sockaddr_in)) {
		stat_add(&sh->st.drops, 1);
		bufring_drop(&sh->ubr, bid);
		return;
	}
	payload = io_uring_recvmsg_payload(out, &lis->msg);
	plen = io_uring_recvmsg_payload_length(out, cqe->res, &lis->msg);
	stat_add(&sh->st.bytes_in, plen);
	stat_add(&sh->st.packets_in, 1);
	stat_add(&lis->fwd->st[sh->idx].bytes, plen);
	flow_key_from_sockaddr(&key, lis->fwd->id, io_uring_recvmsg_name(out));
	if (flowtab_lookup(&sh->ft, &key, &slot)) {
		f = shard_flow(sh, slot);
	} else {
		f = udp_session_new(sh, l, &key, io_uring_recvmsg_name(out), out->namelen, &slot);
	}
	if (!f || f->state != FS_OPEN || f->d[0].queued >= udp_session_budget(sh)) {
		stat_add(&sh->st.drops, 1);
		bufring_drop(&sh->ubr, bid);
		return;
	}
	f->last_ms = sh->now_ms;
	sh->ubr.meta[bid].off = (uint32_t)(payload - data);
	sh->ubr.meta[bid].len = sh->ubr.meta[bid].off + plen;
	bufring_send_start(&sh->ubr, bid);
	f->d[0].queued++;
	sqe = shard_sqe(sh);
	io_uring_prep_send(sqe, f->fd[1], payload, plen, 0);
	io_uring_sqe_set_data64(sqe, udata_pack(UD_UDP_UP_SEND, 0, sh->idx, bid, slot));
	f->inflight++;
}

void udp_handle_up_recv(struct shard *sh, struct io_uring_cqe *cqe)
{
	uint32_t slot = udata_slot(cqe->user_data);
	struct flow *f = shard_flow(sh, slot);
	bool more = cqe->flags & IORING_CQE_F_MORE;
	struct listener *lis;
	struct io_uring_sqe *sqe;
	uint16_t bid;

	if (!more) {
		f->d[1].recv_armed = 0;
		f->inflight--;
	}
	if (cqe->res >= 0 && (cqe->flags & IORING_CQE_F_BUFFER)) {
		bid = (uint16_t)(cqe->flags >> IORING_CQE_BUFFER_SHIFT);
		if ((uint32_t)cqe->res > sh->ubr.buf_size) {
			/* Larger than a UDP buffer: truncated by the kernel, never forwarded. */
			if (!bufring_take(&sh->ubr, bid, 0, 0)) {
				bufring_drop(&sh->ubr, bid);
			}
			stat_add(&sh->st.drops, 1);
			goto rearm;
		}
		if (bufring_take(&sh->ubr, bid, 0, (uint32_t)cqe->res)) {
			pr_err(MOD, "shard %u: buffer %u delivered twice", sh->idx, bid);
			flow_abort(sh, f, slot, false);
			return;
		}
		lis = &sh->lis[f->fwd_slot];
		stat_add(&sh->st.bytes_in, (uint64_t)cqe->res);
		stat_add(&sh->st.packets_in, 1);
		stat_add(&f->fwd->st[sh->idx].bytes, (uint64_t)cqe->res);
		if (f->state != FS_OPEN || lis->fwd != f->fwd || lis->closing ||
		    f->d[1].queued >= udp_session_budget(sh)) {
			stat_add(&sh->st.drops, 1);
			bufring_drop(&sh->ubr, bid);
		} else {
			struct msghdr *m = &sh->umsg[bid];

			f->last_ms = sh->now_ms;
			sh->uiov[bid].iov_base = bufring_data(&sh->ubr, bid);
			sh->uiov[bid].iov_len = (size_t)cqe->res;
			memset(m, 0, sizeof(*m));
			m->msg_name = &f->peer;
			m->msg_namelen = f->peer_len;
			m->msg_iov = &sh->uiov[bid];
			m->msg_iovlen = 1;
			bufring_send_start(&sh->ubr, bid);
			f->d[1].queued++;
			sqe = shard_sqe(sh);
			io_uring_prep_sendmsg(sqe, lis->fd, m, 0);
			io_uring_sqe_set_data64(sqe,
						udata_pack(UD_UDP_CL_SEND, 1, sh->idx, bid, slot));
			f->inflight++;
		}
	} else if (cqe->res == -ENOBUFS) {
		stat_add(&sh->st.bufring_exhausted, 1);
		if (f->state == FS_OPEN) {
			flow_starve(sh, f, slot, 1);
		}
	} else if (cqe->res == -ECONNREFUSED) {
		/* ICMP port unreachable from the upstream: count it, keep the session. */
		stat_add(&sh->st.conn_refused, 1);
	}
rearm:
	if (!more && f->state == FS_OPEN && !f->d[1].starved) {
		flow_arm_recv(sh, f, slot, 1);
	}
	flow_maybe_free(sh, f, slot);
}

void udp_handle_send(struct shard *sh, struct io_uring_cqe *cqe)
{
	uint32_t slot = udata_slot(cqe->user_data);
	unsigned int dir = udata_dir(cqe->user_data) & 1;
	uint16_t bid = (uint16_t)udata_bid(cqe->user_data);
	struct flow *f = shard_flow(sh, slot);

	f->inflight--;
	f->d[dir].queued--;
	if (cqe->res < 0) {
		stat_add(&sh->st.drops, 1);
		if (cqe->res == -ECONNREFUSED) {
			stat_add(&sh->st.conn_refused, 1);
		}
	} else {
		stat_add(&sh->st.bytes_out, (uint64_t)cqe->res);
		stat_add(&sh->st.packets_out, 1);
	}
	/* A datagram is sent whole or not at all: the buffer is done either way. */
	bufring_drop(&sh->ubr, bid);
	flow_maybe_free(sh, f, slot);
}
