/* SPDX-License-Identifier: MIT */
/*
 * natxd configuration. Sources, highest precedence first: command line, environment, config
 * file (INI, parsed by libinih), embedded defaults. Every key is one row of a table (config.c)
 * that names its section, key, environment variable, type and bounds; docs/control.md and
 * deploy/natx.conf.example list the same keys.
 *
 * Errors name their source: "FILE:LINE: message" for the file, "environment NAME: message",
 * "--option: message". Building a config never touches the system (no sockets, no files
 * created), so natxd can reject a bad config before it starts anything.
 */
#ifndef NATX_CTL_CONFIG_H
#define NATX_CTL_CONFIG_H

#include <limits.h>
#include <stdbool.h>
#include <stdint.h>

#include "natx/ctl_proto.h"
#include "tunnel_cfg.h"

enum {
	CONFIG_FORWARDS_MAX = 64, /* forwards from the config file and command line */
	CONFIG_ERR_MAX = 512, /* bytes of an error message */
	CONFIG_STR_MAX = 256, /* bytes of a short string value */
	CONFIG_LONG_MAX = 4096, /* bytes of a long string value (bootstrap peers) */
};

enum config_xdp_mode {
	CONFIG_XDP_NATIVE = 0,
	CONFIG_XDP_GENERIC,
	CONFIG_XDP_OFF,
};

enum config_stun_fallback {
	CONFIG_STUN_FALLBACK_AUTO = 0, /* user space answers when XDP is configured but inactive */
	CONFIG_STUN_FALLBACK_ALWAYS, /* ... and also when no XDP interface is configured */
	CONFIG_STUN_FALLBACK_OFF, /* never: no STUN answers without XDP */
};

/* config_choice_name - the configuration word of value @v of a choice key ("native"...). */
const char *config_xdp_mode_name(unsigned v);
const char *config_stun_fallback_name(unsigned v);

struct natx_config {
	/* [server] */
	char server_address[CONFIG_STR_MAX]; /* HTTP API host:port, "off" disables it */
	/* [control] */
	char socket_path[PATH_MAX]; /* natxctl socket */
	char ctl_group[CONFIG_STR_MAX]; /* group allowed mutating commands, "" = none */
	unsigned max_clients; /* control clients at once */
	/* [store] */
	char state_dir[PATH_MAX];
	char database[PATH_MAX]; /* SQLite file */
	/* [log] */
	char log_filter[CONFIG_STR_MAX]; /* NATX_LOG syntax */
	/* [nat_traversal] */
	bool enable_rathole;
	bool enable_libp2p;
	bool enable_hole_punching;
	bool enable_relay_discovery;
	unsigned int upgrade_timeout_ms; /* one DCUtR attempt's timeout */
	char libp2p_listen_addr[CONFIG_STR_MAX];
	char libp2p_bootstrap_peers[CONFIG_LONG_MAX]; /* comma-separated multiaddrs */
	unsigned libp2p_keepalive_s; /* engine's libp2p ping interval, 0 = its default (30 s) */
	unsigned libp2p_keepalive_timeout_s; /* unanswered ping: connection dead, 0 = interval */
	/* [relay]: the Circuit Relay v2 hop server in the engine (docs/libp2p.md) */
	bool relay_enabled;
	unsigned relay_max_reservations; /* in total */
	unsigned relay_max_reservations_per_peer;
	unsigned relay_max_reservations_per_ip;
	unsigned relay_max_circuits; /* in total */
	unsigned relay_max_circuits_per_peer;
	unsigned relay_reservation_ttl_s;
	unsigned relay_circuit_duration_s; /* 0 = unlimited */
	unsigned relay_circuit_data_bytes; /* per direction, 0 = unlimited */
	char relay_allow_peers[CONFIG_LONG_MAX]; /* comma-separated peer IDs, "" = anyone */
	char relay_deny_peers[CONFIG_LONG_MAX]; /* comma-separated peer IDs */
	char relay_announce[CONFIG_LONG_MAX]; /* comma-separated multiaddrs, "" = listen addr */
	/* [rathole]: the paid tunnel service (docs/l402.md) */
	char rathole_server_address[CONFIG_STR_MAX]; /* tunnel server host:port on the relay */
	char rathole_client_address[CONFIG_STR_MAX]; /* relay a node's tunnel client dials, "" */
	char rathole_config_file[PATH_MAX]; /* tunnel services file for the data plane, "" */
	char rathole_public_host[CONFIG_STR_MAX]; /* host in public addresses, "" = server's */
	unsigned rathole_price_msat; /* price of one tunnel, millisatoshis */
	unsigned rathole_invoice_expiry_s; /* lifetime of an unpaid invoice */
	unsigned rathole_token_duration_s; /* <svc>_valid_until = issue time + this, 0 = none */
	unsigned rathole_quota_mib; /* <svc>_max_bytes in MiB, 0 = no quota caveat */
	unsigned rathole_bandwidth_kbps; /* <svc>_bandwidth_kbps, 0 = no cap caveat */
	unsigned rathole_port_min; /* public ports handed to registrations: [min, max] */
	unsigned rathole_port_max;
	unsigned rathole_max_connections; /* connection limit per tunnel service */
	unsigned rathole_offer_rate; /* 402 offers per second per client, 0 = unlimited */
	unsigned rathole_offer_burst;
	/* [selection] */
	unsigned breaker_failures;
	unsigned breaker_cooldown_ms;
	unsigned retry_max;
	unsigned retry_base_ms;
	unsigned retry_max_ms;
	unsigned connect_rate; /* connects per second per client, 0 = unlimited */
	unsigned connect_burst;
	unsigned health_window_s;
	/* [engine] */
	char engine_path[PATH_MAX]; /* "" = natx-engine next to natxd */
	char engine_socket[PATH_MAX]; /* "" = engine.sock beside the control socket */
	unsigned engine_shards; /* 0 = engine default */
	unsigned engine_restart_base_ms;
	unsigned engine_restart_max_ms;
	unsigned engine_timeout_ms; /* reply deadline of one engine call */
	unsigned engine_drain_ms; /* drain time asked of the engine at natxd stop */
	bool engine_keep_on_exit; /* leave the engine running when natxd stops */
	/* [xdp]: the STUN reflector and its user-space fallback (docs/bpf.md "Control") */
	char xdp_interface[CONFIG_STR_MAX]; /* "" = no XDP; shorter than IF_NAMESIZE */
	unsigned xdp_mode; /* enum config_xdp_mode */
	unsigned stun_port; /* UDP port answered by XDP and by the fallback */
	unsigned stun_rate; /* Binding requests per second per source, 0 = unlimited */
	unsigned stun_burst; /* bucket size, 0 = stun_rate */
	unsigned stun_fallback; /* enum config_stun_fallback */
	bool xdp_keep_on_exit; /* leave the reflector attached and pinned when natxd stops */
	char xdp_pin_root[PATH_MAX]; /* bpffs directory of natx's pins */
	/* [forward] */
	char forwards[CONFIG_FORWARDS_MAX][CTL_SPEC_MAX + 1];
	unsigned nforwards; /* also the tunnel's engine objects (tunnel_cfg.h), appended last */
	/* [tunnel] and [tunnel.NAME] (tunnel_cfg.h) */
	struct tunnel_cfg tunnel;
	/* where it came from */
	char file[PATH_MAX]; /* "" when no file was read */
};

