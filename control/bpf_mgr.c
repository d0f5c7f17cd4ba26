// SPDX-License-Identifier: MIT
/* natxd's STUN responder manager: XDP reflector or user-space fallback (control/bpf_mgr.h). */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <string.h>

#include "bpf_mgr.h"
#include "natx/err.h"
#include "natx/log.h"

#ifdef NATX_HAVE_BPF
#include "loader.h"
#include "punch_steer.h"
#endif

#define MOD "bpf"

static const char *const bpf_mgr_cnt_names[NATX_STUN_CNT_MAX] = {
	[NATX_STUN_CNT_ANSWERED] = "answered",
	[NATX_STUN_CNT_RATE_LIMITED] = "rate_limited",
	[NATX_STUN_CNT_PASSED] = "passed",
	[NATX_STUN_CNT_MALFORMED] = "malformed",
	[NATX_STUN_CNT_PUNCH_PASSED] = "punch_passed",
	[NATX_STUN_CNT_PUNCH_RATE_LIMITED] = "punch_rate_limited",
};

/* The user-space responder counts no punch probes: it reports the first four counters. */
enum { BPF_MGR_FB_CNT = NATX_STUN_CNT_MALFORMED + 1 };

const char *bpf_mgr_state_name(enum bpf_mgr_state s)
{
	switch (s) {
	case BPF_MGR_OFF:
		return "off";
	case BPF_MGR_XDP:
		return "xdp";
	case BPF_MGR_FALLBACK:
		return "fallback";
	case BPF_MGR_FAILED:
		return "failed";
	}
	return "?";
}

void bpf_mgr_init(struct bpf_mgr *m, struct engine_sup *eng)
{
	memset(m, 0, sizeof(*m));
	m->eng = eng;
	snprintf(m->reason, sizeof(m->reason), "not started");
}

/* bpf_mgr_fb_close - the engine's responder is no longer wanted. */
static void bpf_mgr_fb_close(struct bpf_mgr *m)
{
	if (!m->fb_want) {
		return;
	}
	m->fb_want = false;
	engine_sup_stun_set(m->eng, NULL, 0, 0);
	pr_info(MOD, "engine's user-space STUN responder on %s stopped", m->fb_listen);
}

/*
 * bpf_mgr_fb_open - ask the engine to answer on [::]:port. 0 also when the engine is down
 * (it starts answering when it comes up); the engine's error otherwise.
 */
static int bpf_mgr_fb_open(struct bpf_mgr *m)
{
	int rc;

	snprintf(m->fb_listen, sizeof(m->fb_listen), "[::]:%u", m->port);
	rc = engine_sup_stun_set(m->eng, m->fb_listen, m->rate, m->burst);
	if (rc && rc != -NATX_E_UNAVAILABLE && rc != -EPIPE && rc != -ETIMEDOUT) {
		engine_sup_stun_set(m->eng, NULL, 0, 0);
		return rc;
	}
	m->fb_want = true;
	return 0;
}

#ifdef NATX_HAVE_BPF
/* bpf_mgr_xdp_attach - attach (or reuse) the reflector with the applied settings. */
static int bpf_mgr_xdp_attach(struct bpf_mgr *m)
{
	struct natx_bpf_cfg c;
	int rc = natx_bpf_cfg_init(&c, m->ifname);

	if (rc) {
		return rc;
	}
	c.mode = m->mode == CONFIG_XDP_GENERIC ? NATX_XDP_GENERIC : NATX_XDP_NATIVE;
	c.ports[0] = (uint16_t)m->port;
	c.rate = m->rate;
	c.burst = m->burst;
	c.pin_root = m->pin_root;
	return natx_bpf_attach(&c);
}

static void bpf_mgr_xdp_detach(struct bpf_mgr *m, const char *ifname, const char *why)
{
	int rc = natx_bpf_detach(m->pin_root, ifname);

	if (!rc) {
		pr_info(MOD, "XDP reflector detached from %s (%s)", ifname, why);
	} else if (rc != -ENOENT) {
		pr_warn(MOD, "XDP reflector on %s: detach failed: %s", ifname, strerror(-rc));
	}
}
#endif

