// SPDX-License-Identifier: MIT
/* autonat.c - AutoNAT v1 codec, server and client (see autonat.h). */
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#include "natx/err.h"
#include "autonat.h"
#include "autonat.pb-c.h"
#include "dcutr.h"
#include "lpm.h"
#include "pbframe.h"
#include "multiaddr.h"

int autonat_encode(const struct autonat_msg *m, uint8_t *out, size_t cap, size_t *len)
{
	P2p__Autonat__Message pb = P2P__AUTONAT__MESSAGE__INIT;
	P2p__Autonat__Message__Dial dial = P2P__AUTONAT__MESSAGE__DIAL__INIT;
	P2p__Autonat__Message__PeerInfo pi = P2P__AUTONAT__MESSAGE__PEER_INFO__INIT;
	P2p__Autonat__Message__DialResponse dr = P2P__AUTONAT__MESSAGE__DIAL_RESPONSE__INIT;
	ProtobufCBinaryData addrs[RELAY_MAX_ADDRS];

	pb.has_type = 1; /* DIAL = 0 must be on the wire */
	pb.type = (P2p__Autonat__Message__MessageType)m->type;
	if (m->has_peer) {
		pi.has_id = 1;
		pi.id.data = (uint8_t *)m->peer.b;
		pi.id.len = m->peer.len;
		pbframe_addrs_view(&m->addrs, addrs, &pi.n_addrs, &pi.addrs);
		dial.peer = &pi;
		pb.dial = &dial;
	}
	if (m->has_response) {
		dr.has_status = 1;
		dr.status = (P2p__Autonat__Message__ResponseStatus)m->status;
		dr.statustext = m->text[0] ? (char *)m->text : NULL;
		if (m->addr_len) {
			dr.has_addr = 1;
			dr.addr.data = (uint8_t *)m->addr;
			dr.addr.len = m->addr_len;
		}
		pb.dialresponse = &dr;
	}
	return pbframe_encode(&pb.base, AUTONAT_MAX_MSG, out, cap, len);
}

int autonat_decode(struct autonat_msg *m, const uint8_t *buf, size_t len)
{
	P2p__Autonat__Message *pb;
	int err;

	memset(m, 0, sizeof(*m));
	pb = pbframe_decode(&p2p__autonat__message__descriptor, AUTONAT_MAX_MSG, buf, len, &err);
	if (!pb) {
		return err;
	}
	err = -NATX_E_PROTO;
	if (!pb->has_type) {
		goto out_free;
	}
	m->type = pb->type;
	if (pb->dial && pb->dial->peer) {
		const P2p__Autonat__Message__PeerInfo *pi = pb->dial->peer;

		if (!pi->has_id || peerid_from_bytes(&m->peer, pi->id.data, pi->id.len)) {
			goto out_free;
		}
		m->has_peer = true;
		pbframe_addrs_keep(&m->addrs, pi->n_addrs, pi->addrs);
	}
	if (pb->dialresponse) {
		const P2p__Autonat__Message__DialResponse *dr = pb->dialresponse;

		m->has_response = true;
		m->status = dr->has_status ? (uint32_t)dr->status : AUTONAT_OK;
		if (dr->statustext) {
			size_t tl = strnlen(dr->statustext, sizeof(m->text) - 1);

			memcpy(m->text, dr->statustext, tl);
			m->text[tl] = 0;
		}
		if (dr->has_addr && dr->addr.len && dr->addr.len <= RELAY_MAX_ADDR) {
			memcpy(m->addr, dr->addr.data, dr->addr.len);
			m->addr_len = dr->addr.len;
		}
	}
	err = 0;
out_free:
	pbframe_free(&pb->base);
	return err;
}

/* msg_decode - autonat_decode for lpm_take. */
static int msg_decode(void *m, const uint8_t *buf, size_t len)
{
	return autonat_decode(m, buf, len);
}

/* send_msg - encode @m and write it on @s. */
static int send_msg(struct p2p_stream *s, const struct autonat_msg *m)
{
	uint8_t out[AUTONAT_MAX_MSG + 8];
	size_t len;
	int err = autonat_encode(m, out, sizeof(out), &len);

	if (err) {
		return err;
	}
	return p2p_stream_write(s, out, len) == (long)len ? 0 : -ENOBUFS;
}

/* ---- server ---- */

enum { AR_READ, AR_DIALING };

