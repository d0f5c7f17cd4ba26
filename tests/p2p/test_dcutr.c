// SPDX-License-Identifier: MIT
/* DCUtR in process: both roles over one connection, RTT and half-RTT timing, 3 attempts. */
#include "natx/err.h"
#include "dcutr.h"
#include "p2p/t_net.h"

static const char *const protos[] = { DCUTR_PROTOCOL, NULL };

struct side {
	struct dcutr *d;
	int dials, done, done_err;
	int64_t dial_at;
	bool dial_client;
	unsigned dial_attempt;
	struct relay_addrs dial_addrs;
	struct dcutr_attempt log[DCUTR_ATTEMPTS];
	size_t n_log;
};

static struct side SA, SB; /* A: responder, B: initiator */

static void on_dial(void *ctx, struct p2p_conn *relayed, const struct relay_addrs *addrs,
		    int64_t at_ms, bool client, unsigned attempt)
{
	struct side *s = ctx;

	s->dials++;
	s->dial_at = at_ms;
	s->dial_client = client;
	s->dial_attempt = attempt;
	s->dial_addrs = *addrs;
}

static void on_done(void *ctx, struct p2p_conn *relayed, int err, const struct dcutr_attempt *log,
		    size_t n)
{
	struct side *s = ctx;

	s->done++;
	s->done_err = err;
	memcpy(s->log, log, n * sizeof(*log));
	s->n_log = n;
}

static const struct dcutr_ops ops = { .dial = on_dial, .on_done = on_done };

static bool open_hook(struct t_node *n, struct t_end *e, struct p2p_stream *s, const char *proto)
{
	if (!strcmp(proto, DCUTR_PROTOCOL)) {
		dcutr_accept(n->user == &SA ? SA.d : SB.d, s);
		return true;
	}
	return false;
}

static uint8_t addr_a[3][64], addr_b[1][64];
static const uint8_t *pa[3], *pb[1];
static size_t la[3], lb[1];
static struct t_node A, B;
static struct t_end *eb; /* B's end of the (relayed) connection, B dialled */

static void setup_pair(void)
{
	int err;

	memset(&SA, 0, sizeof(SA));
	memset(&SB, 0, sizeof(SB));
	cr_assert_eq(maddr_from_text("/ip4/198.51.100.1/tcp/4001", addr_a[0], 64, &la[0]), 0);
	cr_assert_eq(maddr_from_text("/ip4/192.168.1.5/tcp/4001", addr_a[1], 64, &la[1]), 0);
	cr_assert_eq(
		maddr_from_text("/ip4/198.51.100.9/tcp/4001/p2p-circuit", addr_a[2], 64, &la[2]),
		0);
	cr_assert_eq(maddr_from_text("/ip4/203.0.113.2/tcp/4002", addr_b[0], 64, &lb[0]), 0);
	for (int i = 0; i < 3; i++) {
		pa[i] = addr_a[i];
	}
	pb[0] = addr_b[0];
	SA.d = dcutr_new(&t_clock, &ops, &SA, pa, la, 3, false, &err);
	SB.d = dcutr_new(&t_clock, &ops, &SB, pb, lb, 1, false, &err);
	cr_assert(SA.d && SB.d);
	t_node_init(&A, 5, protos);
	t_node_init(&B, 6, protos);
	A.user = &SA;
	B.user = &SB;
	A.on_open = B.on_open = open_hook;
	eb = t_connect(&B, &A);
	cr_assert_eq(t_pump(NULL, NULL), 0);
}

static void teardown_pair(void)
{
	dcutr_free(SA.d);
	dcutr_free(SB.d);
	t_net_free();
	p2p_identity_cleanup(&A.idn);
	p2p_identity_cleanup(&B.idn);
}

