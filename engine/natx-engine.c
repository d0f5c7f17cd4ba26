// SPDX-License-Identifier: MIT
/*
 * natx-engine: the sharded io_uring TCP/UDP forwarder (docs/engine.md, ENGINE-CTL.md).
 * Exit status: 0 after a drain (SIGTERM/SIGINT or "shutdown"), 2 on bad input (malformed
 * --forward, port in use, unresolvable upstream, bad option), 1 on other failures.
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "core/args.h"
#include "core/ctl.h"
#include "core/engine.h"
#include "core/p2p_host.h"
#include "core/reload.h"
#include "core/stats_json.h"
#include "natx/err.h"
#include "natx/log.h"

#define MOD "engine"

/* main_raise_nofile - lift the soft descriptor limit to the hard one (flows need fds). */
static void main_raise_nofile(void)
{
	struct rlimit rl;

	if (!getrlimit(RLIMIT_NOFILE, &rl) && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
}

/* main_add_forwards - --forward options then --forwards-file; any failure is fatal. */
static int main_add_forwards(struct engine *eng, struct engine_cfg *cfg, char *err, size_t len)
{
	for (unsigned int i = 0; i < cfg->nforwards; i++) {
		struct forward *f;
		int ret = engine_forward_add(eng, cfg->forwards[i], FWD_CLI, &f, err, len);

		if (ret == -EEXIST) {
			continue;
		}
		if (ret) {
			return ret;
		}
	}
	if (cfg->forwards_file) {
		return reload_forwards_file(eng, cfg->forwards_file, true, err, len);
	}
	return 0;
}

int main(int argc, char **argv)
{
	struct engine_cfg cfg;
	struct ctl_server ctl = { .fd = -1 };
	struct engine eng;
	char err[512];
	sigset_t mask;
	int sfd, ret, status = 0;
	uint32_t drain_ms;

	log_filter_set(getenv("NATX_LOG"));
	if (args_parse(argc, argv, &cfg, err)) {
		fprintf(stderr, "natx-engine: %s\n", err);
		return 2;
	}
	if (cfg.help) {
		fputs(args_usage(), stdout);
		return 0;
	}
	if (cfg.version) {
		printf("natx-engine %s\n", NATX_VERSION);
		return 0;
	}
	drain_ms = cfg.drain_timeout_ms;
	main_raise_nofile();
	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGHUP);
	sigaddset(&mask, SIGUSR1);
	sigaddset(&mask, SIGPIPE);
	/* Blocked before any thread starts, so every shard inherits the mask. */
	pthread_sigmask(SIG_BLOCK, &mask, NULL);
	sfd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
	if (sfd < 0) {
		fprintf(stderr, "natx-engine: signalfd: %s\n", strerror(errno));
		return 1;
	}
	ret = engine_start(&eng, &cfg, err, sizeof(err));
	if (ret) {
		fprintf(stderr, "natx-engine: %s\n", err);
		close(sfd);
		return 1;
	}
	ret = main_add_forwards(&eng, &cfg, err, sizeof(err));
	if (!ret && cfg.p2p_key_file) {
		/* A bad key or address is bad input (exit 2); a busy port only disables libp2p. */
		ret = p2p_eng_start(&eng, cfg.p2p_key_file, cfg.p2p_listen, err, sizeof(err));
		if (ret && ret != -EINVAL && ret != -NATX_E_PROTO && ret != -NATX_E_AUTH &&
		    ret != -EPROTONOSUPPORT && ret != -ENOENT && ret != -EACCES) {
			pr_err(MOD, "libp2p disabled: %s", err);
			ret = 0;
		}
	}
	if (!ret && cfg.ctl_path) {
		ret = ctl_open(&ctl, cfg.ctl_path, err, sizeof(err));
	}
	if (ret) {
		fprintf(stderr, "natx-engine: %s\n", err);
		ctl_close(&ctl);
		engine_stop(&eng);
		close(sfd);
		return 2;
	}
	pr_info(MOD, "natx-engine %s running: %u shards, tcp mode %s", NATX_VERSION, eng.nshards,
		cfg.tcp_mode == TCP_MODE_SPLICE ? "splice" : "uring");
	for (;;) {
		struct pollfd pfd[1 + 1 + CTL_CLIENTS_MAX];
		struct signalfd_siginfo si;
		int n = 0, nctl;

		pfd[n++] = (struct pollfd){ .fd = sfd, .events = POLLIN };
		nctl = ctl_pollfds(&ctl, pfd + n, CTL_CLIENTS_MAX + 1);
		if (poll(pfd, (nfds_t)(n + nctl), 1000) < 0 && errno != EINTR) {
			pr_err(MOD, "poll: %s", strerror(errno));
			status = 1;
			break;
		}
		ctl_service(&ctl, &eng, pfd + n, nctl);
		if (ctl.shutdown) {
			drain_ms = ctl.shutdown_drain_ms;
			pr_info(MOD, "shutdown requested on the control socket");
			break;
		}
		if (read(sfd, &si, sizeof(si)) != sizeof(si)) {
			continue;
		}
		if (si.ssi_signo == SIGTERM || si.ssi_signo == SIGINT) {
			pr_info(MOD, "signal %u: draining", si.ssi_signo);
			break;
		}
		if (si.ssi_signo == SIGHUP) {
			if (!cfg.forwards_file) {
				pr_info(MOD, "SIGHUP: no --forwards-file, nothing to reload");
			} else if (reload_forwards_file(&eng, cfg.forwards_file, false, err,
							sizeof(err))) {
				pr_warn(MOD, "SIGHUP: %s", err);
			} else {
				pr_info(MOD, "SIGHUP: reloaded %s", cfg.forwards_file);
			}
		} else if (si.ssi_signo == SIGUSR1) {
			ret = stats_dump(&eng, cfg.stats_file);
			if (ret) {
				pr_warn(MOD, "stats to %s: %s", cfg.stats_file, strerror(-ret));
			}
		}
	}
	ctl_close(&ctl);
	engine_drain(&eng, drain_ms);
	engine_stop(&eng);
	close(sfd);
	pr_info(MOD, "stopped");
	return status;
}
