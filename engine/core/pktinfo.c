// SPDX-License-Identifier: MIT
/* pktinfo - reply control messages from a request's destination (contract in pktinfo.h). */
#include "pktinfo.h"

#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>

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
