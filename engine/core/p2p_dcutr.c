// SPDX-License-Identifier: MIT
/*
 * DCUtR in the engine (docs/libp2p.md "DCUtR in the engine"): shard 0 runs the sans-IO
 * engine/p2p/dcutr.c over the relayed connections it holds and does the socket work.
 *
 * B (we received the relayed connection) opens /libp2p/dcutr, sends CONNECT with our public
 * addresses, measures the RTT (CONNECT sent -> A's CONNECT received) and sends SYNC; half an RTT
 * later (when SYNC reaches A, the spec's timing: an io_uring timeout, p2p_sconn_punch) it
 * punches. A (we dialled the relayed connection) answers CONNECT and punches as soon as SYNC
 * arrives. A punch, in both roles, is one TCP socket per usable address of the peer (all of
 * them at once; the first verified connection wins, the others are closed), bound to the
 * libp2p listen address and port (SO_REUSEADDR + SO_REUSEPORT) and connecting with a small IP
 * TTL (prime_ttl, default 2): the first SYN opens our own NAT and expires in the core between
 * the NATs, before the peer's NAT could answer it with a reset or make a conflicting entry; the
 * TTL is then reset, so the kernel's SYN retransmission (1 s later) matches the far NAT's entry
 * as a reply and meets the peer's socket in SYN_SENT: a TCP simultaneous open. A is the client
 * on the direct connection (multistream dialer, Noise initiator), B the server, whichever way
 * the TCP connection completed. B also takes A's connection on its listener (a full-cone NAT in
 * front of B lets A's SYN in); a connection accepted by another shard is handed to shard 0 (the
 * peer is in p2p_eng.punch). B's SYN may likewise reach A's listener instead of A's punch
 * socket (A's NAT forwards everything, B's changed B's port): a connection accepted from the
 * IP A is punching to is wrapped with A as the client (p2p_dcu_accept_client) and counts as
 * the upgrade.
 *
 * Verified direct connection (Noise peer ID = the relayed peer): it is marked as the peer's
 * forward connection (p2p forward by circuit address uses it from now on) and the relayed
 * connection is closed once it has no streams.
 */
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "engine.h"
#include "natx/err.h"
#include "natx/log.h"
#include "natx/udata.h"
#include "p2p/dcutr.h"
#include "p2p/identify.h"
#include "p2p_host.h"
#include "p2p_int.h"

#define MOD "p2p"

enum {
	P2P_DCU_ADDRS = 4, /* public addresses we announce */
	P2P_DCU_RECS = 32, /* upgrade records kept (a ring) */
	P2P_DCU_PUNCH_MS = 12000, /* B waits this long for A's direct connection */
	P2P_DCU_WAIT_MAX_MS = 2000, /* B's half-RTT wait at most (RTT 4 s: something is wrong) */
};

/* struct p2p_upg - one upgrade (all attempts on one relayed connection). */
struct p2p_upg {
	bool used, done, is_b;
	struct peer_id peer;
	uint32_t link, gen; /* the relayed connection */
	int64_t start_unix; /* seconds */
	uint64_t start_ms, end_ms; /* shard clock */
	int err;
	size_t n;
	struct dcutr_attempt log[DCUTR_ATTEMPTS];
	uint32_t wait_ms[DCUTR_ATTEMPTS]; /* per attempt: the wait before the punch (B: RTT/2) */
	uint8_t punched[DCUTR_ATTEMPTS]; /* per attempt: addresses punched */
	char addr[MADDR_TEXT_MAX]; /* the direct connection's remote address (done, ok) */
};

struct p2p_dcu {
	struct dcutr *d;
	uint8_t addrs[P2P_DCU_ADDRS][MADDR_MAX_LEN];
	const uint8_t *ap[P2P_DCU_ADDRS];
	size_t alen[P2P_DCU_ADDRS];
	size_t n_addrs;
	struct p2p_upg rec[P2P_DCU_RECS];
	uint32_t rec_next;
	uint32_t min_wait_ms; /* B's wait at least (NATX_DCUTR_MIN_WAIT_MS: labs without latency) */
	uint64_t upgrades, upgraded, failed, primes, prime_errors, dial_errors, no_addr,
		relayed_closed;
};

/* ---- helpers --------------------------------------------------------------------------------- */

