// SPDX-License-Identifier: MIT
/*
 * The engine's STUN Binding responder on the shards (stun_eng.h).
 *
 * Ownership: struct stun_eng (sockets, settings) belongs to the control thread; each shard
 * allocates its struct stun_shard and reaches it only through sh->stun. The control thread
 * keeps a copy of each pointer (se->sh[i]) to read the published counters and to free the
 * memory once the shard has let go of it (stop acked, or the shard thread has ended).
 * Start/stop travel as MSG_RING messages with op UD_STUN, dir 2; shards answer with the usual
 * UD_ACK (MSG_LISTEN_ADD / MSG_LISTEN_RM) on slot STUN_ACK_SLOT.
 */
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "natx/log.h"
#include "natx/udata.h"
#include "steer_eng.h"
#include "pktinfo.h"
#include "stun_eng.h"
#include "stun_server.h"

#define MOD "stun"

enum {
	STUN_SLOTS = 1024, /* answers in flight per shard: one per UDP buffer by default */
	STUN_RL_ENTRIES = 65536,
	STUN_ACK_SLOT = FWD_MAX + 1, /* no forward has this slot */
	STUN_ACK_MS = 5000,
};

/* Counters beyond the responder's own (enum natx_stun_counter). */
enum { STUN_ENG_SEND_FAILED = NATX_STUN_CNT_MAX, STUN_ENG_NO_SLOT, STUN_ENG_CNT_MAX };

static const char *const stun_eng_cnt_names[STUN_ENG_CNT_MAX] = {
	[NATX_STUN_CNT_ANSWERED] = "answered",	[NATX_STUN_CNT_RATE_LIMITED] = "rate_limited",
	[NATX_STUN_CNT_PASSED] = "passed",	[NATX_STUN_CNT_MALFORMED] = "malformed",
	[STUN_ENG_SEND_FAILED] = "send_failed", [STUN_ENG_NO_SLOT] = "no_slot",
};

/* Room for the one control message received and sent: the request's destination address. */
#define STUN_CTL_LEN CMSG_SPACE(sizeof(struct in6_pktinfo))
#define STUN_NAME_LEN ((sizeof(struct sockaddr_in6) + 7) & ~(size_t)7)
_Static_assert(sizeof(struct io_uring_recvmsg_out) % 8 == 0, "control area alignment");

/* One answer in flight: the sendmsg header and what it points to. */
struct stun_slot {
	struct msghdr m;
	struct iovec iov;
	struct sockaddr_storage to;
	union {
		size_t align; /* struct cmsghdr alignment (its flexible array rules it out here) */
		uint8_t b[STUN_CTL_LEN];
	} ctl; /* IP_PKTINFO / IPV6_PKTINFO: answer from the address the request was sent to */
	uint8_t buf[STUN_RESP_MAX_LEN + 64];
};

struct stun_shard {
	struct stun_server srv; /* limiter and counters only (I/O is the ring's) */
	int fd;
	struct msghdr rmsg; /* multishot recvmsg template */
	uint8_t armed, rearm, stopping;
	uint16_t nfree; /* free slots: free[0 .. nfree) */
	uint16_t free[STUN_SLOTS];
	uint64_t cnt[STUN_ENG_CNT_MAX]; /* published copies, read by the control thread */
	struct stun_slot slot[STUN_SLOTS];
};

_Static_assert(STUN_SLOTS <= 65536, "slot indexes are 16-bit");

struct stun_eng {
	int fd[SHARDS_MAX];
	unsigned int nfd;
	char listen_arg[64]; /* as asked (to recognise a repeated request) */
	char listen_txt[64]; /* as bound */
	uint32_t rate, burst;
	struct stun_shard *sh[SHARDS_MAX]; /* see the ownership note above */
};

/* stun_cnt_add - single-writer counter update readable from the control thread. */
static void stun_cnt_add(uint64_t *c, uint64_t n)
{
	__atomic_store_n(c, __atomic_load_n(c, __ATOMIC_RELAXED) + n, __ATOMIC_RELAXED);
}

