// SPDX-License-Identifier: MIT
/*
 * natx-stungen - STUN Binding request flood for the bench (bench/bpf/README.md), able to
 * saturate the XDP reflector: THREADS threads each write prebuilt Ethernet frames to an
 * AF_PACKET socket with PACKET_QDISC_BYPASS and sendmmsg (batches of 64), so a request costs
 * no socket lookup, routing or neighbour work on the sending side. Answers are counted at the
 * receiver by an XDP program on the same interface (bench/bpf/stun_count.bpf.c), which drops
 * them, so counting costs no socket either and is the same for every responder.
 *
 *   natx-stungen --iface IF --dst-mac MAC --src IPV4 --dst IPV4 [--port 3478] [--threads 2]
 *                [--seconds 2] [--warmup-ms 300] [--sports 64]
 *
 * Runs for warmup + seconds (at most 60), then prints one JSON line: frames sent (accepted by
 * the interface) and send errors, the measurement window, sent/s and answers/s inside the
 * window, and all answers counted until 200 ms after the last send. Answers are Binding
 * success responses from --port whose transaction id starts with this run's random tag.
 * Each thread uses its own --sports source ports (distinct flows). Root (CAP_NET_RAW, CAP_BPF).
 */
#include <errno.h>
#include <arpa/inet.h>
#include <getopt.h>
#include <net/if.h>
#include <netinet/in.h>
#include <linux/if_ether.h>
#include <linux/if_link.h>
#include <linux/if_packet.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "stun_count.skel.h"

#define BATCH 64
#define FRAME_LEN (14 + 20 + 8 + 20)
#define MAX_THREADS 16
#define MAX_SPORTS 1024

struct gen_cfg {
	int ifindex;
	uint8_t smac[6], dmac[6];
	struct in_addr src, dst;
	uint16_t port;
	uint32_t tag;
	int nsports;
};

struct gen_thread {
	pthread_t tid;
	int idx;
	const struct gen_cfg *cfg;
	_Atomic uint64_t sent, errors;
	int err; /* setup failure, negative errno */
};

static atomic_bool stop_flag;

/* now_s - CLOCK_MONOTONIC in seconds. */
static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* csum_add - add @n bytes at @p (big-endian 16-bit words, odd tail padded) to @s. */
static uint32_t csum_add(uint32_t s, const uint8_t *p, size_t n)
{
	for (size_t i = 0; i + 1 < n; i += 2) {
		s += (uint32_t)(p[i] << 8 | p[i + 1]);
	}
	if (n & 1) {
		s += (uint32_t)p[n - 1] << 8;
	}
	return s;
}

/* csum_final - fold and invert a csum_add() accumulator. */
static uint16_t csum_final(uint32_t s)
{
	while (s >> 16) {
		s = (s & 0xffff) + (s >> 16);
	}
	return (uint16_t)~s;
}

/*
 * gen_frame_build - Ethernet/IPv4/UDP/STUN Binding request (no attributes) from source port
 * @sport, transaction id = tag || @seq (8 bytes), with valid IPv4 and UDP checksums (the
 * user-space responders' stack verifies them).
 */
static void gen_frame_build(uint8_t *f, const struct gen_cfg *c, uint16_t sport, uint64_t seq)
{
	uint8_t *ip = f + 14, *udp = ip + 20, *stun = udp + 8;
	uint16_t ck;
	uint32_t s;

	memset(f, 0, FRAME_LEN);
	memcpy(f, c->dmac, 6);
	memcpy(f + 6, c->smac, 6);
	f[12] = 0x08;
	ip[0] = 0x45;
	ip[3] = 20 + 8 + 20;
	ip[6] = 0x40; /* DF */
	ip[8] = 64;
	ip[9] = IPPROTO_UDP;
	memcpy(ip + 12, &c->src, 4);
	memcpy(ip + 16, &c->dst, 4);
	ck = csum_final(csum_add(0, ip, 20));
	ip[10] = (uint8_t)(ck >> 8), ip[11] = (uint8_t)ck;
	udp[0] = (uint8_t)(sport >> 8), udp[1] = (uint8_t)sport;
	udp[2] = (uint8_t)(c->port >> 8), udp[3] = (uint8_t)c->port;
	udp[5] = 8 + 20;
	stun[1] = 0x01; /* Binding request, length 0 */
	memcpy(stun + 4, "\x21\x12\xa4\x42", 4);
	memcpy(stun + 8, &c->tag, 4);
	memcpy(stun + 12, &seq, 8);
	s = csum_add(0, ip + 12, 8) + IPPROTO_UDP + 8 + 20;
	ck = csum_final(csum_add(s, udp, 8 + 20));
	if (!ck) {
		ck = 0xffff;
	}
	udp[6] = (uint8_t)(ck >> 8), udp[7] = (uint8_t)ck;
}

