// SPDX-License-Identifier: MIT
/* Control socket server and command table (see ctl.h, ENGINE-CTL.md). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "ctl.h"
#include "natx/log.h"
#include "p2p_host.h"
#include "tun_eng.h"
#include "stats_json.h"
#include "steer_eng.h"
#include "punch_eng.h"
#include "stun_eng.h"

#define MOD "ctl"

struct ctl_result {
	const char *code; /* NULL: success */
	char msg[CTL_MSG_MAX + 64];
};

typedef void ctl_handler_fn(struct ctl_server *s, struct engine *eng, const struct ctl_req *req,
			    cJSON *reply, struct ctl_result *r);

/* ctl_errno_code - stable error code for an engine_forward_add() result. */
static const char *ctl_errno_code(int err)
{
	switch (err) {
	case -EINVAL:
		return "bad_spec";
	case -ENOENT:
		return "resolve_failed";
	case -EADDRINUSE:
	case -EACCES:
	case -EADDRNOTAVAIL:
		return "addr_in_use";
	case -EEXIST:
		return "exists";
	default:
		return "internal";
	}
}

/* ctl_move_members - move @o's members into @reply, free @o (NULL: nothing to move). */
static void ctl_move_members(cJSON *o, cJSON *reply)
{
	cJSON *item;

	if (!o) {
		return;
	}
	while ((item = o->child)) {
		cJSON_DetachItemViaPointer(o, item);
		cJSON_AddItemToObject(reply, item->string, item);
	}
	cJSON_Delete(o);
}

static void ctl_cmd_hello(struct ctl_server *s, struct engine *eng, const struct ctl_req *req,
			  cJSON *reply, struct ctl_result *r)
{
	cJSON_AddStringToObject(reply, "version", NATX_VERSION);
	cJSON_AddNumberToObject(reply, "pid", getpid());
	cJSON_AddNumberToObject(reply, "shards", eng->nshards);
	cJSON_AddNumberToObject(reply, "started_at", (double)eng->started_at);
	cJSON_AddStringToObject(reply, "steering", steer_eng_mode(eng));
	cJSON_AddBoolToObject(reply, "stun", eng->stun != NULL);
	cJSON_AddStringToObject(reply, "punch_steering", punch_eng_steering(eng));
}

static void ctl_forward_json(struct engine *eng, const struct forward *f, cJSON *o, bool full)
{
	cJSON_AddNumberToObject(o, "id", f->id);
	cJSON_AddStringToObject(o, "spec", f->spec);
	if (full) {
		uint64_t open = 0, total = 0, bytes = 0;

		for (unsigned int i = 0; i < eng->nshards; i++) {
			open += stat_get(&f->st[i].flows_open);
			total += stat_get(&f->st[i].flows_total);
			bytes += stat_get(&f->st[i].bytes);
		}
		cJSON_AddStringToObject(o, "proto", f->addr.proto == SPEC_TCP ? "tcp" : "udp");
		cJSON_AddStringToObject(o, "listen", f->listen_txt);
		cJSON_AddStringToObject(o, "upstream", f->upstream_txt);
		cJSON_AddNumberToObject(o, "flows_open", (double)open);
		cJSON_AddNumberToObject(o, "flows_total", (double)total);
		cJSON_AddNumberToObject(o, "bytes", (double)bytes);
	}
}

static void ctl_cmd_fwd_add(struct ctl_server *s, struct engine *eng, const struct ctl_req *req,
			    cJSON *reply, struct ctl_result *r)
{
	struct forward *f;
	int ret;

	ret = engine_forward_add(eng, req->spec, FWD_CTL, &f, r->msg, sizeof(r->msg));
	if (ret) {
		r->code = ctl_errno_code(ret);
		if (ret == -EEXIST && f) {
			snprintf(r->msg, sizeof(r->msg), "forward %u already has this spec", f->id);
			cJSON_AddNumberToObject(reply, "id_existing", f->id);
		}
		return;
	}
	ctl_forward_json(eng, f, cJSON_AddObjectToObject(reply, "forward"), false);
}

