// SPDX-License-Identifier: MIT
/* relay_client.c - reserve, connect through a relay, accept circuits (see relay_client.h). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "natx/err.h"
#include "envelope.h"
#include "lpm.h"
#include "multiaddr.h"
#include "relay_client.h"

enum req_kind { REQ_RESERVE, REQ_CONNECT, REQ_STOP };

/* struct creq - one hop or stop exchange in flight. */
struct creq {
	struct relay_client *cl;
	struct creq *prev, *next;
	enum req_kind kind;
	struct p2p_stream *s;
	struct p2p_conn *conn;
	struct peer_id peer; /* CONNECT target, STOP source */
	void *user;
	int64_t start_ms;
	int reset_err; /* why the stream was reset (-NATX_E_UNAVAILABLE: the relay said "na") */
	struct lpm lpm;
};

/* struct slot - a relay we reserve on. */
struct slot {
	struct p2p_conn *conn; /* NULL: free slot */
	bool live; /* a reservation was granted and has not expired */
	bool pending; /* a RESERVE is in flight */
	int64_t renew_ms; /* monotonic time of the next RESERVE */
	int64_t expire_ms;
	struct relay_reservation rsvp;
};

struct relay_client {
	const struct p2p_identity *idn;
	struct p2p_clock *clock;
	const struct relay_client_ops *ops;
	void *ctx;
	struct creq *reqs;
	struct slot slots[RELAY_CLIENT_MAX_RSVP];
};

static const struct p2p_conn_ops req_ops;

static int64_t cl_now(const struct relay_client *cl)
{
	return cl->clock->now_ms(cl->clock);
}

static struct slot *slot_of(struct relay_client *cl, const struct p2p_conn *c)
{
	for (size_t i = 0; i < RELAY_CLIENT_MAX_RSVP; i++) {
		if (cl->slots[i].conn == c) {
			return &cl->slots[i];
		}
	}
	return NULL;
}

/* req_unlink_free - forget @q; its stream (if any) must already be detached or gone. */
static void req_unlink_free(struct creq *q)
{
	struct relay_client *cl = q->cl;

	if (q->prev) {
		q->prev->next = q->next;
	} else {
		cl->reqs = q->next;
	}
	if (q->next) {
		q->next->prev = q->prev;
	}
	free(q);
}

/* req_end - detach from the stream, free, and optionally reset the stream. */
static void req_end(struct creq *q, bool reset)
{
	struct p2p_stream *s = q->s;

	req_unlink_free(q);
	if (s) {
		p2p_stream_release(s, reset);
	}
}

/* req_fail - the exchange failed with @err / @status: report and end it. */
static void req_fail(struct creq *q, int err, uint32_t status)
{
	struct relay_client *cl = q->cl;

	if (q->kind == REQ_RESERVE) {
		struct slot *sl = slot_of(cl, q->conn);

		if (sl) {
			sl->pending = false;
			/* retry a failed renewal in a minute while the old one lasts */
			sl->renew_ms = cl_now(cl) + 60000;
		}
		if (cl->ops->on_reserved) {
			cl->ops->on_reserved(cl->ctx, q->conn, err, status, NULL);
		}
	} else if (q->kind == REQ_CONNECT && cl->ops->on_connect_failed) {
		cl->ops->on_connect_failed(cl->ctx, &q->peer, err, status, q->user);
	}
	req_end(q, true);
}

static struct creq *req_new(struct relay_client *cl, enum req_kind kind, struct p2p_stream *s)
{
	struct creq *q = calloc(1, sizeof(*q));

	if (!q) {
		return NULL;
	}
	q->cl = cl;
	q->kind = kind;
	q->s = s;
	q->conn = p2p_stream_conn(s);
	q->start_ms = cl_now(cl);
	lpm_init(&q->lpm, RELAY_MAX_MSG);
	q->next = cl->reqs;
	if (cl->reqs) {
		cl->reqs->prev = q;
	}
	cl->reqs = q;
	p2p_stream_set_ops(s, &req_ops, q);
	return q;
}

/* req_open - open a hop stream on @c and track it as a @kind request; NULL with *@err. */
static struct creq *req_open(struct relay_client *cl, struct p2p_conn *c, enum req_kind kind,
			     int *err)
{
	struct p2p_stream *s = p2p_stream_open(c, RELAY_HOP_PROTOCOL, err);
	struct creq *q;

	if (!s) {
		return NULL;
	}
	q = req_new(cl, kind, s);
	if (!q) {
		*err = -ENOMEM;
		p2p_stream_reset(s);
	}
	return q;
}

