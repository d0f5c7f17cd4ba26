/* SPDX-License-Identifier: MIT */
/*
 * tun_eng - the tunnel data plane inside the engine (docs/tunnel.md): server (relay) and
 * client (node) sides of the protocol in engine/tunnel/ (docs/tunnel-protocol.md).
 *
 * Threads: all tunnel sockets live on shard 0. The control thread (tunnel.* ctl commands)
 * creates and binds sockets and edits the service table under tun->lock, then wakes shard 0
 * with a MSG_RING (UD_TUN, dir 3); shard 0 takes the same lock around every tunnel event and
 * tick. Once a visitor and a data channel are paired (TCP), the two descriptors become an
 * ordinary engine flow (tcp.c: splice or uring mode) and the lock is no longer involved.
 *
 * Tunnel sockets other than flows ("conns": listeners, control channels, handshaking or
 * pooled data channels, waiting visitors, UDP channels and sessions) are driven by one-shot
 * POLL_ADDs and non-blocking syscalls. user_data: op UD_TUN, dir 0 = POLLIN (or a NOP when
 * decrypted input is already buffered), 1 = POLLOUT, 2 = kick (a NOP: run the conn again,
 * tun_conn_kick), 3 = wake; bid = the conn's generation, slot = conn index. A conn that is closed or handed
 * to a flow gets its polls removed and its generation bumped, so late completions are ignored.
 */
#ifndef NATX_ENGINE_TUN_ENG_H
#define NATX_ENGINE_TUN_ENG_H

#include <cjson/cJSON.h>
#include <liburing.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>

#include "tunnel/tun_hs.h"
#include "tunnel/tun_live.h"
#include "tunnel/tun_noise.h"

struct engine;
struct shard;
struct forward;

enum {
	TUN_SVC_MAX = 64, /* services per engine (both roles) */
	TUN_CONN_MAX = 8192, /* tunnel sockets on shard 0 (not counting flows) */
	TUN_UCH_MAX = 8, /* UDP data channels per service */
	TUN_USESS_MAX = 1024, /* UDP sessions per service */
	TUN_CTRL_BUF = 4096, /* control channel output buffer (64 CREATE_DATA = 2304 bytes) */
	TUN_UCH_BUF = 256 * 1024, /* UDP data channel output buffer */
	TUN_KEY_TEXT_MAX = TUN_KEY_MAX,
};

enum tun_role { TUN_ROLE_SERVER = 1, TUN_ROLE_CLIENT = 2 };
enum tun_svc_type { TUN_SVC_TCP = 1, TUN_SVC_UDP = 2 };
enum tun_svc_state { TUN_SS_FREE = 0, TUN_SS_NEW, TUN_SS_ACTIVE, TUN_SS_REMOVING };

/* Conn kinds. */
enum tun_conn_kind {
	TC_FREE = 0,
	TC_SRV_LISTEN, /* server: control/data channel listener */
	TC_SRV_HS, /* server: accepted, handshake running */
	TC_SRV_CTRL, /* server: authenticated control channel */
	TC_SRV_POOL, /* server: authenticated TCP data channel, idle in the pool */
	TC_SRV_UCH, /* server: UDP data channel */
	TC_PUB_TCP, /* server: a service's public TCP listener */
	TC_PUB_UDP, /* server: a service's public UDP socket */
	TC_VISITOR, /* server: accepted visitor waiting for a data channel */
	TC_CLI_CTRL, /* client: control channel (connecting, handshake, up) */
	TC_CLI_DATA, /* client: data channel (connecting, handshake, waiting for START) */
	TC_CLI_LOCAL, /* client: connect to the local service running (data channel in aux) */
	TC_CLI_UCH, /* client: UDP data channel */
	TC_CLI_USESS, /* client: one UDP session's socket towards the local service */
	TC_NXB_PLAIN, /* encrypted TCP flow (tun_noise.c): the visitor / local service side */
	TC_NXB_NOISE, /* encrypted TCP flow: the data channel side (Noise transport) */
};

