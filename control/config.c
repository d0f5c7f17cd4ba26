// SPDX-License-Identifier: MIT
/* natxd configuration: sources, precedence, validation (control/config.h). */
#include <errno.h>
#include <ini.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "config.h"
#include "fwdspec.h"
#include "natx/err.h"

enum config_type {
	CT_STR, /* any text up to the field size */
	CT_PATH, /* absolute path */
	CT_ADDR, /* host:port or "off" */
	CT_BOOL,
	CT_UINT, /* decimal within [min, max] */
	CT_LOG, /* NATX_LOG filter */
	CT_PEERS, /* comma-separated multiaddrs; repeated keys append */
	CT_DBURL, /* path, "sqlite://path", "sqlite:path" or "file:path" */
	CT_FORWARD, /* forward spec; repeated keys append */
	CT_IFNAME, /* network interface name, "" = none */
	CT_XDP_MODE, /* native|generic|off, stored as enum config_xdp_mode (unsigned) */
	CT_FALLBACK, /* auto|always|off, stored as enum config_stun_fallback (unsigned) */
};

static const char *const config_xdp_modes[] = { "native", "generic", "off", NULL };
static const char *const config_stun_fallbacks[] = { "auto", "always", "off", NULL };

const char *config_xdp_mode_name(unsigned v)
{
	return v < 3 ? config_xdp_modes[v] : "?";
}

const char *config_stun_fallback_name(unsigned v)
{
	return v < 3 ? config_stun_fallbacks[v] : "?";
}

struct config_key {
	const char *section;
	const char *key;
	const char *env;
	enum config_type type;
	size_t off; /* offset in struct natx_config */
	size_t size; /* field size for strings */
	unsigned min; /* CT_UINT bounds */
	unsigned max;
	const char *help;
};

#define F(field) offsetof(struct natx_config, field), sizeof(((struct natx_config *)0)->field)

