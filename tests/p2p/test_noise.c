// SPDX-License-Identifier: MIT
/*
 * Noise tests.
 *  - tests/vectors/noise_xx_25519_chachapoly_sha256.txt: the cacophony vector for
 *    Noise_XX_25519_ChaChaPoly_SHA256 (source named in that file): every handshake and transport
 *    ciphertext and the final handshake hash must match byte for byte.
 *  - the libp2p handshake between two in-process endpoints with deterministic keys, early muxer
 *    negotiation on/off, and bad input: corrupted messages, a bad identity signature, a peer ID
 *    mismatch, truncated and oversized messages.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "natx/err.h"
#include "noise.h"
#include "noise.pb-c.h"
#include "p2p/t_p2p.h"

struct vec_msg {
	uint8_t payload[128], ct[256];
	int plen, clen;
};

struct vec {
	uint8_t prologue[64], init_s[32], init_e[32], resp_s[32], resp_e[32], hash[32];
	int prologue_len;
	struct vec_msg msg[8];
	int nmsg;
};

static void vec_load(struct vec *v)
{
	FILE *f = fopen(NATX_VECTORS_DIR "/noise_xx_25519_chachapoly_sha256.txt", "r");
	char line[1024], key[64], a[512], b[512];

	cr_assert_not_null(f);
	memset(v, 0, sizeof(*v));
	while (fgets(line, sizeof(line), f)) {
		int n = sscanf(line, "%63s %511s %511s", key, a, b);

		if (n < 2 || key[0] == '#') {
			continue;
		}
		if (!strcmp(key, "init_prologue")) {
			v->prologue_len = t_unhex(v->prologue, sizeof(v->prologue), a);
		} else if (!strcmp(key, "init_static")) {
			t_unhex(v->init_s, 32, a);
		} else if (!strcmp(key, "init_ephemeral")) {
			t_unhex(v->init_e, 32, a);
		} else if (!strcmp(key, "resp_static")) {
			t_unhex(v->resp_s, 32, a);
		} else if (!strcmp(key, "resp_ephemeral")) {
			t_unhex(v->resp_e, 32, a);
		} else if (!strcmp(key, "handshake_hash")) {
			t_unhex(v->hash, 32, a);
		} else if (!strcmp(key, "msg") && n == 3) {
			struct vec_msg *m = &v->msg[v->nmsg++];

			m->plen = t_unhex(m->payload, sizeof(m->payload), a);
			m->clen = t_unhex(m->ct, sizeof(m->ct), b);
		}
	}
	fclose(f);
	cr_assert_eq(v->nmsg, 6);
}

Test(noise, cacophony_xx_vector)
{
	struct noise_hs ini, rsp;
	struct noise_cipher itx, irx, rtx, rrx;
	struct vec v;

	vec_load(&v);
	noise_hs_init(&ini, true, v.prologue, (size_t)v.prologue_len, v.init_s, v.init_e);
	noise_hs_init(&rsp, false, v.prologue, (size_t)v.prologue_len, v.resp_s, v.resp_e);
	for (int i = 0; i < v.nmsg; i++) {
		struct vec_msg *m = &v.msg[i];
		bool from_init = i % 2 == 0;
		uint8_t buf[512], *pl;
		size_t n, plen;

		if (i < 3) {
			struct noise_hs *w = from_init ? &ini : &rsp, *r = from_init ? &rsp : &ini;

			cr_assert(noise_hs_my_turn(w));
			cr_assert_eq(noise_hs_write(w, m->payload, (size_t)m->plen, buf,
						    sizeof(buf), &n),
				     0);
			cr_assert_eq((int)n, m->clen, "message %d length", i);
			cr_assert_arr_eq(buf, m->ct, n, "message %d bytes", i);
			cr_assert_eq(noise_hs_read(r, buf, n, &pl, &plen), 0);
			cr_assert_eq((int)plen, m->plen);
			cr_assert_arr_eq(pl, m->payload, plen);
			if (i == 2) {
				cr_assert(noise_hs_done(&ini) && noise_hs_done(&rsp));
				cr_assert_arr_eq(ini.h, v.hash, 32);
				cr_assert_arr_eq(rsp.h, v.hash, 32);
				cr_assert_eq(noise_hs_split(&ini, &itx, &irx), 0);
				cr_assert_eq(noise_hs_split(&rsp, &rtx, &rrx), 0);
			}
			continue;
		}
		memcpy(buf, m->payload, (size_t)m->plen);
		cr_assert_eq(noise_seal(from_init ? &itx : &rtx, buf, (size_t)m->plen), 0);
		cr_assert_eq(m->plen + NOISE_TAG, m->clen);
		cr_assert_arr_eq(buf, m->ct, (size_t)m->clen, "transport message %d", i);
		cr_assert_eq(noise_open(from_init ? &rrx : &irx, buf, (size_t)m->clen), 0);
		cr_assert_arr_eq(buf, m->payload, (size_t)m->plen);
	}
	noise_cipher_cleanup(&itx);
	noise_cipher_cleanup(&irx);
	noise_cipher_cleanup(&rtx);
	noise_cipher_cleanup(&rrx);
	noise_hs_cleanup(&ini);
	noise_hs_cleanup(&rsp);
}

Test(noise, transport_rejects_tampering_and_replay)
{
	struct noise_hs ini, rsp;
	struct noise_cipher itx, irx, rtx, rrx;
	struct vec v;
	uint8_t buf[256], *pl, copy[64];
	size_t n, plen;

	vec_load(&v);
	noise_hs_init(&ini, true, NULL, 0, v.init_s, v.init_e);
	noise_hs_init(&rsp, false, NULL, 0, v.resp_s, v.resp_e);
	for (int i = 0; i < 3; i++) {
		struct noise_hs *w = i % 2 ? &rsp : &ini, *r = i % 2 ? &ini : &rsp;

		cr_assert_eq(noise_hs_write(w, NULL, 0, buf, sizeof(buf), &n), 0);
		cr_assert_eq(noise_hs_read(r, buf, n, &pl, &plen), 0);
	}
	cr_assert_eq(noise_hs_split(&ini, &itx, &irx), 0);
	cr_assert_eq(noise_hs_split(&rsp, &rtx, &rrx), 0);
	memcpy(buf, "hello", 5);
	cr_assert_eq(noise_seal(&itx, buf, 5), 0);
	memcpy(copy, buf, 21);
	buf[0] ^= 1;
	cr_assert_eq(noise_open(&rrx, buf, 21), -EBADMSG);
	memcpy(buf, copy, 21);
	cr_assert_eq(noise_open(&rrx, buf, 21), 0);
	memcpy(buf, copy, 21);
	cr_assert_eq(noise_open(&rrx, buf, 21), -EBADMSG); /* replay: nonce moved on */
	cr_assert_eq(noise_open(&rrx, buf, 15), -NATX_E_PROTO);
	cr_assert_eq(noise_seal(&itx, buf, NOISE_MAX_PLAINTEXT + 1), -NATX_E_TOO_BIG);
	noise_cipher_cleanup(&itx);
	noise_cipher_cleanup(&irx);
	noise_cipher_cleanup(&rtx);
	noise_cipher_cleanup(&rrx);
}

