// SPDX-License-Identifier: MIT
/*
 * Yamux tests: two sessions in one process joined by in-memory pipes, a fake clock. Frame
 * layout from libp2p/specs yamux/README.md. Window accounting, growth, FIN/RST, GoAway, ping,
 * stream limits, a peer that violates the window, malformed frames, byte-at-a-time input.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "natx/err.h"
#include "ymx.h"

struct pipe {
	uint8_t *b;
	size_t len, cap;
};

struct end {
	struct ymx_session ys;
	struct pipe out; /* bytes this end sent */
	size_t opened, closed, fins, resets, writable, pings, goaways;
	uint64_t received;
	struct ymx_stream *last_open;
	bool auto_consume;
	bool reset_on_data;
	uint8_t last_byte;
};

static int64_t fake_now;

static int64_t fake_clock_now(struct p2p_clock *c)
{
	return fake_now;
}

static struct p2p_clock fake_clock = { fake_clock_now };

static int end_write(void *ctx, const uint8_t *hdr, const uint8_t *body, size_t blen)
{
	struct end *e = ctx;
	struct pipe *p = &e->out;

	if (p->len + YMX_HDR_LEN + blen > p->cap) {
		p->cap = (p->len + YMX_HDR_LEN + blen) * 2;
		p->b = realloc(p->b, p->cap);
	}
	memcpy(p->b + p->len, hdr, YMX_HDR_LEN);
	if (blen) {
		memcpy(p->b + p->len + YMX_HDR_LEN, body, blen);
	}
	p->len += YMX_HDR_LEN + blen;
	return 0;
}

static void end_on_open(void *ctx, struct ymx_stream *s)
{
	struct end *e = ctx;

	e->opened++;
	e->last_open = s;
}

static void end_on_data(void *ctx, struct ymx_stream *s, const uint8_t *p, size_t n)
{
	struct end *e = ctx;

	e->received += n;
	e->last_byte = p[n - 1];
	if (e->reset_on_data) {
		ymx_stream_reset(&e->ys, s);
		return;
	}
	if (e->auto_consume) {
		ymx_stream_consumed(&e->ys, s, n);
	}
}

static void end_on_fin(void *ctx, struct ymx_stream *s)
{
	((struct end *)ctx)->fins++;
}

static void end_on_reset(void *ctx, struct ymx_stream *s)
{
	((struct end *)ctx)->resets++;
}

static void end_on_writable(void *ctx, struct ymx_stream *s)
{
	((struct end *)ctx)->writable++;
}

static void end_on_close(void *ctx, struct ymx_stream *s)
{
	struct end *e = ctx;

	e->closed++;
	if (e->last_open == s) {
		e->last_open = NULL;
	}
}

static void end_on_ping(void *ctx, uint32_t id, int64_t rtt)
{
	((struct end *)ctx)->pings++;
}

static void end_on_goaway(void *ctx, uint32_t code)
{
	((struct end *)ctx)->goaways++;
}

static const struct ymx_ops end_ops = {
	.write = end_write,
	.on_open = end_on_open,
	.on_data = end_on_data,
	.on_fin = end_on_fin,
	.on_reset = end_on_reset,
	.on_writable = end_on_writable,
	.on_close = end_on_close,
	.on_ping = end_on_ping,
	.on_goaway = end_on_goaway,
};

static struct end A, B; /* A is the client (dialer) */

static void setup(void)
{
	memset(&A, 0, sizeof(A));
	memset(&B, 0, sizeof(B));
	fake_now = 1000;
	ymx_session_init(&A.ys, true, &end_ops, &A, &fake_clock);
	ymx_session_init(&B.ys, false, &end_ops, &B, &fake_clock);
	A.auto_consume = B.auto_consume = true;
}

static void teardown(void)
{
	ymx_session_cleanup(&A.ys);
	ymx_session_cleanup(&B.ys);
	free(A.out.b);
	free(B.out.b);
}

