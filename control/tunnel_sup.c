// SPDX-License-Identifier: MIT
/* Tunnel engine objects in natxd (control/tunnel_sup.h, control/tunnel_cfg.h). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "crypto.h"
#include "ctl_pay.h"
#include "daemon.h"
#include "natx/err.h"
#include "natx/log.h"
#include "tunnel_cfg.h"
#include "tunnel_sup.h"

#define MOD "tunnel"

enum { TUNNEL_MSG_MAX = 512 /* ctl_cmds.c's message buffer */ };

/* tunnel_hex - @n bytes as lowercase hex into @out (2n + 1 bytes). */
static void tunnel_hex(const uint8_t *p, size_t n, char *out)
{
	static const char dig[] = "0123456789abcdef";

	for (size_t i = 0; i < n; i++) {
		out[2 * i] = dig[p[i] >> 4];
		out[2 * i + 1] = dig[p[i] & 15];
	}
	out[2 * n] = 0;
}

/* tunnel_key_read - the key file @fd: 64 hex digits (a trailing newline allowed) into @key. */
static int tunnel_key_read(int fd, uint8_t key[32], const char *path, char *err, size_t errlen)
{
	char buf[80];
	struct stat st;
	ssize_t n;
	size_t len;

	if (fstat(fd, &st)) {
		snprintf(err, errlen, "%.200s: %s", path, strerror(errno));
		return -EIO;
	}
	if (st.st_mode & 077) {
		snprintf(err, errlen, "%.200s: mode %03o, must not be readable by group or others",
			 path, (unsigned)(st.st_mode & 0777));
		return -EPERM;
	}
	n = read(fd, buf, sizeof(buf) - 1);
	len = n > 0 ? (size_t)n : 0;
	while (len && (buf[len - 1] == '\n' || buf[len - 1] == '\r')) {
		len--;
	}
	buf[len] = 0;
	for (size_t i = 0; len == 64 && i < 32; i++) {
		unsigned int v;

		if (!strchr("0123456789abcdefABCDEF", buf[2 * i]) ||
		    !strchr("0123456789abcdefABCDEF", buf[2 * i + 1]) ||
		    sscanf(buf + 2 * i, "%2x", &v) != 1) {
			len = 0;
			break;
		}
		key[i] = (uint8_t)v;
	}
	crypto_wipe(buf, sizeof(buf));
	if (len != 64) {
		snprintf(err, errlen, "%.200s: not a tunnel Noise key (64 hex digits)", path);
		return -NATX_E_PROTO;
	}
	return 0;
}

/* tunnel_key_create - a new random key written to @path atomically, mode 0600. */
static int tunnel_key_create(uint8_t key[32], const char *path, char *err, size_t errlen)
{
	char tmp[4096], hex[66];
	ssize_t n;
	int fd, rc;

	if ((size_t)snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= sizeof(tmp)) {
		snprintf(err, errlen, "%.200s: path too long", path);
		return -ENAMETOOLONG;
	}
	crypto_random_bytes(key, 32);
	unlink(tmp);
	fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0) {
		rc = -errno;
		snprintf(err, errlen, "%.200s: %s", tmp, strerror(errno));
		return rc;
	}
	tunnel_hex(key, 32, hex);
	hex[64] = '\n';
	n = write(fd, hex, 65);
	crypto_wipe(hex, sizeof(hex));
	rc = n == 65 ? 0 : n < 0 ? -errno : -EIO;
	if (!rc && fsync(fd)) {
		rc = -errno;
	}
	close(fd);
	if (!rc && rename(tmp, path)) {
		rc = -errno;
	}
	if (rc) {
		unlink(tmp);
		snprintf(err, errlen, "%.200s: %s", path, strerror(-rc));
	}
	return rc;
}

/*
 * tunnel_noise_key - the tunnel server's static X25519 key from @path, created (random, mode
 * 0600, like the libp2p identity) when the file does not exist. 0 with @key, or -errno with
 * one line in @err; a file readable by group or others is refused (-EPERM).
 */
