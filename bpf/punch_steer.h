/* SPDX-License-Identifier: MIT */
/*
 * Punch steering (bpf/punch_steer.bpf.c): deliver a punch session's probes and the flows they
 * open to the engine socket that owns the session, by an sk_lookup program attached to the
 * caller's network namespace.
 *
 * Pins under <pin_root>/punch/: link (the sk_lookup bpf_link; it stays attached after the
 * process exits), natx_punch_flows (flow -> session, shared with the XDP reflector, which
 * learns flows from punch probes when attached with punch ports), natx_punch_socks (session ->
 * socket, SOCKHASH), natx_punch_cnt (counters). Opening again (natxd restart) reuses the pins
 * and swaps the program in place.
 *
 * Session sockets: UDP, bound (normally to the punch port, so replies leave from the port the
 * peer punched), not connected (the kernel only assigns unconnected UDP sockets), AF_INET or
 * dual-stack AF_INET6. A socket leaves natx_punch_socks by itself when it is closed.
 * Steering is delivery, not authentication: the engine still verifies each probe.
 *
 * Every function returns 0 or -errno.
 */
#ifndef NATX_BPF_PUNCH_STEER_H
#define NATX_BPF_PUNCH_STEER_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include "natx_bpf_common.h"

struct natx_punch_steer;

struct natx_punch_steer_cfg {
	uint16_t port_lo, port_hi; /* local UDP punch ports steered, inclusive, host order */
	const char *pin_root; /* NULL = NATX_BPF_PIN_ROOT */
};

struct natx_punch_steer_status {
	bool attached;
	uint32_t prog_id, link_id;
	uint16_t port_lo, port_hi;
	uint32_t sessions; /* sockets registered */
	uint32_t flows; /* flows known (learnt or added) */
	uint64_t counters[NATX_PUNCH_CNT_MAX]; /* summed over CPUs */
};

/*
 * natx_punch_steer_open - load the program for @cfg's ports, reuse or create the pinned maps,
 * attach it to the current network namespace (or replace the pinned link's program) and
 * return a handle in *@out. -EINVAL for an empty or inverted port range.
 */
int natx_punch_steer_open(const struct natx_punch_steer_cfg *cfg, struct natx_punch_steer **out);

/* natx_punch_steer_close - release the handle; the pinned link keeps steering. */
void natx_punch_steer_close(struct natx_punch_steer *ps);

/* natx_punch_steer_register - deliver session @sid's flows to socket @fd (replaces). */
int natx_punch_steer_register(struct natx_punch_steer *ps, const uint8_t sid[NATX_PUNCH_SID_LEN],
			      int fd);

/* natx_punch_steer_unregister - forget session @sid's socket; -ENOENT if none. */
int natx_punch_steer_unregister(struct natx_punch_steer *ps, const uint8_t sid[NATX_PUNCH_SID_LEN]);

/*
 * natx_punch_steer_flow_add - map the flow from @peer (AF_INET, AF_INET6; IPv4-mapped IPv6 is
 * stored as IPv4, which is how the kernel looks it up) to local port @lport onto session @sid,
 * for flows known before any probe arrives.
 */
int natx_punch_steer_flow_add(struct natx_punch_steer *ps, const uint8_t sid[NATX_PUNCH_SID_LEN],
			      const struct sockaddr *peer, uint16_t lport);

/* natx_punch_steer_flow_del - forget that flow; -ENOENT if unknown. */
int natx_punch_steer_flow_del(struct natx_punch_steer *ps, const struct sockaddr *peer,
			      uint16_t lport);

/* natx_punch_steer_flow_key - the natx_punch_flows key for @peer and @lport. */
int natx_punch_steer_flow_key(struct natx_punch_flow_key *key, const struct sockaddr *peer,
			      uint16_t lport);

/* natx_punch_steer_status_read - what is pinned under @pin_root; -ENOENT if nothing. */
int natx_punch_steer_status_read(const char *pin_root, struct natx_punch_steer_status *st);

/* natx_punch_steer_detach - detach the pinned link and remove every punch pin. */
int natx_punch_steer_detach(const char *pin_root);

/* natx_punch_counter_name - "steered", "no_flow", "no_socket", "assign_failed". */
const char *natx_punch_counter_name(enum natx_punch_counter c);

#endif