/* stun_eng_socket - one SO_REUSEPORT UDP socket on @ss (pktinfo.h); port read back into @ss. */
static int stun_eng_socket(struct sockaddr_storage *ss, socklen_t sl)
{
	int rcv = 4 << 20, fd = pktinfo_udp_socket(ss, sl, false);

	if (fd >= 0 && setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &rcv, sizeof(rcv))) {
		setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcv, sizeof(rcv));
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

/* stun_eng_shards_up - the shard threads run (MSG_RING reaches them). */
static bool stun_eng_shards_up(const struct engine *eng)
{
	return eng->nshards && eng->shards[eng->nshards - 1];
}

/* stun_eng_msg_all - control thread: post start (@start) or stop to every shard, wait acks. */
static int stun_eng_msg_all(struct engine *eng, bool start)
{
	enum shard_msg ack = start ? MSG_LISTEN_ADD : MSG_LISTEN_RM;
	unsigned int sent = 0;
	int res = 0, ret;

	for (unsigned int i = 0; i < eng->nshards; i++) {
		struct io_uring_sqe *sqe = io_uring_get_sqe(&eng->ctl_ring);

		if (!sqe) {
			io_uring_submit(&eng->ctl_ring);
			sqe = io_uring_get_sqe(&eng->ctl_ring);
			if (!sqe) {
				break;
			}
		}
		io_uring_prep_msg_ring(sqe, eng->shards[i]->ring.ring_fd, 0,
				       udata_pack(UD_STUN, 2, 0xff, start, 0), 0);
		io_uring_sqe_set_data64(sqe, udata_pack(UD_NONE, 0, 0, 0, 0));
		sent++;
	}
	ret = io_uring_submit(&eng->ctl_ring);
	if (ret < 0) {
		return ret;
	}
	if (engine_wait_acks(eng, ack, STUN_ACK_SLOT, sent, STUN_ACK_MS, &res) < eng->nshards) {
		return res ? res : -ETIMEDOUT;
	}
	return res;
}

/* stun_eng_free - close the sockets and free what the shards no longer use. */
static void stun_eng_free(struct engine *eng, struct stun_eng *se)
{
	steer_eng_group_del(eng, STEER_GROUP_STUN);
	for (unsigned int i = 0; i < se->nfd; i++) {
		close(se->fd[i]);
	}
	for (unsigned int i = 0; i < SHARDS_MAX; i++) {
		if (se->sh[i]) {
			stun_rl_cleanup(&se->sh[i]->srv.rl);
			free(se->sh[i]);
		}
	}
	free(se);
}

int stun_eng_open(struct engine *eng, const char *listen, uint32_t rate, uint32_t burst, char *err,
		  size_t errlen)
{
	struct sockaddr_storage ss;
	struct stun_eng *se = eng->stun;
	socklen_t sl;
	int ret;

	if (!burst) {
		burst = rate;
	}
	if (se && !strcmp(se->listen_arg, listen) && se->rate == rate && se->burst == burst) {
		return 0;
	}
	if (strlen(listen) >= sizeof(se->listen_arg) || stun_sockaddr_parse(listen, &ss, &sl)) {
		snprintf(err, errlen, "STUN listen address '%.64s': not IPv4:PORT or [IPv6]:PORT",
			 listen);
		return -EINVAL;
	}
	stun_eng_close(eng); /* a changed setting: the old sockets go first (same port) */
	if (((struct sockaddr_in *)&ss)->sin_port) {
		ret = stun_eng_port_probe(&ss, sl);
		if (ret) {
			snprintf(err, errlen, "STUN listen %.64s: %s", listen, strerror(-ret));
			return ret;
		}
	}
	se = calloc(1, sizeof(*se));
	if (!se) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	snprintf(se->listen_arg, sizeof(se->listen_arg), "%s", listen);
	se->rate = rate;
	se->burst = burst;
	for (se->nfd = 0; se->nfd < eng->nshards; se->nfd++) {
		/* The first bind picks the port when 0 was asked; the others join it. */
		ret = stun_eng_socket(&ss, sl);
		if (ret < 0) {
			snprintf(err, errlen, "STUN listen %.64s: %s", listen, strerror(-ret));
			goto free_se;
		}
		se->fd[se->nfd] = ret;
	}
	stun_sockaddr_format((struct sockaddr *)&ss, se->listen_txt, sizeof(se->listen_txt));
	steer_eng_group_add(eng, STEER_GROUP_STUN, se->fd, se->nfd, 0, STEER_ADDR_ONLY);
	/* Published before the MSG_RING that names it (or before the shard threads start). */
	__atomic_store_n(&eng->stun, se, __ATOMIC_RELEASE);
	if (stun_eng_shards_up(eng)) {
		ret = stun_eng_msg_all(eng, true);
		if (ret) {
			snprintf(err, errlen, "shards did not take the STUN sockets: %s",
				 strerror(-ret));
			stun_eng_close(eng);
			return ret;
		}
	}
	pr_info(MOD, "STUN Binding responder on %s, %u shards, rate %u/s burst %u", se->listen_txt,
		se->nfd, se->rate, se->burst);
	return 0;

free_se:
	stun_eng_free(eng, se);
	return ret;
}

