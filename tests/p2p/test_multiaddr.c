// SPDX-License-Identifier: MIT
/*
 * Multiaddr tests. Byte vectors from shared/reference/libp2p.md §2 (derived from
 * multiformats/multiaddr protocols.csv): /ip4/127.0.0.1/tcp/4001/p2p/<spec id> and
 * /dns4/example.com/tcp/443.
 */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

#include "natx/err.h"
#include "multiaddr.h"
#include "p2p/t_p2p.h"

static void round_trip(const char *text, const char *hex)
{
	uint8_t b[MADDR_MAX_LEN], want[MADDR_MAX_LEN];
	char back[MADDR_TEXT_MAX];
	size_t len;

	cr_assert_eq(maddr_from_text(text, b, sizeof(b), &len), 0, "%s", text);
	if (hex) {
		int n = t_unhex(want, sizeof(want), hex);

		cr_assert_eq((int)len, n, "%s", text);
		cr_assert_arr_eq(b, want, len);
	}
	cr_assert_eq(maddr_to_text(b, len, back, sizeof(back)), (int)strlen(text));
	cr_assert_str_eq(back, text);
}

Test(multiaddr, spec_vectors)
{
	round_trip(
		"/ip4/127.0.0.1/tcp/4001/p2p/12D3KooWBtg3aaRMjxwedh83aGiUkwSxDwUZkzuJcfaqUmo7R3pq",
		"047f000001060fa1a503260024080112201ed1e8fae2c4a144b8be8fd4b47bf3d3b34b871c3cacf6010f0e42d474fce27e");
	round_trip("/dns4/example.com/tcp/443", "360b6578616d706c652e636f6d0601bb");
}

Test(multiaddr, round_trips)
{
	round_trip("/ip6/::1/tcp/0", "2900000000000000000000000000000001060000");
	round_trip("/ip4/1.2.3.4/udp/4001/quic-v1", "040102030491020fa1cd03");
	round_trip("/ip6/fe80::1/udp/1", NULL);
	round_trip("/dns6/a.b/tcp/1", NULL);
	round_trip("/dns/x/tcp/1", NULL);
	round_trip("/dnsaddr/bootstrap.libp2p.io", NULL);
	round_trip(
		"/ip4/198.51.100.1/tcp/4001/p2p/QmNnooDu7bfjPFoTZYxMNLWUQJyrVwtbZg5gBMjTezGAJN/p2p-circuit/p2p/12D3KooWBtg3aaRMjxwedh83aGiUkwSxDwUZkzuJcfaqUmo7R3pq",
		NULL);
	round_trip("/p2p-circuit", "a202");
}

Test(multiaddr, aliases_and_cid_peer_ids_normalise)
{
	uint8_t a[MADDR_MAX_LEN], b[MADDR_MAX_LEN];
	char text[MADDR_TEXT_MAX];
	size_t la, lb;

	cr_assert_eq(maddr_from_text("/ipfs/12D3KooWBtg3aaRMjxwedh83aGiUkwSxDwUZkzuJcfaqUmo7R3pq",
				     a, sizeof(a), &la),
		     0);
	cr_assert_eq(
		maddr_from_text(
			"/p2p/bafzaajaiaejcahwr5d5ofrfbis4l5d6uwr57hu5tjodrypfm6yaq6dsc2r2pzyt6", b,
			sizeof(b), &lb),
		0);
	cr_assert_eq(la, lb);
	cr_assert_arr_eq(a, b, la);
	cr_assert_gt(maddr_to_text(a, la, text, sizeof(text)), 0);
	cr_assert_str_eq(text, "/p2p/12D3KooWBtg3aaRMjxwedh83aGiUkwSxDwUZkzuJcfaqUmo7R3pq");
	cr_assert_eq(maddr_from_text("/ip4/1.2.3.4/tcp/80/", a, sizeof(a), &la), 0);
	cr_assert_eq(la, 8); /* 04 01020304 06 0050 */
}

