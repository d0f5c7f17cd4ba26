// SPDX-License-Identifier: MIT
/* L402 offer and authorization flows over a payment backend (l402_flow.h). */
#include <string.h>

#include "l402_flow.h"
#include "crypto.h"
#include "pay_err.h"

void l402_offer_wipe(struct l402_offer *offer)
{
	crypto_wipe(offer, sizeof(*offer));
}

int l402_offer_create(struct pay_backend *b, uint64_t amount_msat, const char *memo,
		      uint32_t invoice_expiry, const struct l402_terms *terms, struct l402_offer *o)
{
	long n;
	int err;

	memset(o, 0, sizeof(*o));
	err = pay_backend_invoice_create(b, amount_msat, memo, invoice_expiry, &o->invoice);
	if (err) {
		goto out_wipe;
	}
	err = crypto_random_bytes(o->root_key, sizeof(o->root_key)) ?:
		      crypto_random_bytes(o->id.token_id, sizeof(o->id.token_id));
	if (err) {
		goto out_wipe;
	}
	o->id.version = 0;
	memcpy(o->id.payment_hash, o->invoice.payment_hash, L402_HASH_LEN);
	err = l402_mint(o->mac, sizeof(o->mac), &o->mac_len, o->root_key, &o->id, terms);
	if (err) {
		goto out_wipe;
	}
	n = l402_challenge_format(o->header, sizeof(o->header), "L402", o->mac, o->mac_len,
				  o->invoice.bolt11);
	if (n < 0) {
		err = (int)n;
		goto out_wipe;
	}
	n = l402_challenge_format(o->header_lsat, sizeof(o->header_lsat), "LSAT", o->mac,
				  o->mac_len, o->invoice.bolt11);
	if (n < 0) {
		err = (int)n;
		goto out_wipe;
	}
	return 0;

out_wipe:
	l402_offer_wipe(o);
	return err;
}

/* l402_settled - is the invoice with this hash settled in the backend? */
static int l402_settled(struct pay_backend *b, const uint8_t hash[L402_HASH_LEN],
			struct pay_invoice *inv)
{
	if (pay_backend_invoice_lookup(b, hash, inv) || inv->state != PAY_INVOICE_SETTLED) {
		return -PAY_E_INVOICE_UNPAID;
	}
	return 0;
}

int l402_authorize_header(struct pay_backend *b, const char *value, size_t len,
			  l402_root_key_fn get_key, void *arg, const struct l402_request *req,
			  struct l402_grant *grant)
{
	/* struct l402_auth holds up to 16 KiB of macaroon: keep it off small stacks */
	static __thread struct l402_auth auth;
	struct pay_invoice inv;
	struct macaroon m;
	int err;

	memset(grant, 0, sizeof(*grant));
	err = l402_auth_parse(&auth, value, len);
	if (err) {
		goto out_wipe;
	}
	err = macaroon_decode(&m, auth.mac, auth.mac_len) ? -PAY_E_MAC_FORMAT : 0;
	if (err) {
		goto out_wipe;
	}
	err = l402_verify(&m, auth.preimage, get_key, arg, req, grant);
	if (err) {
		goto out_wipe;
	}
	err = l402_settled(b, grant->id.payment_hash, &inv);
	crypto_wipe(&inv, sizeof(inv));

out_wipe:
	crypto_wipe(&auth, sizeof(auth));
	return err;
}

int l402_authorize_macaroon(struct pay_backend *b, const uint8_t *mac, size_t mac_len,
			    l402_root_key_fn get_key, void *arg, const struct l402_request *req,
			    struct l402_grant *grant, uint8_t preimage_out[L402_PREIMAGE_LEN])
{
	struct pay_invoice inv;
	struct macaroon m;
	int err;

	memset(grant, 0, sizeof(*grant));
	memset(&inv, 0, sizeof(inv));
	if (macaroon_decode(&m, mac, mac_len)) {
		return -PAY_E_MAC_FORMAT;
	}
	err = l402_id_decode(&grant->id, m.id, m.id_len);
	if (err) {
		return err;
	}
	err = l402_settled(b, grant->id.payment_hash, &inv);
	if (err) {
		goto out_wipe;
	}
	err = l402_verify(&m, inv.preimage, get_key, arg, req, grant);
	if (err) {
		goto out_wipe;
	}
	memcpy(preimage_out, inv.preimage, L402_PREIMAGE_LEN);

out_wipe:
	crypto_wipe(&inv, sizeof(inv));
	return err;
}