/* ---- libp2p handshake ---- */

struct side {
	struct p2p_identity idn;
	struct noise_p2p np;
};

static void side_init(struct side *s, uint64_t *rng, bool initiator, const struct peer_id *expect,
		      bool muxers)
{
	uint8_t seed[32], sk[32], ek[32];

	t_rng_fill(rng, seed, 32);
	t_rng_fill(rng, sk, 32);
	t_rng_fill(rng, ek, 32);
	p2p_identity_from_seed(&s->idn, seed);
	cr_assert_eq(noise_p2p_init(&s->np, initiator, &s->idn, sk, ek, expect, muxers), 0);
}

/* handshake - run the three messages; @mangle may alter message @at before it is read. */
static int handshake(struct side *i, struct side *r, int at, void (*mangle)(uint8_t *, size_t *),
		     int *fail_step)
{
	for (int step = 0; step < 3; step++) {
		struct side *w = step % 2 ? r : i, *rd = step % 2 ? i : r;
		uint8_t buf[1024];
		size_t n;
		int err = noise_p2p_write(&w->np, buf, sizeof(buf), &n);

		if (err) {
			*fail_step = step;
			return err;
		}
		cr_assert_eq(((size_t)buf[0] << 8 | buf[1]), n - 2);
		if (step == at && mangle) {
			mangle(buf, &n);
		}
		err = noise_p2p_read(&rd->np, buf + 2, n - 2);
		if (err) {
			*fail_step = step;
			return err;
		}
	}
	return 0;
}

