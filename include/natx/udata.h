/* SPDX-License-Identifier: MIT */
/*
 * io_uring user_data packing (style.md rule 7). user_data is never a bare pointer: it is a
 * packed (op, dir, shard, buffer id, slot) word so a completion names what it completes
 * without the engine trusting memory the kernel hands back.
 *
 *   63      58 57 56 55     48 47            32 31                             0
 *  +----------+-----+---------+----------------+--------------------------------+
 *  |   op (6) | dir | shard(8)|   bid (16)     |          slot (32)             |
 *  +----------+-----+---------+----------------+--------------------------------+
 *
 * op: enum udata_op. dir: 0..3 (for flows: which socket/direction). shard: the shard that
 * sent a cross-ring message or owns the request. bid: buffer id for sends. slot: flow,
 * listener or forward index, or a message argument.
 */
#ifndef NATX_UDATA_H
#define NATX_UDATA_H

#include <stdint.h>

enum udata_op {
	UD_NONE = 0, /* completions the engine ignores (cancel results, nops) */
	UD_ACCEPT, /* multishot accept on a TCP listener, slot = listener index */
	UD_CONNECT, /* upstream connect, slot = flow */
	UD_LINK_TIMEOUT, /* connect deadline linked to UD_CONNECT, slot = flow */
	UD_RECV, /* multishot recv on flow socket @dir, slot = flow */
	UD_SEND, /* send of buffer @bid towards the peer of @dir, slot = flow */
	UD_SEND_ZC, /* zero-copy send of buffer @bid; a NOTIF CQE follows */
	UD_POLL, /* splice mode: readiness of socket @dir (dir|2 = POLLOUT), slot = flow */
	UD_UDP_RECV, /* multishot recvmsg on a UDP listener, slot = listener index */
	UD_UDP_UP_SEND, /* datagram from client to upstream, bid, slot = session */
	UD_UDP_CL_SEND, /* datagram from upstream back to the client, bid, slot = session */
	UD_TICK, /* periodic timer */
	UD_MSG, /* control message received through MSG_RING; dir = command */
	UD_ACK, /* a shard's reply to the control ring; dir unused, slot = seq */
	UD_P2P, /* libp2p (engine/core/p2p_host.h): dir 0 accept, 1 recv, 2 send/connect, 3 msg */
	UD_STUN, /* STUN responder (stun_eng.c): dir 0 recvmsg, 1 sendmsg of slot, 2 start/stop */
	UD_TUN, /* tunnel (engine/core/tun_eng.h): dir 0 POLLIN, 1 POLLOUT, 3 wake; bid = gen */
	UD_PUNCH, /* punch sessions (punch_eng.h): dir 0 recvmsg, 1 sendmsg, 2 start/stop */
	UD_OP_MAX,
};

#define UDATA_OP_SHIFT 58
#define UDATA_DIR_SHIFT 56
#define UDATA_SHARD_SHIFT 48
#define UDATA_BID_SHIFT 32

/* udata_pack - build a user_data word. Fields wider than their slot are truncated. */
static inline uint64_t udata_pack(enum udata_op op, unsigned int dir, unsigned int shard,
				  unsigned int bid, uint32_t slot)
{
	return (uint64_t)(op & 0x3f) << UDATA_OP_SHIFT | (uint64_t)(dir & 0x3) << UDATA_DIR_SHIFT |
	       (uint64_t)(shard & 0xff) << UDATA_SHARD_SHIFT |
	       (uint64_t)(bid & 0xffff) << UDATA_BID_SHIFT | slot;
}

static inline enum udata_op udata_op(uint64_t ud)
{
	return (enum udata_op)(ud >> UDATA_OP_SHIFT);
}

static inline unsigned int udata_dir(uint64_t ud)
{
	return (unsigned int)(ud >> UDATA_DIR_SHIFT) & 0x3;
}

static inline unsigned int udata_shard(uint64_t ud)
{
	return (unsigned int)(ud >> UDATA_SHARD_SHIFT) & 0xff;
}

static inline unsigned int udata_bid(uint64_t ud)
{
	return (unsigned int)(ud >> UDATA_BID_SHIFT) & 0xffff;
}

static inline uint32_t udata_slot(uint64_t ud)
{
	return (uint32_t)ud;
}

#endif
