// SPDX-License-Identifier: MIT
/* udpx - UDP services between natx nodes: hole punching with a relayed fallback (udpx.h). */
#include "udpx.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "crypto.h"
#include "fwdspec.h"
#include "natx/err.h"
#include "natx/log.h"
#include "punch_probe.h"
#include "stun_msg.h"
#include "udp_wire.h"

#define MOD "udpx"

enum {
	UDPX_TICK_MS = 20, /* timer resolution while punching */
	UDPX_IDLE_TICK_MS = 250, /* otherwise (keepalives, idle flows, backoff) */
	UDPX_STUN_TRIES = 8,
	UDPX_STUN_GAP_MS = 200,
	UDPX_HELLO_WAIT_MS = 10000, /* B: a stream must say HELLO this soon */
	UDPX_DRAIN_MS = 2000, /* B: a refused stream is closed after this at the latest */
	UDPX_ROUND_GRACE_MS = 500, /* a round ends this long after its last probe */
	UDPX_BACKOFF_MIN_MS = 1000,
	UDPX_BACKOFF_MAX_MS = 30000,
	UDPX_AUTH_LEN = 16, /* probe auth tail: HMAC-SHA256 truncated */
	UDPX_RX_CAP = UDPW_HDR_LEN + UDPW_BODY_MAX,
	UDPX_TX_CAP = UDPX_TXQ_MAX + 4096, /* control messages may use the last 4 KiB */
	UDPX_BATCH = 64, /* datagrams read per readiness event */
	UDPX_OPEN_TTL = 2, /* TTL of a round's first probe (opens our NAT only) */
	/* the many-probe round (round UDPX_ROUNDS + 1), for a symmetric NAT on one side */
	UDPX_SPRAY_GUESSES = 2048, /* TTL-2 probes to predicted/random ports of the peer */
	UDPX_SPRAY_NEAR = 64, /* of them, the ports mapped +-1..64 (sequential allocators) */
	UDPX_SPRAY_SOCKS = 256, /* fresh sockets, each probing the peer's mapped address */
	UDPX_SPRAY_DELAY_MS = 200, /* sockets fire this long after the guesses */
	UDPX_SPRAY_ROUND_MS = 1500,
	UDPX_SPRAY_GAP_MS = 5000, /* B: at most one many-probe round per node this often */
};

enum udpx_ev_kind { EV_GW, EV_STREAM, EV_PUNCH, EV_LOCAL, EV_FLOW };

struct udpx_sess;

struct udpx_ev {
	enum udpx_ev_kind kind;
	struct udpx_sess *s; /* NULL for the gateway */
	unsigned int idx; /* EV_FLOW: index in bflows */
};

struct udpx_svc {
	char name[UDPW_NAME_MAX + 1];
	char target[64];
	struct sockaddr_storage addr;
	socklen_t alen;
	uint64_t sessions;
};

struct udpx_cnt {
	uint64_t punch_attempts, punch_successes, punch_failures, punch_rounds;
	uint64_t probes_sent, probes_ok, probes_bad, auth_failed, garbage;
	uint64_t direct_out, direct_in, relayed_out, relayed_in, queue_drops, flow_drops;
	uint64_t stun_ok, stun_failed, direct_lost;
};

/* A-side flow: a local client address. */
struct udpx_aflow {
	bool used;
	uint32_t flow;
	struct sockaddr_storage client;
	socklen_t clen;
	uint64_t last_ms;
};

/* B-side flow: a connected socket towards the service. */
struct udpx_bflow {
	bool used;
	uint32_t flow;
	int fd;
	uint64_t last_ms;
	struct udpx_ev ev;
};

struct udpx_sess {
	bool is_a;
	bool dead; /* freed by the thread after the current batch */
	bool need_reset; /* A: start a new session at the next tick */
	uint32_t id;
	char name[UDPW_NAME_MAX + 1];
	char target[128];
	char reason[256];
	uint64_t created_ms;
	/* the coordination stream */
	int tfd;
	struct udpx_ev tev;
	bool stream_up; /* connected (A) / accepted (B) and not closed */
	bool hello_done; /* A: HELLO sent; B: HELLO received */
	bool want_out;
	bool draining; /* B: ERROR sent and our side shut: discard input until EOF */
	uint64_t drain_start;
	uint8_t *rx, *tx;
	size_t rxlen, txoff, txlen;
	/* punching */
	int pfd;
	struct udpx_ev pev;
	uint8_t sid[UDPW_SID_LEN];
	uint8_t key[UDPW_KEY_LEN];
	struct crypto_aead aead;
	bool keyed;
	struct sockaddr_in stun;
	bool stun_set, stun_done;
	uint8_t txid[STUN_TXID_LEN];
	unsigned int stun_tries;
	uint64_t stun_next;
	struct udpw_addr mapped, lan; /* STUN-mapped and LAN address of the punch socket */
	bool have_mapped, have_lan;
	struct udpw_addr own[UDPW_CANDS_MAX], peer[UDPW_CANDS_MAX];
	unsigned int nown, npeer;
	bool cands_sent, cands_got, ping_sent;
	uint64_t ping_at;
	int64_t rtt_ms; /* -1 until PONG */
	unsigned int round; /* 0 before the first SYNC */
	bool punching, punch_over;
	uint64_t punch_t0, next_probe, round_end;
	unsigned int probes_left;
	uint32_t probe_seq;
	/* the many-probe round */
	bool spraying, guessed;
	uint64_t spray_t;
	unsigned int spray_sends;
	int *spray; /* UDPX_SPRAY_SOCKS fds (-1 = none) while spraying, else NULL */
	/* the direct path */
	bool direct;
	struct sockaddr_in daddr; /* where direct datagrams go */
	struct sockaddr_in psrc; /* B: last authenticated source from A */
	bool have_psrc;
	uint64_t last_rx_direct, last_keepalive, t_direct_ms;
	uint32_t roam_seq; /* highest probe seq of the peer that set daddr */
	uint64_t roam_dseq; /* next direct datagram seq of the peer that may set daddr */
	uint64_t seq_out;
	/* A: the local port and its flows; kept across sessions */
	int lfd;
	struct udpx_ev lev;
	char local[64];
	struct sockaddr_in saddr; /* the engine's forward (stream) */
	uint64_t retry_at;
	unsigned int backoff_ms;
	struct udpx_aflow *aflows;
	uint32_t next_flow;
	/* B: the service */
	struct sockaddr_storage svc;
	socklen_t svclen;
	struct udpx_bflow *bflows;
	struct udpx_cnt c;
};

struct udpx {
	pthread_t thr;
	pthread_mutex_t mu;
	bool stop;
	int epfd;
	int gfd; /* gateway listener */
	struct udpx_ev gev;
	uint16_t gport;
	struct udpx_svc svcs[UDPX_SERVICES_MAX];
	unsigned int nsvcs;
	struct udpx_sess *sess[UDPX_SESS_MAX];
	uint32_t next_id, next_bid;
	struct udpx_cnt c; /* totals over all sessions, ever */
	uint64_t last_spray_ms; /* B: start of the last many-probe round asked by a peer */
	uint64_t sessions_total;
	uint8_t buf[65536 + 128];
	uint8_t obuf[65536 + 128];
};

/* CNT - count @f in the session and in the totals. */
#define CNT(u, s, f)        \
	do {                \
		(s)->c.f++; \
		(u)->c.f++; \
	} while (0)

static uint64_t udpx_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* udpx_sockaddr_parse - "IPv4:PORT" / "[IPv6]:PORT" (numeric) into @ss. 0 or -EINVAL. */
static int udpx_sockaddr_parse(const char *s, struct sockaddr_storage *ss, socklen_t *len)
{
	char host[64];
	uint16_t port;
	const char *why;

	memset(ss, 0, sizeof(*ss));
	if (hostport_parse(s, strlen(s), host, sizeof(host), &port, &why)) {
		return -EINVAL;
	}
	{
		struct sockaddr_in *a = (struct sockaddr_in *)ss;

		if (inet_pton(AF_INET, host, &a->sin_addr) == 1) {
			a->sin_family = AF_INET;
			a->sin_port = htons(port);
			*len = sizeof(*a);
			return 0;
		}
	}
	{
		struct sockaddr_in6 *a = (struct sockaddr_in6 *)ss;

		if (inet_pton(AF_INET6, host, &a->sin6_addr) == 1) {
			a->sin6_family = AF_INET6;
			a->sin6_port = htons(port);
			*len = sizeof(*a);
			return 0;
		}
	}
	return -EINVAL;
}

static void udpx_sin_fmt(const struct sockaddr_in *a, char *out, size_t cap)
{
	char ip[INET_ADDRSTRLEN] = "?";

	inet_ntop(AF_INET, &a->sin_addr, ip, sizeof(ip));
	snprintf(out, cap, "%s:%u", ip, (unsigned int)ntohs(a->sin_port));
}

static void udpx_sin_to_wire(const struct sockaddr_in *a, struct udpw_addr *w)
{
	memset(w, 0, sizeof(*w));
	w->family = 4;
	w->port = ntohs(a->sin_port);
	memcpy(w->addr, &a->sin_addr, 4);
}

static bool udpx_sin_eq(const struct sockaddr_in *a, const struct sockaddr_in *b)
{
	return a->sin_port == b->sin_port && a->sin_addr.s_addr == b->sin_addr.s_addr;
}

static int udpx_ep_add(struct udpx *u, int fd, uint32_t events, struct udpx_ev *ev)
{
	struct epoll_event e = { .events = events, .data.ptr = ev };

	return epoll_ctl(u->epfd, EPOLL_CTL_ADD, fd, &e) ? -errno : 0;
}

static void udpx_ep_mod(struct udpx *u, int fd, uint32_t events, struct udpx_ev *ev)
{
	struct epoll_event e = { .events = events, .data.ptr = ev };

	epoll_ctl(u->epfd, EPOLL_CTL_MOD, fd, &e);
}

static void udpx_close_fd(struct udpx *u, int *fd)
{
	if (*fd >= 0) {
		epoll_ctl(u->epfd, EPOLL_CTL_DEL, *fd, NULL);
		close(*fd);
		*fd = -1;
	}
}

/* ---- the coordination stream ---- */

