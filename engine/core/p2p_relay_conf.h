/* SPDX-License-Identifier: MIT */
/*
 * p2p_relay_conf_parse - the relay's settings (p2p.relay.setup's "relay" object, written by
 * natxd from its [relay] section) checked into struct p2p_relay_conf. Pure: fuzzed
 * (tests/fuzz/fuzz_engine_relay_conf.c) and unit-tested (tests/p2p/test_relay_conf.c).
 */
#ifndef NATX_ENGINE_P2P_RELAY_CONF_H
#define NATX_ENGINE_P2P_RELAY_CONF_H

#include <cjson/cJSON.h>
#include <stddef.h>
#include <stdint.h>

#include "p2p_host.h"

/*
 * p2p_relay_conf_parse - keys (all optional): max_reservations, max_reservations_per_peer,
 * max_reservations_per_ip, max_circuits, max_circuits_per_peer, reservation_ttl_s (integers
 * 0..2^32-1, 0 = the relay's default), circuit_duration_s (0 = unlimited, absent = 120),
 * circuit_data_bytes (0 = unlimited, absent = 131072), allow / deny (arrays of peer IDs, at
 * most P2P_RELAY_ACL_MAX), announce (array of /ip4|ip6/ADDR/tcp/PORT[/p2p/<@self>], at most
 * P2P_RELAY_ADDRS_MAX; /p2p/<@self> is appended when missing). Without announce, @laddr (our
 * listen address) is announced unless it is 0.0.0.0 / ::. Returns 0 with *@out filled, or
 * -EINVAL with a line in @err (and *@out unspecified).
 */
int p2p_relay_conf_parse(const cJSON *conf, const struct peer_id *self, const uint8_t *laddr,
			 size_t laddr_len, struct p2p_relay_conf *out, char *err, size_t errlen);

#endif
