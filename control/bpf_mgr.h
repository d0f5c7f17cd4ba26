/* SPDX-License-Identifier: MIT */
/*
 * natxd's STUN responder manager: attaches, pins and detaches the XDP STUN reflector through
 * the natx_bpf library (bpf/loader.h) according to the [xdp] configuration, and has the
 * engine run its user-space responder (engine/core/stun_eng.h, ctl "stun.set") when XDP is
 * not active. Exactly one of them answers on the STUN port at any time, and the status says
 * which one and why (docs/bpf.md "Control").
 *
 * Decision at start and at every reload:
 *   - xdp.interface set, mode native|generic, BPF built in: natx_bpf_attach() (reuses the pins
 *     a previous natxd left: counters and buckets survive). Success: state XDP.
 *   - otherwise (interface unset, mode off, built without BPF, attach refused): the reason is
 *     kept, and the engine is asked to answer on [::]:stun_port (engine_sup_stun_set; pushed
 *     again whenever the engine restarts) if xdp.fallback allows it (auto: only when an
 *     interface is configured; always: also without one). State FALLBACK (also while the
 *     engine is down: the status then says the responder is not running), or OFF/FAILED
 *     with the reason (FAILED: the engine refused, e.g. the port is taken).
 *   - mode off on a configured interface also removes a reflector a previous natxd left
 *     attached there (natx_bpf_detach), so "off" really means off.
 * At stop the reflector stays attached and pinned when xdp.keep_on_exit (the default: a
 * restart reuses it, the relay keeps answering while natxd is down); otherwise it is detached
 * and its pins (counters too) removed.
 *
 * Not thread-safe: natxd's single thread only.
 */
#ifndef NATX_CTL_BPF_MGR_H
#define NATX_CTL_BPF_MGR_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include <cjson/cJSON.h>

#include "config.h"
#include "engine_sup.h"
#include "natx_bpf_common.h"

enum bpf_mgr_state {
	BPF_MGR_OFF = 0, /* no STUN responder by configuration */
	BPF_MGR_XDP, /* the XDP reflector answers */
	BPF_MGR_FALLBACK, /* the engine's user-space responder answers */
	BPF_MGR_FAILED, /* a responder was wanted but none could start */
};

struct bpf_mgr {
	struct engine_sup *eng; /* runs the user-space responder; borrowed */
	enum bpf_mgr_state state;
	char reason[384]; /* why XDP is not the active responder, "" in state XDP */
	/* What is applied now (copied from the configuration). */
	char ifname[16]; /* configured interface (IF_NAMESIZE), "" = none */
	char pin_root[PATH_MAX];
	unsigned mode; /* enum config_xdp_mode */
	unsigned port, rate, burst;
	bool attached_by_us; /* natxd attached (or reused) the reflector on ifname */
	bool fb_want; /* the engine's user-space responder is asked for */
	char fb_listen[64]; /* "[::]:3478" */
};

/* bpf_mgr_init - an idle manager (state OFF) whose user-space responder runs in @eng. */
void bpf_mgr_init(struct bpf_mgr *m, struct engine_sup *eng);

/*
 * bpf_mgr_apply - bring the responders in line with @cfg's [xdp] keys (start and reload).
 * Never fails hard: problems end in state FALLBACK/FAILED with the reason logged and kept.
 * Returns the new state.
 */
enum bpf_mgr_state bpf_mgr_apply(struct bpf_mgr *m, const struct natx_config *cfg);

/* bpf_mgr_stop - detach the reflector unless @keep (xdp.keep_on_exit). The engine's
 * responder is left to the engine (it stops with it, or keeps answering when natxd leaves
 * the engine running). */
void bpf_mgr_stop(struct bpf_mgr *m, bool keep);

/* bpf_mgr_state_name - "off", "xdp", "fallback", "failed". */
const char *bpf_mgr_state_name(enum bpf_mgr_state s);

/*
 * bpf_mgr_status_json - the "bpf" object of `natxctl bpf status` (shape in docs/bpf.md),
 * reading the live XDP state and counters from the pins. NULL when out of memory.
 */
cJSON *bpf_mgr_status_json(struct bpf_mgr *m);

/* bpf_mgr_prometheus - the natx_bpf_* and natx_stun_* series, with HELP/TYPE lines, to @f. */
void bpf_mgr_prometheus(struct bpf_mgr *m, FILE *f);

#endif
