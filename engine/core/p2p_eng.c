// SPDX-License-Identifier: MIT
/*
 * libp2p, control-thread side (see p2p_host.h): identity, listeners, the peer/counters JSON
 * and dial requests handed to shard 0.
 */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
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
#include "p2p/relay_client.h"
#include "p2p_host.h"
#include "p2p_int.h"
#include "steer_eng.h"

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

/*
 * p2p_ctl_reap - consume the control ring's completions of our own MSG_RING sends (tagged
 * UD_P2P) from the head of the queue, so they neither pile up nor reach engine_wait_acks
 * (which reads a failed UD_NONE send as a failed ack). Stops at the first foreign entry.
 */
static void p2p_ctl_reap(struct engine *eng)
{
	struct io_uring_cqe *cqe;

	while (!io_uring_peek_cqe(&eng->ctl_ring, &cqe) && udata_op(cqe->user_data) == UD_P2P) {
		if (cqe->res < 0) {
			pr_warn(MOD, "libp2p message to a shard failed: %s", strerror(-cqe->res));
		}
		io_uring_cqe_seen(&eng->ctl_ring, cqe);
	}
}

/* p2p_shard_msg - MSG_RING to shard @i: UD_P2P control message @slot. */
int p2p_shard_msg(struct engine *eng, unsigned int i, uint32_t slot)
{
	struct io_uring_sqe *sqe;
	int ret;

	p2p_ctl_reap(eng);
	sqe = io_uring_get_sqe(&eng->ctl_ring);
	if (!sqe) {
		io_uring_submit(&eng->ctl_ring);
		sqe = io_uring_get_sqe(&eng->ctl_ring);
		if (!sqe) {
			return -EBUSY;
		}
	}
	io_uring_prep_msg_ring(sqe, eng->shards[i]->ring.ring_fd, 0,
			       udata_pack(UD_P2P, 3, 0xff, 0, slot), 0);
	io_uring_sqe_set_data64(sqe, udata_pack(UD_P2P, 0, 0, 0, slot));
	ret = io_uring_submit(&eng->ctl_ring);
	p2p_ctl_reap(eng);
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
	pthread_mutex_init(&pe->lock, NULL);
	pe->dcutr_on = 1; /* natxd sets NAT_TRAVERSAL_ENABLE_HOLE_PUNCHING with p2p.dcutr */
	pe->dcutr_ttl = P2P_DCUTR_PRIME_TTL;
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
	steer_eng_group_add(eng, STEER_GROUP_P2P, pe->lfd, pe->nlfd, 0, 0);
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
	pthread_mutex_destroy(&pe->lock);
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
	for (int i = 0; i < P2P_SVC_MAX; i++) {
		/* CLOSING listeners were closed by shard 0 at its teardown. */
		if (pe->svc[i].kind == P2P_SVC_FORWARD) {
			close(pe->svc[i].lfd);
		}
	}
	for (int r = 0; r < P2P_REQ_MAX; r++) {
		cJSON_Delete(pe->req[r].result);
	}
	p2p_handoffs_drop(pe); /* connections a shard handed on after shard 0 stopped */
	pthread_mutex_destroy(&pe->lock);
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
		sum.conns_migrated += stat_get(&s->conns_migrated);
		sum.hop_unmovable += stat_get(&s->hop_unmovable);
		sum.relayed_open += stat_get(&s->relayed_open);
		sum.relayed_in += stat_get(&s->relayed_in);
		sum.relayed_out += stat_get(&s->relayed_out);
		sum.relayed_failed += stat_get(&s->relayed_failed);
		sum.flows_open += stat_get(&s->flows_open);
		sum.flows_total += stat_get(&s->flows_total);
		sum.flows_migrated += stat_get(&s->flows_migrated);
		sum.flows_repaired += stat_get(&s->flows_repaired);
		sum.flows_failed += stat_get(&s->flows_failed);
		sum.flow_paths += stat_get(&s->flow_paths);
		sum.flow_resent += stat_get(&s->flow_resent);
	}
	o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "peer_id", pe->peer_id);
	cJSON_AddItemToArray(cJSON_AddArrayToObject(o, "listen_addrs"),
			     cJSON_CreateString(pe->laddr_txt));
	c = cJSON_AddArrayToObject(o, "circuit_addrs");
	pthread_mutex_lock(&pe->lock);
	for (unsigned int i = 0; i < pe->n_circ_addrs; i++) {
		cJSON_AddItemToArray(c, cJSON_CreateString(pe->circ_addrs[i]));
	}
	pthread_mutex_unlock(&pe->lock);
	cJSON_AddBoolToObject(o, "relay_server", __atomic_load_n(&pe->relay_on, __ATOMIC_ACQUIRE));
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
	P2P_J(conns_migrated);
	P2P_J(hop_unmovable);
	P2P_J(relayed_open);
	P2P_J(relayed_in);
	P2P_J(relayed_out);
	P2P_J(relayed_failed);
	P2P_J(flows_open);
	P2P_J(flows_total);
	P2P_J(flows_migrated);
	P2P_J(flows_repaired);
	P2P_J(flows_failed);
	P2P_J(flow_paths);
	P2P_J(flow_resent);