enum bpf_mgr_state bpf_mgr_apply(struct bpf_mgr *m, const struct natx_config *cfg)
{
	/*
	 * Same settings as the reflector natxd already runs (and no earlier refusal pending, which
	 * leaves a reason): a reload leaves it alone.
	 */
	bool unchanged = m->state == BPF_MGR_XDP && m->attached_by_us && !m->reason[0] &&
			 !strcmp(m->ifname, cfg->xdp_interface) &&
			 !strcmp(m->pin_root, cfg->xdp_pin_root) && m->mode == cfg->xdp_mode &&
			 m->port == cfg->stun_port && m->rate == cfg->stun_rate &&
			 m->burst == cfg->stun_burst;
	bool want_fb;
	int rc;

#ifdef NATX_HAVE_BPF
	/* A reflector natxd attached elsewhere, or one that mode off turns away, goes first. */
	if (m->attached_by_us &&
	    (strcmp(m->ifname, cfg->xdp_interface) || strcmp(m->pin_root, cfg->xdp_pin_root) ||
	     cfg->xdp_mode == CONFIG_XDP_OFF)) {
		bpf_mgr_xdp_detach(m, m->ifname, "configuration changed");
		m->attached_by_us = false;
	}
#endif
	snprintf(m->ifname, sizeof(m->ifname), "%.15s", cfg->xdp_interface); /* validated */
	snprintf(m->pin_root, sizeof(m->pin_root), "%s", cfg->xdp_pin_root);
	if (m->fb_want && (m->port != cfg->stun_port || m->rate != cfg->stun_rate ||
			   m->burst != cfg->stun_burst)) {
		bpf_mgr_fb_close(m); /* rebound below with the new settings, if still wanted */
	}
	m->mode = cfg->xdp_mode;
	m->port = cfg->stun_port;
	m->rate = cfg->stun_rate;
	m->burst = cfg->stun_burst;
	m->reason[0] = '\0';

