// SPDX-License-Identifier: MIT
/*
 * Circuit Relay v2 in process: A reserves on relay R, B reaches A through R, and a nested
 * Noise+yamux connection runs over the circuit (p2p_link). Limits, refusals and floods.
 */
#include <arpa/inet.h>

#include "natx/err.h"
#include "envelope.h"
#include "lpm.h"
#include "relay.h"
#include "relay_client.h"
#include "p2p/t_net.h"

static const char *const relay_protos[] = { RELAY_HOP_PROTOCOL, NULL };
static const char *const node_protos[] = { RELAY_STOP_PROTOCOL, T_ECHO, NULL };

/* struct world - relay R, reserving node A, dialling node B */
struct world {
	struct t_node r, a, b;
	struct relay *relay;
	struct relay_client *ca, *cb;
	struct relay_config cfg;
	struct t_end *ar, *br; /* A->R and B->R (dialer ends) */
	struct t_end *inner_a, *inner_b; /* the relayed connection's ends */
	int reserved, reserve_err;
	uint32_t reserve_status;
	struct relay_reservation rsvp;
	int failed, fail_err;
	uint32_t fail_status;
	uint32_t stop_answer; /* what A's accept_stop says */
	struct sockaddr_in src_ip; /* remote address R records for the next hop stream */
};

static struct world *W;

static bool world_open(struct t_node *n, struct t_end *e, struct p2p_stream *s, const char *proto)
{
	if (n == &W->r && !strcmp(proto, RELAY_HOP_PROTOCOL)) {
		relay_hop_accept(W->relay, s, (struct sockaddr *)&W->src_ip, e->relayed);
		return true;
	}
	if (!strcmp(proto, RELAY_STOP_PROTOCOL)) {
		relay_client_stop_accept(n == &W->a ? W->ca : W->cb, s);
		return true;
	}
	return false;
}

static void on_reserved(void *ctx, struct p2p_conn *c, int err, uint32_t status,
			const struct relay_reservation *rsvp)
{
	W->reserved++;
	W->reserve_err = err;
	W->reserve_status = status;
	if (rsvp) {
		W->rsvp = *rsvp;
	}
}

static void on_circuit(void *ctx, struct p2p_stream *s, const struct peer_id *remote, bool dialer,
		       const struct relay_limit *limit, const uint8_t *early, size_t early_len,
		       void *user)
{
	struct t_node *n = ctx;

	if (dialer) {
		cr_assert(peerid_equal(remote, &W->a.idn.id));
		W->inner_b = t_link(n, s, true, remote, early, early_len);
	} else {
		cr_assert(peerid_equal(remote, &W->b.idn.id));
		W->inner_a = t_link(n, s, false, NULL, early, early_len);
		W->inner_a->echo = true;
	}
}

static void on_connect_failed(void *ctx, const struct peer_id *target, int err, uint32_t status,
			      void *user)
{
	W->failed++;
	W->fail_err = err;
	W->fail_status = status;
}

static uint32_t accept_stop(void *ctx, const struct peer_id *src)
{
	return W->stop_answer;
}

static const struct relay_client_ops client_ops = {
	.unix_now = t_unix,
	.on_reserved = on_reserved,
	.on_circuit = on_circuit,
	.on_connect_failed = on_connect_failed,
	.accept_stop = accept_stop,
};

static const struct relay_ops relay_ops = { .unix_now = t_unix };

/* world_up - R, A, B connected (A->R, B->R); A has not reserved yet. */
static void world_up(struct world *w, const struct relay_config *cfg)
{
	int err;

	memset(w, 0, sizeof(*w));
	W = w;
	t_node_init(&w->r, 11, relay_protos);
	t_node_init(&w->a, 22, node_protos);
	t_node_init(&w->b, 33, node_protos);
	w->r.on_open = w->a.on_open = w->b.on_open = world_open;
	w->cfg = *cfg;
	w->relay = relay_new(&w->r.idn, &w->cfg, &t_clock, &relay_ops, w, &err);
	w->ca = relay_client_new(&w->a.idn, &t_clock, &client_ops, &w->a, &err);
	w->cb = relay_client_new(&w->b.idn, &t_clock, &client_ops, &w->b, &err);
	cr_assert(w->relay && w->ca && w->cb);
	w->stop_answer = RELAY_OK;
	w->src_ip.sin_family = AF_INET;
	inet_pton(AF_INET, "192.0.2.1", &w->src_ip.sin_addr);
	w->ar = t_connect(&w->a, &w->r);
	w->br = t_connect(&w->b, &w->r);
	cr_assert_eq(t_pump(NULL, NULL), 0);
	cr_assert_eq(w->ar->established, 1);
	cr_assert_eq(w->br->established, 1);
}

