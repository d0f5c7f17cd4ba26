// SPDX-License-Identifier: MIT
/*
 * L402 minting, headers and verification (control/pay/l402.c). Identifier layout and caveat
 * names follow aperture (lightninglabs/aperture l402/identifier.go, l402/caveat.go) as
 * digested in shared/reference/tunnels.md section 4.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "l402.h"
#include "natx/err.h"
#include "pay_codec.h"
#include "pay_crypto.h"
#include "pay_err.h"
#include "pay_t.h"

#define NOW 1800000000

struct t_store {
	uint8_t token_id[32];
	uint8_t key[32];
	bool revoked;
	int calls;
};

static int t_store_get(void *arg, const struct l402_id *id, uint8_t key[32])
{
	struct t_store *s = arg;

	s->calls++;
	if (s->revoked || memcmp(id->token_id, s->token_id, 32)) {
		return -NATX_E_NOT_FOUND;
	}
	memcpy(key, s->key, 32);
	return 0;
}

struct t_token {
	struct t_store store;
	struct l402_id id;
	uint8_t preimage[32];
	uint8_t mac[1024];
	size_t mac_len;
	struct macaroon m;
};

/* t_token_mint - a fresh token for service "tunnel" with the given terms. */
static void t_token_mint(struct t_token *t, const struct l402_terms *terms)
{
	memset(t, 0, sizeof(*t));
	cr_assert_eq(pay_random(t->preimage, 32), 0);
	cr_assert_eq(pay_random(t->store.key, 32), 0);
	cr_assert_eq(pay_random(t->id.token_id, 32), 0);
	memcpy(t->store.token_id, t->id.token_id, 32);
	pay_sha256(t->id.payment_hash, t->preimage, 32);
	cr_assert_eq(l402_mint(t->mac, sizeof(t->mac), &t->mac_len, t->store.key, &t->id, terms),
		     0);
	cr_assert_eq(macaroon_decode(&t->m, t->mac, t->mac_len), 0);
}

static const struct l402_terms full_terms = {
	.service = "tunnel",
	.tier = 0,
	.capabilities = "tcp,udp",
	.valid_until = NOW + 3600,
	.max_bytes = 1000000,
	.bandwidth_kbps = 8000,
};

static struct l402_request t_req(void)
{
	return (struct l402_request){ .service = "tunnel", .capability = "tcp", .now = NOW };
}

Test(l402, identifier_layout_is_u16be_version_hash_token_id)
{
	struct l402_id id = { 0 }, back;
	uint8_t raw[L402_ID_LEN];

	memset(id.payment_hash, 0xaa, 32);
	memset(id.token_id, 0xbb, 32);
	l402_id_encode(raw, &id);
	cr_assert_eq(raw[0], 0);
	cr_assert_eq(raw[1], 0);
	cr_assert_eq(raw[2], 0xaa);
	cr_assert_eq(raw[33], 0xaa);
	cr_assert_eq(raw[34], 0xbb);
	cr_assert_eq(raw[65], 0xbb);
	cr_assert_eq(l402_id_decode(&back, raw, sizeof(raw)), 0);
	cr_assert_arr_eq(&back, &id, sizeof(id));
	raw[1] = 1;
	cr_assert_eq(l402_id_decode(&back, raw, sizeof(raw)), -PAY_E_L402_ID);
	raw[1] = 0;
	cr_assert_eq(l402_id_decode(&back, raw, sizeof(raw) - 1), -PAY_E_L402_ID);
}

Test(l402, minted_token_has_aperture_shape)
{
	struct t_token t;
	const char *want[] = { "services=tunnel:0", "tunnel_capabilities=tcp,udp",
			       "tunnel_valid_until=1800003600", "tunnel_max_bytes=1000000",
			       "tunnel_bandwidth_kbps=8000" };

	t_token_mint(&t, &full_terms);
	cr_assert_eq(t.m.loc_len, 4);
	cr_assert_arr_eq(t.m.loc, "lsat", 4);
	cr_assert_eq(t.m.id_len, L402_ID_LEN);
	cr_assert_eq(t.m.n_cav, 5);
	for (int i = 0; i < 5; i++) {
		cr_assert_eq(t.m.cav[i].id_len, strlen(want[i]));
		cr_assert_arr_eq(t.m.cav[i].id, want[i], strlen(want[i]));
	}
}

Test(l402, valid_token_verifies_and_reports_its_grant)
{
	struct t_token t;
	struct l402_request req = t_req();
	struct l402_grant g;

	t_token_mint(&t, &full_terms);
	req.bytes_used = 999999;
	req.want_kbps = 8000;
	cr_assert_eq(l402_verify(&t.m, t.preimage, t_store_get, &t.store, &req, &g), 0);
	cr_assert_eq(g.valid_until, NOW + 3600);
	cr_assert_eq(g.max_bytes, 1000000);
	cr_assert_eq(g.bandwidth_kbps, 8000);
	cr_assert_eq(g.tier, 0);
	cr_assert_arr_eq(g.id.token_id, t.id.token_id, 32);
	req.capability = "udp";
	cr_assert_eq(l402_verify(&t.m, t.preimage, t_store_get, &t.store, &req, &g), 0);
}

