// SPDX-License-Identifier: MIT
/* Tunnel handshake state machines and sessions (tun_hs.h). */
#include <errno.h>
#include <string.h>

#include "natx/err.h"
#include "tun_crypto.h"
#include "tun_hs.h"

static const char lbl_ctl_client[] = "natx-tun/1 ctl-client";
static const char lbl_ctl_server[] = "natx-tun/1 ctl-server";
static const char lbl_session[] = "natx-tun/1 session";
static const char lbl_data_client[] = "natx-tun/1 data-client";
static const char lbl_data_server[] = "natx-tun/1 data-server";

#define IOV(p, n) ((struct tun_iov){ (p), (n) })
#define IOV_STR(s) IOV((s), sizeof(s) - 1)

int tun_reason_err(unsigned int reason)
{
	switch (reason) {
	case TUN_R_AUTH:
	case TUN_R_REPLAY:
		return -NATX_E_AUTH;
	case TUN_R_PAYMENT:
	case TUN_R_EXPIRED:
	case TUN_R_QUOTA:
		return -NATX_E_PAYMENT;
	case TUN_R_UNKNOWN_SERVICE:
	case TUN_R_UNKNOWN_SESSION:
		return -NATX_E_NOT_FOUND;
	case TUN_R_LIMIT:
		return -NATX_E_LIMIT;
	case TUN_R_VERSION:
	case TUN_R_NOISE_REQUIRED:
	case TUN_R_NOISE_UNAVAILABLE:
		return -EPROTONOSUPPORT;
	case TUN_R_NOISE_KEY:
		return -EKEYREJECTED;
	case TUN_R_PROTOCOL:
		return -NATX_E_PROTO;
	default:
		return -NATX_E_UNAVAILABLE;
	}
}

/* ---- transcript MACs ---- */

/* ctl_client_mac - mac_c over the version, server nonce and the signed AUTH prefix. */
static int ctl_client_mac(uint8_t out[TUN_MAC_LEN], const void *key, size_t key_len,
			  uint8_t version, const uint8_t nonce_s[TUN_NONCE_LEN],
			  const uint8_t *signed_part, size_t signed_len)
{
	const struct tun_iov iov[] = { IOV_STR(lbl_ctl_client), IOV(&version, 1),
				       IOV(nonce_s, TUN_NONCE_LEN), IOV(signed_part, signed_len) };

	return tun_hmac_sha256(out, key, key_len, iov, 4);
}

static int ctl_server_mac(uint8_t out[TUN_MAC_LEN], const void *key, size_t key_len,
			  uint8_t version, const uint8_t nonce_s[TUN_NONCE_LEN],
			  const uint8_t nonce_c[TUN_NONCE_LEN], const struct tun_auth_ok *ok)
{
	uint8_t hb[4] = { (uint8_t)(ok->heartbeat_interval >> 8), (uint8_t)ok->heartbeat_interval,
			  (uint8_t)(ok->heartbeat_timeout >> 8), (uint8_t)ok->heartbeat_timeout };
	const struct tun_iov iov[] = { IOV_STR(lbl_ctl_server),
				       IOV(&version, 1),
				       IOV(nonce_s, TUN_NONCE_LEN),
				       IOV(nonce_c, TUN_NONCE_LEN),
				       IOV(ok->session_id, TUN_SESSION_ID_LEN),
				       IOV(hb, 4) };

	return tun_hmac_sha256(out, key, key_len, iov, 6);
}

static int session_key_derive(uint8_t out[TUN_SESSION_KEY_LEN], const void *key, size_t key_len,
			      const uint8_t nonce_s[TUN_NONCE_LEN],
			      const uint8_t nonce_c[TUN_NONCE_LEN])
{
	const struct tun_iov iov[] = { IOV_STR(lbl_session), IOV(nonce_s, TUN_NONCE_LEN),
				       IOV(nonce_c, TUN_NONCE_LEN) };

	return tun_hmac_sha256(out, key, key_len, iov, 3);
}