/* send_msg - encode and write one hop (@hop) or stop message. */
static int send_msg(struct p2p_stream *s, const struct relay_msg *m, bool hop)
{
	uint8_t out[RELAY_MAX_MSG + 8];
	size_t len;
	int err = hop ? relay_hop_encode(m, out, sizeof(out), &len) :
			relay_stop_encode(m, out, sizeof(out), &len);

	if (err) {
		return err;
	}
	return p2p_stream_write(s, out, len) == (long)len ? 0 : -ENOBUFS;
}

static int reserve_send(struct relay_client *cl, struct slot *sl)
{
	struct relay_msg *m = calloc(1, sizeof(*m));
	struct creq *q;
	int err;

	if (!m) {
		return -ENOMEM;
	}
	q = req_open(cl, sl->conn, REQ_RESERVE, &err);
	if (!q) {
		goto out_free_msg;
	}
	m->type = RELAY_HOP_RESERVE;
	err = send_msg(q->s, m, true);
	if (err) {
		req_end(q, true);
		goto out_free_msg;
	}
	sl->pending = true;
out_free_msg:
	free(m);
	return err;
}

/* reserve_done - a STATUS for our RESERVE. */
static void reserve_done(struct creq *q, const struct relay_msg *m)
{
	struct relay_client *cl = q->cl;
	struct slot *sl = slot_of(cl, q->conn);
	const struct peer_id *relay = p2p_conn_remote(q->conn);
	struct relay_reservation rv = { 0 };
	int64_t now_unix = cl->ops->unix_now(cl->ctx), left;

	if (m->type != RELAY_HOP_STATUS || !m->has_status) {
		req_fail(q, -NATX_E_PROTO, RELAY_UNUSED);
		return;
	}
	if (m->status != RELAY_OK) {
		req_fail(q, 0, m->status);
		return;
	}
	if (!m->has_rsvp || !relay || !sl) {
		req_fail(q, -NATX_E_PROTO, m->status);
		return;
	}
	rv.relay = *relay;
	rv.expire = m->rsvp_expire;
	rv.addrs = m->rsvp_addrs;
	rv.limit = m->limit;
	if (m->voucher_len) {
		struct relay_voucher v;

		if (relay_voucher_open(m->voucher, m->voucher_len, &v) ||
		    !peerid_equal(&v.relay, relay) || !peerid_equal(&v.peer, &cl->idn->id)) {
			req_fail(q, -NATX_E_AUTH, m->status);
			return;
		}
		rv.voucher_ok = true;
	}
	left = (int64_t)rv.expire - now_unix;
	if (left <= 0) {
		req_fail(q, -NATX_E_PROTO, m->status);
		return;
	}
	sl->rsvp = rv;
	sl->live = true;
	sl->pending = false;
	sl->expire_ms = cl_now(cl) + left * 1000;
	/* renew 5 min before expiry (js), halfway through short reservations */
	sl->renew_ms = cl_now(cl) + (left > 600 ? left - 300 : left / 2) * 1000;
	if (cl->ops->on_reserved) {
		cl->ops->on_reserved(cl->ctx, q->conn, 0, RELAY_OK, &sl->rsvp);
	}
	req_end(q, false);
}

/* circuit_ready - hand the stream (now a raw pipe) to the host. */
static void circuit_ready(struct creq *q, bool dialer, const struct relay_limit *limit,
			  const uint8_t *early, size_t early_len)
{
	struct relay_client *cl = q->cl;
	struct p2p_stream *s = q->s;
	struct peer_id peer = q->peer;
	struct relay_limit lim = *limit;
	void *user = q->user;

	req_unlink_free(q);
	p2p_stream_detach(s);
	if (cl->ops->on_circuit) {
		cl->ops->on_circuit(cl->ctx, s, &peer, dialer, &lim, early, early_len, user);
	} else {
		p2p_stream_reset(s);
	}
}

static void stop_request(struct creq *q, const struct relay_msg *m, const uint8_t *early,
			 size_t early_len)
{
	struct relay_client *cl = q->cl;
	struct relay_msg *ans = calloc(1, sizeof(*ans));
	uint32_t status = RELAY_OK;
	struct slot *sl = slot_of(cl, q->conn);

	if (!ans) {
		req_end(q, true);
		return;
	}
	if (m->type != RELAY_STOP_CONNECT || !m->has_peer) {
		status = RELAY_MALFORMED_MESSAGE;
	} else if (!sl || !sl->live) {
		status = RELAY_PERMISSION_DENIED; /* we hold no reservation there */
	} else if (cl->ops->accept_stop) {
		status = cl->ops->accept_stop(cl->ctx, &m->peer);
	}
	ans->type = RELAY_STOP_STATUS;
	ans->has_status = true;
	ans->status = status;
	if (send_msg(q->s, ans, false) || status != RELAY_OK) {
		free(ans);
		req_end(q, status != RELAY_OK ? false : true);
		return;
	}
	free(ans);
	q->peer = m->peer;
	circuit_ready(q, false, &m->limit, early, early_len);
}

