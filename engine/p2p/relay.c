// SPDX-License-Identifier: MIT
/* relay.c - Circuit Relay v2 hop server: reservations, checks, splicing (see relay.h). */
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#include "natx/err.h"
#include "envelope.h"
#include "lpm.h"
#include "relay.h"

/* struct rsvp - one reservation, tied to the connection it was made on. */
struct rsvp {
	struct peer_id peer;
	struct p2p_conn *conn;
	uint8_t ip[16];
	int64_t expire_ms; /* monotonic */
};

enum circ_state {
	CS_HOP_READ, /* reading the hop request */
	CS_STOP_WAIT, /* stop stream opened, waiting for the target's STATUS */
	CS_ACTIVE, /* spliced */
	CS_DONE, /* answered (reservation or refusal), waiting for the stream to close */
};

/*
 * struct circ - one hop stream: a request and, for CONNECT, the circuit. side[0] is the hop
 * stream (source), side[1] the stop stream (target). pend[i] + pend_off[i] holds pend_len[i]
 * bytes received on side i that side 1-i did not take yet; they are not credited to side i's
 * window until written. The buffer keeps its capacity (pend_cap) until the circuit ends and
 * is consumed from pend_off, so a circuit whose other side is often full neither reallocates
 * (large reallocs are mremap: page faults) nor moves its backlog for every partial write.
 */
struct circ {
	struct relay *r;
	struct circ *prev, *next;
	enum circ_state state;
	bool relayed;
	bool counted; /* counted in circuits_active / per-peer counts */
	uint8_t ip[16];
	struct peer_id src, dst;
	struct p2p_stream *side[2];
	struct lpm *lpm; /* while reading a request / the stop answer */
	uint8_t *pend[2];
	size_t pend_off[2], pend_len[2], pend_cap[2];
	bool fin[2]; /* side i sent FIN (propagated once pend[i] is empty) */
	uint64_t fwd[2]; /* bytes forwarded from side i */
	size_t precredit[2]; /* pending bytes of side i its window was already credited for */
	int64_t start_ms;
};

struct relay {
	const struct p2p_identity *idn;
	struct relay_config cfg;
	struct p2p_clock *clock;
	const struct relay_ops *ops;
	void *ctx;
	struct rsvp *rsvps;
	size_t n_rsvps, cap_rsvps;
	struct circ *circs; /* every live hop stream */
	struct relay_stats st;
};

void relay_config_default(struct relay_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->max_rsvp = RELAY_DEF_MAX_RSVP;
	cfg->max_rsvp_per_peer = RELAY_DEF_MAX_RSVP_PER_PEER;
	cfg->max_rsvp_per_ip = RELAY_DEF_MAX_RSVP_PER_IP;
	cfg->max_circuits = RELAY_DEF_MAX_CIRCUITS;
	cfg->max_circuits_per_peer = RELAY_DEF_MAX_CIRCUITS_PER_PEER;
	cfg->rsvp_ttl_s = RELAY_DEF_RSVP_TTL_S;
	cfg->duration_s = RELAY_DEF_DURATION_S;
	cfg->data = RELAY_DEF_DATA;
}

static int64_t relay_now(const struct relay *r)
{
	return r->clock->now_ms(r->clock);
}

static bool id_listed(const struct peer_id *list, size_t n, const struct peer_id *id)
{
	for (size_t i = 0; i < n; i++) {
		if (peerid_equal(&list[i], id)) {
			return true;
		}
	}
	return false;
}

/* ip_key - the remote IP as 16 bytes (IPv4 mapped); zero for unknown. */
static void ip_key(uint8_t out[16], const struct sockaddr *sa)
{
	memset(out, 0, 16);
	if (sa && sa->sa_family == AF_INET) {
		const struct sockaddr_in *in = (const void *)sa;

		out[10] = out[11] = 0xff;
		memcpy(out + 12, &in->sin_addr, 4);
	} else if (sa && sa->sa_family == AF_INET6) {
		memcpy(out, &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr, 16);
	}
}

/* ---- reservations ---- */

static void rsvp_drop(struct relay *r, size_t i)
{
	r->rsvps[i] = r->rsvps[--r->n_rsvps];
	r->st.rsvp_active = r->n_rsvps;
}

