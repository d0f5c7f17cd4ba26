// SPDX-License-Identifier: MIT
/* ymx.c - yamux session and stream state machines (see ymx.h). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "natx/err.h"
#include "natx/rd.h"
#include "ymx.h"

void ymx_hdr_encode(uint8_t out[YMX_HDR_LEN], const struct ymx_hdr *h)
{
	struct wr w;

	wr_init(&w, out, YMX_HDR_LEN);
	wr_u8(&w, h->version);
	wr_u8(&w, h->type);
	wr_be16(&w, h->flags);
	wr_be32(&w, h->stream_id);
	wr_be32(&w, h->length);
}

void ymx_hdr_decode(struct ymx_hdr *h, const uint8_t in[YMX_HDR_LEN])
{
	struct rd r;

	rd_init(&r, in, YMX_HDR_LEN);
	rd_u8(&r, &h->version);
	rd_u8(&r, &h->type);
	rd_be16(&r, &h->flags);
	rd_be32(&r, &h->stream_id);
	rd_be32(&r, &h->length);
}

static int ymx_send(struct ymx_session *ys, uint8_t type, uint16_t flags, uint32_t id,
		    uint32_t length, const uint8_t *body, size_t blen)
{
	struct ymx_hdr h = { 0, type, flags, id, length };
	uint8_t b[YMX_HDR_LEN];

	ymx_hdr_encode(b, &h);
	return ys->ops->write(ys->ctx, b, body, blen);
}

int ymx_session_init(struct ymx_session *ys, bool client, const struct ymx_ops *ops, void *ctx,
		     struct p2p_clock *clock)
{
	memset(ys, 0, sizeof(*ys));
	ys->ops = ops;
	ys->ctx = ctx;
	ys->clock = clock;
	ys->client = client;
	ys->next_id = client ? 1 : 2;
	ys->max_in = YMX_DEFAULT_MAX_STREAMS;
	ys->max_out = YMX_DEFAULT_MAX_STREAMS;
	ys->max_frame = 65519 - YMX_HDR_LEN; /* one yamux frame per full Noise message */
	return 0;
}

struct ymx_stream *ymx_stream_find(struct ymx_session *ys, uint32_t id)
{
	struct ymx_stream *s = ys->buckets[id % YMX_BUCKETS];

	while (s && s->id != id) {
		s = s->next;
	}
	return s;
}

static struct ymx_stream *ymx_stream_new(struct ymx_session *ys, uint32_t id, bool outbound)
{
	struct ymx_stream *s = calloc(1, sizeof(*s));

	if (!s) {
		return NULL;
	}
	s->id = id;
	s->outbound = outbound;
	s->send_window = YMX_INITIAL_WINDOW;
	s->recv_window = YMX_INITIAL_WINDOW;
	s->recv_max = YMX_INITIAL_WINDOW;
	s->last_update_ms = ys->clock->now_ms(ys->clock);
	s->next = ys->buckets[id % YMX_BUCKETS];
	ys->buckets[id % YMX_BUCKETS] = s;
	if (outbound) {
		ys->n_out++;
		ys->unacked++;
	} else {
		ys->n_in++;
	}
	return s;
}

/* ymx_stream_release - unlink, tell the application, free. */
static void ymx_stream_release(struct ymx_session *ys, struct ymx_stream *s)
{
	struct ymx_stream **pp = &ys->buckets[s->id % YMX_BUCKETS];

	while (*pp != s) {
		pp = &(*pp)->next;
	}
	*pp = s->next;
	if (s->outbound) {
		ys->n_out--;
		if (!s->acked) {
			ys->unacked--;
		}
	} else {
		ys->n_in--;
	}
	if (ys->ops->on_close) {
		ys->ops->on_close(ys->ctx, s);
	}
	free(s);
}

static void ymx_stream_maybe_release(struct ymx_session *ys, struct ymx_stream *s)
{
	if (s->reset || (s->local_fin && s->remote_fin)) {
		ymx_stream_release(ys, s);
	}
}