/* Command-line values; NULL = not given. natxd.c fills it from argv. */
struct config_cli {
	const char *config_file;
	const char *socket_path;
	const char *state_dir;
	const char *database;
	const char *server_address;
	const char *engine_path;
	const char *log_filter;
	const char *forwards[CONFIG_FORWARDS_MAX];
	unsigned nforwards;
};

/* Where the environment comes from: getenv in natxd, a table in tests. */
typedef const char *(*config_getenv_fn)(const char *name);

/*
 * config_build - defaults, then @cli->config_file (if any), then the environment through
 * @get_env, then @cli. Returns 0, or -NATX_E_CONFIG with a one-line message in @err (room
 * CONFIG_ERR_MAX). @cfg is fully written on success, undefined on failure.
 */
int config_build(struct natx_config *cfg, const struct config_cli *cli, config_getenv_fn get_env,
		 char *err);

/*
 * config_parse_string - apply INI text @text (named @name in messages) over @cfg. For the
 * fuzzer and tests. Returns 0 or -NATX_E_CONFIG with @err.
 */
int config_parse_string(struct natx_config *cfg, const char *name, const char *text, char *err);

/* config_defaults - embedded defaults; paths depend on the effective uid and XDG variables. */
void config_defaults(struct natx_config *cfg, config_getenv_fn get_env);

/* config_run_dir - directory of the control socket (where the engine socket also lives). */
void config_run_dir(const struct natx_config *cfg, char *out, size_t len);

/* config_engine_socket - the private engine socket path. */
void config_engine_socket(const struct natx_config *cfg, char *out, size_t len);

/* config_parse_bool - "1/0, true/false, yes/no, on/off" (any case). 0 or -EINVAL. */
int config_parse_bool(const char *s, bool *out);

/* Printing the key table (natxd --help-config and tests). */
struct config_key_info {
	const char *section;
	const char *key;
	const char *env; /* NULL when there is no environment variable */
	const char *help;
};

/* config_keys - the key table, terminated by a NULL section. */
const struct config_key_info *config_keys(unsigned *n);

#endif
