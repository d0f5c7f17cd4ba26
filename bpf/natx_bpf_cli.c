// SPDX-License-Identifier: MIT
/*
 * natx-bpf - drive the XDP STUN reflector by hand or from scripts until natxd takes over:
 *   natx-bpf attach IFACE [--mode native|generic] [--port N]... [--rate R] [--burst B]
 *   natx-bpf detach IFACE
 *   natx-bpf status [IFACE] [--json]
 * Common option: --pin-root DIR (default /sys/fs/bpf/natx). Exit codes: 0 success,
 * 1 operation failed, 2 usage error, 3 (status IFACE) nothing pinned for IFACE.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "loader.h"
#include "natx/err.h"
#include "natx/log.h"

#define STATUS_MAX 64

static void usage(FILE *f)
{
	fprintf(f, "usage: natx-bpf attach IFACE [--mode native|generic] [--port N]... "
		   "[--rate R] [--burst B] [--pin-root DIR]\n"
		   "       natx-bpf detach IFACE [--pin-root DIR]\n"
		   "       natx-bpf status [IFACE] [--json] [--pin-root DIR]\n");
}

static int parse_u32(const char *s, uint32_t max, uint32_t *out)
{
	char *e;
	unsigned long v;

	errno = 0;
	v = strtoul(s, &e, 10);
	if (errno || e == s || *e || v > max || s[0] == '-') {
		return -EINVAL;
	}
	*out = (uint32_t)v;
	return 0;
}

static cJSON *status_json(const struct natx_bpf_status *st)
{
	cJSON *o = cJSON_CreateObject(), *ports, *c;

	cJSON_AddStringToObject(o, "interface", st->ifname);
	cJSON_AddNumberToObject(o, "ifindex", st->ifindex);
	cJSON_AddBoolToObject(o, "attached", st->attached);
	cJSON_AddStringToObject(o, "program", "stun_reflect");
	cJSON_AddStringToObject(o, "mode", st->attached ? natx_bpf_mode_name(st->mode) : "off");
	cJSON_AddNumberToObject(o, "prog_id", st->prog_id);
	cJSON_AddNumberToObject(o, "link_id", st->link_id);
	ports = cJSON_AddArrayToObject(o, "ports");
	for (int i = 0; i < NATX_STUN_MAX_PORTS; i++) {
		if (st->ports[i]) {
			cJSON_AddItemToArray(ports, cJSON_CreateNumber(st->ports[i]));
		}
	}
	cJSON_AddNumberToObject(o, "rate", st->rate);
	cJSON_AddNumberToObject(o, "burst", st->burst);
	c = cJSON_AddObjectToObject(o, "counters");
	for (int i = 0; i < NATX_STUN_CNT_MAX; i++) {
		cJSON_AddNumberToObject(c, natx_bpf_counter_name(i), (double)st->counters[i]);
	}
	return o;
}

static void status_print(const struct natx_bpf_status *st)
{
	printf("%s: %s", st->ifname,
	       st->attached ? natx_bpf_mode_name(st->mode) : "pinned, not attached");
	if (st->attached) {
		printf(" prog %u link %u ports", st->prog_id, st->link_id);
		for (int i = 0; i < NATX_STUN_MAX_PORTS; i++) {
			if (st->ports[i]) {
				printf(" %u", st->ports[i]);
			}
		}
		if (st->rate) {
			printf(" rate %u/s burst %u", st->rate, st->burst);
		} else {
			printf(" rate unlimited");
		}
	}
	printf("\n");
	for (int i = 0; i < NATX_STUN_CNT_MAX; i++) {
		printf("  %-13s %llu\n", natx_bpf_counter_name(i),
		       (unsigned long long)st->counters[i]);
	}
}

static int cmd_status(const char *root, const char *ifname, int json)
{
	static struct natx_bpf_status sts[STATUS_MAX];
	size_t n = 0;
	int err;

	if (ifname) {
		err = natx_bpf_status_read(root, ifname, &sts[0]);
		if (err == -ENOENT) {
			fprintf(stderr, "natx-bpf: nothing pinned for %s\n", ifname);
			return 3;
		}
		n = err ? 0 : 1;
	} else {
		err = natx_bpf_status_list(root, sts, STATUS_MAX, &n);
	}
	if (err) {
		fprintf(stderr, "natx-bpf: status: %s\n", natx_strerror(err));
		return 1;
	}
	if (json) {
		cJSON *arr = cJSON_CreateArray();
		char *s;

		for (size_t i = 0; i < n; i++) {
			cJSON_AddItemToArray(arr, status_json(&sts[i]));
		}
		s = cJSON_PrintUnformatted(arr);
		printf("%s\n", s);
		cJSON_free(s);
		cJSON_Delete(arr);
		return 0;
	}
	if (!n) {
		printf("no XDP reflector attached (user-space responder only)\n");
	}
	for (size_t i = 0; i < n; i++) {
		status_print(&sts[i]);
	}
	return 0;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "mode", required_argument, NULL, 'm' },
		{ "port", required_argument, NULL, 'p' },
		{ "rate", required_argument, NULL, 'r' },
		{ "burst", required_argument, NULL, 'b' },
		{ "pin-root", required_argument, NULL, 'R' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct natx_bpf_cfg cfg;
	const char *cmd, *ifname = NULL, *root = NULL, *mode = "native";
	uint32_t ports[NATX_STUN_MAX_PORTS] = { 0 }, rate = 0, burst = 0, v;
	int nports = 0, json = 0, c, err;

	log_filter_set(getenv("NATX_LOG"));
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'm':
			mode = optarg;
			break;
		case 'p':
			if (nports >= NATX_STUN_MAX_PORTS || parse_u32(optarg, 65535, &v) || !v) {
				fprintf(stderr, "natx-bpf: bad or too many --port (max %d)\n",
					NATX_STUN_MAX_PORTS);
				return 2;
			}
			ports[nports++] = v;
			break;
		case 'r':
			if (parse_u32(optarg, 1000000000u, &rate)) {
				fprintf(stderr, "natx-bpf: bad --rate\n");
				return 2;
			}
			break;
		case 'b':
			if (parse_u32(optarg, 1000000000u, &burst)) {
				fprintf(stderr, "natx-bpf: bad --burst\n");
				return 2;
			}
			break;
		case 'R':
			root = optarg;
			break;
		case 'j':
			json = 1;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind >= argc) {
		usage(stderr);
		return 2;
	}
	cmd = argv[optind++];
	if (optind < argc) {
		ifname = argv[optind++];
	}
	if (optind < argc) {
		usage(stderr);
		return 2;
	}

	if (!strcmp(cmd, "status")) {
		return cmd_status(root, ifname, json);
	}
	if (!ifname) {
		usage(stderr);
		return 2;
	}
	if (!strcmp(cmd, "detach")) {
		err = natx_bpf_detach(root, ifname);
		if (err) {
			fprintf(stderr, "natx-bpf: detach %s: %s\n", ifname, natx_strerror(err));
			return 1;
		}
		return 0;
	}
	if (strcmp(cmd, "attach")) {
		usage(stderr);
		return 2;
	}
	if (natx_bpf_cfg_init(&cfg, ifname)) {
		fprintf(stderr, "natx-bpf: bad interface name\n");
		return 2;
	}
	if (!strcmp(mode, "generic")) {
		cfg.mode = NATX_XDP_GENERIC;
	} else if (strcmp(mode, "native")) {
		fprintf(stderr, "natx-bpf: --mode is native or generic\n");
		return 2;
	}
	if (nports) {
		for (int i = 0; i < NATX_STUN_MAX_PORTS; i++) {
			cfg.ports[i] = (uint16_t)ports[i];
		}
	}
	cfg.rate = rate;
	cfg.burst = burst;
	cfg.pin_root = root;
	err = natx_bpf_attach(&cfg);
	if (err) {
		fprintf(stderr, "natx-bpf: attach %s: %s\n", ifname, natx_strerror(err));
		return 1;
	}
	return 0;
}
