/* test_channels.c: the channel listing (lib/channels.c). See LICENSE. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dh.h"
#include "tap.h"

static char dir[] = "/tmp/dhtest-channels-XXXXXX";

static void
touch(const char *name)
{
	char path[512];
	int fd;

	snprintf(path, sizeof path, "%s/%s", dir, name);
	if ((fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600)) >= 0)
		close(fd);
}

static void
cleanup(void)
{
	static const char *const names[] = { "dh.b", "dh.a", "dh.", "dh.fifo", "dh.link", "dh.dir", "other",
					     "dh.c d" };
	char path[512];

	for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
		snprintf(path, sizeof path, "%s/%s", dir, names[i]);
		if (unlink(path) < 0 && errno == EISDIR)
			rmdir(path);
		rmdir(path);
	}
	rmdir(dir);
}

int
main(void)
{
	char path[512], **v = NULL;
	size_t n = 99;
	int rc;

	plan(7);
	if (mkdtemp(dir) == NULL) {
		fail_rest(7, "mkdtemp");
		return done();
	}
	atexit(cleanup);
	setenv("DH_SHM_DIR", dir, 1);

	rc = dh_channel_list(&v, &n);
	ok(rc == 0 && v != NULL && v[0] == NULL && n == 0, "an empty directory lists no channel (rc %d)", rc);
	dh_channel_list_free(v);

	touch("dh.b");
	touch("dh.a");
	touch("dh.");
	touch("other");
	touch("dh.c d");
	snprintf(path, sizeof path, "%s/dh.fifo", dir);
	mkfifo(path, 0600);
	snprintf(path, sizeof path, "%s/dh.link", dir);
	if (symlink("dh.a", path) < 0)
		diag("symlink: %s", strerror(errno));
	snprintf(path, sizeof path, "%s/dh.dir", dir);
	mkdir(path, 0700);

	rc = dh_channel_list(&v, &n);
	ok(rc == 0 && n == 4, "DH_SHM_DIR: only the dh.* regular files are listed (rc %d, %zu names)", rc, n);
	ok(rc == 0 && n == 4 && strcmp(v[0], "") == 0 && strcmp(v[1], "a") == 0 && strcmp(v[2], "b") == 0 &&
		   strcmp(v[3], "c d") == 0,
	   "sorted, names as found (a bare dh. and a foreign name included for the caller to judge)");
	ok(rc == 0 && v[n] == NULL, "the vector is NULL-terminated");
	dh_channel_list_free(v);

	ok(dh_channel_list(&v, NULL) == 0 && v != NULL, "count may be NULL");
	dh_channel_list_free(v);

	setenv("DH_SHM_DIR", "/nonexistent-dhtest-dir", 1);
	v = (char **)1;
	rc = dh_channel_list(&v, &n);
	ok(rc == -ENOENT && v == NULL, "a missing directory is -ENOENT and no vector (rc %d)", rc);
	dh_channel_list_free(NULL);
	ok(1, "dh_channel_list_free(NULL) is a no-op");
	return done();
}