Test(multiaddr, rejects_bad_text)
{
	static const struct {
		const char *s;
		int err;
	} bad[] = {
		{ "", -NATX_E_PROTO },
		{ "ip4/1.2.3.4", -NATX_E_PROTO },
		{ "/ip4/1.2.3", -NATX_E_PROTO },
		{ "/ip4/1.2.3.4/tcp/65536", -NATX_E_PROTO },
		{ "/ip4/1.2.3.4/tcp/-1", -NATX_E_PROTO },
		{ "/ip4/1.2.3.4/tcp", -NATX_E_PROTO },
		{ "/ip4//tcp/1", -NATX_E_PROTO },
		{ "/foo/1", -EPROTONOSUPPORT },
		{ "/p2p/notapeerid", -NATX_E_PROTO },
		{ "//", -NATX_E_PROTO },
		{ "/ip6/1.2.3.4", -NATX_E_PROTO },
	};
	uint8_t b[MADDR_MAX_LEN];
	size_t len;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		cr_assert_eq(maddr_from_text(bad[i].s, b, sizeof(b), &len), bad[i].err, "%s",
			     bad[i].s);
	}
	cr_assert_eq(maddr_from_text("/ip4/1.2.3.4/tcp/1", b, 5, &len), -NATX_E_TOO_BIG);
}

Test(multiaddr, rejects_bad_binary)
{
	static const char *bad[] = {
		"04010203", /* ip4 short */
		"0601", /* tcp short */
		"a50305000000", /* p2p value shorter than its length */
		"a503030000ff", /* p2p value not a valid multihash */
		"ff7f", /* unknown code */
		"360500", /* dns4 length beyond end */
		"36022f61", /* dns4 with '/' */
		"80", /* truncated varint */
		"8400", /* non-minimal varint */
	};
	char text[MADDR_TEXT_MAX];

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		uint8_t b[64];
		int n = t_unhex(b, sizeof(b), bad[i]);

		cr_assert_lt(maddr_validate(b, (size_t)n), 0, "%s", bad[i]);
		cr_assert_lt(maddr_to_text(b, (size_t)n, text, sizeof(text)), 0, "%s", bad[i]);
	}
	cr_assert_lt(maddr_validate(NULL, 0), 0);
}

Test(multiaddr, sockaddr_conversions)
{
	struct sockaddr_in in = { .sin_family = AF_INET, .sin_port = htons(4001) };
	struct sockaddr_storage ss;
	struct peer_id id;
	uint8_t b[MADDR_MAX_LEN];
	char text[MADDR_TEXT_MAX];
	size_t len;
	int has_id;

	inet_pton(AF_INET, "10.1.2.3", &in.sin_addr);
	cr_assert_eq(maddr_from_sockaddr((struct sockaddr *)&in, b, sizeof(b), &len), 0);
	cr_assert_gt(maddr_to_text(b, len, text, sizeof(text)), 0);
	cr_assert_str_eq(text, "/ip4/10.1.2.3/tcp/4001");
	cr_assert_eq(
		maddr_from_text(
			"/ip6/::1/tcp/99/p2p/12D3KooWBtg3aaRMjxwedh83aGiUkwSxDwUZkzuJcfaqUmo7R3pq",
			b, sizeof(b), &len),
		0);
	cr_assert_eq(maddr_to_sockaddr(b, len, &ss, &id, &has_id), 0);
	cr_assert_eq(has_id, 1);
	cr_assert_eq(id.len, 38);
	cr_assert_eq(ss.ss_family, AF_INET6);
	cr_assert_eq(ntohs(((struct sockaddr_in6 *)&ss)->sin6_port), 99);
	cr_assert_eq(maddr_from_text("/dns4/x/tcp/1", b, sizeof(b), &len), 0);
	cr_assert_eq(maddr_to_sockaddr(b, len, &ss, NULL, &has_id), -EAFNOSUPPORT);
}