static void ctl_cmd_fwd_rm(struct ctl_server *s, struct engine *eng, const struct ctl_req *req,
			   cJSON *reply, struct ctl_result *r)
{
	uint32_t id = req->fwd_id;

	if (req->has_spec) {
		struct forward *f = engine_forward_find_spec(eng, req->spec);
		struct spec sp;
		struct spec_addr a;
		char serr[SPEC_ERR_MAX], canon[SPEC_TEXT_MAX];

		if (!f) {
			if (spec_parse(req->spec, &sp, serr)) {
				r->code = "bad_spec";
				snprintf(r->msg, sizeof(r->msg), "%s", serr);
				return;
			}
			if (!spec_resolve(&sp, &a, serr)) {
				spec_canonical(&a, canon, sizeof(canon));
				f = engine_forward_find_spec(eng, canon);
			}
		}
		if (!f) {
			r->code = "not_found";
			snprintf(r->msg, sizeof(r->msg), "no forward with spec '%.100s'",
				 req->spec);
			return;
		}
		id = f->id;
	}
	if (engine_forward_rm(eng, id)) {
		r->code = "not_found";
		snprintf(r->msg, sizeof(r->msg), "no forward with id %u", id);
	}
}

static void ctl_cmd_fwd_list(struct ctl_server *s, struct engine *eng, const struct ctl_req *req,
			     cJSON *reply, struct ctl_result *r)
{
	cJSON *arr = cJSON_AddArrayToObject(reply, "forwards");

	for (uint32_t i = 0; i < FWD_MAX; i++) {
		if (eng->fwd[i]) {
			cJSON *o = cJSON_CreateObject();

			ctl_forward_json(eng, eng->fwd[i], o, true);
			cJSON_AddItemToArray(arr, o);
		}
	}
}

static void ctl_cmd_stats(struct ctl_server *s, struct engine *eng, const struct ctl_req *req,
			  cJSON *reply, struct ctl_result *r)
{
	/* "shards", "total" and the rest of the counters go into the reply object. */
	ctl_move_members(stats_json(eng), reply);
	punch_eng_json(eng, reply);
}

static void ctl_cmd_shutdown(struct ctl_server *s, struct engine *eng, const struct ctl_req *req,
			     cJSON *reply, struct ctl_result *r)
{
	s->shutdown = true;
	s->shutdown_drain_ms = req->has_drain_ms ? req->drain_ms : eng->cfg->drain_timeout_ms;
}

static void ctl_cmd_p2p_peer(struct ctl_server *s, struct engine *eng, const struct ctl_req *req,
			     cJSON *reply, struct ctl_result *r)
{
	cJSON *o = p2p_eng_json(eng);

	if (!o) {
		r->code = "p2p_off";
		snprintf(r->msg, sizeof(r->msg), "libp2p is not enabled%s%.200s",
			 p2p_eng_error()[0] ? ": " : " (--p2p-key-file)", p2p_eng_error());
		return;
	}
	ctl_move_members(o, reply);
}

/* ctl_cmd_p2p_dial - p2p.ping / p2p.identify: blocks this thread until shard 0 answers. */
static void ctl_cmd_p2p_dial(struct ctl_server *s, struct engine *eng, const struct ctl_req *req,
			     cJSON *reply, struct ctl_result *r)
{
	enum p2p_req_kind kind = req->cmd == CTL_P2P_PING ? P2P_REQ_PING : P2P_REQ_IDENTIFY;
	cJSON *o = NULL;
	int ret;

	ret = p2p_eng_request(eng, kind, req->addr, req->count,
			      req->timeout_ms ? req->timeout_ms : P2P_DIAL_TIMEOUT_MS + 2000, &o,
			      r->msg, sizeof(r->msg));
	if (ret == -ENOTCONN && p2p_eng_error()[0]) {
		snprintf(r->msg, sizeof(r->msg), "libp2p is not enabled: %.200s", p2p_eng_error());
	}
	if (ret) {
		r->code = ret == -ENOTCONN     ? "p2p_off" :
			  ret == -EINVAL       ? "bad_addr" :
			  ret == -EBUSY	       ? "busy" :
			  ret == -ETIMEDOUT    ? "timeout" :
			  ret == -EKEYREJECTED ? "peer_mismatch" :
						 "p2p_failed";
		return;
	}
	ctl_move_members(o, reply);
}

