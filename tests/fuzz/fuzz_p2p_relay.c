// SPDX-License-Identifier: MIT
/*
 * libFuzzer: the message readers of relay v2 (hop, stop), DCUtR and AutoNAT, circuit address
 * parsing, and the
 * delimited-message reader fed in two pieces. Oracle: whatever decodes re-encodes and decodes
 * to the same type, status and addresses.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "autonat.h"
#include "dcutr.h"
#include "lpm.h"
#include "relay_client.h"
#include "relay_msg.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uint8_t out[RELAY_MAX_MSG * 2];

static void check_relay(const uint8_t *data, size_t size, bool hop)
{
	static struct relay_msg m, m2;
	size_t len;
	int err = hop ? relay_hop_decode(&m, data, size) : relay_stop_decode(&m, data, size);

	if (err) {
		return;
	}
	if (m.peer_addrs.n > RELAY_MAX_ADDRS || m.rsvp_addrs.n > RELAY_MAX_ADDRS ||
	    m.voucher_len > RELAY_MAX_VOUCHER) {
		abort();
	}
	err = hop ? relay_hop_encode(&m, out, sizeof(out), &len) :
		    relay_stop_encode(&m, out, sizeof(out), &len);
	if (err) {
		return; /* kept fields can exceed RELAY_MAX_MSG only if the input was near it */
	}
	{
		struct lpm lp;
		const uint8_t *msg;
		size_t used, mlen;

		lpm_init(&lp, RELAY_MAX_MSG);
		if (lpm_feed(&lp, out, len, &used, &msg, &mlen) != 1 || used != len) {
			abort();
		}
		err = hop ? relay_hop_decode(&m2, msg, mlen) : relay_stop_decode(&m2, msg, mlen);
	}
	if (err || m2.type != m.type || m2.status != m.status || m2.has_peer != m.has_peer ||
	    m2.peer_addrs.n != m.peer_addrs.n || m2.rsvp_addrs.n != m.rsvp_addrs.n ||
	    m2.voucher_len != m.voucher_len || m2.rsvp_expire != m.rsvp_expire) {
		abort();
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct dcutr_msg dm;
	static struct autonat_msg am, am2;
	static struct lpm lp;
	const uint8_t *msg;
	size_t used, mlen, len, split = size ? data[0] % (size + 1) : 0;
	int rc;

	{
		static uint8_t ra[512];
		struct peer_id r, t;
		size_t rl;

		(void)relay_circuit_parse(data, size, ra, sizeof(ra), &rl, &r, &t);
	}
	check_relay(data, size, true);
	check_relay(data, size, false);
	if (!dcutr_decode(&dm, data, size)) {
		if (dm.addrs.n > RELAY_MAX_ADDRS ||
		    (dm.type != DCUTR_TYPE_CONNECT && dm.type != DCUTR_TYPE_SYNC)) {
			abort();
		}
		dcutr_filter_addrs(&dm.addrs, false);
		if (dcutr_encode(&dm, out, sizeof(out), &len)) {
			abort();
		}
	}
	if (!autonat_decode(&am, data, size) && !autonat_encode(&am, out, sizeof(out), &len)) {
		lpm_init(&lp, AUTONAT_MAX_MSG);
		if (lpm_feed(&lp, out, len, &used, &msg, &mlen) != 1 ||
		    autonat_decode(&am2, msg, mlen) || am2.type != am.type ||
		    am2.status != am.status || am2.addrs.n != am.addrs.n) {
			abort();
		}
	}
	/* the delimited reader over a split input never takes more than one message */
	lpm_init(&lp, 64);
	rc = lpm_feed(&lp, data, split, &used, &msg, &mlen);
	if (rc == 0 && used != split) {
		abort();
	}
	if (rc == 0) {
		rc = lpm_feed(&lp, data + split, size - split, &used, &msg, &mlen);
	}
	if (rc == 1 && mlen > 64) {
		abort();
	}
	return 0;
}