#undef P2P_J
	return o;
}

/*
 * p2p_req_addr - parse @maddr into @q: a /p2p-circuit address (relay address + target) or a
 * direct /ip4|ip6/.../tcp/N[/p2p/ID]. Returns 0 or -EINVAL.
 */
static int p2p_req_addr(struct p2p_req *q, const char *maddr)
{
	uint8_t bin[MADDR_MAX_LEN], rbin[MADDR_MAX_LEN];
	size_t blen, rlen;
	int has_id = 0;

	memset(&q->ss, 0, sizeof(q->ss));
	q->has_id = 0;
	q->circuit = false;
	if (maddr_from_text(maddr, bin, sizeof(bin), &blen)) {
		return -EINVAL;
	}
	if (!relay_circuit_parse(bin, blen, rbin, sizeof(rbin), &rlen, &q->id, &q->target)) {
		if (maddr_to_sockaddr(rbin, rlen, &q->ss, NULL, &has_id)) {
			return -EINVAL;
		}
		memcpy(q->addr, rbin, rlen);
		q->addr_len = rlen;
		q->has_id = 1;
		q->circuit = true;
		return 0;
	}
	if (maddr_to_sockaddr(bin, blen, &q->ss, &q->id, &q->has_id)) {
		return -EINVAL;
	}
	memcpy(q->addr, bin, blen);
	q->addr_len = blen;
	return 0;
}

int p2p_eng_request(struct engine *eng, enum p2p_req_kind kind, const char *maddr,
		    unsigned int count, uint32_t timeout_ms, cJSON **out, char *err, size_t errlen)
{
	return p2p_eng_call(eng, 0, kind, maddr, count, timeout_ms, out, err, errlen);
}

