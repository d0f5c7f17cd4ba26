/* SPDX-License-Identifier: MIT */
/*
 * The engine's private control socket (ENGINE-CTL.md): Unix SOCK_STREAM, mode 0600, one
 * JSON request per line, replies in order. Runs on the main thread from a poll() loop; a
 * client that sends garbage, too-long lines or disconnects affects only itself.
 */
#ifndef NATX_ENGINE_CTL_H
#define NATX_ENGINE_CTL_H

#include <poll.h>
#include <stdbool.h>
#include <stdint.h>

#include "ctl_parse.h"
#include "engine.h"

enum { CTL_CLIENTS_MAX = 64, CTL_OUT_MAX = 4 << 20 };

struct ctl_client {
	int fd; /* -1: slot free */
	char *in; /* CTL_LINE_MAX + 1 bytes */
	size_t in_len;
	bool discarding; /* inside a line that was already answered "too_big" */
	char *out;
	size_t out_len, out_off;
};

struct ctl_server {
	int fd;
	char path[108];
	struct ctl_client c[CTL_CLIENTS_MAX];
	bool shutdown; /* a client asked for shutdown */
	uint32_t shutdown_drain_ms;
};

/* ctl_open - bind and listen on @path (a stale socket file is replaced). -errno + @err. */
int ctl_open(struct ctl_server *s, const char *path, char *err, size_t errlen);

/* ctl_close - close every client and the socket, unlink the path. Safe after a failed open. */
void ctl_close(struct ctl_server *s);

/* ctl_pollfds - append the server's descriptors to @pfd; returns how many. */
int ctl_pollfds(struct ctl_server *s, struct pollfd *pfd, int max);

/* ctl_service - handle readiness reported in @pfd (as filled by ctl_pollfds). */
void ctl_service(struct ctl_server *s, struct engine *eng, const struct pollfd *pfd, int n);

/*
 * ctl_handle_line - execute one request line against @eng; returns the reply (one JSON
 * object, no newline), caller frees with free(). Exposed for tests.
 */
char *ctl_handle_line(struct ctl_server *s, struct engine *eng, const char *line, size_t len);

#endif
