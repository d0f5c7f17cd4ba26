// SPDX-License-Identifier: MIT
/* Provided buffer ring and buffer state machine (see bufring.h). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "bufring.h"

/* bufring_recycle - hand @bid back to the kernel (added now, published by commit). */
static void bufring_recycle(struct bufring *b, uint16_t bid)
{
	b->meta[bid].state = BUF_KERNEL;
	b->meta[bid].next = BUF_NONE;
	b->meta[bid].zc_refs = 0;
	b->in_kernel++;
	if (b->br) {
		io_uring_buf_ring_add(b->br, bufring_data(b, bid), b->buf_size, bid,
				      io_uring_buf_ring_mask(b->count), b->pending++);
	}
}

int bufring_init(struct bufring *b, struct io_uring *ring, uint16_t bgid, uint32_t size,
		 uint32_t count)
{
	int ret;

	memset(b, 0, sizeof(*b));
	if (!count || (count & (count - 1)) || count > 32768 || !size || (size & (size - 1))) {
		return -EINVAL;
	}
	b->buf_size = size;
	b->count = count;
	b->bgid = bgid;
	b->meta = calloc(count, sizeof(*b->meta));
	if (!b->meta) {
		return -ENOMEM;
	}
	b->base_bytes = (size_t)size * count;
	b->base = mmap(NULL, b->base_bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1,
		       0);
	if (b->base == MAP_FAILED) {
		b->base = NULL;
		ret = -ENOMEM;
		goto free_meta;
	}
	if (ring) {
		struct io_uring_buf_reg reg = { 0 };
		void *mem;

		b->ring_bytes = count * sizeof(struct io_uring_buf);
		mem = mmap(NULL, b->ring_bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
			   -1, 0);
		if (mem == MAP_FAILED) {
			ret = -ENOMEM;
			goto unmap_base;
		}
		b->br = mem;
		io_uring_buf_ring_init(b->br);
		reg.ring_addr = (unsigned long)b->br;
		reg.ring_entries = count;
		reg.bgid = bgid;
		ret = io_uring_register_buf_ring(ring, &reg, 0);
		if (ret) {
			goto unmap_ring;
		}
	}
	for (uint32_t i = 0; i < count; i++) {
		bufring_recycle(b, (uint16_t)i);
	}
	bufring_commit(b);
	return 0;

unmap_ring:
	munmap(b->br, b->ring_bytes);
	b->br = NULL;
unmap_base:
	munmap(b->base, b->base_bytes);
	b->base = NULL;
free_meta:
	free(b->meta);
	b->meta = NULL;
	return ret;
}

void bufring_cleanup(struct bufring *b, struct io_uring *ring)
{
	if (b->br) {
		if (ring) {
			io_uring_unregister_buf_ring(ring, b->bgid);
		}
		munmap(b->br, b->ring_bytes);
		b->br = NULL;
	}
	if (b->base) {
		munmap(b->base, b->base_bytes);
		b->base = NULL;
	}
	free(b->meta);
	b->meta = NULL;
}

int bufring_take(struct bufring *b, uint16_t bid, uint32_t off, uint32_t len)
{
	if (bid >= b->count || b->meta[bid].state != BUF_KERNEL || off > len || len > b->buf_size) {
		return -EINVAL;
	}
	b->meta[bid].state = BUF_QUEUED;
	b->meta[bid].off = off;
	b->meta[bid].len = len;
	b->meta[bid].next = BUF_NONE;
	b->meta[bid].zc_refs = 0;
	b->in_kernel--;
	return 0;
}

int bufring_send_start(struct bufring *b, uint16_t bid)
{
	if (bid >= b->count || b->meta[bid].state != BUF_QUEUED) {
		return -EINVAL;
	}
	b->meta[bid].state = BUF_SENDING;
	return 0;
}

int bufring_send_done(struct bufring *b, uint16_t bid, uint32_t sent, bool notif, bool *done)
{
	struct buf_meta *m;

	if (bid >= b->count || b->meta[bid].state != BUF_SENDING) {
		return -EINVAL;
	}
	m = &b->meta[bid];
	if (sent > m->len - m->off) {
		return -EINVAL;
	}
	m->off += sent;
	m->zc_refs += notif;
	*done = m->off == m->len;
	if (!*done) {
		m->state = BUF_QUEUED;
	} else if (m->zc_refs) {
		m->state = BUF_ZC_WAIT;
	} else {
		bufring_recycle(b, bid);
	}
	return 0;
}

int bufring_zc_notif(struct bufring *b, uint16_t bid)
{
	if (bid >= b->count || !b->meta[bid].zc_refs || b->meta[bid].state == BUF_KERNEL) {
		return -EINVAL;
	}
	if (!--b->meta[bid].zc_refs && b->meta[bid].state == BUF_ZC_WAIT) {
		bufring_recycle(b, bid);
	}
	return 0;
}

int bufring_drop(struct bufring *b, uint16_t bid)
{
	if (bid >= b->count ||
	    (b->meta[bid].state != BUF_QUEUED && b->meta[bid].state != BUF_SENDING)) {
		return -EINVAL;
	}
	if (b->meta[bid].zc_refs) {
		b->meta[bid].state = BUF_ZC_WAIT;
		return 0;
	}
	bufring_recycle(b, bid);
	return 0;
}

void bufring_commit(struct bufring *b)
{
	if (b->br && b->pending) {
		io_uring_buf_ring_advance(b->br, b->pending);
	}
	b->pending = 0;
}