static const struct config_key config_table[] = {
	{ "server", "address", "SERVER_ADDRESS", CT_ADDR, F(server_address), 0, 0,
	  "HTTP API listen address host:port, or off" },
	{ "control", "socket", NULL, CT_PATH, F(socket_path), 0, 0, "control socket path" },
	{ "control", "group", NULL, CT_STR, F(ctl_group), 0, 0,
	  "group whose members may run mutating commands (root and natxd's own user always may)" },
	{ "control", "max_clients", NULL, CT_UINT, F(max_clients), 1, 4096,
	  "control clients connected at once" },
	{ "store", "state_dir", NULL, CT_PATH, F(state_dir), 0, 0, "state directory" },
	{ "store", "database", "DATABASE_URL", CT_DBURL, F(database), 0, 0,
	  "SQLite database file (sqlite:// prefix accepted)" },
	{ "log", "filter", "NATX_LOG", CT_LOG, F(log_filter), 0, 0,
	  "log filter: LEVEL or MODULE=LEVEL items, comma-separated" },
	{ "nat_traversal", "enable_rathole", "NAT_TRAVERSAL_ENABLE_RATHOLE", CT_BOOL,
	  F(enable_rathole), 0, 0, "enable the paid tunnel/proxy service" },
	{ "nat_traversal", "enable_libp2p", "NAT_TRAVERSAL_ENABLE_LIBP2P", CT_BOOL,
	  F(enable_libp2p), 0, 0, "enable the libp2p service" },
	{ "nat_traversal", "libp2p_listen_addr", "NAT_TRAVERSAL_LIBP2P_LISTEN_ADDR", CT_STR,
	  F(libp2p_listen_addr), 0, 0, "libp2p listen multiaddr" },
	{ "nat_traversal", "libp2p_bootstrap_peers", "NAT_TRAVERSAL_LIBP2P_BOOTSTRAP_PEERS",
	  CT_PEERS, F(libp2p_bootstrap_peers), 0, 0,
	  "comma-separated bootstrap multiaddrs; repeated keys append" },
	{ "nat_traversal", "libp2p_keepalive_s", "NAT_TRAVERSAL_LIBP2P_KEEPALIVE_S", CT_UINT,
	  F(libp2p_keepalive_s), 0, 3600,
	  "libp2p ping interval on every connection, seconds, 0 = the engine's default (30)" },
	{ "nat_traversal", "libp2p_keepalive_timeout_s", "NAT_TRAVERSAL_LIBP2P_KEEPALIVE_TIMEOUT_S",
	  CT_UINT, F(libp2p_keepalive_timeout_s), 0, 3600,
	  "a libp2p connection whose ping stays unanswered this long is closed as dead (its "
	  "streams and bridged flows end), seconds, 0 = the ping interval" },
	{ "nat_traversal", "enable_hole_punching", "NAT_TRAVERSAL_ENABLE_HOLE_PUNCHING", CT_BOOL,
	  F(enable_hole_punching), 0, 0, "try DCUtR hole punching" },
	{ "nat_traversal", "upgrade_timeout_ms", "NAT_TRAVERSAL_UPGRADE_TIMEOUT_MS", CT_UINT,
	  F(upgrade_timeout_ms), 1000, 600000,
	  "one DCUtR upgrade attempt (exchange + dial) times out after this many ms (3 attempts)" },
	{ "nat_traversal", "enable_relay_discovery", "NAT_TRAVERSAL_ENABLE_RELAY_DISCOVERY",
	  CT_BOOL, F(enable_relay_discovery), 0, 0,
	  "reserve on bootstrap relays while AutoNAT says private" },
	{ "relay", "enabled", "NAT_TRAVERSAL_ENABLE_RELAY_SERVER", CT_BOOL, F(relay_enabled), 0, 0,
	  "serve Circuit Relay v2 (hop) in the engine (needs libp2p)" },
	{ "relay", "max_reservations", "NAT_TRAVERSAL_RELAY_MAX_RESERVATIONS", CT_UINT,
	  F(relay_max_reservations), 1, 1000000, "relay reservations in total" },
	{ "relay", "max_reservations_per_peer", "NAT_TRAVERSAL_RELAY_MAX_RESERVATIONS_PER_PEER",
	  CT_UINT, F(relay_max_reservations_per_peer), 1, 1000000,
	  "relay reservations of one peer ID" },
	{ "relay", "max_reservations_per_ip", "NAT_TRAVERSAL_RELAY_MAX_RESERVATIONS_PER_IP",
	  CT_UINT, F(relay_max_reservations_per_ip), 1, 1000000,
	  "relay reservations from one IP address" },
	{ "relay", "max_circuits", "NAT_TRAVERSAL_RELAY_MAX_CIRCUITS", CT_UINT,
	  F(relay_max_circuits), 1, 1000000, "relayed circuits in total" },
	{ "relay", "max_circuits_per_peer", "NAT_TRAVERSAL_RELAY_MAX_CIRCUITS_PER_PEER", CT_UINT,
	  F(relay_max_circuits_per_peer), 1, 1000000, "relayed circuits one peer takes part in" },
	{ "relay", "reservation_ttl_s", "NAT_TRAVERSAL_RELAY_RESERVATION_TTL_S", CT_UINT,
	  F(relay_reservation_ttl_s), 10, 86400, "reservation lifetime, seconds" },
	{ "relay", "circuit_duration_s", "NAT_TRAVERSAL_RELAY_CIRCUIT_DURATION_S", CT_UINT,
	  F(relay_circuit_duration_s), 0, 86400,
	  "lifetime of one circuit, seconds, 0 = unlimited" },
	{ "relay", "circuit_data_bytes", "NAT_TRAVERSAL_RELAY_CIRCUIT_DATA_BYTES", CT_UINT,
	  F(relay_circuit_data_bytes), 0, 4294967295u,
	  "bytes one circuit may carry per direction, 0 = unlimited" },
	{ "relay", "allow_peers", "NAT_TRAVERSAL_RELAY_ALLOW_PEERS", CT_STR, F(relay_allow_peers),
	  0, 0, "comma-separated peer IDs that may reserve, empty = anyone" },
	{ "relay", "deny_peers", "NAT_TRAVERSAL_RELAY_DENY_PEERS", CT_STR, F(relay_deny_peers), 0,
	  0, "comma-separated peer IDs that may neither reserve nor connect" },
	{ "relay", "announce_addrs", "NAT_TRAVERSAL_RELAY_ANNOUNCE_ADDRS", CT_STR,
	  F(relay_announce), 0, 0,
	  "comma-separated multiaddrs put in reservations, empty = the listen address" },
	{ "rathole", "server_address", "RATHOLE_SERVER_ADDRESS", CT_ADDR, F(rathole_server_address),
	  0, 0, "tunnel server listen address host:port on the relay" },
	{ "rathole", "client_address", "RATHOLE_CLIENT_ADDRESS", CT_STR, F(rathole_client_address),
	  0, 0, "relay host:port a node's tunnel client connects to (node side), empty = none" },
	{ "rathole", "config_file", "RATHOLE_CONFIG_FILE_NAME", CT_PATH, F(rathole_config_file), 0,
	  0, "tunnel services file for the tunnel data plane, empty = none" },
	{ "rathole", "public_host", NULL, CT_STR, F(rathole_public_host), 0, 0,
	  "host in the public addresses handed out, empty = host of server_address" },
	{ "rathole", "price_msat", NULL, CT_UINT, F(rathole_price_msat), 1, 4000000000u,
	  "price of one tunnel registration, millisatoshis" },
	{ "rathole", "invoice_expiry_s", NULL, CT_UINT, F(rathole_invoice_expiry_s), 10, 86400,
	  "lifetime of an unpaid invoice, seconds" },
	{ "rathole", "token_duration_s", NULL, CT_UINT, F(rathole_token_duration_s), 0, 31536000,
	  "validity of a tunnel token from its issue, seconds, 0 = no expiry caveat" },
	{ "rathole", "quota_mib", NULL, CT_UINT, F(rathole_quota_mib), 0, 16777216,
	  "byte quota caveat of a token, MiB, 0 = none" },
	{ "rathole", "bandwidth_kbps", NULL, CT_UINT, F(rathole_bandwidth_kbps), 0, 100000000,
	  "bandwidth cap caveat of a token, kbit/s, 0 = none" },
	{ "rathole", "port_min", NULL, CT_UINT, F(rathole_port_min), 1, 65535,
	  "lowest public port handed to a registration" },
	{ "rathole", "port_max", NULL, CT_UINT, F(rathole_port_max), 1, 65535,
	  "highest public port handed to a registration" },
	{ "rathole", "max_connections", NULL, CT_UINT, F(rathole_max_connections), 1, 1000000,
	  "connection limit of one tunnel service" },
	{ "rathole", "offer_rate", NULL, CT_UINT, F(rathole_offer_rate), 0, 100000,
	  "invoices (402 offers) per second per client address, 0 = unlimited" },
	{ "rathole", "offer_burst", NULL, CT_UINT, F(rathole_offer_burst), 1, 100000,
	  "invoices a client address may burst" },
	{ "selection", "breaker_failures", NULL, CT_UINT, F(breaker_failures), 1, 1000,
	  "consecutive failures that open a service's circuit breaker" },
	{ "selection", "breaker_cooldown_ms", NULL, CT_UINT, F(breaker_cooldown_ms), 1, 3600000,
	  "open -> half-open delay" },
	{ "selection", "retry_max", NULL, CT_UINT, F(retry_max), 0, 10,
	  "extra attempts on the same service after a retryable failure" },
	{ "selection", "retry_base_ms", NULL, CT_UINT, F(retry_base_ms), 1, 10000,
	  "first retry delay (exponential, jittered)" },
	{ "selection", "retry_max_ms", NULL, CT_UINT, F(retry_max_ms), 1, 60000,
	  "ceiling of one retry delay" },
	{ "selection", "connect_rate", NULL, CT_UINT, F(connect_rate), 0, 100000,
	  "connect requests per second per client, 0 = unlimited" },
	{ "selection", "connect_burst", NULL, CT_UINT, F(connect_burst), 1, 100000,
	  "connect requests a client may burst" },
	{ "selection", "health_window_s", NULL, CT_UINT, F(health_window_s), 1, 86400,
	  "window of the error rate that marks a service degraded" },
	{ "engine", "path", NULL, CT_PATH, F(engine_path), 0, 0,
	  "natx-engine binary (default: next to natxd)" },
	{ "engine", "socket", NULL, CT_PATH, F(engine_socket), 0, 0,
	  "private engine control socket (default: engine.sock beside the control socket)" },
	{ "engine", "shards", NULL, CT_UINT, F(engine_shards), 0, 1024,
	  "engine shards (threads), 0 = engine default" },
	{ "engine", "restart_base_ms", NULL, CT_UINT, F(engine_restart_base_ms), 1, 60000,
	  "first engine restart delay" },
	{ "engine", "restart_max_ms", NULL, CT_UINT, F(engine_restart_max_ms), 1, 3600000,
	  "ceiling of the engine restart delay" },
	{ "engine", "timeout_ms", NULL, CT_UINT, F(engine_timeout_ms), 10, 600000,
	  "deadline of one engine control call" },
	{ "engine", "drain_ms", NULL, CT_UINT, F(engine_drain_ms), 0, 600000,
	  "drain time given to the engine when natxd stops it" },
	{ "engine", "keep_on_exit", NULL, CT_BOOL, F(engine_keep_on_exit), 0, 0,
	  "leave the engine (and its flows) running when natxd exits" },
	{ "xdp", "interface", "NAT_TRAVERSAL_XDP_INTERFACE", CT_IFNAME, F(xdp_interface), 0, 0,
	  "interface of the XDP STUN reflector, empty = no XDP" },
	{ "xdp", "mode", "NAT_TRAVERSAL_XDP_MODE", CT_XDP_MODE, F(xdp_mode), 0, 0,
	  "XDP attach mode: native, generic or off (off = user-space responder only)" },
	{ "xdp", "stun_port", "NAT_TRAVERSAL_STUN_PORT", CT_UINT, F(stun_port), 1, 65535,
	  "UDP port where STUN Binding requests are answered (XDP or user space)" },
	{ "xdp", "rate", "NAT_TRAVERSAL_STUN_RATE", CT_UINT, F(stun_rate), 0, 100000000,
	  "Binding requests per second per source address, 0 = unlimited" },
	{ "xdp", "burst", "NAT_TRAVERSAL_STUN_BURST", CT_UINT, F(stun_burst), 0, 100000000,
	  "requests a source may burst, 0 = one second's worth (rate)" },
	{ "xdp", "fallback", "NAT_TRAVERSAL_STUN_FALLBACK", CT_FALLBACK, F(stun_fallback), 0, 0,
	  "user-space STUN responder: auto (when XDP is configured but not active), always "
	  "(also without an XDP interface) or off" },
	{ "xdp", "keep_on_exit", NULL, CT_BOOL, F(xdp_keep_on_exit), 0, 0,
	  "leave the reflector attached and pinned when natxd stops (a restart reuses it)" },
	{ "xdp", "pin_root", NULL, CT_PATH, F(xdp_pin_root), 0, 0,
	  "bpffs directory of natx's pins" },
	{ "forward", "forward", NULL, CT_FORWARD, 0, 0, 0, 0,
	  "forward spec tcp|udp:LISTEN=UPSTREAM; repeat the key for more" },
	{ NULL, NULL, NULL, 0, 0, 0, 0, 0, NULL },
};

