// SPDX-License-Identifier: MIT
/* PROXY protocol v2 header writer/reader and address conversion (tun_pp2.h). */
#include <errno.h>
#include <netinet/in.h>
#include <string.h>

#include "tun_pp2.h"

static const uint8_t pp2_sig[TUN_PP2_SIG_LEN] = { 0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d,
						  0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a };

/* pp2_as_v6 - a 16-byte IPv6 form of a (v4-mapped when a is IPv4). */
static void pp2_as_v6(uint8_t out[16], const struct tun_addr *a)
{
	if (a->family == 6) {
		memcpy(out, a->addr, 16);
		return;
	}
	memset(out, 0, 10);
	out[10] = 0xff;
	out[11] = 0xff;
	memcpy(out + 12, a->addr, 4);
}

int tun_pp2_write(struct wr *w, bool udp, const struct tun_addr *src, const struct tun_addr *dst)
{
	bool v6;

	if ((src->family != 4 && src->family != 6) || (dst->family != 4 && dst->family != 6)) {
		return -EINVAL;
	}
	v6 = src->family == 6 || dst->family == 6;
	if (wr_bytes(w, pp2_sig, sizeof(pp2_sig)) || wr_u8(w, 0x21) ||
	    wr_u8(w, (uint8_t)((v6 ? 0x20 : 0x10) | (udp ? 0x02 : 0x01))) ||
	    wr_be16(w, v6 ? 36 : 12)) {
		return -NATX_E_TOO_BIG;
	}
	if (v6) {
		uint8_t s6[16], d6[16];

		pp2_as_v6(s6, src);
		pp2_as_v6(d6, dst);
		if (wr_bytes(w, s6, 16) || wr_bytes(w, d6, 16)) {
			return -NATX_E_TOO_BIG;
		}
	} else if (wr_bytes(w, src->addr, 4) || wr_bytes(w, dst->addr, 4)) {
		return -NATX_E_TOO_BIG;
	}
	if (wr_be16(w, src->port) || wr_be16(w, dst->port)) {
		return -NATX_E_TOO_BIG;
	}
	return 0;
}

int tun_pp2_read(const uint8_t *buf, size_t len, struct tun_addr *src, struct tun_addr *dst,
		 bool *udp, size_t *consumed)
{
	const uint8_t *sig;
	uint8_t vc, fp;
	uint16_t alen;
	struct rd r;
	size_t need;

	rd_init(&r, buf, len);
	if (len < 16) {
		return len && memcmp(buf, pp2_sig, len < 12 ? len : 12) ? -NATX_E_PROTO : -EAGAIN;
	}
	if (rd_bytes(&r, 12, &sig) || rd_u8(&r, &vc) || rd_u8(&r, &fp) || rd_be16(&r, &alen) ||
	    memcmp(sig, pp2_sig, 12) || vc != 0x21) {
		return -NATX_E_PROTO;
	}
	need = (fp >> 4) == 1 ? 12 : (fp >> 4) == 2 ? 36 : 0;
	if (!need || ((fp & 0x0f) != 1 && (fp & 0x0f) != 2) || alen < need) {
		return -NATX_E_PROTO;
	}
	if (rd_left(&r) < alen) {
		return -EAGAIN;
	}
	memset(src, 0, sizeof(*src));
	memset(dst, 0, sizeof(*dst));
	src->family = dst->family = need == 12 ? 4 : 6;
	if (rd_copy(&r, src->addr, need == 12 ? 4 : 16) ||
	    rd_copy(&r, dst->addr, need == 12 ? 4 : 16) || rd_be16(&r, &src->port) ||
	    rd_be16(&r, &dst->port)) {
		return -NATX_E_PROTO;
	}
	*udp = (fp & 0x0f) == 2;
	*consumed = 16 + (size_t)alen; /* TLVs after the addresses are skipped */
	return 0;
}

int tun_addr_from_sockaddr(struct tun_addr *a, const struct sockaddr *sa, socklen_t len)
{
	memset(a, 0, sizeof(*a));
	if (sa->sa_family == AF_INET && len >= (socklen_t)sizeof(struct sockaddr_in)) {
		const struct sockaddr_in *in = (const struct sockaddr_in *)sa;

		a->family = 4;
		a->port = ntohs(in->sin_port);
		memcpy(a->addr, &in->sin_addr, 4);
		return 0;
	}
	if (sa->sa_family == AF_INET6 && len >= (socklen_t)sizeof(struct sockaddr_in6)) {
		const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;

		a->family = 6;
		a->port = ntohs(in6->sin6_port);
		memcpy(a->addr, &in6->sin6_addr, 16);
		return 0;
	}
	return -EINVAL;
}

int tun_addr_to_sockaddr(const struct tun_addr *a, struct sockaddr_storage *ss, socklen_t *len)
{
	memset(ss, 0, sizeof(*ss));
	if (a->family == 4) {
		struct sockaddr_in *in = (struct sockaddr_in *)ss;

		in->sin_family = AF_INET;
		in->sin_port = htons(a->port);
		memcpy(&in->sin_addr, a->addr, 4);
		*len = sizeof(*in);
		return 0;
	}
	if (a->family == 6) {
		struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;

		in6->sin6_family = AF_INET6;
		in6->sin6_port = htons(a->port);
		memcpy(&in6->sin6_addr, a->addr, 16);
		*len = sizeof(*in6);
		return 0;
	}
	return -EINVAL;
}