static struct p2p_upg *p2p_upg_find(struct p2p_dcu *u, const struct p2p_sconn *L)
{
	for (int i = 0; i < P2P_DCU_RECS; i++) {
		struct p2p_upg *g = &u->rec[i];

		if (g->used && !g->done && g->link == L->slot && g->gen == L->gen) {
			return g;
		}
	}
	return NULL;
}

static struct p2p_upg *p2p_upg_new(struct p2p_shard *ps, struct p2p_sconn *L, bool is_b)
{
	struct p2p_dcu *u = ps->dcu;
	struct p2p_upg *g = &u->rec[u->rec_next++ % P2P_DCU_RECS];

	memset(g, 0, sizeof(*g));
	g->used = true;
	g->is_b = is_b;
	g->peer = L->peer;
	g->link = L->slot;
	g->gen = L->gen;
	g->start_unix = (int64_t)time(NULL);
	g->start_ms = ps->sh->now_ms;
	u->upgrades++;
	return g;
}

/* p2p_dcu_link - the relayed connection whose p2p_conn is @c (shard 0), or NULL. */
static struct p2p_sconn *p2p_dcu_link(struct p2p_conn *c)
{
	struct p2p_sconn *L = c ? p2p_conn_user(c) : NULL;

	return L && L->is_link && L->c == c ? L : NULL;
}

/* p2p_dcu_listen_ss - the libp2p listen address (what dialling sockets bind to). */
static int p2p_dcu_listen_ss(struct p2p_shard *ps, struct sockaddr_storage *ss)
{
	struct p2p_eng *pe = p2p_pe(ps);
	int has_id;

	return maddr_to_sockaddr(pe->laddr, pe->laddr_len, ss, NULL, &has_id);
}

/*
 * p2p_dcu_socket - a TCP socket bound to the listen address and port (SO_REUSEADDR +
 * SO_REUSEPORT, as the listeners), IP TTL @ttl (0: the default). -errno on failure.
 */
static int p2p_dcu_socket(struct p2p_shard *ps, int family, int ttl)
{
	struct sockaddr_storage ls;
	int one = 1, fd, err;

	if (p2p_dcu_listen_ss(ps, &ls) || ls.ss_family != family) {
		return -EAFNOSUPPORT;
	}
	fd = socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		return -errno;
	}
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) ||
	    setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one))) {
		goto fail;
	}
	if (family == AF_INET6 && setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one))) {
		goto fail;
	}
	if (ttl > 0 && (family == AF_INET ? setsockopt(fd, IPPROTO_IP, IP_TTL, &ttl, sizeof(ttl)) :
					    setsockopt(fd, IPPROTO_IPV6, IPV6_UNICAST_HOPS, &ttl,
						       sizeof(ttl)))) {
		goto fail;
	}
	if (bind(fd, (struct sockaddr *)&ls,
		 family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in))) {
		goto fail;
	}
	return fd;
fail:
	err = -errno;
	close(fd);
	return err;
}

static socklen_t p2p_ss_len(const struct sockaddr_storage *ss)
{
	return ss->ss_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
}

/*
 * p2p_dcu_punch_connect - start the hole-punch connection of socket @fd (made by
 * p2p_dcu_socket with the prime TTL) to @to: the first SYN leaves with the prime TTL (it opens
 * our NAT and expires before the peer's), then the TTL is reset so the kernel's SYN
 * retransmission (1 s later) crosses the peer's and the two sockets complete a TCP simultaneous
 * open. The socket survives the ICMP time-exceeded of the first SYN (a soft error: it only
 * shows in SO_ERROR, see p2p_sconn_punch). Returns 0 or -errno.
 */
static int p2p_dcu_punch_connect(struct p2p_shard *ps, int fd, const struct sockaddr_storage *to)
{
	int ttl = __atomic_load_n(&p2p_pe(ps)->dcutr_ttl, __ATOMIC_RELAXED), def = -1;

	if (connect(fd, (const struct sockaddr *)to, p2p_ss_len(to)) && errno != EINPROGRESS) {
		return -errno;
	}
	if (ttl > 0) {
		/* -1: back to the route's default for every later segment */
		if (to->ss_family == AF_INET) {
			setsockopt(fd, IPPROTO_IP, IP_TTL, &def, sizeof(def));
		} else {
			setsockopt(fd, IPPROTO_IPV6, IPV6_UNICAST_HOPS, &def, sizeof(def));
		}
	}
	return 0;
}