/* udpx_tx_room - make @n bytes appendable at tx + txlen (compacting); false when over @cap. */
static bool udpx_tx_room(struct udpx_sess *s, size_t n, size_t cap)
{
	if (s->txlen - s->txoff + n > cap) {
		return false;
	}
	if (s->txlen + n > UDPX_TX_CAP) {
		memmove(s->tx, s->tx + s->txoff, s->txlen - s->txoff);
		s->txlen -= s->txoff;
		s->txoff = 0;
	}
	return true;
}

static void udpx_stream_fail(struct udpx *u, struct udpx_sess *s, const char *why);

/* udpx_stream_flush - write queued bytes; EPOLLOUT while some remain. */
static void udpx_stream_flush(struct udpx *u, struct udpx_sess *s)
{
	bool want;

	while (s->stream_up && s->txoff < s->txlen) {
		ssize_t n = send(s->tfd, s->tx + s->txoff, s->txlen - s->txoff,
				 MSG_NOSIGNAL | MSG_DONTWAIT);

		if (n < 0) {
			if (errno == EAGAIN || errno == EINTR) {
				break;
			}
			udpx_stream_fail(u, s, "stream write failed");
			return;
		}
		s->txoff += (size_t)n;
	}
	if (s->txoff == s->txlen) {
		s->txoff = s->txlen = 0;
	}
	want = s->txoff < s->txlen;
	if (s->stream_up && want != s->want_out) {
		s->want_out = want;
		udpx_ep_mod(u, s->tfd, EPOLLIN | EPOLLRDHUP | (want ? EPOLLOUT : 0), &s->tev);
	}
}

/* udpx_send_msg - queue a control message (may use the control headroom). */
static void udpx_send_msg(struct udpx *u, struct udpx_sess *s, const struct udpw_msg *m)
{
	uint8_t b[512];
	size_t n;

	if (!s->stream_up) {
		return;
	}
	if (udpw_msg_build(b, sizeof(b), &n, m)) {
		pr_warn(MOD, "session %u: cannot encode %s", (unsigned int)s->id,
			udpw_type_name(m->type));
		return;
	}
	if (!udpx_tx_room(s, n, UDPX_TX_CAP)) {
		udpx_stream_fail(u, s, "stream queue full of control messages");
		return;
	}
	memcpy(s->tx + s->txlen, b, n);
	s->txlen += n;
	udpx_stream_flush(u, s);
}

/* udpx_send_data - queue a relayed datagram; dropped (counted) when the queue is full. */
static void udpx_send_data(struct udpx *u, struct udpx_sess *s, uint32_t flow, const uint8_t *p,
			   size_t len)
{
	if (!s->stream_up || !s->hello_done || len > UDPW_DATA_MAX ||
	    !udpx_tx_room(s, UDPW_HDR_LEN + 4 + len, UDPX_TXQ_MAX)) {
		CNT(u, s, queue_drops);
		return;
	}
	udpw_data_hdr_build(s->tx + s->txlen, flow, len);
	memcpy(s->tx + s->txlen + UDPW_HDR_LEN + 4, p, len);
	s->txlen += UDPW_HDR_LEN + 4 + len;
	CNT(u, s, relayed_out);
	udpx_stream_flush(u, s);
}

static void udpx_send_error(struct udpx *u, struct udpx_sess *s, const char *why)
{
	struct udpw_msg m = { .type = UDPW_ERROR };

	snprintf(m.error, sizeof(m.error), "%s", why);
	udpx_send_msg(u, s, &m);
}

/* ---- flows ---- */

static void udpx_bflow_close(struct udpx *u, struct udpx_sess *s, unsigned int i)
{
	udpx_close_fd(u, &s->bflows[i].fd);
	s->bflows[i].used = false;
}

/* udpx_bflow_get - B: the flow @flow's socket, created on first use; NULL when full. */
static struct udpx_bflow *udpx_bflow_get(struct udpx *u, struct udpx_sess *s, uint32_t flow)
{
	int free_i = -1, fd;

	for (unsigned int i = 0; i < UDPX_FLOWS_MAX; i++) {
		if (s->bflows[i].used && s->bflows[i].flow == flow) {
			return &s->bflows[i];
		}
		if (!s->bflows[i].used && free_i < 0) {
			free_i = (int)i;
		}
	}
	if (free_i < 0) {
		return NULL;
	}
	fd = socket(s->svc.ss_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		return NULL;
	}
	if (connect(fd, (struct sockaddr *)&s->svc, s->svclen)) {
		close(fd);
		return NULL;
	}
	s->bflows[free_i] = (struct udpx_bflow){
		.used = true, .flow = flow, .fd = fd, .ev = { EV_FLOW, s, (unsigned int)free_i }
	};
	if (udpx_ep_add(u, fd, EPOLLIN, &s->bflows[free_i].ev)) {
		close(fd);
		s->bflows[free_i].used = false;
		return NULL;
	}
	return &s->bflows[free_i];
}

/* udpx_aflow_by_client - A: the flow of local client @ss, created on first use. */
static struct udpx_aflow *udpx_aflow_by_client(struct udpx_sess *s,
					       const struct sockaddr_storage *ss, socklen_t len)
{
	int free_i = -1;

	for (unsigned int i = 0; i < UDPX_FLOWS_MAX; i++) {
		struct udpx_aflow *f = &s->aflows[i];

		if (f->used && f->clen == len && !memcmp(&f->client, ss, len)) {
			return f;
		}
		if (!f->used && free_i < 0) {
			free_i = (int)i;
		}
	}
	if (free_i < 0) {
		return NULL;
	}
	s->aflows[free_i] =
		(struct udpx_aflow){ .used = true, .flow = s->next_flow++, .clen = len };
	memcpy(&s->aflows[free_i].client, ss, len);
	return &s->aflows[free_i];
}

static struct udpx_aflow *udpx_aflow_by_id(struct udpx_sess *s, uint32_t flow)
{
	for (unsigned int i = 0; i < UDPX_FLOWS_MAX; i++) {
		if (s->aflows[i].used && s->aflows[i].flow == flow) {
			return &s->aflows[i];
		}
	}
	return NULL;
}

/* udpx_deliver - a datagram of @flow from the peer, to the local client (A) or service (B). */
static void udpx_deliver(struct udpx *u, struct udpx_sess *s, uint32_t flow, const uint8_t *p,
			 size_t len, uint64_t now)
{
	if (s->is_a) {
		struct udpx_aflow *f = udpx_aflow_by_id(s, flow);

		if (!f) {
			CNT(u, s, flow_drops); /* expired client */
			return;
		}
		f->last_ms = now;
		sendto(s->lfd, p, len, MSG_DONTWAIT, (struct sockaddr *)&f->client, f->clen);
	} else {
		struct udpx_bflow *f = udpx_bflow_get(u, s, flow);

		if (!f) {
			CNT(u, s, flow_drops);
			return;
		}
		f->last_ms = now;
		send(f->fd, p, len, MSG_DONTWAIT);
	}
}

/* ---- direct datagrams and probes ---- */

static void udpx_nonce(uint8_t nonce[CRYPTO_AEAD_NONCE_LEN], bool from_a, uint64_t seq)
{
	nonce[0] = nonce[1] = nonce[2] = 0;
	nonce[3] = from_a ? 0 : 1;
	for (int i = 0; i < 8; i++) {
		nonce[4 + i] = (uint8_t)(seq >> (56 - 8 * i));
	}
}

/* udpx_send_direct - seal @p and send it to the punched peer. */
static void udpx_send_direct(struct udpx *u, struct udpx_sess *s, uint32_t flow, const uint8_t *p,
			     size_t len)
{
	uint8_t nonce[CRYPTO_AEAD_NONCE_LEN];
	uint8_t *o = u->obuf;
	uint64_t seq = s->seq_out++;

	if (len > UDPW_DGRAM_PAYLOAD_MAX) {
		CNT(u, s, queue_drops);
		return;
	}
	udpw_dgram_hdr_build(o, s->sid, flow, seq);
	memcpy(o + UDPW_DGRAM_HDR_LEN, p, len);
	udpx_nonce(nonce, s->is_a, seq);
	if (crypto_aead_seal(&s->aead, nonce, o, UDPW_DGRAM_HDR_LEN, o + UDPW_DGRAM_HDR_LEN, len)) {
		CNT(u, s, queue_drops);
		return;
	}
	if (sendto(s->pfd, o, UDPW_DGRAM_HDR_LEN + len + UDPW_DGRAM_TAG_LEN, MSG_DONTWAIT,
		   (struct sockaddr *)&s->daddr, sizeof(s->daddr)) < 0) {
		CNT(u, s, queue_drops);
		return;
	}
	CNT(u, s, direct_out);
}

/* udpx_forward - a datagram of @flow towards the peer: direct when punched, else relayed. */
static void udpx_forward(struct udpx *u, struct udpx_sess *s, uint32_t flow, const uint8_t *p,
			 size_t len)
{
	if (s->direct) {
		udpx_send_direct(u, s, flow, p, len);
	} else {
		udpx_send_data(u, s, flow, p, len);
	}
}

/* udpx_probe_auth - HMAC-SHA256(key, sender role | 20-byte probe header), first 16 bytes. */
static void udpx_probe_auth(const struct udpx_sess *s, bool from_a, const uint8_t *hdr,
			    uint8_t out[UDPX_AUTH_LEN])
{
	uint8_t in[1 + NATX_PUNCH_HDR_LEN], mac[CRYPTO_SHA256_LEN];

	in[0] = from_a ? 'A' : 'B';
	memcpy(in + 1, hdr, NATX_PUNCH_HDR_LEN);
	crypto_hmac_sha256(mac, s->key, sizeof(s->key), in, sizeof(in));
	memcpy(out, mac, UDPX_AUTH_LEN);
}

static void udpx_probe_send_fd(struct udpx *u, struct udpx_sess *s, int fd, uint8_t type,
			       uint32_t seq, const struct sockaddr_in *to)
{
	static const uint8_t zero[UDPX_AUTH_LEN];
	struct punch_probe p = {
		.type = type, .seq = seq, .auth = zero, .auth_len = UDPX_AUTH_LEN
	};
	uint8_t b[NATX_PUNCH_MAX_LEN];
	size_t n;

	memcpy(p.sid, s->sid, sizeof(p.sid));
	if (punch_probe_build(b, sizeof(b), &n, &p)) {
		return;
	}
	udpx_probe_auth(s, s->is_a, b, b + NATX_PUNCH_HDR_LEN);
	if (sendto(fd, b, n, MSG_DONTWAIT, (const struct sockaddr *)to, sizeof(*to)) >= 0 &&
	    type == NATX_PUNCH_TYPE_PROBE) {
		CNT(u, s, probes_sent);
	}
}

