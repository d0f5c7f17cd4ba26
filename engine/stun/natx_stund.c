// SPDX-License-Identifier: MIT
/*
 * natx-stund - standalone user-space STUN Binding responder (the XDP reflector's fallback):
 *   natx-stund --listen ADDR:PORT [--rate R] [--burst B]
 * Prints "listening ADDR:PORT" once bound (port 0 picks one), and on SIGINT/SIGTERM one JSON
 * line with its counters: {"answered":N,"rate_limited":N,"passed":N,"malformed":N}.
 * SIGUSR1 prints the same line without stopping.
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "natx/err.h"
#include "natx/log.h"
#include "stun_server.h"

static volatile sig_atomic_t stop_flag, dump_flag;

static void on_signal(int sig)
{
	if (sig == SIGUSR1) {
		dump_flag = 1;
	} else {
		stop_flag = 1;
	}
}

static void counters_print(const struct stun_server *s)
{
	printf("{\"answered\":%llu,\"rate_limited\":%llu,\"passed\":%llu,\"malformed\":%llu}\n",
	       (unsigned long long)s->counters[NATX_STUN_CNT_ANSWERED],
	       (unsigned long long)s->counters[NATX_STUN_CNT_RATE_LIMITED],
	       (unsigned long long)s->counters[NATX_STUN_CNT_PASSED],
	       (unsigned long long)s->counters[NATX_STUN_CNT_MALFORMED]);
	fflush(stdout);
}

static int parse_u32(const char *s, uint32_t *out)
{
	char *e;
	unsigned long v;

	errno = 0;
	v = strtoul(s, &e, 10);
	if (errno || e == s || *e || v > 1000000000ul || s[0] == '-') {
		return -EINVAL;
	}
	*out = (uint32_t)v;
	return 0;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "listen", required_argument, NULL, 'l' },
		{ "rate", required_argument, NULL, 'r' },
		{ "burst", required_argument, NULL, 'b' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct sockaddr_storage ss, bound;
	socklen_t len = 0, blen = sizeof(bound);
	struct sigaction sa = { .sa_handler = on_signal };
	const char *listen_at = NULL;
	uint32_t rate = 0, burst = 0;
	struct stun_server srv;
	char name[80];
	int c, err;

	log_filter_set(getenv("NATX_LOG"));
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'l':
			listen_at = optarg;
			break;
		case 'r':
			if (parse_u32(optarg, &rate)) {
				fprintf(stderr, "natx-stund: bad --rate\n");
				return 2;
			}
			break;
		case 'b':
			if (parse_u32(optarg, &burst)) {
				fprintf(stderr, "natx-stund: bad --burst\n");
				return 2;
			}
			break;
		default:
			fprintf(c == 'h' ? stdout : stderr,
				"usage: natx-stund --listen ADDR:PORT [--rate R] [--burst B]\n");
			return c == 'h' ? 0 : 2;
		}
	}
	if (!listen_at || optind != argc || stun_sockaddr_parse(listen_at, &ss, &len)) {
		fprintf(stderr, "usage: natx-stund --listen ADDR:PORT [--rate R] [--burst B]\n");
		return 2;
	}
	err = stun_server_init(&srv, (struct sockaddr *)&ss, len, rate, burst);
	if (err) {
		fprintf(stderr, "natx-stund: %s: %s\n", listen_at, natx_strerror(err));
		return 1;
	}
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGUSR1, &sa, NULL);
	getsockname(srv.fd, (struct sockaddr *)&bound, &blen);
	stun_sockaddr_format((struct sockaddr *)&bound, name, sizeof(name));
	printf("listening %s\n", name);
	fflush(stdout);
	while (!stop_flag) {
		err = stun_server_poll(&srv, 200);
		if (err < 0) {
			fprintf(stderr, "natx-stund: %s\n", natx_strerror(err));
			break;
		}
		if (dump_flag) {
			dump_flag = 0;
			counters_print(&srv);
		}
	}
	counters_print(&srv);
	stun_server_cleanup(&srv);
	return err < 0 ? 1 : 0;
}