/* hop_decode / stop_decode - the relay decoders for lpm_take. */
static int hop_decode(void *m, const uint8_t *buf, size_t len)
{
	return relay_hop_decode(m, buf, len);
}

static int stop_decode(void *m, const uint8_t *buf, size_t len)
{
	return relay_stop_decode(m, buf, len);
}

static void req_data(void *ctx, struct p2p_stream *s, const uint8_t *p, size_t n)
{
	struct creq *q = ctx;
	struct relay_msg *m;
	size_t used;
	int err;

	m = lpm_take(&q->lpm, p, n, &used, q->kind == REQ_STOP ? stop_decode : hop_decode,
		     sizeof(*m), &err);
	if (!m) {
		if (err) {
			req_fail(q, err, RELAY_UNUSED);
		}
		return;
	}
	switch (q->kind) {
	case REQ_RESERVE:
		reserve_done(q, m);
		break;
	case REQ_CONNECT:
		if (m->type != RELAY_HOP_STATUS || !m->has_status) {
			req_fail(q, -NATX_E_PROTO, RELAY_UNUSED);
		} else if (m->status != RELAY_OK) {
			req_fail(q, 0, m->status);
		} else {
			circuit_ready(q, true, &m->limit, p + used, n - used);
		}
		break;
	case REQ_STOP:
		stop_request(q, m, p + used, n - used);
		break;
	}
	free(m);
}

static void req_fin(void *ctx, struct p2p_stream *s)
{
	req_fail(ctx, -ECONNRESET, RELAY_UNUSED);
}

static void req_reset(void *ctx, struct p2p_stream *s, int err)
{
	struct creq *q = ctx;

	q->reset_err = err; /* reported by req_close, which follows */
}

static void req_close(void *ctx, struct p2p_stream *s)
{
	struct creq *q = ctx;

	q->s = NULL; /* gone under us (reset, refused, connection freed) */
	req_fail(q, q->reset_err ? q->reset_err : -ECONNRESET, RELAY_UNUSED);
}

static const struct p2p_conn_ops req_ops = {
	.on_stream_data = req_data,
	.on_stream_fin = req_fin,
	.on_stream_reset = req_reset,
	.on_stream_close = req_close,
};

/* ---- API ---- */

struct relay_client *relay_client_new(const struct p2p_identity *idn, struct p2p_clock *clock,
				      const struct relay_client_ops *ops, void *ctx, int *err)
{
	struct relay_client *cl;

	if (!ops || !ops->unix_now) {
		*err = -EINVAL;
		return NULL;
	}
	cl = calloc(1, sizeof(*cl));
	if (!cl) {
		*err = -ENOMEM;
		return NULL;
	}
	cl->idn = idn;
	cl->clock = clock;
	cl->ops = ops;
	cl->ctx = ctx;
	return cl;
}

void relay_client_free(struct relay_client *cl)
{
	if (!cl) {
		return;
	}
	while (cl->reqs) {
		req_end(cl->reqs, true);
	}
	free(cl);
}

int relay_client_reserve(struct relay_client *cl, struct p2p_conn *relay_conn)
{
	struct slot *sl = slot_of(cl, relay_conn);
	int err;

	if (sl) {
		return -EALREADY;
	}
	sl = slot_of(cl, NULL);
	if (!sl) {
		return -ENOSPC;
	}
	memset(sl, 0, sizeof(*sl));
	sl->conn = relay_conn;
	err = reserve_send(cl, sl);
	if (err) {
		sl->conn = NULL;
	}
	return err;
}

void relay_client_conn_gone(struct relay_client *cl, struct p2p_conn *c)
{
	struct slot *sl = slot_of(cl, c);
	struct creq *q = cl->reqs;

	if (sl) {
		memset(sl, 0, sizeof(*sl));
	}
	while (q) {
		struct creq *next = q->next;

		if (q->conn == c) {
			req_fail(q, -ECONNRESET, RELAY_UNUSED);
		}
		q = next;
	}
}