/* deliver - hand everything @from sent to @to; returns ymx_consume's result. */
static int deliver(struct end *from, struct end *to, bool one_byte)
{
	int err = 0;

	while (from->out.len && !err) {
		size_t n = from->out.len;
		uint8_t *tmp = malloc(n);

		memcpy(tmp, from->out.b, n);
		from->out.len = 0;
		if (one_byte) {
			for (size_t i = 0; i < n && !err; i++) {
				err = ymx_consume(&to->ys, tmp + i, 1);
			}
		} else {
			err = ymx_consume(&to->ys, tmp, n);
		}
		free(tmp);
	}
	return err;
}

static void pump(void)
{
	for (int i = 0; i < 100 && (A.out.len || B.out.len); i++) {
		cr_assert_eq(deliver(&A, &B, false), 0);
		cr_assert_eq(deliver(&B, &A, false), 0);
	}
}

TestSuite(ymx, .init = setup, .fini = teardown);

Test(ymx, header_layout)
{
	struct ymx_hdr h = { 0, YMX_WINDOW_UPDATE, YMX_SYN | YMX_FIN, 0x01020304, 0xa0b0c0d0 },
		       back;
	uint8_t b[12], want[12] = { 0, 1, 0, 5, 1, 2, 3, 4, 0xa0, 0xb0, 0xc0, 0xd0 };

	ymx_hdr_encode(b, &h);
	cr_assert_arr_eq(b, want, 12);
	ymx_hdr_decode(&back, b);
	cr_assert_eq(back.flags, h.flags);
	cr_assert_eq(back.stream_id, h.stream_id);
	cr_assert_eq(back.length, h.length);
}

Test(ymx, open_write_fin_both_ways_frees_streams)
{
	for (int one_byte = 0; one_byte < 2; one_byte++) {
		int err;
		struct ymx_stream *s = ymx_stream_open(&A.ys, &err);
		uint8_t data[1000];

		cr_assert_not_null(s);
		cr_assert_eq(s->id, one_byte ? 3u : 1u);
		/* first frame: Window Update, SYN, length 0 */
		cr_assert_eq(A.out.b[1], YMX_WINDOW_UPDATE);
		cr_assert_eq(A.out.b[3], YMX_SYN);
		memset(data, 0x5a, sizeof(data));
		cr_assert_eq(ymx_stream_write(&A.ys, s, data, sizeof(data)), 1000);
		cr_assert_eq(ymx_stream_close(&A.ys, s), 0);
		cr_assert_eq(ymx_stream_write(&A.ys, s, data, 1), -EPIPE);
		cr_assert_eq(deliver(&A, &B, one_byte), 0);
		cr_assert_eq(B.opened, (size_t)one_byte + 1);
		cr_assert_eq(B.received, 1000u * (one_byte + 1));
		cr_assert_eq(B.fins, (size_t)one_byte + 1);
		cr_assert_not_null(B.last_open);
		cr_assert_eq(ymx_stream_write(&B.ys, B.last_open, data, 10), 10);
		cr_assert_eq(ymx_stream_close(&B.ys, B.last_open), 0);
		cr_assert_eq(B.closed, (size_t)one_byte + 1); /* both FINs: freed */
		cr_assert_eq(deliver(&B, &A, one_byte), 0);
		cr_assert_eq(A.received, 10u * (one_byte + 1));
		cr_assert_eq(A.closed, (size_t)one_byte + 1);
		cr_assert_eq(A.ys.n_out, 0);
		cr_assert_eq(A.ys.unacked, 0);
		cr_assert_eq(B.ys.n_in, 0);
	}
}

Test(ymx, never_exceeds_peer_window_and_resumes_on_update)
{
	int err;
	struct ymx_stream *s = ymx_stream_open(&A.ys, &err);
	static uint8_t big[600 * 1024];
	long n;

	B.auto_consume = false;
	n = ymx_stream_write(&A.ys, s, big, sizeof(big));
	cr_assert_eq(n, YMX_INITIAL_WINDOW);
	cr_assert_eq(ymx_stream_write(&A.ys, s, big, 1), 0);
	pump();
	cr_assert_eq(B.received, YMX_INITIAL_WINDOW);
	cr_assert_eq(B.last_open->recv_window, 0);
	/* less than half consumed: no update yet */
	cr_assert_eq(ymx_stream_consumed(&B.ys, B.last_open, 1000), 0);
	cr_assert_eq(B.out.len, 0);
	cr_assert_eq(ymx_stream_consumed(&B.ys, B.last_open, YMX_INITIAL_WINDOW - 1000), 0);
	cr_assert_eq(B.out.len, YMX_HDR_LEN);
	pump();
	cr_assert_gt(A.writable, 0);
	cr_assert_eq(s->send_window, YMX_INITIAL_WINDOW);
	cr_assert_eq(ymx_stream_write(&A.ys, s, big, sizeof(big)), YMX_INITIAL_WINDOW);
}

