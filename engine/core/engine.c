// SPDX-License-Identifier: MIT
/*
 * The control side of the engine: starting shards, adding and removing forwards (listener
 * sockets are created here, one per shard, and handed over with MSG_RING), draining and
 * stopping. Runs on the main thread only.
 */
#include <errno.h>
#include <semaphore.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "engine.h"
#include "natx/log.h"
#include "p2p_host.h"
#include "steer_eng.h"
#include "punch_eng.h"
#include "stun_eng.h"
#include "tun_eng.h"
#include "natx/udata.h"

#define MOD "engine"

static sem_t engine_ready_sem;

void engine_shard_ready(struct shard *sh)
{
	sem_post(&engine_ready_sem);
}

void forward_put(struct forward *f)
{
	if (f && !__atomic_sub_fetch(&f->refcnt, 1, __ATOMIC_ACQ_REL)) {
		free(f->st);
		free(f);
	}
}

/* engine_online_cpus - the CPUs this process may run on, in order. */
static int engine_online_cpus(int *cpus, int max)
{
	cpu_set_t set;
	int n = 0;

	if (sched_getaffinity(0, sizeof(set), &set)) {
		cpus[0] = 0;
		return 1;
	}
	for (int c = 0; c < CPU_SETSIZE && n < max; c++) {
		if (CPU_ISSET(c, &set)) {
			cpus[n++] = c;
		}
	}
	return n ? n : 1;
}

/*
 * engine_probe_recv_cap - does this kernel cap a multishot recv at sqe->optlen total bytes
 * (IORING_RECV_MSHOT_LIM, Linux 6.16+)? Older kernels reject the field with -EINVAL or
 * ignore it; either way the answer is no and the engine falls back to cancelling the recv.
 */
static bool engine_probe_recv_cap(void)
{
	enum { PROBE_BUFS = 8, PROBE_SIZE = 4096, PROBE_BGID = 77 };
	struct io_uring_buf_ring *br = NULL;
	struct io_uring_buf_reg reg = { 0 };
	struct io_uring_cqe *cqe;
	struct io_uring_sqe *sqe;
	struct io_uring ring;
	static char data[PROBE_BUFS * PROBE_SIZE], mem[PROBE_BUFS * PROBE_SIZE];
	bool ok = false, ended = false;
	int sv[2] = { -1, -1 }, total = 0;

	if (io_uring_queue_init(8, &ring, 0)) {
		return false;
	}
	br = mmap(NULL, PROBE_BUFS * sizeof(struct io_uring_buf), PROT_READ | PROT_WRITE,
		  MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (br == MAP_FAILED) {
		goto exit_ring;
	}
	io_uring_buf_ring_init(br);
	reg.ring_addr = (unsigned long)br;
	reg.ring_entries = PROBE_BUFS;
	reg.bgid = PROBE_BGID;
	if (io_uring_register_buf_ring(&ring, &reg, 0)) {
		goto unmap_br;
	}
	for (int i = 0; i < PROBE_BUFS; i++) {
		io_uring_buf_ring_add(br, mem + i * PROBE_SIZE, PROBE_SIZE, (unsigned short)i,
				      io_uring_buf_ring_mask(PROBE_BUFS), i);
	}
	io_uring_buf_ring_advance(br, PROBE_BUFS);
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) ||
	    write(sv[1], data, sizeof(data)) != (ssize_t)sizeof(data)) {
		goto close_sv;
	}
	sqe = io_uring_get_sqe(&ring);
	io_uring_prep_recv_multishot(sqe, sv[0], NULL, 0, 0);
	sqe->flags |= IOSQE_BUFFER_SELECT;
	sqe->buf_group = PROBE_BGID;
	sqe->file_index = 2 * PROBE_SIZE; /* optlen: stop after two buffers' worth */
	if (io_uring_submit(&ring) != 1) {
		goto close_sv;
	}
	/* All the data is already queued: a capped recv ends after 2 buffers, without F_MORE. */
	while (!ended && !io_uring_wait_cqe(&ring, &cqe)) {
		ended = !(cqe->flags & IORING_CQE_F_MORE);
		if (cqe->res > 0) {
			total += cqe->res;
		} else {
			ended = true;
			total = -1;
		}
		io_uring_cqe_seen(&ring, cqe);
	}
	ok = ended && total > 0 && total <= 2 * PROBE_SIZE;
