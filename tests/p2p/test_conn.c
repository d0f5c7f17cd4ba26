// SPDX-License-Identifier: MIT
/*
 * Full-stack tests: a dialer and a listener p2p_conn in one process joined by byte pipes, with
 * a deterministic RNG and a fake clock. multistream -> Noise -> (multistream) -> yamux ->
 * identify / ping / an echo application stream; then bad input: peer ID mismatch, corrupted
 * transport frames, garbage handshakes, oversized multistream messages. Each bad-input test
 * runs a healthy connection pair next to the broken one and checks it is unaffected.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "natx/err.h"
#include "conn.h"
#include "mss.h"
#include "multiaddr.h"
#include "noise.h"
#include "p2p/t_p2p.h"

#define ECHO_PROTO "/natx/test-echo/1.0.0"

static int64_t now_ms;

static int64_t fake_now(struct p2p_clock *c)
{
	return now_ms;
}

static struct p2p_clock fake_clock = { fake_now };

struct test_rng {
	struct p2p_rng rng;
	uint64_t state;
};

static void test_fill(struct p2p_rng *r, void *buf, size_t len)
{
	t_rng_fill(&((struct test_rng *)r)->state, buf, len);
}

struct node {
	struct p2p_identity idn;
	struct p2p_host host;
	struct test_rng rng;
	struct p2p_conn *c;
	const char *protos[1];
	uint8_t addr[32];
	size_t addr_len;
	const uint8_t *addrs[1];
	size_t addr_lens[1];
	/* observations */
	int established, identified, identify_err, pings, ping_err, opened, closed, resets;
	int last_reset_err;
	int64_t rtt;
	char agent[64];
	bool saw_ping_proto;
	uint64_t rx_bytes, rx_sum;
	int fins;
	struct p2p_stream *app;
	bool echo;
	uint8_t *pend; /* echo bytes the window did not take yet */
	size_t pend_len;
	bool pend_fin;
	bool reset_on_open; /* reset inbound streams from inside on_stream_open */
	bool reset_in_reset; /* call p2p_stream_reset from inside on_stream_reset */
	int writables;
};

static void on_established(void *ctx, struct p2p_conn *c)
{
	((struct node *)ctx)->established++;
}

static void on_identify(void *ctx, struct p2p_conn *c, const struct identify_record *rec, int err)
{
	struct node *n = ctx;

	n->identified++;
	n->identify_err = err;
	if (!err && rec->agent_version) {
		snprintf(n->agent, sizeof(n->agent), "%s", rec->agent_version);
		n->saw_ping_proto = identify_has_protocol(rec, PING_PROTOCOL);
	}
}

static void on_ping(void *ctx, struct p2p_conn *c, int64_t rtt, int err)
{
	struct node *n = ctx;

	n->pings++;
	n->rtt = rtt;
	n->ping_err = err;
}

static void on_stream_open(void *ctx, struct p2p_stream *s, const char *proto)
{
	struct node *n = ctx;

	n->opened++;
	n->app = s;
	cr_assert_str_eq(proto, ECHO_PROTO);
	if (n->echo) {
		p2p_stream_set_manual_window(s, true);
	}
	if (n->reset_on_open) {
		cr_assert_eq(p2p_stream_reset(s), 0);
	}
}

static void on_stream_data(void *ctx, struct p2p_stream *s, const uint8_t *p, size_t len)
{
	struct node *n = ctx;

	n->rx_bytes += len;
	for (size_t i = 0; i < len; i++) {
		n->rx_sum = n->rx_sum * 31 + p[i];
	}
	if (n->echo) {
		/* echo what fits; credit the peer only for what we echoed (manual window) */
		long w = n->pend_len ? 0 : p2p_stream_write(s, p, len);

		cr_assert_geq(w, 0);
		p2p_stream_consumed(s, (size_t)w);
		if ((size_t)w < len) {
			n->pend = realloc(n->pend, n->pend_len + len - (size_t)w);
			memcpy(n->pend + n->pend_len, p + w, len - (size_t)w);
			n->pend_len += len - (size_t)w;
		}
	}
}

