// SPDX-License-Identifier: MIT
/* The running program's tunables, from its .rodata map (bpf/prog_rodata.h). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <bpf/bpf.h>

#include "prog_rodata.h"

enum { PROG_MAPS_MAX = 8 };

/* rodata_map_read - @mfd's value when it is a ".rodata" map of at least @len bytes. */
static int rodata_map_read(int mfd, void *out, size_t len)
{
	struct bpf_map_info mi = { 0 };
	uint32_t mlen = sizeof(mi), zero = 0;
	size_t nl;
	uint8_t *val;
	int err = -ENOENT;

	if (bpf_obj_get_info_by_fd(mfd, &mi, &mlen)) {
		return -errno;
	}
	nl = strlen(mi.name);
	/* The skeleton's view covers the named globals; the map may hold more (a CRC table). */
	if (nl < 7 || strcmp(mi.name + nl - 7, ".rodata") || mi.value_size < len) {
		return -ENOENT;
	}
	val = malloc(mi.value_size);
	if (!val) {
		return -ENOMEM;
	}
	if (!bpf_map_lookup_elem(mfd, &zero, val)) {
		memcpy(out, val, len);
		err = 0;
	}
	free(val);
	return err;
}

int bpf_prog_rodata_read(uint32_t prog_id, void *out, size_t len)
{
	struct bpf_prog_info pi = { 0 };
	uint32_t ids[PROG_MAPS_MAX], plen = sizeof(pi);
	int pfd = bpf_prog_get_fd_by_id(prog_id), err = -ENOENT;

	if (pfd < 0) {
		return -errno;
	}
	pi.nr_map_ids = PROG_MAPS_MAX;
	pi.map_ids = (uint64_t)(unsigned long)ids;
	if (bpf_obj_get_info_by_fd(pfd, &pi, &plen)) {
		err = -errno;
		goto out_close_prog;
	}
	for (uint32_t i = 0; i < pi.nr_map_ids && i < PROG_MAPS_MAX && err; i++) {
		int mfd = bpf_map_get_fd_by_id(ids[i]);

		if (mfd < 0) {
			continue;
		}
		err = rodata_map_read(mfd, out, len);
		close(mfd);
	}
out_close_prog:
	close(pfd);
	return err;
}