static void rsvp_expire(struct relay *r)
{
	int64_t now = relay_now(r);

	for (size_t i = 0; i < r->n_rsvps;) {
		if (r->rsvps[i].expire_ms <= now) {
			rsvp_drop(r, i);
		} else {
			i++;
		}
	}
}

static struct rsvp *rsvp_find(const struct relay *r, const struct peer_id *peer,
			      const struct p2p_conn *conn)
{
	for (size_t i = 0; i < r->n_rsvps; i++) {
		if (peerid_equal(&r->rsvps[i].peer, peer) && (!conn || r->rsvps[i].conn == conn)) {
			return &r->rsvps[i];
		}
	}
	return NULL;
}

bool relay_has_reservation(const struct relay *r, const struct peer_id *peer)
{
	int64_t now = r->clock->now_ms(r->clock);
	const struct rsvp *v = rsvp_find(r, peer, NULL);

	return v && v->expire_ms > now;
}

/* rsvp_admit - the status for a RESERVE from @peer on @conn; fills the table on OK. */
static uint32_t rsvp_admit(struct relay *r, const struct peer_id *peer, struct p2p_conn *conn,
			   const uint8_t ip[16], bool relayed)
{
	size_t per_peer = 0, per_ip = 0;
	struct rsvp *v;

	if (relayed || id_listed(r->cfg.deny, r->cfg.n_deny, peer) ||
	    (r->cfg.n_allow && !id_listed(r->cfg.allow, r->cfg.n_allow, peer))) {
		return RELAY_PERMISSION_DENIED;
	}
	rsvp_expire(r);
	v = rsvp_find(r, peer, conn);
	if (v) {
		/* renewal on the same connection: no new slot */
		v->expire_ms = relay_now(r) + (int64_t)r->cfg.rsvp_ttl_s * 1000;
		r->st.rsvp_renewed++;
		return RELAY_OK;
	}
	for (size_t i = 0; i < r->n_rsvps; i++) {
		per_peer += peerid_equal(&r->rsvps[i].peer, peer);
		per_ip += !memcmp(r->rsvps[i].ip, ip, 16);
	}
	if (r->n_rsvps >= r->cfg.max_rsvp || per_peer >= r->cfg.max_rsvp_per_peer ||
	    per_ip >= r->cfg.max_rsvp_per_ip) {
		return RELAY_RESERVATION_REFUSED;
	}
	if (r->n_rsvps == r->cap_rsvps) {
		size_t cap = r->cap_rsvps ? 2 * r->cap_rsvps : 16;
		struct rsvp *n = realloc(r->rsvps, cap * sizeof(*n));

		if (!n) {
			return RELAY_RESERVATION_REFUSED;
		}
		r->rsvps = n;
		r->cap_rsvps = cap;
	}
	v = &r->rsvps[r->n_rsvps++];
	v->peer = *peer;
	v->conn = conn;
	memcpy(v->ip, ip, 16);
	v->expire_ms = relay_now(r) + (int64_t)r->cfg.rsvp_ttl_s * 1000;
	r->st.rsvp_active = r->n_rsvps;
	r->st.rsvp_total++;
	return RELAY_OK;
}

void relay_conn_gone(struct relay *r, struct p2p_conn *c)
{
	for (size_t i = 0; i < r->n_rsvps;) {
		if (r->rsvps[i].conn == c) {
			rsvp_drop(r, i);
		} else {
			i++;
		}
	}
}

/* ---- circuits ---- */

static const struct p2p_conn_ops hop_ops, stop_ops;

enum {
	RELAY_EARLY_MAX = 64 * 1024, /* bytes a side may send before the circuit is spliced */
};

static void circ_unlink_free(struct circ *k)
{
	struct relay *r = k->r;

	if (k->counted) {
		r->st.circuits_active--;
	}
	if ((k->fwd[0] || k->fwd[1]) && r->ops->on_circuit_end) {
		struct relay_circuit_info ci = { .src = k->src,
						 .dst = k->dst,
						 .bytes = { k->fwd[0], k->fwd[1] },
						 .age_ms = relay_now(r) - k->start_ms };

		r->ops->on_circuit_end(r->ctx, &ci);
	}
	if (k->prev) {
		k->prev->next = k->next;
	} else {
		r->circs = k->next;
	}
	if (k->next) {
		k->next->prev = k->prev;
	}
	free(k->lpm);
	free(k->pend[0]);
	free(k->pend[1]);
	free(k);
}

