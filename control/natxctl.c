// SPDX-License-Identifier: MIT
/*
 * natxctl - talk to natxd over its control socket. Commands, usage and help come from the
 * shared table (ctl_cmdtab.c). Human-readable output by default, the raw JSON reply with
 * --json. Exit status: 0 ok, 1 internal error, 2 usage, 3 natxd unreachable, otherwise the
 * error code's status (include/natx/ctl_proto.h, docs/control.md).
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "ctl_cmdtab.h"
#include "ctl_req.h"
#include "natx/ctl_proto.h"

static void natxctl_usage(FILE *f)
{
	fprintf(f, "usage: natxctl [--socket PATH] [--json] [--timeout SEC] COMMAND [ARGS]\n\n"
		   "commands:\n");
	for (const struct ctl_cmd *c = ctl_cmd_table; c->words; c++) {
		char head[96];

		snprintf(head, sizeof(head), "%s %s", c->words, c->usage);
		fprintf(f, "  %-44s %s%s\n", head, c->help, c->mutating ? " [privileged]" : "");
	}
	fprintf(f, "\nCOMMAND --help shows one command. The socket defaults to natxd's default\n"
		   "(/run/natx/ctl.sock as root, $XDG_RUNTIME_DIR/natx/ctl.sock otherwise) or\n"
		   "$NATX_CTL_SOCKET.\n\nexit status:\n"
		   "  0 ok, 1 internal error, 2 usage error, 3 natxd not reachable\n");
	for (const struct ctl_errmap *m = ctl_errmap_table(); m->code; m++) {
		if (m->exit_status > 3) {
			fprintf(f, "  %d %s\n", m->exit_status, m->code);
		}
	}
}

static void natxctl_cmd_help(const struct ctl_cmd *c)
{
	printf("usage: natxctl [--socket PATH] [--json] %s %s\n\n%s\n", c->words, c->usage,
	       c->help);
	if (c->mutating) {
		printf("Needs root, natxd's own user or a member of control.group.\n");
	}
}

/*
 * natxctl_tunnel_flag - an option of tunnel add/rm at argv[@i] into @req. Returns the number
 * of arguments used (1 or 2), 0 when it is not a tunnel option, -1 on a bad value (printed).
 */
static int natxctl_tunnel_flag(const struct ctl_cmd *c, cJSON *req, int argc, char **argv, int i)
{
	static const char *const num[] = { "--max-conns",      "max_conns",
					   "--pool",	       "pool",
					   "--udp-channels",   "udp_channels",
					   "--bandwidth-kbps", "bandwidth_kbps" };
	const char *a = argv[i];

	if (!strcmp(a, "--client")) {
		cJSON_AddStringToObject(req, "role", "client");
		return 1;
	}
	if (!strcmp(c->name, "tunnel.add") && !strcmp(a, "--proxy-protocol")) {
		cJSON_AddTrueToObject(req, "proxy_protocol");
		return 1;
	}
	if (!strcmp(c->name, "tunnel.add") && !strcmp(a, "--plain")) {
		cJSON_AddStringToObject(req, "transport", "plain");
		return 1;
	}
	if (!strcmp(c->name, "tunnel.add") && !strcmp(a, "--noise-pubkey")) {
		/* the client pins the server's key: encrypted transport (Noise NK) */
		if (i + 1 >= argc || !argv[i + 1][0]) {
			fprintf(stderr, "natxctl: --noise-pubkey takes the server's public key\n");
			return -1;
		}
		cJSON_AddStringToObject(req, "transport", "noise");
		cJSON_AddStringToObject(req, "server_pubkey", argv[i + 1]);
		return 2;
	}
	for (size_t k = 0; strcmp(c->name, "tunnel.add") == 0 && k < 8; k += 2) {
		char *end;
		unsigned long v;

		if (strcmp(a, num[k])) {
			continue;
		}
		v = i + 1 < argc ? strtoul(argv[i + 1], &end, 10) : 0;
		if (i + 1 >= argc || !argv[i + 1][0] || *end || v > 100000000) {
			fprintf(stderr, "natxctl: %s takes a number\n", a);
			return -1;
		}
		cJSON_AddNumberToObject(req, num[k + 1], (double)v);
		return 2;
	}
	return 0;
}

static const char *natxctl_getenv(const char *name)
{
	return getenv(name);
}

static int natxctl_connect(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd;

	if (strlen(path) >= sizeof(sa.sun_path)) {
		fprintf(stderr, "natxctl: socket path too long\n");
		return -1;
	}
	strcpy(sa.sun_path, path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa))) {
		fprintf(stderr, "natxctl: cannot reach natxd at %s: %s\n", path, strerror(errno));
		if (fd >= 0) {
			close(fd);
		}
		return -1;
	}
	return fd;
}

