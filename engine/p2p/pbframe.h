/* SPDX-License-Identifier: MIT */
/*
 * pbframe - the length-prefixed protobuf codec shared by relay v2, DCUtR and AutoNAT:
 * uvarint(len) || msg on encode (lpm.h reads it back), one bare message with a size cap on
 * decode, and the copy between struct relay_addrs and protobuf `repeated bytes` addresses.
 */
#ifndef NATX_P2P_PBFRAME_H
#define NATX_P2P_PBFRAME_H

#include <stddef.h>
#include <stdint.h>

#include <protobuf-c/protobuf-c.h>

#include "relay_msg.h"

/*
 * pbframe_encode - pack @pb behind its uvarint length into @out. Returns 0 with *@len (prefix
 * plus body), or -NATX_E_TOO_BIG when the body is over @max or the frame over @cap.
 */
int pbframe_encode(const ProtobufCMessage *pb, size_t max, uint8_t *out, size_t cap, size_t *len);

/*
 * pbframe_decode - unpack one message of type @desc from @buf (no prefix). Returns the message
 * (a pointer to the generated struct; free with pbframe_free), or NULL with *@err
 * -NATX_E_TOO_BIG when @len is over @max, -NATX_E_PROTO when the bytes do not parse.
 */
void *pbframe_decode(const ProtobufCMessageDescriptor *desc, size_t max, const uint8_t *buf,
		     size_t len, int *err);

/* pbframe_free - release a message from pbframe_decode (NULL is fine). */
void pbframe_free(ProtobufCMessage *pb);

/*
 * pbframe_addrs_view - point @tmp (RELAY_MAX_ADDRS entries) at the addresses of @a without
 * copying; *@n and *@out become the repeated field. @a must outlive the packing.
 */
void pbframe_addrs_view(const struct relay_addrs *a, ProtobufCBinaryData *tmp, size_t *n,
			ProtobufCBinaryData **out);

/*
 * pbframe_addrs_keep - copy received addresses into @a (reset first); empty, over-long
 * (> RELAY_MAX_ADDR) and surplus (> RELAY_MAX_ADDRS) ones are skipped.
 */
void pbframe_addrs_keep(struct relay_addrs *a, size_t n, const ProtobufCBinaryData *src);

#endif
