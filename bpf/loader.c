// SPDX-License-Identifier: MIT
/* natx_bpf loader: see loader.h for the contract and docs/bpf.md for the pin layout. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/if_link.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "loader.h"
#include "prog_rodata.h"
#include "natx/log.h"
#include "stun_reflect.skel.h"

#define MOD "bpf"
#define BPF_FS_MAGIC_NUM 0xcafe4a11

_Static_assert(sizeof(struct natx_rl_key) == 20, "natx_rl_key layout is shared with BPF");
_Static_assert(sizeof(struct natx_rl_state) == 8, "natx_rl_state layout is shared with BPF");
_Static_assert(sizeof(struct natx_punch_hdr) == NATX_PUNCH_HDR_LEN, "punch probe header layout");
_Static_assert(sizeof(struct natx_punch_flow_key) == 24, "natx_punch_flow_key is shared with BPF");
_Static_assert(sizeof(struct natx_punch_flow_val) == 16, "natx_punch_flow_val is shared with BPF");
_Static_assert(NATX_STUN_CNT_MAX == 6, "counter names below list every counter");

static const char *const natx_bpf_counter_names[NATX_STUN_CNT_MAX] = {
	[NATX_STUN_CNT_ANSWERED] = "answered",
	[NATX_STUN_CNT_RATE_LIMITED] = "rate_limited",
	[NATX_STUN_CNT_PASSED] = "passed",
	[NATX_STUN_CNT_MALFORMED] = "malformed",
	[NATX_STUN_CNT_PUNCH_PASSED] = "punch_passed",
	[NATX_STUN_CNT_PUNCH_RATE_LIMITED] = "punch_rate_limited",
};

const char *natx_bpf_counter_name(enum natx_stun_counter c)
{
	return (unsigned int)c < NATX_STUN_CNT_MAX ? natx_bpf_counter_names[c] : "?";
}

const char *natx_bpf_mode_name(enum natx_xdp_mode mode)
{
	return mode == NATX_XDP_GENERIC ? "generic" : "native";
}

/* natx_bpf_libbpf_print - route libbpf's warnings into natx logging; debug chatter stays off. */
static int natx_bpf_libbpf_print(enum libbpf_print_level level, const char *fmt, va_list ap)
{
	char line[512];
	size_t n;

	if (level == LIBBPF_DEBUG && !log_enabled(MOD, LOG_TRACE)) {
		return 0;
	}
	vsnprintf(line, sizeof(line), fmt, ap);
	n = strlen(line);
	if (n && line[n - 1] == '\n') {
		line[n - 1] = '\0';
	}
	if (level == LIBBPF_WARN) {
		pr_warn(MOD, "libbpf: %s", line);
	} else {
		pr_debug(MOD, "libbpf: %s", line);
	}
	return 0;
}

int natx_bpf_cfg_init(struct natx_bpf_cfg *cfg, const char *ifname)
{
	memset(cfg, 0, sizeof(*cfg));
	if (!ifname || !*ifname || strlen(ifname) >= sizeof(cfg->ifname) || strchr(ifname, '/')) {
		return -EINVAL;
	}
	strcpy(cfg->ifname, ifname);
	cfg->mode = NATX_XDP_NATIVE;
	cfg->ports[0] = 3478;
	return 0;
}

int natx_bpf_skel_configure(struct stun_reflect_bpf *skel, const struct natx_bpf_cfg *cfg)
{
	bool any = false;

	if (cfg->rate > 1000000000u || cfg->punch_rate > 1000000000u ||
	    (cfg->punch_port_lo && cfg->punch_port_hi < cfg->punch_port_lo) ||
	    (!cfg->punch_port_lo && cfg->punch_port_hi)) {
		return -EINVAL;
	}
	for (int i = 0; i < NATX_STUN_MAX_PORTS; i++) {
		skel->rodata->cfg_ports[i] = cfg->ports[i];
		any |= cfg->ports[i] != 0;
	}
	if (!any) {
		skel->rodata->cfg_ports[0] = 3478;
	}
	skel->rodata->cfg_rl_interval_ns = cfg->rate ? 1000000000ull / cfg->rate : 0;
	skel->rodata->cfg_rl_burst = cfg->burst ? cfg->burst : (cfg->rate ? cfg->rate : 1);
	skel->rodata->cfg_punch_port_lo = cfg->punch_port_lo;
	skel->rodata->cfg_punch_port_hi = cfg->punch_port_hi;
	skel->rodata->cfg_punch_interval_ns = cfg->punch_rate ? 1000000000ull / cfg->punch_rate : 0;
	skel->rodata->cfg_punch_burst =
		cfg->punch_burst ? cfg->punch_burst : (cfg->punch_rate ? cfg->punch_rate : 1);
	return 0;
}

