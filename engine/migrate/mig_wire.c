// SPDX-License-Identifier: MIT
/* mig_wire - frame codec of /natx/flow/1.0.0 (layouts in mig_wire.h). */
#include "mig_wire.h"

#include <errno.h>
#include <string.h>

#include "natx/err.h"
#include "natx/rd.h"

/* mig_fixed_len - bytes of a @type frame before its variable part; 0 for an unknown type. */
static size_t mig_fixed_len(uint8_t type)
{
	switch (type) {
	case MIG_T_DATA:
		return MIG_DATA_HDR;
	case MIG_T_ACK:
	case MIG_T_NACK:
	case MIG_T_FIN:
	case MIG_T_MOVED:
		return MIG_CTRL_LEN;
	case MIG_T_RESET:
		return 2;
	case MIG_T_OPEN:
		return 1 + MIG_ID_LEN + 1;
	case MIG_T_ATTACH:
		return 1 + MIG_ID_LEN + 8;
	default:
		return 0;
	}
}

int mig_frame_decode(const uint8_t *buf, size_t len, struct mig_frame *fr)
{
	struct rd r;
	size_t fixed;

	if (!len) {
		return 0;
	}
	fixed = mig_fixed_len(buf[0]);
	if (!fixed) {
		return -NATX_E_PROTO;
	}
	if (len < fixed) {
		return 0;
	}
	memset(fr, 0, sizeof(*fr));
	rd_init(&r, buf, len);
	/* The fixed part is there (checked above); a short variable part means "read more". */
	if (rd_u8(&r, &fr->type)) {
		return 0;
	}
	switch (fr->type) {
	case MIG_T_DATA:
		if (rd_be64(&r, &fr->off) || rd_be16(&r, &fr->len)) {
			return 0;
		}
		if (!fr->len || fr->len > MIG_DATA_MAX) {
			return -NATX_E_PROTO;
		}
		if (rd_bytes(&r, fr->len, &fr->data)) {
			return 0;
		}
		break;
	case MIG_T_RESET:
		if (rd_u8(&r, &fr->reason)) {
			return 0;
		}
		break;
	case MIG_T_OPEN:
		if (rd_copy(&r, fr->id, MIG_ID_LEN) || rd_u8(&r, &fr->name_len)) {
			return 0;
		}
		if (fr->name_len > MIG_NAME_MAX) {
			return -NATX_E_PROTO;
		}
		if (rd_bytes(&r, fr->name_len, &fr->name)) {
			return 0;
		}
		break;
	case MIG_T_ATTACH:
		if (rd_copy(&r, fr->id, MIG_ID_LEN) || rd_be64(&r, &fr->off)) {
			return 0;
		}
		break;
	default:
		if (rd_be64(&r, &fr->off)) {
			return 0;
		}
		break;
	}
	return (int)(len - rd_left(&r));
}

int mig_frame_encode(const struct mig_frame *fr, uint8_t *out, size_t cap)
{
	struct wr w;
	int ret;

	if (!mig_fixed_len(fr->type) ||
	    (fr->type == MIG_T_DATA && (!fr->len || fr->len > MIG_DATA_MAX || !fr->data)) ||
	    (fr->type == MIG_T_OPEN &&
	     (fr->name_len > MIG_NAME_MAX || (fr->name_len && !fr->name)))) {
		return -EINVAL;
	}
	wr_init(&w, out, cap);
	ret = wr_u8(&w, fr->type);
	switch (fr->type) {
	case MIG_T_DATA:
		ret = ret ?: wr_be64(&w, fr->off);
		ret = ret ?: wr_be16(&w, fr->len);
		ret = ret ?: wr_bytes(&w, fr->data, fr->len);
		break;
	case MIG_T_RESET:
		ret = ret ?: wr_u8(&w, fr->reason);
		break;
	case MIG_T_OPEN:
		ret = ret ?: wr_bytes(&w, fr->id, MIG_ID_LEN);
		ret = ret ?: wr_u8(&w, fr->name_len);
		if (fr->name_len) {
			ret = ret ?: wr_bytes(&w, fr->name, fr->name_len);
		}
		break;
	case MIG_T_ATTACH:
		ret = ret ?: wr_bytes(&w, fr->id, MIG_ID_LEN);
		ret = ret ?: wr_be64(&w, fr->off);
		break;
	default:
		ret = ret ?: wr_be64(&w, fr->off);
		break;
	}
	if (ret) {
		return -ENOSPC;
	}
	return (int)(cap - wr_left(&w));
}
