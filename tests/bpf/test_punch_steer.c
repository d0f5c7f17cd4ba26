// SPDX-License-Identifier: MIT
/*
 * Punch steering, live, in a private network namespace (unshare; loopback only) under a
 * private pin root: four dual-stack UDP sockets in one SO_REUSEPORT group on the punch port
 * stand for the engine's shards; the XDP reflector (generic mode on lo, punch port set)
 * learns flows from probes and the sk_lookup program delivers them. Checked: a session's probe
 * and every later datagram of its flow (IPv4 and IPv6) land on the session's socket; a flow
 * added from user space is steered without a probe; unknown flows, unknown sessions and
 * other ports take the normal lookup and move only their own counters; re-opening (a natxd
 * restart) keeps link, registrations and counters; unregister and socket close stop the
 * steering; detach removes every pin. Skipped without CAP_SYS_ADMIN/CAP_BPF.
 */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <net/if.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "loader.h"
#include "punch_steer.h"

#define NSOCK 4

static char pin_root[64];

/* pins_remove - undo what a test pinned, also after a failed assertion (suite .fini). */
static void pins_remove(void)
{
	if (pin_root[0]) {
		natx_punch_steer_detach(pin_root);
		natx_bpf_detach(pin_root, "lo");
		rmdir(pin_root);
	}
}

TestSuite(punch_steer, .timeout = 60, .fini = pins_remove);

static const uint8_t sid_a[8] = { 'A', 1, 2, 3, 4, 5, 6, 7 };
static const uint8_t sid_b[8] = { 'B', 1, 2, 3, 4, 5, 6, 7 };
static const uint8_t sid_c[8] = { 'C', 1, 2, 3, 4, 5, 6, 7 };

static void netns_or_skip(void)
{
	struct ifreq ifr = { 0 };
	int fd;

	if (unshare(CLONE_NEWNET)) {
		cr_skip_test("no network namespace (%s)", strerror(errno));
	}
	fd = socket(AF_INET, SOCK_DGRAM, 0);
	cr_assert_geq(fd, 0);
	strcpy(ifr.ifr_name, "lo");
	cr_assert_eq(ioctl(fd, SIOCGIFFLAGS, &ifr), 0);
	ifr.ifr_flags |= IFF_UP;
	cr_assert_eq(ioctl(fd, SIOCSIFFLAGS, &ifr), 0);
	close(fd);
	snprintf(pin_root, sizeof(pin_root), "/sys/fs/bpf/natx-test-punch-%d", (int)getpid());
}

/* group_open - NSOCK dual-stack sockets in one reuseport group on [::]:port; returns port. */
static uint16_t group_open(int *fds)
{
	struct sockaddr_in6 a = { .sin6_family = AF_INET6, .sin6_addr = IN6ADDR_ANY_INIT };
	socklen_t len = sizeof(a);
	int one = 1, zero = 0;

	for (int i = 0; i < NSOCK; i++) {
		fds[i] = socket(AF_INET6, SOCK_DGRAM | SOCK_NONBLOCK, 0);
		cr_assert_geq(fds[i], 0);
		cr_assert_eq(setsockopt(fds[i], SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)), 0);
		cr_assert_eq(setsockopt(fds[i], IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof(zero)), 0);
		cr_assert_eq(bind(fds[i], (struct sockaddr *)&a, sizeof(a)), 0, "bind: %s",
			     strerror(errno));
		if (!i) {
			cr_assert_eq(getsockname(fds[0], (struct sockaddr *)&a, &len), 0);
		}
	}
	return ntohs(a.sin6_port);
}

/* client_open - a client socket on 127.0.0.1 or ::1, ephemeral port; fills @me. */
static int client_open(int v6, struct sockaddr_storage *me)
{
	socklen_t len = sizeof(*me);
	int fd = socket(v6 ? AF_INET6 : AF_INET, SOCK_DGRAM, 0);

	cr_assert_geq(fd, 0);
	memset(me, 0, sizeof(*me));
	if (v6) {
		struct sockaddr_in6 *a = (struct sockaddr_in6 *)me;

		a->sin6_family = AF_INET6;
		a->sin6_addr = in6addr_loopback;
	} else {
		struct sockaddr_in *a = (struct sockaddr_in *)me;

		a->sin_family = AF_INET;
		a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	}
	cr_assert_eq(bind(fd, (struct sockaddr *)me,
			  v6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in)),
		     0);
	cr_assert_eq(getsockname(fd, (struct sockaddr *)me, &len), 0);
	return fd;
}