void stun_eng_close(struct engine *eng)
{
	struct stun_eng *se = eng->stun;
	int ret;

	if (!se) {
		return;
	}
	if (stun_eng_shards_up(eng)) {
		ret = stun_eng_msg_all(eng, false);
		if (ret) {
			/* A shard did not let go: leak its state rather than free it under it. */
			pr_err(MOD, "STUN responder stop not acknowledged: %s", strerror(-ret));
			memset(se->sh, 0, sizeof(se->sh));
		}
	}
	pr_info(MOD, "STUN Binding responder on %s closed", se->listen_txt);
	eng->stun = NULL;
	stun_eng_free(eng, se);
}

/* stun_eng_arm - multishot recvmsg into the shard's UDP buffer ring. */
static void stun_eng_arm(struct shard *sh)
{
	struct stun_shard *ss = sh->stun;
	struct io_uring_sqe *sqe = shard_sqe(sh);

	memset(&ss->rmsg, 0, sizeof(ss->rmsg));
	/*
	 * The multishot buffer is header (16) | name (msg_namelen) | control | payload: a name
	 * area of 32 rather than 28 bytes keeps the control messages 8-byte aligned.
	 */
	ss->rmsg.msg_namelen = STUN_NAME_LEN;
	ss->rmsg.msg_controllen = STUN_CTL_LEN;
	io_uring_prep_recvmsg_multishot(sqe, ss->fd, &ss->rmsg, 0);
	sqe->flags |= IOSQE_BUFFER_SELECT;
	sqe->buf_group = UDP_BUF_GROUP;
	io_uring_sqe_set_data64(sqe, udata_pack(UD_STUN, 0, sh->idx, 0, 0));
	ss->armed = 1;
}

/* stun_eng_shard_open - allocate this shard's state for @se and arm. 0 or -ENOMEM. */
static int stun_eng_shard_open(struct shard *sh, struct stun_eng *se)
{
	struct stun_shard *ss = calloc(1, sizeof(*ss));

	if (!ss || stun_rl_init(&ss->srv.rl, se->rate, se->burst, STUN_RL_ENTRIES)) {
		pr_err(MOD, "shard %u: out of memory, not answering STUN", sh->idx);
		free(ss);
		return -ENOMEM;
	}
	ss->srv.fd = -1;
	ss->fd = se->fd[sh->idx];
	for (uint32_t i = 0; i < STUN_SLOTS; i++) {
		ss->free[i] = (uint16_t)(STUN_SLOTS - 1 - i);
	}
	ss->nfree = STUN_SLOTS;
	sh->stun = ss;
	__atomic_store_n(&se->sh[sh->idx], ss, __ATOMIC_RELEASE); /* read by stun_eng_json */
	stun_eng_arm(sh);
	return 0;
}

void stun_eng_shard_start(struct shard *sh)
{
	struct stun_eng *se = __atomic_load_n(&sh->eng->stun, __ATOMIC_ACQUIRE);

	if (se) {
		stun_eng_shard_open(sh, se);
	}
}