/* natxctl_call - send @req, wait up to @timeout_s for one reply line. NULL on failure. */
static cJSON *natxctl_call(int fd, cJSON *req, int timeout_s)
{
	struct ctl_rx rx;
	cJSON *reply = NULL;
	time_t deadline = time(NULL) + timeout_s;
	size_t len, off = 0;
	char *line = ctl_reply_line(req, &len);

	if (!line) {
		return NULL;
	}
	while (off < len) {
		ssize_t n = send(fd, line + off, len - off, MSG_NOSIGNAL);

		if (n < 0 && errno == EINTR) {
			continue;
		}
		if (n <= 0) {
			/* natxd may have answered and closed (e.g. limit_reached): read that reply. */
			if (errno != EPIPE && errno != ECONNRESET) {
				free(line);
				fprintf(stderr, "natxctl: send: %s\n", strerror(errno));
				return NULL;
			}
			break;
		}
		off += (size_t)n;
	}
	free(line);
	ctl_rx_init(&rx);
	for (;;) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		char buf[65536];
		ssize_t n;
		int left = (int)(deadline - time(NULL));

		line = ctl_rx_line(&rx, &len);
		if (line) {
			reply = cJSON_ParseWithLength(line, len);
			free(line);
			if (!reply) {
				fprintf(stderr, "natxctl: reply is not JSON\n");
			}
			break;
		}
		if (left <= 0 || poll(&p, 1, left * 1000) == 0) {
			fprintf(stderr, "natxctl: no reply within %d s\n", timeout_s);
			break;
		}
		n = recv(fd, buf, sizeof(buf), 0);
		if (n < 0 && errno == EINTR) {
			continue;
		}
		if (n <= 0) {
			fprintf(stderr, "natxctl: natxd closed the connection\n");
			break;
		}
		if (ctl_rx_append(&rx, buf, (size_t)n)) {
			fprintf(stderr, "natxctl: reply too long\n");
			break;
		}
	}
	ctl_rx_cleanup(&rx);
	return reply;
}

/* ---- human output ------------------------------------------------------------------------- */

static const char *j_str(const cJSON *o, const char *k)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);

	return cJSON_IsString(v) ? v->valuestring : "-";
}

static double j_num(const cJSON *o, const char *k)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);

	return cJSON_IsNumber(v) ? v->valuedouble : 0;
}

static bool j_bool(const cJSON *o, const char *k)
{
	return cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, k));
}

static const cJSON *j_obj(const cJSON *o, const char *k)
{
	return cJSON_GetObjectItemCaseSensitive(o, k);
}

/* print_kv - every scalar member as "key: value" lines (fallback for simple replies). */
static void print_kv(const cJSON *o, const char *indent)
{
	const cJSON *it;

	cJSON_ArrayForEach(it, o)
	{
		if (!strcmp(it->string, "v") || !strcmp(it->string, "ok") ||
		    !strcmp(it->string, "id")) {
			continue;
		}
		if (cJSON_IsString(it)) {
			printf("%s%-22s %s\n", indent, it->string,
			       it->valuestring[0] ? it->valuestring : "-");
		} else if (cJSON_IsNumber(it)) {
			printf("%s%-22s %.0f\n", indent, it->string, it->valuedouble);
		} else if (cJSON_IsBool(it)) {
			printf("%s%-22s %s\n", indent, it->string, cJSON_IsTrue(it) ? "yes" : "no");
		} else if (cJSON_IsNull(it)) {
			printf("%s%-22s -\n", indent, it->string);
		} else if (cJSON_IsObject(it)) {
			char sub[16];

			printf("%s%s:\n", indent, it->string);
			snprintf(sub, sizeof(sub), "%s  ", indent);
			print_kv(it, sub);
		} else if (cJSON_IsArray(it)) {
			const cJSON *e;

			/* Arrays of scalars (listen_addrs, protocols, rtt_ms): one per line. */
			printf("%s%s:\n", indent, it->string);
			cJSON_ArrayForEach(e, it)
			{
				if (cJSON_IsString(e)) {
					printf("%s  %s\n", indent, e->valuestring);
				} else if (cJSON_IsNumber(e)) {
					printf("%s  %g\n", indent, e->valuedouble);
				}
			}
		}
	}
}

static void print_services(const cJSON *r)
{
	const cJSON *s;

	printf("%-12s %-11s %-10s %-9s %-10s %s\n", "TYPE", "OPERATIONAL", "STATUS", "BREAKER",
	       "LATENCY", "CAPABILITIES");
	cJSON_ArrayForEach(s, j_obj(r, "services"))
	{
		const cJSON *c = j_obj(s, "capabilities"), *lat = j_obj(s, "latency_ms");
		char caps[64] = "", l[16] = "-";
		const cJSON *it;

		cJSON_ArrayForEach(it, c)
		{
			if (cJSON_IsTrue(it)) {
				strncat(caps, it->string, sizeof(caps) - strlen(caps) - 2);
				strcat(caps, ",");
			}
		}
		if (caps[0]) {
			caps[strlen(caps) - 1] = '\0';
		}
		if (cJSON_IsNumber(lat)) {
			snprintf(l, sizeof(l), "%.0fms", lat->valuedouble);
		}
		printf("%-12s %-11s %-10s %-9s %-10s %s\n", j_str(s, "type"),
		       j_bool(s, "operational") ? "yes" : "no", j_str(s, "status"),
		       j_str(j_obj(s, "breaker"), "state"), l, caps);
	}
	if (!cJSON_GetArraySize(j_obj(r, "services"))) {
		printf("(no services registered)\n");
	}
}

