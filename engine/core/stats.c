// SPDX-License-Identifier: MIT
/* Counters as JSON: the ctl "stats" reply and the SIGUSR1 dump share this. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "engine.h"
#include "stats_json.h"
#include "steer_eng.h"
#include "stun_eng.h"

static const char *const stats_names[] = {
	"flows_open",  "flows_total", "bytes_in",	   "bytes_out",	   "packets_in",
	"packets_out", "drops",	      "bufring_exhausted", "conn_refused",
};

_Static_assert(sizeof(stats_names) / sizeof(stats_names[0]) * sizeof(uint64_t) <=
		       sizeof(struct shard_stats),
	       "stats_names must match struct shard_stats");

cJSON *stats_json(struct engine *eng)
{
	cJSON *root = cJSON_CreateObject(), *arr = cJSON_AddArrayToObject(root, "shards");
	uint64_t total[sizeof(stats_names) / sizeof(stats_names[0])] = { 0 };
	cJSON *tot;

	for (unsigned int i = 0; i < eng->nshards; i++) {
		struct shard *sh = eng->shards[i];
		const uint64_t *v = (const uint64_t *)&sh->st;
		cJSON *o = cJSON_CreateObject();

		cJSON_AddNumberToObject(o, "shard", i);
		cJSON_AddNumberToObject(o, "cpu", sh->cpu);
		for (size_t k = 0; k < sizeof(stats_names) / sizeof(stats_names[0]); k++) {
			uint64_t x = stat_get(&v[k]);

			cJSON_AddNumberToObject(o, stats_names[k], (double)x);
			total[k] += x;
		}
		cJSON_AddItemToArray(arr, o);
	}
	tot = cJSON_AddObjectToObject(root, "total");
	for (size_t k = 0; k < sizeof(stats_names) / sizeof(stats_names[0]); k++) {
		cJSON_AddNumberToObject(tot, stats_names[k], (double)total[k]);
	}
	steer_eng_json(eng, root);
	stun_eng_json(eng, root);
	return root;
}

int stats_dump(struct engine *eng, const char *path)
{
	cJSON *j = stats_json(eng);
	char *txt = cJSON_PrintUnformatted(j), tmp[4096];
	int ret = 0;
	FILE *fp;

	cJSON_Delete(j);
	if (!txt) {
		return -ENOMEM;
	}
	if (!path) {
		fprintf(stderr, "%s\n", txt);
		cJSON_free(txt);
		return 0;
	}
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	fp = fopen(tmp, "w");
	if (!fp) {
		ret = -errno;
		goto free_txt;
	}
	fprintf(fp, "%s\n", txt);
	if (fclose(fp) || rename(tmp, path)) {
		ret = -errno;
		unlink(tmp);
	}
free_txt:
	cJSON_free(txt);
	return ret;
}