/* send_to - one datagram from client @fd to loopback:@port (family of the client). */
static void send_to(int fd, int v6, uint16_t port, const void *buf, size_t len)
{
	struct sockaddr_in6 a6 = { .sin6_family = AF_INET6,
				   .sin6_port = htons(port),
				   .sin6_addr = IN6ADDR_LOOPBACK_INIT };
	struct sockaddr_in a4 = { .sin_family = AF_INET, .sin_port = htons(port) };

	a4.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	cr_assert_eq(sendto(fd, buf, len, 0, v6 ? (struct sockaddr *)&a6 : (struct sockaddr *)&a4,
			    v6 ? sizeof(a6) : sizeof(a4)),
		     (ssize_t)len);
}

/* send_probe - a valid PROBE of session @sid. */
static void send_probe(int fd, int v6, uint16_t port, const uint8_t *sid)
{
	uint8_t p[NATX_PUNCH_HDR_LEN + 16] = { 0x0e, 'N', 'X', 'P', 1, NATX_PUNCH_TYPE_PROBE };

	memcpy(p + 8, sid, 8);
	send_to(fd, v6, port, p, sizeof(p));
}

/* send_data - @n datagrams of flow payload (no punch magic). */
static void send_data(int fd, int v6, uint16_t port, int n)
{
	for (int i = 0; i < n; i++) {
		send_to(fd, v6, port, "punched-flow-data", 17);
	}
}

/* port_of - the port of a sockaddr_storage (IPv4 or IPv6, host order). */
static uint16_t port_of(const struct sockaddr_storage *s)
{
	return ntohs(s->ss_family == AF_INET6 ? ((const struct sockaddr_in6 *)s)->sin6_port :
						((const struct sockaddr_in *)s)->sin_port);
}

/*
 * drain - read everything waiting on @fds (n sockets): got[i] counts datagrams on socket i
 * whose source port is @from. Waits until @want datagrams in total arrived (bounded, 1 s).
 */
static void drain(const int *fds, int n, uint16_t from, int *got, int want)
{
	int total = 0;

	memset(got, 0, sizeof(int) * (size_t)n);
	for (int round = 0; round < 100 && total < want; round++) {
		for (int i = 0; i < n; i++) {
			struct sockaddr_storage src;
			socklen_t sl = sizeof(src);
			uint8_t buf[256];

			while (recvfrom(fds[i], buf, sizeof(buf), MSG_DONTWAIT,
					(struct sockaddr *)&src, &sl) >= 0) {
				cr_assert_eq(port_of(&src), from,
					     "datagram from an unexpected port");
				got[i]++;
				total++;
				sl = sizeof(src);
			}
		}
		if (total < want) {
			poll(NULL, 0, 10);
		}
	}
	cr_assert_eq(total, want, "datagrams received %d, sent %d", total, want);
}

static void status(struct natx_punch_steer_status *st)
{
	cr_assert_eq(natx_punch_steer_status_read(pin_root, st), 0);
}

