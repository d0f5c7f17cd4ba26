// SPDX-License-Identifier: MIT
/* SO_REUSEPORT steering loader: see steer.h. */
#include <errno.h>
#include <stdlib.h>
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

struct natx_steer {
	struct steer_reuseport_bpf *skel;
};

unsigned int natx_steer_shard(const struct natx_flow_key *key, unsigned int n)
{
	uint64_t h = XXH3_64bits(key, sizeof(*key));

	return (unsigned int)((h ? h : 1) % n);
}

int natx_steer_attach(const int *fds, unsigned int n, uint32_t fwd_id, struct natx_steer **out)
{
	struct natx_steer *s;
	int err, prog_fd;

	*out = NULL;
	if (!n || n > NATX_STEER_MAX_SHARDS) {
		return -EINVAL;
	}
	s = calloc(1, sizeof(*s));
	if (!s) {
		return -ENOMEM;
	}
	s->skel = steer_reuseport_bpf__open();
	if (!s->skel) {
		err = errno ? -errno : -ENOMEM;
		goto out_free;
	}
	s->skel->rodata->cfg_nshards = n;
	s->skel->rodata->cfg_fwd_id = fwd_id;
	err = steer_reuseport_bpf__load(s->skel);
	if (err) {
		goto out_destroy;
	}
	for (uint32_t i = 0; i < n; i++) {
		uint64_t fd = (uint64_t)fds[i];

		err = bpf_map_update_elem(bpf_map__fd(s->skel->maps.natx_steer_socks), &i, &fd,
					  BPF_ANY);
		if (err) {
			goto out_destroy;
		}
	}
	prog_fd = bpf_program__fd(s->skel->progs.natx_steer_reuseport);
	if (setsockopt(fds[0], SOL_SOCKET, SO_ATTACH_REUSEPORT_EBPF, &prog_fd, sizeof(prog_fd))) {
		err = -errno;
		goto out_destroy;
	}
	*out = s;
	return 0;
out_destroy:
	steer_reuseport_bpf__destroy(s->skel);
out_free:
	free(s);
	return err;
}

void natx_steer_free(struct natx_steer *s)
{
	if (!s) {
		return;
	}
	steer_reuseport_bpf__destroy(s->skel);
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
