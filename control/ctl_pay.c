// SPDX-License-Identifier: MIT
/* Control commands of the paid tunnel service (control/ctl_pay.h). */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "crypto.h"
#include "ctl_pay.h"
#include "daemon.h"
#include "natx/err.h"
#include "natx/log.h"
#include "pay_codec.h"
#include "pay_store.h"

#define MOD "ctl"

enum { CTL_PAY_MSG_MAX = 512 }; /* room of @msg (CTL_MSG_MAX in ctl_cmds.c) */

/* ctl_pay_backend - add the backend's name and the real-money flag to @reply. */
static void ctl_pay_backend(struct natxd *d, cJSON *reply)
{
	cJSON_AddStringToObject(reply, "backend", d->pay.be->ops->name);
	cJSON_AddBoolToObject(reply, "real_money", d->pay.be->ops->moves_real_money);
}

int cmd_invoice_list(struct natxd *d, const struct ctl_caller *who, const struct ctl_req *req,
		     cJSON *reply, char *msg)
{
	cJSON *a = l402_svc_invoices_json(&d->pay);

	if (!a) {
		snprintf(msg, CTL_PAY_MSG_MAX, "cannot list invoices: %s", store_errmsg(&d->st));
		return -EIO;
	}
	ctl_pay_backend(d, reply);
	cJSON_AddItemToObject(reply, "invoices", a);
	return 0;
}

int cmd_invoice_settle(struct natxd *d, const struct ctl_caller *who, const struct ctl_req *req,
		       cJSON *reply, char *msg)
{
	struct pay_invoice inv;
	char pre[65];
	const char *hash;
	int err, rc;

	hash = ctl_req_str(req, "hash", 64, &err);
	if (!hash) {
		snprintf(msg, CTL_PAY_MSG_MAX,
			 "\"hash\" must be the invoice's payment hash (64 hex)");
		return -EINVAL;
	}
	if (d->pay.be->ops->moves_real_money) {
		snprintf(msg, CTL_PAY_MSG_MAX,
			 "the %s backend settles invoices by real payment only",
			 d->pay.be->ops->name);
		return -EOPNOTSUPP;
	}
	rc = l402_svc_settle(&d->pay, hash, &inv);
	switch (rc) {
	case 0:
		break;
	case -EINVAL:
		snprintf(msg, CTL_PAY_MSG_MAX, "\"%s\" is not a payment hash (64 hex digits)",
			 hash);
		return -EINVAL;
	case -NATX_E_NOT_FOUND:
		snprintf(msg, CTL_PAY_MSG_MAX, "no invoice with payment hash %s", hash);
		return -ENOENT;
	case -ETIMEDOUT:
		snprintf(msg, CTL_PAY_MSG_MAX, "invoice %s expired before it was settled", hash);
		return -ETIMEDOUT;
	default:
		return rc;
	}
	pr_info(MOD, "invoice settled by uid %u", (unsigned)who->uid);
	/*
	 * Paying reveals the preimage to the payer; with regtest, settling stands in for paying,
	 * so the preimage goes to whoever plays the payer.
	 */
	hex_encode(pre, inv.preimage, sizeof(inv.preimage));
	cJSON_AddStringToObject(reply, "payment_hash", hash);
	cJSON_AddStringToObject(reply, "state", "settled");
	cJSON_AddStringToObject(reply, "preimage", pre);
	cJSON_AddNumberToObject(reply, "amount_msat", (double)inv.amount_msat);
	cJSON_AddNumberToObject(reply, "settled_at", (double)inv.settled_at);
	ctl_pay_backend(d, reply);
	cJSON_AddStringToObject(reply, "note", "regtest: no real money moved");
	crypto_wipe(&inv, sizeof(inv));
	crypto_wipe(pre, sizeof(pre));
	return 0;
}

int cmd_token_list(struct natxd *d, const struct ctl_caller *who, const struct ctl_req *req,
		   cJSON *reply, char *msg)
{
	cJSON *a = pay_store_tokens_json(&d->st);

	if (!a) {
		snprintf(msg, CTL_PAY_MSG_MAX, "cannot list tokens: %s", store_errmsg(&d->st));
		return -EIO;
	}
	cJSON_AddItemToObject(reply, "tokens", a);
	return 0;
}

int cmd_token_revoke(struct natxd *d, const struct ctl_caller *who, const struct ctl_req *req,
		     cJSON *reply, char *msg)
{
	char full[PAY_HEX32_LEN];
	const char *id;
	int err, rc;

	id = ctl_req_str(req, "token", 64, &err);
	if (!id) {
		snprintf(msg, CTL_PAY_MSG_MAX, "\"token\" must be a token id (8..64 hex digits)");
		return -EINVAL;
	}
	rc = pay_store_token_revoke(&d->st, id, d->clk->wall_s(d->clk), full);
	switch (rc) {
	case 0:
		break;
	case -EINVAL:
		snprintf(msg, CTL_PAY_MSG_MAX, "token id must be 8..64 hex digits");
		return -EINVAL;
	case -ENOENT:
		snprintf(msg, CTL_PAY_MSG_MAX, "no token %s (see natxctl token list)", id);
		return -ENOENT;
	case -EEXIST:
		snprintf(msg, CTL_PAY_MSG_MAX, "%s names several tokens: give more digits", id);
		return -EINVAL;
	default:
		snprintf(msg, CTL_PAY_MSG_MAX, "cannot revoke: %s", store_errmsg(&d->st));
		return -EIO;
	}
	pr_info(MOD, "token %.16s… revoked by uid %u; it is refused from now on", full,
		(unsigned)who->uid);
	cJSON_AddStringToObject(reply, "token_id", full);
	cJSON_AddBoolToObject(reply, "revoked", true);
	return 0;
}

int cmd_tunnel_ls(struct natxd *d, const struct ctl_caller *who, const struct ctl_req *req,
		  cJSON *reply, char *msg)
{
	cJSON *a = pay_store_regs_json(&d->st, d->clk->wall_s(d->clk));

	if (!a) {
		snprintf(msg, CTL_PAY_MSG_MAX, "cannot list registrations: %s",
			 store_errmsg(&d->st));
		return -EIO;
	}
	cJSON_AddItemToObject(reply, "registrations", a);
	return 0;
}
