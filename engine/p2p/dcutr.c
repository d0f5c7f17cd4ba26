// SPDX-License-Identifier: MIT
/* dcutr.c - DCUtR codec and both role state machines (see dcutr.h). */
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#include "natx/err.h"
#include "dcutr.h"
#include "holepunch.pb-c.h"
#include "lpm.h"
#include "pbframe.h"
#include "multiaddr.h"

int dcutr_encode(const struct dcutr_msg *m, uint8_t *out, size_t cap, size_t *len)
{
	P2p__HolePunch pb = P2P__HOLE_PUNCH__INIT;
	ProtobufCBinaryData addrs[RELAY_MAX_ADDRS];

	pb.has_type = 1;
	pb.type = (P2p__HolePunch__Type)m->type;
	pbframe_addrs_view(&m->addrs, addrs, &pb.n_obsaddrs, &pb.obsaddrs);
	return pbframe_encode(&pb.base, DCUTR_MAX_MSG, out, cap, len);
}

int dcutr_decode(struct dcutr_msg *m, const uint8_t *buf, size_t len)
{
	P2p__HolePunch *pb;
	int err;

	memset(m, 0, sizeof(*m));
	pb = pbframe_decode(&p2p__hole_punch__descriptor, DCUTR_MAX_MSG, buf, len, &err);
	if (!pb) {
		return err;
	}
	err = -NATX_E_PROTO;
	if (pb->has_type &&
	    ((int)pb->type == DCUTR_TYPE_CONNECT || (int)pb->type == DCUTR_TYPE_SYNC)) {
		m->type = (uint32_t)pb->type;
		pbframe_addrs_keep(&m->addrs, pb->n_obsaddrs, pb->obsaddrs);
		err = 0;
	}
	pbframe_free(&pb->base);
	return err;
}

/* addr_private - loopback, RFC 1918, CGNAT, link-local, ULA, unspecified. */
static bool addr_private(const struct sockaddr_storage *ss)
{
	if (ss->ss_family == AF_INET) {
		const uint8_t *a = (const uint8_t *)&((const struct sockaddr_in *)ss)->sin_addr;

		return a[0] == 0 || a[0] == 10 || a[0] == 127 || (a[0] == 169 && a[1] == 254) ||
		       (a[0] == 172 && (a[1] & 0xf0) == 16) || (a[0] == 192 && a[1] == 168) ||
		       (a[0] == 100 && (a[1] & 0xc0) == 64);
	}
	if (ss->ss_family == AF_INET6) {
		const uint8_t *a = ((const struct sockaddr_in6 *)ss)->sin6_addr.s6_addr;
		static const uint8_t zero[15];

		return (a[0] & 0xfe) == 0xfc || (a[0] == 0xfe && (a[1] & 0xc0) == 0x80) ||
		       !memcmp(a, zero, 15);
	}
	return true;
}

void dcutr_filter_addrs(struct relay_addrs *a, bool allow_private)
{
	size_t k = 0;

	for (size_t i = 0; i < a->n; i++) {
		struct sockaddr_storage ss;
		char text[MADDR_TEXT_MAX];
		int has_id;

		if (maddr_to_sockaddr(a->b[i], a->lens[i], &ss, NULL, &has_id) ||
		    maddr_to_text(a->b[i], a->lens[i], text, sizeof(text)) < 0 ||
		    strstr(text, "/p2p-circuit") || (!allow_private && addr_private(&ss))) {
			continue;
		}
		if (k != i) {
			memcpy(a->b[k], a->b[i], a->lens[i]);
			a->lens[k] = a->lens[i];
		}
		k++;
	}
	a->n = k;
}

enum dstate {
	DS_B_CONNECT_SENT, /* B: waiting for A's CONNECT */
	DS_B_DIALING, /* B: SYNC sent, dial scheduled */
	DS_B_BACKOFF, /* B: the attempt failed, next one at next_ms */
	DS_A_WAIT_CONNECT, /* A: stream open, waiting for B's CONNECT */
	DS_A_WAIT_SYNC, /* A: answered, waiting for SYNC */
	DS_A_DIALING, /* A: dialling */
	DS_A_IDLE, /* A: an attempt failed; B may start another */
};

/* struct dsess - the upgrade of one relayed connection. */
struct dsess {
	struct dcutr *d;
	struct dsess *prev, *next;
	struct p2p_conn *conn;
	bool is_b;
	enum dstate state;
	struct p2p_stream *s;
	struct lpm lpm;
	struct relay_addrs peer_addrs; /* A: B's addresses from its CONNECT */
	unsigned n; /* attempts started */
	int64_t t0; /* B: CONNECT sent; both: state deadline base */
	struct dcutr_attempt log[DCUTR_ATTEMPTS];
};

