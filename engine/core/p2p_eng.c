// SPDX-License-Identifier: MIT
/*
 * libp2p, control-thread side (see p2p_host.h): identity, listeners, the peer/counters JSON
 * and dial requests handed to shard 0.
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "engine.h"
#include "natx/err.h"
#include "natx/log.h"
#include "natx/udata.h"
#include "p2p_host.h"

#define MOD "p2p"

enum { P2P_KEY_FILE_MAX = 4096 };

/* Why the last p2p_eng_start failed (control thread only), for p2p.peer's error. */
static char p2p_start_error[256];

const char *p2p_eng_error(void)
{
	return p2p_start_error;
}

/* p2p_key_load - read the PrivateKey protobuf in @path into @idn. */
static int p2p_key_load(struct p2p_identity *idn, const char *path, char *err, size_t errlen)
{
	uint8_t buf[P2P_KEY_FILE_MAX];
	ssize_t n;
	int fd, ret;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		ret = -errno;
		snprintf(err, errlen, "--p2p-key-file %s: %s", path, strerror(errno));
		return ret;
	}
	n = read(fd, buf, sizeof(buf));
	ret = n < 0 ? -errno : 0;
	close(fd);
	if (ret) {
		snprintf(err, errlen, "--p2p-key-file %s: %s", path, strerror(-ret));
		return ret;
	}
	ret = p2p_identity_from_privkey(idn, buf, (size_t)n);
	memset(buf, 0, sizeof(buf));
	if (ret) {
		snprintf(err, errlen, "--p2p-key-file %s: not an Ed25519 libp2p private key (%s)",
			 path, natx_strerror(ret));
	}
	return ret;
}

/* p2p_listen_socket - one SO_REUSEPORT listener on @ss (port read back into @ss). */
static int p2p_listen_socket(struct sockaddr_storage *ss, char *err, size_t errlen)
{
	socklen_t sl = ss->ss_family == AF_INET6 ? sizeof(struct sockaddr_in6) :
						   sizeof(struct sockaddr_in);
	int one = 1, fd, ret;

	fd = socket(ss->ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		goto fail;
	}
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one));
	if (ss->ss_family == AF_INET6) {
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
	}
	if (bind(fd, (struct sockaddr *)ss, sl) || listen(fd, 1024) ||
	    getsockname(fd, (struct sockaddr *)ss, &sl)) {
		goto fail;
	}
	return fd;
fail:
	ret = -errno;
	snprintf(err, errlen, "libp2p listen: %s", strerror(errno));
	if (fd >= 0) {
		close(fd);
	}
	return ret;
}

/* p2p_port_probe - -EADDRINUSE when anything holds @ss's port (even with SO_REUSEPORT). */
static int p2p_port_probe(const struct sockaddr_storage *ss)
{
	socklen_t sl = ss->ss_family == AF_INET6 ? sizeof(struct sockaddr_in6) :
						   sizeof(struct sockaddr_in);
	int one = 1, fd, ret = 0;

	fd = socket(ss->ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		return -errno;
	}
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (ss->ss_family == AF_INET6) {
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
	}
	if (bind(fd, (const struct sockaddr *)ss, sl)) {
		ret = -errno;
	}
	close(fd);
	return ret;
}

/* p2p_shard_msg - MSG_RING to shard @i: UD_P2P control message @slot. */
static int p2p_shard_msg(struct engine *eng, unsigned int i, uint32_t slot)
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
	io_uring_prep_msg_ring(sqe, eng->shards[i]->ring.ring_fd, 0,
			       udata_pack(UD_P2P, 3, 0xff, 0, slot), 0);
	io_uring_sqe_set_data64(sqe, udata_pack(UD_NONE, 0, 0, 0, 0));
	ret = io_uring_submit(&eng->ctl_ring);
	return ret < 0 ? ret : 0;
}

