// SPDX-License-Identifier: MIT
/*
 * natx_bpf loader, live: in a private network namespace (unshare, so nothing outside the test
 * is touched) the reflector is attached to lo in generic mode under a private pin root, a real
 * STUN request over lo is answered by XDP, a re-attach swaps the program in place and keeps
 * the pinned counters, detach removes everything. Skipped without CAP_SYS_ADMIN/CAP_BPF.
 */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bpf/bpf_helpers_test.h"
#include "loader.h"
#include "stun/stun_fixtures.h"
#include "stun_msg.h"
#include "xdp_pass.skel.h"

#include <bpf/libbpf.h>
#include <linux/if_link.h>

static char pin_root[64];

/* pins_remove - undo what a test pinned, also after a failed assertion (suite .fini). */
static void pins_remove(void)
{
	if (pin_root[0]) {
		natx_bpf_detach(pin_root, "lo");
		rmdir(pin_root);
	}
}

TestSuite(loader, .timeout = 60, .fini = pins_remove);

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
	snprintf(pin_root, sizeof(pin_root), "/sys/fs/bpf/natx-test-%d", (int)getpid());
}

/* ask - one Binding request from a fresh socket to 127.0.0.1:@port; 1 if answered correctly. */
static int ask(uint16_t port)
{
	struct sockaddr_in to = { .sin_family = AF_INET, .sin_port = htons(port) };
	struct sockaddr_in me;
	socklen_t mlen = sizeof(me);
	struct timeval tv = { .tv_sec = 0, .tv_usec = 300000 };
	uint8_t rx[256];
	struct stun_msg m;
	ssize_t r;
	int fd = socket(AF_INET, SOCK_DGRAM, 0);

	cr_assert_geq(fd, 0);
	to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	cr_assert_eq(connect(fd, (struct sockaddr *)&to, sizeof(to)), 0);
	cr_assert_eq(getsockname(fd, (struct sockaddr *)&me, &mlen), 0);
	cr_assert_eq(send(fd, stun_fixtures[1].msg, stun_fixtures[1].len, 0),
		     (ssize_t)stun_fixtures[1].len);
	r = recv(fd, rx, sizeof(rx), 0);
	close(fd);
	if (r <= 0) {
		return 0;
	}
	cr_assert_eq(stun_msg_parse(&m, rx, (size_t)r), 0);
	cr_assert_eq(m.type, STUN_BINDING_SUCCESS);
	cr_assert(m.fingerprint);
	cr_assert_eq(m.xor_mapped.port, ntohs(me.sin_port));
	cr_assert_eq(memcmp(m.xor_mapped.addr, &me.sin_addr, 4), 0);
	return 1;
}