struct dcutr {
	struct p2p_clock *clock;
	const struct dcutr_ops *ops;
	void *ctx;
	const uint8_t *const *addrs;
	const size_t *addr_lens;
	size_t n_addrs;
	bool allow_private;
	int64_t attempt_ms; /* dcutr_set_attempt_timeout */
	struct dsess *sess;
	struct dcutr_stats st;
};

static const struct p2p_conn_ops ds_ops;

static int64_t d_now(const struct dcutr *d)
{
	return d->clock->now_ms(d->clock);
}

static struct dsess *sess_find(struct dcutr *d, const struct p2p_conn *c)
{
	for (struct dsess *x = d->sess; x; x = x->next) {
		if (x->conn == c) {
			return x;
		}
	}
	return NULL;
}

/* sess_drop_stream - detach and close (or reset) the current stream. */
static void sess_drop_stream(struct dsess *x, bool reset)
{
	struct p2p_stream *s = x->s;

	x->s = NULL;
	if (s) {
		p2p_stream_release(s, reset);
	}
}

static void sess_free(struct dsess *x)
{
	struct dcutr *d = x->d;

	sess_drop_stream(x, true);
	if (x->prev) {
		x->prev->next = x->next;
	} else {
		d->sess = x->next;
	}
	if (x->next) {
		x->next->prev = x->prev;
	}
	free(x);
}

/* sess_finish - report the upgrade's end and forget the session. */
static void sess_finish(struct dsess *x, int err)
{
	struct dcutr *d = x->d;
	struct dcutr_attempt log[DCUTR_ATTEMPTS];
	struct p2p_conn *c = x->conn;
	size_t n = x->n;

	if (n && x->log[n - 1].outcome == DCUTR_IN_PROGRESS) {
		/* ended from outside the attempt (the relayed connection went away) */
		x->log[n - 1].outcome = DCUTR_FAILED;
		x->log[n - 1].end_ms = d_now(d);
		x->log[n - 1].err = err;
		d->st.failed++;
	}
	memcpy(log, x->log, sizeof(log));
	sess_free(x);
	if (d->ops->on_done) {
		d->ops->on_done(d->ctx, c, err, log, n);
	}
}

static struct dsess *sess_new(struct dcutr *d, struct p2p_conn *c, bool is_b)
{
	struct dsess *x = calloc(1, sizeof(*x));

	if (!x) {
		return NULL;
	}
	x->d = d;
	x->conn = c;
	x->is_b = is_b;
	x->next = d->sess;
	if (d->sess) {
		d->sess->prev = x;
	}
	d->sess = x;
	return x;
}

/* send_msg - CONNECT with our addresses, or SYNC. */
static int send_msg(struct dsess *x, uint32_t type)
{
	struct dcutr *d = x->d;
	struct dcutr_msg *m = calloc(1, sizeof(*m));
	uint8_t out[DCUTR_MAX_MSG + 8];
	size_t len;
	int err;

	if (!m) {
		return -ENOMEM;
	}
	m->type = type;
	for (size_t i = 0; type == DCUTR_TYPE_CONNECT && i < d->n_addrs && i < RELAY_MAX_ADDRS;
	     i++) {
		if (d->addr_lens[i] > RELAY_MAX_ADDR) {
			continue;
		}
		memcpy(m->addrs.b[m->addrs.n], d->addrs[i], d->addr_lens[i]);
		m->addrs.lens[m->addrs.n++] = d->addr_lens[i];
	}
	err = dcutr_encode(m, out, sizeof(out), &len);
	free(m);
	if (err) {
		return err;
	}
	return p2p_stream_write(x->s, out, len) == (long)len ? 0 : -ENOBUFS;
}

/* attempt_end - record the current attempt's outcome; B retries or finishes, A idles. */
static void attempt_end(struct dsess *x, enum dcutr_outcome how, int err)
{
	struct dcutr *d = x->d;
	struct dcutr_attempt *a = &x->log[x->n - 1];

	a->outcome = how;
	a->end_ms = d_now(d);
	a->err = err;
	if (how == DCUTR_SUCCEEDED) {
		d->st.succeeded++;
		sess_finish(x, 0);
		return;
	}
	if (how == DCUTR_TIMED_OUT) {
		d->st.timed_out++;
	} else {
		d->st.failed++;
	}
	sess_drop_stream(x, true);
	if (!x->is_b) {
		x->state = DS_A_IDLE; /* B drives retries */
		x->t0 = d_now(d);
		return;
	}
	if (x->n >= DCUTR_ATTEMPTS) {
		sess_finish(x, err ? err : -ETIMEDOUT);
		return;
	}
	x->state = DS_B_BACKOFF; /* the next tick starts the next attempt */
	x->t0 = d_now(d);
}

