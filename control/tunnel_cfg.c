// SPDX-License-Identifier: MIT
/* Tunnel configuration and the engine-object specs derived from it (control/tunnel_cfg.h). */
#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "config.h"
#include "natx/err.h"
#include "natx/keytext.h"
#include "tunnel_cfg.h"

void tunnel_cfg_defaults(struct tunnel_cfg *t)
{
	memset(t, 0, sizeof(*t));
	t->heartbeat_interval = 10;
	t->heartbeat_timeout = 30;
	t->pending_max = 256;
	t->pending_per_ip = 64;
	t->handshake_timeout_ms = 5000;
	t->visitor_timeout_ms = 10000;
	t->udp_idle_ms = 30000;
	t->backoff_cap_ms = 2000;
	strcpy(t->transport, "plain");
}

int tunnel_pubkey_norm(const char *text, char hex[TUNNEL_PUBKEY_HEX + 1])
{
	uint8_t key[KEY32_LEN];

	if (key32_parse(text, key)) {
		return -EINVAL;
	}
	key32_hex(key, hex);
	return 0;
}

/* tunnel_transport - "plain", "noise" (and "both" when @both) into @out. */
static int tunnel_transport(const char *v, bool both, char out[8], const char **why)
{
	if (strcmp(v, "plain") && strcmp(v, "noise") && (!both || strcmp(v, "both"))) {
		*why = both ? "expected plain, noise or both" : "expected plain or noise";
		return -EINVAL;
	}
	strcpy(out, v);
	return 0;
}

/* tunnel_pubkey - a server public key option (hex or base64) into @hex. */
static int tunnel_pubkey(const char *v, char hex[TUNNEL_PUBKEY_HEX + 1], const char **why)
{
	if (tunnel_pubkey_norm(v, hex)) {
		*why = "expected the server's X25519 public key: 64 hex digits or base64";
		return -EINVAL;
	}
	return 0;
}

bool tunnel_cfg_section(const char *section)
{
	return !strcmp(section, "tunnel") || !strncmp(section, "tunnel.", 7);
}

/* tunnel_name_ok - the service-name rule of the wire protocol ([A-Za-z0-9._-], 1..64). */
static bool tunnel_name_ok(const char *s)
{
	size_t n = strlen(s);

	if (!n || n > 64) {
		return false;
	}
	for (size_t i = 0; i < n; i++) {
		char c = s[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '.' || c == '_' || c == '-')) {
			return false;
		}
	}
	return true;
}

/* tunnel_uint - decimal @v within [lo, hi]. */
static int tunnel_uint(const char *v, unsigned lo, unsigned hi, unsigned *out, const char **why)
{
	char *end;
	unsigned long n;

	if (!v[0] || v[0] == '-' || v[0] == '+') {
		*why = "expected a decimal number";
		return -EINVAL;
	}
	n = strtoul(v, &end, 10);
	if (*end) {
		*why = "expected a decimal number";
		return -EINVAL;
	}
	if (n < lo || n > hi) {
		*why = "out of range";
		return -EINVAL;
	}
	*out = (unsigned)n;
	return 0;
}

/* tunnel_hostport - "host:port" or "[v6]:port" without spaces (syntax only). */
static int tunnel_hostport(const char *v, char *out, size_t size, const char **why)
{
	const char *colon = strrchr(v, ':');
	char *end;
	long port;

	if (!colon || colon == v || strlen(v) >= size || strpbrk(v, " \t=")) {
		*why = "expected host:port";
		return -EINVAL;
	}
	port = strtol(colon + 1, &end, 10);
	if (!colon[1] || *end || port < 0 || port > 65535) {
		*why = "expected host:port with a port 0..65535";
		return -EINVAL;
	}
	strcpy(out, v);
	return 0;
}

