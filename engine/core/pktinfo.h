/* SPDX-License-Identifier: MIT */
/*
 * pktinfo - answering a UDP datagram from the address it was sent to: a socket bound to a
 * wildcard address on a host with several addresses would otherwise answer from whichever
 * address the route picks, and the peer would drop the answer. Used by the STUN responder and
 * the punch sessions (both receive with IP_PKTINFO / IPV6_RECVPKTINFO on).
 */
#ifndef NATX_ENGINE_PKTINFO_H
#define NATX_ENGINE_PKTINFO_H

#include <liburing.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * pktinfo_reply_ctl - the request's destination (IP_PKTINFO / IPV6_PKTINFO among the control
 * messages of @out, received with template @rmsg) written into @buf (@cap bytes, aligned for
 * struct cmsghdr, zeroed here) as the answer's source. Returns the control length for
 * msg_controllen, 0 when the request carried none or @cap is too small.
 */
size_t pktinfo_reply_ctl(struct io_uring_recvmsg_out *out, struct msghdr *rmsg, uint8_t *buf,
			 size_t cap);

/*
 * pktinfo_udp_socket - a non-blocking SO_REUSEPORT (and with @reuseaddr SO_REUSEADDR) UDP
 * socket bound to @ss, dual-stack when @ss is IPv6 (IPv4 peers arrive IPv4-mapped), receiving
 * each datagram's destination (IP_PKTINFO / IPV6_RECVPKTINFO) for pktinfo_reply_ctl; the bound
 * port is read back into @ss. Returns the fd or -errno.
 */
int pktinfo_udp_socket(struct sockaddr_storage *ss, socklen_t sl, bool reuseaddr);

#endif
