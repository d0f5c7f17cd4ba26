/* SPDX-License-Identifier: MIT */
/*
 * Multiaddr binary <-> text (multiformats/multiaddr). Binary form: components
 * uvarint(code) || value, where value is fixed-size, uvarint(len) || bytes, or empty.
 * Supported: ip4 ip6 ip6zone tcp udp dns dns4 dns6 dnsaddr p2p (text alias ipfs) p2p-circuit
 * quic quic-v1. Anything else is rejected with -EPROTONOSUPPORT. No allocation.
 */
#ifndef NATX_P2P_MULTIADDR_H
#define NATX_P2P_MULTIADDR_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "peerid.h"

enum {
	MADDR_MAX_LEN = 512, /* longest binary multiaddr accepted */
	MADDR_TEXT_MAX = 1024, /* longest text multiaddr accepted / produced */
	MADDR_DNS_MAX = 255, /* longest dns name value */
	MA_IP4 = 4,
	MA_TCP = 6,
	MA_UDP = 273,
	MA_IP6 = 41,
	MA_IP6ZONE = 42,
	MA_DNS = 53,
	MA_DNS4 = 54,
	MA_DNS6 = 55,
	MA_DNSADDR = 56,
	MA_P2P_CIRCUIT = 290,
	MA_P2P = 421,
	MA_QUIC = 460,
	MA_QUIC_V1 = 461,
};

/*
 * maddr_from_text - parse @s into binary at @out (@cap bytes), length in *@len. Returns 0,
 * -NATX_E_PROTO on malformed text, -EPROTONOSUPPORT for an unknown protocol name,
 * -NATX_E_TOO_BIG when the result does not fit.
 */
int maddr_from_text(const char *s, uint8_t *out, size_t cap, size_t *len);

/*
 * maddr_to_text - render a binary multiaddr as NUL-terminated text. Returns the text length,
 * -NATX_E_PROTO for malformed binary, -EPROTONOSUPPORT, or -NATX_E_TOO_BIG.
 */
int maddr_to_text(const uint8_t *b, size_t len, char *out, size_t cap);

/* maddr_validate - 0 when @b is a well-formed binary multiaddr of supported protocols. */
int maddr_validate(const uint8_t *b, size_t len);

/*
 * maddr_from_sockaddr - binary /ip4|ip6/<addr>/tcp/<port> for an AF_INET/AF_INET6 address.
 * Returns 0, -EAFNOSUPPORT, -NATX_E_TOO_BIG.
 */
int maddr_from_sockaddr(const struct sockaddr *sa, uint8_t *out, size_t cap, size_t *len);

/*
 * maddr_to_sockaddr - the TCP endpoint of a multiaddr that starts /ip4|ip6/.../tcp/N; when a
 * /p2p/ component follows, its peer ID goes to *@id (if @id) and *@has_id becomes 1.
 * Returns 0, -EAFNOSUPPORT when the address is not ip+tcp, or a parse error.
 */
int maddr_to_sockaddr(const uint8_t *b, size_t len, struct sockaddr_storage *ss, struct peer_id *id,
		      int *has_id);

#endif
