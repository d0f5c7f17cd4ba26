// SPDX-License-Identifier: MIT
/*
 * Unit tests of engine/migrate/mig_flow.c. A simulator joins two flows by up to MIG_PATHS
 * lossless in-order byte queues ("paths"), moves random-sized chunks, and switches, loses and
 * re-adds paths mid-transfer; after every run both application streams must arrive exactly
 * (no byte lost, duplicated or reordered) and both ends must finish.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/migrate/mig_flow.h"
#include "natx/err.h"

enum { SIM_STEPS = 400000, SIM_TMP = 70000 };

struct sim_side {
	struct mig_flow f;
	uint8_t *src, *got;
	size_t len, sent, got_len;
	size_t rx_max; /* the other side's length: what may arrive here */
	bool eof;
};

struct sim_link {
	uint8_t *q;
	size_t len, cap;
	size_t arrived; /* the first bytes of q the receiver has (a host's receive buffer) */
};

struct sim {
	struct sim_side s[2];
	struct sim_link l[MIG_PATHS][2]; /* [path][sending side] */
	bool up[MIG_PATHS];
	unsigned int seed;
	unsigned int blocked; /* inputs that stopped at a frame waiting for another path */
	unsigned int slow_path; /* path delivered in small chunks (-1u: none) */
};

static unsigned int rnd(struct sim *s, unsigned int n)
{
	return (unsigned int)(rand_r(&s->seed) % n);
}

static void deliver(void *ctx, const uint8_t *buf, size_t len)
{
	struct sim_side *d = ctx;

	if (!len) {
		cr_assert_not(d->eof, "EOF delivered twice");
		d->eof = true;
		return;
	}
	cr_assert_not(d->eof, "bytes after EOF");
	cr_assert_leq(d->got_len + len, d->rx_max, "more bytes than were sent");
	memcpy(d->got + d->got_len, buf, len);
	d->got_len += len;
}

static void sim_init(struct sim *s, size_t len, size_t ring, unsigned int seed)
{
	uint8_t id[MIG_ID_LEN] = { 1, 2, 3 };

	memset(s, 0, sizeof(*s));
	s->seed = seed;
	s->slow_path = -1u;
	for (int i = 0; i < 2; i++) {
		struct sim_side *d = &s->s[i];

		cr_assert_eq(mig_flow_init(&d->f, id, ring), 0);
		d->len = len + (size_t)i * 777; /* the directions differ in length */
		d->src = malloc(d->len + 1);
		d->got = malloc(len + 777 + 1);
		d->rx_max = len + (size_t)(1 - i) * 777;
		for (size_t k = 0; k < d->len; k++) {
			d->src[k] = (uint8_t)(rand_r(&s->seed) >> 7);
		}
	}
	for (int p = 0; p < MIG_PATHS; p++) {
		for (int i = 0; i < 2; i++) {
			s->l[p][i].cap = 1 << 22;
			s->l[p][i].q = malloc(s->l[p][i].cap);
		}
	}
}

static void sim_free(struct sim *s)
{
	for (int i = 0; i < 2; i++) {
		mig_flow_release(&s->s[i].f);
		free(s->s[i].src);
		free(s->s[i].got);
	}
	for (int p = 0; p < MIG_PATHS; p++) {
		free(s->l[p][0].q);
		free(s->l[p][1].q);
	}
}

/* sim_path_up - both ends attach path @p, each learning the other's delivered offset. */
static void sim_path_up(struct sim *s, unsigned int p)
{
	cr_assert_eq(mig_path_up(&s->s[0].f, p, s->s[1].f.rx_off), 0);
	cr_assert_eq(mig_path_up(&s->s[1].f, p, s->s[0].f.rx_off), 0);
	s->up[p] = true;
}

/* sim_path_lose - path @p breaks: whatever was in flight on it is gone. */
static void sim_path_lose(struct sim *s, unsigned int p)
{
	s->l[p][0].len = s->l[p][1].len = 0;
	s->l[p][0].arrived = s->l[p][1].arrived = 0;
	s->up[p] = false;
	mig_path_lost(&s->s[0].f, p);
	mig_path_lost(&s->s[1].f, p);
}

