// SPDX-License-Identifier: MIT
/* Frame reader and message codecs of the tunnel protocol (tun_wire.h). */
#include <errno.h>
#include <string.h>

#include "tun_wire.h"

bool tun_type_known(uint8_t t)
{
	switch (t) {
	case TUN_T_HELLO:
	case TUN_T_CHALLENGE:
	case TUN_T_AUTH:
	case TUN_T_AUTH_OK:
	case TUN_T_DATA_AUTH:
	case TUN_T_DATA_OK:
	case TUN_T_REFUSE:
	case TUN_T_NOISE:
	case TUN_T_HEARTBEAT:
	case TUN_T_HEARTBEAT_ACK:
	case TUN_T_CREATE_DATA:
	case TUN_T_GOAWAY:
	case TUN_T_START_TCP:
	case TUN_T_START_UDP:
	case TUN_T_UDP_OPEN:
	case TUN_T_UDP_DATA:
	case TUN_T_UDP_CLOSE:
		return true;
	default:
		return false;
	}
}

const char *tun_reason_name(unsigned int reason)
{
	static const char *const names[TUN_R_MAX] = {
		[TUN_R_NONE] = "none",
		[TUN_R_VERSION] = "version",
		[TUN_R_UNKNOWN_SERVICE] = "unknown_service",
		[TUN_R_AUTH] = "auth",
		[TUN_R_PAYMENT] = "payment_required",
		[TUN_R_EXPIRED] = "expired",
		[TUN_R_QUOTA] = "quota",
		[TUN_R_LIMIT] = "limit",
		[TUN_R_UNKNOWN_SESSION] = "unknown_session",
		[TUN_R_REPLAY] = "replay",
		[TUN_R_PROTOCOL] = "protocol",
		[TUN_R_INTERNAL] = "internal",
		[TUN_R_SHUTDOWN] = "shutdown",
		[TUN_R_REPLACED] = "replaced",
		[TUN_R_NOISE_REQUIRED] = "noise_required",
		[TUN_R_NOISE_UNAVAILABLE] = "noise_unavailable",
		[TUN_R_NOISE_KEY] = "noise_key",
	};

	return reason < TUN_R_MAX ? names[reason] : "unknown";
}

int tun_frame_parse(const uint8_t *buf, size_t len, size_t max_payload, struct tun_frame *f)
{
	struct rd r;
	uint8_t type, flags;
	uint16_t plen;

	rd_init(&r, buf, len);
	if (rd_u8(&r, &type)) {
		return -EAGAIN;
	}
	/* Judge the type as soon as it is known, so garbage is refused after one byte. */
	if (!tun_type_known(type)) {
		return -NATX_E_PROTO;
	}
	if (rd_u8(&r, &flags)) {
		return -EAGAIN;
	}
	if (flags) {
		return -NATX_E_PROTO;
	}
	if (rd_be16(&r, &plen)) {
		return -EAGAIN;
	}
	if (plen > max_payload) {
		return -NATX_E_TOO_BIG;
	}
	if (rd_bytes(&r, plen, &f->payload)) {
		return -EAGAIN;
	}
	f->type = type;
	f->len = plen;
	f->total = TUN_HDR_LEN + plen;
	return 0;
}

int tun_frame_header_write(struct wr *w, enum tun_type type, size_t len)
{
	if (len > UINT16_MAX) {
		return -NATX_E_TOO_BIG;
	}
	if (wr_u8(w, (uint8_t)type) || wr_u8(w, 0) || wr_be16(w, (uint16_t)len)) {
		return -NATX_E_TOO_BIG;
	}
	return 0;
}

bool tun_service_name_ok(const uint8_t *name, size_t len)
{
	if (len == 0 || len > TUN_SERVICE_MAX) {
		return false;
	}
	for (size_t i = 0; i < len; i++) {
		uint8_t c = name[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '.' || c == '_' || c == '-')) {
			return false;
		}
	}
	return true;
}