struct autonat_req {
	struct autonat_server *srv;
	struct autonat_req *prev, *next;
	struct p2p_stream *s;
	struct sockaddr_storage observed;
	bool has_observed, relayed;
	int state;
	int64_t start_ms;
	struct lpm lpm;
};

struct throttle {
	struct peer_id peer;
	int64_t window_ms;
	uint32_t count;
};

struct autonat_server {
	struct p2p_clock *clock;
	const struct autonat_server_ops *ops;
	void *ctx;
	struct autonat_req *reqs;
	int64_t window_ms;
	uint32_t count;
	struct throttle peers[AUTONAT_TRACKED_PEERS];
	struct autonat_server_stats st;
	bool allow_private; /* dial back private/loopback addresses (tests, labs) */
};

static const struct p2p_conn_ops req_ops;

static void req_free(struct autonat_req *q, bool reset)
{
	struct autonat_server *srv = q->srv;
	struct p2p_stream *s = q->s;

	if (q->prev) {
		q->prev->next = q->next;
	} else {
		srv->reqs = q->next;
	}
	if (q->next) {
		q->next->prev = q->prev;
	}
	free(q);
	if (s) {
		p2p_stream_release(s, reset);
	}
}

/* req_answer - send DIAL_RESPONSE and end the request. */
static void req_answer(struct autonat_req *q, uint32_t status, const char *text,
		       const uint8_t *addr, size_t addr_len)
{
	struct autonat_server *srv = q->srv;
	struct autonat_msg *m = calloc(1, sizeof(*m));
	bool failed = true;

	switch (status) {
	case AUTONAT_OK:
		srv->st.ok++;
		break;
	case AUTONAT_E_DIAL_ERROR:
		srv->st.dial_errors++;
		break;
	case AUTONAT_E_DIAL_REFUSED:
		srv->st.refused++;
		break;
	default:
		srv->st.bad_requests++;
		break;
	}
	if (m && q->s) {
		m->type = AUTONAT_DIAL_RESPONSE;
		m->has_response = true;
		m->status = status;
		strncpy(m->text, text, sizeof(m->text) - 1);
		if (addr && addr_len <= sizeof(m->addr)) {
			memcpy(m->addr, addr, addr_len);
			m->addr_len = addr_len;
		}
		failed = send_msg(q->s, m) != 0;
	}
	free(m);
	req_free(q, failed);
}

/* throttle_admit - per-peer and global request budgets per minute. */
static bool throttle_admit(struct autonat_server *srv, const struct peer_id *peer)
{
	int64_t now = srv->clock->now_ms(srv->clock);
	struct throttle *slot = NULL, *oldest = &srv->peers[0];

	if (now - srv->window_ms >= 60000) {
		srv->window_ms = now;
		srv->count = 0;
	}
	for (size_t i = 0; i < AUTONAT_TRACKED_PEERS; i++) {
		struct throttle *t = &srv->peers[i];

		if (t->peer.len && peerid_equal(&t->peer, peer)) {
			slot = t;
			break;
		}
		if (t->window_ms < oldest->window_ms) {
			oldest = t;
		}
	}
	if (!slot) {
		slot = oldest;
		slot->peer = *peer;
		slot->window_ms = now;
		slot->count = 0;
	}
	if (now - slot->window_ms >= 60000) {
		slot->window_ms = now;
		slot->count = 0;
	}
	if (srv->count >= AUTONAT_GLOBAL || slot->count >= AUTONAT_PER_PEER) {
		return false;
	}
	srv->count++;
	slot->count++;
	return true;
}

/* same_ip - @b is an ip+tcp multiaddr whose IP equals @obs's. */
static bool same_ip(const uint8_t *b, size_t len, const struct sockaddr_storage *obs)
{
	struct sockaddr_storage ss;
	int has_id;

	if (maddr_to_sockaddr(b, len, &ss, NULL, &has_id) || ss.ss_family != obs->ss_family) {
		return false;
	}
	if (ss.ss_family == AF_INET) {
		return ((struct sockaddr_in *)&ss)->sin_addr.s_addr ==
		       ((const struct sockaddr_in *)obs)->sin_addr.s_addr;
	}
	return !memcmp(&((struct sockaddr_in6 *)&ss)->sin6_addr,
		       &((const struct sockaddr_in6 *)obs)->sin6_addr, 16);
}