/*
 * circ_kill - reset whatever side is still open. The last on_stream_close frees @k, so the
 * caller must not touch @k afterwards.
 */
static void circ_kill(struct circ *k)
{
	struct p2p_stream *a = k->side[0], *b = k->side[1];

	k->state = CS_DONE;
	if (b) {
		p2p_stream_reset(b); /* its close resets a, the last close frees k */
		return;
	}
	if (a) {
		p2p_stream_reset(a);
	}
}

/* circ_side_closed - side @i is gone (stream closed); free @k once both are. */
static void circ_side_closed(struct circ *k, int i)
{
	struct p2p_stream *other = k->side[1 - i];

	k->side[i] = NULL;
	if (other) {
		/* one end went away: the circuit is over (its close frees k) */
		p2p_stream_reset(other);
		return;
	}
	circ_unlink_free(k);
}

/* hop_reply - send a hop STATUS (with @rsvp/@limit when given). */
static int hop_reply(struct circ *k, uint32_t status, bool with_rsvp, bool with_limit)
{
	struct relay *r = k->r;
	struct relay_msg *m = calloc(1, sizeof(*m));
	uint8_t out[RELAY_MAX_MSG + 8];
	size_t len;
	int err;

	if (!m) {
		return -ENOMEM;
	}
	m->type = RELAY_HOP_STATUS;
	m->has_status = true;
	m->status = status;
	if (with_limit && (r->cfg.duration_s || r->cfg.data)) {
		m->limit.present = true;
		m->limit.duration_s = r->cfg.duration_s;
		m->limit.data = r->cfg.data;
	}
	if (with_rsvp) {
		struct relay_voucher v = { .relay = r->idn->id, .peer = k->src };
		uint64_t expire = (uint64_t)r->ops->unix_now(r->ctx) + r->cfg.rsvp_ttl_s;

		m->has_rsvp = true;
		m->rsvp_expire = expire;
		for (size_t i = 0; i < r->cfg.n_public_addrs && i < RELAY_MAX_ADDRS; i++) {
			if (r->cfg.public_addr_lens[i] > RELAY_MAX_ADDR) {
				continue;
			}
			memcpy(m->rsvp_addrs.b[m->rsvp_addrs.n], r->cfg.public_addrs[i],
			       r->cfg.public_addr_lens[i]);
			m->rsvp_addrs.lens[m->rsvp_addrs.n++] = r->cfg.public_addr_lens[i];
		}
		v.expiration = expire;
		err = relay_voucher_seal(r->idn, &v, m->voucher, sizeof(m->voucher),
					 &m->voucher_len);
		if (err) {
			m->voucher_len = 0; /* vouchers are advisory: send the reservation anyway */
		}
	}
	err = relay_hop_encode(m, out, sizeof(out), &len);
	free(m);
	if (err) {
		return err;
	}
	return p2p_stream_write(k->side[0], out, len) == (long)len ? 0 : -ENOBUFS;
}

/* hop_refuse - answer @status and close; the stream closes (and frees k) later. */
static void hop_refuse(struct circ *k, uint32_t status)
{
	k->state = CS_DONE;
	if (hop_reply(k, status, false, false)) {
		p2p_stream_reset(k->side[0]);
		return;
	}
	p2p_stream_close(k->side[0]);
}

enum {
	RELAY_PEND_MIN = 16 * 1024, /* first capacity of a pending buffer */
};

/*
 * pend_add - keep @n bytes received on side @i for later: appended behind the pending bytes,
 * which move to the front only when the tail has no room; the capacity at least doubles when
 * it must grow (bounded by what the sender's window allows, see relay.h).
 */
static int pend_add(struct circ *k, int i, const uint8_t *p, size_t n)
{
	size_t need = k->pend_len[i] + n;

	if (!n) {
		return 0;
	}
	if (k->pend_off[i] + need > k->pend_cap[i] && k->pend_off[i]) {
		memmove(k->pend[i], k->pend[i] + k->pend_off[i], k->pend_len[i]);
		k->pend_off[i] = 0;
	}
	if (need > k->pend_cap[i]) {
		size_t cap = k->pend_cap[i] ? 2 * k->pend_cap[i] : RELAY_PEND_MIN;
		uint8_t *b;

		cap = cap < need ? need : cap;
		b = realloc(k->pend[i], cap);
		if (!b) {
			return -ENOMEM;
		}
		k->pend[i] = b;
		k->pend_cap[i] = cap;
	}
	memcpy(k->pend[i] + k->pend_off[i] + k->pend_len[i], p, n);
	k->pend_len[i] = need;
	return 0;
}