static void on_stream_writable(void *ctx, struct p2p_stream *s)
{
	struct node *n = ctx;
	long w;

	n->writables++;
	if (!n->echo || !n->pend_len) {
		return;
	}
	w = p2p_stream_write(s, n->pend, n->pend_len);
	cr_assert_geq(w, 0);
	p2p_stream_consumed(s, (size_t)w);
	memmove(n->pend, n->pend + w, n->pend_len - (size_t)w);
	n->pend_len -= (size_t)w;
	if (!n->pend_len && n->pend_fin) {
		p2p_stream_close(s);
	}
}

static void on_stream_fin(void *ctx, struct p2p_stream *s)
{
	struct node *n = ctx;

	n->fins++;
	if (n->echo && !n->pend_len) {
		p2p_stream_close(s);
	} else if (n->echo) {
		n->pend_fin = true;
	}
}

static void on_stream_reset(void *ctx, struct p2p_stream *s, int err)
{
	struct node *n = ctx;

	n->resets++;
	n->last_reset_err = err;
	if (n->reset_in_reset) {
		cr_assert_eq(p2p_stream_reset(s), 0); /* a no-op, must not free s twice */
		cr_assert_eq(p2p_stream_write(s, (const uint8_t *)"x", 1), -EPIPE);
	}
}

static void on_stream_close(void *ctx, struct p2p_stream *s)
{
	struct node *n = ctx;

	n->closed++;
	if (n->app == s) {
		n->app = NULL;
	}
}

static const struct p2p_conn_ops ops = {
	.on_established = on_established,
	.on_stream_open = on_stream_open,
	.on_stream_data = on_stream_data,
	.on_stream_fin = on_stream_fin,
	.on_stream_reset = on_stream_reset,
	.on_stream_writable = on_stream_writable,
	.on_stream_close = on_stream_close,
	.on_identify = on_identify,
	.on_ping = on_ping,
};

static void node_init(struct node *n, uint64_t seed, bool early)
{
	uint8_t key[32];

	memset(n, 0, sizeof(*n));
	n->rng.rng.fill = test_fill;
	n->rng.state = seed;
	test_fill(&n->rng.rng, key, sizeof(key));
	p2p_identity_from_seed(&n->idn, key);
	n->protos[0] = ECHO_PROTO;
	cr_assert_eq(
		maddr_from_text("/ip4/127.0.0.1/tcp/4001", n->addr, sizeof(n->addr), &n->addr_len),
		0);
	n->addrs[0] = n->addr;
	n->addr_lens[0] = n->addr_len;
	n->host = (struct p2p_host){
		.idn = &n->idn,
		.protocols = n->protos,
		.n_protocols = 1,
		.listen_addrs = n->addrs,
		.listen_addr_lens = n->addr_lens,
		.n_listen_addrs = 1,
		.clock = &fake_clock,
		.rng = &n->rng.rng,
		.early_muxer = early,
	};
}

static void node_connect(struct node *d, struct node *l, const struct peer_id *expect)
{
	int err;

	d->c = p2p_conn_new(&d->host, true, expect, &ops, d, &err);
	l->c = p2p_conn_new(&l->host, false, NULL, &ops, l, &err);
	cr_assert(d->c && l->c);
	cr_assert_eq(p2p_conn_start(d->c), 0);
}

/* move - send what @from has queued to @to, in chunks of @chunk bytes (0: all at once). */
static int move(struct node *from, struct node *to, size_t chunk)
{
	const uint8_t *p;
	size_t len;
	int err = 0;

	p2p_conn_out_peek(from->c, &p, &len);
	if (!len) {
		return 0;
	}
	uint8_t *copy = malloc(len);

	memcpy(copy, p, len);
	p2p_conn_out_advance(from->c, len);
	for (size_t off = 0; off < len && !err; off += chunk ? chunk : len) {
		size_t k = chunk && len - off > chunk ? chunk : len - off;

		err = p2p_conn_consume(to->c, copy + off, k);
	}
	free(copy);
	return err ? err : 1;
}