static int tunnel_noise_key(const char *path, uint8_t key[32], char *err, size_t errlen)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW), rc;

	if (fd >= 0) {
		rc = tunnel_key_read(fd, key, path, err, errlen);
		close(fd);
		return rc;
	}
	if (errno == ENOENT) {
		rc = tunnel_key_create(key, path, err, errlen);
		if (!rc) {
			pr_info(MOD, "created the tunnel server's Noise key %s", path);
		}
		return rc;
	}
	rc = -errno;
	snprintf(err, errlen, "%.200s: %s", path, strerror(errno));
	return rc;
}

/*
 * tunnel_sup_noise - a tunnel.server request naming a key file gets the key itself instead
 * (the spec never carries it). 0 or -errno with @f->error set.
 */
static int tunnel_sup_noise(cJSON *req, struct engine_fwd *f)
{
	const char *kf =
		cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(req, "noise_key_file"));
	uint8_t key[32], pub[32];
	char hex[65], pubhex[65], kerr[sizeof(f->error)];
	int rc;

	if (!kf) {
		return 0;
	}
	rc = tunnel_noise_key(kf, key, kerr, sizeof(kerr));
	if (rc) {
		if (strcmp(f->error, kerr)) {
			pr_err(MOD, "tunnel server: %s", kerr);
		}
		snprintf(f->error, sizeof(f->error), "%s", kerr);
		return rc;
	}
	crypto_x25519_public(pub, key);
	tunnel_hex(pub, 32, pubhex);
	if (!f->id) {
		pr_info(MOD, "tunnel server: encrypted transport %s, Noise public key %s (%s)",
			cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(req, "transport")),
			pubhex, kf);
	}
	tunnel_hex(key, 32, hex);
	crypto_wipe(key, sizeof(key));
	cJSON_DeleteItemFromObjectCaseSensitive(req, "noise_key_file");
	rc = cJSON_AddStringToObject(req, "noise_key_hex", hex) ? 0 : -ENOMEM;
	crypto_wipe(hex, sizeof(hex));
	return rc;
}

/* tunnel_req_free - free an engine request, wiping a private key it may carry first. */
static void tunnel_req_free(cJSON *req)
{
	cJSON *k = cJSON_GetObjectItemCaseSensitive(req, "noise_key_hex");

	if (cJSON_IsString(k)) {
		crypto_wipe(k->valuestring, strlen(k->valuestring));
	}
	cJSON_Delete(req);
}

int tunnel_sup_push(struct engine_sup *es, struct engine_fwd *f)
{
	cJSON *req = tunnel_spec_request(f->spec, false), *r = NULL;
	const cJSON *svc;
	int rc;

	if (!req) {
		snprintf(f->error, sizeof(f->error), "malformed tunnel entry");
		return -EINVAL;
	}
	rc = tunnel_sup_noise(req, f);
	if (rc) {
		tunnel_req_free(req);
		return rc;
	}
	rc = engine_sup_call(es, req, &r);
	tunnel_req_free(req);
	if (rc == 0 || rc == -EEXIST) {
		svc = cJSON_GetObjectItemCaseSensitive(r, "service");
		svc = cJSON_GetObjectItemCaseSensitive(svc, "id");
		f->id = TUNNEL_SUP_ID_BASE +
			(cJSON_IsNumber(svc) ? (unsigned long)svc->valuedouble : 0);
		f->error[0] = '\0';
		rc = 0;
	} else {
		const char *why = engine_sup_error_text(r, natx_strerror(rc));
		char role[8] = "", name[65] = "";

		if (strncmp(f->error, why, sizeof(f->error) - 1)) {
			if (tunnel_spec_svc(f->spec, role, name)) {
				pr_warn(MOD, "%s service %s: %s", role, name, why);
			} else {
				pr_warn(MOD, "%.14s: %s", f->spec, why);
			}
		}
		snprintf(f->error, sizeof(f->error), "%s", why);
	}
	cJSON_Delete(r);
	return rc;
}

