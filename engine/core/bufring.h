/* SPDX-License-Identifier: MIT */
/*
 * A shard's provided buffer ring and the state machine of every buffer in it
 * (style.md rule 7, DESIGN.md "Data plane rules"):
 *
 *   BUF_KERNEL --recv CQE--> BUF_QUEUED --send SQE--> BUF_SENDING --send CQE, partial--+
 *       ^                        |  ^                      |                          |
 *       |                        |  +----------------------+--------------------------+
 *       |                        |                         | send CQE, all sent
 *       +------- recycle --------+-------------------------+ (plain send)
 *       |                                                  | (zero-copy send)
 *       +------- NOTIF CQE ------- BUF_ZC_WAIT <-----------+
 *
 * A buffer goes back to the kernel only from BUF_QUEUED (dropped: flow closed or datagram
 * discarded), from BUF_SENDING on a final send completion, or from BUF_ZC_WAIT on the
 * zero-copy notification. Every transition checks the current state and returns -EINVAL
 * when the engine asks for an illegal one, so a bookkeeping bug shows up as an error, not
 * as a buffer handed to the kernel twice.
 */
#ifndef NATX_ENGINE_BUFRING_H
#define NATX_ENGINE_BUFRING_H

#include <liburing.h>
#include <stdbool.h>
#include <stdint.h>

enum buf_state { BUF_KERNEL = 0, BUF_QUEUED, BUF_SENDING, BUF_ZC_WAIT };

enum { BUF_NONE = 0xffff };

struct buf_meta {
	uint32_t off; /* first byte not yet sent */
	uint32_t len; /* end of the data in the buffer */
	uint16_t next; /* next buffer in a flow's send queue, BUF_NONE ends it */
	uint8_t state; /* enum buf_state */
	uint8_t zc_refs; /* zero-copy notifications still to come */
};

struct bufring {
	struct io_uring_buf_ring *br; /* shared with the kernel; NULL when not registered */
	uint8_t *base; /* buf_count * buf_size bytes */
	struct buf_meta *meta; /* one per buffer */
	uint32_t buf_size;
	uint32_t count; /* power of two */
	uint32_t in_kernel; /* buffers currently in BUF_KERNEL */
	int pending; /* recycled since the last commit */
	uint16_t bgid;
	size_t ring_bytes;
	size_t base_bytes;
};

/*
 * bufring_init - allocate @count buffers of @size bytes (both powers of two), all in
 * BUF_KERNEL. If @ring is not NULL the ring is registered with it as group @bgid and every
 * buffer is added; with @ring NULL only the state machine exists (unit tests). Returns 0 or
 * -errno. bufring_cleanup() is always safe after a zeroed struct.
 */
int bufring_init(struct bufring *b, struct io_uring *ring, uint16_t bgid, uint32_t size,
		 uint32_t count);

/* bufring_cleanup - unregister (if @ring) and free. */
void bufring_cleanup(struct bufring *b, struct io_uring *ring);

/* bufring_data - address of buffer @bid. */
static inline uint8_t *bufring_data(const struct bufring *b, uint16_t bid)
{
	return b->base + (size_t)bid * b->buf_size;
}

/* bufring_take - a recv CQE delivered @len bytes in @bid: BUF_KERNEL -> BUF_QUEUED. */
int bufring_take(struct bufring *b, uint16_t bid, uint32_t off, uint32_t len);

/* bufring_send_start - a send of @bid is submitted: BUF_QUEUED -> BUF_SENDING. */
int bufring_send_start(struct bufring *b, uint16_t bid);

/*
 * bufring_send_done - a send of @bid completed with @sent bytes; @notif: a zero-copy
 * notification for this send is still to come. Partial: back to BUF_QUEUED, *done = false.
 * Complete: *done = true and the buffer is recycled, or moves to BUF_ZC_WAIT while
 * notifications are outstanding.
 */
int bufring_send_done(struct bufring *b, uint16_t bid, uint32_t sent, bool notif, bool *done);

/*
 * bufring_zc_notif - a zero-copy notification for @bid arrived. The last one recycles a
 * buffer in BUF_ZC_WAIT; a buffer still queued/sending just counts it down.
 */
int bufring_zc_notif(struct bufring *b, uint16_t bid);

/*
 * bufring_drop - discard a queued buffer or one whose send failed: BUF_QUEUED/SENDING ->
 * BUF_KERNEL, or BUF_ZC_WAIT while zero-copy notifications are outstanding.
 */
int bufring_drop(struct bufring *b, uint16_t bid);

/* bufring_commit - publish recycled buffers to the kernel (one tail update per batch). */
void bufring_commit(struct bufring *b);

#endif