/* Server transports (tunnel.server "transport"). */
enum tun_transport {
	TUN_TRANSPORT_PLAIN = 0, /* plaintext only (a NOISE frame gets REFUSE noise_unavailable) */
	TUN_TRANSPORT_NOISE = 1, /* Noise only (a plaintext HELLO gets REFUSE noise_required) */
	TUN_TRANSPORT_BOTH = 2, /* whatever the client starts with */
};

/*
 * struct tun_nx - the Noise transport of one conn (tun_noise.c). Received ciphertext is
 * opened in place in @raw; sealed output waits in @ct. Secrets inside: tun_nx_free wipes.
 */
struct tun_nx {
	struct tun_nk *nk; /* handshake, until @on */
	struct noise_cipher tx, rx;
	bool on; /* transport keys in place: out/in go through the ciphers */
	bool fin; /* the peer sent the authenticated end of stream (an empty message) */
	uint8_t *raw; /* received bytes: raw[raw_off..raw_len) not yet opened */
	uint32_t raw_off, raw_len, raw_cap;
	uint8_t *pt; /* opened plaintext not yet consumed (inside raw, before raw_off) */
	uint32_t pt_len;
	uint8_t *ct; /* bytes to send: ct[ct_off..ct_len) */
	uint32_t ct_off, ct_len, ct_cap;
};

/* struct tun_nxb - an encrypted TCP flow: plaintext socket <-> Noise data channel. */
struct tun_nxb {
	int plain, noise; /* conn indexes (TC_NXB_PLAIN / TC_NXB_NOISE), -1 once released */
	struct forward *fwd; /* the service's counters (a reference) */
	bool plain_eof; /* the plain side ended: FIN (empty message) queued */
	bool up_done; /* FIN sent and the data channel shut for writing */
	bool down_done; /* the peer's FIN arrived and the plain side was shut for writing */
	uint8_t refs; /* conns still pointing here */
};

/* Per-service counters (written by shard 0 under the lock, read by ctl under the lock). */
struct tun_svc_stats {
	uint64_t ctrl_up; /* control channels authenticated */
	uint64_t data_channels; /* data channels authenticated / opened */
	uint64_t visitors; /* TCP visitors accepted (or UDP sessions created) */
	uint64_t refused_limit; /* visitors refused: max_conns */
	uint64_t visitor_timeout; /* visitors closed: no data channel in time */
	uint64_t auth_fail; /* control/data handshakes refused: auth */
	uint64_t replay; /* data channels refused: replayed / unknown nonce */
	uint64_t reconnects; /* client: control channel attempts after the first */
	uint64_t udp_in, udp_out; /* datagrams visitor->tunnel, tunnel->visitor */
	uint64_t udp_drops; /* datagrams dropped (no channel, buffer full, table full) */
	uint64_t udp_bytes;
	uint64_t noise_fail; /* client: encrypted transport refused / pinned key mismatch */
};

struct tun_usess {
	bool used;
	uint32_t id; /* wire session id */
	uint8_t ch; /* UDP channel index */
	int conn; /* client: TC_CLI_USESS conn */
	struct sockaddr_storage peer; /* server: the visitor */
	socklen_t peer_len;
	uint64_t last_ms;
};

