/* SPDX-License-Identifier: MIT */
/* Engine counters as JSON (ENGINE-CTL.md "stats" reply layout). */
#ifndef NATX_ENGINE_STATS_JSON_H
#define NATX_ENGINE_STATS_JSON_H

#include <cjson/cJSON.h>

struct engine;

/* stats_json - {"shards":[...],"total":{...}}; caller owns the result (cJSON_Delete). */
cJSON *stats_json(struct engine *eng);

/* stats_dump - write stats_json() as one line to @path (atomic rename) or stderr if NULL. */
int stats_dump(struct engine *eng, const char *path);

#endif