static int data_client_mac(uint8_t out[TUN_MAC_LEN], const uint8_t key[TUN_SESSION_KEY_LEN],
			   uint8_t version, const uint8_t nonce_s[TUN_NONCE_LEN],
			   const uint8_t id[TUN_SESSION_ID_LEN],
			   const uint8_t nonce_ch[TUN_NONCE_LEN])
{
	const struct tun_iov iov[] = { IOV_STR(lbl_data_client), IOV(&version, 1),
				       IOV(nonce_s, TUN_NONCE_LEN), IOV(id, TUN_SESSION_ID_LEN),
				       IOV(nonce_ch, TUN_NONCE_LEN) };

	return tun_hmac_sha256(out, key, TUN_SESSION_KEY_LEN, iov, 5);
}

static int data_server_mac(uint8_t out[TUN_MAC_LEN], const uint8_t key[TUN_SESSION_KEY_LEN],
			   uint8_t version, const uint8_t nonce_s[TUN_NONCE_LEN],
			   const uint8_t nonce_ch[TUN_NONCE_LEN])
{
	const struct tun_iov iov[] = { IOV_STR(lbl_data_server), IOV(&version, 1),
				       IOV(nonce_s, TUN_NONCE_LEN), IOV(nonce_ch, TUN_NONCE_LEN) };

	return tun_hmac_sha256(out, key, TUN_SESSION_KEY_LEN, iov, 4);
}

/* ---- sessions ---- */

void tun_session_init(struct tun_session *sess, const struct tun_server *s)
{
	memset(sess, 0, sizeof(*sess));
	memcpy(sess->id, s->session_id, TUN_SESSION_ID_LEN);
	memcpy(sess->key, s->session_key, TUN_SESSION_KEY_LEN);
}

int tun_session_data_request(struct tun_session *s, tun_random_fn rnd, void *rnd_arg,
			     struct wr *out)
{
	uint8_t nonce[TUN_NONCE_LEN];
	unsigned int slot = s->pending_next;
	int err = rnd(rnd_arg, nonce, sizeof(nonce));

	if (err) {
		return err;
	}
	err = tun_create_data_write(out, nonce);
	if (err) {
		return err;
	}
	memcpy(s->pending[slot], nonce, TUN_NONCE_LEN);
	s->pending_valid |= 1ull << slot;
	s->pending_next = (slot + 1) % TUN_PENDING_MAX;
	return 0;
}

unsigned int tun_session_pending(const struct tun_session *s)
{
	return (unsigned int)__builtin_popcountll(s->pending_valid);
}

/*
 * tun_session_nonce_take - consume a pending nonce. Every slot is compared (constant time
 * over the table) so timing does not tell which slot matched.
 */
static bool tun_session_nonce_take(struct tun_session *s, const uint8_t nonce[TUN_NONCE_LEN])
{
	int found = -1;

	for (unsigned int i = 0; i < TUN_PENDING_MAX; i++) {
		bool eq = crypto_memeq(s->pending[i], nonce, TUN_NONCE_LEN);

		if (eq && (s->pending_valid >> i & 1) && found < 0) {
			found = (int)i;
		}
	}
	if (found < 0) {
		return false;
	}
	s->pending_valid &= ~(1ull << found);
	crypto_wipe(s->pending[found], TUN_NONCE_LEN);
	return true;
}

void tun_session_cleanup(struct tun_session *s)
{
	crypto_wipe(s, sizeof(*s));
}

/* ---- server ---- */

void tun_server_init(struct tun_server *s, const struct tun_server_ops *ops)
{
	memset(s, 0, sizeof(*s));
	s->ops = ops;
	s->state = TUN_HS_WAIT_HELLO;
}

