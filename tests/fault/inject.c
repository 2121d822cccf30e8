/* inject.c: LD_PRELOAD shim failing the Nth call of one function, counting
 * only calls made from the main program (libdh is linked into it), never
 * libc's own internal calls, and only once the program has set
 * FAULT_ARMED in its environment (after its warm-up).  FAULT_FUNC names the function, FAULT_N the
 * call to fail (1-based); FAULT_HIT, if set, is a file created when the
 * fault fired, so a driver loop knows when N ran past the last call.
 * See LICENSE. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <link.h>
#include <stdint.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/types.h>
#include <unistd.h>

static int
first_object(struct dl_phdr_info *info, size_t size, void *data)
{
	(void)size;
	*(void **)data = (void *)info->dlpi_addr;
	return 1; /* the main program comes first */
}

static int
from_program(void *ret)
{
	static void *main_base;
	static int known;
	Dl_info at;

	if (!known) {
		dl_iterate_phdr(first_object, &main_base);
		known = 1;
	}
	return dladdr(ret, &at) && at.dli_fbase == main_base;
}

/*
 * Blocks the program allocated and has not freed yet, so a driver can
 * check for leaks exactly (malloc statistics count cached free chunks as
 * in use).  Open addressing; a full table just stops tracking.
 */
#define LIVE_SLOTS 65536
static void *live[LIVE_SLOTS];
static long live_count;

static void
track(void *p)
{
	size_t h = ((uintptr_t)p >> 4) % LIVE_SLOTS;

	for (size_t i = 0; i < LIVE_SLOTS; i++, h = (h + 1) % LIVE_SLOTS)
		if (!live[h] || live[h] == (void *)1) {
			live[h] = p;
			live_count++;
			return;
		}
}

static void
untrack(void *p)
{
	size_t h = ((uintptr_t)p >> 4) % LIVE_SLOTS;

	for (size_t i = 0; i < LIVE_SLOTS && live[h]; i++, h = (h + 1) % LIVE_SLOTS)
		if (live[h] == p) {
			live[h] = (void *)1; /* tombstone */
			live_count--;
			return;
		}
}

long fault_live_blocks(void);

long
fault_live_blocks(void)
{
	return live_count;
}

