// SPDX-License-Identifier: MIT
/*
 * natxd - the natx control daemon: configuration, SQLite store, service selection, the natxctl
 * socket, the HTTP API and supervision of natx-engine, all on one thread around one epoll.
 * Exit status: 0 clean stop, 1 runtime failure at start (socket, database, HTTP), 2 bad
 * command line or configuration (nothing started).
 */
#include <errno.h>
#include <getopt.h>
#include <grp.h>
#include <libgen.h>
#include <limits.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "ctl_cmdtab.h"
#include "daemon.h"
#include "http.h"
#include "natx/err.h"
#include "natx/log.h"
#include "p2p_svc.h"
#include "tunnel_sup.h"
#include "udpx_ctl.h"

#define MOD "natxd"

static void natxd_usage(FILE *f)
{
	fprintf(f,
		"usage: natxd [--config FILE] [--socket PATH] [--state-dir DIR] [--database PATH]\n"
		"             [--listen HOST:PORT|off] [--engine PATH] [--log FILTER]\n"
		"             [--forward SPEC]... [--init-db] [--check-config] [--help-config]\n"
		"             [--help] [--version]\n"
		"\n"
		"  --config FILE     INI configuration (see deploy/natx.conf.example)\n"
		"  --socket PATH     natxctl socket (default /run/natx/ctl.sock as root,\n"
		"                    $XDG_RUNTIME_DIR/natx/ctl.sock otherwise)\n"
		"  --state-dir DIR   state directory (default /var/lib/natx as root)\n"
		"  --database PATH   SQLite database (default STATE_DIR/natx.db; env DATABASE_URL)\n"
		"  --listen ADDR     HTTP API address (default 127.0.0.1:3001; env SERVER_ADDRESS)\n"
		"  --engine PATH     natx-engine binary (default: next to natxd)\n"
		"  --log FILTER      log filter, e.g. info or warn,engine=debug (env NATX_LOG)\n"
		"  --forward SPEC    run a forward tcp|udp:LISTEN=UPSTREAM (repeatable)\n"
		"  --init-db         create or migrate the database, then exit\n"
		"  --check-config    validate the configuration, then exit\n"
		"  --help-config     list every configuration key and environment variable\n"
		"\n"
		"Precedence: command line > environment > config file > defaults.\n"
		"Exit status: 0 stopped cleanly, 1 failed at start, 2 bad command line or config.\n");
}

static const char *natxd_getenv(const char *name)
{
	return getenv(name);
}

/* natxd_engine_path - --engine/engine.path, else natx-engine beside /proc/self/exe. */
static void natxd_engine_path(const struct natx_config *cfg, char *out, size_t len)
{
	char self[PATH_MAX];
	ssize_t n;

	if (cfg->engine_path[0]) {
		snprintf(out, len, "%s", cfg->engine_path);
		return;
	}
	n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	if (n <= 0) {
		snprintf(out, len, "natx-engine");
		return;
	}
	self[n] = '\0';
	snprintf(out, len, "%s/natx-engine", dirname(self));
}

/* natxd_mkdirs - mkdir -p with @mode for the missing components. 0 or -errno. */
static int natxd_mkdirs(const char *path, mode_t mode)
{
	char p[PATH_MAX];

	if (snprintf(p, sizeof(p), "%s", path) >= (int)sizeof(p)) {
		return -ENAMETOOLONG;
	}
	for (char *s = p + 1; *s; s++) {
		if (*s != '/') {
			continue;
		}
		*s = '\0';
		if (mkdir(p, mode) && errno != EEXIST) {
			return -errno;
		}
		*s = '/';
	}
	if (mkdir(p, mode) && errno != EEXIST) {
		return -errno;
	}
	return 0;
}

static int natxd_define_stored(void *arg, const char *spec)
{
	struct engine_sup *es = arg;
	int rc = engine_sup_forward_define(es, spec, ENGINE_FWD_STORED);

	if (rc && rc != -EEXIST) {
		pr_warn(MOD, "stored forward %s: %s", spec, natx_strerror(rc));
	}
	return 0;
}

struct natxd_loop {
	struct ev_handler sig;
	struct ev_handler eng;
	struct natxd *d;
	int sfd;
	int eng_fd; /* engine fd registered in epoll, -1 when none */
	unsigned eng_gen; /* its connection generation */
};