static void print_health(const cJSON *r)
{
	const cJSON *s;

	printf("overall: %s\n", j_str(r, "overall"));
	printf("%-12s %-10s %-9s %-12s %s\n", "TYPE", "STATE", "BREAKER", "SINCE", "LAST ERROR");
	cJSON_ArrayForEach(s, j_obj(r, "services"))
	{
		printf("%-12s %-10s %-9s %-12.0f %s\n", j_str(s, "type"), j_str(s, "state"),
		       j_str(s, "breaker"), j_num(s, "since"), j_str(s, "last_error"));
	}
}

static void print_metrics_row(const char *name, const cJSON *m)
{
	printf("%-12s %10.0f %10.0f %10.0f %9.0f/%-9.0f %10.0f %7.0f\n", name,
	       j_num(m, "connections_attempted"), j_num(m, "connections_successful"),
	       j_num(m, "connections_failed"), j_num(m, "upgrade_successes"),
	       j_num(m, "upgrade_attempts"), j_num(m, "payment_sats"),
	       j_num(m, "active_connections"));
}

static void print_metrics(const cJSON *r)
{
	const cJSON *m = j_obj(r, "metrics"), *s;

	printf("%-12s %10s %10s %10s %19s %10s %7s\n", "SERVICE", "ATTEMPTED", "OK", "FAILED",
	       "UPGRADES ok/tried", "SATS", "ACTIVE");
	cJSON_ArrayForEach(s, j_obj(m, "services"))
	{
		print_metrics_row(s->string, s);
	}
	print_metrics_row("total", j_obj(m, "total"));
}

static void print_engine(const cJSON *r)
{
	const cJSON *e = j_obj(r, "engine"), *s;

	printf("state: %s", j_str(e, "state"));
	if (!strcmp(j_str(e, "state"), "up")) {
		printf(" (pid %.0f, version %s, %s, restarts %.0f)\n", j_num(e, "pid"),
		       j_str(e, "version"),
		       j_bool(e, "attached") ? "reattached" : "started by natxd",
		       j_num(e, "restarts"));
	} else {
		printf(" (%s)\n", j_str(e, "last_error"));
		return;
	}
	printf("%-6s %-4s %10s %12s %14s %14s %12s %12s %8s\n", "SHARD", "CPU", "FLOWS",
	       "FLOWS_TOT", "BYTES_IN", "BYTES_OUT", "PKTS_IN", "PKTS_OUT", "DROPS");
	cJSON_ArrayForEach(s, j_obj(e, "shards"))
	{
		printf("%-6.0f %-4.0f %10.0f %12.0f %14.0f %14.0f %12.0f %12.0f %8.0f\n",
		       j_num(s, "shard"), j_num(s, "cpu"), j_num(s, "flows_open"),
		       j_num(s, "flows_total"), j_num(s, "bytes_in"), j_num(s, "bytes_out"),
		       j_num(s, "packets_in"), j_num(s, "packets_out"), j_num(s, "drops"));
	}
	s = j_obj(e, "total");
	if (s) {
		printf("%-11s %10.0f %12.0f %14.0f %14.0f %12.0f %12.0f %8.0f\n", "total",
		       j_num(s, "flows_open"), j_num(s, "flows_total"), j_num(s, "bytes_in"),
		       j_num(s, "bytes_out"), j_num(s, "packets_in"), j_num(s, "packets_out"),
		       j_num(s, "drops"));
	}
	s = j_obj(e, "steering");
	if (s) {
		printf("steering: %s", j_str(s, "mode"));
		if (strcmp(j_str(s, "mode"), "bpf")) {
			printf(" (%s)", j_str(s, "reason"));
		}
		printf("\n");
	}
}

/* print_counters - "name value" pairs of a counter object on one line. */
static void print_counters(const cJSON *c)
{
	const cJSON *it;

	cJSON_ArrayForEach(it, c)
	{
		printf("  %s %.0f", it->string, it->valuedouble);
	}
	printf("\n");
}

