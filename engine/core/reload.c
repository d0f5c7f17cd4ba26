// SPDX-License-Identifier: MIT
/* --forwards-file loading and SIGHUP reload (see reload.h). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "natx/log.h"
#include "reload.h"

#define MOD "reload"

enum { RELOAD_LINES_MAX = FWD_MAX };

/* reload_trim - strip comment and surrounding blanks in place. */
static char *reload_trim(char *s)
{
	char *hash = strchr(s, '#'), *end;

	if (hash) {
		*hash = '\0';
	}
	while (*s == ' ' || *s == '\t') {
		s++;
	}
	end = s + strlen(s);
	while (end > s &&
	       (end[-1] == ' ' || end[-1] == '\t' || end[-1] == '\n' || end[-1] == '\r')) {
		*--end = '\0';
	}
	return s;
}

int reload_forwards_file(struct engine *eng, const char *path, bool strict, char *err,
			 size_t errlen)
{
	static char canon[RELOAD_LINES_MAX][SPEC_TEXT_MAX];
	char line[SPEC_TEXT_MAX + 64], serr[SPEC_ERR_MAX];
	unsigned int n = 0, lineno = 0;
	bool keep[FWD_MAX] = { 0 };
	FILE *fp = fopen(path, "r");
	int ret = 0;

	if (!fp) {
		ret = -errno;
		snprintf(err, errlen, "cannot read forwards file %s: %s", path, strerror(errno));
		return ret;
	}
	/* Pass 1: every valid line, resolved to its canonical spec. */
	while (fgets(line, sizeof(line), fp)) {
		struct spec s;
		struct spec_addr a;
		char *t = reload_trim(line);

		lineno++;
		if (!*t) {
			continue;
		}
		ret = spec_parse(t, &s, serr);
		if (!ret && !s.listen.port) {
			/* A kernel-picked port could never be matched on the next reload. */
			snprintf(serr, sizeof(serr),
				 "listen port 0 is not allowed in a forwards file");
			ret = -EINVAL;
		}
		if (!ret && n == RELOAD_LINES_MAX) {
			snprintf(serr, sizeof(serr), "more than %d forwards", FWD_MAX);
			ret = -ENOSPC;
		}
		if (!ret) {
			ret = spec_resolve(&s, &a, serr);
		}
		if (ret) {
			if (strict) {
				snprintf(err, errlen, "%s:%u: %s", path, lineno, serr);
				fclose(fp);
				return ret;
			}
			pr_warn(MOD, "%s:%u: %s (line skipped)", path, lineno, serr);
			ret = 0;
			continue;
		}
		spec_canonical(&a, canon[n], sizeof(canon[n]));
		n++;
	}
	fclose(fp);
	/* Pass 2: add what is new, remember what is still listed. */
	for (unsigned int i = 0; i < n; i++) {
		struct forward *f = engine_forward_find_spec(eng, canon[i]);
		char aerr[256];

		if (!f) {
			ret = engine_forward_add(eng, canon[i], FWD_FILE, &f, aerr, sizeof(aerr));
			if (ret && ret != -EEXIST) {
				if (strict) {
					snprintf(err, errlen, "%s", aerr);
					return ret;
				}
				pr_warn(MOD, "%s", aerr);
				continue;
			}
			ret = 0;
		}
		if (f) {
			keep[f->slot] = true;
		}
	}
	/* Pass 3: file forwards no longer listed go away; their flows continue. */
	for (uint32_t s = 0; s < FWD_MAX; s++) {
		struct forward *f = eng->fwd[s];

		if (f && f->origin == FWD_FILE && !keep[s]) {
			engine_forward_rm(eng, f->id);
		}
	}
	return 0;
}
