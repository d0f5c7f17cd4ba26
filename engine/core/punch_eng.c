// SPDX-License-Identifier: MIT
/*
 * Engine punch sessions (punch_eng.h).
 *
 * Ownership: struct punch_eng and each struct punch_sess are allocated and freed by the control
 * thread. A session's receive/send state (rmsg, slots, flags) belongs to its shard from the
 * start message until the shard acks the stop; the control thread then closes and frees it.
 * Counters are single-writer (the shard), published with relaxed atomics. Start/stop travel as
 * MSG_RING messages UD_PUNCH dir 2 (bid 1 start, 0 stop, slot = session index); the shard
 * answers with UD_ACK MSG_LISTEN_ADD / MSG_LISTEN_RM on slot PUNCH_ACK_SLOT. Each shard keeps
 * the sessions it serves in own[shard][] (written only by that shard) for its tick.
 */
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "natx/log.h"
#include "natx/udata.h"
#include "pktinfo.h"
#include "punch_eng.h"
#include "punch_probe.h"
#include "stats.h"
#include "stun_server.h"

#ifdef NATX_HAVE_BPF
#include "punch_steer.h"
#endif

#define MOD "punch"

enum {
	PUNCH_MAX = 64, /* sessions per engine */
	PUNCH_SLOTS = 32, /* ACKs in flight per session */
	PUNCH_PEERS_MAX = 16, /* peer flows given at open; punched sources recorded */
	PUNCH_ACK_SLOT = FWD_MAX + 16, /* no forward (nor the STUN responder) uses this slot */
	PUNCH_ACK_MS = 5000,
};

enum punch_cnt {
	PUNCH_C_PROBES, /* valid PROBE for this session */
	PUNCH_C_ACKS, /* PROBE_ACK sent */
	PUNCH_C_ACKS_IN, /* valid PROBE_ACK for this session received */
	PUNCH_C_DATA, /* no punch magic: the punched flow's traffic */
	PUNCH_C_BAD, /* punch magic, but malformed or another session's id */
	PUNCH_C_SEND_FAILED,
	PUNCH_C_NO_SLOT,
	PUNCH_C_MAX,
};

static const char *const punch_cnt_names[PUNCH_C_MAX] = {
	[PUNCH_C_PROBES] = "probes",   [PUNCH_C_ACKS] = "acks",
	[PUNCH_C_ACKS_IN] = "acks_in", [PUNCH_C_DATA] = "data",
	[PUNCH_C_BAD] = "bad",	       [PUNCH_C_SEND_FAILED] = "send_failed",
	[PUNCH_C_NO_SLOT] = "no_slot",
};

/*
 * Room for the one control message received and sent (IPV6_PKTINFO at most, 40 bytes on
 * Linux): a plain constant, since CMSG_SPACE() is not a constant expression for every compiler.
 */
enum { PUNCH_CTL_LEN = 64 };
_Static_assert(sizeof(struct cmsghdr) + sizeof(struct in6_pktinfo) + 8 <= PUNCH_CTL_LEN,
	       "control buffer holds IPV6_PKTINFO");
#define PUNCH_NAME_LEN ((sizeof(struct sockaddr_in6) + 7) & ~(size_t)7)

struct punch_slot {
	struct msghdr m;
	struct iovec iov;
	struct sockaddr_storage to;
	union {
		size_t align; /* struct cmsghdr alignment (its flexible array rules it out here) */
		uint8_t b[PUNCH_CTL_LEN];
	} ctl;
	uint8_t buf[NATX_PUNCH_HDR_LEN];
};

struct punch_sess {
	/* control thread, read-only for the shard */
	uint8_t sid[NATX_PUNCH_SID_LEN];
	int fd;
	unsigned int shard, idx;
	uint16_t port;
	char listen_txt[64];
	bool registered; /* socket registered with sk_lookup */
	unsigned int npeers;
	struct sockaddr_storage peers[PUNCH_PEERS_MAX];
	/* shard thread */
	struct msghdr rmsg;
	uint8_t armed, rearm, stopping;
	uint16_t nfree;
	uint16_t free[PUNCH_SLOTS];
	struct punch_slot slot[PUNCH_SLOTS];
	/* written by the shard, read by the control thread (relaxed / release-acquire) */
	uint64_t cnt[PUNCH_C_MAX];
	uint32_t npunched; /* entries of punched[] published */
	struct sockaddr_storage punched[PUNCH_PEERS_MAX];
};

