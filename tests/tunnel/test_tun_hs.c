// SPDX-License-Identifier: MIT
/*
 * Tunnel handshakes (engine/tunnel/tun_hs.c), both ends in one process: control and data
 * channels succeed; replayed, forged and wrong-credential handshakes are refused with the
 * right reason; an L402 macaroon works as the control-channel credential.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>

#include "natx/err.h"
#include "tun_crypto.h"
#include "tun_hs.h"

#define TOKEN "correct horse battery staple"

/* A server "application": one service with a token, a small session table. */
struct t_app {
	struct tun_session sessions[4];
	int n_sessions;
	int cred_calls;
};

static int t_cred_get(void *arg, uint8_t kind, const uint8_t *service, size_t service_len,
		      const uint8_t *cred, size_t cred_len, uint8_t *key, size_t *key_len)
{
	struct t_app *app = arg;

	app->cred_calls++;
	if (service_len != 4 || memcmp(service, "echo", 4)) {
		return TUN_R_UNKNOWN_SERVICE;
	}
	if (kind != TUN_CRED_TOKEN) {
		return TUN_R_AUTH;
	}
	memcpy(key, TOKEN, strlen(TOKEN));
	*key_len = strlen(TOKEN);
	return 0;
}

static struct tun_session *t_session_find(void *arg, const uint8_t id[TUN_SESSION_ID_LEN])
{
	struct t_app *app = arg;

	for (int i = 0; i < app->n_sessions; i++) {
		if (!memcmp(app->sessions[i].id, id, TUN_SESSION_ID_LEN)) {
			return &app->sessions[i];
		}
	}
	return NULL;
}

static struct t_app app;
static const struct tun_server_ops ops = {
	.random = tun_random,
	.cred_get = t_cred_get,
	.session_find = t_session_find,
	.arg = &app,
	.heartbeat_interval = 30,
	.heartbeat_timeout = 90,
};

/* A one-direction byte pipe. */
struct t_pipe {
	uint8_t buf[16384];
	struct wr w;
	size_t off;
};

static void t_pipe_init(struct t_pipe *p)
{
	wr_init(&p->w, p->buf, sizeof(p->buf));
	p->off = 0;
}

/* t_pipe_next - the next complete frame in the pipe (asserting there is one). */
static struct tun_frame t_pipe_next(struct t_pipe *p)
{
	struct tun_frame f;
	size_t have = (size_t)(p->w.p - p->buf) - p->off;

	cr_assert_eq(tun_frame_parse(p->buf + p->off, have, TUN_CTRL_PAYLOAD_MAX, &f), 0);
	p->off += f.total;
	return f;
}

/* t_pipe_replay - a copy of src's recorded bytes, to be read again from the start. */
static void t_pipe_replay(struct t_pipe *dst, const struct t_pipe *src)
{
	size_t n = (size_t)(src->w.p - src->buf);

	memcpy(dst->buf, src->buf, n);
	wr_init(&dst->w, dst->buf, sizeof(dst->buf));
	dst->w.p += n;
	dst->off = 0;
}

static bool t_pipe_empty(const struct t_pipe *p)
{
	return p->off == (size_t)(p->w.p - p->buf);
}

/* A whole exchange: client and server step until both stop. Returns the last results. */
struct t_run {
	int client, server;
};

static struct t_run t_handshake(struct tun_client *c, struct tun_server *s, struct t_pipe *c2s,
				struct t_pipe *s2c)
{
	struct t_run r = { 0, 0 };

	t_pipe_init(c2s);
	t_pipe_init(s2c);
	cr_assert_eq(tun_client_hello(c, &c2s->w), 0);
	for (int steps = 0; steps < 8; steps++) {
		if (!t_pipe_empty(c2s)) {
			struct tun_frame f = t_pipe_next(c2s);

			r.server = tun_server_consume(s, &f, &s2c->w);
		} else if (!t_pipe_empty(s2c)) {
			struct tun_frame f = t_pipe_next(s2c);

			r.client = tun_client_consume(c, &f, &c2s->w);
		} else {
			break;
		}
	}
	return r;
}

static void t_control(struct tun_client *c, const char *service, const char *token)
{
	cr_assert_eq(tun_client_control_init(c, service, TUN_CRED_TOKEN, NULL, 0, token,
					     strlen(token), tun_random, NULL),
		     0);
}

