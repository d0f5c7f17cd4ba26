// SPDX-License-Identifier: MIT
/* Forward spec parsing and resolution (see spec.h). */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

#include "spec.h"

/* spec_hostport_parse - "host:port" or "[v6]:port" of length @len into @hp. */
static int spec_hostport_parse(const char *s, size_t len, const char *what,
			       struct spec_hostport *hp, bool port0_ok, char *err)
{
	const char *host = s, *colon;
	size_t hlen;
	unsigned long port = 0;

	if (len == 0) {
		snprintf(err, SPEC_ERR_MAX, "%s address is empty", what);
		return -EINVAL;
	}
	if (s[0] == '[') {
		const char *rb = memchr(s, ']', len);

		if (!rb) {
			snprintf(err, SPEC_ERR_MAX, "%s address: missing ']'", what);
			return -EINVAL;
		}
		host = s + 1;
		hlen = (size_t)(rb - host);
		if ((size_t)(rb - s) + 1 >= len || rb[1] != ':') {
			snprintf(err, SPEC_ERR_MAX, "%s address: expected ':port' after ']'", what);
			return -EINVAL;
		}
		colon = rb + 1;
		if (!memchr(host, ':', hlen)) {
			snprintf(err, SPEC_ERR_MAX, "%s address: brackets are for IPv6 only", what);
			return -EINVAL;
		}
	} else {
		colon = memrchr(s, ':', len);
		if (!colon) {
			snprintf(err, SPEC_ERR_MAX, "%s address: missing ':port'", what);
			return -EINVAL;
		}
		hlen = (size_t)(colon - s);
		if (memchr(s, ':', hlen)) {
			snprintf(err, SPEC_ERR_MAX, "%s address: IPv6 addresses need [brackets]",
				 what);
			return -EINVAL;
		}
	}
	if (hlen == 0) {
		snprintf(err, SPEC_ERR_MAX, "%s address: empty host", what);
		return -EINVAL;
	}
	if (hlen >= SPEC_HOST_MAX) {
		snprintf(err, SPEC_ERR_MAX, "%s address: host longer than %d bytes", what,
			 SPEC_HOST_MAX - 1);
		return -EINVAL;
	}
	for (size_t i = 0; i < hlen; i++) {
		unsigned char c = (unsigned char)host[i];

		if (c <= ' ' || c >= 0x7f || c == '/' || c == '[' || c == ']' || c == '=') {
			snprintf(err, SPEC_ERR_MAX, "%s address: bad character in host", what);
			return -EINVAL;
		}
	}
	const char *p = colon + 1, *end = s + len;

	if (p == end) {
		snprintf(err, SPEC_ERR_MAX, "%s address: empty port", what);
		return -EINVAL;
	}
	if (end - p > 5) {
		snprintf(err, SPEC_ERR_MAX, "%s port out of range", what);
		return -EINVAL;
	}
	for (; p < end; p++) {
		if (*p < '0' || *p > '9') {
			snprintf(err, SPEC_ERR_MAX, "%s port is not a number", what);
			return -EINVAL;
		}
		port = port * 10 + (unsigned long)(*p - '0');
	}
	if (port > 65535 || (port == 0 && !port0_ok)) {
		snprintf(err, SPEC_ERR_MAX, "%s port out of range", what);
		return -EINVAL;
	}
	memcpy(hp->host, host, hlen);
	hp->host[hlen] = '\0';
	hp->port = (uint16_t)port;
	return 0;
}

int spec_parse(const char *text, struct spec *out, char *err)
{
	size_t len = strnlen(text, SPEC_TEXT_MAX);
	const char *rest, *eq;
	int ret;

	memset(out, 0, sizeof(*out));
	if (len >= SPEC_TEXT_MAX) {
		snprintf(err, SPEC_ERR_MAX, "spec longer than %d bytes", SPEC_TEXT_MAX - 1);
		return -EINVAL;
	}
	if (!strncmp(text, "tcp:", 4)) {
		out->proto = SPEC_TCP;
	} else if (!strncmp(text, "udp:", 4)) {
		out->proto = SPEC_UDP;
	} else {
		snprintf(err, SPEC_ERR_MAX, "spec must start with tcp: or udp:");
		return -EINVAL;
	}
	rest = text + 4;
	eq = strchr(rest, '=');
	if (!eq) {
		snprintf(err, SPEC_ERR_MAX, "spec needs LISTEN=UPSTREAM");
		return -EINVAL;
	}
	if (strchr(eq + 1, '=')) {
		snprintf(err, SPEC_ERR_MAX, "spec has more than one '='");
		return -EINVAL;
	}
	ret = spec_hostport_parse(rest, (size_t)(eq - rest), "listen", &out->listen, true, err);
	if (ret) {
		return ret;
	}
	return spec_hostport_parse(eq + 1, strlen(eq + 1), "upstream", &out->upstream, false, err);
}

