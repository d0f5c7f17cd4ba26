// SPDX-License-Identifier: MIT
/* natx-engine command line parsing (see args.h). */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "args.h"
#include "stun_server.h"
#include "natx/log.h"

void args_defaults(struct engine_cfg *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->drain_timeout_ms = 10000;
	cfg->idle_timeout_s = 0;
	cfg->udp_idle_timeout_s = 60;
	cfg->connect_timeout_s = 10;
	cfg->flow_buffer_limit = 256 * 1024;
	cfg->buf_size = 64 * 1024;
	cfg->buf_count = 256;
	cfg->udp_buf_size = 8192;
	cfg->udp_buf_count = 1024;
	cfg->zc_threshold = 0;
	cfg->max_flows = 65536;
	cfg->tcp_mode = TCP_MODE_SPLICE;
	cfg->p2p_listen = "/ip4/0.0.0.0/tcp/4001";
}

const char *args_usage(void)
{
	return "usage: natx-engine [--shards N] [--forward SPEC]... [--forwards-file PATH]\n"
	       "                   [--ctl PATH] [--stats-file PATH] [--drain-timeout SEC]\n"
	       "                   [--idle-timeout SEC] [--udp-idle-timeout SEC]\n"
	       "                   [--connect-timeout SEC] [--flow-buffer-limit BYTES]\n"
	       "                   [--tcp-mode splice|uring] [--zc-threshold BYTES]\n"
	       "                   [--buf-size BYTES] [--buf-count N] [--max-flows N]\n"
	       "                   [--udp-buf-size BYTES] [--udp-buf-count N]\n"
	       "                   [--keepalive] [--no-pin] [--log FILTER] [--help] [--version]\n"
	       "                   [--p2p-key-file PATH [--p2p-listen MULTIADDR]\n"
	       "                   [--p2p-keepalive SEC] [--p2p-keepalive-timeout SEC]]\n"
	       "                   [--steer auto|bpf|kernel] [--stun-listen ADDR:PORT\n"
	       "                   [--stun-rate N] [--stun-burst N]] [--punch-pin-root DIR]\n"
	       "SPEC = tcp|udp:LISTEN=UPSTREAM, LISTEN/UPSTREAM = host:port or [v6addr]:port\n"
	       "       e.g. tcp:0.0.0.0:8080=127.0.0.1:80  udp:[::1]:5353=[::1]:53\n";
}

/* args_u32 - decimal @s into @out within [min, max]. */
static int args_u32(const char *opt, const char *s, uint64_t min, uint64_t max, uint32_t *out,
		    char *err)
{
	uint64_t v = 0;

	if (!*s) {
		snprintf(err, ARGS_ERR_MAX, "%s: empty value", opt);
		return -EINVAL;
	}
	for (const char *p = s; *p; p++) {
		if (*p < '0' || *p > '9' || v > 0xffffffffULL) {
			snprintf(err, ARGS_ERR_MAX, "%s: '%.32s' is not a number", opt, s);
			return -EINVAL;
		}
		v = v * 10 + (uint64_t)(*p - '0');
	}
	if (v < min || v > max) {
		snprintf(err, ARGS_ERR_MAX, "%s: %llu out of range [%llu, %llu]", opt,
			 (unsigned long long)v, (unsigned long long)min, (unsigned long long)max);
		return -EINVAL;
	}
	*out = (uint32_t)v;
	return 0;
}

static bool args_pow2(uint32_t v)
{
	return v && !(v & (v - 1));
}