static void sim_step(struct sim *s)
{
	static uint8_t tmp[SIM_TMP];

	for (int i = 0; i < 2; i++) {
		struct sim_side *d = &s->s[i];

		if (d->sent < d->len) {
			size_t want = 1 + rnd(s, 40000);

			if (want > d->len - d->sent) {
				want = d->len - d->sent;
			}
			d->sent += mig_flow_write(&d->f, d->src + d->sent, want);
		} else if (!d->f.tx_shut) {
			mig_flow_shutdown(&d->f);
		}
		if (!rnd(s, 50)) {
			mig_flow_tick(&d->f);
		}
	}
	for (unsigned int p = 0; p < MIG_PATHS; p++) {
		if (!s->up[p]) {
			continue;
		}
		for (int i = 0; i < 2; i++) {
			struct sim_link *l = &s->l[p][i];
			size_t n = mig_path_output(&s->s[i].f, p, tmp, 1 + rnd(s, SIM_TMP));

			cr_assert_leq(l->len + n, l->cap);
			memcpy(l->q + l->len, tmp, n);
			l->len += n;
		}
	}
	for (unsigned int p = 0; p < MIG_PATHS; p++) {
		if (!s->up[p]) {
			continue;
		}
		for (int i = 0; i < 2; i++) {
			struct sim_link *l = &s->l[p][1 - i];
			size_t used;
			int ret;

			l->arrived += 1 + rnd(s, p == s->slow_path ? 64 : 50000);
			if (l->arrived > l->len) {
				l->arrived = l->len;
			}
			if (!l->arrived) {
				continue;
			}
			ret = mig_path_input(&s->s[i].f, p, l->q, l->arrived, &used, deliver,
					     &s->s[i]);
			cr_assert_eq(ret, 0, "path %u side %d: input %d", p, i, ret);
			if (s->s[i].f.p[p].rx_blocked) {
				s->blocked++;
			}
			memmove(l->q, l->q + used, l->len - used);
			l->len -= used;
			l->arrived -= used;
		}
	}
}

static bool sim_done(const struct sim *s)
{
	return mig_flow_done(&s->s[0].f) && mig_flow_done(&s->s[1].f) && s->s[0].eof && s->s[1].eof;
}

static void sim_check(const struct sim *s)
{
	for (int i = 0; i < 2; i++) {
		const struct sim_side *rx = &s->s[1 - i], *tx = &s->s[i];

		cr_assert(rx->eof, "side %d never saw EOF", 1 - i);
		cr_assert_eq(rx->got_len, tx->len, "side %d got %zu of %zu bytes", 1 - i,
			     rx->got_len, tx->len);
		cr_assert_eq(memcmp(rx->got, tx->src, tx->len), 0, "side %d: bytes differ", 1 - i);
	}
}

/* sim_run - steps until both ends are done; @event(s, step) may change paths. */
static void sim_run(struct sim *s, void (*event)(struct sim *, int))
{
	int step;

	for (step = 0; step < SIM_STEPS && !sim_done(s); step++) {
		if (event) {
			event(s, step);
		}
		sim_step(s);
	}
	if (step == SIM_STEPS && getenv("MIG_DEBUG")) {
		for (int i = 0; i < 2; i++) {
			const struct mig_flow *f = &s->s[i].f;

			fprintf(stderr,
				"side %d: acked %lu end %lu shut %d active %d rx %lu fin %d\n", i,
				(unsigned long)f->tx_acked, (unsigned long)f->tx_end, f->tx_shut,
				f->active, (unsigned long)f->rx_off, f->rx_fin);
			for (int p = 0; p < MIG_PATHS; p++) {
				fprintf(stderr,
					"  path %d: state %d next %lu pmoved %d blocked %d ack %d nack %d moved %d link-out %zu up %d\n",
					p, f->p[p].state, (unsigned long)f->p[p].tx_next,
					f->p[p].peer_moved, f->p[p].rx_blocked, f->p[p].ack_due,
					f->p[p].nack_due, f->p[p].moved_due, s->l[p][i].len,
					s->up[p]);
			}
		}
	}
	cr_assert_lt(step, SIM_STEPS, "no progress: tx %zu/%zu rx %zu/%zu", s->s[0].sent,
		     s->s[0].len, s->s[1].got_len, s->s[0].len);
	sim_check(s);
}