#undef F

const struct config_key_info *config_keys(unsigned *n)
{
	static struct config_key_info info[sizeof(config_table) / sizeof(config_table[0])];

	for (unsigned i = 0; i < sizeof(config_table) / sizeof(config_table[0]); i++) {
		info[i] = (struct config_key_info){ config_table[i].section, config_table[i].key,
						    config_table[i].env, config_table[i].help };
	}
	*n = sizeof(config_table) / sizeof(config_table[0]) - 1;
	return info;
}

int config_parse_bool(const char *s, bool *out)
{
	static const char *const yes[] = { "1", "true", "yes", "on" };
	static const char *const no[] = { "0", "false", "no", "off" };

	for (unsigned i = 0; i < 4; i++) {
		if (!strcasecmp(s, yes[i])) {
			*out = true;
			return 0;
		}
		if (!strcasecmp(s, no[i])) {
			*out = false;
			return 0;
		}
	}
	return -EINVAL;
}

/* config_log_ok - syntax of a NATX_LOG filter, without installing it. */
static bool config_log_ok(const char *s)
{
	static const char *const lv[] = { "off", "error", "warn", "info", "debug", "trace" };

	while (*s) {
		const char *end = strchrnul(s, ',');
		const char *eq = memchr(s, '=', (size_t)(end - s));
		const char *l = eq ? eq + 1 : s;
		bool ok = false;

		if (end == s) {
			s++;
			continue;
		}
		if (eq && (eq == s || eq - s >= 32)) {
			return false;
		}
		for (unsigned i = 0; i < 6; i++) {
			if (strlen(lv[i]) == (size_t)(end - l) &&
			    !strncasecmp(l, lv[i], (size_t)(end - l))) {
				ok = true;
			}
		}
		if (!ok) {
			return false;
		}
		s = *end ? end + 1 : end;
	}
	return true;
}

