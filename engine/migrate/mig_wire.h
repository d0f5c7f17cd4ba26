/* SPDX-License-Identifier: MIT */
/*
 * mig_wire - the frames of natx's migratable flow protocol `/natx/flow/1.0.0`
 * (docs/migration.md). One bridged TCP flow between two natx nodes can be carried by more
 * than one path (a relayed libp2p stream, a direct one, a tunnel data channel) over its life;
 * every DATA frame names the flow offset of its first byte, so the receiver takes bytes in
 * order from whichever path has them and drops what it already has.
 *
 * All integers big-endian. A path stream starts with OPEN or ATTACH, then carries frames:
 *
 *   OPEN    0x10 | flow id (16) | name length (1) | name (0..MIG_NAME_MAX)
 *   ATTACH  0x11 | flow id (16) | receiver offset (8)
 *   DATA    0x01 | offset (8) | length (2, 1..MIG_DATA_MAX) | bytes
 *   ACK     0x02 | offset (8)      every byte before offset was delivered to the application
 *   NACK    0x03 | offset (8)      as ACK, and: send again from offset on this path
 *   FIN     0x04 | offset (8)      the sender's stream ends at offset (half-close)
 *   MOVED   0x05 | offset (8)      nothing more on this path; bytes from offset come on another
 *   RESET   0x06 | reason (1)      the flow is aborted
 *
 * The codec is pure: no allocation, bounds-checked reads (include/natx/rd.h).
 */
#ifndef NATX_MIG_WIRE_H
#define NATX_MIG_WIRE_H

#include <stddef.h>
#include <stdint.h>

enum {
	MIG_ID_LEN = 16,
	MIG_NAME_MAX = 64,
	MIG_DATA_MAX = 16384,
	MIG_DATA_HDR = 11, /* type + offset + length */
	MIG_CTRL_LEN = 9, /* type + offset: ACK, NACK, FIN, MOVED */
	MIG_FRAME_MAX = MIG_DATA_HDR + MIG_DATA_MAX,
};

enum mig_type {
	MIG_T_DATA = 0x01,
	MIG_T_ACK = 0x02,
	MIG_T_NACK = 0x03,
	MIG_T_FIN = 0x04,
	MIG_T_MOVED = 0x05,
	MIG_T_RESET = 0x06,
	MIG_T_OPEN = 0x10,
	MIG_T_ATTACH = 0x11,
};

/* struct mig_frame - one decoded frame; @data and @name point into the decoded buffer. */
struct mig_frame {
	uint8_t type; /* enum mig_type */
	uint64_t off; /* DATA, ACK, NACK, FIN, MOVED, ATTACH */
	uint16_t len; /* DATA: bytes at @data */
	const uint8_t *data;
	uint8_t id[MIG_ID_LEN]; /* OPEN, ATTACH */
	uint8_t name_len; /* OPEN */
	const uint8_t *name;
	uint8_t reason; /* RESET */
};

/*
 * mig_frame_decode - decode the frame at the start of @buf. Returns its length (> 0), 0 when
 * @buf holds only part of a frame (read more), or -NATX_E_PROTO for an unknown type, a DATA
 * length of 0 or above MIG_DATA_MAX, or an OPEN name longer than MIG_NAME_MAX.
 */
int mig_frame_decode(const uint8_t *buf, size_t len, struct mig_frame *fr);

/*
 * mig_frame_encode - write @fr into @out. Returns its length, or -ENOSPC when @cap is short,
 * -EINVAL for a frame mig_frame_decode would refuse.
 */
int mig_frame_encode(const struct mig_frame *fr, uint8_t *out, size_t cap);

#endif
