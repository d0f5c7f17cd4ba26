// SPDX-License-Identifier: MIT
/* User-space STUN Binding responder: see stun_server.h. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "natx/err.h"
#include "stun_server.h"

int stun_sockaddr_parse(const char *s, struct sockaddr_storage *ss, socklen_t *len)
{
	char host[INET6_ADDRSTRLEN + 2];
	const char *colon, *h = s;
	size_t hl;
	char *e;
	unsigned long port;

	memset(ss, 0, sizeof(*ss));
	if (s[0] == '[') {
		const char *rb = strchr(s, ']');

		if (!rb || rb[1] != ':') {
			return -EINVAL;
		}
		h = s + 1;
		hl = (size_t)(rb - h);
		colon = rb + 1;
	} else {
		colon = strrchr(s, ':');
		if (!colon) {
			return -EINVAL;
		}
		hl = (size_t)(colon - s);
	}
	if (hl >= sizeof(host)) {
		return -EINVAL;
	}
	memcpy(host, h, hl);
	host[hl] = '\0';
	errno = 0;
	port = strtoul(colon + 1, &e, 10);
	if (errno || e == colon + 1 || *e || port > 65535) {
		return -EINVAL;
	}
	if (s[0] != '[') {
		struct sockaddr_in *in = (struct sockaddr_in *)ss;

		in->sin_family = AF_INET;
		in->sin_port = htons((uint16_t)port);
		*len = sizeof(*in);
		return inet_pton(AF_INET, host, &in->sin_addr) == 1 ? 0 : -EINVAL;
	}
	struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;

	in6->sin6_family = AF_INET6;
	in6->sin6_port = htons((uint16_t)port);
	*len = sizeof(*in6);
	return inet_pton(AF_INET6, host, &in6->sin6_addr) == 1 ? 0 : -EINVAL;
}

void stun_sockaddr_format(const struct sockaddr *sa, char *buf, size_t len)
{
	char ip[INET6_ADDRSTRLEN];

	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *in = (const void *)sa;

		inet_ntop(AF_INET, &in->sin_addr, ip, sizeof(ip));
		snprintf(buf, len, "%s:%u", ip, ntohs(in->sin_port));
	} else if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *in6 = (const void *)sa;

		inet_ntop(AF_INET6, &in6->sin6_addr, ip, sizeof(ip));
		snprintf(buf, len, "[%s]:%u", ip, ntohs(in6->sin6_port));
	} else {
		snprintf(buf, len, "?");
	}
}

int stun_addr_from_sockaddr(struct stun_addr *a, const struct sockaddr *sa)
{
	memset(a, 0, sizeof(*a));
	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *in = (const void *)sa;

		a->family = STUN_FAMILY_IPV4;
		a->port = ntohs(in->sin_port);
		memcpy(a->addr, &in->sin_addr, 4);
		return 0;
	}
	if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *in6 = (const void *)sa;

		a->port = ntohs(in6->sin6_port);
		if (IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr)) {
			a->family = STUN_FAMILY_IPV4;
			memcpy(a->addr, in6->sin6_addr.s6_addr + 12, 4);
		} else {
			a->family = STUN_FAMILY_IPV6;
			memcpy(a->addr, &in6->sin6_addr, 16);
		}
		return 0;
	}
	return -EAFNOSUPPORT;
}

int stun_server_respond(struct stun_server *s, const uint8_t *in, size_t inlen,
			const struct sockaddr *src, uint64_t now_ns, uint8_t *out, size_t cap,
			size_t *outlen)
{
	struct stun_rl_key key = { 0 };
	struct stun_addr peer;
	struct stun_msg m;
	enum stun_verdict v;
	int err;

	err = stun_msg_parse(&m, in, inlen);
	if (err == -NATX_E_PROTO) {
		s->counters[NATX_STUN_CNT_MALFORMED]++;
		return 0;
	}
	v = err ? STUN_V_IGNORE : stun_request_judge(&m);
	if (v == STUN_V_IGNORE || stun_addr_from_sockaddr(&peer, src) || !peer.port) {
		s->counters[NATX_STUN_CNT_PASSED]++;
		return 0;
	}
	key.family = peer.family;
	memcpy(key.addr, peer.addr, peer.family == STUN_FAMILY_IPV6 ? 16 : 4);
	if (!stun_rl_allow(&s->rl, &key, now_ns)) {
		s->counters[NATX_STUN_CNT_RATE_LIMITED]++;
		return 0;
	}
	err = v == STUN_V_ANSWER ? stun_binding_success_build(out, cap, outlen, &m, &peer) :
				   stun_unknown_attr_build(out, cap, outlen, &m);
	if (err) {
		s->counters[NATX_STUN_CNT_PASSED]++;
		return 0;
	}
	s->counters[NATX_STUN_CNT_ANSWERED]++;
	return 1;
}

int stun_server_init(struct stun_server *s, const struct sockaddr *addr, socklen_t len,
		     uint32_t rate, uint32_t burst)
{
	int one = 1, zero = 0, rcvbuf = 4 << 20, err;

	memset(s, 0, sizeof(*s));
	s->fd = -1;
	err = stun_rl_init(&s->rl, rate, burst, 65536);
	if (err) {
		return err;
	}
	s->fd = socket(addr->sa_family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (s->fd < 0) {
		err = -errno;
		goto out_rl;
	}
	setsockopt(s->fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	setsockopt(s->fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
	if (addr->sa_family == AF_INET6) {
		setsockopt(s->fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof(zero));
	}
	if (bind(s->fd, addr, len)) {
		err = -errno;
		goto out_close;
	}
	return 0;
out_close:
	close(s->fd);
	s->fd = -1;
out_rl:
	stun_rl_cleanup(&s->rl);
	return err;
}

static uint64_t stun_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

int stun_server_poll(struct stun_server *s, int timeout_ms)
{
	static uint8_t rx[STUN_SERVER_BATCH][STUN_SERVER_MTU];
	static uint8_t tx[STUN_SERVER_BATCH][STUN_RESP_MAX_LEN + 64];
	struct sockaddr_storage from[STUN_SERVER_BATCH];
	struct mmsghdr rmsg[STUN_SERVER_BATCH], smsg[STUN_SERVER_BATCH];
	struct iovec riov[STUN_SERVER_BATCH], siov[STUN_SERVER_BATCH];
	struct pollfd pfd = { .fd = s->fd, .events = POLLIN };
	uint64_t now;
	int n, ns = 0, r;

	r = poll(&pfd, 1, timeout_ms);
	if (r <= 0) {
		return r < 0 && errno != EINTR ? -errno : 0;
	}
	memset(rmsg, 0, sizeof(rmsg));
	for (int i = 0; i < STUN_SERVER_BATCH; i++) {
		riov[i].iov_base = rx[i];
		riov[i].iov_len = sizeof(rx[i]);
		rmsg[i].msg_hdr.msg_iov = &riov[i];
		rmsg[i].msg_hdr.msg_iovlen = 1;
		rmsg[i].msg_hdr.msg_name = &from[i];
		rmsg[i].msg_hdr.msg_namelen = sizeof(from[i]);
	}
	n = recvmmsg(s->fd, rmsg, STUN_SERVER_BATCH, MSG_DONTWAIT, NULL);
	if (n < 0) {
		return errno == EAGAIN || errno == EINTR ? 0 : -errno;
	}
	now = stun_now_ns();
	memset(smsg, 0, sizeof(smsg));
	for (int i = 0; i < n; i++) {
		size_t outlen;
		size_t inlen = rmsg[i].msg_len;

		if (rmsg[i].msg_hdr.msg_flags & MSG_TRUNC) {
			inlen = 0; /* longer than we read: treat as empty (passed) */
		}
		if (!stun_server_respond(s, rx[i], inlen, (struct sockaddr *)&from[i], now, tx[ns],
					 sizeof(tx[ns]), &outlen)) {
			continue;
		}
		siov[ns].iov_base = tx[ns];
		siov[ns].iov_len = outlen;
		smsg[ns].msg_hdr.msg_iov = &siov[ns];
		smsg[ns].msg_hdr.msg_iovlen = 1;
		smsg[ns].msg_hdr.msg_name = &from[i];
		smsg[ns].msg_hdr.msg_namelen = rmsg[i].msg_hdr.msg_namelen;
		ns++;
	}
	for (int sent = 0; sent < ns;) {
		r = sendmmsg(s->fd, smsg + sent, (unsigned int)(ns - sent), 0);
		/* A datagram the kernel refuses (unreachable peer) is skipped, not retried. */
		sent += r > 0 ? r : 1;
	}
	return n;
}

void stun_server_cleanup(struct stun_server *s)
{
	if (s->fd >= 0) {
		close(s->fd);
	}
	s->fd = -1;
	stun_rl_cleanup(&s->rl);
}