int p2p_dcu_punch_fire(struct p2p_sconn *sc)
{
	return p2p_dcu_punch_connect(sc->ps, sc->fd, &sc->ss);
}

/*
 * p2p_punch_set - add (@on) or remove @peer from the peers other shards hand to shard 0; @to:
 * A's dial target (NULL for B).
 */
static void p2p_punch_set(struct p2p_shard *ps, const struct peer_id *peer, bool on,
			  const struct sockaddr_storage *to)
{
	struct p2p_eng *pe = p2p_pe(ps);
	int free_i = -1, n = 0;

	pthread_mutex_lock(&pe->lock);
	for (int i = 0; i < P2P_PUNCH_MAX; i++) {
		if (pe->punch_until[i] && peerid_equal(&pe->punch[i], peer)) {
			pe->punch_until[i] = 0;
		}
		if (!pe->punch_until[i] && free_i < 0) {
			free_i = i;
		}
	}
	if (on && free_i >= 0) {
		pe->punch[free_i] = *peer;
		pe->punch_until[free_i] = ps->sh->now_ms + P2P_DCU_PUNCH_MS;
		memset(&pe->punch_addr[free_i], 0, sizeof(pe->punch_addr[free_i]));
		if (to) {
			pe->punch_addr[free_i] = *to;
		}
	}
	for (int i = 0; i < P2P_PUNCH_MAX; i++) {
		if (pe->punch_until[i] && pe->punch_until[i] < ps->sh->now_ms) {
			pe->punch_until[i] = 0;
		}
		n += pe->punch_until[i] != 0;
	}
	__atomic_store_n(&pe->n_punch, n, __ATOMIC_RELEASE);
	pthread_mutex_unlock(&pe->lock);
}

/* p2p_punch_wanted - shard k: is @peer awaited by shard 0? */
static bool p2p_punch_wanted(struct p2p_shard *ps, const struct peer_id *peer)
{
	struct p2p_eng *pe = p2p_pe(ps);
	bool hit = false;

	if (!__atomic_load_n(&pe->n_punch, __ATOMIC_ACQUIRE)) {
		return false;
	}
	pthread_mutex_lock(&pe->lock);
	for (int i = 0; i < P2P_PUNCH_MAX && !hit; i++) {
		hit = pe->punch_until[i] && peerid_equal(&pe->punch[i], peer);
	}
	pthread_mutex_unlock(&pe->lock);
	return hit;
}

/* p2p_same_ip - @a and @b have the same IP address (ports ignored). */
static bool p2p_same_ip(const struct sockaddr_storage *a, const struct sockaddr_storage *b)
{
	if (a->ss_family != b->ss_family) {
		return false;
	}
	if (a->ss_family == AF_INET) {
		return ((const struct sockaddr_in *)a)->sin_addr.s_addr ==
		       ((const struct sockaddr_in *)b)->sin_addr.s_addr;
	}
	return a->ss_family == AF_INET6 &&
	       !memcmp(&((const struct sockaddr_in6 *)a)->sin6_addr,
		       &((const struct sockaddr_in6 *)b)->sin6_addr, sizeof(struct in6_addr));
}

bool p2p_dcu_accept_client(struct p2p_shard *ps, const struct sockaddr_storage *from,
			   struct peer_id *peer)
{
	struct p2p_eng *pe = p2p_pe(ps);
	bool hit = false;

	if (!__atomic_load_n(&pe->n_punch, __ATOMIC_ACQUIRE)) {
		return false;
	}
	pthread_mutex_lock(&pe->lock);
	for (int i = 0; i < P2P_PUNCH_MAX && !hit; i++) {
		if (pe->punch_until[i] > ps->sh->now_ms && pe->punch_addr[i].ss_family &&
		    p2p_same_ip(&pe->punch_addr[i], from)) {
			*peer = pe->punch[i];
			hit = true;
		}
	}
	pthread_mutex_unlock(&pe->lock);
	return hit;
}

/*
 * p2p_dcu_addrs_refresh - our public, dialable addresses (p2p_observed_addrs) for DCUtR's
 * CONNECT. Returns how many.
 */
