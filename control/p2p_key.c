// SPDX-License-Identifier: MIT
/* natxd's libp2p identity file (see p2p_key.h). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "natx/err.h"
#include "p2p/peerid.h"
#include "p2p_key.h"

enum { P2P_KEY_READ_MAX = 4096 };

/* p2p_key_load - parse the existing file @fd into @idn. */
static int p2p_key_load(int fd, struct p2p_identity *idn, const char *path, char *err,
			size_t errlen)
{
	uint8_t buf[P2P_KEY_READ_MAX];
	struct stat st;
	ssize_t n;
	int ret;

	if (fstat(fd, &st)) {
		ret = -errno;
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return ret;
	}
	if (st.st_mode & 077) {
		snprintf(err, errlen, "%s: mode %03o, must not be readable by group or others",
			 path, (unsigned)(st.st_mode & 0777));
		return -EPERM;
	}
	n = read(fd, buf, sizeof(buf));
	if (n < 0) {
		ret = -errno;
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return ret;
	}
	ret = p2p_identity_from_privkey(idn, buf, (size_t)n);
	memset(buf, 0, sizeof(buf));
	if (ret) {
		snprintf(err, errlen, "%s: not an Ed25519 libp2p private key (%s)", path,
			 natx_strerror(ret));
	}
	return ret;
}

/* p2p_key_create - write a new identity to @path atomically, mode 0600. */
static int p2p_key_create(struct p2p_identity *idn, const char *path, char *err, size_t errlen)
{
	uint8_t pk[P2P_PRIVKEY_ED25519_LEN];
	char tmp[4096];
	ssize_t n;
	int fd, ret;

	ret = p2p_identity_generate(idn);
	if (ret) {
		snprintf(err, errlen, "cannot generate a libp2p key: %s", natx_strerror(ret));
		return ret;
	}
	if ((size_t)snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= sizeof(tmp)) {
		snprintf(err, errlen, "%s: path too long", path);
		return -ENAMETOOLONG;
	}
	unlink(tmp);
	fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0) {
		ret = -errno;
		snprintf(err, errlen, "%s: %s", tmp, strerror(errno));
		return ret;
	}
	p2p_identity_to_privkey(idn, pk);
	n = write(fd, pk, sizeof(pk));
	memset(pk, 0, sizeof(pk));
	ret = n == (ssize_t)sizeof(pk) ? 0 : n < 0 ? -errno : -EIO;
	if (!ret && fsync(fd)) {
		ret = -errno;
	}
	close(fd);
	if (!ret && rename(tmp, path)) {
		ret = -errno;
	}
	if (ret) {
		unlink(tmp);
		snprintf(err, errlen, "%s: %s", path, strerror(-ret));
	}
	return ret;
}

int p2p_key_ensure(const char *path, char *peer, char *err, size_t errlen)
{
	struct p2p_identity idn = { 0 };
	int fd, ret;

	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd >= 0) {
		ret = p2p_key_load(fd, &idn, path, err, errlen);
		close(fd);
	} else if (errno == ENOENT) {
		ret = p2p_key_create(&idn, path, err, errlen);
	} else {
		ret = -errno;
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
	}
	if (!ret) {
		peerid_to_text(&idn.id, peer, P2P_KEY_PEER_MAX);
	}
	p2p_identity_cleanup(&idn);
	return ret;
}
