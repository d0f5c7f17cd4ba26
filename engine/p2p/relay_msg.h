/* SPDX-License-Identifier: MIT */
/*
 * Circuit Relay v2 message codec (libp2p/specs relay/circuit-v2.md): HopMessage and
 * StopMessage as one C struct. Messages travel length-prefixed (lpm.h), at most
 * RELAY_MAX_MSG bytes. Encoding always emits `type` (js treats an absent type as malformed).
 */
#ifndef NATX_P2P_RELAY_MSG_H
#define NATX_P2P_RELAY_MSG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "peerid.h"

#define RELAY_HOP_PROTOCOL "/libp2p/circuit/relay/0.2.0/hop"
#define RELAY_STOP_PROTOCOL "/libp2p/circuit/relay/0.2.0/stop"

enum {
	RELAY_MAX_MSG = 4096, /* go's cap per message */
	RELAY_MAX_ADDRS = 8, /* addresses kept per peer / reservation (more are ignored) */
	RELAY_MAX_ADDR = 128, /* longest address kept (longer ones are ignored) */
	RELAY_MAX_VOUCHER = 1024,
};

/* HopMessage.Type and StopMessage.Type */
enum relay_hop_type { RELAY_HOP_RESERVE = 0, RELAY_HOP_CONNECT = 1, RELAY_HOP_STATUS = 2 };
enum relay_stop_type { RELAY_STOP_CONNECT = 0, RELAY_STOP_STATUS = 1 };

/* Status */
enum relay_status {
	RELAY_UNUSED = 0,
	RELAY_OK = 100,
	RELAY_RESERVATION_REFUSED = 200,
	RELAY_RESOURCE_LIMIT_EXCEEDED = 201,
	RELAY_PERMISSION_DENIED = 202,
	RELAY_CONNECTION_FAILED = 203,
	RELAY_NO_RESERVATION = 204,
	RELAY_MALFORMED_MESSAGE = 400,
	RELAY_UNEXPECTED_MESSAGE = 401,
};

/* struct relay_addrs - binary multiaddrs. */
struct relay_addrs {
	size_t n;
	size_t lens[RELAY_MAX_ADDRS];
	uint8_t b[RELAY_MAX_ADDRS][RELAY_MAX_ADDR];
};

/* struct relay_limit - Limit; @present false = no Limit field (the relay limits nothing). */
struct relay_limit {
	bool present;
	uint32_t duration_s; /* 0 = unlimited */
	uint64_t data; /* bytes per direction, 0 = unlimited */
};

/* struct relay_msg - a HopMessage or StopMessage (which one is the caller's context). */
struct relay_msg {
	int type; /* enum relay_hop_type or relay_stop_type */
	bool has_peer;
	struct peer_id peer;
	struct relay_addrs peer_addrs;
	bool has_rsvp; /* hop only */
	uint64_t rsvp_expire; /* UNIX seconds */
	struct relay_addrs rsvp_addrs;
	uint8_t voucher[RELAY_MAX_VOUCHER];
	size_t voucher_len; /* 0: none */
	struct relay_limit limit;
	bool has_status;
	uint32_t status; /* enum relay_status (unknown values are kept) */
};

/*
 * relay_hop_encode / relay_stop_encode - write @m length-prefixed into @out. Return 0 with
 * *@len, or -NATX_E_TOO_BIG (over @cap or RELAY_MAX_MSG).
 */
int relay_hop_encode(const struct relay_msg *m, uint8_t *out, size_t cap, size_t *len);
int relay_stop_encode(const struct relay_msg *m, uint8_t *out, size_t cap, size_t *len);

/*
 * relay_hop_decode / relay_stop_decode - parse one message body (without its length prefix).
 * Returns 0, -NATX_E_PROTO (not a protobuf, no type, a peer id that is not a valid multihash,
 * voucher too long), -NATX_E_TOO_BIG (over RELAY_MAX_MSG).
 */
int relay_hop_decode(struct relay_msg *m, const uint8_t *buf, size_t len);
int relay_stop_decode(struct relay_msg *m, const uint8_t *buf, size_t len);

/* relay_status_name - "OK", "NO_RESERVATION", ... ("UNKNOWN" otherwise). */
const char *relay_status_name(uint32_t status);

#endif
