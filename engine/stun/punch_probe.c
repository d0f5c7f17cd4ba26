// SPDX-License-Identifier: MIT
/* natx punch probe codec: see punch_probe.h and docs/bpf.md ("natx punch probes"). */
#include <errno.h>
#include <string.h>

#include "natx/err.h"
#include "natx/rd.h"
#include "punch_probe.h"

int punch_probe_is(const uint8_t *buf, size_t len)
{
	return len >= 4 && buf[0] == 0x0e && buf[1] == 'N' && buf[2] == 'X' && buf[3] == 'P';
}

int punch_probe_parse(struct punch_probe *p, const uint8_t *buf, size_t len)
{
	struct punch_probe out = { 0 };
	uint8_t version;
	uint32_t magic;
	struct rd r;

	rd_init(&r, buf, len);
	if (rd_be32(&r, &magic) || magic != NATX_PUNCH_MAGIC) {
		return -NATX_E_PROTO;
	}
	if (len > NATX_PUNCH_MAX_LEN) {
		return -NATX_E_TOO_BIG;
	}
	if (rd_u8(&r, &version) || rd_u8(&r, &out.type) || rd_be16(&r, &out.flags) ||
	    rd_copy(&r, out.sid, sizeof(out.sid)) || rd_be32(&r, &out.seq)) {
		return -NATX_E_PROTO;
	}
	if (version != NATX_PUNCH_VERSION ||
	    (out.type != NATX_PUNCH_TYPE_PROBE && out.type != NATX_PUNCH_TYPE_ACK)) {
		return -NATX_E_PROTO;
	}
	out.auth_len = rd_left(&r);
	if (out.auth_len && rd_bytes(&r, out.auth_len, &out.auth)) {
		return -NATX_E_PROTO;
	}
	*p = out;
	return 0;
}

int punch_probe_build(uint8_t *buf, size_t cap, size_t *n, const struct punch_probe *p)
{
	size_t len = NATX_PUNCH_HDR_LEN + p->auth_len;

	if ((p->type != NATX_PUNCH_TYPE_PROBE && p->type != NATX_PUNCH_TYPE_ACK) ||
	    len > NATX_PUNCH_MAX_LEN || (p->auth_len && !p->auth)) {
		return -EINVAL;
	}
	if (cap < len) {
		return -ENOSPC;
	}
	buf[0] = 0x0e, buf[1] = 'N', buf[2] = 'X', buf[3] = 'P';
	buf[4] = NATX_PUNCH_VERSION;
	buf[5] = p->type;
	buf[6] = buf[7] = 0;
	memcpy(buf + 8, p->sid, NATX_PUNCH_SID_LEN);
	buf[16] = (uint8_t)(p->seq >> 24), buf[17] = (uint8_t)(p->seq >> 16);
	buf[18] = (uint8_t)(p->seq >> 8), buf[19] = (uint8_t)p->seq;
	if (p->auth_len) {
		memcpy(buf + NATX_PUNCH_HDR_LEN, p->auth, p->auth_len);
	}
	*n = len;
	return 0;
}