static size_t p2p_dcu_addrs_refresh(struct p2p_shard *ps)
{
	struct p2p_dcu *u = ps->dcu;

	u->n_addrs = p2p_observed_addrs(ps, true, u->addrs, u->alen, P2P_DCU_ADDRS);
	for (size_t k = 0; k < u->n_addrs; k++) {
		u->ap[k] = u->addrs[k];
	}
	dcutr_set_addrs(u->d, u->ap, u->alen, u->n_addrs);
	return u->n_addrs;
}

/* ---- dcutr ops ------------------------------------------------------------------------------- */

static void p2p_dcu_dial(void *ctx, struct p2p_conn *relayed, const struct relay_addrs *addrs,
			 int64_t at_ms, bool client, unsigned attempt)
{
	struct p2p_shard *ps = ctx;
	struct p2p_dcu *u = ps->dcu;
	struct p2p_sconn *L = p2p_dcu_link(relayed), *D;
	struct sockaddr_storage first = { 0 };
	struct p2p_upg *g;
	int64_t now = p2p_clock_system.now_ms(&p2p_clock_system);
	int ttl = __atomic_load_n(&p2p_pe(ps)->dcutr_ttl, __ATOMIC_RELAXED);
	uint32_t wait = 0;
	unsigned started = 0;
	int err = -EDESTADDRREQ;

	if (!L) {
		return;
	}
	/* B: the spec's half-RTT wait (A's dial is due now); an absurd RTT is capped */
	if (at_ms > now) {
		wait = at_ms - now > P2P_DCU_WAIT_MAX_MS ? P2P_DCU_WAIT_MAX_MS :
							   (uint32_t)(at_ms - now);
	}
	if (!client && wait < u->min_wait_ms) {
		wait = u->min_wait_ms;
	}
	/* every usable address of the peer at once; the first verified connection wins */
	for (size_t i = 0; i < addrs->n; i++) {
		struct sockaddr_storage ss;
		int has_id, fd;

		if (maddr_to_sockaddr(addrs->b[i], addrs->lens[i], &ss, NULL, &has_id)) {
			continue;
		}
		fd = p2p_dcu_socket(ps, ss.ss_family, ttl);
		if (fd < 0) {
			err = fd;
			continue;
		}
		if (!wait) {
			err = p2p_dcu_punch_connect(ps, fd, &ss);
			if (err) {
				close(fd);
				continue;
			}
		}
		/* A is the client (multistream dialer, Noise initiator), B the server */
		D = p2p_sconn_punch(ps, fd, &ss, &L->peer, client, wait);
		if (!D) {
			close(fd);
			err = -ENOSPC;
			continue;
		}
		u->primes++;
		D->dcu_dial = true;
		D->dcu_link = L->slot;
		D->dcu_gen = L->gen;
		D->dcu_att = (uint8_t)attempt;
		if (!started) {
			first = ss; /* A: the address B's SYN may come from (p2p_dcu_accept_client) */
		}
		started++;
	}
	if (started) {
		err = 0;
	}
	L->dcu_dials = (uint8_t)started;
	L->dcu_att = (uint8_t)attempt;
	g = p2p_upg_find(u, L);
	if (g && attempt >= 1 && attempt <= DCUTR_ATTEMPTS) {
		g->wait_ms[attempt - 1] = wait;
		g->punched[attempt - 1] = (uint8_t)started;
	}
	pr_debug(MOD, "dcutr attempt %u as %s: %u of %zu address(es) punched after %u ms, %s",
		 attempt, client ? "A" : "B", started, addrs->n, wait,
		 err ? natx_strerror(err) : "punching");
	if (err) {
		u->dial_errors++;
	}
	L->dcu_wait = true;
	if (!client) {
		/* B also takes A's connection on its listener (A's NAT is not endpoint-independent
		 * but ours lets A's SYN in): that one may land on any shard. */
		p2p_punch_set(ps, &L->peer, true, NULL);
	} else if (!err) {
		L->dcu_wait = false; /* A: the punch connections report (p2p_dcu_conn_up / gone) */
		/* B's SYN may reach our listener instead (our NAT forwards it, B's changed B's
		 * port): a shard that accepts it from B's address acts as the client on it. */
		p2p_punch_set(ps, &L->peer, true, &first);
	}
}

