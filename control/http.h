/* SPDX-License-Identifier: MIT */
/*
 * natxd's HTTP API (libmicrohttpd, driven by natxd's epoll loop: MHD_USE_EPOLL without an
 * internal thread, so handlers run on natxd's only thread and need no locks). Routes are listed
 * in docs/control.md. Request bodies are limited to CTL_HTTP_BODY_MAX bytes (413 above), bad JSON
 * is 400, and every error body is {"error":{"code","message"}} with the stable code.
 */
#ifndef NATX_CTL_HTTP_H
#define NATX_CTL_HTTP_H

#include <stdint.h>

struct natxd;
struct http_server;

/*
 * http_server_new - listen on @addr ("host:port", port 0 = ephemeral) and register with @epfd.
 * Returns the server, or NULL with @err (-errno / -EINVAL) set. The bound "host:port" is
 * written to @bound (room @boundlen).
 */
struct http_server *http_server_new(struct natxd *d, const char *addr, int epfd, char *bound,
				    size_t boundlen, int *err);

/* http_server_free - stop and free; NULL is a no-op. */
void http_server_free(struct http_server *h);

/* http_server_timeout_ms - ms until libmicrohttpd needs to run for its timers, -1 for none. */
int http_server_timeout_ms(struct http_server *h);

/* http_server_run - let libmicrohttpd process what is ready (and its timers). */
void http_server_run(struct http_server *h);

/*
 * http_prometheus - the Prometheus text exposition of natxd's metrics. Returns a malloc'd,
 * NUL-terminated string, or NULL on ENOMEM.
 */
char *http_prometheus(struct natxd *d);

#endif