/* t_session_open - a full control handshake; returns the server-side session. */
static struct tun_session *t_session_open(struct tun_client *c)
{
	struct t_pipe c2s, s2c;
	struct tun_server s;
	struct t_run r;

	t_control(c, "echo", TOKEN);
	tun_server_init(&s, &ops);
	r = t_handshake(c, &s, &c2s, &s2c);
	cr_assert_eq(r.server, 1);
	cr_assert_eq(r.client, 1);
	cr_assert_lt(app.n_sessions, 4);
	tun_session_init(&app.sessions[app.n_sessions], &s);
	tun_server_cleanup(&s);
	return &app.sessions[app.n_sessions++];
}

static void t_reset(void)
{
	memset(&app, 0, sizeof(app));
}

TestSuite(tun_hs, .init = t_reset);

Test(tun_hs, control_handshake_agrees_on_session_and_heartbeat)
{
	struct t_pipe c2s, s2c;
	struct tun_client c;
	struct tun_server s;
	struct t_run r;

	t_control(&c, "echo", TOKEN);
	tun_server_init(&s, &ops);
	r = t_handshake(&c, &s, &c2s, &s2c);
	cr_assert_eq(r.server, 1);
	cr_assert_eq(r.client, 1);
	cr_assert_eq(s.state, TUN_HS_DONE);
	cr_assert_eq(c.state, TUN_HS_DONE);
	cr_assert_str_eq((const char *)s.service, "echo");
	cr_assert_eq(s.kind, TUN_CRED_TOKEN);
	cr_assert_eq(s.version, 1);
	cr_assert_arr_eq(c.session_id, s.session_id, TUN_SESSION_ID_LEN);
	cr_assert_arr_eq(c.session_key, s.session_key, TUN_SESSION_KEY_LEN);
	cr_assert_eq(c.heartbeat_interval, 30);
	cr_assert_eq(c.heartbeat_timeout, 90);
	/* the key never travels: the token does not appear in either direction */
	cr_assert_null(memmem(c2s.buf, sizeof(c2s.buf), TOKEN, strlen(TOKEN)));
	cr_assert_null(memmem(s2c.buf, sizeof(s2c.buf), c.session_key, TUN_SESSION_KEY_LEN));
	tun_client_cleanup(&c);
	tun_server_cleanup(&s);
}

Test(tun_hs, two_handshakes_get_fresh_nonces_sessions_and_keys)
{
	struct tun_client a, b;
	struct tun_session *sa = t_session_open(&a), *sb = t_session_open(&b);

	cr_assert_arr_neq(sa->id, sb->id, TUN_SESSION_ID_LEN);
	cr_assert_arr_neq(sa->key, sb->key, TUN_SESSION_KEY_LEN);
	cr_assert_arr_neq(a.server_nonce, b.server_nonce, TUN_NONCE_LEN);
	cr_assert_arr_neq(a.client_nonce, b.client_nonce, TUN_NONCE_LEN);
}

Test(tun_hs, wrong_token_is_refused_with_reason_auth)
{
	struct t_pipe c2s, s2c;
	struct tun_client c;
	struct tun_server s;
	struct t_run r;

	t_control(&c, "echo", "correct horse battery stapler");
	tun_server_init(&s, &ops);
	r = t_handshake(&c, &s, &c2s, &s2c);
	cr_assert_eq(r.server, -NATX_E_AUTH);
	cr_assert_eq(s.reason, TUN_R_AUTH);
	cr_assert_eq(r.client, -NATX_E_AUTH);
	cr_assert_eq(c.refused.reason, TUN_R_AUTH);
	cr_assert_eq(c.state, TUN_HS_FAILED);
}

Test(tun_hs, unknown_service_is_refused)
{
	struct t_pipe c2s, s2c;
	struct tun_client c;
	struct tun_server s;
	struct t_run r;

	t_control(&c, "ssh", TOKEN);
	tun_server_init(&s, &ops);
	r = t_handshake(&c, &s, &c2s, &s2c);
	cr_assert_eq(r.server, -NATX_E_NOT_FOUND);
	cr_assert_eq(r.client, -NATX_E_NOT_FOUND);
	cr_assert_eq(c.refused.reason, TUN_R_UNKNOWN_SERVICE);
}

