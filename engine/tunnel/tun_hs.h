/* SPDX-License-Identifier: MIT */
/*
 * Sans-IO handshake state machines of the tunnel protocol (docs/tunnel-protocol.md).
 *
 * The caller owns the sockets: it cuts frames with tun_frame_parse(), hands each to
 * *_consume(), and sends whatever the call appended to the output writer. No call blocks,
 * allocates or reads a clock; randomness comes from an injected tun_random_fn.
 *
 * Control channel:  C HELLO -> S CHALLENGE(nonce_s) -> C AUTH(service, cred, nonce_c, mac_c)
 *                   -> S AUTH_OK(session id, heartbeat, mac_s) | REFUSE(reason)
 *   mac_c   = HMAC(K, "natx-tun/1 ctl-client" || ver || nonce_s || AUTH payload minus mac)
 *   mac_s   = HMAC(K, "natx-tun/1 ctl-server" || ver || nonce_s || nonce_c || id || hb)
 *   session = HMAC(K, "natx-tun/1 session" || nonce_s || nonce_c)      (never sent)
 *   K is the service token (TUN_CRED_TOKEN) or the L402 payment preimage (TUN_CRED_L402,
 *   whose macaroon travels in AUTH; the preimage never does).
 * Data channel:     S CREATE_DATA(nonce_ch) on the control channel, then on a new connection
 *                   C HELLO -> S CHALLENGE(nonce_s') -> C DATA_AUTH(id, nonce_ch, mac_d)
 *                   -> S DATA_OK(mac_o) | REFUSE
 *   mac_d   = HMAC(session, "natx-tun/1 data-client" || ver || nonce_s' || id || nonce_ch)
 *   mac_o   = HMAC(session, "natx-tun/1 data-server" || ver || nonce_s' || nonce_ch)
 *   nonce_ch is single-use (consumed on success), nonce_s' is fresh per connection: a
 *   recorded handshake cannot be replayed on either channel.
 */
#ifndef NATX_TUN_HS_H
#define NATX_TUN_HS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "natx/rd.h"
#include "tun_wire.h"

enum {
	TUN_KEY_MAX = 256, /* longest credential key (token) accepted */
	TUN_PENDING_MAX = 64, /* outstanding CREATE_DATA nonces per session */
	TUN_SESSION_KEY_LEN = 32,
};

/* tun_random_fn - fill buf with len random bytes; 0 or -errno. tun_random() is the default. */
typedef int (*tun_random_fn)(void *arg, void *buf, size_t len);

/* tun_reason_err - the 0/-errno/-NATX_E_* result a refusal reason maps to. */
int tun_reason_err(unsigned int reason);

/* ---- sessions (server side, one per authenticated control channel) ---- */

struct tun_session {
	uint8_t id[TUN_SESSION_ID_LEN]; /* public lookup handle */
	uint8_t key[TUN_SESSION_KEY_LEN]; /* session key; never on the wire */
	uint8_t pending[TUN_PENDING_MAX][TUN_NONCE_LEN]; /* outstanding channel nonces (ring) */
	uint64_t pending_valid; /* bit i: pending[i] is live */
	unsigned int pending_next; /* ring position of the next insertion */
};

/*
 * tun_session_data_request - append a CREATE_DATA frame with a fresh single-use nonce and
 * remember the nonce. When TUN_PENDING_MAX nonces are outstanding the oldest is forgotten
 * (its channel, if it ever comes, is refused as a replay). Returns 0, -EIO (no randomness)
 * or -NATX_E_TOO_BIG (out full; nothing remembered).
 */
int tun_session_data_request(struct tun_session *s, tun_random_fn rnd, void *rnd_arg,
			     struct wr *out);

/* tun_session_pending - number of outstanding channel nonces. */
unsigned int tun_session_pending(const struct tun_session *s);

/* tun_session_cleanup - wipe keys and nonces. */
void tun_session_cleanup(struct tun_session *s);

/* ---- server handshake ---- */

struct tun_server_ops {
	tun_random_fn random;
	void *random_arg;
	/*
	 * cred_get - the key K for a control channel: kind, service name and credential blob
	 * are as received (borrowed). Fill key (at most TUN_KEY_MAX) and *key_len and return 0,
	 * or return a positive enum tun_reason to refuse (UNKNOWN_SERVICE, AUTH, PAYMENT,
	 * EXPIRED, QUOTA, LIMIT...). For TUN_CRED_L402 natxd verifies the macaroon (signature
	 * and caveats) and returns the invoice preimage as the key.
	 */
	int (*cred_get)(void *arg, uint8_t kind, const uint8_t *service, size_t service_len,
			const uint8_t *cred, size_t cred_len, uint8_t *key, size_t *key_len);
	/* session_find - the live session with this id, or NULL. */
	struct tun_session *(*session_find)(void *arg, const uint8_t id[TUN_SESSION_ID_LEN]);
	void *arg;
	uint16_t heartbeat_interval; /* seconds, announced in AUTH_OK */
	uint16_t heartbeat_timeout; /* seconds */
};