/* ctl_p2p_forward - p2p.forward with its flow options (docs/migration.md "In the engine"). */
static int ctl_p2p_forward(struct engine *eng, const struct ctl_req *req, uint32_t *id, char *msg,
			   size_t len)
{
	struct p2p_fwd_opts opt = { .flow = req->flow, .repair_ms = req->repair_ms };

	for (uint32_t i = 0; i < req->n_alt && i < P2P_FWD_ALT_MAX; i++) {
		opt.alt[opt.n_alt++] = req->alt_addrs[i];
	}
	if (opt.n_alt && !opt.flow) {
		snprintf(msg, len, "\"alt_addrs\" needs \"flow\": true");
		return -EINVAL;
	}
	return p2p_eng_forward(eng, req->protocol, req->listen, req->addr, &opt, id, msg, len);
}

static void ctl_cmd_p2p_svc(struct ctl_server *s, struct engine *eng, const struct ctl_req *req,
			    cJSON *reply, struct ctl_result *r)
{
	uint32_t id = 0;
	int ret;

	switch (req->cmd) {
	case CTL_P2P_EXPOSE:
		ret = p2p_eng_expose(eng, req->protocol, req->target, &id, r->msg, sizeof(r->msg));
		break;
	case CTL_P2P_FORWARD:
		ret = ctl_p2p_forward(eng, req, &id, r->msg, sizeof(r->msg));
		break;
	case CTL_P2P_CLOSE:
		ret = p2p_eng_svc_close(eng, req->fwd_id);
		if (ret) {
			snprintf(r->msg, sizeof(r->msg), "no p2p service with id %u", req->fwd_id);
		}
		break;
	default:
		cJSON_AddItemToObject(reply, "services", p2p_eng_svc_json(eng));
		return;
	}
	if (ret) {
		r->code = ret == -ENOTCONN   ? "p2p_off" :
			  ret == -EEXIST     ? "exists" :
			  ret == -ENOENT     ? "not_found" :
			  ret == -ENOSPC     ? "limit" :
			  ret == -EADDRINUSE ? "addr_in_use" :
					       "bad_request";
		return;
	}
	if (req->cmd != CTL_P2P_CLOSE) {
		cJSON *a = p2p_eng_svc_json(eng), *it;

		cJSON_AddNumberToObject(reply, "service_id", id);
		cJSON_ArrayForEach(it, a)
		{
			if (cJSON_GetObjectItem(it, "id")->valuedouble == id) {
				cJSON_AddItemToObject(reply, "service",
						      cJSON_DetachItemViaPointer(a, it));
				break;
			}
		}
		cJSON_Delete(a);
	}
}

/* ctl_cmd_stun - stun.set (start, or restart with new settings) / stun.stop. */
static void ctl_cmd_stun(struct ctl_server *s, struct engine *eng, const struct ctl_req *req,
			 cJSON *reply, struct ctl_result *r)
{
	int ret = 0;

	if (req->cmd == CTL_STUN_STOP) {
		stun_eng_close(eng);
	} else {
		ret = stun_eng_open(eng, req->listen, req->rate, req->burst, r->msg,
				    sizeof(r->msg));
	}
	if (ret) {
		r->code = ctl_errno_code(ret);
		return;
	}
	stun_eng_json(eng, reply);
}