static void world_reserve(struct world *w)
{
	int before = w->reserved;

	cr_assert_eq(relay_client_reserve(w->ca, w->ar->c), 0);
	cr_assert_eq(t_pump(NULL, NULL), 0);
	cr_assert_eq(w->reserved, before + 1);
	cr_assert_eq(w->reserve_err, 0);
	cr_assert_eq(w->reserve_status, RELAY_OK, "%s", relay_status_name(w->reserve_status));
}

static void world_down(struct world *w)
{
	t_net_free();
	relay_free(w->relay);
	relay_client_free(w->ca);
	relay_client_free(w->cb);
	p2p_identity_cleanup(&w->r.idn);
	p2p_identity_cleanup(&w->a.idn);
	p2p_identity_cleanup(&w->b.idn);
}

/* world_circuit - B connects to A through R; the inner connection comes up. */
static void world_circuit(struct world *w)
{
	cr_assert_eq(relay_client_connect(w->cb, w->br->c, &w->a.idn.id, NULL), 0);
	cr_assert_eq(t_pump(NULL, NULL), 0);
	cr_assert_eq(w->failed, 0, "connect failed: %d %s", w->fail_err,
		     relay_status_name(w->fail_status));
	cr_assert(w->inner_a && w->inner_b);
	cr_assert_eq(w->inner_a->established, 1);
	cr_assert_eq(w->inner_b->established, 1);
}

static struct relay_config unlimited(void)
{
	struct relay_config c;

	relay_config_default(&c);
	c.duration_s = 0;
	c.data = 0;
	return c;
}

/* struct sender - writes @total pseudo-random bytes on a stream in pump steps */
struct sender {
	struct t_end *e;
	struct p2p_stream *s;
	size_t total, sent;
	uint64_t sum;
	bool closed;
};

static void sender_step(void *arg)
{
	struct sender *sd = arg;
	uint8_t buf[16384];

	while (sd->s && sd->sent < sd->total) {
		size_t k = sd->total - sd->sent < sizeof(buf) ? sd->total - sd->sent : sizeof(buf);
		long w;

		for (size_t i = 0; i < k; i++) {
			buf[i] = (uint8_t)((sd->sent + i) * 2654435761u >> 13);
		}
		w = p2p_stream_write(sd->s, buf, k);
		if (w <= 0) {
			break;
		}
		for (long i = 0; i < w; i++) {
			sd->sum = sd->sum * 31 + buf[i];
		}
		sd->sent += (size_t)w;
	}
	if (sd->s && sd->sent == sd->total && !sd->closed) {
		p2p_stream_close(sd->s);
		sd->closed = true;
	}
	if (sd->e->link) {
		p2p_link_flush(sd->e->link);
	}
}

