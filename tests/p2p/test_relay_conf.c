// SPDX-License-Identifier: MIT
/* p2p_relay_conf_parse: the relay's settings as natxd sends them (p2p.relay.setup). */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/p2p_relay_conf.h"
#include "p2p/relay.h"

static struct p2p_identity self;
static uint8_t laddr[MADDR_MAX_LEN];
static size_t laddr_len;
static char self_txt[PEERID_TEXT_MAX];

static void setup(void)
{
	uint8_t seed[32] = { 1, 2, 3 };

	p2p_identity_from_seed(&self, seed);
	peerid_to_text(&self.id, self_txt, sizeof(self_txt));
	cr_assert_eq(maddr_from_text("/ip4/127.0.0.1/tcp/4001", laddr, sizeof(laddr), &laddr_len),
		     0);
}

/* parse - @json into @out; returns p2p_relay_conf_parse's result. */
static int parse(const char *json, struct p2p_relay_conf *out, char *err)
{
	cJSON *j = cJSON_Parse(json);
	int ret;

	cr_assert(j, "bad test JSON %s", json);
	ret = p2p_relay_conf_parse(j, &self.id, laddr, laddr_len, out, err, 200);
	cJSON_Delete(j);
	return ret;
}

TestSuite(relay_conf, .init = setup);

Test(relay_conf, empty_object_gives_defaults_and_the_listen_address)
{
	struct p2p_relay_conf c;
	char err[200], txt[MADDR_TEXT_MAX], want[MADDR_TEXT_MAX];

	cr_assert_eq(parse("{}", &c, err), 0, "%s", err);
	cr_assert_eq(c.max_rsvp, 0); /* 0: the relay's default */
	cr_assert_eq(c.duration_s, RELAY_DEF_DURATION_S);
	cr_assert_eq(c.data, RELAY_DEF_DATA);
	cr_assert_eq(c.n_allow + c.n_deny, 0);
	cr_assert_eq(c.n_addrs, 1);
	cr_assert_gt(maddr_to_text(c.addrs[0], c.addr_lens[0], txt, sizeof(txt)), 0);
	snprintf(want, sizeof(want), "/ip4/127.0.0.1/tcp/4001/p2p/%s", self_txt);
	cr_assert_str_eq(txt, want);
}

Test(relay_conf, every_key_is_read)
{
	struct p2p_relay_conf c;
	char err[200], json[1024];
	struct peer_id other;
	uint8_t seed[32] = { 9 };
	struct p2p_identity o;
	char other_txt[PEERID_TEXT_MAX];

	p2p_identity_from_seed(&o, seed);
	other = o.id;
	peerid_to_text(&other, other_txt, sizeof(other_txt));
	snprintf(json, sizeof(json),
		 "{\"max_reservations\":5,\"max_reservations_per_peer\":2,"
		 "\"max_reservations_per_ip\":3,\"max_circuits\":7,\"max_circuits_per_peer\":4,"
		 "\"reservation_ttl_s\":60,\"circuit_duration_s\":0,\"circuit_data_bytes\":0,"
		 "\"allow\":[\"%s\"],\"deny\":[\"%s\",\"%s\"],"
		 "\"announce\":[\"/ip4/192.0.2.7/tcp/4001\",\"/ip6/::1/tcp/9/p2p/%s\"]}",
		 other_txt, other_txt, self_txt, self_txt);
	cr_assert_eq(parse(json, &c, err), 0, "%s", err);
	cr_assert_eq(c.max_rsvp, 5);
	cr_assert_eq(c.max_rsvp_per_peer, 2);
	cr_assert_eq(c.max_rsvp_per_ip, 3);
	cr_assert_eq(c.max_circuits, 7);
	cr_assert_eq(c.max_circuits_per_peer, 4);
	cr_assert_eq(c.rsvp_ttl_s, 60);
	cr_assert_eq(c.duration_s, 0, "0 = unlimited is kept");
	cr_assert_eq(c.data, 0);
	cr_assert_eq(c.n_allow, 1);
	cr_assert(peerid_equal(&c.allow[0], &other));
	cr_assert_eq(c.n_deny, 2);
	cr_assert(peerid_equal(&c.deny[1], &self.id));
	cr_assert_eq(c.n_addrs, 2, "announce replaces the listen address");
	p2p_identity_cleanup(&o);
}

Test(relay_conf, unspecified_listen_address_is_not_announced)
{
	struct p2p_relay_conf c;
	char err[200];

	cr_assert_eq(maddr_from_text("/ip4/0.0.0.0/tcp/4001", laddr, sizeof(laddr), &laddr_len), 0);
	cr_assert_eq(parse("{}", &c, err), 0, "%s", err);
	cr_assert_eq(c.n_addrs, 0);
}

Test(relay_conf, bad_values_are_refused_with_a_reason)
{
	static const char *const bad[] = {
		"[]",
		"{\"max_circuits\":-1}",
		"{\"max_circuits\":1.5}",
		"{\"max_circuits\":\"7\"}",
		"{\"max_reservations\":4294967296}",
		"{\"circuit_data_bytes\":1e300}",
		"{\"allow\":\"12D3KooW\"}",
		"{\"deny\":[\"not-a-peer-id\"]}",
		"{\"deny\":[7]}",
		"{\"announce\":[\"/ip4/1.2.3.4/udp/5\"]}",
		"{\"announce\":[\"garbage\"]}",
		"{\"announce\":\"/ip4/1.2.3.4/tcp/5\"}",
		"{\"announce\":[\"/ip4/1.2.3.4/tcp/5/p2p/12D3KooWLqLxEfJ9nDdEe8Kh8PFvNPQRYDQBwyL7CMM7HhVd5LsX\"]}",
		"{\"announce\":[\"/ip4/1.1.1.1/tcp/1\",\"/ip4/1.1.1.1/tcp/2\",\"/ip4/1.1.1.1/tcp/3\","
		"\"/ip4/1.1.1.1/tcp/4\",\"/ip4/1.1.1.1/tcp/5\"]}",
	};
	struct p2p_relay_conf c;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char err[200] = "";

		cr_assert_eq(parse(bad[i], &c, err), -EINVAL, "accepted %s", bad[i]);
		cr_assert_neq(err[0], '\0', "no reason for %s", bad[i]);
	}
}

Test(relay_conf, acl_list_is_bounded)
{
	struct p2p_relay_conf c;
	char err[200];
	size_t cap = 100 * (PEERID_TEXT_MAX + 3) + 32, n;
	char *json = malloc(cap);

	n = (size_t)snprintf(json, cap, "{\"deny\":[");
	for (int i = 0; i <= P2P_RELAY_ACL_MAX; i++) {
		n += (size_t)snprintf(json + n, cap - n, "%s\"%s\"", i ? "," : "", self_txt);
	}
	snprintf(json + n, cap - n, "]}");
	cr_assert_eq(parse(json, &c, err), -EINVAL);
	cr_assert(strstr(err, "at most"), "%s", err);
	free(json);
}
