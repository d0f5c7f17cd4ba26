// SPDX-License-Identifier: MIT
/* mig_flow - per-flow state of /natx/flow/1.0.0 (contract in mig_flow.h). */
#include "mig_flow.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "natx/err.h"

int mig_flow_init(struct mig_flow *f, const uint8_t id[MIG_ID_LEN], size_t cap)
{
	unsigned int i;

	memset(f, 0, sizeof(*f));
	if (!cap) {
		return -EINVAL;
	}
	f->ring = malloc(cap);
	if (!f->ring) {
		return -ENOMEM;
	}
	f->cap = cap;
	memcpy(f->id, id, MIG_ID_LEN);
	f->active = -1;
	for (i = 0; i < MIG_PATHS; i++) {
		f->p[i].nack_off = UINT64_MAX;
	}
	return 0;
}

void mig_flow_release(struct mig_flow *f)
{
	free(f->ring);
	f->ring = NULL;
}

size_t mig_flow_write(struct mig_flow *f, const void *buf, size_t len)
{
	size_t room = f->cap - (size_t)(f->tx_end - f->tx_acked), at, first;

	if (f->tx_shut) {
		return 0;
	}
	if (len > room) {
		len = room;
	}
	at = (size_t)(f->tx_end % f->cap);
	first = f->cap - at < len ? f->cap - at : len;
	memcpy(f->ring + at, buf, first);
	memcpy(f->ring, (const uint8_t *)buf + first, len - first);
	f->tx_end += len;
	return len;
}

void mig_flow_shutdown(struct mig_flow *f)
{
	f->tx_shut = true;
}

/* mig_acked - the peer has every byte before @off: free them from the ring. */
static int mig_acked(struct mig_flow *f, uint64_t off)
{
	if (off > f->tx_end) {
		return -NATX_E_PROTO;
	}
	if (off > f->tx_acked) {
		f->tx_acked = off;
	}
	return 0;
}

int mig_path_up(struct mig_flow *f, unsigned int idx, uint64_t peer_rx)
{
	struct mig_path *p;
	int ret;

	if (idx >= MIG_PATHS || f->p[idx].state == MIG_P_UP || f->p[idx].state == MIG_P_MOVED) {
		return -EINVAL;
	}
	ret = mig_acked(f, peer_rx);
	if (ret) {
		return ret;
	}
	p = &f->p[idx];
	memset(p, 0, sizeof(*p));
	p->state = MIG_P_UP;
	p->nack_off = UINT64_MAX;
	if (f->active < 0) {
		/* Nothing is known to have arrived past the peer's offset: send from there. */
		f->active = (int)idx;
		p->tx_next = f->tx_acked;
	}
	return 0;
}

int mig_flow_switch(struct mig_flow *f, unsigned int idx)
{
	struct mig_path *old;

	if (idx >= MIG_PATHS || f->p[idx].state != MIG_P_UP || f->active == (int)idx) {
		return -EINVAL;
	}
	if (f->active >= 0) {
		old = &f->p[f->active];
		old->state = MIG_P_MOVED;
		old->moved_due = true;
		old->moved_off = old->tx_next;
		f->p[idx].tx_next = old->tx_next;
	} else {
		f->p[idx].tx_next = f->tx_acked;
	}
	f->active = (int)idx;
	f->st.moves++;
	return 0;
}

void mig_path_lost(struct mig_flow *f, unsigned int idx)
{
	unsigned int i;

	if (idx >= MIG_PATHS) {
		return;
	}
	f->p[idx].state = MIG_P_DEAD;
	f->p[idx].rx_blocked = false;
	if (f->active != (int)idx) {
		return;
	}
	f->active = -1;
	for (i = 0; i < MIG_PATHS; i++) {
		if (f->p[i].state == MIG_P_UP) {
			/* Bytes past the last ACK may have died with the path: go back to it. */
			f->active = (int)i;
			f->p[i].tx_next = f->tx_acked;
			break;
		}
	}
}

/* mig_put_ctrl - one 9-byte control frame into @out; false when it does not fit. */
static bool mig_put_ctrl(uint8_t type, uint64_t off, uint8_t *out, size_t cap, size_t *n)
{
	struct mig_frame fr = { .type = type, .off = off };
	int ret = mig_frame_encode(&fr, out + *n, cap - *n);

	if (ret < 0) {
		return false;
	}
	*n += (size_t)ret;
	return true;
}