struct punch_eng {
	struct punch_sess *sess[PUNCH_MAX];
	struct punch_sess *own[SHARDS_MAX][PUNCH_MAX]; /* row i: written only by shard i */
	bool tried; /* steering attempted */
	char reason[200]; /* why "none" */
	char pin_root[256];
#ifdef NATX_HAVE_BPF
	struct natx_punch_steer *ps;
	uint16_t port_lo, port_hi;
#endif
};

/* punch_cnt_add - single-writer counter update readable from the control thread. */
static void punch_cnt_add(uint64_t *c, uint64_t n)
{
	__atomic_store_n(c, __atomic_load_n(c, __ATOMIC_RELAXED) + n, __ATOMIC_RELAXED);
}

/* punch_eng_get - the engine's punch state, created on first use; NULL when out of memory. */
static struct punch_eng *punch_eng_get(struct engine *eng)
{
	struct punch_eng *pe = eng->punch;

	if (pe) {
		return pe;
	}
	pe = calloc(1, sizeof(*pe));
	if (!pe) {
		return NULL;
	}
	snprintf(pe->pin_root, sizeof(pe->pin_root), "%s",
		 eng->cfg->punch_pin_root ? eng->cfg->punch_pin_root : NATX_BPF_PIN_ROOT);
	if (eng->cfg->steer == STEER_KERNEL) {
		snprintf(pe->reason, sizeof(pe->reason), "--steer kernel");
		pe->tried = true;
	}
#ifndef NATX_HAVE_BPF
	snprintf(pe->reason, sizeof(pe->reason), "built with NATX_WITH_BPF=OFF");
	pe->tried = true;
#endif
	__atomic_store_n(&eng->punch, pe, __ATOMIC_RELEASE);
	return pe;
}

#ifdef NATX_HAVE_BPF
/*
 * punch_eng_steer_cover - make the sk_lookup steering cover @port: open it on first use, or
 * reopen it (the pinned maps are kept, the program swapped) with a wider port range. A failure
 * leaves the sessions unsteered with the reason recorded; only --steer bpf makes it an error.
 */
static int punch_eng_steer_cover(struct engine *eng, struct punch_eng *pe, uint16_t port)
{
	struct natx_punch_steer_cfg cfg = { .pin_root = pe->pin_root };
	struct natx_punch_steer *ps;
	int ret;

	if (pe->ps && port >= pe->port_lo && port <= pe->port_hi) {
		return 0;
	}
	if (pe->tried && !pe->ps) {
		return eng->cfg->steer == STEER_BPF ? -EOPNOTSUPP : 0;
	}
	cfg.port_lo = pe->ps && pe->port_lo < port ? pe->port_lo : port;
	cfg.port_hi = pe->ps && pe->port_hi > port ? pe->port_hi : port;
	ret = natx_punch_steer_open(&cfg, &ps);
	pe->tried = true;
	if (ret) {
		if (!pe->ps) {
			snprintf(pe->reason, sizeof(pe->reason), "sk_lookup: %s", strerror(-ret));
			pr_warn(MOD,
				"punch steering unavailable (%s): sessions get the normal lookup",
				pe->reason);
		}
		return eng->cfg->steer == STEER_BPF || pe->ps ? ret : 0;
	}
	if (pe->ps) {
		natx_punch_steer_close(pe->ps);
	}
	pe->ps = ps;
	pe->port_lo = cfg.port_lo;
	pe->port_hi = cfg.port_hi;
	pe->reason[0] = '\0';
	pr_info(MOD, "sk_lookup punch steering on ports %u-%u (pins under %s)", cfg.port_lo,
		cfg.port_hi, pe->pin_root);
	return 0;
}
#endif

const char *punch_eng_steering(struct engine *eng)
{
	struct punch_eng *pe = eng->punch;

#ifdef NATX_HAVE_BPF
	if (pe && pe->ps) {
		return "sk_lookup";
	}
#endif
	(void)pe;
	return "none";
}

