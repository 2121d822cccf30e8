/* meta_cli.c: the metadata zone from the command line: dh-write --meta FILE, dh-read --meta. See LICENSE. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "meta_cli.h"

/* Undo an open before refusing an untrusted owner (cli_owner_enforce). */
static void
close_block(void *b)
{
	dh_block_close(b);
}

void
cli_meta_write(const char *name, const char *file, const struct cli_owner *owner)
{
	struct dh_block *b;
	char *data = NULL;
	size_t len = 0, cap = 0;
	/* "-": standard input (issue 17); the caller then writes no data */
	int from_stdin = strcmp(file, "-") == 0;
	int fd = from_stdin ? 0 : open(file, O_RDONLY | O_CLOEXEC), r;

	if (fd < 0)
		cli_diec(EXIT_FAIL, -errno, "%s", file);
	for (;;) {
		ssize_t n;

		if (len == cap) {
			cap = cap ? cap * 2 : 65536;
			if (cap > (size_t)DH_META_MAX + 1)
				cap = (size_t)DH_META_MAX + 1;
			if (len == cap)
				cli_die(EXIT_FAIL, "%s: larger than %u bytes", file, DH_META_MAX);
			if ((data = realloc(data, cap)) == NULL)
				cli_diec(EXIT_FAIL, -ENOMEM, "%s", file);
		}
		n = cli_read_full(fd, data + len, cap - len);
		if (n < 0)
			cli_diec(EXIT_FAIL, (int)n, "%s", file);
		if (n == 0)
			break;
		len += (size_t)n;
	}
	if (!from_stdin)
		close(fd);
	r = dh_block_open(name, 0, &b);
	if (r == 0) {
		cli_owner_enforce(owner, name, b, close_block, b);
		r = dh_meta_write(b, data, len);
		cap = dh_meta_capacity(b);
		dh_block_close(b);
	}
	free(data);
	if (r == -ENOENT)
		cli_die(EXIT_FAIL, "%s: no such channel", name);
	if (r == -ENODEV)
		cli_die(EXIT_FAIL, "%s: channel has no metadata zone (dh-create --meta-size)", name);
	if (r == -EMSGSIZE)
		cli_die(EXIT_FAIL, "%s: %s is %zu bytes, the metadata zone holds %zu", name, file,
			len, cap);
	if (r == -EBUSY)
		cli_die(EXIT_FAIL, "%s: metadata: another update is still in progress", name);
	if (r == -ESTALE)
		cli_die(EXIT_FAIL, "%s: metadata: another update took over; ours was discarded", name);
	if (r < 0)
		cli_diec(EXIT_FAIL, r, "%s: metadata", name);
}

int
cli_meta_print(const char *name, const struct cli_owner *owner)
{
	struct dh_block *b;
	void *buf;
	ssize_t n;
	int r = dh_block_open(name, DH_OPEN_RDONLY, &b);

	if (r == -ENOENT)
		cli_die(EXIT_FAIL, "%s: no such channel", name);
	if (r < 0)
		cli_diec(EXIT_FAIL, r, "%s", name);
	cli_owner_enforce(owner, name, b, close_block, b);
	if ((buf = malloc(dh_meta_capacity(b) + 1)) == NULL)
		cli_diec(EXIT_FAIL, -ENOMEM, "%s", name);
	n = dh_meta_read(b, buf, dh_meta_capacity(b) + 1);
	dh_block_close(b);
	r = n < 0 ? 0 : cli_write_all(1, buf, (size_t)n);
	free(buf);
	if (n == -ENODEV)
		cli_die(EXIT_FAIL, "%s: channel has no metadata zone", name);
	if (n < 0)
		cli_diec(EXIT_FAIL, (int)n, "%s: metadata", name);
	if (r < 0 && r != -EPIPE)
		cli_diec(EXIT_FAIL, r, "write error");
	return r < 0 ? EXIT_FAIL : cli_close_stdout();
}
