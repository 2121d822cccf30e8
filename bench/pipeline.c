/* pipeline.c: case 3, a file through `dh-write | dh-read` vs `cat | cat`. See LICENSE. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "bench.h"
#include "dh_error.h"

#define GIB (1024.0 * 1024.0 * 1024.0)

static char src[256];
static uint64_t src_size;

static const char *
find_cat(void)
{
	static const char *const c[] = { "/usr/bin/cat", "/bin/cat" };

	for (size_t i = 0; i < sizeof c / sizeof *c; i++)
		if (access(c[i], X_OK) == 0)
			return c[i];
	return NULL;
}

/* The source lives in tmpfs when it fits: reading it is a page-cache copy,
 * like a cached file, with no disk writeback running during the timing. */
static int
make_source(uint64_t size)
{
	struct statvfs vfs;
	const char *dir = "/dev/shm";
	unsigned char *buf;
	uint64_t x = 0x9E3779B97F4A7C15ull;
	int fd;

	if (statvfs(dir, &vfs) < 0 || (uint64_t)vfs.f_bavail * vfs.f_frsize < 2 * size)
		dir = "/tmp";
	snprintf(src, sizeof src, "%s/dhbench-%ld-src", dir, (long)getpid());
	register_path(src);
	if ((fd = open(src, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600)) < 0)
		return -errno;
	buf = malloc(1 << 20);
	if (!buf)
		die("out of memory");
	for (uint64_t done = 0; done < size; done += 1 << 20) {
		for (size_t i = 0; i < (1 << 20); i += 8) {   /* xorshift: incompressible, not zeros */
			x ^= x << 13;
			x ^= x >> 7;
			x ^= x << 17;
			memcpy(buf + i, &x, 8);
		}
		if (write_full(fd, buf, 1 << 20) < 0) {
			free(buf);
			close(fd);
			return -errno;
		}
	}
	free(buf);
	close(fd);
	src_size = size;
	return 0;
}

static double
cpu_children(void)
{
	struct rusage ru;

	getrusage(RUSAGE_CHILDREN, &ru);
	return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
	       (double)ru.ru_stime.tv_usec / 1e6;
}

struct prun {
	int kind;
	pid_t p1, p2;
	char name[96];
	double c0;
	uint64_t t0;
	double secs, cpu;
	char why[96];
};

/* kind < 0: cat | cat; else dh-write | dh-read over a channel of that checksum.
 * out_fd: where the last stage writes (/dev/null, or a pipe when verifying). */
static int
pipeline_start(int kind, int out_fd, struct prun *pr)
{
	char wpath[512], rpath[512];
	const char *cat = find_cat();
	int in = open(src, O_RDONLY | O_CLOEXEC), rc;

	memset(pr, 0, sizeof *pr);
	pr->kind = kind;
	if (in < 0) {
		snprintf(pr->why, sizeof pr->why, "open source: %s", strerror(errno));
		return -1;
	}
	if (kind < 0) {
		int p[2];
		char *a1[] = { (char *)cat, NULL }, *a2[] = { (char *)cat, NULL };

		if (pipe2(p, O_CLOEXEC) < 0)
			die("pipe: %s", strerror(errno));
		pr->c0 = cpu_children();
		pr->t0 = now_ns();
		pr->p1 = spawn_exec(B.cpu_a, a1, in, p[1]);
		pr->p2 = spawn_exec(B.cpu_b, a2, p[0], out_fd);
		close(p[0]);
		close(p[1]);
	} else {
		char *aw[] = { wpath, "--wait-readers", "1", pr->name, NULL };
		char *ar[] = { rpath, pr->name, NULL };
		int null = open("/dev/null", O_RDWR | O_CLOEXEC);

		snprintf(wpath, sizeof wpath, "%s/dh-write", B.bin);
		snprintf(rpath, sizeof rpath, "%s/dh-read", B.bin);
		channel_name(pr->name, sizeof pr->name, "pipeline");
		/* dh-write's default geometry: 64 slots of 64 KiB, sync */
		if ((rc = make_channel(pr->name, 64, 65536, DH_POLICY_SYNC, (enum dh_checksum)kind, 16)) < 0)
			die("create %s: %s", pr->name, dh_strerror(rc));
		pr->c0 = cpu_children();
		pr->t0 = now_ns();
		/* the reader first: dh-write --wait-readers 1 then finds it attached */
		pr->p2 = spawn_exec(B.cpu_b, ar, null, out_fd);
		pr->p1 = spawn_exec(B.cpu_a, aw, in, null);
		close(null);
	}
	close(in);
	return 0;
}

static int
pipeline_wait(struct prun *pr)
{
	int st1 = wait_child(pr->p1), st2 = wait_child(pr->p2);

	pr->secs = (double)(now_ns() - pr->t0) / 1e9;
	pr->cpu = cpu_children() - pr->c0;
	if (pr->kind >= 0)
		drop_channel(pr->name);
	if (st1 != 0 || st2 != 0) {
		snprintf(pr->why, sizeof pr->why, "%s exited %d, %s exited %d",
			 pr->kind < 0 ? "cat" : "dh-write", st1, pr->kind < 0 ? "cat" : "dh-read", st2);
		return -1;
	}
	return 0;
}

static int
pipeline_once(int kind, int out_fd, struct prun *pr)
{
	if (pipeline_start(kind, out_fd, pr) < 0)
		return -1;
	return pipeline_wait(pr);
}