struct tun_svc {
	enum tun_svc_state state;
	enum tun_role role;
	enum tun_svc_type type;
	uint32_t id;
	char name[TUN_SERVICE_MAX + 1];
	uint8_t key[TUN_KEY_MAX];
	size_t key_len;
	uint32_t max_conns; /* server: 0 = unlimited */
	uint64_t bw_bytes; /* server: bandwidth cap of the service, bytes/s each way, 0 = none */
	uint64_t bw_flows; /* flows the cap was last divided among */
	/* server, paid (L402) service: the key is the payment preimage; the control channel must
	 * present a macaroon naming this payment hash (credential kind 2) */
	bool l402;
	uint8_t pay_hash[32];
	int64_t expires_at; /* unix seconds, 0 = none */
	uint64_t max_bytes; /* byte quota over the service's flows, 0 = none */
	uint8_t ended; /* TUN_R_EXPIRED / TUN_R_QUOTA once access ended */
	/* client: credential kind 2 */
	uint8_t *macaroon;
	size_t macaroon_len;
	uint32_t pool; /* TCP: pre-opened data channels (server asks for them) */
	uint32_t udp_channels; /* UDP: data channels (1..TUN_UCH_MAX) */
	bool proxy_protocol; /* client: PROXY v2 header to the local service */
	bool noise; /* client: encrypted transport, server key pinned to @server_pub */
	uint8_t server_pub[TUN_NX_KEY_LEN];
	struct sockaddr_storage addr; /* server: public bind address; client: local service */
	socklen_t addr_len;
	char addr_txt[64];
	/* server */
	int pub_fd; /* bound public socket (TCP: listening only while the client is up) */
	int pub_conn; /* conn index polling pub_fd, -1 */
	bool pub_listening;
	int ctrl; /* control channel conn, -1 */
	struct tun_session sess;
	bool sess_live;
	int pool_head; /* pooled data channels (conn list) */
	uint32_t pool_n;
	int vis_head, vis_tail; /* waiting visitors */
	uint32_t vis_n;
	/* client */
	uint64_t last_req_ms; /* server: last CREATE_DATA sent */
	uint64_t next_try_ms; /* next control channel attempt */
	uint64_t up_since_ms;
	struct tun_backoff bo;
	uint8_t session_id[TUN_SESSION_ID_LEN];
	uint8_t session_key[TUN_SESSION_KEY_LEN];
	bool up;
	/* UDP (both) */
	int uch[TUN_UCH_MAX]; /* channel conns, -1 */
	struct tun_usess *usess; /* TUN_USESS_MAX entries */
	uint32_t next_usess;
	uint32_t nusess;
	/* TCP flows of this service (stats via fwd->st, flows hold references) */
	struct forward *fwd;
	struct tun_svc_stats st;
};

struct tun_conn {
	uint8_t kind; /* enum tun_conn_kind */
	uint8_t st; /* kind-specific step */
	uint8_t armed; /* bit 0: POLLIN outstanding, bit 1: POLLOUT, bit 2: a kick (NOP) */
	uint16_t gen;
	int fd;
	int aux_fd; /* client TC_CLI_LOCAL: the data channel */
	int svc; /* service index, -1 */
	int next; /* list link (pool, visitors) */
	int uch; /* UDP channel index in the service */
	uint64_t deadline_ms; /* 0 = none */
	uint64_t last_ms;
	uint8_t *in;
	uint32_t in_len, in_cap;
	uint8_t *out;
	uint32_t out_len, out_cap;
	struct tun_server *hs; /* server handshake */
	struct tun_client *cl; /* client handshake */
	struct tun_nx *nx; /* Noise transport of fd, NULL = plaintext */
	struct tun_nx *aux_nx; /* client TC_CLI_LOCAL: the data channel's (aux_fd) */
	struct tun_nxb *nxb; /* TC_NXB_*: the flow */
	struct tun_liveness live; /* control channels */
	struct sockaddr_storage peer;
	socklen_t peer_len;
	struct tun_start start; /* client: START_TCP addresses (PROXY v2) */
};

struct tun_eng_stats {
	uint64_t hs_accepted, hs_done, hs_failed, hs_timeout;
	uint64_t pending_refused; /* connections refused by the pending-handshake caps */
	uint64_t auth_fail, replay, unknown_service, unknown_session, protocol;
	uint64_t noise_ok; /* encrypted transport handshakes completed */
	uint64_t noise_key; /* refused: the client pinned another server key (noise_key) */
	uint64_t noise_required; /* refused: plaintext HELLO, server is Noise-only */
	uint64_t noise_unavailable; /* refused: NOISE frame, server is plaintext-only */
};

