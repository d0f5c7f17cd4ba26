/* SPDX-License-Identifier: MIT */
/*
 * natx punch probe codec for user space (the engine): the UDP payload natx engines exchange
 * while hole punching. Format and limits: bpf/natx_bpf_common.h (struct natx_punch_hdr); the
 * XDP program applies the same validity rule (tests/bpf/test_punch_xdp.c checks both agree).
 * Validity: 20..NATX_PUNCH_MAX_LEN bytes, magic, version 1, type PROBE or PROBE_ACK; flags
 * are ignored; bytes after the header are the auth tail, returned as a borrowed slice.
 */
#ifndef NATX_PUNCH_PROBE_H
#define NATX_PUNCH_PROBE_H

#include <stddef.h>
#include <stdint.h>

#include "natx_bpf_common.h"

struct punch_probe {
	uint8_t type; /* NATX_PUNCH_TYPE_PROBE or NATX_PUNCH_TYPE_ACK */
	uint16_t flags;
	uint8_t sid[NATX_PUNCH_SID_LEN];
	uint32_t seq;
	const uint8_t *auth; /* points into the parsed buffer; NULL when auth_len is 0 */
	size_t auth_len; /* 0..NATX_PUNCH_MAX_LEN - NATX_PUNCH_HDR_LEN */
};

/*
 * punch_probe_is - @buf starts with the punch magic (what XDP charges to the punch bucket).
 */
int punch_probe_is(const uint8_t *buf, size_t len);

/*
 * punch_probe_parse - decode @len bytes at @buf into @p. 0, -NATX_E_PROTO (no magic, short,
 * version, type) or -NATX_E_TOO_BIG (over NATX_PUNCH_MAX_LEN). @p is untouched on error.
 */
int punch_probe_parse(struct punch_probe *p, const uint8_t *buf, size_t len);

/*
 * punch_probe_build - encode @p (flags written as 0, auth tail copied) into @buf of @cap
 * bytes; *@n receives the length. -EINVAL for a bad type or a tail over the limit, -ENOSPC
 * when @cap is too small.
 */
int punch_probe_build(uint8_t *buf, size_t cap, size_t *n, const struct punch_probe *p);

#endif