close_sv:
	if (sv[0] >= 0) {
		close(sv[0]);
		close(sv[1]);
	}
	io_uring_unregister_buf_ring(&ring, PROBE_BGID);
unmap_br:
	munmap(br, PROBE_BUFS * sizeof(struct io_uring_buf));
exit_ring:
	io_uring_queue_exit(&ring);
	return ok;
}

int engine_start(struct engine *eng, struct engine_cfg *cfg, char *err, size_t errlen)
{
	int cpus[SHARDS_MAX], ncpu, ret;

	memset(eng, 0, sizeof(*eng));
	eng->cfg = cfg;
	eng->started_at = time(NULL);
	eng->next_fwd_id = 1;
	ncpu = engine_online_cpus(cpus, SHARDS_MAX);
	eng->nshards = cfg->shards ? cfg->shards : (unsigned int)ncpu;
	if (eng->nshards > SHARDS_MAX) {
		eng->nshards = SHARDS_MAX;
	}
	ret = io_uring_queue_init(64, &eng->ctl_ring, 0);
	if (ret) {
		snprintf(err, errlen, "io_uring unavailable: %s", strerror(-ret));
		return ret;
	}
	ret = steer_eng_start(eng, err, errlen);
	if (ret) {
		goto stop;
	}
	if (cfg->stun_listen) {
		ret = stun_eng_open(eng, cfg->stun_listen, cfg->stun_rate, cfg->stun_burst, err,
				    errlen);
		if (ret) {
			goto stop;
		}
	}
	eng->recv_cap = engine_probe_recv_cap();
	pr_info(MOD, "multishot recv byte cap: %s",
		eng->recv_cap ? "yes (per-flow budget enforced by the kernel)" :
				"no (budget enforced by cancelling the recv)");
	sem_init(&engine_ready_sem, 0, 0);
	for (unsigned int i = 0; i < eng->nshards; i++) {
		struct shard *sh = calloc(1, sizeof(*sh));

		if (!sh) {
			ret = -ENOMEM;
			snprintf(err, errlen, "out of memory");
			goto stop;
		}
		sh->eng = eng;
		sh->idx = i;
		sh->cpu = cpus[i % (unsigned int)ncpu];
		ret = -pthread_create(&sh->thr, NULL, shard_main, sh);
		if (ret) {
			free(sh);
			snprintf(err, errlen, "cannot start shard thread: %s", strerror(-ret));
			goto stop;
		}
		eng->shards[i] = sh;
		sem_wait(&engine_ready_sem);
		if (sh->init_err) {
			ret = sh->init_err;
			snprintf(err, errlen, "shard %u: %s", i, sh->init_msg);
			goto stop;
		}
	}
	return 0;

stop:
	engine_stop(eng);
	return ret;
}

/* engine_msg - post command @cmd(@slot, @res) to shard @i's ring. */
static int engine_msg(struct engine *eng, unsigned int i, enum shard_msg cmd, uint32_t slot,
		      int res)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&eng->ctl_ring);
	int ret;

	if (!sqe) {
		io_uring_submit(&eng->ctl_ring);
		sqe = io_uring_get_sqe(&eng->ctl_ring);
		if (!sqe) {
			return -EBUSY;
		}
	}
	io_uring_prep_msg_ring(sqe, eng->shards[i]->ring.ring_fd, (unsigned int)res,
			       udata_pack(UD_MSG, cmd, 0xff, 0, slot), 0);
	io_uring_sqe_set_data64(sqe, udata_pack(UD_NONE, 0, 0, 0, 0));
	ret = io_uring_submit(&eng->ctl_ring);
	return ret < 0 ? ret : 0;
}

