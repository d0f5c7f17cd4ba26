// SPDX-License-Identifier: MIT
/*
 * The relay's settings, control-thread side (p2p_eng_relay_setup, see p2p_host.h): JSON from
 * natxd (p2p.relay.setup) checked into struct p2p_relay_conf (p2p_relay_conf_parse), published
 * once, then every shard rebuilds its protocol list (hop joins it) and shard 0 starts the hop
 * server.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "engine.h"
#include "natx/err.h"
#include "natx/log.h"
#include "p2p_host.h"
#include "p2p_int.h"
#include "p2p_relay_conf.h"

#define MOD "p2p"

int p2p_eng_relay_setup(struct engine *eng, const cJSON *conf, char *err, size_t errlen)
{
	struct p2p_eng *pe = eng->p2p;
	struct p2p_relay_conf rc;
	int ret;

	if (!pe) {
		snprintf(err, errlen, "libp2p is not enabled in this engine");
		return -ENOTCONN;
	}
	ret = p2p_relay_conf_parse(conf, &pe->idn.id, pe->laddr, pe->laddr_len, &rc, err, errlen);
	if (ret) {
		return ret;
	}
	if (__atomic_load_n(&pe->relay_on, __ATOMIC_ACQUIRE)) {
		if (!memcmp(&rc, &pe->relay_conf, sizeof(rc))) {
			return 0;
		}
		snprintf(err, errlen, "the relay runs with other settings; restart the engine");
		return -EEXIST;
	}
	pe->relay_conf = rc;
	__atomic_store_n(&pe->relay_on, 1, __ATOMIC_RELEASE);
	/* Every shard rebuilds its protocol list (hop joins), shard 0 starts the relay. */
	__atomic_add_fetch(&pe->svc_gen, 1, __ATOMIC_RELEASE);
	for (unsigned int i = 0; i < eng->nshards; i++) {
		p2p_shard_msg(eng, i, P2P_MSG_REFRESH);
	}
	pr_info(MOD,
		"relay on: reservations %u/%u per peer/%u per IP, circuits %u/%u per peer, "
		"%u s, %llu bytes per circuit (0 = default or unlimited)",
		rc.max_rsvp, rc.max_rsvp_per_peer, rc.max_rsvp_per_ip, rc.max_circuits,
		rc.max_circuits_per_peer, rc.duration_s, (unsigned long long)rc.data);
	return 0;
}
