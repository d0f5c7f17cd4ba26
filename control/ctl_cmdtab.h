/* SPDX-License-Identifier: MIT */
/*
 * The control command table (style.md rule 16): one row per command with its natxctl words,
 * wire name, usage and help. natxd binds handlers to the rows by name (ctl_cmds.c) and refuses
 * to start if a row has no handler; natxctl builds its help and argument parsing from the rows.
 */
#ifndef NATX_CTL_CMDTAB_H
#define NATX_CTL_CMDTAB_H

#include <stdbool.h>

struct ctl_cmd {
	const char *words; /* natxctl words, e.g. "forward add" */
	const char *name; /* "cmd" on the wire, e.g. "forward.add" */
	const char *usage; /* arguments after the words, "" when none */
	const char *help; /* one-line description */
	const char *
		arg; /* JSON keys of the positional arguments in order (space separated), or NULL */
	bool mutating; /* needs a privileged caller (SO_PEERCRED) */
};

/* ctl_cmd_table - the rows, terminated by a row with words NULL. */
extern const struct ctl_cmd ctl_cmd_table[];

/* ctl_cmd_by_name - the row with wire name @name, or NULL. */
const struct ctl_cmd *ctl_cmd_by_name(const char *name);

#endif