/*
 * circ_write - write up to @len bytes received on side @i to side 1-i and credit side i for
 * them (bytes that were credited before the splice are not credited twice). Returns the bytes
 * written (0: the other side is full, on_stream_writable resumes) or -1 when the circuit was
 * killed (the write failed or the direction reached its data limit); @k may be freed then.
 */
static long circ_write(struct circ *k, int i, const uint8_t *src, size_t len)
{
	struct relay *r = k->r;
	struct p2p_stream *to = k->side[1 - i];
	size_t credit;
	long w;

	if (r->cfg.data && len > r->cfg.data - k->fwd[i]) {
		len = (size_t)(r->cfg.data - k->fwd[i]);
	}
	if (!len || !to) {
		return 0;
	}
	w = p2p_stream_write(to, src, len);
	if (w < 0) {
		circ_kill(k);
		return -1;
	}
	k->fwd[i] += (uint64_t)w;
	r->st.bytes_relayed += (uint64_t)w;
	credit = (size_t)w;
	if (k->precredit[i]) {
		size_t e = k->precredit[i] < credit ? k->precredit[i] : credit;

		k->precredit[i] -= e;
		credit -= e;
	}
	if (credit && k->side[i]) {
		p2p_stream_consumed(k->side[i], credit);
	}
	if (r->cfg.data && k->fwd[i] >= r->cfg.data) {
		/* data limit reached in this direction: the spec says reset both streams */
		r->st.circuits_limited++;
		circ_kill(k);
		return -1;
	}
	return w;
}

/*
 * circ_forward - move bytes received on side @i to side 1-i: first what is pending, then the
 * new @p/@n (written directly when nothing is pending, the rest kept). Returns false when the
 * circuit was killed (k may be freed).
 */
static bool circ_forward(struct circ *k, int i, const uint8_t *p, size_t n)
{
	while (k->pend_len[i]) {
		long w = circ_write(k, i, k->pend[i] + k->pend_off[i], k->pend_len[i]);

		if (w < 0) {
			return false;
		}
		if (w == 0) {
			break;
		}
		k->pend_len[i] -= (size_t)w;
		k->pend_off[i] = k->pend_len[i] ? k->pend_off[i] + (size_t)w : 0;
	}
	if (!k->pend_len[i] && n) {
		long w = circ_write(k, i, p, n);

		if (w < 0) {
			return false;
		}
		p += w;
		n -= (size_t)w;
	}
	if (n && pend_add(k, i, p, n)) {
		circ_kill(k);
		return false;
	}
	if (k->fin[i] && !k->pend_len[i] && k->side[1 - i]) {
		p2p_stream_close(k->side[1 - i]);
	}
	return true;
}

/* circ_activate - the target said OK: answer the source and start splicing. */
static void circ_activate(struct circ *k)
{
	k->state = CS_ACTIVE;
	k->start_ms = relay_now(k->r);
	free(k->lpm);
	k->lpm = NULL;
	if (hop_reply(k, RELAY_OK, false, true)) {
		circ_kill(k);
		return;
	}
	p2p_stream_set_manual_window(k->side[0], true);
	p2p_stream_set_manual_window(k->side[1], true);
	/* what came before the splice was credited on arrival */
	k->precredit[0] = k->pend_len[0];
	k->precredit[1] = k->pend_len[1];
	/* bytes that came behind the messages; they were credited with the message */
	if (circ_forward(k, 0, NULL, 0)) {
		circ_forward(k, 1, NULL, 0);
	}
}

static size_t circs_of(const struct relay *r, const struct peer_id *peer)
{
	size_t n = 0;

	for (const struct circ *k = r->circs; k; k = k->next) {
		n += k->counted && (peerid_equal(&k->src, peer) || peerid_equal(&k->dst, peer));
	}
	return n;
}

