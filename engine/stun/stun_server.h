/* SPDX-License-Identifier: MIT */
/*
 * User-space STUN Binding responder: the fallback when the XDP reflector is not loaded, and
 * the path for what XDP passes up (long requests, 420 answers). One UDP socket, batches of
 * recvmmsg/sendmmsg, the answer policy of stun_wire.h and the per-source rate limit of
 * stun_rl.h. Counters use the indices and meanings of enum natx_stun_counter
 * (bpf/natx_bpf_common.h); here PASSED means "received, not answered" (not STUN, or STUN that
 * needs no answer) and a 420 error response counts as ANSWERED.
 */
#ifndef NATX_STUN_SERVER_H
#define NATX_STUN_SERVER_H

#include <stdint.h>
#include <sys/socket.h>

#include "natx_bpf_common.h"
#include "stun_msg.h"
#include "stun_rl.h"

#define STUN_SERVER_BATCH 64
#define STUN_SERVER_MTU 2048 /* receive buffer per datagram; longer ones are truncated: malformed */

struct stun_server {
	int fd;
	struct stun_rl rl;
	uint64_t counters[NATX_STUN_CNT_MAX];
};

/*
 * stun_sockaddr_parse - "IPv4:PORT" or "[IPv6]:PORT" into @ss/@len. Returns 0 or -EINVAL.
 */
int stun_sockaddr_parse(const char *s, struct sockaddr_storage *ss, socklen_t *len);

/* stun_sockaddr_format - "ip:port" / "[ip]:port" into @buf (at least 64 bytes). */
void stun_sockaddr_format(const struct sockaddr *sa, char *buf, size_t len);

/* stun_addr_from_sockaddr - STUN address of a peer; IPv4-mapped IPv6 becomes IPv4. */
int stun_addr_from_sockaddr(struct stun_addr *a, const struct sockaddr *sa);

/*
 * stun_server_respond - the whole per-datagram decision, without I/O: judge @in, charge the
 * source's bucket at @now_ns, and build the answer in @out. Returns 1 with *@outlen set when
 * an answer must be sent, 0 when not; updates the counters either way.
 */
int stun_server_respond(struct stun_server *s, const uint8_t *in, size_t inlen,
			const struct sockaddr *src, uint64_t now_ns, uint8_t *out, size_t cap,
			size_t *outlen);

/*
 * stun_server_init - bind a UDP socket on @addr (an IPv6 wildcard also takes IPv4) and set up
 * a limiter of @rate/@burst (0 = unlimited / one second's worth). Returns 0 or -errno.
 */
int stun_server_init(struct stun_server *s, const struct sockaddr *addr, socklen_t len,
		     uint32_t rate, uint32_t burst);

/*
 * stun_server_poll - wait up to @timeout_ms for datagrams, answer one batch. Returns the
 * number of datagrams handled (0 on timeout or EINTR) or -errno.
 */
int stun_server_poll(struct stun_server *s, int timeout_ms);

/* stun_server_cleanup - close the socket, free the limiter. Safe after a failed init. */
void stun_server_cleanup(struct stun_server *s);

#endif