/* pump - run both directions until quiet; returns the first error of either side. */
static int pump(struct node *a, struct node *b, size_t chunk)
{
	for (int i = 0; i < 10000; i++) {
		int r1 = move(a, b, chunk), r2 = move(b, a, chunk);

		if (r1 < 0) {
			return r1;
		}
		if (r2 < 0) {
			return r2;
		}
		if (!r1 && !r2) {
			return 0;
		}
	}
	return -ETIMEDOUT;
}

static void node_free(struct node *n)
{
	free(n->pend);
	p2p_conn_free(n->c);
	n->c = NULL;
	p2p_identity_cleanup(&n->idn);
}

static void establish_and_check(bool d_early, bool l_early, size_t chunk)
{
	struct node d, l;

	node_init(&d, 1, d_early);
	node_init(&l, 2, l_early);
	node_connect(&d, &l, &l.idn.id);
	cr_assert_eq(pump(&d, &l, chunk), 0);
	cr_assert_eq(d.established, 1);
	cr_assert_eq(l.established, 1);
	cr_assert(peerid_equal(p2p_conn_remote(d.c), &l.idn.id));
	cr_assert(peerid_equal(p2p_conn_remote(l.c), &d.idn.id));
	/* identify ran both ways */
	cr_assert_eq(d.identified, 1);
	cr_assert_eq(l.identified, 1);
	cr_assert_eq(d.identify_err, 0);
	cr_assert_eq(l.identify_err, 0);
	cr_assert_str_eq(d.agent, "natx/" NATX_VERSION);
	cr_assert(d.saw_ping_proto);
	const struct identify_record *rec = p2p_conn_remote_info(d.c);

	cr_assert_eq(rec->n_addrs, 1);
	cr_assert_eq(rec->addr_lens[0], l.addr_len);
	node_free(&d);
	node_free(&l);
}

Test(conn, full_stack_with_and_without_early_muxer, .timeout = 30)
{
	establish_and_check(true, true, 0);
	establish_and_check(false, false, 0);
	establish_and_check(true, false, 0);
	establish_and_check(false, true, 0);
	establish_and_check(true, true, 1); /* byte by byte */
	establish_and_check(false, false, 7);
}

Test(conn, ping_both_directions, .timeout = 30)
{
	struct node d, l;

	node_init(&d, 3, true);
	node_init(&l, 4, true);
	node_connect(&d, &l, &l.idn.id);
	cr_assert_eq(pump(&d, &l, 0), 0);
	now_ms = 1000;
	cr_assert_eq(p2p_conn_ping(d.c), 0);
	cr_assert_eq(move(&d, &l, 0), 1); /* SYN + mss proposal */
	cr_assert_eq(move(&l, &d, 0), 1); /* echo of the protocol */
	now_ms = 1042;
	cr_assert_eq(pump(&d, &l, 0), 0);
	cr_assert_eq(d.pings, 1);
	cr_assert_eq(d.ping_err, 0);
	cr_assert_eq(d.rtt, 42);
	cr_assert_eq(p2p_conn_stats(l.c)->pings_served, 1);
	cr_assert_eq(p2p_conn_ping(l.c), 0);
	cr_assert_eq(pump(&d, &l, 0), 0);
	cr_assert_eq(l.pings, 1);
	cr_assert_eq(l.ping_err, 0);
	node_free(&d);
	node_free(&l);
}

