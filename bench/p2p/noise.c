// SPDX-License-Identifier: MIT
/*
 * bench-p2p-noise - the CPU cost of natx's libp2p transport against plain BoringSSL, one
 * thread, no sockets. Every mode moves --bytes of payload and prints one line
 *
 *   mode=M bytes=N cpu_s=S gib_per_s=G cpu_s_per_gib=C [extra]
 *
 * where cpu_s is this thread's CPU time (CLOCK_THREAD_CPUTIME_ID) for the loop only.
 *   bssl    EVP_AEAD_CTX_seal then EVP_AEAD_CTX_open, in place, ChaCha20-Poly1305, frames of
 *           --frame bytes (default 65519, the largest Noise transport payload), counter nonces:
 *           the floor any ChaCha20-Poly1305 transport pays per byte (both ends' work)
 *   noise   the same frames through natx's Noise transport ciphers (noise_seal / noise_open,
 *           keys from a real XX handshake): what engine/p2p adds to the raw AEAD
 *   stack   two p2p_conn in this thread (multistream, Noise, yamux; identify off), one yamux
 *           stream; payload goes in with p2p_stream_write and comes out of on_stream_data on
 *           the other side. Wire bytes are copied once from one connection's output buffer into
 *           the other's receive space (standing in for the kernel's copy): the whole stack
 *           without sockets
 *   hs      complete libp2p connection setups per second (multistream-select, Noise XX with
 *           the libp2p identity payload signed and verified on both sides, yamux negotiation);
 *           --bytes is ignored, --count setups are run; prints hs_per_s
 * Exit 0, or 1 when a frame failed to authenticate or payload was corrupted (the receiver checks
 * every byte against the pattern), 2 on usage errors. Never registered as a test.
 */
#include <errno.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/aead.h>

#include "conn.h"
#include "crypto.h"
#include "noise.h"
#include "p2p_env.h"
#include "peerid.h"

#define BENCH_PROTO "/bench/1.0.0"

enum {
	NB_FRAME_MAX = NOISE_MAX_PLAINTEXT,
	NB_CHUNK = 64 * 1024, /* bytes per p2p_stream_write */
	NB_PERIOD = 65521, /* the stack payload repeats with this (prime) period */
};

static double nb_cpu_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void nb_report(const char *mode, uint64_t bytes, double cpu, const char *extra)
{
	double gib = (double)bytes / (1024.0 * 1024 * 1024);

	printf("mode=%s bytes=%llu cpu_s=%.4f gib_per_s=%.3f cpu_s_per_gib=%.4f%s%s\n", mode,
	       (unsigned long long)bytes, cpu, cpu > 0 ? gib / cpu : 0, gib > 0 ? cpu / gib : 0,
	       extra ? " " : "", extra ? extra : "");
}

/* ---- bssl: the raw AEAD ---------------------------------------------------------------------- */

static int nb_bssl(uint64_t bytes, size_t frame)
{
	uint8_t key[32], nonce[12] = { 0 };
	uint8_t *buf = malloc(frame + 16);
	EVP_AEAD_CTX tx, rx;
	uint64_t n = 0, done = 0;
	double t0;
	int ret = 0;

	if (!buf) {
		return 2;
	}
	crypto_random_bytes(key, sizeof(key));
	memset(buf, 0x5a, frame);
	if (!EVP_AEAD_CTX_init(&tx, EVP_aead_chacha20_poly1305(), key, 32, 16, NULL) ||
	    !EVP_AEAD_CTX_init(&rx, EVP_aead_chacha20_poly1305(), key, 32, 16, NULL)) {
		free(buf);
		return 2;
	}
	t0 = nb_cpu_now();
	while (done < bytes) {
		size_t out_len;

		/* Noise's nonce layout: 4 zero bytes, then the 64-bit counter little-endian */
		memcpy(nonce + 4, &n, 8);
		n++;
		if (!EVP_AEAD_CTX_seal(&tx, buf, &out_len, frame + 16, nonce, 12, buf, frame, NULL,
				       0) ||
		    !EVP_AEAD_CTX_open(&rx, buf, &out_len, frame, nonce, 12, buf, frame + 16, NULL,
				       0) ||
		    buf[0] != 0x5a) {
			ret = 1;
			break;
		}
		done += frame;
	}
	nb_report("bssl", done, nb_cpu_now() - t0, NULL);
	EVP_AEAD_CTX_cleanup(&tx);
	EVP_AEAD_CTX_cleanup(&rx);
	free(buf);
	return ret;
}

