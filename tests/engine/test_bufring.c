// SPDX-License-Identifier: MIT
/* Buffer lifecycle: the state machine of bufring.h, then the same against a real ring. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/bufring.h"

Test(bufring, plain_send_lifecycle, .timeout = 5)
{
	struct bufring b;
	bool done;

	cr_assert_eq(bufring_init(&b, NULL, 1, 4096, 16), 0);
	cr_assert_eq(b.in_kernel, 16);
	cr_assert_eq(bufring_take(&b, 3, 0, 1000), 0);
	cr_assert_eq(b.meta[3].state, BUF_QUEUED);
	cr_assert_eq(b.in_kernel, 15);
	cr_assert_eq(bufring_send_start(&b, 3), 0);
	cr_assert_eq(b.meta[3].state, BUF_SENDING);
	/* A short send goes back to QUEUED with the offset advanced. */
	cr_assert_eq(bufring_send_done(&b, 3, 400, false, &done), 0);
	cr_assert_not(done);
	cr_assert_eq(b.meta[3].state, BUF_QUEUED);
	cr_assert_eq(b.meta[3].off, 400);
	cr_assert_eq(bufring_send_start(&b, 3), 0);
	cr_assert_eq(bufring_send_done(&b, 3, 600, false, &done), 0);
	cr_assert(done);
	cr_assert_eq(b.meta[3].state, BUF_KERNEL);
	cr_assert_eq(b.in_kernel, 16);
	bufring_cleanup(&b, NULL);
	bufring_cleanup(&b, NULL);
}

Test(bufring, zero_copy_waits_for_every_notification, .timeout = 5)
{
	struct bufring b;
	bool done;

	cr_assert_eq(bufring_init(&b, NULL, 1, 4096, 16), 0);
	cr_assert_eq(bufring_take(&b, 5, 0, 100), 0);
	cr_assert_eq(bufring_send_start(&b, 5), 0);
	cr_assert_eq(bufring_send_done(&b, 5, 60, true, &done), 0); /* partial, notif pending */
	cr_assert_not(done);
	cr_assert_eq(bufring_send_start(&b, 5), 0);
	cr_assert_eq(bufring_send_done(&b, 5, 40, true, &done), 0);
	cr_assert(done);
	cr_assert_eq(b.meta[5].state, BUF_ZC_WAIT);
	cr_assert_eq(bufring_zc_notif(&b, 5), 0);
	cr_assert_eq(b.meta[5].state, BUF_ZC_WAIT, "recycled before the last notification");
	cr_assert_eq(bufring_zc_notif(&b, 5), 0);
	cr_assert_eq(b.meta[5].state, BUF_KERNEL);
	cr_assert_eq(bufring_zc_notif(&b, 5), -EINVAL);
	cr_assert_eq(b.in_kernel, 16);
	bufring_cleanup(&b, NULL);
}

Test(bufring, illegal_transitions_are_refused, .timeout = 5)
{
	struct bufring b;
	bool done;

	cr_assert_eq(bufring_init(&b, NULL, 1, 4096, 16), 0);
	cr_assert_eq(bufring_send_start(&b, 1), -EINVAL); /* still in the kernel */
	cr_assert_eq(bufring_drop(&b, 1), -EINVAL); /* double recycle */
	cr_assert_eq(bufring_zc_notif(&b, 1), -EINVAL);
	cr_assert_eq(bufring_take(&b, 16, 0, 1), -EINVAL); /* out of range */
	cr_assert_eq(bufring_take(&b, 1, 0, 4097), -EINVAL); /* longer than the buffer */
	cr_assert_eq(bufring_take(&b, 1, 10, 5), -EINVAL); /* off > len */
	cr_assert_eq(bufring_take(&b, 1, 0, 10), 0);
	cr_assert_eq(bufring_take(&b, 1, 0, 10), -EINVAL); /* delivered twice */
	cr_assert_eq(bufring_send_done(&b, 1, 10, false, &done), -EINVAL); /* not sending */
	cr_assert_eq(bufring_send_start(&b, 1), 0);
	cr_assert_eq(bufring_send_start(&b, 1), -EINVAL);
	cr_assert_eq(bufring_send_done(&b, 1, 11, false, &done), -EINVAL); /* more than queued */
	cr_assert_eq(bufring_drop(&b, 1), 0); /* failed send */
	cr_assert_eq(b.meta[1].state, BUF_KERNEL);
	cr_assert_eq(b.in_kernel, 16);
	cr_assert_eq(bufring_init(&b, NULL, 1, 4096, 12), -EINVAL);
	cr_assert_eq(bufring_init(&b, NULL, 1, 3000, 16), -EINVAL);
}

