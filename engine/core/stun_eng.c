// SPDX-License-Identifier: MIT
/* The engine's STUN Binding responder on the shards (stun_eng.h). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "natx/log.h"
#include "natx/udata.h"
#include "steer_eng.h"
#include "stun_eng.h"
#include "stun_server.h"

#define MOD "stun"

enum { STUN_SLOTS = 64, STUN_RL_ENTRIES = 65536 };

/* Counters beyond the responder's own (enum natx_stun_counter). */
enum { STUN_ENG_SEND_FAILED = NATX_STUN_CNT_MAX, STUN_ENG_NO_SLOT, STUN_ENG_CNT_MAX };

static const char *const stun_eng_cnt_names[STUN_ENG_CNT_MAX] = {
	[NATX_STUN_CNT_ANSWERED] = "answered",	[NATX_STUN_CNT_RATE_LIMITED] = "rate_limited",
	[NATX_STUN_CNT_PASSED] = "passed",	[NATX_STUN_CNT_MALFORMED] = "malformed",
	[STUN_ENG_SEND_FAILED] = "send_failed", [STUN_ENG_NO_SLOT] = "no_slot",
};

/* One answer in flight: the sendmsg header and what it points to. */
struct stun_slot {
	struct msghdr m;
	struct iovec iov;
	struct sockaddr_storage to;
	uint8_t buf[STUN_RESP_MAX_LEN + 64];
};

struct stun_shard {
	struct stun_server srv; /* limiter and counters only (fd unused: I/O is the ring's) */
	int fd;
	struct msghdr rmsg; /* multishot recvmsg template */
	uint8_t armed, rearm;
	uint64_t free_slots; /* bit i: slot i is free */
	uint64_t cnt[STUN_ENG_CNT_MAX]; /* published copies, read by the control thread */
	struct stun_slot slot[STUN_SLOTS];
};

_Static_assert(STUN_SLOTS == 64, "free_slots is a 64-bit mask");

struct stun_eng {
	int fd[SHARDS_MAX];
	unsigned int nfd;
	char listen_txt[64];
	uint32_t rate, burst;
	/* Written once by shard i (release), read by the control thread, freed by close. */
	struct stun_shard *sh[SHARDS_MAX];
};

/* stun_cnt_add - single-writer counter update readable from the control thread. */
static void stun_cnt_add(uint64_t *c, uint64_t n)
{
	__atomic_store_n(c, __atomic_load_n(c, __ATOMIC_RELAXED) + n, __ATOMIC_RELAXED);
}

/* stun_eng_socket - one SO_REUSEPORT UDP socket on @ss; port read back into @ss. */
static int stun_eng_socket(struct sockaddr_storage *ss, socklen_t sl)
{
	int one = 1, zero = 0, rcv = 4 << 20, fd, ret;

	fd = socket(ss->ss_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		return -errno;
	}
	setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one));
	if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &rcv, sizeof(rcv))) {
		setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcv, sizeof(rcv));
	}
	if (ss->ss_family == AF_INET6) {
		/* Dual-stack like natx-stund: IPv4 clients arrive IPv4-mapped. */
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof(zero));
	}
	if (bind(fd, (struct sockaddr *)ss, sl) || getsockname(fd, (struct sockaddr *)ss, &sl)) {
		ret = -errno;
		close(fd);
		return ret;
	}
	return fd;
}

/* stun_eng_port_probe - -EADDRINUSE (or -errno) when anything already holds @ss's port. */
static int stun_eng_port_probe(const struct sockaddr_storage *ss, socklen_t sl)
{
	int zero = 0, fd = socket(ss->ss_family, SOCK_DGRAM | SOCK_CLOEXEC, 0), ret = 0;

	if (fd < 0) {
		return -errno;
	}
	if (ss->ss_family == AF_INET6) {
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof(zero));
	}
	if (bind(fd, (const struct sockaddr *)ss, sl)) {
		ret = -errno;
	}
	close(fd);
	return ret;
}

