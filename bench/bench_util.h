/* SPDX-License-Identifier: MIT */
/*
 * Small helpers shared by the bench/ load tools (not part of natx itself): numeric address
 * parsing, a monotonic clock, option parsing and the open-file limit. Every function returns
 * 0 or -errno unless its comment says otherwise; nothing here allocates.
 */
#ifndef NATX_BENCH_UTIL_H
#define NATX_BENCH_UTIL_H

#include <stdint.h>
#include <sys/socket.h>

/*
 * bench_addr_parse - parse a numeric "a.b.c.d:port" or "[v6]:port" into @ss/@len.
 * Names are not resolved: the tools only ever talk to loopback. Returns 0 or -EINVAL.
 */
int bench_addr_parse(const char *text, struct sockaddr_storage *ss, socklen_t *len);

/* bench_addr_port - the port of @ss in host order (0 for an unknown family). */
uint16_t bench_addr_port(const struct sockaddr_storage *ss);

/* bench_now_ns - CLOCK_MONOTONIC in nanoseconds. */
uint64_t bench_now_ns(void);

/*
 * bench_u64_parse - parse a decimal unsigned number with an optional K/M/G suffix (powers of
 * 1024) into @out, rejecting trailing garbage and values above @max. Returns 0 or -EINVAL.
 */
int bench_u64_parse(const char *text, uint64_t max, uint64_t *out);

/*
 * bench_nofile_raise - raise RLIMIT_NOFILE (soft, and hard when privileged) to at least @want.
 * Returns 0, or -errno when the limit stays below @want.
 */
int bench_nofile_raise(uint64_t want);

/* bench_fd_nonblock_set - set O_NONBLOCK on @fd. Returns 0 or -errno. */
int bench_fd_nonblock_set(int fd);

/*
 * bench_pattern_fill - fill @buf with the deterministic byte stream of (@seed, @offset): byte i
 * of the stream is a function of seed and (offset + i) only, so a receiver can check any slice.
 */
void bench_pattern_fill(uint8_t *buf, size_t len, uint64_t seed, uint64_t offset);

#endif
