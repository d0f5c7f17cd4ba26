// SPDX-License-Identifier: MIT
/* Control socket server (control/ctl_server.h). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "ctl_server.h"
#include "natx/err.h"
#include "natx/log.h"

#define MOD "ctl"

struct ctl_client {
	struct ev_handler ev;
	struct ctl_server *srv;
	struct ctl_client *prev, *next;
	int fd;
	struct ctl_caller who;
	char *tx; /* queued reply bytes, malloc'd */
	size_t txlen; /* bytes in tx */
	size_t txoff; /* bytes of tx already sent */
	bool dead; /* drop after this event */
	struct ctl_lines rx;
};

static void ctl_client_free(struct ctl_client *c)
{
	struct ctl_server *srv = c->srv;

	epoll_ctl(srv->epfd, EPOLL_CTL_DEL, c->fd, NULL);
	close(c->fd);
	if (c->prev) {
		c->prev->next = c->next;
	} else {
		srv->clients = c->next;
	}
	if (c->next) {
		c->next->prev = c->prev;
	}
	srv->nclients--;
	free(c->tx);
	free(c);
}

static void ctl_client_watch(struct ctl_client *c)
{
	struct epoll_event ev = { .data.ptr = &c->ev };

	/* While a reply is queued we only wait for writability: no new requests are read. */
	ev.events = c->txlen > c->txoff ? EPOLLOUT : EPOLLIN;
	epoll_ctl(c->srv->epfd, EPOLL_CTL_MOD, c->fd, &ev);
}

static int ctl_client_queue(struct ctl_client *c, cJSON *reply)
{
	size_t len;
	char *line, *tx;

	if (!reply) {
		return -ENOMEM;
	}
	line = ctl_reply_line(reply, &len);
	cJSON_Delete(reply);
	if (!line) {
		return -ENOMEM;
	}
	if (c->txlen - c->txoff + len > CTL_TX_MAX) {
		free(line);
		pr_warn(MOD, "client pid %d does not read its replies; dropping it",
			(int)c->who.pid);
		c->dead = true;
		return -ENOBUFS;
	}
	if (c->txoff == c->txlen) {
		free(c->tx);
		c->tx = line;
		c->txlen = len;
		c->txoff = 0;
		return 0;
	}
	tx = realloc(c->tx, c->txlen + len);
	if (!tx) {
		free(line);
		return -ENOMEM;
	}
	memcpy(tx + c->txlen, line, len);
	free(line);
	c->tx = tx;
	c->txlen += len;
	return 0;
}

static int ctl_client_line(void *arg, char *line, size_t len, int err)
{
	struct ctl_client *c = arg;
	struct ctl_server *srv = c->srv;
	struct ctl_req req;
	const char *why = "request line too long";
	cJSON *reply;

	if (err) {
		srv->rejected++;
		return ctl_client_queue(c, ctl_reply_error(NULL, err, why)) == -ENOBUFS;
	}
	if (!len) {
		return 0; /* blank lines are keep-alives */
	}
	err = ctl_req_parse(line, len, &req, &why);
	if (err) {
		srv->rejected++;
		reply = ctl_reply_error(req.id, err, why);
	} else {
		reply = srv->dispatch(srv->arg, &c->who, &req);
		if (cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(reply, "ok"))) {
			srv->rejected++;
		}
	}
	srv->requests++;
	ctl_req_cleanup(&req);
	return ctl_client_queue(c, reply) == -ENOBUFS;
}

static void ctl_client_event(struct ev_handler *h, uint32_t events)
{
	struct ctl_client *c = (struct ctl_client *)h;

	if (events & (EPOLLERR | EPOLLHUP) && !(events & EPOLLIN)) {
		c->dead = true;
	}
	while (!c->dead && c->txoff < c->txlen) {
		ssize_t n = send(c->fd, c->tx + c->txoff, c->txlen - c->txoff, MSG_NOSIGNAL);

		if (n < 0 && errno == EINTR) {
			continue;
		}
		if (n < 0 && errno == EAGAIN) {
			break;
		}
		if (n <= 0) {
			c->dead = true;
			break;
		}
		c->txoff += (size_t)n;
	}
	if (!c->dead && (events & EPOLLIN) && c->txoff == c->txlen) {
		char buf[4096];
		ssize_t n = recv(c->fd, buf, sizeof(buf), 0);

		if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
			c->dead = true;
		} else if (n > 0) {
			ctl_lines_feed(&c->rx, buf, (size_t)n, ctl_client_line, c);
			/* Try to send at once; most replies fit the socket buffer. */
			while (!c->dead && c->txoff < c->txlen) {
				ssize_t w = send(c->fd, c->tx + c->txoff, c->txlen - c->txoff,
						 MSG_NOSIGNAL);

				if (w < 0 && errno == EINTR) {
					continue;
				}
				if (w < 0 && errno == EAGAIN) {
					break;
				}
				if (w <= 0) {
					c->dead = true;
					break;
				}
				c->txoff += (size_t)w;
			}
		}
	}
	if (c->dead) {
		ctl_client_free(c);
		return;
	}
	ctl_client_watch(c);
}

