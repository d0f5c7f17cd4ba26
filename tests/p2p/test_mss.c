// SPDX-License-Identifier: MIT
/*
 * multistream-select tests: exact bytes from multiformats/multistream-select README (as listed
 * in shared/reference/libp2p.md §1), dialer/listener in one process, "na" fallback, "ls",
 * pipelined (lazy) data, byte-at-a-time input and malformed input.
 */
#include <criterion/criterion.h>
#include <string.h>

#include "natx/err.h"
#include "mss.h"
#include "p2p/t_p2p.h"

static const char *const noise_only[] = { "/noise" };

Test(mss, dialer_start_exact_bytes)
{
	uint8_t buf[64], want[64];
	struct mss m;
	struct wr w;
	int n = t_unhex(want, sizeof(want),
			"132f6d756c746973747265616d2f312e302e300a"
			"072f6e6f6973650a");

	mss_dialer_init(&m, noise_only, 1);
	wr_init(&w, buf, sizeof(buf));
	cr_assert_eq(mss_dialer_start(&m, &w), 0);
	cr_assert_eq(w.p - buf, n);
	cr_assert_arr_eq(buf, want, (size_t)n);
	wr_init(&w, buf, 10);
	cr_assert_eq(mss_dialer_start(&m, &w), -NATX_E_TOO_BIG);
	cr_assert_eq(w.p, buf); /* nothing partial */
}

/* pump - move bytes between the two sides until neither makes progress. */
static void pump(struct mss *d, struct mss *l, uint8_t *d2l, size_t *d2l_len, int *dr, int *lr,
		 bool one_byte)
{
	uint8_t l2d[512];
	size_t l2d_len = 0, used;
	struct wr w;

	for (int iter = 0; iter < 1000 && (*d2l_len || l2d_len); iter++) {
		if (*d2l_len && *lr == 0) {
			size_t feed = one_byte ? 1 : *d2l_len;
			static uint8_t acc[512];
			static size_t acc_len;

			memcpy(acc + acc_len, d2l, feed);
			acc_len += feed;
			memmove(d2l, d2l + feed, *d2l_len - feed);
			*d2l_len -= feed;
			wr_init(&w, l2d + l2d_len, sizeof(l2d) - l2d_len);
			*lr = mss_consume(l, acc, acc_len, &used, &w);
			l2d_len = (size_t)(w.p - l2d);
			memmove(acc, acc + used, acc_len - used);
			acc_len -= used;
			if (*lr == MSS_DONE) {
				/* the rest is application data for the listener */
				memcpy(d2l, acc, acc_len);
				*d2l_len = acc_len;
				acc_len = 0;
				break;
			}
		}
		if (l2d_len && *dr == 0) {
			wr_init(&w, d2l + *d2l_len, 512 - *d2l_len);
			*dr = mss_consume(d, l2d, l2d_len, &used, &w);
			*d2l_len = (size_t)(w.p - d2l);
			memmove(l2d, l2d + used, l2d_len - used);
			l2d_len -= used;
		}
		if (*lr < 0 || *dr < 0) {
			break;
		}
	}
}

Test(mss, negotiates_with_na_fallback_and_pipelined_data)
{
	static const char *const want[] = { "/unknown/1.0.0", "/yamux/1.0.0" };
	static const char *const have[] = { "/mplex/6.7.0", "/yamux/1.0.0" };

	for (int one_byte = 0; one_byte < 2; one_byte++) {
		uint8_t d2l[512];
		size_t d2l_len;
		struct mss d, l;
		struct wr w;
		int dr = 0, lr = 0;

		mss_dialer_init(&d, want, 2);
		mss_listener_init(&l, have, 2);
		wr_init(&w, d2l, sizeof(d2l));
		cr_assert_eq(mss_dialer_start(&d, &w), 0);
		d2l_len = (size_t)(w.p - d2l);
		pump(&d, &l, d2l, &d2l_len, &dr, &lr, one_byte);
		cr_assert_eq(lr, MSS_DONE);
		cr_assert_eq(l.selected, 1);
		d2l_len = 0;
		/* the listener's echo is still in flight to the dialer: run once more */
		{
			uint8_t echo[64];
			size_t used;
			struct wr w2;

			wr_init(&w2, echo, sizeof(echo));
			cr_assert_eq(mss_write_msg(&w2, "/yamux/1.0.0"), 0);
			wr_init(&w, d2l, sizeof(d2l));
			cr_assert_eq(mss_consume(&d, echo, (size_t)(w2.p - echo), &used, &w),
				     MSS_DONE);
			cr_assert_eq(d.selected, 1);
		}
	}
}