Test(ymx, window_grows_when_updates_come_faster_than_4_rtt)
{
	static uint8_t big[YMX_INITIAL_WINDOW];
	struct ymx_stream *s;
	uint32_t grown;
	int err;

	/* B measures an RTT of 50 ms */
	cr_assert_eq(ymx_ping(&B.ys), 0);
	cr_assert_eq(ymx_ping(&B.ys), -EBUSY);
	cr_assert_eq(deliver(&B, &A, false), 0);
	fake_now += 50;
	cr_assert_eq(deliver(&A, &B, false), 0);
	cr_assert_eq(B.pings, 1);
	cr_assert_eq(B.ys.rtt_ms, 50);

	s = ymx_stream_open(&A.ys, &err);
	pump();
	fake_now += 10; /* updates well inside 4 RTTs: the receive window grows */
	cr_assert_eq(ymx_stream_write(&A.ys, s, big, sizeof(big)), YMX_INITIAL_WINDOW);
	pump();
	grown = B.last_open->recv_max;
	cr_assert_gt(grown, YMX_INITIAL_WINDOW);
	cr_assert_leq(grown, YMX_MAX_WINDOW);
	/* sender and receiver agree on the credit once nothing is in flight */
	cr_assert_eq(s->send_window, B.last_open->recv_window);
	cr_assert_eq(s->send_window + B.last_open->recv_pending, grown);

	/* a slow consumer (updates far apart): no further growth */
	for (int i = 0; i < 4; i++) {
		fake_now += 10000;
		cr_assert_eq(ymx_stream_write(&A.ys, s, big, YMX_INITIAL_WINDOW / 2),
			     YMX_INITIAL_WINDOW / 2);
		pump();
	}
	cr_assert_eq(B.last_open->recv_max, grown);
	cr_assert_eq(s->send_window + B.last_open->recv_pending, grown);
}

Test(ymx, window_violation_resets_only_that_stream)
{
	int err;
	struct ymx_stream *s1 = ymx_stream_open(&A.ys, &err), *s2 = ymx_stream_open(&A.ys, &err);
	static uint8_t big[YMX_INITIAL_WINDOW + 100];
	struct ymx_hdr h = { 0, YMX_DATA, 0, s1->id, sizeof(big) };
	uint8_t hb[12];

	pump();
	cr_assert_eq(B.opened, 2);
	/* A misbehaves: one Data frame larger than the window, written raw */
	ymx_hdr_encode(hb, &h);
	end_write(&A, hb, big, sizeof(big));
	cr_assert_eq(ymx_stream_write(&A.ys, s2, (const uint8_t *)"ok", 2), 2);
	cr_assert_eq(deliver(&A, &B, false), 0);
	cr_assert_eq(B.ys.window_violations, 1);
	cr_assert_eq(B.resets, 1);
	cr_assert_eq(B.received, 2); /* s2's bytes only */
	cr_assert_eq(B.ys.n_in, 1);
	cr_assert_eq(deliver(&B, &A, false), 0);
	cr_assert_eq(A.resets, 1);
	cr_assert_eq(A.ys.n_out, 1);
}

Test(ymx, rst_from_peer_and_reset_inside_callback)
{
	int err;
	struct ymx_stream *s = ymx_stream_open(&A.ys, &err);

	cr_assert_eq(ymx_stream_write(&A.ys, s, (const uint8_t *)"abc", 3), 3);
	B.reset_on_data = true;
	pump();
	cr_assert_eq(B.closed, 1);
	cr_assert_eq(A.resets, 1);
	cr_assert_eq(A.closed, 1);
	cr_assert_eq(A.ys.n_out, 0);
}

