// SPDX-License-Identifier: MIT
/*
 * libFuzzer target: the tunnel's bounded frame reader and every message parser, plus both
 * handshake state machines fed with whatever frames the input contains. The first input
 * byte picks the reader's payload limit (control or UDP data channel) and which side is
 * driven. Must never crash, leak, read out of bounds or accept an oversized frame.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tun_crypto.h"
#include "tun_hs.h"
#include "tun_pp2.h"
#include "tun_wire.h"

static struct tun_session fuzz_sess;

static int fuzz_cred(void *arg, uint8_t kind, const uint8_t *service, size_t service_len,
		     const uint8_t *cred, size_t cred_len, uint8_t *key, size_t *key_len)
{
	if (service_len && service[0] == 'x') {
		return TUN_R_UNKNOWN_SERVICE;
	}
	memcpy(key, "fuzz-key", 8);
	*key_len = 8;
	return 0;
}

static struct tun_session *fuzz_find(void *arg, const uint8_t id[TUN_SESSION_ID_LEN])
{
	return id[0] & 1 ? &fuzz_sess : NULL;
}

/* Deterministic "randomness" so crashes reproduce. */
static int fuzz_rand(void *arg, void *buf, size_t len)
{
	memset(buf, 0x5a, len);
	return 0;
}

static const struct tun_server_ops fuzz_ops = {
	.random = fuzz_rand,
	.cred_get = fuzz_cred,
	.session_find = fuzz_find,
	.heartbeat_interval = 1,
	.heartbeat_timeout = 3,
};

static void fuzz_readers(const struct tun_frame *f)
{
	union {
		struct tun_hello h;
		struct tun_challenge c;
		struct tun_auth a;
		struct tun_auth_ok ok;
		struct tun_data_auth d;
		struct tun_refuse r;
		struct tun_start st;
		struct tun_udp u;
		uint8_t b[64];
		uint32_t seq;
	} m;

	(void)tun_hello_read(f, &m.h);
	(void)tun_challenge_read(f, &m.c);
	if (tun_auth_read(f, &m.a) == 0 && m.a.signed_len + TUN_MAC_LEN != f->len) {
		abort();
	}
	(void)tun_auth_ok_read(f, &m.ok);
	(void)tun_data_auth_read(f, &m.d);
	(void)tun_data_ok_read(f, m.b);
	(void)tun_refuse_read(f, &m.r);
	(void)tun_heartbeat_read(f, &m.seq);
	(void)tun_create_data_read(f, m.b);
	(void)tun_goaway_read(f, m.b);
	(void)tun_start_read(f, &m.st);
	if (tun_udp_read(f, &m.u) == 0 && f->type == TUN_T_UDP_DATA && m.u.len + 4 != f->len) {
		abort();
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static uint8_t out[65536];
	struct tun_server s;
	struct tun_client c;
	size_t max, off = 1;
	struct wr w;
	bool server;

	if (size < 1) {
		return 0;
	}
	max = data[0] & 1 ? TUN_UDP_PAYLOAD_MAX : TUN_CTRL_PAYLOAD_MAX;
	server = data[0] & 2;
	tun_server_init(&s, &fuzz_ops);
	if (data[0] & 4) {
		uint8_t id[TUN_SESSION_ID_LEN] = { 1 }, key[TUN_SESSION_KEY_LEN] = { 2 };

		tun_client_data_init(&c, id, key, key);
	} else {
		(void)tun_client_control_init(&c, "svc", TUN_CRED_TOKEN, NULL, 0, "k", 1, fuzz_rand,
					      NULL);
	}
	wr_init(&w, out, sizeof(out));
	(void)tun_client_hello(&c, &w);
	while (off < size) {
		struct tun_frame f;
		int r = tun_frame_parse(data + off, size - off, max, &f);

		if (r) {
			break;
		}
		if (f.len > max || f.total > size - off) {
			abort();
		}
		fuzz_readers(&f);
		wr_init(&w, out, sizeof(out));
		if (server) {
			(void)tun_server_consume(&s, &f, &w);
		} else {
			(void)tun_client_consume(&c, &f, &w);
		}
		off += f.total;
	}
	{
		struct tun_addr a, b;
		size_t used;
		bool udp;

		(void)tun_pp2_read(data, size, &a, &b, &udp, &used);
	}
	tun_server_cleanup(&s);
	tun_client_cleanup(&c);
	return 0;
}
