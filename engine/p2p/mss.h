/* SPDX-License-Identifier: MIT */
/*
 * multistream-select 1.0 (multiformats/multistream-select), sans-IO. Every message is
 * uvarint(N) || text || '\n' with N counting the newline. The dialer (connection dialer or
 * stream opener) sends the header and its first proposal in one write (mss_dialer_start) and
 * never waits for the listener's header first; the listener only answers (it writes its header
 * after reading the dialer's), echoing a supported protocol, "na" otherwise, and the protocol
 * list for "ls".
 *
 * Lazy negotiation: after mss_dialer_start with a single protocol the caller may append
 * application bytes right away; the listener side of this module processes a header, a
 * proposal and trailing application bytes from one buffer (mss_consume stops right after the
 * accepted proposal and reports how much it used).
 *
 * The protocol arrays are borrowed and must outlive the negotiation.
 */
#ifndef NATX_P2P_MSS_H
#define NATX_P2P_MSS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "natx/rd.h"

#define MSS_HEADER "/multistream/1.0.0"
#define MSS_NA "na"
#define MSS_LS "ls"

enum {
	MSS_MAX_MSG = 1024, /* longest message body accepted (js/go MAX_PROTOCOL_LENGTH) */
	MSS_MAX_ROUNDS = 32, /* proposals a listener answers before giving up */
	MSS_DONE = 1, /* mss_consume result: a protocol was selected */
};

/* struct mss - one negotiation. Zero-initialise through mss_dialer_init/mss_listener_init. */
struct mss {
	const char *const *protos; /* dialer: proposals in order; listener: supported list */
	uint8_t nprotos;
	bool dialer;
	bool header_seen; /* the remote header arrived */
	uint8_t next; /* dialer: index of the proposal awaiting its answer */
	uint8_t rounds; /* listener: proposals answered so far */
	int selected; /* index into protos once MSS_DONE, -1 before */
};

/* mss_dialer_init - negotiate, proposing @protos[0], then the next one after each "na". */
void mss_dialer_init(struct mss *m, const char *const *protos, size_t n);

/* mss_listener_init - answer proposals, accepting any of @protos. */
void mss_listener_init(struct mss *m, const char *const *protos, size_t n);

/* mss_dialer_start - write the header and the first proposal to @out. Returns 0 or -NATX_E_TOO_BIG. */
int mss_dialer_start(struct mss *m, struct wr *out);

/*
 * mss_consume - process the complete messages at the start of @in (@len bytes); incomplete
 * trailing bytes are left for the next call. *@used is set to the bytes consumed, replies go
 * to @out. Returns 0 when more input is needed, MSS_DONE once a protocol is selected
 * (m->selected; bytes after *@used belong to it), or -NATX_E_PROTO (malformed message, missing
 * header, unexpected answer, too many rounds), -NATX_E_TOO_BIG (message over MSS_MAX_MSG or no
 * room in @out), -NATX_E_UNAVAILABLE (dialer: every proposal was refused).
 */
int mss_consume(struct mss *m, const uint8_t *in, size_t len, size_t *used, struct wr *out);

/* mss_write_msg - append one framed message with body @s (without newline) to @out. */
int mss_write_msg(struct wr *out, const char *s);

#endif
