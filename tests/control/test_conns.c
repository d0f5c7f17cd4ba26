// SPDX-License-Identifier: MIT
/* Unit tests of control/conns.c: service names to libp2p protocols. */
#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>

#include "conns.h"

Test(conns, service_names_map_to_protocols)
{
	char p[128];

	cr_assert_eq(conns_protocol("echo", p, sizeof(p)), 0);
	cr_assert_str_eq(p, "/natx/svc/echo/1.0.0");
	cr_assert_eq(conns_protocol("web-1.v2_x", p, sizeof(p)), 0);
	cr_assert_str_eq(p, "/natx/svc/web-1.v2_x/1.0.0");
	cr_assert_eq(conns_protocol("/ipfs/kad/1.0.0", p, sizeof(p)), 0,
		     "a protocol is taken as is");
	cr_assert_str_eq(p, "/ipfs/kad/1.0.0");
}

Test(conns, bad_service_names_are_refused)
{
	char p[128], longname[CONNS_SERVICE_MAX + 1];

	memset(longname, 'a', sizeof(longname) - 1);
	longname[sizeof(longname) - 1] = 0;
	cr_assert_eq(conns_protocol("", p, sizeof(p)), -EINVAL);
	cr_assert_eq(conns_protocol("bad name", p, sizeof(p)), -EINVAL);
	cr_assert_eq(conns_protocol("a/b", p, sizeof(p)), -EINVAL);
	cr_assert_eq(conns_protocol("x\n", p, sizeof(p)), -EINVAL);
	cr_assert_eq(conns_protocol(longname, p, sizeof(p)), -EINVAL);
	cr_assert_eq(conns_protocol("echo", p, 10), -EINVAL, "does not fit: refused, not cut");
}