unsigned int engine_wait_acks(struct engine *eng, enum shard_msg cmd, uint32_t slot, unsigned int n,
			      int ms, int *res)
{
	unsigned int got = 0;
	uint64_t deadline = now_ms_get() + (uint64_t)ms;

	*res = 0;
	while (got < n) {
		struct __kernel_timespec ts = { 0 };
		struct io_uring_cqe *cqe;
		uint64_t now = now_ms_get();
		int ret;

		if (now >= deadline) {
			break;
		}
		ts.tv_sec = (long long)((deadline - now) / 1000);
		ts.tv_nsec = (long long)((deadline - now) % 1000) * 1000000;
		ret = io_uring_wait_cqe_timeout(&eng->ctl_ring, &cqe, &ts);
		if (ret == -ETIME) {
			break;
		}
		if (ret) {
			if (ret == -EINTR) {
				continue;
			}
			break;
		}
		if (udata_op(cqe->user_data) == UD_ACK &&
		    udata_dir(cqe->user_data) == (unsigned int)cmd &&
		    udata_slot(cqe->user_data) == slot) {
			got++;
			if (cqe->res && !*res) {
				*res = cqe->res;
			}
		} else if (udata_op(cqe->user_data) == UD_NONE && cqe->res < 0) {
			/* A MSG_RING send of ours failed: that shard will never ack. */
			got++;
			if (!*res) {
				*res = cqe->res;
			}
		}
		io_uring_cqe_seen(&eng->ctl_ring, cqe);
	}
	return got;
}

/* engine_listen_socket - one listener socket bound to @a (SO_REUSEPORT). */
static int engine_listen_socket(const struct spec_addr *a, struct sockaddr_storage *bound)
{
	int type = a->proto == SPEC_TCP ? SOCK_STREAM : SOCK_DGRAM, one = 1, fd, ret;
	socklen_t bl = sizeof(*bound);

	fd = socket(a->listen.ss_family, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		return -errno;
	}
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one));
	if (a->listen.ss_family == AF_INET6) {
		/* [::]:P means IPv6 only; IPv4 clients need their own forward. */
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
	}
	if (a->proto == SPEC_TCP) {
		/* Inherited by every accepted socket: no setsockopt per connection. */
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	}
	if (a->proto == SPEC_UDP) {
		/* Absorb bursts while the shard is busy: 4 MiB (FORCE works as root). */
		int rcv = 4 << 20;

		if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &rcv, sizeof(rcv))) {
			setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcv, sizeof(rcv));
		}
	}
	if (bind(fd, (const struct sockaddr *)bound, a->listen_len) ||
	    (a->proto == SPEC_TCP && listen(fd, 4096))) {
		ret = -errno;
		close(fd);
		return ret;
	}
	if (getsockname(fd, (struct sockaddr *)bound, &bl)) {
		ret = -errno;
		close(fd);
		return ret;
	}
	return fd;
}

/* engine_port_probe - fail with -EADDRINUSE when anything already holds @a's port. */
static int engine_port_probe(const struct spec_addr *a)
{
	int type = a->proto == SPEC_TCP ? SOCK_STREAM : SOCK_DGRAM, one = 1, fd, ret = 0;

	fd = socket(a->listen.ss_family, type | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		return -errno;
	}
	/* SO_REUSEADDR (TCP) so TIME_WAIT leftovers do not count; no SO_REUSEPORT, so any
	 * listener or bound UDP socket on the port, ours or another process's, does. */
	if (a->proto == SPEC_TCP) {
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	}
	if (a->listen.ss_family == AF_INET6) {
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
	}
	if (bind(fd, (const struct sockaddr *)&a->listen, a->listen_len) ||
	    (a->proto == SPEC_TCP && listen(fd, 1))) {
		ret = -errno;
	}
	close(fd);
	return ret;
}

struct forward *engine_forward_find_spec(struct engine *eng, const char *text)
{
	for (uint32_t s = 0; s < FWD_MAX; s++) {
		if (eng->fwd[s] && !strcmp(eng->fwd[s]->spec, text)) {
			return eng->fwd[s];
		}
	}
	return NULL;
}

