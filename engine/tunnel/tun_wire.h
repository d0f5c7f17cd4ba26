/* SPDX-License-Identifier: MIT */
/*
 * natx tunnel wire protocol, version 1: frame layout, message types, limits and codecs.
 * docs/tunnel-protocol.md is the prose version of this header (byte layouts, handshakes,
 * versioning); keep the two in step.
 *
 * Every message is one frame:
 *   u8 type | u8 flags (0 in v1) | u16 BE payload length | payload
 * The first frame on every connection is HELLO. After START_TCP a data channel carries raw
 * bytes; after START_UDP it carries UDP_* frames.
 *
 * Codecs are pure: *_write() appends a whole frame to a struct wr (-NATX_E_TOO_BIG when it
 * does not fit, the writer then holds a partial frame the caller must discard), *_read()
 * parses the payload of a frame already cut by tun_frame_parse() and returns -NATX_E_PROTO
 * for any length or value it does not accept. Read results may point into the frame
 * (borrowed, valid while the frame's buffer is).
 */
#ifndef NATX_TUN_WIRE_H
#define NATX_TUN_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "natx/rd.h"

enum {
	TUN_VERSION_MIN = 1, /* versions this code speaks */
	TUN_VERSION_MAX = 1,
	TUN_HDR_LEN = 4,
	TUN_NONCE_LEN = 32,
	TUN_MAC_LEN = 32,
	TUN_SESSION_ID_LEN = 16,
	TUN_SERVICE_MAX = 64,
	TUN_CRED_MAX = 4096, /* credential blob in AUTH (an L402 macaroon) */
	TUN_CTRL_PAYLOAD_MAX = 4608, /* largest payload before data flows (AUTH with a macaroon) */
	TUN_UDP_PAYLOAD_MAX = 65535, /* largest UDP_* payload: 4-byte session id + datagram */
	TUN_UDP_DGRAM_MAX = TUN_UDP_PAYLOAD_MAX - 4,
};

#define TUN_MAGIC "NTUN" /* first 4 bytes of the HELLO payload */

enum tun_type {
	TUN_T_HELLO = 0x01, /* C->S  first frame of every connection */
	TUN_T_CHALLENGE = 0x02, /* S->C  version + fresh server nonce */
	TUN_T_AUTH = 0x03, /* C->S  control channel proof */
	TUN_T_AUTH_OK = 0x04, /* S->C  session id, heartbeat, server proof */
	TUN_T_DATA_AUTH = 0x05, /* C->S  data channel proof */
	TUN_T_DATA_OK = 0x06, /* S->C  data channel server proof */
	TUN_T_REFUSE = 0x07, /* S->C  reason; the sender closes afterwards */
	TUN_T_NOISE =
		0x08, /* both  Noise NK handshake message (encrypted transport, before HELLO) */
	TUN_T_HEARTBEAT = 0x10, /* both, control channel */
	TUN_T_HEARTBEAT_ACK = 0x11, /* both, control channel */
	TUN_T_CREATE_DATA = 0x12, /* S->C  open one data channel; one-time channel nonce */
	TUN_T_GOAWAY = 0x13, /* both  orderly end of the control session, with reason */
	TUN_T_START_TCP = 0x20, /* S->C  on a data channel: a TCP visitor, raw bytes follow */
	TUN_T_START_UDP = 0x21, /* S->C  on a data channel: UDP_* frames follow */
	TUN_T_UDP_OPEN = 0x30, /* S->C  new UDP session: id, visitor and public address */
	TUN_T_UDP_DATA = 0x31, /* both  one datagram of a session */
	TUN_T_UDP_CLOSE = 0x32, /* both  session ended (idle timeout, error) */
};

enum tun_chan {
	TUN_CHAN_CONTROL = 1,
	TUN_CHAN_DATA = 2,
};

enum tun_cred_kind {
	TUN_CRED_TOKEN = 1, /* shared per-service token from the config; blob empty */
	TUN_CRED_L402 = 2, /* blob = L402 macaroon (v2 binary); key = payment preimage */
};