Test(relay, reserve_then_identify_ping_and_4mib_echo_through_the_relay, .timeout = 120)
{
	struct relay_config cfg = unlimited();
	struct world w;
	uint8_t addr[MADDR_MAX_LEN], raddr[64];
	char text[MADDR_TEXT_MAX], aid[PEERID_TEXT_MAX], rid[PEERID_TEXT_MAX], want[400];
	size_t len, rlen;
	const uint8_t *raddrs[1];
	size_t rlens[1];
	struct sender sd = { 0 };
	int err;

	cr_assert_eq(maddr_from_text("/ip4/198.51.100.7/tcp/4001", raddr, sizeof(raddr), &rlen), 0);
	raddrs[0] = raddr;
	rlens[0] = rlen;
	cfg.public_addrs = raddrs;
	cfg.public_addr_lens = rlens;
	cfg.n_public_addrs = 1;
	world_up(&w, &cfg);
	world_reserve(&w);
	cr_assert(w.rsvp.voucher_ok);
	cr_assert(peerid_equal(&w.rsvp.relay, &w.r.idn.id));
	cr_assert_eq(w.rsvp.expire, (uint64_t)t_unix(NULL) + RELAY_DEF_RSVP_TTL_S);
	cr_assert_not(w.rsvp.limit.present); /* unlimited relay: no Limit field */
	cr_assert_eq(w.rsvp.addrs.n, 1);
	cr_assert(relay_has_reservation(w.relay, &w.a.idn.id));
	cr_assert_not(relay_has_reservation(w.relay, &w.b.idn.id));
	/* the address B dials A at */
	cr_assert_eq(relay_circuit_addr(w.rsvp.addrs.b[0], w.rsvp.addrs.lens[0], &w.rsvp.relay,
					&w.a.idn.id, addr, sizeof(addr), &len),
		     0);
	cr_assert_gt(maddr_to_text(addr, len, text, sizeof(text)), 0);
	peerid_to_text(&w.a.idn.id, aid, sizeof(aid));
	peerid_to_text(&w.r.idn.id, rid, sizeof(rid));
	snprintf(want, sizeof(want), "/ip4/198.51.100.7/tcp/4001/p2p/%s/p2p-circuit/p2p/%s", rid,
		 aid);
	cr_assert_str_eq(text, want);
	/* and back: what a host does with a /p2p-circuit address it is asked to dial */
	{
		uint8_t rb[MADDR_MAX_LEN], bad[MADDR_MAX_LEN];
		size_t rl, bl;
		struct peer_id pr, pt;
		char rt[MADDR_TEXT_MAX], wr[MADDR_TEXT_MAX];

		cr_assert_eq(relay_circuit_parse(addr, len, rb, sizeof(rb), &rl, &pr, &pt), 0);
		cr_assert(peerid_equal(&pr, &w.r.idn.id));
		cr_assert(peerid_equal(&pt, &w.a.idn.id));
		cr_assert_gt(maddr_to_text(rb, rl, rt, sizeof(rt)), 0);
		snprintf(wr, sizeof(wr), "/ip4/198.51.100.7/tcp/4001/p2p/%s", rid);
		cr_assert_str_eq(rt, wr);
		/* not circuit addresses */
		cr_assert_eq(relay_circuit_parse(raddr, rlen, rb, sizeof(rb), &rl, &pr, &pt),
			     -NATX_E_PROTO);
		snprintf(wr, sizeof(wr), "/ip4/198.51.100.7/tcp/4001/p2p-circuit/p2p/%s", aid);
		cr_assert_eq(maddr_from_text(wr, bad, sizeof(bad), &bl), 0);
		cr_assert_eq(relay_circuit_parse(bad, bl, rb, sizeof(rb), &rl, &pr, &pt),
			     -NATX_E_PROTO); /* no relay peer ID */
		snprintf(wr, sizeof(wr), "/ip4/198.51.100.7/tcp/4001/p2p/%s/p2p-circuit", rid);
		cr_assert_eq(maddr_from_text(wr, bad, sizeof(bad), &bl), 0);
		cr_assert_eq(relay_circuit_parse(bad, bl, rb, sizeof(rb), &rl, &pr, &pt),
			     -NATX_E_PROTO); /* no target */
	}

	world_circuit(&w);
	/* the inner connection authenticated the far end, not the relay */
	cr_assert(peerid_equal(p2p_conn_remote(w.inner_b->c), &w.a.idn.id));
	cr_assert(peerid_equal(p2p_conn_remote(w.inner_a->c), &w.b.idn.id));
	cr_assert_eq(w.inner_a->identified, 1);
	cr_assert_eq(w.inner_b->identified, 1);
	cr_assert_eq(w.inner_b->identify_err, 0);
	cr_assert_str_eq(w.inner_b->agent, "natx/" NATX_VERSION);
	cr_assert_eq(relay_stats(w.relay)->circuits_active, 1);

	/* ping through the relay */
	cr_assert_eq(p2p_conn_ping(w.inner_b->c), 0);
	p2p_link_flush(w.inner_b->link);
	cr_assert_eq(t_pump(NULL, NULL), 0);
	cr_assert_eq(w.inner_b->pings, 1);
	cr_assert_eq(w.inner_b->ping_err, 0);

	/* 4 MiB echo: B sends, A echoes, B checks the checksum of what came back */
	sd.e = w.inner_b;
	sd.total = 4u << 20;
	sd.s = p2p_stream_open(w.inner_b->c, T_ECHO, &err);
	cr_assert(sd.s);
	w.inner_b->app = sd.s;
	cr_assert_eq(t_pump(sender_step, &sd), 0);
	cr_assert_eq(sd.sent, sd.total);
	cr_assert_eq(w.inner_a->rx_bytes, sd.total);
	cr_assert_eq(w.inner_b->rx_bytes, sd.total);
	cr_assert_eq(w.inner_a->rx_sum, sd.sum);
	cr_assert_eq(w.inner_b->rx_sum, sd.sum);
	cr_assert_eq(w.inner_b->fins, 1);
	cr_assert_geq(relay_stats(w.relay)->bytes_relayed, 2 * sd.total);
	{
		struct relay_circuit_info ci[2];

		cr_assert_eq(relay_circuits(w.relay, ci, 2), 1);
		cr_assert(peerid_equal(&ci[0].src, &w.b.idn.id));
		cr_assert(peerid_equal(&ci[0].dst, &w.a.idn.id));
		cr_assert_gt(ci[0].bytes[0],
			     sd.total); /* the echo payload plus the inner framing */
		cr_assert_gt(ci[0].bytes[1], sd.total);
	}
	cr_assert_eq(w.inner_a->link_down, 0);
	cr_assert_eq(w.inner_b->link_down, 0);

	/* B's connection to R goes away: the circuit ends, A's inner link reports it */
	relay_conn_gone(w.relay, w.br->peer->c);
	p2p_conn_free(w.br->peer->c);
	w.br->peer->c = NULL;
	cr_assert_eq(t_pump(NULL, NULL), 0);
	cr_assert_neq(w.inner_a->link_down, 0);
	cr_assert_eq(relay_stats(w.relay)->circuits_active, 0);
	cr_assert(relay_has_reservation(w.relay, &w.a.idn.id)); /* A's reservation is intact */
	world_down(&w);
}

