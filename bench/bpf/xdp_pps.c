// SPDX-License-Identifier: MIT
/*
 * natx-xdp-pps - cost of the XDP STUN reflector program alone: BPF_PROG_TEST_RUN, RUNS
 * times, on a Binding request frame (IPv4 and IPv6, with and without FINGERPRINT), printing
 * the kernel-measured average ns per run and the packets per second one core would sustain if
 * the program were the only cost (no driver, no wire). Root (CAP_BPF) only.
 *   natx-xdp-pps [RUNS]     (default 200000 runs per case)
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "loader.h"
#include "stun_msg.h"
#include "stun_reflect.skel.h"

static size_t frame_build(uint8_t *f, int v6, int fp)
{
	static const uint8_t txid[STUN_TXID_LEN] = { 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12 };
	size_t l4 = v6 ? 54 : 34, n;

	memset(f, 0, 256);
	memcpy(f, "\x02\0\0\0\0\x02\x02\0\0\0\0\x01", 12);
	f[12] = v6 ? 0x86 : 0x08;
	f[13] = v6 ? 0xdd : 0x00;
	stun_binding_request_build(f + l4 + 8, 64, &n, txid, fp);
	if (v6) {
		f[14] = 0x60;
		f[19] = (uint8_t)(8 + n);
		f[20] = 17;
		f[21] = 64;
		f[22] = 0x20, f[23] = 0x01, f[37] = 7;
		f[38] = 0x20, f[39] = 0x01, f[53] = 1;
		f[l4 + 7] = 1; /* any non-zero UDP checksum: the program does not verify it */
	} else {
		uint32_t s = 0;

		f[14] = 0x45;
		f[17] = (uint8_t)(28 + n);
		f[22] = 64;
		f[23] = 17;
		memcpy(f + 26, "\xc6\x33\x64\x07\xcb\x00\x71\x01", 8);
		for (int i = 0; i < 20; i += 2) {
			s += (uint32_t)(f[14 + i] << 8 | f[15 + i]);
		}
		s = (s & 0xffff) + (s >> 16);
		s = (s & 0xffff) + (s >> 16);
		f[24] = (uint8_t)(~s >> 8);
		f[25] = (uint8_t)~s;
	}
	f[l4] = 0x9c, f[l4 + 1] = 0x40; /* 40000 */
	f[l4 + 2] = 0x0d, f[l4 + 3] = 0x96; /* 3478 */
	f[l4 + 5] = (uint8_t)(8 + n);
	return l4 + 8 + n;
}

int main(int argc, char **argv)
{
	uint32_t repeat = argc > 1 ? (uint32_t)strtoul(argv[1], NULL, 10) : 200000;
	struct stun_reflect_bpf *skel;
	struct natx_bpf_cfg cfg;
	uint8_t in[256], out[512];
	int err;

	natx_bpf_cfg_init(&cfg, "bench");
	skel = stun_reflect_bpf__open();
	if (!skel || natx_bpf_skel_configure(skel, &cfg) || (err = stun_reflect_bpf__load(skel))) {
		fprintf(stderr, "natx-xdp-pps: cannot load the reflector (root needed)\n");
		return 77;
	}
	for (int v6 = 0; v6 < 2; v6++) {
		for (int fp = 0; fp < 2; fp++) {
			size_t len = frame_build(in, v6, fp);
			uint64_t total = 0;

			/*
			 * repeat=1 per call: with repeat>1 the kernel runs the program again on the
			 * frame it just rewrote (now a response, which passes). duration is measured
			 * in the kernel around the program run only, so syscall cost is excluded.
			 */
			for (uint32_t r = 0; r < repeat; r++) {
				LIBBPF_OPTS(bpf_test_run_opts, o, .data_in = in,
					    .data_size_in = (uint32_t)len, .data_out = out,
					    .data_size_out = sizeof(out), .repeat = 1);

				err = bpf_prog_test_run_opts(
					bpf_program__fd(skel->progs.natx_stun_reflect), &o);
				if (err || o.retval != XDP_TX) {
					fprintf(stderr,
						"natx-xdp-pps: run failed (%d, verdict %u)\n", err,
						o.retval);
					return 1;
				}
				total += o.duration;
			}
			printf("xdp program %s%s: %.0f ns/packet, %.2f Mpps/core (program only)\n",
			       v6 ? "IPv6" : "IPv4", fp ? " +FINGERPRINT" : "",
			       (double)total / repeat,
			       total ? 1000.0 * repeat / (double)total : 0.0);
		}
	}
	stun_reflect_bpf__destroy(skel);
	return 0;
}