int p2p_eng_call(struct engine *eng, unsigned int shard, enum p2p_req_kind kind, const char *maddr,
		 unsigned int count, uint32_t timeout_ms, cJSON **out, char *err, size_t errlen)
{
	struct p2p_eng *pe = eng->p2p;
	struct p2p_req *q = NULL;
	const cJSON *rs;
	uint64_t deadline;
	int r, ret, expect;

	*out = NULL;
	if (!pe) {
		snprintf(err, errlen, "libp2p is not enabled in this engine");
		return -ENOTCONN;
	}
	if (shard >= eng->nshards) {
		snprintf(err, errlen, "no shard %u", shard);
		return -EINVAL;
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
	q->circuit = false;
	if (maddr) {
		ret = p2p_req_addr(q, maddr);
		if (ret || ((kind == P2P_REQ_RESERVE || kind == P2P_REQ_KEEP) &&
			    (q->circuit || !q->has_id))) {
			snprintf(err, errlen, "'%.200s': need /ip4|ip6/ADDR/tcp/PORT%s", maddr,
				 kind == P2P_REQ_RESERVE || kind == P2P_REQ_KEEP ?
					 "/p2p/ID" :
					 "[/p2p/ID] or RELAY/p2p/ID/p2p-circuit/p2p/ID");
			return -EINVAL;
		}
	}
	q->kind = kind;
	q->count = count ? count : 1;
	q->timeout_ms = timeout_ms;
	q->result = NULL;
	q->err = 0;
	__atomic_store_n(&q->state, P2P_REQ_QUEUED, __ATOMIC_RELEASE);
	ret = p2p_shard_msg(eng, shard, (uint32_t)r + 1);
	if (ret) {
		__atomic_store_n(&q->state, P2P_REQ_FREE, __ATOMIC_RELEASE);
		snprintf(err, errlen, "cannot reach shard %u", shard);
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
		snprintf(err, errlen, "no answer from %.200s within %u ms",
			 maddr ? maddr : "the engine", timeout_ms);
		return -ETIMEDOUT;
	}
	ret = q->err;
	if (ret) {
		rs = cJSON_GetObjectItemCaseSensitive(q->result, "relay_status");
		snprintf(err, errlen, "%.200s: %s%s%s", maddr ? maddr : "request",
			 natx_strerror(ret), cJSON_IsString(rs) ? ": relay answered " : "",
			 cJSON_IsString(rs) ? rs->valuestring : "");
		cJSON_Delete(q->result);
	} else {
		*out = q->result;
	}
	q->result = NULL;
	__atomic_store_n(&q->state, P2P_REQ_FREE, __ATOMIC_RELEASE);
	return ret;
}

int p2p_eng_peers_json(struct engine *eng, cJSON **out, char *err, size_t errlen)
{
	cJSON *all = cJSON_CreateObject(), *peers = cJSON_AddArrayToObject(all, "peers"), *kept;
	int ret = 0;

	kept = cJSON_AddArrayToObject(all, "kept");
	for (unsigned int i = 0; i < eng->nshards; i++) {
		cJSON *o = NULL, *it;

		ret = p2p_eng_call(eng, i, P2P_REQ_PEERS, NULL, 0, 5000, &o, err, errlen);
		if (ret) {
			break;
		}
		while ((it = cJSON_GetArrayItem(cJSON_GetObjectItem(o, "peers"), 0))) {
			cJSON_AddItemToArray(peers, cJSON_DetachItemViaPointer(
							    cJSON_GetObjectItem(o, "peers"), it));
		}
		while ((it = cJSON_GetArrayItem(cJSON_GetObjectItem(o, "kept"), 0))) {
			cJSON_AddItemToArray(kept, cJSON_DetachItemViaPointer(
							   cJSON_GetObjectItem(o, "kept"), it));
		}
		cJSON_Delete(o);
	}
	if (ret) {
		cJSON_Delete(all);
		return ret;
	}
	*out = all;
	return 0;
}

/* ---- p2p expose / forward (control thread) ------------------------------------------------- */

/* p2p_hostport - "host:port" or "[v6]:port" (a name is resolved once) into @ss. */
static int p2p_hostport(const char *text, struct sockaddr_storage *ss)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV };
	char host[256];
	const char *colon = strrchr(text, ':');
	struct addrinfo *res;
	size_t hl;

	if (!colon || colon == text || !colon[1] || strlen(colon + 1) > 5) {
		return -EINVAL;
	}
	hl = (size_t)(colon - text);
	if (text[0] == '[') {
		if (hl < 3 || text[hl - 1] != ']') {
			return -EINVAL;
		}
		text++;
		hl -= 2;
	}
	if (hl >= sizeof(host)) {
		return -EINVAL;
	}
	memcpy(host, text, hl);
	host[hl] = '\0';
	for (const char *p = colon + 1; *p; p++) {
		if (*p < '0' || *p > '9') {
			return -EINVAL;
		}
	}
	if (getaddrinfo(host, colon + 1, &hints, &res) || !res) {
		return -ENOENT;
	}
	memset(ss, 0, sizeof(*ss));
	memcpy(ss, res->ai_addr, res->ai_addrlen);
	freeaddrinfo(res);
	return 0;
}

/* p2p_svc_slot - a free service slot, or NULL. */
static struct p2p_svc *p2p_svc_slot(struct p2p_eng *pe)
{
	for (int i = 0; i < P2P_SVC_MAX; i++) {
		if (__atomic_load_n(&pe->svc[i].kind, __ATOMIC_ACQUIRE) == P2P_SVC_FREE) {
			return &pe->svc[i];
		}
	}
	return NULL;
}

static void p2p_svc_write_begin(struct p2p_svc *v)
{
	__atomic_add_fetch(&v->seq, 1, __ATOMIC_RELEASE);
	__atomic_thread_fence(__ATOMIC_RELEASE);
}

/* p2p_svc_publish - end the seqlock write and tell every shard to refresh its view. */
static void p2p_svc_publish(struct engine *eng, struct p2p_svc *v)
{
	__atomic_add_fetch(&v->seq, 1, __ATOMIC_RELEASE);
	__atomic_add_fetch(&eng->p2p->svc_gen, 1, __ATOMIC_RELEASE);
	for (unsigned int i = 0; i < eng->nshards; i++) {
		p2p_shard_msg(eng, i, P2P_MSG_REFRESH);
	}
}

