// SPDX-License-Identifier: MIT
/* Punch steering loader (sk_lookup): see punch_steer.h and docs/bpf.md. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "natx/log.h"
#include "prog_rodata.h"
#include "punch_steer.h"
#include "punch_steer.skel.h"

#define MOD "bpf"
#define BPF_FS_MAGIC_NUM 0xcafe4a11

_Static_assert(sizeof(struct natx_punch_sid) == NATX_PUNCH_SID_LEN, "session id key layout");
_Static_assert(NATX_PUNCH_CNT_MAX == 4, "counter names below list every counter");

static const char *const natx_punch_counter_names[NATX_PUNCH_CNT_MAX] = {
	[NATX_PUNCH_CNT_STEERED] = "steered",
	[NATX_PUNCH_CNT_NO_FLOW] = "no_flow",
	[NATX_PUNCH_CNT_NO_SOCKET] = "no_socket",
	[NATX_PUNCH_CNT_ASSIGN_FAILED] = "assign_failed",
};

struct natx_punch_steer {
	struct punch_steer_bpf *skel;
	int flows_fd, socks_fd; /* owned by skel */
};

const char *natx_punch_counter_name(enum natx_punch_counter c)
{
	return (unsigned int)c < NATX_PUNCH_CNT_MAX ? natx_punch_counter_names[c] : "?";
}

