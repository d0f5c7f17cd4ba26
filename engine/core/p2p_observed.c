// SPDX-License-Identifier: MIT
/*
 * p2p_observed - our public addresses as the peers of a shard see them (identify
 * observedAddr) with our listen port: what DCUtR offers to punch to and what AutoNAT asks to
 * be dialled back on. A Linux NAT keeps the source port when it is free, and both dial from
 * the listen port.
 */
#include <netinet/in.h>
#include <string.h>

#include "engine.h"
#include "p2p/dcutr.h"
#include "p2p/identify.h"
#include "p2p_int.h"

/* p2p_observed_one - @rec's observed address with @ls's port into @bin; its length or 0. */
static size_t p2p_observed_one(const struct identify_record *rec, const struct sockaddr_storage *ls,
			       bool public_only, uint8_t bin[MADDR_MAX_LEN])
{
	struct sockaddr_storage ob;
	struct relay_addrs one;
	size_t len;
	int has_id;

	if (!rec || !rec->observed_len ||
	    maddr_to_sockaddr(rec->observed, rec->observed_len, &ob, NULL, &has_id) ||
	    ob.ss_family != ls->ss_family) {
		return 0;
	}
	if (ob.ss_family == AF_INET) {
		((struct sockaddr_in *)&ob)->sin_port = ((const struct sockaddr_in *)ls)->sin_port;
	} else {
		((struct sockaddr_in6 *)&ob)->sin6_port =
			((const struct sockaddr_in6 *)ls)->sin6_port;
	}
	if (maddr_from_sockaddr((struct sockaddr *)&ob, bin, MADDR_MAX_LEN, &len) ||
	    len > RELAY_MAX_ADDR) {
		return 0;
	}
	if (public_only) {
		one.n = 1;
		one.lens[0] = len;
		memcpy(one.b[0], bin, len);
		dcutr_filter_addrs(&one, false); /* public, dialable */
		if (!one.n) {
			return 0;
		}
	}
	return len;
}

size_t p2p_observed_addrs(struct p2p_shard *ps, bool public_only, uint8_t (*addrs)[MADDR_MAX_LEN],
			  size_t *alen, size_t max)
{
	struct p2p_eng *pe = p2p_pe(ps);
	struct sockaddr_storage ls;
	size_t n = 0;
	int has_id;

	if (maddr_to_sockaddr(pe->laddr, pe->laddr_len, &ls, NULL, &has_id)) {
		return 0;
	}
	for (uint32_t i = 0; i < P2P_CONNS_MAX && n < max; i++) {
		const struct p2p_sconn *sc = &ps->conns[i];
		size_t len, k;

		if (!sc->c || sc->is_link || sc->dead || !sc->established) {
			continue;
		}
		len = p2p_observed_one(p2p_conn_remote_info(sc->c), &ls, public_only, addrs[n]);
		for (k = 0; len && k < n; k++) {
			if (alen[k] == len && !memcmp(addrs[k], addrs[n], len)) {
				break;
			}
		}
		if (len && k == n) {
			alen[n++] = len;
		}
	}
	return n;
}