/* punch_sid_parse - 16 hex digits into @sid. 0 or -EINVAL. */
static int punch_sid_parse(const char *s, uint8_t sid[NATX_PUNCH_SID_LEN])
{
	if (strlen(s) != 2 * NATX_PUNCH_SID_LEN) {
		return -EINVAL;
	}
	for (int i = 0; i < 2 * NATX_PUNCH_SID_LEN; i++) {
		char c = s[i];
		int v = c >= '0' && c <= '9' ? c - '0' :
			c >= 'a' && c <= 'f' ? c - 'a' + 10 :
			c >= 'A' && c <= 'F' ? c - 'A' + 10 :
					       -1;

		if (v < 0) {
			return -EINVAL;
		}
		sid[i / 2] = (uint8_t)(i % 2 ? sid[i / 2] | v : v << 4);
	}
	return 0;
}

/* punch_sid_format - @sid as 16 lower-case hex digits into @out (17 bytes). */
static void punch_sid_format(const uint8_t sid[NATX_PUNCH_SID_LEN], char out[17])
{
	for (int i = 0; i < NATX_PUNCH_SID_LEN; i++) {
		snprintf(out + 2 * i, 3, "%02x", sid[i]);
	}
}

/* punch_sid_shard - the owning shard: FNV-1a of the id modulo @n. */
static unsigned int punch_sid_shard(const uint8_t sid[NATX_PUNCH_SID_LEN], unsigned int n)
{
	uint32_t h = 2166136261u;

	for (int i = 0; i < NATX_PUNCH_SID_LEN; i++) {
		h = (h ^ sid[i]) * 16777619u;
	}
	return n ? h % n : 0;
}

/* punch_sess_find - index of the session with @sid, or -1. */
static int punch_sess_find(struct punch_eng *pe, const uint8_t sid[NATX_PUNCH_SID_LEN])
{
	for (int i = 0; i < PUNCH_MAX; i++) {
		if (pe->sess[i] && !memcmp(pe->sess[i]->sid, sid, NATX_PUNCH_SID_LEN)) {
			return i;
		}
	}
	return -1;
}

/*
 * punch_sess_socket - the session socket bound to @ss (port read back into @ss); fd or -errno.
 * It shares the punch port with other sockets (SO_REUSEADDR too); sk_lookup picks it for the
 * session's flows.
 */
static int punch_sess_socket(struct sockaddr_storage *ss, socklen_t sl)
{
	return pktinfo_udp_socket(ss, sl, true);
}

/* punch_eng_msg - post start (@start) or stop of session @s to its shard and wait for the ack. */
static int punch_eng_msg(struct engine *eng, struct punch_sess *s, bool start)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&eng->ctl_ring);
	int res = 0, ret;

	if (!sqe) {
		io_uring_submit(&eng->ctl_ring);
		sqe = io_uring_get_sqe(&eng->ctl_ring);
		if (!sqe) {
			return -EBUSY;
		}
	}
	io_uring_prep_msg_ring(sqe, eng->shards[s->shard]->ring.ring_fd, 0,
			       udata_pack(UD_PUNCH, 2, 0xff, start, s->idx), 0);
	io_uring_sqe_set_data64(sqe, udata_pack(UD_NONE, 0, 0, 0, 0));
	ret = io_uring_submit(&eng->ctl_ring);
	if (ret < 0) {
		return ret;
	}
	if (engine_wait_acks(eng, start ? MSG_LISTEN_ADD : MSG_LISTEN_RM, PUNCH_ACK_SLOT, 1,
			     PUNCH_ACK_MS, &res) < 1) {
		return res ? res : -ETIMEDOUT;
	}
	return res;
}

/* punch_sess_release - undo steering, close the socket, free (the shard has let go). */
static void punch_sess_release(struct punch_eng *pe, struct punch_sess *s)
{
#ifdef NATX_HAVE_BPF
	if (pe->ps) {
		for (unsigned int i = 0; i < s->npeers; i++) {
			natx_punch_steer_flow_del(pe->ps, (struct sockaddr *)&s->peers[i], s->port);
		}
		if (s->registered) {
			natx_punch_steer_unregister(pe->ps, s->sid);
		}
	}
#endif
	(void)pe;
	close(s->fd);
	free(s);
}

