// SPDX-License-Identifier: MIT
/* The control command table (control/ctl_cmdtab.h). */
#include <stddef.h>
#include <string.h>

#include "ctl_cmdtab.h"

const struct ctl_cmd ctl_cmd_table[] = {
	{ "status", "status", "", "daemon, engine, services and HTTP API at a glance", NULL,
	  false },
	{ "services", "services", "", "registered traversal services with capabilities and status",
	  NULL, false },
	{ "health", "health", "",
	  "health of each service (healthy/degraded/unhealthy, since, last "
	  "error)",
	  NULL, false },
	{ "metrics", "metrics", "", "connection metrics per service and in total", NULL, false },
	{ "connect", "connect",
	  "TARGET [--prefer-libp2p] [--allow-payment] [--direct] [--tcp|--udp]",
	  "choose a service for TARGET and connect (prints connection info)", "target", true },
	{ "engine stats", "engine.stats", "", "engine state and per-shard counters", NULL, false },
	{ "forward add", "forward.add", "SPEC",
	  "run and persist a forward, SPEC = tcp|udp:LISTEN=UPSTREAM", "spec", true },
	{ "forward list", "forward.list", "", "forwards with their source, state and counters",
	  NULL, false },
	{ "forward rm", "forward.rm", "ID|SPEC",
	  "remove a forward added with forward add (open flows continue)", "forward", true },
	{ "reload", "reload", "", "re-read the configuration (like SIGHUP); a bad one is rejected",
	  NULL, true },
	{ "version", "version", "", "versions of natxd, the protocol and the engine", NULL, false },
	{ NULL, NULL, NULL, NULL, NULL, false },
};

const struct ctl_cmd *ctl_cmd_by_name(const char *name)
{
	for (const struct ctl_cmd *c = ctl_cmd_table; c->words; c++) {
		if (!strcmp(c->name, name)) {
			return c;
		}
	}
	return NULL;
}