Test(mss, listener_handles_header_proposal_and_data_in_one_buffer)
{
	static const char *const have[] = { "/ipfs/ping/1.0.0" };
	uint8_t in[128], out[128];
	size_t used;
	struct mss l;
	struct wr w;

	wr_init(&w, in, sizeof(in));
	mss_write_msg(&w, MSS_HEADER);
	mss_write_msg(&w, "/ipfs/ping/1.0.0");
	wr_bytes(&w, "PINGDATA", 8);
	mss_listener_init(&l, have, 1);
	struct wr o;

	wr_init(&o, out, sizeof(out));
	cr_assert_eq(mss_consume(&l, in, (size_t)(w.p - in), &used, &o), MSS_DONE);
	cr_assert_eq((size_t)(w.p - in) - used, 8);
	cr_assert_arr_eq(in + used, "PINGDATA", 8);
	/* answer: header then echo */
	cr_assert_eq(o.p - out, 20 + 18);
	cr_assert_eq(out[0], 0x13);
	cr_assert_eq(out[20], 17);
}

Test(mss, listener_answers_ls_and_na)
{
	static const char *const have[] = { "/a", "/bb" };
	uint8_t in[64], out[128], want[64];
	size_t used;
	struct mss l;
	struct wr w, o;

	wr_init(&w, in, sizeof(in));
	mss_write_msg(&w, MSS_HEADER);
	mss_write_msg(&w, "ls");
	mss_write_msg(&w, "/c");
	mss_listener_init(&l, have, 2);
	wr_init(&o, out, sizeof(out));
	cr_assert_eq(mss_consume(&l, in, (size_t)(w.p - in), &used, &o), 0);
	cr_assert_eq(used, (size_t)(w.p - in));
	/* header, then ls answer: 0a { 03 "/a\n" 04 "/bb\n" "\n" }, then na */
	int n = t_unhex(want, sizeof(want),
			"0a032f610a042f62620a0a"
			"036e610a");

	cr_assert_eq(o.p - out, 20 + n);
	cr_assert_arr_eq(out + 20, want, (size_t)n);
}

Test(mss, dialer_fails_when_everything_refused)
{
	uint8_t in[64], out[64];
	size_t used;
	struct mss d;
	struct wr w, o;

	mss_dialer_init(&d, noise_only, 1);
	wr_init(&o, out, sizeof(out));
	mss_dialer_start(&d, &o);
	wr_init(&w, in, sizeof(in));
	mss_write_msg(&w, MSS_HEADER);
	mss_write_msg(&w, MSS_NA);
	cr_assert_eq(mss_consume(&d, in, (size_t)(w.p - in), &used, &o), -NATX_E_UNAVAILABLE);
}

Test(mss, rejects_malformed)
{
	static const struct {
		const char *hex;
		int err;
	} bad[] = {
		/* header without newline */
		{ "132f6d756c746973747265616d2f312e302e3020", -NATX_E_PROTO },
		/* wrong first message */
		{ "072f6e6f6973650a", -NATX_E_PROTO },
		/* length 0 */
		{ "00", -NATX_E_PROTO },
		/* length 1025 (0x81 0x08) */
		{ "8108", -NATX_E_TOO_BIG },
		/* over-long varint */
		{ "ffffffffffffffffff01", -NATX_E_PROTO },
	};
	uint8_t in[64], out[64];

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int n = t_unhex(in, sizeof(in), bad[i].hex);
		size_t used;
		struct mss l;
		struct wr o;

		mss_listener_init(&l, noise_only, 1);
		wr_init(&o, out, sizeof(out));
		cr_assert_eq(mss_consume(&l, in, (size_t)n, &used, &o), bad[i].err, "case %zu", i);
		cr_assert_eq(o.p, out);
	}
}

Test(mss, listener_gives_up_after_too_many_rounds)
{
	uint8_t in[2048], out[2048];
	size_t used;
	struct mss l;
	struct wr w, o;
	int r;

	wr_init(&w, in, sizeof(in));
	mss_write_msg(&w, MSS_HEADER);
	for (int i = 0; i < MSS_MAX_ROUNDS + 1; i++) {
		mss_write_msg(&w, "/nope");
	}
	mss_listener_init(&l, noise_only, 1);
	wr_init(&o, out, sizeof(out));
	r = mss_consume(&l, in, (size_t)(w.p - in), &used, &o);
	cr_assert_eq(r, -NATX_E_PROTO);
}