int p2p_eng_start(struct engine *eng, const char *key_file, const char *listen, char *err,
		  size_t errlen)
{
	struct sockaddr_storage ss;
	struct p2p_eng *pe;
	uint8_t bin[MADDR_MAX_LEN];
	size_t blen;
	int has_id = 0, ret;

	if (eng->p2p) {
		snprintf(err, errlen, "libp2p already started");
		return -EALREADY;
	}
	pe = calloc(1, sizeof(*pe));
	if (!pe) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	ret = p2p_key_load(&pe->idn, key_file, err, errlen);
	if (ret) {
		goto free_pe;
	}
	ret = maddr_from_text(listen, bin, sizeof(bin), &blen);
	if (!ret) {
		ret = maddr_to_sockaddr(bin, blen, &ss, NULL, &has_id);
	}
	if (ret || has_id) {
		snprintf(err, errlen, "--p2p-listen '%.100s': need /ip4|ip6/ADDR/tcp/PORT", listen);
		ret = -EINVAL;
		goto wipe_idn;
	}
	if (((struct sockaddr_in *)&ss)->sin_port && p2p_port_probe(&ss)) {
		snprintf(err, errlen, "--p2p-listen '%.100s': address in use", listen);
		ret = -EADDRINUSE;
		goto wipe_idn;
	}
	for (unsigned int i = 0; i < eng->nshards && i < 64; i++) {
		/* The first bind picks the port when it is 0; the others share it. */
		ret = p2p_listen_socket(&ss, err, errlen);
		if (ret < 0) {
			goto close_lfd;
		}
		pe->lfd[pe->nlfd++] = ret;
	}
	ret = maddr_from_sockaddr((struct sockaddr *)&ss, pe->laddr, sizeof(pe->laddr),
				  &pe->laddr_len);
	if (ret ||
	    maddr_to_text(pe->laddr, pe->laddr_len, pe->laddr_txt, sizeof(pe->laddr_txt)) < 0) {
		snprintf(err, errlen, "libp2p listen address not representable");
		ret = -EINVAL;
		goto close_lfd;
	}
	pe->laddrs[0] = pe->laddr;
	pe->laddr_lens[0] = pe->laddr_len;
	peerid_to_text(&pe->idn.id, pe->peer_id, sizeof(pe->peer_id));
	/* Published before the MSG_RING that tells the shards to use it. */
	__atomic_store_n(&eng->p2p, pe, __ATOMIC_RELEASE);
	for (unsigned int i = 0; i < eng->nshards; i++) {
		if (p2p_shard_msg(eng, i, 0)) {
			pr_err(MOD, "cannot start libp2p on shard %u", i);
		}
	}
	pr_info(MOD, "libp2p peer %s listening on %s (%u shards)", pe->peer_id, pe->laddr_txt,
		pe->nlfd);
	return 0;

close_lfd:
	while (pe->nlfd) {
		close(pe->lfd[--pe->nlfd]);
	}
wipe_idn:
	p2p_identity_cleanup(&pe->idn);
free_pe:
	free(pe);
	snprintf(p2p_start_error, sizeof(p2p_start_error), "%s", err);
	return ret;
}

void p2p_eng_stop(struct engine *eng)
{
	struct p2p_eng *pe = eng->p2p;

	if (!pe) {
		return;
	}
	while (pe->nlfd) {
		close(pe->lfd[--pe->nlfd]);
	}
	for (int r = 0; r < P2P_REQ_MAX; r++) {
		cJSON_Delete(pe->req[r].result);
	}
	p2p_identity_cleanup(&pe->idn);
	free(pe);
	eng->p2p = NULL;
}

cJSON *p2p_eng_json(struct engine *eng)
{
	struct p2p_eng *pe = eng->p2p;
	struct p2p_shard_stats sum = { 0 };
	cJSON *o, *c;

	if (!pe) {
		return NULL;
	}
	for (unsigned int i = 0; i < eng->nshards && i < 64; i++) {
		const struct p2p_shard_stats *s = &pe->st[i];

		sum.conns_open += stat_get(&s->conns_open);
		sum.conns_in += stat_get(&s->conns_in);
		sum.conns_out += stat_get(&s->conns_out);
		sum.conns_established += stat_get(&s->conns_established);
		sum.conns_failed += stat_get(&s->conns_failed);
		sum.handshake_failed += stat_get(&s->handshake_failed);
		sum.conns_refused += stat_get(&s->conns_refused);
		sum.bytes_in += stat_get(&s->bytes_in);
		sum.bytes_out += stat_get(&s->bytes_out);
		sum.pings_served += stat_get(&s->pings_served);
		sum.dials_failed += stat_get(&s->dials_failed);
	}
	o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "peer_id", pe->peer_id);
	cJSON_AddItemToArray(cJSON_AddArrayToObject(o, "listen_addrs"),
			     cJSON_CreateString(pe->laddr_txt));
	c = cJSON_AddObjectToObject(o, "counters");