Test(dcutr, wire_bytes)
{
	struct dcutr_msg m = { .type = DCUTR_TYPE_CONNECT }, d;
	uint8_t out[64];
	size_t len;

	cr_assert_eq(dcutr_encode(&m, out, sizeof(out), &len), 0);
	cr_assert_eq(len, 3);
	cr_assert_eq(memcmp(out, "\x02\x08\x64", 3), 0);
	m.type = DCUTR_TYPE_SYNC;
	cr_assert_eq(dcutr_encode(&m, out, sizeof(out), &len), 0);
	cr_assert_eq(memcmp(out, "\x03\x08\xac\x02", 4), 0);
	cr_assert_eq(dcutr_decode(&d, out + 1, len - 1), 0);
	cr_assert_eq(d.type, DCUTR_TYPE_SYNC);
	cr_assert_eq(dcutr_decode(&d, (const uint8_t *)"\x08\x01", 2), -NATX_E_PROTO);
	cr_assert_eq(dcutr_decode(&d, (const uint8_t *)"\x12\x00", 2), -NATX_E_PROTO);
	cr_assert_eq(dcutr_decode(&d, (const uint8_t *)"\xff", 1), -NATX_E_PROTO);
}

Test(dcutr, exchange_measures_rtt_and_b_dials_half_an_rtt_later, .timeout = 30)
{
	struct t_end *ea;

	setup_pair();
	ea = eb->peer;
	cr_assert_eq(dcutr_start(SB.d, eb->c), 0);
	cr_assert_eq(dcutr_start(SB.d, eb->c), -EALREADY);
	/* B -> A: stream + CONNECT; A answers at once */
	cr_assert_eq(t_move(eb), 1);
	t_now_ms += 40; /* the answer takes 40 ms to come back */
	cr_assert_eq(t_move(ea), 1);
	cr_assert_eq(SB.dials, 1);
	cr_assert_eq(SB.dial_at, t_now_ms + 20);
	cr_assert_not(SB.dial_client); /* B is the server on the direct connection */
	cr_assert_eq(SB.dial_attempt, 1);
	/* A's private and circuit addresses were filtered out */
	cr_assert_eq(SB.dial_addrs.n, 1);
	cr_assert_eq(SB.dial_addrs.lens[0], la[0]);
	cr_assert_eq(memcmp(SB.dial_addrs.b[0], addr_a[0], la[0]), 0);
	cr_assert_eq(SA.dials, 0); /* A waits for SYNC */
	t_now_ms += 20;
	cr_assert_eq(t_pump(NULL, NULL), 0);
	cr_assert_eq(SA.dials, 1);
	cr_assert_eq(SA.dial_at, t_now_ms); /* at once */
	cr_assert(SA.dial_client);
	cr_assert_eq(SA.dial_addrs.n, 1);
	cr_assert_eq(memcmp(SA.dial_addrs.b[0], addr_b[0], lb[0]), 0);
	/* both sides report the direct connection */
	dcutr_dial_done(SB.d, eb->c, 0);
	dcutr_dial_done(SA.d, ea->c, 0);
	cr_assert_eq(SB.done, 1);
	cr_assert_eq(SB.done_err, 0);
	cr_assert_eq(SB.n_log, 1);
	cr_assert_eq(SB.log[0].outcome, DCUTR_SUCCEEDED);
	cr_assert_eq(SB.log[0].rtt_ms, 40);
	cr_assert_eq(SA.done, 1);
	cr_assert_eq(SA.done_err, 0);
	cr_assert_eq(dcutr_stats(SB.d)->succeeded, 1);
	teardown_pair();
}

Test(dcutr, three_attempts_then_failure, .timeout = 30)
{
	struct t_end *ea;

	setup_pair();
	ea = eb->peer;
	cr_assert_eq(dcutr_start(SB.d, eb->c), 0);
	for (unsigned i = 1; i <= DCUTR_ATTEMPTS; i++) {
		cr_assert_eq(t_pump(NULL, NULL), 0);
		cr_assert_eq(SB.dials, (int)i);
		cr_assert_eq(SA.dials, (int)i);
		cr_assert_eq(SB.dial_attempt, i);
		dcutr_dial_done(SA.d, ea->c, -ECONNREFUSED);
		dcutr_dial_done(SB.d, eb->c, -ECONNREFUSED);
		dcutr_tick(SB.d); /* starts the next attempt */
	}
	cr_assert_eq(t_pump(NULL, NULL), 0);
	cr_assert_eq(SB.dials, DCUTR_ATTEMPTS); /* no fourth */
	cr_assert_eq(SB.done, 1);
	cr_assert_eq(SB.done_err, -ECONNREFUSED);
	cr_assert_eq(SB.n_log, DCUTR_ATTEMPTS);
	for (int i = 0; i < DCUTR_ATTEMPTS; i++) {
		cr_assert_eq(SB.log[i].outcome, DCUTR_FAILED);
	}
	cr_assert_eq(dcutr_stats(SB.d)->failed, DCUTR_ATTEMPTS);
	/* A gives up once B stops coming back */
	cr_assert_eq(SA.done, 0);
	t_now_ms += DCUTR_ATTEMPT_TIMEOUT_MS;
	dcutr_tick(SA.d);
	cr_assert_eq(SA.done, 1);
	cr_assert_neq(SA.done_err, 0);
	teardown_pair();
}