Test(tun_hs, replayed_control_auth_is_refused)
{
	struct t_pipe c2s, s2c, rec;
	struct tun_client c;
	struct tun_server s, s2;
	struct tun_frame f;
	struct t_run r;
	int res;

	t_control(&c, "echo", TOKEN);
	tun_server_init(&s, &ops);
	r = t_handshake(&c, &s, &c2s, &s2c);
	cr_assert_eq(r.server, 1);
	/* An eavesdropper recorded c2s (HELLO, AUTH) and replays it to the server. */
	t_pipe_replay(&rec, &c2s);
	tun_server_init(&s2, &ops);
	t_pipe_init(&s2c);
	f = t_pipe_next(&rec);
	cr_assert_eq(tun_server_consume(&s2, &f, &s2c.w), 0); /* fresh CHALLENGE */
	f = t_pipe_next(&rec);
	res = tun_server_consume(&s2, &f, &s2c.w);
	cr_assert_eq(res, -NATX_E_AUTH);
	cr_assert_eq(s2.reason, TUN_R_AUTH);
	cr_assert_eq(s2.state, TUN_HS_FAILED);
}

Test(tun_hs, data_channel_joins_the_session_with_a_one_time_nonce)
{
	struct tun_client c, d;
	struct tun_session *sess = t_session_open(&c);
	struct t_pipe ctl, c2s, s2c;
	struct tun_server s;
	uint8_t nonce[TUN_NONCE_LEN];
	struct tun_frame f;
	struct t_run r;

	t_pipe_init(&ctl);
	cr_assert_eq(tun_session_data_request(sess, tun_random, NULL, &ctl.w), 0);
	cr_assert_eq(tun_session_pending(sess), 1);
	f = t_pipe_next(&ctl);
	cr_assert_eq(f.type, TUN_T_CREATE_DATA);
	cr_assert_eq(tun_create_data_read(&f, nonce), 0);

	tun_client_data_init(&d, c.session_id, c.session_key, nonce);
	tun_server_init(&s, &ops);
	r = t_handshake(&d, &s, &c2s, &s2c);
	cr_assert_eq(r.server, 1);
	cr_assert_eq(r.client, 1);
	cr_assert_eq(s.session, sess);
	cr_assert_eq(s.chan, TUN_CHAN_DATA);
	cr_assert_eq(tun_session_pending(sess), 0, "the nonce is consumed");
}

Test(tun_hs, replayed_data_channel_is_refused)
{
	struct tun_client c, d, d2;
	struct tun_session *sess = t_session_open(&c);
	struct t_pipe ctl, c2s, s2c, rec;
	struct tun_server s, s2;
	uint8_t nonce[TUN_NONCE_LEN];
	struct tun_frame f;
	struct t_run r;

	t_pipe_init(&ctl);
	cr_assert_eq(tun_session_data_request(sess, tun_random, NULL, &ctl.w), 0);
	f = t_pipe_next(&ctl);
	cr_assert_eq(tun_create_data_read(&f, nonce), 0);
	tun_client_data_init(&d, c.session_id, c.session_key, nonce);
	tun_server_init(&s, &ops);
	r = t_handshake(&d, &s, &c2s, &s2c);
	cr_assert_eq(r.server, 1);

	/* 1. verbatim replay of the recorded HELLO + DATA_AUTH: the server nonce changed */
	t_pipe_replay(&rec, &c2s);
	tun_server_init(&s2, &ops);
	t_pipe_init(&s2c);
	f = t_pipe_next(&rec);
	cr_assert_eq(tun_server_consume(&s2, &f, &s2c.w), 0);
	f = t_pipe_next(&rec);
	cr_assert_eq(tun_server_consume(&s2, &f, &s2c.w), -NATX_E_AUTH);
	cr_assert_eq(s2.reason, TUN_R_AUTH);

	/* 2. even the session-key holder cannot reuse a consumed channel nonce */
	tun_client_data_init(&d2, c.session_id, c.session_key, nonce);
	tun_server_init(&s2, &ops);
	r = t_handshake(&d2, &s2, &c2s, &s2c);
	cr_assert_eq(r.server, -NATX_E_AUTH);
	cr_assert_eq(s2.reason, TUN_R_REPLAY);
	cr_assert_eq(d2.refused.reason, TUN_R_REPLAY);
}