/* tun_payload - reader over a frame of the expected type and exact or minimum length. */
static int tun_payload(const struct tun_frame *f, enum tun_type type, struct rd *r)
{
	if (f->type != type) {
		return -NATX_E_PROTO;
	}
	rd_init(r, f->payload, f->len);
	return 0;
}

/* ---- handshake ---- */

int tun_hello_write(struct wr *w, const struct tun_hello *m)
{
	if (tun_frame_header_write(w, TUN_T_HELLO, 8) || wr_bytes(w, TUN_MAGIC, 4) ||
	    wr_u8(w, m->min_version) || wr_u8(w, m->max_version) || wr_u8(w, m->chan) ||
	    wr_u8(w, 0)) {
		return -NATX_E_TOO_BIG;
	}
	return 0;
}

int tun_hello_read(const struct tun_frame *f, struct tun_hello *m)
{
	const uint8_t *magic;
	uint8_t rsv;
	struct rd r;

	if (tun_payload(f, TUN_T_HELLO, &r) || f->len != 8 || rd_bytes(&r, 4, &magic) ||
	    rd_u8(&r, &m->min_version) || rd_u8(&r, &m->max_version) || rd_u8(&r, &m->chan) ||
	    rd_u8(&r, &rsv)) {
		return -NATX_E_PROTO;
	}
	if (memcmp(magic, TUN_MAGIC, 4) || m->min_version == 0 || m->min_version > m->max_version ||
	    (m->chan != TUN_CHAN_CONTROL && m->chan != TUN_CHAN_DATA) || rsv) {
		return -NATX_E_PROTO;
	}
	return 0;
}

int tun_challenge_write(struct wr *w, const struct tun_challenge *m)
{
	if (tun_frame_header_write(w, TUN_T_CHALLENGE, 2 + TUN_NONCE_LEN) || wr_u8(w, m->version) ||
	    wr_u8(w, 0) || wr_bytes(w, m->nonce, TUN_NONCE_LEN)) {
		return -NATX_E_TOO_BIG;
	}
	return 0;
}

int tun_challenge_read(const struct tun_frame *f, struct tun_challenge *m)
{
	uint8_t rsv;
	struct rd r;

	if (tun_payload(f, TUN_T_CHALLENGE, &r) || f->len != 2 + TUN_NONCE_LEN ||
	    rd_u8(&r, &m->version) || rd_u8(&r, &rsv) || rd_copy(&r, m->nonce, TUN_NONCE_LEN)) {
		return -NATX_E_PROTO;
	}
	return rsv || m->version == 0 ? -NATX_E_PROTO : 0;
}

size_t tun_auth_signed_len(const struct tun_auth *m)
{
	return 1 + 1 + (size_t)m->service_len + 2 + (size_t)m->cred_len + TUN_NONCE_LEN;
}

int tun_auth_signed_write(struct wr *w, const struct tun_auth *m)
{
	if (wr_u8(w, m->kind) || wr_u8(w, m->service_len) ||
	    wr_bytes(w, m->service, m->service_len) || wr_be16(w, m->cred_len) ||
	    (m->cred_len && wr_bytes(w, m->cred, m->cred_len)) ||
	    wr_bytes(w, m->client_nonce, TUN_NONCE_LEN)) {
		return -NATX_E_TOO_BIG;
	}
	return 0;
}

int tun_auth_write(struct wr *w, const struct tun_auth *m)
{
	if (!tun_service_name_ok(m->service, m->service_len) || m->cred_len > TUN_CRED_MAX) {
		return -EINVAL;
	}
	if (tun_frame_header_write(w, TUN_T_AUTH, tun_auth_signed_len(m) + TUN_MAC_LEN) ||
	    tun_auth_signed_write(w, m) || wr_bytes(w, m->mac, TUN_MAC_LEN)) {
		return -NATX_E_TOO_BIG;
	}
	return 0;
}