Test(relay, data_limit_resets_the_circuit_and_nothing_else, .timeout = 60)
{
	struct relay_config cfg = unlimited();
	struct world w;
	struct sender sd = { 0 };
	int err;

	cfg.data = 64 * 1024;
	world_up(&w, &cfg);
	world_reserve(&w);
	cr_assert(w.rsvp.limit.present);
	cr_assert_eq(w.rsvp.limit.data, 64 * 1024);
	world_circuit(&w);
	sd.e = w.inner_b;
	sd.total = 1u << 20;
	sd.s = p2p_stream_open(w.inner_b->c, T_ECHO, &err);
	cr_assert(sd.s);
	w.inner_b->app = sd.s;
	cr_assert_eq(t_pump(sender_step, &sd), 0);
	/* the relay forwarded at most the limit in each direction, then reset both streams */
	cr_assert_lt(w.inner_a->rx_bytes, 64 * 1024);
	cr_assert_lt(sd.sent, sd.total);
	cr_assert_eq(relay_stats(w.relay)->circuits_limited, 1);
	cr_assert_eq(relay_stats(w.relay)->circuits_active, 0);
	cr_assert_leq(relay_stats(w.relay)->bytes_relayed, 2 * 64 * 1024);
	cr_assert_neq(w.inner_a->link_down, 0);
	cr_assert_neq(w.inner_b->link_down, 0);
	/* the direct connections to the relay are unaffected */
	cr_assert_eq(p2p_conn_error(w.ar->c), 0);
	cr_assert_eq(p2p_conn_ping(w.br->c), 0);
	cr_assert_eq(t_pump(NULL, NULL), 0);
	cr_assert_eq(w.br->pings, 1);
	cr_assert_eq(w.br->ping_err, 0);
	world_down(&w);
}

Test(relay, duration_limit_resets_on_tick, .timeout = 60)
{
	struct relay_config cfg = unlimited();
	struct world w;

	cfg.duration_s = 60;
	world_up(&w, &cfg);
	world_reserve(&w);
	world_circuit(&w);
	t_now_ms += 59000;
	relay_tick(w.relay);
	cr_assert_eq(relay_stats(w.relay)->circuits_active, 1);
	t_now_ms += 1000;
	relay_tick(w.relay);
	cr_assert_eq(t_pump(NULL, NULL), 0);
	cr_assert_eq(relay_stats(w.relay)->circuits_active, 0);
	cr_assert_neq(w.inner_a->link_down, 0);
	cr_assert_neq(w.inner_b->link_down, 0);
	world_down(&w);
}