Test(l402, wrong_preimage_is_refused_before_key_lookup)
{
	struct t_token t;
	struct l402_request req = t_req();
	struct l402_grant g;

	t_token_mint(&t, &full_terms);
	t.preimage[0] ^= 1;
	cr_assert_eq(l402_verify(&t.m, t.preimage, t_store_get, &t.store, &req, &g),
		     -PAY_E_L402_PREIMAGE);
	cr_assert_eq(t.store.calls, 0);
}

Test(l402, wrong_root_key_fails_signature)
{
	struct t_token t;
	struct l402_request req = t_req();
	struct l402_grant g;

	t_token_mint(&t, &full_terms);
	t.store.key[31] ^= 0x80;
	cr_assert_eq(l402_verify(&t.m, t.preimage, t_store_get, &t.store, &req, &g),
		     -PAY_E_MAC_SIG);
}

Test(l402, revoked_or_unknown_token_is_refused)
{
	struct t_token t;
	struct l402_request req = t_req();
	struct l402_grant g;

	t_token_mint(&t, &full_terms);
	t.store.revoked = true;
	cr_assert_eq(l402_verify(&t.m, t.preimage, t_store_get, &t.store, &req, &g),
		     -PAY_E_L402_UNKNOWN);
}

Test(l402, tampered_caveat_fails_signature)
{
	struct t_token t;
	struct l402_request req = t_req();
	struct l402_grant g;
	uint8_t *p;

	t_token_mint(&t, &full_terms);
	/* raise the quota 1000000 -> 9000000 in the serialized bytes */
	p = memmem(t.mac, t.mac_len, "max_bytes=1", 11);
	cr_assert_not_null(p);
	p[10] = '9';
	cr_assert_eq(macaroon_decode(&t.m, t.mac, t.mac_len), 0);
	req.bytes_used = 2000000;
	cr_assert_eq(l402_verify(&t.m, t.preimage, t_store_get, &t.store, &req, &g),
		     -PAY_E_MAC_SIG);
}

Test(l402, expired_token_is_refused_at_and_after_valid_until)
{
	struct t_token t;
	struct l402_request req = t_req();
	struct l402_grant g;

	t_token_mint(&t, &full_terms);
	req.now = NOW + 3599;
	cr_assert_eq(l402_verify(&t.m, t.preimage, t_store_get, &t.store, &req, &g), 0);
	req.now = NOW + 3600;
	cr_assert_eq(l402_verify(&t.m, t.preimage, t_store_get, &t.store, &req, &g),
		     -PAY_E_CAV_EXPIRED);
	cr_assert_eq(pay_err_http(-PAY_E_CAV_EXPIRED), 402);
}

Test(l402, exhausted_quota_is_refused)
{
	struct t_token t;
	struct l402_request req = t_req();
	struct l402_grant g;

	t_token_mint(&t, &full_terms);
	req.bytes_used = 1000000;
	cr_assert_eq(l402_verify(&t.m, t.preimage, t_store_get, &t.store, &req, &g),
		     -PAY_E_CAV_QUOTA);
}

Test(l402, service_capability_and_bandwidth_are_enforced)
{
	struct t_token t;
	struct l402_request req = t_req();
	struct l402_grant g;

	t_token_mint(&t, &full_terms);
	req.service = "tunnel2";
	cr_assert_eq(l402_verify(&t.m, t.preimage, t_store_get, &t.store, &req, &g),
		     -PAY_E_CAV_SERVICE);
	req = t_req();
	req.capability = "sctp";
	cr_assert_eq(l402_verify(&t.m, t.preimage, t_store_get, &t.store, &req, &g),
		     -PAY_E_CAV_CAPABILITY);
	req = t_req();
	req.want_kbps = 8001;
	cr_assert_eq(l402_verify(&t.m, t.preimage, t_store_get, &t.store, &req, &g),
		     -PAY_E_CAV_BANDWIDTH);
}

