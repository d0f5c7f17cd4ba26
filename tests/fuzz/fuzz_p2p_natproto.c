// SPDX-License-Identifier: MIT
/*
 * libFuzzer: the relay hop server, the relay stop handler, DCUtR and the AutoNAT server fed
 * arbitrary bytes through real p2p_conn streams, in chunks (state machines, not only codecs).
 * A fixed in-process world: relay R, node A (reserved on R; stop, DCUtR, AutoNAT), attacker B
 * connected to R and to A. Byte 0 picks the target, byte 1 the chunk size:
 *   0 hop stream B->R     1 stop stream B->A     2 DCUtR stream B->A     3 AutoNAT stream B->A
 *   4 a valid CONNECT to A through R, then the bytes as circuit data into A's relayed p2p_conn
 * Oracle: no crash, no leak, no sanitizer report; the world keeps working (B's and A's
 * connections stay healthy, the relay keeps A's reservation).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "autonat.h"
#include "dcutr.h"
#include "link.h"
#include "relay.h"
#include "relay_client.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int64_t fz_ms = 1000;

static int64_t fz_now(struct p2p_clock *c)
{
	return fz_ms;
}

static struct p2p_clock fz_clock = { fz_now };

static int64_t fz_unix(void *ctx)
{
	return 1700000000 + fz_ms / 1000;
}

static void fz_fill(struct p2p_rng *r, void *buf, size_t len)
{
	static uint64_t x = 88172645463325252ULL;
	uint8_t *p = buf;

	for (size_t i = 0; i < len; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		p[i] = (uint8_t)x;
	}
}

static struct p2p_rng fz_rng = { fz_fill };

struct fz_node {
	struct p2p_identity idn;
	struct p2p_host host;
};

/* a pipe: two connection ends */
struct fz_pipe {
	struct p2p_conn *c[2];
};

static struct fz_node R, A, B;
static struct fz_pipe ar, br, ba; /* c[0] dialer */
static struct relay *relay;
static struct relay_client *ca, *cb;
static struct dcutr *dc;
static struct autonat_server *as;
static struct autonat_req *last_req;
static struct p2p_link *links[8];
static size_t n_links;
static struct p2p_stream *attack; /* B's stream under test, NULL once closed */
static bool circuit_ready;

static void on_open(void *ctx, struct p2p_stream *s, const char *proto)
{
	struct fz_node *n = ctx;

	if (n == &R && !strcmp(proto, RELAY_HOP_PROTOCOL)) {
		relay_hop_accept(relay, s, NULL, false);
	} else if (n == &A && !strcmp(proto, RELAY_STOP_PROTOCOL)) {
		relay_client_stop_accept(ca, s);
	} else if (n == &A && !strcmp(proto, DCUTR_PROTOCOL)) {
		dcutr_accept(dc, s);
	} else if (n == &A && !strcmp(proto, AUTONAT_PROTOCOL)) {
		autonat_server_accept(as, s, NULL, false);
	} else {
		p2p_stream_reset(s);
	}
}

static const struct p2p_conn_ops node_ops = { .on_stream_open = on_open };

static void attack_close(void *ctx, struct p2p_stream *s)
{
	if (attack == s) {
		attack = NULL;
	}
}

static const struct p2p_conn_ops attack_ops = { .on_stream_close = attack_close };

static void on_circuit(void *ctx, struct p2p_stream *s, const struct peer_id *remote, bool dialer,
		       const struct relay_limit *limit, const uint8_t *early, size_t early_len,
		       void *user)
{
	int err;

	if (dialer) {
		/* B's side: the circuit's raw stream becomes the attack stream */
		attack = s;
		p2p_stream_set_ops(s, &attack_ops, NULL);
		circuit_ready = true;
		return;
	}
	if (n_links < 8) {
		links[n_links] = p2p_link_new(s, &A.host, false, NULL, &node_ops, &A, early,
					      early_len, NULL, &err);
		if (links[n_links]) {
			n_links++;
			return;
		}
	}
	p2p_stream_reset(s);
}

static const struct relay_client_ops cops = { .unix_now = fz_unix, .on_circuit = on_circuit };
static const struct relay_ops rops = { .unix_now = fz_unix };

static void dial(void *ctx, struct p2p_conn *relayed, const struct relay_addrs *addrs,
		 int64_t at_ms, bool client, unsigned attempt)
{
}

static const struct dcutr_ops dops = { .dial = dial };

static void dial_back(void *ctx, struct autonat_req *req, const struct peer_id *peer,
		      const struct relay_addrs *addrs)
{
	last_req = req;
}

static const struct autonat_server_ops aops = { .dial_back = dial_back };

static void node_init(struct fz_node *n, uint8_t seed, const char *const *protos, size_t np)
{
	uint8_t key[32];

	memset(key, seed, sizeof(key));
	p2p_identity_from_seed(&n->idn, key);
	n->host = (struct p2p_host){ .idn = &n->idn,
				     .protocols = protos,
				     .n_protocols = np,
				     .clock = &fz_clock,
				     .rng = &fz_rng,
				     .early_muxer = true };
}