static void print_bpf(const cJSON *r)
{
	const cJSON *b = j_obj(r, "bpf"), *x = j_obj(b, "xdp"), *f = j_obj(b, "fallback");
	const cJSON *p = j_obj(b, "punch_steer");
	const char *active = j_str(b, "active");

	if (!strcmp(active, "xdp")) {
		printf("XDP reflector: interface %s, mode %s, program id %.0f, link id %.0f, "
		       "port %.0f\n",
		       j_str(x, "interface"), j_str(x, "mode"), j_num(x, "prog_id"),
		       j_num(x, "link_id"), j_num(b, "stun_port"));
		printf("counters:");
		print_counters(j_obj(x, "counters"));
	} else if (!strcmp(active, "fallback")) {
		printf("engine (user space) STUN responder: %s\n", j_str(b, "reason"));
		if (j_bool(f, "running")) {
			printf("listening %s (not accelerated)\ncounters:", j_str(f, "listen"));
		} else {
			printf("not answering: %s\ncounters:", j_str(f, "error"));
		}
		print_counters(j_obj(f, "counters"));
	} else {
		printf("no STUN responder (%s): %s\n", active, j_str(b, "reason"));
	}
	if (j_obj(b, "steering")) {
		const cJSON *st = j_obj(b, "steering");

		printf("engine SO_REUSEPORT steering: %s", j_str(st, "mode"));
		if (!strcmp(j_str(st, "mode"), "bpf")) {
			printf(" (program id %.0f, groups %.0f, steered %.0f, fallback %.0f)\n",
			       j_num(st, "prog_id"), j_num(st, "groups"), j_num(st, "steered"),
			       j_num(st, "fallback"));
		} else {
			printf(" (%s)\n", j_str(st, "reason"));
		}
	}
	if (p) {
		printf("punch steering (sk_lookup): %s, program id %.0f, ports %.0f-%.0f, "
		       "sessions %.0f, flows %.0f\ncounters:",
		       j_bool(p, "attached") ? "attached" : "not attached", j_num(p, "prog_id"),
		       j_num(p, "port_lo"), j_num(p, "port_hi"), j_num(p, "sessions"),
		       j_num(p, "flows"));
		print_counters(j_obj(p, "counters"));
	}
}

static void print_forwards(const cJSON *r)
{
	const cJSON *f;

	printf("%-4s %-7s %-8s %-44s %6s %10s %s\n", "ID", "SOURCE", "STATE", "SPEC", "FLOWS",
	       "BYTES", "ERROR");
	cJSON_ArrayForEach(f, j_obj(r, "forwards"))
	{
		printf("%-4.0f %-7s %-8s %-44s %6.0f %10.0f %s\n", j_num(f, "id"),
		       j_str(f, "source"), j_str(f, "state"), j_str(f, "spec"),
		       j_num(f, "flows_open"), j_num(f, "bytes"),
		       j_str(f, "error")[0] == '-' ? "" : j_str(f, "error"));
	}
}

/* print_conn - one connection: where it listens, how it reaches the target, and why. */
static void print_conn(const cJSON *c)
{
	printf("%-4.0f %-22s %-14s %-10s %s\n     via %s\n     why %s\n", j_num(c, "id"),
	       j_str(c, "local"), j_str(c, "path"), j_str(c, "service"), j_str(c, "target"),
	       j_str(c, "via"), j_str(c, "reason"));
}

static void print_nodes(const cJSON *r)
{
	const cJSON *n, *m;

	printf("%-40s %-6s %s\n", "NODE", "PROXY", "MULTIADDRS");
	cJSON_ArrayForEach(n, j_obj(r, "nodes"))
	{
		printf("%-40s %-6s", j_str(n, "node_id"), j_bool(n, "offers_proxy") ? "yes" : "no");
		cJSON_ArrayForEach(m, j_obj(n, "multiaddrs"))
		{
			printf(" %s", cJSON_IsString(m) ? m->valuestring : "?");
		}
		printf("\n");
	}
}

static void print_conns(const cJSON *r)
{
	const cJSON *c;

	printf("%-4s %-22s %-14s %-10s %s\n", "ID", "LOCAL", "PATH", "SERVICE", "TARGET");
	cJSON_ArrayForEach(c, j_obj(r, "connections"))
	{
		print_conn(c);
	}
}

static void print_invoices(const cJSON *r)
{
	const cJSON *i;

	printf("backend: %s (%s)\n", j_str(r, "backend"),
	       j_bool(r, "real_money") ? "real money" : "regtest: no real money");
	printf("%-64s %-8s %12s %-4s %s\n", "PAYMENT_HASH", "STATE", "AMOUNT_MSAT", "TYPE",
	       "REGISTERED");
	cJSON_ArrayForEach(i, j_obj(r, "invoices"))
	{
		printf("%-64s %-8s %12.0f %-4s %s\n", j_str(i, "payment_hash"), j_str(i, "state"),
		       j_num(i, "amount_msat"), j_str(i, "service_type"),
		       j_bool(i, "registered") ? "yes" : "no");
	}
}

static void print_tokens(const cJSON *r)
{
	const cJSON *t;

	printf("%-64s %-24s %-12s %-7s %s\n", "TOKEN_ID", "NODE", "EXPIRES_AT", "REVOKED",
	       "CAVEATS");
	cJSON_ArrayForEach(t, j_obj(r, "tokens"))
	{
		printf("%-64s %-24s %-12.0f %-7s %s\n", j_str(t, "token_id"), j_str(t, "node_id"),
		       j_num(t, "expires_at"), j_bool(t, "revoked") ? "yes" : "no",
		       j_str(t, "caveats"));
	}
}

