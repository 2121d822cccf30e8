/* lines.c: case 3b, short records through the commands: `dh-write --lines |
 * dh-read --lines | wc -l` vs `cat | cat | wc -l` (and --null, --framed). See LICENSE. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench.h"
#include "dh_error.h"

/* The channel a user would make for short records: 4096 slots of 64 bytes
 * (dh-write's own default, 64 slots of 64 KiB, is for bulk data). */
#define LSLOTS 4096
#define LSLOT 64

enum { F_LINES, F_NULL, F_FRAMED, NF };
static const char *const fname[NF] = { "lines", "null", "framed" };
static const char *const fopt[NF] = { "--lines", "--null", "--framed" };

static char srcs[NF][256];
static uint64_t src_bytes[NF];

static const char *
find(const char *const *c, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (access(c[i], X_OK) == 0)
			return c[i];
	return NULL;
}

static const char *
cat_path(void)
{
	static const char *const c[] = { "/usr/bin/cat", "/bin/cat" };
	return find(c, 2);
}

static const char *
wc_path(void)
{
	static const char *const c[] = { "/usr/bin/wc", "/bin/wc" };
	return find(c, 2);
}

/* The records of `seq 1 n`: text lines, NUL-terminated, or 4-byte
 * little-endian length frames. */
static void
make_sources(uint64_t n)
{
	FILE *f[NF];

	for (int k = 0; k < NF; k++) {
		snprintf(srcs[k], sizeof srcs[k], "/dev/shm/dhbench-%ld-%s", (long)getpid(), fname[k]);
		register_path(srcs[k]);
		if (!(f[k] = fopen(srcs[k], "w")))
			die("%s: %s", srcs[k], strerror(errno));
		setvbuf(f[k], NULL, _IOFBF, 1 << 20);
	}
	for (uint64_t i = 1; i <= n; i++) {
		char num[24];
		int len = snprintf(num, sizeof num, "%llu", (unsigned long long)i);
		unsigned char hdr[4] = { (unsigned char)len, 0, 0, 0 };

		fprintf(f[F_LINES], "%s\n", num);
		fwrite(num, 1, (size_t)len + 1, f[F_NULL]);    /* the NUL snprintf wrote */
		fwrite(hdr, 1, 4, f[F_FRAMED]);
		fwrite(num, 1, (size_t)len, f[F_FRAMED]);
	}
	for (int k = 0; k < NF; k++) {
		src_bytes[k] = (uint64_t)ftell(f[k]);
		if (fclose(f[k]) != 0)
			die("%s: %s", srcs[k], strerror(errno));
	}
}

/*
 * One run: cat | cat | wc, or dh-write | dh-read | wc, the first two stages
 * pinned apart, wc unpinned, its count read back.  -1 with why on failure.
 */