Test(bufring, drop_of_zero_copy_buffer_waits_for_notification, .timeout = 5)
{
	struct bufring b;
	bool done;

	cr_assert_eq(bufring_init(&b, NULL, 1, 4096, 16), 0);
	cr_assert_eq(bufring_take(&b, 2, 0, 100), 0);
	cr_assert_eq(bufring_send_start(&b, 2), 0);
	cr_assert_eq(bufring_send_done(&b, 2, 50, true, &done), 0);
	cr_assert_eq(bufring_drop(&b, 2), 0); /* flow closed mid-buffer */
	cr_assert_eq(b.meta[2].state, BUF_ZC_WAIT);
	cr_assert_eq(bufring_zc_notif(&b, 2), 0);
	cr_assert_eq(b.meta[2].state, BUF_KERNEL);
	bufring_cleanup(&b, NULL);
}

Test(bufring, kernel_hands_out_and_takes_back_buffers, .timeout = 10)
{
	struct io_uring ring;
	struct bufring b;
	int sv[2];

	if (io_uring_queue_init(8, &ring, 0)) {
		cr_skip_test("io_uring unavailable");
	}
	cr_assert_eq(bufring_init(&b, &ring, 7, 4096, 4), 0);
	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	int last_bid = -1;

	/* Five receives through four buffers: the fifth only works with a recycled one. */
	for (int round = 0; round < 5; round++) {
		struct io_uring_sqe *sqe = io_uring_get_sqe(&ring);
		struct io_uring_cqe *cqe;
		char msg[16];
		uint16_t bid;
		bool done;

		snprintf(msg, sizeof(msg), "hello %d", round);
		cr_assert_eq(write(sv[1], msg, strlen(msg)), (ssize_t)strlen(msg));
		io_uring_prep_recv(sqe, sv[0], NULL, 0, 0);
		sqe->flags |= IOSQE_BUFFER_SELECT;
		sqe->buf_group = 7;
		cr_assert_eq(io_uring_submit_and_wait(&ring, 1), 1);
		cr_assert_eq(io_uring_peek_cqe(&ring, &cqe), 0);
		cr_assert_eq(cqe->res, (int)strlen(msg));
		cr_assert(cqe->flags & IORING_CQE_F_BUFFER);
		bid = (uint16_t)(cqe->flags >> IORING_CQE_BUFFER_SHIFT);
		io_uring_cqe_seen(&ring, cqe);
		cr_assert_eq(memcmp(bufring_data(&b, bid), msg, strlen(msg)), 0);
		cr_assert_eq(bufring_take(&b, bid, 0, (uint32_t)strlen(msg)), 0);
		if (round == 4) {
			cr_assert_eq(bid, last_bid,
				     "the fifth recv must reuse the recycled buffer");
		}
		last_bid = bid;
		if (round < 3) {
			continue; /* keep three buffers out */
		}
		cr_assert_eq(bufring_send_start(&b, bid), 0);
		cr_assert_eq(bufring_send_done(&b, bid, (uint32_t)strlen(msg), false, &done), 0);
		bufring_commit(&b);
	}
	cr_assert_eq(b.in_kernel, 1); /* three held, the recycled one is back */
	close(sv[0]);
	close(sv[1]);
	bufring_cleanup(&b, &ring);
	io_uring_queue_exit(&ring);
}
