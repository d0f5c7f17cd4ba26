// SPDX-License-Identifier: MIT
/* The tunnel's Noise NK transport, sans-IO (tun_noise.h). */
#include <errno.h>
#include <string.h>

#include "natx/err.h"
#include "natx/keytext.h"
#include "tun_noise.h"

/* tun_nk_prologue - TUN_NX_PROLOGUE || tver || pattern into @p; its length. */
static size_t tun_nk_prologue(uint8_t p[32])
{
	size_t n = sizeof(TUN_NX_PROLOGUE) - 1;

	memcpy(p, TUN_NX_PROLOGUE, n);
	p[n] = TUN_NX_TVER;
	p[n + 1] = TUN_NX_PATTERN_NK;
	return n + 2;
}

/* tun_nk_frame - append a NOISE frame around the next handshake message of @nk. */
static int tun_nk_frame(struct tun_nk *nk, struct wr *w)
{
	uint8_t msg[TUN_NX_HS_MSG];
	size_t n;
	int err;

	err = noise_hs_write(&nk->hs, NULL, 0, msg, sizeof(msg), &n);
	if (err) {
		return err;
	}
	if (tun_frame_header_write(w, TUN_T_NOISE, 4 + n) || wr_u8(w, TUN_NX_TVER) ||
	    wr_u8(w, TUN_NX_PATTERN_NK) || wr_be16(w, 0) || wr_bytes(w, msg, n)) {
		return -NATX_E_TOO_BIG;
	}
	return 0;
}

int tun_nk_client_start(struct tun_nk *nk, const uint8_t server_pub[TUN_NX_KEY_LEN],
			tun_random_fn rnd, void *rnd_arg, struct wr *w)
{
	uint8_t pro[32], e[NOISE_DH];
	size_t plen = tun_nk_prologue(pro);
	int err;

	memset(nk, 0, sizeof(*nk));
	err = rnd(rnd_arg, e, sizeof(e));
	if (!err) {
		err = noise_hs_init_nk(&nk->hs, true, pro, plen, NULL, server_pub, e);
	}
	crypto_wipe(e, sizeof(e));
	return err ?: tun_nk_frame(nk, w);
}

int tun_nk_server_init(struct tun_nk *nk, const uint8_t server_priv[TUN_NX_KEY_LEN],
		       tun_random_fn rnd, void *rnd_arg)
{
	uint8_t pro[32], e[NOISE_DH];
	size_t plen = tun_nk_prologue(pro);
	int err;

	memset(nk, 0, sizeof(*nk));
	nk->server = true;
	err = rnd(rnd_arg, e, sizeof(e));
	if (!err) {
		err = noise_hs_init_nk(&nk->hs, false, pro, plen, server_priv, NULL, e);
	}
	crypto_wipe(e, sizeof(e));
	return err;
}

/*
 * tun_nk_frame_read - check a NOISE frame's header and copy its handshake message to @msg.
 * 0, -NATX_E_PROTO, -EPROTONOSUPPORT.
 */
static int tun_nk_frame_read(const struct tun_frame *f, uint8_t msg[TUN_NX_HS_MSG])
{
	uint8_t tver, pattern;
	uint16_t rsv;
	struct rd r;

	if (f->type != TUN_T_NOISE || f->len < 4) {
		return -NATX_E_PROTO;
	}
	rd_init(&r, f->payload, f->len);
	if (rd_u8(&r, &tver) || rd_u8(&r, &pattern) || rd_be16(&r, &rsv)) {
		return -NATX_E_PROTO;
	}
	if (tver != TUN_NX_TVER || pattern != TUN_NX_PATTERN_NK) {
		return -EPROTONOSUPPORT;
	}
	if (rsv || rd_left(&r) != TUN_NX_HS_MSG || rd_copy(&r, msg, TUN_NX_HS_MSG)) {
		return -NATX_E_PROTO;
	}
	return 0;
}