/* server_refuse - append REFUSE(reason), enter FAILED, return the mapped error. */
static int server_refuse(struct tun_server *s, struct wr *out, uint8_t reason)
{
	struct tun_refuse r = { .reason = reason,
				.min_version = TUN_VERSION_MIN,
				.max_version = TUN_VERSION_MAX };

	s->state = TUN_HS_FAILED;
	s->reason = reason;
	crypto_wipe(s->session_key, sizeof(s->session_key));
	if (tun_refuse_write(out, &r)) {
		return -NATX_E_TOO_BIG;
	}
	return tun_reason_err(reason);
}

static int server_on_hello(struct tun_server *s, const struct tun_frame *f, struct wr *out)
{
	struct tun_challenge ch;
	struct tun_hello h;
	int err;

	if (tun_hello_read(f, &h)) {
		return server_refuse(s, out, TUN_R_PROTOCOL);
	}
	if (h.max_version < TUN_VERSION_MIN || h.min_version > TUN_VERSION_MAX) {
		return server_refuse(s, out, TUN_R_VERSION);
	}
	s->chan = h.chan;
	s->version = h.max_version < TUN_VERSION_MAX ? h.max_version : TUN_VERSION_MAX;
	err = s->ops->random(s->ops->random_arg, s->server_nonce, TUN_NONCE_LEN);
	if (err) {
		return server_refuse(s, out, TUN_R_INTERNAL);
	}
	ch.version = s->version;
	memcpy(ch.nonce, s->server_nonce, TUN_NONCE_LEN);
	if (tun_challenge_write(out, &ch)) {
		s->state = TUN_HS_FAILED;
		return -NATX_E_TOO_BIG;
	}
	s->state = s->chan == TUN_CHAN_CONTROL ? TUN_HS_WAIT_AUTH : TUN_HS_WAIT_DATA_AUTH;
	return 0;
}

static int server_on_auth(struct tun_server *s, const struct tun_frame *f, struct wr *out)
{
	uint8_t key[TUN_KEY_MAX], mac[TUN_MAC_LEN];
	struct tun_auth_ok ok;
	struct tun_auth a;
	size_t key_len = 0;
	int r, ret;

	if (tun_auth_read(f, &a)) {
		return server_refuse(s, out, TUN_R_PROTOCOL);
	}
	/* Named before it is judged, so a refusal can say which service was asked for. */
	s->service_len = a.service_len;
	memcpy(s->service, a.service, a.service_len);
	s->service[a.service_len] = '\0';
	r = s->ops->cred_get(s->ops->arg, a.kind, a.service, a.service_len, a.cred, a.cred_len, key,
			     &key_len);
	if (r) {
		ret = server_refuse(s, out,
				    r > TUN_R_NONE && r < TUN_R_MAX ? (uint8_t)r : TUN_R_INTERNAL);
		goto out_wipe;
	}
	if (key_len == 0 || key_len > TUN_KEY_MAX ||
	    ctl_client_mac(mac, key, key_len, s->version, s->server_nonce, a.signed_part,
			   a.signed_len)) {
		ret = server_refuse(s, out, TUN_R_INTERNAL);
		goto out_wipe;
	}
	if (!crypto_memeq(mac, a.mac, TUN_MAC_LEN)) {
		ret = server_refuse(s, out, TUN_R_AUTH);
		goto out_wipe;
	}
	s->kind = a.kind;
	memcpy(s->client_nonce, a.client_nonce, TUN_NONCE_LEN);
	memset(&ok, 0, sizeof(ok));
	if (s->ops->random(s->ops->random_arg, s->session_id, TUN_SESSION_ID_LEN) ||
	    session_key_derive(s->session_key, key, key_len, s->server_nonce, s->client_nonce)) {
		ret = server_refuse(s, out, TUN_R_INTERNAL);
		goto out_wipe;
	}
	memcpy(ok.session_id, s->session_id, TUN_SESSION_ID_LEN);
	ok.heartbeat_interval = s->ops->heartbeat_interval;
	ok.heartbeat_timeout = s->ops->heartbeat_timeout;
	if (ctl_server_mac(ok.mac, key, key_len, s->version, s->server_nonce, s->client_nonce,
			   &ok)) {
		ret = server_refuse(s, out, TUN_R_INTERNAL);
		goto out_wipe;
	}
	if (tun_auth_ok_write(out, &ok)) {
		s->state = TUN_HS_FAILED;
		ret = -NATX_E_TOO_BIG;
		goto out_wipe;
	}
	s->state = TUN_HS_DONE;
	ret = 1;

out_wipe:
	crypto_wipe(key, sizeof(key));
	crypto_wipe(mac, sizeof(mac));
	return ret;
}

