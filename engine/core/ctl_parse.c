// SPDX-License-Identifier: MIT
/* Control request parsing (see ctl_parse.h). */
#include <errno.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "ctl_parse.h"

static const struct {
	const char *name;
	enum ctl_cmd cmd;
} ctl_cmds[] = {
	{ "hello", CTL_HELLO },
	{ "forward.add", CTL_FWD_ADD },
	{ "forward.rm", CTL_FWD_RM },
	{ "forward.list", CTL_FWD_LIST },
	{ "stats", CTL_STATS },
	{ "shutdown", CTL_SHUTDOWN },
	{ "p2p.peer", CTL_P2P_PEER },
	{ "p2p.ping", CTL_P2P_PING },
	{ "p2p.identify", CTL_P2P_IDENTIFY },
	{ "p2p.expose", CTL_P2P_EXPOSE },
	{ "p2p.forward", CTL_P2P_FORWARD },
	{ "p2p.ls", CTL_P2P_LS },
	{ "p2p.close", CTL_P2P_CLOSE },
	{ "stun.set", CTL_STUN_SET },
	{ "stun.stop", CTL_STUN_STOP },
	{ "punch.open", CTL_PUNCH_OPEN },
	{ "punch.close", CTL_PUNCH_CLOSE },
	{ "punch.ls", CTL_PUNCH_LS },
	{ "p2p.relay.setup", CTL_P2P_RELAY_SETUP },
	{ "p2p.relay.status", CTL_P2P_RELAY_STATUS },
	{ "p2p.reserve", CTL_P2P_RESERVE },
	{ "p2p.keep", CTL_P2P_KEEP },
	{ "p2p.peers", CTL_P2P_PEERS },
	{ "p2p.dcutr", CTL_P2P_DCUTR },
	{ "p2p.upgrades", CTL_P2P_UPGRADES },
	{ "p2p.nat", CTL_P2P_NAT },
	{ "p2p.nat.probe", CTL_P2P_NAT_PROBE },
	{ "tunnel.server", CTL_TUN_SERVER },
	{ "tunnel.client", CTL_TUN_CLIENT },
	{ "tunnel.add", CTL_TUN_ADD },
	{ "tunnel.rm", CTL_TUN_RM },
	{ "tunnel.ls", CTL_TUN_LS },
};

/* ctl_json_u32 - @item as an integral number in [0, max]. */
static bool ctl_json_u32(const cJSON *item, double max, uint32_t *out)
{
	double v;

	if (!cJSON_IsNumber(item)) {
		return false;
	}
	v = item->valuedouble;
	if (!isfinite(v) || v < 0 || v > max || v != floor(v)) {
		return false;
	}
	*out = (uint32_t)v;
	return true;
}

