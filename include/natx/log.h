/* SPDX-License-Identifier: MIT */
/*
 * Leveled logging, one line per event, filtered by NATX_LOG.
 *
 * NATX_LOG is a comma-separated list of "LEVEL" or "MODULE=LEVEL" items, in the spirit of
 * RUST_LOG: "info", "debug", "warn,engine=debug". Levels: error, warn, info, debug, trace,
 * off. A module is the string given to pr_*() as its first argument.
 */
#ifndef NATX_LOG_H
#define NATX_LOG_H

#include <stdbool.h>

enum log_level {
	LOG_OFF = 0,
	LOG_ERROR,
	LOG_WARN,
	LOG_INFO,
	LOG_DEBUG,
	LOG_TRACE,
};

/*
 * log_filter_set - install a NATX_LOG-style filter. Returns 0, or -EINVAL (filter unchanged)
 * when an item names an unknown level. NULL or "" selects the default, "info".
 */
int log_filter_set(const char *spec);

/* log_enabled - true when a line of @level from @module would be printed. */
bool log_enabled(const char *module, enum log_level level);

/* log_write - print one line to stderr with time, level and module. Use the pr_* macros. */
void log_write(const char *module, enum log_level level, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

#define pr_log(mod, lvl, ...)                             \
	do {                                              \
		if (log_enabled(mod, lvl)) {              \
			log_write(mod, lvl, __VA_ARGS__); \
		}                                         \
	} while (0)
#define pr_err(mod, ...) pr_log(mod, LOG_ERROR, __VA_ARGS__)
#define pr_warn(mod, ...) pr_log(mod, LOG_WARN, __VA_ARGS__)
#define pr_info(mod, ...) pr_log(mod, LOG_INFO, __VA_ARGS__)
#define pr_debug(mod, ...) pr_log(mod, LOG_DEBUG, __VA_ARGS__)
#define pr_trace(mod, ...) pr_log(mod, LOG_TRACE, __VA_ARGS__)

#endif