static void req_dial(struct autonat_req *q, const struct autonat_msg *m)
{
	struct autonat_server *srv = q->srv;
	const struct peer_id *remote = p2p_conn_remote(p2p_stream_conn(q->s));
	struct relay_addrs *dial;

	srv->st.requests++;
	if (m->type != AUTONAT_DIAL || !m->has_peer) {
		req_answer(q, AUTONAT_E_BAD_REQUEST, "expected DIAL", NULL, 0);
		return;
	}
	if (!remote || !peerid_equal(remote, &m->peer)) {
		req_answer(q, AUTONAT_E_BAD_REQUEST, "peer id mismatch", NULL, 0);
		return;
	}
	if (q->relayed || !q->has_observed) {
		req_answer(q, AUTONAT_E_DIAL_REFUSED, "relayed connection", NULL, 0);
		return;
	}
	if (!throttle_admit(srv, remote)) {
		req_answer(q, AUTONAT_E_DIAL_REFUSED, "too many requests", NULL, 0);
		return;
	}
	dial = calloc(1, sizeof(*dial));
	if (!dial) {
		req_answer(q, AUTONAT_E_INTERNAL_ERROR, "out of memory", NULL, 0);
		return;
	}
	for (size_t i = 0; i < m->addrs.n && dial->n < AUTONAT_MAX_DIAL; i++) {
		if (same_ip(m->addrs.b[i], m->addrs.lens[i], &q->observed)) {
			memcpy(dial->b[dial->n], m->addrs.b[i], m->addrs.lens[i]);
			dial->lens[dial->n++] = m->addrs.lens[i];
		}
	}
	dcutr_filter_addrs(dial, srv->allow_private); /* tcp, not private/loopback (spec) */
	if (!dial->n) {
		free(dial);
		req_answer(q, AUTONAT_E_DIAL_REFUSED, "no dialable address", NULL, 0);
		return;
	}
	q->state = AR_DIALING;
	q->start_ms = srv->clock->now_ms(srv->clock);
	srv->ops->dial_back(srv->ctx, q, remote, dial);
	free(dial);
}

static void req_data(void *ctx, struct p2p_stream *s, const uint8_t *p, size_t n)
{
	struct autonat_req *q = ctx;
	struct autonat_msg *m;
	size_t used;
	int err;

	if (q->state != AR_READ) {
		return; /* one request per stream */
	}
	m = lpm_take(&q->lpm, p, n, &used, msg_decode, sizeof(*m), &err);
	if (!m) {
		if (err) {
			q->srv->st.requests++;
			req_answer(q, AUTONAT_E_BAD_REQUEST, "malformed", NULL, 0);
		}
		return;
	}
	req_dial(q, m);
	free(m);
}

static void req_close(void *ctx, struct p2p_stream *s)
{
	struct autonat_req *q = ctx;

	q->s = NULL;
	req_free(q, false);
}

static const struct p2p_conn_ops req_ops = {
	.on_stream_data = req_data,
	.on_stream_close = req_close,
};

struct autonat_server *autonat_server_new(struct p2p_clock *clock,
					  const struct autonat_server_ops *ops, void *ctx, int *err)
{
	struct autonat_server *srv;

	if (!ops || !ops->dial_back) {
		*err = -EINVAL;
		return NULL;
	}
	srv = calloc(1, sizeof(*srv));
	if (!srv) {
		*err = -ENOMEM;
		return NULL;
	}
	srv->clock = clock;
	srv->ops = ops;
	srv->ctx = ctx;
	srv->window_ms = clock->now_ms(clock);
	return srv;
}

void autonat_server_free(struct autonat_server *srv)
{
	if (!srv) {
		return;
	}
	while (srv->reqs) {
		req_free(srv->reqs, true);
	}
	free(srv);
}

void autonat_server_accept(struct autonat_server *srv, struct p2p_stream *s,
			   const struct sockaddr *observed, bool relayed)
{
	struct autonat_req *q = calloc(1, sizeof(*q));

	if (!q) {
		p2p_stream_reset(s);
		return;
	}
	q->srv = srv;
	q->s = s;
	q->relayed = relayed;
	if (observed && (observed->sa_family == AF_INET || observed->sa_family == AF_INET6)) {
		memcpy(&q->observed, observed,
		       observed->sa_family == AF_INET ? sizeof(struct sockaddr_in) :
							sizeof(struct sockaddr_in6));
		q->has_observed = true;
	}
	q->start_ms = srv->clock->now_ms(srv->clock);
	lpm_init(&q->lpm, AUTONAT_MAX_MSG);
	q->next = srv->reqs;
	if (srv->reqs) {
		srv->reqs->prev = q;
	}
	srv->reqs = q;
	p2p_stream_set_ops(s, &req_ops, q);
}