/* REFUSE and GOAWAY reasons. Stable on the wire; new ones only with a new version. */
enum tun_reason {
	TUN_R_NONE = 0,
	TUN_R_VERSION = 1, /* no common version; payload carries the server's range */
	TUN_R_UNKNOWN_SERVICE = 2,
	TUN_R_AUTH = 3, /* wrong credential / MAC */
	TUN_R_PAYMENT = 4, /* L402: not paid, or token unknown/revoked */
	TUN_R_EXPIRED = 5, /* L402 token expired */
	TUN_R_QUOTA = 6, /* L402 byte quota used up */
	TUN_R_LIMIT = 7, /* a connection/handshake limit was hit */
	TUN_R_UNKNOWN_SESSION = 8, /* data channel names no live session */
	TUN_R_REPLAY = 9, /* channel nonce unknown or already used */
	TUN_R_PROTOCOL = 10, /* malformed or unexpected frame */
	TUN_R_INTERNAL = 11,
	TUN_R_SHUTDOWN = 12, /* GOAWAY: server or client shutting down / service removed */
	TUN_R_REPLACED = 13, /* GOAWAY: a newer control channel took over the service */
	TUN_R_NOISE_REQUIRED = 14, /* plaintext HELLO to a server that accepts only Noise */
	TUN_R_NOISE_UNAVAILABLE = 15, /* NOISE to a server without the encrypted transport */
	TUN_R_NOISE_KEY = 16, /* Noise message 1 did not decrypt: not the server key pinned */
	TUN_R_MAX,
};

/* One parsed frame; payload points into the caller's buffer. */
struct tun_frame {
	uint8_t type;
	const uint8_t *payload;
	size_t len; /* payload length */
	size_t total; /* TUN_HDR_LEN + len: bytes to consume */
};

/*
 * tun_frame_parse - cut one frame from buf[0..len). max_payload is the limit for the
 * connection's current state (TUN_CTRL_PAYLOAD_MAX, or TUN_UDP_PAYLOAD_MAX on a UDP data
 * channel). Returns 0 (frame complete: consume f->total bytes), -EAGAIN (need more bytes;
 * at most TUN_HDR_LEN + max_payload are ever needed, so a fixed buffer of that size always
 * suffices), -NATX_E_TOO_BIG (declared length above max_payload), or -NATX_E_PROTO (unknown
 * type or non-zero flags). The frame reader never reads past buf + len.
 */
int tun_frame_parse(const uint8_t *buf, size_t len, size_t max_payload, struct tun_frame *f);

/* tun_frame_header_write - the 4-byte header for a payload of len bytes. */
int tun_frame_header_write(struct wr *w, enum tun_type type, size_t len);

/* tun_type_known - is t a v1 frame type? */
bool tun_type_known(uint8_t t);

/* tun_reason_name - short stable text for a reason ("auth", "replay", ...). */
const char *tun_reason_name(unsigned int reason);

/* ---- messages ---- */

struct tun_hello {
	uint8_t min_version, max_version;
	uint8_t chan; /* enum tun_chan */
};

struct tun_challenge {
	uint8_t version; /* chosen by the server */
	uint8_t nonce[TUN_NONCE_LEN]; /* fresh per connection */
};

struct tun_auth {
	uint8_t kind; /* enum tun_cred_kind */
	uint8_t service_len;
	const uint8_t *service; /* [A-Za-z0-9._-], 1..TUN_SERVICE_MAX */
	uint16_t cred_len;
	const uint8_t *cred; /* TUN_CRED_L402: macaroon bytes */
	uint8_t client_nonce[TUN_NONCE_LEN];
	uint8_t mac[TUN_MAC_LEN];
	const uint8_t *signed_part; /* read: payload minus the trailing mac (MAC input) */
	size_t signed_len;
};

struct tun_auth_ok {
	uint8_t session_id[TUN_SESSION_ID_LEN];
	uint16_t heartbeat_interval; /* seconds; the server sends one when idle this long */
	uint16_t heartbeat_timeout; /* seconds of silence after which either side gives up */
	uint8_t mac[TUN_MAC_LEN];
};