/* hop_connect - a CONNECT request for @m->peer. */
static void hop_connect(struct circ *k, const struct relay_msg *m)
{
	struct relay *r = k->r;
	struct relay_msg *stop;
	struct p2p_stream *s;
	struct rsvp *v;
	uint8_t out[RELAY_MAX_MSG + 8];
	size_t len;
	int err = 0;

	if (k->relayed || id_listed(r->cfg.deny, r->cfg.n_deny, &k->src)) {
		r->st.circuits_refused++;
		hop_refuse(k, RELAY_PERMISSION_DENIED);
		return;
	}
	if (!m->has_peer) {
		r->st.malformed++;
		hop_refuse(k, RELAY_MALFORMED_MESSAGE);
		return;
	}
	k->dst = m->peer;
	rsvp_expire(r);
	v = rsvp_find(r, &k->dst, NULL);
	if (!v) {
		r->st.circuits_refused++;
		hop_refuse(k, RELAY_NO_RESERVATION);
		return;
	}
	if (r->st.circuits_active >= r->cfg.max_circuits ||
	    circs_of(r, &k->src) >= r->cfg.max_circuits_per_peer ||
	    circs_of(r, &k->dst) >= r->cfg.max_circuits_per_peer) {
		r->st.circuits_refused++;
		hop_refuse(k, RELAY_RESOURCE_LIMIT_EXCEEDED);
		return;
	}
	s = r->ops->open_stop ? r->ops->open_stop(r->ctx, &k->dst, v->conn, &err) :
				p2p_stream_open(v->conn, RELAY_STOP_PROTOCOL, &err);
	if (!s) {
		r->st.circuits_refused++;
		hop_refuse(k, RELAY_CONNECTION_FAILED);
		return;
	}
	k->side[1] = s;
	k->counted = true;
	r->st.circuits_active++;
	r->st.circuits_total++;
	p2p_stream_set_ops(s, &stop_ops, k);
	lpm_init(k->lpm, RELAY_MAX_MSG);
	k->state = CS_STOP_WAIT;
	k->start_ms = relay_now(r);
	stop = calloc(1, sizeof(*stop));
	if (!stop) {
		circ_kill(k);
		return;
	}
	stop->type = RELAY_STOP_CONNECT;
	stop->has_peer = true;
	stop->peer = k->src;
	if (r->cfg.duration_s || r->cfg.data) {
		stop->limit.present = true;
		stop->limit.duration_s = r->cfg.duration_s;
		stop->limit.data = r->cfg.data;
	}
	err = relay_stop_encode(stop, out, sizeof(out), &len);
	free(stop);
	if (err || p2p_stream_write(s, out, len) != (long)len) {
		circ_kill(k);
	}
}

/* hop_request - one complete hop message from the source. */
static void hop_request(struct circ *k, const uint8_t *msg, size_t mlen)
{
	struct relay *r = k->r;
	struct relay_msg *m = malloc(sizeof(*m));
	uint32_t st;

	if (!m) {
		circ_kill(k);
		return;
	}
	if (relay_hop_decode(m, msg, mlen)) {
		r->st.malformed++;
		hop_refuse(k, RELAY_MALFORMED_MESSAGE);
	} else if (m->type == RELAY_HOP_RESERVE) {
		st = rsvp_admit(r, &k->src, p2p_stream_conn(k->side[0]), k->ip, k->relayed);
		if (st != RELAY_OK) {
			r->st.rsvp_refused++;
			hop_refuse(k, st);
		} else {
			k->state = CS_DONE;
			if (hop_reply(k, RELAY_OK, true, true)) {
				p2p_stream_reset(k->side[0]);
			} else {
				p2p_stream_close(k->side[0]);
			}
		}
	} else if (m->type == RELAY_HOP_CONNECT) {
		hop_connect(k, m);
	} else {
		hop_refuse(k, RELAY_UNEXPECTED_MESSAGE);
	}
	free(m);
}

/* ---- hop stream (side 0) callbacks ---- */

static void hop_data(void *ctx, struct p2p_stream *s, const uint8_t *p, size_t n)
{
	struct circ *k = ctx;

	if (k->state == CS_HOP_READ) {
		const uint8_t *msg;
		size_t used, mlen;
		int rc = lpm_feed(k->lpm, p, n, &used, &msg, &mlen);

		if (rc < 0) {
			k->r->st.malformed++;
			hop_refuse(k, RELAY_MALFORMED_MESSAGE);
			return;
		}
		if (rc == 0) {
			return;
		}
		/* keep what followed the request: the circuit's first bytes */
		if (n - used > RELAY_EARLY_MAX || pend_add(k, 0, p + used, n - used)) {
			circ_kill(k);
			return;
		}
		hop_request(k, msg, mlen);
	} else if (k->state == CS_STOP_WAIT) {
		/* the source should wait for our STATUS: bound what it may send before */
		if (k->pend_len[0] + n > RELAY_EARLY_MAX || pend_add(k, 0, p, n)) {
			circ_kill(k);
		}
	} else if (k->state == CS_ACTIVE) {
		circ_forward(k, 0, p, n);
	}
	/* CS_DONE: the request was answered; anything more is ignored */
}

