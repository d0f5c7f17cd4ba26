// SPDX-License-Identifier: MIT
/* Macaroon v2 binary codec and HMAC chain (macaroon.h). */
#include <string.h>

#include "natx/rd.h"
#include "macaroon.h"
#include "pay_crypto.h"
#include "pay_err.h"

/* libmacaroons MACAROON_KEY_GENERATOR: the HMAC key that turns a root key into sig_0's key. */
static const char mac_key_generator[] = "macaroons-key-generator";

struct mac_packet {
	uint64_t type;
	const uint8_t *data;
	size_t len;
};

/* mac_packet_read - one packet; EOS is a lone 0x00 with no length. */
static int mac_packet_read(struct rd *r, struct mac_packet *p)
{
	uint64_t len;

	if (rd_uvarint(r, &p->type)) {
		return -PAY_E_MAC_FORMAT;
	}
	if (p->type == MAC_FIELD_EOS) {
		p->data = NULL;
		p->len = 0;
		return 0;
	}
	if (rd_uvarint(r, &len) || len > rd_left(r) || rd_bytes(r, (size_t)len, &p->data)) {
		return -PAY_E_MAC_FORMAT;
	}
	p->len = (size_t)len;
	return 0;
}

/*
 * mac_section_read - packets up to EOS into the slots for location, identifier and vid
 * (vid NULL for the root section, where a vid is not allowed). Field types must strictly
 * increase. Returns the number of packets read (0: empty section) or -PAY_E_MAC_FORMAT.
 */
static int mac_section_read(struct rd *r, struct mac_packet *loc, struct mac_packet *id,
			    struct mac_packet *vid)
{
	uint64_t last = 0;
	int n = 0;

	loc->data = id->data = NULL;
	loc->len = id->len = 0;
	if (vid) {
		vid->data = NULL;
		vid->len = 0;
	}
	for (;;) {
		struct mac_packet p;

		if (mac_packet_read(r, &p)) {
			return -PAY_E_MAC_FORMAT;
		}
		if (p.type == MAC_FIELD_EOS) {
			return n;
		}
		if (p.type <= last) {
			return -PAY_E_MAC_FORMAT;
		}
		last = p.type;
		switch (p.type) {
		case MAC_FIELD_LOCATION:
			*loc = p;
			break;
		case MAC_FIELD_IDENTIFIER:
			*id = p;
			break;
		case MAC_FIELD_VID:
			if (!vid) {
				return -PAY_E_MAC_FORMAT;
			}
			*vid = p;
			break;
		default:
			return -PAY_E_MAC_FORMAT;
		}
		n++;
	}
}

int macaroon_decode(struct macaroon *m, const uint8_t *buf, size_t len)
{
	struct mac_packet loc, id, vid, sig;
	struct rd r;
	uint8_t version;
	int n, err = -PAY_E_MAC_FORMAT;

	memset(m, 0, sizeof(*m));
	if (len > MAC_MAX_LEN) {
		return -NATX_E_TOO_BIG;
	}
	rd_init(&r, buf, len);
	if (rd_u8(&r, &version) || version != MAC_VERSION_2) {
		goto out_zero;
	}
	n = mac_section_read(&r, &loc, &id, NULL);
	if (n < 0 || !id.data) {
		goto out_zero;
	}
	m->loc = loc.data;
	m->loc_len = loc.len;
	m->id = id.data;
	m->id_len = id.len;
	for (;;) {
		struct mac_caveat *c;

		n = mac_section_read(&r, &loc, &id, &vid);
		if (n < 0) {
			goto out_zero;
		}
		if (n == 0) {
			break; /* empty section: end of caveats */
		}
		if (!id.data) {
			goto out_zero;
		}
		if (m->n_cav == MAC_MAX_CAVEATS) {
			err = -NATX_E_TOO_BIG;
			goto out_zero;
		}
		c = &m->cav[m->n_cav++];
		c->id = id.data;
		c->id_len = id.len;
		c->vid = vid.data;
		c->vid_len = vid.len;
		c->loc = loc.data;
		c->loc_len = loc.len;
	}
	if (mac_packet_read(&r, &sig) || sig.type != MAC_FIELD_SIGNATURE ||
	    sig.len != MAC_SIG_LEN || rd_left(&r) != 0) {
		goto out_zero;
	}
	memcpy(m->sig, sig.data, MAC_SIG_LEN);
	return 0;

out_zero:
	memset(m, 0, sizeof(*m));
	return err;
}

/* mac_packet_write - one non-EOS packet; a NULL data pointer writes nothing (absent field). */
static int mac_packet_write(struct wr *w, enum mac_field type, const uint8_t *data, size_t len)
{
	if (!data) {
		return 0;
	}
	if (wr_uvarint(w, type) || wr_uvarint(w, len) || wr_bytes(w, data, len)) {
		return -NATX_E_TOO_BIG;
	}
	return 0;
}