static void natxd_signal(struct ev_handler *h, uint32_t events)
{
	struct natxd_loop *lp = (struct natxd_loop *)((char *)h - offsetof(struct natxd_loop, sig));
	struct natxd *d = lp->d;
	struct signalfd_siginfo si;
	char err[CONFIG_ERR_MAX];

	while (read(lp->sfd, &si, sizeof(si)) == sizeof(si)) {
		switch (si.ssi_signo) {
		case SIGHUP:
			pr_info(MOD, "SIGHUP: reloading configuration");
			natxd_reload(d, err);
			break;
		case SIGTERM:
		case SIGINT:
			pr_info(MOD, "signal %u: stopping", si.ssi_signo);
			d->stop = true;
			break;
		case SIGCHLD: {
			pid_t pid;
			int status;

			while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
				engine_sup_child_exited(&d->eng, pid, status);
			}
			break;
		}
		default:
			break;
		}
	}
}

static void natxd_engine_event(struct ev_handler *h, uint32_t events)
{
	struct natxd_loop *lp = (struct natxd_loop *)((char *)h - offsetof(struct natxd_loop, eng));

	engine_sup_readable(&lp->d->eng);
}

/* natxd_engine_watch - keep the engine's current socket (if any) in the epoll set. */
static void natxd_engine_watch(struct natxd_loop *lp)
{
	struct engine_sup *es = &lp->d->eng;
	struct epoll_event ev = { .events = EPOLLIN | EPOLLRDHUP, .data.ptr = &lp->eng };

	if (es->fd >= 0 && (es->fd != lp->eng_fd || es->conn_gen != lp->eng_gen)) {
		if (lp->eng_fd >= 0 && lp->eng_fd != es->fd) {
			epoll_ctl(lp->d->epfd, EPOLL_CTL_DEL, lp->eng_fd, NULL);
		}
		if (epoll_ctl(lp->d->epfd, EPOLL_CTL_ADD, es->fd, &ev) && errno == EEXIST) {
			epoll_ctl(lp->d->epfd, EPOLL_CTL_MOD, es->fd, &ev);
		}
		lp->eng_fd = es->fd;
		lp->eng_gen = es->conn_gen;
	} else if (es->fd < 0) {
		lp->eng_fd = -1; /* close() already removed it from the epoll set */
	}
}

static int natxd_run(struct natxd *d)
{
	struct natxd_loop lp = { .d = d, .eng_fd = -1 };
	struct epoll_event ev = { .events = EPOLLIN };
	sigset_t mask;

	sigemptyset(&mask);
	sigaddset(&mask, SIGHUP);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGCHLD);
	lp.sfd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
	if (lp.sfd < 0) {
		pr_err(MOD, "signalfd: %s", strerror(errno));
		return 1;
	}
	lp.sig.fn = natxd_signal;
	lp.eng.fn = natxd_engine_event;
	ev.data.ptr = &lp.sig;
	epoll_ctl(d->epfd, EPOLL_CTL_ADD, lp.sfd, &ev);
	natxd_signal(&lp.sig, EPOLLIN); /* a child may have exited before the fd existed */

	while (!d->stop) {
		struct epoll_event evs[32];
		int timeout = 1000, t, n;

		natxd_engine_watch(&lp);
		t = engine_sup_timeout_ms(&d->eng);
		if (t >= 0 && t < timeout) {
			timeout = t;
		}
		if (d->http) {
			t = http_server_timeout_ms(d->http);
			if (t >= 0 && t < timeout) {
				timeout = t;
			}
		}
		n = epoll_wait(d->epfd, evs, 32, timeout);
		if (n < 0 && errno != EINTR) {
			pr_err(MOD, "epoll_wait: %s", strerror(errno));
			break;
		}
		for (int i = 0; i < n; i++) {
			struct ev_handler *h = evs[i].data.ptr;

			/* A handler may have closed the engine socket of a later event. */
			if (h == &lp.eng && d->eng.fd != lp.eng_fd) {
				continue;
			}
			h->fn(h, evs[i].events);
			natxd_engine_watch(&lp);
		}
		engine_sup_tick(&d->eng);
		natxd_p2p_tick(d); /* relay settings, bootstrap peers: once per engine */
		if (d->http) {
			http_server_run(d->http);
		}
	}
	close(lp.sfd);
	return 0;
}