static int server_on_data_auth(struct tun_server *s, const struct tun_frame *f, struct wr *out)
{
	uint8_t mac[TUN_MAC_LEN];
	struct tun_data_auth d;
	struct tun_session *sess;

	if (tun_data_auth_read(f, &d)) {
		return server_refuse(s, out, TUN_R_PROTOCOL);
	}
	sess = s->ops->session_find(s->ops->arg, d.session_id);
	if (!sess) {
		return server_refuse(s, out, TUN_R_UNKNOWN_SESSION);
	}
	s->session = sess; /* also on a refusal below: the session the channel named */
	/* MAC first: a forged DATA_AUTH must not be able to burn a legitimate pending nonce. */
	if (data_client_mac(mac, sess->key, s->version, s->server_nonce, d.session_id,
			    d.channel_nonce)) {
		return server_refuse(s, out, TUN_R_INTERNAL);
	}
	if (!crypto_memeq(mac, d.mac, TUN_MAC_LEN)) {
		return server_refuse(s, out, TUN_R_AUTH);
	}
	if (!tun_session_nonce_take(sess, d.channel_nonce)) {
		return server_refuse(s, out, TUN_R_REPLAY);
	}
	if (data_server_mac(mac, sess->key, s->version, s->server_nonce, d.channel_nonce)) {
		return server_refuse(s, out, TUN_R_INTERNAL);
	}
	if (tun_data_ok_write(out, mac)) {
		s->state = TUN_HS_FAILED;
		return -NATX_E_TOO_BIG;
	}
	memcpy(s->session_id, d.session_id, TUN_SESSION_ID_LEN);
	s->session = sess;
	s->state = TUN_HS_DONE;
	return 1;
}

int tun_server_consume(struct tun_server *s, const struct tun_frame *f, struct wr *out)
{
	switch (s->state) {
	case TUN_HS_WAIT_HELLO:
		return f->type == TUN_T_HELLO ? server_on_hello(s, f, out) :
						server_refuse(s, out, TUN_R_PROTOCOL);
	case TUN_HS_WAIT_AUTH:
		return f->type == TUN_T_AUTH ? server_on_auth(s, f, out) :
					       server_refuse(s, out, TUN_R_PROTOCOL);
	case TUN_HS_WAIT_DATA_AUTH:
		return f->type == TUN_T_DATA_AUTH ? server_on_data_auth(s, f, out) :
						    server_refuse(s, out, TUN_R_PROTOCOL);
	default:
		return -EINVAL;
	}
}

void tun_server_cleanup(struct tun_server *s)
{
	crypto_wipe(s, sizeof(*s));
}

/* ---- client ---- */

