// SPDX-License-Identifier: MIT
/* Leveled, filtered logging shared by every natx program (see include/natx/log.h). */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "natx/log.h"

enum { LOG_RULES_MAX = 16, LOG_MODULE_MAX = 32 };

struct log_rule {
	char module[LOG_MODULE_MAX]; /* "" matches every module */
	enum log_level level;
};

static struct log_rule log_rules[LOG_RULES_MAX];
static int log_nrules;
static enum log_level log_default = LOG_INFO;

static const char *const log_names[] = {
	[LOG_OFF] = "off",   [LOG_ERROR] = "error", [LOG_WARN] = "warn",
	[LOG_INFO] = "info", [LOG_DEBUG] = "debug", [LOG_TRACE] = "trace",
};

static int log_level_parse(const char *s, size_t len, enum log_level *out)
{
	for (size_t i = 0; i < sizeof(log_names) / sizeof(log_names[0]); i++) {
		if (strlen(log_names[i]) == len && !strncasecmp(s, log_names[i], len)) {
			*out = (enum log_level)i;
			return 0;
		}
	}
	return -EINVAL;
}

int log_filter_set(const char *spec)
{
	struct log_rule rules[LOG_RULES_MAX];
	enum log_level def = LOG_INFO;
	int n = 0;

	while (spec && *spec) {
		const char *end = strchrnul(spec, ',');
		const char *eq = memchr(spec, '=', (size_t)(end - spec));
		enum log_level lvl;

		if (end == spec) {
			spec++;
			continue;
		}
		if (!eq) {
			if (log_level_parse(spec, (size_t)(end - spec), &lvl)) {
				return -EINVAL;
			}
			def = lvl;
		} else {
			size_t mlen = (size_t)(eq - spec);

			if (!mlen || mlen >= LOG_MODULE_MAX || n == LOG_RULES_MAX ||
			    log_level_parse(eq + 1, (size_t)(end - eq - 1), &lvl)) {
				return -EINVAL;
			}
			memcpy(rules[n].module, spec, mlen);
			rules[n].module[mlen] = '\0';
			rules[n].level = lvl;
			n++;
		}
		spec = *end ? end + 1 : end;
	}
	memcpy(log_rules, rules, sizeof(rules[0]) * (size_t)n);
	log_nrules = n;
	log_default = def;
	return 0;
}

bool log_enabled(const char *module, enum log_level level)
{
	for (int i = 0; i < log_nrules; i++) {
		if (!strcmp(log_rules[i].module, module)) {
			return level <= log_rules[i].level;
		}
	}
	return level <= log_default;
}

void log_write(const char *module, enum log_level level, const char *fmt, ...)
{
	char line[1024];
	struct timespec ts;
	struct tm tm;
	va_list ap;
	int n;

	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	n = snprintf(line, sizeof(line),
		     "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %-5s %s: ", tm.tm_year + 1900,
		     tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
		     ts.tv_nsec / 1000000, log_names[level], module);
	va_start(ap, fmt);
	if (n > 0 && (size_t)n < sizeof(line)) {
		vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);
	}
	va_end(ap);
	/* One write per line so lines from several threads never interleave. */
	fprintf(stderr, "%s\n", line);
}