/* p2p_svc_find_proto - the live service of @kind for @protocol, or NULL. */
static struct p2p_svc *p2p_svc_find_proto(struct p2p_eng *pe, int kind, const char *protocol)
{
	for (int i = 0; i < P2P_SVC_MAX; i++) {
		if (__atomic_load_n(&pe->svc[i].kind, __ATOMIC_ACQUIRE) == kind &&
		    !strcmp(pe->svc[i].protocol, protocol)) {
			return &pe->svc[i];
		}
	}
	return NULL;
}

/* p2p_proto_check - a multistream protocol name: "/..." printable, no newline. */
static int p2p_proto_check(const char *protocol, char *err, size_t errlen)
{
	size_t n = strlen(protocol);

	if (protocol[0] != '/' || n < 2 || n >= P2P_PROTO_MAX) {
		snprintf(err, errlen, "protocol must start with / and have 2..%d bytes",
			 P2P_PROTO_MAX - 1);
		return -EINVAL;
	}
	for (size_t i = 0; i < n; i++) {
		if ((unsigned char)protocol[i] <= ' ' || protocol[i] == 0x7f) {
			snprintf(err, errlen, "protocol has a space or control character");
			return -EINVAL;
		}
	}
	return 0;
}

int p2p_eng_expose(struct engine *eng, const char *protocol, const char *target, uint32_t *id,
		   char *err, size_t errlen)
{
	struct p2p_eng *pe = eng->p2p;
	struct sockaddr_storage ss;
	struct p2p_svc *v;
	int ret;

	if (!pe) {
		snprintf(err, errlen, "libp2p is not enabled in this engine");
		return -ENOTCONN;
	}
	ret = p2p_proto_check(protocol, err, errlen);
	if (ret) {
		return ret;
	}
	if (p2p_svc_find_proto(pe, P2P_SVC_EXPOSE, protocol)) {
		snprintf(err, errlen, "%.100s is already exposed", protocol);
		return -EEXIST;
	}
	ret = p2p_hostport(target, &ss);
	if (ret) {
		snprintf(err, errlen, "target '%.100s': need host:port", target);
		return ret;
	}
	v = p2p_svc_slot(pe);
	if (!v) {
		snprintf(err, errlen, "at most %d p2p services", P2P_SVC_MAX);
		return -ENOSPC;
	}
	p2p_svc_write_begin(v);
	v->id = ++pe->next_svc_id;
	snprintf(v->protocol, sizeof(v->protocol), "%s", protocol);
	v->addr = ss;
	v->circuit = false;
	v->flow = false;
	v->n_alt = 0;
	snprintf(v->text, sizeof(v->text), "%s", target);
	v->listen_txt[0] = '\0';
	v->lfd = -1;
	memset(v->st, 0, sizeof(v->st));
	__atomic_store_n(&v->kind, P2P_SVC_EXPOSE, __ATOMIC_RELEASE);
	p2p_svc_publish(eng, v);
	*id = v->id;
	return 0;
}

/*
 * p2p_fwd_parse - @text, /ip4|ip6/ADDR/tcp/PORT/p2p/ID or a /p2p-circuit address, into @fa and
 * the peer's ID @pid. 0 or -EINVAL.
 */
static int p2p_fwd_parse(const char *text, struct p2p_fwd_addr *fa, struct peer_id *pid)
{
	uint8_t bin[MADDR_MAX_LEN], rbin[MADDR_MAX_LEN];
	size_t blen, rlen;
	int has_id = 0, ret;

	memset(fa, 0, sizeof(*fa));
	ret = maddr_from_text(text, bin, sizeof(bin), &blen);
	if (!ret && !relay_circuit_parse(bin, blen, rbin, sizeof(rbin), &rlen, &fa->relay, pid)) {
		/* RELAY/p2p/R/p2p-circuit/p2p/ID: streams go through a circuit of the relay */
		fa->circuit = true;
		ret = maddr_to_sockaddr(rbin, rlen, &fa->addr, NULL, &has_id);
		has_id = 1;
	} else if (!ret) {
		ret = maddr_to_sockaddr(bin, blen, &fa->addr, pid, &has_id);
	}
	return ret || !has_id ? -EINVAL : 0;
}