static void udpx_probe_send(struct udpx *u, struct udpx_sess *s, uint8_t type, uint32_t seq,
			    const struct sockaddr_in *to)
{
	udpx_probe_send_fd(u, s, s->pfd, type, seq, to);
}

/*
 * udpx_go_direct - an authenticated ACK from @from: the path is direct. A decides this in the
 * normal rounds; in the many-probe round B may get the ACK first (its own socket was the one
 * that got through), and then B tells A.
 */
static void udpx_go_direct(struct udpx *u, struct udpx_sess *s, const struct sockaddr_in *from,
			   uint64_t now)
{
	struct udpw_msg m = { .type = UDPW_RESULT };
	char a[64];

	s->direct = true;
	s->daddr = *from;
	s->punching = false;
	s->punch_over = true;
	s->last_rx_direct = now;
	s->t_direct_ms = now - s->punch_t0;
	if (s->is_a) {
		CNT(u, s, punch_successes);
	}
	udpx_sin_fmt(from, a, sizeof(a));
	snprintf(s->reason, sizeof(s->reason),
		 "punched in %llu ms (round %u%s, %llu probes sent): peer at %s",
		 (unsigned long long)s->t_direct_ms, s->round,
		 s->round > UDPX_ROUNDS ? ", many-probe" : "", (unsigned long long)s->c.probes_sent,
		 a);
	pr_info(MOD, "session %u (%s): direct to %s after %llu ms", (unsigned int)s->id,
		s->is_a ? "connect" : "expose", a, (unsigned long long)s->t_direct_ms);
	m.result.direct = true;
	udpx_sin_to_wire(from, &m.result.peer);
	snprintf(m.result.reason, sizeof(m.result.reason), "%.200s", s->reason);
	udpx_send_msg(u, s, &m);
}

static void udpx_spray_adopt(struct udpx *u, struct udpx_sess *s, unsigned int i);

/*
 * udpx_on_probe - a probe or ACK that arrived on socket @fd (the punch socket, or spray
 * socket @spray_i when >= 0).
 */
static void udpx_on_probe(struct udpx *u, struct udpx_sess *s, int fd, int spray_i,
			  const uint8_t *b, size_t n, const struct sockaddr_in *from, uint64_t now)
{
	uint8_t want[UDPX_AUTH_LEN];
	struct punch_probe p;

	if (!s->keyed || punch_probe_parse(&p, b, n) || p.auth_len != UDPX_AUTH_LEN ||
	    memcmp(p.sid, s->sid, UDPW_SID_LEN)) {
		CNT(u, s, probes_bad);
		return;
	}
	udpx_probe_auth(s, !s->is_a, b, want);
	if (!crypto_memeq(want, p.auth, UDPX_AUTH_LEN)) {
		CNT(u, s, probes_bad);
		return;
	}
	CNT(u, s, probes_ok);
	if (s->direct && p.type == NATX_PUNCH_TYPE_PROBE && p.seq > s->roam_seq) {
		/* the peer's newest probe: follow its address (rebinding, the adopted socket) */
		s->roam_seq = p.seq;
		s->daddr = *from;
	}
	if (s->direct && udpx_sin_eq(from, &s->daddr)) {
		s->last_rx_direct = now;
	}
	s->psrc = *from;
	s->have_psrc = true;
	if (p.type == NATX_PUNCH_TYPE_PROBE) {
		udpx_probe_send_fd(u, s, fd, NATX_PUNCH_TYPE_ACK, p.seq, from);
	} else if (!s->direct && s->stream_up && !s->punch_over &&
		   (s->is_a || (s->spraying && spray_i >= 0))) {
		if (spray_i >= 0) {
			udpx_spray_adopt(u, s, (unsigned int)spray_i);
		}
		udpx_go_direct(u, s, from, now);
		if (spray_i >= 0) {
			/* the peer learns the adopted socket's public address from this probe */
			udpx_probe_send(u, s, NATX_PUNCH_TYPE_PROBE, ++s->probe_seq, from);
		}
	}
}

static void udpx_on_dgram(struct udpx *u, struct udpx_sess *s, uint8_t *b, size_t n,
			  const struct sockaddr_in *from, uint64_t now)
{
	uint8_t nonce[CRYPTO_AEAD_NONCE_LEN];
	struct udpw_dgram d;
	size_t off;

	if (!s->keyed || udpw_dgram_parse(b, n, &d) || memcmp(d.sid, s->sid, UDPW_SID_LEN)) {
		CNT(u, s, garbage);
		return;
	}
	udpx_nonce(nonce, !s->is_a, d.seq);
	off = (size_t)(d.sealed - b);
	if (crypto_aead_open(&s->aead, nonce, b, UDPW_DGRAM_HDR_LEN, b + off, d.sealed_len)) {
		CNT(u, s, auth_failed);
		return;
	}
	CNT(u, s, direct_in);
	if (s->direct && d.seq >= s->roam_dseq) {
		s->roam_dseq = d.seq + 1;
		s->daddr = *from;
	}
	if (s->direct && udpx_sin_eq(from, &s->daddr)) {
		s->last_rx_direct = now;
	}
	s->psrc = *from;
	s->have_psrc = true;
	udpx_deliver(u, s, d.flow, b + off, d.sealed_len - UDPW_DGRAM_TAG_LEN, now);
}

static void udpx_on_stun(struct udpx *u, struct udpx_sess *s, const uint8_t *b, size_t n)
{
	struct stun_msg m;

	if (s->stun_done || stun_msg_parse(&m, b, n) || m.type != 0x0101 ||
	    memcmp(m.txid, s->txid, STUN_TXID_LEN) || !m.has_xor_mapped ||
	    m.xor_mapped.family != STUN_FAMILY_IPV4) {
		CNT(u, s, garbage);
		return;
	}
	s->stun_done = true;
	CNT(u, s, stun_ok);
	memset(&s->mapped, 0, sizeof(s->mapped));
	s->mapped.family = 4;
	s->mapped.port = m.xor_mapped.port;
	memcpy(s->mapped.addr, m.xor_mapped.addr, 4);
	s->have_mapped = true;
}

/* udpx_spray_close - close the many-probe round's sockets. */
static void udpx_spray_close(struct udpx_sess *s)
{
	if (!s->spray) {
		return;
	}
	for (unsigned int i = 0; i < UDPX_SPRAY_SOCKS; i++) {
		if (s->spray[i] >= 0) {
			close(s->spray[i]);
		}
	}
	free(s->spray);
	s->spray = NULL;
}

/*
 * udpx_spray_adopt - spray socket @i got an authenticated ACK: it is the punched socket now
 * (its NAT mapping is the one that works); the old punch socket and the others close.
 */
static void udpx_spray_adopt(struct udpx *u, struct udpx_sess *s, unsigned int i)
{
	int fd = s->spray[i];

	s->spray[i] = -1;
	udpx_spray_close(s);
	s->spraying = false;
	udpx_close_fd(u, &s->pfd);
	s->pfd = fd;
	if (udpx_ep_add(u, s->pfd, EPOLLIN, &s->pev)) {
		pr_warn(MOD, "session %u: epoll of the punched socket failed", (unsigned int)s->id);
	}
}

/*
 * udpx_spray_guess - the many-probe round's first half: TTL-2 probes from the punch socket to
 * the peer's mapped address at UDPX_SPRAY_GUESSES ports (the mapped port +-1..64 for NATs that
 * allocate sequentially, then random ports 1024..65535). With an endpoint-independent NAT
 * here, each opens our mapping towards that port, so a probe from the peer's symmetric NAT
 * that happens to leave from one of them gets in.
 */
static void udpx_spray_guess(struct udpx *u, struct udpx_sess *s)
{
	uint8_t rnd[2 * UDPX_SPRAY_GUESSES];
	struct sockaddr_in to = { .sin_family = AF_INET };
	int ttl = UDPX_OPEN_TTL;

	if (!s->npeer || s->peer[0].family != 4) {
		return;
	}
	memcpy(&to.sin_addr, s->peer[0].addr, 4);
	crypto_random_bytes(rnd, sizeof(rnd));
	setsockopt(s->pfd, IPPROTO_IP, IP_TTL, &ttl, sizeof(ttl));
	for (unsigned int i = 0; i < UDPX_SPRAY_GUESSES; i++) {
		int port;

		if (i < 2 * UDPX_SPRAY_NEAR) {
			port = (int)s->peer[0].port + (int)(i / 2 + 1) * (i % 2 ? -1 : 1);
		} else {
			port = 1024 + (rnd[2 * i] << 8 | rnd[2 * i + 1]) % (65536 - 1024);
		}
		if (port < 1 || port > 65535) {
			continue;
		}
		to.sin_port = htons((uint16_t)port);
		udpx_probe_send(u, s, NATX_PUNCH_TYPE_PROBE, ++s->probe_seq, &to);
	}
	ttl = -1;
	setsockopt(s->pfd, IPPROTO_IP, IP_TTL, &ttl, sizeof(ttl));
}

/*
 * udpx_spray_fire - the second half: UDPX_SPRAY_SOCKS fresh sockets each send a probe to the
 * peer's mapped address (opened on the first call, probing again on the next). With a
 * symmetric NAT here each socket gets its own public port; one of them may be among the
 * peer's guesses.
 */
static void udpx_spray_fire(struct udpx *u, struct udpx_sess *s)
{
	struct sockaddr_in to = { .sin_family = AF_INET };

	if (!s->npeer || s->peer[0].family != 4) {
		return;
	}
	memcpy(&to.sin_addr, s->peer[0].addr, 4);
	to.sin_port = htons(s->peer[0].port);
	if (!s->spray) {
		struct sockaddr_in any = { .sin_family = AF_INET };

		s->spray = malloc(UDPX_SPRAY_SOCKS * sizeof(*s->spray));
		if (!s->spray) {
			return;
		}
		for (unsigned int i = 0; i < UDPX_SPRAY_SOCKS; i++) {
			s->spray[i] = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
			if (s->spray[i] >= 0 &&
			    bind(s->spray[i], (struct sockaddr *)&any, sizeof(any))) {
				close(s->spray[i]);
				s->spray[i] = -1;
			}
		}
	}
	for (unsigned int i = 0; i < UDPX_SPRAY_SOCKS; i++) {
		if (s->spray[i] >= 0) {
			udpx_probe_send_fd(u, s, s->spray[i], NATX_PUNCH_TYPE_PROBE, ++s->probe_seq,
					   &to);
		}
	}
}