int tun_auth_read(const struct tun_frame *f, struct tun_auth *m)
{
	struct rd r;

	if (tun_payload(f, TUN_T_AUTH, &r) || rd_u8(&r, &m->kind) || rd_u8(&r, &m->service_len) ||
	    rd_bytes(&r, m->service_len, &m->service) || rd_be16(&r, &m->cred_len) ||
	    m->cred_len > TUN_CRED_MAX || rd_bytes(&r, m->cred_len, &m->cred) ||
	    rd_copy(&r, m->client_nonce, TUN_NONCE_LEN) || rd_copy(&r, m->mac, TUN_MAC_LEN) ||
	    rd_left(&r) != 0) {
		return -NATX_E_PROTO;
	}
	if ((m->kind != TUN_CRED_TOKEN && m->kind != TUN_CRED_L402) ||
	    (m->kind == TUN_CRED_TOKEN && m->cred_len != 0) ||
	    (m->kind == TUN_CRED_L402 && m->cred_len == 0) ||
	    !tun_service_name_ok(m->service, m->service_len)) {
		return -NATX_E_PROTO;
	}
	m->signed_part = f->payload;
	m->signed_len = f->len - TUN_MAC_LEN;
	return 0;
}

int tun_auth_ok_write(struct wr *w, const struct tun_auth_ok *m)
{
	if (tun_frame_header_write(w, TUN_T_AUTH_OK, TUN_SESSION_ID_LEN + 4 + TUN_MAC_LEN) ||
	    wr_bytes(w, m->session_id, TUN_SESSION_ID_LEN) || wr_be16(w, m->heartbeat_interval) ||
	    wr_be16(w, m->heartbeat_timeout) || wr_bytes(w, m->mac, TUN_MAC_LEN)) {
		return -NATX_E_TOO_BIG;
	}
	return 0;
}

int tun_auth_ok_read(const struct tun_frame *f, struct tun_auth_ok *m)
{
	struct rd r;

	if (tun_payload(f, TUN_T_AUTH_OK, &r) || f->len != TUN_SESSION_ID_LEN + 4 + TUN_MAC_LEN) {
		return -NATX_E_PROTO;
	}
	if (rd_copy(&r, m->session_id, TUN_SESSION_ID_LEN) || rd_be16(&r, &m->heartbeat_interval) ||
	    rd_be16(&r, &m->heartbeat_timeout) || rd_copy(&r, m->mac, TUN_MAC_LEN)) {
		return -NATX_E_PROTO;
	}
	return 0;
}

int tun_data_auth_write(struct wr *w, const struct tun_data_auth *m)
{
	if (tun_frame_header_write(w, TUN_T_DATA_AUTH,
				   TUN_SESSION_ID_LEN + TUN_NONCE_LEN + TUN_MAC_LEN) ||
	    wr_bytes(w, m->session_id, TUN_SESSION_ID_LEN) ||
	    wr_bytes(w, m->channel_nonce, TUN_NONCE_LEN) || wr_bytes(w, m->mac, TUN_MAC_LEN)) {
		return -NATX_E_TOO_BIG;
	}
	return 0;
}

int tun_data_auth_read(const struct tun_frame *f, struct tun_data_auth *m)
{
	struct rd r;

	if (tun_payload(f, TUN_T_DATA_AUTH, &r) ||
	    f->len != TUN_SESSION_ID_LEN + TUN_NONCE_LEN + TUN_MAC_LEN) {
		return -NATX_E_PROTO;
	}
	if (rd_copy(&r, m->session_id, TUN_SESSION_ID_LEN) ||
	    rd_copy(&r, m->channel_nonce, TUN_NONCE_LEN) || rd_copy(&r, m->mac, TUN_MAC_LEN)) {
		return -NATX_E_PROTO;
	}
	return 0;
}

int tun_data_ok_write(struct wr *w, const uint8_t mac[TUN_MAC_LEN])
{
	if (tun_frame_header_write(w, TUN_T_DATA_OK, TUN_MAC_LEN) ||
	    wr_bytes(w, mac, TUN_MAC_LEN)) {
		return -NATX_E_TOO_BIG;
	}
	return 0;
}