Test(tun_hs, forged_data_auth_does_not_burn_the_pending_nonce)
{
	struct tun_client c, d;
	struct tun_session *sess = t_session_open(&c);
	struct t_pipe ctl, c2s, s2c;
	struct tun_server s;
	uint8_t nonce[TUN_NONCE_LEN], wrong_key[TUN_SESSION_KEY_LEN];
	struct tun_frame f;
	struct t_run r;

	t_pipe_init(&ctl);
	cr_assert_eq(tun_session_data_request(sess, tun_random, NULL, &ctl.w), 0);
	f = t_pipe_next(&ctl);
	cr_assert_eq(tun_create_data_read(&f, nonce), 0);
	/* an attacker saw the nonce (plain TCP) but lacks the session key */
	memcpy(wrong_key, c.session_key, sizeof(wrong_key));
	wrong_key[0] ^= 1;
	tun_client_data_init(&d, c.session_id, wrong_key, nonce);
	tun_server_init(&s, &ops);
	r = t_handshake(&d, &s, &c2s, &s2c);
	cr_assert_eq(r.server, -NATX_E_AUTH);
	cr_assert_eq(s.reason, TUN_R_AUTH);
	cr_assert_eq(tun_session_pending(sess), 1);
	/* the legitimate client still gets in */
	tun_client_data_init(&d, c.session_id, c.session_key, nonce);
	tun_server_init(&s, &ops);
	r = t_handshake(&d, &s, &c2s, &s2c);
	cr_assert_eq(r.server, 1);
	cr_assert_eq(r.client, 1);
}

Test(tun_hs, unknown_session_is_refused)
{
	uint8_t id[TUN_SESSION_ID_LEN] = { 1 }, key[TUN_SESSION_KEY_LEN] = { 2 };
	uint8_t nonce[TUN_NONCE_LEN] = { 3 };
	struct t_pipe c2s, s2c;
	struct tun_client d;
	struct tun_server s;
	struct t_run r;

	tun_client_data_init(&d, id, key, nonce);
	tun_server_init(&s, &ops);
	r = t_handshake(&d, &s, &c2s, &s2c);
	cr_assert_eq(r.server, -NATX_E_NOT_FOUND);
	cr_assert_eq(d.refused.reason, TUN_R_UNKNOWN_SESSION);
}

Test(tun_hs, oldest_pending_nonce_is_forgotten_when_the_ring_is_full)
{
	struct tun_client c, d;
	struct tun_session *sess = t_session_open(&c);
	uint8_t first[TUN_NONCE_LEN], last[TUN_NONCE_LEN];
	struct t_pipe ctl, c2s, s2c;
	struct tun_server s;
	struct tun_frame f;
	struct t_run r;

	for (int i = 0; i <= TUN_PENDING_MAX; i++) {
		t_pipe_init(&ctl);
		cr_assert_eq(tun_session_data_request(sess, tun_random, NULL, &ctl.w), 0);
		f = t_pipe_next(&ctl);
		cr_assert_eq(tun_create_data_read(&f, i == 0 ? first : last), 0);
	}
	cr_assert_eq(tun_session_pending(sess), TUN_PENDING_MAX);
	tun_client_data_init(&d, c.session_id, c.session_key, first);
	tun_server_init(&s, &ops);
	r = t_handshake(&d, &s, &c2s, &s2c);
	cr_assert_eq(s.reason, TUN_R_REPLAY);
	tun_client_data_init(&d, c.session_id, c.session_key, last);
	tun_server_init(&s, &ops);
	r = t_handshake(&d, &s, &c2s, &s2c);
	cr_assert_eq(r.server, 1);
}

Test(tun_hs, client_detects_a_server_that_does_not_know_the_key)
{
	struct t_pipe c2s, s2c;
	struct tun_client c;
	struct tun_server s;
	struct tun_frame f;
	uint8_t *mac;

	t_control(&c, "echo", TOKEN);
	tun_server_init(&s, &ops);
	t_pipe_init(&c2s);
	t_pipe_init(&s2c);
	cr_assert_eq(tun_client_hello(&c, &c2s.w), 0);
	f = t_pipe_next(&c2s);
	cr_assert_eq(tun_server_consume(&s, &f, &s2c.w), 0);
	f = t_pipe_next(&s2c);
	cr_assert_eq(tun_client_consume(&c, &f, &c2s.w), 0);
	f = t_pipe_next(&c2s);
	cr_assert_eq(tun_server_consume(&s, &f, &s2c.w), 1);
	f = t_pipe_next(&s2c);
	cr_assert_eq(f.type, TUN_T_AUTH_OK);
	mac = (uint8_t *)f.payload + f.len - 1; /* an impostor's AUTH_OK proof */
	*mac ^= 0x40;
	cr_assert_eq(tun_client_consume(&c, &f, &c2s.w), -NATX_E_AUTH);
	cr_assert_eq(c.state, TUN_HS_FAILED);
}