static int config_copy(char *dst, size_t size, const char *v, const char **why)
{
	size_t n = strlen(v);

	if (n >= size) {
		*why = "value too long";
		return -EINVAL;
	}
	memcpy(dst, v, n + 1);
	return 0;
}

/* config_set - validate @v and store it in the field of row @k. 0 or -EINVAL with @why. */
static int config_set(struct natx_config *cfg, const struct config_key *k, const char *v,
		      const char **why)
{
	char *field = (char *)cfg + k->off;
	struct fwdspec fs;

	switch (k->type) {
	case CT_STR:
		return config_copy(field, k->size, v, why);
	case CT_PATH:
		if (v[0] && v[0] != '/') {
			*why = "must be an absolute path";
			return -EINVAL;
		}
		return config_copy(field, k->size, v, why);
	case CT_DBURL:
		if (!strncmp(v, "sqlite://", 9)) {
			v += 9;
		} else if (!strncmp(v, "sqlite:", 7)) {
			v += 7;
		} else if (!strncmp(v, "file:", 5)) {
			v += 5;
		}
		if (!v[0]) {
			*why = "empty database path";
			return -EINVAL;
		}
		return config_copy(field, k->size, v, why);
	case CT_ADDR: {
		char host[CONFIG_STR_MAX];
		uint16_t port;

		if (!strcmp(v, "off")) {
			return config_copy(field, k->size, v, why);
		}
		if (hostport_parse(v, strlen(v), host, sizeof(host), &port, why)) {
			return -EINVAL;
		}
		return config_copy(field, k->size, v, why);
	}
	case CT_BOOL:
		if (config_parse_bool(v, (bool *)field)) {
			*why = "expected a boolean (true/false, yes/no, on/off, 1/0)";
			return -EINVAL;
		}
		return 0;
	case CT_UINT: {
		char *end;
		unsigned long u;

		errno = 0;
		u = strtoul(v, &end, 10);
		if (!v[0] || *end || v[0] == '-' || errno || u < k->min || u > k->max) {
			static char msg[96];

			snprintf(msg, sizeof(msg), "expected an integer in [%u, %u]", k->min,
				 k->max);
			*why = msg;
			return -EINVAL;
		}
		*(unsigned *)field = (unsigned)u;
		return 0;
	}
	case CT_LOG:
		if (!config_log_ok(v)) {
			*why = "bad log filter (LEVEL or MODULE=LEVEL; levels off,error,warn,info,debug,trace)";
			return -EINVAL;
		}
		return config_copy(field, k->size, v, why);
	case CT_PEERS: {
		size_t have = strlen(field);
		const char *p = v;

		/* Each comma-separated item must look like a multiaddr. */
		while (*p) {
			const char *end = strchrnul(p, ',');

			while (*p == ' ') {
				p++;
			}
			if (p < end && *p != '/') {
				*why = "bootstrap peers must be multiaddrs starting with /";
				return -EINVAL;
			}
			p = *end ? end + 1 : end;
		}
		if (have + (have ? 1 : 0) + strlen(v) >= k->size) {
			*why = "too many bootstrap peers";
			return -EINVAL;
		}
		if (have && v[0]) {
			strcat(field, ",");
		}
		strcat(field, v);
		return 0;
	}
	case CT_FORWARD:
		if (fwdspec_parse(v, &fs, why)) {
			return -EINVAL;
		}
		if (cfg->nforwards == CONFIG_FORWARDS_MAX) {
			*why = "too many forwards";
			return -EINVAL;
		}
		for (unsigned i = 0; i < cfg->nforwards; i++) {
			if (!strcmp(cfg->forwards[i], v)) {
				*why = "duplicate forward";
				return -EINVAL;
			}
		}
		strcpy(cfg->forwards[cfg->nforwards++], v);
		return 0;
	case CT_IFNAME:
		/* The kernel's rules (dev_valid_name) plus "punch", which natx's pins reserve. */
		if (strlen(v) >= 16 || !strcmp(v, ".") || !strcmp(v, "..") || !strcmp(v, "punch") ||
		    strpbrk(v, "/: \t\n\r\v\f")) {
			*why = "expected an interface name (< 16 bytes, no '/', ':' or spaces, not "
			       "'punch')";
			return -EINVAL;
		}
		return config_copy(field, k->size, v, why);
	case CT_XDP_MODE:
	case CT_FALLBACK: {
		const char *const *words =
			k->type == CT_XDP_MODE ? config_xdp_modes : config_stun_fallbacks;

		for (unsigned i = 0; words[i]; i++) {
			if (!strcasecmp(v, words[i])) {
				*(unsigned *)field = i;
				return 0;
			}
		}
		*why = k->type == CT_XDP_MODE ? "expected native, generic or off" :
						"expected auto, always or off";
		return -EINVAL;
	}
	}
	*why = "internal: bad key type";
	return -EINVAL;
}

