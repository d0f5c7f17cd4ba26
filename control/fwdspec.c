// SPDX-License-Identifier: MIT
/* Forward spec syntax (control/fwdspec.h). */
#include <errno.h>
#include <stdbool.h>
#include <string.h>

#include "fwdspec.h"

static bool hostport_host_ok(const char *h, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		char c = h[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '.' || c == '-' || c == ':' || c == '_' || c == '%')) {
			return false;
		}
	}
	return n > 0;
}

int hostport_parse(const char *s, size_t len, char *host, size_t hostlen, uint16_t *port,
		   const char **why)
{
	const char *colon, *hs = s, *he;
	unsigned long p = 0;
	size_t digits;

	if (len && s[0] == '[') {
		he = memchr(s, ']', len);
		if (!he || he + 1 >= s + len || he[1] != ':') {
			*why = "IPv6 address must be written [addr]:port";
			return -EINVAL;
		}
		hs = s + 1;
		colon = he + 1;
	} else {
		colon = memrchr(s, ':', len);
		if (!colon) {
			*why = "missing :port";
			return -EINVAL;
		}
		he = colon;
		if (memchr(s, ':', (size_t)(colon - s))) {
			*why = "IPv6 address must be written [addr]:port";
			return -EINVAL;
		}
	}
	if (!hostport_host_ok(hs, (size_t)(he - hs))) {
		*why = "bad host";
		return -EINVAL;
	}
	if ((size_t)(he - hs) >= hostlen) {
		*why = "host too long";
		return -EINVAL;
	}
	digits = (size_t)(s + len - colon - 1);
	if (!digits || digits > 5) {
		*why = "bad port";
		return -EINVAL;
	}
	for (size_t i = 0; i < digits; i++) {
		char c = colon[1 + i];

		if (c < '0' || c > '9') {
			*why = "bad port";
			return -EINVAL;
		}
		p = p * 10 + (unsigned long)(c - '0');
	}
	if (p > 65535) {
		*why = "port out of range";
		return -EINVAL;
	}
	memcpy(host, hs, (size_t)(he - hs));
	host[he - hs] = '\0';
	*port = (uint16_t)p;
	return 0;
}

int fwdspec_parse(const char *spec, struct fwdspec *out, const char **why)
{
	size_t len = strnlen(spec, CTL_SPEC_MAX + 1);
	const char *eq;

	if (len > CTL_SPEC_MAX) {
		*why = "spec too long";
		return -EINVAL;
	}
	if (strncmp(spec, "tcp:", 4) && strncmp(spec, "udp:", 4)) {
		*why = "spec must start with tcp: or udp:";
		return -EINVAL;
	}
	memcpy(out->proto, spec, 3);
	out->proto[3] = '\0';
	spec += 4;
	len -= 4;
	eq = memchr(spec, '=', len);
	if (!eq) {
		*why = "spec must be PROTO:LISTEN=UPSTREAM";
		return -EINVAL;
	}
	if (hostport_parse(spec, (size_t)(eq - spec), out->listen_host, sizeof(out->listen_host),
			   &out->listen_port, why)) {
		return -EINVAL;
	}
	if (hostport_parse(eq + 1, len - (size_t)(eq + 1 - spec), out->upstream_host,
			   sizeof(out->upstream_host), &out->upstream_port, why)) {
		return -EINVAL;
	}
	if (!out->upstream_port) {
		*why = "upstream port must not be 0";
		return -EINVAL;
	}
	return 0;
}
