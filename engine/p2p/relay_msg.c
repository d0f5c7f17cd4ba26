// SPDX-License-Identifier: MIT
/* relay_msg.c - HopMessage/StopMessage codec through protobuf-c (see relay_msg.h). */
#include <errno.h>
#include <string.h>

#include "natx/err.h"
#include "natx/rd.h"
#include "circuit.pb-c.h"
#include "relay_msg.h"

/* pb_addrs - view @a as protobuf bytes fields in @tmp. */
static void pb_addrs(const struct relay_addrs *a, ProtobufCBinaryData *tmp, size_t *n,
		     ProtobufCBinaryData **out)
{
	for (size_t i = 0; i < a->n; i++) {
		tmp[i].data = (uint8_t *)a->b[i];
		tmp[i].len = a->lens[i];
	}
	*n = a->n;
	*out = tmp;
}

/* addrs_keep - copy received addresses; over-long or surplus ones are skipped. */
static void addrs_keep(struct relay_addrs *a, size_t n, const ProtobufCBinaryData *src)
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

/* frame - length prefix + packed message. */
static int frame(const ProtobufCMessage *pb, uint8_t *out, size_t cap, size_t *len)
{
	size_t n = protobuf_c_message_get_packed_size(pb);
	struct wr w;

	if (n > RELAY_MAX_MSG) {
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

/* struct pb_parts - the sub-messages shared by hop and stop encoding. */
struct pb_parts {
	P2p__Peer peer;
	P2p__Limit limit;
	ProtobufCBinaryData addrs[RELAY_MAX_ADDRS];
};

static void parts_fill(struct pb_parts *pp, const struct relay_msg *m)
{
	p2p__peer__init(&pp->peer);
	p2p__limit__init(&pp->limit);
	pp->peer.has_id = 1;
	pp->peer.id.data = (uint8_t *)m->peer.b;
	pp->peer.id.len = m->peer.len;
	pb_addrs(&m->peer_addrs, pp->addrs, &pp->peer.n_addrs, &pp->peer.addrs);
	/* js reads 0 as "no limit" only when the field is present: always send both */
	pp->limit.has_duration = pp->limit.has_data = 1;
	pp->limit.duration = m->limit.duration_s;
	pp->limit.data = m->limit.data;
}

int relay_hop_encode(const struct relay_msg *m, uint8_t *out, size_t cap, size_t *len)
{
	P2p__HopMessage pb = P2P__HOP_MESSAGE__INIT;
	P2p__Reservation rsvp = P2P__RESERVATION__INIT;
	ProtobufCBinaryData raddrs[RELAY_MAX_ADDRS];
	struct pb_parts pp;

	parts_fill(&pp, m);
	pb.has_type = 1;
	pb.type = (P2p__HopMessage__Type)m->type;
	pb.peer = m->has_peer ? &pp.peer : NULL;
	pb.limit = m->limit.present ? &pp.limit : NULL;
	if (m->has_status) {
		pb.has_status = 1;
		pb.status = (P2p__Status)m->status;
	}
	if (m->has_rsvp) {
		rsvp.has_expire = 1;
		rsvp.expire = m->rsvp_expire;
		pb_addrs(&m->rsvp_addrs, raddrs, &rsvp.n_addrs, &rsvp.addrs);
		if (m->voucher_len) {
			rsvp.has_voucher = 1;
			rsvp.voucher.data = (uint8_t *)m->voucher;
			rsvp.voucher.len = m->voucher_len;
		}
		pb.reservation = &rsvp;
	}
	return frame(&pb.base, out, cap, len);
}

int relay_stop_encode(const struct relay_msg *m, uint8_t *out, size_t cap, size_t *len)
{
	P2p__StopMessage pb = P2P__STOP_MESSAGE__INIT;
	struct pb_parts pp;

	parts_fill(&pp, m);
	pb.has_type = 1;
	pb.type = (P2p__StopMessage__Type)m->type;
	pb.peer = m->has_peer ? &pp.peer : NULL;
	pb.limit = m->limit.present ? &pp.limit : NULL;
	if (m->has_status) {
		pb.has_status = 1;
		pb.status = (P2p__Status)m->status;
	}
	return frame(&pb.base, out, cap, len);
}

/* decode_common - the fields hop and stop share. */
static int decode_common(struct relay_msg *m, const P2p__Peer *peer, const P2p__Limit *limit)
{
	if (peer) {
		if (!peer->has_id || peerid_from_bytes(&m->peer, peer->id.data, peer->id.len)) {
			return -NATX_E_PROTO;
		}
		m->has_peer = true;
		addrs_keep(&m->peer_addrs, peer->n_addrs, peer->addrs);
	}
	if (limit) {
		m->limit.present = true;
		m->limit.duration_s = limit->has_duration ? limit->duration : 0;
		m->limit.data = limit->has_data ? limit->data : 0;
	}
	return 0;
}

int relay_hop_decode(struct relay_msg *m, const uint8_t *buf, size_t len)
{
	P2p__HopMessage *pb;
	int err;

	memset(m, 0, sizeof(*m));
	if (len > RELAY_MAX_MSG) {
		return -NATX_E_TOO_BIG;
	}
	pb = p2p__hop_message__unpack(NULL, len, buf);
	if (!pb) {
		return -NATX_E_PROTO;
	}
	err = -NATX_E_PROTO;
	if (!pb->has_type) {
		goto out_free;
	}
	m->type = pb->type;
	err = decode_common(m, pb->peer, pb->limit);
	if (err) {
		goto out_free;
	}
	if (pb->has_status) {
		m->has_status = true;
		m->status = (uint32_t)pb->status;
	}
	if (pb->reservation) {
		const P2p__Reservation *r = pb->reservation;

		err = -NATX_E_PROTO;
		if (r->has_voucher && r->voucher.len > RELAY_MAX_VOUCHER) {
			goto out_free;
		}
		m->has_rsvp = true;
		m->rsvp_expire = r->has_expire ? r->expire : 0;
		addrs_keep(&m->rsvp_addrs, r->n_addrs, r->addrs);
		if (r->has_voucher && r->voucher.len) {
			memcpy(m->voucher, r->voucher.data, r->voucher.len);
			m->voucher_len = r->voucher.len;
		}
		err = 0;
	}
out_free:
	p2p__hop_message__free_unpacked(pb, NULL);
	return err;
}

int relay_stop_decode(struct relay_msg *m, const uint8_t *buf, size_t len)
{
	P2p__StopMessage *pb;
	int err;

	memset(m, 0, sizeof(*m));
	if (len > RELAY_MAX_MSG) {
		return -NATX_E_TOO_BIG;
	}
	pb = p2p__stop_message__unpack(NULL, len, buf);
	if (!pb) {
		return -NATX_E_PROTO;
	}
	err = -NATX_E_PROTO;
	if (!pb->has_type) {
		goto out_free;
	}
	m->type = pb->type;
	err = decode_common(m, pb->peer, pb->limit);
	if (!err && pb->has_status) {
		m->has_status = true;
		m->status = (uint32_t)pb->status;
	}
out_free:
	p2p__stop_message__free_unpacked(pb, NULL);
	return err;
}

const char *relay_status_name(uint32_t status)
{
	switch (status) {
	case RELAY_UNUSED:
		return "UNUSED";
	case RELAY_OK:
		return "OK";
	case RELAY_RESERVATION_REFUSED:
		return "RESERVATION_REFUSED";
	case RELAY_RESOURCE_LIMIT_EXCEEDED:
		return "RESOURCE_LIMIT_EXCEEDED";
	case RELAY_PERMISSION_DENIED:
		return "PERMISSION_DENIED";
	case RELAY_CONNECTION_FAILED:
		return "CONNECTION_FAILED";
	case RELAY_NO_RESERVATION:
		return "NO_RESERVATION";
	case RELAY_MALFORMED_MESSAGE:
		return "MALFORMED_MESSAGE";
	case RELAY_UNEXPECTED_MESSAGE:
		return "UNEXPECTED_MESSAGE";
	default:
		return "UNKNOWN";
	}
}
