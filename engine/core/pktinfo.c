// SPDX-License-Identifier: MIT
/* pktinfo - reply control messages from a request's destination (contract in pktinfo.h). */
#include "pktinfo.h"

#include <errno.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

size_t pktinfo_reply_ctl(struct io_uring_recvmsg_out *out, struct msghdr *rmsg, uint8_t *buf,
			 size_t cap)
{
	struct cmsghdr *c = io_uring_recvmsg_cmsg_firsthdr(out, rmsg), *w = (struct cmsghdr *)buf;

	memset(buf, 0, cap);
	if (cap < CMSG_SPACE(sizeof(struct in6_pktinfo))) {
		return 0;
	}
	for (; c; c = io_uring_recvmsg_cmsg_nexthdr(out, rmsg, c)) {
		if (c->cmsg_level == IPPROTO_IPV6 && c->cmsg_type == IPV6_PKTINFO &&
		    c->cmsg_len >= CMSG_LEN(sizeof(struct in6_pktinfo))) {
			w->cmsg_level = IPPROTO_IPV6;
			w->cmsg_type = IPV6_PKTINFO;
			w->cmsg_len = CMSG_LEN(sizeof(struct in6_pktinfo));
			memcpy(CMSG_DATA(w), CMSG_DATA(c), sizeof(struct in6_pktinfo));
			return CMSG_SPACE(sizeof(struct in6_pktinfo));
		}
		if (c->cmsg_level == IPPROTO_IP && c->cmsg_type == IP_PKTINFO &&
		    c->cmsg_len >= CMSG_LEN(sizeof(struct in_pktinfo))) {
			struct in_pktinfo in, pi = { 0 };

			memcpy(&in, CMSG_DATA(c), sizeof(in));
			pi.ipi_spec_dst = in.ipi_addr; /* source = where the request went */
			w->cmsg_level = IPPROTO_IP;
			w->cmsg_type = IP_PKTINFO;
			w->cmsg_len = CMSG_LEN(sizeof(pi));
			memcpy(CMSG_DATA(w), &pi, sizeof(pi));
			return CMSG_SPACE(sizeof(pi));
		}
	}
	return 0;
}

int pktinfo_udp_socket(struct sockaddr_storage *ss, socklen_t sl, bool reuseaddr)
{
	int one = 1, zero = 0, fd, ret;

	fd = socket(ss->ss_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		return -errno;
	}
	if (reuseaddr) {
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	}
	setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one));
	if (ss->ss_family == AF_INET6) {
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof(zero));
	}
	if (ss->ss_family == AF_INET6 ?
		    setsockopt(fd, IPPROTO_IPV6, IPV6_RECVPKTINFO, &one, sizeof(one)) :
		    setsockopt(fd, IPPROTO_IP, IP_PKTINFO, &one, sizeof(one))) {
		goto close_fd;
	}
	if (bind(fd, (struct sockaddr *)ss, sl) || getsockname(fd, (struct sockaddr *)ss, &sl)) {
		goto close_fd;
	}
	return fd;
close_fd:
	ret = -errno;
	close(fd);
	return ret;
}
