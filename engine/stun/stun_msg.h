/* SPDX-License-Identifier: MIT */
/*
 * STUN message parsing and building (RFC 8489) for natx's user-space responder and clients.
 * Wire format and answer policy: stun_wire.h (shared with the XDP reflector). All parsing
 * goes through the bounds-checked cursors of natx/rd.h; no function here allocates.
 */
#ifndef NATX_STUN_MSG_H
#define NATX_STUN_MSG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "stun_wire.h"

#define STUN_UNKNOWN_MAX 8 /* comprehension-required attribute types remembered per message */

struct stun_addr {
	uint8_t family; /* STUN_FAMILY_IPV4 or STUN_FAMILY_IPV6 */
	uint16_t port; /* host order */
	uint8_t addr[16]; /* network order; IPv4 uses the first 4 bytes */
};

struct stun_msg {
	uint16_t type;
	uint16_t len; /* attribute bytes, as in the header */
	uint8_t txid[STUN_TXID_LEN];
	bool fingerprint; /* carried a FINGERPRINT, last and correct */
	unsigned int n_unknown; /* comprehension-required attributes seen (may exceed the array) */
	uint16_t unknown[STUN_UNKNOWN_MAX];
	/* Decoded only in Binding success responses (client side): */
	bool has_xor_mapped;
	bool has_mapped;
	struct stun_addr xor_mapped;
	struct stun_addr mapped;
};

enum stun_verdict {
	STUN_V_ANSWER, /* Binding request we answer with success */
	STUN_V_UNKNOWN, /* Binding request with comprehension-required attributes: 420 */
	STUN_V_IGNORE, /* well-formed STUN, but nothing to answer (other method or class) */
};

/* stun_crc32 - CRC-32 (ISO-HDLC, as zlib's crc32()) of @len bytes. */
uint32_t stun_crc32(const uint8_t *buf, size_t len);

/*
 * stun_msg_parse - parse one datagram @buf of @len bytes into @m.
 * Returns 0 for a well-formed STUN message; -ENOMSG when it is not STUN at all (empty, or one
 * of the two leading bits set); -NATX_E_PROTO when it starts like STUN but is malformed
 * (shorter than 20 bytes, wrong cookie, length not a multiple of 4 or not matching @len,
 * broken attribute framing, FINGERPRINT not last or wrong, bad address attribute in a
 * response). @m is zeroed first; its contents are only meaningful on success.
 */
int stun_msg_parse(struct stun_msg *m, const uint8_t *buf, size_t len);

/* stun_request_judge - what a responder does with a parsed message (stun_wire.h policy). */
enum stun_verdict stun_request_judge(const struct stun_msg *m);

/*
 * stun_binding_success_build - write the Binding success response to @req for a client seen
 * at @src into @out (@cap bytes); *@n gets its length. Layout as stun_wire.h (the XDP
 * reflector builds the same bytes). Returns 0 or -NATX_E_TOO_BIG.
 */
int stun_binding_success_build(uint8_t *out, size_t cap, size_t *n, const struct stun_msg *req,
			       const struct stun_addr *src);

/*
 * stun_unknown_attr_build - write a Binding error response, ERROR-CODE 420 "Unknown
 * Attribute" with UNKNOWN-ATTRIBUTES listing @req's remembered unknown types, plus
 * FINGERPRINT when @req carried one. Returns 0 or -NATX_E_TOO_BIG.
 */
int stun_unknown_attr_build(uint8_t *out, size_t cap, size_t *n, const struct stun_msg *req);

/*
 * stun_binding_request_build - write a Binding request with transaction id @txid and no
 * attributes but an optional FINGERPRINT. Returns 0 or -NATX_E_TOO_BIG.
 */
int stun_binding_request_build(uint8_t *out, size_t cap, size_t *n,
			       const uint8_t txid[STUN_TXID_LEN], bool fingerprint);

#endif
