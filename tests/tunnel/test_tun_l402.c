// SPDX-License-Identifier: MIT
/*
 * An L402 macaroon as the tunnel's control-channel credential: the client proves knowledge
 * of the payment preimage with the handshake MAC (the preimage itself never crosses the
 * wire), the server checks the macaroon with control/pay and the invoice with the regtest
 * backend. Expired tokens, unpaid invoices and wrong preimages are refused with their own
 * reasons.
 */
#include <criterion/criterion.h>
#include <string.h>

#include "l402.h"
#include "natx/err.h"
#include "pay_backend.h"
#include "pay_crypto.h"
#include "pay_err.h"
#include "tun_crypto.h"
#include "tun_hs.h"

struct t_paid {
	int64_t now;
	struct pay_backend *backend;
	uint8_t token_id[32], root_key[32];
	uint8_t mac[1024];
	size_t mac_len;
	struct pay_invoice invoice;
};

static struct t_paid P;

static int64_t t_clock(void *arg)
{
	return *(int64_t *)arg;
}

static int t_root_key(void *arg, const struct l402_id *id, uint8_t key[32])
{
	if (memcmp(id->token_id, P.token_id, 32)) {
		return -NATX_E_NOT_FOUND;
	}
	memcpy(key, P.root_key, 32);
	return 0;
}

/* What natxd's cred_get does for TUN_CRED_L402 (docs/l402.md). */
static int t_cred_get(void *arg, uint8_t kind, const uint8_t *service, size_t service_len,
		      const uint8_t *cred, size_t cred_len, uint8_t *key, size_t *key_len)
{
	struct l402_request req = { .service = "tunnel", .capability = "tcp", .now = P.now };
	struct pay_invoice inv;
	struct l402_grant g;
	struct l402_id id;
	struct macaroon m;
	int err;

	if (kind != TUN_CRED_L402 || service_len != 6 || memcmp(service, "tunnel", 6)) {
		return TUN_R_UNKNOWN_SERVICE;
	}
	if (macaroon_decode(&m, cred, cred_len) || l402_id_decode(&id, m.id, m.id_len)) {
		return TUN_R_AUTH;
	}
	if (pay_backend_invoice_lookup(P.backend, id.payment_hash, &inv) ||
	    inv.state != PAY_INVOICE_SETTLED) {
		return TUN_R_PAYMENT;
	}
	err = l402_verify(&m, inv.preimage, t_root_key, NULL, &req, &g);
	pay_wipe(&inv.payment_secret, sizeof(inv.payment_secret));
	switch (-err) {
	case 0:
		break;
	case PAY_E_CAV_EXPIRED:
		return TUN_R_EXPIRED;
	case PAY_E_CAV_QUOTA:
		return TUN_R_QUOTA;
	case PAY_E_L402_UNKNOWN:
		return TUN_R_PAYMENT;
	default:
		return TUN_R_AUTH;
	}
	memcpy(key, inv.preimage, 32);
	*key_len = 32;
	pay_wipe(&inv, sizeof(inv));
	return 0;
}

static struct tun_session *t_no_session(void *arg, const uint8_t id[TUN_SESSION_ID_LEN])
{
	return NULL;
}

static const struct tun_server_ops ops = {
	.random = tun_random,
	.cred_get = t_cred_get,
	.session_find = t_no_session,
	.heartbeat_interval = 30,
	.heartbeat_timeout = 90,
};

static void t_setup(void)
{
	struct l402_id id = { 0 };
	int err = 0;

	memset(&P, 0, sizeof(P));
	P.now = 1800000000;
	P.backend = pay_regtest_new(NULL, 0, t_clock, &P.now, &err);
	cr_assert_not_null(P.backend);
	cr_assert_eq(pay_backend_invoice_create(P.backend, 50000, "tunnel", 600, &P.invoice), 0);
	cr_assert_eq(pay_random(P.token_id, 32), 0);
	cr_assert_eq(pay_random(P.root_key, 32), 0);
	memcpy(id.payment_hash, P.invoice.payment_hash, 32);
	memcpy(id.token_id, P.token_id, 32);
	cr_assert_eq(l402_mint(P.mac, sizeof(P.mac), &P.mac_len, P.root_key, &id,
			       &(struct l402_terms){ .service = "tunnel",
						     .capabilities = "tcp",
						     .valid_until = P.now + 3600 }),
		     0);
}

