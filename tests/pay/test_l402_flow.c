// SPDX-License-Identifier: MIT
/*
 * The L402 sale as natxd's POST /api/rathole/proxy/register runs it (control/pay/l402_flow.c,
 * docs/l402.md): offer (402), settle, authorize by header, authorize by macaroon for the
 * tunnel, and every refusal on the way. The WWW-Authenticate value must match the regex
 * aperture's client uses: (LSAT|L402) macaroon="(.*?)", invoice="(.*?)".
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <regex.h>
#include <stdio.h>
#include <string.h>

#include "bolt11.h"
#include "l402_flow.h"
#include "natx/err.h"
#include "pay_codec.h"
#include "crypto.h"
#include "pay_err.h"

/* natxd's SQLite token table, reduced to one row. */
struct t_db {
	uint8_t token_id[32], root_key[32];
	bool revoked;
};

static struct {
	int64_t now;
	struct pay_backend *b;
	struct t_db db;
	struct l402_offer offer;
} F;

static int64_t t_clock(void *arg)
{
	return *(int64_t *)arg;
}

static int t_db_key(void *arg, const struct l402_id *id, uint8_t key[32])
{
	struct t_db *db = arg;

	if (db->revoked || memcmp(db->token_id, id->token_id, 32)) {
		return -NATX_E_NOT_FOUND;
	}
	memcpy(key, db->root_key, 32);
	return 0;
}

static const struct l402_terms terms = {
	.service = "tunnel",
	.capabilities = "tcp",
	.valid_until = 1800003600,
	.max_bytes = 1000000,
	.bandwidth_kbps = 10000,
};

static void t_setup(void)
{
	int err = 0;

	memset(&F, 0, sizeof(F));
	F.now = 1800000000;
	F.b = pay_regtest_new(NULL, 0, t_clock, &F.now, &err);
	cr_assert_not_null(F.b);
	cr_assert_eq(l402_offer_create(F.b, 50000, "natx tunnel tcp", 600, &terms, &F.offer), 0);
	/* what natxd stores before answering 402 */
	memcpy(F.db.token_id, F.offer.id.token_id, 32);
	memcpy(F.db.root_key, F.offer.root_key, 32);
}

static void t_teardown(void)
{
	l402_offer_wipe(&F.offer);
	pay_backend_free(F.b);
}

TestSuite(l402_flow, .init = t_setup, .fini = t_teardown);

static struct l402_request t_req(void)
{
	return (struct l402_request){ .service = "tunnel", .capability = "tcp", .now = F.now };
}

/* t_auth_header - what a client sends after paying (it learns the preimage by paying). */
static size_t t_auth_header(char *out, size_t cap, const uint8_t preimage[32])
{
	long n = l402_auth_format(out, cap, F.offer.mac, F.offer.mac_len, preimage);

	cr_assert_gt(n, 0);
	return (size_t)n;
}

Test(l402_flow, offer_header_matches_aperture_and_commits_to_the_invoice)
{
	const char *hdrs[] = { F.offer.header, F.offer.header_lsat };
	regex_t re;

	cr_assert_eq(regcomp(&re, "^(LSAT|L402) macaroon=\"([^\"]*)\", invoice=\"([^\"]*)\"$",
			     REG_EXTENDED),
		     0);
	for (int i = 0; i < 2; i++) {
		regmatch_t m[4];
		uint8_t mac[1024];
		struct bolt11 inv;
		struct macaroon mc;
		struct l402_id id;
		long n;

		cr_assert_eq(regexec(&re, hdrs[i], 4, m, 0), 0, "%s", hdrs[i]);
		n = b64_decode(mac, sizeof(mac), hdrs[i] + m[2].rm_so,
			       (size_t)(m[2].rm_eo - m[2].rm_so));
		cr_assert_eq(n, (long)F.offer.mac_len);
		cr_assert_arr_eq(mac, F.offer.mac, F.offer.mac_len);
		cr_assert_eq(bolt11_decode(&inv, hdrs[i] + m[3].rm_so,
					   (size_t)(m[3].rm_eo - m[3].rm_so)),
			     0);
		cr_assert_str_eq(inv.currency, "bcrt");
		cr_assert_eq(inv.amount_msat, 50000);
		cr_assert_arr_eq(inv.node_id, F.b->node_id, 33);
		cr_assert_eq(macaroon_decode(&mc, mac, (size_t)n), 0);
		cr_assert_eq(l402_id_decode(&id, mc.id, mc.id_len), 0);
		cr_assert_arr_eq(id.payment_hash, inv.payment_hash, 32);
		cr_assert_arr_eq(id.token_id, F.offer.id.token_id, 32);
	}
	cr_assert_eq(strncmp(F.offer.header_lsat, "LSAT ", 5), 0);
	regfree(&re);
}

