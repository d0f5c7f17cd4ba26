/* SPDX-License-Identifier: MIT */
/*
 * Control commands of the paid tunnel service (docs/l402.md): invoice list, invoice settle
 * (regtest: the operator's "it is paid"), token list, token revoke, tunnel ls. Bound to
 * ctl_cmd_table rows by ctl_cmds.c; same signature as its handlers.
 */
#ifndef NATX_CTL_CTL_PAY_H
#define NATX_CTL_CTL_PAY_H

#include <cjson/cJSON.h>

#include "ctl_server.h"

struct natxd;

int cmd_invoice_list(struct natxd *d, const struct ctl_caller *who, const struct ctl_req *req,
		     cJSON *reply, char *msg);
int cmd_invoice_settle(struct natxd *d, const struct ctl_caller *who, const struct ctl_req *req,
		       cJSON *reply, char *msg);
int cmd_token_list(struct natxd *d, const struct ctl_caller *who, const struct ctl_req *req,
		   cJSON *reply, char *msg);
int cmd_token_revoke(struct natxd *d, const struct ctl_caller *who, const struct ctl_req *req,
		     cJSON *reply, char *msg);
int cmd_tunnel_ls(struct natxd *d, const struct ctl_caller *who, const struct ctl_req *req,
		  cJSON *reply, char *msg);

#endif
