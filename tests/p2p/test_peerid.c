// SPDX-License-Identifier: MIT
/*
 * Peer ID tests. Vectors: js-libp2p packages/crypto/test/fixtures/go-key-ed25519.ts (public key
 * -> 12D3KooWLqLx...) and libp2p/specs peer-ids/peer-ids.md test-vector key 080112201ed1...
 * (-> 12D3KooWBtg3..., CIDv1 bafzaajai...), both as listed in shared/reference/libp2p.md §2;
 * the CIDv1 text is cross-checked at runtime by tests/interop against js-libp2p's parser.
 * RFC 8032 TEST 1 key for the private-key protobuf round trip.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "natx/err.h"
#include "multibase.h"
#include "peerid.h"
#include "p2p/t_p2p.h"

static void check_vector(const char *pk_hex, const char *text, const char *cid)
{
	uint8_t pk[64], pub[32];
	char out[PEERID_TEXT_MAX];
	struct peer_id id, back;
	const uint8_t *embedded;
	int n = t_unhex(pk, sizeof(pk), pk_hex);

	cr_assert_eq(n, 36);
	cr_assert_eq(peerid_from_pubkey(&id, pk, (size_t)n), 0);
	cr_assert_eq(id.len, 38);
	cr_assert_eq(id.b[0], 0x00);
	cr_assert_eq(id.b[1], 0x24);
	cr_assert_eq(peerid_to_text(&id, out, sizeof(out)), (int)strlen(text));
	cr_assert_str_eq(out, text);
	cr_assert_eq(peerid_from_text(&back, text, strlen(text)), 0);
	cr_assert(peerid_equal(&id, &back));
	cr_assert_eq(peerid_pubkey(&id, &embedded), 36);
	cr_assert_arr_eq(embedded, pk, 36);
	cr_assert_eq(p2p_pubkey_decode_ed25519(pk, 36, pub), 0);
	cr_assert_arr_eq(pub, pk + 4, 32);
	if (cid) {
		cr_assert_eq(peerid_to_cid_text(&id, out, sizeof(out)), (int)strlen(cid));
		cr_assert_str_eq(out, cid);
		cr_assert_eq(peerid_from_text(&back, cid, strlen(cid)), 0);
		cr_assert(peerid_equal(&id, &back));
	}
}

Test(peerid, js_fixture_vector)
{
	check_vector("08011220a3b0c32ffed03105c066203f3acaab9992a419d4195b921a75a59406cf5ad97e",
		     "12D3KooWLqLxEfJ9nDdEe8Kh8PFvNPQRYDQBwyL7CMM7HhVd5LsX", NULL);
}

Test(peerid, spec_vector_with_cid)
{
	check_vector("080112201ed1e8fae2c4a144b8be8fd4b47bf3d3b34b871c3cacf6010f0e42d474fce27e",
		     "12D3KooWBtg3aaRMjxwedh83aGiUkwSxDwUZkzuJcfaqUmo7R3pq",
		     "bafzaajaiaejcahwr5d5ofrfbis4l5d6uwr57hu5tjodrypfm6yaq6dsc2r2pzyt6");
}

Test(peerid, sha256_form_round_trip)
{
	const char *qm = "QmNnooDu7bfjPFoTZYxMNLWUQJyrVwtbZg5gBMjTezGAJN";
	char out[PEERID_TEXT_MAX];
	struct peer_id id;
	uint8_t big[300];

	cr_assert_eq(peerid_from_text(&id, qm, strlen(qm)), 0);
	cr_assert_eq(id.len, 34);
	cr_assert_eq(id.b[0], 0x12);
	cr_assert_eq(peerid_to_text(&id, out, sizeof(out)), (int)strlen(qm));
	cr_assert_str_eq(out, qm);
	/* A public key longer than 42 bytes is hashed, not inlined. */
	memset(big, 7, sizeof(big));
	cr_assert_eq(peerid_from_pubkey(&id, big, sizeof(big)), 0);
	cr_assert_eq(id.len, 34);
	cr_assert_eq(id.b[0], 0x12);
}

