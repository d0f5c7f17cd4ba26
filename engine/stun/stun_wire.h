/* SPDX-License-Identifier: MIT */
/*
 * STUN wire format (RFC 8489, formerly RFC 5389) as far as natx answers it, and the one answer
 * policy shared by the XDP reflector (bpf/stun_reflect.bpf.c) and the user-space responder
 * (engine/stun/). Macros only, no C types beyond integer literals, so the BPF program and user
 * space include the same file (style.md §14 rule 10).
 *
 * Message header, 20 bytes, network byte order:
 *   0                   1                   2                   3
 *   0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
 *  +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *  |0 0|     STUN Message Type     |         Message Length        |
 *  +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *  |                         Magic Cookie                          |
 *  +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *  |                     Transaction ID (96 bits)                  |
 *  +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 * Message Length counts the attribute bytes after the header (a multiple of 4).
 * Each attribute: type (16), length (16, value bytes without padding), value padded to 4.
 *
 * Answer policy (both responders):
 *  - A Binding request (type 0x0001) with the magic cookie, a length that matches the datagram
 *    exactly, well-formed attributes and, if present, a FINGERPRINT that is last and correct
 *    gets a Binding success response (0x0101) with the same transaction id carrying
 *    XOR-MAPPED-ADDRESS then MAPPED-ADDRESS, then FINGERPRINT when the request carried one.
 *    No SOFTWARE attribute (it only costs bytes on a reflector).
 *  - A request with a comprehension-required attribute (type < 0x8000) is not answered with
 *    success: user space answers 420 (Unknown Attribute) listing them; XDP passes it up.
 *  - Anything else (other methods or classes, bad cookie, truncation) gets no answer.
 */
#ifndef NATX_STUN_WIRE_H
#define NATX_STUN_WIRE_H

#define STUN_HDR_LEN 20
#define STUN_MAGIC_COOKIE 0x2112A442
#define STUN_TXID_LEN 12
#define STUN_ATTR_HDR_LEN 4

#define STUN_BINDING_REQUEST 0x0001
#define STUN_BINDING_SUCCESS 0x0101
#define STUN_BINDING_ERROR 0x0111

#define STUN_ATTR_MAPPED_ADDRESS 0x0001
#define STUN_ATTR_ERROR_CODE 0x0009
#define STUN_ATTR_UNKNOWN_ATTRIBUTES 0x000A
#define STUN_ATTR_XOR_MAPPED_ADDRESS 0x0020
#define STUN_ATTR_SOFTWARE 0x8022
#define STUN_ATTR_FINGERPRINT 0x8028
/* Attribute types below this value are comprehension-required (RFC 8489 §14). */
#define STUN_ATTR_OPTIONAL_MIN 0x8000

#define STUN_FAMILY_IPV4 0x01
#define STUN_FAMILY_IPV6 0x02

/* FINGERPRINT = CRC-32 (ISO HDLC, as zlib) of the message up to it, XOR this value. */
#define STUN_FINGERPRINT_XOR 0x5354554e
#define STUN_FINGERPRINT_LEN 8 /* attribute header + 4-byte value */

/* Address attribute sizes (header included). */
#define STUN_ADDR4_ATTR_LEN 12
#define STUN_ADDR6_ATTR_LEN 24

/* Binding success response sizes, as built by both responders. */
#define STUN_RESP4_LEN (STUN_HDR_LEN + 2 * STUN_ADDR4_ATTR_LEN)
#define STUN_RESP6_LEN (STUN_HDR_LEN + 2 * STUN_ADDR6_ATTR_LEN)
#define STUN_RESP_MAX_LEN (STUN_RESP6_LEN + STUN_FINGERPRINT_LEN)

#endif
