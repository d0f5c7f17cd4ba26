/* SPDX-License-Identifier: MIT */
/*
 * Injected environment of the p2p state machines (quicly style, style.md §14 rule 14): time and
 * randomness come from callbacks so protocol tests run two endpoints deterministically in one
 * process. The engine passes callbacks backed by CLOCK_MONOTONIC and crypto_random_bytes.
 */
#ifndef NATX_P2P_ENV_H
#define NATX_P2P_ENV_H

#include <stddef.h>
#include <stdint.h>

/* struct p2p_clock - monotonic milliseconds. */
struct p2p_clock {
	int64_t (*now_ms)(struct p2p_clock *self);
};

/* struct p2p_rng - fill @len bytes with secret-quality randomness (tests: a fixed stream). */
struct p2p_rng {
	void (*fill)(struct p2p_rng *self, void *buf, size_t len);
};

/* p2p_clock_system / p2p_rng_system - CLOCK_MONOTONIC and the BoringSSL CSPRNG. */
extern struct p2p_clock p2p_clock_system;
extern struct p2p_rng p2p_rng_system;

#endif