static const struct config_key *config_find(const char *section, const char *key)
{
	if (!section[0] && !strcmp(key, "forward")) {
		section = "forward";
	}
	for (const struct config_key *k = config_table; k->section; k++) {
		if (!strcmp(k->section, section) && !strcmp(k->key, key)) {
			return k;
		}
	}
	return NULL;
}

/* ---- INI file ---------------------------------------------------------------------------- */

struct config_ini {
	struct natx_config *cfg;
	const char *name; /* file name for messages */
	const char *p; /* reader position in the text */
	int line; /* line the reader last returned, 1-based */
	int err_line; /* line of the first error we saw, 0 = none */
	bool tunnel_only; /* the tunnel services file: only [tunnel*] sections */
	char msg[CONFIG_ERR_MAX];
};

/* config_ini_reader - fgets() over the text; counts lines and refuses ones inih would split. */
static char *config_ini_reader(char *str, int num, void *stream)
{
	struct config_ini *ci = stream;
	const char *nl;
	size_t n;

	if (ci->err_line && ci->msg[0] == '!') {
		return NULL;
	}
	if (!*ci->p) {
		return NULL;
	}
	nl = strchrnul(ci->p, '\n');
	n = (size_t)(nl - ci->p) + (*nl ? 1 : 0);
	ci->line++;
	if (n >= (size_t)num) {
		if (!ci->err_line) {
			ci->err_line = ci->line;
			snprintf(ci->msg, sizeof(ci->msg), "!line longer than %d bytes", num - 2);
		}
		return NULL;
	}
	memcpy(str, ci->p, n);
	str[n] = '\0';
	if (memchr(str, '\0', n)) {
		/* An embedded NUL would hide the rest of the line from inih. */
		if (!ci->err_line) {
			ci->err_line = ci->line;
			snprintf(ci->msg, sizeof(ci->msg), "!NUL byte in line");
		}
		return NULL;
	}
	ci->p += n;
	return str;
}