/* ctl_cmd_p2p_relay - p2p.relay.setup / .status, p2p.reserve / keep / peers (p2p_host.h). */
static void ctl_cmd_p2p_relay(struct ctl_server *s, struct engine *eng, const struct ctl_req *req,
			      cJSON *reply, struct ctl_result *r)
{
	uint32_t tmo = req->timeout_ms ? req->timeout_ms : P2P_DIAL_TIMEOUT_MS + 2000;
	cJSON *o = NULL;
	int ret;

	switch (req->cmd) {
	case CTL_P2P_RELAY_SETUP:
		ret = p2p_eng_relay_setup(eng, req->relay, r->msg, sizeof(r->msg));
		break;
	case CTL_P2P_RELAY_STATUS:
		ret = p2p_eng_call(eng, 0, P2P_REQ_RELAY_STATUS, NULL, 0, 5000, &o, r->msg,
				   sizeof(r->msg));
		break;
	case CTL_P2P_DCUTR:
		if (!eng->p2p) {
			snprintf(r->msg, sizeof(r->msg), "libp2p is not enabled in this engine");
			ret = -ENOTCONN;
			break;
		}
		p2p_eng_dcutr_set(eng, req->enabled, req->prime_ttl);
		if (req->attempt_timeout_ms) {
			p2p_eng_dcutr_timeout_set(eng, req->attempt_timeout_ms);
		}
		if (req->has_relay_disc) {
			p2p_eng_relay_disc_set(eng, req->relay_disc);
		}
		ret = p2p_eng_call(eng, 0, P2P_REQ_UPGRADES, NULL, 0, 5000, &o, r->msg,
				   sizeof(r->msg));
		break;
	case CTL_P2P_UPGRADES:
		ret = p2p_eng_call(eng, 0, P2P_REQ_UPGRADES, NULL, 0, 5000, &o, r->msg,
				   sizeof(r->msg));
		break;
	case CTL_P2P_NAT:
	case CTL_P2P_NAT_PROBE:
		ret = p2p_eng_call(eng, 0,
				   req->cmd == CTL_P2P_NAT ? P2P_REQ_NAT : P2P_REQ_NAT_PROBE, NULL,
				   0, 5000, &o, r->msg, sizeof(r->msg));
		break;
	case CTL_P2P_RESERVE:
	case CTL_P2P_KEEP:
		ret = p2p_eng_call(eng, 0,
				   req->cmd == CTL_P2P_RESERVE ? P2P_REQ_RESERVE : P2P_REQ_KEEP,
				   req->addr, 0, tmo, &o, r->msg, sizeof(r->msg));
		break;
	default:
		ret = p2p_eng_peers_json(eng, &o, r->msg, sizeof(r->msg));
		break;
	}
	if (ret == -ENOTCONN && p2p_eng_error()[0]) {
		snprintf(r->msg, sizeof(r->msg), "libp2p is not enabled: %.200s", p2p_eng_error());
	}
	if (ret) {
		r->code = ret == -ENOTCONN     ? "p2p_off" :
			  ret == -EINVAL       ? "bad_addr" :
			  ret == -EBUSY	       ? "busy" :
			  ret == -ETIMEDOUT    ? "timeout" :
			  ret == -EEXIST       ? "exists" :
			  ret == -ENOSPC       ? "limit" :
			  ret == -EKEYREJECTED ? "peer_mismatch" :
						 "p2p_failed";
		if (req->cmd == CTL_P2P_RELAY_SETUP && ret == -EINVAL) {
			r->code = "bad_request";
		}
		return;
	}
	if (o) {
		ctl_move_members(o, reply);
	}
}

/* ctl_cmd_punch - punch.open|close|ls (punch_eng.c). */
static void ctl_cmd_punch(struct ctl_server *s, struct engine *eng, const struct ctl_req *req,
			  cJSON *reply, struct ctl_result *r)
{
	static const char *const names[] = {
		[CTL_PUNCH_OPEN] = "open", [CTL_PUNCH_CLOSE] = "close", [CTL_PUNCH_LS] = "ls"
	};

	r->code = punch_eng_ctl(eng, names[req->cmd], req->args, reply, r->msg, sizeof(r->msg));
}

/* ctl_cmd_tunnel - tunnel.server|client|add|rm|ls (tun_eng.c). */
static void ctl_cmd_tunnel(struct ctl_server *s, struct engine *eng, const struct ctl_req *req,
			   cJSON *reply, struct ctl_result *r)
{
	static const char *const names[] = { [CTL_TUN_SERVER] = "server",
					     [CTL_TUN_CLIENT] = "client",
					     [CTL_TUN_ADD] = "add",
					     [CTL_TUN_RM] = "rm",
					     [CTL_TUN_LS] = "ls" };

	r->code = tun_eng_ctl(eng, names[req->cmd], req->args, reply, r->msg, sizeof(r->msg));
}