struct tun_eng {
	pthread_mutex_t lock;
	struct engine *eng;
	/* server */
	bool server_on;
	int srv_fd; /* control/data listener, -1 */
	int srv_conn;
	struct sockaddr_storage srv_addr;
	socklen_t srv_addr_len;
	char srv_txt[64];
	uint16_t hb_interval_s, hb_timeout_s;
	uint32_t pending_max, pending_per_ip, hs_timeout_ms, visitor_timeout_ms;
	uint32_t udp_idle_ms;
	uint32_t pending; /* handshakes running */
	uint8_t transport; /* enum tun_transport */
	bool nx_key; /* nx_priv/nx_pub set */
	uint8_t nx_priv[TUN_NX_KEY_LEN], nx_pub[TUN_NX_KEY_LEN]; /* server static X25519 key */
	struct tun_server_ops ops;
	/* client */
	bool client_on;
	struct sockaddr_storage cli_server;
	socklen_t cli_server_len;
	char cli_txt[64];
	uint32_t backoff_base_ms, backoff_cap_ms;
	/* both */
	struct tun_svc svc[TUN_SVC_MAX];
	uint32_t next_svc_id;
	struct tun_conn *conns; /* TUN_CONN_MAX */
	int conn_free;
	uint32_t nconns;
	bool dirty; /* the control thread changed something: shard 0 applies it */
	struct tun_eng_stats st;
	uint64_t log_sec; /* refusal log rate limit (tun_srv.c) */
	uint32_t log_n;
	uint8_t udp_buf[65536 + 64];
};

/* ---- control thread (tun_eng.c) ---- */

/* tun_eng_ctl - run tunnel.@cmd ("server", "client", "add", "rm", "ls") with @args; fills
 * @reply or returns a stable error code with @msg. NULL on success. */
const char *tun_eng_ctl(struct engine *eng, const char *cmd, const cJSON *args, cJSON *reply,
			char *msg, size_t msglen);

/* tun_eng_free - after the shards stopped: close everything left and free. NULL-safe. */
void tun_eng_free(struct engine *eng);

/* ---- shard 0 ---- */
void tun_shard_handle_cqe(struct shard *sh, struct io_uring_cqe *cqe);
void tun_shard_tick(struct shard *sh);
void tun_shard_teardown(struct shard *sh);

/* ---- internals shared by tun_conn.c, tun_srv.c, tun_cli.c, tun_udp.c (shard 0, locked) ---- */
int tun_conn_new(struct tun_eng *t, int fd, enum tun_conn_kind kind, int svc);
struct tun_conn *tun_conn_at(struct tun_eng *t, int idx);
void tun_conn_arm(struct shard *sh, struct tun_eng *t, int idx, bool in, bool out);
void tun_conn_close(struct shard *sh, struct tun_eng *t, int idx);
/* tun_conn_detach - remove polls and free the conn slot but keep the fd (returned). */
int tun_conn_detach(struct shard *sh, struct tun_eng *t, int idx);
/* tun_conn_buf - give the conn input/output buffers; 0 or -ENOMEM. */
int tun_conn_buf(struct tun_conn *c, uint32_t in_cap, uint32_t out_cap);
/* tun_conn_read_frame - read exactly one frame (never past it): 0 frame in c->in, -EAGAIN,
 * -EPIPE (EOF), -NATX_E_* / -errno. Consume with c->in_len = 0. */
int tun_conn_read_frame(struct tun_conn *c, size_t limit, struct tun_frame *f);
/* tun_conn_out - a writer over the free part of the output buffer; commit with _commit. */
void tun_conn_out(struct tun_conn *c, struct wr *w);
void tun_conn_out_commit(struct tun_conn *c, const struct wr *w);
/* tun_conn_flush - write buffered output; arms POLLOUT when some stays. 0 or -errno. */
int tun_conn_flush(struct shard *sh, struct tun_eng *t, int idx);
/* tun_flow_start - make (fd0, fd1) an engine TCP flow of service @s. 0 or -errno (fds closed). */
int tun_flow_start(struct shard *sh, struct tun_svc *s, int fd0, int fd1);
int tun_svc_find(struct tun_eng *t, enum tun_role role, const char *name, size_t len);
uint64_t tun_svc_flows_open(struct engine *eng, const struct tun_svc *s);
/* tun_bw_apply - divide service @s's bandwidth cap among its open flows (kernel pacing). */
void tun_bw_apply(struct shard *sh, struct tun_svc *s);