static void side_fin(struct circ *k, int i)
{
	if (k->state == CS_ACTIVE) {
		k->fin[i] = true;
		circ_forward(k, i, NULL, 0);
	} else if (k->state != CS_DONE) {
		circ_kill(k); /* gave up before the circuit existed */
	}
}

static void hop_fin(void *ctx, struct p2p_stream *s)
{
	side_fin(ctx, 0);
}

static void hop_writable(void *ctx, struct p2p_stream *s)
{
	struct circ *k = ctx;

	if (k->state == CS_ACTIVE) {
		circ_forward(k, 1, NULL, 0);
	}
}

static void hop_close(void *ctx, struct p2p_stream *s)
{
	circ_side_closed(ctx, 0);
}

static const struct p2p_conn_ops hop_ops = {
	.on_stream_data = hop_data,
	.on_stream_fin = hop_fin,
	.on_stream_writable = hop_writable,
	.on_stream_close = hop_close,
};

/* ---- stop stream (side 1) callbacks ---- */

/* stop_decode - relay_stop_decode for lpm_take. */
static int stop_decode(void *m, const uint8_t *buf, size_t len)
{
	return relay_stop_decode(m, buf, len);
}

static void stop_data(void *ctx, struct p2p_stream *s, const uint8_t *p, size_t n)
{
	struct circ *k = ctx;

	if (k->state == CS_STOP_WAIT) {
		size_t used;
		int err;
		struct relay_msg *m = lpm_take(k->lpm, p, n, &used, stop_decode, sizeof(*m), &err);

		if (!m && !err) {
			return;
		}
		if (!m || m->type != RELAY_STOP_STATUS || m->status != RELAY_OK ||
		    n - used > RELAY_EARLY_MAX || pend_add(k, 1, p + used, n - used)) {
			/* the target refused or answered garbage: CONNECTION_FAILED to the source */
			free(m);
			p2p_stream_reset(k->side[1]); /* closes side 1, k stays (side 0 open) */
			return;
		}
		free(m);
		circ_activate(k);
	} else if (k->state == CS_ACTIVE) {
		circ_forward(k, 1, p, n);
	}
}

static void stop_fin(void *ctx, struct p2p_stream *s)
{
	side_fin(ctx, 1);
}

static void stop_writable(void *ctx, struct p2p_stream *s)
{
	struct circ *k = ctx;

	if (k->state == CS_ACTIVE) {
		circ_forward(k, 0, NULL, 0);
	}
}

static void stop_close(void *ctx, struct p2p_stream *s)
{
	struct circ *k = ctx;

	if (k->state == CS_STOP_WAIT && k->side[0]) {
		/* the target never accepted: tell the source, then it closes */
		k->side[1] = NULL;
		k->r->st.circuits_active--;
		k->counted = false;
		hop_refuse(k, RELAY_CONNECTION_FAILED);
		return;
	}
	circ_side_closed(k, 1);
}

static void stop_reset(void *ctx, struct p2p_stream *s, int err)
{
	/* on_stream_close follows and decides */
}

static const struct p2p_conn_ops stop_ops = {
	.on_stream_data = stop_data,
	.on_stream_fin = stop_fin,
	.on_stream_reset = stop_reset,
	.on_stream_writable = stop_writable,
	.on_stream_close = stop_close,
};

/* ---- API ---- */

/* hop_accept - relay_hop_accept; returns the new circ, or NULL when @s was reset. */
static struct circ *hop_accept(struct relay *r, struct p2p_stream *s, const struct sockaddr *remote,
			       bool relayed)
{
	struct circ *k = calloc(1, sizeof(*k));
	const struct peer_id *src = p2p_conn_remote(p2p_stream_conn(s));

	if (k) {
		k->lpm = malloc(sizeof(*k->lpm));
	}
	if (!k || !k->lpm || !src) {
		if (k) {
			free(k->lpm);
		}
		free(k);
		p2p_stream_reset(s);
		return NULL;
	}
	lpm_init(k->lpm, RELAY_MAX_MSG);
	k->r = r;
	k->state = CS_HOP_READ;
	k->relayed = relayed;
	k->src = *src;
	ip_key(k->ip, remote);
	k->side[0] = s;
	k->start_ms = relay_now(r);
	k->next = r->circs;
	if (r->circs) {
		r->circs->prev = k;
	}
	r->circs = k;
	p2p_stream_set_ops(s, &hop_ops, k);
	return k;
}