/* punch_eng_shards_up - the shard threads run (MSG_RING reaches them). */
static bool punch_eng_shards_up(const struct engine *eng)
{
	return eng->nshards && eng->shards[eng->nshards - 1];
}

/* punch_sess_json - one session's settings and counters. */
static void punch_sess_json(struct punch_sess *s, cJSON *o)
{
	char txt[64], sid[17];
	uint32_t n = __atomic_load_n(&s->npunched, __ATOMIC_ACQUIRE);
	cJSON *c, *a;

	punch_sid_format(s->sid, sid);
	cJSON_AddStringToObject(o, "sid", sid);
	cJSON_AddStringToObject(o, "listen", s->listen_txt);
	cJSON_AddNumberToObject(o, "shard", s->shard);
	cJSON_AddBoolToObject(o, "steered", s->registered);
	a = cJSON_AddArrayToObject(o, "peers");
	for (unsigned int i = 0; i < s->npeers; i++) {
		stun_sockaddr_format((struct sockaddr *)&s->peers[i], txt, sizeof(txt));
		cJSON_AddItemToArray(a, cJSON_CreateString(txt));
	}
	a = cJSON_AddArrayToObject(o, "punched");
	for (uint32_t i = 0; i < n && i < PUNCH_PEERS_MAX; i++) {
		stun_sockaddr_format((struct sockaddr *)&s->punched[i], txt, sizeof(txt));
		cJSON_AddItemToArray(a, cJSON_CreateString(txt));
	}
	c = cJSON_AddObjectToObject(o, "counters");
	for (int k = 0; k < PUNCH_C_MAX; k++) {
		cJSON_AddNumberToObject(c, punch_cnt_names[k],
					(double)__atomic_load_n(&s->cnt[k], __ATOMIC_RELAXED));
	}
}