Test(loader, attach_answer_reattach_in_place_status_detach)
{
	struct natx_bpf_status st;
	struct natx_bpf_cfg cfg;
	uint32_t link_id;
	char path[128];
	int err;

	netns_or_skip();
	cr_assert_eq(natx_bpf_cfg_init(&cfg, "lo"), 0);
	cfg.mode = NATX_XDP_GENERIC;
	cfg.ports[0] = 3478;
	cfg.rate = 1000;
	cfg.burst = 50;
	cfg.pin_root = pin_root;
	err = natx_bpf_attach(&cfg);
	if (err == -EPERM) {
		cr_skip_test("attaching XDP needs CAP_BPF and CAP_NET_ADMIN");
	}
	cr_assert_eq(err, 0, "attach: %s", strerror(-err));

	cr_assert_eq(natx_bpf_status_read(pin_root, "lo", &st), 0);
	cr_assert(st.attached);
	cr_assert_eq(st.mode, NATX_XDP_GENERIC);
	cr_assert_eq(st.ports[0], 3478);
	cr_assert_eq(st.ports[1], 0);
	cr_assert_eq(st.rate, 1000);
	cr_assert_eq(st.burst, 50);
	link_id = st.link_id;

	/* Nothing listens on 3478 in this namespace: only XDP can answer. */
	cr_assert(ask(3478), "XDP on lo must answer");
	cr_assert_not(ask(3479), "nothing answers on another port");
	cr_assert_eq(natx_bpf_status_read(pin_root, "lo", &st), 0);
	cr_assert_eq(st.counters[NATX_STUN_CNT_ANSWERED], 1);

	/* Re-attach with another port: same link, program swapped, counters kept. */
	cfg.ports[0] = 3479;
	cr_assert_eq(natx_bpf_attach(&cfg), 0);
	cr_assert_eq(natx_bpf_status_read(pin_root, "lo", &st), 0);
	cr_assert_eq(st.link_id, link_id);
	cr_assert_eq(st.ports[0], 3479);
	cr_assert_eq(st.counters[NATX_STUN_CNT_ANSWERED], 1, "pinned counters survive");
	cr_assert(ask(3479));
	cr_assert_not(ask(3478));

	/* lo has no native XDP: the mode change fails and the generic reflector stays. */
	cfg.mode = NATX_XDP_NATIVE;
	err = natx_bpf_attach(&cfg);
	cr_assert(err == -EOPNOTSUPP || err == -EINVAL, "native on lo: %d", err);
	cr_assert_eq(natx_bpf_status_read(pin_root, "lo", &st), 0);
	cr_assert(st.attached);
	cr_assert_eq(st.mode, NATX_XDP_GENERIC);
	cr_assert(ask(3479), "still answering after a refused mode change");

	cr_assert_eq(natx_bpf_detach(pin_root, "lo"), 0);
	cr_assert_eq(natx_bpf_status_read(pin_root, "lo", &st), -ENOENT);
	cr_assert_not(ask(3479), "detached: nothing answers");
	cr_assert_eq(natx_bpf_detach(pin_root, "lo"), -ENOENT);
	snprintf(path, sizeof(path), "%s/lo", pin_root);
	cr_assert_neq(access(path, F_OK), 0);
	rmdir(pin_root);
}

Test(loader, a_foreign_xdp_program_is_not_replaced)
{
	struct natx_bpf_status st;
	struct xdp_pass_bpf *other;
	struct natx_bpf_cfg cfg;
	int ifindex, err;

	netns_or_skip();
	other = xdp_pass_bpf__open_and_load();
	if (!other) {
		cr_skip_test("loading BPF needs CAP_BPF");
	}
	ifindex = (int)if_nametoindex("lo");
	cr_assert_eq(bpf_xdp_attach(ifindex, bpf_program__fd(other->progs.natx_xdp_pass),
				    XDP_FLAGS_SKB_MODE, NULL),
		     0);
	cr_assert_eq(natx_bpf_cfg_init(&cfg, "lo"), 0);
	cfg.mode = NATX_XDP_GENERIC;
	cfg.pin_root = pin_root;
	err = natx_bpf_attach(&cfg);
	cr_assert_eq(err, -EBUSY, "attach over a foreign program: %d", err);
	cr_assert_eq(natx_bpf_status_read(pin_root, "lo", &st), 0);
	cr_assert_not(st.attached);
	cr_assert_eq(natx_bpf_detach(pin_root, "lo"), 0);
	rmdir(pin_root);
	bpf_xdp_detach(ifindex, XDP_FLAGS_SKB_MODE, NULL);
	xdp_pass_bpf__destroy(other);
}

Test(loader, bad_arguments_are_refused_without_side_effects)
{
	struct natx_bpf_cfg cfg;
	struct natx_bpf_status st;

	cr_assert_eq(natx_bpf_cfg_init(&cfg, "a/b"), -EINVAL);
	cr_assert_eq(natx_bpf_cfg_init(&cfg, ""), -EINVAL);
	cr_assert_eq(natx_bpf_cfg_init(&cfg, "0123456789abcdefXX"), -EINVAL);
	cr_assert_eq(natx_bpf_cfg_init(&cfg, "natxbpf-none0"), 0);
	cr_assert_eq(natx_bpf_attach(&cfg), -ENODEV);
	cr_assert_eq(natx_bpf_status_read("/nonexistent-natx", "eth0", &st), -ENOENT);
	cr_assert_eq(natx_bpf_detach("/nonexistent-natx", "../x"), -EINVAL);
}