void ymx_session_cleanup(struct ymx_session *ys)
{
	for (int i = 0; i < YMX_BUCKETS; i++) {
		while (ys->buckets[i]) {
			ymx_stream_release(ys, ys->buckets[i]);
		}
	}
}

struct ymx_stream *ymx_stream_open(struct ymx_session *ys, int *err)
{
	struct ymx_stream *s;

	if (ys->goaway_sent || ys->goaway_received) {
		*err = -ECONNABORTED;
		return NULL;
	}
	if (ys->n_out >= ys->max_out || ys->unacked >= YMX_MAX_UNACKED) {
		*err = -NATX_E_LIMIT;
		return NULL;
	}
	if (ys->next_id > UINT32_MAX - 2) {
		*err = -EOVERFLOW;
		return NULL;
	}
	s = ymx_stream_new(ys, ys->next_id, true);
	if (!s) {
		*err = -ENOMEM;
		return NULL;
	}
	ys->next_id += 2;
	*err = ymx_send(ys, YMX_WINDOW_UPDATE, YMX_SYN, s->id, 0, NULL, 0);
	if (*err) {
		s->reset = true;
		ymx_stream_release(ys, s);
		return NULL;
	}
	return s;
}

long ymx_stream_write(struct ymx_session *ys, struct ymx_stream *s, const uint8_t *p, size_t len)
{
	size_t done = 0;

	if (s->local_fin || s->reset) {
		return -EPIPE;
	}
	while (done < len && s->send_window) {
		size_t n = len - done;
		int err;

		if (n > s->send_window) {
			n = s->send_window;
		}
		if (n > ys->max_frame) {
			n = ys->max_frame;
		}
		err = ymx_send(ys, YMX_DATA, 0, s->id, (uint32_t)n, p + done, n);
		if (err) {
			return done ? (long)done : err;
		}
		s->send_window -= (uint32_t)n;
		done += n;
	}
	return (long)done;
}

int ymx_stream_close(struct ymx_session *ys, struct ymx_stream *s)
{
	int err;

	if (s->local_fin || s->reset) {
		return 0;
	}
	err = ymx_send(ys, YMX_WINDOW_UPDATE, YMX_FIN, s->id, 0, NULL, 0);
	if (err) {
		return err;
	}
	s->local_fin = true;
	ymx_stream_maybe_release(ys, s);
	return 0;
}

int ymx_stream_reset(struct ymx_session *ys, struct ymx_stream *s)
{
	int err = ymx_send(ys, YMX_WINDOW_UPDATE, YMX_RST, s->id, 0, NULL, 0);

	s->reset = true;
	ymx_stream_release(ys, s);
	return err;
}

int ymx_stream_consumed(struct ymx_session *ys, struct ymx_stream *s, size_t n)
{
	int64_t now;
	uint32_t delta;
	int err;

	s->recv_pending += (uint32_t)n;
	if (s->remote_fin || s->reset || s->recv_pending < s->recv_max / 2) {
		return 0;
	}
	delta = s->recv_pending;
	now = ys->clock->now_ms(ys->clock);
	/* Auto-tuning as js-libp2p-yamux: updates faster than 4 RTTs mean the window limits us. */
	if (ys->rtt_ms > 0 && now - s->last_update_ms < 4 * ys->rtt_ms &&
	    s->recv_max < YMX_MAX_WINDOW) {
		uint32_t grown =
			s->recv_max * 2 > YMX_MAX_WINDOW ? YMX_MAX_WINDOW : s->recv_max * 2;

		delta += grown - s->recv_max;
		s->recv_max = grown;
	}
	err = ymx_send(ys, YMX_WINDOW_UPDATE, 0, s->id, delta, NULL, 0);
	if (err) {
		return err;
	}
	s->recv_window += delta;
	s->recv_pending = 0;
	s->last_update_ms = now;
	return 0;
}