Test(l402, holder_attenuation_narrows_but_never_widens)
{
	struct t_token t;
	struct l402_request req = t_req();
	struct l402_grant g;
	uint8_t buf[1024];
	size_t n;
	const char *shorter = "tunnel_valid_until=1800000060";
	const char *longer = "tunnel_valid_until=1900000000";
	const char *bigger = "tunnel_max_bytes=99999999999";
	const char *other = "unrelated_condition=whatever";

	t_token_mint(&t, &full_terms);
	/* A holder appends caveats without the root key; the chain still verifies. */
	cr_assert_eq(macaroon_add_first_party(&t.m, longer, strlen(longer)), 0);
	cr_assert_eq(macaroon_add_first_party(&t.m, bigger, strlen(bigger)), 0);
	cr_assert_eq(macaroon_add_first_party(&t.m, other, strlen(other)), 0);
	cr_assert_eq(l402_verify(&t.m, t.preimage, t_store_get, &t.store, &req, &g), 0);
	cr_assert_eq(g.valid_until, NOW + 3600, "a later expiry must not extend the token");
	cr_assert_eq(g.max_bytes, 1000000, "a larger quota must not widen the token");
	cr_assert_eq(macaroon_add_first_party(&t.m, shorter, strlen(shorter)), 0);
	cr_assert_eq(macaroon_encode(&t.m, buf, sizeof(buf), &n), 0);
	cr_assert_eq(macaroon_decode(&t.m, buf, n), 0);
	cr_assert_eq(l402_verify(&t.m, t.preimage, t_store_get, &t.store, &req, &g), 0);
	cr_assert_eq(g.valid_until, NOW + 60);
	req.now = NOW + 60;
	cr_assert_eq(l402_verify(&t.m, t.preimage, t_store_get, &t.store, &req, &g),
		     -PAY_E_CAV_EXPIRED);
}

Test(l402, services_caveat_added_later_must_also_name_the_service)
{
	struct t_token t;
	struct l402_request req = t_req();
	struct l402_grant g;
	const char *narrower = "services=other:0";

	t_token_mint(&t, &full_terms);
	cr_assert_eq(macaroon_add_first_party(&t.m, narrower, strlen(narrower)), 0);
	cr_assert_eq(l402_verify(&t.m, t.preimage, t_store_get, &t.store, &req, &g),
		     -PAY_E_CAV_SERVICE);
}

Test(l402, malformed_known_caveats_are_refused)
{
	const char *bad[] = { "services=tunnel",
			      "services=tunnel:x",
			      "services=:0",
			      "services=tunnel:0,",
			      "tunnel_valid_until=-5",
			      "tunnel_valid_until=12a",
			      "tunnel_max_bytes=",
			      "tunnel_max_bytes=99999999999999999999999",
			      "tunnel_bandwidth_kbps=0",
			      "tunnel_capabilities=tcp,,udp" };

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct t_token t;
		struct l402_request req = t_req();
		struct l402_grant g;

		t_token_mint(&t, &(struct l402_terms){ .service = "tunnel" });
		cr_assert_eq(macaroon_add_first_party(&t.m, bad[i], strlen(bad[i])), 0);
		cr_assert_eq(l402_verify(&t.m, t.preimage, t_store_get, &t.store, &req, &g),
			     -PAY_E_CAV_MALFORMED, "accepted %s", bad[i]);
	}
}

Test(l402, token_without_services_caveat_is_refused)
{
	struct t_store store = { 0 };
	struct l402_id id = { 0 };
	struct l402_request req = t_req();
	struct l402_grant g;
	uint8_t preimage[32] = { 7 }, raw[L402_ID_LEN];
	struct macaroon m;

	pay_sha256(id.payment_hash, preimage, 32);
	l402_id_encode(raw, &id);
	cr_assert_eq(macaroon_mint(&m, store.key, 32, "lsat", 4, raw, sizeof(raw)), 0);
	cr_assert_eq(l402_verify(&m, preimage, t_store_get, &store, &req, &g), -PAY_E_CAV_SERVICE);
}

Test(l402, mint_rejects_bad_service_names)
{
	struct t_token t;
	uint8_t out[512];
	size_t n;
	const char *bad[] = { "", "a,b", "a:b", "a=b", "with space", NULL };

	memset(&t, 0, sizeof(t));
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		cr_assert_eq(l402_mint(out, sizeof(out), &n, t.store.key, &t.id,
				       &(struct l402_terms){ .service = bad[i] }),
			     -EINVAL);
	}
	cr_assert_eq(l402_mint(out, 40, &n, t.store.key, &t.id,
			       &(struct l402_terms){ .service = "tunnel" }),
		     -NATX_E_TOO_BIG);
}

/* ---- headers ---- */