static void p2p_dcu_done(void *ctx, struct p2p_conn *relayed, int err,
			 const struct dcutr_attempt *log, size_t n)
{
	struct p2p_shard *ps = ctx;
	struct p2p_dcu *u = ps->dcu;
	struct p2p_sconn *L = p2p_dcu_link(relayed);
	struct p2p_upg *g = L ? p2p_upg_find(u, L) : NULL;

	if (L) {
		L->dcu_wait = false;
		p2p_punch_set(ps, &L->peer, false, NULL);
		if (!err) {
			L->upgraded = true;
		}
	}
	if (!g) {
		return;
	}
	g->done = true;
	g->err = err;
	g->end_ms = ps->sh->now_ms;
	g->n = log && n < DCUTR_ATTEMPTS ? n : log ? DCUTR_ATTEMPTS : 0;
	if (g->n) {
		memcpy(g->log, log, g->n * sizeof(*log));
	}
	if (err) {
		u->failed++;
	} else {
		u->upgraded++;
	}
	pr_info(MOD, "dcutr: upgrade as %s %s after %zu attempt(s), %llu ms", g->is_b ? "B" : "A",
		err ? "failed" : "succeeded", n, (unsigned long long)(g->end_ms - g->start_ms));
}

static const struct dcutr_ops p2p_dcu_ops = {
	.dial = p2p_dcu_dial,
	.on_done = p2p_dcu_done,
};

/* ---- hooks ----------------------------------------------------------------------------------- */

void p2p_dcu_shard_init(struct p2p_shard *ps)
{
	const char *env = getenv("NATX_DCUTR_MIN_WAIT_MS");
	int err;

	if (ps->sh->idx != 0) {
		return;
	}
	ps->dcu = calloc(1, sizeof(*ps->dcu));
	if (!ps->dcu) {
		pr_err(MOD, "dcutr: out of memory");
		return;
	}
	ps->dcu->d = dcutr_new(&p2p_clock_system, &p2p_dcu_ops, ps, NULL, NULL, 0, false, &err);
	if (!ps->dcu->d) {
		pr_err(MOD, "dcutr: %s", natx_strerror(err));
		free(ps->dcu);
		ps->dcu = NULL;
		return;
	}
	if (env && *env) {
		char *end;
		unsigned long v = strtoul(env, &end, 10);

		if (*end || v > P2P_DCU_WAIT_MAX_MS) {
			pr_warn(MOD, "NATX_DCUTR_MIN_WAIT_MS=%.16s ignored (0..%d)", env,
				P2P_DCU_WAIT_MAX_MS);
		} else {
			ps->dcu->min_wait_ms = (uint32_t)v;
		}
	}
}

void p2p_dcu_shard_teardown(struct p2p_shard *ps)
{
	if (!ps->dcu) {
		return;
	}
	dcutr_free(ps->dcu->d);
	free(ps->dcu);
	ps->dcu = NULL;
}

size_t p2p_dcu_protocols(struct p2p_shard *ps, const char **out)
{
	if (!__atomic_load_n(&p2p_pe(ps)->dcutr_on, __ATOMIC_ACQUIRE)) {
		return 0;
	}
	out[0] = DCUTR_PROTOCOL;
	return 1;
}

bool p2p_dcu_stream_open(struct p2p_sconn *sc, struct p2p_stream *s, const char *protocol)
{
	struct p2p_shard *ps = sc->ps;

	if (strcmp(protocol, DCUTR_PROTOCOL)) {
		return false;
	}
	/* A: only on a relayed connection we dialled, and only while hole punching is on. */
	if (!ps->dcu || !sc->is_link || !sc->link_dialer || !sc->c ||
	    !__atomic_load_n(&p2p_pe(ps)->dcutr_on, __ATOMIC_ACQUIRE)) {
		p2p_stream_reset(s);
		return true;
	}
	p2p_dcu_addrs_refresh(ps);
	if (!dcutr_busy(ps->dcu->d, sc->c)) {
		p2p_upg_new(ps, sc, false);
	}
	dcutr_accept(ps->dcu->d, s);
	return true;
}

struct p2p_sconn *p2p_dcu_direct(struct p2p_shard *ps, const struct peer_id *peer)
{
	for (uint32_t i = 0; i < P2P_CONNS_MAX; i++) {
		struct p2p_sconn *sc = &ps->conns[i];

		if (sc->c && sc->dcu_direct && !sc->is_link && !sc->dead && sc->established &&
		    peerid_equal(&sc->peer, peer)) {
			return sc;
		}
	}
	return NULL;
}

