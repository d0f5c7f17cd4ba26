// SPDX-License-Identifier: MIT
/* Tunnel frame reader and message codecs (engine/tunnel/tun_frame.c). */
#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>

#include "natx/err.h"
#include "tun_wire.h"

static uint8_t buf[TUN_HDR_LEN + TUN_UDP_PAYLOAD_MAX + 16];

/* t_cut - parse the single frame in buf[0..len) and check it spans exactly len bytes. */
static struct tun_frame t_cut(size_t len, size_t max)
{
	struct tun_frame f;

	cr_assert_eq(tun_frame_parse(buf, len, max, &f), 0);
	cr_assert_eq(f.total, len);
	/* every proper prefix is "need more", never an error and never a frame */
	for (size_t i = 0; i < len; i++) {
		struct tun_frame g;

		cr_assert_eq(tun_frame_parse(buf, i, max, &g), -EAGAIN, "prefix %zu of %zu", i,
			     len);
	}
	return f;
}

static void t_addr_eq(const struct tun_addr *a, const struct tun_addr *b)
{
	cr_assert_eq(a->family, b->family);
	cr_assert_eq(a->port, b->port);
	cr_assert_arr_eq(a->addr, b->addr, a->family == 6 ? 16 : 4);
}

static size_t t_len(const struct wr *w)
{
	return (size_t)(w->p - buf);
}

Test(tun_frame, hello_challenge_refuse_round_trip)
{
	struct tun_hello h = { 1, 1, TUN_CHAN_DATA }, h2;
	struct tun_challenge c = { .version = 1 }, c2;
	struct tun_refuse r = { TUN_R_REPLAY, 1, 1 }, r2;
	struct tun_frame f;
	struct wr w;

	wr_init(&w, buf, sizeof(buf));
	cr_assert_eq(tun_hello_write(&w, &h), 0);
	cr_assert_eq(t_len(&w), 12);
	cr_assert_arr_eq(buf, "\x01\x00\x00\x08NTUN\x01\x01\x02\x00", 12);
	f = t_cut(t_len(&w), TUN_CTRL_PAYLOAD_MAX);
	cr_assert_eq(tun_hello_read(&f, &h2), 0);
	cr_assert_eq(h2.chan, TUN_CHAN_DATA);

	memset(c.nonce, 0xab, TUN_NONCE_LEN);
	wr_init(&w, buf, sizeof(buf));
	cr_assert_eq(tun_challenge_write(&w, &c), 0);
	f = t_cut(t_len(&w), TUN_CTRL_PAYLOAD_MAX);
	cr_assert_eq(tun_challenge_read(&f, &c2), 0);
	cr_assert_arr_eq(c2.nonce, c.nonce, TUN_NONCE_LEN);
	cr_assert_eq(tun_hello_read(&f, &h2), -NATX_E_PROTO, "type is checked");

	wr_init(&w, buf, sizeof(buf));
	cr_assert_eq(tun_refuse_write(&w, &r), 0);
	f = t_cut(t_len(&w), TUN_CTRL_PAYLOAD_MAX);
	cr_assert_eq(tun_refuse_read(&f, &r2), 0);
	cr_assert_eq(r2.reason, TUN_R_REPLAY);
	cr_assert_str_eq(tun_reason_name(r2.reason), "replay");
}

Test(tun_frame, auth_round_trip_and_signed_prefix)
{
	const uint8_t cred[] = { 2, 1, 4, 'l', 's', 'a', 't' };
	struct tun_auth a = { .kind = TUN_CRED_L402,
			      .service_len = 6,
			      .service = (const uint8_t *)"tunnel",
			      .cred_len = sizeof(cred),
			      .cred = cred };
	struct tun_auth b;
	struct tun_frame f;
	struct wr w;

	memset(a.client_nonce, 7, TUN_NONCE_LEN);
	memset(a.mac, 9, TUN_MAC_LEN);
	wr_init(&w, buf, sizeof(buf));
	cr_assert_eq(tun_auth_write(&w, &a), 0);
	f = t_cut(t_len(&w), TUN_CTRL_PAYLOAD_MAX);
	cr_assert_eq(tun_auth_read(&f, &b), 0);
	cr_assert_eq(b.kind, TUN_CRED_L402);
	cr_assert_eq(b.service_len, 6);
	cr_assert_arr_eq(b.service, "tunnel", 6);
	cr_assert_eq(b.cred_len, sizeof(cred));
	cr_assert_arr_eq(b.cred, cred, sizeof(cred));
	cr_assert_arr_eq(b.client_nonce, a.client_nonce, TUN_NONCE_LEN);
	cr_assert_arr_eq(b.mac, a.mac, TUN_MAC_LEN);
	cr_assert_eq(b.signed_len, tun_auth_signed_len(&a));
	cr_assert_eq(b.signed_part, f.payload);
	cr_assert_eq(b.signed_len + TUN_MAC_LEN, f.len);
}

