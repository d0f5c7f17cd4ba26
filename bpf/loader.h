/* SPDX-License-Identifier: MIT */
/*
 * natx_bpf: loads, configures, attaches, pins and inspects the XDP STUN reflector
 * (bpf/stun_reflect.bpf.c). natx-bpf (the CLI) and, later, natxd use this API.
 *
 * Pins: <pin_root>/<ifname>/link (the bpf_link holding the program on the interface) and the
 * maps natx_stun_cnt (counters) and natx_stun_rl (rate-limit state). A second attach on the
 * same interface reuses the pinned maps (counters and buckets survive) and swaps the program
 * atomically with bpf_link_update (new ports/rate take effect without a gap); a mode change
 * detaches first. The link stays attached after the calling process exits.
 *
 * Every function returns 0 or -errno: -EPERM without CAP_BPF/CAP_NET_ADMIN, -ENODEV for an
 * unknown interface, -ENOENT when nothing natx is pinned for it, -EBUSY when another XDP
 * program (not natx's link) is attached.
 */
#ifndef NATX_BPF_LOADER_H
#define NATX_BPF_LOADER_H

#include <net/if.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "natx_bpf_common.h"

enum natx_xdp_mode {
	NATX_XDP_NATIVE = 0, /* driver mode (XDP_FLAGS_DRV_MODE) */
	NATX_XDP_GENERIC, /* skb mode (XDP_FLAGS_SKB_MODE), works on any interface */
};

struct natx_bpf_cfg {
	char ifname[IF_NAMESIZE];
	enum natx_xdp_mode mode;
	uint16_t ports[NATX_STUN_MAX_PORTS]; /* host order; 0 = unused; all zero means 3478 */
	uint32_t rate; /* requests per second per source; 0 = no limit */
	uint32_t burst; /* bucket size; 0 means "rate" (one second's worth) */
	const char *pin_root; /* NULL = NATX_BPF_PIN_ROOT */
};

struct natx_bpf_status {
	char ifname[IF_NAMESIZE];
	int ifindex;
	bool attached; /* the pinned link is attached to a live interface */
	enum natx_xdp_mode mode; /* as the kernel reports it (bpf_xdp_query) */
	uint32_t prog_id;
	uint32_t link_id;
	uint16_t ports[NATX_STUN_MAX_PORTS];
	uint32_t rate;
	uint32_t burst;
	uint64_t counters[NATX_STUN_CNT_MAX]; /* summed over CPUs */
};

struct stun_reflect_bpf;

/* natx_bpf_cfg_init - defaults for @ifname: native mode, port 3478, no rate limit. */
int natx_bpf_cfg_init(struct natx_bpf_cfg *cfg, const char *ifname);

/*
 * natx_bpf_skel_configure - write @cfg's ports and rate limit into the rodata of an opened,
 * not yet loaded skeleton. Returns -EINVAL for a rate above 1e9/s.
 */
int natx_bpf_skel_configure(struct stun_reflect_bpf *skel, const struct natx_bpf_cfg *cfg);

/* natx_bpf_attach - load, configure, attach and pin the reflector (see the header comment). */
int natx_bpf_attach(const struct natx_bpf_cfg *cfg);

/* natx_bpf_detach - detach the reflector from @ifname and remove its pins (counters too). */
int natx_bpf_detach(const char *pin_root, const char *ifname);

/* natx_bpf_status_read - read what is pinned for @ifname into @st. */
int natx_bpf_status_read(const char *pin_root, const char *ifname, struct natx_bpf_status *st);

/*
 * natx_bpf_status_list - status of every interface pinned under @pin_root, at most @max;
 * *@n receives the count. A missing pin root is not an error (n = 0).
 */
int natx_bpf_status_list(const char *pin_root, struct natx_bpf_status *out, size_t max, size_t *n);

/* natx_bpf_mode_name - "native" or "generic". */
const char *natx_bpf_mode_name(enum natx_xdp_mode mode);

/* natx_bpf_counter_name - "answered", "rate_limited", "passed", "malformed". */
const char *natx_bpf_counter_name(enum natx_stun_counter c);

#endif