Test(dcutr, a_late_direct_connection_after_a_failed_dial_still_succeeds_for_a, .timeout = 30)
{
	struct t_end *ea;

	setup_pair();
	ea = eb->peer;
	/* nothing to report before any attempt: ignored */
	dcutr_start(SB.d, eb->c);
	dcutr_dial_done(SA.d, ea->c, 0);
	cr_assert_eq(SA.done, 0);
	cr_assert_eq(t_pump(NULL, NULL), 0);
	cr_assert_eq(SA.dials, 1);
	/* A's own dial was refused (B's NAT changed B's port) ... */
	dcutr_dial_done(SA.d, ea->c, -ECONNREFUSED);
	cr_assert_eq(SA.done, 0); /* A idles, B drives retries */
	/* ... a failure reported again while idle changes nothing ... */
	dcutr_dial_done(SA.d, ea->c, -ECONNREFUSED);
	cr_assert_eq(SA.done, 0);
	/* ... then B's SYN reached A's listener and that connection came up: A succeeded */
	dcutr_dial_done(SA.d, ea->c, 0);
	cr_assert_eq(SA.done, 1);
	cr_assert_eq(SA.done_err, 0);
	cr_assert_eq(SA.n_log, 1);
	cr_assert_eq(SA.log[0].outcome, DCUTR_SUCCEEDED);
	cr_assert_not(dcutr_busy(SA.d, ea->c));
	dcutr_dial_done(SB.d, eb->c, 0);
	cr_assert_eq(SB.done, 1);
	cr_assert_eq(SB.done_err, 0);
	teardown_pair();
}

Test(dcutr, attempt_timeout_is_configurable, .timeout = 30)
{
	setup_pair();
	dcutr_set_attempt_timeout(SB.d, 3000);
	cr_assert_eq(dcutr_start(SB.d, eb->c), 0);
	cr_assert_eq(t_pump(NULL, NULL), 0);
	cr_assert_eq(SB.dials, 1);
	t_now_ms += 2999;
	dcutr_tick(SB.d);
	cr_assert_eq(dcutr_stats(SB.d)->timed_out, 0); /* not yet */
	t_now_ms += 1;
	dcutr_tick(SB.d);
	cr_assert_eq(dcutr_stats(SB.d)->timed_out, 1); /* 3 s, not the default 10 s */
	/* 0 restores the default */
	dcutr_set_attempt_timeout(SB.d, 0);
	dcutr_tick(SB.d); /* attempt 2 starts */
	t_now_ms += 3000;
	dcutr_tick(SB.d);
	cr_assert_eq(dcutr_stats(SB.d)->timed_out, 1);
	teardown_pair();
}

Test(dcutr, unanswered_dial_times_out_and_retries, .timeout = 30)
{
	setup_pair();
	cr_assert_eq(dcutr_start(SB.d, eb->c), 0);
	cr_assert_eq(t_pump(NULL, NULL), 0);
	cr_assert_eq(SB.dials, 1);
	t_now_ms += DCUTR_ATTEMPT_TIMEOUT_MS;
	dcutr_tick(SB.d); /* attempt 1 timed out */
	dcutr_tick(SB.d); /* attempt 2 starts */
	cr_assert_eq(dcutr_stats(SB.d)->timed_out, 1);
	/* A is still busy with attempt 1 (never told the dial ended): it refuses the stream */
	cr_assert_eq(t_pump(NULL, NULL), 0);
	cr_assert_eq(dcutr_stats(SA.d)->refused_streams, 1);
	cr_assert_eq(SB.dials, 1);
	/* B's attempt 2 failed on the reset; attempt 3 after A has given up its attempt 1 */
	t_now_ms += DCUTR_ATTEMPT_TIMEOUT_MS;
	dcutr_tick(SA.d);
	dcutr_tick(SB.d);
	cr_assert_eq(t_pump(NULL, NULL), 0);
	cr_assert_eq(SB.dials, 2);
	cr_assert_eq(SB.dial_attempt, 3);
	dcutr_dial_done(SB.d, eb->c, 0);
	cr_assert_eq(SB.done, 1);
	cr_assert_eq(SB.done_err, 0);
	cr_assert_eq(SB.log[0].outcome, DCUTR_TIMED_OUT);
	cr_assert_eq(SB.log[1].outcome, DCUTR_FAILED);
	cr_assert_eq(SB.log[2].outcome, DCUTR_SUCCEEDED);
	teardown_pair();
}