int tun_client_control_init(struct tun_client *c, const char *service, enum tun_cred_kind kind,
			    const uint8_t *cred, size_t cred_len, const void *key, size_t key_len,
			    tun_random_fn rnd, void *rnd_arg)
{
	size_t sl = service ? strlen(service) : 0;

	memset(c, 0, sizeof(*c));
	if (!tun_service_name_ok((const uint8_t *)service, sl) || key_len == 0 ||
	    key_len > TUN_KEY_MAX || cred_len > TUN_CRED_MAX ||
	    (kind == TUN_CRED_TOKEN && cred_len) || (kind == TUN_CRED_L402 && !cred_len) ||
	    (kind != TUN_CRED_TOKEN && kind != TUN_CRED_L402)) {
		return -EINVAL;
	}
	c->state = TUN_HS_INIT;
	c->chan = TUN_CHAN_CONTROL;
	c->random = rnd;
	c->random_arg = rnd_arg;
	c->kind = (uint8_t)kind;
	c->service_len = (uint8_t)sl;
	memcpy(c->service, service, sl);
	c->cred = cred;
	c->cred_len = (uint16_t)cred_len;
	memcpy(c->key, key, key_len);
	c->key_len = key_len;
	return 0;
}

void tun_client_data_init(struct tun_client *c, const uint8_t session_id[TUN_SESSION_ID_LEN],
			  const uint8_t session_key[TUN_SESSION_KEY_LEN],
			  const uint8_t channel_nonce[TUN_NONCE_LEN])
{
	memset(c, 0, sizeof(*c));
	c->state = TUN_HS_INIT;
	c->chan = TUN_CHAN_DATA;
	memcpy(c->session_id, session_id, TUN_SESSION_ID_LEN);
	memcpy(c->session_key, session_key, TUN_SESSION_KEY_LEN);
	memcpy(c->channel_nonce, channel_nonce, TUN_NONCE_LEN);
}

int tun_client_hello(struct tun_client *c, struct wr *out)
{
	struct tun_hello h = { .min_version = TUN_VERSION_MIN,
			       .max_version = TUN_VERSION_MAX,
			       .chan = c->chan };

	if (c->state != TUN_HS_INIT) {
		return -EINVAL;
	}
	if (tun_hello_write(out, &h)) {
		return -NATX_E_TOO_BIG;
	}
	c->state = TUN_HS_WAIT_CHALLENGE;
	return 0;
}

static int client_fail(struct tun_client *c, int err)
{
	c->state = TUN_HS_FAILED;
	crypto_wipe(c->key, sizeof(c->key));
	crypto_wipe(c->session_key, sizeof(c->session_key));
	return err;
}

static int client_on_refuse(struct tun_client *c, const struct tun_frame *f)
{
	if (tun_refuse_read(f, &c->refused)) {
		return client_fail(c, -NATX_E_PROTO);
	}
	return client_fail(c, tun_reason_err(c->refused.reason));
}

static int client_on_challenge(struct tun_client *c, const struct tun_frame *f, struct wr *out)
{
	struct tun_challenge ch;
	struct tun_auth a;
	uint8_t signed_buf[TUN_CTRL_PAYLOAD_MAX];
	struct wr sw;

	if (tun_challenge_read(f, &ch)) {
		return client_fail(c, -NATX_E_PROTO);
	}
	if (ch.version < TUN_VERSION_MIN || ch.version > TUN_VERSION_MAX) {
		return client_fail(c, -EPROTONOSUPPORT);
	}
	c->version = ch.version;
	memcpy(c->server_nonce, ch.nonce, TUN_NONCE_LEN);
	if (c->chan == TUN_CHAN_DATA) {
		struct tun_data_auth d;

		memcpy(d.session_id, c->session_id, TUN_SESSION_ID_LEN);
		memcpy(d.channel_nonce, c->channel_nonce, TUN_NONCE_LEN);
		if (data_client_mac(d.mac, c->session_key, c->version, c->server_nonce,
				    c->session_id, c->channel_nonce)) {
			return client_fail(c, -EIO);
		}
		if (tun_data_auth_write(out, &d)) {
			return client_fail(c, -NATX_E_TOO_BIG);
		}
		c->state = TUN_HS_WAIT_DATA_OK;
		return 0;
	}
	if (c->random(c->random_arg, c->client_nonce, TUN_NONCE_LEN)) {
		return client_fail(c, -EIO);
	}
	memset(&a, 0, sizeof(a));
	a.kind = c->kind;
	a.service_len = c->service_len;
	a.service = c->service;
	a.cred_len = c->cred_len;
	a.cred = c->cred;
	memcpy(a.client_nonce, c->client_nonce, TUN_NONCE_LEN);
	wr_init(&sw, signed_buf, sizeof(signed_buf));
	if (tun_auth_signed_write(&sw, &a) ||
	    ctl_client_mac(a.mac, c->key, c->key_len, c->version, c->server_nonce, signed_buf,
			   (size_t)(sw.p - signed_buf)) ||
	    tun_auth_write(out, &a)) {
		return client_fail(c, -NATX_E_TOO_BIG);
	}
	c->state = TUN_HS_WAIT_AUTH_OK;
	return 0;
}