/* spec_host_resolve - first address of @hp (numeric first, then getaddrinfo). */
static int spec_host_resolve(const struct spec_hostport *hp, enum spec_proto proto, bool passive,
			     const char *what, struct sockaddr_storage *ss, socklen_t *len,
			     char *err)
{
	struct addrinfo hints = { 0 }, *res = NULL;
	char port[8];
	int rc;

	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = proto == SPEC_TCP ? SOCK_STREAM : SOCK_DGRAM;
	hints.ai_flags = AI_NUMERICSERV | (passive ? AI_PASSIVE : 0);
	snprintf(port, sizeof(port), "%u", hp->port);
	rc = getaddrinfo(hp->host, port, &hints, &res);
	if (rc || !res) {
		snprintf(err, SPEC_ERR_MAX, "cannot resolve %s host '%.80s': %s", what, hp->host,
			 rc ? gai_strerror(rc) : "no address");
		if (res) {
			freeaddrinfo(res);
		}
		return -ENOENT;
	}
	memset(ss, 0, sizeof(*ss));
	memcpy(ss, res->ai_addr, res->ai_addrlen);
	*len = res->ai_addrlen;
	freeaddrinfo(res);
	return 0;
}

int spec_resolve(const struct spec *s, struct spec_addr *out, char *err)
{
	int ret;

	memset(out, 0, sizeof(*out));
	out->proto = s->proto;
	ret = spec_host_resolve(&s->listen, s->proto, true, "listen", &out->listen,
				&out->listen_len, err);
	if (ret) {
		return ret;
	}
	return spec_host_resolve(&s->upstream, s->proto, false, "upstream", &out->upstream,
				 &out->upstream_len, err);
}

void spec_addr_format(const struct sockaddr_storage *ss, char *buf, size_t len)
{
	char a[INET6_ADDRSTRLEN];

	if (ss->ss_family == AF_INET6) {
		const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)ss;

		inet_ntop(AF_INET6, &s6->sin6_addr, a, sizeof(a));
		snprintf(buf, len, "[%s]:%u", a, ntohs(s6->sin6_port));
	} else if (ss->ss_family == AF_INET) {
		const struct sockaddr_in *s4 = (const struct sockaddr_in *)ss;

		inet_ntop(AF_INET, &s4->sin_addr, a, sizeof(a));
		snprintf(buf, len, "%s:%u", a, ntohs(s4->sin_port));
	} else {
		snprintf(buf, len, "?");
	}
}

void spec_canonical(const struct spec_addr *a, char *buf, size_t len)
{
	char l[64], u[64];

	spec_addr_format(&a->listen, l, sizeof(l));
	spec_addr_format(&a->upstream, u, sizeof(u));
	snprintf(buf, len, "%s:%s=%s", a->proto == SPEC_TCP ? "tcp" : "udp", l, u);
}

bool spec_sockaddr_equal(const struct sockaddr_storage *a, const struct sockaddr_storage *b)
{
	if (a->ss_family != b->ss_family) {
		return false;
	}
	if (a->ss_family == AF_INET) {
		const struct sockaddr_in *x = (const void *)a, *y = (const void *)b;

		return x->sin_port == y->sin_port && x->sin_addr.s_addr == y->sin_addr.s_addr;
	}
	if (a->ss_family == AF_INET6) {
		const struct sockaddr_in6 *x = (const void *)a, *y = (const void *)b;

		return x->sin6_port == y->sin6_port &&
		       !memcmp(&x->sin6_addr, &y->sin6_addr, sizeof(x->sin6_addr));
	}
	return false;
}