	if (!m->ifname[0]) {
		snprintf(m->reason, sizeof(m->reason), "no XDP interface configured");
	} else if (m->mode == CONFIG_XDP_OFF) {
		snprintf(m->reason, sizeof(m->reason), "xdp.mode is off");
#ifdef NATX_HAVE_BPF
		bpf_mgr_xdp_detach(m, m->ifname, "xdp.mode off");
#endif
	} else {
#ifdef NATX_HAVE_BPF
		struct natx_bpf_status st;

		if (unchanged && !natx_bpf_status_read(m->pin_root, m->ifname, &st) &&
		    st.attached) {
			return m->state;
		}
		rc = bpf_mgr_xdp_attach(m);
		if (!rc) {
			m->attached_by_us = true;
			bpf_mgr_fb_close(m);
			m->state = BPF_MGR_XDP;
			pr_info(MOD, "XDP STUN reflector on %s (%s), port %u, pins under %s",
				m->ifname, config_xdp_mode_name(m->mode), m->port, m->pin_root);
			return m->state;
		}
		snprintf(m->reason, sizeof(m->reason), "XDP attach on %s (%s) failed: %s%s",
			 m->ifname, config_xdp_mode_name(m->mode), strerror(-rc),
			 rc == -EPERM  ? " (needs root or CAP_BPF + CAP_NET_ADMIN)" :
			 rc == -EBUSY  ? " (another XDP program is attached)" :
			 rc == -ENODEV ? " (no such interface)" :
			 rc == -EROFS  ? " (pin root on a read-only mount: e.g. systemd "
					 "ProtectSystem=strict without ReadWritePaths=/sys/fs/bpf)" :
					 "");
		/*
		 * A refused mode change leaves natx's reflector attached in its old mode (loader.h):
		 * it still answers, so it stays the active responder and the reason says why the
		 * new setting is not in effect. No fallback next to it: XDP would take its packets.
		 */
		if (!natx_bpf_status_read(m->pin_root, m->ifname, &st) && st.attached) {
			size_t n = strlen(m->reason);

			snprintf(m->reason + n, sizeof(m->reason) - n,
				 "; the reflector stays attached in %s mode",
				 natx_bpf_mode_name(st.mode));
			m->attached_by_us = true;
			bpf_mgr_fb_close(m);
			m->state = BPF_MGR_XDP;
			pr_warn(MOD, "%s", m->reason);
			return m->state;
		}
#else
		(void)unchanged;
		snprintf(m->reason, sizeof(m->reason),
			 "natxd was built without BPF support (NATX_WITH_BPF=OFF)");
#endif
	}
	want_fb = cfg->stun_fallback == CONFIG_STUN_FALLBACK_ALWAYS ||
		  (cfg->stun_fallback == CONFIG_STUN_FALLBACK_AUTO && m->ifname[0]);
	if (!want_fb) {
		bpf_mgr_fb_close(m);
		m->state = BPF_MGR_OFF;
		if (m->ifname[0]) {
			pr_warn(MOD, "no STUN responder: %s and xdp.fallback is off", m->reason);
		}
		return m->state;
	}
	if (!m->fb_want) {
		rc = bpf_mgr_fb_open(m);
		if (rc) {
			size_t n = strlen(m->reason);

			snprintf(m->reason + n, sizeof(m->reason) - n,
				 "; the engine's user-space responder on UDP port %u failed: %s",
				 m->port,
				 m->eng->stun_error[0] ? m->eng->stun_error : natx_strerror(rc));
			m->state = BPF_MGR_FAILED;
			pr_err(MOD, "no STUN responder: %s", m->reason);
			return m->state;
		}
	}
	m->state = BPF_MGR_FALLBACK;
	pr_warn(MOD, "engine's user-space STUN responder on %s (not accelerated): %s", m->fb_listen,
		m->reason);
	return m->state;
}

void bpf_mgr_stop(struct bpf_mgr *m, bool keep)
{
	/* The engine's responder is not stopped here: it ends with the engine, or keeps
	 * answering while natxd is away (engine.keep_on_exit), like a kept XDP reflector. */
	m->fb_want = false;
#ifdef NATX_HAVE_BPF
	if (m->attached_by_us && !keep) {
		bpf_mgr_xdp_detach(m, m->ifname, "natxd stopped, xdp.keep_on_exit = false");
	} else if (m->attached_by_us) {
		pr_info(MOD, "XDP reflector stays attached to %s (xdp.keep_on_exit)", m->ifname);
	}
#endif
	(void)keep;
	m->attached_by_us = false;
	m->state = BPF_MGR_OFF;
}

/* bpf_mgr_engine_stats - the engine's "stats" reply (caller frees), NULL when it is down. */
static cJSON *bpf_mgr_engine_stats(struct bpf_mgr *m)
{
	cJSON *req = cJSON_CreateObject(), *r = NULL;

	if (!m->eng || m->eng->state != ENGINE_UP || !req ||
	    !cJSON_AddStringToObject(req, "cmd", "stats") || engine_sup_call(m->eng, req, &r)) {
		cJSON_Delete(r);
		r = NULL;
	}
	cJSON_Delete(req);
	return r;
}

/*
 * bpf_mgr_fb_counters - the engine responder's counters (since the engine started) and its
 * bound address from the engine's @stats (may be NULL). Returns true when it is answering.
 */
