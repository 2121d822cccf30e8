/* channels.c: the channels of the channel directory, listed without opening them. See LICENSE. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "dh_block.h"

/* Only a regular file can be a segment; a FIFO or device planted under
 * dh.NAME could block or have side effects when opened, so the kind is
 * told from the directory entry (or lstat when the file system does not
 * say), never by opening it. */
static int
regular(DIR *d, const struct dirent *e)
{
	struct stat st;

	if (e->d_type != DT_UNKNOWN)
		return e->d_type == DT_REG;
	return fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(st.st_mode);
}

static int
by_name(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

void
dh_channel_list_free(char **names)
{
	if (names == NULL)
		return;
	for (size_t i = 0; names[i] != NULL; i++)
		free(names[i]);
	free(names);
}

int
dh_channel_list(char ***out, size_t *count)
{
	const char *dir = dh_block_dir();
	char **v = NULL, **nv;
	size_t n = 0, cap = 0;
	struct dirent *e;
	DIR *d;
	int rc = 0;

	*out = NULL;
	if (count != NULL)
		*count = 0;
	if ((d = opendir(dir)) == NULL)
		return -errno;
	for (;;) {
		errno = 0;
		if ((e = readdir(d)) == NULL) {
			rc = -errno;
			break;
		}
		if (strncmp(e->d_name, "dh.", 3) != 0 || !regular(d, e))
			continue;
		if (n + 1 >= cap) {
			cap = cap ? cap * 2 : 32;
			if ((nv = realloc(v, cap * sizeof *v)) == NULL) {
				rc = -ENOMEM;
				break;
			}
			v = nv;
		}
		if ((v[n] = strdup(e->d_name + 3)) == NULL) {
			rc = -ENOMEM;
			break;
		}
		v[++n] = NULL;
	}
	closedir(d);
	if (rc == 0 && v == NULL && (v = calloc(1, sizeof *v)) == NULL)
		rc = -ENOMEM;
	if (rc < 0) {
		if (v != NULL)
			v[n] = NULL;
		dh_channel_list_free(v);
		return rc;
	}
	qsort(v, n, sizeof *v, by_name);
	*out = v;
	if (count != NULL)
		*count = n;
	return 0;
}