int engine_forward_add(struct engine *eng, const char *text, enum fwd_origin origin,
		       struct forward **out, char *err, size_t errlen)
{
	char serr[SPEC_ERR_MAX], canon[SPEC_TEXT_MAX];
	int fds[SHARDS_MAX], ret, res;
	struct sockaddr_storage bound;
	struct spec_addr a;
	struct forward *f;
	struct spec s;
	uint32_t slot = FWD_MAX;
	unsigned int n = 0;

	*out = NULL;
	if (spec_parse(text, &s, serr)) {
		snprintf(err, errlen, "bad forward spec '%.100s': %s", text, serr);
		return -EINVAL;
	}
	if (spec_resolve(&s, &a, serr)) {
		snprintf(err, errlen, "forward '%.100s': %s", text, serr);
		return -ENOENT;
	}
	spec_canonical(&a, canon, sizeof(canon));
	for (uint32_t i = 0; i < FWD_MAX; i++) {
		struct forward *o = eng->fwd[i];

		if (!o) {
			if (slot == FWD_MAX) {
				slot = i;
			}
			continue;
		}
		if (!strcmp(o->spec, canon)) {
			*out = o;
			snprintf(err, errlen, "forward %u already has spec %s", o->id, canon);
			return -EEXIST;
		}
		if (o->addr.proto == a.proto && a.listen.ss_family == o->addr.listen.ss_family &&
		    spec_sockaddr_equal(&a.listen, &o->addr.listen)) {
			snprintf(err, errlen, "listen address of '%.100s' is used by forward %u",
				 text, o->id);
			return -EADDRINUSE;
		}
	}
	if (slot == FWD_MAX) {
		snprintf(err, errlen, "too many forwards (at most %d)", FWD_MAX);
		return -ENOSPC;
	}
	bound = a.listen;
	if (s.listen.port) {
		ret = engine_port_probe(&a);
		if (ret) {
			snprintf(err, errlen, "cannot listen on %s:%u for '%.100s': %s",
				 s.listen.host, s.listen.port, text, strerror(-ret));
			return ret;
		}
	}
	for (n = 0; n < eng->nshards; n++) {
		/* The first socket picks the port when 0 was asked; the others join it. */
		ret = engine_listen_socket(&a, &bound);
		if (ret < 0) {
			snprintf(err, errlen, "cannot listen on %s:%u for '%.100s': %s",
				 s.listen.host, s.listen.port, text, strerror(-ret));
			goto close_fds;
		}
		fds[n] = ret;
	}
	a.listen = bound;
	spec_canonical(&a, canon, sizeof(canon));
	f = calloc(1, sizeof(*f));
	if (!f) {
		ret = -ENOMEM;
		snprintf(err, errlen, "out of memory");
		goto close_fds;
	}
	f->st = aligned_alloc(64, sizeof(*f->st) * eng->nshards);
	if (!f->st) {
		free(f);
		ret = -ENOMEM;
		snprintf(err, errlen, "out of memory");
		goto close_fds;
	}
	memset(f->st, 0, sizeof(*f->st) * eng->nshards);
	f->refcnt = 1;
	f->id = eng->next_fwd_id++;
	f->slot = slot;
	f->origin = origin;
	f->addr = a;
	snprintf(f->spec, sizeof(f->spec), "%s", canon);
	steer_eng_group_add(eng, slot, fds, n, f->id, 0);
	spec_addr_format(&a.listen, f->listen_txt, sizeof(f->listen_txt));
	spec_addr_format(&a.upstream, f->upstream_txt, sizeof(f->upstream_txt));
	/* Publish, then message: MSG_RING orders the store before the shard's read. */
	__atomic_store_n(&eng->fwd[slot], f, __ATOMIC_RELEASE);
	for (unsigned int i = 0; i < n; i++) {
		ret = engine_msg(eng, i, MSG_LISTEN_ADD, slot, fds[i]);
		if (ret) {
			/* Shards [0, i) own their fds now; close the rest and undo. */
			for (unsigned int k = i; k < n; k++) {
				close(fds[k]);
			}
			engine_wait_acks(eng, MSG_LISTEN_ADD, slot, i, 2000, &res);
			engine_forward_rm(eng, f->id);
			snprintf(err, errlen, "cannot reach shard %u: %s", i, strerror(-ret));
			return ret;
		}
	}
	if (engine_wait_acks(eng, MSG_LISTEN_ADD, slot, n, 5000, &res) < n || res) {
		engine_forward_rm(eng, f->id);
		snprintf(err, errlen, "shards did not take the listener: %s",
			 strerror(res ? -res : ETIMEDOUT));
		return res ? res : -ETIMEDOUT;
	}
	pr_info(MOD, "forward %u added: %s", f->id, f->spec);
	*out = f;
	return 0;

close_fds:
	for (unsigned int i = 0; i < n; i++) {
		close(fds[i]);
	}
	return ret;
}