int tun_data_ok_read(const struct tun_frame *f, uint8_t mac[TUN_MAC_LEN])
{
	struct rd r;

	if (tun_payload(f, TUN_T_DATA_OK, &r) || f->len != TUN_MAC_LEN) {
		return -NATX_E_PROTO;
	}
	return rd_copy(&r, mac, TUN_MAC_LEN) ? -NATX_E_PROTO : 0;
}

int tun_refuse_write(struct wr *w, const struct tun_refuse *m)
{
	if (tun_frame_header_write(w, TUN_T_REFUSE, 4) || wr_u8(w, m->reason) ||
	    wr_u8(w, m->min_version) || wr_u8(w, m->max_version) || wr_u8(w, 0)) {
		return -NATX_E_TOO_BIG;
	}
	return 0;
}

int tun_refuse_read(const struct tun_frame *f, struct tun_refuse *m)
{
	uint8_t rsv;
	struct rd r;

	if (tun_payload(f, TUN_T_REFUSE, &r) || f->len != 4 || rd_u8(&r, &m->reason) ||
	    rd_u8(&r, &m->min_version) || rd_u8(&r, &m->max_version) || rd_u8(&r, &rsv)) {
		return -NATX_E_PROTO;
	}
	return rsv || m->reason == TUN_R_NONE || m->reason >= TUN_R_MAX ? -NATX_E_PROTO : 0;
}

/* ---- control channel ---- */

int tun_heartbeat_write(struct wr *w, bool ack, uint32_t seq)
{
	if (tun_frame_header_write(w, ack ? TUN_T_HEARTBEAT_ACK : TUN_T_HEARTBEAT, 4) ||
	    wr_be32(w, seq)) {
		return -NATX_E_TOO_BIG;
	}
	return 0;
}

int tun_heartbeat_read(const struct tun_frame *f, uint32_t *seq)
{
	struct rd r;

	if ((f->type != TUN_T_HEARTBEAT && f->type != TUN_T_HEARTBEAT_ACK) || f->len != 4) {
		return -NATX_E_PROTO;
	}
	rd_init(&r, f->payload, f->len);
	return rd_be32(&r, seq) ? -NATX_E_PROTO : 0;
}

int tun_create_data_write(struct wr *w, const uint8_t nonce[TUN_NONCE_LEN])
{
	if (tun_frame_header_write(w, TUN_T_CREATE_DATA, TUN_NONCE_LEN) ||
	    wr_bytes(w, nonce, TUN_NONCE_LEN)) {
		return -NATX_E_TOO_BIG;
	}
	return 0;
}

int tun_create_data_read(const struct tun_frame *f, uint8_t nonce[TUN_NONCE_LEN])
{
	struct rd r;

	if (tun_payload(f, TUN_T_CREATE_DATA, &r) || f->len != TUN_NONCE_LEN) {
		return -NATX_E_PROTO;
	}
	return rd_copy(&r, nonce, TUN_NONCE_LEN) ? -NATX_E_PROTO : 0;
}

int tun_goaway_write(struct wr *w, uint8_t reason)
{
	if (tun_frame_header_write(w, TUN_T_GOAWAY, 1) || wr_u8(w, reason)) {
		return -NATX_E_TOO_BIG;
	}
	return 0;
}

int tun_goaway_read(const struct tun_frame *f, uint8_t *reason)
{
	if (f->type != TUN_T_GOAWAY || f->len != 1 || f->payload[0] == TUN_R_NONE ||
	    f->payload[0] >= TUN_R_MAX) {
		return -NATX_E_PROTO;
	}
	*reason = f->payload[0];
	return 0;
}

/* ---- data channel ---- */

static size_t tun_addr_len(const struct tun_addr *a)
{
	return 4 + (a->family == 6 ? 16 : 4);
}

