// SPDX-License-Identifier: MIT
/*
 * conn.c - the libp2p connection stack (see conn.h): upgrade state machine, Noise framing of
 * the output buffer, per-stream multistream-select and the built-in identify/ping services.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "natx/err.h"
#include "conn.h"
#include "multiaddr.h"
#include "mss.h"
#include "noise.h"
#include "ymx.h"

enum conn_state {
	CS_MSS_SECURITY, /* negotiating /noise in clear */
	CS_NOISE, /* Noise handshake messages */
	CS_MSS_MUXER, /* negotiating /yamux/1.0.0 inside Noise */
	CS_YAMUX, /* established */
	CS_CLOSED, /* failed or closed */
};

enum stream_kind {
	SK_APP,
	SK_IDENTIFY_IN, /* the remote asks: we answer and FIN */
	SK_IDENTIFY_OUT, /* we ask: read to FIN */
	SK_PUSH_IN, /* the remote pushes: read to FIN */
	SK_PUSH_OUT, /* we push: write and FIN */
	SK_PING_IN, /* echo */
	SK_PING_OUT, /* 32 bytes out, same 32 back */
	SK_DONE, /* built-in exchange finished: ignore input, close on FIN */
};

/* built-in protocols come first in every listener list, in this order */
static const char *const builtin_protos[] = { IDENTIFY_PROTOCOL, IDENTIFY_PUSH_PROTOCOL,
					      PING_PROTOCOL };
static const enum stream_kind builtin_in_kind[] = { SK_IDENTIFY_IN, SK_PUSH_IN, SK_PING_IN };
enum { N_BUILTIN = 3, STREAM_ACC_MSS = 2 * MSS_MAX_MSG + 16 };

struct p2p_stream {
	struct p2p_conn *conn;
	struct ymx_stream *ys; /* NULL once yamux released it */
	void *user;
	const struct p2p_conn_ops *ops; /* the connection's, or p2p_stream_set_ops's */
	void *ctx;
	const char *protocol; /* proposed (outbound) or negotiated */
	const char *proposal[1]; /* the dialer's list */
	struct mss mss;
	enum stream_kind kind;
	bool negotiated;
	bool manual_window;
	bool app_visible; /* the application holds this pointer: it gets the callbacks */
	bool closing; /* inside on_close: no more callbacks or operations */
	bool out_blocked; /* a write found the output buffer full: on_stream_writable later */
	size_t app_held; /* bytes of the current delivery the app credits itself */
	uint8_t *acc; /* negotiation bytes, then identify bytes */
	size_t acc_len, acc_cap;
	uint8_t ping[PING_LEN];
	size_t ping_got;
	int64_t ping_sent_ms;
};

/*
 * struct conn_hs - state only the connection setup uses (the Noise handshake, the muxer
 * negotiation plaintext): allocated with the connection, wiped and freed as soon as yamux runs,
 * so an established connection does not carry these 3 KiB (a relay holds one connection per
 * reservation).
 */
struct conn_hs {
	struct noise_p2p np;
	size_t mss_acc_len;
	uint8_t mss_acc[STREAM_ACC_MSS]; /* muxer negotiation plaintext */
};

struct p2p_conn {
	const struct p2p_host *host;
	const struct p2p_conn_ops *ops;
	void *ctx;
	void *user;
	enum conn_state state;
	bool dialer;
	bool encrypt; /* output goes through the Noise transport cipher */
	int error;
	bool out_blocked; /* some stream waits for output-buffer room */
	struct mss mss;
	struct conn_hs *hs; /* until yamux runs, then NULL */
	struct noise_cipher tx, rx;
	struct ymx_session ys;
	struct peer_id expected;
	bool has_expected;
	struct peer_id remote;
	bool remote_known;
	struct identify_record info;
	uint8_t observed[64];
	size_t observed_len;
	int64_t last_ping_ms;
	/* input: [ipos, ilen) of ibuf not yet processed */
	uint8_t *ibuf;
	size_t ipos, ilen;
	/* output: [ostart, olen) ready or being framed; frame_start >= 0 while a frame is open */
	uint8_t *obuf; /* page-aligned: idle pages can be given back (conn_out_trim) */
	size_t ostart, olen, ocap;
	size_t o_touched; /* bytes of obuf written since the last trim */
	bool o_active; /* output was sent since the last tick */
	long frame_start;
	const char *listen_protos[N_BUILTIN + P2P_MAX_PROTOCOLS];
	size_t n_listen_protos;
	struct p2p_conn_stats stats;
};

/* conn_page - the system page size (obuf alignment and trimming). */
static size_t conn_page(void)
{
	static size_t page;

	if (!page) {
		long v = sysconf(_SC_PAGESIZE);

		page = v > 0 ? (size_t)v : 4096;
	}
	return page;
}

#if defined(__SANITIZE_ADDRESS__)
#define CONN_BUFS_MALLOC 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define CONN_BUFS_MALLOC 1
#endif
#endif

static void conn_bufs_free(struct p2p_conn *c);

/*
 * conn_bufs_alloc - ibuf (P2P_IN_CAP) and obuf (ocap, a page multiple) in one anonymous
 * mapping, both page-aligned: no allocator headers or neighbours share their pages, so a
 * connection keeps resident only the pages its bytes touched (and conn_out_trim can give the
 * output pages back). Under AddressSanitizer two heap blocks instead, so overruns are caught.
 * Returns 0 or -ENOMEM.
 */