int ctl_req_parse(const char *line, size_t len, struct ctl_req *req, const char **code, char *msg)
{
	const cJSON *v, *id, *cmd, *arg;
	cJSON *root;
	int ret = -EINVAL;

	memset(req, 0, sizeof(*req));
	*code = "bad_request";
	if (len > CTL_LINE_MAX) {
		*code = "too_big";
		snprintf(msg, CTL_MSG_MAX, "request longer than %d bytes", CTL_LINE_MAX);
		return -EINVAL;
	}
	root = cJSON_ParseWithLength(line, len);
	if (!root) {
		snprintf(msg, CTL_MSG_MAX, "request is not valid JSON");
		return -EINVAL;
	}
	if (!cJSON_IsObject(root)) {
		snprintf(msg, CTL_MSG_MAX, "request must be a JSON object");
		goto delete_root;
	}
	id = cJSON_GetObjectItemCaseSensitive(root, "id");
	if (id) {
		if (!cJSON_IsNumber(id) && !cJSON_IsString(id)) {
			snprintf(msg, CTL_MSG_MAX, "\"id\" must be a number or a string");
			goto delete_root;
		}
		req->id = cJSON_Duplicate(id, false);
	}
	v = cJSON_GetObjectItemCaseSensitive(root, "v");
	if (!cJSON_IsNumber(v) || v->valuedouble != 1) {
		*code = "bad_version";
		snprintf(msg, CTL_MSG_MAX, "\"v\" must be 1");
		goto delete_root;
	}
	cmd = cJSON_GetObjectItemCaseSensitive(root, "cmd");
	if (!cJSON_IsString(cmd)) {
		snprintf(msg, CTL_MSG_MAX, "\"cmd\" must be a string");
		goto delete_root;
	}
	for (size_t i = 0; i < sizeof(ctl_cmds) / sizeof(ctl_cmds[0]); i++) {
		if (!strcmp(cmd->valuestring, ctl_cmds[i].name)) {
			req->cmd = ctl_cmds[i].cmd;
		}
	}
	if (!req->cmd) {
		*code = "unknown_cmd";
		snprintf(msg, CTL_MSG_MAX, "unknown command '%.64s'", cmd->valuestring);
		goto delete_root;
	}
	arg = cJSON_GetObjectItemCaseSensitive(root, "spec");
	if (arg) {
		if (!cJSON_IsString(arg) || strlen(arg->valuestring) >= SPEC_TEXT_MAX) {
			snprintf(msg, CTL_MSG_MAX, "\"spec\" must be a string under %d bytes",
				 SPEC_TEXT_MAX);
			goto delete_root;
		}
		snprintf(req->spec, sizeof(req->spec), "%s", arg->valuestring);
		req->has_spec = true;
	}
	arg = cJSON_GetObjectItemCaseSensitive(root, "fwd_id");
	if (!arg) {
		arg = cJSON_GetObjectItemCaseSensitive(root, "forward_id");
	}
	if (arg) {
		if (!ctl_json_u32(arg, 4294967295.0, &req->fwd_id)) {
			snprintf(msg, CTL_MSG_MAX, "\"fwd_id\" must be a non-negative integer");
			goto delete_root;
		}
		req->has_fwd_id = true;
	}
	arg = cJSON_GetObjectItemCaseSensitive(root, "drain_ms");
	if (arg) {
		if (!ctl_json_u32(arg, 86400000.0, &req->drain_ms)) {
			snprintf(msg, CTL_MSG_MAX, "\"drain_ms\" must be an integer 0..86400000");
			goto delete_root;
		}
		req->has_drain_ms = true;
	}
	arg = cJSON_GetObjectItemCaseSensitive(root, "addr");
	if (arg) {
		if (!cJSON_IsString(arg) || strlen(arg->valuestring) >= CTL_ADDR_MAX) {
			snprintf(msg, CTL_MSG_MAX, "\"addr\" must be a string under %d bytes",
				 CTL_ADDR_MAX);
			goto delete_root;
		}
		snprintf(req->addr, sizeof(req->addr), "%s", arg->valuestring);
		req->has_addr = true;
	}
	static const struct {
		const char *key;
		size_t off;
	} strs[] = {
		{ "protocol", offsetof(struct ctl_req, protocol) },
		{ "target", offsetof(struct ctl_req, target) },
		{ "listen", offsetof(struct ctl_req, listen) },
	};
	for (size_t i = 0; i < sizeof(strs) / sizeof(strs[0]); i++) {
		arg = cJSON_GetObjectItemCaseSensitive(root, strs[i].key);
		if (!arg) {
			continue;
		}
		if (!cJSON_IsString(arg) || strlen(arg->valuestring) >= CTL_ADDR_MAX) {
			snprintf(msg, CTL_MSG_MAX, "\"%s\" must be a string under %d bytes",
				 strs[i].key, CTL_ADDR_MAX);
			goto delete_root;
		}
		snprintf((char *)req + strs[i].off, CTL_ADDR_MAX, "%s", arg->valuestring);
	}
	arg = cJSON_GetObjectItemCaseSensitive(root, "count");
	if (arg && (!ctl_json_u32(arg, CTL_PING_MAX, &req->count) || !req->count)) {
		snprintf(msg, CTL_MSG_MAX, "\"count\" must be an integer 1..%d", CTL_PING_MAX);
		goto delete_root;
	}
	arg = cJSON_GetObjectItemCaseSensitive(root, "timeout_ms");
	if (arg && !ctl_json_u32(arg, 600000.0, &req->timeout_ms)) {
		snprintf(msg, CTL_MSG_MAX, "\"timeout_ms\" must be an integer 0..600000");
		goto delete_root;
	}
	arg = cJSON_GetObjectItemCaseSensitive(root, "rate");
	if (arg && !ctl_json_u32(arg, 10000000.0, &req->rate)) {
		snprintf(msg, CTL_MSG_MAX, "\"rate\" must be an integer 0..10000000");
		goto delete_root;
	}
	arg = cJSON_GetObjectItemCaseSensitive(root, "burst");
	if (arg && !ctl_json_u32(arg, 10000000.0, &req->burst)) {
		snprintf(msg, CTL_MSG_MAX, "\"burst\" must be an integer 0..10000000");
		goto delete_root;
	}
	arg = cJSON_GetObjectItemCaseSensitive(root, "relay");
	if (arg) {
		if (!cJSON_IsObject(arg)) {
			snprintf(msg, CTL_MSG_MAX, "\"relay\" must be an object");
			goto delete_root;
		}
		req->relay = cJSON_Duplicate(arg, true); /* checked by p2p_eng_relay_setup */
		if (!req->relay) {
			snprintf(msg, CTL_MSG_MAX, "out of memory");
			goto delete_root;
		}
	}
	req->prime_ttl = -1;
	/* p2p.forward's flow options (docs/migration.md "In the engine") */
	arg = req->cmd == CTL_P2P_FORWARD ? cJSON_GetObjectItemCaseSensitive(root, "flow") : NULL;
	if (arg) {
		if (!cJSON_IsBool(arg)) {
			snprintf(msg, CTL_MSG_MAX, "\"flow\" must be true or false");
			goto delete_root;
		}
		req->flow = cJSON_IsTrue(arg);
	}
	arg = req->cmd == CTL_P2P_FORWARD ? cJSON_GetObjectItemCaseSensitive(root, "repair_ms") :
					    NULL;
	if (arg && (!ctl_json_u32(arg, 600000.0, &req->repair_ms) || req->repair_ms < 100)) {
		snprintf(msg, CTL_MSG_MAX, "\"repair_ms\" must be an integer 100..600000");
		goto delete_root;
	}
	arg = req->cmd == CTL_P2P_FORWARD ? cJSON_GetObjectItemCaseSensitive(root, "alt_addrs") :
					    NULL;
	if (arg) {
		const cJSON *it;

		if (!cJSON_IsArray(arg) || cJSON_GetArraySize(arg) > 4) {
			snprintf(msg, CTL_MSG_MAX,
				 "\"alt_addrs\" must be an array of at most 4 strings");
			goto delete_root;
		}
		cJSON_ArrayForEach(it, arg)
		{
			if (!cJSON_IsString(it) || !it->valuestring[0] ||
			    strlen(it->valuestring) >= CTL_ADDR_MAX) {
				snprintf(msg, CTL_MSG_MAX,
					 "\"alt_addrs\" must hold multiaddr strings under %d bytes",
					 CTL_ADDR_MAX);
				goto delete_root;
			}
			snprintf(req->alt_addrs[req->n_alt++], CTL_ADDR_MAX, "%s", it->valuestring);
		}
	}
	/* p2p.dcutr's own keys (other commands may use these names differently) */
	arg = req->cmd == CTL_P2P_DCUTR ? cJSON_GetObjectItemCaseSensitive(root, "enabled") : NULL;
	if (arg) {
		if (!cJSON_IsBool(arg)) {
			snprintf(msg, CTL_MSG_MAX, "\"enabled\" must be true or false");
			goto delete_root;
		}
		req->enabled = cJSON_IsTrue(arg);
		req->has_enabled = true;
	}
	arg = req->cmd == CTL_P2P_DCUTR ? cJSON_GetObjectItemCaseSensitive(root, "prime_ttl") :
					  NULL;
	if (arg) {
		uint32_t ttl;

		if (!ctl_json_u32(arg, 255.0, &ttl)) {
			snprintf(msg, CTL_MSG_MAX, "\"prime_ttl\" must be an integer 0..255");
			goto delete_root;
		}
		req->prime_ttl = (int)ttl;
	}
	arg = req->cmd == CTL_P2P_DCUTR ?
		      cJSON_GetObjectItemCaseSensitive(root, "relay_discovery") :
		      NULL;
	if (arg) {
		if (!cJSON_IsBool(arg)) {
			snprintf(msg, CTL_MSG_MAX, "\"relay_discovery\" must be true or false");
			goto delete_root;
		}
		req->relay_disc = cJSON_IsTrue(arg);
		req->has_relay_disc = true;
	}
	arg = req->cmd == CTL_P2P_DCUTR ?
		      cJSON_GetObjectItemCaseSensitive(root, "attempt_timeout_ms") :
		      NULL;
	if (arg) {
		if (!ctl_json_u32(arg, 600000.0, &req->attempt_timeout_ms) ||
		    req->attempt_timeout_ms < 1000) {
			snprintf(msg, CTL_MSG_MAX,
				 "\"attempt_timeout_ms\" must be an integer 1000..600000");
			goto delete_root;
		}
	}
	switch (req->cmd) {
	case CTL_P2P_DCUTR:
		if (!req->has_enabled) {
			snprintf(msg, CTL_MSG_MAX, "p2p.dcutr needs \"enabled\"");
			goto delete_root;
		}
		break;
	case CTL_STUN_SET:
		if (!req->listen[0]) {
			snprintf(msg, CTL_MSG_MAX, "stun.set needs \"listen\"");
			goto delete_root;
		}
		break;
	case CTL_P2P_RELAY_SETUP:
		if (!req->relay) {
			snprintf(msg, CTL_MSG_MAX, "p2p.relay.setup needs a \"relay\" object");
			goto delete_root;
		}
		break;
	case CTL_P2P_RESERVE:
	case CTL_P2P_KEEP:
		if (!req->has_addr) {
			snprintf(msg, CTL_MSG_MAX, "%s needs \"addr\"", cmd->valuestring);
			goto delete_root;
		}
		break;
	case CTL_P2P_EXPOSE:
		if (!req->protocol[0] || !req->target[0]) {
			snprintf(msg, CTL_MSG_MAX, "p2p.expose needs \"protocol\" and \"target\"");
			goto delete_root;
		}
		break;
	case CTL_P2P_FORWARD:
		if (!req->protocol[0] || !req->listen[0] || !req->has_addr) {
			snprintf(msg, CTL_MSG_MAX,
				 "p2p.forward needs \"protocol\", \"listen\" and \"addr\"");
			goto delete_root;
		}
		break;
	case CTL_P2P_CLOSE:
		if (!req->has_fwd_id) {
			snprintf(msg, CTL_MSG_MAX, "p2p.close needs a numeric \"fwd_id\"");
			goto delete_root;
		}
		break;
	case CTL_P2P_PING:
	case CTL_P2P_IDENTIFY:
		if (!req->has_addr) {
			snprintf(msg, CTL_MSG_MAX, "%s needs \"addr\"", cmd->valuestring);
			goto delete_root;
		}
		break;
	case CTL_FWD_ADD:
		if (!req->has_spec) {
			snprintf(msg, CTL_MSG_MAX, "forward.add needs \"spec\"");
			goto delete_root;
		}
		break;
	case CTL_FWD_RM:
		/*
		 * forward.rm {"id":N} (ENGINE-CTL.md): that key is also the request id, so an
		 * explicit "fwd_id" wins and a numeric request id is the fallback.
		 */
		if (!req->has_spec && !req->has_fwd_id) {
			if (!req->id || !ctl_json_u32(req->id, 4294967295.0, &req->fwd_id)) {
				snprintf(
					msg, CTL_MSG_MAX,
					"forward.rm needs \"spec\" or a numeric \"fwd_id\"/\"id\"");
				goto delete_root;
			}
			req->has_fwd_id = true;
		}
		break;
	case CTL_TUN_SERVER:
	case CTL_TUN_CLIENT:
	case CTL_TUN_ADD:
	case CTL_TUN_RM:
	case CTL_TUN_LS:
	case CTL_PUNCH_OPEN:
	case CTL_PUNCH_CLOSE:
	case CTL_PUNCH_LS:
		/* Arguments are checked by tun_eng_ctl() / punch_eng_ctl(). */
		req->args = cJSON_Duplicate(root, true);
		if (!req->args) {
			snprintf(msg, CTL_MSG_MAX, "out of memory");
			goto delete_root;
		}
		break;
	default:
		break;
	}
	ret = 0;
delete_root:
	cJSON_Delete(root);
	return ret;
}

void ctl_req_cleanup(struct ctl_req *req)
{
	cJSON_Delete(req->id);
	req->id = NULL;
	cJSON_Delete(req->relay);
	req->relay = NULL;
	cJSON_Delete(req->args);
	req->args = NULL;
}