Test(peerid, rejects_bad_text)
{
	static const char *bad[] = {
		"",
		"12D3KooW0000", /* '0' not base58 */
		"12D3KooWLqLxEfJ9nDdEe8Kh8PFvNPQRYDQBwyL7CMM7HhVd5Ls", /* truncated */
		"QmNnooDu7bfjPFoTZYxMNLWUQJyrVwtbZg5gBMjTezGAJNN", /* trailing byte */
		"bafybeigdyrzt5sfp7udm7hu76uh7y26nf3efuylqabf3oclgtqy55fbzdi", /* dag-pb CID */
		"xyz",
		"bafzaaja!",
	};
	struct peer_id id;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		cr_assert_lt(peerid_from_text(&id, bad[i], strlen(bad[i])), 0, "%s", bad[i]);
	}
}

Test(peerid, identity_sign_and_privkey_round_trip)
{
	uint8_t seed[32], pb[P2P_PRIVKEY_ED25519_LEN], sig[64];
	struct p2p_identity a, b;
	char text[PEERID_TEXT_MAX];

	t_unhex(seed, 32, "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60");
	cr_assert_eq(p2p_identity_from_seed(&a, seed), 0);
	cr_assert_eq(peerid_to_text(&a.id, text, sizeof(text)) > 8, 1);
	cr_assert_eq(strncmp(text, "12D3KooW", 8), 0);
	p2p_identity_to_privkey(&a, pb);
	cr_assert_eq(pb[0], 0x08);
	cr_assert_eq(pb[1], 0x01);
	cr_assert_eq(pb[2], 0x12);
	cr_assert_eq(pb[3], 0x40);
	cr_assert_eq(p2p_identity_from_privkey(&b, pb, sizeof(pb)), 0);
	cr_assert(peerid_equal(&a.id, &b.id));
	cr_assert_eq(p2p_identity_sign(&a, sig, "hi", 2), 0);
	cr_assert_eq(p2p_pubkey_verify(b.pubkey_pb, 36, sig, 64, "hi", 2), 0);
	cr_assert_eq(p2p_pubkey_verify(b.pubkey_pb, 36, sig, 64, "ho", 2), -NATX_E_AUTH);
	cr_assert_eq(p2p_pubkey_verify(b.pubkey_pb, 36, sig, 63, "hi", 2), -NATX_E_AUTH);
	pb[40] ^= 1; /* public half no longer matches the seed */
	cr_assert_eq(p2p_identity_from_privkey(&b, pb, sizeof(pb)), -NATX_E_AUTH);
	pb[1] = 2;
	cr_assert_eq(p2p_identity_from_privkey(&b, pb, sizeof(pb)), -EPROTONOSUPPORT);
	cr_assert_eq(p2p_identity_from_privkey(&b, pb, 10), -NATX_E_PROTO);
	p2p_identity_cleanup(&a);
	cr_assert_eq(a.seed[0] | a.priv[5], 0);
}

Test(peerid, base58_and_base32_edges)
{
	uint8_t bin[8] = { 0, 0, 1, 2 }, back[8];
	char txt[32];

	cr_assert_eq(base58_encode(bin, 4, txt, sizeof(txt)), 4);
	cr_assert_str_eq(txt, "115T");
	cr_assert_eq(base58_decode(txt, 4, back, sizeof(back)), 4);
	cr_assert_arr_eq(back, bin, 4);
	cr_assert_eq(base58_encode(bin, 4, txt, 4), -NATX_E_TOO_BIG);
	cr_assert_eq(base32_encode((const uint8_t *)"foobar", 6, txt, sizeof(txt)), 10);
	cr_assert_str_eq(txt, "mzxw6ytboi"); /* RFC 4648 §10, lower case, no padding */
	cr_assert_eq(base32_decode("MZXW6YTBOI", 10, back, sizeof(back)), 6);
	cr_assert_arr_eq(back, "foobar", 6);
	cr_assert_eq(base32_decode("mzxw6ytboj", 10, back, sizeof(back)), -NATX_E_PROTO);
	cr_assert_eq(base32_decode("mzxw6ytboi", 10, back, 3), -NATX_E_TOO_BIG);
}