int tunnel_sup_rm(struct engine_sup *es, const char *spec)
{
	cJSON *req = tunnel_spec_request(spec, true), *r = NULL;
	int rc;

	if (!req) {
		return 0; /* server / client entries stay until the engine restarts */
	}
	rc = engine_sup_call(es, req, &r);
	cJSON_Delete(req);
	cJSON_Delete(r);
	return rc == -ENOENT ? 0 : rc;
}

/* tunnel_sup_wanted - is there a desired tunnel-svc entry for @role @name? */
static int tunnel_sup_wanted(const struct engine_sup *es, const char *role, const char *name)
{
	for (unsigned i = 0; i < es->nfwd; i++) {
		char r[8], n[65];

		if (tunnel_spec_svc(es->fwd[i].spec, r, n) && !strcmp(r, role) &&
		    !strcmp(n, name)) {
			return (int)i;
		}
	}
	return -1;
}

int tunnel_sup_prune(struct engine_sup *es)
{
	cJSON *req = cJSON_CreateObject(), *r = NULL;
	const cJSON *it;
	int rc;

	if (!req || !cJSON_AddStringToObject(req, "cmd", "tunnel.ls")) {
		cJSON_Delete(req);
		return -ENOMEM;
	}
	rc = engine_sup_call(es, req, &r);
	cJSON_Delete(req);
	if (rc) {
		cJSON_Delete(r);
		return rc;
	}
	cJSON_ArrayForEach(it, cJSON_GetObjectItemCaseSensitive(r, "services"))
	{
		const cJSON *role = cJSON_GetObjectItemCaseSensitive(it, "role");
		const cJSON *name = cJSON_GetObjectItemCaseSensitive(it, "name");
		cJSON *rq, *rr = NULL;

		/* "paid-*" services follow the paid registrations (tunnel_paid.c), not this list. */
		if (!cJSON_IsString(role) || !cJSON_IsString(name) ||
		    !strncmp(name->valuestring, "paid-", 5) ||
		    tunnel_sup_wanted(es, role->valuestring, name->valuestring) >= 0 ||
		    es->state != ENGINE_UP) {
			continue;
		}
		pr_info(MOD, "removing %s service %s that natxd no longer wants", role->valuestring,
			name->valuestring);
		rq = cJSON_CreateObject();
		if (rq && cJSON_AddStringToObject(rq, "cmd", "tunnel.rm") &&
		    cJSON_AddStringToObject(rq, "role", role->valuestring) &&
		    cJSON_AddStringToObject(rq, "name", name->valuestring)) {
			engine_sup_call(es, rq, &rr);
		}
		cJSON_Delete(rq);
		cJSON_Delete(rr);
	}
	cJSON_Delete(r);
	return 0;
}

/* tunnel_arg - string member @key of the request, NULL when absent or not a string. */
static const char *tunnel_arg(const struct ctl_req *req, const char *key)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(req->root, key);

	return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* tunnel_arg_uint - optional number member; false (and @msg) when present and bad. */
static bool tunnel_arg_uint(const struct ctl_req *req, const char *key, unsigned hi, unsigned *out,
			    char *msg)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(req->root, key);
	char *end;
	double d;

	if (!v) {
		return true;
	}
	if (cJSON_IsString(v)) {
		d = strtod(v->valuestring, &end);
		if (*end || !v->valuestring[0]) {
			d = -1;
		}
	} else {
		d = cJSON_IsNumber(v) ? v->valuedouble : -1;
	}
	if (d < 0 || d > hi || d != (double)(unsigned)d) {
		snprintf(msg, TUNNEL_MSG_MAX, "%s must be an integer 0..%u", key, hi);
		return false;
	}
	*out = (unsigned)d;
	return true;
}

/*
 * tunnel_add - the work of tunnel.add: check @req, build the engine spec and either run it now
 * and persist the request (@stored false: a command) or only define it (@stored true: loaded
 * from the database at start; the engine supervisor runs it). 0 or -errno with @msg.
 */