int stun_eng_open(struct engine *eng, char *err, size_t errlen)
{
	const struct engine_cfg *cfg = eng->cfg;
	struct sockaddr_storage ss;
	struct stun_eng *se;
	socklen_t sl;
	int ret;

	if (!cfg->stun_listen) {
		return 0;
	}
	if (stun_sockaddr_parse(cfg->stun_listen, &ss, &sl)) {
		snprintf(err, errlen, "--stun-listen '%.64s': not IPv4:PORT or [IPv6]:PORT",
			 cfg->stun_listen);
		return -EINVAL;
	}
	if (((struct sockaddr_in *)&ss)->sin_port) {
		ret = stun_eng_port_probe(&ss, sl);
		if (ret) {
			snprintf(err, errlen, "--stun-listen %.64s: %s", cfg->stun_listen,
				 strerror(-ret));
			return ret;
		}
	}
	se = calloc(1, sizeof(*se));
	if (!se) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	se->rate = cfg->stun_rate;
	se->burst = cfg->stun_burst ? cfg->stun_burst : cfg->stun_rate;
	for (se->nfd = 0; se->nfd < eng->nshards; se->nfd++) {
		/* The first bind picks the port when 0 was asked; the others join it. */
		ret = stun_eng_socket(&ss, sl);
		if (ret < 0) {
			snprintf(err, errlen, "--stun-listen %.64s: %s", cfg->stun_listen,
				 strerror(-ret));
			goto close_fds;
		}
		se->fd[se->nfd] = ret;
	}
	stun_sockaddr_format((struct sockaddr *)&ss, se->listen_txt, sizeof(se->listen_txt));
	steer_eng_group_add(eng, STEER_GROUP_STUN, se->fd, se->nfd, 0, STEER_ADDR_ONLY);
	eng->stun = se;
	pr_info(MOD, "STUN Binding responder on %s, %u shards, rate %u/s burst %u", se->listen_txt,
		se->nfd, se->rate, se->burst);
	return 0;

close_fds:
	while (se->nfd) {
		close(se->fd[--se->nfd]);
	}
	free(se);
	return ret;
}

/* stun_eng_arm - multishot recvmsg into the shard's UDP buffer ring. */
static void stun_eng_arm(struct shard *sh)
{
	struct stun_shard *ss = sh->eng->stun->sh[sh->idx];
	struct io_uring_sqe *sqe = shard_sqe(sh);

	memset(&ss->rmsg, 0, sizeof(ss->rmsg));
	ss->rmsg.msg_namelen = sizeof(struct sockaddr_in6);
	io_uring_prep_recvmsg_multishot(sqe, ss->fd, &ss->rmsg, 0);
	sqe->flags |= IOSQE_BUFFER_SELECT;
	sqe->buf_group = UDP_BUF_GROUP;
	io_uring_sqe_set_data64(sqe, udata_pack(UD_STUN, 0, sh->idx, 0, 0));
	ss->armed = 1;
}

void stun_eng_shard_start(struct shard *sh)
{
	struct stun_eng *se = sh->eng->stun;
	struct stun_shard *ss;

	if (!se) {
		return;
	}
	ss = calloc(1, sizeof(*ss));
	if (!ss || stun_rl_init(&ss->srv.rl, se->rate, se->burst, STUN_RL_ENTRIES)) {
		pr_err(MOD, "shard %u: out of memory, not answering STUN", sh->idx);
		free(ss);
		return;
	}
	ss->srv.fd = -1;
	ss->fd = se->fd[sh->idx];
	ss->free_slots = ~0ULL;
	__atomic_store_n(&se->sh[sh->idx], ss, __ATOMIC_RELEASE);
	stun_eng_arm(sh);
}

/* stun_eng_publish - copy the counters for readers on other threads. */
static void stun_eng_publish(struct stun_shard *ss)
{
	for (int k = 0; k < NATX_STUN_CNT_MAX; k++) {
		__atomic_store_n(&ss->cnt[k], ss->srv.counters[k], __ATOMIC_RELAXED);
	}
}

/* stun_eng_now_ns - CLOCK_MONOTONIC in ns (the limiter's time base). */
static uint64_t stun_eng_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