int macaroon_encode(const struct macaroon *m, uint8_t *buf, size_t cap, size_t *out_len)
{
	struct wr w;

	wr_init(&w, buf, cap);
	if (wr_u8(&w, MAC_VERSION_2) ||
	    mac_packet_write(&w, MAC_FIELD_LOCATION, m->loc, m->loc_len) ||
	    mac_packet_write(&w, MAC_FIELD_IDENTIFIER, m->id, m->id_len) ||
	    wr_u8(&w, MAC_FIELD_EOS)) {
		return -NATX_E_TOO_BIG;
	}
	for (unsigned int i = 0; i < m->n_cav; i++) {
		const struct mac_caveat *c = &m->cav[i];

		if (mac_packet_write(&w, MAC_FIELD_LOCATION, c->loc, c->loc_len) ||
		    mac_packet_write(&w, MAC_FIELD_IDENTIFIER, c->id, c->id_len) ||
		    mac_packet_write(&w, MAC_FIELD_VID, c->vid, c->vid_len) ||
		    wr_u8(&w, MAC_FIELD_EOS)) {
			return -NATX_E_TOO_BIG;
		}
	}
	if (wr_u8(&w, MAC_FIELD_EOS) ||
	    mac_packet_write(&w, MAC_FIELD_SIGNATURE, m->sig, MAC_SIG_LEN)) {
		return -NATX_E_TOO_BIG;
	}
	*out_len = (size_t)(w.p - buf);
	return 0;
}

/* mac_sig_start - sig_0 = HMAC(HMAC("macaroons-key-generator", root), id). */
static void mac_sig_start(uint8_t sig[MAC_SIG_LEN], const void *root_key, size_t root_len,
			  const void *id, size_t id_len)
{
	uint8_t k[MAC_SIG_LEN];

	pay_hmac_sha256(k, mac_key_generator, sizeof(mac_key_generator) - 1, root_key, root_len);
	pay_hmac_sha256(sig, k, sizeof(k), id, id_len);
	pay_wipe(k, sizeof(k));
}

/* mac_sig_step - advance sig over one caveat (first- or third-party). */
static void mac_sig_step(uint8_t sig[MAC_SIG_LEN], const struct mac_caveat *c)
{
	uint8_t tmp[2 * MAC_SIG_LEN];

	if (!c->vid) {
		pay_hmac_sha256(sig, sig, MAC_SIG_LEN, c->id, c->id_len);
		return;
	}
	pay_hmac_sha256(tmp, sig, MAC_SIG_LEN, c->vid, c->vid_len);
	pay_hmac_sha256(tmp + MAC_SIG_LEN, sig, MAC_SIG_LEN, c->id, c->id_len);
	pay_hmac_sha256(sig, sig, MAC_SIG_LEN, tmp, sizeof(tmp));
	pay_wipe(tmp, sizeof(tmp));
}

int macaroon_mint(struct macaroon *m, const void *root_key, size_t root_len, const void *loc,
		  size_t loc_len, const void *id, size_t id_len)
{
	if (id_len > MAC_MAX_LEN || loc_len > MAC_MAX_LEN) {
		return -NATX_E_TOO_BIG;
	}
	memset(m, 0, sizeof(*m));
	m->loc = loc;
	m->loc_len = loc ? loc_len : 0;
	m->id = id;
	m->id_len = id_len;
	mac_sig_start(m->sig, root_key, root_len, id, id_len);
	return 0;
}

int macaroon_add_first_party(struct macaroon *m, const void *cid, size_t cid_len)
{
	struct mac_caveat *c;

	if (m->n_cav == MAC_MAX_CAVEATS || cid_len > MAC_MAX_LEN) {
		return -NATX_E_TOO_BIG;
	}
	c = &m->cav[m->n_cav++];
	memset(c, 0, sizeof(*c));
	c->id = cid;
	c->id_len = cid_len;
	mac_sig_step(m->sig, c);
	return 0;
}

void macaroon_signature_compute(const struct macaroon *m, const void *root_key, size_t root_len,
				uint8_t out[MAC_SIG_LEN])
{
	mac_sig_start(out, root_key, root_len, m->id, m->id_len);
	for (unsigned int i = 0; i < m->n_cav; i++) {
		mac_sig_step(out, &m->cav[i]);
	}
}

int macaroon_verify_sig(const struct macaroon *m, const void *root_key, size_t root_len)
{
	uint8_t sig[MAC_SIG_LEN];
	int err = 0;

	for (unsigned int i = 0; i < m->n_cav; i++) {
		if (m->cav[i].vid) {
			return -PAY_E_MAC_THIRD_PARTY;
		}
	}
	macaroon_signature_compute(m, root_key, root_len, sig);
	if (!pay_memeq(sig, m->sig, MAC_SIG_LEN)) {
		err = -PAY_E_MAC_SIG;
	}
	pay_wipe(sig, sizeof(sig));
	return err;
}