Test(mig_flow, one_path_moves_both_directions_and_ends)
{
	struct sim s;

	sim_init(&s, 1 << 20, MIG_RING_MIN, 1);
	sim_path_up(&s, 0);
	sim_run(&s, NULL);
	cr_assert_eq(s.s[0].f.st.nacks_sent + s.s[1].f.st.nacks_sent, 0);
	cr_assert_eq(s.s[0].f.st.dup_bytes + s.s[1].f.st.dup_bytes, 0);
	sim_free(&s);
}

/* Clean switch: path 1 comes up and both ends switch while path 0 still drains slowly. */
static void ev_switch(struct sim *s, int step)
{
	if (step == 20) {
		s->slow_path = 0;
		sim_path_up(s, 1);
		cr_assert_eq(mig_flow_switch(&s->s[0].f, 1), 0);
		cr_assert_eq(mig_flow_switch(&s->s[1].f, 1), 0);
	}
}

Test(mig_flow, clean_switch_waits_for_the_old_path)
{
	struct sim s;

	sim_init(&s, 2 << 20, MIG_RING_MIN, 2);
	sim_path_up(&s, 0);
	sim_run(&s, ev_switch);
	cr_assert_gt(s.blocked, 0, "the new path never had to wait: the test did not test it");
	cr_assert_eq(s.s[0].f.st.moves, 1);
	cr_assert_eq(s.s[0].f.st.nacks_sent + s.s[1].f.st.nacks_sent, 0,
		     "a clean switch needs no retransmission");
	cr_assert(mig_path_finished(&s.s[0].f, 0) && mig_path_finished(&s.s[1].f, 0),
		  "the old path is finished on both ends");
	sim_free(&s);
}

/* The active path dies with bytes in flight; another comes up a while later. */
static void ev_lose(struct sim *s, int step)
{
	if (step == 15) {
		cr_assert_gt(s->l[0][0].len + s->l[0][1].len, 0, "nothing in flight to lose");
		sim_path_lose(s, 0);
	}
	if (step == 40) {
		sim_path_up(s, 1);
	}
}

Test(mig_flow, lost_path_is_repaired_on_the_next)
{
	struct sim s;

	sim_init(&s, 2 << 20, MIG_RING_MIN, 3);
	sim_path_up(&s, 0);
	s.slow_path = 0; /* so that bytes are in flight when it breaks */
	sim_run(&s, ev_lose);
	cr_assert_gt(s.s[0].f.st.resent_bytes + s.s[1].f.st.resent_bytes, 0);
	sim_free(&s);
}

/* Switch to path 1, then path 1 dies while path 0 is still draining: the gap is NACKed. */
static void ev_switch_then_lose_new(struct sim *s, int step)
{
	ev_switch(s, step);
	if (step == 30) {
		sim_path_lose(s, 1);
	}
	if (step == 60) {
		/* The old path finishes draining, then a fresh path 1 carries the rest. */
		s->slow_path = -1u;
	}
	if (step == 200) {
		if (s->up[0]) {
			sim_path_lose(s, 0);
		}
		sim_path_up(s, 1);
	}
}

Test(mig_flow, losing_the_new_path_mid_switch)
{
	struct sim s;

	sim_init(&s, 3 << 20, MIG_RING_MIN, 4);
	sim_path_up(&s, 0);
	sim_run(&s, ev_switch_then_lose_new);
	sim_free(&s);
}

/* Without any path the writer is held back by the ring: back-pressure, not buffering. */
Test(mig_flow, no_path_means_backpressure)
{
	struct mig_flow f;
	uint8_t id[MIG_ID_LEN] = { 0 }, buf[4096] = { 0 };
	size_t total = 0, n;

	cr_assert_eq(mig_flow_init(&f, id, 10000), 0);
	while ((n = mig_flow_write(&f, buf, sizeof(buf))) > 0) {
		total += n;
		cr_assert_leq(total, 10000);
	}
	cr_assert_eq(total, 10000);
	cr_assert_eq(mig_path_output(&f, 0, buf, sizeof(buf)), 0, "no path up, nothing to send");
	mig_flow_release(&f);
}