static bool bpf_mgr_fb_counters(const struct bpf_mgr *m, const cJSON *stats, uint64_t *out,
				char *listen, size_t len)
{
	const cJSON *stun = cJSON_GetObjectItemCaseSensitive(stats, "stun");
	const cJSON *c = cJSON_GetObjectItemCaseSensitive(stun, "counters");
	const cJSON *l = cJSON_GetObjectItemCaseSensitive(stun, "listen");
	bool running = m->fb_want && cJSON_IsObject(stun) && cJSON_IsString(l);

	memset(out, 0, sizeof(uint64_t) * NATX_STUN_CNT_MAX);
	snprintf(listen, len, "%s", running ? l->valuestring : "");
	for (int i = 0; running && i < BPF_MGR_FB_CNT; i++) {
		const cJSON *v = cJSON_GetObjectItemCaseSensitive(c, bpf_mgr_cnt_names[i]);

		out[i] = cJSON_IsNumber(v) ? (uint64_t)v->valuedouble : 0;
	}
	return running;
}

static cJSON *bpf_mgr_counters_json(const uint64_t *c, int n)
{
	cJSON *o = cJSON_CreateObject();

	for (int i = 0; o && i < n; i++) {
		if (!cJSON_AddNumberToObject(o, bpf_mgr_cnt_names[i], (double)c[i])) {
			cJSON_Delete(o);
			return NULL;
		}
	}
	return o;
}

#ifdef NATX_HAVE_BPF
static cJSON *bpf_mgr_xdp_json(const struct natx_bpf_status *st)
{
	cJSON *o = cJSON_CreateObject(), *ports;
	bool ok = o != NULL;

	ok = ok && cJSON_AddStringToObject(o, "interface", st->ifname);
	ok = ok && cJSON_AddNumberToObject(o, "ifindex", st->ifindex);
	ok = ok && cJSON_AddBoolToObject(o, "attached", st->attached);
	ok = ok && cJSON_AddStringToObject(o, "program", "stun_reflect");
	ok = ok && cJSON_AddStringToObject(o, "mode", natx_bpf_mode_name(st->mode));
	ok = ok && cJSON_AddNumberToObject(o, "prog_id", st->prog_id);
	ok = ok && cJSON_AddNumberToObject(o, "link_id", st->link_id);
	ports = ok ? cJSON_AddArrayToObject(o, "ports") : NULL;
	for (int i = 0; ports && i < NATX_STUN_MAX_PORTS; i++) {
		if (st->ports[i]) {
			cJSON_AddItemToArray(ports, cJSON_CreateNumber(st->ports[i]));
		}
	}
	ok = ok && ports && cJSON_AddNumberToObject(o, "rate", st->rate);
	ok = ok && cJSON_AddNumberToObject(o, "burst", st->burst);
	ok = ok && cJSON_AddItemToObject(o, "counters",
					 bpf_mgr_counters_json(st->counters, NATX_STUN_CNT_MAX));
	if (!ok) {
		cJSON_Delete(o);
		return NULL;
	}
	return o;
}

static cJSON *bpf_mgr_punch_json(const struct natx_punch_steer_status *ps)
{
	cJSON *o = cJSON_CreateObject(), *c;
	bool ok = o != NULL;

	ok = ok && cJSON_AddStringToObject(o, "program", "punch_steer");
	ok = ok && cJSON_AddBoolToObject(o, "attached", ps->attached);
	ok = ok && cJSON_AddNumberToObject(o, "prog_id", ps->prog_id);
	ok = ok && cJSON_AddNumberToObject(o, "port_lo", ps->port_lo);
	ok = ok && cJSON_AddNumberToObject(o, "port_hi", ps->port_hi);
	ok = ok && cJSON_AddNumberToObject(o, "sessions", ps->sessions);
	ok = ok && cJSON_AddNumberToObject(o, "flows", ps->flows);
	c = ok ? cJSON_AddObjectToObject(o, "counters") : NULL;
	for (int i = 0; c && i < NATX_PUNCH_CNT_MAX; i++) {
		cJSON_AddNumberToObject(c, natx_punch_counter_name((enum natx_punch_counter)i),
					(double)ps->counters[i]);
	}
	if (!c) {
		cJSON_Delete(o);
		return NULL;
	}
	return o;
}

