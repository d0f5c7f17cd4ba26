// SPDX-License-Identifier: MIT
/*
 * libFuzzer target: the engine's frame reader over the encrypted transport (tun_conn_recv /
 * tun_nx_fill in engine/core/tun_noise.c under tun_conn_read_frame): received ciphertext is
 * buffered, cut into transport messages, opened in place and read as tunnel frames. The
 * input's plaintext is sealed into messages of a size the input picks, one ciphertext byte may
 * be flipped, and the result goes through a socketpair in chunks. Unflipped, every frame must
 * be exactly the next plaintext bytes; flipped, the reader must fail (never return forged
 * bytes); never a crash, an over-read or an unbounded buffer.
 *   data[0] chunk size, data[1] plaintext bytes per message, data[2..3] flip offset (BE,
 *   >= the ciphertext length: none), then the plaintext stream.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/tun_eng.h"
#include "tunnel/tun_crypto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int fuzz_rand(void *arg, void *buf, size_t len)
{
	memset(buf, arg ? 0x3c : 0x5a, len);
	return 0;
}

/* fuzz_keys - a real NK handshake with fixed keys: @tx seals what @rx opens. */
static void fuzz_keys(struct noise_cipher *tx, struct noise_cipher *rx)
{
	static const uint8_t priv[32] = { 9, 8, 7, 6, 5, 4, 3, 2, 1 };
	struct noise_cipher a, b;
	struct tun_nk cli, srv;
	uint8_t m1[64], m2[64], pub[32], reason;
	struct tun_frame f;
	struct wr w;

	tun_nx_pubkey(pub, priv);
	wr_init(&w, m1, sizeof(m1));
	if (tun_nk_client_start(&cli, pub, fuzz_rand, NULL, &w) ||
	    tun_nk_server_init(&srv, priv, fuzz_rand, (void *)1) ||
	    tun_frame_parse(m1, TUN_NX_FRAME_LEN, TUN_CTRL_PAYLOAD_MAX, &f)) {
		abort();
	}
	wr_init(&w, m2, sizeof(m2));
	if (tun_nk_server_consume(&srv, &f, &w) ||
	    tun_frame_parse(m2, TUN_NX_FRAME_LEN, TUN_CTRL_PAYLOAD_MAX, &f) ||
	    tun_nk_client_consume(&cli, &f, &reason) || tun_nk_split(&cli, tx, &a) ||
	    tun_nk_split(&srv, &b, rx)) {
		abort();
	}
	noise_cipher_cleanup(&a);
	noise_cipher_cleanup(&b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static uint8_t ct[20000 * 2 + 4096];
	struct tun_conn c = { 0 };
	struct noise_cipher tx;
	size_t chunk, per, flip, clen = 0, off = 0, consumed = 0;
	const uint8_t *pt;
	size_t ptlen;
	int sv[2];

	if (size < 4 || size > 20000) {
		return 0;
	}
	chunk = 1 + data[0] * 16;
	per = 1 + data[1];
	flip = (size_t)data[2] << 8 | data[3];
	pt = data + 4;
	ptlen = size - 4;
	c.nx = tun_nx_new();
	if (!c.nx) {
		return 0;
	}
	fuzz_keys(&tx, &c.nx->rx);
	c.nx->on = true;
	for (size_t i = 0; i < ptlen; i += per) {
		size_t n = ptlen - i < per ? ptlen - i : per;

		memcpy(ct + clen + TUN_NX_LEN, pt + i, n);
		if (tun_nx_seal(&tx, ct + clen, n)) {
			abort();
		}
		clen += n + TUN_NX_OVERHEAD;
	}
	if (flip < clen) {
		ct[flip] ^= 0x01;
	}
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv)) {
		goto out_nx;
	}
	c.fd = sv[0];
	c.in_cap = TUN_HDR_LEN + TUN_UDP_PAYLOAD_MAX;
	c.in = malloc(c.in_cap);
	if (!c.in) {
		goto close_pair;
	}
	while (off < clen || c.in_len || c.nx->pt_len) {
		struct tun_frame f;
		size_t n = clen - off < chunk ? clen - off : chunk;
		int ret;

		if (n && write(sv[1], ct + off, n) != (ssize_t)n) {
			break;
		}
		off += n;
		if (off == clen) {
			shutdown(sv[1], SHUT_WR);
		}
		ret = tun_conn_read_frame(&c, TUN_UDP_PAYLOAD_MAX, &f);
		if (c.nx->raw_cap > 2 * TUN_NX_MSG_MAX) {
			abort(); /* the receive buffer stays bounded */
		}
		if (ret == -EAGAIN) {
			if (off == clen) {
				abort(); /* EOF was written: the reader must see it */
			}
			continue;
		}
		if (ret) {
			break;
		}
		/* a frame is exactly the next plaintext bytes; a flipped byte never gets here
		 * with altered content */
		if (f.total != c.in_len || consumed + f.total > ptlen ||
		    memcmp(c.in, pt + consumed, f.total)) {
			abort();
		}
		consumed += f.total;
		c.in_len = 0;
	}
	free(c.in);
close_pair:
	close(sv[0]);
	close(sv[1]);
out_nx:
	noise_cipher_cleanup(&tx);
	tun_nx_free(c.nx);
	return 0;
}