Test(ymx, ping_ack_echoes_value_and_unsolicited_ack_is_fatal)
{
	struct ymx_hdr h = { 0, YMX_PING, YMX_ACK, 0, 77 };
	uint8_t hb[12];

	cr_assert_eq(ymx_ping(&A.ys), 0);
	cr_assert_eq(deliver(&A, &B, false), 0);
	cr_assert_eq(B.out.len, 12);
	cr_assert_eq(B.out.b[3], YMX_ACK);
	cr_assert_eq(B.out.b[11], 0); /* first ping id */
	cr_assert_eq(deliver(&B, &A, false), 0);
	cr_assert_eq(A.pings, 1);
	ymx_hdr_encode(hb, &h);
	cr_assert_eq(ymx_consume(&A.ys, hb, 12), -NATX_E_PROTO);
}

Test(ymx, goaway_stops_new_streams)
{
	int err;

	cr_assert_eq(ymx_goaway(&B.ys, YMX_GOAWAY_NORMAL), 0);
	cr_assert_eq(deliver(&B, &A, false), 0);
	cr_assert_eq(A.goaways, 1);
	cr_assert_null(ymx_stream_open(&A.ys, &err));
	cr_assert_eq(err, -ECONNABORTED);
	/* B refuses a SYN after its GoAway */
	struct ymx_hdr h = { 0, YMX_WINDOW_UPDATE, YMX_SYN, 1, 0 };
	uint8_t hb[12];

	ymx_hdr_encode(hb, &h);
	cr_assert_eq(ymx_consume(&B.ys, hb, 12), 0);
	cr_assert_eq(B.opened, 0);
	cr_assert_eq(B.ys.streams_refused, 1);
	cr_assert_eq(B.out.b[3], YMX_RST);
}

Test(ymx, inbound_stream_limit_refuses_with_rst)
{
	int err;

	B.ys.max_in = 2;
	for (int i = 0; i < 3; i++) {
		cr_assert_not_null(ymx_stream_open(&A.ys, &err));
	}
	pump();
	cr_assert_eq(B.opened, 2);
	cr_assert_eq(B.ys.streams_refused, 1);
	cr_assert_eq(A.resets, 1);
	cr_assert_eq(A.ys.n_out, 2);
	A.ys.max_out = 2;
	cr_assert_null(ymx_stream_open(&A.ys, &err));
	cr_assert_eq(err, -NATX_E_LIMIT);
}

Test(ymx, malformed_frames_are_connection_errors)
{
	static const struct ymx_hdr bad[] = {
		{ 1, YMX_DATA, 0, 1, 0 }, /* version */
		{ 0, 4, 0, 1, 0 }, /* type */
		{ 0, YMX_PING, YMX_SYN, 1, 0 }, /* ping on a stream */
		{ 0, YMX_GO_AWAY, 0, 3, 0 }, /* goaway on a stream */
		{ 0, YMX_DATA, 0, 0, 0 }, /* data on stream 0 */
		{ 0, YMX_PING, YMX_SYN | YMX_ACK, 0, 0 }, /* ping flags */
		{ 0, YMX_WINDOW_UPDATE, YMX_SYN, 2, 0 }, /* B sees the client's parity */
	};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct ymx_session ys;
		uint8_t hb[12];

		ymx_session_init(&ys, false, &end_ops, &B, &fake_clock);
		ymx_hdr_encode(hb, &bad[i]);
		cr_assert_eq(ymx_consume(&ys, hb, 12), -NATX_E_PROTO, "case %zu", i);
		ymx_session_cleanup(&ys);
	}
}

Test(ymx, fin_on_data_frame_after_payload_and_unknown_stream_skipped)
{
	struct ymx_hdr syn = { 0, YMX_DATA, YMX_SYN | YMX_FIN, 1, 3 };
	struct ymx_hdr unknown = { 0, YMX_DATA, 0, 99, 4 };
	uint8_t buf[64];

	ymx_hdr_encode(buf, &unknown);
	memcpy(buf + 12, "zzzz", 4);
	ymx_hdr_encode(buf + 16, &syn);
	memcpy(buf + 28, "xyz", 3);
	cr_assert_eq(ymx_consume(&B.ys, buf, 31), 0);
	cr_assert_eq(B.opened, 1);
	cr_assert_eq(B.received, 3);
	cr_assert_eq(B.last_byte, 'z');
	cr_assert_eq(B.fins, 1);
}