/* ---- noise: natx's transport ciphers ----------------------------------------------------------- */

/* nb_handshake - run an XX handshake in memory and split: @tx of the initiator, @rx of the responder. */
static int nb_handshake(struct noise_cipher *tx, struct noise_cipher *rx)
{
	struct noise_hs i, r;
	struct noise_cipher itx, irx, rtx, rrx;
	uint8_t k[4][32], msg[256], *pl;
	size_t len, plen;
	int err;

	crypto_random_bytes(k, sizeof(k));
	noise_hs_init(&i, true, NULL, 0, k[0], k[1]);
	noise_hs_init(&r, false, NULL, 0, k[2], k[3]);
	for (int step = 0; step < 3; step++) {
		struct noise_hs *w = step % 2 ? &r : &i, *rd = step % 2 ? &i : &r;

		err = noise_hs_write(w, NULL, 0, msg, sizeof(msg), &len);
		if (!err) {
			err = noise_hs_read(rd, msg, len, &pl, &plen);
		}
		if (err) {
			return err;
		}
	}
	noise_hs_split(&i, &itx, &irx);
	noise_hs_split(&r, &rtx, &rrx);
	*tx = itx;
	*rx = rrx;
	noise_cipher_cleanup(&irx);
	noise_cipher_cleanup(&rtx);
	noise_hs_cleanup(&i);
	noise_hs_cleanup(&r);
	return 0;
}

static int nb_noise(uint64_t bytes, size_t frame)
{
	struct noise_cipher tx, rx;
	uint8_t *buf = malloc(frame + NOISE_TAG);
	uint64_t done = 0;
	double t0;
	int ret = 0;

	if (!buf || nb_handshake(&tx, &rx)) {
		free(buf);
		return 2;
	}
	memset(buf, 0x5a, frame);
	t0 = nb_cpu_now();
	while (done < bytes) {
		if (noise_seal(&tx, buf, frame) || noise_open(&rx, buf, frame + NOISE_TAG) ||
		    buf[0] != 0x5a) {
			ret = 1;
			break;
		}
		done += frame;
	}
	nb_report("noise", done, nb_cpu_now() - t0, NULL);
	noise_cipher_cleanup(&tx);
	noise_cipher_cleanup(&rx);
	free(buf);
	return ret;
}

/* ---- stack: two p2p_conn in memory ------------------------------------------------------------- */

struct nb_node {
	struct p2p_identity idn;
	struct p2p_host host;
	struct p2p_conn *c;
	const char *protos[1];
	struct p2p_stream *s; /* the bench stream */
	bool established;
	uint64_t got; /* payload delivered to this node */
	uint64_t pos; /* pattern position of the next byte expected */
	bool corrupt;
	bool writable;
	int err;
};

/* nb_pat - byte @i of the stack payload (period NB_PERIOD, so misplaced chunks show). */
static inline uint8_t nb_pat(uint64_t i)
{
	i %= NB_PERIOD;
	return (uint8_t)(i * 131 + (i >> 8));
}

static void nb_on_established(void *ctx, struct p2p_conn *c)
{
	((struct nb_node *)ctx)->established = true;
}

static void nb_on_open(void *ctx, struct p2p_stream *s, const char *protocol)
{
	struct nb_node *n = ctx;

	n->s = s;
	n->writable = true;
}

static void nb_on_data(void *ctx, struct p2p_stream *s, const uint8_t *p, size_t len)
{
	struct nb_node *n = ctx;

	/* Check a few bytes per delivery: a full compare would bench memcmp, not the stack. */
	if (p[0] != nb_pat(n->pos) || p[len - 1] != nb_pat(n->pos + len - 1)) {
		n->corrupt = true;
	}
	n->pos += len;
	n->got += len;
}

static void nb_on_writable(void *ctx, struct p2p_stream *s)
{
	((struct nb_node *)ctx)->writable = true;
}

static void nb_on_close(void *ctx, struct p2p_stream *s)
{
	struct nb_node *n = ctx;

	if (n->s == s) {
		n->s = NULL;
	}
}

