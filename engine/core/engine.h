/* SPDX-License-Identifier: MIT */
/*
 * natx-engine internals: the engine (control side), forwards, shards and flows.
 *
 * Threads: the main (control) thread owns struct engine, the control socket and a small
 * io_uring used only to send IORING_OP_MSG_RING to shards and to receive their acks. Each
 * shard is a pinned thread owning its io_uring, buffer ring, flow pool and flow table;
 * nothing of a shard is written by another thread. Forwards are the one shared object:
 * created by the control thread, found by shards through eng->fwd[slot] (published before
 * the MSG_RING that names the slot), reference-counted (style.md rule 6).
 */
#ifndef NATX_ENGINE_ENGINE_H
#define NATX_ENGINE_ENGINE_H

#include <liburing.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>
#include <time.h>

#include "args.h"
#include "bufring.h"
#include "flowtab.h"
#include "spec.h"
#include "stats.h"

enum {
	SHARDS_MAX = 64,
	FWD_MAX = 256,
	FLOW_CHUNK = 1024,
	BUF_GROUP = 1,
	UDP_BUF_GROUP = 2,
	PIPE_POOL = 256
};

/* Control -> shard commands (udata dir field of UD_MSG). */
enum shard_msg { MSG_LISTEN_ADD = 0, MSG_LISTEN_RM = 1, MSG_DRAIN = 2, MSG_STOP = 3 };

enum fwd_origin { FWD_CLI = 0, FWD_FILE, FWD_CTL };

struct forward {
	int refcnt; /* atomic; control holds one, each listener and flow one */
	uint32_t id; /* stable, reported to natxd */
	uint32_t slot; /* index in eng->fwd[] */
	enum fwd_origin origin;
	struct spec_addr addr;
	char spec[SPEC_TEXT_MAX]; /* canonical, numeric */
	char listen_txt[64];
	char upstream_txt[64];
	struct fwd_stats *st; /* one per shard, written only by that shard */
};

/* forward_put - drop a reference; the last one frees. */
void forward_put(struct forward *f);

/* forward_get - take a reference. */
static inline void forward_get(struct forward *f)
{
	__atomic_add_fetch(&f->refcnt, 1, __ATOMIC_RELAXED);
}

enum flow_kind { FLOW_FREE = 0, FLOW_TCP, FLOW_UDP };
enum flow_state { FS_CONNECTING = 1, FS_OPEN, FS_CLOSING };

/* One direction of a flow: bytes read from fd[i] and written to fd[1 - i]. */
struct flow_dir {
	uint16_t qhead, qtail; /* buffers queued for the peer (uring mode) */
	uint32_t queued; /* TCP: bytes received, not yet sent. UDP: datagrams */
	uint8_t recv_armed; /* a multishot recv / POLLIN is outstanding on fd[i] */
	uint8_t out_armed; /* splice: POLLOUT outstanding on fd[1 - i] */
	uint8_t send_busy; /* a send towards fd[1 - i] is in flight */
	uint8_t eof; /* fd[i] reached end of stream */
	uint8_t shut; /* shutdown(fd[1 - i], SHUT_WR) done */
	uint8_t cancel_pending; /* back-pressure cancel of the recv submitted */
	uint8_t starved; /* recv ended with -ENOBUFS, on the starved list */
	int pipe[2]; /* splice mode, created on first data */
	uint32_t pipe_cap; /* splice mode: pipe capacity (bytes) */
};

union flow_sa {
	struct sockaddr sa;
	struct sockaddr_in in4;
	struct sockaddr_in6 in6;
};

struct flow {
	uint8_t kind; /* enum flow_kind */
	uint8_t state; /* enum flow_state */
	uint8_t in_table;
	uint8_t reset; /* close with SO_LINGER 0 */
	uint8_t fixed; /* bit i: fd[i] is a direct descriptor (ring file table index) */
	uint32_t fwd_slot; /* listener index on this shard */
	struct forward *fwd; /* reference held while the flow lives */
	int fd[2]; /* TCP: client, upstream. UDP: -1, upstream */
	uint32_t inflight; /* requests whose CQE has not arrived */
	uint32_t next_free;
	uint64_t last_ms;
	struct flow_dir d[2];
	struct flow_key key;
	union flow_sa peer; /* UDP: client address for replies */
	socklen_t peer_len;
};