Test(relay, refusals_carry_the_right_status, .timeout = 60)
{
	struct relay_config cfg = unlimited();
	struct world w;
	struct peer_id deny[1];

	cfg.max_circuits_per_peer = 1;
	world_up(&w, &cfg);

	/* no reservation yet */
	cr_assert_eq(relay_client_connect(w.cb, w.br->c, &w.a.idn.id, NULL), 0);
	cr_assert_eq(t_pump(NULL, NULL), 0);
	cr_assert_eq(w.failed, 1);
	cr_assert_eq(w.fail_status, RELAY_NO_RESERVATION);

	world_reserve(&w);
	w.failed = 0;
	world_circuit(&w);
	/* over the per-peer circuit limit */
	cr_assert_eq(relay_client_connect(w.cb, w.br->c, &w.a.idn.id, NULL), 0);
	cr_assert_eq(t_pump(NULL, NULL), 0);
	cr_assert_eq(w.failed, 1);
	cr_assert_eq(w.fail_status, RELAY_RESOURCE_LIMIT_EXCEEDED);
	cr_assert_eq(relay_stats(w.relay)->circuits_refused, 2);
	cr_assert_eq(relay_stats(w.relay)->circuits_active, 1);
	/* the existing circuit still works */
	cr_assert_eq(p2p_conn_ping(w.inner_b->c), 0);
	p2p_link_flush(w.inner_b->link);
	cr_assert_eq(t_pump(NULL, NULL), 0);
	cr_assert_eq(w.inner_b->pings, 1);
	cr_assert_eq(w.inner_b->ping_err, 0);
	world_down(&w);

	/* the target refuses on its stop stream: CONNECTION_FAILED to the source */
	cfg = unlimited();
	world_up(&w, &cfg);
	world_reserve(&w);
	w.stop_answer = RELAY_PERMISSION_DENIED;
	cr_assert_eq(relay_client_connect(w.cb, w.br->c, &w.a.idn.id, NULL), 0);
	cr_assert_eq(t_pump(NULL, NULL), 0);
	cr_assert_eq(w.failed, 1);
	cr_assert_eq(w.fail_status, RELAY_CONNECTION_FAILED);
	cr_assert_eq(relay_stats(w.relay)->circuits_active, 0);
	world_down(&w);

	/* a denied peer may neither connect nor reserve */
	cfg = unlimited();
	world_up(&w, &cfg);
	deny[0] = w.b.idn.id;
	w.cfg.deny = deny;
	w.cfg.n_deny = 1;
	relay_free(w.relay);
	{
		int err;

		w.relay = relay_new(&w.r.idn, &w.cfg, &t_clock, &relay_ops, &w, &err);
		cr_assert(w.relay);
	}
	world_reserve(&w);
	cr_assert_eq(relay_client_connect(w.cb, w.br->c, &w.a.idn.id, NULL), 0);
	cr_assert_eq(t_pump(NULL, NULL), 0);
	cr_assert_eq(w.fail_status, RELAY_PERMISSION_DENIED);
	cr_assert_eq(relay_client_reserve(w.cb, w.br->c), 0);
	cr_assert_eq(t_pump(NULL, NULL), 0);
	cr_assert_eq(w.reserve_status, RELAY_PERMISSION_DENIED);
	world_down(&w);
}

Test(relay, reservation_flood_is_capped_and_renewals_do_not_count, .timeout = 60)
{
	struct relay_config cfg = unlimited();
	struct t_end *extra[10];
	struct world w;
	int ok = 0, refused = 0;

	cfg.max_rsvp_per_peer = 2;
	cfg.max_rsvp_per_ip = 4;
	world_up(&w, &cfg);
	/* A opens 10 more connections to R and reserves on each */
	for (int i = 0; i < 10; i++) {
		extra[i] = t_connect(&w.a, &w.r);
	}
	cr_assert_eq(t_pump(NULL, NULL), 0);
	for (int i = 0; i < 10; i++) {
		struct relay_client *cl;
		int err;

		/* a fresh client per connection, as a flooding peer would run */
		cl = relay_client_new(&w.a.idn, &t_clock, &client_ops, &w.a, &err);
		cr_assert_eq(relay_client_reserve(cl, extra[i]->c), 0);
		cr_assert_eq(t_pump(NULL, NULL), 0);
		ok += w.reserve_status == RELAY_OK;
		refused += w.reserve_status == RELAY_RESERVATION_REFUSED;
		relay_client_free(cl);
	}
	cr_assert_eq(ok, 2);
	cr_assert_eq(refused, 8);
	cr_assert_eq(relay_stats(w.relay)->rsvp_active, 2);
	cr_assert_eq(relay_stats(w.relay)->rsvp_refused, 8);

	/* many peers from one IP: capped at 4 in total (A already holds 2) */
	{
		struct t_node others[4];
		int ok2 = 0;

		for (int i = 0; i < 4; i++) {
			struct relay_client *cl;
			struct t_end *e;
			int err;

			t_node_init(&others[i], 100 + i, node_protos);
			e = t_connect(&others[i], &w.r);
			cr_assert_eq(t_pump(NULL, NULL), 0);
			cl = relay_client_new(&others[i].idn, &t_clock, &client_ops, NULL, &err);
			cr_assert_eq(relay_client_reserve(cl, e->c), 0);
			cr_assert_eq(t_pump(NULL, NULL), 0);
			ok2 += w.reserve_status == RELAY_OK;
			relay_client_free(cl);
		}
		cr_assert_eq(ok2, 2);
		cr_assert_eq(relay_stats(w.relay)->rsvp_active, 4);
		/* free the connections before the nodes' identities go away */
		world_down(&w);
		for (int i = 0; i < 4; i++) {
			p2p_identity_cleanup(&others[i].idn);
		}
	}
}

