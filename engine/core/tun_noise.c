// SPDX-License-Identifier: MIT
/*
 * The tunnel's encrypted transport on shard 0 (docs/tunnel.md "Encrypted transport"):
 * the per-conn Noise state (struct tun_nx: open in place, seal in place, one message at a time)
 * and encrypted TCP flows (struct tun_nxb). A paired data channel whose bytes must be sealed
 * and opened cannot be a splice flow, so the two sockets are bridged in user space with one
 * bounded buffer per direction, and each direction stops reading while its buffer is not yet
 * written out (back-pressure both ways):
 *   plain -> noise: recv into ct + 2 (at most 65519 bytes), seal in place, send;
 *   noise -> plain: recv ciphertext into raw, open in place, send the plaintext from there.
 * End of stream: the plain side's EOF is sent as an empty transport message (an authenticated
 * FIN) before the data channel is shut for writing; a data channel that ends without it was
 * cut, and the plain side is reset rather than shown a clean end.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "engine.h"
#include "natx/log.h"
#include "tun_eng.h"

#define MOD "tunnel"

enum {
	TUN_NX_RAW_MIN = 512, /* first receive buffer of a handshaking / control conn */
	TUN_NXB_RAW = 2 * TUN_NX_MSG_MAX, /* receive buffer of an encrypted flow */
	TUN_NXB_ROUNDS = 64, /* pump rounds per event before yielding to other conns */
};

struct tun_nx *tun_nx_new(void)
{
	return calloc(1, sizeof(struct tun_nx));
}

void tun_nx_free(struct tun_nx *nx)
{
	if (!nx) {
		return;
	}
	if (nx->nk) {
		tun_nk_cleanup(nx->nk);
		free(nx->nk);
	}
	noise_cipher_cleanup(&nx->tx);
	noise_cipher_cleanup(&nx->rx);
	free(nx->raw);
	free(nx->ct);
	crypto_wipe(nx, sizeof(*nx));
	free(nx);
}

/* tun_nx_ct_room - make ct hold @need bytes from its start (it must be fully sent). */
static int tun_nx_ct_room(struct tun_nx *nx, size_t need)
{
	uint8_t *p;

	if (nx->ct_off == nx->ct_len) {
		nx->ct_off = nx->ct_len = 0;
	}
	if (nx->ct_len + need <= nx->ct_cap) {
		return 0;
	}
	p = realloc(nx->ct, nx->ct_len + need);
	if (!p) {
		return -ENOMEM;
	}
	nx->ct = p;
	nx->ct_cap = (uint32_t)(nx->ct_len + need);
	return 0;
}

int tun_nx_raw(struct tun_nx *nx, const void *p, size_t len)
{
	int ret = tun_nx_ct_room(nx, len);

	if (!ret) {
		memcpy(nx->ct + nx->ct_len, p, len);
		nx->ct_len += (uint32_t)len;
	}
	return ret;
}

int tun_nx_start(struct tun_nx *nx)
{
	int ret;

	if (!nx->nk) {
		return -EINVAL;
	}
	ret = tun_nk_split(nx->nk, &nx->tx, &nx->rx);
	free(nx->nk);
	nx->nk = NULL;
	nx->on = !ret;
	return ret;
}

bool tun_nx_pending(const struct tun_nx *nx)
{
	size_t have;

	if (!nx->on) {
		return false;
	}
	if (nx->pt_len || nx->fin) {
		return true;
	}
	have = nx->raw_len - nx->raw_off;
	return have >= TUN_NX_LEN && have >= tun_nx_need(nx->raw + nx->raw_off, have);
}

int tun_nx_fill(int fd, struct tun_nx *nx)
{
	for (;;) {
		struct tun_nx_msg m;
		size_t need = TUN_NX_LEN;
		ssize_t n;
		int ret;

		if (nx->pt_len || nx->fin) {
			return 0;
		}
		ret = tun_nx_open(&nx->rx, nx->raw + nx->raw_off, nx->raw_len - nx->raw_off, &m,
				  &need);
		if (!ret) {
			nx->raw_off += (uint32_t)m.total;
			nx->pt = m.pt;
			nx->pt_len = (uint32_t)m.len;
			nx->fin = !m.len;
			continue;
		}
		if (ret != -EAGAIN) {
			return ret;
		}
		/* Keep the partial message at the front, then read behind it. */
		if (nx->raw_off) {
			memmove(nx->raw, nx->raw + nx->raw_off, nx->raw_len - nx->raw_off);
			nx->raw_len -= nx->raw_off;
			nx->raw_off = 0;
		}
		if (need > nx->raw_cap || !nx->raw) {
			size_t cap = need < TUN_NX_RAW_MIN ? TUN_NX_RAW_MIN : need;
			uint8_t *p = realloc(nx->raw, cap);

			if (!p) {
				return -ENOMEM;
			}
			nx->raw = p;
			nx->raw_cap = (uint32_t)cap;
		}
		n = recv(fd, nx->raw + nx->raw_len, nx->raw_cap - nx->raw_len, 0);
		if (n == 0) {
			return -EPIPE;
		}
		if (n < 0) {
			return errno == EAGAIN || errno == EINTR ? -EAGAIN : -errno;
		}
		nx->raw_len += (uint32_t)n;
	}
}