Test(tun_frame, auth_rejects_bad_names_kinds_and_lengths)
{
	struct tun_auth a = { .kind = TUN_CRED_TOKEN,
			      .service_len = 3,
			      .service = (const uint8_t *)"a/b" };
	struct tun_auth b;
	struct tun_frame f;
	struct wr w;

	wr_init(&w, buf, sizeof(buf));
	cr_assert_eq(tun_auth_write(&w, &a), -EINVAL, "'/' in a service name");
	a.service = (const uint8_t *)"abc";
	cr_assert_eq(tun_auth_write(&w, &a), 0);
	f = t_cut(t_len(&w), TUN_CTRL_PAYLOAD_MAX);
	cr_assert_eq(tun_auth_read(&f, &b), 0);
	buf[4] = 9; /* unknown credential kind */
	cr_assert_eq(tun_auth_read(&f, &b), -NATX_E_PROTO);
	buf[4] = TUN_CRED_L402; /* L402 with an empty blob */
	cr_assert_eq(tun_auth_read(&f, &b), -NATX_E_PROTO);
	buf[4] = TUN_CRED_TOKEN;
	buf[5] = 60; /* service length beyond the payload */
	cr_assert_eq(tun_auth_read(&f, &b), -NATX_E_PROTO);
	buf[5] = 3;
	f.len--; /* one byte short */
	cr_assert_eq(tun_auth_read(&f, &b), -NATX_E_PROTO);
}

Test(tun_frame, control_and_data_messages_round_trip)
{
	struct tun_auth_ok ok = { .heartbeat_interval = 30, .heartbeat_timeout = 90 }, ok2;
	struct tun_data_auth d, d2;
	struct tun_start st = { .src = { 4, 40000, { 198, 51, 100, 7 } },
				.dst = { 6, 443, { 0x20, 0x01, 0x0d, 0xb8, [15] = 1 } } },
			 st2;
	uint8_t nonce[TUN_NONCE_LEN], n2[TUN_NONCE_LEN], mac[TUN_MAC_LEN], reason;
	uint32_t seq;
	struct tun_frame f;
	struct wr w;

	memset(ok.session_id, 1, sizeof(ok.session_id));
	memset(ok.mac, 2, sizeof(ok.mac));
	wr_init(&w, buf, sizeof(buf));
	cr_assert_eq(tun_auth_ok_write(&w, &ok), 0);
	f = t_cut(t_len(&w), TUN_CTRL_PAYLOAD_MAX);
	cr_assert_eq(tun_auth_ok_read(&f, &ok2), 0);
	cr_assert_arr_eq(&ok2, &ok, sizeof(ok));

	memset(&d, 3, sizeof(d));
	wr_init(&w, buf, sizeof(buf));
	cr_assert_eq(tun_data_auth_write(&w, &d), 0);
	f = t_cut(t_len(&w), TUN_CTRL_PAYLOAD_MAX);
	cr_assert_eq(tun_data_auth_read(&f, &d2), 0);
	cr_assert_arr_eq(&d2, &d, sizeof(d));

	memset(mac, 4, sizeof(mac));
	wr_init(&w, buf, sizeof(buf));
	cr_assert_eq(tun_data_ok_write(&w, mac), 0);
	f = t_cut(t_len(&w), TUN_CTRL_PAYLOAD_MAX);
	cr_assert_eq(tun_data_ok_read(&f, n2), 0);
	cr_assert_arr_eq(n2, mac, TUN_MAC_LEN);

	wr_init(&w, buf, sizeof(buf));
	cr_assert_eq(tun_heartbeat_write(&w, true, 0xdeadbeef), 0);
	f = t_cut(t_len(&w), TUN_CTRL_PAYLOAD_MAX);
	cr_assert_eq(f.type, TUN_T_HEARTBEAT_ACK);
	cr_assert_eq(tun_heartbeat_read(&f, &seq), 0);
	cr_assert_eq(seq, 0xdeadbeef);

	memset(nonce, 5, sizeof(nonce));
	wr_init(&w, buf, sizeof(buf));
	cr_assert_eq(tun_create_data_write(&w, nonce), 0);
	f = t_cut(t_len(&w), TUN_CTRL_PAYLOAD_MAX);
	cr_assert_eq(tun_create_data_read(&f, n2), 0);
	cr_assert_arr_eq(n2, nonce, TUN_NONCE_LEN);

	wr_init(&w, buf, sizeof(buf));
	cr_assert_eq(tun_goaway_write(&w, TUN_R_EXPIRED), 0);
	f = t_cut(t_len(&w), TUN_CTRL_PAYLOAD_MAX);
	cr_assert_eq(tun_goaway_read(&f, &reason), 0);
	cr_assert_eq(reason, TUN_R_EXPIRED);

	wr_init(&w, buf, sizeof(buf));
	cr_assert_eq(tun_start_write(&w, false, &st), 0);
	cr_assert_eq(t_len(&w), 4 + 8 + 20);
	f = t_cut(t_len(&w), TUN_CTRL_PAYLOAD_MAX);
	cr_assert_eq(f.type, TUN_T_START_TCP);
	cr_assert_eq(tun_start_read(&f, &st2), 0);
	t_addr_eq(&st2.src, &st.src);
	t_addr_eq(&st2.dst, &st.dst);

	wr_init(&w, buf, sizeof(buf));
	cr_assert_eq(tun_start_write(&w, true, NULL), 0);
	f = t_cut(t_len(&w), TUN_CTRL_PAYLOAD_MAX);
	cr_assert_eq(f.type, TUN_T_START_UDP);
	cr_assert_eq(tun_start_read(&f, &st2), 0);
}