static void print_tunnels(const cJSON *r)
{
	const cJSON *t, *srv = cJSON_IsObject(j_obj(r, "server")) ? j_obj(r, "server") : NULL;

	if (srv) {
		/* the tunnel server and, with the encrypted transport, the key clients pin */
		printf("tunnel server %s, transport %s", j_str(srv, "listen"),
		       j_str(srv, "transport"));
		if (cJSON_IsString(cJSON_GetObjectItemCaseSensitive(srv, "noise_pubkey"))) {
			printf(", noise public key %s", j_str(srv, "noise_pubkey"));
		}
		printf("\n\n");
	}
	printf("%-20s %-6s %-4s %-22s %-8s %-6s %6s %8s %12s %s\n", "SERVICE", "ROLE", "TYPE",
	       "ADDRESS", "STATE", "SOURCE", "CONNS", "TOTAL", "BYTES", "ERROR");
	cJSON_ArrayForEach(t, j_obj(r, "services"))
	{
		const char *addr = j_str(t, "bind");

		if (addr[0] == '-') {
			addr = j_str(t, "local");
		}
		printf("%-20s %-6s %-4s %-22s %-8s %-6s %6.0f %8.0f %12.0f %s\n", j_str(t, "name"),
		       j_str(t, "role"), j_str(t, "type"), addr, j_str(t, "state"),
		       j_str(t, "source"), j_num(t, "flows_open") + j_num(t, "udp_sessions"),
		       j_num(t, "flows_total") +
			       (!strcmp(j_str(t, "type"), "udp") ? j_num(t, "visitors") : 0),
		       j_num(t, "bytes"), j_str(t, "error")[0] == '-' ? "" : j_str(t, "error"));
	}
	printf("\npaid registrations:\n");

	printf("%-4s %-24s %-20s %-5s %-6s %-8s %-12s %s\n", "ID", "NODE", "SERVICE", "PROTO",
	       "PORT", "STATE", "EXPIRES_AT", "TOKEN");
	cJSON_ArrayForEach(t, j_obj(r, "registrations"))
	{
		printf("%-4.0f %-24s %-20s %-5s %-6.0f %-8s %-12.0f %.16s\n", j_num(t, "id"),
		       j_str(t, "node_id"), j_str(t, "service_name"), j_str(t, "proto"),
		       j_num(t, "public_port"), j_str(t, "state"), j_num(t, "expires_at"),
		       j_str(t, "token_id"));
	}
}

/* print_peers - `peers`: one line per live connection, then the kept peers. */
static void print_peers(const cJSON *r)
{
	const cJSON *p;

	printf("%-54s %-8s %-4s %7s %8s  %s\n", "PEER", "PATH", "DIR", "RTT_MS", "AGE_S",
	       "ADDRESS / RELAY");
	cJSON_ArrayForEach(p, j_obj(r, "peers"))
	{
		bool relayed = j_obj(p, "relay") != NULL;

		printf("%-54s %-8s %-4s %7.0f %8.1f  %s%s\n", j_str(p, "peer_id"), j_str(p, "path"),
		       j_str(p, "direction"), j_num(p, "rtt_ms"), j_num(p, "age_s"),
		       relayed ? "via " : "", relayed ? j_str(p, "relay") : j_str(p, "addr"));
	}
	cJSON_ArrayForEach(p, j_obj(r, "kept"))
	{
		printf("kept %s (%s): %s", j_str(p, "addr"),
		       j_bool(p, "bootstrap") ? "bootstrap" : "relay",
		       j_bool(p, "connected") ? "connected" : "reconnecting");
		if (j_bool(p, "reserved")) {
			printf(", reserved: %s", j_str(p, "circuit_addr"));
		}
		if (j_obj(p, "last_refusal")) {
			printf(", last refusal %s", j_str(p, "last_refusal"));
		}
		printf("\n");
	}
}

/* print_relay - `relay status`: settings, counters, circuits, top talkers, our reservations. */
static void print_relay(const cJSON *r)
{
	const cJSON *e;

	printf("relay server: %s\n", j_bool(r, "enabled") ? "on" : "off");
	if (j_obj(r, "limits")) {
		printf("limits:\n");
		print_kv(j_obj(r, "limits"), "  ");
		printf("counters:\n");
		print_kv(j_obj(r, "counters"), "  ");
		printf("circuits:\n");
		cJSON_ArrayForEach(e, j_obj(r, "circuits"))
		{
			printf("  %s -> %s  %.0f / %.0f bytes, %.0f ms\n", j_str(e, "src"),
			       j_str(e, "dst"), j_num(e, "bytes_src_to_dst"),
			       j_num(e, "bytes_dst_to_src"), j_num(e, "age_ms"));
		}
		printf("top talkers:\n");
		cJSON_ArrayForEach(e, j_obj(r, "top_talkers"))
		{
			printf("  %-54s %.0f bytes\n", j_str(e, "peer_id"), j_num(e, "bytes"));
		}
	}
	cJSON_ArrayForEach(e, j_obj(r, "node_reservations"))
	{
		printf("our reservation on %s: %s\n", j_str(e, "addr"),
		       j_bool(e, "reserved") ? j_str(e, "circuit_addr") : "none (retrying)");
	}
}