Test(punch_steer, probes_and_their_flows_land_on_the_session_socket)
{
	struct sockaddr_storage me1, me2, me3, me4, me5, me6;
	struct natx_punch_steer_cfg pcfg = { .pin_root = pin_root };
	struct natx_punch_steer_status st;
	struct natx_bpf_status xs;
	struct natx_punch_steer *ps;
	struct natx_bpf_cfg cfg;
	int s[NSOCK], got[NSOCK], c1, c2, c3, c4, c5, c6, other, err;
	struct sockaddr_in oa = { .sin_family = AF_INET };
	socklen_t olen = sizeof(oa);
	uint32_t link_id;
	uint16_t port, oport;
	char path[160];

	netns_or_skip();
	port = group_open(s);
	other = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
	oa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	cr_assert_eq(bind(other, (struct sockaddr *)&oa, sizeof(oa)), 0);
	cr_assert_eq(getsockname(other, (struct sockaddr *)&oa, &olen), 0);
	oport = ntohs(oa.sin_port);

	/* The reflector learns flows from probes on the punch port. */
	cr_assert_eq(natx_bpf_cfg_init(&cfg, "lo"), 0);
	cfg.mode = NATX_XDP_GENERIC;
	cfg.punch_port_lo = cfg.punch_port_hi = port;
	cfg.pin_root = pin_root;
	err = natx_bpf_attach(&cfg);
	if (err == -EPERM) {
		cr_skip_test("attaching BPF needs CAP_BPF and CAP_NET_ADMIN");
	}
	cr_assert_eq(err, 0, "attach XDP: %s", strerror(-err));
	pcfg.port_lo = pcfg.port_hi = port;
	cr_assert_eq(natx_punch_steer_open(&pcfg, &ps), 0);
	cr_assert_eq(natx_punch_steer_register(ps, sid_a, s[1]), 0);
	cr_assert_eq(natx_punch_steer_register(ps, sid_b, s[3]), 0);
	cr_assert_eq(natx_punch_steer_register(ps, sid_a, -1), -EBADF);

	/*
	 * Session A over IPv4 from 8 client flows (the kernel's own reuseport choice would spread
	 * them over the group): each probe and every later datagram on s[1].
	 */
	for (int k = 0; k < 8; k++) {
		c1 = client_open(0, &me1);
		send_probe(c1, 0, port, sid_a);
		send_data(c1, 0, port, 8);
		drain(s, NSOCK, port_of(&me1), got, 9);
		cr_assert_eq(got[1], 9, "session A on its socket: %d %d %d %d", got[0], got[1],
			     got[2], got[3]);
		if (k < 7) {
			cr_assert_eq(natx_punch_steer_flow_del(ps, (struct sockaddr *)&me1, port),
				     0);
			close(c1);
		}
	}

	/* Session B over IPv6: on s[3]. */
	c2 = client_open(1, &me2);
	send_probe(c2, 1, port, sid_b);
	send_data(c2, 1, port, 8);
	drain(s, NSOCK, port_of(&me2), got, 9);
	cr_assert_eq(got[3], 9, "session B on its socket: %d %d %d %d", got[0], got[1], got[2],
		     got[3]);

	/* A flow added from user space (no probe) is steered too. */
	c5 = client_open(0, &me5);
	cr_assert_eq(natx_punch_steer_flow_add(ps, sid_b, (struct sockaddr *)&me5, port), 0);
	send_data(c5, 0, port, 4);
	drain(s, NSOCK, port_of(&me5), got, 4);
	cr_assert_eq(got[3], 4);

	/* Unknown flow: normal lookup; unknown session: normal lookup. */
	c3 = client_open(0, &me3);
	send_data(c3, 0, port, 5);
	drain(s, NSOCK, port_of(&me3), got, 5);
	c4 = client_open(0, &me4);
	send_probe(c4, 0, port, sid_c);
	send_data(c4, 0, port, 3);
	drain(s, NSOCK, port_of(&me4), got, 4);

	/* Another port is not touched: delivered normally, no counter moves. */
	send_data(c1, 0, oport, 3);
	drain(&other, 1, port_of(&me1), got, 3);

	status(&st);
	cr_assert(st.attached);
	cr_assert_eq(st.port_lo, port);
	cr_assert_eq(st.port_hi, port);
	cr_assert_eq(st.counters[NATX_PUNCH_CNT_STEERED], 8 * 9 + 9 + 4);
	cr_assert_eq(st.counters[NATX_PUNCH_CNT_NO_FLOW], 5);
	cr_assert_eq(st.counters[NATX_PUNCH_CNT_NO_SOCKET], 4);
	cr_assert_eq(st.counters[NATX_PUNCH_CNT_ASSIGN_FAILED], 0);
	cr_assert_eq(st.sessions, 2);
	cr_assert_eq(st.flows, 4, "flows A, B, C learnt and one added: %u", st.flows);
	cr_assert_eq(natx_bpf_status_read(pin_root, "lo", &xs), 0);
	cr_assert_eq(xs.counters[NATX_STUN_CNT_PUNCH_PASSED], 8 + 1 + 1);
	cr_assert_eq(xs.punch_port_lo, port);
	link_id = st.link_id;

	/* natxd restart: close and reopen; same link, registrations and counters kept. */
	natx_punch_steer_close(ps);
	cr_assert_eq(natx_punch_steer_open(&pcfg, &ps), 0);
	status(&st);
	cr_assert_eq(st.link_id, link_id);
	cr_assert_eq(st.sessions, 2);
	cr_assert_eq(st.counters[NATX_PUNCH_CNT_STEERED], 85);
	send_data(c1, 0, port, 2);
	drain(s, NSOCK, port_of(&me1), got, 2);
	cr_assert_eq(got[1], 2, "still steered after reopen");

	/* Unregister A: its flow falls back; closing B's socket removes B by itself. */
	cr_assert_eq(natx_punch_steer_unregister(ps, sid_a), 0);
	cr_assert_eq(natx_punch_steer_unregister(ps, sid_a), -ENOENT);
	send_data(c1, 0, port, 2);
	drain(s, NSOCK, port_of(&me1), got, 2);
	close(s[3]);
	s[3] = -1;
	status(&st);
	cr_assert_eq(st.sessions, 0, "a closed socket leaves the SOCKHASH");
	c6 = client_open(1, &me6);
	send_probe(c6, 1, port, sid_b);
	drain(s, NSOCK - 1, port_of(&me6), got, 1);
	status(&st);
	cr_assert_eq(st.counters[NATX_PUNCH_CNT_STEERED], 87);
	cr_assert_eq(st.counters[NATX_PUNCH_CNT_NO_SOCKET], 4 + 2 + 1);
	cr_assert_eq(natx_punch_steer_flow_del(ps, (struct sockaddr *)&me5, port), 0);
	cr_assert_eq(natx_punch_steer_flow_del(ps, (struct sockaddr *)&me5, port), -ENOENT);

	natx_punch_steer_close(ps);
	cr_assert_eq(natx_punch_steer_detach(pin_root), 0);
	cr_assert_eq(natx_punch_steer_status_read(pin_root, &st), -ENOENT);
	cr_assert_eq(natx_punch_steer_detach(pin_root), -ENOENT);
	snprintf(path, sizeof(path), "%s/punch", pin_root);
	cr_assert_neq(access(path, F_OK), 0);
	cr_assert_eq(natx_bpf_detach(pin_root, "lo"), 0);
	rmdir(pin_root);
	for (int i = 0; i < NSOCK; i++) {
		if (s[i] >= 0) {
			close(s[i]);
		}
	}
	close(c1), close(c2), close(c3), close(c4), close(c5), close(c6), close(other);
}