Test(conn, echo_stream_moves_data_intact, .timeout = 60)
{
	struct node d, l;
	static uint8_t data[3 * 1024 * 1024 + 123];
	uint64_t want = 0;
	size_t off = 0;
	struct p2p_stream *s;
	int err;

	for (size_t i = 0; i < sizeof(data); i++) {
		data[i] = (uint8_t)(i * 7 + (i >> 13));
		want = want * 31 + data[i];
	}
	node_init(&d, 5, true);
	node_init(&l, 6, true);
	l.echo = true;
	node_connect(&d, &l, &l.idn.id);
	cr_assert_eq(pump(&d, &l, 0), 0);
	s = p2p_stream_open(d.c, ECHO_PROTO, &err);
	cr_assert_not_null(s);
	for (int i = 0; i < 100000 && (off < sizeof(data) || d.rx_bytes < sizeof(data)); i++) {
		if (off < sizeof(data)) {
			long w = p2p_stream_write(s, data + off, sizeof(data) - off);

			cr_assert_geq(w, 0);
			off += (size_t)w;
			if (off == sizeof(data)) {
				cr_assert_eq(p2p_stream_close(s), 0);
			}
		}
		cr_assert_geq(move(&d, &l, 65536), 0);
		cr_assert_geq(move(&l, &d, 65536), 0);
	}
	cr_assert_eq(pump(&d, &l, 0), 0);
	cr_assert_eq(l.rx_bytes, sizeof(data));
	cr_assert_eq(d.rx_bytes, sizeof(data));
	cr_assert_eq(l.rx_sum, want);
	cr_assert_eq(d.rx_sum, want);
	cr_assert_eq(d.fins, 1);
	cr_assert_eq(d.closed, 1);
	cr_assert_eq(l.closed, 1);
	cr_assert_eq(p2p_conn_stats(l.c)->window_violations, 0);
	node_free(&d);
	node_free(&l);
}

Test(conn, unsupported_protocol_is_refused, .timeout = 30)
{
	struct node d, l;
	int err;

	node_init(&d, 7, false);
	node_init(&l, 8, false);
	node_connect(&d, &l, NULL);
	cr_assert_eq(pump(&d, &l, 0), 0);
	cr_assert_not_null(p2p_stream_open(d.c, "/nobody/1.0.0", &err));
	cr_assert_eq(pump(&d, &l, 0), 0);
	cr_assert_eq(d.resets, 1);
	cr_assert_eq(d.last_reset_err, -NATX_E_UNAVAILABLE);
	cr_assert_eq(d.closed, 1);
	cr_assert_eq(p2p_conn_error(d.c), 0);
	node_free(&d);
	node_free(&l);
}

Test(conn, identify_push_updates_record, .timeout = 30)
{
	struct node d, l;

	node_init(&d, 9, true);
	node_init(&l, 10, true);
	node_connect(&d, &l, NULL);
	cr_assert_eq(pump(&d, &l, 0), 0);
	cr_assert_eq(l.identified, 1);
	cr_assert_eq(p2p_conn_identify_push(d.c), 0);
	cr_assert_eq(pump(&d, &l, 0), 0);
	cr_assert_eq(l.identified, 2);
	cr_assert_eq(l.identify_err, 0);
	node_free(&d);
	node_free(&l);
}

/* healthy_pair - a second, independent connection that must keep working. */
static void healthy_pair_check(struct node *hd, struct node *hl)
{
	cr_assert_eq(p2p_conn_ping(hd->c), 0);
	cr_assert_eq(pump(hd, hl, 0), 0);
	cr_assert_eq(hd->ping_err, 0);
	cr_assert_gt(hd->pings, 0);
}

Test(conn, peer_id_mismatch_fails_only_that_connection, .timeout = 30)
{
	struct node d, l, other, hd, hl;

	node_init(&hd, 20, true);
	node_init(&hl, 21, true);
	node_connect(&hd, &hl, &hl.idn.id);
	cr_assert_eq(pump(&hd, &hl, 0), 0);

	node_init(&d, 11, true);
	node_init(&l, 12, true);
	node_init(&other, 13, true);
	node_connect(&d, &l, &other.idn.id);
	cr_assert_eq(pump(&d, &l, 0), -EKEYREJECTED);
	cr_assert_eq(p2p_conn_error(d.c), -EKEYREJECTED);
	cr_assert_eq(d.established, 0);
	cr_assert_eq(p2p_conn_consume(d.c, (const uint8_t *)"x", 1), -EKEYREJECTED);
	healthy_pair_check(&hd, &hl);
	node_free(&d);
	node_free(&l);
	node_free(&other);
	node_free(&hd);
	node_free(&hl);
}

