// SPDX-License-Identifier: MIT
/* Helpers shared by the bench/ load tools; contracts in bench_util.h. */
#include "bench_util.h"

#include <endian.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

/* bench_port_parse - parse a decimal port 0..65535 (0: "pick one" when binding). */
static int bench_port_parse(const char *text, uint16_t *port)
{
	uint64_t v;

	if (bench_u64_parse(text, 65535, &v) < 0) {
		return -EINVAL;
	}
	*port = (uint16_t)v;
	return 0;
}

int bench_addr_parse(const char *text, struct sockaddr_storage *ss, socklen_t *len)
{
	char host[64];
	const char *colon;
	size_t hlen;
	uint16_t port;

	memset(ss, 0, sizeof(*ss));
	if (text[0] == '[') {
		const char *close = strchr(text, ']');

		if (!close || close[1] != ':') {
			return -EINVAL;
		}
		hlen = (size_t)(close - text - 1);
		colon = close + 1;
		text++;
	} else {
		colon = strrchr(text, ':');
		if (!colon) {
			return -EINVAL;
		}
		hlen = (size_t)(colon - text);
	}
	if (hlen == 0 || hlen >= sizeof(host) || bench_port_parse(colon + 1, &port) < 0) {
		return -EINVAL;
	}
	memcpy(host, text, hlen);
	host[hlen] = '\0';

	struct sockaddr_in *in4 = (struct sockaddr_in *)ss;
	struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;

	if (inet_pton(AF_INET, host, &in4->sin_addr) == 1) {
		in4->sin_family = AF_INET;
		in4->sin_port = htons(port);
		*len = sizeof(*in4);
		return 0;
	}
	if (inet_pton(AF_INET6, host, &in6->sin6_addr) == 1) {
		in6->sin6_family = AF_INET6;
		in6->sin6_port = htons(port);
		*len = sizeof(*in6);
		return 0;
	}
	return -EINVAL;
}

uint16_t bench_addr_port(const struct sockaddr_storage *ss)
{
	if (ss->ss_family == AF_INET) {
		return ntohs(((const struct sockaddr_in *)ss)->sin_port);
	}
	if (ss->ss_family == AF_INET6) {
		return ntohs(((const struct sockaddr_in6 *)ss)->sin6_port);
	}
	return 0;
}

uint64_t bench_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

int bench_u64_parse(const char *text, uint64_t max, uint64_t *out)
{
	char *end;
	unsigned long long v;
	unsigned shift = 0;

	if (!text || text[0] < '0' || text[0] > '9') {
		return -EINVAL;
	}
	errno = 0;
	v = strtoull(text, &end, 10);
	if (errno) {
		return -EINVAL;
	}
	switch (*end) {
	case 'K':
	case 'k':
		shift = 10;
		end++;
		break;
	case 'M':
	case 'm':
		shift = 20;
		end++;
		break;
	case 'G':
	case 'g':
		shift = 30;
		end++;
		break;
	default:
		break;
	}
	if (*end != '\0' || v > (max >> shift)) {
		return -EINVAL;
	}
	*out = (uint64_t)v << shift;
	return 0;
}

int bench_nofile_raise(uint64_t want)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) < 0) {
		return -errno;
	}
	if (rl.rlim_cur >= want) {
		return 0;
	}
	if (rl.rlim_max < want) {
		struct rlimit up = { .rlim_cur = want, .rlim_max = want };

		if (setrlimit(RLIMIT_NOFILE, &up) == 0) {
			return 0;
		}
		return -EMFILE;
	}
	rl.rlim_cur = want;
	if (setrlimit(RLIMIT_NOFILE, &rl) < 0) {
		return -errno;
	}
	return 0;
}

int bench_fd_nonblock_set(int fd)
{
	int fl = fcntl(fd, F_GETFL);

	if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0) {
		return -errno;
	}
	return 0;
}

/* bench_mix64 - splitmix64 finaliser: a cheap bijective scramble of one 64-bit word. */
static uint64_t bench_mix64(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ull;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
	return x ^ (x >> 31);
}

void bench_pattern_fill(uint8_t *buf, size_t len, uint64_t seed, uint64_t offset)
{
	size_t i = 0;

	/*
	 * The stream is a sequence of 8-byte words, word k = mix64(seed ^ k), little-endian. Whole
	 * words are stored at once: a byte loop made the generator, not the path under test, the
	 * limit of a transfer (about 5 Gbit/s).
	 */
	while (i < len) {
		uint64_t pos = offset + i;
		uint64_t w = bench_mix64(seed ^ (pos >> 3));
		unsigned b = (unsigned)(pos & 7);

		if (!b && len - i >= 8) {
			w = htole64(w);
			memcpy(buf + i, &w, 8);
			i += 8;
			continue;
		}
		for (; b < 8 && i < len; b++, i++) {
			buf[i] = (uint8_t)(w >> (8 * b));
		}
	}
}