enum tun_hs_state {
	TUN_HS_INIT = 0,
	TUN_HS_WAIT_HELLO,
	TUN_HS_WAIT_CHALLENGE,
	TUN_HS_WAIT_AUTH,
	TUN_HS_WAIT_AUTH_OK,
	TUN_HS_WAIT_DATA_AUTH,
	TUN_HS_WAIT_DATA_OK,
	TUN_HS_DONE,
	TUN_HS_FAILED,
};

struct tun_server {
	const struct tun_server_ops *ops;
	enum tun_hs_state state;
	uint8_t chan; /* enum tun_chan, from HELLO */
	uint8_t version; /* negotiated */
	uint8_t server_nonce[TUN_NONCE_LEN];
	uint8_t client_nonce[TUN_NONCE_LEN];
	uint8_t kind; /* control: credential kind used */
	uint8_t service_len;
	uint8_t service[TUN_SERVICE_MAX + 1]; /* control: NUL-terminated service name (set from
						 * AUTH, also when it is refused) */
	uint8_t session_id[TUN_SESSION_ID_LEN]; /* control: new session; data: joined session */
	uint8_t session_key[TUN_SESSION_KEY_LEN]; /* control: derived session key */
	struct tun_session *session; /* data: the session joined, or named by a refused
				      * DATA_AUTH (borrowed) */
	uint8_t reason; /* refusal reason once FAILED */
};

/* tun_server_init - a server handshake waiting for HELLO. ops is borrowed. */
void tun_server_init(struct tun_server *s, const struct tun_server_ops *ops);

/*
 * tun_server_consume - feed one frame. Returns 0 (reply appended to out, if any; wait for
 * the next frame), 1 (established: control -> service/kind/session_id/session_key are set,
 * create a struct tun_session with tun_session_init(); data -> s->session is the session
 * joined), or a negative result after appending a REFUSE frame (s->reason says why; send it
 * and close). -NATX_E_TOO_BIG when out cannot hold the reply (the handshake is then FAILED;
 * give out at least TUN_HDR_LEN + 64 bytes). Calling it after DONE/FAILED returns -EINVAL.
 */
int tun_server_consume(struct tun_server *s, const struct tun_frame *f, struct wr *out)
	__attribute__((warn_unused_result));

/* tun_session_init - a session from an established control handshake. */
void tun_session_init(struct tun_session *sess, const struct tun_server *s);

/* tun_server_cleanup - wipe secrets. */
void tun_server_cleanup(struct tun_server *s);

/* ---- client handshake ---- */

struct tun_client {
	enum tun_hs_state state;
	uint8_t chan;
	uint8_t version;
	tun_random_fn random;
	void *random_arg;
	uint8_t kind;
	uint8_t service_len;
	uint8_t service[TUN_SERVICE_MAX];
	const uint8_t *cred; /* borrowed; must outlive the handshake */
	uint16_t cred_len;
	uint8_t key[TUN_KEY_MAX]; /* K (copied) */
	size_t key_len;
	uint8_t server_nonce[TUN_NONCE_LEN];
	uint8_t client_nonce[TUN_NONCE_LEN];
	uint8_t channel_nonce[TUN_NONCE_LEN]; /* data */
	uint8_t session_id[TUN_SESSION_ID_LEN]; /* control: result; data: input */
	uint8_t session_key[TUN_SESSION_KEY_LEN]; /* control: result; data: input */
	uint16_t heartbeat_interval, heartbeat_timeout; /* control: from AUTH_OK */
	struct tun_refuse refused; /* set when the server refused */
};

/*
 * tun_client_control_init - a control-channel client for service with credential kind,
 * blob cred (borrowed; empty for tokens) and key K (copied). Returns 0 or -EINVAL (bad
 * service name, key too long or empty, blob too long or inconsistent with kind).
 */
int tun_client_control_init(struct tun_client *c, const char *service, enum tun_cred_kind kind,
			    const uint8_t *cred, size_t cred_len, const void *key, size_t key_len,
			    tun_random_fn rnd, void *rnd_arg);

/* tun_client_data_init - a data-channel client joining a session with a CREATE_DATA nonce. */
void tun_client_data_init(struct tun_client *c, const uint8_t session_id[TUN_SESSION_ID_LEN],
			  const uint8_t session_key[TUN_SESSION_KEY_LEN],
			  const uint8_t channel_nonce[TUN_NONCE_LEN]);

/* tun_client_hello - append HELLO (first frame on the connection). */
int tun_client_hello(struct tun_client *c, struct wr *out);

/*
 * tun_client_consume - feed one frame from the server. Returns 0 (reply appended), 1
 * (established; control: session_id/session_key/heartbeat set), or negative: the server's
 * REFUSE mapped by tun_reason_err() (c->refused holds the reason), -NATX_E_AUTH when the
 * server's proof is wrong (it does not know K), -NATX_E_PROTO for unexpected frames,
 * -EPROTONOSUPPORT when the server picked a version we do not speak.
 */
int tun_client_consume(struct tun_client *c, const struct tun_frame *f, struct wr *out)
	__attribute__((warn_unused_result));

/* tun_client_cleanup - wipe secrets. */
void tun_client_cleanup(struct tun_client *c);

#endif