/* Run the dh pipeline once into a pipe and compare every byte with the
 * source: the timed runs are only worth something if the data arrives. */
static int
verify(int kind, char *why, size_t whylen)
{
	int fd = open(src, O_RDONLY | O_CLOEXEC), p[2], rc = 0;
	unsigned char *map, *buf;
	uint64_t off = 0;
	struct prun pr;
	ssize_t n;

	if (fd < 0 || pipe2(p, O_CLOEXEC) < 0)
		die("verify: %s", strerror(errno));
	map = mmap(NULL, src_size, PROT_READ, MAP_PRIVATE, fd, 0);
	close(fd);
	if (map == MAP_FAILED)
		die("mmap source: %s", strerror(errno));
	buf = malloc(1 << 20);
	if (!buf)
		die("out of memory");
	if (pipeline_start(kind, p[1], &pr) < 0) {
		snprintf(why, whylen, "%s", pr.why);
		rc = -1;
	}
	close(p[1]);
	while (rc == 0 && (n = read(p[0], buf, 1 << 20)) > 0) {
		if (off + (uint64_t)n > src_size || memcmp(buf, map + off, (size_t)n) != 0) {
			snprintf(why, whylen, "output differs from the source near byte %llu",
				 (unsigned long long)off);
			rc = -1;
			break;
		}
		off += (uint64_t)n;
	}
	close(p[0]);
	if (rc == 0 && pipeline_wait(&pr) < 0) {
		snprintf(why, whylen, "%s", pr.why);
		rc = -1;
	}
	if (rc == 0 && off != src_size) {
		snprintf(why, whylen, "output %llu bytes, source %llu", (unsigned long long)off,
			 (unsigned long long)src_size);
		rc = -1;
	}
	if (rc < 0)
		kill_children();
	munmap(map, src_size);
	free(buf);
	return rc;
}

void
run_pipeline(void)
{
	static const char *const keys[] = { "pipe.cat", "pipe.dh-none", "pipe.dh-xxh3", "pipe.dh-blake2b" };
	static const char *const labels[] = { "cat | cat", "dh-write | dh-read, none",
					      "dh-write | dh-read, xxh3", "dh-write | dh-read, blake2b" };
	static const int kinds[] = { -1, DH_CHECKSUM_NONE, DH_CHECKSUM_XXH3, DH_CHECKSUM_BLAKE2B };
	enum { NV = 4 };
	uint64_t size = B.quick ? (256ull << 20) : (1ull << 30);
	double secs[NV][REPS], cpu[NV][REPS];
	struct row *rows[NV];
	char wpath[512], rpath[512], why[96];
	int have_dh, devnull;

	snprintf(wpath, sizeof wpath, "%s/dh-write", B.bin);
	snprintf(rpath, sizeof rpath, "%s/dh-read", B.bin);
	have_dh = access(wpath, X_OK) == 0 && access(rpath, X_OK) == 0;
	for (int v = 0; v < NV; v++) {
		rows[v] = want(keys[v]) ? row_new("pipeline", keys[v], labels[v], 65536) : NULL;
		if (rows[v] && kinds[v] >= 0 && !have_dh) {
			snprintf(rows[v]->why, sizeof rows[v]->why, "%.100s or %.100s not built", wpath, rpath);
			rows[v] = NULL;
		}
		if (rows[v] && kinds[v] < 0 && !find_cat()) {
			snprintf(rows[v]->why, sizeof rows[v]->why, "no cat");
			rows[v] = NULL;
		}
	}
	if (!rows[0] && !rows[1] && !rows[2] && !rows[3])
		return;
	if (make_source(size) < 0)
		die("cannot write the %llu-byte source file %s", (unsigned long long)size, src);
	devnull = open("/dev/null", O_WRONLY | O_CLOEXEC);
	for (int v = 0; v < NV; v++)
		if (rows[v] && kinds[v] >= 0 && verify(kinds[v], why, sizeof why) < 0) {
			snprintf(rows[v]->why, sizeof rows[v]->why, "verification: %s", why);
			rows[v]->errors++;
			rows[v] = NULL;
		}
	for (int rep = 0; rep < REPS; rep++)
		for (int v = 0; v < NV; v++) {
			struct prun pr;
			struct row *r = rows[v];

			if (!r)
				continue;
			if (pipeline_once(kinds[v], devnull, &pr) < 0) {
				r->errors++;
				snprintf(r->why, sizeof r->why, "%s", pr.why);
				note("%s rep %d: %s", r->key, rep, pr.why);
				continue;
			}
			secs[v][r->nreps] = pr.secs;
			cpu[v][r->nreps] = pr.cpu;
			r->reps_v[r->nreps++] = pr.secs;
			note("%s rep %d: %.3f s, %.3f CPU s", r->key, rep, pr.secs, pr.cpu);
		}
	for (int v = 0; v < NV; v++) {
		struct row *r = rows[v];
		if (!r)
			continue;
		r->ok = r->nreps == REPS && !r->errors;
		r->secs = median(secs[v], r->nreps);
		r->cpu_s_per_gib = median(cpu[v], r->nreps) / ((double)size / GIB);
		r->bytes_s = r->secs > 0 ? (double)size / r->secs : 0;
		r->samples = size;
	}
	close(devnull);
	forget_path(src);
}
