/* SPDX-License-Identifier: MIT */
/*
 * PROXY protocol version 2 header (haproxy doc/proxy-protocol.txt section 2.2), written by
 * the tunnel client in front of the first bytes it sends to the local service, so the
 * service sees the real visitor address.
 *
 *   12-byte signature 0D 0A 0D 0A 00 0D 0A 51 55 49 54 0A
 *   u8 version/command = 0x21 (v2, PROXY)
 *   u8 family/protocol = 0x11 TCP4, 0x12 UDP4, 0x21 TCP6, 0x22 UDP6
 *   u16 BE length of the address block (12 for IPv4, 36 for IPv6)
 *   src addr, dst addr, src port (BE), dst port (BE)
 * A v4 and a v6 endpoint together are written as IPv6 with the v4 one v4-mapped.
 */
#ifndef NATX_TUN_PP2_H
#define NATX_TUN_PP2_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "natx/rd.h"
#include "tun_wire.h"

enum {
	TUN_PP2_SIG_LEN = 12,
	TUN_PP2_V4_LEN = 16 + 12, /* whole header, IPv4 */
	TUN_PP2_V6_LEN = 16 + 36, /* whole header, IPv6 */
};

/*
 * tun_pp2_write - append a PROXY v2 header for a connection from src (visitor) to dst (the
 * public address it reached). udp selects DGRAM. Returns 0, -EINVAL (family not 4/6) or
 * -NATX_E_TOO_BIG.
 */
int tun_pp2_write(struct wr *w, bool udp, const struct tun_addr *src, const struct tun_addr *dst);

/*
 * tun_pp2_read - parse a PROXY v2 header at the start of buf (for tests and for services
 * that accept it). Fills src/dst/udp and *consumed. Returns 0, -EAGAIN (incomplete),
 * -NATX_E_PROTO (not a v2 PROXY header, or LOCAL/unsupported family), skipping TLVs.
 */
int tun_pp2_read(const uint8_t *buf, size_t len, struct tun_addr *src, struct tun_addr *dst,
		 bool *udp, size_t *consumed);

/* tun_addr_from_sockaddr / tun_addr_to_sockaddr - convert (AF_INET / AF_INET6 only). */
int tun_addr_from_sockaddr(struct tun_addr *a, const struct sockaddr *sa, socklen_t len);
int tun_addr_to_sockaddr(const struct tun_addr *a, struct sockaddr_storage *ss, socklen_t *len);

#endif