/* p2p_dcu_direct_up - shard 0: @sc, direct and verified, is the upgrade of link @L. */
static void p2p_dcu_direct_up(struct p2p_shard *ps, struct p2p_sconn *sc, struct p2p_sconn *L)
{
	struct p2p_upg *g = p2p_upg_find(ps->dcu, L);
	uint8_t ma[MADDR_MAX_LEN];
	size_t len;

	sc->fwd = true; /* p2p forward to this peer uses it (p2p_circ_dial_fwd, p2p_dcu_direct) */
	sc->dcu_direct = true;
	sc->peer = L->peer;
	sc->deadline_ms = 0;
	if (g && !maddr_from_sockaddr((struct sockaddr *)&sc->ss, ma, sizeof(ma), &len)) {
		maddr_to_text(ma, len, g->addr, sizeof(g->addr));
	}
	L->dcu_wait = false;
	dcutr_dial_done(ps->dcu->d, L->c, 0);
}

void p2p_dcu_conn_up(struct p2p_shard *ps, struct p2p_sconn *sc)
{
	const struct peer_id *id;

	if (!sc->c || sc->dead) {
		return;
	}
	if (sc->is_link) {
		/* B: the peer dialled us through a relay. Started from the tick (not inside the
		 * establishment callback), when hole punching is on. */
		if (!sc->link_dialer && ps->dcu &&
		    __atomic_load_n(&p2p_pe(ps)->dcutr_on, __ATOMIC_ACQUIRE)) {
			sc->dcu_pending = true;
		}
		return;
	}
	id = p2p_conn_remote(sc->c);
	if (!id) {
		return;
	}
	if (ps->sh->idx != 0) {
		/* an inbound connection shard 0 waits for as B: move it there */
		if ((!sc->dialer || sc->dcu_acc) && p2p_punch_wanted(ps, id) &&
		    !p2p_relay_move_to_shard0(sc)) {
			pr_debug(MOD, "dcutr: punched connection on shard %u cannot move",
				 ps->sh->idx);
		}
		return;
	}
	if (!ps->dcu) {
		return;
	}
	if (sc->dcu_dial) {
		struct p2p_sconn *L = &ps->conns[sc->dcu_link];
		bool live = L->is_link && L->gen == sc->dcu_gen && L->c && !L->dead;

		sc->dcu_dial = false;
		if (live && L->dcu_dials && sc->dcu_att == L->dcu_att) {
			L->dcu_dials--;
		}
		if (live && !L->upgraded && !p2p_dcu_direct(ps, &L->peer)) {
			p2p_dcu_direct_up(ps, sc, L);
		} else {
			/* the relayed connection is gone, or another address won: not needed */
			sc->finishing = true;
		}
		return;
	}
	if (sc->dialer && !sc->dcu_acc) {
		return;
	}
	for (uint32_t i = 0; i < P2P_CONNS_MAX; i++) {
		struct p2p_sconn *L = &ps->conns[i];

		if (L->is_link && L->dcu_wait && L->c && !L->dead && !L->link_dialer &&
		    peerid_equal(&L->peer, id)) {
			p2p_dcu_direct_up(ps, sc, L);
			return;
		}
	}
	/* A: B's punch socket reached our listener (accepted here, or on another shard and
	 * adopted) while we punch to B; we were its client (p2p_dcu_accept_client). */
	if (!p2p_punch_wanted(ps, id) || p2p_dcu_direct(ps, id)) {
		return;
	}
	for (uint32_t i = 0; i < P2P_CONNS_MAX; i++) {
		struct p2p_sconn *L = &ps->conns[i];

		if (L->is_link && L->link_dialer && L->c && !L->dead && !L->upgraded &&
		    peerid_equal(&L->peer, id)) {
			p2p_punch_set(ps, id, false, NULL);
			p2p_dcu_direct_up(ps, sc, L);
			return;
		}
	}
}