Test(conn, corrupted_transport_frame_is_bad_mac, .timeout = 30)
{
	struct node d, l, hd, hl;
	const uint8_t *p;
	size_t len;
	struct p2p_stream *s;
	int err;

	node_init(&hd, 22, false);
	node_init(&hl, 23, false);
	node_connect(&hd, &hl, NULL);
	cr_assert_eq(pump(&hd, &hl, 0), 0);

	node_init(&d, 14, true);
	node_init(&l, 15, true);
	node_connect(&d, &l, NULL);
	cr_assert_eq(pump(&d, &l, 0), 0);
	s = p2p_stream_open(d.c, ECHO_PROTO, &err);
	cr_assert_not_null(s);
	p2p_conn_out_peek(d.c, &p, &len);
	cr_assert_gt(len, 20);
	uint8_t *copy = malloc(len);

	memcpy(copy, p, len);
	p2p_conn_out_advance(d.c, len);
	copy[len - 1] ^= 1;
	cr_assert_eq(p2p_conn_consume(l.c, copy, len), -EBADMSG);
	free(copy);
	cr_assert_eq(p2p_conn_error(l.c), -EBADMSG);
	/* the failed side queued a GoAway(internal error) for the peer */
	p2p_conn_out_peek(l.c, &p, &len);
	cr_assert_gt(len, 0);
	healthy_pair_check(&hd, &hl);
	node_free(&d);
	node_free(&l);
	node_free(&hd);
	node_free(&hl);
}

Test(conn, garbage_and_oversized_handshakes_fail_cleanly, .timeout = 30)
{
	struct node l, hd, hl;
	uint8_t buf[4096];
	struct wr w;
	int err;

	node_init(&hd, 24, true);
	node_init(&hl, 25, true);
	node_connect(&hd, &hl, NULL);
	cr_assert_eq(pump(&hd, &hl, 0), 0);

	/* oversized multistream message */
	node_init(&l, 16, true);
	l.c = p2p_conn_new(&l.host, false, NULL, &ops, &l, &err);
	cr_assert_eq(p2p_conn_consume(l.c, (const uint8_t *)"\xd0\x0f", 2), -NATX_E_TOO_BIG);
	node_free(&l);

	/* wrong multistream header */
	node_init(&l, 16, true);
	l.c = p2p_conn_new(&l.host, false, NULL, &ops, &l, &err);
	wr_init(&w, buf, sizeof(buf));
	mss_write_msg(&w, "/multistream/2.0.0");
	cr_assert_eq(p2p_conn_consume(l.c, buf, (size_t)(w.p - buf)), -NATX_E_PROTO);
	node_free(&l);

	/* valid negotiation, then a short Noise message 1 and then garbage message 3 */
	node_init(&l, 17, true);
	l.c = p2p_conn_new(&l.host, false, NULL, &ops, &l, &err);
	wr_init(&w, buf, sizeof(buf));
	mss_write_msg(&w, MSS_HEADER);
	mss_write_msg(&w, "/noise");
	wr_be16(&w, 5);
	wr_bytes(&w, "abcde", 5);
	cr_assert_eq(p2p_conn_consume(l.c, buf, (size_t)(w.p - buf)), -NATX_E_PROTO);
	node_free(&l);

	node_init(&l, 18, true);
	l.c = p2p_conn_new(&l.host, false, NULL, &ops, &l, &err);
	wr_init(&w, buf, sizeof(buf));
	mss_write_msg(&w, MSS_HEADER);
	mss_write_msg(&w, "/noise");
	wr_be16(&w, 32);
	for (int i = 0; i < 32; i++) {
		wr_u8(&w, (uint8_t)(9 + i)); /* an ephemeral key */
	}
	wr_be16(&w, 200);
	memset(w.p, 0x41, 200);
	w.p += 200;
	cr_assert_eq(p2p_conn_consume(l.c, buf, (size_t)(w.p - buf)), -EBADMSG);
	node_free(&l);

	healthy_pair_check(&hd, &hl);
	node_free(&hd);
	node_free(&hl);
}