static ctl_handler_fn *const ctl_handlers[] = {
	[CTL_HELLO] = ctl_cmd_hello,
	[CTL_FWD_ADD] = ctl_cmd_fwd_add,
	[CTL_FWD_RM] = ctl_cmd_fwd_rm,
	[CTL_FWD_LIST] = ctl_cmd_fwd_list,
	[CTL_STATS] = ctl_cmd_stats,
	[CTL_SHUTDOWN] = ctl_cmd_shutdown,
	/* libp2p (p2p_host.h) */
	[CTL_P2P_PEER] = ctl_cmd_p2p_peer,
	[CTL_P2P_PING] = ctl_cmd_p2p_dial,
	[CTL_P2P_IDENTIFY] = ctl_cmd_p2p_dial,
	[CTL_P2P_EXPOSE] = ctl_cmd_p2p_svc,
	[CTL_P2P_FORWARD] = ctl_cmd_p2p_svc,
	[CTL_P2P_LS] = ctl_cmd_p2p_svc,
	[CTL_P2P_CLOSE] = ctl_cmd_p2p_svc,
	/* STUN responder (stun_eng.h) */
	[CTL_STUN_SET] = ctl_cmd_stun,
	[CTL_STUN_STOP] = ctl_cmd_stun,
	[CTL_P2P_RELAY_SETUP] = ctl_cmd_p2p_relay,
	[CTL_P2P_RELAY_STATUS] = ctl_cmd_p2p_relay,
	[CTL_P2P_RESERVE] = ctl_cmd_p2p_relay,
	[CTL_P2P_KEEP] = ctl_cmd_p2p_relay,
	[CTL_P2P_PEERS] = ctl_cmd_p2p_relay,
	[CTL_P2P_DCUTR] = ctl_cmd_p2p_relay,
	[CTL_P2P_UPGRADES] = ctl_cmd_p2p_relay,
	[CTL_P2P_NAT] = ctl_cmd_p2p_relay,
	[CTL_P2P_NAT_PROBE] = ctl_cmd_p2p_relay,
	/* tunnel (tun_eng.h) */
	[CTL_TUN_SERVER] = ctl_cmd_tunnel,
	[CTL_TUN_CLIENT] = ctl_cmd_tunnel,
	[CTL_TUN_ADD] = ctl_cmd_tunnel,
	[CTL_TUN_RM] = ctl_cmd_tunnel,
	[CTL_TUN_LS] = ctl_cmd_tunnel,
	/* punch sessions (punch_eng.h) */
	[CTL_PUNCH_OPEN] = ctl_cmd_punch,
	[CTL_PUNCH_CLOSE] = ctl_cmd_punch,
	[CTL_PUNCH_LS] = ctl_cmd_punch,
};

/* ctl_reply_error - {"v":1,"id":..,"ok":false,"error":{...}} as text. */
static char *ctl_reply_error(const cJSON *id, const char *code, const char *msg)
{
	cJSON *reply = cJSON_CreateObject(), *e;
	char *txt;

	cJSON_AddNumberToObject(reply, "v", 1);
	cJSON_AddItemToObject(reply, "id", id ? cJSON_Duplicate(id, false) : cJSON_CreateNull());
	cJSON_AddBoolToObject(reply, "ok", false);
	e = cJSON_AddObjectToObject(reply, "error");
	cJSON_AddStringToObject(e, "code", code);
	cJSON_AddStringToObject(e, "message", msg);
	txt = cJSON_PrintUnformatted(reply);
	cJSON_Delete(reply);
	return txt;
}