static int config_ini_handler(void *user, const char *section, const char *name, const char *value)
{
	struct config_ini *ci = user;
	const struct config_key *k;
	const char *why = NULL;

	if (tunnel_cfg_section(section) || ci->tunnel_only) {
		if (!tunnel_cfg_section(section)) {
			why = "only [tunnel] and [tunnel.NAME] sections belong in this file";
		} else if (!tunnel_cfg_set(&ci->cfg->tunnel, ci->name, ci->line, section, name,
					   value, &why)) {
			return 1;
		}
		if (!ci->err_line) {
			ci->err_line = ci->line;
			snprintf(ci->msg, sizeof(ci->msg), "[%.80s] %.64s = '%.64s': %s", section,
				 name, value, why);
		}
		return 0;
	}
	k = config_find(section, name);
	if (!k) {
		if (!ci->err_line) {
			ci->err_line = ci->line;
			snprintf(ci->msg, sizeof(ci->msg), "unknown key '%s' in section [%s]", name,
				 section);
		}
		return 0;
	}
	if (config_set(ci->cfg, k, value, &why)) {
		if (!ci->err_line) {
			ci->err_line = ci->line;
			snprintf(ci->msg, sizeof(ci->msg), "%s.%s = '%.64s': %s",
				 section[0] ? section : "forward", name, value, why);
		}
		return 0;
	}
	return 1;
}

/* config_parse_text - INI @text over @cfg; @tunnel_only for the tunnel services file. */
static int config_parse_text(struct natx_config *cfg, const char *name, const char *text,
			     bool tunnel_only, char *err)
{
	struct config_ini ci = { .cfg = cfg, .name = name, .p = text, .tunnel_only = tunnel_only };
	int rc = ini_parse_stream(config_ini_reader, &ci, config_ini_handler, &ci);

	if (!rc && !ci.err_line) {
		return 0;
	}
	if (ci.err_line && (rc <= 0 || rc >= ci.err_line)) {
		snprintf(err, CONFIG_ERR_MAX, "%.200s:%d: %.280s", name, ci.err_line,
			 ci.msg[0] == '!' ? ci.msg + 1 : ci.msg);
	} else if (rc > 0) {
		snprintf(err, CONFIG_ERR_MAX,
			 "%s:%d: syntax error (expected [section] or key = value)", name, rc);
	} else {
		snprintf(err, CONFIG_ERR_MAX, "%s: cannot parse (%d)", name, rc);
	}
	return -NATX_E_CONFIG;
}

int config_parse_string(struct natx_config *cfg, const char *name, const char *text, char *err)
{
	return config_parse_text(cfg, name, text, false, err);
}

/* config_read_file - the whole file, NUL-terminated, at most 1 MiB. NULL with @err on failure. */
static char *config_read_file(const char *path, char *err)
{
	enum { CONFIG_FILE_MAX = 1 << 20 };
	FILE *f = fopen(path, "re");
	char *buf;
	size_t n;

	if (!f) {
		snprintf(err, CONFIG_ERR_MAX, "%s: %s", path, strerror(errno));
		return NULL;
	}
	buf = malloc(CONFIG_FILE_MAX + 1);
	if (!buf) {
		snprintf(err, CONFIG_ERR_MAX, "%s: out of memory", path);
		goto close_file;
	}
	n = fread(buf, 1, CONFIG_FILE_MAX + 1, f);
	if (ferror(f) || n > CONFIG_FILE_MAX) {
		snprintf(err, CONFIG_ERR_MAX, "%s: %s", path,
			 ferror(f) ? "read error" : "file larger than 1 MiB");
		free(buf);
		buf = NULL;
		goto close_file;
	}
	buf[n] = '\0';
	if (strlen(buf) != n) {
		snprintf(err, CONFIG_ERR_MAX, "%s: contains a NUL byte", path);
		free(buf);
		buf = NULL;
	}
close_file:
	fclose(f);
	return buf;
}

/* config_join - @a then @b into @out (room @len), truncated (never overrun) when too long. */
static void config_join(char *out, size_t len, const char *a, const char *b)
{
	size_t na = strnlen(a, len - 1), nb = strlen(b);

	memcpy(out, a, na);
	if (nb > len - 1 - na) {
		nb = len - 1 - na;
	}
	memcpy(out + na, b, nb);
	out[na + nb] = '\0';
}

/* ---- defaults and precedence ------------------------------------------------------------- */