Test(punch_steer, bad_arguments_are_refused)
{
	struct natx_punch_steer_cfg cfg = { .port_lo = 0,
					    .port_hi = 5,
					    .pin_root = "/nonexistent" };
	struct sockaddr_in6 v4m = { .sin6_family = AF_INET6, .sin6_port = htons(7) };
	struct sockaddr_un_like {
		sa_family_t family;
	} unix_like = { AF_UNIX };
	struct natx_punch_flow_key k;
	struct natx_punch_steer *ps;

	cr_assert_eq(natx_punch_steer_open(&cfg, &ps), -EINVAL);
	cfg.port_lo = 6;
	cr_assert_eq(natx_punch_steer_open(&cfg, &ps), -EINVAL);
	cr_assert_eq(natx_punch_steer_flow_key(&k, (struct sockaddr *)&unix_like, 5),
		     -EAFNOSUPPORT);
	/* IPv4-mapped peers are keyed as IPv4, the way the kernel looks them up. */
	v4m.sin6_addr.s6_addr[10] = v4m.sin6_addr.s6_addr[11] = 0xff;
	memcpy(v4m.sin6_addr.s6_addr + 12, "\x7f\0\0\x01", 4);
	cr_assert_eq(natx_punch_steer_flow_key(&k, (struct sockaddr *)&v4m, 5), 0);
	cr_assert_eq(k.family, NATX_RL_FAMILY_V4);
	cr_assert_eq(k.raddr[0], htonl(INADDR_LOOPBACK));
	cr_assert_eq(k.raddr[1], 0);
	cr_assert_eq(k.rport, htons(7));
	cr_assert_eq(k.lport, 5);
	cr_assert_eq(natx_punch_steer_flow_key(&k, (struct sockaddr *)&v4m, 0), -EINVAL);
}
