// SPDX-License-Identifier: MIT
/*
 * libFuzzer target: the tunnel's encrypted transport parsers (engine/tunnel/tun_noise.c).
 * The first input byte picks what the rest feeds:
 *   0: a server NK handshake, fed the frames the input holds (NOISE or anything else);
 *   1: a client NK handshake, fed the server's answer frames (NOISE, REFUSE, garbage);
 *   2: a transport stream after a real handshake (fixed keys): the input's first bytes sealed
 *      as genuine messages, the rest raw, then cut and opened message by message;
 *   3: the key text parser (hex / base64).
 * Must never crash, leak, read out of bounds or return plaintext from a forged message.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tun_crypto.h"
#include "tun_noise.h"

static const uint8_t fuzz_priv[32] = { 1,  2,  3,  4,  5,  6,  7,  8,  9,  10, 11,
				       12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22,
				       23, 24, 25, 26, 27, 28, 29, 30, 31 };

/* Deterministic "randomness" so crashes reproduce. */
static int fuzz_rand(void *arg, void *buf, size_t len)
{
	memset(buf, arg ? 0x3c : 0x5a, len);
	return 0;
}

/* fuzz_frames - run @fn on every whole frame in @data. */
static void fuzz_frames(const uint8_t *data, size_t size, struct tun_nk *nk, bool server)
{
	while (size) {
		struct tun_frame f;
		uint8_t out[128], reason;
		struct wr w;

		if (tun_frame_parse(data, size, TUN_CTRL_PAYLOAD_MAX, &f)) {
			return;
		}
		wr_init(&w, out, sizeof(out));
		if (server) {
			tun_nk_server_consume(nk, &f, &w);
		} else {
			tun_nk_client_consume(nk, &f, &reason);
		}
		data += f.total;
		size -= f.total;
	}
}

/* fuzz_stream - a real handshake, then the input as (partly genuine) transport messages. */
static void fuzz_stream(const uint8_t *data, size_t size)
{
	static uint8_t buf[3 * TUN_NX_MSG_MAX];
	struct noise_cipher ctx, crx, stx, srx;
	struct tun_nk cli, srv;
	uint8_t m1[64], m2[64], pub[32], reason;
	struct tun_frame f;
	size_t len = 0, genuine, off = 0;
	struct wr w;

	tun_nx_pubkey(pub, fuzz_priv);
	wr_init(&w, m1, sizeof(m1));
	if (tun_nk_client_start(&cli, pub, fuzz_rand, NULL, &w) ||
	    tun_nk_server_init(&srv, fuzz_priv, fuzz_rand, (void *)1) ||
	    tun_frame_parse(m1, TUN_NX_FRAME_LEN, TUN_CTRL_PAYLOAD_MAX, &f)) {
		abort();
	}
	wr_init(&w, m2, sizeof(m2));
	if (tun_nk_server_consume(&srv, &f, &w) ||
	    tun_frame_parse(m2, TUN_NX_FRAME_LEN, TUN_CTRL_PAYLOAD_MAX, &f) ||
	    tun_nk_client_consume(&cli, &f, &reason) || tun_nk_split(&cli, &ctx, &crx) ||
	    tun_nk_split(&srv, &stx, &srx)) {
		abort();
	}
	/* the first byte: how many leading input bytes become genuine messages (of <= 255) */
	genuine = size ? data[0] : 0;
	if (size) {
		data++;
		size--;
	}
	if (genuine > size) {
		genuine = size;
	}
	for (size_t i = 0; i < genuine; i += 255) {
		size_t n = genuine - i < 255 ? genuine - i : 255;

		memcpy(buf + len + TUN_NX_LEN, data + i, n);
		if (tun_nx_seal(&ctx, buf + len, n)) {
			abort();
		}
		len += n + TUN_NX_OVERHEAD;
	}
	if (size - genuine > sizeof(buf) - len) {
		size = genuine + sizeof(buf) - len;
	}
	memcpy(buf + len, data + genuine, size - genuine);
	len += size - genuine;
	for (size_t i = 0; off < len; i++) {
		struct tun_nx_msg m;
		size_t need;
		int ret = tun_nx_open(&srx, buf + off, len - off, &m, &need);

		if (ret == -EAGAIN && (need < TUN_NX_LEN || need > TUN_NX_MSG_MAX)) {
			abort();
		}
		if (ret) {
			break;
		}
		/* a genuine message opens to exactly what was sealed */
		if (off + m.total > len || m.len > TUN_NX_PLAIN_MAX ||
		    (i * 255 < genuine && memcmp(m.pt, data + i * 255, m.len))) {
			abort();
		}
		off += m.total;
	}
	noise_cipher_cleanup(&ctx);
	noise_cipher_cleanup(&crx);
	noise_cipher_cleanup(&stx);
	noise_cipher_cleanup(&srx);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct tun_nk nk;
	uint8_t pub[32], out[64], key[32];
	struct wr w;
	char text[128];

	if (!size) {
		return 0;
	}
	switch (data[0] & 3) {
	case 0:
		tun_nk_server_init(&nk, fuzz_priv, fuzz_rand, NULL);
		fuzz_frames(data + 1, size - 1, &nk, true);
		tun_nk_cleanup(&nk);
		break;
	case 1:
		tun_nx_pubkey(pub, fuzz_priv);
		wr_init(&w, out, sizeof(out));
		tun_nk_client_start(&nk, pub, fuzz_rand, NULL, &w);
		fuzz_frames(data + 1, size - 1, &nk, false);
		tun_nk_cleanup(&nk);
		break;
	case 2:
		fuzz_stream(data + 1, size - 1);
		break;
	default:
		if (size - 1 < sizeof(text)) {
			memcpy(text, data + 1, size - 1);
			text[size - 1] = 0;
			tun_nx_key_parse(text, key);
		}
		break;
	}
	return 0;
}