void relay_hop_accept(struct relay *r, struct p2p_stream *s, const struct sockaddr *remote,
		      bool relayed)
{
	hop_accept(r, s, remote, relayed);
}

void relay_hop_accept_early(struct relay *r, struct p2p_stream *s, const struct sockaddr *remote,
			    bool relayed, const uint8_t *early, size_t len)
{
	struct circ *k = hop_accept(r, s, remote, relayed);

	if (k && len) {
		hop_data(k, s, early, len);
	}
}

void relay_tick(struct relay *r)
{
	int64_t now = relay_now(r);
	struct circ *k = r->circs;

	rsvp_expire(r);
	while (k) {
		struct circ *next = k->next;
		bool over = false;

		if (k->state == CS_ACTIVE) {
			over = r->cfg.duration_s &&
			       now - k->start_ms >= (int64_t)r->cfg.duration_s * 1000;
			r->st.circuits_limited += over;
		} else {
			/* handshakes, and answered requests whose peer never closes */
			over = now - k->start_ms >= RELAY_HOP_TIMEOUT_MS;
		}
		if (over) {
			/* killing k may free it, and only it: next stays valid */
			circ_kill(k);
		}
		k = next;
	}
}

size_t relay_circuits(const struct relay *r, struct relay_circuit_info *out, size_t cap)
{
	int64_t now = relay_now(r);
	size_t n = 0;

	for (const struct circ *k = r->circs; k; k = k->next) {
		if (k->state != CS_ACTIVE) {
			continue;
		}
		if (n < cap) {
			out[n] = (struct relay_circuit_info){ .src = k->src,
							      .dst = k->dst,
							      .bytes = { k->fwd[0], k->fwd[1] },
							      .age_ms = now - k->start_ms };
		}
		n++;
	}
	return n;
}

const struct relay_stats *relay_stats(const struct relay *r)
{
	return &r->st;
}

struct relay *relay_new(const struct p2p_identity *idn, const struct relay_config *cfg,
			struct p2p_clock *clock, const struct relay_ops *ops, void *ctx, int *err)
{
	struct relay_config def;
	struct relay *r;

	if (!ops || !ops->unix_now) {
		*err = -EINVAL;
		return NULL;
	}
	r = calloc(1, sizeof(*r));
	if (!r) {
		*err = -ENOMEM;
		return NULL;
	}
	relay_config_default(&def);
	r->cfg = *cfg;
	r->cfg.max_rsvp = cfg->max_rsvp ? cfg->max_rsvp : def.max_rsvp;
	r->cfg.max_rsvp_per_peer =
		cfg->max_rsvp_per_peer ? cfg->max_rsvp_per_peer : def.max_rsvp_per_peer;
	r->cfg.max_rsvp_per_ip = cfg->max_rsvp_per_ip ? cfg->max_rsvp_per_ip : def.max_rsvp_per_ip;
	r->cfg.max_circuits = cfg->max_circuits ? cfg->max_circuits : def.max_circuits;
	r->cfg.max_circuits_per_peer =
		cfg->max_circuits_per_peer ? cfg->max_circuits_per_peer : def.max_circuits_per_peer;
	r->cfg.rsvp_ttl_s = cfg->rsvp_ttl_s ? cfg->rsvp_ttl_s : def.rsvp_ttl_s;
	r->idn = idn;
	r->clock = clock;
	r->ops = ops;
	r->ctx = ctx;
	return r;
}

void relay_free(struct relay *r)
{
	if (!r) {
		return;
	}
	while (r->circs) {
		struct circ *k = r->circs;

		/* detach from the streams first: their close callbacks must not find k */
		for (int i = 0; i < 2; i++) {
			if (k->side[i]) {
				struct p2p_stream *s = k->side[i];

				k->side[i] = NULL;
				p2p_stream_release(s, true);
			}
		}
		circ_unlink_free(k);
	}
	free(r->rsvps);
	free(r);
}