Test(l402, authorization_header_round_trip_and_variants)
{
	struct t_token t;
	struct l402_auth a;
	char hdr[2048], b64u[1024], hex[65];
	long n;

	t_token_mint(&t, &full_terms);
	n = l402_auth_format(hdr, sizeof(hdr), t.mac, t.mac_len, t.preimage);
	cr_assert_gt(n, 0);
	cr_assert_eq(strncmp(hdr, "L402 ", 5), 0);
	cr_assert_eq(l402_auth_parse(&a, hdr, (size_t)n), 0);
	cr_assert_eq(a.mac_len, t.mac_len);
	cr_assert_arr_eq(a.mac, t.mac, t.mac_len);
	cr_assert_arr_eq(a.preimage, t.preimage, 32);

	/* legacy LSAT scheme, odd case, URL-safe unpadded base64, uppercase hex, spaces */
	b64_encode(b64u, sizeof(b64u), t.mac, t.mac_len, B64_URL | B64_NO_PAD);
	hex_encode(hex, t.preimage, 32);
	for (char *c = hex; *c; c++) {
		*c = (char)(*c >= 'a' && *c <= 'f' ? *c - 32 : *c);
	}
	snprintf(hdr, sizeof(hdr), "  lSaT \t %s:%s  ", b64u, hex);
	cr_assert_eq(l402_auth_parse(&a, hdr, strlen(hdr)), 0);
	cr_assert_arr_eq(a.mac, t.mac, t.mac_len);
	cr_assert_arr_eq(a.preimage, t.preimage, 32);
}

Test(l402, authorization_header_edge_cases_are_refused)
{
	struct l402_auth a;
	const char *pre = "0000000000000000000000000000000000000000000000000000000000000000";
	char hdr[512];
	static const struct {
		const char *before, *after; /* the header is before + 64 zero digits + after */
	} bad[] = {
		{ "Bearer AgE=:", "" }, /* other scheme */
		{ "L402AgE=:", "" }, /* no space after scheme */
		{ "L402 :", "" }, /* empty macaroon */
		{ "L402 AgE=", "" }, /* no colon */
		{ "L402 AgE=,AgE=:", "" }, /* several macaroons (discharges) */
		{ "L402 AgE=:", ":00" }, /* second colon */
		{ "L402 Ag E=:", "" }, /* space inside the token */
		{ "L402 A!E=:", "" }, /* not base64 */
		{ "L402 AgE=:", "0" }, /* 65 hex digits */
		{ "L402 AgE=:x", "" }, /* non-hex */
	};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		snprintf(hdr, sizeof(hdr), "%s%s%s", bad[i].before, pre, bad[i].after);
		cr_assert_eq(l402_auth_parse(&a, hdr, strlen(hdr)), -PAY_E_L402_HEADER,
			     "accepted %s", hdr);
		cr_assert_eq(a.mac_len, 0);
	}
	cr_assert_eq(l402_auth_parse(&a, "L402", 4), -PAY_E_L402_HEADER);
	cr_assert_eq(l402_auth_parse(&a, "", 0), -PAY_E_L402_HEADER);
	snprintf(hdr, sizeof(hdr), "L402 AgE=:%.63s", pre);
	cr_assert_eq(l402_auth_parse(&a, hdr, strlen(hdr)), -PAY_E_L402_HEADER);
	/* the control case passes, so the refusals above are about what they claim */
	snprintf(hdr, sizeof(hdr), "L402 AgE=:%s", pre);
	cr_assert_eq(l402_auth_parse(&a, hdr, strlen(hdr)), 0);
	cr_assert_eq(a.mac_len, 2);
}

Test(l402, www_authenticate_challenge_format)
{
	const uint8_t mac[] = { 0x02, 0x01, 0xff };
	char out[256];
	long n = l402_challenge_format(out, sizeof(out), "L402", mac, sizeof(mac), "lnbcrt1abc");

	cr_assert_str_eq(out, "L402 macaroon=\"AgH/\", invoice=\"lnbcrt1abc\"");
	cr_assert_eq(n, (long)strlen(out));
	n = l402_challenge_format(out, sizeof(out), "LSAT", mac, sizeof(mac), "lnbcrt1abc");
	cr_assert_str_eq(out, "LSAT macaroon=\"AgH/\", invoice=\"lnbcrt1abc\"");
	cr_assert_eq(l402_challenge_format(out, sizeof(out), "L402", mac, 3, "ln\"x"), -EINVAL);
	cr_assert_eq(l402_challenge_format(out, 20, "L402", mac, 3, "lnbcrt1abc"), -NATX_E_TOO_BIG);
}

Test(l402, error_codes_are_distinct_and_named)
{
	for (int e = PAY_E_BASE + 1; e < PAY_E_MAX; e++) {
		cr_assert_str_neq(pay_strerror(-e), "unknown error");
		for (int f = e + 1; f < PAY_E_MAX; f++) {
			cr_assert_str_neq(pay_strerror(-e), pay_strerror(-f));
		}
	}
	cr_assert_eq(pay_err_http(-PAY_E_MAC_SIG), 401);
	cr_assert_eq(pay_err_http(-PAY_E_CAV_QUOTA), 402);
	cr_assert_eq(pay_err_http(-PAY_E_CAV_SERVICE), 403);
}