Test(l402_flow, two_offers_never_share_keys_or_ids)
{
	struct l402_offer o2;

	cr_assert_eq(l402_offer_create(F.b, 50000, "x", 600, &terms, &o2), 0);
	cr_assert_arr_neq(o2.root_key, F.offer.root_key, 32);
	cr_assert_arr_neq(o2.id.token_id, F.offer.id.token_id, 32);
	cr_assert_arr_neq(o2.id.payment_hash, F.offer.id.payment_hash, 32);
	l402_offer_wipe(&o2);
}

Test(l402_flow, paid_header_authorizes_and_unpaid_does_not)
{
	struct l402_request req = t_req();
	struct l402_grant g;
	char hdr[4096];
	size_t n = t_auth_header(hdr, sizeof(hdr), F.offer.invoice.preimage);

	/* Even with the right preimage (leaked, say), an unsettled invoice buys nothing. */
	cr_assert_eq(l402_authorize_header(F.b, hdr, n, t_db_key, &F.db, &req, &g),
		     -PAY_E_INVOICE_UNPAID);
	cr_assert_eq(pay_err_http(-PAY_E_INVOICE_UNPAID), 402);
	cr_assert_eq(pay_backend_invoice_settle(F.b, F.offer.invoice.payment_hash), 0);
	cr_assert_eq(l402_authorize_header(F.b, hdr, n, t_db_key, &F.db, &req, &g), 0);
	cr_assert_eq(g.valid_until, 1800003600);
	cr_assert_eq(g.max_bytes, 1000000);
	cr_assert_eq(g.bandwidth_kbps, 10000);
	cr_assert_arr_eq(g.id.token_id, F.offer.id.token_id, 32);
	/* the legacy scheme works the same */
	memcpy(hdr, "LSAT", 4);
	cr_assert_eq(l402_authorize_header(F.b, hdr, n, t_db_key, &F.db, &req, &g), 0);
}

Test(l402_flow, header_refusals_have_their_own_codes)
{
	struct l402_request req = t_req();
	struct l402_grant g;
	uint8_t wrong[32];
	char hdr[4096];
	size_t n;

	cr_assert_eq(pay_backend_invoice_settle(F.b, F.offer.invoice.payment_hash), 0);
	memcpy(wrong, F.offer.invoice.preimage, 32);
	wrong[0] ^= 0xff;
	n = t_auth_header(hdr, sizeof(hdr), wrong);
	cr_assert_eq(l402_authorize_header(F.b, hdr, n, t_db_key, &F.db, &req, &g),
		     -PAY_E_L402_PREIMAGE);
	cr_assert_eq(l402_authorize_header(F.b, "Bearer x", 8, t_db_key, &F.db, &req, &g),
		     -PAY_E_L402_HEADER);
	/* valid base64, not a macaroon */
	n = (size_t)snprintf(hdr, sizeof(hdr), "L402 AAAA:%064x", 0);
	cr_assert_eq(l402_authorize_header(F.b, hdr, n, t_db_key, &F.db, &req, &g),
		     -PAY_E_MAC_FORMAT);
	/* natxctl token revoke: the root key is gone */
	n = t_auth_header(hdr, sizeof(hdr), F.offer.invoice.preimage);
	F.db.revoked = true;
	cr_assert_eq(l402_authorize_header(F.b, hdr, n, t_db_key, &F.db, &req, &g),
		     -PAY_E_L402_UNKNOWN);
	F.db.revoked = false;
	/* expiry and service */
	req.now = terms.valid_until;
	cr_assert_eq(l402_authorize_header(F.b, hdr, n, t_db_key, &F.db, &req, &g),
		     -PAY_E_CAV_EXPIRED);
	req = t_req();
	req.capability = "udp";
	cr_assert_eq(l402_authorize_header(F.b, hdr, n, t_db_key, &F.db, &req, &g),
		     -PAY_E_CAV_CAPABILITY);
	cr_assert_eq(pay_err_http(-PAY_E_CAV_CAPABILITY), 403);
}