/* Random path churn: switches, losses and re-adds at random steps, 40 seeds. */
static void ev_random(struct sim *s, int step)
{
	unsigned int p, q, r = rnd(s, 1000);

	(void)step;
	if (r < 40) {
		/* A new path on a free index, switched to by both ends. */
		for (p = 0; p < MIG_PATHS && s->up[p]; p++) {
		}
		if (p < MIG_PATHS) {
			sim_path_up(s, p);
			mig_flow_switch(&s->s[0].f, p);
			mig_flow_switch(&s->s[1].f, p);
		}
	} else if (r < 70) {
		/* Lose a path, but keep at least one alive or about to come back. */
		p = rnd(s, MIG_PATHS);
		for (q = 0; q < MIG_PATHS && (q == p || !s->up[q]); q++) {
		}
		if (s->up[p] && q < MIG_PATHS) {
			sim_path_lose(s, p);
		}
	} else if (r < 110) {
		s->slow_path = rnd(s, 3) ? -1u : rnd(s, MIG_PATHS);
	}
	/* A path both ends finished with is closed, freeing its index. */
	for (p = 0; p < MIG_PATHS; p++) {
		if (s->up[p] && mig_path_finished(&s->s[0].f, p) &&
		    mig_path_finished(&s->s[1].f, p) && !s->l[p][0].len && !s->l[p][1].len) {
			sim_path_lose(s, p);
		}
	}
}

Test(mig_flow, random_path_churn_keeps_the_stream_exact)
{
	uint64_t moves = 0, resent = 0;

	for (unsigned int seed = 100; seed < 140; seed++) {
		struct sim s;

		sim_init(&s, 256 * 1024 + seed * 1000, MIG_RING_MIN, seed);
		sim_path_up(&s, 0);
		sim_run(&s, ev_random);
		moves += s.s[0].f.st.moves;
		resent += s.s[0].f.st.resent_bytes + s.s[1].f.st.resent_bytes;
		sim_free(&s);
	}
	cr_assert_gt(moves, 10, "the churn must actually switch paths (%lu)", (unsigned long)moves);
	cr_assert_gt(resent, 0, "the churn must actually lose bytes in flight");
}

/* A peer that breaks the protocol is told apart from one that just sends bytes. */
Test(mig_flow, protocol_violations)
{
	struct mig_flow f;
	uint8_t id[MIG_ID_LEN] = { 0 }, buf[64], one = 'x';
	struct mig_frame fr = { 0 };
	struct sim_side d = { .rx_max = 100, .got = malloc(101) };
	size_t used;
	int n;

	cr_assert_eq(mig_flow_init(&f, id, 1000), 0);
	cr_assert_eq(mig_path_up(&f, 0, 1), -NATX_E_PROTO, "peer acked bytes never written");
	cr_assert_eq(mig_path_up(&f, 0, 0), 0);
	cr_assert_eq(mig_path_up(&f, 0, 0), -EINVAL, "already up");
	cr_assert_eq(mig_flow_switch(&f, 0), -EINVAL, "already active");
	cr_assert_eq(mig_flow_switch(&f, 1), -EINVAL, "not up");

	fr.type = MIG_T_ACK;
	fr.off = 5;
	n = mig_frame_encode(&fr, buf, sizeof(buf));
	cr_assert_eq(mig_path_input(&f, 0, buf, (size_t)n, &used, deliver, &d), -NATX_E_PROTO,
		     "ACK beyond what was written");

	fr.type = MIG_T_FIN;
	fr.off = 0;
	n = mig_frame_encode(&fr, buf, sizeof(buf));
	cr_assert_eq(mig_path_input(&f, 0, buf, (size_t)n, &used, deliver, &d), 0);
	cr_assert(d.eof, "FIN at offset 0 is an empty stream's EOF");
	fr.off = 3;
	n = mig_frame_encode(&fr, buf, sizeof(buf));
	cr_assert_eq(mig_path_input(&f, 0, buf, (size_t)n, &used, deliver, &d), -NATX_E_PROTO,
		     "FIN moved");

	fr.type = MIG_T_DATA;
	fr.off = 0;
	fr.len = 1;
	fr.data = &one;
	n = mig_frame_encode(&fr, buf, sizeof(buf));
	cr_assert_eq(mig_path_input(&f, 0, buf, (size_t)n, &used, deliver, &d), -NATX_E_PROTO,
		     "data past FIN");

	fr.type = MIG_T_OPEN;
	n = mig_frame_encode(&fr, buf, sizeof(buf));
	cr_assert_eq(mig_path_input(&f, 0, buf, (size_t)n, &used, deliver, &d), -NATX_E_PROTO,
		     "OPEN inside a path");

	fr.type = MIG_T_RESET;
	fr.reason = MIG_R_ABORT;
	n = mig_frame_encode(&fr, buf, sizeof(buf));
	cr_assert_eq(mig_path_input(&f, 0, buf, (size_t)n, &used, deliver, &d), -ECONNRESET);
	mig_flow_release(&f);
	free(d.got);
}

