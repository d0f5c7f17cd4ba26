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
	  "TARGET [--service NAME --local ADDR:PORT] [--prefer-libp2p] [--no-paid] [--direct] "
	  "[--tcp|--udp]",
	  "choose a service for TARGET and connect (prints connection info and why); with --local, "
	  "open ADDR:PORT to TARGET's service NAME by that path; paid services are candidates "
	  "unless --no-paid",
	  "target", true },
	{ "node set", "node.set", "NODE MULTIADDR...",
	  "record NODE's libp2p addresses (direct and /p2p-circuit), tried by connect NODE in that "
	  "order: direct first",
	  "node", true },
	{ "node ls", "node.ls", "", "known nodes with their addresses and tunnel offers", NULL,
	  false },
	{ "node rm", "node.rm", "NODE", "forget NODE", "node", true },
	{ "connections", "connections", "",
	  "connections with a local port: target, service, path, address used and why", NULL,
	  false },
	{ "connections close", "connections.close", "ID", "close connection ID's local port",
	  "connection", true },
	{ "engine stats", "engine.stats", "", "engine state and per-shard counters", NULL, false },
	{ "forward add", "forward.add", "SPEC",
	  "run and persist a forward, SPEC = tcp|udp:LISTEN=UPSTREAM", "spec", true },
	{ "forward list", "forward.list", "", "forwards with their source, state and counters",
	  NULL, false },
	{ "forward rm", "forward.rm", "ID|SPEC",
	  "remove a forward added with forward add (open flows continue)", "forward", true },
	{ "reload", "reload", "", "re-read the configuration (like SIGHUP); a bad one is rejected",
	  NULL, true },
	{ "invoice list", "invoice.list", "",
	  "recent invoices of the tunnel service and their state (regtest: no real money)", NULL,
	  false },
	{ "invoice settle", "invoice.settle", "HASH",
	  "regtest only: mark invoice HASH paid and print its preimage (no real money moves)",
	  "hash", true },
	{ "token list", "token.list", "", "issued tunnel tokens (L402) and whether revoked", NULL,
	  false },
	{ "token revoke", "token.revoke", "ID",
	  "revoke token ID (or a unique prefix of 8+ hex digits): refused from then on", "token",
	  true },
	{ "tunnel ls", "tunnel.ls", "",
	  "tunnel services (role, state, connections, bytes) and paid registrations", NULL, false },
	{ "tunnel add", "tunnel.add",
	  "NAME tcp|udp ADDR TOKEN [--client] [--max-conns N] [--bandwidth-kbps N] [--pool N] "
	  "[--udp-channels N] [--proxy-protocol] [--noise-pubkey KEY | --plain]",
	  "run a tunnel service: server side (ADDR = public bind address) or with --client the "
	  "node side (ADDR = local service, --noise-pubkey pins the relay's Noise key); kept in "
	  "the database",
	  "name type addr token", true },
	{ "tunnel rm", "tunnel.rm", "NAME [--client]",
	  "stop a tunnel service added with tunnel add (open connections continue)", "name", true },
	{ "bpf status", "bpf.status", "",
	  "STUN responder: XDP reflector (interface, mode, program id, counters) or the user-space "
	  "fallback and why",
	  NULL, false },
	{ "version", "version", "", "versions of natxd, the protocol and the engine", NULL, false },
	{ "peer", "peer", "", "own libp2p peer ID and listen multiaddrs", NULL, false },
	{ "ping", "ping", "MULTIADDR [-n N]",
	  "libp2p ping (/ipfs/ping/1.0.0) round trips to MULTIADDR (/ip4/A/tcp/P[/p2p/ID]), N 1..32",
	  "addr", true },
	{ "peers", "peers", "",
	  "live libp2p connections (path direct/relayed, RTT, age) and kept peers (bootstrap, "
	  "relays)",
	  NULL, false },
	{ "reserve", "reserve", "RELAY_MULTIADDR",
	  "reserve a slot on a circuit relay (/ip4/A/tcp/P/p2p/ID), keep it renewed and print our "
	  "/p2p-circuit address",
	  "addr", true },
	{ "nat probe", "nat.probe", "",
	  "ask connected peers now to dial us back (AutoNAT), then show the reachability as `nat`",
	  NULL, false },
	{ "nat", "nat", "",
	  "AutoNAT: reachability (public/private/unknown) with confidence, the addresses we ask "
	  "peers to dial, their last answers, and our AutoNAT server's counters",
	  NULL, false },
	{ "upgrades", "upgrades", "",
	  "DCUtR hole punching: on/off, our announced addresses, counters and each relayed->direct "
	  "upgrade (role, state, attempts, time to direct)",
	  NULL, false },
	{ "relay status", "relay.status", "",
	  "circuit relay server: limits, reservations, circuits, bytes relayed, top talkers", NULL,
	  false },
	{ "p2p expose", "p2p.expose", "PROTOCOL TARGET",
	  "accept libp2p streams of PROTOCOL and bridge each to a new TCP connection to TARGET "
	  "(host:port)",
	  "protocol target", true },
	{ "p2p forward", "p2p.forward", "PROTOCOL LISTEN PEER_MULTIADDR",
	  "accept TCP on LISTEN (host:port) and bridge each connection to a new PROTOCOL stream "
	  "to the peer",
	  "protocol listen addr", true },
	{ "p2p ls", "p2p.ls", "", "p2p expose/forward services with their stream counters", NULL,
	  false },
	{ "p2p close", "p2p.close", "ID", "stop p2p service ID (open streams continue)", "service",
	  true },
	{ "udp expose", "udp.expose", "NAME HOST:PORT",
	  "offer UDP service NAME (the UDP address HOST:PORT) to other natx nodes: `connect NODE "
	  "--service NAME --local udp:ADDR:PORT` reaches it (hole punched, else relayed)",
	  "name target", true },
	{ "udp unexpose", "udp.unexpose", "NAME", "stop offering UDP service NAME", "name", true },
	{ "udp ls", "udp.ls", "",
	  "UDP services offered, UDP sessions (path direct/relayed, candidates, counters)", NULL,
	  false },
	{ "identify", "identify", "MULTIADDR",
	  "dial MULTIADDR and print its identify record (agent, protocols, addresses)", "addr",
	  true },
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
