/* SPDX-License-Identifier: MIT */
/*
 * p2p_key - natxd's libp2p identity file: an Ed25519 key in the libp2p PrivateKey protobuf
 * encoding (68 bytes: 08 01 12 40 seed||pub, what js-libp2p's privateKeyFromProtobuf reads),
 * created on first start with mode 0600 and reused afterwards, so the peer ID is stable.
 */
#ifndef NATX_CONTROL_P2P_KEY_H
#define NATX_CONTROL_P2P_KEY_H

#include <stddef.h>

enum { P2P_KEY_PEER_MAX = 100 };

/*
 * p2p_key_ensure - make sure @path holds a valid identity: load it, or create it (new random
 * key, written to a temporary file with mode 0600, fsync'ed, renamed into place) when it does
 * not exist. The peer ID text goes to @peer (P2P_KEY_PEER_MAX bytes). Returns 0; -EPERM when
 * the existing file is readable by group or others; -NATX_E_PROTO / -NATX_E_AUTH when it is
 * not a valid Ed25519 PrivateKey; -errno on I/O errors. @err gets one line on failure.
 */
int p2p_key_ensure(const char *path, char *peer, char *err, size_t errlen);

#endif
