/* SPDX-License-Identifier: MIT */
/*
 * mig_flow - one migratable flow of /natx/flow/1.0.0 (docs/migration.md), sans-IO: the host
 * owns the sockets and streams and feeds bytes in and out; this module decides what goes on
 * which path so that the application's byte stream is never lost, duplicated or reordered
 * while paths come and go.
 *
 * Send side: the application's bytes are copied into a ring of @cap bytes and stay there until
 * the peer ACKs them, so a lost path's unacknowledged bytes can be sent again on another one.
 * A full ring is back-pressure (mig_flow_write accepts less). New bytes go to one "active"
 * path; mig_flow_switch makes another path active at a clean point (MOVED on the old one).
 * Receive side: bytes are delivered strictly in flow order. A path whose next frame is ahead
 * of the delivered offset waits while another path can still fill the gap (the old path
 * draining after a switch); when none can, the frame is dropped and a NACK asks the sender to
 * go back (go-back-N), which also repairs a path that died with bytes in flight.
 *
 * Paths are indices 0..MIG_PATHS-1 chosen by the host. Every function returns 0 or -errno /
 * -NATX_E_PROTO; a protocol error means the flow must be reset (the peer is broken).
 */
#ifndef NATX_MIG_FLOW_H
#define NATX_MIG_FLOW_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "mig_wire.h"

enum {
	MIG_PATHS = 2, /* paths of one flow at a time: the old and the new */
	MIG_ACK_BYTES = 32 * 1024, /* delivered bytes that make an ACK due */
	MIG_RING_MIN = 4 * MIG_ACK_BYTES, /* smallest send ring that keeps a path busy */
};

enum mig_reset_reason {
	MIG_R_ABORT = 1, /* the application connection failed */
	MIG_R_NO_SERVICE = 2, /* OPEN named a service the responder does not expose */
	MIG_R_UNKNOWN_FLOW = 3, /* ATTACH named a flow the responder does not have */
	MIG_R_LIMIT = 4, /* the responder is out of flows */
	MIG_R_PROTOCOL = 5, /* the peer violated the protocol */
};

enum mig_path_state { MIG_P_NONE = 0, MIG_P_UP, MIG_P_MOVED, MIG_P_DEAD };

struct mig_path {
	uint8_t state; /* enum mig_path_state */
	bool peer_moved; /* the peer sent MOVED here: nothing more arrives on this path */
	bool rx_blocked; /* its next frame is ahead of rx_off and waits for another path */
	bool ack_due, nack_due, moved_due, fin_sent;
	uint64_t tx_next; /* next flow offset to send here (active path) */
	uint64_t moved_off; /* MOVED offset to send */
	uint64_t nack_off; /* offset of the last NACK queued here; UINT64_MAX none */
};

struct mig_stats {
	uint64_t dup_bytes; /* received again and dropped */
	uint64_t dropped_ahead; /* DATA frames dropped because nothing could fill the gap */
	uint64_t nacks_sent, nacks_rcvd;
	uint64_t resent_bytes; /* bytes sent again after a NACK or a lost path */
	uint64_t moves; /* mig_flow_switch calls */
};

struct mig_flow {
	uint8_t id[MIG_ID_LEN];
	uint8_t *ring; /* bytes [tx_acked, tx_end) at offset % cap */
	size_t cap;
	uint64_t tx_acked, tx_end;
	uint64_t tx_hi; /* highest offset ever sent: bytes below it are sent again */
	bool tx_shut; /* the application wrote its last byte: FIN at tx_end */
	int active; /* path new bytes go to; -1 when none is up */
	uint64_t rx_off; /* bytes delivered to the application */
	uint64_t rx_acked; /* rx_off when the last ACK was queued */
	bool rx_fin, rx_eof_done;
	uint64_t rx_fin_off;
	struct mig_path p[MIG_PATHS];
	struct mig_stats st;
};

/* mig_deliver_fn - in-order bytes for the application; @len 0 (and @buf NULL) is its EOF. */
typedef void (*mig_deliver_fn)(void *ctx, const uint8_t *buf, size_t len);

/* mig_flow_init - a flow with a send ring of @cap bytes (>= 1); -ENOMEM. */
int mig_flow_init(struct mig_flow *f, const uint8_t id[MIG_ID_LEN], size_t cap);

/* mig_flow_release - free what mig_flow_init allocated. */
void mig_flow_release(struct mig_flow *f);

/* mig_flow_write - copy up to @len application bytes in; returns how many fit (0 when full). */
size_t mig_flow_write(struct mig_flow *f, const void *buf, size_t len);

/* mig_flow_shutdown - the application half-closed: FIN follows its last byte. */
void mig_flow_shutdown(struct mig_flow *f);

/*
 * mig_path_up - path @idx is connected and both sides agreed on the flow (OPEN/ATTACH
 * answered); @peer_rx is the peer's delivered offset from its ATTACH (0 for a new flow), which
 * acknowledges that much. The first path up becomes active. -EINVAL for a bad index or a
 * path already up, -NATX_E_PROTO when @peer_rx is beyond what was written.
 */
int mig_path_up(struct mig_flow *f, unsigned int idx, uint64_t peer_rx);

/*
 * mig_flow_switch - make path @idx (up) the one new bytes go to. The old active path gets a
 * MOVED at its current send offset and carries nothing after it. -EINVAL when @idx is not
 * up or already active.
 */
int mig_flow_switch(struct mig_flow *f, unsigned int idx);

/*
 * mig_path_lost - path @idx is gone (reset, timed out, closed). If it was active, another up
 * path takes over from the last acknowledged offset; with none, the flow waits for one.
 */
void mig_path_lost(struct mig_flow *f, unsigned int idx);

/*
 * mig_path_output - frames due on path @idx into @out: ACK/NACK, MOVED, DATA (active path
 * only) and FIN. Returns bytes written (0: nothing to send now), never more than @cap.
 */
size_t mig_path_output(struct mig_flow *f, unsigned int idx, uint8_t *out, size_t cap);

/*
 * mig_path_input - frames received on path @idx. Consumes whole frames from @in and sets
 * *@used; stops early (rx_blocked) at a DATA frame that must wait for another path: call
 * again with the rest when another path delivered more, or after mig_path_lost of another
 * path (then the frame is dropped and NACKed). Delivers in-order bytes and
 * the EOF through @fn. -ECONNRESET on RESET, -NATX_E_PROTO on a malformed or impossible frame.
 */
int mig_path_input(struct mig_flow *f, unsigned int idx, const uint8_t *in, size_t len,
		   size_t *used, mig_deliver_fn fn, void *ctx);

/* mig_flow_tick - make an ACK due for delivered bytes not yet acknowledged (host timer). */
void mig_flow_tick(struct mig_flow *f);

/*
 * mig_path_finished - path @idx was switched away from on both sides and has nothing left to
 * send: the host may close its stream.
 */
bool mig_path_finished(const struct mig_flow *f, unsigned int idx);

/* mig_flow_done - both directions finished: FIN delivered, our FIN sent and acknowledged. */
bool mig_flow_done(const struct mig_flow *f);

#endif
