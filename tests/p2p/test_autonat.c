// SPDX-License-Identifier: MIT
/* AutoNAT v1 in process: one client, several servers, dial-back through a host callback. */
#include <arpa/inet.h>

#include "natx/err.h"
#include "autonat.h"
#include "p2p/t_net.h"

static const char *const protos[] = { AUTONAT_PROTOCOL, NULL };

#define NSRV 5

struct srv {
	struct t_node node;
	struct autonat_server *s;
	struct autonat_req *req; /* last dial-back asked for */
	struct relay_addrs addrs;
	struct peer_id peer;
	int dials;
	bool relayed;
};

static struct srv S[NSRV];
static struct t_node C;
static struct autonat_client *cl;
static struct sockaddr_in observed;
static uint8_t caddr[3][64];
static const uint8_t *cpa[3];
static size_t cla[3];
static int statuses;
static uint8_t last_addr[64];
static size_t last_addr_len;

static void dial_back(void *ctx, struct autonat_req *req, const struct peer_id *peer,
		      const struct relay_addrs *addrs)
{
	struct srv *v = ctx;

	v->dials++;
	v->req = req;
	v->addrs = *addrs;
	v->peer = *peer;
}

static const struct autonat_server_ops sops = { .dial_back = dial_back };

static void on_status(void *ctx, enum autonat_reachability r, int confidence, const uint8_t *addr,
		      size_t addr_len)
{
	statuses++;
	last_addr_len = addr_len;
	if (addr_len) {
		memcpy(last_addr, addr, addr_len);
	}
}

static uint32_t last_status;
static char last_text[128];
static int responses;

static void on_response(void *ctx, struct p2p_conn *c, uint32_t status, const char *text)
{
	responses++;
	last_status = status;
	snprintf(last_text, sizeof(last_text), "%s", text);
}

static const struct autonat_client_ops cops = { .on_status = on_status,
						.on_response = on_response };

static bool open_hook(struct t_node *n, struct t_end *e, struct p2p_stream *s, const char *proto)
{
	struct srv *v = n->user;

	if (v && !strcmp(proto, AUTONAT_PROTOCOL)) {
		autonat_server_accept(v->s, s, (struct sockaddr *)&observed, v->relayed);
		return true;
	}
	return false;
}

static struct t_end *ends[NSRV];

static void setup(void)
{
	int err;

	statuses = 0;
	observed.sin_family = AF_INET;
	observed.sin_port = htons(5555);
	inet_pton(AF_INET, "203.0.113.5", &observed.sin_addr);
	cr_assert_eq(maddr_from_text("/ip4/203.0.113.5/tcp/4001", caddr[0], 64, &cla[0]), 0);
	cr_assert_eq(maddr_from_text("/ip4/10.0.0.2/tcp/4001", caddr[1], 64, &cla[1]), 0);
	cr_assert_eq(maddr_from_text("/ip4/198.51.100.99/tcp/4001", caddr[2], 64, &cla[2]), 0);
	for (int i = 0; i < 3; i++) {
		cpa[i] = caddr[i];
	}
	t_node_init(&C, 77, NULL);
	cl = autonat_client_new(&C.idn, &t_clock, &cops, NULL, cpa, cla, 3, &err);
	cr_assert(cl);
	for (int i = 0; i < NSRV; i++) {
		memset(&S[i], 0, sizeof(S[i]));
		t_node_init(&S[i].node, 200 + i, protos);
		S[i].node.user = &S[i];
		S[i].node.on_open = open_hook;
		S[i].s = autonat_server_new(&t_clock, &sops, &S[i], &err);
		cr_assert(S[i].s);
		ends[i] = t_connect(&C, &S[i].node);
	}
	cr_assert_eq(t_pump(NULL, NULL), 0);
}

static void teardown(void)
{
	autonat_client_free(cl);
	for (int i = 0; i < NSRV; i++) {
		autonat_server_free(S[i].s);
	}
	t_net_free();
	p2p_identity_cleanup(&C.idn);
	for (int i = 0; i < NSRV; i++) {
		p2p_identity_cleanup(&S[i].node.idn);
	}
}