/* attempt_open - start attempt x->n on stream @s (now owned by @x), waiting in @state. */
static void attempt_open(struct dsess *x, struct p2p_stream *s, enum dstate state)
{
	struct dcutr_attempt *a = &x->log[x->n++];

	x->s = s;
	p2p_stream_set_ops(s, &ds_ops, x);
	lpm_init(&x->lpm, DCUTR_MAX_MSG);
	memset(a, 0, sizeof(*a));
	a->outcome = DCUTR_IN_PROGRESS;
	a->start_ms = x->t0 = d_now(x->d);
	a->rtt_ms = -1;
	x->d->st.attempts++;
	x->state = state;
}

/* attempt_begin_b - B: open a stream and send CONNECT. */
static int attempt_begin_b(struct dsess *x)
{
	struct p2p_stream *s;
	int err;

	s = p2p_stream_open(x->conn, DCUTR_PROTOCOL, &err);
	if (!s) {
		x->s = NULL;
		return err;
	}
	attempt_open(x, s, DS_B_CONNECT_SENT);
	return send_msg(x, DCUTR_TYPE_CONNECT);
}

static void ds_message(struct dsess *x, const struct dcutr_msg *m)
{
	struct dcutr *d = x->d;
	struct relay_addrs addrs = m->addrs;
	int64_t now = d_now(d);

	dcutr_filter_addrs(&addrs, d->allow_private);
	switch (x->state) {
	case DS_B_CONNECT_SENT:
		if (m->type != DCUTR_TYPE_CONNECT || !addrs.n || send_msg(x, DCUTR_TYPE_SYNC)) {
			attempt_end(x, DCUTR_FAILED, -NATX_E_PROTO);
			return;
		}
		x->log[x->n - 1].rtt_ms = now - x->t0;
		x->state = DS_B_DIALING;
		sess_drop_stream(x, false);
		/* B dials half an RTT after SYNC leaves, when SYNC reaches A (spec) */
		d->ops->dial(d->ctx, x->conn, &addrs, now + (now - x->t0) / 2, false, x->n);
		break;
	case DS_A_WAIT_CONNECT:
		if (m->type != DCUTR_TYPE_CONNECT || send_msg(x, DCUTR_TYPE_CONNECT)) {
			attempt_end(x, DCUTR_FAILED, -NATX_E_PROTO);
			return;
		}
		x->state = DS_A_WAIT_SYNC;
		x->t0 = now;
		/* remember B's addresses for the dial on SYNC (which carries none) */
		x->peer_addrs = addrs;
		break;
	case DS_A_WAIT_SYNC:
		if (m->type != DCUTR_TYPE_SYNC || !x->peer_addrs.n) {
			attempt_end(x, DCUTR_FAILED, -NATX_E_PROTO);
			return;
		}
		x->state = DS_A_DIALING;
		sess_drop_stream(x, false);
		d->ops->dial(d->ctx, x->conn, &x->peer_addrs, now, true, x->n);
		break;
	default:
		attempt_end(x, DCUTR_FAILED, -NATX_E_PROTO);
		break;
	}
}

/* msg_decode - dcutr_decode for lpm_take. */
static int msg_decode(void *m, const uint8_t *buf, size_t len)
{
	return dcutr_decode(m, buf, len);
}

static void ds_data(void *ctx, struct p2p_stream *s, const uint8_t *p, size_t n)
{
	struct dsess *x = ctx;
	struct dcutr_msg *m;
	size_t used;
	int err;

	if (!n || x->s != s) {
		return;
	}
	m = lpm_take(&x->lpm, p, n, &used, msg_decode, sizeof(*m), &err);
	if (!m) {
		if (err) {
			attempt_end(x, DCUTR_FAILED, err);
		}
		return;
	}
	ds_message(x, m); /* may end the stream (x->s changes) or free x */
	free(m);
}

static void ds_close(void *ctx, struct p2p_stream *s)
{
	struct dsess *x = ctx;

	if (x->s != s) {
		return;
	}
	x->s = NULL;
	/* the peer reset or closed before the exchange ended */
	attempt_end(x, DCUTR_FAILED, -ECONNRESET);
}

static void ds_fin(void *ctx, struct p2p_stream *s)
{
	struct dsess *x = ctx;

	if (x->s == s) {
		attempt_end(x, DCUTR_FAILED, -ECONNRESET);
	}
}