Test(relay, client_renews_before_expiry_and_relay_expires_stale_reservations, .timeout = 60)
{
	struct relay_config cfg = unlimited();
	struct world w;

	cfg.rsvp_ttl_s = 60;
	world_up(&w, &cfg);
	world_reserve(&w);
	cr_assert_eq(w.reserved, 1);
	t_now_ms += 29000;
	relay_client_tick(w.ca);
	cr_assert_eq(t_pump(NULL, NULL), 0);
	cr_assert_eq(w.reserved, 1); /* not yet */
	t_now_ms += 1000;
	relay_client_tick(w.ca);
	cr_assert_eq(t_pump(NULL, NULL), 0);
	cr_assert_eq(w.reserved, 2);
	cr_assert_eq(w.reserve_status, RELAY_OK);
	cr_assert_eq(relay_stats(w.relay)->rsvp_renewed, 1);
	cr_assert_eq(relay_stats(w.relay)->rsvp_total, 1);
	/* without renewals the relay drops it after the TTL */
	t_now_ms += 60000;
	relay_tick(w.relay);
	cr_assert_not(relay_has_reservation(w.relay, &w.a.idn.id));
	cr_assert_eq(relay_stats(w.relay)->rsvp_active, 0);
	world_down(&w);
}

Test(relay, malformed_hop_request_gets_malformed_status, .timeout = 30)
{
	struct relay_config cfg = unlimited();
	struct world w;
	struct p2p_stream *s;
	const uint8_t junk[] = { 0x03, 0xff, 0xff, 0xff };
	int err;

	world_up(&w, &cfg);
	s = p2p_stream_open(w.br->c, RELAY_HOP_PROTOCOL, &err);
	cr_assert(s);
	w.br->app = s;
	cr_assert_eq(p2p_stream_write(s, junk, sizeof(junk)), (long)sizeof(junk));
	cr_assert_eq(t_pump(NULL, NULL), 0);
	cr_assert_eq(relay_stats(w.relay)->malformed, 1);
	/* B's echo-less end saw 05 08 02 28 90 03 (STATUS, MALFORMED_MESSAGE = 400) */
	cr_assert_eq(w.br->rx_bytes, 6);
	cr_assert_eq(p2p_conn_error(w.br->c), 0);
	world_down(&w);
}

Test(relay_msg, wire_bytes_match_the_spec)
{
	struct relay_msg m = { 0 }, d;
	uint8_t out[RELAY_MAX_MSG + 8];
	size_t len;

	m.type = RELAY_HOP_RESERVE;
	cr_assert_eq(relay_hop_encode(&m, out, sizeof(out), &len), 0);
	cr_assert_eq(len, 3);
	cr_assert_eq(memcmp(out, "\x02\x08\x00", 3), 0);
	m.type = RELAY_HOP_STATUS;
	m.has_status = true;
	m.status = RELAY_OK;
	cr_assert_eq(relay_hop_encode(&m, out, sizeof(out), &len), 0);
	cr_assert_eq(memcmp(out, "\x04\x08\x02\x28\x64", 5), 0);
	cr_assert_eq(relay_hop_decode(&d, out + 1, len - 1), 0);
	cr_assert_eq(d.type, RELAY_HOP_STATUS);
	cr_assert_eq(d.status, RELAY_OK);
	/* stop CONNECT = 0 is still sent */
	memset(&m, 0, sizeof(m));
	m.type = RELAY_STOP_CONNECT;
	cr_assert_eq(relay_stop_encode(&m, out, sizeof(out), &len), 0);
	cr_assert_eq(memcmp(out, "\x02\x08\x00", 3), 0);
	/* absent type, bad peer id, garbage */
	cr_assert_eq(relay_hop_decode(&d, (const uint8_t *)"\x28\x64", 2), -NATX_E_PROTO);
	cr_assert_eq(relay_hop_decode(&d, (const uint8_t *)"\x08\x01\x12\x03\x0a\x01\x00", 7),
		     -NATX_E_PROTO);
	cr_assert_eq(relay_stop_decode(&d, (const uint8_t *)"\xff\xff", 2), -NATX_E_PROTO);
}

