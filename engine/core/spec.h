/* SPDX-License-Identifier: MIT */
/*
 * Forward specs: "tcp|udp:LISTEN=UPSTREAM", LISTEN/UPSTREAM = host ":" port, IPv6 as
 * "[addr]:port". spec_parse() only splits and checks syntax; spec_resolve() turns host names
 * into addresses (getaddrinfo, once, at add time) and builds the canonical spec text.
 */
#ifndef NATX_ENGINE_SPEC_H
#define NATX_ENGINE_SPEC_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

enum { SPEC_TEXT_MAX = 600, SPEC_HOST_MAX = 254, SPEC_ERR_MAX = 160 };

enum spec_proto { SPEC_TCP = 1, SPEC_UDP = 2 };

struct spec_hostport {
	char host[SPEC_HOST_MAX]; /* without brackets */
	uint16_t port;
};

struct spec {
	enum spec_proto proto;
	struct spec_hostport listen;
	struct spec_hostport upstream;
};

/* A resolved forward: addresses ready for bind()/connect(). */
struct spec_addr {
	enum spec_proto proto;
	struct sockaddr_storage listen;
	socklen_t listen_len;
	struct sockaddr_storage upstream;
	socklen_t upstream_len;
};

/*
 * spec_parse - split @text into @out. Returns 0, or -EINVAL with a one-line reason in
 * @err (SPEC_ERR_MAX bytes) naming the problem. Listen port may be 0 (kernel picks).
 */
int spec_parse(const char *text, struct spec *out, char *err);

/*
 * spec_resolve - resolve both host parts of @s. Returns 0, or -ENOENT (name did not
 * resolve) with a reason in @err.
 */
int spec_resolve(const struct spec *s, struct spec_addr *out, char *err);

/* spec_addr_format - "1.2.3.4:80" or "[::1]:80" into @buf (at least 64 bytes). */
void spec_addr_format(const struct sockaddr_storage *ss, char *buf, size_t len);

/* spec_canonical - "tcp:LISTEN=UPSTREAM" with numeric addresses, into @buf. */
void spec_canonical(const struct spec_addr *a, char *buf, size_t len);

/* spec_sockaddr_equal - same family, address and port. */
bool spec_sockaddr_equal(const struct sockaddr_storage *a, const struct sockaddr_storage *b);

#endif
