// SPDX-License-Identifier: MIT
/* relay_msg.c - HopMessage/StopMessage codec through protobuf-c (see relay_msg.h). */
#include <errno.h>
#include <string.h>

#include "natx/err.h"
#include "circuit.pb-c.h"
#include "pbframe.h"
#include "relay_msg.h"

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
	pbframe_addrs_view(&m->peer_addrs, pp->addrs, &pp->peer.n_addrs, &pp->peer.addrs);
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
		pbframe_addrs_view(&m->rsvp_addrs, raddrs, &rsvp.n_addrs, &rsvp.addrs);
		if (m->voucher_len) {
			rsvp.has_voucher = 1;
			rsvp.voucher.data = (uint8_t *)m->voucher;
			rsvp.voucher.len = m->voucher_len;
		}
		pb.reservation = &rsvp;
	}
	return pbframe_encode(&pb.base, RELAY_MAX_MSG, out, cap, len);
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
	return pbframe_encode(&pb.base, RELAY_MAX_MSG, out, cap, len);
}

/* decode_common - the fields hop and stop share. */
static int decode_common(struct relay_msg *m, const P2p__Peer *peer, const P2p__Limit *limit)
{
	if (peer) {
		if (!peer->has_id || peerid_from_bytes(&m->peer, peer->id.data, peer->id.len)) {
			return -NATX_E_PROTO;
		}
		m->has_peer = true;
		pbframe_addrs_keep(&m->peer_addrs, peer->n_addrs, peer->addrs);
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
	pb = pbframe_decode(&p2p__hop_message__descriptor, RELAY_MAX_MSG, buf, len, &err);
	if (!pb) {
		return err;
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
		pbframe_addrs_keep(&m->rsvp_addrs, r->n_addrs, r->addrs);
		if (r->has_voucher && r->voucher.len) {
			memcpy(m->voucher, r->voucher.data, r->voucher.len);
			m->voucher_len = r->voucher.len;
		}
		err = 0;
	}
out_free:
	pbframe_free(&pb->base);
	return err;
}

int relay_stop_decode(struct relay_msg *m, const uint8_t *buf, size_t len)
{
	P2p__StopMessage *pb;
	int err;

	memset(m, 0, sizeof(*m));
	pb = pbframe_decode(&p2p__stop_message__descriptor, RELAY_MAX_MSG, buf, len, &err);
	if (!pb) {
		return err;
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
	pbframe_free(&pb->base);
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