/* udpx_spray_read - what the spray sockets received (polled from the tick, not in epoll). */
static void udpx_spray_read(struct udpx *u, struct udpx_sess *s, uint64_t now)
{
	for (unsigned int i = 0; s->spray && i < UDPX_SPRAY_SOCKS; i++) {
		for (int k = 0; k < 4 && s->spray && s->spray[i] >= 0; k++) {
			struct sockaddr_in from;
			socklen_t fl = sizeof(from);
			ssize_t n = recvfrom(s->spray[i], u->buf, sizeof(u->buf), MSG_DONTWAIT,
					     (struct sockaddr *)&from, &fl);

			if (n < 0) {
				break;
			}
			if (fl == sizeof(from) && punch_probe_is(u->buf, (size_t)n)) {
				udpx_on_probe(u, s, s->spray[i], (int)i, u->buf, (size_t)n, &from,
					      now);
			} else {
				CNT(u, s, garbage);
			}
		}
	}
}

/* udpx_punch_read - everything that arrives on the punch socket. */
static void udpx_punch_read(struct udpx *u, struct udpx_sess *s, uint64_t now)
{
	for (int k = 0; k < UDPX_BATCH && s->pfd >= 0; k++) {
		struct sockaddr_in from;
		socklen_t fl = sizeof(from);
		ssize_t n = recvfrom(s->pfd, u->buf, sizeof(u->buf), MSG_DONTWAIT,
				     (struct sockaddr *)&from, &fl);

		if (n < 0) {
			return;
		}
		if (fl != sizeof(from) || from.sin_family != AF_INET) {
			CNT(u, s, garbage);
		} else if (n >= 20 && u->buf[0] < 4) {
			udpx_on_stun(u, s, u->buf, (size_t)n);
		} else if (punch_probe_is(u->buf, (size_t)n)) {
			udpx_on_probe(u, s, s->pfd, -1, u->buf, (size_t)n, &from, now);
		} else if (udpw_dgram_is(u->buf, (size_t)n)) {
			udpx_on_dgram(u, s, u->buf, (size_t)n, &from, now);
		} else {
			CNT(u, s, garbage);
		}
	}
}

/* ---- session setup ---- */

/* udpx_punch_open - the punch socket (IPv4, any port) and our local candidate towards STUN. */
static int udpx_punch_open(struct udpx *u, struct udpx_sess *s)
{
	struct sockaddr_in a = { .sin_family = AF_INET };
	socklen_t al = sizeof(a);
	int fd;

	s->pfd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (s->pfd < 0) {
		return -errno;
	}
	if (bind(s->pfd, (struct sockaddr *)&a, sizeof(a)) ||
	    getsockname(s->pfd, (struct sockaddr *)&a, &al)) {
		return -errno;
	}
	s->pev = (struct udpx_ev){ EV_PUNCH, s, 0 };
	if (udpx_ep_add(u, s->pfd, EPOLLIN, &s->pev)) {
		return -errno;
	}
	s->have_lan = s->have_mapped = false;
	if (s->stun_set) {
		/* the address the route to the STUN server leaves from: our LAN candidate */
		struct sockaddr_in l;
		socklen_t ll = sizeof(l);

		fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
		if (fd >= 0 && !connect(fd, (struct sockaddr *)&s->stun, sizeof(s->stun)) &&
		    !getsockname(fd, (struct sockaddr *)&l, &ll)) {
			l.sin_port = a.sin_port;
			udpx_sin_to_wire(&l, &s->lan);
			s->have_lan = true;
		}
		if (fd >= 0) {
			close(fd);
		}
	}
	return 0;
}

/* udpx_stun_send - one Binding request from the punch socket. */
static void udpx_stun_send(struct udpx_sess *s, uint64_t now)
{
	uint8_t b[64];
	size_t n;

	if (s->stun_tries == 0) {
		crypto_random_bytes(s->txid, sizeof(s->txid));
	}
	s->stun_tries++;
	s->stun_next = now + UDPX_STUN_GAP_MS;
	if (!stun_binding_request_build(b, sizeof(b), &n, s->txid, true)) {
		sendto(s->pfd, b, n, MSG_DONTWAIT, (struct sockaddr *)&s->stun, sizeof(s->stun));
	}
}

static void udpx_key(struct udpx_sess *s)
{
	crypto_aead_cleanup(&s->aead);
	s->keyed = !crypto_aead_init(&s->aead, s->key);
}

/* udpx_sess_clear - close the stream and punch socket, forget the session's punch state. */
static void udpx_sess_clear(struct udpx *u, struct udpx_sess *s)
{
	udpx_close_fd(u, &s->tfd);
	udpx_close_fd(u, &s->pfd);
	s->stream_up = s->hello_done = s->want_out = false;
	s->rxlen = s->txoff = s->txlen = 0;
	crypto_aead_cleanup(&s->aead);
	crypto_wipe(s->key, sizeof(s->key));
	s->keyed = false;
	s->stun_done = false;
	s->stun_tries = 0;
	s->nown = s->npeer = 0;
	s->have_mapped = s->have_lan = false;
	s->cands_sent = s->cands_got = s->ping_sent = false;
	s->rtt_ms = -1;
	s->round = 0;
	udpx_spray_close(s);
	s->punching = s->punch_over = s->spraying = false;
	s->direct = false;
	s->have_psrc = false;
	s->seq_out = 0;
	s->roam_seq = 0;
	s->roam_dseq = 0;
}

/* udpx_a_start - A: a new session (new id and key) over a new stream through the forward. */
static void udpx_a_start(struct udpx *u, struct udpx_sess *s, uint64_t now)
{
	int rc;

	udpx_sess_clear(u, s);
	crypto_random_bytes(s->sid, sizeof(s->sid));
	crypto_random_bytes(s->key, sizeof(s->key));
	udpx_key(s);
	rc = udpx_punch_open(u, s);
	if (rc) {
		snprintf(s->reason, sizeof(s->reason), "punch socket: %s", natx_strerror(rc));
		goto retry;
	}
	if (s->stun_set) {
		udpx_stun_send(s, now);
	} else {
		s->stun_done = true; /* no STUN server: no public candidate */
	}
	s->tfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (s->tfd < 0) {
		rc = -errno;
		snprintf(s->reason, sizeof(s->reason), "stream socket: %s", natx_strerror(rc));
		goto retry;
	}
	if (connect(s->tfd, (struct sockaddr *)&s->saddr, sizeof(s->saddr)) &&
	    errno != EINPROGRESS) {
		rc = -errno;
		snprintf(s->reason, sizeof(s->reason), "stream connect: %s", natx_strerror(rc));
		goto retry;
	}
	s->tev = (struct udpx_ev){ EV_STREAM, s, 0 };
	s->want_out = true;
	if (udpx_ep_add(u, s->tfd, EPOLLIN | EPOLLOUT | EPOLLRDHUP, &s->tev)) {
		rc = -errno;
		snprintf(s->reason, sizeof(s->reason), "epoll: %s", natx_strerror(rc));
		goto retry;
	}
	s->created_ms = now;
	return;
retry:
	udpx_sess_clear(u, s);
	s->retry_at = now + s->backoff_ms;
}

/* udpx_stream_fail - the stream ended: keep a working direct path, else retry (A) / end (B). */
static void udpx_stream_fail(struct udpx *u, struct udpx_sess *s, const char *reason)
{
	char why[sizeof(s->reason)];

	if (!s->stream_up && s->tfd < 0) {
		return;
	}
	snprintf(why, sizeof(why), "%s", reason); /* @reason may be s->reason itself */
	udpx_close_fd(u, &s->tfd);
	s->stream_up = false;
	s->txoff = s->txlen = s->rxlen = 0;
	if (s->direct) {
		pr_info(MOD, "session %u: stream ended (%s); the direct path continues",
			(unsigned int)s->id, why);
		return;
	}
	if (s->is_a) {
		snprintf(s->reason, sizeof(s->reason), "%.200s; retrying in %u ms", why,
			 s->backoff_ms);
		pr_info(MOD, "connection %u: %s", (unsigned int)s->id, s->reason);
		udpx_sess_clear(u, s);
		s->retry_at = udpx_now_ms() + s->backoff_ms;
		s->backoff_ms = s->backoff_ms * 2 > UDPX_BACKOFF_MAX_MS ? UDPX_BACKOFF_MAX_MS :
									  s->backoff_ms * 2;
	} else {
		pr_debug(MOD, "session %u: %s", (unsigned int)s->id, why);
		s->dead = true;
	}
}

/*
 * udpx_drain - B refuses the session: ERROR is queued; shut our side and read the peer's
 * remaining bytes until its FIN, so that closing does not reset the connection (a reset
 * could discard the ERROR before the peer reads it).
 */
static void udpx_drain(struct udpx *u, struct udpx_sess *s, uint64_t now)
{
	udpx_stream_flush(u, s);
	if (!s->stream_up) {
		return;
	}
	shutdown(s->tfd, SHUT_WR);
	s->draining = true;
	s->drain_start = now;
}

/* udpx_send_cands - our candidates, then (A) a PING for the RTT. */
static void udpx_send_cands(struct udpx *u, struct udpx_sess *s, uint64_t now)
{
	struct udpw_msg m = { .type = UDPW_CANDS };

	s->nown = 0;
	if (s->have_mapped) {
		s->own[s->nown++] = s->mapped;
	}
	if (s->have_lan && !(s->have_mapped && !memcmp(&s->lan, &s->mapped, sizeof(s->lan)))) {
		s->own[s->nown++] = s->lan; /* not behind a NAT: the same address once */
	}
	m.cands.n = s->nown;
	memcpy(m.cands.a, s->own, sizeof(s->own[0]) * s->nown);
	udpx_send_msg(u, s, &m);
	s->cands_sent = true;
	if (s->is_a) {
		struct udpw_msg p = { .type = UDPW_PING, .stamp = now };

		s->ping_at = now;
		s->ping_sent = true;
		udpx_send_msg(u, s, &p);
	}
}