Test(dcutr, garbage_on_the_stream_fails_the_attempt_only, .timeout = 30)
{
	struct p2p_stream *s;
	int err;

	setup_pair();
	s = p2p_stream_open(eb->c, DCUTR_PROTOCOL, &err);
	cr_assert(s);
	cr_assert_eq(p2p_stream_write(s, (const uint8_t *)"\x03\xff\xff\xff", 4), 4);
	cr_assert_eq(t_pump(NULL, NULL), 0);
	cr_assert_eq(dcutr_stats(SA.d)->failed, 1);
	cr_assert_eq(SA.dials, 0);
	cr_assert_eq(p2p_conn_error(eb->c), 0);
	teardown_pair();
}

Test(dcutr, set_addrs_replaces_the_announced_addresses_and_busy_tracks_the_session, .timeout = 30)
{
	struct t_end *ea;

	setup_pair();
	ea = eb->peer;
	cr_assert_not(dcutr_busy(SB.d, eb->c));
	/* B now announces A's first (public) address as its own: A must dial that */
	dcutr_set_addrs(SB.d, pa, la, 1);
	cr_assert_eq(dcutr_start(SB.d, eb->c), 0);
	cr_assert(dcutr_busy(SB.d, eb->c));
	cr_assert_eq(t_move(eb), 1);
	cr_assert(dcutr_busy(SA.d, ea->c));
	cr_assert_eq(t_move(ea), 1);
	cr_assert_eq(t_pump(NULL, NULL), 0);
	cr_assert_eq(SA.dials, 1);
	cr_assert_eq(SA.dial_addrs.n, 1);
	cr_assert_eq(SA.dial_addrs.lens[0], la[0]);
	cr_assert_eq(memcmp(SA.dial_addrs.b[0], addr_a[0], la[0]), 0);
	dcutr_dial_done(SB.d, eb->c, 0);
	dcutr_dial_done(SA.d, ea->c, 0);
	cr_assert_not(dcutr_busy(SB.d, eb->c));
	cr_assert_not(dcutr_busy(SA.d, ea->c));
	/* no addresses: CONNECT goes out empty and A's answer still arrives, but A cannot dial */
	dcutr_set_addrs(SB.d, NULL, NULL, 0);
	cr_assert_eq(dcutr_start(SB.d, eb->c), 0);
	cr_assert_eq(t_move(eb), 1);
	cr_assert_eq(t_move(ea), 1);
	cr_assert_eq(t_pump(NULL, NULL), 0);
	cr_assert_eq(SA.dials, 1, "A dialled without an address of B");
	teardown_pair();
}

Test(dcutr, relayed_connection_gone_mid_attempt_closes_its_record, .timeout = 30)
{
	setup_pair();
	cr_assert_eq(dcutr_start(SB.d, eb->c), 0);
	cr_assert_eq(t_move(eb), 1); /* CONNECT on its way; A has not answered */
	t_now_ms += 7;
	dcutr_conn_gone(SB.d, eb->c);
	cr_assert_eq(SB.done, 1);
	cr_assert_eq(SB.done_err, -ECONNRESET);
	cr_assert_eq(SB.n_log, 1);
	/* the attempt is closed, not left in progress without an end */
	cr_assert_eq(SB.log[0].outcome, DCUTR_FAILED);
	cr_assert_eq(SB.log[0].err, -ECONNRESET);
	cr_assert_eq(SB.log[0].end_ms - SB.log[0].start_ms, 7);
	cr_assert_eq(dcutr_stats(SB.d)->failed, 1);
	cr_assert_not(dcutr_busy(SB.d, eb->c));
	teardown_pair();
}