static const struct p2p_conn_ops nb_ops = {
	.on_established = nb_on_established,
	.on_stream_open = nb_on_open,
	.on_stream_data = nb_on_data,
	.on_stream_writable = nb_on_writable,
	.on_stream_close = nb_on_close,
};

static void nb_node_init(struct nb_node *n)
{
	uint8_t seed[32];

	memset(n, 0, sizeof(*n));
	crypto_random_bytes(seed, sizeof(seed));
	p2p_identity_from_seed(&n->idn, seed);
	n->protos[0] = BENCH_PROTO;
	n->host = (struct p2p_host){
		.idn = &n->idn,
		.protocols = n->protos,
		.n_protocols = 1,
		.clock = &p2p_clock_system,
		.rng = &p2p_rng_system,
		.early_muxer = true,
		.no_identify = true,
	};
}

/* nb_move - copy what @from has queued into @to's receive space (one copy, like recv). */
static int nb_move(struct nb_node *from, struct nb_node *to)
{
	const uint8_t *p;
	size_t len, moved = 0;

	p2p_conn_out_peek(from->c, &p, &len);
	while (moved < len) {
		uint8_t *space;
		size_t cap, k;
		int err;

		err = p2p_conn_recv_space(to->c, &space, &cap);
		if (err) {
			return err;
		}
		if (!cap) {
			break;
		}
		k = len - moved < cap ? len - moved : cap;
		memcpy(space, p + moved, k);
		moved += k;
		err = p2p_conn_recv_commit(to->c, k);
		if (err) {
			return err;
		}
	}
	if (moved) {
		p2p_conn_out_advance(from->c, moved);
	}
	return moved ? 1 : 0;
}

static int nb_pump(struct nb_node *a, struct nb_node *b)
{
	int r1 = nb_move(a, b), r2 = nb_move(b, a);

	if (r1 < 0 || r2 < 0) {
		return r1 < 0 ? r1 : r2;
	}
	return r1 || r2;
}

/* nb_connect - set up @d (dialer) and @l over memory; 0 when established both ways. */
static int nb_connect(struct nb_node *d, struct nb_node *l)
{
	int err, r = 1;

	d->c = p2p_conn_new(&d->host, true, &l->idn.id, &nb_ops, d, &err);
	if (!d->c) {
		return err;
	}
	l->c = p2p_conn_new(&l->host, false, NULL, &nb_ops, l, &err);
	if (!l->c) {
		return err;
	}
	err = p2p_conn_start(d->c);
	for (int i = 0; !err && r > 0 && i < 1000 && !(d->established && l->established); i++) {
		r = nb_pump(d, l);
	}
	return err ? err : (d->established && l->established ? 0 : (r < 0 ? r : -ETIMEDOUT));
}

static void nb_node_free(struct nb_node *n)
{
	p2p_conn_free(n->c);
	n->c = NULL;
	p2p_identity_cleanup(&n->idn);
}

static int nb_stack(uint64_t bytes)
{
	struct nb_node *d = malloc(sizeof(*d)), *l = malloc(sizeof(*l));
	uint8_t *src = malloc(NB_PERIOD + NB_CHUNK);
	uint64_t sent = 0;
	char extra[96];
	double t0;
	int err, ret = 0, idle = 0;

	if (!d || !l || !src) {
		free(d);
		free(l);
		free(src);
		return 2;
	}
	nb_node_init(d);
	nb_node_init(l);
	err = nb_connect(d, l);
	if (!err) {
		d->s = p2p_stream_open(d->c, BENCH_PROTO, &err);
		d->writable = d->s != NULL;
	}
	if (err) {
		fprintf(stderr, "bench-p2p-noise: stack setup failed: %d\n", err);
		ret = 2;
		goto free_nodes;
	}
	/* src[i] = nb_pat(i): a write of stream position p starts at src + p % NB_PERIOD */
	for (size_t i = 0; i < NB_PERIOD + NB_CHUNK; i++) {
		src[i] = nb_pat(i);
	}
	t0 = nb_cpu_now();
	while (l->got < bytes && idle < 1000) {
		int r;

		while (d->writable && d->s && sent < bytes) {
			size_t want = bytes - sent < NB_CHUNK ? (size_t)(bytes - sent) : NB_CHUNK;
			long w;

			w = p2p_stream_write(d->s, src + sent % NB_PERIOD, want);
			if (w < 0) {
				ret = 1;
				goto stop;
			}
			if (w == 0) {
				d->writable = false;
				break;
			}
			sent += (uint64_t)w;
		}
		r = nb_pump(d, l);
		if (r < 0) {
			ret = 1;
			break;
		}
		idle = r ? 0 : idle + 1;
	}
stop:
	snprintf(extra, sizeof(extra), "frames_out=%llu",
		 (unsigned long long)p2p_conn_stats(d->c)->frames_out);
	nb_report("stack", l->got, nb_cpu_now() - t0, extra);
	if (l->corrupt || l->got != bytes) {
		fprintf(stderr, "bench-p2p-noise: stack delivered %llu of %llu bytes%s\n",
			(unsigned long long)l->got, (unsigned long long)bytes,
			l->corrupt ? ", corrupted" : "");
		ret = 1;
	}
free_nodes:
	nb_node_free(d);
	nb_node_free(l);
	free(d);
	free(l);
	free(src);
	return ret;
}