/* udpx_round_start - probes to every peer candidate from @at, UDPX_ROUND_PROBES times. */
static void udpx_round_start(struct udpx_sess *s, uint64_t at)
{
	if (s->round > UDPX_ROUNDS) {
		s->punching = true;
		s->spraying = true;
		s->guessed = false;
		s->spray_sends = 0;
		s->spray_t = at;
		s->probes_left = 0;
		s->round_end = at + UDPX_SPRAY_ROUND_MS;
		return;
	}
	s->punching = true;
	s->next_probe = at;
	s->probes_left = UDPX_ROUND_PROBES;
	s->round_end = at + (uint64_t)UDPX_ROUND_PROBES * UDPX_PROBE_GAP_MS + UDPX_ROUND_GRACE_MS;
}

/* udpx_sync - A: start round @s->round + 1 (SYNC now; our probes after RTT/2). */
static void udpx_sync(struct udpx *u, struct udpx_sess *s, uint64_t now)
{
	struct udpw_msg m = { .type = UDPW_SYNC };

	if (s->round == 0) {
		s->punch_t0 = now;
		CNT(u, s, punch_attempts);
	}
	s->round++;
	CNT(u, s, punch_rounds);
	m.round = s->round;
	udpx_send_msg(u, s, &m);
	udpx_round_start(s, now + (uint64_t)s->rtt_ms / 2);
	snprintf(s->reason, sizeof(s->reason),
		 "relayed while punching (round %u of %d%s, rtt %lld ms)", s->round,
		 UDPX_ROUNDS + 1, s->round > UDPX_ROUNDS ? ": many-probe" : "",
		 (long long)s->rtt_ms);
}

static struct udpx_svc *udpx_svc_find(struct udpx *u, const char *name)
{
	for (unsigned int i = 0; i < u->nsvcs; i++) {
		if (!strcmp(u->svcs[i].name, name)) {
			return &u->svcs[i];
		}
	}
	return NULL;
}

/* udpx_on_hello - B: the session's id, key and service; open the punch socket, ask STUN. */
static int udpx_on_hello(struct udpx *u, struct udpx_sess *s, const struct udpw_msg *m,
			 uint64_t now)
{
	struct udpx_svc *svc = udpx_svc_find(u, m->hello.name);
	int rc;

	if (!svc) {
		char why[128];

		snprintf(why, sizeof(why), "no UDP service %s", m->hello.name);
		udpx_send_error(u, s, why);
		return -ENOENT;
	}
	svc->sessions++;
	snprintf(s->name, sizeof(s->name), "%s", svc->name);
	snprintf(s->target, sizeof(s->target), "%s", svc->target);
	s->svc = svc->addr;
	s->svclen = svc->alen;
	memcpy(s->sid, m->hello.sid, UDPW_SID_LEN);
	memcpy(s->key, m->hello.key, UDPW_KEY_LEN);
	udpx_key(s);
	s->hello_done = true;
	if (m->hello.stun.family == 4 && m->hello.stun.port) {
		s->stun = (struct sockaddr_in){ .sin_family = AF_INET,
						.sin_port = htons(m->hello.stun.port) };
		memcpy(&s->stun.sin_addr, m->hello.stun.addr, 4);
		s->stun_set = true;
	}
	rc = udpx_punch_open(u, s);
	if (rc) {
		udpx_send_error(u, s, "punch socket failed");
		return rc;
	}
	if (s->stun_set) {
		udpx_stun_send(s, now);
	} else {
		s->stun_done = true;
	}
	snprintf(s->reason, sizeof(s->reason), "relayed while punching");
	return 0;
}

/* udpx_on_msg - one stream message. 0, or < 0 to end the stream. */
static int udpx_on_msg(struct udpx *u, struct udpx_sess *s, const struct udpw_msg *m, uint64_t now)
{
	if (!s->is_a && !s->hello_done && m->type != UDPW_HELLO) {
		return -NATX_E_PROTO;
	}
	switch (m->type) {
	case UDPW_HELLO:
		if (s->is_a || s->hello_done) {
			return -NATX_E_PROTO;
		}
		return udpx_on_hello(u, s, m, now);
	case UDPW_CANDS:
		if (s->cands_got) {
			return -NATX_E_PROTO;
		}
		s->npeer = m->cands.n;
		memcpy(s->peer, m->cands.a, sizeof(s->peer[0]) * m->cands.n);
		s->cands_got = true;
		return 0;
	case UDPW_PING:
		if (s->is_a) {
			return -NATX_E_PROTO;
		} else {
			struct udpw_msg p = { .type = UDPW_PONG, .stamp = m->stamp };

			udpx_send_msg(u, s, &p);
		}
		return 0;
	case UDPW_PONG:
		if (!s->is_a || !s->ping_sent || m->stamp != s->ping_at) {
			return -NATX_E_PROTO;
		}
		s->rtt_ms = (int64_t)(now - s->ping_at);
		return 0;
	case UDPW_SYNC:
		if (s->is_a || m->round == 0 || m->round > UDPX_ROUNDS + 1) {
			return -NATX_E_PROTO;
		}
		s->round = m->round;
		if (s->round == 1) {
			s->punch_t0 = now;
		}
		if (s->round > UDPX_ROUNDS) {
			/*
			 * Any libp2p peer can ask for a many-probe round here (thousands of probes
			 * to the address it claims): at most one per UDPX_SPRAY_GAP_MS per node.
			 */
			if (u->last_spray_ms && now - u->last_spray_ms < UDPX_SPRAY_GAP_MS) {
				pr_info(MOD, "session %u: many-probe round refused (one per %d ms)",
					(unsigned int)s->id, UDPX_SPRAY_GAP_MS);
				return 0;
			}
			u->last_spray_ms = now;
		}
		udpx_round_start(s, now);
		return 0;
	case UDPW_RESULT:
		if (s->is_a && !m->result.direct) {
			return -NATX_E_PROTO; /* only A declares failure */
		}
		if (s->is_a && (s->direct || s->punch_over)) {
			return 0; /* A got there first, or already gave up */
		}
		if (s->is_a) {
			CNT(u, s, punch_successes);
		}
		udpx_spray_close(s);
		s->spraying = false;
		s->punching = false;
		s->punch_over = true;
		if (m->result.direct && s->have_psrc) {
			char a[64];

			s->direct = true;
			s->daddr = s->psrc;
			s->last_rx_direct = now;
			s->t_direct_ms = now - s->punch_t0;
			udpx_sin_fmt(&s->daddr, a, sizeof(a));
			snprintf(s->reason, sizeof(s->reason), "direct to %s (%.160s)", a,
				 m->result.reason);
		} else {
			snprintf(s->reason, sizeof(s->reason), "relayed: %s",
				 m->result.direct ? "no authenticated probe from the peer" :
						    m->result.reason);
		}
		return 0;
	case UDPW_DATA:
		CNT(u, s, relayed_in);
		udpx_deliver(u, s, m->data.flow, m->data.data, m->data.len, now);
		return 0;
	case UDPW_ERROR:
		snprintf(s->reason, sizeof(s->reason), "peer: %s", m->error);
		return -ECONNRESET;
	default:
		return -NATX_E_PROTO;
	}
}

static void udpx_stream_read(struct udpx *u, struct udpx_sess *s, uint64_t now)
{
	for (int k = 0; k < 16 && s->stream_up; k++) {
		ssize_t n = recv(s->tfd, s->rx + s->rxlen, UDPX_RX_CAP - s->rxlen, MSG_DONTWAIT);
		size_t off = 0;

		if (s->draining) {
			if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
				s->dead = true;
			}
			if (n <= 0) {
				return;
			}
			continue;
		}

		if (n == 0) {
			udpx_stream_fail(u, s, "stream closed by the peer or the engine");
			return;
		}
		if (n < 0) {
			if (errno != EAGAIN && errno != EINTR) {
				udpx_stream_fail(u, s, "stream read failed");
			}
			return;
		}
		s->rxlen += (size_t)n;
		while (s->stream_up) {
			struct udpw_msg m;
			size_t used;
			int rc = udpw_msg_parse(s->rx + off, s->rxlen - off, &m, &used);

			if (rc == -EAGAIN) {
				break;
			}
			if (rc) {
				udpx_send_error(u, s, "malformed message");
				if (!s->is_a && !s->direct) {
					udpx_drain(u, s, now);
					return;
				}
				udpx_stream_fail(u, s, "malformed message from the peer");
				return;
			}
			off += used;
			rc = udpx_on_msg(u, s, &m, now);
			if (rc) {
				if (rc == -NATX_E_PROTO) {
					udpx_send_error(u, s, "unexpected message");
				}
				if (!s->is_a && !s->direct && rc != -ECONNRESET) {
					udpx_drain(u, s, now);
					return;
				}
				udpx_stream_flush(u, s);
				udpx_stream_fail(u, s,
						 rc == -ECONNRESET ? s->reason :
								     "session refused or broken");
				return;
			}
		}
		if (!s->stream_up) {
			return;
		}
		memmove(s->rx, s->rx + off, s->rxlen - off);
		s->rxlen -= off;
	}
}

static void udpx_stream_event(struct udpx *u, struct udpx_sess *s, uint32_t events, uint64_t now)
{
	if (s->is_a && !s->stream_up && s->tfd >= 0 && (events & (EPOLLOUT | EPOLLERR))) {
		struct udpw_msg m = { .type = UDPW_HELLO };
		int err = 0;
		socklen_t el = sizeof(err);

		if (getsockopt(s->tfd, SOL_SOCKET, SO_ERROR, &err, &el) || err) {
			udpx_close_fd(u, &s->tfd);
			snprintf(s->reason, sizeof(s->reason), "stream connect: %s",
				 strerror(err ? err : errno));
			udpx_sess_clear(u, s);
			s->retry_at = now + s->backoff_ms;
			return;
		}
		s->stream_up = true;
		s->want_out = false;
		udpx_ep_mod(u, s->tfd, EPOLLIN | EPOLLRDHUP, &s->tev);
		memcpy(m.hello.sid, s->sid, UDPW_SID_LEN);
		memcpy(m.hello.key, s->key, UDPW_KEY_LEN);
		snprintf(m.hello.name, sizeof(m.hello.name), "%s", s->name);
		if (s->stun_set) {
			udpx_sin_to_wire(&s->stun, &m.hello.stun);
		} else {
			m.hello.stun.family = 4;
		}
		udpx_send_msg(u, s, &m);
		s->hello_done = true;
		snprintf(s->reason, sizeof(s->reason),
			 "relayed while punching (learning addresses)");
		return;
	}
	if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) {
		udpx_stream_read(u, s, now);
	}
	if ((events & EPOLLOUT) && s->stream_up) {
		udpx_stream_flush(u, s);
	}
}