static void pipe_new(struct fz_pipe *p, struct fz_node *d, struct fz_node *l)
{
	int err;

	p->c[0] = p2p_conn_new(&d->host, true, &l->idn.id, &node_ops, d, &err);
	p->c[1] = p2p_conn_new(&l->host, false, NULL, &node_ops, l, &err);
	if (!p->c[0] || !p->c[1]) {
		abort();
	}
	p2p_conn_start(p->c[0]);
}

static int pipe_move(struct fz_pipe *p, int from)
{
	const uint8_t *q;
	size_t len;
	uint8_t *copy;
	int err;

	p2p_conn_out_peek(p->c[from], &q, &len);
	if (!len) {
		return 0;
	}
	copy = malloc(len);
	if (!copy) {
		abort();
	}
	memcpy(copy, q, len);
	p2p_conn_out_advance(p->c[from], len);
	err = p2p_conn_consume(p->c[1 - from], copy, len);
	free(copy);
	if (err) {
		abort(); /* the attack must never break a connection */
	}
	return 1;
}

static void pump(void)
{
	struct fz_pipe *pipes[3] = { &ar, &br, &ba };

	for (int round = 0; round < 100000; round++) {
		int moved = 0;

		for (size_t i = 0; i < n_links; i++) {
			if (links[i] && !p2p_link_down(links[i])) {
				p2p_link_flush(links[i]);
			}
		}
		for (int k = 0; k < 3; k++) {
			moved |= pipe_move(pipes[k], 0) | pipe_move(pipes[k], 1);
		}
		if (!moved) {
			return;
		}
	}
	abort(); /* never quiet: a loop between state machines */
}

static void world_init(void)
{
	static const char *const rp[] = { RELAY_HOP_PROTOCOL };
	static const char *const ap[] = { RELAY_STOP_PROTOCOL, DCUTR_PROTOCOL, AUTONAT_PROTOCOL };
	static uint8_t addr[] = { 0x04, 198, 51, 100, 1, 0x06, 0x0f, 0xa1 }; /* /ip4/../tcp/4001 */
	static const uint8_t *addrs[] = { addr };
	static const size_t lens[] = { sizeof(addr) };
	struct relay_config cfg;
	int err;

	node_init(&R, 1, rp, 1);
	node_init(&A, 2, ap, 3);
	node_init(&B, 3, NULL, 0);
	relay_config_default(&cfg);
	cfg.data = 64 * 1024;
	relay = relay_new(&R.idn, &cfg, &fz_clock, &rops, NULL, &err);
	ca = relay_client_new(&A.idn, &fz_clock, &cops, NULL, &err);
	cb = relay_client_new(&B.idn, &fz_clock, &cops, NULL, &err);
	dc = dcutr_new(&fz_clock, &dops, NULL, addrs, lens, 1, false, &err);
	as = autonat_server_new(&fz_clock, &aops, NULL, &err);
	if (!relay || !ca || !cb || !dc || !as) {
		abort();
	}
	pipe_new(&ar, &A, &R);
	pipe_new(&br, &B, &R);
	pipe_new(&ba, &B, &A);
	pump();
	if (relay_client_reserve(ca, ar.c[0])) {
		abort();
	}
	pump();
	if (!relay_has_reservation(relay, &A.idn.id)) {
		abort();
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static bool ready;
	static const char *const protos[] = { RELAY_HOP_PROTOCOL, RELAY_STOP_PROTOCOL,
					      DCUTR_PROTOCOL, AUTONAT_PROTOCOL };
	size_t chunk;
	int err;

	if (!ready) {
		world_init();
		ready = true;
	}
	if (size < 2) {
		return 0;
	}
	chunk = data[1] ? data[1] : size;
	attack = NULL;
	circuit_ready = false;
	if (data[0] % 5 == 4) {
		if (relay_client_connect(cb, br.c[0], &A.idn.id, NULL)) {
			abort();
		}
		pump();
	} else {
		struct p2p_conn *c = data[0] % 5 == 0 ? br.c[0] : ba.c[0];

		attack = p2p_stream_open(c, protos[data[0] % 5], &err);
		if (!attack) {
			abort();
		}
		p2p_stream_set_ops(attack, &attack_ops, NULL);
	}
	for (size_t off = 2; off < size && attack;) {
		size_t k = size - off < chunk ? size - off : chunk;

		if (p2p_stream_write(attack, data + off, k) < 0) {
			break;
		}
		off += k;
		pump();
	}
	if (attack) {
		p2p_stream_reset(attack);
	}
	pump();
	/* the hosts' side of the actions, then time passes */
	dcutr_dial_done(dc, ba.c[1], -1);
	if (last_req) {
		autonat_server_dial_done(as, last_req, -1, NULL, 0);
		last_req = NULL;
	}
	for (size_t i = 0; i < n_links; i++) {
		p2p_link_free(links[i]);
	}
	n_links = 0;
	pump();
	fz_ms += 1000;
	relay_tick(relay);
	relay_client_tick(ca);
	dcutr_tick(dc);
	autonat_server_tick(as);
	pump();
	if (!relay_has_reservation(relay, &A.idn.id) || relay_stats(relay)->circuits_active) {
		abort();
	}
	return 0;
}