int tunnel_cfg_set(struct tunnel_cfg *t, const char *file, int line, const char *section,
		   const char *key, const char *value, const char **why)
{
	struct tunnel_cfg_svc *s = NULL;
	const char *name;

	if (!strcmp(section, "tunnel")) {
		static const struct {
			const char *key;
			size_t off;
			unsigned lo, hi;
		} keys[] = {
			{ "heartbeat_interval", offsetof(struct tunnel_cfg, heartbeat_interval), 1,
			  3600 },
			{ "heartbeat_timeout", offsetof(struct tunnel_cfg, heartbeat_timeout), 2,
			  7200 },
			{ "pending_max", offsetof(struct tunnel_cfg, pending_max), 1, 65536 },
			{ "pending_per_ip", offsetof(struct tunnel_cfg, pending_per_ip), 1, 65536 },
			{ "handshake_timeout_ms", offsetof(struct tunnel_cfg, handshake_timeout_ms),
			  100, 600000 },
			{ "visitor_timeout_ms", offsetof(struct tunnel_cfg, visitor_timeout_ms),
			  100, 600000 },
			{ "udp_idle_ms", offsetof(struct tunnel_cfg, udp_idle_ms), 100, 86400000 },
			{ "backoff_cap_ms", offsetof(struct tunnel_cfg, backoff_cap_ms), 200,
			  600000 },
		};

		for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
			if (!strcmp(key, keys[i].key)) {
				return tunnel_uint(value, keys[i].lo, keys[i].hi,
						   (unsigned *)((char *)t + keys[i].off), why);
			}
		}
		if (!strcmp(key, "transport")) {
			return tunnel_transport(value, true, t->transport, why);
		}
		if (!strcmp(key, "server_pubkey")) {
			return tunnel_pubkey(value, t->server_pubkey, why);
		}
		if (!strcmp(key, "noise_key_file")) {
			if (!value[0] || strlen(value) >= sizeof(t->noise_key_file) ||
			    strpbrk(value, " \t")) {
				*why = "a path without spaces, at most 255 bytes";
				return -EINVAL;
			}
			strcpy(t->noise_key_file, value);
			return 0;
		}
		*why = "unknown key";
		return -EINVAL;
	}
	name = section + 7;
	if (!tunnel_name_ok(name)) {
		*why = "service name (after 'tunnel.') must be 1-64 characters of [A-Za-z0-9._-]";
		return -EINVAL;
	}
	for (unsigned i = 0; i < t->nsvc; i++) {
		if (!strcmp(t->svc[i].name, name)) {
			s = &t->svc[i];
		}
	}
	if (!s) {
		if (t->nsvc == TUNNEL_CFG_SVC_MAX) {
			*why = "too many tunnel services";
			return -EINVAL;
		}
		s = &t->svc[t->nsvc++];
		memset(s, 0, sizeof(*s));
		strcpy(s->name, name);
		s->line = line;
		snprintf(s->file, sizeof(s->file), "%s", file);
		s->pool = 4;
		s->udp_channels = 2;
	}
	if (!strcmp(key, "type")) {
		if (strcmp(value, "tcp") && strcmp(value, "udp")) {
			*why = "expected tcp or udp";
			return -EINVAL;
		}
		strcpy(s->type, value);
		return 0;
	}
	if (!strcmp(key, "token")) {
		if (!value[0] || strlen(value) > TUNNEL_TOKEN_MAX) {
			*why = "a token is 1-256 bytes";
			return -EINVAL;
		}
		strcpy(s->token, value);
		return 0;
	}
	if (!strcmp(key, "bind")) {
		return tunnel_hostport(value, s->bind, sizeof(s->bind), why);
	}
	if (!strcmp(key, "local")) {
		return tunnel_hostport(value, s->local, sizeof(s->local), why);
	}
	if (!strcmp(key, "max_conns")) {
		return tunnel_uint(value, 0, 1000000, &s->max_conns, why);
	}
	if (!strcmp(key, "bandwidth_kbps")) {
		return tunnel_uint(value, 0, 100000000, &s->bandwidth_kbps, why);
	}
	if (!strcmp(key, "pool")) {
		return tunnel_uint(value, 0, 32, &s->pool, why);
	}
	if (!strcmp(key, "udp_channels")) {
		return tunnel_uint(value, 1, 8, &s->udp_channels, why);
	}
	if (!strcmp(key, "transport")) {
		return tunnel_transport(value, false, s->transport, why);
	}
	if (!strcmp(key, "server_pubkey")) {
		return tunnel_pubkey(value, s->server_pubkey, why);
	}
	if (!strcmp(key, "proxy_protocol")) {
		if (config_parse_bool(value, &s->proxy_protocol)) {
			*why = "expected yes or no";
			return -EINVAL;
		}
		return 0;
	}
	*why = "unknown key";
	return -EINVAL;
}