char *ctl_handle_line(struct ctl_server *s, struct engine *eng, const char *line, size_t len)
{
	char msg[CTL_MSG_MAX];
	struct ctl_result r = { 0 };
	struct ctl_req req;
	const char *code;
	cJSON *reply;
	char *txt;

	if (ctl_req_parse(line, len, &req, &code, msg)) {
		txt = ctl_reply_error(req.id, code, msg);
		ctl_req_cleanup(&req);
		return txt;
	}
	reply = cJSON_CreateObject();
	cJSON_AddNumberToObject(reply, "v", 1);
	cJSON_AddItemToObject(reply, "id",
			      req.id ? cJSON_Duplicate(req.id, false) : cJSON_CreateNull());
	cJSON_AddBoolToObject(reply, "ok", true);
	ctl_handlers[req.cmd](s, eng, &req, reply, &r);
	if (r.code) {
		cJSON *extra = cJSON_GetObjectItemCaseSensitive(reply, "id_existing");

		txt = ctl_reply_error(req.id, r.code, r.msg);
		if (extra) {
			/* "exists" carries the existing forward's id in error.id. */
			cJSON *e = cJSON_Parse(txt);

			cJSON_AddNumberToObject(cJSON_GetObjectItem(e, "error"), "id",
						extra->valuedouble);
			free(txt);
			txt = cJSON_PrintUnformatted(e);
			cJSON_Delete(e);
		}
	} else {
		txt = cJSON_PrintUnformatted(reply);
	}
	cJSON_Delete(reply);
	ctl_req_cleanup(&req);
	return txt;
}

int ctl_open(struct ctl_server *s, const char *path, char *err, size_t errlen)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	int ret;

	memset(s, 0, sizeof(*s));
	s->fd = -1;
	for (int i = 0; i < CTL_CLIENTS_MAX; i++) {
		s->c[i].fd = -1;
	}
	if (strlen(path) >= sizeof(sun.sun_path)) {
		snprintf(err, errlen, "control socket path too long: %s", path);
		return -ENAMETOOLONG;
	}
	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", path);
	s->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (s->fd < 0) {
		ret = -errno;
		snprintf(err, errlen, "control socket: %s", strerror(errno));
		return ret;
	}
	if (bind(s->fd, (struct sockaddr *)&sun, sizeof(sun))) {
		/* Replace a stale socket file, but never steal a live engine's socket. */
		int probe;

		if (errno != EADDRINUSE) {
			goto fail;
		}
		probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (probe >= 0 && connect(probe, (struct sockaddr *)&sun, sizeof(sun)) &&
		    errno == ECONNREFUSED) {
			unlink(path);
		}
		if (probe >= 0) {
			close(probe);
		}
		if (bind(s->fd, (struct sockaddr *)&sun, sizeof(sun))) {
			goto fail;
		}
	}
	snprintf(s->path, sizeof(s->path), "%s", path);
	if (chmod(path, 0600) || listen(s->fd, 16)) {
		goto fail;
	}
	return 0;
fail:
	ret = -errno;
	snprintf(err, errlen, "control socket %s: %s", path, strerror(errno));
	close(s->fd);
	s->fd = -1;
	s->path[0] = '\0';
	return ret;
}

/* ctl_client_drop - close client @c and free its buffers. */
static void ctl_client_drop(struct ctl_client *c)
{
	if (c->fd >= 0) {
		close(c->fd);
	}
	free(c->in);
	free(c->out);
	memset(c, 0, sizeof(*c));
	c->fd = -1;
}

void ctl_close(struct ctl_server *s)
{
	for (int i = 0; i < CTL_CLIENTS_MAX; i++) {
		if (s->c[i].fd >= 0) {
			ctl_client_drop(&s->c[i]);
		}
	}
	if (s->fd >= 0) {
		close(s->fd);
		s->fd = -1;
	}
	if (s->path[0]) {
		unlink(s->path);
		s->path[0] = '\0';
	}
}

int ctl_pollfds(struct ctl_server *s, struct pollfd *pfd, int max)
{
	int n = 0;

	if (s->fd < 0 || max < 1) {
		return 0;
	}
	pfd[n++] = (struct pollfd){ .fd = s->fd, .events = POLLIN };
	for (int i = 0; i < CTL_CLIENTS_MAX && n < max; i++) {
		struct ctl_client *c = &s->c[i];

		if (c->fd >= 0) {
			pfd[n++] = (struct pollfd){
				.fd = c->fd,
				.events = (short)(POLLIN | (c->out_len > c->out_off ? POLLOUT : 0)),
			};
		}
	}
	return n;
}