int p2p_eng_forward(struct engine *eng, const char *protocol, const char *listen_at,
		    const char *peer, const struct p2p_fwd_opts *opt, uint32_t *id, char *err,
		    size_t errlen)
{
	static const struct p2p_fwd_opts plain;
	struct p2p_eng *pe = eng->p2p;
	struct sockaddr_storage ls;
	struct p2p_fwd_addr fa, alt[P2P_FWD_ALT_MAX];
	struct peer_id pid, apid;
	uint8_t bin[MADDR_MAX_LEN];
	struct p2p_svc *v;
	socklen_t sl = sizeof(ls);
	size_t blen, n_alt;
	int one = 1, fd, ret;

	opt = opt ? opt : &plain;
	n_alt = opt->n_alt < P2P_FWD_ALT_MAX ? opt->n_alt : P2P_FWD_ALT_MAX;
	if (!pe) {
		snprintf(err, errlen, "libp2p is not enabled in this engine");
		return -ENOTCONN;
	}
	ret = p2p_proto_check(protocol, err, errlen);
	if (ret) {
		return ret;
	}
	if (opt->flow && strlen(protocol) > MIG_NAME_MAX) {
		snprintf(err, errlen, "a flow service name has at most %d bytes", MIG_NAME_MAX);
		return -EINVAL;
	}
	if (p2p_fwd_parse(peer, &fa, &pid)) {
		snprintf(
			err, errlen,
			"peer '%.100s': need /ip4|ip6/ADDR/tcp/PORT/p2p/ID or a /p2p-circuit address",
			peer);
		return -EINVAL;
	}
	for (size_t i = 0; i < n_alt; i++) {
		if (p2p_fwd_parse(opt->alt[i], &alt[i], &apid) || !peerid_equal(&apid, &pid) ||
		    strlen(opt->alt[i]) >= MADDR_TEXT_MAX) {
			snprintf(err, errlen,
				 "alternative address '%.100s': need a multiaddr of the same peer",
				 opt->alt[i]);
			return -EINVAL;
		}
	}
	if (p2p_hostport(listen_at, &ls)) {
		snprintf(err, errlen, "listen '%.100s': need host:port", listen_at);
		return -EINVAL;
	}
	v = p2p_svc_slot(pe);
	if (!v) {
		snprintf(err, errlen, "at most %d p2p services", P2P_SVC_MAX);
		return -ENOSPC;
	}
	fd = socket(ls.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		ret = -errno;
		snprintf(err, errlen, "listen: %s", strerror(errno));
		return ret;
	}
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&ls,
		 ls.ss_family == AF_INET6 ? sizeof(struct sockaddr_in6) :
					    sizeof(struct sockaddr_in)) ||
	    listen(fd, 128) || getsockname(fd, (struct sockaddr *)&ls, &sl)) {
		ret = -errno;
		snprintf(err, errlen, "listen %.100s: %s", listen_at, strerror(errno));
		close(fd);
		return ret;
	}
	p2p_svc_write_begin(v);
	v->id = ++pe->next_svc_id;
	snprintf(v->protocol, sizeof(v->protocol), "%s", protocol);
	v->addr = fa.addr;
	v->peer = pid;
	v->circuit = fa.circuit;
	v->relay = fa.relay;
	v->flow = opt->flow;
	v->repair_ms = opt->repair_ms ? opt->repair_ms : P2P_FLOW_REPAIR_MS;
	v->n_alt = (uint32_t)n_alt;
	for (size_t i = 0; i < n_alt; i++) {
		v->alt[i] = alt[i];
		snprintf(v->alt_text[i], sizeof(v->alt_text[i]), "%s", opt->alt[i]);
	}
	snprintf(v->text, sizeof(v->text), "%s", peer);
	if (maddr_from_sockaddr((struct sockaddr *)&ls, bin, sizeof(bin), &blen) ||
	    maddr_to_text(bin, blen, v->listen_txt, sizeof(v->listen_txt)) < 0) {
		v->listen_txt[0] = '\0';
	}
	v->lfd = fd;
	memset(v->st, 0, sizeof(v->st));
	__atomic_store_n(&v->kind, P2P_SVC_FORWARD, __ATOMIC_RELEASE);
	p2p_svc_publish(eng, v);
	*id = v->id;
	return 0;
}