/* ---- credentials ---- */

static pthread_mutex_t tunnel_cred_lock = PTHREAD_MUTEX_INITIALIZER;
static char *tunnel_creds[TUNNEL_CRED_MAX];
static int tunnel_ncreds;

int tunnel_cred_intern(const char *token)
{
	int n = -ENOSPC;

	pthread_mutex_lock(&tunnel_cred_lock);
	for (int i = 0; i < tunnel_ncreds; i++) {
		if (!strcmp(tunnel_creds[i], token)) {
			n = i;
			goto unlock;
		}
	}
	if (tunnel_ncreds < TUNNEL_CRED_MAX) {
		tunnel_creds[tunnel_ncreds] = strdup(token);
		n = tunnel_creds[tunnel_ncreds] ? tunnel_ncreds++ : -ENOMEM;
	}
unlock:
	pthread_mutex_unlock(&tunnel_cred_lock);
	return n;
}

const char *tunnel_cred_get(int n)
{
	const char *t = NULL;

	pthread_mutex_lock(&tunnel_cred_lock);
	if (n >= 0 && n < tunnel_ncreds) {
		t = tunnel_creds[n];
	}
	pthread_mutex_unlock(&tunnel_cred_lock);
	return t;
}

/* ---- specs ---- */

/* tunnel_cfg_add_spec - append @spec to cfg->forwards. */
static int tunnel_cfg_add_spec(struct natx_config *cfg, const char *spec, char *err)
{
	if (cfg->nforwards == CONFIG_FORWARDS_MAX) {
		snprintf(err, CONFIG_ERR_MAX, "tunnel: too many forwards and tunnel services (%d)",
			 CONFIG_FORWARDS_MAX);
		return -NATX_E_CONFIG;
	}
	if (strlen(spec) > CTL_SPEC_MAX) {
		snprintf(err, CONFIG_ERR_MAX, "tunnel: an address is too long ('%.64s...')", spec);
		return -NATX_E_CONFIG;
	}
	snprintf(cfg->forwards[cfg->nforwards++], CTL_SPEC_MAX + 1, "%s", spec);
	return 0;
}

/*
 * tunnel_cfg_env - RATHOLE_TRANSPORT, RATHOLE_NOISE_KEY_FILE and RATHOLE_SERVER_PUBKEY over
 * the [tunnel] keys of the same meaning (environment over file, as for natxd's other keys).
 * Read with getenv: config.c's key table does not cover [tunnel] keys.
 */
static int tunnel_cfg_env(struct tunnel_cfg *t, char *err)
{
	static const struct {
		const char *env, *key;
	} map[] = {
		{ "RATHOLE_TRANSPORT", "transport" },
		{ "RATHOLE_NOISE_KEY_FILE", "noise_key_file" },
		{ "RATHOLE_SERVER_PUBKEY", "server_pubkey" },
	};

	for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++) {
		const char *v = getenv(map[i].env), *why = NULL;

		if (v && tunnel_cfg_set(t, "environment", 0, "tunnel", map[i].key, v, &why)) {
			snprintf(err, CONFIG_ERR_MAX, "environment %s='%.64s': %s", map[i].env, v,
				 why);
			return -NATX_E_CONFIG;
		}
	}
	return 0;
}