int ymx_ping(struct ymx_session *ys)
{
	int err;

	if (ys->ping_outstanding) {
		return -EBUSY;
	}
	err = ymx_send(ys, YMX_PING, YMX_SYN, 0, ys->ping_next, NULL, 0);
	if (err) {
		return err;
	}
	ys->ping_outstanding = true;
	ys->ping_id = ys->ping_next++;
	ys->ping_sent_ms = ys->clock->now_ms(ys->clock);
	return 0;
}

int ymx_goaway(struct ymx_session *ys, uint32_t code)
{
	if (ys->goaway_sent) {
		return 0;
	}
	ys->goaway_sent = true;
	return ymx_send(ys, YMX_GO_AWAY, 0, 0, code, NULL, 0);
}

/* ymx_apply_close_flags - FIN then RST of a frame, after its payload was delivered. */
static void ymx_apply_close_flags(struct ymx_session *ys, uint32_t id, uint16_t flags)
{
	struct ymx_stream *s = ymx_stream_find(ys, id);

	if (s && (flags & YMX_FIN) && !s->remote_fin) {
		s->remote_fin = true;
		if (ys->ops->on_fin) {
			ys->ops->on_fin(ys->ctx, s);
		}
		s = ymx_stream_find(ys, id); /* the callback may have reset it */
		if (s) {
			ymx_stream_maybe_release(ys, s);
			s = ymx_stream_find(ys, id);
		}
	}
	if (s && (flags & YMX_RST)) {
		s->reset = true;
		if (ys->ops->on_reset) {
			ys->ops->on_reset(ys->ctx, s);
		}
		s = ymx_stream_find(ys, id);
		if (s) {
			ymx_stream_release(ys, s);
		}
	}
}

static int ymx_on_session_frame(struct ymx_session *ys, const struct ymx_hdr *h)
{
	if (h->stream_id != 0) {
		return -NATX_E_PROTO;
	}
	if (h->type == YMX_GO_AWAY) {
		ys->goaway_received = true;
		ys->goaway_code = h->length;
		if (ys->ops->on_goaway) {
			ys->ops->on_goaway(ys->ctx, h->length);
		}
		return 0;
	}
	if (h->flags == YMX_SYN) {
		return ymx_send(ys, YMX_PING, YMX_ACK, 0, h->length, NULL, 0);
	}
	if (h->flags != YMX_ACK || !ys->ping_outstanding || h->length != ys->ping_id) {
		return -NATX_E_PROTO; /* js: UnRequestedPingError / NotMatchingPingError */
	}
	ys->ping_outstanding = false;
	ys->rtt_ms = ys->clock->now_ms(ys->clock) - ys->ping_sent_ms;
	if (ys->rtt_ms <= 0) {
		ys->rtt_ms = 1;
	}
	if (ys->ops->on_ping) {
		ys->ops->on_ping(ys->ctx, h->length, ys->rtt_ms);
	}
	return 0;
}

/* ymx_accept - a SYN for an unknown id: create the stream or refuse it with RST. */
static int ymx_accept(struct ymx_session *ys, uint32_t id, struct ymx_stream **out)
{
	struct ymx_stream *s;
	int err;

	*out = NULL;
	if ((id % 2 == 1) == ys->client) {
		return -NATX_E_PROTO; /* the peer uses our parity: both ends think they are clients */
	}
	if (ys->goaway_sent || ys->n_in >= ys->max_in) {
		ys->streams_refused++;
		return ymx_send(ys, YMX_WINDOW_UPDATE, YMX_RST, id, 0, NULL, 0);
	}
	s = ymx_stream_new(ys, id, false);
	if (!s) {
		ys->streams_refused++;
		return ymx_send(ys, YMX_WINDOW_UPDATE, YMX_RST, id, 0, NULL, 0);
	}
	err = ymx_send(ys, YMX_WINDOW_UPDATE, YMX_ACK, id, 0, NULL, 0);
	if (err) {
		return err;
	}
	if (ys->ops->on_open) {
		ys->ops->on_open(ys->ctx, s);
	}
	*out = ymx_stream_find(ys, id);
	return 0;
}