/* stun_eng_recv - one datagram (or the end of the multishot receive). */
static void stun_eng_recv(struct shard *sh, struct stun_shard *ss, struct io_uring_cqe *cqe)
{
	struct io_uring_recvmsg_out *out;
	struct stun_slot *sl;
	struct io_uring_sqe *sqe;
	uint8_t *data;
	uint16_t bid;
	size_t olen;
	int i;

	if (!(cqe->flags & IORING_CQE_F_MORE)) {
		ss->armed = 0;
		if (cqe->res == -ENOBUFS) {
			stat_add(&sh->st.bufring_exhausted, 1);
		}
		/* Re-armed at the next tick: no tight loop on a persistent error. */
		ss->rearm = 1;
	}
	if (cqe->res < 0 || !(cqe->flags & IORING_CQE_F_BUFFER)) {
		return;
	}
	bid = (uint16_t)(cqe->flags >> IORING_CQE_BUFFER_SHIFT);
	if (bufring_take(&sh->ubr, bid, 0, 0)) {
		pr_err(MOD, "shard %u: buffer %u delivered twice", sh->idx, bid);
		return;
	}
	data = bufring_data(&sh->ubr, bid);
	out = io_uring_recvmsg_validate(data, cqe->res, &ss->rmsg);
	if (!out || out->namelen > sizeof(struct sockaddr_in6) ||
	    out->namelen < sizeof(struct sockaddr_in)) {
		ss->srv.counters[NATX_STUN_CNT_PASSED]++;
		goto drop;
	}
	if (out->flags & MSG_TRUNC) {
		/* Longer than a UDP buffer: like natx-stund's truncation, malformed. */
		ss->srv.counters[NATX_STUN_CNT_MALFORMED]++;
		goto drop;
	}
	i = ss->free_slots ? __builtin_ctzll(ss->free_slots) : -1;
	if (i < 0) {
		/* 64 answers still being sent: the socket is backed up; drop, counted. */
		stun_cnt_add(&ss->cnt[STUN_ENG_NO_SLOT], 1);
		goto drop;
	}
	sl = &ss->slot[i];
	if (!stun_server_respond(&ss->srv, io_uring_recvmsg_payload(out, &ss->rmsg),
				 io_uring_recvmsg_payload_length(out, cqe->res, &ss->rmsg),
				 io_uring_recvmsg_name(out), stun_eng_now_ns(), sl->buf,
				 sizeof(sl->buf), &olen)) {
		goto drop;
	}
	memcpy(&sl->to, io_uring_recvmsg_name(out), out->namelen);
	sl->iov.iov_base = sl->buf;
	sl->iov.iov_len = olen;
	memset(&sl->m, 0, sizeof(sl->m));
	sl->m.msg_name = &sl->to;
	sl->m.msg_namelen = out->namelen;
	sl->m.msg_iov = &sl->iov;
	sl->m.msg_iovlen = 1;
	ss->free_slots &= ~(1ULL << i);
	sqe = shard_sqe(sh);
	io_uring_prep_sendmsg(sqe, ss->fd, &sl->m, 0);
	io_uring_sqe_set_data64(sqe, udata_pack(UD_STUN, 1, sh->idx, 0, (uint32_t)i));
drop:
	bufring_drop(&sh->ubr, bid);
	stun_eng_publish(ss);
}

void stun_eng_handle_cqe(struct shard *sh, struct io_uring_cqe *cqe)
{
	struct stun_shard *ss = sh->eng->stun ? sh->eng->stun->sh[sh->idx] : NULL;
	uint32_t i = udata_slot(cqe->user_data);

	if (!ss) {
		return;
	}
	if (udata_dir(cqe->user_data) == 0) {
		stun_eng_recv(sh, ss, cqe);
		return;
	}
	if (i < STUN_SLOTS) {
		ss->free_slots |= 1ULL << i;
	}
	if (cqe->res < 0) {
		stun_cnt_add(&ss->cnt[STUN_ENG_SEND_FAILED], 1);
	}
}

void stun_eng_shard_tick(struct shard *sh)
{
	struct stun_shard *ss = sh->eng->stun ? sh->eng->stun->sh[sh->idx] : NULL;

	if (ss && ss->rearm && !ss->armed && !sh->stop) {
		ss->rearm = 0;
		stun_eng_arm(sh);
	}
}

void stun_eng_json(struct engine *eng, cJSON *o)
{
	struct stun_eng *se = eng->stun;
	uint64_t total[STUN_ENG_CNT_MAX] = { 0 };
	cJSON *s, *arr, *c;

	if (!se) {
		cJSON_AddNullToObject(o, "stun");
		return;
	}
	s = cJSON_AddObjectToObject(o, "stun");
	cJSON_AddStringToObject(s, "listen", se->listen_txt);
	cJSON_AddNumberToObject(s, "rate", se->rate);
	cJSON_AddNumberToObject(s, "burst", se->burst);
	arr = cJSON_AddArrayToObject(s, "shards");
	for (unsigned int i = 0; i < eng->nshards; i++) {
		struct stun_shard *ss = __atomic_load_n(&se->sh[i], __ATOMIC_ACQUIRE);
		cJSON *e = cJSON_CreateObject();

		for (int k = 0; k < STUN_ENG_CNT_MAX; k++) {
			uint64_t v = ss ? __atomic_load_n(&ss->cnt[k], __ATOMIC_RELAXED) : 0;

			cJSON_AddNumberToObject(e, stun_eng_cnt_names[k], (double)v);
			total[k] += v;
		}
		cJSON_AddItemToArray(arr, e);
	}
	c = cJSON_AddObjectToObject(s, "counters");
	for (int k = 0; k < STUN_ENG_CNT_MAX; k++) {
		cJSON_AddNumberToObject(c, stun_eng_cnt_names[k], (double)total[k]);
	}
}

void stun_eng_close(struct engine *eng)
{
	struct stun_eng *se = eng->stun;

	if (!se) {
		return;
	}
	steer_eng_group_del(eng, STEER_GROUP_STUN);
	for (unsigned int i = 0; i < se->nfd; i++) {
		close(se->fd[i]);
		if (se->sh[i]) {
			stun_rl_cleanup(&se->sh[i]->srv.rl);
			free(se->sh[i]);
		}
	}
	free(se);
	eng->stun = NULL;
}
