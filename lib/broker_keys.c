/* broker_keys.c: CURVE key files: load, derive, generate, and the allow-list of client keys. See LICENSE. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>
#include <zmq.h>

#include "broker_impl.h"
#include "dh_broker.h"
#include "dh_error.h"

#define ALLOW_SCAN_MAX 100000

int
dh__broker_z85_ok(const char *s, size_t len, uint8_t out[32])
{
	char buf[DH_BROKER_Z85_LEN + 1];
	uint8_t tmp[32];

	if (len != DH_BROKER_Z85_LEN)
		return 0;
	memcpy(buf, s, len);
	buf[len] = '\0';
	if (zmq_z85_decode(out ? out : tmp, buf) == NULL)
		return 0;
	sodium_memzero(tmp, sizeof tmp);
	return 1;
}

/* Read a key from fd into z85: 40 characters, then only whitespace. */
static int
read_key(int fd, char z85[DH_BROKER_Z85_LEN + 1], uint8_t raw[32])
{
	char buf[128];
	ssize_t n;
	size_t len = 0;
	int r = -EINVAL;

	while (len < sizeof buf && (n = read(fd, buf + len, sizeof buf - len)) != 0) {
		if (n < 0) {
			if (errno == EINTR)
				continue;
			r = -errno;
			goto out;
		}
		len += (size_t)n;
	}
	if (len == sizeof buf)
		goto out;
	while (len > 0 && (buf[len - 1] == '\n' || buf[len - 1] == '\r' || buf[len - 1] == ' ' ||
			   buf[len - 1] == '\t'))
		len--;
	if (!dh__broker_z85_ok(buf, len, raw))
		goto out;
	memcpy(z85, buf, DH_BROKER_Z85_LEN);
	z85[DH_BROKER_Z85_LEN] = '\0';
	r = 0;
out:
	sodium_memzero(buf, sizeof buf);
	return r;
}

int
dh_broker_key_load(const char *path, int secret, char z85[DH_BROKER_Z85_LEN + 1])
{
	struct stat st;
	int fd, r;

	fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | (secret ? O_NOFOLLOW : 0));
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0)
		r = -errno;
	else if (!S_ISREG(st.st_mode))
		r = secret ? -DH_EKEYMODE : -EINVAL;
	else if (secret && (st.st_uid != geteuid() || (st.st_mode & 077)))
		r = -DH_EKEYMODE;
	else
		r = read_key(fd, z85, NULL);
	close(fd);
	return r;
}

int
dh_broker_key_public(const char *secret_z85, char public_z85[DH_BROKER_Z85_LEN + 1])
{
	if (secret_z85 == NULL || !dh__broker_z85_ok(secret_z85, strlen(secret_z85), NULL))
		return -EINVAL;
	if (zmq_curve_public(public_z85, secret_z85) < 0)
		return errno == ENOTSUP ? -ENOTSUP : -EINVAL;
	return 0;
}

static int
write_keyfile(int dirfd, const char *name, const char *z85)
{
	char buf[DH_BROKER_Z85_LEN + 1];
	int fd, r = 0;
	ssize_t n;

	fd = openat(dirfd, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	memcpy(buf, z85, DH_BROKER_Z85_LEN);
	buf[DH_BROKER_Z85_LEN] = '\n';
	if (fchmod(fd, 0600) < 0)
		r = -errno;
	else if ((n = write(fd, buf, sizeof buf)) != (ssize_t)sizeof buf)
		r = n < 0 ? -errno : -EIO;
	else if (fsync(fd) < 0)
		r = -errno;
	sodium_memzero(buf, sizeof buf);
	if (close(fd) < 0 && r == 0)
		r = -errno;
	if (r < 0)
		unlinkat(dirfd, name, 0);
	return r;
}

int
dh_broker_keygen(const char *dir)
{
	char bpub[41], bsec[41], cpub[41], csec[41];
	struct stat st;
	int dfd = -1, cfd = -1, made_dir = 0, made_clients = 0, r;
	const char *done[5];
	int ndone = 0, where[5];

	if (!zmq_has("curve"))
		return -ENOTSUP;
	if (mkdir(dir, 0700) == 0)
		made_dir = 1;
	else if (errno != EEXIST)
		return -errno;
	dfd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (dfd < 0) {
		r = -errno;
		goto fail;
	}
	if (fstat(dfd, &st) < 0) {
		r = -errno;
		goto fail;
	}
	if (st.st_uid != geteuid()) {
		r = -EPERM;
		goto fail;
	}
	if (made_dir && fchmod(dfd, 0700) < 0) {
		r = -errno;
		goto fail;
	}
	if (mkdirat(dfd, "clients", 0700) < 0) {
		r = -errno;
		goto fail;
	}
	made_clients = 1;
	cfd = openat(dfd, "clients", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (cfd < 0 || fchmod(cfd, 0700) < 0) {
		r = -errno;
		goto fail;
	}
	if (zmq_curve_keypair(bpub, bsec) < 0 || zmq_curve_keypair(cpub, csec) < 0) {
		r = -errno;
		goto fail;
	}
#define PUT(fd, name, key)                                   \
	do {                                                 \
		if ((r = write_keyfile(fd, name, key)) < 0)  \
			goto fail;                           \
		where[ndone] = fd;                           \
		done[ndone++] = name;                        \
	} while (0)
	PUT(dfd, "broker.key", bsec);
	PUT(dfd, "broker.pub", bpub);
	PUT(dfd, "client.key", csec);
	PUT(cfd, "client.pub", cpub);
#undef PUT
	r = 0;
	goto out;
fail:
	while (ndone-- > 0)
		unlinkat(where[ndone], done[ndone], 0);
	if (made_clients && dfd >= 0)
		unlinkat(dfd, "clients", AT_REMOVEDIR);
	if (made_dir)
		rmdir(dir);
out:
	sodium_memzero(bsec, sizeof bsec);
	sodium_memzero(csec, sizeof csec);
	if (cfd >= 0)
		close(cfd);
	if (dfd >= 0)
		close(dfd);
	return r;
}

int
dh_broker_allowed(const char *clients_dir, const uint8_t key[32], char *name, size_t cap)
{
	DIR *d;
	struct dirent *e;
	int found = 0, scanned = 0;

	if ((d = opendir(clients_dir)) == NULL)
		return -errno;
	while (!found && scanned++ < ALLOW_SCAN_MAX && (e = readdir(d)) != NULL) {
		size_t len = strlen(e->d_name);
		char z85[DH_BROKER_Z85_LEN + 1];
		uint8_t raw[32];
		struct stat st;
		int fd;

		if (e->d_name[0] == '.' || len < 5 || strcmp(e->d_name + len - 4, ".pub") != 0)
			continue;
		fd = openat(dirfd(d), e->d_name, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOFOLLOW);
		if (fd < 0)
			continue;
		if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && read_key(fd, z85, raw) == 0 &&
		    sodium_memcmp(raw, key, 32) == 0) {
			found = 1;
			if (name && cap > 0)
				snprintf(name, cap, "%.*s", (int)(len - 4), e->d_name);
		}
		close(fd);
	}
	closedir(d);
	return found;
}