int tun_nx_seal_out(struct tun_nx *nx, const uint8_t *buf, size_t len)
{
	int ret = tun_nx_ct_room(nx, len + TUN_NX_OVERHEAD);

	if (ret) {
		return ret;
	}
	memcpy(nx->ct + nx->ct_len + TUN_NX_LEN, buf, len);
	ret = tun_nx_seal(&nx->tx, nx->ct + nx->ct_len, len);
	if (!ret) {
		nx->ct_len += (uint32_t)(len + TUN_NX_OVERHEAD);
	}
	return ret;
}

int tun_nx_send(int fd, struct tun_nx *nx)
{
	while (nx->ct_off < nx->ct_len) {
		ssize_t n = send(fd, nx->ct + nx->ct_off, nx->ct_len - nx->ct_off, MSG_NOSIGNAL);

		if (n < 0) {
			if (errno == EINTR) {
				continue;
			}
			return errno == EAGAIN ? -EAGAIN : -errno;
		}
		nx->ct_off += (uint32_t)n;
	}
	nx->ct_off = nx->ct_len = 0;
	return 0;
}

/* ---- encrypted TCP flows ---- */

/* tun_nxb_close - close both sides of the flow; @reset sends RST on the plain side. */
static void tun_nxb_close(struct shard *sh, struct tun_eng *t, struct tun_nxb *b, bool reset)
{
	int plain = b->plain, noise = b->noise;

	if (reset && plain >= 0) {
		struct linger lg = { .l_onoff = 1, .l_linger = 0 };

		setsockopt(t->conns[plain].fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
	}
	/* The second close may free b (last reference): read both indexes first. */
	if (plain >= 0) {
		tun_conn_close(sh, t, plain);
	}
	if (noise >= 0) {
		tun_conn_close(sh, t, noise);
	}
}

void tun_nxb_release(struct shard *sh, struct tun_eng *t, int idx)
{
	struct tun_nxb *b = t->conns[idx].nxb;

	t->conns[idx].nxb = NULL;
	if (b->plain == idx) {
		b->plain = -1;
	}
	if (b->noise == idx) {
		b->noise = -1;
	}
	if (--b->refs) {
		return;
	}
	stat_sub(&sh->st.flows_open, 1);
	stat_sub(&b->fwd->st[sh->idx].flows_open, 1);
	forward_put(b->fwd);
	free(b);
}

/*
 * tun_nxb_pump - move bytes both ways until nothing moves (or TUN_NXB_ROUNDS), then arm the
 * polls each blocked direction waits for. Closes the flow when both directions ended or on
 * an error.
 */
static void tun_nxb_pump(struct shard *sh, struct tun_eng *t, struct tun_nxb *b)
{
	struct tun_conn *pc = &t->conns[b->plain], *ncn = &t->conns[b->noise];
	struct tun_nx *nx = ncn->nx;
	bool want_pin = false, want_pout = false, want_nin = false, want_nout = false;
	int round, ret;

	for (round = 0; round < TUN_NXB_ROUNDS; round++) {
		bool moved = false;
		ssize_t n;

		want_pin = want_pout = want_nin = want_nout = false;
		/* noise -> plain */
		if (!b->down_done) {
			ret = tun_nx_fill(ncn->fd, nx);
			if (ret == -EAGAIN) {
				want_nin = true;
			} else if (ret == -EPIPE) {
				/* Cut without the authenticated FIN: reset, never a clean end. */
				goto abort;
			} else if (ret) {
				pr_debug(MOD, "encrypted flow: data channel: %s",
					 natx_strerror(ret));
				goto abort;
			} else if (nx->pt_len) {
				n = send(pc->fd, nx->pt, nx->pt_len, MSG_NOSIGNAL);
				if (n > 0) {
					nx->pt += n;
					nx->pt_len -= (uint32_t)n;
					stat_add(&sh->st.bytes_out, (uint64_t)n);
					stat_add(&b->fwd->st[sh->idx].bytes, (uint64_t)n);
					moved = true;
				} else if (n < 0 && errno == EAGAIN) {
					want_pout = true;
				} else if (n < 0 && errno != EINTR) {
					goto abort;
				}
			} else if (nx->fin) {
				shutdown(pc->fd, SHUT_WR);
				b->down_done = true;
				moved = true;
			}
		}
		/* plain -> noise */
		if (!b->up_done) {
			ret = tun_nx_send(ncn->fd, nx);
			if (ret == -EAGAIN) {
				want_nout = true;
			} else if (ret) {
				goto abort;
			} else if (b->plain_eof) {
				shutdown(ncn->fd, SHUT_WR);
				b->up_done = true;
				moved = true;
			} else {
				if (tun_nx_ct_room(nx, TUN_NX_MSG_MAX)) {
					goto abort;
				}
				n = recv(pc->fd, nx->ct + TUN_NX_LEN, TUN_NX_PLAIN_MAX, 0);
				if (n >= 0) {
					/* n == 0: the plain side ended; an empty message says so. */
					if (tun_nx_seal(&nx->tx, nx->ct, (size_t)n)) {
						goto abort;
					}
					nx->ct_len = (uint32_t)n + TUN_NX_OVERHEAD;
					b->plain_eof = !n;
					stat_add(&sh->st.bytes_in, (uint64_t)n);
					stat_add(&b->fwd->st[sh->idx].bytes, (uint64_t)n);
					moved = true;
				} else if (errno == EAGAIN) {
					want_pin = true;
				} else if (errno != EINTR) {
					goto abort;
				}
			}
		}
		if (b->up_done && b->down_done) {
			tun_nxb_close(sh, t, b, false);
			return;
		}
		if (!moved) {
			break;
		}
	}
	if (round == TUN_NXB_ROUNDS) {
		/* Still moving: let other conns run, then continue from a NOP completion. */
		tun_conn_kick(sh, t, b->noise);
		return;
	}
	tun_conn_arm(sh, t, b->plain, want_pin, want_pout);
	tun_conn_arm(sh, t, b->noise, want_nin, want_nout);
	return;
abort:
	tun_nxb_close(sh, t, b, true);
}

void tun_nxb_event(struct shard *sh, struct tun_eng *t, int idx, bool in, bool out)
{
	(void)in;
	(void)out;
	tun_nxb_pump(sh, t, t->conns[idx].nxb);
}

int tun_nxb_start(struct shard *sh, struct tun_eng *t, struct tun_svc *s, int plain_fd,
		  int noise_fd, struct tun_nx *nx)
{
	struct tun_nxb *b = calloc(1, sizeof(*b));
	uint8_t *raw = NULL;
	int p = -1, n = -1;

	if (b && nx->raw_cap < TUN_NXB_RAW) {
		/* Room for a whole message behind a partial one: fewer, larger reads. */
		raw = realloc(nx->raw, TUN_NXB_RAW);
		if (raw) {
			nx->raw = raw;
			nx->raw_cap = TUN_NXB_RAW;
		}
	} else {
		raw = nx->raw;
	}
	if (b && raw && !sh->draining) {
		p = tun_conn_new(t, plain_fd, TC_NXB_PLAIN, -1);
		n = p >= 0 ? tun_conn_new(t, noise_fd, TC_NXB_NOISE, -1) : -1;
	}
	if (n < 0) {
		if (p >= 0) {
			tun_conn_detach(sh, t, p);
		}
		free(b);
		tun_nx_free(nx);
		close(plain_fd);
		close(noise_fd);
		stat_add(&sh->st.drops, 1);
		return -ENOSPC;
	}
	b->plain = p;
	b->noise = n;
	b->fwd = s->fwd;
	b->refs = 2;
	forward_get(s->fwd);
	t->conns[p].nxb = b;
	t->conns[n].nxb = b;
	t->conns[n].nx = nx;
	stat_add(&sh->st.flows_open, 1);
	stat_add(&sh->st.flows_total, 1);
	stat_add(&s->fwd->st[sh->idx].flows_open, 1);
	stat_add(&s->fwd->st[sh->idx].flows_total, 1);
	if (s->bw_bytes) {
		s->bw_flows = 0; /* re-divide the cap now, before the first byte moves */
		tun_bw_apply(sh, s);
	}
	/* Bytes may already wait in nx (sealed START_TCP, plaintext after it): pump now. */
	tun_nxb_pump(sh, t, b);
	return 0;
}

void tun_nxb_abort_fwd(struct shard *sh, struct tun_eng *t, const struct forward *fwd)
{
	for (int i = 0; i < TUN_CONN_MAX && t->nconns; i++) {
		struct tun_conn *c = &t->conns[i];

		if (c->kind == TC_NXB_NOISE && c->nxb && c->nxb->fwd == fwd) {
			tun_nxb_close(sh, t, c->nxb, true);
		}
	}
}