static int tun_addr_write(struct wr *w, const struct tun_addr *a)
{
	if (a->family != 4 && a->family != 6) {
		return -EINVAL;
	}
	if (wr_u8(w, a->family) || wr_u8(w, 0) || wr_be16(w, a->port) ||
	    wr_bytes(w, a->addr, a->family == 6 ? 16 : 4)) {
		return -NATX_E_TOO_BIG;
	}
	return 0;
}

static int tun_addr_read(struct rd *r, struct tun_addr *a)
{
	uint8_t rsv;

	memset(a, 0, sizeof(*a));
	if (rd_u8(r, &a->family) || rd_u8(r, &rsv) || rsv || rd_be16(r, &a->port) ||
	    (a->family != 4 && a->family != 6) || rd_copy(r, a->addr, a->family == 6 ? 16 : 4)) {
		return -NATX_E_PROTO;
	}
	return 0;
}

int tun_start_write(struct wr *w, bool udp, const struct tun_start *m)
{
	if (udp) {
		return tun_frame_header_write(w, TUN_T_START_UDP, 0);
	}
	if ((m->src.family != 4 && m->src.family != 6) ||
	    (m->dst.family != 4 && m->dst.family != 6)) {
		return -EINVAL;
	}
	return tun_frame_header_write(w, TUN_T_START_TCP, tun_addr_len(&m->src) + tun_addr_len(&m->dst)) ?:
		       tun_addr_write(w, &m->src) ?:
						    tun_addr_write(w, &m->dst);
}

int tun_start_read(const struct tun_frame *f, struct tun_start *m)
{
	struct rd r;

	memset(m, 0, sizeof(*m));
	if (f->type == TUN_T_START_UDP) {
		return f->len == 0 ? 0 : -NATX_E_PROTO;
	}
	if (tun_payload(f, TUN_T_START_TCP, &r) || tun_addr_read(&r, &m->src) ||
	    tun_addr_read(&r, &m->dst) || rd_left(&r)) {
		return -NATX_E_PROTO;
	}
	return 0;
}

int tun_udp_open_write(struct wr *w, const struct tun_udp *m)
{
	if ((m->src.family != 4 && m->src.family != 6) ||
	    (m->dst.family != 4 && m->dst.family != 6)) {
		return -EINVAL;
	}
	return tun_frame_header_write(w, TUN_T_UDP_OPEN, 4 + tun_addr_len(&m->src) + tun_addr_len(&m->dst)) ?:
		       wr_be32(w, m->session)	  ?:
		       tun_addr_write(w, &m->src) ?:
						    tun_addr_write(w, &m->dst);
}

int tun_udp_data_write(struct wr *w, uint32_t session, const void *data, size_t len)
{
	if (len > TUN_UDP_DGRAM_MAX) {
		return -NATX_E_TOO_BIG;
	}
	return tun_frame_header_write(w, TUN_T_UDP_DATA, 4 + len) ?:
		       wr_be32(w, session)			  ?:
								    wr_bytes(w, data, len);
}

int tun_udp_close_write(struct wr *w, uint32_t session)
{
	return tun_frame_header_write(w, TUN_T_UDP_CLOSE, 4) ?: wr_be32(w, session);
}

int tun_udp_read(const struct tun_frame *f, struct tun_udp *m)
{
	struct rd r;

	memset(m, 0, sizeof(*m));
	rd_init(&r, f->payload, f->len);
	if (rd_be32(&r, &m->session)) {
		return -NATX_E_PROTO;
	}
	switch (f->type) {
	case TUN_T_UDP_OPEN:
		if (tun_addr_read(&r, &m->src) || tun_addr_read(&r, &m->dst) || rd_left(&r)) {
			return -NATX_E_PROTO;
		}
		return 0;
	case TUN_T_UDP_DATA:
		m->len = rd_left(&r);
		return rd_bytes(&r, m->len, &m->data) ? -NATX_E_PROTO : 0;
	case TUN_T_UDP_CLOSE:
		return rd_left(&r) ? -NATX_E_PROTO : 0;
	default:
		return -NATX_E_PROTO;
	}
}