int relay_client_connect(struct relay_client *cl, struct p2p_conn *relay_conn,
			 const struct peer_id *target, void *user)
{
	struct relay_msg *m = calloc(1, sizeof(*m));
	struct creq *q;
	int err;

	if (!m) {
		return -ENOMEM;
	}
	q = req_open(cl, relay_conn, REQ_CONNECT, &err);
	if (!q) {
		goto out_free_msg;
	}
	q->peer = *target;
	q->user = user;
	m->type = RELAY_HOP_CONNECT;
	m->has_peer = true;
	m->peer = *target;
	err = send_msg(q->s, m, true);
	if (err) {
		req_end(q, true);
	}
out_free_msg:
	free(m);
	return err;
}

void relay_client_stop_accept(struct relay_client *cl, struct p2p_stream *s)
{
	if (!req_new(cl, REQ_STOP, s)) {
		p2p_stream_reset(s);
	}
}

void relay_client_tick(struct relay_client *cl)
{
	int64_t now = cl_now(cl);
	struct creq *q = cl->reqs;

	while (q) {
		struct creq *next = q->next;

		if (now - q->start_ms >= RELAY_CLIENT_TIMEOUT_MS) {
			/* req_fail frees only q; next stays valid */
			req_fail(q, -ETIMEDOUT, RELAY_UNUSED);
		}
		q = next;
	}
	for (size_t i = 0; i < RELAY_CLIENT_MAX_RSVP; i++) {
		struct slot *sl = &cl->slots[i];

		if (!sl->conn) {
			continue;
		}
		if (sl->live && now >= sl->expire_ms) {
			sl->live = false;
		}
		if (!sl->pending && now >= sl->renew_ms && reserve_send(cl, sl)) {
			sl->renew_ms = now + 60000;
		}
	}
}

const struct relay_reservation *relay_client_reservation(const struct relay_client *cl,
							 const struct p2p_conn *relay_conn)
{
	for (size_t i = 0; i < RELAY_CLIENT_MAX_RSVP; i++) {
		if (cl->slots[i].conn == relay_conn && cl->slots[i].live) {
			return &cl->slots[i].rsvp;
		}
	}
	return NULL;
}

int relay_circuit_addr(const uint8_t *relay_addr, size_t relay_addr_len,
		       const struct peer_id *relay, const struct peer_id *self, uint8_t *out,
		       size_t cap, size_t *len)
{
	char text[MADDR_TEXT_MAX], rid[PEERID_TEXT_MAX], sid[PEERID_TEXT_MAX],
		tail[16 + 2 * PEERID_TEXT_MAX];
	int n = maddr_to_text(relay_addr, relay_addr_len, text, sizeof(text));
	size_t tl;

	if (n < 0) {
		return n;
	}
	if (peerid_to_text(relay, rid, sizeof(rid)) < 0 ||
	    peerid_to_text(self, sid, sizeof(sid)) < 0) {
		return -NATX_E_TOO_BIG;
	}
	tl = strlen(text);
	/* add /p2p/<relay> unless the address already ends with it */
	if (!(tl > strlen(rid) + 5 && !strcmp(text + tl - strlen(rid), rid) &&
	      !strncmp(text + tl - strlen(rid) - 5, "/p2p/", 5))) {
		snprintf(tail, sizeof(tail), "/p2p/%s", rid);
	} else {
		tail[0] = 0;
	}
	if (snprintf(text + tl, sizeof(text) - tl, "%s/p2p-circuit/p2p/%s", tail, sid) >=
	    (int)(sizeof(text) - tl)) {
		return -NATX_E_TOO_BIG;
	}
	return maddr_from_text(text, out, cap, len);
}

int relay_circuit_parse(const uint8_t *ma, size_t len, uint8_t *relay_addr, size_t cap,
			size_t *relay_len, struct peer_id *relay, struct peer_id *target)
{
	char text[MADDR_TEXT_MAX], *circ, *rid, *tid;
	int n = maddr_to_text(ma, len, text, sizeof(text));

	if (n < 0) {
		return n;
	}
	circ = strstr(text, "/p2p-circuit");
	if (!circ || circ == text) {
		return -NATX_E_PROTO;
	}
	tid = circ + strlen("/p2p-circuit");
	if (strncmp(tid, "/p2p/", 5) || strchr(tid + 5, '/') ||
	    peerid_from_text(target, tid + 5, strlen(tid + 5))) {
		return -NATX_E_PROTO;
	}
	*circ = 0;
	rid = strrchr(text, '/');
	if (!rid || rid - text < 4 || strncmp(rid - 4, "/p2p", 4) ||
	    peerid_from_text(relay, rid + 1, strlen(rid + 1))) {
		return -NATX_E_PROTO;
	}
	return maddr_from_text(text, relay_addr, cap, relay_len);
}