/* udpx_local_read - A: datagrams from local clients. */
static void udpx_local_read(struct udpx *u, struct udpx_sess *s, uint64_t now)
{
	for (int k = 0; k < UDPX_BATCH; k++) {
		struct sockaddr_storage from;
		socklen_t fl = sizeof(from);
		ssize_t n = recvfrom(s->lfd, u->buf, sizeof(u->buf), MSG_DONTWAIT,
				     (struct sockaddr *)&from, &fl);
		struct udpx_aflow *f;

		if (n < 0) {
			return;
		}
		f = udpx_aflow_by_client(s, &from, fl);
		if (!f) {
			CNT(u, s, flow_drops);
			continue;
		}
		f->last_ms = now;
		udpx_forward(u, s, f->flow, u->buf, (size_t)n);
	}
}

/* udpx_flow_read - B: replies of the service on flow socket @i. */
static void udpx_flow_read(struct udpx *u, struct udpx_sess *s, unsigned int i, uint64_t now)
{
	for (int k = 0; k < UDPX_BATCH && s->bflows[i].used; k++) {
		ssize_t n = recv(s->bflows[i].fd, u->buf, sizeof(u->buf), MSG_DONTWAIT);

		if (n < 0) {
			return;
		}
		s->bflows[i].last_ms = now;
		udpx_forward(u, s, s->bflows[i].flow, u->buf, (size_t)n);
	}
}

static struct udpx_sess *udpx_sess_new(struct udpx *u, bool is_a)
{
	struct udpx_sess *s;
	int slot = -1;

	for (int i = 0; i < UDPX_SESS_MAX; i++) {
		if (!u->sess[i]) {
			slot = i;
			break;
		}
	}
	if (slot < 0) {
		return NULL;
	}
	s = calloc(1, sizeof(*s));
	if (!s) {
		return NULL;
	}
	s->is_a = is_a;
	s->tfd = s->pfd = s->lfd = -1;
	s->rtt_ms = -1;
	s->rx = malloc(UDPX_RX_CAP);
	s->tx = malloc(UDPX_TX_CAP);
	if (is_a) {
		s->aflows = calloc(UDPX_FLOWS_MAX, sizeof(*s->aflows));
	} else {
		s->bflows = calloc(UDPX_FLOWS_MAX, sizeof(*s->bflows));
	}
	if (!s->rx || !s->tx || (is_a ? !s->aflows : !s->bflows)) {
		free(s->rx);
		free(s->tx);
		free(s->aflows);
		free(s->bflows);
		free(s);
		return NULL;
	}
	for (unsigned int i = 0; is_a == false && i < UDPX_FLOWS_MAX; i++) {
		s->bflows[i].fd = -1;
	}
	s->next_flow = 1;
	s->backoff_ms = UDPX_BACKOFF_MIN_MS;
	s->created_ms = udpx_now_ms();
	u->sess[slot] = s;
	u->sessions_total++;
	return s;
}

/* udpx_sess_kill - close everything of @s now; the memory goes after the batch. */
static void udpx_sess_kill(struct udpx *u, struct udpx_sess *s)
{
	udpx_sess_clear(u, s);
	udpx_close_fd(u, &s->lfd);
	for (unsigned int i = 0; s->bflows && i < UDPX_FLOWS_MAX; i++) {
		if (s->bflows[i].used) {
			udpx_bflow_close(u, s, i);
		}
	}
	s->dead = true;
}

static void udpx_reap(struct udpx *u)
{
	for (int i = 0; i < UDPX_SESS_MAX; i++) {
		struct udpx_sess *s = u->sess[i];

		if (s && s->dead) {
			udpx_sess_kill(u, s);
			free(s->rx);
			free(s->tx);
			free(s->aflows);
			free(s->bflows);
			free(s);
			u->sess[i] = NULL;
		}
	}
}

static void udpx_gw_accept(struct udpx *u)
{
	for (int k = 0; k < 16; k++) {
		int fd = accept4(u->gfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		struct udpx_sess *s;

		if (fd < 0) {
			return;
		}
		s = udpx_sess_new(u, false);
		if (!s) {
			pr_warn(MOD, "UDP session refused: %d sessions open", UDPX_SESS_MAX);
			close(fd);
			continue;
		}
		s->id = ++u->next_bid;
		s->tfd = fd;
		s->tev = (struct udpx_ev){ EV_STREAM, s, 0 };
		s->stream_up = true;
		snprintf(s->reason, sizeof(s->reason), "waiting for HELLO");
		if (udpx_ep_add(u, fd, EPOLLIN | EPOLLRDHUP, &s->tev)) {
			s->dead = true;
		}
	}
}

/* udpx_sess_tick - timers of one session. */
static void udpx_sess_tick(struct udpx *u, struct udpx_sess *s, uint64_t now, bool slow)
{
	if (s->is_a && s->tfd < 0 && s->pfd < 0 && now >= s->retry_at) {
		udpx_a_start(u, s, now);
		return;
	}
	if (s->draining) {
		if (now - s->drain_start > UDPX_DRAIN_MS) {
			s->dead = true;
		}
		return;
	}
	if (!s->is_a && !s->hello_done && now - s->created_ms > UDPX_HELLO_WAIT_MS) {
		udpx_stream_fail(u, s, "no HELLO");
		return;
	}
	if (s->pfd >= 0 && !s->stun_done && s->stun_set && now >= s->stun_next) {
		if (s->stun_tries >= UDPX_STUN_TRIES) {
			s->stun_done = true;
			CNT(u, s, stun_failed);
		} else {
			udpx_stun_send(s, now);
		}
	}
	if (s->stream_up && s->hello_done && s->stun_done && !s->cands_sent) {
		udpx_send_cands(u, s, now);
	}
	if (s->is_a && s->stream_up && s->cands_sent && s->cands_got && s->rtt_ms >= 0 &&
	    s->round == 0 && !s->punch_over) {
		if (!s->npeer || !s->nown) {
			struct udpw_msg m = { .type = UDPW_RESULT };

			s->punch_over = true;
			snprintf(s->reason, sizeof(s->reason), "relayed: %s has no UDP candidates",
				 s->npeer ? "this node" : "the peer");
			snprintf(m.result.reason, sizeof(m.result.reason), "%.200s", s->reason);
			udpx_send_msg(u, s, &m);
		} else {
			udpx_sync(u, s, now);
		}
	}
	if (s->punching && s->probes_left && now >= s->next_probe) {
		/*
		 * The first probe of a round leaves with a small TTL: it opens our own NAT's
		 * mapping and dies before the peer's NAT, where an unsolicited packet would make
		 * Linux conntrack hold the peer's port and remap the peer's own probes.
		 */
		bool opening = s->probes_left == UDPX_ROUND_PROBES;
		int ttl = opening ? UDPX_OPEN_TTL : -1;

		setsockopt(s->pfd, IPPROTO_IP, IP_TTL, &ttl, sizeof(ttl));
		for (unsigned int i = 0; i < s->npeer; i++) {
			struct sockaddr_in to = { .sin_family = AF_INET,
						  .sin_port = htons(s->peer[i].port) };

			if (s->peer[i].family != 4) {
				continue;
			}
			memcpy(&to.sin_addr, s->peer[i].addr, 4);
			udpx_probe_send(u, s, NATX_PUNCH_TYPE_PROBE, ++s->probe_seq, &to);
		}
		if (opening) {
			ttl = -1; /* the system default again */
			setsockopt(s->pfd, IPPROTO_IP, IP_TTL, &ttl, sizeof(ttl));
		}
		s->probes_left--;
		s->next_probe = now + UDPX_PROBE_GAP_MS;
	}
	if (s->spraying && !s->direct) {
		if (!s->guessed && now >= s->spray_t) {
			s->guessed = true;
			udpx_spray_guess(u, s);
		}
		if (s->spray_sends < 2 &&
		    now >= s->spray_t + UDPX_SPRAY_DELAY_MS + 150ULL * s->spray_sends) {
			s->spray_sends++;
			udpx_spray_fire(u, s);
		}
		udpx_spray_read(u, s, now);
	}
	if (s->punching && now >= s->round_end) {
		s->punching = false;
		s->spraying = false;
		udpx_spray_close(s);
		if (s->is_a && !s->direct && s->stream_up) {
			/* the many-probe round needs the peer's STUN-mapped address */
			if (s->round <
			    (unsigned int)UDPX_ROUNDS + (s->npeer && s->peer[0].family == 4)) {
				udpx_sync(u, s, now);
			} else {
				struct udpw_msg m = { .type = UDPW_RESULT };

				s->punch_over = true;
				CNT(u, s, punch_failures);
				snprintf(
					s->reason, sizeof(s->reason),
					"relayed: hole punching failed (no authenticated answer to "
					"%llu probes in %u rounds)",
					(unsigned long long)s->c.probes_sent, s->round);
				pr_info(MOD, "connection %u: %s", (unsigned int)s->id, s->reason);
				snprintf(m.result.reason, sizeof(m.result.reason), "%.200s",
					 s->reason);
				udpx_send_msg(u, s, &m);
			}
		}
	}
	if (s->direct) {
		if (now - s->last_keepalive >= UDPX_KEEPALIVE_MS) {
			s->last_keepalive = now;
			udpx_probe_send(u, s, NATX_PUNCH_TYPE_PROBE, ++s->probe_seq, &s->daddr);
		}
		if (now - s->last_rx_direct > UDPX_DIRECT_DEAD_MS) {
			s->direct = false;
			CNT(u, s, direct_lost);
			snprintf(s->reason, sizeof(s->reason),
				 "relayed: the direct path was silent for %d ms",
				 UDPX_DIRECT_DEAD_MS);
			pr_info(MOD, "session %u: %s", (unsigned int)s->id, s->reason);
			if (!s->stream_up) {
				if (s->is_a) {
					udpx_sess_clear(u, s);
					s->retry_at = now;
				} else {
					s->dead = true;
				}
				return;
			}
		}
	}
	if (s->is_a && s->stream_up && s->hello_done) {
		s->backoff_ms = UDPX_BACKOFF_MIN_MS; /* a working stream resets the backoff */
	}
	if (slow) {
		for (unsigned int i = 0; s->aflows && i < UDPX_FLOWS_MAX; i++) {
			if (s->aflows[i].used && now - s->aflows[i].last_ms > UDPX_FLOW_IDLE_MS) {
				s->aflows[i].used = false;
			}
		}
		for (unsigned int i = 0; s->bflows && i < UDPX_FLOWS_MAX; i++) {
			if (s->bflows[i].used && now - s->bflows[i].last_ms > UDPX_FLOW_IDLE_MS) {
				udpx_bflow_close(u, s, i);
			}
		}
	}
}

/*
 * udpx_busy - a session has a timer finer than UDPX_IDLE_TICK_MS running (STUN retries,
 * probes, a session about to start or stop); new sessions started by the API wait at most
 * one idle tick.
 */
static bool udpx_busy(const struct udpx *u)
{
	uint64_t soon = udpx_now_ms() + UDPX_IDLE_TICK_MS;

	for (int i = 0; i < UDPX_SESS_MAX; i++) {
		const struct udpx_sess *s = u->sess[i];

		if (s && (s->dead || s->punching || s->draining || (s->pfd >= 0 && !s->stun_done) ||
			  (s->is_a && s->tfd < 0 && s->retry_at <= soon) ||
			  (s->stream_up && s->hello_done && !s->cands_sent) ||
			  (s->is_a && s->stream_up && !s->punch_over))) {
			return true;
		}
	}
	return false;
}

static void *udpx_main(void *arg)
{
	struct udpx *u = arg;
	struct epoll_event evs[64];
	uint64_t last_slow = 0;

	pthread_mutex_lock(&u->mu);
	while (!u->stop) {
		int n, wait = udpx_busy(u) ? UDPX_TICK_MS : UDPX_IDLE_TICK_MS;
		uint64_t now;

		pthread_mutex_unlock(&u->mu);
		n = epoll_wait(u->epfd, evs, 64, wait);
		pthread_mutex_lock(&u->mu);
		now = udpx_now_ms();
		for (int i = 0; i < n; i++) {
			struct udpx_ev *ev = evs[i].data.ptr;
			struct udpx_sess *s = ev->s;

			if (ev->kind == EV_GW) {
				udpx_gw_accept(u);
				continue;
			}
			if (s->dead) {
				continue;
			}
			switch (ev->kind) {
			case EV_STREAM:
				udpx_stream_event(u, s, evs[i].events, now);
				break;
			case EV_PUNCH:
				udpx_punch_read(u, s, now);
				break;
			case EV_LOCAL:
				udpx_local_read(u, s, now);
				break;
			case EV_FLOW:
				udpx_flow_read(u, s, ev->idx, now);
				break;
			default:
				break;
			}
		}
		now = udpx_now_ms();
		for (int i = 0; i < UDPX_SESS_MAX; i++) {
			if (u->sess[i] && !u->sess[i]->dead) {
				udpx_sess_tick(u, u->sess[i], now, now - last_slow >= 1000);
			}
		}
		if (now - last_slow >= 1000) {
			last_slow = now;
		}
		udpx_reap(u);
	}
	pthread_mutex_unlock(&u->mu);
	return NULL;
}

/* ---- the API (natxd's main thread) ---- */

struct udpx *udpx_new(int *err)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t al = sizeof(a);
	struct udpx *u = calloc(1, sizeof(*u));
	int rc;

	if (!u) {
		*err = -ENOMEM;
		return NULL;
	}
	pthread_mutex_init(&u->mu, NULL);
	u->epfd = epoll_create1(EPOLL_CLOEXEC);
	u->gfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (u->epfd < 0 || u->gfd < 0 || bind(u->gfd, (struct sockaddr *)&a, sizeof(a)) ||
	    listen(u->gfd, 64) || getsockname(u->gfd, (struct sockaddr *)&a, &al)) {
		rc = -errno;
		goto close_fds;
	}
	u->gport = ntohs(a.sin_port);
	u->gev = (struct udpx_ev){ EV_GW, NULL, 0 };
	rc = udpx_ep_add(u, u->gfd, EPOLLIN, &u->gev);
	if (rc) {
		goto close_fds;
	}
	rc = -pthread_create(&u->thr, NULL, udpx_main, u);
	if (rc) {
		goto close_fds;
	}
	return u;
close_fds:
	if (u->gfd >= 0) {
		close(u->gfd);
	}
	if (u->epfd >= 0) {
		close(u->epfd);
	}
	pthread_mutex_destroy(&u->mu);
	free(u);
	*err = rc;
	return NULL;
}