Test(l402_flow, tunnel_side_takes_the_preimage_from_the_backend)
{
	struct l402_request req = t_req();
	struct l402_grant g;
	uint8_t k[32] = { 0 };

	cr_assert_eq(l402_authorize_macaroon(F.b, F.offer.mac, F.offer.mac_len, t_db_key, &F.db,
					     &req, &g, k),
		     -PAY_E_INVOICE_UNPAID);
	cr_assert_eq(pay_backend_invoice_settle(F.b, F.offer.invoice.payment_hash), 0);
	cr_assert_eq(l402_authorize_macaroon(F.b, F.offer.mac, F.offer.mac_len, t_db_key, &F.db,
					     &req, &g, k),
		     0);
	cr_assert_arr_eq(k, F.offer.invoice.preimage, 32);
	/* the live tunnel re-checks its caveats as bytes flow */
	{
		struct macaroon m;

		cr_assert_eq(macaroon_decode(&m, F.offer.mac, F.offer.mac_len), 0);
		req.bytes_used = 999999;
		cr_assert_eq(l402_caveats_check(&m, &req, &g), 0);
		req.bytes_used = 1000000;
		cr_assert_eq(l402_caveats_check(&m, &req, &g), -PAY_E_CAV_QUOTA);
	}
}

Test(l402_flow, tunnel_side_refusals)
{
	struct l402_request req = t_req();
	struct l402_grant g;
	uint8_t k[32], mac[1024];
	struct l402_offer other;
	uint8_t *p;

	cr_assert_eq(pay_backend_invoice_settle(F.b, F.offer.invoice.payment_hash), 0);
	cr_assert_eq(l402_authorize_macaroon(F.b, (const uint8_t *)"junk", 4, t_db_key, &F.db, &req,
					     &g, k),
		     -PAY_E_MAC_FORMAT);
	/* tampered caveat: raise the quota */
	memcpy(mac, F.offer.mac, F.offer.mac_len);
	p = memmem(mac, F.offer.mac_len, "max_bytes=1", 11);
	cr_assert_not_null(p);
	p[10] = '9';
	cr_assert_eq(
		l402_authorize_macaroon(F.b, mac, F.offer.mac_len, t_db_key, &F.db, &req, &g, k),
		-PAY_E_MAC_SIG);
	/* a token whose invoice this backend never issued */
	cr_assert_eq(l402_offer_create(F.b, 1000, "y", 600, &terms, &other), 0);
	{
		int err = 0;
		struct pay_backend *b2 = pay_regtest_new(NULL, 0, t_clock, &F.now, &err);

		cr_assert_eq(l402_authorize_macaroon(b2, other.mac, other.mac_len, t_db_key, &F.db,
						     &req, &g, k),
			     -PAY_E_INVOICE_UNPAID);
		pay_backend_free(b2);
	}
	l402_offer_wipe(&other);
	/* expired */
	req.now = terms.valid_until + 1;
	cr_assert_eq(l402_authorize_macaroon(F.b, F.offer.mac, F.offer.mac_len, t_db_key, &F.db,
					     &req, &g, k),
		     -PAY_E_CAV_EXPIRED);
}

Test(l402_flow, bad_offers_leave_nothing_behind)
{
	struct l402_offer o;

	memset(&o, 0xee, sizeof(o));
	cr_assert_eq(l402_offer_create(F.b, 0, "x", 600, &terms, &o), -EINVAL);
	for (size_t i = 0; i < sizeof(o); i++) {
		cr_assert_eq(((uint8_t *)&o)[i], 0, "byte %zu not wiped", i);
	}
	cr_assert_eq(l402_offer_create(F.b, 1000, "x", 600,
				       &(struct l402_terms){ .service = "bad name" }, &o),
		     -EINVAL);
	cr_assert_eq(o.mac_len, 0);
}