struct listener {
	struct forward *fwd; /* NULL: slot unused */
	int fd;
	uint8_t armed; /* accept / recvmsg multishot outstanding */
	uint8_t closing; /* removed: ack when the multishot has ended */
	uint8_t starved; /* UDP recvmsg ended with -ENOBUFS */
	uint8_t rearm; /* re-arm on the next tick (after an accept error) */
	struct msghdr msg; /* UDP recvmsg multishot template */
};

struct engine;
struct p2p_shard;
struct stun_shard;
struct p2p_eng;
struct engine_steer;
struct stun_eng;
struct tun_eng;
struct punch_eng;

struct shard {
	struct engine *eng;
	unsigned int idx;
	int cpu;
	pthread_t thr;
	struct io_uring ring;
	const char *ring_mode; /* which setup flags the kernel accepted */
	bool direct; /* uring mode: TCP flows use direct descriptors (direct.c) */
	uint32_t dhalf; /* direct: accept range [0, dhalf), upstream of flow s at dhalf + s */
	struct bufring br; /* TCP (uring mode), group BUF_GROUP */
	struct bufring ubr; /* UDP datagrams, group UDP_BUF_GROUP */
	struct flowtab ft;
	struct flow **chunks; /* flow pool, FLOW_CHUNK flows per chunk */
	uint32_t nchunks, nalloc, free_head, nlive;
	uint32_t *starved; /* (slot << 1 | dir) waiting for buffers */
	uint32_t nstarved, starved_cap;
	uint32_t lis_starved; /* UDP listeners waiting for buffers */
	int (*pipes)[3]; /* splice mode: empty pipes kept for reuse (rd, wr, size) */
	uint32_t npipes;
	struct msghdr *umsg; /* per buffer: UDP reply sendmsg header */
	struct iovec *uiov;
	struct listener lis[FWD_MAX];
	struct shard_stats st;
	uint64_t now_ms;
	uint64_t last_tick_ms;
	struct __kernel_timespec tick_ts, connect_ts;
	bool draining, stop;
	struct p2p_shard *p2p; /* libp2p connections (p2p_host.c), NULL when off */
	struct stun_shard *stun; /* STUN responder state (stun_eng.c), NULL when not answering */
	int init_err; /* set before the ready semaphore is posted */
	char init_msg[128];
};

struct engine {
	struct engine_cfg *cfg;
	unsigned int nshards;
	struct shard *shards[SHARDS_MAX];
	struct io_uring ctl_ring; /* control thread: MSG_RING out, acks in */
	struct forward *fwd[FWD_MAX];
	uint32_t next_fwd_id;
	time_t started_at;
	bool recv_cap; /* kernel honours a byte cap on multishot recv */
	uint32_t seq;
	struct p2p_eng *p2p; /* libp2p identity and listeners (p2p_eng.c), NULL when off */
	struct engine_steer *steer; /* SO_REUSEPORT steering (steer_eng.c) */
	struct stun_eng *stun; /* STUN responder (stun_eng.c), NULL when off */
	struct tun_eng *tun; /* tunnel server/client (tun_eng.h), NULL until first used */
	struct punch_eng *punch; /* punch sessions (punch_eng.h), NULL until first used */
};

/* engine_start - create the control ring and @cfg->shards shards. -errno with @err set. */
int engine_start(struct engine *eng, struct engine_cfg *cfg, char *err, size_t errlen);

/* engine_stop - stop every shard (flows closed) and free everything. Safe when partly started. */
void engine_stop(struct engine *eng);

/*
 * engine_forward_add - resolve @text, open one SO_REUSEPORT listener per shard and hand each
 * to its shard; returns when every shard has armed it. Returns 0 with *out set, or:
 * -EINVAL (bad spec), -ENOENT (resolve), -EADDRINUSE, -EEXIST (*out = existing), -ENOSPC,
 * -errno; @err gets a one-line reason.
 */
int engine_forward_add(struct engine *eng, const char *text, enum fwd_origin origin,
		       struct forward **out, char *err, size_t errlen);

/* engine_forward_rm - close the listeners of forward @id; flows continue. 0 or -ENOENT. */
int engine_forward_rm(struct engine *eng, uint32_t id);

/* engine_forward_find - forward by canonical or parseable spec text; NULL if none. */
struct forward *engine_forward_find_spec(struct engine *eng, const char *text);