void udpx_free(struct udpx *u)
{
	if (!u) {
		return;
	}
	pthread_mutex_lock(&u->mu);
	u->stop = true;
	pthread_mutex_unlock(&u->mu);
	pthread_join(u->thr, NULL);
	for (int i = 0; i < UDPX_SESS_MAX; i++) {
		if (u->sess[i]) {
			u->sess[i]->dead = true;
		}
	}
	udpx_reap(u);
	close(u->gfd);
	close(u->epfd);
	pthread_mutex_destroy(&u->mu);
	free(u);
}

uint16_t udpx_gateway_port(const struct udpx *u)
{
	return u->gport;
}

/* udpx_name_ok - [A-Za-z0-9._-], 1..UDPW_NAME_MAX bytes. */
static bool udpx_name_ok(const char *n)
{
	size_t l = strlen(n);

	if (!l || l > UDPW_NAME_MAX) {
		return false;
	}
	for (size_t i = 0; i < l; i++) {
		char c = n[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '.' || c == '_' || c == '-')) {
			return false;
		}
	}
	return true;
}

int udpx_service_add(struct udpx *u, const char *name, const char *target, char *msg, size_t msglen)
{
	struct udpx_svc sv = { 0 };
	int rc = 0;

	if (!udpx_name_ok(name)) {
		snprintf(msg, msglen, "a UDP service name is 1..%d of [A-Za-z0-9._-]",
			 UDPW_NAME_MAX);
		return -EINVAL;
	}
	if (udpx_sockaddr_parse(target, &sv.addr, &sv.alen) ||
	    !((struct sockaddr_in *)&sv.addr)->sin_port) {
		snprintf(msg, msglen, "target '%.80s' is not IPv4:PORT or [IPv6]:PORT", target);
		return -EINVAL;
	}
	snprintf(sv.name, sizeof(sv.name), "%s", name);
	snprintf(sv.target, sizeof(sv.target), "%s", target);
	pthread_mutex_lock(&u->mu);
	if (udpx_svc_find(u, name)) {
		snprintf(msg, msglen, "UDP service %s is already exposed", name);
		rc = -EEXIST;
	} else if (u->nsvcs >= UDPX_SERVICES_MAX) {
		snprintf(msg, msglen, "at most %d UDP services", UDPX_SERVICES_MAX);
		rc = -NATX_E_LIMIT;
	} else {
		u->svcs[u->nsvcs++] = sv;
	}
	pthread_mutex_unlock(&u->mu);
	return rc;
}

int udpx_service_rm(struct udpx *u, const char *name)
{
	int rc = -ENOENT;

	pthread_mutex_lock(&u->mu);
	for (unsigned int i = 0; i < u->nsvcs; i++) {
		if (!strcmp(u->svcs[i].name, name)) {
			u->svcs[i] = u->svcs[--u->nsvcs];
			rc = 0;
			break;
		}
	}
	pthread_mutex_unlock(&u->mu);
	return rc;
}

int udpx_conn_open(struct udpx *u, const struct udpx_conn_req *req, uint32_t *id, char *bound,
		   char *msg, size_t msglen)
{
	struct sockaddr_storage la, sa, st;
	socklen_t ll, sl, tl;
	struct udpx_sess *s;
	char host[INET6_ADDRSTRLEN];
	int rc;

	if (!udpx_name_ok(req->name)) {
		snprintf(msg, msglen, "a UDP service name is 1..%d of [A-Za-z0-9._-]",
			 UDPW_NAME_MAX);
		return -EINVAL;
	}
	if (udpx_sockaddr_parse(req->local, &la, &ll)) {
		snprintf(msg, msglen, "local address '%.80s' is not IPv4:PORT or [IPv6]:PORT",
			 req->local);
		return -EINVAL;
	}
	if (udpx_sockaddr_parse(req->stream, &sa, &sl) || sa.ss_family != AF_INET) {
		snprintf(msg, msglen, "stream address '%.80s' is not IPv4:PORT", req->stream);
		return -EINVAL;
	}
	if (req->stun && (udpx_sockaddr_parse(req->stun, &st, &tl) || st.ss_family != AF_INET)) {
		snprintf(msg, msglen, "STUN address '%.80s' is not IPv4:PORT", req->stun);
		return -EINVAL;
	}
	pthread_mutex_lock(&u->mu);
	s = udpx_sess_new(u, true);
	if (!s) {
		pthread_mutex_unlock(&u->mu);
		snprintf(msg, msglen, "at most %d UDP sessions", UDPX_SESS_MAX);
		return -NATX_E_LIMIT;
	}
	s->lfd = socket(la.ss_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (s->lfd < 0 || bind(s->lfd, (struct sockaddr *)&la, ll) ||
	    getsockname(s->lfd, (struct sockaddr *)&la, &ll)) {
		rc = -errno;
		snprintf(msg, msglen, "cannot bind UDP %s: %s", req->local, strerror(-rc));
		goto kill;
	}
	s->lev = (struct udpx_ev){ EV_LOCAL, s, 0 };
	rc = udpx_ep_add(u, s->lfd, EPOLLIN, &s->lev);
	if (rc) {
		snprintf(msg, msglen, "epoll: %s", strerror(-rc));
		goto kill;
	}
	if (la.ss_family == AF_INET) {
		inet_ntop(AF_INET, &((struct sockaddr_in *)&la)->sin_addr, host, sizeof(host));
		snprintf(s->local, sizeof(s->local), "udp:%s:%u", host,
			 (unsigned int)ntohs(((struct sockaddr_in *)&la)->sin_port));
	} else {
		inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&la)->sin6_addr, host, sizeof(host));
		snprintf(s->local, sizeof(s->local), "udp:[%s]:%u", host,
			 (unsigned int)ntohs(((struct sockaddr_in6 *)&la)->sin6_port));
	}
	s->id = ++u->next_id;
	snprintf(s->name, sizeof(s->name), "%s", req->name);
	snprintf(s->target, sizeof(s->target), "%s", req->target ? req->target : "");
	memcpy(&s->saddr, &sa, sizeof(s->saddr));
	if (req->stun) {
		memcpy(&s->stun, &st, sizeof(s->stun));
		s->stun_set = true;
	}
	snprintf(s->reason, sizeof(s->reason), "connecting the coordination stream");
	s->retry_at = 0; /* the thread starts the session at its next tick */
	*id = s->id;
	snprintf(bound, 64, "%s", s->local);
	pthread_mutex_unlock(&u->mu);
	return 0;