/* punch_path - "<root>/punch[/leaf]" into @buf. */
static int punch_path(char *buf, size_t len, const char *root, const char *leaf)
{
	int n = snprintf(buf, len, "%s/%s%s%s", root ? root : NATX_BPF_PIN_ROOT,
			 NATX_BPF_PIN_PUNCH_DIR, leaf ? "/" : "", leaf ? leaf : "");

	return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

/* punch_mkdir - create <root> (on bpffs) and <root>/punch. */
static int punch_mkdir(const char *root)
{
	char dir[PATH_MAX];
	struct statfs sfs;
	int err;

	root = root ? root : NATX_BPF_PIN_ROOT;
	if (mkdir(root, 0700) && errno != EEXIST) {
		return -errno;
	}
	if (statfs(root, &sfs)) {
		return -errno;
	}
	if ((unsigned long)sfs.f_type != BPF_FS_MAGIC_NUM) {
		pr_err(MOD, "%s is not on a bpf filesystem", root);
		return -ENOTSUP;
	}
	err = punch_path(dir, sizeof(dir), root, NULL);
	if (err) {
		return err;
	}
	if (mkdir(dir, 0700) && errno != EEXIST) {
		return -errno;
	}
	return 0;
}

/* punch_pin_maps - point every map of @skel at its pin under @root (reused if present). */
static int punch_pin_maps(struct punch_steer_bpf *skel, const char *root)
{
	struct {
		struct bpf_map *map;
		const char *leaf;
	} pins[] = {
		{ skel->maps.natx_punch_flows, NATX_BPF_PIN_PUNCH_FLOWS },
		{ skel->maps.natx_punch_socks, NATX_BPF_PIN_PUNCH_SOCKS },
		{ skel->maps.natx_punch_cnt, NATX_BPF_PIN_PUNCH_CNT },
	};
	char path[PATH_MAX];
	int err;

	for (size_t i = 0; i < sizeof(pins) / sizeof(pins[0]); i++) {
		err = punch_path(path, sizeof(path), root, pins[i].leaf);
		if (!err) {
			err = bpf_map__set_pin_path(pins[i].map, path);
		}
		if (err) {
			return err;
		}
	}
	return 0;
}

/* punch_link_attach - replace the pinned link's program, or attach to this netns and pin. */
static int punch_link_attach(struct punch_steer_bpf *skel, const char *root)
{
	int prog_fd = bpf_program__fd(skel->progs.natx_punch_steer);
	char path[PATH_MAX];
	int link_fd, ns_fd, err;

	err = punch_path(path, sizeof(path), root, NATX_BPF_PIN_PUNCH_LINK);
	if (err) {
		return err;
	}
	link_fd = bpf_obj_get(path);
	if (link_fd >= 0) {
		err = bpf_link_update(link_fd, prog_fd, NULL);
		close(link_fd);
		if (!err) {
			return 0;
		}
		/* A link of a namespace that is gone: replace it. */
		unlink(path);
	}
	ns_fd = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
	if (ns_fd < 0) {
		return -errno;
	}
	link_fd = bpf_link_create(prog_fd, ns_fd, BPF_SK_LOOKUP, NULL);
	close(ns_fd);
	if (link_fd < 0) {
		return link_fd;
	}
	err = bpf_obj_pin(link_fd, path);
	if (err) {
		bpf_link_detach(link_fd);
	}
	close(link_fd);
	return err;
}

int natx_punch_steer_open(const struct natx_punch_steer_cfg *cfg, struct natx_punch_steer **out)
{
	struct natx_punch_steer *ps;
	int err;

	if (!cfg->port_lo || cfg->port_hi < cfg->port_lo) {
		return -EINVAL;
	}
	err = punch_mkdir(cfg->pin_root);
	if (err) {
		return err;
	}
	ps = calloc(1, sizeof(*ps));
	if (!ps) {
		return -ENOMEM;
	}
	ps->skel = punch_steer_bpf__open();
	if (!ps->skel) {
		err = errno ? -errno : -ENOMEM;
		goto out_free;
	}
	ps->skel->rodata->cfg_port_lo = cfg->port_lo;
	ps->skel->rodata->cfg_port_hi = cfg->port_hi;
	err = punch_pin_maps(ps->skel, cfg->pin_root);
	if (err) {
		goto out_destroy;
	}
	err = punch_steer_bpf__load(ps->skel);
	if (err) {
		pr_err(MOD, "loading the punch steering program failed: %s", strerror(-err));
		goto out_destroy;
	}
	err = punch_link_attach(ps->skel, cfg->pin_root);
	if (err) {
		pr_err(MOD, "attaching sk_lookup to this network namespace failed: %s",
		       strerror(-err));
		goto out_destroy;
	}
	ps->flows_fd = bpf_map__fd(ps->skel->maps.natx_punch_flows);
	ps->socks_fd = bpf_map__fd(ps->skel->maps.natx_punch_socks);
	*out = ps;
	return 0;
out_destroy:
	punch_steer_bpf__destroy(ps->skel);
out_free:
	free(ps);
	return err;
}

void natx_punch_steer_close(struct natx_punch_steer *ps)
{
	if (ps) {
		punch_steer_bpf__destroy(ps->skel);
		free(ps);
	}
}

int natx_punch_steer_register(struct natx_punch_steer *ps, const uint8_t sid[NATX_PUNCH_SID_LEN],
			      int fd)
{
	struct natx_punch_sid key;
	uint64_t v = (uint64_t)fd;

	if (fd < 0) {
		return -EBADF;
	}
	memcpy(key.b, sid, sizeof(key.b));
	return bpf_map_update_elem(ps->socks_fd, &key, &v, BPF_ANY);
}

int natx_punch_steer_unregister(struct natx_punch_steer *ps, const uint8_t sid[NATX_PUNCH_SID_LEN])
{
	struct natx_punch_sid key;

	memcpy(key.b, sid, sizeof(key.b));
	return bpf_map_delete_elem(ps->socks_fd, &key);
}

int natx_punch_steer_flow_key(struct natx_punch_flow_key *key, const struct sockaddr *peer,
			      uint16_t lport)
{
	memset(key, 0, sizeof(*key));
	key->lport = lport;
	if (peer->sa_family == AF_INET) {
		const struct sockaddr_in *s = (const struct sockaddr_in *)peer;

		key->family = NATX_RL_FAMILY_V4;
		key->rport = s->sin_port;
		key->raddr[0] = s->sin_addr.s_addr;
	} else if (peer->sa_family == AF_INET6) {
		const struct sockaddr_in6 *s = (const struct sockaddr_in6 *)peer;

		key->rport = s->sin6_port;
		if (IN6_IS_ADDR_V4MAPPED(&s->sin6_addr)) {
			key->family = NATX_RL_FAMILY_V4;
			memcpy(&key->raddr[0], s->sin6_addr.s6_addr + 12, 4);
		} else {
			key->family = NATX_RL_FAMILY_V6;
			memcpy(key->raddr, s->sin6_addr.s6_addr, 16);
		}
	} else {
		return -EAFNOSUPPORT;
	}
	return lport && key->rport ? 0 : -EINVAL;
}

int natx_punch_steer_flow_add(struct natx_punch_steer *ps, const uint8_t sid[NATX_PUNCH_SID_LEN],
			      const struct sockaddr *peer, uint16_t lport)
{
	struct natx_punch_flow_key key;
	struct natx_punch_flow_val val = { 0 };
	int err = natx_punch_steer_flow_key(&key, peer, lport);

	if (err) {
		return err;
	}
	memcpy(val.sid.b, sid, sizeof(val.sid.b));
	return bpf_map_update_elem(ps->flows_fd, &key, &val, BPF_ANY);
}

int natx_punch_steer_flow_del(struct natx_punch_steer *ps, const struct sockaddr *peer,
			      uint16_t lport)
{
	struct natx_punch_flow_key key;
	int err = natx_punch_steer_flow_key(&key, peer, lport);

	return err ? err : bpf_map_delete_elem(ps->flows_fd, &key);
}

/* punch_map_count - number of keys in the map pinned at @path (0 if absent). */
static uint32_t punch_map_count(const char *path, size_t key_size)
{
	uint8_t key[64], next[64];
	uint32_t n = 0;
	int fd = bpf_obj_get(path);

	if (fd < 0 || key_size > sizeof(key)) {
		if (fd >= 0) {
			close(fd);
		}
		return 0;
	}
	if (!bpf_map_get_next_key(fd, NULL, next)) {
		do {
			n++;
			memcpy(key, next, key_size);
		} while (!bpf_map_get_next_key(fd, key, next) && n < (1u << 20));
	}
	close(fd);
	return n;
}

/* punch_rodata_read - the port range from the running program's .rodata. */
static void punch_rodata_read(uint32_t prog_id, struct natx_punch_steer_status *st)
{
	struct punch_steer_bpf__rodata ro;

	if (!bpf_prog_rodata_read(prog_id, &ro, sizeof(ro))) {
		st->port_lo = ro.cfg_port_lo;
		st->port_hi = ro.cfg_port_hi;
	}
}

int natx_punch_steer_status_read(const char *pin_root, struct natx_punch_steer_status *st)
{
	int ncpu = libbpf_num_possible_cpus(), fd, err = 0;
	struct bpf_link_info li = { 0 };
	uint32_t len = sizeof(li);
	char path[PATH_MAX];
	uint64_t *vals;

	memset(st, 0, sizeof(*st));
	if (ncpu <= 0) {
		return -EINVAL;
	}
	err = punch_path(path, sizeof(path), pin_root, NATX_BPF_PIN_PUNCH_CNT);
	if (err) {
		return err;
	}
	fd = bpf_obj_get(path);
	if (fd < 0) {
		return fd;
	}
	vals = calloc((size_t)ncpu, sizeof(*vals));
	if (!vals) {
		close(fd);
		return -ENOMEM;
	}
	for (uint32_t k = 0; k < NATX_PUNCH_CNT_MAX && !err; k++) {
		err = bpf_map_lookup_elem(fd, &k, vals);
		for (int c = 0; !err && c < ncpu; c++) {
			st->counters[k] += vals[c];
		}
	}
	free(vals);
	close(fd);
	if (err) {
		return err;
	}
	punch_path(path, sizeof(path), pin_root, NATX_BPF_PIN_PUNCH_SOCKS);
	st->sessions = punch_map_count(path, sizeof(struct natx_punch_sid));
	punch_path(path, sizeof(path), pin_root, NATX_BPF_PIN_PUNCH_FLOWS);
	st->flows = punch_map_count(path, sizeof(struct natx_punch_flow_key));
	punch_path(path, sizeof(path), pin_root, NATX_BPF_PIN_PUNCH_LINK);
	fd = bpf_obj_get(path);
	if (fd < 0) {
		return 0; /* maps pinned, program not attached */
	}
	if (!bpf_obj_get_info_by_fd(fd, &li, &len)) {
		st->link_id = li.id;
		st->prog_id = li.prog_id;
		st->attached = li.netns.netns_ino != 0; /* 0 once the namespace is gone */
		punch_rodata_read(li.prog_id, st);
	}
	close(fd);
	return 0;
}

int natx_punch_steer_detach(const char *pin_root)
{
	static const char *const leaves[] = { NATX_BPF_PIN_PUNCH_LINK, NATX_BPF_PIN_PUNCH_FLOWS,
					      NATX_BPF_PIN_PUNCH_SOCKS, NATX_BPF_PIN_PUNCH_CNT };
	char path[PATH_MAX];
	int fd, found = 0, err;

	err = punch_path(path, sizeof(path), pin_root, NATX_BPF_PIN_PUNCH_LINK);
	if (err) {
		return err;
	}
	fd = bpf_obj_get(path);
	if (fd >= 0) {
		bpf_link_detach(fd);
		close(fd);
	}
	for (size_t i = 0; i < sizeof(leaves) / sizeof(leaves[0]); i++) {
		punch_path(path, sizeof(path), pin_root, leaves[i]);
		if (!unlink(path)) {
			found++;
		} else if (errno != ENOENT) {
			return -errno;
		}
	}
	punch_path(path, sizeof(path), pin_root, NULL);
	if (rmdir(path) && errno != ENOENT) {
		return -errno;
	}
	return found ? 0 : -ENOENT;
}