/* probe - client asks server @i; the server's host answers with @err (1: do not answer). */
static void probe(int i, int err)
{
	int before = S[i].dials;

	cr_assert_eq(autonat_client_probe(cl, ends[i]->c), 0);
	cr_assert_eq(t_pump(NULL, NULL), 0);
	if (S[i].dials == before) {
		return; /* refused without dialling */
	}
	if (err != 1) {
		autonat_server_dial_done(S[i].s, S[i].req, err, S[i].addrs.b[0],
					 S[i].addrs.lens[0]);
		cr_assert_eq(t_pump(NULL, NULL), 0);
	}
}

Test(autonat, dial_message_carries_explicit_type_zero)
{
	struct autonat_msg m = { .type = AUTONAT_DIAL }, d;
	uint8_t out[256];
	size_t len;

	cr_assert_eq(autonat_encode(&m, out, sizeof(out), &len), 0);
	cr_assert_eq(memcmp(out, "\x02\x08\x00", 3), 0);
	cr_assert_eq(autonat_decode(&d, (const uint8_t *)"\x12\x00", 2), -NATX_E_PROTO);
	cr_assert_eq(autonat_decode(&d, (const uint8_t *)"\x08\x00\x12\x04\x0a\x02\x12\x00", 8),
		     -NATX_E_PROTO); /* peer id "12 00" is not a valid multihash */
}

Test(autonat, servers_dial_only_the_observed_ip_and_client_becomes_public, .timeout = 30)
{
	int conf;

	setup();
	cr_assert_eq(autonat_client_status(cl, &conf), AUTONAT_UNKNOWN);
	probe(0, 0);
	cr_assert_eq(S[0].dials, 1);
	cr_assert(peerid_equal(&S[0].peer, &C.idn.id));
	cr_assert_eq(S[0].addrs.n, 1); /* only 203.0.113.5 */
	cr_assert_eq(memcmp(S[0].addrs.b[0], caddr[0], cla[0]), 0);
	cr_assert_eq(autonat_client_status(cl, &conf), AUTONAT_PUBLIC);
	cr_assert_eq(conf, 0);
	cr_assert_eq(last_addr_len, cla[0]);
	for (int i = 1; i < 4; i++) {
		probe(i, 0);
	}
	cr_assert_eq(autonat_client_status(cl, &conf), AUTONAT_PUBLIC);
	cr_assert_eq(conf, AUTONAT_MAX_CONFIDENCE);
	/* one failing server lowers the confidence but does not flip the verdict */
	probe(4, -ECONNREFUSED);
	cr_assert_eq(autonat_client_status(cl, &conf), AUTONAT_PUBLIC);
	cr_assert_eq(conf, AUTONAT_MAX_CONFIDENCE - 1);
	cr_assert_eq(autonat_server_stats(S[4].s)->dial_errors, 1);
	teardown();
}

Test(autonat, failed_dial_backs_make_the_client_private, .timeout = 30)
{
	int conf;

	setup();
	probe(0, -ETIMEDOUT);
	cr_assert_eq(autonat_client_status(cl, &conf), AUTONAT_PRIVATE);
	probe(1, -ETIMEDOUT);
	cr_assert_eq(autonat_client_status(cl, &conf), AUTONAT_PRIVATE);
	cr_assert_eq(conf, 1);
	/* a contrary answer at confidence 1 lowers it, a second one flips it */
	probe(2, 0);
	cr_assert_eq(autonat_client_status(cl, &conf), AUTONAT_PRIVATE);
	cr_assert_eq(conf, 0);
	probe(3, 0);
	cr_assert_eq(autonat_client_status(cl, &conf), AUTONAT_PUBLIC);
	teardown();
}

