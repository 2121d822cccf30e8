/* truncmap.c: LD_PRELOAD shim of truncated-mapping.bats: the first shared
 * mapping of a file is truncated to nothing right after it is made, so the
 * next access to it raises SIGBUS, as when a hostile user truncates a
 * segment in use.  Built by the test itself. See LICENSE. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/mman.h>
#include <sys/types.h>
#include <unistd.h>

void *
mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
	static void *(*real)(void *, size_t, int, int, int, off_t);
	static int done;
	void *p;

	if (real == NULL)
		*(void **)&real = dlsym(RTLD_NEXT, "mmap");
	p = real(addr, len, prot, flags, fd, off);
	if (p != MAP_FAILED && fd >= 0 && (flags & MAP_SHARED) && !done) {
		done = 1;
		char path[64];
		int w;

		/* the segment may be open read-only: truncate it through a
		 * writable descriptor of the same file */
		snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
		if ((w = open(path, O_WRONLY)) < 0 || ftruncate(w, 0) < 0)
			_exit(99);
		close(w);
	}
	return p;
}