static void natxd_help_config(void)
{
	unsigned n;
	const struct config_key_info *k = config_keys(&n);

	printf("%-38s %-38s %s\n", "SECTION.KEY", "ENVIRONMENT", "MEANING");
	for (unsigned i = 0; i < n; i++) {
		char name[80];

		snprintf(name, sizeof(name), "%s.%s", k[i].section, k[i].key);
		printf("%-38s %-38s %s\n", name, k[i].env ? k[i].env : "-", k[i].help);
	}
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "socket", required_argument, NULL, 's' },
		{ "state-dir", required_argument, NULL, 'S' },
		{ "database", required_argument, NULL, 'D' },
		{ "listen", required_argument, NULL, 'l' },
		{ "engine", required_argument, NULL, 'e' },
		{ "log", required_argument, NULL, 'L' },
		{ "forward", required_argument, NULL, 'f' },
		{ "init-db", no_argument, NULL, 'I' },
		{ "check-config", no_argument, NULL, 'C' },
		{ "help-config", no_argument, NULL, 'K' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	static struct natxd d;
	char err[CONFIG_ERR_MAX], serr[STORE_ERR_MAX], path[PATH_MAX], esock[PATH_MAX];
	bool init_db = false, check = false;
	struct svc_params p;
	sigset_t mask;
	int o, rc, status = 1;

	while ((o = getopt_long(argc, argv, "c:hV", opts, NULL)) != -1) {
		switch (o) {
		case 'c':
			d.cli.config_file = optarg;
			break;
		case 's':
			d.cli.socket_path = optarg;
			break;
		case 'S':
			d.cli.state_dir = optarg;
			break;
		case 'D':
			d.cli.database = optarg;
			break;
		case 'l':
			d.cli.server_address = optarg;
			break;
		case 'e':
			d.cli.engine_path = optarg;
			break;
		case 'L':
			d.cli.log_filter = optarg;
			break;
		case 'f':
			if (d.cli.nforwards == CONFIG_FORWARDS_MAX) {
				fprintf(stderr, "natxd: too many --forward options\n");
				return 2;
			}
			d.cli.forwards[d.cli.nforwards++] = optarg;
			break;
		case 'I':
			init_db = true;
			break;
		case 'C':
			check = true;
			break;
		case 'K':
			natxd_help_config();
			return 0;
		case 'h':
			natxd_usage(stdout);
			return 0;
		case 'V':
			printf("natxd %s (control protocol %d, schema %d)\n", NATX_VERSION,
			       CTL_PROTO_VERSION, store_schema_version());
			return 0;
		default:
			natxd_usage(stderr);
			return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "natxd: unexpected argument '%s'\n", argv[optind]);
		natxd_usage(stderr);
		return 2;
	}
	d.get_env = natxd_getenv;
	d.clk = &clock_system;
	if (config_build(&d.cfg, &d.cli, d.get_env, err)) {
		fprintf(stderr, "natxd: %s\n", err);
		return 2;
	}
	log_filter_set(d.cfg.log_filter);
	if (ctl_cmds_check()) {
		fprintf(stderr, "natxd: internal: a control command has no handler\n");
		return 1;
	}
	if (d.cfg.ctl_group[0]) {
		struct group *g = getgrnam(d.cfg.ctl_group);

		if (!g) {
			fprintf(stderr, "natxd: control.group: no group named '%s'\n",
				d.cfg.ctl_group);
			return 2;
		}
		ctl_server_set_group(&d.ctl, true, g->gr_gid);
	}
	if (check) {
		printf("configuration OK%s%s\n", d.cfg.file[0] ? ": " : "", d.cfg.file);
		return 0;
	}
	snprintf(path, sizeof(path), "%s", d.cfg.database);
	rc = natxd_mkdirs(dirname(path), 0750);
	if (rc) {
		fprintf(stderr, "natxd: cannot create %s: %s\n", path, strerror(-rc));
		return 1;
	}
	rc = store_open(&d.st, d.cfg.database, true, serr);
	if (rc) {
		fprintf(stderr, "natxd: %s\n", serr);
		return 1;
	}
	if (init_db) {
		printf("database %s at schema version %d\n", d.cfg.database, store_version(&d.st));
		store_close(&d.st);
		return 0;
	}
	rc = conns_load(&d);
	if (rc) {
		fprintf(stderr, "natxd: cannot load connections: %s\n", store_errmsg(&d.st));
		goto close_store;
	}

	sigemptyset(&mask);
	sigaddset(&mask, SIGHUP);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGCHLD);
	sigprocmask(SIG_BLOCK, &mask, NULL);
	signal(SIGPIPE, SIG_IGN);
	d.started_s = d.clk->wall_s(d.clk);
	d.epfd = epoll_create1(EPOLL_CLOEXEC);
	if (d.epfd < 0) {
		fprintf(stderr, "natxd: epoll: %s\n", strerror(errno));
		goto close_store;
	}
	config_run_dir(&d.cfg, path, sizeof(path));
	rc = natxd_mkdirs(path, geteuid() == 0 ? 0755 : 0700);
	if (rc) {
		fprintf(stderr, "natxd: cannot create run directory %s: %s\n", path, strerror(-rc));
		goto close_epoll;
	}
	{
		struct stat sb;

		/* A run directory someone else owns (e.g. pre-created in /tmp) could swap sockets. */
		if (stat(path, &sb) || sb.st_uid != geteuid()) {
			fprintf(stderr, "natxd: run directory %s is not owned by uid %u\n", path,
				(unsigned)geteuid());
			goto close_epoll;
		}
	}
	{
		bool have = d.ctl.have_group;
		gid_t gid = d.ctl.group;

		rc = ctl_server_open(&d.ctl, d.cfg.socket_path, d.epfd, d.cfg.max_clients,
				     ctl_cmds_dispatch, &d);
		ctl_server_set_group(&d.ctl, have, gid);
	}
	if (rc) {
		fprintf(stderr, "natxd: control socket %s: %s\n", d.cfg.socket_path,
			rc == -EADDRINUSE ? "another natxd is already serving it" : strerror(-rc));
		goto close_epoll;
	}
	if (strcmp(d.cfg.server_address, "off")) {
		d.http = http_server_new(&d, d.cfg.server_address, d.epfd, d.http_bound,
					 sizeof(d.http_bound), &rc);
		if (!d.http) {
			fprintf(stderr, "natxd: HTTP API on %s: %s\n", d.cfg.server_address,
				strerror(-rc));
			goto close_ctl;
		}
	}
	rc = natxd_mkdirs(d.cfg.state_dir, 0700);
	if (!rc) {
		rc = l402_svc_open(&d.pay, d.cfg.state_dir, &d.st, d.clk, &d.cfg, serr);
	} else {
		snprintf(serr, sizeof(serr), "%.200s: %s", d.cfg.state_dir, strerror(-rc));
	}
	if (rc) {
		fprintf(stderr, "natxd: L402 root key: %s\n", serr);
		goto free_http;
	}
	natxd_params(&d.cfg, &p);
	svc_mgr_init(&d.svcs, d.clk, &p);
	ratelimit_init(&d.rl, d.cfg.connect_rate, d.cfg.connect_burst);
	natxd_register_services(&d);

	natxd_engine_path(&d.cfg, path, sizeof(path));
	config_engine_socket(&d.cfg, esock, sizeof(esock));
	engine_sup_init(&d.eng, path, esock, d.clk);
	d.eng.timeout_ms = d.cfg.engine_timeout_ms;
	d.eng.drain_ms = d.cfg.engine_drain_ms;
	d.eng.shards = d.cfg.engine_shards;
	snprintf(d.eng.log_filter, sizeof(d.eng.log_filter), "%s", d.cfg.log_filter);
	natxd_p2p_setup(&d);
	natxd_udp_start(&d);
	backoff_init(&d.eng.bo, d.cfg.engine_restart_base_ms, d.cfg.engine_restart_max_ms);
	for (unsigned i = 0; i < d.cfg.nforwards; i++) {
		engine_sup_forward_define(&d.eng, d.cfg.forwards[i], ENGINE_FWD_CONFIG);
	}
	store_forward_each(&d.st, natxd_define_stored, &d.eng);
	tunnel_sup_load(&d);
	pr_info(MOD, "natxd %s: control socket %s, HTTP %s, database %s, %u forward(s)",
		NATX_VERSION, d.cfg.socket_path, d.http ? d.http_bound : "off", d.cfg.database,
		d.eng.nfwd);
	engine_sup_start(&d.eng);
	bpf_mgr_init(&d.bpf, &d.eng);
	bpf_mgr_apply(&d.bpf, &d.cfg);

	status = natxd_run(&d);

	bpf_mgr_stop(&d.bpf, d.cfg.xdp_keep_on_exit);
	natxd_udp_stop(&d);
	engine_sup_stop(&d.eng, d.cfg.engine_keep_on_exit);
	svc_mgr_cleanup(&d.svcs);
	l402_svc_close(&d.pay);
free_http:
	http_server_free(d.http);
	d.http = NULL;
close_ctl:
	ctl_server_close(&d.ctl);
close_epoll:
	close(d.epfd);
close_store:
	conns_free(&d);
	store_close(&d.st);
	return status;
}