bool ctl_caller_privileged(int fd, const struct ctl_server *srv, struct ctl_caller *who)
{
	struct ucred cr;
	socklen_t len = sizeof(cr);
	gid_t groups[256];

	memset(who, 0, sizeof(*who));
	who->uid = (uid_t)-1;
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &len)) {
		snprintf(who->key, sizeof(who->key), "fd:%d", fd);
		return false;
	}
	who->uid = cr.uid;
	who->gid = cr.gid;
	who->pid = cr.pid;
	snprintf(who->key, sizeof(who->key), "uid:%u", (unsigned)cr.uid);
	if (cr.uid == 0 || cr.uid == geteuid()) {
		return true;
	}
	if (!srv->have_group) {
		return false;
	}
	if (cr.gid == srv->group) {
		return true;
	}
	len = sizeof(groups);
	if (getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, groups, &len) == 0) {
		for (size_t i = 0; i < len / sizeof(gid_t); i++) {
			if (groups[i] == srv->group) {
				return true;
			}
		}
	}
	return false;
}

static void ctl_server_event(struct ev_handler *h, uint32_t events)
{
	struct ctl_server *srv = (struct ctl_server *)h;

	for (int i = 0; i < 64; i++) {
		int fd = accept4(srv->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		struct epoll_event ev = { .events = EPOLLIN };
		struct ctl_client *c;

		if (fd < 0) {
			if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED) {
				pr_warn(MOD, "accept: %s", strerror(errno));
			}
			return;
		}
		if (srv->nclients >= srv->max_clients) {
			static const char busy[] =
				"{\"v\":1,\"ok\":false,\"error\":{\"code\":"
				"\"limit_reached\",\"message\":\"too many control "
				"clients\"}}\n";

			(void)!send(fd, busy, sizeof(busy) - 1, MSG_NOSIGNAL | MSG_DONTWAIT);
			close(fd);
			continue;
		}
		c = calloc(1, sizeof(*c));
		if (!c) {
			close(fd);
			continue;
		}
		c->ev.fn = ctl_client_event;
		c->srv = srv;
		c->fd = fd;
		ctl_lines_init(&c->rx);
		c->who.privileged = ctl_caller_privileged(fd, srv, &c->who);
		ev.data.ptr = &c->ev;
		if (epoll_ctl(srv->epfd, EPOLL_CTL_ADD, fd, &ev)) {
			close(fd);
			free(c);
			continue;
		}
		c->next = srv->clients;
		if (c->next) {
			c->next->prev = c;
		}
		srv->clients = c;
		srv->nclients++;
	}
}

int ctl_server_open(struct ctl_server *srv, const char *path, int epfd, unsigned max_clients,
		    ctl_dispatch_fn dispatch, void *arg)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct epoll_event ev = { .events = EPOLLIN };
	int fd, rc;

	memset(srv, 0, sizeof(*srv));
	srv->lfd = -1;
	if (strlen(path) >= sizeof(sa.sun_path)) {
		return -ENAMETOOLONG;
	}
	strcpy(sa.sun_path, path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		return -errno;
	}
	/* Refuse to steal the socket of a live natxd; remove the file of a dead one. */
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0) {
		close(fd);
		return -EADDRINUSE;
	}
	if (errno == ECONNREFUSED) {
		unlink(path);
	}
	close(fd);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		return -errno;
	}
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) || chmod(path, 0666) || listen(fd, 128)) {
		rc = -errno;
		goto close_fd;
	}
	srv->ev.fn = ctl_server_event;
	srv->lfd = fd;
	srv->epfd = epfd;
	srv->max_clients = max_clients;
	srv->dispatch = dispatch;
	srv->arg = arg;
	snprintf(srv->path, sizeof(srv->path), "%s", path);
	ev.data.ptr = &srv->ev;
	if (epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev)) {
		rc = -errno;
		unlink(path);
		srv->lfd = -1;
		goto close_fd;
	}
	return 0;

close_fd:
	close(fd);
	return rc;
}

void ctl_server_set_group(struct ctl_server *srv, bool have, gid_t gid)
{
	srv->have_group = have;
	srv->group = gid;
}

void ctl_server_close(struct ctl_server *srv)
{
	while (srv->clients) {
		ctl_client_free(srv->clients);
	}
	if (srv->lfd >= 0) {
		epoll_ctl(srv->epfd, EPOLL_CTL_DEL, srv->lfd, NULL);
		close(srv->lfd);
		srv->lfd = -1;
		unlink(srv->path);
	}
}
