// SPDX-License-Identifier: MIT
/*
 * natx-bpf - drive the XDP STUN reflector by hand or from scripts until natxd takes over:
 *   natx-bpf attach IFACE [--mode native|generic] [--port N]... [--rate R] [--burst B]
 *                   [--punch-ports LO[-HI]] [--punch-rate R] [--punch-burst B]
 *   natx-bpf detach IFACE
 *   natx-bpf punch-attach --punch-ports LO[-HI]   sk_lookup punch steering in this netns
 *   natx-bpf punch-detach
 *   natx-bpf status [IFACE] [--json]       (without IFACE also the punch steering entry)
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
#include "punch_steer.h"

#define STATUS_MAX 64

/* usage - the command synopsis. */
static void usage(FILE *f)
{
	fprintf(f, "usage: natx-bpf attach IFACE [--mode native|generic] [--port N]... "
		   "[--rate R] [--burst B]\n"
		   "                [--punch-ports LO[-HI]] [--punch-rate R] [--punch-burst B] "
		   "[--pin-root DIR]\n"
		   "       natx-bpf detach IFACE [--pin-root DIR]\n"
		   "       natx-bpf punch-attach --punch-ports LO[-HI] [--pin-root DIR]\n"
		   "       natx-bpf punch-detach [--pin-root DIR]\n"
		   "       natx-bpf status [IFACE] [--json] [--pin-root DIR]\n");
}

/* parse_u32 - decimal in [0, @max]; -EINVAL for anything else. */
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

/* status_json - one interface's status as a JSON object (natxctl/metrics shape). */
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
	ports = cJSON_AddArrayToObject(o, "punch_ports");
	if (st->punch_port_lo) {
		cJSON_AddItemToArray(ports, cJSON_CreateNumber(st->punch_port_lo));
		cJSON_AddItemToArray(ports, cJSON_CreateNumber(st->punch_port_hi));
	}
	cJSON_AddNumberToObject(o, "punch_rate", st->punch_rate);
	cJSON_AddNumberToObject(o, "punch_burst", st->punch_burst);
	c = cJSON_AddObjectToObject(o, "counters");
	for (int i = 0; i < NATX_STUN_CNT_MAX; i++) {
		cJSON_AddNumberToObject(c, natx_bpf_counter_name(i), (double)st->counters[i]);
	}
	return o;
}

/* punch_json - the punch steering entry of status --json. */
static cJSON *punch_json(const struct natx_punch_steer_status *st)
{
	cJSON *o = cJSON_CreateObject(), *ports, *c;

	cJSON_AddStringToObject(o, "program", "punch_steer");
	cJSON_AddStringToObject(o, "attach_type", "sk_lookup");
	cJSON_AddBoolToObject(o, "attached", st->attached);
	cJSON_AddNumberToObject(o, "prog_id", st->prog_id);
	cJSON_AddNumberToObject(o, "link_id", st->link_id);
	ports = cJSON_AddArrayToObject(o, "punch_ports");
	if (st->port_lo) {
		cJSON_AddItemToArray(ports, cJSON_CreateNumber(st->port_lo));
		cJSON_AddItemToArray(ports, cJSON_CreateNumber(st->port_hi));
	}
	cJSON_AddNumberToObject(o, "sessions", st->sessions);
	cJSON_AddNumberToObject(o, "flows", st->flows);
	c = cJSON_AddObjectToObject(o, "counters");
	for (int i = 0; i < NATX_PUNCH_CNT_MAX; i++) {
		cJSON_AddNumberToObject(c, natx_punch_counter_name(i), (double)st->counters[i]);
	}
	return o;
}

/* punch_print - the punch steering status for humans. */
static void punch_print(const struct natx_punch_steer_status *st)
{
	printf("punch steering (sk_lookup): %s",
	       st->attached ? "attached" : "pinned, not attached");
	if (st->attached) {
		printf(" prog %u link %u ports %u-%u", st->prog_id, st->link_id, st->port_lo,
		       st->port_hi);
	}
	printf(" sessions %u flows %u\n", st->sessions, st->flows);
	for (int i = 0; i < NATX_PUNCH_CNT_MAX; i++) {
		printf("  %-18s %llu\n", natx_punch_counter_name(i),
		       (unsigned long long)st->counters[i]);
	}
}