/* gen_thread_run - send the thread's frames round-robin until stop_flag. */
static void *gen_thread_run(void *arg)
{
	struct gen_thread *t = arg;
	const struct gen_cfg *c = t->cfg;
	static _Thread_local uint8_t frames[MAX_SPORTS][FRAME_LEN];
	struct sockaddr_ll sll = { .sll_family = AF_PACKET, .sll_ifindex = c->ifindex };
	struct mmsghdr msg[BATCH];
	struct iovec iov[BATCH];
	int one = 1, fd, next = 0;

	fd = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, 0); /* protocol 0: never receives */
	if (fd < 0 || bind(fd, (struct sockaddr *)&sll, sizeof(sll)) ||
	    setsockopt(fd, SOL_PACKET, PACKET_QDISC_BYPASS, &one, sizeof(one))) {
		t->err = -errno;
		if (fd >= 0) {
			close(fd);
		}
		return NULL;
	}
	for (int i = 0; i < c->nsports; i++) {
		gen_frame_build(frames[i], c, (uint16_t)(20000 + t->idx * c->nsports + i),
				(uint64_t)t->idx << 32 | (uint64_t)i);
	}
	memset(msg, 0, sizeof(msg));
	while (!atomic_load_explicit(&stop_flag, memory_order_relaxed)) {
		int n;

		for (int i = 0; i < BATCH; i++) {
			iov[i].iov_base = frames[next];
			iov[i].iov_len = FRAME_LEN;
			msg[i].msg_hdr.msg_iov = &iov[i];
			msg[i].msg_hdr.msg_iovlen = 1;
			next = next + 1 == c->nsports ? 0 : next + 1;
		}
		n = sendmmsg(fd, msg, BATCH, 0);
		if (n < 0) {
			atomic_fetch_add_explicit(&t->errors, 1, memory_order_relaxed);
			continue; /* ENOBUFS: the interface's queue is full; keep offering */
		}
		atomic_fetch_add_explicit(&t->sent, (uint64_t)n, memory_order_relaxed);
		if (n < BATCH) {
			atomic_fetch_add_explicit(&t->errors, 1, memory_order_relaxed);
		}
	}
	close(fd);
	return NULL;
}

/* mac_parse - "aa:bb:cc:dd:ee:ff" into @mac; 0 or -EINVAL. */
static int mac_parse(const char *s, uint8_t *mac)
{
	unsigned int b[6];

	if (sscanf(s, "%x:%x:%x:%x:%x:%x", &b[0], &b[1], &b[2], &b[3], &b[4], &b[5]) != 6) {
		return -EINVAL;
	}
	for (int i = 0; i < 6; i++) {
		if (b[i] > 0xff) {
			return -EINVAL;
		}
		mac[i] = (uint8_t)b[i];
	}
	return 0;
}

/* if_mac_read - hardware address of interface @name. */
static int if_mac_read(const char *name, uint8_t *mac)
{
	struct ifreq ifr = { 0 };
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0), rc = 0;

	if (fd < 0) {
		return -errno;
	}
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", name);
	if (ioctl(fd, SIOCGIFHWADDR, &ifr)) {
		rc = -errno;
	} else {
		memcpy(mac, ifr.ifr_hwaddr.sa_data, 6);
	}
	close(fd);
	return rc;
}

/* counter_sum - counter @idx of the receiver program summed over CPUs. */
static uint64_t counter_sum(int map_fd, uint32_t idx)
{
	int ncpu = libbpf_num_possible_cpus();
	uint64_t v[512] = { 0 }, s = 0;

	if (ncpu <= 0 || ncpu > 512 || bpf_map_lookup_elem(map_fd, &idx, v)) {
		return 0;
	}
	for (int i = 0; i < ncpu; i++) {
		s += v[i];
	}
	return s;
}

/* sent_sum - frames accepted so far by all threads (and their errors into @errors). */
static uint64_t sent_sum(struct gen_thread *t, int n, uint64_t *errors)
{
	uint64_t s = 0, e = 0;

	for (int i = 0; i < n; i++) {
		s += atomic_load(&t[i].sent);
		e += atomic_load(&t[i].errors);
	}
	if (errors) {
		*errors = e;
	}
	return s;
}