Test(relay_msg, lpm_reads_exactly_one_message)
{
	struct lpm m;
	const uint8_t in[] = { 0x02, 0x08, 0x00, 0xaa, 0xbb };
	const uint8_t *msg;
	size_t used, len, total = 0;
	int rc = 0;

	lpm_init(&m, 16);
	for (size_t i = 0; i < 3; i++) { /* byte by byte */
		rc = lpm_feed(&m, in + i, 1, &used, &msg, &len);
		total += used;
	}
	cr_assert_eq(rc, 1);
	cr_assert_eq(len, 2);
	cr_assert_eq(total, 3);
	lpm_init(&m, 16);
	cr_assert_eq(lpm_feed(&m, in, sizeof(in), &used, &msg, &len), 1);
	cr_assert_eq(used, 3); /* the raw bytes after the message are left */
	cr_assert_eq(lpm_feed(&m, (const uint8_t *)"\x11", 1, &used, &msg, &len), -NATX_E_TOO_BIG);
	lpm_init(&m, 16);
	cr_assert_eq(lpm_feed(&m, (const uint8_t *)"\x80\x00", 2, &used, &msg, &len),
		     -NATX_E_PROTO);
}

Test(envelope, voucher_seal_open_and_tamper)
{
	struct t_node r, a;
	struct relay_voucher v = { 0 }, got;
	uint8_t env[ENVELOPE_MAX], payload[ENVELOPE_MAX_PAYLOAD];
	size_t len, plen;
	struct peer_id signer;

	t_node_init(&r, 1, NULL);
	t_node_init(&a, 2, NULL);
	v.relay = r.idn.id;
	v.peer = a.idn.id;
	v.expiration = 1700003600;
	cr_assert_eq(relay_voucher_seal(&r.idn, &v, env, sizeof(env), &len), 0);
	cr_assert_eq(relay_voucher_open(env, len, &got), 0);
	cr_assert(peerid_equal(&got.relay, &r.idn.id));
	cr_assert(peerid_equal(&got.peer, &a.idn.id));
	cr_assert_eq(got.expiration, 1700003600);
	/* payload type 03 02 is on the wire as raw bytes after field 2's tag */
	cr_assert_not_null(memmem(env, len, "\x12\x02\x03\x02", 4));
	/* another domain does not verify */
	cr_assert_eq(envelope_open(env, len, "libp2p-peer-record", relay_rsvp_payload_type, 2,
				   &signer, payload, sizeof(payload), &plen),
		     -NATX_E_AUTH);
	/* wrong payload type */
	cr_assert_eq(envelope_open(env, len, RELAY_RSVP_DOMAIN, (const uint8_t *)"\x03\x01", 2,
				   &signer, payload, sizeof(payload), &plen),
		     -NATX_E_PROTO);
	/* every single-byte flip is rejected */
	for (size_t i = 0; i < len; i++) {
		env[i] ^= 0x01;
		cr_assert_neq(relay_voucher_open(env, len, &got), 0, "flip at %zu accepted", i);
		env[i] ^= 0x01;
	}
	/* signed by A but naming R as relay: rejected */
	cr_assert_eq(relay_voucher_seal(&a.idn, &v, env, sizeof(env), &len), 0);
	cr_assert_eq(relay_voucher_open(env, len, &got), -NATX_E_AUTH);
	p2p_identity_cleanup(&r.idn);
	p2p_identity_cleanup(&a.idn);
}

/* ---- what the engine relies on: moving a connection, parked hop streams, reports ---- */

/* struct park - a hop stream held back (as a shard does while it hands the connection on) */
struct park {
	struct p2p_stream *s;
	uint8_t data[4096];
	size_t len;
	int outputs; /* on_output calls of the new host */
};

static struct park P;

static void park_data(void *ctx, struct p2p_stream *s, const uint8_t *p, size_t n)
{
	cr_assert_leq(P.len + n, sizeof(P.data));
	memcpy(P.data + P.len, p, n);
	P.len += n;
}

static void park_close(void *ctx, struct p2p_stream *s)
{
	P.s = NULL;
}

static const struct p2p_conn_ops park_ops = {
	.on_stream_data = park_data,
	.on_stream_close = park_close,
};

static bool park_open(struct t_node *n, struct t_end *e, struct p2p_stream *s, const char *proto)
{
	if (n == &W->r && !strcmp(proto, RELAY_HOP_PROTOCOL)) {
		P.s = s;
		p2p_stream_set_ops(s, &park_ops, &P);
		return true;
	}
	return world_open(n, e, s, proto);
}

static void count_output(struct p2p_conn *c)
{
	P.outputs++;
}

