// SPDX-License-Identifier: MIT
/* pbframe.c - length-prefixed protobuf through protobuf-c's generic API (see pbframe.h). */
#include <string.h>

#include "natx/err.h"
#include "natx/rd.h"
#include "pbframe.h"

int pbframe_encode(const ProtobufCMessage *pb, size_t max, uint8_t *out, size_t cap, size_t *len)
{
	size_t n = protobuf_c_message_get_packed_size(pb);
	struct wr w;

	if (n > max) {
		return -NATX_E_TOO_BIG;
	}
	wr_init(&w, out, cap);
	if (wr_uvarint(&w, n) || wr_left(&w) < n) {
		return -NATX_E_TOO_BIG;
	}
	protobuf_c_message_pack(pb, w.p);
	*len = (size_t)(w.p - out) + n;
	return 0;
}

void *pbframe_decode(const ProtobufCMessageDescriptor *desc, size_t max, const uint8_t *buf,
		     size_t len, int *err)
{
	ProtobufCMessage *pb;

	if (len > max) {
		*err = -NATX_E_TOO_BIG;
		return NULL;
	}
	pb = protobuf_c_message_unpack(desc, NULL, len, buf);
	*err = pb ? 0 : -NATX_E_PROTO;
	return pb;
}

void pbframe_free(ProtobufCMessage *pb)
{
	if (pb) {
		protobuf_c_message_free_unpacked(pb, NULL);
	}
}

void pbframe_addrs_view(const struct relay_addrs *a, ProtobufCBinaryData *tmp, size_t *n,
			ProtobufCBinaryData **out)
{
	for (size_t i = 0; i < a->n; i++) {
		tmp[i].data = (uint8_t *)a->b[i];
		tmp[i].len = a->lens[i];
	}
	*n = a->n;
	*out = tmp;
}

void pbframe_addrs_keep(struct relay_addrs *a, size_t n, const ProtobufCBinaryData *src)
{
	a->n = 0;
	for (size_t i = 0; i < n && a->n < RELAY_MAX_ADDRS; i++) {
		if (src[i].len == 0 || src[i].len > RELAY_MAX_ADDR) {
			continue;
		}
		memcpy(a->b[a->n], src[i].data, src[i].len);
		a->lens[a->n++] = src[i].len;
	}
}