int tunnel_cfg_finish(struct natx_config *cfg, char *err)
{
	const struct tunnel_cfg *t = &cfg->tunnel;
	bool server = cfg->enable_rathole && cfg->rathole_server_address[0];
	bool client = cfg->rathole_client_address[0] != '\0';
	char spec[1024];
	int rc;

	if (t->heartbeat_timeout <= t->heartbeat_interval) {
		snprintf(err, CONFIG_ERR_MAX,
			 "tunnel.heartbeat_timeout (%u) must be above heartbeat_interval (%u)",
			 t->heartbeat_timeout, t->heartbeat_interval);
		return -NATX_E_CONFIG;
	}
	rc = tunnel_cfg_env(&cfg->tunnel, err);
	if (rc) {
		return rc;
	}
	if (server) {
		int n = snprintf(spec, sizeof(spec),
				 "tunnel-server %s hb=%u/%u pending=%u/%u hs=%u visitor=%u "
				 "udp_idle=%u",
				 cfg->rathole_server_address, t->heartbeat_interval,
				 t->heartbeat_timeout, t->pending_max, t->pending_per_ip,
				 t->handshake_timeout_ms, t->visitor_timeout_ms, t->udp_idle_ms);

		if (strcmp(t->transport, "plain")) {
			char def[PATH_MAX + 32];
			const char *kf = t->noise_key_file;

			if (!kf[0]) {
				snprintf(def, sizeof(def), "%s/tunnel_noise.key", cfg->state_dir);
				kf = def;
			}
			if (strpbrk(kf, " \t")) {
				snprintf(err, CONFIG_ERR_MAX,
					 "tunnel.noise_key_file '%.64s': a path without spaces",
					 kf);
				return -NATX_E_CONFIG;
			}
			snprintf(spec + n, sizeof(spec) - (size_t)n, " transport=%s nxkey=%s",
				 t->transport, kf);
		}
		rc = tunnel_cfg_add_spec(cfg, spec, err);
		if (rc) {
			return rc;
		}
	}
	if (client) {
		if (strpbrk(cfg->rathole_client_address, " \t") ||
		    !strchr(cfg->rathole_client_address, ':')) {
			snprintf(err, CONFIG_ERR_MAX,
				 "rathole.client_address '%.64s': expected host:port",
				 cfg->rathole_client_address);
			return -NATX_E_CONFIG;
		}
		snprintf(spec, sizeof(spec), "tunnel-client %s backoff=%u udp_idle=%u",
			 cfg->rathole_client_address, t->backoff_cap_ms, t->udp_idle_ms);
		rc = tunnel_cfg_add_spec(cfg, spec, err);
		if (rc) {
			return rc;
		}
	}
	for (unsigned i = 0; i < t->nsvc; i++) {
		const struct tunnel_cfg_svc *s = &t->svc[i];
		const char *miss = !s->type[0]		       ? "type" :
				   !s->token[0]		       ? "token" :
				   !s->bind[0] && !s->local[0] ? "bind (server) or local (client)" :
								 NULL;
		int cred;

		if (miss) {
			snprintf(err, CONFIG_ERR_MAX, "%.200s:%d: [tunnel.%s] needs %s", s->file,
				 s->line, s->name, miss);
			return -NATX_E_CONFIG;
		}
		if (s->bind[0] && !server) {
			snprintf(err, CONFIG_ERR_MAX,
				 "%.200s:%d: [tunnel.%s] has bind, but the tunnel server is off "
				 "(nat_traversal.enable_rathole, rathole.server_address)",
				 s->file, s->line, s->name);
			return -NATX_E_CONFIG;
		}
		if (s->local[0] && !client) {
			snprintf(err, CONFIG_ERR_MAX,
				 "%.200s:%d: [tunnel.%s] has local, but rathole.client_address is "
				 "not set",
				 s->file, s->line, s->name);
			return -NATX_E_CONFIG;
		}
		cred = tunnel_cred_intern(s->token);
		if (cred < 0) {
			snprintf(err, CONFIG_ERR_MAX, "tunnel: too many distinct tokens");
			return -NATX_E_CONFIG;
		}
		if (s->bind[0]) {
			snprintf(spec, sizeof(spec),
				 "tunnel-svc server %s %s %s cred=%d max_conns=%u pool=%u "
				 "udp_channels=%u bw=%u",
				 s->name, s->type, s->bind, cred,
				 s->max_conns ? s->max_conns : cfg->rathole_max_connections,
				 s->pool, s->udp_channels, s->bandwidth_kbps);
			rc = tunnel_cfg_add_spec(cfg, spec, err);
			if (rc) {
				return rc;
			}
		}
		if (s->local[0]) {
			const char *pub = s->server_pubkey[0] ? s->server_pubkey : t->server_pubkey;
			bool noise = s->transport[0] ? !strcmp(s->transport, "noise") : pub[0];

			if (noise && !pub[0]) {
				snprintf(
					err, CONFIG_ERR_MAX,
					"%.200s:%d: [tunnel.%s] transport = noise needs server_pubkey "
					"(here or in [tunnel])",
					s->file, s->line, s->name);
				return -NATX_E_CONFIG;
			}
			snprintf(spec, sizeof(spec),
				 "tunnel-svc client %s %s %s cred=%d pp=%d udp_channels=%u%s%s",
				 s->name, s->type, s->local, cred, s->proxy_protocol ? 1 : 0,
				 s->udp_channels, noise ? " noise=" : "", noise ? pub : "");
			rc = tunnel_cfg_add_spec(cfg, spec, err);
			if (rc) {
				return rc;
			}
		}
	}
	return 0;
}