int p2p_eng_svc_close(struct engine *eng, uint32_t id)
{
	struct p2p_eng *pe = eng->p2p;

	for (int i = 0; pe && i < P2P_SVC_MAX; i++) {
		struct p2p_svc *v = &pe->svc[i];
		int kind = __atomic_load_n(&v->kind, __ATOMIC_ACQUIRE);

		if ((kind != P2P_SVC_EXPOSE && kind != P2P_SVC_FORWARD) || v->id != id) {
			continue;
		}
		p2p_svc_write_begin(v);
		/* A forward's listener is closed by shard 0 once its accept has ended. */
		__atomic_store_n(&v->kind, kind == P2P_SVC_FORWARD ? P2P_SVC_CLOSING : P2P_SVC_FREE,
				 __ATOMIC_RELEASE);
		p2p_svc_publish(eng, v);
		return 0;
	}
	return -ENOENT;
}

cJSON *p2p_eng_svc_json(struct engine *eng)
{
	struct p2p_eng *pe = eng->p2p;
	cJSON *a = cJSON_CreateArray();

	for (int i = 0; pe && i < P2P_SVC_MAX; i++) {
		struct p2p_svc *v = &pe->svc[i];
		int kind = __atomic_load_n(&v->kind, __ATOMIC_ACQUIRE);
		struct p2p_svc_stats sum = { 0 };
		uint64_t fail_at = 0, fail_why = 0;
		cJSON *o;

		if (kind != P2P_SVC_EXPOSE && kind != P2P_SVC_FORWARD) {
			continue;
		}
		for (unsigned int s = 0; s < eng->nshards && s < 64; s++) {
			sum.streams_open += stat_get(&v->st[s].streams_open);
			sum.streams_total += stat_get(&v->st[s].streams_total);
			sum.streams_failed += stat_get(&v->st[s].streams_failed);
			sum.bytes_to_tcp += stat_get(&v->st[s].bytes_to_tcp);
			sum.bytes_to_p2p += stat_get(&v->st[s].bytes_to_p2p);
			sum.flows_migrated += stat_get(&v->st[s].flows_migrated);
			sum.flows_repaired += stat_get(&v->st[s].flows_repaired);
			sum.flows_failed += stat_get(&v->st[s].flows_failed);
			if (__atomic_load_n(&v->st[s].flow_fail_at, __ATOMIC_ACQUIRE) > fail_at) {
				fail_at = __atomic_load_n(&v->st[s].flow_fail_at, __ATOMIC_ACQUIRE);
				fail_why =
					__atomic_load_n(&v->st[s].flow_fail_why, __ATOMIC_RELAXED);
			}
		}
		o = cJSON_CreateObject();
		cJSON_AddNumberToObject(o, "id", v->id);
		cJSON_AddStringToObject(o, "kind", kind == P2P_SVC_EXPOSE ? "expose" : "forward");
		cJSON_AddStringToObject(o, "protocol", v->protocol);
		if (kind == P2P_SVC_EXPOSE) {
			cJSON_AddStringToObject(o, "target", v->text);
		} else {
			cJSON_AddStringToObject(o, "listen", v->listen_txt);
			cJSON_AddStringToObject(o, "peer", v->text);
			cJSON_AddBoolToObject(o, "flow", v->flow);
			if (v->flow) {
				cJSON *alts = cJSON_AddArrayToObject(o, "alt_addrs");

				cJSON_AddNumberToObject(o, "repair_ms", v->repair_ms);
				for (uint32_t k = 0; k < v->n_alt && k < P2P_FWD_ALT_MAX; k++) {
					cJSON_AddItemToArray(alts,
							     cJSON_CreateString(v->alt_text[k]));
				}
			}
		}
		cJSON_AddNumberToObject(o, "streams_open", (double)sum.streams_open);
		cJSON_AddNumberToObject(o, "streams_total", (double)sum.streams_total);
		cJSON_AddNumberToObject(o, "streams_failed", (double)sum.streams_failed);
		cJSON_AddNumberToObject(o, "bytes_to_tcp", (double)sum.bytes_to_tcp);
		cJSON_AddNumberToObject(o, "bytes_to_p2p", (double)sum.bytes_to_p2p);
		cJSON_AddNumberToObject(o, "flows_migrated", (double)sum.flows_migrated);
		cJSON_AddNumberToObject(o, "flows_repaired", (double)sum.flows_repaired);
		cJSON_AddNumberToObject(o, "flows_failed", (double)sum.flows_failed);
		if (fail_at) {
			cJSON *lf = cJSON_AddObjectToObject(o, "last_flow_failure");

			cJSON_AddStringToObject(lf, "reason", p2p_flow_why_text(fail_why));
			cJSON_AddNumberToObject(lf, "at", (double)fail_at);
		}
		cJSON_AddItemToArray(a, o);
	}
	return a;
}