static int conn_bufs_alloc(struct p2p_conn *c)
{
#ifdef CONN_BUFS_MALLOC
	c->ibuf = malloc(P2P_IN_CAP);
	c->obuf = aligned_alloc(conn_page(), c->ocap);
	if (!c->ibuf || !c->obuf) {
		conn_bufs_free(c);
		return -ENOMEM;
	}
#else
	void *m = mmap(NULL, P2P_IN_CAP + c->ocap, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (m == MAP_FAILED) {
		return -ENOMEM;
	}
	c->ibuf = m;
	c->obuf = c->ibuf + P2P_IN_CAP;
#endif
	return 0;
}

/* conn_bufs_free - release what conn_bufs_alloc got (either may be NULL). */
static void conn_bufs_free(struct p2p_conn *c)
{
#ifdef CONN_BUFS_MALLOC
	free(c->ibuf);
	free(c->obuf);
#else
	if (c->ibuf) {
		munmap(c->ibuf, P2P_IN_CAP + c->ocap);
	}
#endif
	c->ibuf = NULL;
	c->obuf = NULL;
}

/* conn_hs_free - wipe and free the setup state (yamux runs, or the connection is freed). */
static void conn_hs_free(struct p2p_conn *c)
{
	if (!c->hs) {
		return;
	}
	noise_p2p_cleanup(&c->hs->np);
	crypto_wipe(c->hs, sizeof(*c->hs));
	free(c->hs);
	c->hs = NULL;
}

/* ---- output buffer ---- */

/* conn_out_need - worst-case buffer bytes for @n plaintext bytes, framing included. */
static size_t conn_out_need(const struct p2p_conn *c, size_t n)
{
	if (!c->encrypt) {
		return n;
	}
	return n + (n / NOISE_MAX_PLAINTEXT + 2) * (NOISE_LEN_PREFIX + NOISE_TAG);
}

static int conn_seal_frame(struct p2p_conn *c)
{
	size_t len;
	int err;

	if (c->frame_start < 0) {
		return 0;
	}
	len = c->olen - (size_t)c->frame_start;
	if (len == 0) {
		c->olen -= NOISE_LEN_PREFIX;
		c->frame_start = -1;
		return 0;
	}
	err = noise_seal(&c->tx, c->obuf + c->frame_start, len);
	if (err) {
		return err;
	}
	c->olen += NOISE_TAG;
	c->obuf[c->frame_start - 2] = (uint8_t)((len + NOISE_TAG) >> 8);
	c->obuf[c->frame_start - 1] = (uint8_t)(len + NOISE_TAG);
	c->frame_start = -1;
	c->stats.frames_out++;
	return 0;
}

/* conn_out - append plaintext; the caller checked room with conn_out_need. */
static int conn_out(struct p2p_conn *c, const uint8_t *p, size_t n)
{
	if (!c->encrypt) {
		memcpy(c->obuf + c->olen, p, n);
		c->olen += n;
		return 0;
	}
	while (n) {
		size_t room, k;

		if (c->frame_start < 0) {
			c->olen += NOISE_LEN_PREFIX;
			c->frame_start = (long)c->olen;
		}
		room = NOISE_MAX_PLAINTEXT - (c->olen - (size_t)c->frame_start);
		k = n < room ? n : room;
		memcpy(c->obuf + c->olen, p, k);
		c->olen += k;
		p += k;
		n -= k;
		if (c->olen - (size_t)c->frame_start == NOISE_MAX_PLAINTEXT) {
			int err = conn_seal_frame(c);

			if (err) {
				return err;
			}
		}
	}
	return 0;
}

/* conn_out_room - may @n more plaintext bytes be queued? @data: respect the data headroom. */
static bool conn_out_room(const struct p2p_conn *c, size_t n, bool data)
{
	size_t limit = data ? c->ocap - P2P_OUT_HEADROOM : c->ocap;

	return c->olen + conn_out_need(c, n) <= limit;
}

/* conn_data_room - plaintext bytes of stream data that still fit before the headroom. */
static size_t conn_data_room(const struct p2p_conn *c)
{
	size_t limit = c->ocap - P2P_OUT_HEADROOM,
	       used = c->olen + 2 * (NOISE_LEN_PREFIX + NOISE_TAG);
	size_t room, framing;

	if (used >= limit) {
		return 0;
	}
	room = limit - used;
	/* leave room for the framing of what we accept (and never wrap below zero) */
	framing = (room / (NOISE_MAX_PLAINTEXT + NOISE_LEN_PREFIX + NOISE_TAG) + 1) *
		  (NOISE_LEN_PREFIX + NOISE_TAG + YMX_HDR_LEN);
	return room > framing ? room - framing : 0;
}

static int conn_out_wr(struct p2p_conn *c, const uint8_t *p, size_t n)
{
	if (!conn_out_room(c, n, false)) {
		return -ENOBUFS;
	}
	return conn_out(c, p, n);
}

void p2p_conn_out_peek(struct p2p_conn *c, const uint8_t **p, size_t *len)
{
	if (c->encrypt && conn_seal_frame(c) && !c->error) {
		c->error = -EIO;
		c->state = CS_CLOSED;
	}
	*p = c->obuf + c->ostart;
	*len = c->olen - c->ostart;
}

/*
 * conn_out_unblock - streams whose writes found the output buffer full get on_stream_writable
 * once a quarter of the buffer is free again. Ids are collected first because a callback may
 * free any stream; streams beyond the batch stay flagged for the next advance.
 */
static void conn_out_unblock(struct p2p_conn *c)
{
	uint32_t ids[64];
	size_t n = 0;

	if (!c->out_blocked || c->error || conn_data_room(c) < c->ocap / 4) {
		return;
	}
	c->out_blocked = false;
	for (size_t b = 0; b < YMX_BUCKETS; b++) {
		for (struct ymx_stream *ys = c->ys.buckets[b]; ys; ys = ys->next) {
			struct p2p_stream *s = ys->user;

			if (!s || !s->out_blocked) {
				continue;
			}
			if (n == sizeof(ids) / sizeof(ids[0])) {
				c->out_blocked = true;
				break;
			}
			s->out_blocked = false;
			ids[n++] = ys->id;
		}
	}
	for (size_t i = 0; i < n && !c->error; i++) {
		struct ymx_stream *ys = ymx_stream_find(&c->ys, ids[i]);
		struct p2p_stream *s = ys ? ys->user : NULL;

		/* not "negotiated": an outbound stream is writable before the echo (lazy) */
		if (s && s->app_visible && !s->closing && s->ops->on_stream_writable) {
			s->ops->on_stream_writable(s->ctx, s);
		}
	}
}

void p2p_conn_out_advance(struct p2p_conn *c, size_t n)
{
	if (n > c->olen - c->ostart) {
		n = c->olen - c->ostart;
	}
	c->ostart += n;
	c->stats.bytes_out += n;
	if (c->ostart == 0) {
		return;
	}
	c->o_active = true;
	if (c->olen > c->o_touched) {
		c->o_touched = c->olen;
	}
	/* compaction happens only here, when no send of these bytes is in flight */
	memmove(c->obuf, c->obuf + c->ostart, c->olen - c->ostart);
	c->olen -= c->ostart;
	if (c->frame_start >= 0) {
		c->frame_start -= (long)c->ostart;
	}
	c->ostart = 0;
	conn_out_unblock(c);
}

/*
 * conn_out_trim - an output buffer that is empty and saw no send since the previous call gives
 * the pages it wrote back to the kernel (MADV_DONTNEED: they read as zeros and cost nothing
 * until written again). Nothing refers into an empty buffer (sends are advanced when they
 * complete), and obuf is page-aligned and page-sized, so no other data shares those pages. An
 * idle connection (a relay holds one per reservation) then keeps no output page resident.
 */
static void conn_out_trim(struct p2p_conn *c)
{
	size_t len;

	if (c->o_active || c->olen) {
		c->o_active = false;
		return;
	}
	len = (c->o_touched + conn_page() - 1) / conn_page() * conn_page();
	if (!len) {
		return;
	}
	if (!madvise(c->obuf, len < c->ocap ? len : c->ocap, MADV_DONTNEED)) {
		c->o_touched = 0;
		c->stats.out_trims++;
	}
}

/* ---- failure ---- */

static int conn_fail(struct p2p_conn *c, int err)
{
	if (c->error) {
		return c->error;
	}
	c->error = err;
	if (c->state == CS_YAMUX) {
		uint32_t code = (err == -NATX_E_PROTO || err == -NATX_E_TOO_BIG) ?
					YMX_GOAWAY_PROTO :
					YMX_GOAWAY_INTERNAL;

		ymx_goaway(&c->ys, code); /* best effort */
	}
	c->state = CS_CLOSED;
	return err;
}

/* ---- streams ---- */

static struct p2p_stream *stream_new(struct p2p_conn *c, struct ymx_stream *ys)
{
	struct p2p_stream *s = calloc(1, sizeof(*s));

	if (!s) {
		return NULL;
	}
	s->conn = c;
	s->ys = ys;
	s->ops = c->ops;
	s->ctx = c->ctx;
	ys->user = s;
	return s;
}

/* stream_write_raw - write everything or fail: used for small protocol messages. */
static int stream_write_all(struct p2p_stream *s, const uint8_t *p, size_t n)
{
	long w;

	if (!s->ys) {
		return -EPIPE;
	}
	if (!conn_out_room(s->conn, n + YMX_HDR_LEN, false)) {
		return -ENOBUFS;
	}
	w = ymx_stream_write(&s->conn->ys, s->ys, p, n);
	if (w < 0) {
		return (int)w;
	}
	return (size_t)w == n ? 0 : -ENOBUFS;
}

static int stream_acc_append(struct p2p_stream *s, const uint8_t *p, size_t n, size_t limit)
{
	if (s->acc_len + n > limit) {
		return -NATX_E_TOO_BIG;
	}
	if (s->acc_len + n > s->acc_cap) {
		size_t cap = s->acc_cap ? s->acc_cap : 256;
		uint8_t *b;

		while (cap < s->acc_len + n) {
			cap *= 2;
		}
		if (cap > limit) {
			cap = limit;
		}
		b = realloc(s->acc, cap);
		if (!b) {
			return -ENOMEM;
		}
		s->acc = b;
		s->acc_cap = cap;
	}
	memcpy(s->acc + s->acc_len, p, n);
	s->acc_len += n;
	return 0;
}

static void stream_reset_err(struct p2p_stream *s, int err);

/* conn_identify_write - our identify message on stream @s, then FIN. */
static int conn_identify_write(struct p2p_conn *c, struct p2p_stream *s, bool push)
{
	struct identify_msg m = {
		.protocol_version = IDENTIFY_PROTOCOL_VERSION,
		.agent_version = c->host->agent_version ? c->host->agent_version : P2P_AGENT,
		.pubkey = c->host->idn->pubkey_pb,
		.pubkey_len = sizeof(c->host->idn->pubkey_pb),
		.listen_addrs = c->host->listen_addrs,
		.listen_addr_lens = c->host->listen_addr_lens,
		.n_listen_addrs = c->host->n_listen_addrs,
		.protocols = c->listen_protos,
		.n_protocols = c->n_listen_protos,
	};
	uint8_t *buf = malloc(IDENTIFY_MAX_MSG + 16);
	size_t len;
	int err;

	if (!buf) {
		return -ENOMEM;
	}
	if (!push && c->observed_len) {
		m.observed = c->observed;
		m.observed_len = c->observed_len;
	}
	err = identify_encode(&m, buf, IDENTIFY_MAX_MSG + 16, &len);
	if (!err) {
		err = stream_write_all(s, buf, len);
	}
	free(buf);
	if (!err) {
		err = ymx_stream_close(&c->ys, s->ys);
	}
	return err;
}

static void stream_ping_send(struct p2p_stream *s)
{
	struct p2p_conn *c = s->conn;
	int err;

	c->host->rng->fill(c->host->rng, s->ping, PING_LEN);
	s->ping_sent_ms = c->host->clock->now_ms(c->host->clock);
	err = stream_write_all(s, s->ping, PING_LEN);
	if (err) {
		stream_reset_err(s, err);
	}
}

/* stream_negotiated - the protocol is agreed: start the built-in service or tell the app. */
static void stream_negotiated(struct p2p_stream *s)
{
	struct p2p_conn *c = s->conn;
	uint32_t id = s->ys->id;
	struct ymx_stream *ys;
	int err = 0;

	s->negotiated = true;
	switch (s->kind) {
	case SK_APP:
		s->app_visible = true;
		if (s->ops->on_stream_open) {
			s->ops->on_stream_open(s->ctx, s, s->protocol);
		}
		break;
	case SK_IDENTIFY_IN:
		err = conn_identify_write(c, s, false);
		break;
	case SK_PUSH_OUT:
		err = conn_identify_write(c, s, true);
		break;
	case SK_PING_OUT:
		stream_ping_send(s);
		break;
	default:
		break;
	}
	/* closing the stream above may have released it (both FINs): look it up again */
	ys = ymx_stream_find(&c->ys, id);
	if (err && ys && ys->user) {
		stream_reset_err(ys->user, err);
	}
}

static void conn_identify_done(struct p2p_conn *c, struct p2p_stream *s)
{
	struct identify_record rec = { 0 };
	int err = identify_decode(&rec, s->acc, s->acc_len);

	if (!err && s->kind == SK_IDENTIFY_OUT) {
		err = identify_check_peer(&rec, &c->remote);
	}
	if (!err && s->kind == SK_PUSH_IN && rec.pubkey) {
		err = identify_check_peer(&rec, &c->remote);
	}
	if (err) {
		c->stats.identify_failures++;
		identify_record_cleanup(&rec);
		if (c->ops->on_identify) {
			c->ops->on_identify(c->ctx, c, &c->info, err);
		}
		return;
	}
	if (s->kind == SK_IDENTIFY_OUT) {
		identify_record_cleanup(&c->info);
		c->info = rec;
	} else {
		/* push: merge what was sent over what we had */
		err = identify_decode(&c->info, s->acc, s->acc_len);
		identify_record_cleanup(&rec);
	}
	if (c->ops->on_identify) {
		c->ops->on_identify(c->ctx, c, &c->info, err);
	}
}

/* stream_data - payload for a negotiated stream. */
static void stream_data(struct p2p_stream *s, const uint8_t *p, size_t n)
{
	struct p2p_conn *c = s->conn;
	int err;

	switch (s->kind) {
	case SK_APP:
		if (s->manual_window) {
			s->app_held += n; /* credited later through p2p_stream_consumed */
		}
		if (s->ops->on_stream_data) {
			s->ops->on_stream_data(s->ctx, s, p, n);
		}
		break;
	case SK_IDENTIFY_OUT:
	case SK_PUSH_IN:
		err = stream_acc_append(s, p, n, IDENTIFY_MAX_MSGS * (IDENTIFY_MAX_MSG + 4));
		if (err) {
			c->stats.identify_failures++;
			stream_reset_err(s, err);
		}
		break;
	case SK_PING_IN:
		err = stream_write_all(s, p, n);
		if (err) {
			stream_reset_err(s, err);
		} else {
			c->stats.pings_served += n / PING_LEN;
		}
		break;
	case SK_PING_OUT: {
		size_t k = n < PING_LEN - s->ping_got ? n : PING_LEN - s->ping_got;

		if (n > k || memcmp(p, s->ping + s->ping_got, k)) {
			if (c->ops->on_ping) {
				c->ops->on_ping(c->ctx, c, 0, -NATX_E_PROTO);
			}
			s->kind = SK_DONE; /* reported: no second on_ping from the reset */
			stream_reset_err(s, -NATX_E_PROTO);
			break;
		}
		s->ping_got += k;
		if (s->ping_got == PING_LEN) {
			int64_t rtt = c->host->clock->now_ms(c->host->clock) - s->ping_sent_ms;

			s->ping_got = 0;
			s->kind = SK_DONE;
			if (c->ops->on_ping) {
				c->ops->on_ping(c->ctx, c, rtt, 0);
			}
			if (s->ys) {
				ymx_stream_close(&c->ys, s->ys);
			}
		}
		break;
	}
	default:
		break; /* SK_IDENTIFY_IN, SK_PUSH_OUT: the remote has nothing to say */
	}
}

/* stream_negotiate - feed multistream bytes; returns bytes of @p that belong to the protocol. */
static void stream_negotiate(struct p2p_stream *s, const uint8_t *p, size_t n)
{
	struct p2p_conn *c = s->conn;
	uint8_t reply[MSS_MAX_MSG + 64];
	size_t used;
	struct wr w;
	int r = stream_acc_append(s, p, n, STREAM_ACC_MSS);

	if (r) {
		c->stats.negotiation_failures++;
		stream_reset_err(s, r);
		return;
	}
	wr_init(&w, reply, sizeof(reply));
	r = mss_consume(&s->mss, s->acc, s->acc_len, &used, &w);
	if (w.p != reply && s->ys) {
		int err = stream_write_all(s, reply, (size_t)(w.p - reply));

		if (err && r >= 0) {
			r = err;
		}
	}
	if (r < 0) {
		c->stats.negotiation_failures++;
		stream_reset_err(s, r);
		return;
	}
	if (r != MSS_DONE) {
		memmove(s->acc, s->acc + used, s->acc_len - used);
		s->acc_len -= used;
		return;
	}
	if (!s->mss.dialer) {
		size_t i = (size_t)s->mss.selected;

		s->protocol = c->listen_protos[i];
		s->kind = i < N_BUILTIN ? builtin_in_kind[i] : SK_APP;
	}
	/* keep the leftover (pipelined application bytes) aside: acc is reused for identify */
	size_t rest = s->acc_len - used;
	uint8_t *tail = NULL;

	if (rest) {
		tail = malloc(rest);
		if (!tail) {
			stream_reset_err(s, -ENOMEM);
			return;
		}
		memcpy(tail, s->acc + used, rest);
	}
	s->acc_len = 0;
	uint32_t id = s->ys->id;
	struct ymx_stream *ys;

	stream_negotiated(s);
	/* the callbacks above may have freed s: stream ids are never reused, so look it up */
	ys = ymx_stream_find(&c->ys, id);
	if (rest && ys && ys->user) {
		stream_data(ys->user, tail, rest);
	}
	free(tail);
}

static void stream_reset_err(struct p2p_stream *s, int err)
{
	struct p2p_conn *c = s->conn;

	if (!s->ys || s->closing) {
		return;
	}
	s->closing = true; /* p2p_stream_* calls from the callback are no-ops now */
	if (s->app_visible && s->ops->on_stream_reset) {
		s->ops->on_stream_reset(s->ctx, s, err);
	} else if (s->kind == SK_PING_OUT && c->ops->on_ping) {
		c->ops->on_ping(c->ctx, c, 0, err);
	}
	ymx_stream_reset(&c->ys, s->ys); /* on_close frees s */
}

/* ---- yamux callbacks ---- */

static int conn_ymx_write(void *ctx, const uint8_t *hdr, const uint8_t *body, size_t blen)
{
	struct p2p_conn *c = ctx;
	int err;

	if (!conn_out_room(c, YMX_HDR_LEN + blen, false)) {
		return -ENOBUFS;
	}
	err = conn_out(c, hdr, YMX_HDR_LEN);
	if (!err && blen) {
		err = conn_out(c, body, blen);
	}
	if (!err && c->host->on_output) {
		c->host->on_output(
			c); /* e.g. a relay wrote into this connection from another's event */
	}
	return err;
}

static void conn_ymx_open(void *ctx, struct ymx_stream *ys)
{
	struct p2p_conn *c = ctx;
	struct p2p_stream *s = stream_new(c, ys);

	if (!s) {
		ymx_stream_reset(&c->ys, ys);
		return;
	}
	c->stats.streams_in++;
	mss_listener_init(&s->mss, c->listen_protos, c->n_listen_protos);
}

static void conn_ymx_data(void *ctx, struct ymx_stream *ys, const uint8_t *p, size_t n)
{
	struct p2p_conn *c = ctx;
	struct p2p_stream *s = ys->user;
	uint32_t id = ys->id;
	size_t credit;

	if (!s) {
		return;
	}
	s->app_held = 0;
	if (!s->negotiated) {
		stream_negotiate(s, p, n);
	} else {
		stream_data(s, p, n);
	}
	/*
	 * Credit the window for every byte except those a manual-window application holds (it
	 * credits them itself). The stream may be gone by now: look it up again.
	 */
	ys = ymx_stream_find(&c->ys, id);
	if (!ys || !ys->user) {
		return;
	}
	s = ys->user;
	credit = n - (s->app_held < n ? s->app_held : n);
	s->app_held = 0;
	if (credit) {
		int err = ymx_stream_consumed(&c->ys, ys, credit);

		if (err) {
			conn_fail(c, err);
		}
	}
}

static void conn_ymx_fin(void *ctx, struct ymx_stream *ys)
{
	struct p2p_conn *c = ctx;
	struct p2p_stream *s = ys->user;

	if (!s) {
		return;
	}
	if (!s->negotiated) {
		c->stats.negotiation_failures++;
		stream_reset_err(s, -ECONNRESET);
		return;
	}
	switch (s->kind) {
	case SK_APP:
		if (s->ops->on_stream_fin) {
			s->ops->on_stream_fin(s->ctx, s);
		}
		break;
	case SK_IDENTIFY_OUT:
	case SK_PUSH_IN:
		conn_identify_done(c, s);
		if (s->ys) {
			ymx_stream_close(&c->ys, s->ys);
		}
		break;
	case SK_PING_OUT:
		/* FIN before the echo completed */
		stream_reset_err(s, -ECONNRESET);
		break;
	default:
		ymx_stream_close(&c->ys, s->ys);
		break;
	}
}

static void conn_ymx_reset(void *ctx, struct ymx_stream *ys)
{
	struct p2p_stream *s = ys->user;
	struct p2p_conn *c = ctx;

	if (!s) {
		return;
	}
	s->closing = true; /* the peer reset it: p2p_stream_* calls from callbacks are no-ops */
	if (s->app_visible && s->ops->on_stream_reset) {
		s->ops->on_stream_reset(s->ctx, s,
					s->negotiated ? -ECONNRESET : -NATX_E_UNAVAILABLE);
	} else if (s->kind == SK_PING_OUT && c->ops->on_ping) {
		c->ops->on_ping(c->ctx, c, 0, -ECONNRESET);
	} else if (s->kind == SK_IDENTIFY_OUT) {
		c->stats.identify_failures++;
		if (c->ops->on_identify) {
			c->ops->on_identify(c->ctx, c, &c->info, -ECONNRESET);
		}
	}
}

/*
 * conn_ymx_writable - the peer's window grew. Outbound streams hear it before the protocol
 * echo too: they may write before it (lazy negotiation), and a window update that arrives
 * first (js credits data as it arrives, before its multistream reply) would otherwise be lost.
 */
static void conn_ymx_writable(void *ctx, struct ymx_stream *ys)
{
	struct p2p_stream *s = ys->user;

	if (s && s->app_visible && !s->closing && s->ops->on_stream_writable) {
		s->ops->on_stream_writable(s->ctx, s);
	}
}

static void conn_ymx_close(void *ctx, struct ymx_stream *ys)
{
	struct p2p_stream *s = ys->user;

	if (!s) {
		return;
	}
	s->closing = true;
	if (s->app_visible && s->ops->on_stream_close) {
		s->ops->on_stream_close(s->ctx, s);
	}
	s->ys = NULL;
	ys->user = NULL;
	free(s->acc);
	free(s);
}

static const struct ymx_ops conn_ymx_ops = {
	.write = conn_ymx_write,
	.on_open = conn_ymx_open,
	.on_data = conn_ymx_data,
	.on_fin = conn_ymx_fin,
	.on_reset = conn_ymx_reset,
	.on_writable = conn_ymx_writable,
	.on_close = conn_ymx_close,
};

/* ---- streams API ---- */

/*
 * stream_open_kind - open a yamux stream and send the multistream header and proposal, followed
 * in the same yamux frame by @early (@early_len bytes, may be 0): a go-style lazy open.
 */
static struct p2p_stream *stream_open_kind(struct p2p_conn *c, const char *protocol,
					   enum stream_kind kind, const uint8_t *early,
					   size_t early_len, int *err)
{
	struct p2p_stream *s = NULL;
	struct ymx_stream *ys;
	uint8_t *hello;
	size_t hello_len;
	struct wr w;

	if (c->state != CS_YAMUX) {
		*err = c->error ? c->error : -ENOTCONN;
		return NULL;
	}
	if (strlen(protocol) > MSS_MAX_MSG - 1) {
		*err = -NATX_E_TOO_BIG;
		return NULL;
	}
	if (early_len > P2P_EARLY_MAX) {
		*err = -NATX_E_TOO_BIG;
		return NULL;
	}
	hello = malloc(MSS_MAX_MSG + 32 + early_len);
	if (!hello) {
		*err = -ENOMEM;
		return NULL;
	}
	ys = ymx_stream_open(&c->ys, err);
	if (!ys) {
		if (*err == -ENOBUFS) {
			conn_fail(c, *err);
		}
		goto out_hello;
	}
	s = stream_new(c, ys);
	if (!s) {
		ymx_stream_reset(&c->ys, ys);
		*err = -ENOMEM;
		goto out_hello;
	}
	c->stats.streams_out++;
	s->kind = kind;
	s->protocol = protocol;
	s->proposal[0] = protocol;
	mss_dialer_init(&s->mss, s->proposal, 1);
	wr_init(&w, hello, MSS_MAX_MSG + 32);
	mss_dialer_start(&s->mss, &w);
	hello_len = (size_t)(w.p - hello);
	if (early_len) {
		memcpy(hello + hello_len, early, early_len);
		hello_len += early_len;
	}
	*err = stream_write_all(s, hello, hello_len);
	if (*err) {
		ymx_stream_reset(&c->ys, s->ys); /* not yet app_visible: no callbacks */
		s = NULL;
		goto out_hello;
	}
	s->app_visible = kind == SK_APP;
out_hello:
	free(hello);
	return s;
}

struct p2p_stream *p2p_stream_open(struct p2p_conn *c, const char *protocol, int *err)
{
	return stream_open_kind(c, protocol, SK_APP, NULL, 0, err);
}

struct p2p_stream *p2p_stream_open_lazy(struct p2p_conn *c, const char *protocol,
					const uint8_t *data, size_t len, int *err)
{
	return stream_open_kind(c, protocol, SK_APP, data, len, err);
}

long p2p_stream_write(struct p2p_stream *s, const uint8_t *p, size_t len)
{
	struct p2p_conn *c = s->conn;
	size_t room;
	long w;

	if (c->error) {
		return c->error;
	}
	if (!s->ys || s->closing) {
		return -EPIPE;
	}
	room = conn_data_room(c);
	if (len > room) {
		len = room;
	}
	if (!len) {
		/* output buffer full: p2p_conn_out_advance calls on_stream_writable later */
		s->out_blocked = c->out_blocked = true;
		return 0;
	}
	w = ymx_stream_write(&c->ys, s->ys, p, len);
	if (w == -ENOBUFS) {
		return conn_fail(c, -ENOBUFS);
	}
	return w;
}

int p2p_stream_close(struct p2p_stream *s)
{
	int err;

	if (!s->ys || s->closing) {
		return 0;
	}
	err = ymx_stream_close(&s->conn->ys, s->ys);
	return err ? conn_fail(s->conn, err) : 0;
}

int p2p_stream_reset(struct p2p_stream *s)
{
	struct p2p_conn *c = s->conn;

	if (!s->ys || s->closing) {
		return 0;
	}
	return ymx_stream_reset(&c->ys, s->ys) ? conn_fail(c, -ENOBUFS) : 0;
}

void p2p_stream_set_manual_window(struct p2p_stream *s, bool manual)
{
	s->manual_window = manual;
}

int p2p_stream_consumed(struct p2p_stream *s, size_t n)
{
	if (!s->ys || s->closing) {
		return 0;
	}
	return ymx_stream_consumed(&s->conn->ys, s->ys, n) ? conn_fail(s->conn, -ENOBUFS) : 0;
}

struct p2p_conn *p2p_stream_conn(const struct p2p_stream *s)
{
	return s->conn;
}

const char *p2p_stream_protocol(const struct p2p_stream *s)
{
	return s->protocol;
}

uint32_t p2p_stream_id(const struct p2p_stream *s)
{
	return s->ys ? s->ys->id : 0;
}

void *p2p_stream_user(const struct p2p_stream *s)
{
	return s->user;
}

void p2p_stream_set_user(struct p2p_stream *s, void *user)
{
	s->user = user;
}

void p2p_stream_set_ops(struct p2p_stream *s, const struct p2p_conn_ops *ops, void *ctx)
{
	s->ops = ops ? ops : s->conn->ops;
	s->ctx = ops ? ctx : s->conn->ctx;
}

/* detached_ops - no callbacks: what p2p_stream_detach routes a stream to. */
static const struct p2p_conn_ops detached_ops = { 0 };

void p2p_stream_detach(struct p2p_stream *s)
{
	p2p_stream_set_ops(s, &detached_ops, NULL);
}

void p2p_stream_release(struct p2p_stream *s, bool reset)
{
	p2p_stream_detach(s);
	if (reset) {
		p2p_stream_reset(s);
	} else {
		p2p_stream_close(s);
	}
}

int p2p_conn_ping(struct p2p_conn *c)
{
	int err;

	return stream_open_kind(c, PING_PROTOCOL, SK_PING_OUT, NULL, 0, &err) ? 0 : err;
}

int p2p_conn_identify_push(struct p2p_conn *c)
{
	int err;

	return stream_open_kind(c, IDENTIFY_PUSH_PROTOCOL, SK_PUSH_OUT, NULL, 0, &err) ? 0 : err;
}

/* ---- connection ---- */

/* conn_protos_build - the built-ins, then @host's application protocols. */
static void conn_protos_build(struct p2p_conn *c, const struct p2p_host *host)
{
	c->n_listen_protos = 0;
	for (size_t i = 0; i < N_BUILTIN; i++) {
		c->listen_protos[c->n_listen_protos++] = builtin_protos[i];
	}
	for (size_t i = 0; i < host->n_protocols && i < P2P_MAX_PROTOCOLS; i++) {
		c->listen_protos[c->n_listen_protos++] = host->protocols[i];
	}
}

void p2p_conn_rebind(struct p2p_conn *c, const struct p2p_host *host,
		     const struct p2p_conn_ops *ops, void *ctx)
{
	const struct p2p_conn_ops *old_ops = c->ops;
	void *old_ctx = c->ctx;

	for (size_t b = 0; b < YMX_BUCKETS; b++) {
		for (struct ymx_stream *ys = c->ys.buckets[b]; ys; ys = ys->next) {
			struct p2p_stream *s = ys->user;

			if (s && s->ops == old_ops && s->ctx == old_ctx) {
				s->ops = ops;
				s->ctx = ctx;
			}
		}
	}
	c->host = host;
	c->ops = ops;
	c->ctx = ctx;
	conn_protos_build(c, host);
}

void p2p_conn_protocols_refresh(struct p2p_conn *c)
{
	conn_protos_build(c, c->host);
}

int64_t p2p_conn_rtt_ms(const struct p2p_conn *c)
{
	return c->ys.rtt_ms;
}

size_t p2p_conn_streams(const struct p2p_conn *c)
{
	return (size_t)c->ys.n_in + c->ys.n_out;
}

struct p2p_conn *p2p_conn_new(const struct p2p_host *host, bool dialer,
			      const struct peer_id *expected, const struct p2p_conn_ops *ops,
			      void *ctx, int *err)
{
	struct p2p_conn *c = calloc(1, sizeof(*c));

	if (!c) {
		goto fail;
	}
	c->ocap = host->out_cap ? host->out_cap : P2P_OUT_CAP;
	if (c->ocap < 2 * P2P_OUT_HEADROOM) {
		c->ocap = 2 * P2P_OUT_HEADROOM;
	}
	c->ocap = (c->ocap + conn_page() - 1) / conn_page() * conn_page();
	if (conn_bufs_alloc(c)) {
		goto fail_conn;
	}
	c->hs = calloc(1, sizeof(*c->hs));
	if (!c->hs) {
		goto fail_bufs;
	}
	c->host = host;
	c->ops = ops;
	c->ctx = ctx;
	c->dialer = dialer;
	c->frame_start = -1;
	if (expected) {
		c->expected = *expected;
		c->has_expected = true;
	}
	conn_protos_build(c, host);
	c->state = CS_MSS_SECURITY;
	static const char *const security[] = { NOISE_P2P_PROTOCOL };

	if (dialer) {
		mss_dialer_init(&c->mss, security, 1);
	} else {
		mss_listener_init(&c->mss, security, 1);
	}
	return c;

fail_bufs:
	conn_bufs_free(c);
fail_conn:
	free(c);
fail:
	*err = -ENOMEM;
	return NULL;
}

void p2p_conn_free(struct p2p_conn *c)
{
	if (!c) {
		return;
	}
	if (c->state == CS_YAMUX || c->ys.ops) {
		ymx_session_cleanup(&c->ys);
	}
	conn_hs_free(c);
	noise_cipher_cleanup(&c->tx);
	noise_cipher_cleanup(&c->rx);
	identify_record_cleanup(&c->info);
	conn_bufs_free(c);
	free(c);
}

int p2p_conn_start(struct p2p_conn *c)
{
	struct wr w;
	int err;

	if (!c->dialer || c->state != CS_MSS_SECURITY) {
		return 0;
	}
	wr_init(&w, c->obuf + c->olen, c->ocap - c->olen);
	err = mss_dialer_start(&c->mss, &w);
	if (err) {
		return conn_fail(c, err);
	}
	c->olen = (size_t)(w.p - c->obuf);
	return 0;
}

void p2p_conn_set_remote_addr(struct p2p_conn *c, const struct sockaddr *sa)
{
	if (maddr_from_sockaddr(sa, c->observed, sizeof(c->observed), &c->observed_len)) {
		c->observed_len = 0;
	}
}

static int conn_start_yamux(struct p2p_conn *c)
{
	int err;

	ymx_session_init(&c->ys, c->dialer, &conn_ymx_ops, c, c->host->clock);
	c->state = CS_YAMUX;
	/* like js: ping right away (gives the RTT that drives window growth) */
	err = ymx_ping(&c->ys);
	if (err) {
		return err;
	}
	c->last_ping_ms = c->host->clock->now_ms(c->host->clock);
	if (!c->host->no_identify) {
		stream_open_kind(c, IDENTIFY_PROTOCOL, SK_IDENTIFY_OUT, NULL, 0, &err);
		if (err == -ENOBUFS) {
			return err;
		}
	}
	if (c->ops->on_established) {
		c->ops->on_established(c->ctx, c);
	}
	return 0;
}

static int conn_noise_write(struct p2p_conn *c)
{
	size_t n;
	int err;

	if (c->ocap - c->olen < NOISE_LEN_PREFIX + 1024) {
		return -ENOBUFS;
	}
	err = noise_p2p_write(&c->hs->np, c->obuf + c->olen, c->ocap - c->olen, &n);
	if (!err) {
		c->olen += n;
	}
	return err;
}

static int conn_handshake_done(struct p2p_conn *c)
{
	int err = noise_hs_split(&c->hs->np.hs, &c->tx, &c->rx);

	if (err) {
		return err;
	}
	c->remote = c->hs->np.remote;
	c->remote_known = true;
	c->encrypt = true;
	if (c->hs->np.early_yamux) {
		conn_hs_free(c);
		return conn_start_yamux(c);
	}
	static const char *const muxers[] = { YMX_PROTOCOL };

	c->state = CS_MSS_MUXER;
	if (c->dialer) {
		uint8_t hello[64];
		struct wr w;

		mss_dialer_init(&c->mss, muxers, 1);
		wr_init(&w, hello, sizeof(hello));
		mss_dialer_start(&c->mss, &w);
		return conn_out_wr(c, hello, (size_t)(w.p - hello));
	}
	mss_listener_init(&c->mss, muxers, 1);
	return 0;
}

/* conn_plaintext - decrypted transport bytes for the muxer negotiation or yamux. */
static int conn_plaintext(struct p2p_conn *c, const uint8_t *p, size_t n)
{
	struct conn_hs *hs = c->hs;
	uint8_t reply[128];
	size_t used;
	struct wr w;
	int r;

	if (c->state == CS_YAMUX) {
		return ymx_consume(&c->ys, p, n);
	}
	if (c->state != CS_MSS_MUXER) {
		return -EINVAL;
	}
	if (hs->mss_acc_len + n > sizeof(hs->mss_acc)) {
		return -NATX_E_TOO_BIG;
	}
	memcpy(hs->mss_acc + hs->mss_acc_len, p, n);
	hs->mss_acc_len += n;
	wr_init(&w, reply, sizeof(reply));
	r = mss_consume(&c->mss, hs->mss_acc, hs->mss_acc_len, &used, &w);
	if (w.p != reply) {
		int err = conn_out_wr(c, reply, (size_t)(w.p - reply));

		if (err) {
			return err;
		}
	}
	if (r < 0) {
		return r;
	}
	if (r != MSS_DONE) {
		memmove(hs->mss_acc, hs->mss_acc + used, hs->mss_acc_len - used);
		hs->mss_acc_len -= used;
		return 0;
	}
	r = conn_start_yamux(c);
	if (!r && used < hs->mss_acc_len) {
		r = ymx_consume(&c->ys, hs->mss_acc + used, hs->mss_acc_len - used);
	}
	conn_hs_free(c);
	return r;
}

/* conn_process - run the state machine over the unprocessed input. */
static int conn_process(struct p2p_conn *c)
{
	while (c->ipos < c->ilen && c->state != CS_CLOSED) {
		uint8_t *p = c->ibuf + c->ipos;
		size_t avail = c->ilen - c->ipos, len;
		int err;

		if (c->state == CS_MSS_SECURITY) {
			uint8_t reply[128];
			size_t used;
			struct wr w;
			int r;

			wr_init(&w, reply, sizeof(reply));
			r = mss_consume(&c->mss, p, avail, &used, &w);
			if (w.p != reply) {
				err = conn_out_wr(c, reply, (size_t)(w.p - reply));
				if (err) {
					return err;
				}
			}
			if (r < 0) {
				return r;
			}
			c->ipos += used;
			if (r != MSS_DONE) {
				return 0;
			}
			uint8_t keys[2 * NOISE_DH];

			c->host->rng->fill(c->host->rng, keys, sizeof(keys));
			noise_p2p_init(&c->hs->np, c->dialer, c->host->idn, keys, keys + NOISE_DH,
				       c->has_expected ? &c->expected : NULL, c->host->early_muxer);
			crypto_wipe(keys, sizeof(keys));
			c->state = CS_NOISE;
			if (c->dialer) {
				err = conn_noise_write(c);
				if (err) {
					return err;
				}
			}
			continue;
		}
		/* every later byte comes in u16-length-prefixed Noise messages */
		if (avail < NOISE_LEN_PREFIX) {
			return 0;
		}
		len = (size_t)p[0] << 8 | p[1];
		if (avail < NOISE_LEN_PREFIX + len) {
			return 0;
		}
		p += NOISE_LEN_PREFIX;
		c->ipos += NOISE_LEN_PREFIX + len;
		if (c->state == CS_NOISE) {
			err = noise_p2p_read(&c->hs->np, p, len);
			if (!err && noise_hs_my_turn(&c->hs->np.hs)) {
				err = conn_noise_write(c);
			}
			if (!err && noise_p2p_done(&c->hs->np)) {
				err = conn_handshake_done(c);
			}
			if (err) {
				return err;
			}
			continue;
		}
		err = noise_open(&c->rx, p, len);
		if (err) {
			return err;
		}
		c->stats.frames_in++;
		err = conn_plaintext(c, p, len - NOISE_TAG);
		if (err) {
			return err;
		}
	}
	return 0;
}

int p2p_conn_recv_space(struct p2p_conn *c, uint8_t **p, size_t *cap)
{
	*p = c->ibuf + c->ilen;
	*cap = P2P_IN_CAP - c->ilen;
	return c->error;
}

int p2p_conn_recv_commit(struct p2p_conn *c, size_t n)
{
	int err;

	if (c->error) {
		return c->error;
	}
	if (n > P2P_IN_CAP - c->ilen) {
		return conn_fail(c, -EINVAL);
	}
	c->ilen += n;
	c->stats.bytes_in += n;
	err = conn_process(c);
	if (err) {
		return conn_fail(c, err);
	}
	if (c->error) {
		return c->error; /* failed inside a callback */
	}
	if (c->ipos == c->ilen) {
		c->ipos = c->ilen = 0;
	} else if (c->ipos) {
		memmove(c->ibuf, c->ibuf + c->ipos, c->ilen - c->ipos);
		c->ilen -= c->ipos;
		c->ipos = 0;
	}
	return 0;
}

int p2p_conn_consume(struct p2p_conn *c, const uint8_t *p, size_t n)
{
	while (n) {
		uint8_t *space;
		size_t cap, k;
		int err = p2p_conn_recv_space(c, &space, &cap);

		if (err) {
			return err;
		}
		k = n < cap ? n : cap;
		memcpy(space, p, k);
		err = p2p_conn_recv_commit(c, k);
		if (err) {
			return err;
		}
		p += k;
		n -= k;
	}
	return 0;
}

int p2p_conn_tick(struct p2p_conn *c)
{
	const struct p2p_host *h = c->host;
	int64_t now = h->clock->now_ms(h->clock);
	int64_t every = h->keepalive_ms ? h->keepalive_ms : P2P_KEEPALIVE_MS;
	int64_t wait = h->keepalive_timeout_ms ? h->keepalive_timeout_ms : every;
	int err;

	conn_out_trim(c);
	if (c->error || c->state != CS_YAMUX) {
		return c->error;
	}
	if (c->ys.ping_outstanding && now - c->ys.ping_sent_ms >= wait) {
		/* no answer to our ping: the peer, or the path to it, is gone */
		return conn_fail(c, -ETIMEDOUT);
	}
	if (now - c->last_ping_ms < every) {
		return 0;
	}
	err = ymx_ping(&c->ys);
	if (err == -EBUSY) {
		return 0; /* the previous ping is still within its timeout */
	}
	if (err) {
		return conn_fail(c, err);
	}
	c->last_ping_ms = now;
	return 0;
}

int p2p_conn_close(struct p2p_conn *c)
{
	if (c->state == CS_YAMUX) {
		ymx_goaway(&c->ys, YMX_GOAWAY_NORMAL);
	}
	if (!c->error) {
		c->error = -ECONNABORTED;
	}
	c->state = CS_CLOSED;
	return 0;
}

int p2p_conn_error(const struct p2p_conn *c)
{
	return c->error;
}

bool p2p_conn_established(const struct p2p_conn *c)
{
	return c->state == CS_YAMUX;
}

const struct peer_id *p2p_conn_remote(const struct p2p_conn *c)
{
	return c->remote_known ? &c->remote : NULL;
}

const struct identify_record *p2p_conn_remote_info(const struct p2p_conn *c)
{
	return &c->info;
}

const struct p2p_conn_stats *p2p_conn_stats(const struct p2p_conn *c)
{
	struct p2p_conn *m = (struct p2p_conn *)c;

	if (c->ys.ops) {
		m->stats.window_violations = c->ys.window_violations;
		m->stats.streams_refused = c->ys.streams_refused;
	}
	return &c->stats;
}

void *p2p_conn_user(const struct p2p_conn *c)
{
	return c->user;
}

void p2p_conn_set_user(struct p2p_conn *c, void *user)
{
	c->user = user;
}