/* status_print - one interface's status for humans. */
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
		if (st->punch_port_lo) {
			printf(" punch %u-%u", st->punch_port_lo, st->punch_port_hi);
			if (st->punch_rate) {
				printf(" punch rate %u/s burst %u", st->punch_rate,
				       st->punch_burst);
			}
		}
	}
	printf("\n");
	for (int i = 0; i < NATX_STUN_CNT_MAX; i++) {
		printf("  %-18s %llu\n", natx_bpf_counter_name(i),
		       (unsigned long long)st->counters[i]);
	}
}

/* cmd_status - "status [IFACE]": exit code 0, 1 or 3 (nothing pinned for IFACE). */
static int cmd_status(const char *root, const char *ifname, int json)
{
	static struct natx_bpf_status sts[STATUS_MAX];
	struct natx_punch_steer_status pst;
	bool punch = false;
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
		punch = !err && !natx_punch_steer_status_read(root, &pst);
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
		if (punch) {
			cJSON_AddItemToArray(arr, punch_json(&pst));
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
	if (punch) {
		punch_print(&pst);
	}
	return 0;
}

/* cmd_punch - "punch-attach" / "punch-detach": exit code 0, 1, 2 or 3 (nothing pinned). */
static int cmd_punch(const char *cmd, const char *root, const char *extra, uint16_t lo, uint16_t hi)
{
	struct natx_punch_steer_cfg cfg = { .port_lo = lo, .port_hi = hi, .pin_root = root };
	struct natx_punch_steer *ps;
	int err;

	if (extra) {
		usage(stderr);
		return 2;
	}
	if (!strcmp(cmd, "punch-detach")) {
		err = natx_punch_steer_detach(root);
		if (err == -ENOENT) {
			fprintf(stderr, "natx-bpf: no punch steering pinned\n");
			return 3;
		}
		if (err) {
			fprintf(stderr, "natx-bpf: punch-detach: %s\n", natx_strerror(err));
			return 1;
		}
		return 0;
	}
	if (!lo) {
		fprintf(stderr, "natx-bpf: punch-attach needs --punch-ports LO[-HI]\n");
		return 2;
	}
	err = natx_punch_steer_open(&cfg, &ps);
	if (err) {
		fprintf(stderr, "natx-bpf: punch-attach: %s\n", natx_strerror(err));
		return 1;
	}
	natx_punch_steer_close(ps); /* the pinned link keeps steering */
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
		{ "punch-ports", required_argument, NULL, 'P' },
		{ "punch-rate", required_argument, NULL, 'q' },
		{ "punch-burst", required_argument, NULL, 'Q' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct natx_bpf_cfg cfg;
	const char *cmd, *ifname = NULL, *root = NULL, *mode = "native";
	uint32_t ports[NATX_STUN_MAX_PORTS] = { 0 }, rate = 0, burst = 0, v;
	uint32_t plo = 0, phi = 0, prate = 0, pburst = 0;
	char *dash;
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
		case 'P':
			dash = strchr(optarg, '-');
			if (dash) {
				*dash = '\0';
			}
			if (parse_u32(optarg, 65535, &plo) || !plo ||
			    (dash ? parse_u32(dash + 1, 65535, &phi) : (phi = plo, 0)) ||
			    phi < plo) {
				fprintf(stderr, "natx-bpf: bad --punch-ports (LO or LO-HI)\n");
				return 2;
			}
			break;
		case 'q':
			if (parse_u32(optarg, 1000000000u, &prate)) {
				fprintf(stderr, "natx-bpf: bad --punch-rate\n");
				return 2;
			}
			break;
		case 'Q':
			if (parse_u32(optarg, 1000000000u, &pburst)) {
				fprintf(stderr, "natx-bpf: bad --punch-burst\n");
				return 2;
			}
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
	if (!strcmp(cmd, "punch-attach") || !strcmp(cmd, "punch-detach")) {
		return cmd_punch(cmd, root, ifname, (uint16_t)plo, (uint16_t)phi);
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
	cfg.punch_port_lo = (uint16_t)plo;
	cfg.punch_port_hi = (uint16_t)phi;
	cfg.punch_rate = prate;
	cfg.punch_burst = pburst;
	cfg.pin_root = root;
	err = natx_bpf_attach(&cfg);
	if (err) {
		fprintf(stderr, "natx-bpf: attach %s: %s\n", ifname, natx_strerror(err));
		return 1;
	}
	return 0;
}