static int ymx_on_stream_frame(struct ymx_session *ys, const struct ymx_hdr *h)
{
	struct ymx_stream *s = ymx_stream_find(ys, h->stream_id);
	int err;

	if (h->stream_id == 0) {
		return -NATX_E_PROTO;
	}
	if (!s && (h->flags & YMX_SYN)) {
		err = ymx_accept(ys, h->stream_id, &s);
		if (err) {
			return err;
		}
	}
	if (!s) {
		/* unknown, refused or already closed stream: skip its payload (js does the same) */
		if (h->type == YMX_DATA) {
			ys->body_id = 0;
			ys->body_left = h->length;
		}
		return 0;
	}
	if ((h->flags & YMX_ACK) && s->outbound && !s->acked) {
		s->acked = true;
		ys->unacked--;
	}
	if (h->type == YMX_WINDOW_UPDATE) {
		if ((uint64_t)s->send_window + h->length > UINT32_MAX) {
			return -NATX_E_PROTO;
		}
		s->send_window += h->length;
		if (h->length && ys->ops->on_writable) {
			ys->ops->on_writable(ys->ctx, s);
		}
		ymx_apply_close_flags(ys, h->stream_id, h->flags);
		return 0;
	}
	if (h->length > s->recv_window || (h->length && s->remote_fin)) {
		/* the peer overran our window (or sent after FIN): reset this stream only */
		ys->window_violations++;
		err = ymx_send(ys, YMX_WINDOW_UPDATE, YMX_RST, s->id, 0, NULL, 0);
		s->reset = true;
		if (ys->ops->on_reset) {
			ys->ops->on_reset(ys->ctx, s);
		}
		s = ymx_stream_find(ys, h->stream_id);
		if (s) {
			ymx_stream_release(ys, s);
		}
		ys->body_id = 0;
		ys->body_left = h->length;
		return err;
	}
	s->recv_window -= h->length;
	ys->body_id = h->stream_id;
	ys->body_left = h->length;
	ys->body_flags = h->flags; /* applied after the payload */
	if (h->length == 0) {
		ymx_apply_close_flags(ys, h->stream_id, h->flags);
	}
	return 0;
}

static int ymx_on_frame(struct ymx_session *ys, const struct ymx_hdr *h)
{
	if (h->version != 0 || h->type > YMX_GO_AWAY) {
		return -NATX_E_PROTO;
	}
	if (h->type == YMX_PING || h->type == YMX_GO_AWAY) {
		return ymx_on_session_frame(ys, h);
	}
	return ymx_on_stream_frame(ys, h);
}

int ymx_consume(struct ymx_session *ys, const uint8_t *in, size_t len)
{
	while (len) {
		if (ys->body_left) {
			size_t n = len < ys->body_left ? len : ys->body_left;
			struct ymx_stream *s =
				ys->body_id ? ymx_stream_find(ys, ys->body_id) : NULL;

			ys->body_left -= (uint32_t)n;
			if (s && !s->reset && ys->ops->on_data) {
				ys->ops->on_data(ys->ctx, s, in, n);
			}
			in += n;
			len -= n;
			if (!ys->body_left && ys->body_id) {
				ymx_apply_close_flags(ys, ys->body_id, ys->body_flags);
			}
			continue;
		}
		size_t take = YMX_HDR_LEN - ys->hdr_len;
		struct ymx_hdr h;
		int err;

		if (take > len) {
			take = len;
		}
		memcpy(ys->hdr + ys->hdr_len, in, take);
		ys->hdr_len += (uint8_t)take;
		in += take;
		len -= take;
		if (ys->hdr_len < YMX_HDR_LEN) {
			break;
		}
		ys->hdr_len = 0;
		ymx_hdr_decode(&h, ys->hdr);
		err = ymx_on_frame(ys, &h);
		if (err) {
			return err;
		}
	}
	return 0;
}
