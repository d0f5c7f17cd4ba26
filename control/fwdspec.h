/* SPDX-License-Identifier: MIT */
/*
 * Forward specs, as natx-engine takes them (docs/control.md, ENGINE-CTL contract):
 *   SPEC = ("tcp" | "udp") ":" LISTEN "=" UPSTREAM
 *   LISTEN, UPSTREAM = host ":" port, IPv6 as "[addr]:port"; host may be a name.
 * natxd checks the syntax itself so a bad spec in a config file is reported with file:line
 * before anything starts; resolving names and binding is the engine's job.
 */
#ifndef NATX_CTL_FWDSPEC_H
#define NATX_CTL_FWDSPEC_H

#include <stdint.h>

#include "natx/ctl_proto.h"

struct fwdspec {
	char proto[4]; /* "tcp" or "udp" */
	char listen_host[CTL_SPEC_MAX]; /* without brackets */
	uint16_t listen_port; /* host byte order; 0 = ephemeral */
	char upstream_host[CTL_SPEC_MAX]; /* without brackets */
	uint16_t upstream_port; /* host byte order, 1..65535 */
};

/*
 * fwdspec_parse - parse @spec into @out. Returns 0, or -EINVAL with a reason in @why (static
 * text). @out is undefined on failure.
 */
int fwdspec_parse(const char *spec, struct fwdspec *out, const char **why);

/*
 * hostport_parse - split "host:port" / "[v6]:port" into @host (room @hostlen) and @port.
 * Returns 0 or -EINVAL with @why. The port must be 0..65535.
 */
int hostport_parse(const char *s, size_t len, char *host, size_t hostlen, uint16_t *port,
		   const char **why);

#endif
