/* SPDX-License-Identifier: MIT */
/*
 * udp_wire - the wire formats of UDP services between two natx nodes (docs/udp-punch.md).
 *
 * 1. Stream messages on the libp2p stream /natx/udp/NAME/1.0.0 (bridged by the engines to a
 *    TCP connection on each side, so it runs over the relayed libp2p connection): each message
 *    is  type (u8) | body length (be16) | body. The stream carries the punch coordination
 *    (HELLO, CANDS, PING/PONG, SYNC, RESULT, ERROR) and the relayed datagrams (DATA).
 * 2. Direct datagrams on the punched UDP sockets: a 24-byte header (magic "\x0dNXD", session
 *    id, flow id, sequence number) then the ChaCha20-Poly1305 ciphertext of the application
 *    datagram and its 16-byte tag (the sealing is the caller's, udpconn.c).
 * Punch probes use the natx punch probe format (engine/stun/punch_probe.h) with a 16-byte
 * HMAC tail; udpconn.c builds and checks them.
 *
 * Everything here is pure encoding/decoding with bounds-checked cursors (natx/rd.h); parsers
 * take untrusted bytes (fuzz target tests/fuzz/fuzz_udp_wire.c) and never allocate.
 */
#ifndef NATX_CONTROL_UDP_WIRE_H
#define NATX_CONTROL_UDP_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum udpw_type {
	UDPW_HELLO = 1, /* A -> B: version, session id, key, service name, STUN server */
	UDPW_CANDS = 2, /* both: the sender's UDP candidates (STUN-mapped first) */
	UDPW_PING = 3, /* A -> B: RTT probe (stamp echoed in PONG) */
	UDPW_PONG = 4, /* B -> A */
	UDPW_SYNC = 5, /* A -> B: punch round N starts now at B, in RTT/2 at A */
	UDPW_RESULT = 6, /* A -> B: direct (with the address A reaches B at) or relayed + reason */
	UDPW_DATA = 7, /* both: a relayed datagram of flow F */
	UDPW_ERROR = 8, /* both: fatal error with a reason; the sender closes the stream */
};

enum {
	UDPW_HDR_LEN = 3, /* type + be16 body length */
	UDPW_BODY_MAX = 65535,
	UDPW_VERSION = 1,
	UDPW_SID_LEN = 8,
	UDPW_KEY_LEN = 32,
	UDPW_NAME_MAX = 63, /* bytes of a service name */
	UDPW_CANDS_MAX = 8,
	UDPW_REASON_MAX = 200, /* bytes of a reason text */
	UDPW_DATA_MAX = UDPW_BODY_MAX - 4, /* payload of one relayed datagram */
	/* direct datagram: magic(4) sid(8) flow(4) seq(8), then ciphertext and a 16-byte tag */
	UDPW_DGRAM_HDR_LEN = 24,
	UDPW_DGRAM_TAG_LEN = 16,
	UDPW_DGRAM_PAYLOAD_MAX = 65507 - UDPW_DGRAM_HDR_LEN - UDPW_DGRAM_TAG_LEN,
};

/* First four bytes of a direct datagram: 0x0D lies in 4..15 (RFC 7983: not STUN/DTLS/RTP). */
#define UDPW_DGRAM_MAGIC 0x0d4e5844u /* "\rNXD" */

struct udpw_addr {
	uint8_t family; /* 4 or 6 */
	uint16_t port; /* host order */
	uint8_t addr[16]; /* network order; IPv4 in the first 4 bytes */
};

struct udpw_msg {
	uint8_t type; /* enum udpw_type */
	union {
		struct {
			uint8_t version;
			uint8_t sid[UDPW_SID_LEN];
			uint8_t key[UDPW_KEY_LEN];
			char name[UDPW_NAME_MAX + 1];
			struct udpw_addr stun; /* the STUN server A used (B may use it too) */
		} hello;
		struct {
			unsigned int n;
			struct udpw_addr a[UDPW_CANDS_MAX];
		} cands;
		uint64_t stamp; /* PING, PONG */
		uint32_t round; /* SYNC */
		struct {
			bool direct;
			struct udpw_addr peer; /* direct: B's address as A reaches it */
			char reason[UDPW_REASON_MAX + 1];
		} result;
		struct {
			uint32_t flow;
			const uint8_t *data; /* borrowed: points into the parsed buffer */
			size_t len;
		} data;
		char error[UDPW_REASON_MAX + 1];
	};
};

/*
 * udpw_msg_parse - decode the first message of @len bytes at @buf into @m; *@used gets its
 * length. Returns 0, -EAGAIN when @buf holds only part of a message (read more), or
 * -NATX_E_PROTO when it is malformed (unknown type, body not matching the type's layout, a
 * wrong HELLO version, a name not of [A-Za-z0-9._-], a reason with control characters, more than UDPW_CANDS_MAX
 * candidates, an address family other than 4/6). Names and reasons come back NUL-terminated.
 */
int udpw_msg_parse(const uint8_t *buf, size_t len, struct udpw_msg *m, size_t *used);

/*
 * udpw_msg_build - encode @m into @buf (@cap bytes); *@n gets the length. 0, -EINVAL (bad
 * type, name, family, too many candidates or data over UDPW_DATA_MAX) or -ENOSPC.
 */
int udpw_msg_build(uint8_t *buf, size_t cap, size_t *n, const struct udpw_msg *m);

/* udpw_data_hdr_build - the 7-byte header of a DATA message with @len payload bytes into @hdr. */
void udpw_data_hdr_build(uint8_t hdr[UDPW_HDR_LEN + 4], uint32_t flow, size_t len);

struct udpw_dgram {
	uint8_t sid[UDPW_SID_LEN];
	uint32_t flow;
	uint64_t seq;
	const uint8_t *sealed; /* ciphertext || tag, borrowed */
	size_t sealed_len; /* >= UDPW_DGRAM_TAG_LEN */
};

/* udpw_dgram_is - @buf starts with the direct-datagram magic. */
bool udpw_dgram_is(const uint8_t *buf, size_t len);

/*
 * udpw_dgram_parse - split a direct datagram into header fields and the sealed part. 0 or
 * -NATX_E_PROTO (no magic, shorter than header + tag).
 */
int udpw_dgram_parse(const uint8_t *buf, size_t len, struct udpw_dgram *d);

/* udpw_dgram_hdr_build - write the 24-byte header (also the AEAD's associated data). */
void udpw_dgram_hdr_build(uint8_t hdr[UDPW_DGRAM_HDR_LEN], const uint8_t sid[UDPW_SID_LEN],
			  uint32_t flow, uint64_t seq);

/* udpw_addr_fmt - "A:P" or "[A]:P" into @out (room @cap; 64 is always enough). */
void udpw_addr_fmt(const struct udpw_addr *a, char *out, size_t cap);

/* udpw_type_name - "HELLO", ... or "?" */
const char *udpw_type_name(uint8_t type);

#endif