/* 1 if this call (of fn, made from the program) is the one to fail. */
static int
should_fail(const char *fn, void *ret)
{
	static long count;
	static int fired;
	const char *want = getenv("FAULT_FUNC"), *n = getenv("FAULT_N"), *hit;

	if (fired || !want || !n || strcmp(want, fn) != 0 || !getenv("FAULT_ARMED") || !from_program(ret))
		return 0;
	if (++count != atol(n))
		return 0;
	fired = 1;
	if ((hit = getenv("FAULT_HIT"))) {
		static int (*real_open)(const char *, int, ...);
		if (!real_open)
			real_open = (int (*)(const char *, int, ...))dlsym(RTLD_NEXT, "open");
		int fd = real_open(hit, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
		if (fd >= 0)
			close(fd);
	}
	return 1;
}

#define REAL(name) static __typeof__(&name) real_##name; if (!real_##name) real_##name = (__typeof__(&name))dlsym(RTLD_NEXT, #name)

void *malloc(size_t n);
void *calloc(size_t a, size_t b);
void *realloc(void *p, size_t n);

/* dlsym itself may calloc: serve that from a small static pool. */
static char pool[4096];
static size_t pool_used;
static int in_dlsym;

void *
malloc(size_t n)
{
	static void *(*real)(size_t);
	if (!real) {
		in_dlsym = 1;
		real = (void *(*)(size_t))dlsym(RTLD_NEXT, "malloc");
		in_dlsym = 0;
	}
	void *ret = __builtin_return_address(0), *p;
	if (should_fail("malloc", ret)) {
		errno = ENOMEM;
		return NULL;
	}
	p = real(n);
	if (p && from_program(ret))
		track(p);
	return p;
}

void *
calloc(size_t a, size_t b)
{
	static void *(*real)(size_t, size_t);
	if (!real) {
		if (in_dlsym) {
			size_t need = (a * b + 15) & ~(size_t)15;
			if (pool_used + need > sizeof pool)
				return NULL;
			void *p = pool + pool_used;
			pool_used += need;
			return p; /* zeroed: static storage */
		}
		in_dlsym = 1;
		real = (void *(*)(size_t, size_t))dlsym(RTLD_NEXT, "calloc");
		in_dlsym = 0;
	}
	void *ret = __builtin_return_address(0), *p;
	if (should_fail("calloc", ret)) {
		errno = ENOMEM;
		return NULL;
	}
	p = real(a, b);
	if (p && from_program(ret))
		track(p);
	return p;
}

void free(void *p);

void
free(void *p)
{
	static void (*real)(void *);

	if ((char *)p >= pool && (char *)p < pool + sizeof pool)
		return;
	if (!real)
		real = (void (*)(void *))dlsym(RTLD_NEXT, "free");
	if (p)
		untrack(p);
	real(p);
}

void *
realloc(void *p, size_t n)
{
	REAL(realloc);
	void *ret = __builtin_return_address(0), *q;
	if (should_fail("realloc", ret)) {
		errno = ENOMEM;
		return NULL;
	}
	if ((char *)p >= pool && (char *)p < pool + sizeof pool) {
		/* a block from the bootstrap pool: move it to the real heap */
		size_t have = (size_t)(pool + sizeof pool - (char *)p);
		if ((q = malloc(n)))
			memcpy(q, p, n < have ? n : have);
		return q;
	}
	q = real_realloc(p, n);
	if (q) {
		if (p)
			untrack(p);
		if (from_program(ret))
			track(q);
	}
	return q;
}

/* libdh opens segments with open(2) (O_NONBLOCK | O_NOFOLLOW): fail those,
 * recognised by their dh. file name, not every open libc makes for itself. */
static int
is_segment(const char *path)
{
	const char *slash = strrchr(path, '/');

	return strncmp(slash ? slash + 1 : path, "dh.", 3) == 0;
}

int
open(const char *path, int flags, ...)
{
	mode_t mode = 0;
	va_list ap;

	REAL(open);
	if (flags & (O_CREAT | O_TMPFILE)) {
		va_start(ap, flags);
		mode = (mode_t)va_arg(ap, int);
		va_end(ap);
	}
	if (is_segment(path) && should_fail("open", __builtin_return_address(0))) {
		errno = EMFILE;
		return -1;
	}
	return real_open(path, flags, mode);
}

int open64(const char *path, int flags, ...) __attribute__((alias("open")));

int
ftruncate(int fd, off_t len)
{
	REAL(ftruncate);
	if (should_fail("ftruncate", __builtin_return_address(0))) {
		errno = EIO;
		return -1;
	}
	return real_ftruncate(fd, len);
}

int
posix_fallocate(int fd, off_t off, off_t len)
{
	REAL(posix_fallocate);
	if (should_fail("posix_fallocate", __builtin_return_address(0)))
		return ENOSPC;
	return real_posix_fallocate(fd, off, len);
}

void *
mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
	REAL(mmap);
	if (should_fail("mmap", __builtin_return_address(0))) {
		errno = ENOMEM;
		return MAP_FAILED;
	}
	return real_mmap(addr, len, prot, flags, fd, off);
}

static int
fcntl_common(const char *fn, void *ret, int fd, int cmd, void *arg)
{
	REAL(fcntl);
	if (should_fail(fn, ret)) {
		errno = ENOLCK;
		return -1;
	}
	return real_fcntl(fd, cmd, arg);
}

int
fcntl(int fd, int cmd, ...)
{
	va_list ap;
	void *arg;

	va_start(ap, cmd);
	arg = va_arg(ap, void *);
	va_end(ap);
	return fcntl_common("fcntl", __builtin_return_address(0), fd, cmd, arg);
}

int fcntl64(int fd, int cmd, ...);

int
fcntl64(int fd, int cmd, ...)
{
	va_list ap;
	void *arg;

	va_start(ap, cmd);
	arg = va_arg(ap, void *);
	va_end(ap);
	return fcntl_common("fcntl", __builtin_return_address(0), fd, cmd, arg);
}