void autonat_server_dial_done(struct autonat_server *srv, struct autonat_req *req, int err,
			      const uint8_t *addr, size_t addr_len)
{
	struct autonat_req *q;

	for (q = srv->reqs; q && q != req; q = q->next) {
	}
	if (!q || q->state != AR_DIALING) {
		return;
	}
	if (err) {
		req_answer(q, AUTONAT_E_DIAL_ERROR, "dial failed", NULL, 0);
	} else {
		req_answer(q, AUTONAT_OK, "OK", addr, addr_len);
	}
}

void autonat_server_tick(struct autonat_server *srv)
{
	int64_t now = srv->clock->now_ms(srv->clock);
	struct autonat_req *q = srv->reqs;

	while (q) {
		struct autonat_req *next = q->next;

		if (now - q->start_ms >= AUTONAT_TIMEOUT_MS) {
			if (q->state == AR_DIALING) {
				req_answer(q, AUTONAT_E_DIAL_ERROR, "dial-back timed out", NULL, 0);
			} else {
				req_free(q, true);
			}
		}
		q = next;
	}
}

const struct autonat_server_stats *autonat_server_stats(const struct autonat_server *srv)
{
	return &srv->st;
}

/* ---- client ---- */

struct aprobe {
	struct autonat_client *cl;
	struct aprobe *prev, *next;
	struct p2p_stream *s;
	struct p2p_conn *conn;
	int64_t start_ms;
	struct lpm lpm;
};

struct autonat_client {
	const struct p2p_identity *idn;
	struct p2p_clock *clock;
	const struct autonat_client_ops *ops;
	void *ctx;
	const uint8_t *const *addrs;
	const size_t *addr_lens;
	size_t n_addrs;
	struct aprobe *probes;
	enum autonat_reachability status;
	int confidence;
};

static void probe_free(struct aprobe *pr, bool reset)
{
	struct autonat_client *cl = pr->cl;
	struct p2p_stream *s = pr->s;

	if (pr->prev) {
		pr->prev->next = pr->next;
	} else {
		cl->probes = pr->next;
	}
	if (pr->next) {
		pr->next->prev = pr->prev;
	}
	free(pr);
	if (s) {
		p2p_stream_release(s, reset);
	}
}

/* observe - fold one server answer into the reachability (go's confidence rule). */
static void observe(struct autonat_client *cl, enum autonat_reachability r, const uint8_t *addr,
		    size_t addr_len)
{
	if (cl->status == r) {
		if (cl->confidence < AUTONAT_MAX_CONFIDENCE) {
			cl->confidence++;
		}
	} else if (cl->status != AUTONAT_UNKNOWN && cl->confidence > 0) {
		cl->confidence--;
	} else {
		cl->status = r;
		cl->confidence = 0;
	}
	if (cl->ops && cl->ops->on_status) {
		cl->ops->on_status(cl->ctx, cl->status, cl->confidence, addr, addr_len);
	}
}

static void probe_data(void *ctx, struct p2p_stream *s, const uint8_t *p, size_t n)
{
	struct aprobe *pr = ctx;
	struct autonat_client *cl = pr->cl;
	struct p2p_conn *conn;
	size_t used;
	int err;
	struct autonat_msg *m = lpm_take(&pr->lpm, p, n, &used, msg_decode, sizeof(*m), &err);

	if (!m && !err) {
		return;
	}
	if (!m || m->type != AUTONAT_DIAL_RESPONSE || !m->has_response) {
		free(m);
		probe_free(pr, true);
		return;
	}
	conn = pr->conn;
	probe_free(pr, false);
	if (cl->ops && cl->ops->on_response) {
		cl->ops->on_response(cl->ctx, conn, m->status, m->text);
	}
	if (m->status == AUTONAT_OK) {
		observe(cl, AUTONAT_PUBLIC, m->addr, m->addr_len);
	} else if (m->status == AUTONAT_E_DIAL_ERROR) {
		observe(cl, AUTONAT_PRIVATE, NULL, 0);
	}
	/* refusals, bad request, internal errors say nothing about us */
	free(m);
}