int tun_nk_server_consume(struct tun_nk *nk, const struct tun_frame *f, struct wr *w)
{
	uint8_t msg[TUN_NX_HS_MSG], *pl;
	size_t plen;
	int err;

	if (!nk->server) {
		return -EINVAL;
	}
	err = tun_nk_frame_read(f, msg);
	if (err) {
		return err;
	}
	err = noise_hs_read(&nk->hs, msg, sizeof(msg), &pl, &plen);
	if (err) {
		/* The tag over the empty payload is keyed by es = DH(e, pinned key). */
		return err == -EBADMSG ? -EKEYREJECTED : err;
	}
	return tun_nk_frame(nk, w);
}

int tun_nk_client_consume(struct tun_nk *nk, const struct tun_frame *f, uint8_t *reason)
{
	uint8_t msg[TUN_NX_HS_MSG], *pl;
	struct tun_refuse ref;
	size_t plen;
	int err;

	*reason = 0;
	if (nk->server) {
		return -EINVAL;
	}
	if (f->type == TUN_T_REFUSE) {
		if (tun_refuse_read(f, &ref)) {
			return -NATX_E_PROTO;
		}
		*reason = ref.reason;
		return tun_reason_err(ref.reason);
	}
	err = tun_nk_frame_read(f, msg);
	if (err) {
		return err;
	}
	err = noise_hs_read(&nk->hs, msg, sizeof(msg), &pl, &plen);
	return err == -EBADMSG || err == -NATX_E_AUTH ? -EKEYREJECTED : err;
}

int tun_nk_split(struct tun_nk *nk, struct noise_cipher *tx, struct noise_cipher *rx)
{
	int err = noise_hs_split(&nk->hs, tx, rx);

	noise_hs_cleanup(&nk->hs);
	return err;
}

void tun_nk_cleanup(struct tun_nk *nk)
{
	noise_hs_cleanup(&nk->hs);
}

int tun_nx_seal(struct noise_cipher *tx, uint8_t *msg, size_t plen)
{
	int err;

	if (plen > TUN_NX_PLAIN_MAX) {
		return -NATX_E_TOO_BIG;
	}
	err = noise_seal(tx, msg + TUN_NX_LEN, plen);
	if (err) {
		return err;
	}
	msg[0] = (uint8_t)((plen + NOISE_TAG) >> 8);
	msg[1] = (uint8_t)(plen + NOISE_TAG);
	return 0;
}

size_t tun_nx_need(const uint8_t *buf, size_t len)
{
	if (len < TUN_NX_LEN) {
		return TUN_NX_LEN;
	}
	return TUN_NX_LEN + ((size_t)buf[0] << 8 | buf[1]);
}

int tun_nx_open(struct noise_cipher *rx, uint8_t *buf, size_t len, struct tun_nx_msg *m,
		size_t *need)
{
	size_t total = tun_nx_need(buf, len);
	int err;

	if (len >= TUN_NX_LEN && total < TUN_NX_LEN + NOISE_TAG) {
		return -NATX_E_PROTO;
	}
	if (len < total) {
		if (need) {
			*need = total;
		}
		return -EAGAIN;
	}
	err = noise_open(rx, buf + TUN_NX_LEN, total - TUN_NX_LEN);
	if (err) {
		return err;
	}
	m->pt = buf + TUN_NX_LEN;
	m->len = total - TUN_NX_OVERHEAD;
	m->total = total;
	return 0;
}

int tun_nx_key_parse(const char *text, uint8_t out[TUN_NX_KEY_LEN])
{
	return key32_parse(text, out);
}

void tun_nx_key_hex(const uint8_t key[TUN_NX_KEY_LEN], char out[2 * TUN_NX_KEY_LEN + 1])
{
	key32_hex(key, out);
}

void tun_nx_pubkey(uint8_t pub[TUN_NX_KEY_LEN], const uint8_t priv[TUN_NX_KEY_LEN])
{
	crypto_x25519_public(pub, priv);
}
