/* SPDX-License-Identifier: MIT */
/*
 * Control socket requests (ENGINE-CTL.md): one JSON object per line,
 *   {"v":1,"id":<number|string>,"cmd":"<name>", ...arguments}
 * ctl_req_parse() turns one line into struct ctl_req or a stable error code. It is a pure
 * function of its input (fuzzed: tests/fuzz/fuzz_engine_ctl_parse.c).
 */
#ifndef NATX_ENGINE_CTL_PARSE_H
#define NATX_ENGINE_CTL_PARSE_H

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "spec.h"

enum { CTL_LINE_MAX = 65536, CTL_MSG_MAX = 200 };

enum ctl_cmd {
	CTL_HELLO = 1,
	CTL_FWD_ADD,
	CTL_FWD_RM,
	CTL_FWD_LIST,
	CTL_STATS,
	CTL_SHUTDOWN,
	CTL_P2P_PEER,
	CTL_P2P_PING,
	CTL_P2P_IDENTIFY,
	CTL_P2P_EXPOSE,
	CTL_P2P_FORWARD,
	CTL_P2P_LS,
	CTL_P2P_CLOSE,
	CTL_STUN_SET,
	CTL_STUN_STOP,
	CTL_P2P_RELAY_SETUP,
	CTL_P2P_RELAY_STATUS,
	CTL_P2P_RESERVE,
	CTL_P2P_KEEP,
	CTL_P2P_PEERS,
	CTL_P2P_DCUTR, /* {"enabled": bool, "prime_ttl": 0..255 optional} */
	CTL_P2P_UPGRADES,
	CTL_P2P_NAT, /* AutoNAT reachability */
	CTL_P2P_NAT_PROBE, /* the same, after starting a round of dial-back requests */
	CTL_TUN_SERVER, /* tunnel.* (tun_eng.h): arguments in req->args */
	CTL_TUN_CLIENT,
	CTL_TUN_ADD,
	CTL_TUN_RM,
	CTL_TUN_LS,
	CTL_PUNCH_OPEN, /* punch.* (punch_eng.h): arguments in req->args */
	CTL_PUNCH_CLOSE,
	CTL_PUNCH_LS,
};

enum { CTL_ADDR_MAX = 1024, CTL_PING_MAX = 32 };

struct ctl_req {
	enum ctl_cmd cmd;
	cJSON *id; /* owned copy of the request id, or NULL */
	char spec[SPEC_TEXT_MAX]; /* forward.add, forward.rm by spec */
	bool has_spec;
	uint32_t fwd_id; /* forward.rm by id */
	bool has_fwd_id;
	uint32_t drain_ms; /* shutdown */
	bool has_drain_ms;
	char addr[CTL_ADDR_MAX]; /* p2p.ping, p2p.identify: multiaddr text */
	bool has_addr;
	uint32_t count; /* p2p.ping: 1..CTL_PING_MAX, 0 = absent */
	uint32_t timeout_ms; /* p2p.ping, p2p.identify: 0 = default */
	char protocol[CTL_ADDR_MAX]; /* p2p.expose, p2p.forward */
	char target[CTL_ADDR_MAX]; /* p2p.expose: host:port */
	char listen[CTL_ADDR_MAX]; /* p2p.forward: host:port; stun.set: IPv4:PORT / [IPv6]:PORT */
	uint32_t rate, burst; /* stun.set: per-source Binding limit, 0 = unlimited / = rate */
	cJSON *relay; /* p2p.relay.setup: owned copy of the settings object */
	bool enabled, has_enabled; /* p2p.dcutr */
	int prime_ttl; /* p2p.dcutr: -1 absent */
	bool flow; /* p2p.forward: carry streams as /natx/flow/1.0.0 flows (docs/migration.md) */
	uint32_t repair_ms; /* p2p.forward with flow: path repair deadline, 0 = default */
	char alt_addrs[4][CTL_ADDR_MAX]; /* p2p.forward with flow: other addresses of the peer */
	uint32_t n_alt;
	bool relay_disc, has_relay_disc; /* p2p.dcutr: "relay_discovery" */
	uint32_t attempt_timeout_ms; /* p2p.dcutr: "attempt_timeout_ms", 0 absent */
	cJSON *args; /* tunnel.*: owned copy of the request object */
};

/*
 * ctl_req_parse - parse @len bytes of @line (no newline) into @req. Returns 0, or -EINVAL
 * with *code set to a stable error code ("bad_request", "bad_version", "unknown_cmd") and a
 * human reason in @msg (CTL_MSG_MAX bytes). req->id is set whenever the id could be read,
 * even on error, so the reply can echo it; ctl_req_cleanup() frees it in every case.
 */
int ctl_req_parse(const char *line, size_t len, struct ctl_req *req, const char **code, char *msg);

/* ctl_req_cleanup - free what ctl_req_parse() allocated; safe on a zeroed request. */
void ctl_req_cleanup(struct ctl_req *req);

#endif