/* mig_put_data - DATA frames from the ring for path @p, as many as fit. */
static void mig_put_data(struct mig_flow *f, struct mig_path *p, uint8_t *out, size_t cap,
			 size_t *n)
{
	while (p->tx_next < f->tx_end && cap - *n > MIG_DATA_HDR) {
		size_t len = (size_t)(f->tx_end - p->tx_next), at, first;
		uint8_t *h = out + *n;

		if (len > MIG_DATA_MAX) {
			len = MIG_DATA_MAX;
		}
		if (len > cap - *n - MIG_DATA_HDR) {
			len = cap - *n - MIG_DATA_HDR;
		}
		h[0] = MIG_T_DATA;
		for (int i = 0; i < 8; i++) {
			h[1 + i] = (uint8_t)(p->tx_next >> (56 - 8 * i));
		}
		h[9] = (uint8_t)(len >> 8);
		h[10] = (uint8_t)len;
		at = (size_t)(p->tx_next % f->cap);
		first = f->cap - at < len ? f->cap - at : len;
		memcpy(h + MIG_DATA_HDR, f->ring + at, first);
		memcpy(h + MIG_DATA_HDR + first, f->ring, len - first);
		*n += MIG_DATA_HDR + len;
		if (p->tx_next < f->tx_hi) {
			f->st.resent_bytes +=
				f->tx_hi - p->tx_next < len ? f->tx_hi - p->tx_next : len;
		}
		p->tx_next += len;
		if (p->tx_next > f->tx_hi) {
			f->tx_hi = p->tx_next;
		}
	}
}

size_t mig_path_output(struct mig_flow *f, unsigned int idx, uint8_t *out, size_t cap)
{
	struct mig_path *p;
	size_t n = 0;

	if (idx >= MIG_PATHS) {
		return 0;
	}
	p = &f->p[idx];
	if (p->state != MIG_P_UP && p->state != MIG_P_MOVED) {
		return 0;
	}
	if (p->nack_due) {
		if (!mig_put_ctrl(MIG_T_NACK, p->nack_off, out, cap, &n)) {
			return n;
		}
		p->nack_due = false;
		p->ack_due = false;
		f->rx_acked = p->nack_off;
		f->st.nacks_sent++;
	}
	if (p->ack_due) {
		if (!mig_put_ctrl(MIG_T_ACK, f->rx_off, out, cap, &n)) {
			return n;
		}
		p->ack_due = false;
		f->rx_acked = f->rx_off;
	}
	if (p->moved_due) {
		if (!mig_put_ctrl(MIG_T_MOVED, p->moved_off, out, cap, &n)) {
			return n;
		}
		p->moved_due = false;
	}
	if (f->active != (int)idx) {
		return n;
	}
	mig_put_data(f, p, out, cap, &n);
	if (f->tx_shut && p->tx_next == f->tx_end && !p->fin_sent) {
		if (mig_put_ctrl(MIG_T_FIN, f->tx_end, out, cap, &n)) {
			p->fin_sent = true;
		}
	}
	return n;
}

/* mig_ack_due - ask for an ACK on path @idx, or on any path that can still send. */
static void mig_ack_due(struct mig_flow *f, unsigned int idx)
{
	unsigned int i;

	if (f->p[idx].state == MIG_P_UP || f->p[idx].state == MIG_P_MOVED) {
		f->p[idx].ack_due = true;
		return;
	}
	for (i = 0; i < MIG_PATHS; i++) {
		if (f->p[i].state == MIG_P_UP) {
			f->p[i].ack_due = true;
			return;
		}
	}
}

/* mig_gap_fillable - another path than @idx may still deliver bytes at rx_off. */
static bool mig_gap_fillable(const struct mig_flow *f, unsigned int idx)
{
	unsigned int i;

	for (i = 0; i < MIG_PATHS; i++) {
		if (i != idx && (f->p[i].state == MIG_P_UP || f->p[i].state == MIG_P_MOVED) &&
		    !f->p[i].peer_moved) {
			return true;
		}
	}
	return false;
}