Test(conn, output_buffer_backpressure, .timeout = 60)
{
	struct node d, l;
	static uint8_t data[8 * 1024 * 1024];
	struct p2p_stream *s;
	size_t total = 0;
	long w;
	int err;

	node_init(&d, 30, true);
	node_init(&l, 31, true);
	d.host.out_cap = 512 * 1024;
	node_connect(&d, &l, NULL);
	cr_assert_eq(pump(&d, &l, 0), 0);
	s = p2p_stream_open(d.c, ECHO_PROTO, &err);
	cr_assert_not_null(s);
	cr_assert_eq(pump(&d, &l, 0), 0);
	/* without draining, writes stop at the window or the output buffer, never fail */
	for (int i = 0; i < 100; i++) {
		w = p2p_stream_write(s, data, sizeof(data));
		cr_assert_geq(w, 0);
		total += (size_t)w;
	}
	cr_assert_leq(total, 512 * 1024, "total %zu", total);
	/* the initial yamux window, less the multistream header and proposal (20 + 23 bytes) */
	cr_assert_eq(total, 256 * 1024 - 43, "total %zu", total);
	cr_assert_eq(p2p_conn_error(d.c), 0);
	cr_assert_eq(pump(&d, &l, 0), 0);
	cr_assert_eq(l.rx_bytes, total);
	node_free(&d);
	node_free(&l);
}

Test(conn, keepalive_pings_and_times_out_when_unanswered, .timeout = 30)
{
	struct node d, l;
	const uint8_t *p;
	size_t len;

	node_init(&d, 40, true);
	node_init(&l, 41, true);
	now_ms = 5000;
	node_connect(&d, &l, NULL);
	cr_assert_eq(pump(&d, &l, 0), 0);
	cr_assert_eq(p2p_conn_tick(d.c), 0);
	p2p_conn_out_peek(d.c, &p, &len);
	cr_assert_eq(len, 0); /* nothing due yet */
	now_ms += P2P_KEEPALIVE_MS;
	cr_assert_eq(p2p_conn_tick(d.c), 0);
	p2p_conn_out_peek(d.c, &p, &len);
	cr_assert_gt(len, 0); /* a yamux ping */
	cr_assert_eq(pump(&d, &l, 0), 0);
	now_ms += P2P_KEEPALIVE_MS;
	cr_assert_eq(p2p_conn_tick(d.c), 0); /* answered: a new one goes out */
	p2p_conn_out_advance(d.c, 1 << 20); /* ... and is lost */
	now_ms += P2P_KEEPALIVE_MS;
	cr_assert_eq(p2p_conn_tick(d.c), -ETIMEDOUT);
	cr_assert_eq(p2p_conn_error(d.c), -ETIMEDOUT);
	cr_assert_eq(p2p_conn_error(l.c), 0);
	node_free(&d);
	node_free(&l);
}

Test(conn, keepalive_interval_and_timeout_are_configurable, .timeout = 30)
{
	struct node d, l;
	const uint8_t *p;
	size_t len;

	node_init(&d, 42, true);
	node_init(&l, 43, true);
	d.host.keepalive_ms = 1000;
	d.host.keepalive_timeout_ms = 3000;
	now_ms = 5000;
	node_connect(&d, &l, NULL);
	cr_assert_eq(pump(&d, &l, 0), 0);
	now_ms += 999;
	cr_assert_eq(p2p_conn_tick(d.c), 0);
	p2p_conn_out_peek(d.c, &p, &len);
	cr_assert_eq(len, 0); /* not due before the interval */
	now_ms += 1;
	cr_assert_eq(p2p_conn_tick(d.c), 0);
	p2p_conn_out_peek(d.c, &p, &len);
	cr_assert_gt(len, 0); /* a ping every second */
	cr_assert_eq(pump(&d, &l, 0), 0);
	now_ms += 1000;
	cr_assert_eq(p2p_conn_tick(d.c), 0);
	p2p_conn_out_advance(d.c, 1 << 20); /* lost: the path went dark */
	for (int i = 0; i < 11; i++) {
		now_ms += 250; /* a shard tick: no new ping while one is out, no failure yet */
		cr_assert_eq(p2p_conn_tick(d.c), 0, "failed after %d ms", (i + 1) * 250);
		p2p_conn_out_peek(d.c, &p, &len);
		cr_assert_eq(len, 0);
	}
	now_ms += 250; /* 3 s unanswered */
	cr_assert_eq(p2p_conn_tick(d.c), -ETIMEDOUT);
	cr_assert_eq(p2p_conn_error(d.c), -ETIMEDOUT);
	node_free(&d);
	node_free(&l);
}