/* print_upgrades - `upgrades`: DCUtR on/off, counters, one line per upgrade. */
static void print_upgrades(const cJSON *r)
{
	const cJSON *e, *a;

	printf("hole punching (DCUtR): %s, prime TTL %.0f\n", j_bool(r, "enabled") ? "on" : "off",
	       j_num(r, "prime_ttl"));
	printf("announced addresses:");
	cJSON_ArrayForEach(e, j_obj(r, "addrs"))
	{
		printf(" %s", cJSON_IsString(e) ? e->valuestring : "?");
	}
	printf("\ncounters:\n");
	print_kv(j_obj(r, "counters"), "  ");
	printf("%-54s %-4s %-11s %9s %8s  %s\n", "PEER", "ROLE", "STATE", "ATTEMPTS", "MS",
	       "DIRECT ADDRESS / ERROR");
	cJSON_ArrayForEach(e, j_obj(r, "upgrades"))
	{
		a = j_obj(e, "attempts");
		printf("%-54s %-4s %-11s %9d %8.0f  %s\n", j_str(e, "peer_id"), j_str(e, "role"),
		       j_str(e, "state"), cJSON_GetArraySize(a), j_num(e, "duration_ms"),
		       j_obj(e, "error") ? j_str(e, "error") : j_str(e, "addr"));
	}
}

/* print_nat - `nat`: reachability, claimed addresses, last answers, server counters. */
static void print_nat(const cJSON *r)
{
	const cJSON *e;

	printf("reachability: %s (confidence %.0f/%.0f)\n", j_str(r, "reachability"),
	       j_num(r, "confidence"), j_num(r, "max_confidence"));
	printf("reached at: %s\n", j_str(r, "reached_addr")[0] ? j_str(r, "reached_addr") : "-");
	printf("observed addresses (asked to dial):");
	cJSON_ArrayForEach(e, j_obj(r, "observed_addrs"))
	{
		printf(" %s", cJSON_IsString(e) ? e->valuestring : "?");
	}
	printf("\nrounds %.0f, probes %.0f, probe errors %.0f\n", j_num(r, "rounds"),
	       j_num(r, "probes"), j_num(r, "probe_errors"));
	e = j_obj(r, "relay_discovery");
	if (e) {
		const cJSON *k;

		printf("relay discovery: %s\n",
		       j_bool(e, "enabled") ? "on (reserve while private)" : "off");
		cJSON_ArrayForEach(k, j_obj(e, "relays"))
		{
			printf("  %s %s%s\n", j_str(k, "addr"),
			       j_bool(k, "reserved") ? "reserved " : "reserving",
			       j_obj(k, "circuit_addr") ? j_str(k, "circuit_addr") : "");
		}
	}
	printf("server:\n");
	print_kv(j_obj(r, "server"), "  ");
	printf("%-54s %6s %6s  %s\n", "SERVER PEER", "STATUS", "AGE_S", "TEXT");
	cJSON_ArrayForEach(e, j_obj(r, "results"))
	{
		printf("%-54s %6.0f %6.0f  %s\n", j_str(e, "peer"), j_num(e, "status"),
		       j_num(e, "age_s"), j_str(e, "text"));
	}
}