/* punch_eng_open - punch.open: see punch_eng.h. Returns NULL or an error code. */
static const char *punch_eng_open(struct engine *eng, const cJSON *args, cJSON *reply, char *msg,
				  size_t msglen)
{
	const cJSON *jsid = cJSON_GetObjectItemCaseSensitive(args, "sid");
	const cJSON *jl = cJSON_GetObjectItemCaseSensitive(args, "listen");
	const cJSON *jp = cJSON_GetObjectItemCaseSensitive(args, "peers"), *it;
	uint8_t sid[NATX_PUNCH_SID_LEN];
	struct sockaddr_storage ss;
	struct punch_eng *pe;
	struct punch_sess *s;
	socklen_t sl;
	int idx, ret;

	if (!cJSON_IsString(jsid) || punch_sid_parse(jsid->valuestring, sid)) {
		snprintf(msg, msglen, "\"sid\" must be 16 hex digits");
		return "bad_request";
	}
	if (!cJSON_IsString(jl) || strlen(jl->valuestring) >= 64 ||
	    stun_sockaddr_parse(jl->valuestring, &ss, &sl)) {
		snprintf(msg, msglen, "\"listen\" must be IPv4:PORT or [IPv6]:PORT");
		return "bad_request";
	}
	if (jp && (!cJSON_IsArray(jp) || cJSON_GetArraySize(jp) > PUNCH_PEERS_MAX)) {
		snprintf(msg, msglen, "\"peers\" must be an array of at most %d addresses",
			 PUNCH_PEERS_MAX);
		return "bad_request";
	}
	pe = punch_eng_get(eng);
	s = pe ? calloc(1, sizeof(*s)) : NULL;
	if (!s) {
		snprintf(msg, msglen, "out of memory");
		return "internal";
	}
	memcpy(s->sid, sid, sizeof(sid));
	cJSON_ArrayForEach(it, jp)
	{
		socklen_t pl;

		if (!cJSON_IsString(it) ||
		    stun_sockaddr_parse(it->valuestring, &s->peers[s->npeers], &pl)) {
			snprintf(msg, msglen, "peer '%.64s': not IPv4:PORT or [IPv6]:PORT",
				 cJSON_IsString(it) ? it->valuestring : "?");
			free(s);
			return "bad_request";
		}
		s->npeers++;
	}
	if (punch_sess_find(pe, sid) >= 0) {
		snprintf(msg, msglen, "session %s is open", jsid->valuestring);
		free(s);
		return "exists";
	}
	for (idx = 0; idx < PUNCH_MAX && pe->sess[idx]; idx++) {
	}
	if (idx == PUNCH_MAX || !punch_eng_shards_up(eng)) {
		snprintf(msg, msglen, "%s",
			 idx == PUNCH_MAX ? "too many punch sessions" : "shards not running");
		free(s);
		return "internal";
	}
	ret = punch_sess_socket(&ss, sl);
	if (ret < 0) {
		snprintf(msg, msglen, "punch listen %.64s: %s", jl->valuestring, strerror(-ret));
		free(s);
		return ret == -EADDRINUSE ? "addr_in_use" : "internal";
	}
	s->fd = ret;
	s->idx = (unsigned int)idx;
	s->shard = punch_sid_shard(sid, eng->nshards);
	s->port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
	stun_sockaddr_format((struct sockaddr *)&ss, s->listen_txt, sizeof(s->listen_txt));
#ifdef NATX_HAVE_BPF
	ret = punch_eng_steer_cover(eng, pe, s->port);
	if (ret) {
		snprintf(msg, msglen, "punch steering: %s", strerror(-ret));
		goto release_sess;
	}
	if (pe->ps) {
		ret = natx_punch_steer_register(pe->ps, sid, s->fd);
		if (ret) {
			snprintf(msg, msglen, "punch steering register: %s", strerror(-ret));
			goto release_sess;
		}
		s->registered = true;
		for (unsigned int i = 0; i < s->npeers; i++) {
			ret = natx_punch_steer_flow_add(pe->ps, sid,
							(struct sockaddr *)&s->peers[i], s->port);
			if (ret) {
				snprintf(msg, msglen, "punch steering flow: %s", strerror(-ret));
				s->npeers = i; /* the flows added so far are removed */
				goto release_sess;
			}
		}
	}
#endif
	/* Published before the MSG_RING that names it. */
	__atomic_store_n(&pe->sess[idx], s, __ATOMIC_RELEASE);
	ret = punch_eng_msg(eng, s, true);
	if (ret) {
		snprintf(msg, msglen, "shard %u did not take the session: %s", s->shard,
			 strerror(-ret));
		if (ret == -ETIMEDOUT) {
			/* The shard may still use it: leak rather than free under it. */
			return "internal";
		}
		pe->sess[idx] = NULL;
		goto release_sess;
	}
	pr_info(MOD, "session %s on %s, shard %u, %u peer flows, steering %s", jsid->valuestring,
		s->listen_txt, s->shard, s->npeers, s->registered ? "sk_lookup" : "none");
	cJSON_AddStringToObject(reply, "steering", punch_eng_steering(eng));
	punch_sess_json(s, cJSON_AddObjectToObject(reply, "session"));
	return NULL;

release_sess:
	punch_sess_release(pe, s);
	return "internal";
}

/* punch_eng_close - punch.close {"sid"}. */
static const char *punch_eng_close(struct engine *eng, const cJSON *args, cJSON *reply, char *msg,
				   size_t msglen)
{
	const cJSON *jsid = cJSON_GetObjectItemCaseSensitive(args, "sid");
	struct punch_eng *pe = eng->punch;
	uint8_t sid[NATX_PUNCH_SID_LEN];
	struct punch_sess *s;
	int idx, ret;

	if (!cJSON_IsString(jsid) || punch_sid_parse(jsid->valuestring, sid)) {
		snprintf(msg, msglen, "\"sid\" must be 16 hex digits");
		return "bad_request";
	}
	idx = pe ? punch_sess_find(pe, sid) : -1;
	if (idx < 0) {
		snprintf(msg, msglen, "no session %s", jsid->valuestring);
		return "not_found";
	}
	s = pe->sess[idx];
	ret = punch_eng_msg(eng, s, false);
	if (ret) {
		snprintf(msg, msglen, "shard %u did not release the session: %s", s->shard,
			 strerror(-ret));
		return "internal";
	}
	pe->sess[idx] = NULL;
	punch_sess_json(s, cJSON_AddObjectToObject(reply, "session"));
	pr_info(MOD, "session %s closed", jsid->valuestring);
	punch_sess_release(pe, s);
	return NULL;
}