static int
run_once(int k, int dh, double *secs, uint64_t *count, char *why, size_t whylen)
{
	char wpath[512], rpath[512], name[96], *wcarg = k == F_LINES ? "-l" : "-c";
	char *awc[] = { (char *)wc_path(), wcarg, NULL };
	int in = open(srcs[k], O_RDONLY | O_CLOEXEC), p[2], q[2], st[3], rc;
	pid_t p1, p2, p3;
	char out[64] = "";
	ssize_t n;
	uint64_t t0;

	if (in < 0 || pipe2(p, O_CLOEXEC) < 0 || pipe2(q, O_CLOEXEC) < 0)
		die("lines: %s", strerror(errno));
	t0 = now_ns();
	if (!dh) {
		char *a[] = { (char *)cat_path(), NULL };
		int m[2];

		if (pipe2(m, O_CLOEXEC) < 0)
			die("pipe: %s", strerror(errno));
		p1 = spawn_exec(B.cpu_a, a, in, m[1]);
		p2 = spawn_exec(B.cpu_b, a, m[0], p[1]);
		close(m[0]);
		close(m[1]);
	} else {
		int null = open("/dev/null", O_RDWR | O_CLOEXEC);
		char *aw[] = { wpath, "--wait-readers", "1", (char *)fopt[k], name, NULL };
		char *ar[] = { rpath, (char *)fopt[k], name, NULL };

		snprintf(wpath, sizeof wpath, "%s/dh-write", B.bin);
		snprintf(rpath, sizeof rpath, "%s/dh-read", B.bin);
		channel_name(name, sizeof name, "lines");
		if ((rc = make_channel(name, LSLOTS, LSLOT, DH_POLICY_SYNC, DH_CHECKSUM_XXH3, 16)) < 0)
			die("create %s: %s", name, dh_strerror(rc));
		t0 = now_ns();
		p2 = spawn_exec(B.cpu_b, ar, null, p[1]);
		p1 = spawn_exec(B.cpu_a, aw, in, null);
		close(null);
	}
	p3 = spawn_exec(-1, awc, p[0], q[1]);
	close(in);
	close(p[0]);
	close(p[1]);
	close(q[1]);
	n = read_full(q[0], out, sizeof out - 1);
	close(q[0]);
	st[0] = wait_child(p1);
	st[1] = wait_child(p2);
	st[2] = wait_child(p3);
	*secs = (double)(now_ns() - t0) / 1e9;
	if (dh)
		drop_channel(name);
	if (st[0] || st[1] || st[2] || n <= 0) {
		snprintf(why, whylen, "exit statuses %d %d %d", st[0], st[1], st[2]);
		return -1;
	}
	out[n] = 0;
	*count = strtoull(out, NULL, 10);
	return 0;
}

void
run_lines(void)
{
	enum { NV = 2 * NF };
	uint64_t n = B.quick ? 1000000u : 5000000u;
	double secs[NV][REPS];
	struct row *rows[NV];
	char wpath[512], key[48], label[48], why[96] = "";
	int have_dh, any = 0;

	snprintf(wpath, sizeof wpath, "%s/dh-write", B.bin);
	have_dh = access(wpath, X_OK) == 0;
	for (int v = 0; v < NV; v++) {
		int k = v / 2, dh = v % 2;
		snprintf(key, sizeof key, "lines.%s.%s", fname[k], dh ? "dh" : "cat");
		snprintf(label, sizeof label, dh ? "dh-write %s | dh-read %s" : "cat | cat (%s)", fopt[k], fopt[k]);
		if (!dh)
			snprintf(label, sizeof label, "cat | cat, %s records", fname[k]);
		rows[v] = want(key) ? row_new("lines", key, label, 0) : NULL;
		if (rows[v] && ((dh && !have_dh) || !cat_path() || !wc_path())) {
			snprintf(rows[v]->why, sizeof rows[v]->why, "dh-write, cat or wc missing");
			rows[v] = NULL;
		}
		any |= rows[v] != NULL;
	}
	if (!any)
		return;
	make_sources(n);
	for (int rep = 0; rep < REPS; rep++)
		for (int v = 0; v < NV; v++) {
			struct row *r = rows[v];
			int k = v / 2;
			uint64_t count = 0, want_n = k == F_LINES ? n : src_bytes[k];
			double s;

			if (!r)
				continue;
			if (run_once(k, v % 2, &s, &count, why, sizeof why) < 0 || count != want_n) {
				if (count != want_n && !why[0])
					snprintf(why, sizeof why, "wc counted %llu, want %llu", (unsigned long long)count,
						 (unsigned long long)want_n);
				r->errors++;
				snprintf(r->why, sizeof r->why, "%s", why);
				note("%s rep %d: %s", r->key, rep, why);
				why[0] = 0;
				continue;
			}
			secs[v][r->nreps] = s;
			r->reps_v[r->nreps++] = s;
			note("%s rep %d: %.3f s", r->key, rep, s);
		}
	for (int v = 0; v < NV; v++) {
		struct row *r = rows[v];
		if (!r)
			continue;
		r->ok = r->nreps == REPS && !r->errors;
		r->secs = median(secs[v], r->nreps);
		r->msgs_s = r->secs > 0 ? (double)n / r->secs : 0;
		r->bytes_s = r->secs > 0 ? (double)src_bytes[v / 2] / r->secs : 0;
		r->samples = n;
	}
	for (int k = 0; k < NF; k++)
		forget_path(srcs[k]);
}
