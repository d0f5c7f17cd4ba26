/* SPDX-License-Identifier: MIT */
/*
 * Macaroons in the version-2 binary format of libmacaroons and go-macaroon (gopkg.in/macaroon.v2),
 * the format aperture and lnd use for L402 tokens.
 *
 * Wire format (every packet is uvarint field type, uvarint length, payload; EOS is one 0x00):
 *   0x02                                 format version
 *   [1 location] 2 identifier  EOS       root section, field types strictly increasing
 *   { [1 location] 2 id [4 vid] EOS }*   one section per caveat (no vid: first-party)
 *   EOS                                  end of caveats
 *   6 signature (32 bytes)               no trailing EOS
 *
 * Signature chain (libmacaroons macaroons.c, go-macaroon crypto.go):
 *   k     = HMAC-SHA256(key = "macaroons-key-generator", msg = root key)
 *   sig_0 = HMAC-SHA256(k, identifier)
 *   first-party caveat c:       sig = HMAC(sig, c)
 *   third-party caveat (v, c):  sig = HMAC(sig, HMAC(sig, v) || HMAC(sig, c))
 *
 * Ownership: struct macaroon never owns bytes. macaroon_decode() points into the buffer it
 * was given; macaroon_mint()/macaroon_add_first_party() point at the caller's strings. Those
 * buffers must outlive the struct. Nothing here allocates.
 */
#ifndef NATX_PAY_MACAROON_H
#define NATX_PAY_MACAROON_H

#include <stddef.h>
#include <stdint.h>

enum {
	MAC_SIG_LEN = 32,
	MAC_MAX_CAVEATS = 32, /* more caveats than this: -NATX_E_TOO_BIG */
	MAC_MAX_LEN = 16384, /* largest serialized macaroon accepted or produced */
	MAC_VERSION_2 = 2, /* first byte of the binary v2 format */
};

/* Field types of the v2 binary format (libmacaroons doc/format.txt, go-macaroon packet-v2.go). */
enum mac_field {
	MAC_FIELD_EOS = 0,
	MAC_FIELD_LOCATION = 1,
	MAC_FIELD_IDENTIFIER = 2,
	MAC_FIELD_VID = 4,
	MAC_FIELD_SIGNATURE = 6,
};

struct mac_caveat {
	const uint8_t *id; /* caveat identifier (condition for first-party caveats) */
	size_t id_len;
	const uint8_t *vid; /* verification id; NULL for first-party caveats */
	size_t vid_len;
	const uint8_t *loc; /* location hint; NULL when absent */
	size_t loc_len;
};

struct macaroon {
	const uint8_t *loc; /* location hint; NULL when absent */
	size_t loc_len;
	const uint8_t *id; /* identifier (L402: 66-byte v0 identifier) */
	size_t id_len;
	struct mac_caveat cav[MAC_MAX_CAVEATS];
	unsigned int n_cav;
	uint8_t sig[MAC_SIG_LEN]; /* current signature (end of the HMAC chain) */
};

/*
 * macaroon_decode - parse one v2 binary macaroon occupying exactly buf[0..len). On success
 * *m points into buf. Returns 0, -PAY_E_MAC_FORMAT for anything malformed (bad version, field
 * order, unknown field, truncated packet, trailing bytes, signature not 32 bytes), or
 * -NATX_E_TOO_BIG (more than MAC_MAX_CAVEATS caveats, or len > MAC_MAX_LEN). On failure *m is
 * zeroed.
 */
int macaroon_decode(struct macaroon *m, const uint8_t *buf, size_t len)
	__attribute__((warn_unused_result));

/*
 * macaroon_encode - serialize m in v2 binary into buf. Writes *out_len bytes. Returns 0 or
 * -NATX_E_TOO_BIG (buf too small; contents then unspecified).
 */
int macaroon_encode(const struct macaroon *m, uint8_t *buf, size_t cap, size_t *out_len);

/*
 * macaroon_mint - start a macaroon with no caveats: sig = HMAC(derive(root), id). loc may be
 * NULL. Strings are borrowed. Returns 0, or -NATX_E_TOO_BIG for an identifier or location
 * longer than MAC_MAX_LEN.
 */
int macaroon_mint(struct macaroon *m, const void *root_key, size_t root_len, const void *loc,
		  size_t loc_len, const void *id, size_t id_len);

/*
 * macaroon_add_first_party - append caveat cid (borrowed) and advance the signature. Returns 0
 * or -NATX_E_TOO_BIG (m unchanged) when the caveat table is full.
 */
int macaroon_add_first_party(struct macaroon *m, const void *cid, size_t cid_len);

/*
 * macaroon_signature_compute - the signature m would carry if minted under root_key with its
 * current caveats (third-party caveats included, using their vid as carried).
 */
void macaroon_signature_compute(const struct macaroon *m, const void *root_key, size_t root_len,
				uint8_t out[MAC_SIG_LEN]);

/*
 * macaroon_verify_sig - check m's HMAC chain under root_key in constant time. Returns 0,
 * -PAY_E_MAC_THIRD_PARTY when m carries a third-party caveat (discharge macaroons are not
 * supported, so such a macaroon is refused before any key is used), or -PAY_E_MAC_SIG.
 */
int macaroon_verify_sig(const struct macaroon *m, const void *root_key, size_t root_len)
	__attribute__((warn_unused_result));

#endif