/* punch_eng_reason - why the steering is "none" ("" when it is sk_lookup). */
static const char *punch_eng_reason(struct engine *eng)
{
	struct punch_eng *pe = eng->punch;

	if (pe && pe->tried) {
		return pe->reason;
	}
	if (eng->cfg->steer == STEER_KERNEL) {
		return "--steer kernel";
	}
#ifdef NATX_HAVE_BPF
	return "opened with the first session";
#else
	return "built with NATX_WITH_BPF=OFF";
#endif
}

void punch_eng_json(struct engine *eng, cJSON *o)
{
	struct punch_eng *pe = eng->punch;
	cJSON *p = cJSON_AddObjectToObject(o, "punch");
	unsigned int n = 0;

	cJSON_AddStringToObject(p, "steering", punch_eng_steering(eng));
	cJSON_AddStringToObject(p, "reason", punch_eng_reason(eng));
	for (int i = 0; pe && i < PUNCH_MAX; i++) {
		n += pe->sess[i] != NULL;
	}
	cJSON_AddNumberToObject(p, "sessions", n);
#ifdef NATX_HAVE_BPF
	if (pe && pe->ps) {
		struct natx_punch_steer_status st;
		cJSON *c;

		cJSON_AddStringToObject(p, "pin_root", pe->pin_root);
		if (!natx_punch_steer_status_read(pe->pin_root, &st)) {
			cJSON_AddNumberToObject(p, "prog_id", st.prog_id);
			cJSON_AddNumberToObject(p, "flows", st.flows);
			c = cJSON_AddObjectToObject(p, "counters");
			for (int k = 0; k < NATX_PUNCH_CNT_MAX; k++) {
				cJSON_AddNumberToObject(c, natx_punch_counter_name(k),
							(double)st.counters[k]);
			}
		}
	}
#endif
}

const char *punch_eng_ctl(struct engine *eng, const char *what, const cJSON *args, cJSON *reply,
			  char *msg, size_t msglen)
{
	struct punch_eng *pe = eng->punch;
	cJSON *a;

	if (!strcmp(what, "open")) {
		return punch_eng_open(eng, args, reply, msg, msglen);
	}
	if (!strcmp(what, "close")) {
		return punch_eng_close(eng, args, reply, msg, msglen);
	}
	punch_eng_json(eng, reply);
	a = cJSON_AddArrayToObject(reply, "sessions");
	for (int i = 0; pe && i < PUNCH_MAX; i++) {
		if (pe->sess[i]) {
			cJSON *o = cJSON_CreateObject();

			punch_sess_json(pe->sess[i], o);
			cJSON_AddItemToArray(a, o);
		}
	}
	return NULL;
}

void punch_eng_free(struct engine *eng)
{
	struct punch_eng *pe = eng->punch;

	if (!pe) {
		return;
	}
	for (int i = 0; i < PUNCH_MAX; i++) {
		if (pe->sess[i]) {
			punch_sess_release(pe, pe->sess[i]);
		}
	}
#ifdef NATX_HAVE_BPF
	if (pe->ps) {
		/* The pinned link stays; with the sockets gone their flows take the normal lookup. */
		natx_punch_steer_close(pe->ps);
	}
#endif
	eng->punch = NULL;
	free(pe);
}

/* punch_sess_arm - shard: multishot recvmsg of session @s into the UDP buffer ring. */
static void punch_sess_arm(struct shard *sh, struct punch_sess *s)
{
	struct io_uring_sqe *sqe = shard_sqe(sh);

	memset(&s->rmsg, 0, sizeof(s->rmsg));
	s->rmsg.msg_namelen = PUNCH_NAME_LEN; /* keeps the control area 8-byte aligned */
	s->rmsg.msg_controllen = PUNCH_CTL_LEN;
	io_uring_prep_recvmsg_multishot(sqe, s->fd, &s->rmsg, 0);
	sqe->flags |= IOSQE_BUFFER_SELECT;
	sqe->buf_group = UDP_BUF_GROUP;
	io_uring_sqe_set_data64(sqe, udata_pack(UD_PUNCH, 0, sh->idx, 0, s->idx));
	s->armed = 1;
}