static void t_teardown(void)
{
	pay_backend_free(P.backend);
}

TestSuite(tun_l402, .init = t_setup, .fini = t_teardown);

/* t_run - full control handshake with key (the client's idea of the preimage). */
static int t_run(const uint8_t key[32], struct tun_client *c, struct tun_server *s)
{
	uint8_t a[8192], b[8192];
	struct wr wa, wb;
	struct tun_frame f;
	size_t ra = 0, rb = 0;
	int rs = 0, rc = 0;

	cr_assert_eq(tun_client_control_init(c, "tunnel", TUN_CRED_L402, P.mac, P.mac_len, key, 32,
					     tun_random, NULL),
		     0);
	tun_server_init(s, &ops);
	wr_init(&wa, a, sizeof(a));
	wr_init(&wb, b, sizeof(b));
	cr_assert_eq(tun_client_hello(c, &wa), 0);
	for (int i = 0; i < 4; i++) {
		if (!tun_frame_parse(a + ra, (size_t)(wa.p - a) - ra, TUN_CTRL_PAYLOAD_MAX, &f)) {
			ra += f.total;
			rs = tun_server_consume(s, &f, &wb);
		}
		if (!tun_frame_parse(b + rb, (size_t)(wb.p - b) - rb, TUN_CTRL_PAYLOAD_MAX, &f)) {
			rb += f.total;
			rc = tun_client_consume(c, &f, &wa);
		}
	}
	/* the preimage (the key) is never sent, only the macaroon */
	cr_assert_null(memmem(a, (size_t)(wa.p - a), P.invoice.preimage, 32));
	cr_assert_not_null(memmem(a, (size_t)(wa.p - a), P.mac, P.mac_len));
	return rs == 1 && rc == 1 ? 0 : rc;
}

Test(tun_l402, paid_macaroon_opens_the_control_channel)
{
	struct tun_client c;
	struct tun_server s;

	cr_assert_eq(pay_backend_invoice_settle(P.backend, P.invoice.payment_hash), 0);
	cr_assert_eq(t_run(P.invoice.preimage, &c, &s), 0);
	cr_assert_eq(s.kind, TUN_CRED_L402);
	cr_assert_arr_eq(c.session_key, s.session_key, TUN_SESSION_KEY_LEN);
}

Test(tun_l402, unpaid_invoice_is_refused_with_payment_required)
{
	struct tun_client c;
	struct tun_server s;

	cr_assert_eq(t_run(P.invoice.preimage, &c, &s), -NATX_E_PAYMENT);
	cr_assert_eq(c.refused.reason, TUN_R_PAYMENT);
}

Test(tun_l402, expired_macaroon_is_refused_with_expired)
{
	struct tun_client c;
	struct tun_server s;

	cr_assert_eq(pay_backend_invoice_settle(P.backend, P.invoice.payment_hash), 0);
	P.now += 3600;
	cr_assert_eq(t_run(P.invoice.preimage, &c, &s), -NATX_E_PAYMENT);
	cr_assert_eq(c.refused.reason, TUN_R_EXPIRED);
}

Test(tun_l402, wrong_preimage_fails_the_handshake_mac)
{
	struct tun_client c;
	struct tun_server s;
	uint8_t guess[32];

	cr_assert_eq(pay_backend_invoice_settle(P.backend, P.invoice.payment_hash), 0);
	memcpy(guess, P.invoice.preimage, 32);
	guess[5] ^= 1;
	cr_assert_eq(t_run(guess, &c, &s), -NATX_E_AUTH);
	cr_assert_eq(c.refused.reason, TUN_R_AUTH);
}