static void natxctl_print(const struct ctl_cmd *c, const cJSON *r)
{
	if (!strcmp(c->name, "nat") || !strcmp(c->name, "nat.probe")) {
		print_nat(r);
		return;
	}
	if (!strcmp(c->name, "upgrades")) {
		print_upgrades(r);
		return;
	}
	if (!strcmp(c->name, "peers")) {
		print_peers(r);
		return;
	}
	if (!strcmp(c->name, "relay.status")) {
		print_relay(r);
		return;
	}
	if (!strcmp(c->name, "reserve")) {
		printf("reserved on %s (expires in %.0f s)\n%s\n", j_str(r, "peer_id"),
		       j_num(r, "expire_in_s"), j_str(r, "circuit_addr"));
		return;
	}
	if (!strcmp(c->name, "invoice.list")) {
		print_invoices(r);
		return;
	}
	if (!strcmp(c->name, "token.list")) {
		print_tokens(r);
		return;
	}
	if (!strcmp(c->name, "tunnel.ls")) {
		print_tunnels(r);
		return;
	}
	if (!strcmp(c->name, "status")) {
		print_kv(j_obj(r, "status"), "");
	} else if (!strcmp(c->name, "services")) {
		print_services(r);
	} else if (!strcmp(c->name, "health")) {
		print_health(r);
	} else if (!strcmp(c->name, "metrics")) {
		print_metrics(r);
	} else if (!strcmp(c->name, "engine.stats")) {
		print_engine(r);
	} else if (!strcmp(c->name, "bpf.status")) {
		print_bpf(r);
	} else if (!strcmp(c->name, "forward.list")) {
		print_forwards(r);
	} else if (!strcmp(c->name, "forward.add")) {
		printf("forward %.0f: %s\n", j_num(j_obj(r, "forward"), "id"),
		       j_str(j_obj(r, "forward"), "spec"));
	} else if (!strcmp(c->name, "forward.rm")) {
		printf("forward removed\n");
	} else if (!strcmp(c->name, "tunnel.add")) {
		printf("%s service %s added\n", j_str(j_obj(r, "service"), "role"),
		       j_str(j_obj(r, "service"), "name"));
	} else if (!strcmp(c->name, "tunnel.rm")) {
		printf("tunnel service removed\n");
	} else if (!strcmp(c->name, "reload")) {
		printf("configuration reloaded\n");
	} else if (!strcmp(c->name, "connect") && j_obj(r, "connection")) {
		print_conn(j_obj(r, "connection"));
	} else if (!strcmp(c->name, "connect")) {
		print_kv(j_obj(r, "connection_info"), "");
	} else if (!strcmp(c->name, "connections")) {
		print_conns(r);
	} else if (!strcmp(c->name, "node.ls")) {
		print_nodes(r);
	} else if (!strcmp(c->name, "node.rm")) {
		printf("node removed\n");
	} else if (!strcmp(c->name, "connections.close")) {
		printf("connection closed\n");
	} else {
		print_kv(r, "");
	}
}

/* ---- main --------------------------------------------------------------------------------- */

/* natxctl_match - the row whose words start argv[*i..]; advances *i past them. */
static const struct ctl_cmd *natxctl_match(int argc, char **argv, int *i)
{
	const struct ctl_cmd *best = NULL;
	int best_n = 0;

	for (const struct ctl_cmd *c = ctl_cmd_table; c->words; c++) {
		char words[64], *save, *w;
		int n = 0;
		bool ok = true;

		snprintf(words, sizeof(words), "%s", c->words);
		for (w = strtok_r(words, " ", &save); w; w = strtok_r(NULL, " ", &save), n++) {
			if (*i + n >= argc || strcmp(argv[*i + n], w)) {
				ok = false;
				break;
			}
		}
		if (ok && n > best_n) {
			best = c;
			best_n = n;
		}
	}
	*i += best_n;
	return best;
}