Test(conn, streams_reset_from_inside_callbacks, .timeout = 30)
{
	struct node d, l;
	struct p2p_stream *s;
	int err;

	node_init(&d, 50, true);
	node_init(&l, 51, true);
	l.reset_on_open = true;
	d.reset_in_reset = true;
	node_connect(&d, &l, NULL);
	cr_assert_eq(pump(&d, &l, 0), 0);
	/* lazy data right behind the proposal: it arrives after the listener reset the stream */
	s = p2p_stream_open(d.c, ECHO_PROTO, &err);
	cr_assert_not_null(s);
	cr_assert_eq(p2p_stream_write(s, (const uint8_t *)"pipelined", 9), 9);
	cr_assert_eq(pump(&d, &l, 0), 0);
	cr_assert_eq(l.opened, 1);
	cr_assert_eq(l.closed, 1);
	cr_assert_eq(l.rx_bytes, 0);
	cr_assert_eq(d.resets, 1);
	cr_assert_eq(d.closed, 1);
	cr_assert_eq(p2p_conn_error(d.c), 0);
	cr_assert_eq(p2p_conn_error(l.c), 0);
	/* the connection still works */
	cr_assert_eq(p2p_conn_ping(d.c), 0);
	cr_assert_eq(pump(&d, &l, 0), 0);
	cr_assert_eq(d.ping_err, 0);
	node_free(&d);
	node_free(&l);
}

Test(conn, lazy_open_carries_data_in_the_proposal_frame, .timeout = 30)
{
	struct node d, l;
	struct p2p_stream *s;
	int err;

	node_init(&d, 60, true);
	node_init(&l, 61, true);
	l.echo = true;
	node_connect(&d, &l, NULL);
	cr_assert_eq(pump(&d, &l, 0), 0);
	s = p2p_stream_open_lazy(d.c, ECHO_PROTO, (const uint8_t *)"early bytes", 11, &err);
	cr_assert_not_null(s);
	cr_assert_eq(p2p_stream_close(s), 0);
	cr_assert_eq(pump(&d, &l, 0), 0);
	cr_assert_eq(l.opened, 1);
	cr_assert_eq(l.rx_bytes, 11); /* the listener kept the bytes behind the proposal */
	cr_assert_eq(d.rx_bytes, 11); /* and echoed them */
	cr_assert_eq(d.closed, 1);

	/* the listener resets from inside on_stream_open: the trailing bytes go nowhere */
	l.echo = false;
	l.reset_on_open = true;
	l.rx_bytes = d.rx_bytes = 0;
	s = p2p_stream_open_lazy(d.c, ECHO_PROTO, (const uint8_t *)"dropped", 7, &err);
	cr_assert_not_null(s);
	cr_assert_eq(pump(&d, &l, 0), 0);
	cr_assert_eq(l.opened, 2);
	cr_assert_eq(l.rx_bytes, 0);
	cr_assert_eq(d.resets, 1);
	cr_assert_eq(p2p_conn_error(l.c), 0);

	/* refused: the lazy bytes are discarded and the stream is reset as "na" */
	s = p2p_stream_open_lazy(d.c, "/nobody/1.0.0", (const uint8_t *)"lost", 4, &err);
	cr_assert_not_null(s);
	cr_assert_eq(pump(&d, &l, 0), 0);
	cr_assert_eq(d.resets, 2);
	cr_assert_eq(p2p_conn_error(d.c), 0);
	cr_assert_eq(p2p_conn_error(l.c), 0);
	node_free(&d);
	node_free(&l);
}