/* ---- hs: connection setups per second ---------------------------------------------------------- */

static int nb_hs(unsigned count)
{
	struct nb_node *d = malloc(sizeof(*d)), *l = malloc(sizeof(*l));
	char extra[64];
	double t0, cpu;
	int ret = 0;

	if (!d || !l) {
		free(d);
		free(l);
		return 2;
	}
	nb_node_init(d);
	nb_node_init(l);
	t0 = nb_cpu_now();
	for (unsigned i = 0; i < count; i++) {
		d->established = l->established = false;
		if (nb_connect(d, l)) {
			ret = 1;
			break;
		}
		p2p_conn_free(d->c);
		p2p_conn_free(l->c);
		d->c = l->c = NULL;
	}
	cpu = nb_cpu_now() - t0;
	snprintf(extra, sizeof(extra), "setups=%u hs_per_s=%.0f", count, cpu > 0 ? count / cpu : 0);
	nb_report("hs", 0, cpu, extra);
	nb_node_free(d);
	nb_node_free(l);
	free(d);
	free(l);
	return ret;
}

static void nb_usage(void)
{
	fprintf(stderr, "usage: bench-p2p-noise --mode bssl|noise|stack|hs [--bytes N] [--frame B] "
			"[--count N]\n"
			"  --bytes N   payload per run (default 1073741824)\n"
			"  --frame B   AEAD frame size for bssl/noise, 1..65519 (default 65519)\n"
			"  --count N   connection setups for hs (default 2000)\n");
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "mode", required_argument, NULL, 'm' },
		{ "bytes", required_argument, NULL, 'b' },
		{ "frame", required_argument, NULL, 'f' },
		{ "count", required_argument, NULL, 'c' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *mode = NULL;
	unsigned long long bytes = 1ULL << 30, frame = NB_FRAME_MAX, count = 2000;
	char *end;
	int o;

	while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (o) {
		case 'm':
			mode = optarg;
			break;
		case 'b':
			bytes = strtoull(optarg, &end, 10);
			if (*end || !bytes || bytes > (1ULL << 40)) {
				nb_usage();
				return 2;
			}
			break;
		case 'f':
			frame = strtoull(optarg, &end, 10);
			if (*end || !frame || frame > NB_FRAME_MAX) {
				nb_usage();
				return 2;
			}
			break;
		case 'c':
			count = strtoull(optarg, &end, 10);
			if (*end || !count || count > 1000000) {
				nb_usage();
				return 2;
			}
			break;
		default:
			nb_usage();
			return o == 'h' ? 0 : 2;
		}
	}
	if (!mode || optind != argc) {
		nb_usage();
		return 2;
	}
	if (!strcmp(mode, "bssl")) {
		return nb_bssl(bytes, (size_t)frame);
	}
	if (!strcmp(mode, "noise")) {
		return nb_noise(bytes, (size_t)frame);
	}
	if (!strcmp(mode, "stack")) {
		return nb_stack(bytes);
	}
	if (!strcmp(mode, "hs")) {
		return nb_hs((unsigned)count);
	}
	nb_usage();
	return 2;
}