/*
 * tun_conn_recv - up to @len bytes of @c's input stream into @buf (plaintext, through the
 * Noise transport when c->nx is on): n > 0, -EAGAIN, -EPIPE (EOF), -errno / -EBADMSG.
 */
ssize_t tun_conn_recv(struct tun_conn *c, void *buf, size_t len);

/* ---- Noise transport (tun_noise.c) ---- */
/* tun_nx_new - a transport for a conn (not yet on). NULL when out of memory. */
struct tun_nx *tun_nx_new(void);
void tun_nx_free(struct tun_nx *nx);
/* tun_nx_raw - queue @len bytes to be sent as they are (a NOISE frame). 0 or -ENOMEM. */
int tun_nx_raw(struct tun_nx *nx, const void *p, size_t len);
/* tun_nx_start - the handshake finished: derive the ciphers, from now on seal/open. */
int tun_nx_start(struct tun_nx *nx);
/* tun_nx_pending - plaintext or a whole message is buffered (a poll would not report it). */
bool tun_nx_pending(const struct tun_nx *nx);
/* tun_nx_fill - open messages until plaintext is available (0; or nx->fin), -EAGAIN, -EPIPE. */
int tun_nx_fill(int fd, struct tun_nx *nx);
/* tun_nx_seal_out - seal up to one message of @buf into ct (which must be empty). 0/-errno. */
int tun_nx_seal_out(struct tun_nx *nx, const uint8_t *buf, size_t len);
/* tun_nx_send - send what ct holds: 0 (all sent), -EAGAIN, -errno. */
int tun_nx_send(int fd, struct tun_nx *nx);
/*
 * tun_nxb_start - an encrypted TCP flow of service @s between @plain_fd and the data channel
 * @noise_fd with transport @nx (all three taken over; closed on failure). 0 or -errno.
 */
int tun_nxb_start(struct shard *sh, struct tun_eng *t, struct tun_svc *s, int plain_fd,
		  int noise_fd, struct tun_nx *nx);
void tun_nxb_event(struct shard *sh, struct tun_eng *t, int idx, bool in, bool out);
/* tun_nxb_abort_fwd - reset every encrypted flow counting into @fwd (paid access ended). */
void tun_nxb_abort_fwd(struct shard *sh, struct tun_eng *t, const struct forward *fwd);
/* tun_nxb_release - a TC_NXB_* conn is being released (tun_conn.c): drop its reference. */
void tun_nxb_release(struct shard *sh, struct tun_eng *t, int idx);
/* tun_conn_kick - make the conn's event handler run soon (a NOP completion, dir 2). */
void tun_conn_kick(struct shard *sh, struct tun_eng *t, int idx);

void tun_srv_event(struct shard *sh, struct tun_eng *t, int idx, bool in, bool out);
void tun_srv_tick(struct shard *sh, struct tun_eng *t);
void tun_srv_svc_down(struct shard *sh, struct tun_eng *t, struct tun_svc *s, uint8_t reason);
void tun_srv_apply(struct shard *sh, struct tun_eng *t);
void tun_cli_event(struct shard *sh, struct tun_eng *t, int idx, bool in, bool out);
void tun_cli_tick(struct shard *sh, struct tun_eng *t);
void tun_cli_svc_down(struct shard *sh, struct tun_eng *t, struct tun_svc *s, bool retry);
void tun_udp_event(struct shard *sh, struct tun_eng *t, int idx, bool in, bool out);
void tun_udp_tick(struct shard *sh, struct tun_eng *t);
void tun_udp_channel_up(struct shard *sh, struct tun_eng *t, struct tun_svc *s, int idx);
void tun_udp_svc_reset(struct shard *sh, struct tun_eng *t, struct tun_svc *s);

#endif
