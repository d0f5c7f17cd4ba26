// SPDX-License-Identifier: MIT
/* nodes - known nodes and their libp2p addresses (contract in nodes.h). */
#include "nodes.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "adapter_p2p.h"
#include "daemon.h"
#include "natx/log.h"

#define MOD "nodes"

/* nodes_is_circuit - @ma goes through a relay. */
static bool nodes_is_circuit(const char *ma)
{
	return strstr(ma, "/p2p-circuit") != NULL;
}

int nodes_candidates(struct natxd *d, const char *target, char out[][NODES_ADDR_LEN])
{
	struct store_node n;
	char list[sizeof(n.multiaddrs)], *save, *ma;
	int count = 0;

	if (target[0] == '/') {
		if (p2p_target_parse(target) || strlen(target) >= NODES_ADDR_LEN) {
			return 0;
		}
		snprintf(out[0], NODES_ADDR_LEN, "%s", target);
		return 1;
	}
	if (store_node_get(&d->st, target, &n)) {
		return 0;
	}
	/* Two passes over the stored list: direct addresses, then relayed ones. */
	for (int relayed = 0; relayed < 2; relayed++) {
		snprintf(list, sizeof(list), "%s", n.multiaddrs);
		for (ma = strtok_r(list, " ", &save); ma && count < NODES_ADDRS_MAX;
		     ma = strtok_r(NULL, " ", &save)) {
			if (nodes_is_circuit(ma) != (bool)relayed || strlen(ma) >= NODES_ADDR_LEN ||
			    p2p_target_parse(ma)) {
				continue;
			}
			snprintf(out[count++], NODES_ADDR_LEN, "%s", ma);
		}
	}
	return count;
}

/* nodes_json - one node as an object. */
static cJSON *nodes_json(const struct store_node *n)
{
	cJSON *o = cJSON_CreateObject(), *a;
	char list[sizeof(n->multiaddrs)], *save, *ma;

	a = o ? cJSON_AddArrayToObject(o, "multiaddrs") : NULL;
	if (!a) {
		cJSON_Delete(o);
		return NULL;
	}
	cJSON_AddStringToObject(o, "node_id", n->node_id);
	snprintf(list, sizeof(list), "%s", n->multiaddrs);
	for (ma = strtok_r(list, " ", &save); ma; ma = strtok_r(NULL, " ", &save)) {
		cJSON_AddItemToArray(a, cJSON_CreateString(ma));
	}
	cJSON_AddBoolToObject(o, "offers_proxy", n->offers_proxy);
	cJSON_AddBoolToObject(o, "offers_relay", n->offers_relay);
	cJSON_AddStringToObject(o, "proxy_address", n->proxy_address);
	cJSON_AddNumberToObject(o, "last_seen", (double)n->last_seen);
	return o;
}

static int nodes_ls_one(void *arg, const struct store_node *n)
{
	cJSON *it = nodes_json(n);

	if (!it) {
		return -ENOMEM;
	}
	cJSON_AddItemToArray(arg, it);
	return 0;
}

/* nodes_set - node.set {node, multiaddrs: [...]}: replace the node's libp2p addresses. */
static int nodes_set(struct natxd *d, const struct ctl_req *req, cJSON *reply, char *msg)
{
	const cJSON *arr = cJSON_GetObjectItemCaseSensitive(req->root, "multiaddrs"), *it;
	struct store_node n;
	const char *id;
	size_t used = 0;
	int err, rc, count = 0;

	id = ctl_req_str(req, "node", CTL_TARGET_MAX - 1, &err);
	if (!id || !id[0] || id[0] == '/' || strchr(id, ' ')) {
		snprintf(msg, CTL_MSG_MAX,
			 "\"node\" must be a node id (no spaces, not a multiaddr)");
		return -EINVAL;
	}
	if (!cJSON_IsArray(arr) || !cJSON_GetArraySize(arr) ||
	    cJSON_GetArraySize(arr) > NODES_ADDRS_MAX) {
		snprintf(msg, CTL_MSG_MAX, "\"multiaddrs\" must list 1..%d addresses",
			 NODES_ADDRS_MAX);
		return -EINVAL;
	}
	rc = store_node_get(&d->st, id, &n);
	if (rc == -ENOENT) {
		memset(&n, 0, sizeof(n));
		snprintf(n.node_id, sizeof(n.node_id), "%s", id);
	} else if (rc) {
		snprintf(msg, CTL_MSG_MAX, "database: %s", store_errmsg(&d->st));
		return -EIO;
	}
	n.multiaddrs[0] = 0;
	cJSON_ArrayForEach(it, arr)
	{
		const char *ma = cJSON_IsString(it) ? it->valuestring : "";
		size_t len = strlen(ma);

		if (p2p_target_parse(ma) || len >= NODES_ADDR_LEN) {
			snprintf(msg, CTL_MSG_MAX,
				 "'%.200s' is not a multiaddr ending in /p2p/PEER_ID (direct or "
				 "/p2p-circuit)",
				 ma);
			return -EINVAL;
		}
		if (used + len + 2 > sizeof(n.multiaddrs)) {
			snprintf(msg, CTL_MSG_MAX, "too many address bytes for one node");
			return -EINVAL;
		}
		used += (size_t)snprintf(n.multiaddrs + used, sizeof(n.multiaddrs) - used, "%s%s",
					 count++ ? " " : "", ma);
	}
	n.last_seen = d->clk->wall_s(d->clk);
	if (store_node_put(&d->st, &n)) {
		snprintf(msg, CTL_MSG_MAX, "database: %s", store_errmsg(&d->st));
		return -EIO;
	}
	pr_info(MOD, "node %s: %d address(es): %s", n.node_id, count, n.multiaddrs);
	it = nodes_json(&n);
	if (!it) {
		return -ENOMEM;
	}
	cJSON_AddItemToObject(reply, "node", (cJSON *)it);
	return 0;
}

int natxd_cmd_node(struct natxd *d, const struct ctl_caller *who, const struct ctl_req *req,
		   cJSON *reply, char *msg)
{
	const char *id;
	cJSON *a;
	int err, rc;

	if (!strcmp(req->cmd, "node.set")) {
		return nodes_set(d, req, reply, msg);
	}
	if (!strcmp(req->cmd, "node.rm")) {
		id = ctl_req_str(req, "node", CTL_TARGET_MAX - 1, &err);
		if (!id || !id[0]) {
			snprintf(msg, CTL_MSG_MAX, "\"node\" must be a node id");
			return -EINVAL;
		}
		rc = store_node_rm(&d->st, id);
		if (rc == -ENOENT) {
			snprintf(msg, CTL_MSG_MAX, "no node %.200s", id);
		}
		return rc;
	}
	a = cJSON_AddArrayToObject(reply, "nodes");
	if (!a) {
		return -ENOMEM;
	}
	rc = store_node_each(&d->st, nodes_ls_one, a);
	return rc ? -EIO : 0;
}