/* bpf_mgr_xdp_lost - state XDP but the link is gone (detached behind natxd's back): say so. */
static void bpf_mgr_xdp_lost(struct bpf_mgr *m, int rc)
{
	m->state = BPF_MGR_FAILED;
	m->attached_by_us = false;
	snprintf(m->reason, sizeof(m->reason),
		 "XDP reflector on %s is no longer attached (%s); reload natxd to re-attach",
		 m->ifname, rc ? strerror(-rc) : "link detached outside natxd");
	pr_err(MOD, "%s", m->reason);
}
#endif

cJSON *bpf_mgr_status_json(struct bpf_mgr *m)
{
	cJSON *o = cJSON_CreateObject(), *fb, *xdp = NULL;
	uint64_t c[NATX_STUN_CNT_MAX];
	cJSON *stats = bpf_mgr_engine_stats(m);
	char listen[64];
	bool running;
	bool ok = o != NULL;

#ifdef NATX_HAVE_BPF
	struct natx_bpf_status st;
	struct natx_punch_steer_status ps;

	if (m->state == BPF_MGR_XDP) {
		int rc = natx_bpf_status_read(m->pin_root, m->ifname, &st);

		if (rc || !st.attached) {
			bpf_mgr_xdp_lost(m, rc);
		} else {
			xdp = bpf_mgr_xdp_json(&st);
			ok = ok && xdp;
		}
	}
#endif
	ok = ok && cJSON_AddStringToObject(o, "active", bpf_mgr_state_name(m->state));
	ok = ok && cJSON_AddStringToObject(o, "responder",
					   m->state == BPF_MGR_XDP	? "xdp" :
					   m->state == BPF_MGR_FALLBACK ? "engine (user space)" :
									  "none");
	ok = ok && (m->reason[0] ? cJSON_AddStringToObject(o, "reason", m->reason) :
				   cJSON_AddNullToObject(o, "reason"));
	ok = ok && cJSON_AddBoolToObject(o, "accelerated", m->state == BPF_MGR_XDP);
	ok = ok && cJSON_AddStringToObject(o, "interface", m->ifname);
	ok = ok && cJSON_AddStringToObject(o, "configured_mode", config_xdp_mode_name(m->mode));
	ok = ok && cJSON_AddNumberToObject(o, "stun_port", m->port);
	ok = ok && cJSON_AddStringToObject(o, "pin_root", m->pin_root);
	if (xdp) {
		ok = ok && cJSON_AddStringToObject(o, "mode",
						   cJSON_GetObjectItem(xdp, "mode")->valuestring);
		ok = ok && cJSON_AddNumberToObject(
				   o, "prog_id", cJSON_GetObjectItem(xdp, "prog_id")->valuedouble);
		ok = ok && cJSON_AddItemToObject(o, "xdp", xdp);
		if (!ok) {
			cJSON_Delete(stats);
			cJSON_Delete(o);
			return NULL;
		}
		ok = cJSON_AddItemReferenceToObject(o, "counters",
						    cJSON_GetObjectItem(xdp, "counters"));
	} else {
		ok = ok && cJSON_AddStringToObject(o, "mode", "user-space");
		ok = ok && cJSON_AddNullToObject(o, "xdp");
	}
	running = bpf_mgr_fb_counters(m, stats, c, listen, sizeof(listen));
	fb = ok ? cJSON_CreateObject() : NULL;
	ok = ok && fb;
	ok = ok && cJSON_AddBoolToObject(fb, "running", running);
	ok = ok && cJSON_AddStringToObject(fb, "where", "engine");
	ok = ok && cJSON_AddStringToObject(fb, "listen", listen);
	ok = ok &&
	     (m->fb_want && !running ?
		      cJSON_AddStringToObject(fb, "error",
					      m->eng->state != ENGINE_UP ? "the engine is down" :
					      m->eng->stun_error[0]	 ? m->eng->stun_error :
									   "not answering") :
		      cJSON_AddNullToObject(fb, "error"));
	ok = ok && cJSON_AddItemToObject(fb, "counters", bpf_mgr_counters_json(c, BPF_MGR_FB_CNT));
	if (fb && !ok) {
		cJSON_Delete(fb);
		fb = NULL;
	}
	ok = ok && cJSON_AddItemToObject(o, "fallback", fb);
	if (ok && !xdp) {
		ok = cJSON_AddItemReferenceToObject(o, "counters",
						    cJSON_GetObjectItem(fb, "counters"));
	}
#ifdef NATX_HAVE_BPF
	if (ok && !natx_punch_steer_status_read(m->pin_root, &ps)) {
		cJSON *pj = bpf_mgr_punch_json(&ps);

		ok = pj && cJSON_AddItemToObject(o, "punch_steer", pj);
	}
#endif
	if (ok) {
		/* The engine's SO_REUSEPORT steering (bpf or kernel, with why), null while down. */
		cJSON *sj = cJSON_DetachItemFromObjectCaseSensitive(stats, "steering");

		ok = sj ? cJSON_AddItemToObject(o, "steering", sj) :
			  cJSON_AddNullToObject(o, "steering") != NULL;
	}
	cJSON_Delete(stats);
	if (!ok) {
		cJSON_Delete(o);
		return NULL;
	}
	return o;
}