void config_defaults(struct natx_config *cfg, config_getenv_fn get_env)
{
	const char *xdg_run = get_env("XDG_RUNTIME_DIR");
	const char *xdg_state = get_env("XDG_STATE_HOME");
	const char *home = get_env("HOME");

	memset(cfg, 0, sizeof(*cfg));
	tunnel_cfg_defaults(&cfg->tunnel);
	strcpy(cfg->server_address, "127.0.0.1:3001");
	cfg->max_clients = 64;
	strcpy(cfg->log_filter, "info");
	cfg->enable_hole_punching = true;
	cfg->upgrade_timeout_ms = 10000;
	cfg->enable_relay_discovery = false; /* reservations only while AutoNAT says private */
	strcpy(cfg->libp2p_listen_addr, "/ip4/0.0.0.0/tcp/4001");
	/* relay limits: a public relay's (go-libp2p's) defaults, see docs/libp2p.md */
	cfg->relay_max_reservations = 128;
	cfg->relay_max_reservations_per_peer = 1;
	cfg->relay_max_reservations_per_ip = 8;
	cfg->relay_max_circuits = 1024;
	cfg->relay_max_circuits_per_peer = 16;
	cfg->relay_reservation_ttl_s = 3600;
	cfg->relay_circuit_duration_s = 120;
	cfg->relay_circuit_data_bytes = 131072;
	strcpy(cfg->rathole_server_address, "0.0.0.0:2333");
	cfg->rathole_price_msat = 50000;
	cfg->rathole_invoice_expiry_s = 600;
	cfg->rathole_token_duration_s = 3600;
	cfg->rathole_quota_mib = 1024;
	cfg->rathole_port_min = 40000;
	cfg->rathole_port_max = 40999;
	cfg->rathole_max_connections = 100;
	cfg->rathole_offer_rate = 2;
	cfg->rathole_offer_burst = 20;
	cfg->breaker_failures = 5;
	cfg->breaker_cooldown_ms = 30000;
	cfg->retry_max = 2;
	cfg->retry_base_ms = 50;
	cfg->retry_max_ms = 1000;
	cfg->connect_rate = 10;
	cfg->connect_burst = 20;
	cfg->health_window_s = 60;
	cfg->engine_restart_base_ms = 200;
	cfg->engine_restart_max_ms = 30000;
	cfg->engine_timeout_ms = 5000;
	cfg->engine_drain_ms = 2000;
	cfg->xdp_mode = CONFIG_XDP_NATIVE;
	cfg->stun_port = 3478;
	cfg->stun_rate = 20;
	cfg->xdp_keep_on_exit = true;
	strcpy(cfg->xdp_pin_root, "/sys/fs/bpf/natx");
	if (geteuid() == 0) {
		strcpy(cfg->socket_path, "/run/natx/ctl.sock");
		strcpy(cfg->state_dir, "/var/lib/natx");
		return;
	}
	if (xdg_run && xdg_run[0] == '/' && strlen(xdg_run) < PATH_MAX - 20) {
		snprintf(cfg->socket_path, sizeof(cfg->socket_path), "%s/natx/ctl.sock", xdg_run);
	} else {
		snprintf(cfg->socket_path, sizeof(cfg->socket_path), "/tmp/natx-%u/ctl.sock",
			 (unsigned)geteuid());
	}
	if (xdg_state && xdg_state[0] == '/' && strlen(xdg_state) < PATH_MAX - 20) {
		snprintf(cfg->state_dir, sizeof(cfg->state_dir), "%s/natx", xdg_state);
	} else if (home && home[0] == '/' && strlen(home) < PATH_MAX - 30) {
		snprintf(cfg->state_dir, sizeof(cfg->state_dir), "%s/.local/state/natx", home);
	} else {
		snprintf(cfg->state_dir, sizeof(cfg->state_dir), "/tmp/natx-%u/state",
			 (unsigned)geteuid());
	}
}

static int config_apply_env(struct natx_config *cfg, config_getenv_fn get_env, char *err)
{
	for (const struct config_key *k = config_table; k->section; k++) {
		const char *v = k->env ? get_env(k->env) : NULL;
		const char *why = NULL;

		if (!v) {
			continue;
		}
		if (k->type == CT_PEERS) {
			((char *)cfg + k->off)[0] = '\0'; /* the variable replaces, not appends */
		}
		if (config_set(cfg, k, v, &why)) {
			snprintf(err, CONFIG_ERR_MAX, "environment %s='%.64s': %s", k->env, v, why);
			return -NATX_E_CONFIG;
		}
	}
	return 0;
}