static void usage(void)
{
	fprintf(stderr, "usage: natx-stungen --iface IF --dst-mac MAC --src IPV4 --dst IPV4 "
			"[--port P] [--threads N] [--seconds S] [--warmup-ms W] [--sports K]\n");
	exit(2);
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "iface", required_argument, NULL, 'i' },
		{ "dst-mac", required_argument, NULL, 'm' },
		{ "src", required_argument, NULL, 's' },
		{ "dst", required_argument, NULL, 'd' },
		{ "port", required_argument, NULL, 'p' },
		{ "threads", required_argument, NULL, 't' },
		{ "seconds", required_argument, NULL, 'S' },
		{ "warmup-ms", required_argument, NULL, 'w' },
		{ "sports", required_argument, NULL, 'k' },
		{ NULL, 0, NULL, 0 },
	};
	struct gen_cfg cfg = { .port = 3478, .nsports = 64 };
	static struct gen_thread th[MAX_THREADS];
	const char *ifname = NULL, *dmac = NULL, *src = NULL, *dst = NULL;
	int nthreads = 2, warmup_ms = 300, map_fd, rc = 1, o, started = 0;
	uint32_t xdp_flags = XDP_FLAGS_DRV_MODE;
	uint64_t c0, c1, c2, o2, s0, s1, s2, e2;
	struct stun_count_bpf *skel;
	double seconds = 2, t0, t1;

	while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (o) {
		case 'i':
			ifname = optarg;
			break;
		case 'm':
			dmac = optarg;
			break;
		case 's':
			src = optarg;
			break;
		case 'd':
			dst = optarg;
			break;
		case 'p':
			cfg.port = (uint16_t)atoi(optarg);
			break;
		case 't':
			nthreads = atoi(optarg);
			break;
		case 'S':
			seconds = atof(optarg);
			break;
		case 'w':
			warmup_ms = atoi(optarg);
			break;
		case 'k':
			cfg.nsports = atoi(optarg);
			break;
		default:
			usage();
		}
	}
	if (!ifname || !dmac || !src || !dst || mac_parse(dmac, cfg.dmac) ||
	    inet_pton(AF_INET, src, &cfg.src) != 1 || inet_pton(AF_INET, dst, &cfg.dst) != 1 ||
	    !cfg.port || nthreads < 1 || nthreads > MAX_THREADS || !(seconds > 0) || seconds > 60 ||
	    warmup_ms < 0 || warmup_ms > 10000 || cfg.nsports < 1 ||
	    cfg.nsports * nthreads > MAX_SPORTS) {
		usage();
	}
	cfg.ifindex = (int)if_nametoindex(ifname);
	if (!cfg.ifindex || if_mac_read(ifname, cfg.smac)) {
		fprintf(stderr, "natx-stungen: no interface %s\n", ifname);
		return 1;
	}
	if (getrandom(&cfg.tag, sizeof(cfg.tag), 0) != sizeof(cfg.tag)) {
		return 1;
	}

	skel = stun_count_bpf__open();
	if (!skel) {
		fprintf(stderr, "natx-stungen: open receiver program: %s\n", strerror(errno));
		return 1;
	}
	skel->rodata->cfg_port = cfg.port;
	skel->rodata->cfg_tag = cfg.tag;
	if (stun_count_bpf__load(skel)) {
		fprintf(stderr, "natx-stungen: load receiver program: %s\n", strerror(errno));
		goto out_skel;
	}
	if (bpf_xdp_attach(cfg.ifindex, bpf_program__fd(skel->progs.natx_stun_count), xdp_flags,
			   NULL)) {
		xdp_flags = XDP_FLAGS_SKB_MODE;
		if (bpf_xdp_attach(cfg.ifindex, bpf_program__fd(skel->progs.natx_stun_count),
				   xdp_flags, NULL)) {
			fprintf(stderr, "natx-stungen: attach receiver to %s: %s\n", ifname,
				strerror(errno));
			goto out_skel;
		}
	}
	map_fd = bpf_map__fd(skel->maps.natx_bench_cnt);

	for (int i = 0; i < nthreads; i++) {
		th[i].idx = i;
		th[i].cfg = &cfg;
		if (pthread_create(&th[i].tid, NULL, gen_thread_run, &th[i])) {
			break;
		}
		started++;
	}
	usleep((useconds_t)warmup_ms * 1000);
	t0 = now_s();
	c0 = counter_sum(map_fd, 0);
	s0 = sent_sum(th, started, NULL);
	usleep((useconds_t)(seconds * 1e6));
	t1 = now_s();
	c1 = counter_sum(map_fd, 0);
	s1 = sent_sum(th, started, NULL);
	atomic_store(&stop_flag, true);
	for (int i = 0; i < started; i++) {
		pthread_join(th[i].tid, NULL);
		if (th[i].err) {
			fprintf(stderr, "natx-stungen: thread %d: %s\n", i, strerror(-th[i].err));
			goto out_detach;
		}
	}
	if (started != nthreads) {
		fprintf(stderr, "natx-stungen: started %d of %d threads\n", started, nthreads);
		goto out_detach;
	}
	usleep(200000);
	c2 = counter_sum(map_fd, 0);
	o2 = counter_sum(map_fd, 1);
	s2 = sent_sum(th, started, &e2);
	printf("{\"threads\":%d,\"sent\":%llu,\"send_errors\":%llu,\"window_s\":%.3f,"
	       "\"sent_per_s\":%.0f,\"answered_per_s\":%.0f,\"answered\":%llu,\"other\":%llu,"
	       "\"receiver_mode\":\"%s\"}\n",
	       nthreads, (unsigned long long)s2, (unsigned long long)e2, t1 - t0,
	       (double)(s1 - s0) / (t1 - t0), (double)(c1 - c0) / (t1 - t0), (unsigned long long)c2,
	       (unsigned long long)o2, xdp_flags == XDP_FLAGS_DRV_MODE ? "native" : "generic");
	rc = 0;
out_detach:
	bpf_xdp_detach(cfg.ifindex, xdp_flags, NULL);
out_skel:
	stun_count_bpf__destroy(skel);
	return rc;
}
