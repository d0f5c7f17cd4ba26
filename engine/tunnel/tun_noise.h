/* SPDX-License-Identifier: MIT */
/*
 * tun_noise - the tunnel's optional encrypted transport (docs/tunnel-protocol.md "Encrypted
 * transport"), sans-IO: Noise_NK_25519_ChaChaPoly_SHA256 with the server's static key pinned
 * by the client, carried in one NOISE frame each way before HELLO, then every byte of the
 * connection (the tunnel frames, and after START_TCP the raw stream) inside Noise transport
 * messages: u16 big-endian length (16..65535) || ciphertext || 16-byte tag.
 *
 * NOISE frame payload (both directions):
 *   tver (u8, 1) | pattern (u8, 1 = NK_25519_ChaChaPoly_SHA256) | reserved (u16, 0)
 *   | Noise handshake message (48 bytes: ephemeral key || tag of the empty payload)
 * The prologue is TUN_NX_PROLOGUE || tver || pattern, so neither byte can be changed in flight.
 *
 * The Noise primitives are engine/p2p/noise.c's (shared with libp2p); nothing here allocates.
 */
#ifndef NATX_TUN_NOISE_H
#define NATX_TUN_NOISE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "noise.h"
#include "tun_hs.h"
#include "tun_wire.h"

#define TUN_NX_PROLOGUE "natx-tun noise/1"

enum {
	TUN_NX_TVER = 1, /* transport version in the NOISE frame */
	TUN_NX_PATTERN_NK = 1, /* Noise_NK_25519_ChaChaPoly_SHA256 */
	TUN_NX_KEY_LEN = NOISE_DH, /* X25519 private and public keys */
	TUN_NX_HS_MSG = NOISE_DH + NOISE_TAG, /* NK message 1 and 2 with an empty payload */
	TUN_NX_FRAME_PAYLOAD = 4 + TUN_NX_HS_MSG, /* 52 */
	TUN_NX_FRAME_LEN = TUN_HDR_LEN + TUN_NX_FRAME_PAYLOAD, /* 56 bytes on the wire */
	TUN_NX_LEN = NOISE_LEN_PREFIX, /* transport message length prefix */
	TUN_NX_OVERHEAD = NOISE_LEN_PREFIX + NOISE_TAG, /* 18 bytes per transport message */
	TUN_NX_PLAIN_MAX = NOISE_MAX_PLAINTEXT, /* 65519 plaintext bytes per message */
	TUN_NX_MSG_MAX = NOISE_LEN_PREFIX + NOISE_MAX_MSG, /* 65537 bytes on the wire */
};

/* struct tun_nk - one NK handshake (client or server side). Secrets inside: cleanup it. */
struct tun_nk {
	struct noise_hs hs;
	bool server;
};

/*
 * tun_nk_client_start - begin a handshake towards a server whose static public key is
 * @server_pub (the pinned key) and append the NOISE frame with message 1 to @w. 0,
 * -NATX_E_TOO_BIG (no room), or the error of @rnd.
 */
int tun_nk_client_start(struct tun_nk *nk, const uint8_t server_pub[TUN_NX_KEY_LEN],
			tun_random_fn rnd, void *rnd_arg, struct wr *w);

/* tun_nk_server_init - a server handshake with static private key @server_priv. 0 or @rnd's. */
int tun_nk_server_init(struct tun_nk *nk, const uint8_t server_priv[TUN_NX_KEY_LEN],
		       tun_random_fn rnd, void *rnd_arg);

/*
 * tun_nk_server_consume - the client's NOISE frame @f: on success append the reply NOISE frame
 * (message 2) to @w, and the handshake is complete (tun_nk_split). Errors: -NATX_E_PROTO
 * (not a NOISE frame, bad length or reserved bits), -EPROTONOSUPPORT (unknown transport
 * version or pattern), -EKEYREJECTED (message 1 does not decrypt: the client pinned another
 * server key), -NATX_E_TOO_BIG (no room in @w).
 */
int tun_nk_server_consume(struct tun_nk *nk, const struct tun_frame *f, struct wr *w);

/*
 * tun_nk_client_consume - the server's answer @f: NOISE (message 2) completes the handshake
 * (0); REFUSE gives tun_reason_err of its reason (noise_unavailable: -EPROTONOSUPPORT,
 * noise_key: -EKEYREJECTED) with the reason in *@reason; message 2 that does not decrypt is
 * -EKEYREJECTED (the peer does not hold the pinned key's private half); anything else
 * -NATX_E_PROTO / -EPROTONOSUPPORT.
 */
int tun_nk_client_consume(struct tun_nk *nk, const struct tun_frame *f, uint8_t *reason);

/* tun_nk_split - the transport ciphers after a complete handshake; wipes the handshake. */
int tun_nk_split(struct tun_nk *nk, struct noise_cipher *tx, struct noise_cipher *rx);

/* tun_nk_cleanup - wipe the handshake state. */
void tun_nk_cleanup(struct tun_nk *nk);

/*
 * tun_nx_seal - one transport message in place: @msg holds @plen (<= TUN_NX_PLAIN_MAX)
 * plaintext bytes at @msg + TUN_NX_LEN and room for TUN_NX_OVERHEAD more; on return
 * @msg[0 .. plen + TUN_NX_OVERHEAD) is the message. 0, -NATX_E_TOO_BIG, -EOVERFLOW.
 */
int tun_nx_seal(struct noise_cipher *tx, uint8_t *msg, size_t plen);

/* One opened transport message: plaintext at buf + TUN_NX_LEN, @total bytes to consume. */
struct tun_nx_msg {
	uint8_t *pt;
	size_t len; /* plaintext bytes (0 = an empty message) */
	size_t total; /* TUN_NX_LEN + ciphertext + tag */
};

/*
 * tun_nx_open - cut the first transport message from the received bytes @buf[0..@len) and
 * decrypt it in place. 0 with @m, -EAGAIN (incomplete: *@need, when not NULL, gets the bytes
 * the message needs in total, at most TUN_NX_MSG_MAX), -NATX_E_PROTO (declared length below
 * a tag), -EBADMSG (tampered, reordered or replayed: the connection must be dropped).
 */
int tun_nx_open(struct noise_cipher *rx, uint8_t *buf, size_t len, struct tun_nx_msg *m,
		size_t *need);

/* tun_nx_need - bytes the first message of @buf[0..@len) needs in total (2 when unknown). */
size_t tun_nx_need(const uint8_t *buf, size_t len);

/*
 * tun_nx_key_parse - a 32-byte key as 64 hex digits or standard base64 (44 characters with
 * '=' or 43 without). 0 or -EINVAL.
 */
int tun_nx_key_parse(const char *text, uint8_t out[TUN_NX_KEY_LEN]);

/* tun_nx_key_hex - @key as 64 lowercase hex digits and a NUL into @out. */
void tun_nx_key_hex(const uint8_t key[TUN_NX_KEY_LEN], char out[2 * TUN_NX_KEY_LEN + 1]);

/* tun_nx_pubkey - the X25519 public key of @priv. */
void tun_nx_pubkey(uint8_t pub[TUN_NX_KEY_LEN], const uint8_t priv[TUN_NX_KEY_LEN]);

#endif