bool tunnel_spec_is(const char *spec)
{
	return !strncmp(spec, "tunnel-", 7);
}

/* tunnel_words - split @spec (copied into @buf) into at most @max words. */
static int tunnel_words(const char *spec, char *buf, size_t size, char **w, int max)
{
	char *save, *p;
	int n = 0;

	if (strlen(spec) >= size) {
		return -1;
	}
	strcpy(buf, spec);
	for (p = strtok_r(buf, " ", &save); p && n < max; p = strtok_r(NULL, " ", &save)) {
		w[n++] = p;
	}
	return p ? -1 : n;
}

/* tunnel_kv - add "k=v" word @w as number @key (v decimal) to @o; "a/b" gives two keys. */
static bool tunnel_kv(cJSON *o, const char *w, const char *k, const char *key, const char *key2)
{
	size_t kl = strlen(k);
	char *end;
	unsigned long a, b;

	if (strncmp(w, k, kl) || w[kl] != '=') {
		return false;
	}
	a = strtoul(w + kl + 1, &end, 10);
	if (key2) {
		if (*end != '/') {
			return false;
		}
		b = strtoul(end + 1, &end, 10);
		cJSON_AddNumberToObject(o, key2, (double)b);
	}
	if (*end) {
		return false;
	}
	cJSON_AddNumberToObject(o, key, (double)a);
	return true;
}

bool tunnel_spec_svc(const char *spec, char *role, char *name)
{
	char buf[CTL_SPEC_MAX + 1], *w[12];
	int n = tunnel_words(spec, buf, sizeof(buf), w, 12);

	if (n < 5 || strcmp(w[0], "tunnel-svc") || strlen(w[2]) > 64) {
		return false;
	}
	snprintf(role, 8, "%s", w[1]);
	strcpy(name, w[2]);
	return true;
}