/* engine_drain - stop accepting, wait for flows to end up to @timeout_ms, stop shards. */
void engine_drain(struct engine *eng, uint32_t timeout_ms);

/* engine_flows_open - sum of open flows over shards. */
uint64_t engine_flows_open(struct engine *eng);

/*
 * engine_wait_acks - control thread: wait for @n acks of @cmd (slot @slot) from shards, up to
 * @ms. Returns the number received; *res gets the first failure.
 */
unsigned int engine_wait_acks(struct engine *eng, enum shard_msg cmd, uint32_t slot, unsigned int n,
			      int ms, int *res);

/* shard_ack - shard thread: tell the control ring that @cmd for @slot finished with @res. */
void shard_ack(struct shard *sh, enum shard_msg cmd, uint32_t slot, int res);

/* shard_main - the shard thread. */
void *shard_main(void *arg);

/* engine_shard_ready - called once by each shard after its setup (sh->init_err says how). */
void engine_shard_ready(struct shard *sh);

/* shard_listener_ended - listener @l's multishot has ended; finishes a pending removal. */
void shard_listener_ended(struct shard *sh, uint32_t l);

/* shard internals shared by shard.c, tcp.c, udp.c */
struct io_uring_sqe *shard_sqe(struct shard *sh);
struct flow *shard_flow(struct shard *sh, uint32_t slot);
struct flow *flow_alloc(struct shard *sh, uint32_t *slot);
void flow_abort(struct shard *sh, struct flow *f, uint32_t slot, bool reset);
void flow_maybe_free(struct shard *sh, struct flow *f, uint32_t slot);
void flow_starve(struct shard *sh, struct flow *f, uint32_t slot, unsigned int dir);
void flow_arm_recv(struct shard *sh, struct flow *f, uint32_t slot, unsigned int dir);
void flow_pipe_release(struct shard *sh, struct flow_dir *d);

/* direct_setup - register the shard's direct descriptor table; 0 or -errno (normal fds). */
int direct_setup(struct shard *sh);
/* direct_prep_setsockopt - setsockopt SQE (IORING_OP_URING_CMD) on direct descriptor @idx. */
void direct_prep_setsockopt(struct io_uring_sqe *sqe, int idx, int level, int optname,
			    const void *val, int len);
/*
 * flow_fd_setsockopt - set an option on fd[@i]; @val must outlive the submission. Returns
 * the SQE for a direct descriptor (the caller may link it), NULL when done synchronously.
 */
struct io_uring_sqe *flow_fd_setsockopt(struct shard *sh, struct flow *f, unsigned int i, int level,
					int optname, const void *val, int len);
/* flow_fd_shutdown_wr - shutdown(fd[@i], SHUT_WR), through the ring for a direct one. */
void flow_fd_shutdown_wr(struct shard *sh, struct flow *f, unsigned int i);
/* shard_fd_close - close a descriptor, or a direct one (@fixed) through the ring. */
void shard_fd_close(struct shard *sh, int fd, bool fixed);

/* flow_sqe_fd - mark @sqe's fd as a direct descriptor when fd[@i] is one. */
static inline void flow_sqe_fd(const struct flow *f, unsigned int i, struct io_uring_sqe *sqe)
{
	if (f->fixed & (1U << i)) {
		sqe->flags |= IOSQE_FIXED_FILE;
	}
}

void tcp_handle_accept(struct shard *sh, struct io_uring_cqe *cqe);
void tcp_handle_connect(struct shard *sh, struct io_uring_cqe *cqe);
void tcp_handle_recv(struct shard *sh, struct io_uring_cqe *cqe);
void tcp_handle_send(struct shard *sh, struct io_uring_cqe *cqe);
void tcp_handle_poll(struct shard *sh, struct io_uring_cqe *cqe);
void tcp_flow_start(struct shard *sh, struct flow *f, uint32_t slot);

void udp_listener_arm(struct shard *sh, uint32_t lslot);
void udp_handle_recvmsg(struct shard *sh, struct io_uring_cqe *cqe);
void udp_handle_up_recv(struct shard *sh, struct io_uring_cqe *cqe);
void udp_handle_send(struct shard *sh, struct io_uring_cqe *cqe);

static inline uint64_t now_ms_get(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

#endif