void p2p_dcu_conn_gone(struct p2p_shard *ps, struct p2p_sconn *sc)
{
	if (!ps->dcu) {
		return;
	}
	if (sc->is_link && sc->c) {
		dcutr_conn_gone(ps->dcu->d, sc->c);
		return;
	}
	if (sc->dcu_dial) {
		/* A's hole-punch dial ended before Noise + yamux were up */
		struct p2p_sconn *L = &ps->conns[sc->dcu_link];

		sc->dcu_dial = false;
		ps->dcu->dial_errors++;
		if (!(L->is_link && L->gen == sc->dcu_gen && L->c && !L->dead)) {
			return;
		}
		if (sc->dcu_att != L->dcu_att) {
			return; /* a punch of an attempt that already ended */
		}
		if (L->dcu_dials) {
			L->dcu_dials--;
		}
		/* A: the attempt failed once every address failed. B: its listener may still take
		 * A's connection; the attempt's timer ends the wait. */
		if (L->link_dialer && !L->dcu_dials && !L->upgraded) {
			dcutr_dial_done(ps->dcu->d, L->c, -ECONNREFUSED);
		}
	}
}

void p2p_dcu_tick(struct p2p_shard *ps)
{
	struct p2p_dcu *u = ps->dcu;
	bool on;

	if (!u) {
		return;
	}
	on = __atomic_load_n(&p2p_pe(ps)->dcutr_on, __ATOMIC_ACQUIRE);
	for (uint32_t i = 0; i < P2P_CONNS_MAX; i++) {
		struct p2p_sconn *L = &ps->conns[i];
		int err;

		if (!L->is_link || !L->c || L->dead) {
			continue;
		}
		if (L->dcu_pending) {
			L->dcu_pending = false;
			if (!on || p2p_dcu_direct(ps, &L->peer)) {
				continue;
			}
			if (!p2p_dcu_addrs_refresh(ps)) {
				u->no_addr++; /* no public address known: nothing to announce */
				continue;
			}
			p2p_upg_new(ps, L, true);
			err = dcutr_start(u->d, L->c);
			if (err) {
				p2p_dcu_done(ps, L->c, err, NULL, 0);
			}
			p2p_sconn_mark(L);
		} else if (L->link_dialer && L->dcu_wait && dcutr_busy(u->d, L->c)) {
			/* A: the dial could not even start */
			L->dcu_wait = false;
			dcutr_dial_done(u->d, L->c, -EHOSTUNREACH);
			p2p_sconn_mark(L);
		} else if (L->upgraded && !L->finishing && L->req < 0 && !p2p_conn_streams(L->c)) {
			/* upgraded and idle: GoAway into the circuit, then it is closed */
			L->finishing = true;
			u->relayed_closed++;
			p2p_sconn_mark(L);
		}
	}
	dcutr_set_attempt_timeout(u->d,
				  __atomic_load_n(&p2p_pe(ps)->dcutr_timeout_ms, __ATOMIC_RELAXED));
	dcutr_tick(u->d);
}

/* p2p_outcome_name - an attempt's outcome as text. */
static const char *p2p_outcome_name(enum dcutr_outcome o)
{
	switch (o) {
	case DCUTR_IN_PROGRESS:
		return "in_progress";
	case DCUTR_SUCCEEDED:
		return "succeeded";
	case DCUTR_FAILED:
		return "failed";
	case DCUTR_TIMED_OUT:
		return "timed_out";
	}
	return "?";
}