static int client_on_auth_ok(struct tun_client *c, const struct tun_frame *f)
{
	uint8_t mac[TUN_MAC_LEN];
	struct tun_auth_ok ok;
	bool good;

	if (tun_auth_ok_read(f, &ok)) {
		return client_fail(c, -NATX_E_PROTO);
	}
	if (ctl_server_mac(mac, c->key, c->key_len, c->version, c->server_nonce, c->client_nonce,
			   &ok)) {
		return client_fail(c, -EIO);
	}
	good = crypto_memeq(mac, ok.mac, TUN_MAC_LEN);
	crypto_wipe(mac, sizeof(mac));
	if (!good) {
		return client_fail(c, -NATX_E_AUTH); /* the server does not know K */
	}
	if (session_key_derive(c->session_key, c->key, c->key_len, c->server_nonce,
			       c->client_nonce)) {
		return client_fail(c, -EIO);
	}
	memcpy(c->session_id, ok.session_id, TUN_SESSION_ID_LEN);
	c->heartbeat_interval = ok.heartbeat_interval;
	c->heartbeat_timeout = ok.heartbeat_timeout;
	crypto_wipe(c->key, sizeof(c->key));
	c->state = TUN_HS_DONE;
	return 1;
}

static int client_on_data_ok(struct tun_client *c, const struct tun_frame *f)
{
	uint8_t want[TUN_MAC_LEN], got[TUN_MAC_LEN];
	bool good;

	if (tun_data_ok_read(f, got)) {
		return client_fail(c, -NATX_E_PROTO);
	}
	if (data_server_mac(want, c->session_key, c->version, c->server_nonce, c->channel_nonce)) {
		return client_fail(c, -EIO);
	}
	good = crypto_memeq(want, got, TUN_MAC_LEN);
	crypto_wipe(want, sizeof(want));
	if (!good) {
		return client_fail(c, -NATX_E_AUTH);
	}
	c->state = TUN_HS_DONE;
	return 1;
}

int tun_client_consume(struct tun_client *c, const struct tun_frame *f, struct wr *out)
{
	switch (c->state) {
	case TUN_HS_WAIT_CHALLENGE:
	case TUN_HS_WAIT_AUTH_OK:
	case TUN_HS_WAIT_DATA_OK:
		break;
	default:
		return -EINVAL;
	}
	if (f->type == TUN_T_REFUSE) {
		return client_on_refuse(c, f);
	}
	if (c->state == TUN_HS_WAIT_CHALLENGE && f->type == TUN_T_CHALLENGE) {
		return client_on_challenge(c, f, out);
	}
	if (c->state == TUN_HS_WAIT_AUTH_OK && f->type == TUN_T_AUTH_OK) {
		return client_on_auth_ok(c, f);
	}
	if (c->state == TUN_HS_WAIT_DATA_OK && f->type == TUN_T_DATA_OK) {
		return client_on_data_ok(c, f);
	}
	return client_fail(c, -NATX_E_PROTO);
}

void tun_client_cleanup(struct tun_client *c)
{
	crypto_wipe(c, sizeof(*c));
}