static int tunnel_add(struct natxd *d, const struct ctl_req *req, bool stored, cJSON *reply,
		      char *msg)
{
	const char *name = tunnel_arg(req, "name"), *type = tunnel_arg(req, "type");
	const char *addr = tunnel_arg(req, "addr"), *token = tunnel_arg(req, "token");
	const char *role = tunnel_arg(req, "role");
	const cJSON *pp = cJSON_GetObjectItemCaseSensitive(req->root, "proxy_protocol");
	const char *tr = tunnel_arg(req, "transport"), *spub = tunnel_arg(req, "server_pubkey");
	char pubhex[TUNNEL_PUBKEY_HEX + 1] = "";
	unsigned max_conns = d->cfg.rathole_max_connections, pool = 4, udp_channels = 2, bw = 0;
	char spec[512], emsg[ENGINE_ERR_MAX], *req_text;
	bool server;
	int cred, rc, i;
	cJSON *o;

	if (!role) {
		role = "server";
	}
	server = !strcmp(role, "server");
	if (!name || !type || !addr || !token || (!server && strcmp(role, "client"))) {
		snprintf(msg, TUNNEL_MSG_MAX,
			 "tunnel add needs name, type (tcp|udp), addr, token; role server|client");
		return -EINVAL;
	}
	if (!tunnel_arg_uint(req, "max_conns", 1000000, &max_conns, msg) ||
	    !tunnel_arg_uint(req, "pool", 32, &pool, msg) ||
	    !tunnel_arg_uint(req, "bandwidth_kbps", 100000000, &bw, msg) ||
	    !tunnel_arg_uint(req, "udp_channels", 8, &udp_channels, msg)) {
		return -EINVAL;
	}
	if (strpbrk(name, " =") || strpbrk(type, " =") || strpbrk(addr, " =") ||
	    strlen(name) > 64 || strlen(addr) > 200 || strlen(token) > TUNNEL_TOKEN_MAX) {
		snprintf(msg, TUNNEL_MSG_MAX, "bad name, address or token");
		return -EINVAL;
	}
	if (tunnel_sup_wanted(&d->eng, role, name) >= 0) {
		snprintf(msg, TUNNEL_MSG_MAX, "%s service %s exists", role, name);
		return -EEXIST;
	}
	if (tr && strcmp(tr, "plain") && strcmp(tr, "noise")) {
		snprintf(msg, TUNNEL_MSG_MAX, "transport must be plain or noise");
		return -EINVAL;
	}
	if (!server &&
	    (spub || (tr && !strcmp(tr, "noise")) || (!tr && d->cfg.tunnel.server_pubkey[0]))) {
		if (tr && !strcmp(tr, "plain")) {
			pubhex[0] = 0;
		} else if (spub ? tunnel_pubkey_norm(spub, pubhex) :
				  !d->cfg.tunnel.server_pubkey[0]) {
			snprintf(msg, TUNNEL_MSG_MAX,
				 "transport noise needs server_pubkey: the server's X25519 public "
				 "key, 64 hex digits or base64");
			return -EINVAL;
		} else if (!spub) {
			strcpy(pubhex, d->cfg.tunnel.server_pubkey);
		}
	} else if (server && (spub || tr)) {
		snprintf(msg, TUNNEL_MSG_MAX,
			 "a server service's transport is the server's ([tunnel] transport)");
		return -EINVAL;
	}
	cred = tunnel_cred_intern(token);
	if (cred < 0) {
		snprintf(msg, TUNNEL_MSG_MAX, "too many distinct tunnel tokens");
		return -ENOSPC;
	}
	if (server) {
		snprintf(spec, sizeof(spec),
			 "tunnel-svc server %s %s %s cred=%d max_conns=%u pool=%u udp_channels=%u "
			 "bw=%u",
			 name, type, addr, cred, max_conns, pool, udp_channels, bw);
	} else {
		snprintf(spec, sizeof(spec),
			 "tunnel-svc client %s %s %s cred=%d pp=%d udp_channels=%u%s%s", name, type,
			 addr, cred, cJSON_IsTrue(pp) ? 1 : 0, udp_channels,
			 pubhex[0] ? " noise=" : "", pubhex);
	}
	if (strlen(spec) > CTL_SPEC_MAX) {
		snprintf(msg, TUNNEL_MSG_MAX, "address too long");
		return -EINVAL;
	}
	if (stored) {
		return engine_sup_forward_define(&d->eng, spec, ENGINE_FWD_STORED);
	}
	rc = engine_sup_forward_add(&d->eng, spec, ENGINE_FWD_STORED, emsg);
	if (rc) {
		snprintf(msg, TUNNEL_MSG_MAX, "%s", emsg);
		return rc;
	}
	/* Kept in SQLite (the request, token included: the database is owner-only), so the
	 * service is defined again when natxd restarts. */
	req_text = cJSON_PrintUnformatted(req->root);
	rc = req_text ? store_tunnel_add(&d->st, role, name, req_text, d->clk->wall_s(d->clk)) :
			-ENOMEM;
	cJSON_free(req_text);
	if (rc) {
		snprintf(msg, TUNNEL_MSG_MAX, "cannot persist the service: %s",
			 store_errmsg(&d->st));
		i = tunnel_sup_wanted(&d->eng, role, name);
		if (i >= 0) {
			engine_sup_forward_rm(&d->eng, (unsigned)i);
		}
		return -EIO;
	}
	i = tunnel_sup_wanted(&d->eng, role, name);
	pr_info(MOD, "%s service %s (%s %s) added", role, name, type, addr);
	o = cJSON_AddObjectToObject(reply, "service");
	if (!o) {
		return -ENOMEM;
	}
	cJSON_AddStringToObject(o, "name", name);
	cJSON_AddStringToObject(o, "role", role);
	cJSON_AddNumberToObject(o, "id",
				i >= 0 ? (double)(d->eng.fwd[i].id - TUNNEL_SUP_ID_BASE) : 0);
	return 0;
}