cJSON *p2p_dcu_json(struct p2p_shard *ps)
{
	struct p2p_dcu *u = ps->dcu;
	cJSON *o = cJSON_CreateObject(), *c, *a, *e, *at;
	const struct dcutr_stats *st;
	char txt[MADDR_TEXT_MAX];

	cJSON_AddBoolToObject(o, "enabled",
			      __atomic_load_n(&p2p_pe(ps)->dcutr_on, __ATOMIC_ACQUIRE));
	cJSON_AddNumberToObject(o, "prime_ttl",
				__atomic_load_n(&p2p_pe(ps)->dcutr_ttl, __ATOMIC_RELAXED));
	cJSON_AddBoolToObject(o, "relay_discovery",
			      __atomic_load_n(&p2p_pe(ps)->relay_disc, __ATOMIC_ACQUIRE));
	if (!u) {
		return o;
	}
	st = dcutr_stats(u->d);
	c = cJSON_AddObjectToObject(o, "counters");
	cJSON_AddNumberToObject(c, "upgrades", (double)u->upgrades);
	cJSON_AddNumberToObject(c, "upgraded", (double)u->upgraded);
	cJSON_AddNumberToObject(c, "failed", (double)u->failed);
	cJSON_AddNumberToObject(c, "attempts", (double)st->attempts);
	cJSON_AddNumberToObject(c, "attempts_succeeded", (double)st->succeeded);
	cJSON_AddNumberToObject(c, "attempts_failed", (double)st->failed);
	cJSON_AddNumberToObject(c, "attempts_timed_out", (double)st->timed_out);
	cJSON_AddNumberToObject(c, "streams_refused", (double)st->refused_streams);
	cJSON_AddNumberToObject(c, "primes", (double)u->primes);
	cJSON_AddNumberToObject(c, "prime_errors", (double)u->prime_errors);
	cJSON_AddNumberToObject(c, "dial_errors", (double)u->dial_errors);
	cJSON_AddNumberToObject(c, "no_public_addr", (double)u->no_addr);
	cJSON_AddNumberToObject(c, "relayed_closed", (double)u->relayed_closed);
	a = cJSON_AddArrayToObject(o, "addrs");
	for (size_t i = 0; i < u->n_addrs; i++) {
		if (maddr_to_text(u->addrs[i], u->alen[i], txt, sizeof(txt)) > 0) {
			cJSON_AddItemToArray(a, cJSON_CreateString(txt));
		}
	}
	a = cJSON_AddArrayToObject(o, "upgrades");
	for (uint32_t k = 0; k < P2P_DCU_RECS; k++) {
		/* oldest first */
		const struct p2p_upg *g = &u->rec[(u->rec_next + k) % P2P_DCU_RECS];
		uint64_t end = g->done ? g->end_ms : ps->sh->now_ms;

		if (!g->used) {
			continue;
		}
		e = cJSON_CreateObject();
		p2p_json_peer(e, "peer_id", &g->peer);
		cJSON_AddStringToObject(e, "role", g->is_b ? "B" : "A");
		cJSON_AddStringToObject(e, "state",
					!g->done ? "in_progress" :
					g->err	 ? "failed" :
						   "succeeded");
		if (g->done && g->err) {
			cJSON_AddStringToObject(e, "error", natx_strerror(g->err));
		}
		cJSON_AddNumberToObject(e, "start_unix", (double)g->start_unix);
		cJSON_AddNumberToObject(e, "duration_ms", (double)(end - g->start_ms));
		if (g->addr[0]) {
			cJSON_AddStringToObject(e, "addr", g->addr);
		}
		at = cJSON_AddArrayToObject(e, "attempts");
		for (size_t i = 0; i < g->n; i++) {
			const struct dcutr_attempt *t = &g->log[i];
			cJSON *x = cJSON_CreateObject();

			cJSON_AddStringToObject(x, "outcome", p2p_outcome_name(t->outcome));
			cJSON_AddNumberToObject(x, "duration_ms",
						(double)(t->end_ms - t->start_ms));
			if (t->rtt_ms >= 0) {
				cJSON_AddNumberToObject(x, "rtt_ms", (double)t->rtt_ms);
			}
			cJSON_AddNumberToObject(x, "wait_ms", g->wait_ms[i]);
			cJSON_AddNumberToObject(x, "addrs_punched", g->punched[i]);
			if (t->err) {
				cJSON_AddStringToObject(x, "error", natx_strerror(t->err));
			}
			cJSON_AddItemToArray(at, x);
		}
		cJSON_AddItemToArray(a, e);
	}
	return o;
}

void p2p_eng_dcutr_timeout_set(struct engine *eng, uint32_t ms)
{
	if (eng->p2p) {
		__atomic_store_n(&eng->p2p->dcutr_timeout_ms, ms, __ATOMIC_RELAXED);
	}
}

void p2p_eng_dcutr_set(struct engine *eng, bool on, int ttl)
{
	struct p2p_eng *pe = eng->p2p;

	if (!pe) {
		return;
	}
	__atomic_store_n(&pe->dcutr_on, on, __ATOMIC_RELEASE);
	if (ttl >= 0) {
		__atomic_store_n(&pe->dcutr_ttl, ttl, __ATOMIC_RELAXED);
	}
	/* the shards rebuild their protocol lists (with or without /libp2p/dcutr) */
	__atomic_add_fetch(&pe->svc_gen, 1, __ATOMIC_RELEASE);
}
