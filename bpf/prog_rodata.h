/* SPDX-License-Identifier: MIT */
/*
 * Reading back the tunables of a program that is already running (attached by an earlier natxd
 * or natx-bpf), from its .rodata map, so status shows what the kernel really runs.
 */
#ifndef NATX_BPF_PROG_RODATA_H
#define NATX_BPF_PROG_RODATA_H

#include <stddef.h>
#include <stdint.h>

/*
 * bpf_prog_rodata_read - copy the first @len bytes of program @prog_id's .rodata map value into
 * @out (the skeleton's rodata struct). Returns 0, -ENOENT when the program has no .rodata map
 * of at least @len bytes, or -errno.
 */
int bpf_prog_rodata_read(uint32_t prog_id, void *out, size_t len);

#endif
