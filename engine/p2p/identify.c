// SPDX-License-Identifier: MIT
/* identify.c - identify message codec through protobuf-c (see identify.h). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "natx/err.h"
#include "natx/rd.h"
#include "identify.h"
#include "identify.pb-c.h"

int identify_encode(const struct identify_msg *m, uint8_t *out, size_t cap, size_t *len)
{
	P2p__Identify pb = P2P__IDENTIFY__INIT;
	ProtobufCBinaryData addrs[IDENTIFY_MAX_ADDRS];
	size_t n, naddrs = m->n_listen_addrs < IDENTIFY_MAX_ADDRS ? m->n_listen_addrs :
								    IDENTIFY_MAX_ADDRS;
	struct wr w;

	pb.protocolversion = (char *)m->protocol_version;
	pb.agentversion = (char *)m->agent_version;
	if (m->pubkey) {
		pb.has_publickey = 1;
		pb.publickey.data = (uint8_t *)m->pubkey;
		pb.publickey.len = m->pubkey_len;
	}
	for (size_t i = 0; i < naddrs; i++) {
		addrs[i].data = (uint8_t *)m->listen_addrs[i];
		addrs[i].len = m->listen_addr_lens[i];
	}
	pb.n_listenaddrs = naddrs;
	pb.listenaddrs = addrs;
	pb.n_protocols = m->n_protocols;
	pb.protocols = (char **)m->protocols;
	if (m->observed) {
		pb.has_observedaddr = 1;
		pb.observedaddr.data = (uint8_t *)m->observed;
		pb.observedaddr.len = m->observed_len;
	}
	n = p2p__identify__get_packed_size(&pb);
	if (n > IDENTIFY_MAX_MSG) {
		return -NATX_E_TOO_BIG;
	}
	wr_init(&w, out, cap);
	if (wr_uvarint(&w, n) || wr_left(&w) < n) {
		return -NATX_E_TOO_BIG;
	}
	p2p__identify__pack(&pb, w.p);
	*len = (size_t)(w.p - out) + n;
	return 0;
}

static int dup_bytes(uint8_t **dst, size_t *dst_len, const ProtobufCBinaryData *src)
{
	uint8_t *p;

	if (src->len > IDENTIFY_MAX_BYTES) {
		return -NATX_E_PROTO;
	}
	p = malloc(src->len ? src->len : 1);
	if (!p) {
		return -ENOMEM;
	}
	if (src->len) {
		memcpy(p, src->data, src->len); /* an empty field may have data NULL */
	}
	free(*dst);
	*dst = p;
	*dst_len = src->len;
	return 0;
}

static int dup_str(char **dst, const char *src)
{
	size_t n = strnlen(src, IDENTIFY_MAX_STR + 1);
	char *p;

	if (n > IDENTIFY_MAX_STR) {
		return -NATX_E_PROTO;
	}
	p = strndup(src, n);
	if (!p) {
		return -ENOMEM;
	}
	free(*dst);
	*dst = p;
	return 0;
}

/* identify_merge - copy the present fields of @pb into @rec (lists replace lists). */
static int identify_merge(struct identify_record *rec, const P2p__Identify *pb)
{
	int err = 0;

	if (pb->protocolversion) {
		err = dup_str(&rec->protocol_version, pb->protocolversion);
	}
	if (!err && pb->agentversion) {
		err = dup_str(&rec->agent_version, pb->agentversion);
	}
	if (!err && pb->has_publickey) {
		err = dup_bytes(&rec->pubkey, &rec->pubkey_len, &pb->publickey);
	}
	if (!err && pb->has_observedaddr) {
		err = dup_bytes(&rec->observed, &rec->observed_len, &pb->observedaddr);
	}
	if (!err && pb->n_listenaddrs) {
		for (size_t i = 0; i < rec->n_addrs; i++) {
			free(rec->addrs[i]);
			rec->addrs[i] = NULL;
		}
		rec->n_addrs = 0;
		for (size_t i = 0; !err && i < pb->n_listenaddrs && i < IDENTIFY_MAX_ADDRS; i++) {
			err = dup_bytes(&rec->addrs[i], &rec->addr_lens[i], &pb->listenaddrs[i]);
			if (!err) {
				rec->n_addrs++;
			}
		}
	}
	if (!err && pb->n_protocols) {
		for (size_t i = 0; i < rec->n_protocols; i++) {
			free(rec->protocols[i]);
			rec->protocols[i] = NULL;
		}
		rec->n_protocols = 0;
		for (size_t i = 0; !err && i < pb->n_protocols && i < IDENTIFY_MAX_PROTOS; i++) {
			err = dup_str(&rec->protocols[i], pb->protocols[i]);
			if (!err) {
				rec->n_protocols++;
			}
		}
	}
	if (!err && pb->has_signedpeerrecord) {
		rec->has_signed_record = true;
	}
	return err;
}

int identify_decode(struct identify_record *rec, const uint8_t *buf, size_t len)
{
	struct rd r;
	int msgs = 0;

	rd_init(&r, buf, len);
	while (rd_left(&r)) {
		P2p__Identify *pb;
		const uint8_t *body;
		uint64_t n;
		int err;

		if (++msgs > IDENTIFY_MAX_MSGS || rd_uvarint(&r, &n)) {
			return -NATX_E_PROTO;
		}
		if (n > IDENTIFY_MAX_MSG) {
			return -NATX_E_TOO_BIG;
		}
		if (rd_bytes(&r, (size_t)n, &body)) {
			return -NATX_E_PROTO;
		}
		pb = p2p__identify__unpack(NULL, (size_t)n, body);
		if (!pb) {
			return -NATX_E_PROTO;
		}
		err = identify_merge(rec, pb);
		p2p__identify__free_unpacked(pb, NULL);
		if (err) {
			return err;
		}
	}
	return 0;
}

int identify_check_peer(const struct identify_record *rec, const struct peer_id *peer)
{
	struct peer_id id;

	if (!rec->pubkey) {
		return -NATX_E_PROTO;
	}
	peerid_from_pubkey(&id, rec->pubkey, rec->pubkey_len);
	return peerid_equal(&id, peer) ? 0 : -EKEYREJECTED;
}

bool identify_has_protocol(const struct identify_record *rec, const char *proto)
{
	for (size_t i = 0; i < rec->n_protocols; i++) {
		if (!strcmp(rec->protocols[i], proto)) {
			return true;
		}
	}
	return false;
}

void identify_record_cleanup(struct identify_record *rec)
{
	free(rec->protocol_version);
	free(rec->agent_version);
	free(rec->pubkey);
	free(rec->observed);
	for (size_t i = 0; i < rec->n_addrs; i++) {
		free(rec->addrs[i]);
	}
	for (size_t i = 0; i < rec->n_protocols; i++) {
		free(rec->protocols[i]);
	}
	memset(rec, 0, sizeof(*rec));
}