int main(int argc, char **argv)
{
	static struct natx_config defaults;
	const char *sock = getenv("NATX_CTL_SOCKET");
	bool json = false;
	int timeout_s = 30, i = 1, fd, status;
	const struct ctl_cmd *c;
	cJSON *req, *reply;
	const cJSON *ok;

	for (; i < argc && argv[i][0] == '-'; i++) {
		if (!strcmp(argv[i], "--json")) {
			json = true;
		} else if (!strcmp(argv[i], "--socket") && i + 1 < argc) {
			sock = argv[++i];
		} else if (!strcmp(argv[i], "--timeout") && i + 1 < argc) {
			timeout_s = atoi(argv[++i]);
			if (timeout_s <= 0) {
				fprintf(stderr, "natxctl: --timeout takes seconds > 0\n");
				return CTL_EXIT_USAGE;
			}
		} else if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
			natxctl_usage(stdout);
			return CTL_EXIT_OK;
		} else if (!strcmp(argv[i], "--version")) {
			printf("natxctl %s (control protocol %d)\n", NATX_VERSION,
			       CTL_PROTO_VERSION);
			return CTL_EXIT_OK;
		} else {
			fprintf(stderr, "natxctl: unknown option %s\n", argv[i]);
			natxctl_usage(stderr);
			return CTL_EXIT_USAGE;
		}
	}
	if (i >= argc) {
		natxctl_usage(stderr);
		return CTL_EXIT_USAGE;
	}
	c = natxctl_match(argc, argv, &i);
	if (!c) {
		fprintf(stderr, "natxctl: unknown command '%s'\n", argv[i]);
		natxctl_usage(stderr);
		return CTL_EXIT_USAGE;
	}
	req = cJSON_CreateObject();
	if (!req) {
		return CTL_EXIT_INTERNAL;
	}
	cJSON_AddNumberToObject(req, "v", CTL_PROTO_VERSION);
	cJSON_AddNumberToObject(req, "id", 1);
	cJSON_AddStringToObject(req, "cmd", c->name);
	for (; i < argc; i++) {
		const char *a = argv[i];

		if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
			natxctl_cmd_help(c);
			cJSON_Delete(req);
			return CTL_EXIT_OK;
		}
		if (!strcmp(c->name, "connect") && a[0] == '-') {
			if (!strcmp(a, "--prefer-libp2p")) {
				cJSON_AddTrueToObject(req, "prefer_libp2p");
			} else if (!strcmp(a, "--allow-payment") || !strcmp(a, "--no-paid")) {
				/* paid services are candidates unless --no-paid (the last one wins) */
				cJSON_DeleteItemFromObjectCaseSensitive(req, "allow_payment");
				cJSON_AddBoolToObject(req, "allow_payment", a[2] == 'a');
			} else if (!strcmp(a, "--direct")) {
				cJSON_AddTrueToObject(req, "direct");
			} else if (!strcmp(a, "--tcp") || !strcmp(a, "--udp")) {
				cJSON_AddStringToObject(req, "proto", a + 2);
			} else if ((!strcmp(a, "--local") || !strcmp(a, "--service")) &&
				   i + 1 < argc) {
				cJSON_DeleteItemFromObjectCaseSensitive(req, a + 2);
				cJSON_AddStringToObject(req, a + 2, argv[++i]);
			} else {
				goto bad_arg;
			}
			continue;
		}
		if (!strcmp(c->name, "node.set") && a[0] == '/' &&
		    cJSON_GetObjectItemCaseSensitive(req, "node")) {
			cJSON *ms = cJSON_GetObjectItemCaseSensitive(req, "multiaddrs");

			if (!ms) {
				ms = cJSON_AddArrayToObject(req, "multiaddrs");
			}
			cJSON_AddItemToArray(ms, cJSON_CreateString(a));
			continue;
		}
		if (!strncmp(c->name, "tunnel.", 7) && a[0] == '-' && a[1] == '-') {
			int used = natxctl_tunnel_flag(c, req, argc, argv, i);

			if (used < 0) {
				cJSON_Delete(req);
				return CTL_EXIT_USAGE;
			}
			if (used > 0) {
				i += used - 1;
				continue;
			}
		}
		if (!strcmp(c->name, "ping") && !strcmp(a, "-n")) {
			char *end;
			long n = i + 1 < argc ? strtol(argv[i + 1], &end, 10) : 0;

			if (n < 1 || n > 32 || *end) {
				fprintf(stderr, "natxctl: ping -n takes 1..32\n");
				cJSON_Delete(req);
				return CTL_EXIT_USAGE;
			}
			cJSON_AddNumberToObject(req, "count", (double)n);
			i++;
			continue;
		}
		if (c->arg) {
			/* c->arg names the positional arguments in order, space separated. */
			char names[64], *save, *name;
			bool used = false;

			snprintf(names, sizeof(names), "%s", c->arg);
			for (name = strtok_r(names, " ", &save); name && !used;
			     name = strtok_r(NULL, " ", &save)) {
				char *end;
				unsigned long id = strtoul(a, &end, 10);

				if (cJSON_GetObjectItemCaseSensitive(req, name)) {
					continue;
				}
				if (!strcmp(name, "forward") && a[0] && !*end) {
					cJSON_AddNumberToObject(req, name, (double)id);
				} else {
					cJSON_AddStringToObject(req, name, a);
				}
				used = true;
			}
			if (used) {
				continue;
			}
		}
bad_arg:
		fprintf(stderr, "natxctl: unexpected argument '%s'\n", a);
		natxctl_cmd_help(c);
		cJSON_Delete(req);
		return CTL_EXIT_USAGE;
	}
	if (!strcmp(c->name, "connect") &&
	    !cJSON_GetObjectItemCaseSensitive(req, "allow_payment")) {
		cJSON_AddTrueToObject(req, "allow_payment");
	}
	if (c->arg) {
		char names[64], *save, *name;

		snprintf(names, sizeof(names), "%s", c->arg);
		for (name = strtok_r(names, " ", &save); name; name = strtok_r(NULL, " ", &save)) {
			if (!cJSON_GetObjectItemCaseSensitive(req, name)) {
				fprintf(stderr, "natxctl: %s needs %s\n", c->words, c->usage);
				cJSON_Delete(req);
				return CTL_EXIT_USAGE;
			}
		}
	}
	if (!sock) {
		config_defaults(&defaults, natxctl_getenv);
		sock = defaults.socket_path;
	}
	fd = natxctl_connect(sock);
	if (fd < 0) {
		cJSON_Delete(req);
		return CTL_EXIT_NO_DAEMON;
	}
	reply = natxctl_call(fd, req, timeout_s);
	cJSON_Delete(req);
	close(fd);
	if (!reply) {
		return CTL_EXIT_NO_DAEMON;
	}
	ok = j_obj(reply, "ok");
	if (json) {
		char *s = cJSON_PrintUnformatted(reply);

		printf("%s\n", s ? s : "null");
		free(s);
	}
	if (cJSON_IsTrue(ok)) {
		if (!json) {
			natxctl_print(c, reply);
		}
		status = CTL_EXIT_OK;
	} else {
		const cJSON *e = j_obj(reply, "error");

		status = ctl_err_by_code(j_str(e, "code"))->exit_status;
		if (!json) {
			fprintf(stderr, "natxctl: %s: %s\n", j_str(e, "code"), j_str(e, "message"));
		}
	}
	cJSON_Delete(reply);
	return status;
}