/* punch_sess_maybe_stopped - shard: a stop is pending and nothing is in flight: let go, ack. */
static void punch_sess_maybe_stopped(struct shard *sh, struct punch_eng *pe, struct punch_sess *s)
{
	if (!s->stopping || s->armed || s->nfree != PUNCH_SLOTS) {
		return;
	}
	pe->own[sh->idx][s->idx] = NULL; /* the control thread frees it after the ack */
	shard_ack(sh, MSG_LISTEN_RM, PUNCH_ACK_SLOT, 0);
}

/* punch_sess_msg - shard: start (@start) or stop session @idx. */
static void punch_sess_msg(struct shard *sh, struct punch_eng *pe, uint32_t idx, bool start)
{
	struct punch_sess *s = idx < PUNCH_MAX ? pe->own[sh->idx][idx] : NULL;

	if (start) {
		s = idx < PUNCH_MAX ? __atomic_load_n(&pe->sess[idx], __ATOMIC_ACQUIRE) : NULL;
		if (!s || pe->own[sh->idx][idx]) {
			shard_ack(sh, MSG_LISTEN_ADD, PUNCH_ACK_SLOT, s ? -EEXIST : -ENOENT);
			return;
		}
		for (uint32_t i = 0; i < PUNCH_SLOTS; i++) {
			s->free[i] = (uint16_t)(PUNCH_SLOTS - 1 - i);
		}
		s->nfree = PUNCH_SLOTS;
		pe->own[sh->idx][idx] = s;
		punch_sess_arm(sh, s);
		shard_ack(sh, MSG_LISTEN_ADD, PUNCH_ACK_SLOT, 0);
		return;
	}
	if (!s) {
		shard_ack(sh, MSG_LISTEN_RM, PUNCH_ACK_SLOT, 0);
		return;
	}
	s->stopping = 1;
	if (s->armed) {
		struct io_uring_sqe *sqe = shard_sqe(sh);

		io_uring_prep_cancel64(sqe, udata_pack(UD_PUNCH, 0, sh->idx, 0, s->idx), 0);
		io_uring_sqe_set_data64(sqe, udata_pack(UD_NONE, 0, sh->idx, 0, 0));
	}
	punch_sess_maybe_stopped(sh, pe, s);
}

/* punch_sess_record - shard: remember @from as punched (first PUNCH_PEERS_MAX sources). */
static void punch_sess_record(struct punch_sess *s, const void *from, size_t len)
{
	uint32_t n = s->npunched;

	for (uint32_t i = 0; i < n; i++) {
		if (!memcmp(&s->punched[i], from, len)) {
			return;
		}
	}
	if (n < PUNCH_PEERS_MAX) {
		memset(&s->punched[n], 0, sizeof(s->punched[n]));
		memcpy(&s->punched[n], from, len);
		__atomic_store_n(&s->npunched, n + 1, __ATOMIC_RELEASE);
	}
}

/* punch_sess_answer - shard: send a PROBE_ACK for @p to the datagram's source. */
static void punch_sess_answer(struct shard *sh, struct punch_sess *s,
			      struct io_uring_recvmsg_out *out, const struct punch_probe *p)
{
	struct punch_probe ack = { .type = NATX_PUNCH_TYPE_ACK, .seq = p->seq };
	struct io_uring_sqe *sqe;
	struct punch_slot *sl;
	size_t n;
	int i;

	if (!s->nfree) {
		punch_cnt_add(&s->cnt[PUNCH_C_NO_SLOT], 1);
		return;
	}
	i = s->free[s->nfree - 1];
	sl = &s->slot[i];
	memcpy(ack.sid, p->sid, sizeof(ack.sid));
	if (punch_probe_build(sl->buf, sizeof(sl->buf), &n, &ack)) {
		return; /* cannot happen: fixed-size header */
	}
	memcpy(&sl->to, io_uring_recvmsg_name(out), out->namelen);
	sl->iov.iov_base = sl->buf;
	sl->iov.iov_len = n;
	memset(&sl->m, 0, sizeof(sl->m));
	sl->m.msg_name = &sl->to;
	sl->m.msg_namelen = out->namelen;
	sl->m.msg_iov = &sl->iov;
	sl->m.msg_iovlen = 1;
	sl->m.msg_controllen = pktinfo_reply_ctl(out, &s->rmsg, sl->ctl.b, sizeof(sl->ctl.b));
	sl->m.msg_control = sl->m.msg_controllen ? sl->ctl.b : NULL;
	s->nfree--;
	sqe = shard_sqe(sh);
	io_uring_prep_sendmsg(sqe, s->fd, &sl->m, 0);
	io_uring_sqe_set_data64(sqe,
				udata_pack(UD_PUNCH, 1, sh->idx, 0, s->idx << 8 | (uint32_t)i));
}

