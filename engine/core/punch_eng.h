/* SPDX-License-Identifier: MIT */
/*
 * Engine punch sessions: the engine end of a natx UDP hole punch (bpf/natx_bpf_common.h, struct
 * natx_punch_hdr). A session is one unconnected UDP socket bound to the punch port (SO_REUSEADDR
 * and SO_REUSEPORT, so it can share the port with a forward's listeners), owned by one shard
 * (session id hash % shards) and served through that shard's io_uring: a multishot recvmsg from
 * the shard's UDP buffer ring, and a sendmsg from one of PUNCH_SLOTS slots per session. Every
 * valid PROBE carrying the session's id is answered with a PROBE_ACK (same id and seq, no auth
 * tail) to its source, from the address it was sent to, and the source is recorded as punched.
 * Datagrams without the punch magic are counted as data; punch-magic datagrams that do not
 * parse, or carry another session's id, are counted as bad and not answered.
 *
 * Steering: built with NATX_WITH_BPF and unless --steer kernel, the first session opens the
 * sk_lookup punch steering (bpf/punch_steer.h) under --punch-pin-root, registers each session's
 * socket and the peer flows given at open, so those flows reach the session's socket (and so
 * its shard) even when another socket or reuseport group on the port would win the normal
 * lookup. Otherwise ("none") a session only receives what the kernel's normal lookup gives it:
 * enough when it holds its port alone.
 *
 * Every function runs on the control thread unless it says otherwise.
 */
#ifndef NATX_ENGINE_PUNCH_ENG_H
#define NATX_ENGINE_PUNCH_ENG_H

#include <liburing.h>

#include <cjson/cJSON.h>

#include "engine.h"

/*
 * punch_eng_ctl - ctl commands "open" ({"sid","listen","peers"}), "close" ({"sid"}) and "ls"
 * with the request object @args; fills @reply. Returns NULL or a stable error code with @msg
 * set ("bad_request", "exists", "not_found", "addr_in_use", "internal").
 */
const char *punch_eng_ctl(struct engine *eng, const char *what, const cJSON *args, cJSON *reply,
			  char *msg, size_t msglen);

/*
 * punch_eng_steering - "sk_lookup" once the sk_lookup steering is open (with the first session),
 * "none" before that or when it is off or unavailable (punch_eng_json gives the reason).
 */
const char *punch_eng_steering(struct engine *eng);

/* punch_eng_json - "punch": {"steering","reason","pin_root","sessions":N} into @o. */
void punch_eng_json(struct engine *eng, cJSON *o);

/* punch_eng_free - after the shards have stopped: close every session and free. */
void punch_eng_free(struct engine *eng);

/* punch_eng_handle_cqe - shard thread: a UD_PUNCH completion (dir 0 recv, 1 send, 2 msg). */
void punch_eng_handle_cqe(struct shard *sh, struct io_uring_cqe *cqe);

/* punch_eng_shard_tick - shard thread: re-arm receives that ended. */
void punch_eng_shard_tick(struct shard *sh);

#endif