#define P2P_J(f) cJSON_AddNumberToObject(c, #f, (double)sum.f)
	P2P_J(conns_open);
	P2P_J(conns_in);
	P2P_J(conns_out);
	P2P_J(conns_established);
	P2P_J(conns_failed);
	P2P_J(handshake_failed);
	P2P_J(conns_refused);
	P2P_J(bytes_in);
	P2P_J(bytes_out);
	P2P_J(pings_served);
	P2P_J(dials_failed);
#undef P2P_J
	return o;
}

int p2p_eng_request(struct engine *eng, enum p2p_req_kind kind, const char *maddr,
		    unsigned int count, uint32_t timeout_ms, cJSON **out, char *err, size_t errlen)
{
	struct p2p_eng *pe = eng->p2p;
	struct p2p_req *q = NULL;
	uint8_t bin[MADDR_MAX_LEN];
	uint64_t deadline;
	size_t blen;
	int r, ret, expect;

	*out = NULL;
	if (!pe) {
		snprintf(err, errlen, "libp2p is not enabled in this engine");
		return -ENOTCONN;
	}
	for (r = 0; r < P2P_REQ_MAX; r++) {
		if (__atomic_load_n(&pe->req[r].state, __ATOMIC_ACQUIRE) == P2P_REQ_FREE) {
			q = &pe->req[r];
			break;
		}
	}
	if (!q) {
		snprintf(err, errlen, "too many libp2p requests in flight");
		return -EBUSY;
	}
	memset(&q->ss, 0, sizeof(q->ss));
	q->has_id = 0;
	ret = maddr_from_text(maddr, bin, sizeof(bin), &blen);
	if (!ret) {
		ret = maddr_to_sockaddr(bin, blen, &q->ss, &q->id, &q->has_id);
	}
	if (ret) {
		snprintf(err, errlen, "'%.200s': need /ip4|ip6/ADDR/tcp/PORT[/p2p/ID]", maddr);
		return -EINVAL;
	}
	q->kind = kind;
	q->count = count ? count : 1;
	q->result = NULL;
	q->err = 0;
	__atomic_store_n(&q->state, P2P_REQ_QUEUED, __ATOMIC_RELEASE);
	ret = p2p_shard_msg(eng, 0, (uint32_t)r + 1);
	if (ret) {
		__atomic_store_n(&q->state, P2P_REQ_FREE, __ATOMIC_RELEASE);
		snprintf(err, errlen, "cannot reach shard 0");
		return ret;
	}
	deadline = now_ms_get() + timeout_ms;
	while (__atomic_load_n(&q->state, __ATOMIC_ACQUIRE) == P2P_REQ_QUEUED &&
	       now_ms_get() < deadline) {
		usleep(2000);
	}
	expect = P2P_REQ_QUEUED;
	if (__atomic_compare_exchange_n(&q->state, &expect, P2P_REQ_ABANDONED, false,
					__ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
		snprintf(err, errlen, "no answer from %.200s within %u ms", maddr, timeout_ms);
		return -ETIMEDOUT;
	}
	ret = q->err;
	if (ret) {
		snprintf(err, errlen, "%.200s: %s", maddr, natx_strerror(ret));
		cJSON_Delete(q->result);
	} else {
		*out = q->result;
	}
	q->result = NULL;
	__atomic_store_n(&q->state, P2P_REQ_FREE, __ATOMIC_RELEASE);
	return ret;
}