void bpf_mgr_prometheus(struct bpf_mgr *m, FILE *f)
{
	uint64_t c[NATX_STUN_CNT_MAX];
	char listen[64];
	cJSON *stats;

	fprintf(f, "# HELP natx_stun_responder 1 for the STUN responder that is active "
		   "(xdp, fallback, off, failed)\n"
		   "# TYPE natx_stun_responder gauge\n");
	for (int s = BPF_MGR_OFF; s <= BPF_MGR_FAILED; s++) {
		fprintf(f, "natx_stun_responder{state=\"%s\"} %d\n",
			bpf_mgr_state_name((enum bpf_mgr_state)s), (int)m->state == s);
	}
	fprintf(f, "# HELP natx_bpf_packets_total packets seen by natx's BPF programs, by result\n"
		   "# TYPE natx_bpf_packets_total counter\n");
#ifdef NATX_HAVE_BPF
	{
		struct natx_bpf_status st;
		struct natx_punch_steer_status ps;

		if (m->state == BPF_MGR_XDP && !natx_bpf_status_read(m->pin_root, m->ifname, &st)) {
			for (int i = 0; i < NATX_STUN_CNT_MAX; i++) {
				fprintf(f,
					"natx_bpf_packets_total{prog=\"stun\",interface=\"%s\","
					"result=\"%s\"} %llu\n",
					st.ifname, bpf_mgr_cnt_names[i],
					(unsigned long long)st.counters[i]);
			}
		}
		if (!natx_punch_steer_status_read(m->pin_root, &ps)) {
			for (int i = 0; i < NATX_PUNCH_CNT_MAX; i++) {
				fprintf(f,
					"natx_bpf_packets_total{prog=\"punch_steer\",result=\"%s\"} "
					"%llu\n",
					natx_punch_counter_name((enum natx_punch_counter)i),
					(unsigned long long)ps.counters[i]);
			}
		}
	}
#endif
	stats = bpf_mgr_engine_stats(m);
	bpf_mgr_fb_counters(m, stats, c, listen, sizeof(listen));
	cJSON_Delete(stats);
	fprintf(f, "# HELP natx_stun_userspace_packets_total datagrams seen by the engine's "
		   "user-space STUN responder (not accelerated, since the engine started), "
		   "by result\n"
		   "# TYPE natx_stun_userspace_packets_total counter\n");
	for (int i = 0; i < BPF_MGR_FB_CNT; i++) {
		fprintf(f, "natx_stun_userspace_packets_total{result=\"%s\"} %llu\n",
			bpf_mgr_cnt_names[i], (unsigned long long)c[i]);
	}
}
