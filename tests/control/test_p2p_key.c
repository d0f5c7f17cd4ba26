// SPDX-License-Identifier: MIT
/* natxd's libp2p identity file and the libp2p adapter's target check. */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "adapter_p2p.h"
#include "natx/err.h"
#include "p2p_key.h"

static char dir[64], path[128];

static void key_setup(void)
{
	snprintf(dir, sizeof(dir), "/tmp/p2pw-key.XXXXXX");
	cr_assert_not_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/libp2p.key", dir);
}

static void key_teardown(void)
{
	char tmp[160];

	unlink(path);
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	unlink(tmp);
	rmdir(dir);
}

TestSuite(p2p_key, .init = key_setup, .fini = key_teardown, .timeout = 10);

Test(p2p_key, created_once_mode_0600_then_reused)
{
	char a[P2P_KEY_PEER_MAX], b[P2P_KEY_PEER_MAX], err[256];
	struct stat st;

	cr_assert_eq(p2p_key_ensure(path, a, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(strncmp(a, "12D3KooW", 8), 0, "%s", a);
	cr_assert_eq(stat(path, &st), 0);
	cr_assert_eq(st.st_mode & 0777, 0600);
	cr_assert_eq(st.st_size, 68);
	cr_assert_eq(p2p_key_ensure(path, b, err, sizeof(err)), 0, "%s", err);
	cr_assert_str_eq(a, b, "the peer ID must survive a restart");
}

Test(p2p_key, loose_mode_and_corruption_refused)
{
	char peer[P2P_KEY_PEER_MAX], err[256];
	uint8_t buf[68];
	int fd;

	cr_assert_eq(p2p_key_ensure(path, peer, err, sizeof(err)), 0);
	cr_assert_eq(chmod(path, 0644), 0);
	cr_assert_eq(p2p_key_ensure(path, peer, err, sizeof(err)), -EPERM);
	cr_assert(strstr(err, "mode 644"), "%s", err);
	cr_assert_eq(chmod(path, 0600), 0);
	/* flip one byte of the embedded public key: seed and key no longer match */
	fd = open(path, O_RDWR);
	cr_assert_geq(fd, 0);
	cr_assert_eq(read(fd, buf, sizeof(buf)), 68);
	buf[67] ^= 1;
	cr_assert_eq(pwrite(fd, buf, sizeof(buf), 0), 68);
	close(fd);
	cr_assert_eq(p2p_key_ensure(path, peer, err, sizeof(err)), -NATX_E_AUTH, "%s", err);
	/* garbage */
	fd = open(path, O_WRONLY | O_TRUNC);
	cr_assert_eq(write(fd, "hello", 5), 5);
	close(fd);
	cr_assert_lt(p2p_key_ensure(path, peer, err, sizeof(err)), 0);
	cr_assert(strstr(err, "not an Ed25519"), "%s", err);
}

Test(p2p_key, adapter_targets)
{
	cr_assert_eq(p2p_target_parse("/ip4/127.0.0.1/tcp/4001/p2p/"
				      "12D3KooWBtg3aaRMjxwedh83aGiUkwSxDwUZkzuJcfaqUmo7R3pq"),
		     0);
	cr_assert_eq(p2p_target_parse("/ip4/127.0.0.1/tcp/4001"), -EINVAL, "needs a peer ID");
	cr_assert_eq(p2p_target_parse("node-1"), -EINVAL);
	cr_assert_eq(p2p_target_parse("/ip4/127.0.0.1/udp/4001/p2p/"
				      "12D3KooWBtg3aaRMjxwedh83aGiUkwSxDwUZkzuJcfaqUmo7R3pq"),
		     -EINVAL, "TCP only");
	cr_assert_eq(p2p_target_parse(""), -EINVAL);
	cr_assert_eq(p2p_target_parse(NULL), -EINVAL);
}