int args_parse(int argc, char **argv, struct engine_cfg *cfg, char *err)
{
	args_defaults(cfg);
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *val = NULL;
		char opt[40];
		const char *eq;
		uint32_t v;
		int ret = 0;

		if (strncmp(a, "--", 2) != 0) {
			snprintf(err, ARGS_ERR_MAX, "unexpected argument '%.64s'", a);
			return -EINVAL;
		}
		eq = strchr(a, '=');
		if (eq && (size_t)(eq - a) < sizeof(opt)) {
			memcpy(opt, a, (size_t)(eq - a));
			opt[eq - a] = '\0';
			val = eq + 1;
		} else {
			snprintf(opt, sizeof(opt), "%s", a);
		}
		if (!strcmp(opt, "--help")) {
			cfg->help = true;
			continue;
		}
		if (!strcmp(opt, "--version")) {
			cfg->version = true;
			continue;
		}
		if (!strcmp(opt, "--keepalive")) {
			cfg->keepalive = true;
			continue;
		}
		if (!strcmp(opt, "--no-pin")) {
			cfg->no_pin = true;
			continue;
		}
		static const char *const with_value[] = {
			"--shards",	     "--forward",
			"--forwards-file",   "--ctl",
			"--stats-file",	     "--drain-timeout",
			"--idle-timeout",    "--udp-idle-timeout",
			"--connect-timeout", "--flow-buffer-limit",
			"--tcp-mode",	     "--zc-threshold",
			"--buf-size",	     "--buf-count",
			"--max-flows",	     "--log",
			"--udp-buf-size",    "--udp-buf-count",
			"--p2p-key-file",    "--p2p-listen",
			"--steer",	     "--stun-listen",
			"--stun-rate",	     "--stun-burst",
			"--punch-pin-root",
		};
		/* libp2p dead-connection detection (p2p_host.keepalive_ms) */
		bool known =
			!strcmp(opt, "--p2p-keepalive") || !strcmp(opt, "--p2p-keepalive-timeout");

		for (size_t k = 0; k < sizeof(with_value) / sizeof(with_value[0]); k++) {
			known |= !strcmp(opt, with_value[k]);
		}
		if (!known) {
			snprintf(err, ARGS_ERR_MAX, "unknown option '%.64s'", opt);
			return -EINVAL;
		}
		if (!val) {
			if (i + 1 >= argc) {
				snprintf(err, ARGS_ERR_MAX, "%s needs a value", opt);
				return -EINVAL;
			}
			val = argv[++i];
		}
		if (!strcmp(opt, "--shards")) {
			ret = args_u32(opt, val, 1, 255, &cfg->shards, err);
		} else if (!strcmp(opt, "--forward")) {
			struct spec s;
			char serr[SPEC_ERR_MAX];

			if (cfg->nforwards == ARGS_FORWARDS_MAX) {
				snprintf(err, ARGS_ERR_MAX, "more than %d --forward options",
					 ARGS_FORWARDS_MAX);
				return -EINVAL;
			}
			if (spec_parse(val, &s, serr)) {
				snprintf(err, ARGS_ERR_MAX, "bad --forward '%.80s': %s", val, serr);
				return -EINVAL;
			}
			cfg->forwards[cfg->nforwards++] = val;
		} else if (!strcmp(opt, "--forwards-file")) {
			cfg->forwards_file = val;
		} else if (!strcmp(opt, "--ctl")) {
			cfg->ctl_path = val;
		} else if (!strcmp(opt, "--stats-file")) {
			cfg->stats_file = val;
		} else if (!strcmp(opt, "--p2p-key-file")) {
			cfg->p2p_key_file = val;
		} else if (!strcmp(opt, "--p2p-listen")) {
			cfg->p2p_listen = val;
		} else if (!strcmp(opt, "--p2p-keepalive")) {
			ret = args_u32(opt, val, 1, 3600, &cfg->p2p_keepalive_s, err);
		} else if (!strcmp(opt, "--p2p-keepalive-timeout")) {
			ret = args_u32(opt, val, 1, 3600, &cfg->p2p_keepalive_timeout_s, err);
		} else if (!strcmp(opt, "--log")) {
			if (log_filter_set(val)) {
				snprintf(err, ARGS_ERR_MAX, "--log: bad filter '%.64s'", val);
				return -EINVAL;
			}
			cfg->log = val;
		} else if (!strcmp(opt, "--drain-timeout")) {
			ret = args_u32(opt, val, 0, 86400, &v, err);
			cfg->drain_timeout_ms = v * 1000;
		} else if (!strcmp(opt, "--idle-timeout")) {
			ret = args_u32(opt, val, 0, 7 * 86400, &cfg->idle_timeout_s, err);
		} else if (!strcmp(opt, "--udp-idle-timeout")) {
			ret = args_u32(opt, val, 1, 86400, &cfg->udp_idle_timeout_s, err);
		} else if (!strcmp(opt, "--connect-timeout")) {
			ret = args_u32(opt, val, 1, 600, &cfg->connect_timeout_s, err);
		} else if (!strcmp(opt, "--flow-buffer-limit")) {
			ret = args_u32(opt, val, 4096, 64u << 20, &cfg->flow_buffer_limit, err);
		} else if (!strcmp(opt, "--zc-threshold")) {
			ret = args_u32(opt, val, 0, 1u << 30, &cfg->zc_threshold, err);
		} else if (!strcmp(opt, "--buf-size")) {
			ret = args_u32(opt, val, 2048, 1u << 20, &cfg->buf_size, err);
			if (!ret && !args_pow2(cfg->buf_size)) {
				snprintf(err, ARGS_ERR_MAX, "--buf-size: must be a power of two");
				ret = -EINVAL;
			}
		} else if (!strcmp(opt, "--buf-count")) {
			ret = args_u32(opt, val, 16, 32768, &cfg->buf_count, err);
			if (!ret && !args_pow2(cfg->buf_count)) {
				snprintf(err, ARGS_ERR_MAX, "--buf-count: must be a power of two");
				ret = -EINVAL;
			}
		} else if (!strcmp(opt, "--udp-buf-size")) {
			ret = args_u32(opt, val, 2048, 65536, &cfg->udp_buf_size, err);
			if (!ret && !args_pow2(cfg->udp_buf_size)) {
				snprintf(err, ARGS_ERR_MAX,
					 "--udp-buf-size: must be a power of two");
				ret = -EINVAL;
			}
		} else if (!strcmp(opt, "--udp-buf-count")) {
			ret = args_u32(opt, val, 16, 32768, &cfg->udp_buf_count, err);
			if (!ret && !args_pow2(cfg->udp_buf_count)) {
				snprintf(err, ARGS_ERR_MAX,
					 "--udp-buf-count: must be a power of two");
				ret = -EINVAL;
			}
		} else if (!strcmp(opt, "--max-flows")) {
			ret = args_u32(opt, val, 16, 1u << 22, &cfg->max_flows, err);
		} else if (!strcmp(opt, "--steer")) {
			if (!strcmp(val, "auto")) {
				cfg->steer = STEER_AUTO;
			} else if (!strcmp(val, "bpf")) {
				cfg->steer = STEER_BPF;
			} else if (!strcmp(val, "kernel")) {
				cfg->steer = STEER_KERNEL;
			} else {
				snprintf(err, ARGS_ERR_MAX,
					 "--steer: expected auto, bpf or kernel");
				ret = -EINVAL;
			}
		} else if (!strcmp(opt, "--stun-listen")) {
			struct sockaddr_storage ss;
			socklen_t sl;

			if (stun_sockaddr_parse(val, &ss, &sl)) {
				snprintf(err, ARGS_ERR_MAX,
					 "--stun-listen: '%.64s' is not IPv4:PORT or [IPv6]:PORT",
					 val);
				ret = -EINVAL;
			}
			cfg->stun_listen = val;
		} else if (!strcmp(opt, "--punch-pin-root")) {
			cfg->punch_pin_root = val;
		} else if (!strcmp(opt, "--stun-rate")) {
			ret = args_u32(opt, val, 0, 10000000, &cfg->stun_rate, err);
		} else if (!strcmp(opt, "--stun-burst")) {
			ret = args_u32(opt, val, 0, 10000000, &cfg->stun_burst, err);
		} else if (!strcmp(opt, "--tcp-mode")) {
			if (!strcmp(val, "splice")) {
				cfg->tcp_mode = TCP_MODE_SPLICE;
			} else if (!strcmp(val, "uring")) {
				cfg->tcp_mode = TCP_MODE_URING;
			} else {
				snprintf(err, ARGS_ERR_MAX, "--tcp-mode: expected splice or uring");
				ret = -EINVAL;
			}
		}
		if (ret) {
			return ret;
		}
	}
	return 0;
}