cJSON *tunnel_spec_request(const char *spec, bool rm)
{
	char buf[CTL_SPEC_MAX + 1], *w[12];
	int n = tunnel_words(spec, buf, sizeof(buf), w, 12);
	cJSON *o = cJSON_CreateObject();
	bool server;

	if (!o || n < 2) {
		goto bad;
	}
	if (!strcmp(w[0], "tunnel-server") || !strcmp(w[0], "tunnel-client")) {
		server = w[0][7] == 's';
		if (rm) {
			goto bad; /* the listener / client stay until the engine restarts */
		}
		cJSON_AddStringToObject(o, "cmd", server ? "tunnel.server" : "tunnel.client");
		cJSON_AddStringToObject(o, server ? "listen" : "server", w[1]);
		for (int i = 2; i < n; i++) {
			if (server && !strncmp(w[i], "transport=", 10)) {
				cJSON_AddStringToObject(o, "transport", w[i] + 10);
				continue;
			}
			if (server && !strncmp(w[i], "nxkey=", 6) && w[i][6]) {
				cJSON_AddStringToObject(o, "noise_key_file", w[i] + 6);
				continue;
			}
			if (!(server ? tunnel_kv(o, w[i], "hb", "heartbeat_interval",
						 "heartbeat_timeout") ||
					       tunnel_kv(o, w[i], "pending", "pending_max",
							 "pending_per_ip") ||
					       tunnel_kv(o, w[i], "hs", "handshake_timeout_ms",
							 NULL) ||
					       tunnel_kv(o, w[i], "visitor", "visitor_timeout_ms",
							 NULL) :
				       tunnel_kv(o, w[i], "backoff", "backoff_cap_ms", NULL)) &&
			    !tunnel_kv(o, w[i], "udp_idle", "udp_idle_ms", NULL)) {
				goto bad;
			}
		}
		if (server && !cJSON_GetObjectItemCaseSensitive(o, "transport")) {
			/* explicit, so a reload from noise back to plain switches the engine back */
			cJSON_AddStringToObject(o, "transport", "plain");
		}
		return o;
	}
	if (strcmp(w[0], "tunnel-svc") || n < 6 ||
	    (strcmp(w[1], "server") && strcmp(w[1], "client"))) {
		goto bad;
	}
	server = w[1][0] == 's';
	cJSON_AddStringToObject(o, "cmd", rm ? "tunnel.rm" : "tunnel.add");
	cJSON_AddStringToObject(o, "role", w[1]);
	cJSON_AddStringToObject(o, "name", w[2]);
	if (rm) {
		return o;
	}
	cJSON_AddStringToObject(o, "type", w[3]);
	cJSON_AddStringToObject(o, server ? "bind" : "local", w[4]);
	for (int i = 5; i < n; i++) {
		if (!strncmp(w[i], "cred=", 5)) {
			char *end;
			long c = strtol(w[i] + 5, &end, 10);
			const char *tok = *end ? NULL : tunnel_cred_get((int)c);

			if (!tok) {
				goto bad;
			}
			cJSON_AddStringToObject(o, "token", tok);
		} else if (!strncmp(w[i], "pp=", 3)) {
			cJSON_AddBoolToObject(o, "proxy_protocol", w[i][3] == '1');
		} else if (!server && !strncmp(w[i], "noise=", 6) &&
			   strlen(w[i] + 6) == TUNNEL_PUBKEY_HEX) {
			cJSON_AddStringToObject(o, "transport", "noise");
			cJSON_AddStringToObject(o, "server_pubkey", w[i] + 6);
		} else if (!tunnel_kv(o, w[i], "max_conns", "max_conns", NULL) &&
			   !tunnel_kv(o, w[i], "pool", "pool", NULL) &&
			   !tunnel_kv(o, w[i], "bw", "bandwidth_kbps", NULL) &&
			   !tunnel_kv(o, w[i], "udp_channels", "udp_channels", NULL)) {
			goto bad;
		}
	}
	return o;
bad:
	cJSON_Delete(o);
	return NULL;
}