Test(autonat, refusals_rate_limits_and_timeouts, .timeout = 30)
{
	int conf;

	setup();
	/* relayed connection: refused, no dial, no verdict */
	S[0].relayed = true;
	probe(0, 0);
	cr_assert_eq(S[0].dials, 0);
	cr_assert_eq(autonat_server_stats(S[0].s)->refused, 1);
	cr_assert_eq(last_status, AUTONAT_E_DIAL_REFUSED); /* reported, though it changes nothing */
	cr_assert_str_eq(last_text, "relayed connection");
	cr_assert_eq(autonat_client_status(cl, &conf), AUTONAT_UNKNOWN);
	/* observed IP not among the claimed addresses */
	inet_pton(AF_INET, "192.0.2.200", &observed.sin_addr);
	probe(1, 0);
	cr_assert_eq(S[1].dials, 0);
	cr_assert_eq(autonat_server_stats(S[1].s)->refused, 1);
	inet_pton(AF_INET, "203.0.113.5", &observed.sin_addr);
	/* per-peer budget: 3 per minute */
	for (int k = 0; k < 4; k++) {
		probe(2, 0);
	}
	cr_assert_eq(S[2].dials, 3);
	cr_assert_eq(autonat_server_stats(S[2].s)->refused, 1);
	t_now_ms += 60000;
	probe(2, 0);
	cr_assert_eq(S[2].dials, 4);
	/* a dial-back the host never reports times out as a dial error */
	probe(3, 1);
	cr_assert_eq(S[3].dials, 1);
	t_now_ms += AUTONAT_TIMEOUT_MS;
	autonat_server_tick(S[3].s);
	cr_assert_eq(t_pump(NULL, NULL), 0);
	cr_assert_eq(autonat_server_stats(S[3].s)->dial_errors, 1);
	/* a late report is ignored */
	autonat_server_dial_done(S[3].s, S[3].req, 0, NULL, 0);
	cr_assert_eq(autonat_server_stats(S[3].s)->ok, 0);
	teardown();
}

Test(autonat, request_for_another_peer_is_a_bad_request, .timeout = 30)
{
	struct autonat_msg m = { .type = AUTONAT_DIAL, .has_peer = true };
	uint8_t out[512];
	size_t len;
	struct p2p_stream *s;
	int err;

	setup();
	m.peer = S[1].node.idn.id; /* not the requester */
	m.addrs.n = 1;
	memcpy(m.addrs.b[0], caddr[0], cla[0]);
	m.addrs.lens[0] = cla[0];
	cr_assert_eq(autonat_encode(&m, out, sizeof(out), &len), 0);
	s = p2p_stream_open(ends[0]->c, AUTONAT_PROTOCOL, &err);
	cr_assert(s);
	cr_assert_eq(p2p_stream_write(s, out, len), (long)len);
	cr_assert_eq(t_pump(NULL, NULL), 0);
	cr_assert_eq(S[0].dials, 0);
	cr_assert_eq(autonat_server_stats(S[0].s)->bad_requests, 1);
	/* garbage */
	s = p2p_stream_open(ends[0]->c, AUTONAT_PROTOCOL, &err);
	cr_assert(s);
	cr_assert_eq(p2p_stream_write(s, (const uint8_t *)"\x02\xff\xff", 3), 3);
	cr_assert_eq(t_pump(NULL, NULL), 0);
	cr_assert_eq(autonat_server_stats(S[0].s)->bad_requests, 2);
	cr_assert_eq(p2p_conn_error(ends[0]->c), 0);
	teardown();
}

Test(autonat, private_observed_address_is_refused_unless_allowed, .timeout = 30)
{
	setup();
	/* the requester is seen at a private IP (and claims it): refused, no dial */
	observed.sin_addr.s_addr = htonl(0x0a000002); /* 10.0.0.2, caddr[1] */
	probe(0, 0);
	cr_assert_eq(S[0].dials, 0);
	cr_assert_eq(autonat_server_stats(S[0].s)->refused, 1);
	cr_assert_eq(last_status, AUTONAT_E_DIAL_REFUSED);
	cr_assert_str_eq(last_text, "no dialable address");
	/* a lab server that allows private addresses dials exactly that one */
	autonat_server_allow_private(S[1].s, true);
	probe(1, 0);
	cr_assert_eq(S[1].dials, 1);
	cr_assert_eq(S[1].addrs.n, 1);
	cr_assert_eq(S[1].addrs.lens[0], cla[1]);
	cr_assert_eq(memcmp(S[1].addrs.b[0], caddr[1], cla[1]), 0);
	teardown();
}

Test(autonat, client_set_addrs_replaces_the_claimed_addresses, .timeout = 30)
{
	setup();
	autonat_client_set_addrs(cl, cpa + 2, cla + 2, 1); /* only 198.51.100.99 */
	inet_pton(AF_INET, "198.51.100.99", &observed.sin_addr);
	probe(0, 0);
	cr_assert_eq(S[0].dials, 1);
	cr_assert_eq(S[0].addrs.n, 1);
	cr_assert_eq(memcmp(S[0].addrs.b[0], caddr[2], cla[2]), 0);
	autonat_client_set_addrs(cl, NULL, NULL, 0);
	probe(1, 0);
	cr_assert_eq(S[1].dials, 0); /* nothing claimed: refused */
	teardown();
}