/* natx_bpf_dir - "<root>/<ifname>" into @buf; -ENAMETOOLONG or -EINVAL for a bad name. */
static int natx_bpf_dir(char *buf, size_t len, const char *root, const char *ifname,
			const char *leaf)
{
	int n;

	if (!ifname || !*ifname || strchr(ifname, '/') || strlen(ifname) >= IF_NAMESIZE) {
		return -EINVAL;
	}
	n = snprintf(buf, len, "%s/%s%s%s", root ? root : NATX_BPF_PIN_ROOT, ifname,
		     leaf ? "/" : "", leaf ? leaf : "");
	return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

/* natx_bpf_mkdir_pins - create <root>/<ifname>, checking that root lives on a bpffs. */
static int natx_bpf_mkdir_pins(const char *root, const char *dir)
{
	struct statfs sfs;

	if (mkdir(root, 0700) && errno != EEXIST) {
		return -errno;
	}
	if (statfs(root, &sfs)) {
		return -errno;
	}
	if ((unsigned long)sfs.f_type != BPF_FS_MAGIC_NUM) {
		pr_err(MOD, "%s is not on a bpf filesystem (mount -t bpf bpf /sys/fs/bpf)", root);
		return -ENOTSUP;
	}
	if (mkdir(dir, 0700) && errno != EEXIST) {
		return -errno;
	}
	return 0;
}

/* natx_bpf_xdp_mode_query - the mode of the program the kernel has on @ifindex, if any. */
static int natx_bpf_xdp_mode_query(int ifindex, enum natx_xdp_mode *mode, uint32_t *prog_id)
{
	LIBBPF_OPTS(bpf_xdp_query_opts, q);
	int err = bpf_xdp_query(ifindex, 0, &q);

	if (err) {
		return err;
	}
	*prog_id = q.prog_id;
	*mode = q.attach_mode == XDP_ATTACHED_SKB ? NATX_XDP_GENERIC : NATX_XDP_NATIVE;
	return q.attach_mode == XDP_ATTACHED_NONE ? -ENOENT : 0;
}

/* natx_bpf_link_create - attach the loaded reflector to @ifindex in @mode as a bpf_link. */
static int natx_bpf_link_create(struct stun_reflect_bpf *skel, int ifindex, enum natx_xdp_mode mode)
{
	LIBBPF_OPTS(bpf_link_create_opts, lo,
		    .flags = mode == NATX_XDP_GENERIC ? XDP_FLAGS_SKB_MODE : XDP_FLAGS_DRV_MODE);

	return bpf_link_create(bpf_program__fd(skel->progs.natx_stun_reflect), ifindex, BPF_XDP,
			       &lo);
}

int natx_bpf_attach(const struct natx_bpf_cfg *cfg)
{
	const char *root = cfg->pin_root ? cfg->pin_root : NATX_BPF_PIN_ROOT;
	char dir[PATH_MAX], path[PATH_MAX];
	struct stun_reflect_bpf *skel;
	int ifindex, link_fd, err, had_mode = -1;

	libbpf_set_print(natx_bpf_libbpf_print);
	ifindex = (int)if_nametoindex(cfg->ifname);
	if (!ifindex) {
		return -ENODEV;
	}
	err = natx_bpf_dir(dir, sizeof(dir), root, cfg->ifname, NULL);
	if (err) {
		return err;
	}
	err = natx_bpf_mkdir_pins(root, dir);
	if (err) {
		return err;
	}

	skel = stun_reflect_bpf__open();
	if (!skel) {
		return errno ? -errno : -ENOMEM;
	}
	err = natx_bpf_skel_configure(skel, cfg);
	if (err) {
		goto out_destroy;
	}
	err = natx_bpf_dir(path, sizeof(path), root, cfg->ifname, NATX_BPF_PIN_COUNTERS);
	if (!err) {
		err = bpf_map__set_pin_path(skel->maps.natx_stun_cnt, path);
	}
	if (!err) {
		err = natx_bpf_dir(path, sizeof(path), root, cfg->ifname, NATX_BPF_PIN_RATELIMIT);
	}
	if (!err) {
		err = bpf_map__set_pin_path(skel->maps.natx_stun_rl, path);
	}
	if (!err) {
		err = natx_bpf_dir(path, sizeof(path), root, cfg->ifname, NATX_BPF_PIN_PUNCH_RL);
	}
	if (!err) {
		err = bpf_map__set_pin_path(skel->maps.natx_punch_rl, path);
	}
	if (!err && cfg->punch_port_lo) {
		/* Learnt flows are shared with the netns's sk_lookup steering (punch_steer.c). */
		err = natx_bpf_dir(path, sizeof(path), root, NATX_BPF_PIN_PUNCH_DIR, NULL);
		if (!err) {
			err = natx_bpf_mkdir_pins(root, path);
		}
		if (!err) {
			err = natx_bpf_dir(path, sizeof(path), root, NATX_BPF_PIN_PUNCH_DIR,
					   NATX_BPF_PIN_PUNCH_FLOWS);
		}
		if (!err) {
			err = bpf_map__set_pin_path(skel->maps.natx_punch_flows, path);
		}
	}
	if (err) {
		goto out_destroy;
	}
	/* Loading reuses compatible pinned maps and pins new ones (libbpf pin_path semantics). */
	err = stun_reflect_bpf__load(skel);
	if (err) {
		pr_err(MOD, "loading the reflector failed: %s", strerror(-err));
		goto out_destroy;
	}

	natx_bpf_dir(path, sizeof(path), root, cfg->ifname, NATX_BPF_PIN_LINK);
	link_fd = bpf_obj_get(path);
	if (link_fd >= 0) {
		enum natx_xdp_mode cur;
		uint32_t cur_id;

		if (!natx_bpf_xdp_mode_query(ifindex, &cur, &cur_id) && cur == cfg->mode) {
			err = bpf_link_update(link_fd,
					      bpf_program__fd(skel->progs.natx_stun_reflect), NULL);
			close(link_fd);
			if (!err) {
				pr_info(MOD, "%s: reflector replaced in place (%s mode)",
					cfg->ifname, natx_bpf_mode_name(cur));
			}
			goto out_destroy;
		}
		/* Mode change, or a stale link whose interface went away: start over. */
		if (!natx_bpf_xdp_mode_query(ifindex, &cur, &cur_id)) {
			had_mode = (int)cur;
		}
		bpf_link_detach(link_fd);
		close(link_fd);
		unlink(path);
	}

	link_fd = natx_bpf_link_create(skel, ifindex, cfg->mode);
	if (link_fd < 0 && had_mode >= 0) {
		/* The new mode is refused: put the reflector back the way it was. */
		err = link_fd;
		pr_err(MOD, "%s: attaching in %s mode failed: %s; keeping %s mode", cfg->ifname,
		       natx_bpf_mode_name(cfg->mode), strerror(-err),
		       natx_bpf_mode_name((enum natx_xdp_mode)had_mode));
		link_fd = natx_bpf_link_create(skel, ifindex, (enum natx_xdp_mode)had_mode);
		if (link_fd >= 0 && !bpf_obj_pin(link_fd, path)) {
			close(link_fd);
			goto out_destroy;
		}
		if (link_fd >= 0) {
			bpf_link_detach(link_fd);
			close(link_fd);
		}
		goto out_destroy;
	}
	if (link_fd < 0) {
		err = link_fd;
		pr_err(MOD, "%s: attaching in %s mode failed: %s", cfg->ifname,
		       natx_bpf_mode_name(cfg->mode), strerror(-err));
		goto out_destroy;
	}
	err = bpf_obj_pin(link_fd, path);
	if (err) {
		pr_err(MOD, "pinning %s failed: %s", path, strerror(-err));
		bpf_link_detach(link_fd);
		goto out_close_link;
	}
	pr_info(MOD, "%s: reflector attached (%s mode)", cfg->ifname,
		natx_bpf_mode_name(cfg->mode));
out_close_link:
	close(link_fd);
out_destroy:
	stun_reflect_bpf__destroy(skel);
	return err;
}

int natx_bpf_detach(const char *pin_root, const char *ifname)
{
	static const char *const leaves[] = { NATX_BPF_PIN_LINK, NATX_BPF_PIN_COUNTERS,
					      NATX_BPF_PIN_RATELIMIT, NATX_BPF_PIN_PUNCH_RL };
	char dir[PATH_MAX], path[PATH_MAX];
	int err, fd, found = 0;

	err = natx_bpf_dir(dir, sizeof(dir), pin_root, ifname, NULL);
	if (err) {
		return err;
	}
	natx_bpf_dir(path, sizeof(path), pin_root, ifname, NATX_BPF_PIN_LINK);
	fd = bpf_obj_get(path);
	if (fd >= 0) {
		err = bpf_link_detach(fd);
		close(fd);
		if (err && err != -ENOLINK && err != -EINVAL) {
			return err;
		}
	}
	for (size_t i = 0; i < sizeof(leaves) / sizeof(leaves[0]); i++) {
		natx_bpf_dir(path, sizeof(path), pin_root, ifname, leaves[i]);
		if (!unlink(path)) {
			found++;
		} else if (errno != ENOENT) {
			return -errno;
		}
	}
	if (rmdir(dir) && errno != ENOENT) {
		return -errno;
	}
	return found ? 0 : -ENOENT;
}

/* natx_bpf_counters_read - sum the per-CPU counters pinned at @path. */
static int natx_bpf_counters_read(const char *path, uint64_t *out)
{
	int ncpu = libbpf_num_possible_cpus();
	uint64_t *vals;
	int fd, err = 0;

	if (ncpu <= 0) {
		return ncpu ? ncpu : -EINVAL;
	}
	fd = bpf_obj_get(path);
	if (fd < 0) {
		return fd;
	}
	vals = calloc((size_t)ncpu, sizeof(*vals));
	if (!vals) {
		err = -ENOMEM;
		goto out_close;
	}
	for (uint32_t k = 0; k < NATX_STUN_CNT_MAX; k++) {
		err = bpf_map_lookup_elem(fd, &k, vals);
		if (err) {
			break;
		}
		out[k] = 0;
		for (int c = 0; c < ncpu; c++) {
			out[k] += vals[c];
		}
	}
	free(vals);
out_close:
	close(fd);
	return err;
}

/* natx_bpf_rodata_read - recover ports and rate limit from the running program's .rodata. */
static void natx_bpf_rodata_read(uint32_t prog_id, struct natx_bpf_status *st)
{
	struct stun_reflect_bpf__rodata ro;

	if (bpf_prog_rodata_read(prog_id, &ro, sizeof(ro))) {
		return;
	}
	for (int p = 0; p < NATX_STUN_MAX_PORTS; p++) {
		st->ports[p] = ro.cfg_ports[p];
	}
	st->rate = ro.cfg_rl_interval_ns ? (uint32_t)(1000000000ull / ro.cfg_rl_interval_ns) : 0;
	st->burst = st->rate ? ro.cfg_rl_burst : 0;
	st->punch_port_lo = ro.cfg_punch_port_lo;
	st->punch_port_hi = ro.cfg_punch_port_hi;
	st->punch_rate =
		ro.cfg_punch_interval_ns ? (uint32_t)(1000000000ull / ro.cfg_punch_interval_ns) : 0;
	st->punch_burst = st->punch_rate ? ro.cfg_punch_burst : 0;
}

int natx_bpf_status_read(const char *pin_root, const char *ifname, struct natx_bpf_status *st)
{
	char dir[PATH_MAX], path[PATH_MAX];
	struct bpf_link_info li = { 0 };
	uint32_t len = sizeof(li), qid = 0;
	int fd, err;

	memset(st, 0, sizeof(*st));
	err = natx_bpf_dir(dir, sizeof(dir), pin_root, ifname, NULL);
	if (err) {
		return err;
	}
	strcpy(st->ifname, ifname);
	natx_bpf_dir(path, sizeof(path), pin_root, ifname, NATX_BPF_PIN_COUNTERS);
	err = natx_bpf_counters_read(path, st->counters);
	if (err) {
		return err;
	}
	natx_bpf_dir(path, sizeof(path), pin_root, ifname, NATX_BPF_PIN_LINK);
	fd = bpf_obj_get(path);
	if (fd < 0) {
		return 0; /* maps pinned, program not attached */
	}
	err = bpf_obj_get_info_by_fd(fd, &li, &len);
	close(fd);
	if (err) {
		return err;
	}
	st->link_id = li.id;
	st->prog_id = li.prog_id;
	st->ifindex = (int)li.xdp.ifindex;
	if (st->ifindex && !natx_bpf_xdp_mode_query(st->ifindex, &st->mode, &qid)) {
		st->attached = qid == li.prog_id;
	}
	natx_bpf_rodata_read(li.prog_id, st);
	return 0;
}

int natx_bpf_status_list(const char *pin_root, struct natx_bpf_status *out, size_t max, size_t *n)
{
	const char *root = pin_root ? pin_root : NATX_BPF_PIN_ROOT;
	struct dirent *de;
	DIR *d;

	*n = 0;
	d = opendir(root);
	if (!d) {
		return errno == ENOENT ? 0 : -errno;
	}
	while ((de = readdir(d)) && *n < max) {
		if (de->d_name[0] == '.' || strlen(de->d_name) >= IF_NAMESIZE ||
		    !strcmp(de->d_name, NATX_BPF_PIN_PUNCH_DIR)) {
			continue;
		}
		if (!natx_bpf_status_read(root, de->d_name, &out[*n])) {
			(*n)++;
		}
	}
	closedir(d);
	return 0;
}