int engine_forward_rm(struct engine *eng, uint32_t id)
{
	struct forward *f = NULL;
	unsigned int sent = 0;
	int res;

	for (uint32_t s = 0; s < FWD_MAX; s++) {
		if (eng->fwd[s] && eng->fwd[s]->id == id) {
			f = eng->fwd[s];
		}
	}
	if (!f) {
		return -ENOENT;
	}
	for (unsigned int i = 0; i < eng->nshards; i++) {
		sent += !engine_msg(eng, i, MSG_LISTEN_RM, f->slot, 0);
	}
	engine_wait_acks(eng, MSG_LISTEN_RM, f->slot, sent, 5000, &res);
	steer_eng_group_del(eng, f->slot);
	eng->fwd[f->slot] = NULL;
	pr_info(MOD, "forward %u removed: %s", f->id, f->spec);
	forward_put(f);
	return 0;
}

uint64_t engine_flows_open(struct engine *eng)
{
	uint64_t n = 0;

	for (unsigned int i = 0; i < eng->nshards; i++) {
		if (eng->shards[i]) {
			n += stat_get(&eng->shards[i]->st.flows_open);
		}
	}
	return n;
}

void engine_drain(struct engine *eng, uint32_t timeout_ms)
{
	uint64_t deadline = now_ms_get() + timeout_ms;
	unsigned int sent = 0;
	int res;

	for (unsigned int i = 0; i < eng->nshards; i++) {
		sent += !engine_msg(eng, i, MSG_DRAIN, 0, 0);
	}
	engine_wait_acks(eng, MSG_DRAIN, 0, sent, 2000, &res);
	pr_info(MOD, "draining: %llu flows open, deadline %u ms",
		(unsigned long long)engine_flows_open(eng), timeout_ms);
	while (engine_flows_open(eng) && now_ms_get() < deadline) {
		usleep(20000);
	}
	if (engine_flows_open(eng)) {
		pr_warn(MOD, "drain deadline reached with %llu flows open; closing them",
			(unsigned long long)engine_flows_open(eng));
	}
}

void engine_stop(struct engine *eng)
{
	for (unsigned int i = 0; i < eng->nshards; i++) {
		struct shard *sh = eng->shards[i];

		if (!sh) {
			continue;
		}
		if (!sh->init_err && engine_msg(eng, i, MSG_STOP, 0, 0)) {
			pr_err(MOD, "cannot stop shard %u", i);
		}
		pthread_join(sh->thr, NULL);
		free(sh);
		eng->shards[i] = NULL;
	}
	for (uint32_t s = 0; s < FWD_MAX; s++) {
		if (eng->fwd[s]) {
			forward_put(eng->fwd[s]);
			eng->fwd[s] = NULL;
		}
	}
	p2p_eng_stop(eng);
	stun_eng_close(eng);
	punch_eng_free(eng);
	steer_eng_stop(eng);
	tun_eng_free(eng);
	if (eng->ctl_ring.ring_fd > 0) {
		io_uring_queue_exit(&eng->ctl_ring);
		eng->ctl_ring.ring_fd = 0;
	}
}
