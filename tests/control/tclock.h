/* SPDX-License-Identifier: MIT */
/* Test-only clock and adapters for the control unit tests (never linked into natxd). */
#ifndef NATX_TEST_TCLOCK_H
#define NATX_TEST_TCLOCK_H

#include <errno.h>
#include <string.h>

#include "clock.h"
#include "svc.h"

struct tclock {
	struct clock c;
	uint64_t now; /* ms, advanced by the test and by sleep_ms */
	uint64_t wall; /* s */
	uint64_t slept; /* total ms slept */
	unsigned sleeps; /* sleep calls */
	uint32_t rnd; /* next rand32 value */
};

static uint64_t tclock_now(const struct clock *c)
{
	return ((const struct tclock *)c)->now;
}

static uint64_t tclock_wall(const struct clock *c)
{
	return ((const struct tclock *)c)->wall;
}

static void tclock_sleep(const struct clock *c, uint64_t ms)
{
	struct tclock *t = (struct tclock *)c;

	t->now += ms;
	t->slept += ms;
	t->sleeps++;
}

static uint32_t tclock_rand(const struct clock *c)
{
	return ((const struct tclock *)c)->rnd;
}

static inline void tclock_init(struct tclock *t)
{
	memset(t, 0, sizeof(*t));
	t->c = (struct clock){ tclock_now, tclock_wall, tclock_sleep, tclock_rand, t };
	t->now = 1000000;
	t->wall = 1700000000;
}

/* A test adapter: its behaviour is set field by field by each test. */
struct tsvc {
	const char *type;
	unsigned caps;
	bool operational;
	bool reach;
	int fail_n; /* fail the next fail_n connects with err */
	int err;
	uint64_t latency_ms; /* each connect advances the clock by this */
	unsigned calls;
	unsigned active;
	uint64_t sats; /* reported payment on success */
	struct tclock *clk;
	struct svc_ops ops;
};

static unsigned tsvc_caps(void *ctx)
{
	return ((struct tsvc *)ctx)->caps;
}

static bool tsvc_reach(void *ctx, const char *target)
{
	return ((struct tsvc *)ctx)->reach;
}

static int tsvc_connect(void *ctx, const struct svc_request *req, struct svc_conn_info *out)
{
	struct tsvc *t = ctx;

	t->calls++;
	t->clk->now += t->latency_ms;
	if (t->fail_n > 0) {
		t->fail_n--;
		return t->err;
	}
	strcpy(out->proxy_address, "198.51.100.1:7000");
	out->payment_sats = t->sats;
	return 0;
}

static int tsvc_proxies(void *ctx, cJSON *array)
{
	cJSON *p = cJSON_CreateObject();

	if (!p) {
		return -ENOMEM;
	}
	cJSON_AddStringToObject(p, "address", "198.51.100.1:7000");
	cJSON_AddItemToArray(array, p);
	return 0;
}

static bool tsvc_operational(void *ctx)
{
	return ((struct tsvc *)ctx)->operational;
}

static void tsvc_status(void *ctx, struct svc_status *st)
{
	st->operational = ((struct tsvc *)ctx)->operational;
	st->active_connections = ((struct tsvc *)ctx)->active;
}

static inline void tsvc_init(struct tsvc *t, struct tclock *clk, const char *type, unsigned caps)
{
	memset(t, 0, sizeof(*t));
	t->type = type;
	t->caps = caps;
	t->operational = true;
	t->reach = true;
	t->clk = clk;
	t->ops = (struct svc_ops){ .type = type,
				   .capabilities = tsvc_caps,
				   .can_reach = tsvc_reach,
				   .connect = tsvc_connect,
				   .available_proxies = tsvc_proxies,
				   .operational = tsvc_operational,
				   .status = tsvc_status };
}

#endif