Test(relay, parked_hop_stream_is_served_after_the_connection_moved, .timeout = 60)
{
	static const char *const moved_protos[] = { RELAY_HOP_PROTOCOL, T_ECHO };
	struct relay_config cfg = unlimited();
	struct world w;
	struct t_end *rend, moved;
	struct p2p_host host2;
	struct p2p_stream *s;
	int err;

	memset(&P, 0, sizeof(P));
	world_up(&w, &cfg);
	w.r.on_open = park_open;
	/* A's RESERVE reaches R and is parked: no answer yet */
	cr_assert_eq(relay_client_reserve(w.ca, w.ar->c), 0);
	cr_assert_eq(t_pump(NULL, NULL), 0);
	cr_assert(P.s);
	cr_assert_gt(P.len, 0);
	cr_assert_eq(w.reserved, 0);
	cr_assert_eq(relay_stats(w.relay)->rsvp_total, 0);
	/* move R's end to another host copy (another shard) and callback context */
	rend = w.ar->peer;
	moved = *rend;
	host2 = w.r.host;
	host2.protocols = moved_protos; /* the new host also serves echo: the list is rebuilt */
	host2.n_protocols = 2;
	host2.on_output = count_output;
	p2p_conn_rebind(rend->c, &host2, &t_ops, &moved);
	/* the relay takes the parked stream with its bytes: A gets its reservation */
	relay_hop_accept_early(w.relay, P.s, (struct sockaddr *)&w.src_ip, false, P.data, P.len);
	cr_assert_eq(t_pump(NULL, NULL), 0);
	cr_assert_eq(w.reserved, 1);
	cr_assert_eq(w.reserve_err, 0);
	cr_assert_eq(w.reserve_status, RELAY_OK);
	cr_assert_eq(relay_stats(w.relay)->rsvp_active, 1);
	cr_assert_gt(P.outputs, 0, "the new host's on_output saw the STATUS frame");
	/* streams opened after the move reach the new callback context */
	s = p2p_stream_open(w.ar->c, T_ECHO, &err);
	cr_assert(s);
	cr_assert_eq(p2p_stream_write(s, (const uint8_t *)"hi", 2), 2);
	cr_assert_eq(t_pump(NULL, NULL), 0);
	cr_assert_eq(rend->app, NULL);
	cr_assert_eq(moved.rx_bytes, 2);
	cr_assert_eq(rend->rx_bytes, 0);
	/* and B reaches A through the moved connection's reservation */
	w.r.on_open = world_open; /* hop streams go straight to the relay again */
	world_circuit(&w);
	cr_assert_eq(relay_stats(w.relay)->circuits_active, 1);
	world_down(&w);
}

static struct relay_circuit_info ended;
static int n_ended;

static void on_circuit_end(void *ctx, const struct relay_circuit_info *ci)
{
	ended = *ci;
	n_ended++;
}

Test(relay, finished_circuit_reports_its_peers_and_bytes, .timeout = 60)
{
	static const struct relay_ops ops = { .unix_now = t_unix,
					      .on_circuit_end = on_circuit_end };
	struct relay_config cfg = unlimited();
	struct world w;
	struct p2p_identity a, b;
	uint64_t relayed;
	int err;

	n_ended = 0;
	world_up(&w, &cfg);
	relay_free(w.relay);
	w.relay = relay_new(&w.r.idn, &w.cfg, &t_clock, &ops, &w, &err);
	cr_assert(w.relay);
	world_reserve(&w);
	world_circuit(&w); /* the inner Noise handshake and identify crossed the circuit */
	relayed = relay_stats(w.relay)->bytes_relayed;
	cr_assert_gt(relayed, 0);
	cr_assert_eq(n_ended, 0);
	a = w.a.idn;
	b = w.b.idn;
	t_net_free(); /* the circuit ends with its connections */
	cr_assert_eq(n_ended, 1);
	cr_assert(peerid_equal(&ended.src, &b.id));
	cr_assert(peerid_equal(&ended.dst, &a.id));
	cr_assert_eq(ended.bytes[0] + ended.bytes[1], relayed);
	cr_assert_gt(ended.bytes[0], 0);
	cr_assert_gt(ended.bytes[1], 0);
	world_down(&w);
}

Test(relay, reserve_on_a_peer_without_hop_reports_refusal, .timeout = 30)
{
	struct relay_config cfg = unlimited();
	struct world w;
	struct t_end *ba;

	world_up(&w, &cfg);
	ba = t_connect(&w.b, &w.a); /* A serves stop and echo, not hop */
	cr_assert_eq(t_pump(NULL, NULL), 0);
	cr_assert_eq(relay_client_reserve(w.cb, ba->c), 0);
	cr_assert_eq(t_pump(NULL, NULL), 0);
	cr_assert_eq(w.reserved, 1);
	cr_assert_eq(w.reserve_err, -NATX_E_UNAVAILABLE, "%s", natx_strerror(w.reserve_err));
	cr_assert_eq(p2p_conn_error(ba->c), 0, "only the stream was refused");
	world_down(&w);
}