/* punch_sess_recv - shard: one datagram (or the end of the multishot receive). */
static void punch_sess_recv(struct shard *sh, struct punch_sess *s, struct io_uring_cqe *cqe)
{
	struct io_uring_recvmsg_out *out;
	struct punch_probe p;
	const uint8_t *pl;
	uint8_t *data;
	uint16_t bid;
	size_t len;

	if (!(cqe->flags & IORING_CQE_F_MORE)) {
		s->armed = 0;
		if (cqe->res == -ENOBUFS) {
			stat_add(&sh->st.bufring_exhausted, 1);
		}
		s->rearm = !s->stopping; /* at the next tick: no tight loop on an error */
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
	out = io_uring_recvmsg_validate(data, cqe->res, &s->rmsg);
	if (s->stopping || !out || out->namelen > sizeof(struct sockaddr_in6) ||
	    out->namelen < sizeof(struct sockaddr_in)) {
		goto drop;
	}
	pl = io_uring_recvmsg_payload(out, &s->rmsg);
	len = io_uring_recvmsg_payload_length(out, cqe->res, &s->rmsg);
	if (!punch_probe_is(pl, len)) {
		punch_cnt_add(&s->cnt[PUNCH_C_DATA], 1);
		goto drop;
	}
	if ((out->flags & MSG_TRUNC) || punch_probe_parse(&p, pl, len) ||
	    memcmp(p.sid, s->sid, sizeof(p.sid))) {
		punch_cnt_add(&s->cnt[PUNCH_C_BAD], 1);
		goto drop;
	}
	if (p.type == NATX_PUNCH_TYPE_ACK) {
		punch_cnt_add(&s->cnt[PUNCH_C_ACKS_IN], 1);
		goto drop;
	}
	punch_cnt_add(&s->cnt[PUNCH_C_PROBES], 1);
	punch_sess_record(s, io_uring_recvmsg_name(out), out->namelen);
	punch_sess_answer(sh, s, out, &p);
drop:
	bufring_drop(&sh->ubr, bid);
}

void punch_eng_handle_cqe(struct shard *sh, struct io_uring_cqe *cqe)
{
	struct punch_eng *pe = __atomic_load_n(&sh->eng->punch, __ATOMIC_ACQUIRE);
	uint32_t slot = udata_slot(cqe->user_data), idx;
	struct punch_sess *s;

	if (!pe) {
		return;
	}
	switch (udata_dir(cqe->user_data)) {
	case 2:
		punch_sess_msg(sh, pe, slot, udata_bid(cqe->user_data) != 0);
		return;
	case 0:
		s = slot < PUNCH_MAX ? pe->own[sh->idx][slot] : NULL;
		if (!s) {
			return;
		}
		punch_sess_recv(sh, s, cqe);
		break;
	case 1:
		idx = slot >> 8;
		s = idx < PUNCH_MAX ? pe->own[sh->idx][idx] : NULL;
		if (!s) {
			return;
		}
		if ((slot & 0xff) < PUNCH_SLOTS && s->nfree < PUNCH_SLOTS) {
			s->free[s->nfree++] = (uint16_t)(slot & 0xff);
		}
		punch_cnt_add(&s->cnt[cqe->res < 0 ? PUNCH_C_SEND_FAILED : PUNCH_C_ACKS], 1);
		break;
	default:
		return;
	}
	punch_sess_maybe_stopped(sh, pe, s);
}

void punch_eng_shard_tick(struct shard *sh)
{
	struct punch_eng *pe = __atomic_load_n(&sh->eng->punch, __ATOMIC_ACQUIRE);

	for (int i = 0; pe && i < PUNCH_MAX; i++) {
		struct punch_sess *s = pe->own[sh->idx][i];

		if (s && s->rearm && !s->armed && !s->stopping && !sh->stop) {
			s->rearm = 0;
			punch_sess_arm(sh, s);
		}
	}
}