static int config_apply_cli(struct natx_config *cfg, const struct config_cli *cli, char *err)
{
	static const struct {
		const char *opt, *section, *key;
		size_t off;
	} map[] = {
		{ "--socket", "control", "socket", offsetof(struct config_cli, socket_path) },
		{ "--state-dir", "store", "state_dir", offsetof(struct config_cli, state_dir) },
		{ "--database", "store", "database", offsetof(struct config_cli, database) },
		{ "--listen", "server", "address", offsetof(struct config_cli, server_address) },
		{ "--engine", "engine", "path", offsetof(struct config_cli, engine_path) },
		{ "--log", "log", "filter", offsetof(struct config_cli, log_filter) },
	};
	const struct config_key *fk = config_find("forward", "forward");

	for (unsigned i = 0; i < sizeof(map) / sizeof(map[0]); i++) {
		const char *v = *(const char *const *)((const char *)cli + map[i].off);
		const char *why = NULL;

		if (v && config_set(cfg, config_find(map[i].section, map[i].key), v, &why)) {
			snprintf(err, CONFIG_ERR_MAX, "%s '%.64s': %s", map[i].opt, v, why);
			return -NATX_E_CONFIG;
		}
	}
	for (unsigned i = 0; i < cli->nforwards; i++) {
		const char *why = NULL;

		if (config_set(cfg, fk, cli->forwards[i], &why)) {
			snprintf(err, CONFIG_ERR_MAX, "--forward '%.64s': %s", cli->forwards[i],
				 why);
			return -NATX_E_CONFIG;
		}
	}
	return 0;
}

int config_build(struct natx_config *cfg, const struct config_cli *cli, config_getenv_fn get_env,
		 char *err)
{
	int rc;

	config_defaults(cfg, get_env);
	if (cli->config_file) {
		char *text = config_read_file(cli->config_file, err);

		if (!text) {
			return -NATX_E_CONFIG;
		}
		rc = config_parse_string(cfg, cli->config_file, text, err);
		free(text);
		if (rc) {
			return rc;
		}
		snprintf(cfg->file, sizeof(cfg->file), "%s", cli->config_file);
	}
	rc = config_apply_env(cfg, get_env, err);
	if (rc) {
		return rc;
	}
	rc = config_apply_cli(cfg, cli, err);
	if (rc) {
		return rc;
	}
	if (cfg->rathole_config_file[0] && access(cfg->rathole_config_file, F_OK) == 0) {
		/*
		 * The tunnel services file (RATHOLE_CONFIG_FILE_NAME): [tunnel*] sections only.
		 * One that does not exist yet counts as empty (natxd may start before it is
		 * written; SIGHUP reads it then); any other error is fatal, with FILE:LINE.
		 */
		char *text = config_read_file(cfg->rathole_config_file, err);

		if (!text) {
			return -NATX_E_CONFIG;
		}
		rc = config_parse_text(cfg, cfg->rathole_config_file, text, true, err);
		free(text);
		if (rc) {
			return rc;
		}
	}
	rc = tunnel_cfg_finish(cfg, err);
	if (rc) {
		return rc;
	}
	if (!cfg->database[0]) {
		if (strlen(cfg->state_dir) > PATH_MAX - 10) {
			snprintf(err, CONFIG_ERR_MAX, "store.state_dir: path too long");
			return -NATX_E_CONFIG;
		}
		config_join(cfg->database, sizeof(cfg->database), cfg->state_dir, "/natx.db");
	}
	if (cfg->retry_max_ms < cfg->retry_base_ms) {
		snprintf(err, CONFIG_ERR_MAX,
			 "selection.retry_max_ms (%u) is below retry_base_ms (%u)",
			 cfg->retry_max_ms, cfg->retry_base_ms);
		return -NATX_E_CONFIG;
	}
	if (cfg->rathole_port_max < cfg->rathole_port_min) {
		snprintf(err, CONFIG_ERR_MAX, "rathole.port_max (%u) is below port_min (%u)",
			 cfg->rathole_port_max, cfg->rathole_port_min);
		return -NATX_E_CONFIG;
	}
	if (!strcmp(cfg->rathole_server_address, "off")) {
		snprintf(err, CONFIG_ERR_MAX, "rathole.server_address: 'off' is not an address");
		return -NATX_E_CONFIG;
	}
	if (!cfg->xdp_pin_root[0]) {
		snprintf(err, CONFIG_ERR_MAX, "xdp.pin_root: must not be empty");
		return -NATX_E_CONFIG;
	}
	if (cfg->engine_restart_max_ms < cfg->engine_restart_base_ms) {
		snprintf(err, CONFIG_ERR_MAX,
			 "engine.restart_max_ms (%u) is below restart_base_ms (%u)",
			 cfg->engine_restart_max_ms, cfg->engine_restart_base_ms);
		return -NATX_E_CONFIG;
	}
	return 0;
}

void config_run_dir(const struct natx_config *cfg, char *out, size_t len)
{
	const char *slash = strrchr(cfg->socket_path, '/');
	size_t n = slash ? (size_t)(slash - cfg->socket_path) : 0;

	if (!n) {
		snprintf(out, len, "/");
		return;
	}
	snprintf(out, len, "%.*s", (int)n, cfg->socket_path);
}

void config_engine_socket(const struct natx_config *cfg, char *out, size_t len)
{
	char dir[PATH_MAX];

	if (cfg->engine_socket[0]) {
		snprintf(out, len, "%s", cfg->engine_socket);
		return;
	}
	config_run_dir(cfg, dir, sizeof(dir));
	config_join(out, len, dir, "/engine.sock");
}