/* ctl_client_queue - append @txt + '\n' to the client's output; false if over the cap. */
static bool ctl_client_queue(struct ctl_client *c, const char *txt)
{
	size_t len = strlen(txt);
	char *n;

	if (c->out_off && c->out_off == c->out_len) {
		c->out_off = c->out_len = 0;
	}
	if (c->out_len + len + 1 > CTL_OUT_MAX) {
		return false;
	}
	n = realloc(c->out, c->out_len + len + 1);
	if (!n) {
		return false;
	}
	c->out = n;
	memcpy(c->out + c->out_len, txt, len);
	c->out[c->out_len + len] = '\n';
	c->out_len += len + 1;
	return true;
}

/* ctl_client_flush - write what the socket takes. Returns false when the client is gone. */
static bool ctl_client_flush(struct ctl_client *c)
{
	while (c->out_off < c->out_len) {
		ssize_t n = send(c->fd, c->out + c->out_off, c->out_len - c->out_off,
				 MSG_NOSIGNAL | MSG_DONTWAIT);

		if (n < 0) {
			return errno == EAGAIN || errno == EINTR;
		}
		c->out_off += (size_t)n;
	}
	return true;
}

/* ctl_client_read - read and answer every complete line. False when the client is gone. */
static bool ctl_client_read(struct ctl_server *s, struct engine *eng, struct ctl_client *c)
{
	for (;;) {
		ssize_t n =
			recv(c->fd, c->in + c->in_len, CTL_LINE_MAX + 1 - c->in_len, MSG_DONTWAIT);
		size_t start = 0;

		if (n == 0) {
			return false;
		}
		if (n < 0) {
			return errno == EAGAIN || errno == EINTR;
		}
		c->in_len += (size_t)n;
		for (size_t i = 0; i < c->in_len; i++) {
			char *reply;

			if (c->in[i] != '\n') {
				continue;
			}
			if (c->discarding) {
				c->discarding = false;
			} else if (i > start) {
				size_t len = i - start;

				if (c->in[i - 1] == '\r') {
					len--;
				}
				reply = ctl_handle_line(s, eng, c->in + start, len);
				if (!reply || !ctl_client_queue(c, reply)) {
					free(reply);
					return false;
				}
				free(reply);
			}
			start = i + 1;
		}
		memmove(c->in, c->in + start, c->in_len - start);
		c->in_len -= start;
		if (c->in_len > CTL_LINE_MAX) {
			/* A line over the limit: answer once, then skip to its newline. */
			char *reply =
				ctl_reply_error(NULL, "too_big", "request line over 65536 bytes");

			if (!c->discarding && (!reply || !ctl_client_queue(c, reply))) {
				free(reply);
				return false;
			}
			free(reply);
			c->discarding = true;
			c->in_len = 0;
		}
		if (!ctl_client_flush(c)) {
			return false;
		}
	}
}

void ctl_service(struct ctl_server *s, struct engine *eng, const struct pollfd *pfd, int n)
{
	for (int k = 1; k < n; k++) {
		struct ctl_client *c = NULL;

		if (!pfd[k].revents) {
			continue;
		}
		for (int i = 0; i < CTL_CLIENTS_MAX; i++) {
			if (s->c[i].fd == pfd[k].fd) {
				c = &s->c[i];
			}
		}
		if (!c) {
			continue;
		}
		if ((pfd[k].revents & POLLIN) && !ctl_client_read(s, eng, c)) {
			ctl_client_drop(c);
			continue;
		}
		if ((pfd[k].revents & (POLLERR | POLLNVAL)) ||
		    ((pfd[k].revents & POLLHUP) && !(pfd[k].revents & POLLIN))) {
			ctl_client_drop(c);
			continue;
		}
		if (!ctl_client_flush(c)) {
			ctl_client_drop(c);
		}
	}
	if (n > 0 && (pfd[0].revents & POLLIN)) {
		for (;;) {
			int fd = accept4(s->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
			int i;

			if (fd < 0) {
				break;
			}
			for (i = 0; i < CTL_CLIENTS_MAX && s->c[i].fd >= 0; i++) {
			}
			if (i == CTL_CLIENTS_MAX || !(s->c[i].in = malloc(CTL_LINE_MAX + 1))) {
				pr_warn(MOD, "too many control clients; refusing one");
				close(fd);
				continue;
			}
			s->c[i].fd = fd;
		}
	}
}
