/* SPDX-License-Identifier: MIT */
/*
 * Per-client token buckets. Each client key (e.g. "uid:1000", "ip:127.0.0.1") owns a bucket of
 * `burst` tokens refilled at `rate` tokens per second; a request takes one token. The table is
 * bounded (RATELIMIT_KEYS); when full, the least recently used bucket is reused, which can only
 * make a forgotten client less limited, never block a new one.
 */
#ifndef NATX_CTL_RATELIMIT_H
#define NATX_CTL_RATELIMIT_H

#include <stdint.h>

enum {
	RATELIMIT_KEYS = 256, /* clients tracked at once */
	RATELIMIT_KEY_MAX = 64, /* bytes of a key, NUL included; longer keys are truncated */
};

struct ratelimit_entry {
	char key[RATELIMIT_KEY_MAX];
	uint64_t millitokens; /* tokens * 1000 */
	uint64_t last_ms; /* last refill, ms on the injected clock */
};

struct ratelimit {
	uint32_t rate; /* tokens per second; 0 disables the limit */
	uint32_t burst; /* bucket size, tokens (>= 1 when rate > 0) */
	unsigned n; /* entries in use */
	struct ratelimit_entry e[RATELIMIT_KEYS];
};

/* ratelimit_init - empty table; @rate 0 lets everything through. */
void ratelimit_init(struct ratelimit *rl, uint32_t rate, uint32_t burst);

/* ratelimit_take - take one token for @key at @now (ms). 0, or -NATX_E_RATE_LIMITED. */
int ratelimit_take(struct ratelimit *rl, const char *key, uint64_t now);

#endif