Test(tun_hs, version_mismatch_is_refused_with_the_server_range)
{
	uint8_t hello[12] = { TUN_T_HELLO, 0, 0, 8, 'N', 'T', 'U', 'N', 2, 3, 1, 0 };
	uint8_t out[64];
	struct tun_frame f;
	struct tun_refuse ref;
	struct tun_server s;
	struct wr w;

	tun_server_init(&s, &ops);
	wr_init(&w, out, sizeof(out));
	cr_assert_eq(tun_frame_parse(hello, sizeof(hello), 64, &f), 0);
	cr_assert_eq(tun_server_consume(&s, &f, &w), -EPROTONOSUPPORT);
	cr_assert_eq(tun_frame_parse(out, (size_t)(w.p - out), 64, &f), 0);
	cr_assert_eq(tun_refuse_read(&f, &ref), 0);
	cr_assert_eq(ref.reason, TUN_R_VERSION);
	cr_assert_eq(ref.min_version, 1);
	cr_assert_eq(ref.max_version, 1);
}

Test(tun_hs, frames_out_of_order_are_protocol_errors)
{
	uint8_t out[256], nonce[TUN_NONCE_LEN] = { 0 };
	struct tun_server s;
	struct tun_frame f;
	struct wr w, fw;
	uint8_t fb[64];

	/* server: CREATE_DATA instead of HELLO */
	wr_init(&fw, fb, sizeof(fb));
	cr_assert_eq(tun_create_data_write(&fw, nonce), 0);
	cr_assert_eq(tun_frame_parse(fb, (size_t)(fw.p - fb), 64, &f), 0);
	tun_server_init(&s, &ops);
	wr_init(&w, out, sizeof(out));
	cr_assert_eq(tun_server_consume(&s, &f, &w), -NATX_E_PROTO);
	cr_assert_eq(s.reason, TUN_R_PROTOCOL);
	cr_assert_eq(tun_server_consume(&s, &f, &w), -EINVAL, "no use after failure");

	/* client: AUTH_OK before CHALLENGE */
	{
		struct tun_client c;
		struct tun_auth_ok ok = { 0 };

		t_control(&c, "echo", TOKEN);
		wr_init(&w, out, sizeof(out));
		cr_assert_eq(tun_client_hello(&c, &w), 0);
		wr_init(&fw, fb, sizeof(fb));
		cr_assert_eq(tun_auth_ok_write(&fw, &ok), 0);
		cr_assert_eq(tun_frame_parse(fb, (size_t)(fw.p - fb), 64, &f), 0);
		cr_assert_eq(tun_client_consume(&c, &f, &w), -NATX_E_PROTO);
	}
}

Test(tun_hs, client_init_validates_its_inputs)
{
	struct tun_client c;
	uint8_t blob[1] = { 2 };

	cr_assert_eq(tun_client_control_init(&c, "bad name", TUN_CRED_TOKEN, NULL, 0, "k", 1,
					     tun_random, NULL),
		     -EINVAL);
	cr_assert_eq(tun_client_control_init(&c, "echo", TUN_CRED_TOKEN, NULL, 0, "", 0, tun_random,
					     NULL),
		     -EINVAL);
	cr_assert_eq(tun_client_control_init(&c, "echo", TUN_CRED_L402, NULL, 0, "k", 1, tun_random,
					     NULL),
		     -EINVAL);
	cr_assert_eq(tun_client_control_init(&c, "echo", TUN_CRED_TOKEN, blob, 1, "k", 1,
					     tun_random, NULL),
		     -EINVAL);
	cr_assert_eq(tun_client_control_init(&c, "echo", TUN_CRED_L402, blob, 1, "k", 1, tun_random,
					     NULL),
		     0);
}
