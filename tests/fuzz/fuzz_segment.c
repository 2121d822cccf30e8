/* fuzz_segment.c: hostile segment images through open, snapshot, check and read. See LICENSE. */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dh.h"
#include "dh_impl.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
exercise(const char *name)
{
	struct dh_block *b;
	struct dh_reader *r;
	struct dh_report rep;
	struct dh_snapshot *s;
	struct dh_msg m;

	if (dh_block_open(name, DH_OPEN_RDONLY, &b) == 0) {
		if ((s = malloc(sizeof *s))) {
			dh_block_snapshot(b, s);
			free(s);
		}
		if (dh_check_run(b, 0, 1000000000ull, &rep) == 0)
			dh_report_free(&rep);
		dh_block_close(b);
	}
	if (dh_block_open(name, 0, &b) == 0) {
		char buf[256];
		dh_meta_read(b, buf, sizeof buf);
		if (dh_check_run(b, DH_CHECK_REPAIR | DH_CHECK_FORCE, 0, &rep) == 0)
			dh_report_free(&rep);
		dh_block_close(b);
	}
	if (dh_reader_open(name, NULL, &r) == 0) {
		for (int i = 0; i < 64; i++) {
			int rc = dh_reader_next(r, &m, 0);
			if (rc != 0 && rc != -DH_ECHECKSUM)
				break;
		}
		dh_reader_close(r);
	}
}

/*
 * Two shapes of input.  First byte even: the rest is the whole segment
 * file, raw.  Odd: a valid segment of a geometry chosen by the next bytes,
 * written to a little, then patched by (offset, byte) pairs: that reaches
 * the checks past header validation, which random files rarely do.
 */
int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char name[64], path[80];
	int fd;

	if (size < 1)
		return 0;
	snprintf(name, sizeof name, "dhtest-fuzz-%d", (int)getpid());
	snprintf(path, sizeof path, "/dh.%s", name);
	shm_unlink(path);
	if (!(data[0] & 1)) {
		/* An all-zero magic makes open wait for a creator to publish
		 * (half a second): unit-tested, and too slow to fuzz. */
		if (size >= 5 && !data[1] && !data[2] && !data[3] && !data[4])
			return 0;
		fd = shm_open(path, O_RDWR | O_CREAT | O_EXCL, 0600);
		if (fd < 0)
			return 0;
		if (write(fd, data + 1, size - 1) < 0) {
			/* nothing: an empty or short file is a case too */
		}
		close(fd);
	} else {
		struct dh_config c;
		struct dh_writer *w;
		const uint8_t *p = data + 1;
		size_t n = size - 1;

		if (n < 4)
			return 0;
		dh_config_init(&c);
		c.slots = 1 + p[0] % 8;
		c.slot_size = 1 + p[1] % 200;
		c.policy = (enum dh_policy)(p[2] % 4);
		c.checksum = (enum dh_checksum)(p[3] % 3);
		c.max_readers = 1 + p[3] / 64;
		c.meta_size = (p[2] & 0x80) ? 64 : 0;
		p += 4;
		n -= 4;
		if (dh_block_create(name, &c) < 0)
			return 0;
		if (dh_writer_open(name, "fuzz", &w, NULL) == 0) {
			for (unsigned i = 0; i < c.slots + 2u; i++)
				dh_writer_write(w, "0123456789abcdef", c.slot_size < 16 ? c.slot_size : 16, 0);
			dh_writer_close(w);
		}
		fd = shm_open(path, O_RDWR, 0);
		if (fd >= 0) {
			struct stat st;
			unsigned char *m;
			if (fstat(fd, &st) == 0 && st.st_size > 0 &&
			    (m = mmap(NULL, (size_t)st.st_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0)) != MAP_FAILED) {
				for (size_t i = 0; i + 3 <= n; i += 3) {
					size_t off = ((size_t)p[i] << 8 | p[i + 1]) % (size_t)st.st_size;
					m[off] = p[i + 2];
				}
				munmap(m, (size_t)st.st_size);
			}
			close(fd);
		}
	}
	exercise(name);
	shm_unlink(path);
	return 0;
}