struct tun_data_auth {
	uint8_t session_id[TUN_SESSION_ID_LEN];
	uint8_t channel_nonce[TUN_NONCE_LEN];
	uint8_t mac[TUN_MAC_LEN];
};

struct tun_refuse {
	uint8_t reason; /* enum tun_reason */
	uint8_t min_version, max_version; /* the sender's range (meaningful for TUN_R_VERSION) */
};

/* An endpoint address as carried on the wire: u8 family (4|6), u8 0, u16 BE port, addr. */
struct tun_addr {
	uint8_t family; /* 4 or 6 */
	uint16_t port; /* host order */
	uint8_t addr[16]; /* 4 or 16 bytes used, network order */
};

struct tun_start {
	struct tun_addr src; /* the visitor */
	struct tun_addr dst; /* the public address the visitor connected to */
};

struct tun_udp {
	uint32_t session; /* server-assigned, unique per data channel */
	struct tun_addr src, dst; /* UDP_OPEN only */
	const uint8_t *data; /* UDP_DATA only: the datagram */
	size_t len;
};

int tun_hello_write(struct wr *w, const struct tun_hello *m);
int tun_hello_read(const struct tun_frame *f, struct tun_hello *m);
int tun_challenge_write(struct wr *w, const struct tun_challenge *m);
int tun_challenge_read(const struct tun_frame *f, struct tun_challenge *m);
/* tun_auth_write - writes the frame; computes nothing: m->mac must already be set. */
int tun_auth_write(struct wr *w, const struct tun_auth *m);
int tun_auth_read(const struct tun_frame *f, struct tun_auth *m);
/* tun_auth_signed_len - bytes of the AUTH payload covered by its MAC. */
size_t tun_auth_signed_len(const struct tun_auth *m);
/* tun_auth_signed_write - exactly the MAC-covered bytes (same as the payload prefix). */
int tun_auth_signed_write(struct wr *w, const struct tun_auth *m);
int tun_auth_ok_write(struct wr *w, const struct tun_auth_ok *m);
int tun_auth_ok_read(const struct tun_frame *f, struct tun_auth_ok *m);
int tun_data_auth_write(struct wr *w, const struct tun_data_auth *m);
int tun_data_auth_read(const struct tun_frame *f, struct tun_data_auth *m);
int tun_data_ok_write(struct wr *w, const uint8_t mac[TUN_MAC_LEN]);
int tun_data_ok_read(const struct tun_frame *f, uint8_t mac[TUN_MAC_LEN]);
int tun_refuse_write(struct wr *w, const struct tun_refuse *m);
int tun_refuse_read(const struct tun_frame *f, struct tun_refuse *m);
int tun_heartbeat_write(struct wr *w, bool ack, uint32_t seq);
int tun_heartbeat_read(const struct tun_frame *f, uint32_t *seq);
int tun_create_data_write(struct wr *w, const uint8_t nonce[TUN_NONCE_LEN]);
int tun_create_data_read(const struct tun_frame *f, uint8_t nonce[TUN_NONCE_LEN]);
int tun_goaway_write(struct wr *w, uint8_t reason);
int tun_goaway_read(const struct tun_frame *f, uint8_t *reason);
int tun_start_write(struct wr *w, bool udp, const struct tun_start *m);
/* tun_start_read - START_TCP carries src/dst; START_UDP has an empty payload. */
int tun_start_read(const struct tun_frame *f, struct tun_start *m);
int tun_udp_open_write(struct wr *w, const struct tun_udp *m);
int tun_udp_data_write(struct wr *w, uint32_t session, const void *data, size_t len);
int tun_udp_close_write(struct wr *w, uint32_t session);
/* tun_udp_read - any of UDP_OPEN / UDP_DATA / UDP_CLOSE (f->type tells which). */
int tun_udp_read(const struct tun_frame *f, struct tun_udp *m);

/* tun_service_name_ok - the service-name rule shared with natxd's config. */
bool tun_service_name_ok(const uint8_t *name, size_t len);

#endif