int tunnel_cmd_add(struct natxd *d, const struct ctl_caller *who, const struct ctl_req *req,
		   cJSON *reply, char *msg)
{
	pr_debug(MOD, "tunnel add by uid %u", (unsigned)who->uid);
	return tunnel_add(d, req, false, reply, msg);
}

/* tunnel_load_one - define one stored tunnel.add request (a bad row is logged and skipped). */
static int tunnel_load_one(void *arg, const char *request)
{
	struct natxd *d = arg;
	struct ctl_req req = { .cmd = "tunnel.add" };
	char msg[TUNNEL_MSG_MAX];
	int rc;

	req.root = cJSON_Parse(request);
	rc = cJSON_IsObject(req.root) ? tunnel_add(d, &req, true, NULL, msg) : -EINVAL;
	if (rc && rc != -EEXIST) {
		pr_warn(MOD, "stored tunnel service not restored: %s",
			rc == -EINVAL && !cJSON_IsObject(req.root) ? "not JSON" : msg);
	}
	cJSON_Delete(req.root);
	return 0;
}

void tunnel_sup_load(struct natxd *d)
{
	store_tunnel_each(&d->st, tunnel_load_one, d);
}

int tunnel_cmd_rm(struct natxd *d, const struct ctl_caller *who, const struct ctl_req *req,
		  cJSON *reply, char *msg)
{
	const char *name = tunnel_arg(req, "name"), *role = tunnel_arg(req, "role");
	int i, rc;

	if (!role) {
		role = "server";
	}
	if (!name) {
		snprintf(msg, TUNNEL_MSG_MAX, "tunnel rm needs a service name");
		return -EINVAL;
	}
	i = tunnel_sup_wanted(&d->eng, role, name);
	if (i < 0) {
		snprintf(msg, TUNNEL_MSG_MAX, "no %s service %s", role, name);
		return -ENOENT;
	}
	if (d->eng.fwd[i].source == ENGINE_FWD_CONFIG) {
		snprintf(msg, TUNNEL_MSG_MAX,
			 "%s service %s comes from the configuration: edit it there and reload",
			 role, name);
		return -EINVAL;
	}
	rc = engine_sup_forward_rm(&d->eng, (unsigned)i);
	store_tunnel_rm(&d->st, role, name);
	pr_info(MOD, "%s service %s removed by uid %u", role, name, (unsigned)who->uid);
	if (rc) {
		pr_warn(MOD, "engine tunnel.rm: %s", natx_strerror(rc));
	}
	(void)reply;
	return 0;
}