static const struct p2p_conn_ops ds_ops = {
	.on_stream_data = ds_data,
	.on_stream_fin = ds_fin,
	.on_stream_close = ds_close,
};

/* ---- API ---- */

struct dcutr *dcutr_new(struct p2p_clock *clock, const struct dcutr_ops *ops, void *ctx,
			const uint8_t *const *addrs, const size_t *addr_lens, size_t n_addrs,
			bool allow_private, int *err)
{
	struct dcutr *d;

	if (!ops || !ops->dial) {
		*err = -EINVAL;
		return NULL;
	}
	d = calloc(1, sizeof(*d));
	if (!d) {
		*err = -ENOMEM;
		return NULL;
	}
	d->clock = clock;
	d->ops = ops;
	d->ctx = ctx;
	d->addrs = addrs;
	d->addr_lens = addr_lens;
	d->n_addrs = n_addrs;
	d->allow_private = allow_private;
	d->attempt_ms = DCUTR_ATTEMPT_TIMEOUT_MS;
	return d;
}

void dcutr_set_addrs(struct dcutr *d, const uint8_t *const *addrs, const size_t *addr_lens,
		     size_t n_addrs)
{
	d->addrs = addrs;
	d->addr_lens = addr_lens;
	d->n_addrs = n_addrs;
}

bool dcutr_busy(const struct dcutr *d, const struct p2p_conn *relayed)
{
	return sess_find((struct dcutr *)d, relayed) != NULL;
}

void dcutr_free(struct dcutr *d)
{
	if (!d) {
		return;
	}
	while (d->sess) {
		sess_free(d->sess);
	}
	free(d);
}

int dcutr_start(struct dcutr *d, struct p2p_conn *relayed)
{
	struct dsess *x;
	int err;

	if (sess_find(d, relayed)) {
		return -EALREADY;
	}
	x = sess_new(d, relayed, true);
	if (!x) {
		return -ENOMEM;
	}
	err = attempt_begin_b(x);
	if (err) {
		sess_free(x);
	}
	return err;
}

void dcutr_accept(struct dcutr *d, struct p2p_stream *s)
{
	struct p2p_conn *c = p2p_stream_conn(s);
	struct dsess *x = sess_find(d, c);

	if (x && (x->is_b || (x->state != DS_A_IDLE) || x->n >= DCUTR_ATTEMPTS)) {
		/* one exchange at a time per connection (js allows 1 inbound stream) */
		d->st.refused_streams++;
		p2p_stream_reset(s);
		return;
	}
	if (!x) {
		x = sess_new(d, c, false);
		if (!x) {
			p2p_stream_reset(s);
			return;
		}
	}
	attempt_open(x, s, DS_A_WAIT_CONNECT);
}

void dcutr_dial_done(struct dcutr *d, struct p2p_conn *relayed, int err)
{
	struct dsess *x = sess_find(d, relayed);

	/* A idles after its own dial failed; B's dial may still have reached our listener */
	if (!x || (x->state != DS_B_DIALING && x->state != DS_A_DIALING &&
		   (x->state != DS_A_IDLE || err || !x->n))) {
		return;
	}
	attempt_end(x, err ? DCUTR_FAILED : DCUTR_SUCCEEDED, err);
}

void dcutr_conn_gone(struct dcutr *d, struct p2p_conn *c)
{
	struct dsess *x = sess_find(d, c);

	if (x) {
		sess_finish(x, -ECONNRESET);
	}
}

void dcutr_set_attempt_timeout(struct dcutr *d, uint32_t ms)
{
	d->attempt_ms = ms ? ms : DCUTR_ATTEMPT_TIMEOUT_MS;
}

void dcutr_tick(struct dcutr *d)
{
	int64_t now = d_now(d);
	struct dsess *x = d->sess;

	while (x) {
		struct dsess *next = x->next;

		switch (x->state) {
		case DS_B_BACKOFF: {
			int err = attempt_begin_b(x);

			if (err) {
				sess_finish(x, err);
			}
			break;
		}
		case DS_A_IDLE:
			if (now - x->t0 >= d->attempt_ms) {
				/* B did not come back: give up as A */
				sess_finish(x, x->log[x->n - 1].err ? x->log[x->n - 1].err :
								      -ETIMEDOUT);
			}
			break;
		default:
			if (now - x->log[x->n - 1].start_ms >= d->attempt_ms) {
				attempt_end(x, DCUTR_TIMED_OUT, -ETIMEDOUT);
			}
			break;
		}
		x = next;
	}
}

const struct dcutr_stats *dcutr_stats(const struct dcutr *d)
{
	return &d->st;
}
