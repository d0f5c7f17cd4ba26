// SPDX-License-Identifier: MIT
/*
 * Direct (registered) descriptors for TCP flows in uring mode.
 *
 * Each shard ring registers a sparse file table. Its lower half is the kernel's allocation
 * range for multishot accept (IORING_FILE_INDEX_ALLOC); the upper half holds upstream
 * sockets at index half + flow slot, chosen by the engine, so the socket creation, its
 * socket options and the connect can be one linked chain. Direct descriptors live in the
 * ring's table, not in the process's descriptor table: idle flows cost no process fds and
 * no fget/fput per request. Operations that need an fd (setsockopt, shutdown, close) go
 * through the ring: IORING_OP_URING_CMD (SOCKET_URING_OP_SETSOCKOPT, Linux 6.7+),
 * IORING_OP_SHUTDOWN and IORING_OP_CLOSE with a file index.
 *
 * The probe at start creates a direct socket and sets an option on it; a kernel or limit
 * that refuses either leaves the shard on normal descriptors (logged).
 */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "engine.h"
#include "natx/log.h"
#include "natx/udata.h"

#define MOD "shard"

#ifndef SOCKET_URING_OP_SETSOCKOPT
#define SOCKET_URING_OP_SETSOCKOPT 3 /* include/uapi/linux/io_uring.h, Linux 6.7 */
#endif

/* direct_prep_setsockopt - IORING_OP_URING_CMD setsockopt on direct descriptor @idx. */
void direct_prep_setsockopt(struct io_uring_sqe *sqe, int idx, int level, int optname,
			    const void *val, int len)
{
	io_uring_prep_rw(IORING_OP_URING_CMD, sqe, idx, NULL, 0, 0);
	sqe->off = SOCKET_URING_OP_SETSOCKOPT; /* cmd_op: low 32 bits of off */
	sqe->addr = (uint64_t)(uint32_t)level | (uint64_t)(uint32_t)optname << 32;
	sqe->file_index = (uint32_t)len; /* optlen */
	sqe->addr3 = (uint64_t)(uintptr_t)val; /* optval */
	sqe->flags |= IOSQE_FIXED_FILE;
}

/* direct_wait_one - submit and reap one completion synchronously (setup only). */
static int direct_wait_one(struct shard *sh)
{
	struct io_uring_cqe *cqe;
	int ret;

	ret = io_uring_submit_and_wait(&sh->ring, 1);
	if (ret < 0) {
		return ret;
	}
	ret = io_uring_wait_cqe(&sh->ring, &cqe);
	if (ret) {
		return ret;
	}
	ret = cqe->res;
	io_uring_cqe_seen(&sh->ring, cqe);
	return ret;
}

int direct_setup(struct shard *sh)
{
	static const int one = 1;
	const struct engine_cfg *cfg = sh->eng->cfg;
	struct io_uring_sqe *sqe;
	struct rlimit rl;
	uint64_t want = 2 * (uint64_t)cfg->max_flows;
	uint32_t size;
	int ret;

	if (cfg->tcp_mode != TCP_MODE_URING) {
		return -EOPNOTSUPP;
	}
	/* The kernel bounds one ring's table by RLIMIT_NOFILE (not by open descriptors). */
	if (getrlimit(RLIMIT_NOFILE, &rl)) {
		return -errno;
	}
	if (rl.rlim_cur != RLIM_INFINITY && want > rl.rlim_cur) {
		want = rl.rlim_cur;
	}
	size = (uint32_t)(want & ~1ULL);
	if (size < 64) {
		return -EMFILE;
	}
	ret = io_uring_register_files_sparse(&sh->ring, size);
	if (ret) {
		return ret;
	}
	ret = io_uring_register_file_alloc_range(&sh->ring, 0, size / 2);
	if (ret) {
		goto unregister;
	}
	/* Probe: a direct socket at the first upstream index, one option set, closed. */
	sqe = io_uring_get_sqe(&sh->ring);
	io_uring_prep_socket_direct(sqe, AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0, size / 2, 0);
	ret = direct_wait_one(sh);
	if (ret < 0) {
		goto unregister;
	}
	sqe = io_uring_get_sqe(&sh->ring);
	direct_prep_setsockopt(sqe, (int)(size / 2), IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	ret = direct_wait_one(sh);
	sqe = io_uring_get_sqe(&sh->ring);
	io_uring_prep_close_direct(sqe, size / 2);
	direct_wait_one(sh);
	if (ret < 0) {
		goto unregister;
	}
	sh->direct = true;
	sh->dhalf = size / 2;
	return 0;

unregister:
	io_uring_unregister_files(&sh->ring);
	return ret;
}

struct io_uring_sqe *flow_fd_setsockopt(struct shard *sh, struct flow *f, unsigned int i, int level,
					int optname, const void *val, int len)
{
	if (f->fixed & (1U << i)) {
		struct io_uring_sqe *sqe = shard_sqe(sh);

		/* Runs inline at submission (before any later SQE of this flow). */
		direct_prep_setsockopt(sqe, f->fd[i], level, optname, val, len);
		io_uring_sqe_set_data64(sqe, udata_pack(UD_NONE, 0, sh->idx, 0, 0));
		sqe->flags |= IOSQE_CQE_SKIP_SUCCESS;
		return sqe;
	}
	setsockopt(f->fd[i], level, optname, val, (socklen_t)len);
	return NULL;
}

void flow_fd_shutdown_wr(struct shard *sh, struct flow *f, unsigned int i)
{
	if (f->fixed & (1U << i)) {
		struct io_uring_sqe *sqe = shard_sqe(sh);

		/*
		 * No inflight count: the shutdown holds the table slot's file until it has run,
		 * even if the flow closes the slot meanwhile.
		 */
		io_uring_prep_shutdown(sqe, f->fd[i], SHUT_WR);
		sqe->flags |= IOSQE_FIXED_FILE | IOSQE_CQE_SKIP_SUCCESS;
		io_uring_sqe_set_data64(sqe, udata_pack(UD_NONE, 0, sh->idx, 0, 0));
		return;
	}
	shutdown(f->fd[i], SHUT_WR);
}

void shard_fd_close(struct shard *sh, int fd, bool fixed)
{
	struct io_uring_sqe *sqe;

	if (sh->stop && !fixed) {
		close(fd); /* teardown: the ring may not be submitted again */
		return;
	}
	/*
	 * Through the ring, batched with the loop's next submission. A socket has no ->flush,
	 * so IORING_OP_CLOSE runs inline, never in a worker.
	 */
	sqe = shard_sqe(sh);
	if (fixed) {
		io_uring_prep_close_direct(sqe, (unsigned int)fd);
	} else {
		io_uring_prep_close(sqe, fd);
	}
	sqe->flags |= IOSQE_CQE_SKIP_SUCCESS;
	io_uring_sqe_set_data64(sqe, udata_pack(UD_NONE, 0, sh->idx, 0, 0));
}