int tunnel_cmd_ls(struct natxd *d, const struct ctl_caller *who, const struct ctl_req *req,
		  cJSON *reply, char *msg)
{
	cJSON *rq, *r = NULL, *a, *it;
	int rc = cmd_tunnel_ls(d, who, req, reply, msg); /* paid registrations (ctl_pay.c) */

	if (rc) {
		return rc;
	}
	a = cJSON_AddArrayToObject(reply, "services");
	rq = cJSON_CreateObject();
	if (!a || !rq || !cJSON_AddStringToObject(rq, "cmd", "tunnel.ls")) {
		cJSON_Delete(rq);
		return -ENOMEM;
	}
	if (engine_sup_call(&d->eng, rq, &r) == 0) {
		cJSON_AddItemToObject(reply, "server", cJSON_DetachItemFromObject(r, "server"));
		cJSON_AddItemToObject(reply, "client", cJSON_DetachItemFromObject(r, "client"));
	}
	cJSON_Delete(rq);
	/* Every desired service, with the engine's view of it when it runs. */
	for (unsigned i = 0; i < d->eng.nfwd; i++) {
		const struct engine_fwd *f = &d->eng.fwd[i];
		char role[8], name[65];
		cJSON *e = NULL;

		if (!tunnel_spec_svc(f->spec, role, name)) {
			continue;
		}
		cJSON_ArrayForEach(it, cJSON_GetObjectItemCaseSensitive(r, "services"))
		{
			const cJSON *rr = cJSON_GetObjectItemCaseSensitive(it, "role");
			const cJSON *nn = cJSON_GetObjectItemCaseSensitive(it, "name");

			if (cJSON_IsString(rr) && cJSON_IsString(nn) &&
			    !strcmp(rr->valuestring, role) && !strcmp(nn->valuestring, name)) {
				e = cJSON_Duplicate(it, true);
				break;
			}
		}
		if (!e) {
			e = cJSON_CreateObject();
			cJSON_AddStringToObject(e, "name", name);
			cJSON_AddStringToObject(e, "role", role);
			cJSON_AddStringToObject(e, "state", f->error[0] ? "failed" : "pending");
		}
		cJSON_AddStringToObject(e, "source",
					f->source == ENGINE_FWD_CONFIG ? "config" : "ctl");
		cJSON_AddStringToObject(e, "error", f->error);
		cJSON_AddItemToArray(a, e);
	}
	/* Services the engine runs for other reasons: paid registrations (tunnel_paid.c). */
	cJSON_ArrayForEach(it, cJSON_GetObjectItemCaseSensitive(r, "services"))
	{
		const char *role = cJSON_GetStringValue(cJSON_GetObjectItem(it, "role"));
		const char *name = cJSON_GetStringValue(cJSON_GetObjectItem(it, "name"));
		cJSON *e;

		if (!role || !name || tunnel_sup_wanted(&d->eng, role, name) >= 0) {
			continue;
		}
		e = cJSON_Duplicate(it, true);
		cJSON_AddStringToObject(e, "source", strncmp(name, "paid-", 5) ? "engine" : "paid");
		cJSON_AddStringToObject(e, "error", "");
		cJSON_AddItemToArray(a, e);
	}
	cJSON_Delete(r);
	return 0;
}