/* mig_rx_data - one DATA frame on path @idx: deliver, drop or wait. 1 = wait, 0, -errno. */
static int mig_rx_data(struct mig_flow *f, unsigned int idx, const struct mig_frame *fr,
		       mig_deliver_fn fn, void *ctx)
{
	struct mig_path *p = &f->p[idx];
	uint64_t end = fr->off + fr->len;

	if (p->peer_moved || (f->rx_fin && end > f->rx_fin_off)) {
		return -NATX_E_PROTO;
	}
	if (end <= f->rx_off) {
		f->st.dup_bytes += fr->len;
		return 0;
	}
	if (fr->off > f->rx_off) {
		if (mig_gap_fillable(f, idx)) {
			p->rx_blocked = true;
			return 1;
		}
		f->st.dropped_ahead++;
		if (p->nack_off != f->rx_off) {
			p->nack_off = f->rx_off;
			p->nack_due = true;
		}
		return 0;
	}
	f->st.dup_bytes += f->rx_off - fr->off;
	fn(ctx, fr->data + (f->rx_off - fr->off), (size_t)(end - f->rx_off));
	f->rx_off = end;
	if (f->rx_off - f->rx_acked >= MIG_ACK_BYTES) {
		mig_ack_due(f, idx);
	}
	return 0;
}

int mig_path_input(struct mig_flow *f, unsigned int idx, const uint8_t *in, size_t len,
		   size_t *used, mig_deliver_fn fn, void *ctx)
{
	struct mig_frame fr;
	size_t at = 0;
	int n, ret = 0;

	*used = 0;
	if (idx >= MIG_PATHS) {
		return -EINVAL;
	}
	f->p[idx].rx_blocked = false;
	while (at < len) {
		n = mig_frame_decode(in + at, len - at, &fr);
		if (n <= 0) {
			ret = n;
			break;
		}
		switch (fr.type) {
		case MIG_T_DATA:
			ret = mig_rx_data(f, idx, &fr, fn, ctx);
			break;
		case MIG_T_ACK:
			ret = mig_acked(f, fr.off);
			break;
		case MIG_T_NACK:
			f->st.nacks_rcvd++;
			ret = mig_acked(f, fr.off);
			if (!ret && f->active >= 0 && fr.off < f->p[f->active].tx_next) {
				f->p[f->active].tx_next = fr.off;
			}
			break;
		case MIG_T_FIN:
			if ((f->rx_fin && fr.off != f->rx_fin_off) || fr.off < f->rx_off) {
				ret = -NATX_E_PROTO;
				break;
			}
			f->rx_fin = true;
			f->rx_fin_off = fr.off;
			break;
		case MIG_T_MOVED:
			/* Bytes before fr.off that never arrive here are NACKed on the new path. */
			f->p[idx].peer_moved = true;
			break;
		case MIG_T_RESET:
			ret = -ECONNRESET;
			break;
		default: /* OPEN and ATTACH only start a path; the host reads them */
			ret = -NATX_E_PROTO;
			break;
		}
		if (ret) {
			break;
		}
		at += (size_t)n;
	}
	*used = at;
	if (ret == 1) {
		ret = 0;
	}
	if (ret >= 0 && f->rx_fin && f->rx_off == f->rx_fin_off && !f->rx_eof_done) {
		f->rx_eof_done = true;
		fn(ctx, NULL, 0);
		mig_ack_due(f, idx);
	}
	return ret;
}

void mig_flow_tick(struct mig_flow *f)
{
	unsigned int i;

	if (f->rx_off == f->rx_acked) {
		return;
	}
	for (i = 0; i < MIG_PATHS; i++) {
		if (f->p[i].state == MIG_P_UP) {
			f->p[i].ack_due = true;
			return;
		}
	}
}

bool mig_flow_done(const struct mig_flow *f)
{
	return f->rx_eof_done && f->tx_shut && f->tx_acked == f->tx_end && f->active >= 0 &&
	       f->p[f->active].fin_sent;
}

bool mig_path_finished(const struct mig_flow *f, unsigned int idx)
{
	const struct mig_path *p = &f->p[idx % MIG_PATHS];

	return idx < MIG_PATHS && p->state == MIG_P_MOVED && p->peer_moved && !p->moved_due &&
	       !p->ack_due && !p->nack_due;
}