static void probe_close(void *ctx, struct p2p_stream *s)
{
	struct aprobe *pr = ctx;

	pr->s = NULL;
	probe_free(pr, false);
}

static const struct p2p_conn_ops probe_ops = {
	.on_stream_data = probe_data,
	.on_stream_close = probe_close,
};

struct autonat_client *autonat_client_new(const struct p2p_identity *idn, struct p2p_clock *clock,
					  const struct autonat_client_ops *ops, void *ctx,
					  const uint8_t *const *addrs, const size_t *addr_lens,
					  size_t n_addrs, int *err)
{
	struct autonat_client *cl = calloc(1, sizeof(*cl));

	if (!cl) {
		*err = -ENOMEM;
		return NULL;
	}
	cl->idn = idn;
	cl->clock = clock;
	cl->ops = ops;
	cl->ctx = ctx;
	cl->addrs = addrs;
	cl->addr_lens = addr_lens;
	cl->n_addrs = n_addrs;
	return cl;
}

void autonat_server_allow_private(struct autonat_server *srv, bool allow)
{
	srv->allow_private = allow;
}

void autonat_client_set_addrs(struct autonat_client *cl, const uint8_t *const *addrs,
			      const size_t *addr_lens, size_t n_addrs)
{
	cl->addrs = addrs;
	cl->addr_lens = addr_lens;
	cl->n_addrs = n_addrs;
}

void autonat_client_free(struct autonat_client *cl)
{
	if (!cl) {
		return;
	}
	while (cl->probes) {
		probe_free(cl->probes, true);
	}
	free(cl);
}

int autonat_client_probe(struct autonat_client *cl, struct p2p_conn *c)
{
	struct autonat_msg *m;
	struct aprobe *pr;
	int err;

	for (pr = cl->probes; pr; pr = pr->next) {
		if (pr->conn == c) {
			return -EALREADY;
		}
	}
	m = calloc(1, sizeof(*m));
	pr = calloc(1, sizeof(*pr));
	err = -ENOMEM;
	if (!m || !pr) {
		goto out_free;
	}
	pr->s = p2p_stream_open(c, AUTONAT_PROTOCOL, &err);
	if (!pr->s) {
		goto out_free;
	}
	m->type = AUTONAT_DIAL;
	m->has_peer = true;
	m->peer = cl->idn->id;
	for (size_t i = 0; i < cl->n_addrs && m->addrs.n < RELAY_MAX_ADDRS; i++) {
		if (cl->addr_lens[i] <= RELAY_MAX_ADDR) {
			memcpy(m->addrs.b[m->addrs.n], cl->addrs[i], cl->addr_lens[i]);
			m->addrs.lens[m->addrs.n++] = cl->addr_lens[i];
		}
	}
	err = send_msg(pr->s, m);
	if (err) {
		p2p_stream_reset(pr->s);
		goto out_free;
	}
	pr->cl = cl;
	pr->conn = c;
	pr->start_ms = cl->clock->now_ms(cl->clock);
	lpm_init(&pr->lpm, AUTONAT_MAX_MSG);
	pr->next = cl->probes;
	if (cl->probes) {
		cl->probes->prev = pr;
	}
	cl->probes = pr;
	p2p_stream_set_ops(pr->s, &probe_ops, pr);
	free(m);
	return 0;

out_free:
	free(pr);
	free(m);
	return err;
}

void autonat_client_conn_gone(struct autonat_client *cl, struct p2p_conn *c)
{
	struct aprobe *pr = cl->probes;

	while (pr) {
		struct aprobe *next = pr->next;

		if (pr->conn == c) {
			probe_free(pr, true);
		}
		pr = next;
	}
}

void autonat_client_tick(struct autonat_client *cl)
{
	int64_t now = cl->clock->now_ms(cl->clock);
	struct aprobe *pr = cl->probes;

	while (pr) {
		struct aprobe *next = pr->next;

		if (now - pr->start_ms >= AUTONAT_TIMEOUT_MS) {
			probe_free(pr, true);
		}
		pr = next;
	}
}

enum autonat_reachability autonat_client_status(const struct autonat_client *cl, int *confidence)
{
	if (confidence) {
		*confidence = cl->confidence;
	}
	return cl->status;
}
