/* SPDX-License-Identifier: MIT */
/*
 * Tunnel configuration in natxd (docs/tunnel.md): the [tunnel] section (engine-side knobs) and
 * one [tunnel.NAME] section per service, in the main config file or in the services file
 * rathole.config_file (RATHOLE_CONFIG_FILE_NAME).
 *
 * natxd hands the tunnel to the engine through the same desired-state list as forwards
 * (engine_sup: defined at start, diffed on reload, pushed again after an engine restart):
 * config_build() appends one "engine object" spec per tunnel piece to cfg->forwards, and
 * engine_sup sends tunnel.* instead of forward.* for them (tunnel_sup_*). Spec texts:
 *
 *   tunnel-server LISTEN hb=I/T pending=M/P hs=MS visitor=MS udp_idle=MS
 *                 [transport=noise|both nxkey=KEYFILE]
 *   tunnel-client SERVER backoff=CAP_MS udp_idle=MS
 *   tunnel-svc server NAME tcp|udp BIND cred=N max_conns=M pool=P udp_channels=U bw=KBPS
 *   tunnel-svc client NAME tcp|udp LOCAL cred=N pp=0|1 udp_channels=U [noise=PUBKEY_HEX]
 *
 * The encrypted transport (docs/tunnel.md): the server spec names the file of its static
 * X25519 key (never the key: tunnel_sup_push loads or creates the file and hands the engine
 * the key), a client service spec the server's public key it pins.
 *
 * Specs are listed (natxctl forward list filters them, the HTTP API does not), so they never
 * carry the token: cred=N names an entry of this process's credential table, and a changed
 * token gets a new N, so a reload sees a changed spec and replaces the service.
 */
#ifndef NATX_CTL_TUNNEL_CFG_H
#define NATX_CTL_TUNNEL_CFG_H

#include <stdbool.h>
#include <stddef.h>

#include <cjson/cJSON.h>

struct natx_config;

enum {
	TUNNEL_CFG_SVC_MAX = 32, /* [tunnel.NAME] sections */
	TUNNEL_TOKEN_MAX = 256, /* bytes of a service token */
	TUNNEL_CRED_MAX = 1024, /* distinct tokens one natxd process remembers */
	TUNNEL_PUBKEY_HEX = 64, /* an X25519 public key as hex */
	TUNNEL_KEYFILE_MAX = 256,
};

/* One [tunnel.NAME] section. */
struct tunnel_cfg_svc {
	char name[65];
	char type[4]; /* "tcp" / "udp" */
	char token[TUNNEL_TOKEN_MAX + 1];
	char bind[256]; /* server side: public host:port, "" = none */
	char local[256]; /* client side: local service host:port, "" = none */
	unsigned max_conns; /* 0 = rathole.max_connections */
	unsigned bandwidth_kbps; /* server: cap each way, 0 = none */
	unsigned pool; /* pre-opened TCP data channels */
	unsigned udp_channels;
	bool proxy_protocol;
	char transport[8]; /* client: "plain" / "noise"; "" = noise when a pubkey is known */
	char server_pubkey[TUNNEL_PUBKEY_HEX + 1]; /* client: the pinned server key, hex, "" */
	int line; /* line of the section's first key, for errors */
	char file[256];
};

/* [tunnel] and the services. Embedded in struct natx_config. */
struct tunnel_cfg {
	unsigned heartbeat_interval, heartbeat_timeout; /* seconds */
	unsigned pending_max, pending_per_ip; /* unauthenticated handshakes */
	unsigned handshake_timeout_ms, visitor_timeout_ms, udp_idle_ms;
	unsigned backoff_cap_ms; /* client reconnect delay cap */
	char transport[8]; /* server: "plain" (default), "noise" or "both" */
	char noise_key_file
		[TUNNEL_KEYFILE_MAX]; /* server static key, "" = STATE_DIR/tunnel_noise.key */
	char server_pubkey[TUNNEL_PUBKEY_HEX + 1]; /* client: default pinned server key, hex */
	struct tunnel_cfg_svc svc[TUNNEL_CFG_SVC_MAX];
	unsigned nsvc;
};

/* tunnel_cfg_defaults - the [tunnel] defaults, no services. */
void tunnel_cfg_defaults(struct tunnel_cfg *t);

/* tunnel_cfg_section - is @section one of ours ("tunnel" or "tunnel.NAME")? */
bool tunnel_cfg_section(const char *section);

/*
 * tunnel_cfg_set - one key of a tunnel section read at @file:@line. Returns 0, or -EINVAL
 * with *@why (static text) for an unknown key or bad value.
 */
int tunnel_cfg_set(struct tunnel_cfg *t, const char *file, int line, const char *section,
		   const char *key, const char *value, const char **why);

/*
 * tunnel_cfg_finish - check the services against the rest of @cfg and append the engine
 * specs to cfg->forwards. Returns 0 or -NATX_E_CONFIG with "FILE:LINE: ..." in @err.
 */
int tunnel_cfg_finish(struct natx_config *cfg, char *err);

/*
 * tunnel_pubkey_norm - a 32-byte X25519 public key given as 64 hex digits or base64 (44
 * characters with '=', or 43) as 64 lowercase hex digits into @hex. 0 or -EINVAL.
 */
int tunnel_pubkey_norm(const char *text, char hex[TUNNEL_PUBKEY_HEX + 1]);

/* tunnel_spec_is - a tunnel engine-object spec (not a forward)? */
bool tunnel_spec_is(const char *spec);

/* tunnel_cred_intern - the table index of @token (added when new); -ENOSPC when full. */
int tunnel_cred_intern(const char *token);

/* tunnel_cred_get - the token of index @n, or NULL. */
const char *tunnel_cred_get(int n);

/*
 * tunnel_spec_request - the engine request (tunnel.server / tunnel.client / tunnel.add, or
 * tunnel.rm when @rm) for @spec, NULL when the spec is malformed or names an unknown cred.
 */
cJSON *tunnel_spec_request(const char *spec, bool rm);

/*
 * tunnel_spec_svc - for a tunnel-svc spec: role ("server"/"client") and name into the buffers
 * (at least 8 and 65 bytes). false for other specs.
 */
bool tunnel_spec_svc(const char *spec, char *role, char *name);

#endif