Test(mig_flow, data_after_moved_is_refused)
{
	struct mig_flow f;
	uint8_t id[MIG_ID_LEN] = { 0 }, buf[64], one = 'x';
	struct mig_frame fr = { .type = MIG_T_MOVED };
	struct sim_side d = { .rx_max = 100, .got = malloc(101) };
	size_t used, n;

	cr_assert_eq(mig_flow_init(&f, id, 1000), 0);
	cr_assert_eq(mig_path_up(&f, 0, 0), 0);
	n = (size_t)mig_frame_encode(&fr, buf, sizeof(buf));
	fr.type = MIG_T_DATA;
	fr.len = 1;
	fr.data = &one;
	n += (size_t)mig_frame_encode(&fr, buf + n, sizeof(buf) - n);
	cr_assert_eq(mig_path_input(&f, 0, buf, n, &used, deliver, &d), -NATX_E_PROTO);
	cr_assert_eq(used, MIG_CTRL_LEN, "the MOVED frame was consumed, the DATA was not");
	cr_assert_eq(d.got_len, 0);
	mig_flow_release(&f);
	free(d.got);
}

/* The same bytes arriving twice (a repair after a lost path, or both paths) are delivered once. */
Test(mig_flow, duplicates_and_overlaps_are_delivered_once)
{
	struct mig_flow f;
	uint8_t id[MIG_ID_LEN] = { 0 }, buf[256];
	struct sim_side d = { .rx_max = 100, .got = malloc(101) };
	struct mig_frame fr = { .type = MIG_T_DATA };
	size_t used, n = 0;
	int ret;

	cr_assert_eq(mig_flow_init(&f, id, 1000), 0);
	cr_assert_eq(mig_path_up(&f, 0, 0), 0);
	cr_assert_eq(mig_path_up(&f, 1, 0), 0);
	fr.off = 0, fr.len = 3, fr.data = (const uint8_t *)"abc";
	n += (size_t)mig_frame_encode(&fr, buf + n, sizeof(buf) - n);
	n += (size_t)mig_frame_encode(&fr, buf + n, sizeof(buf) - n);
	fr.off = 1, fr.len = 2, fr.data = (const uint8_t *)"bc";
	n += (size_t)mig_frame_encode(&fr, buf + n, sizeof(buf) - n);
	fr.off = 1, fr.len = 3, fr.data = (const uint8_t *)"bcd";
	n += (size_t)mig_frame_encode(&fr, buf + n, sizeof(buf) - n);
	ret = mig_path_input(&f, 0, buf, n, &used, deliver, &d);
	cr_assert_eq(ret, 0);
	cr_assert_eq(used, n);
	cr_assert_eq(d.got_len, 4);
	cr_assert_eq(memcmp(d.got, "abcd", 4), 0);
	cr_assert_eq(f.st.dup_bytes, 3 + 2 + 2);
	/* The same bytes on the other path change nothing either. */
	ret = mig_path_input(&f, 1, buf, n, &used, deliver, &d);
	cr_assert_eq(ret, 0);
	cr_assert_eq(d.got_len, 4);
	mig_flow_release(&f);
	free(d.got);
}