Test(noise, libp2p_handshake_sizes_and_identities)
{
	for (int muxers = 0; muxers < 2; muxers++) {
		uint64_t rng = 42;
		struct side i, r;
		struct noise_cipher itx, irx, rtx, rrx;
		uint8_t buf[64];
		int fs;

		side_init(&r, &rng, false, NULL, muxers);
		side_init(&i, &rng, true, &r.idn.id, muxers);
		/* message sizes from libp2p/specs noise/README.md: 200/168 without, 216/184 with */
		uint8_t tmp[1024];
		size_t n;
		struct side i2 = i, r2 = r;

		cr_assert_eq(noise_p2p_write(&i2.np, tmp, sizeof(tmp), &n), 0);
		cr_assert_eq(n, 2 + 32);
		cr_assert_eq(noise_p2p_read(&r2.np, tmp + 2, n - 2), 0);
		cr_assert_eq(noise_p2p_write(&r2.np, tmp, sizeof(tmp), &n), 0);
		cr_assert_eq(n, 2u + (muxers ? 216 : 200));

		cr_assert_eq(handshake(&i, &r, -1, NULL, &fs), 0);
		cr_assert(noise_p2p_done(&i.np) && noise_p2p_done(&r.np));
		cr_assert(peerid_equal(&i.np.remote, &r.idn.id));
		cr_assert(peerid_equal(&r.np.remote, &i.idn.id));
		cr_assert_eq(i.np.early_yamux, muxers);
		cr_assert_eq(r.np.early_yamux, muxers);
		cr_assert_eq(noise_hs_split(&i.np.hs, &itx, &irx), 0);
		cr_assert_eq(noise_hs_split(&r.np.hs, &rtx, &rrx), 0);
		memcpy(buf, "data", 4);
		cr_assert_eq(noise_seal(&rtx, buf, 4), 0);
		cr_assert_eq(noise_open(&irx, buf, 20), 0);
		cr_assert_arr_eq(buf, "data", 4);
		noise_cipher_cleanup(&itx);
		noise_cipher_cleanup(&irx);
		noise_cipher_cleanup(&rtx);
		noise_cipher_cleanup(&rrx);
		noise_p2p_cleanup(&i.np);
		noise_p2p_cleanup(&r.np);
	}
}

Test(noise, peer_id_mismatch_is_rejected)
{
	uint64_t rng = 7;
	struct side i, r, other;
	int fs = -1;

	side_init(&other, &rng, false, NULL, true);
	side_init(&r, &rng, false, NULL, true);
	side_init(&i, &rng, true, &other.idn.id, true);
	cr_assert_eq(handshake(&i, &r, -1, NULL, &fs), -EKEYREJECTED);
	cr_assert_eq(fs, 1);
	cr_assert_not(noise_p2p_done(&i.np));
	/* the failed handshake refuses to go on */
	uint8_t buf[512];
	size_t n;

	cr_assert_eq(noise_p2p_write(&i.np, buf, sizeof(buf), &n), -EINVAL);
}

static void flip_last(uint8_t *b, size_t *n)
{
	b[*n - 1] ^= 0x80;
}

static void truncate_msg(uint8_t *b, size_t *n)
{
	*n = 2 + 40;
}

Test(noise, corrupted_or_truncated_messages_fail_with_bad_mac_or_proto)
{
	for (int at = 1; at < 3; at++) {
		uint64_t rng = 9;
		struct side i, r;
		int fs = -1;

		side_init(&r, &rng, false, NULL, false);
		side_init(&i, &rng, true, NULL, false);
		cr_assert_eq(handshake(&i, &r, at, flip_last, &fs), -EBADMSG);
		cr_assert_eq(fs, at);
	}
	uint64_t rng = 9;
	struct side i, r;
	int fs = -1;

	side_init(&r, &rng, false, NULL, false);
	side_init(&i, &rng, true, NULL, false);
	cr_assert_eq(handshake(&i, &r, 1, truncate_msg, &fs), -NATX_E_PROTO);
	side_init(&r, &rng, false, NULL, false);
	cr_assert_eq(noise_p2p_read(&r.np, (uint8_t[8]){ 0 }, 8), -NATX_E_PROTO);
	uint8_t *big = calloc(1, NOISE_MAX_MSG + 1);

	side_init(&r, &rng, false, NULL, false);
	cr_assert_eq(noise_p2p_read(&r.np, big, NOISE_MAX_MSG + 1), -NATX_E_TOO_BIG);
	free(big);
}

