// SPDX-License-Identifier: MIT
/*
 * Engine side of SO_REUSEPORT steering (steer_eng.h). Built with NATX_WITH_BPF the natx_bpf
 * loader is linked (NATX_HAVE_BPF); without it every group keeps the kernel's hash and the
 * reason says so.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "natx/log.h"
#include "steer_eng.h"

#ifdef NATX_HAVE_BPF
#include <stdarg.h>

#include <bpf/libbpf.h>

#include "steer.h"
_Static_assert(STEER_ADDR_ONLY == NATX_STEER_F_ADDR_ONLY, "group flag shared with BPF");
_Static_assert(SHARDS_MAX <= NATX_STEER_MAX_SHARDS, "a group holds every shard");
#endif

#define MOD "steer"

struct engine_steer {
	bool bpf; /* the program is loaded: new groups are steered by it */
	char reason[200]; /* why not bpf ("" when bpf) */
	uint64_t attach_failed;
#ifdef NATX_HAVE_BPF
	struct natx_steer *prog;
#endif
};

static const char *const steer_cfg_names[] = { "auto", "bpf", "kernel" };

#ifdef NATX_HAVE_BPF
/*
 * steer_libbpf_print - libbpf's messages at debug level: a refused load in auto mode is an
 * expected outcome, reported once through the reason, not as libbpf's multi-line warning.
 */
static int steer_libbpf_print(enum libbpf_print_level level, const char *fmt, va_list ap)
{
	char line[256];
	size_t len;

	if (level == LIBBPF_DEBUG) {
		return 0;
	}
	vsnprintf(line, sizeof(line), fmt, ap);
	len = strlen(line);
	if (len && line[len - 1] == '\n') {
		line[len - 1] = '\0';
	}
	pr_debug(MOD, "libbpf: %s", line);
	return 0;
}
#endif

int steer_eng_start(struct engine *eng, char *err, size_t errlen)
{
	struct engine_steer *st = calloc(1, sizeof(*st));
	enum steer_mode m = eng->cfg->steer;

	if (!st) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	eng->steer = st;
	if (m == STEER_KERNEL) {
		snprintf(st->reason, sizeof(st->reason), "--steer kernel");
		return 0;
	}
#ifdef NATX_HAVE_BPF
	libbpf_set_print(steer_libbpf_print);
	int ret = natx_steer_open(STEER_GROUPS, eng->nshards, &st->prog);

	if (!ret) {
		st->bpf = true;
		pr_info(MOD, "SO_REUSEPORT steering: BPF program id %u (flow hash %% %u shards)",
			natx_steer_prog_id(st->prog), eng->nshards);
		return 0;
	}
	snprintf(st->reason, sizeof(st->reason), "cannot load the steering program: %s%s",
		 strerror(-ret), ret == -EPERM ? " (needs root or CAP_BPF + CAP_NET_ADMIN)" : "");
#else
	int ret = -EOPNOTSUPP;

	snprintf(st->reason, sizeof(st->reason),
		 "natx-engine was built without BPF support (NATX_WITH_BPF=OFF)");
#endif
	if (m == STEER_BPF) {
		snprintf(err, errlen, "--steer bpf: %s", st->reason);
		return ret;
	}
	pr_info(MOD, "SO_REUSEPORT steering: kernel hash (%s)", st->reason);
	return 0;
}

void steer_eng_group_add(struct engine *eng, unsigned int group, const int *fds, unsigned int n,
			 uint32_t fwd_id, uint32_t flags)
{
	struct engine_steer *st = eng->steer;

	if (!st || !st->bpf) {
		return;
	}
#ifdef NATX_HAVE_BPF
	int ret = natx_steer_group_set(st->prog, group, fds, n, fwd_id, flags);

	if (ret) {
		st->attach_failed++;
		pr_warn(MOD, "group %u (id %u): steering program not attached (%s); kernel hash",
			group, fwd_id, strerror(-ret));
	}
#else
	(void)group, (void)fds, (void)n, (void)fwd_id, (void)flags;
#endif
}

void steer_eng_group_del(struct engine *eng, unsigned int group)
{
#ifdef NATX_HAVE_BPF
	if (eng->steer && eng->steer->bpf) {
		natx_steer_group_clear(eng->steer->prog, group);
	}
#else
	(void)eng, (void)group;
#endif
}

const char *steer_eng_mode(const struct engine *eng)
{
	return eng->steer && eng->steer->bpf ? "bpf" : "kernel";
}

void steer_eng_json(struct engine *eng, cJSON *o)
{
	struct engine_steer *st = eng->steer;
	cJSON *s = cJSON_AddObjectToObject(o, "steering");
	uint64_t cnt[2] = { 0, 0 };
	double prog_id = 0, groups = 0;

	cJSON_AddStringToObject(s, "mode", steer_eng_mode(eng));
	cJSON_AddStringToObject(s, "configured", steer_cfg_names[eng->cfg->steer]);
	if (st && !st->bpf) {
		cJSON_AddStringToObject(s, "reason", st->reason);
	} else {
		cJSON_AddNullToObject(s, "reason");
	}
#ifdef NATX_HAVE_BPF
	if (st && st->bpf) {
		prog_id = natx_steer_prog_id(st->prog);
		groups = natx_steer_groups_used(st->prog);
		if (natx_steer_counters(st->prog, cnt)) {
			cnt[0] = cnt[1] = 0;
		}
	}
#endif
	cJSON_AddNumberToObject(s, "prog_id", prog_id);
	cJSON_AddNumberToObject(s, "groups", groups);
	cJSON_AddNumberToObject(s, "steered", (double)cnt[0]);
	cJSON_AddNumberToObject(s, "fallback", (double)cnt[1]);
	cJSON_AddNumberToObject(s, "attach_failed", st ? (double)st->attach_failed : 0);
}

void steer_eng_stop(struct engine *eng)
{
	if (!eng->steer) {
		return;
	}
#ifdef NATX_HAVE_BPF
	natx_steer_free(eng->steer->prog);
#endif
	free(eng->steer);
	eng->steer = NULL;
}