Test(tun_frame, udp_frames_carry_session_ids_and_explicit_lengths)
{
	static uint8_t dgram[TUN_UDP_DGRAM_MAX + 1];
	struct tun_udp u = { .session = 77,
			     .src = { 4, 5353, { 10, 0, 0, 1 } },
			     .dst = { 4, 53, { 192, 0, 2, 1 } } },
		       u2;
	struct tun_frame f;
	struct wr w;

	wr_init(&w, buf, sizeof(buf));
	cr_assert_eq(tun_udp_open_write(&w, &u), 0);
	f = t_cut(t_len(&w), TUN_UDP_PAYLOAD_MAX);
	cr_assert_eq(tun_udp_read(&f, &u2), 0);
	cr_assert_eq(u2.session, 77);
	t_addr_eq(&u2.src, &u.src);
	t_addr_eq(&u2.dst, &u.dst);

	/* an empty datagram and the largest one both survive */
	wr_init(&w, buf, sizeof(buf));
	cr_assert_eq(tun_udp_data_write(&w, 9, dgram, 0), 0);
	f = t_cut(t_len(&w), TUN_UDP_PAYLOAD_MAX);
	cr_assert_eq(tun_udp_read(&f, &u2), 0);
	cr_assert_eq(u2.len, 0);
	for (size_t i = 0; i < sizeof(dgram); i++) {
		dgram[i] = (uint8_t)(i * 31);
	}
	wr_init(&w, buf, sizeof(buf));
	cr_assert_eq(tun_udp_data_write(&w, 0xffffffff, dgram, TUN_UDP_DGRAM_MAX), 0);
	cr_assert_eq(tun_frame_parse(buf, t_len(&w), TUN_UDP_PAYLOAD_MAX, &f), 0);
	cr_assert_eq(tun_udp_read(&f, &u2), 0);
	cr_assert_eq(u2.session, 0xffffffff);
	cr_assert_eq(u2.len, TUN_UDP_DGRAM_MAX);
	cr_assert_arr_eq(u2.data, dgram, TUN_UDP_DGRAM_MAX);
	cr_assert_eq(tun_udp_data_write(&w, 1, dgram, TUN_UDP_DGRAM_MAX + 1), -NATX_E_TOO_BIG);

	wr_init(&w, buf, sizeof(buf));
	cr_assert_eq(tun_udp_close_write(&w, 5), 0);
	f = t_cut(t_len(&w), TUN_UDP_PAYLOAD_MAX);
	cr_assert_eq(f.type, TUN_T_UDP_CLOSE);
	cr_assert_eq(tun_udp_read(&f, &u2), 0);
	cr_assert_eq(u2.session, 5);
}