/*
 * A responder whose identity signature covers the wrong static key: the payload decrypts fine
 * (the transcript is intact) but the initiator must refuse it with -NATX_E_AUTH.
 */
Test(noise, bad_identity_signature_is_rejected)
{
	uint64_t rng = 11;
	struct side i, r;
	uint8_t buf[1024], payload[256], sig[64], sig_input[56], *pl;
	size_t n, plen;

	side_init(&r, &rng, false, NULL, false);
	side_init(&i, &rng, true, NULL, false);
	cr_assert_eq(noise_p2p_write(&i.np, buf, sizeof(buf), &n), 0);
	cr_assert_eq(noise_p2p_read(&r.np, buf + 2, n - 2), 0);

	/* hand-build the responder's message 2 with a signature over a different key */
	P2p__NoiseHandshakePayload msg = P2P__NOISE_HANDSHAKE_PAYLOAD__INIT;

	memcpy(sig_input, NOISE_P2P_SIG_PREFIX, 24);
	memset(sig_input + 24, 0x55, 32);
	p2p_identity_sign(&r.idn, sig, sig_input, sizeof(sig_input));
	msg.has_identity_key = msg.has_identity_sig = 1;
	msg.identity_key.data = r.idn.pubkey_pb;
	msg.identity_key.len = 36;
	msg.identity_sig.data = sig;
	msg.identity_sig.len = 64;
	plen = p2p__noise_handshake_payload__pack(&msg, payload);
	cr_assert_eq(noise_hs_write(&r.np.hs, payload, plen, buf, sizeof(buf), &n), 0);
	cr_assert_eq(noise_p2p_read(&i.np, buf, n), -NATX_E_AUTH);

	/* and a payload without identity fields at all is malformed */
	rng = 11;
	side_init(&r, &rng, false, NULL, false);
	side_init(&i, &rng, true, NULL, false);
	cr_assert_eq(noise_p2p_write(&i.np, buf, sizeof(buf), &n), 0);
	cr_assert_eq(noise_p2p_read(&r.np, buf + 2, n - 2), 0);
	cr_assert_eq(noise_hs_write(&r.np.hs, (const uint8_t *)"\x22\x00", 2, buf, sizeof(buf), &n),
		     0);
	cr_assert_eq(noise_p2p_read(&i.np, buf, n), -NATX_E_PROTO);
	(void)pl;
}

Test(noise, muxer_lists_without_yamux_fail)
{
	uint64_t rng = 13;
	struct side i, r;
	uint8_t buf[1024], payload[256], sig[64], sig_input[56];
	size_t n, plen;
	char *mux[1] = { "/mplex/6.7.0" };

	side_init(&r, &rng, false, NULL, true);
	side_init(&i, &rng, true, NULL, true);
	cr_assert_eq(noise_p2p_write(&i.np, buf, sizeof(buf), &n), 0);
	cr_assert_eq(noise_p2p_read(&r.np, buf + 2, n - 2), 0);
	P2p__NoiseHandshakePayload msg = P2P__NOISE_HANDSHAKE_PAYLOAD__INIT;
	P2p__NoiseExtensions ext = P2P__NOISE_EXTENSIONS__INIT;

	memcpy(sig_input, NOISE_P2P_SIG_PREFIX, 24);
	memcpy(sig_input + 24, r.np.hs.s_pub, 32);
	p2p_identity_sign(&r.idn, sig, sig_input, sizeof(sig_input));
	msg.has_identity_key = msg.has_identity_sig = 1;
	msg.identity_key.data = r.idn.pubkey_pb;
	msg.identity_key.len = 36;
	msg.identity_sig.data = sig;
	msg.identity_sig.len = 64;
	ext.n_stream_muxers = 1;
	ext.stream_muxers = mux;
	msg.extensions = &ext;
	plen = p2p__noise_handshake_payload__pack(&msg, payload);
	cr_assert_eq(noise_hs_write(&r.np.hs, payload, plen, buf, sizeof(buf), &n), 0);
	cr_assert_eq(noise_p2p_read(&i.np, buf, n), -ENOPROTOOPT);
}