kill:
	udpx_sess_kill(u, s);
	pthread_mutex_unlock(&u->mu);
	return rc;
}

static struct udpx_sess *udpx_conn_find(struct udpx *u, uint32_t id)
{
	for (int i = 0; i < UDPX_SESS_MAX; i++) {
		if (u->sess[i] && u->sess[i]->is_a && !u->sess[i]->dead && u->sess[i]->id == id) {
			return u->sess[i];
		}
	}
	return NULL;
}

int udpx_conn_close(struct udpx *u, uint32_t id)
{
	struct udpx_sess *s;
	int rc = -ENOENT;

	pthread_mutex_lock(&u->mu);
	s = udpx_conn_find(u, id);
	if (s) {
		udpx_sess_kill(u, s);
		rc = 0;
	}
	pthread_mutex_unlock(&u->mu);
	return rc;
}

static const char *udpx_path(const struct udpx_sess *s)
{
	if (s->direct) {
		return "udp-direct";
	}
	return s->stream_up && s->hello_done ? "udp-relayed" : "udp-connecting";
}

int udpx_conn_path(struct udpx *u, uint32_t id, char *path, size_t plen, char *reason, size_t rlen)
{
	struct udpx_sess *s;
	int rc = -ENOENT;

	pthread_mutex_lock(&u->mu);
	s = udpx_conn_find(u, id);
	if (s) {
		snprintf(path, plen, "%s", udpx_path(s));
		snprintf(reason, rlen, "%s", s->reason);
		rc = 0;
	}
	pthread_mutex_unlock(&u->mu);
	return rc;
}

static cJSON *udpx_cnt_json(const struct udpx_cnt *c)
{
	cJSON *o = cJSON_CreateObject();
	const struct {
		const char *name;
		uint64_t v;
	} f[] = {
		{ "punch_attempts", c->punch_attempts },
		{ "punch_successes", c->punch_successes },
		{ "punch_failures", c->punch_failures },
		{ "punch_rounds", c->punch_rounds },
		{ "probes_sent", c->probes_sent },
		{ "probes_ok", c->probes_ok },
		{ "probes_bad", c->probes_bad },
		{ "auth_failed", c->auth_failed },
		{ "garbage", c->garbage },
		{ "datagrams_direct_out", c->direct_out },
		{ "datagrams_direct_in", c->direct_in },
		{ "datagrams_relayed_out", c->relayed_out },
		{ "datagrams_relayed_in", c->relayed_in },
		{ "dropped_queue_full", c->queue_drops },
		{ "dropped_no_flow", c->flow_drops },
		{ "stun_ok", c->stun_ok },
		{ "stun_failed", c->stun_failed },
		{ "direct_lost", c->direct_lost },
	};

	for (size_t i = 0; o && i < sizeof(f) / sizeof(f[0]); i++) {
		cJSON_AddNumberToObject(o, f[i].name, (double)f[i].v);
	}
	return o;
}

static cJSON *udpx_addrs_json(const struct udpw_addr *a, unsigned int n)
{
	cJSON *arr = cJSON_CreateArray();

	for (unsigned int i = 0; arr && i < n; i++) {
		char s[64];

		udpw_addr_fmt(&a[i], s, sizeof(s));
		cJSON_AddItemToArray(arr, cJSON_CreateString(s));
	}
	return arr;
}

static cJSON *udpx_sess_json(const struct udpx_sess *s)
{
	cJSON *o = cJSON_CreateObject();
	unsigned int flows = 0;
	char a[64] = "", sid[2 * UDPW_SID_LEN + 1];

	if (!o) {
		return NULL;
	}
	for (unsigned int i = 0; i < UDPX_FLOWS_MAX; i++) {
		flows += s->is_a ? s->aflows[i].used : s->bflows[i].used;
	}
	if (s->direct) {
		udpx_sin_fmt(&s->daddr, a, sizeof(a));
	}
	cJSON_AddStringToObject(o, "role", s->is_a ? "connect" : "expose");
	cJSON_AddNumberToObject(o, "id", s->id);
	cJSON_AddStringToObject(o, "service", s->name);
	cJSON_AddStringToObject(o, s->is_a ? "peer" : "target", s->target);
	if (s->is_a) {
		cJSON_AddStringToObject(o, "local", s->local);
	}
	for (unsigned int i = 0; i < UDPW_SID_LEN; i++) {
		snprintf(sid + 2 * i, 3, "%02x", s->sid[i]);
	}
	cJSON_AddStringToObject(o, "sid", sid); /* an identifier, not a secret (the key is) */
	if (s->pfd >= 0) {
		struct sockaddr_in pa;
		socklen_t pl = sizeof(pa);

		if (!getsockname(s->pfd, (struct sockaddr *)&pa, &pl)) {
			cJSON_AddNumberToObject(o, "punch_port", ntohs(pa.sin_port));
		}
	}
	cJSON_AddStringToObject(o, "path", udpx_path(s));
	cJSON_AddStringToObject(o, "reason", s->reason);
	cJSON_AddBoolToObject(o, "stream", s->stream_up);
	cJSON_AddItemToObject(o, "candidates", udpx_addrs_json(s->own, s->nown));
	cJSON_AddItemToObject(o, "peer_candidates", udpx_addrs_json(s->peer, s->npeer));
	if (s->direct) {
		cJSON_AddStringToObject(o, "direct_addr", a);
		cJSON_AddNumberToObject(o, "time_to_direct_ms", (double)s->t_direct_ms);
	}
	cJSON_AddNumberToObject(o, "rtt_ms", (double)s->rtt_ms);
	cJSON_AddNumberToObject(o, "round", s->round);
	cJSON_AddNumberToObject(o, "flows", flows);
	cJSON_AddItemToObject(o, "counters", udpx_cnt_json(&s->c));
	return o;
}

cJSON *udpx_json(struct udpx *u)
{
	cJSON *o = cJSON_CreateObject(), *svcs, *sess;

	if (!o) {
		return NULL;
	}
	pthread_mutex_lock(&u->mu);
	cJSON_AddNumberToObject(o, "gateway_port", u->gport);
	svcs = cJSON_AddArrayToObject(o, "services");
	for (unsigned int i = 0; svcs && i < u->nsvcs; i++) {
		cJSON *it = cJSON_CreateObject();

		cJSON_AddStringToObject(it, "name", u->svcs[i].name);
		cJSON_AddStringToObject(it, "target", u->svcs[i].target);
		cJSON_AddNumberToObject(it, "sessions", (double)u->svcs[i].sessions);
		cJSON_AddItemToArray(svcs, it);
	}
	sess = cJSON_AddArrayToObject(o, "sessions");
	for (int i = 0; sess && i < UDPX_SESS_MAX; i++) {
		if (u->sess[i] && !u->sess[i]->dead) {
			cJSON_AddItemToArray(sess, udpx_sess_json(u->sess[i]));
		}
	}
	cJSON_AddNumberToObject(o, "sessions_total", (double)u->sessions_total);
	cJSON_AddItemToObject(o, "counters", udpx_cnt_json(&u->c));
	pthread_mutex_unlock(&u->mu);
	return o;
}

void udpx_prom(struct udpx *u, FILE *f)
{
	struct udpx_cnt c;
	unsigned int direct = 0, relayed = 0;

	pthread_mutex_lock(&u->mu);
	c = u->c;
	for (int i = 0; i < UDPX_SESS_MAX; i++) {
		const struct udpx_sess *s = u->sess[i];

		if (s && !s->dead) {
			direct += s->direct;
			relayed += !s->direct;
		}
	}
	pthread_mutex_unlock(&u->mu);
	fprintf(f,
		"# HELP natx_udp_sessions UDP service sessions between natx nodes by path\n"
		"# TYPE natx_udp_sessions gauge\n"
		"natx_udp_sessions{path=\"direct\"} %u\nnatx_udp_sessions{path=\"relayed\"} %u\n",
		direct, relayed);
	fprintf(f,
		"# HELP natx_udp_punch_total UDP hole punches by outcome (attempts by connecting "
		"nodes)\n# TYPE natx_udp_punch_total counter\n"
		"natx_udp_punch_total{result=\"attempt\"} %llu\n"
		"natx_udp_punch_total{result=\"success\"} %llu\n"
		"natx_udp_punch_total{result=\"failure\"} %llu\n",
		(unsigned long long)c.punch_attempts, (unsigned long long)c.punch_successes,
		(unsigned long long)c.punch_failures);
	fprintf(f,
		"# HELP natx_udp_probes_total punch probes sent, accepted, rejected\n"
		"# TYPE natx_udp_probes_total counter\n"
		"natx_udp_probes_total{result=\"sent\"} %llu\n"
		"natx_udp_probes_total{result=\"ok\"} %llu\n"
		"natx_udp_probes_total{result=\"bad\"} %llu\n",
		(unsigned long long)c.probes_sent, (unsigned long long)c.probes_ok,
		(unsigned long long)c.probes_bad);
	fprintf(f,
		"# HELP natx_udp_datagrams_total datagrams of UDP services by path and direction\n"
		"# TYPE natx_udp_datagrams_total counter\n"
		"natx_udp_datagrams_total{path=\"direct\",dir=\"out\"} %llu\n"
		"natx_udp_datagrams_total{path=\"direct\",dir=\"in\"} %llu\n"
		"natx_udp_datagrams_total{path=\"relayed\",dir=\"out\"} %llu\n"
		"natx_udp_datagrams_total{path=\"relayed\",dir=\"in\"} %llu\n",
		(unsigned long long)c.direct_out, (unsigned long long)c.direct_in,
		(unsigned long long)c.relayed_out, (unsigned long long)c.relayed_in);
	fprintf(f,
		"# HELP natx_udp_dropped_total datagrams dropped or rejected\n"
		"# TYPE natx_udp_dropped_total counter\n"
		"natx_udp_dropped_total{reason=\"queue_full\"} %llu\n"
		"natx_udp_dropped_total{reason=\"no_flow\"} %llu\n"
		"natx_udp_dropped_total{reason=\"auth\"} %llu\n"
		"natx_udp_dropped_total{reason=\"garbage\"} %llu\n",
		(unsigned long long)c.queue_drops, (unsigned long long)c.flow_drops,
		(unsigned long long)c.auth_failed, (unsigned long long)c.garbage);
}