/* stun_eng_maybe_stopped - a stop is pending and nothing is in flight: let go and ack. */
static void stun_eng_maybe_stopped(struct shard *sh)
{
	struct stun_shard *ss = sh->stun;

	if (!ss || !ss->stopping || ss->armed || ss->nfree != STUN_SLOTS) {
		return;
	}
	sh->stun = NULL; /* the control thread frees it after the ack */
	shard_ack(sh, MSG_LISTEN_RM, STUN_ACK_SLOT, 0);
}

/* stun_eng_shard_msg - start (@start) or stop request from the control thread. */
static void stun_eng_shard_msg(struct shard *sh, bool start)
{
	struct stun_shard *ss = sh->stun;

	if (start) {
		struct stun_eng *se = __atomic_load_n(&sh->eng->stun, __ATOMIC_ACQUIRE);

		shard_ack(sh, MSG_LISTEN_ADD, STUN_ACK_SLOT,
			  ss ? -EEXIST : (se ? stun_eng_shard_open(sh, se) : -ENOENT));
		return;
	}
	if (!ss) {
		shard_ack(sh, MSG_LISTEN_RM, STUN_ACK_SLOT, 0);
		return;
	}
	ss->stopping = 1;
	if (ss->armed) {
		struct io_uring_sqe *sqe = shard_sqe(sh);

		io_uring_prep_cancel64(sqe, udata_pack(UD_STUN, 0, sh->idx, 0, 0), 0);
		io_uring_sqe_set_data64(sqe, udata_pack(UD_NONE, 0, sh->idx, 0, 0));
	}
	stun_eng_maybe_stopped(sh);
}

/* stun_eng_publish - copy the responder's counters for readers on other threads. */
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
		ss->rearm = !ss->stopping;
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
	if (ss->stopping) {
		goto drop;
	}
	if (!out || out->namelen > sizeof(struct sockaddr_in6) ||
	    out->namelen < sizeof(struct sockaddr_in)) {
		ss->srv.counters[NATX_STUN_CNT_PASSED]++;
		goto drop;
	}
	if (out->flags & (MSG_TRUNC | MSG_CTRUNC)) {
		/* Longer than a UDP buffer: like natx-stund's truncation, malformed. */
		ss->srv.counters[NATX_STUN_CNT_MALFORMED]++;
		goto drop;
	}
	i = ss->nfree ? ss->free[ss->nfree - 1] : -1;
	if (i < 0) {
		/* STUN_SLOTS answers still being sent: backed up; drop, counted. */
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
	sl->m.msg_controllen = pktinfo_reply_ctl(out, &ss->rmsg, sl->ctl.b, sizeof(sl->ctl.b));
	sl->m.msg_control = sl->m.msg_controllen ? sl->ctl.b : NULL;
	ss->nfree--;
	sqe = shard_sqe(sh);
	io_uring_prep_sendmsg(sqe, ss->fd, &sl->m, 0);
	io_uring_sqe_set_data64(sqe, udata_pack(UD_STUN, 1, sh->idx, 0, (uint32_t)i));
drop:
	bufring_drop(&sh->ubr, bid);
	stun_eng_publish(ss);
}

void stun_eng_handle_cqe(struct shard *sh, struct io_uring_cqe *cqe)
{
	struct stun_shard *ss = sh->stun;
	uint32_t i = udata_slot(cqe->user_data);

	switch (udata_dir(cqe->user_data)) {
	case 2:
		stun_eng_shard_msg(sh, udata_bid(cqe->user_data) != 0);
		return;
	case 0:
		if (ss) {
			stun_eng_recv(sh, ss, cqe);
		}
		break;
	case 1:
		if (!ss) {
			return;
		}
		if (i < STUN_SLOTS && ss->nfree < STUN_SLOTS) {
			ss->free[ss->nfree++] = (uint16_t)i;
		}
		if (cqe->res < 0) {
			stun_cnt_add(&ss->cnt[STUN_ENG_SEND_FAILED], 1);
		}
		break;
	}
	stun_eng_maybe_stopped(sh);
}

void stun_eng_shard_tick(struct shard *sh)
{
	struct stun_shard *ss = sh->stun;

	if (ss && ss->rearm && !ss->armed && !ss->stopping && !sh->stop) {
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
