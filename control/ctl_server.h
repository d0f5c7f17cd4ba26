/* SPDX-License-Identifier: MIT */
/*
 * The natxctl socket: a unix SOCK_STREAM listener driven by natxd's epoll loop. Clients are
 * non-blocking; each has its own line framer (ctl_req.h) and a bounded output queue. A client
 * whose reply is still queued is not read from (back-pressure), and a client that lets its
 * queue pass CTL_TX_MAX is dropped; neither affects other clients. Peer credentials
 * (SO_PEERCRED, SO_PEERGROUPS) decide whether a client may run mutating commands.
 */
#ifndef NATX_CTL_SERVER_H
#define NATX_CTL_SERVER_H

#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include <cjson/cJSON.h>

#include "ctl_req.h"

enum {
	CTL_TX_MAX = 4 << 20, /* queued reply bytes per client before it is dropped */
	CTL_CALLER_KEY_MAX = 64,
};

/* An event-loop registration: natxd's epoll data.ptr points at one of these. */
struct ev_handler {
	void (*fn)(struct ev_handler *h, uint32_t events);
};

/* Who sent a request. */
struct ctl_caller {
	uid_t uid;
	gid_t gid;
	pid_t pid;
	bool privileged; /* may run mutating commands */
	char key[CTL_CALLER_KEY_MAX]; /* rate-limit key, e.g. "uid:1000" or "ip:127.0.0.1" */
};

/* ctl_dispatch_fn - run one parsed request; returns the reply object (caller frees) or NULL. */
typedef cJSON *(*ctl_dispatch_fn)(void *arg, const struct ctl_caller *who, struct ctl_req *req);

struct ctl_client;

struct ctl_server {
	struct ev_handler ev; /* listener readiness */
	int lfd; /* listening socket, -1 when closed */
	int epfd; /* natxd's epoll, borrowed */
	char path[PATH_MAX];
	unsigned max_clients;
	unsigned nclients;
	struct ctl_client *clients; /* doubly linked list */
	gid_t group; /* members may mutate */
	bool have_group;
	ctl_dispatch_fn dispatch;
	void *arg;
	uint64_t requests; /* requests answered */
	uint64_t rejected; /* error replies for malformed/oversized/unknown requests */
};

/*
 * ctl_server_open - bind @path (mode 0666; mutating commands check credentials), refusing when
 * another process answers on it and removing a stale socket file. Registers with @epfd.
 * 0 or -errno (-EADDRINUSE: a live server owns the path).
 */
int ctl_server_open(struct ctl_server *srv, const char *path, int epfd, unsigned max_clients,
		    ctl_dispatch_fn dispatch, void *arg);

/* ctl_server_set_group - members of @gid may run mutating commands; @have false: nobody extra. */
void ctl_server_set_group(struct ctl_server *srv, bool have, gid_t gid);

/* ctl_server_close - disconnect every client, close and unlink the socket. Safe twice. */
void ctl_server_close(struct ctl_server *srv);

/* ctl_caller_privileged - root, natxd's own uid, or a member of the group. */
bool ctl_caller_privileged(int fd, const struct ctl_server *srv, struct ctl_caller *who);

#endif