Test(tun_frame, several_frames_back_to_back_are_cut_one_by_one)
{
	struct tun_frame f;
	struct wr w;
	size_t off = 0;
	uint32_t seq;

	wr_init(&w, buf, sizeof(buf));
	for (uint32_t i = 0; i < 10; i++) {
		cr_assert_eq(tun_heartbeat_write(&w, i & 1, i), 0);
	}
	for (uint32_t i = 0; i < 10; i++) {
		cr_assert_eq(tun_frame_parse(buf + off, t_len(&w) - off, 64, &f), 0);
		cr_assert_eq(tun_heartbeat_read(&f, &seq), 0);
		cr_assert_eq(seq, i);
		off += f.total;
	}
	cr_assert_eq(off, t_len(&w));
}

Test(tun_frame, oversized_unknown_and_flagged_frames_are_refused)
{
	struct tun_frame f;
	/* a declared length above the state's limit is refused from the header alone */
	const uint8_t big[] = { TUN_T_AUTH, 0, 0x12, 0x01 };
	const uint8_t udp_ok[] = { TUN_T_UDP_DATA, 0, 0xff, 0xff };
	const uint8_t flags[] = { TUN_T_HEARTBEAT, 1, 0, 4, 0, 0, 0, 0 };
	/* rathole's ControlChannelHello (bincode: u32 LE tag 0, version 1) */
	const uint8_t rathole[] = { 0, 0, 0, 0, 1 };

	cr_assert_eq(tun_frame_parse(big, sizeof(big), TUN_CTRL_PAYLOAD_MAX, &f), -NATX_E_TOO_BIG);
	cr_assert_eq(tun_frame_parse(udp_ok, sizeof(udp_ok), TUN_CTRL_PAYLOAD_MAX, &f),
		     -NATX_E_TOO_BIG);
	cr_assert_eq(tun_frame_parse(udp_ok, sizeof(udp_ok), TUN_UDP_PAYLOAD_MAX, &f), -EAGAIN);
	cr_assert_eq(tun_frame_parse(flags, sizeof(flags), 64, &f), -NATX_E_PROTO);
	cr_assert_eq(tun_frame_parse(rathole, 1, 64, &f), -NATX_E_PROTO, "judged on byte one");
	for (unsigned int t = 0; t < 256; t++) {
		uint8_t hdr[4] = { (uint8_t)t, 0, 0, 0 };
		int r = tun_frame_parse(hdr, 4, 64, &f);

		cr_assert_eq(r, tun_type_known((uint8_t)t) ? 0 : -NATX_E_PROTO, "type %u", t);
	}
}

Test(tun_frame, wrong_payload_lengths_are_refused_by_every_reader)
{
	uint8_t payload[64] = { 0 }, mac[TUN_MAC_LEN], nonce[TUN_NONCE_LEN], reason;
	struct tun_frame f = { .payload = payload };
	struct tun_hello h;
	struct tun_challenge c;
	struct tun_auth_ok ok;
	struct tun_data_auth d;
	struct tun_refuse r;
	struct tun_start st;
	struct tun_udp u;
	uint32_t seq;

	for (f.len = 0; f.len < sizeof(payload); f.len++) {
		f.type = TUN_T_HELLO;
		cr_assert_eq(tun_hello_read(&f, &h), -NATX_E_PROTO); /* zero magic */
		f.type = TUN_T_CHALLENGE;
		cr_assert_eq(tun_challenge_read(&f, &c), -NATX_E_PROTO); /* version 0 */
		f.type = TUN_T_AUTH_OK;
		cr_assert_eq(tun_auth_ok_read(&f, &ok) == 0, f.len == 52);
		f.type = TUN_T_DATA_AUTH;
		cr_assert_eq(tun_data_auth_read(&f, &d) == 0, f.len == 80);
		f.type = TUN_T_DATA_OK;
		cr_assert_eq(tun_data_ok_read(&f, mac) == 0, f.len == 32);
		f.type = TUN_T_REFUSE;
		cr_assert_eq(tun_refuse_read(&f, &r), -NATX_E_PROTO); /* reason 0 */
		f.type = TUN_T_HEARTBEAT;
		cr_assert_eq(tun_heartbeat_read(&f, &seq) == 0, f.len == 4);
		f.type = TUN_T_CREATE_DATA;
		cr_assert_eq(tun_create_data_read(&f, nonce) == 0, f.len == 32);
		f.type = TUN_T_GOAWAY;
		cr_assert_eq(tun_goaway_read(&f, &reason), -NATX_E_PROTO);
		f.type = TUN_T_START_TCP;
		cr_assert_eq(tun_start_read(&f, &st), -NATX_E_PROTO); /* family 0 */
		f.type = TUN_T_UDP_CLOSE;
		cr_assert_eq(tun_udp_read(&f, &u) == 0, f.len == 4);
	}
}
