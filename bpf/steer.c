// SPDX-License-Identifier: MIT
/* SO_REUSEPORT steering loader: see steer.h. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <xxhash.h>

#include "steer.h"
#include "steer_reuseport.skel.h"

_Static_assert(sizeof(struct natx_flow_key) == 24, "flow key layout is shared with BPF");
_Static_assert(NATX_FLOW_FAMILY_V4 == AF_INET && NATX_FLOW_FAMILY_V6 == AF_INET6,
	       "the engine keys flows by AF_* values");

enum { STEER_GROUPS_MAX = 4096 };

struct natx_steer {
	struct steer_reuseport_bpf *skel;
	unsigned int max_groups, max_shards;
	uint8_t *used; /* per group: set */
	unsigned int nused;
	uint64_t *cookies; /* max_groups * max_shards, 0 = none */
};

unsigned int natx_steer_shard(const struct natx_flow_key *key, unsigned int n)
{
	uint64_t h = XXH3_64bits(key, sizeof(*key));

	return (unsigned int)((h ? h : 1) % n);
}

int natx_steer_open(unsigned int max_groups, unsigned int max_shards, struct natx_steer **out)
{
	struct natx_steer *s;
	int err;

	*out = NULL;
	if (!max_groups || max_groups > STEER_GROUPS_MAX || !max_shards ||
	    max_shards > NATX_STEER_MAX_SHARDS) {
		return -EINVAL;
	}
	s = calloc(1, sizeof(*s));
	if (!s) {
		return -ENOMEM;
	}
	s->max_groups = max_groups;
	s->max_shards = max_shards;
	s->used = calloc(max_groups, 1);
	s->cookies = calloc((size_t)max_groups * max_shards, sizeof(*s->cookies));
	if (!s->used || !s->cookies) {
		err = -ENOMEM;
		goto out_free;
	}
	s->skel = steer_reuseport_bpf__open();
	if (!s->skel) {
		err = errno ? -errno : -ENOMEM;
		goto out_free;
	}
	err = bpf_map__set_max_entries(s->skel->maps.natx_steer_socks, max_groups * max_shards);
	if (!err) {
		err = bpf_map__set_max_entries(s->skel->maps.natx_steer_groups,
					       max_groups * max_shards);
	}
	if (!err) {
		err = steer_reuseport_bpf__load(s->skel);
	}
	if (err) {
		goto out_destroy;
	}
	*out = s;
	return 0;
out_destroy:
	steer_reuseport_bpf__destroy(s->skel);
out_free:
	free(s->cookies);
	free(s->used);
	free(s);
	return err;
}

void natx_steer_group_clear(struct natx_steer *s, unsigned int group)
{
	int gfd, sfd;

	if (!s || group >= s->max_groups || !s->used[group]) {
		return;
	}
	gfd = bpf_map__fd(s->skel->maps.natx_steer_groups);
	sfd = bpf_map__fd(s->skel->maps.natx_steer_socks);
	for (uint32_t i = 0; i < s->max_shards; i++) {
		uint64_t *c = &s->cookies[(size_t)group * s->max_shards + i];
		uint32_t idx = group * s->max_shards + i;

		if (*c) {
			bpf_map_delete_elem(gfd, c);
			*c = 0;
		}
		/* -ENOENT when the socket already closed (it leaves the array by itself). */
		bpf_map_delete_elem(sfd, &idx);
	}
	s->used[group] = 0;
	s->nused--;
}

int natx_steer_group_set(struct natx_steer *s, unsigned int group, const int *fds, unsigned int n,
			 uint32_t fwd_id, uint32_t flags)
{
	struct natx_steer_group g = { .fwd_id = fwd_id, .n = n, .flags = flags };
	int gfd, sfd, prog_fd, err;

	if (!s || group >= s->max_groups || !n || n > s->max_shards) {
		return -EINVAL;
	}
	natx_steer_group_clear(s, group);
	s->used[group] = 1;
	s->nused++;
	g.base = group * s->max_shards;
	gfd = bpf_map__fd(s->skel->maps.natx_steer_groups);
	sfd = bpf_map__fd(s->skel->maps.natx_steer_socks);
	for (uint32_t i = 0; i < n; i++) {
		uint64_t fd = (uint64_t)fds[i], cookie = 0;
		socklen_t cl = sizeof(cookie);
		uint32_t idx = g.base + i;

		if (getsockopt(fds[i], SOL_SOCKET, SO_COOKIE, &cookie, &cl)) {
			err = -errno;
			goto clear;
		}
		err = bpf_map_update_elem(sfd, &idx, &fd, BPF_ANY);
		if (err) {
			goto clear;
		}
		err = bpf_map_update_elem(gfd, &cookie, &g, BPF_ANY);
		if (err) {
			goto clear;
		}
		s->cookies[g.base + i] = cookie;
	}
	prog_fd = bpf_program__fd(s->skel->progs.natx_steer_reuseport);
	if (setsockopt(fds[0], SOL_SOCKET, SO_ATTACH_REUSEPORT_EBPF, &prog_fd, sizeof(prog_fd))) {
		err = -errno;
		goto clear;
	}
	return 0;
clear:
	natx_steer_group_clear(s, group);
	return err;
}

unsigned int natx_steer_groups_used(const struct natx_steer *s)
{
	return s ? s->nused : 0;
}

uint32_t natx_steer_prog_id(const struct natx_steer *s)
{
	struct bpf_prog_info info;
	uint32_t len = sizeof(info);

	memset(&info, 0, sizeof(info));
	if (!s || bpf_obj_get_info_by_fd(bpf_program__fd(s->skel->progs.natx_steer_reuseport),
					 &info, &len)) {
		return 0;
	}
	return info.id;
}

int natx_steer_attach(const int *fds, unsigned int n, uint32_t fwd_id, struct natx_steer **out)
{
	struct natx_steer *s;
	int err;

	*out = NULL;
	if (!n || n > NATX_STEER_MAX_SHARDS) {
		return -EINVAL;
	}
	err = natx_steer_open(1, n, &s);
	if (err) {
		return err;
	}
	err = natx_steer_group_set(s, 0, fds, n, fwd_id, 0);
	if (err) {
		natx_steer_free(s);
		return err;
	}
	*out = s;
	return 0;
}

void natx_steer_free(struct natx_steer *s)
{
	if (!s) {
		return;
	}
	steer_reuseport_bpf__destroy(s->skel);
	free(s->cookies);
	free(s->used);
	free(s);
}

int natx_steer_counters(struct natx_steer *s, uint64_t out[NATX_STEER_CNT_MAX])
{
	int ncpu = libbpf_num_possible_cpus(), err = 0;
	uint64_t *v;

	if (ncpu <= 0) {
		return ncpu ? ncpu : -EINVAL;
	}
	v = calloc((size_t)ncpu, sizeof(*v));
	if (!v) {
		return -ENOMEM;
	}
	for (uint32_t k = 0; k < NATX_STEER_CNT_MAX && !err; k++) {
		err = bpf_map_lookup_elem(bpf_map__fd(s->skel->maps.natx_steer_cnt), &k, v);
		out[k] = 0;
		for (int c = 0; !err && c < ncpu; c++) {
			out[k] += v[c];
		}
	}
	free(v);
	return err;
}
