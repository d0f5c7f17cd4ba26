// SPDX-License-Identifier: MIT
/*
 * libFuzzer target: natxd's POST /api/rathole/proxy/register input path (control/l402_http.c).
 * The input is "<Authorization value>\n<body>" (no newline: body only, no header); both go
 * through l402_http_register with a real regtest backend, root key and SQLite store in a
 * temporary directory, exactly as http.c calls it. Every answer must be a well-formed reply.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "l402_http.h"
#include "natx/log.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct natx_config cfg;
static struct store st;
static struct l402_svc ps;
static struct l402_http_reply rep;

static const char *fuzz_env(const char *name)
{
	return NULL;
}

static char dir[] = "/tmp/natx-fuzz-l402-XXXXXX";

/* fuzz_cleanup - remove the run's state directory at exit. */
static void fuzz_cleanup(void)
{
	char cmd[64];

	l402_svc_close(&ps);
	store_close(&st);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	if (system(cmd)) {
		fprintf(stderr, "fuzz_l402_http: cannot remove %s\n", dir);
	}
}

/* fuzz_init - one natxd payment state for the whole run. */
static int fuzz_init(void)
{
	char db[64], err[512];

	log_filter_set("off");
	if (!mkdtemp(dir)) {
		return -1;
	}
	atexit(fuzz_cleanup);
	config_defaults(&cfg, fuzz_env);
	cfg.enable_rathole = true;
	snprintf(db, sizeof(db), "%s/natx.db", dir);
	if (store_open(&st, db, true, err) ||
	    l402_svc_open(&ps, dir, &st, &clock_system, &cfg, err)) {
		fprintf(stderr, "fuzz_l402_http: %s\n", err);
		return -1;
	}
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int ready = 1;
	const uint8_t *nl = memchr(data, '\n', size);
	char *authz = NULL, *body;
	size_t blen;

	if (ready == 1) {
		ready = fuzz_init();
	}
	if (ready || size > 20000) {
		return 0;
	}
	if (nl) {
		size_t hlen = (size_t)(nl - data);

		authz = strndup((const char *)data, hlen);
		data = nl + 1;
		size -= hlen + 1;
	}
	blen = size;
	body = malloc(blen + 1);
	if (!body) {
		free(authz);
		return 0;
	}
	memcpy(body, data, blen);
	body[blen] = '\0';
	l402_http_register(&ps, NULL, authz, body, blen, false, &rep);
	if (!rep.status || rep.status >= 600 || !rep.body) {
		abort();
	}
	cJSON_Delete(rep.body);
	free(body);
	free(authz);
	return 0;
}
