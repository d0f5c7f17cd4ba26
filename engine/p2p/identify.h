/* SPDX-License-Identifier: MIT */
/*
 * identify (/ipfs/id/1.0.0, /ipfs/id/push/1.0.0) and ping (/ipfs/ping/1.0.0) codecs
 * (libp2p/specs identify/README.md, ping/ping.md).
 *
 * Identify messages are length-delimited protobufs (uvarint length || Identify), at most
 * IDENTIFY_MAX_MSG bytes each and IDENTIFY_MAX_MSGS per stream; the sender closes its side when
 * done. Decoding merges into a struct identify_record (fields present replace earlier ones, as
 * identify push requires). Addresses are kept as raw bytes even when their protocols are
 * unknown here (js may advertise /ws, /webrtc...), up to IDENTIFY_MAX_ADDRS; protocol strings
 * up to IDENTIFY_MAX_PROTOS.
 */
#ifndef NATX_P2P_IDENTIFY_H
#define NATX_P2P_IDENTIFY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "peerid.h"

#define IDENTIFY_PROTOCOL "/ipfs/id/1.0.0"
#define IDENTIFY_PUSH_PROTOCOL "/ipfs/id/push/1.0.0"
#define IDENTIFY_PROTOCOL_VERSION "ipfs/0.1.0"
#define PING_PROTOCOL "/ipfs/ping/1.0.0"

enum {
	IDENTIFY_MAX_MSG = 8192, /* js and go limit per message */
	IDENTIFY_MAX_MSGS = 10, /* messages merged per stream */
	IDENTIFY_MAX_ADDRS = 32,
	IDENTIFY_MAX_PROTOS = 64,
	IDENTIFY_MAX_STR = 256, /* longer agent/protocol strings are rejected */
	IDENTIFY_MAX_BYTES = 256, /* longest address/key kept */
	PING_LEN = 32,
};

/* struct identify_msg - what we send; every pointer is borrowed. */
struct identify_msg {
	const char *protocol_version;
	const char *agent_version;
	const uint8_t *pubkey; /* PublicKey protobuf */
	size_t pubkey_len;
	const uint8_t *const *listen_addrs; /* binary multiaddrs */
	const size_t *listen_addr_lens;
	size_t n_listen_addrs;
	const char *const *protocols;
	size_t n_protocols;
	const uint8_t *observed; /* binary multiaddr of the receiver, or NULL */
	size_t observed_len;
};

/* struct identify_record - what the remote told us (heap parts freed by _cleanup). */
struct identify_record {
	char *protocol_version;
	char *agent_version;
	uint8_t *pubkey;
	size_t pubkey_len;
	uint8_t *observed;
	size_t observed_len;
	uint8_t *addrs[IDENTIFY_MAX_ADDRS];
	size_t addr_lens[IDENTIFY_MAX_ADDRS];
	size_t n_addrs;
	char *protocols[IDENTIFY_MAX_PROTOS];
	size_t n_protocols;
	bool has_signed_record; /* a signedPeerRecord was present (not verified here) */
};

/*
 * identify_encode - write one delimited Identify message into @out. Returns 0 with *@len, or
 * -NATX_E_TOO_BIG when it exceeds @cap or IDENTIFY_MAX_MSG.
 */
int identify_encode(const struct identify_msg *m, uint8_t *out, size_t cap, size_t *len);

/*
 * identify_decode - parse all delimited messages in @buf (everything the peer sent before its
 * FIN) and merge them into @rec. Returns 0, -NATX_E_PROTO (malformed, truncated, too many
 * messages, string too long), -NATX_E_TOO_BIG (a message over IDENTIFY_MAX_MSG), -ENOMEM.
 */
int identify_decode(struct identify_record *rec, const uint8_t *buf, size_t len);

/*
 * identify_check_peer - the record's public key must be present and hash to @peer
 * (js rejects identify otherwise). Returns 0, -NATX_E_PROTO (no key), -EKEYREJECTED.
 */
int identify_check_peer(const struct identify_record *rec, const struct peer_id *peer);

/* identify_has_protocol - true when the remote listed @proto. */
bool identify_has_protocol(const struct identify_record *rec, const char *proto);

/* identify_record_cleanup - free the record's heap parts and zero it. */
void identify_record_cleanup(struct identify_record *rec);

#endif