/* counters of a per-stream callback table (p2p_stream_set_ops) */
struct own {
	int data, writable, close;
	uint64_t bytes;
};

static void own_data(void *ctx, struct p2p_stream *s, const uint8_t *p, size_t n)
{
	((struct own *)ctx)->data++;
	((struct own *)ctx)->bytes += n;
}

static void own_writable(void *ctx, struct p2p_stream *s)
{
	((struct own *)ctx)->writable++;
}

static void own_close(void *ctx, struct p2p_stream *s)
{
	((struct own *)ctx)->close++;
}

static const struct p2p_conn_ops own_ops = {
	.on_stream_data = own_data,
	.on_stream_writable = own_writable,
	.on_stream_close = own_close,
};

Test(conn, writable_after_output_buffer_backpressure_and_per_stream_ops, .timeout = 60)
{
	struct node d, l;
	static uint8_t data[1 << 20];
	struct own own = { 0 };
	struct p2p_stream *s;
	uint8_t *copy;
	const uint8_t *p;
	size_t len, total = 0;
	long w;
	int err;

	node_init(&d, 40, true);
	node_init(&l, 41, true);
	d.host.out_cap = 256 * 1024; /* 128 KiB of data room: the buffer fills before the window */
	node_connect(&d, &l, NULL);
	cr_assert_eq(pump(&d, &l, 0), 0);
	s = p2p_stream_open(d.c, ECHO_PROTO, &err);
	cr_assert_not_null(s);
	cr_assert_eq(pump(&d, &l, 0), 0);
	p2p_stream_set_ops(s, &own_ops, &own);
	w = p2p_stream_write(s, data, sizeof(data));
	cr_assert_gt(w, 0);
	total += (size_t)w;
	while ((w = p2p_stream_write(s, data, sizeof(data))) > 0) {
		total += (size_t)w; /* fill up */
	}
	cr_assert_eq(w, 0);
	/* never into the control headroom (a wrap-around in the room computation once let it) */
	cr_assert_leq(total, 128 * 1024, "total %zu", total);
	/* a few bytes leave: not enough room yet, no callback */
	p2p_conn_out_peek(d.c, &p, &len);
	cr_assert_gt(len, 100);
	copy = malloc(len);
	memcpy(copy, p, len);
	p2p_conn_out_advance(d.c, 100);
	cr_assert_eq(own.writable, 0);
	cr_assert_eq(p2p_conn_consume(l.c, copy, 100), 0);
	/* the rest leaves: the stream hears it once, through its own table only */
	p2p_conn_out_advance(d.c, len - 100);
	cr_assert_eq(own.writable, 1);
	cr_assert_eq(d.writables, 0);
	cr_assert_eq(p2p_conn_consume(l.c, copy + 100, len - 100), 0);
	free(copy);
	w = p2p_stream_write(s, data, sizeof(data));
	cr_assert_gt(w, 0);
	total += (size_t)w;
	cr_assert_eq(pump(&d, &l, 0), 0);
	cr_assert_eq(l.rx_bytes, total);
	/* echo from the listener goes to the per-stream table, not to the connection's */
	cr_assert_not_null(l.app);
	cr_assert_eq(p2p_stream_write(l.app, data, 1000), 1000);
	cr_assert_eq(pump(&d, &l, 0), 0);
	cr_assert_eq(own.bytes, 1000);
	cr_assert_eq(d.rx_bytes, 0);
	p2p_stream_reset(s);
	cr_assert_eq(own.close, 1);
	cr_assert_eq(d.closed, 0);
	node_free(&d);
	node_free(&l);
}
