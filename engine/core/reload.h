/* SPDX-License-Identifier: MIT */
/*
 * --forwards-file: one SPEC per line, '#' starts a comment, blank lines ignored. Loaded at
 * start and again on SIGHUP: forwards that came from the file and are no longer listed are
 * removed (their open flows continue), new lines are added; forwards from --forward or the
 * control socket are never touched by a reload.
 */
#ifndef NATX_ENGINE_RELOAD_H
#define NATX_ENGINE_RELOAD_H

#include <stdbool.h>

#include "engine.h"

/*
 * reload_forwards_file - apply @path to @eng. With @strict (start-up) the first bad line
 * fails the whole load with -errno and a one-line reason in @err; otherwise bad lines are
 * logged and skipped. Returns 0 or -errno.
 */
int reload_forwards_file(struct engine *eng, const char *path, bool strict, char *err,
			 size_t errlen);

#endif
