/* idle.c: case 5, the CPU a waiting dh-read uses. See LICENSE. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench.h"
#include "dh_error.h"
#include "dh_ring.h"

struct pcpu {
	uint64_t ticks;             /* utime + stime from /proc/PID/stat */
	uint64_t run_ns;            /* on-CPU time from /proc/PID/schedstat (0: unavailable) */
	uint64_t vcsw;              /* voluntary context switches: sleeps, i.e. wake-ups */
};

static int
read_file(const char *path, char *buf, size_t len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n;

	if (fd < 0)
		return -1;
	n = read(fd, buf, len - 1);
	close(fd);
	if (n < 0)
		return -1;
	buf[n] = 0;
	return 0;
}

static int
sample(pid_t pid, struct pcpu *c)
{
	char path[64], buf[4096], *p;
	unsigned long long ut, st;

	memset(c, 0, sizeof *c);
	snprintf(path, sizeof path, "/proc/%ld/stat", (long)pid);
	if (read_file(path, buf, sizeof buf) < 0 || !(p = strrchr(buf, ')')))
		return -1;
	/* after the comm: state(3) ... utime(14) stime(15) */
	if (sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) != 2)
		return -1;
	c->ticks = ut + st;
	snprintf(path, sizeof path, "/proc/%ld/schedstat", (long)pid);
	if (read_file(path, buf, sizeof buf) == 0)
		c->run_ns = strtoull(buf, NULL, 10);
	snprintf(path, sizeof path, "/proc/%ld/status", (long)pid);
	if (read_file(path, buf, sizeof buf) == 0 && (p = strstr(buf, "voluntary_ctxt_switches:")))
		c->vcsw = strtoull(p + strlen("voluntary_ctxt_switches:"), NULL, 10);
	return 0;
}

static int
alive(pid_t pid)
{
	int st;

	return waitpid(pid, &st, WNOHANG) == 0;
}

void
run_idle(void)
{
	struct row *rd = want("idle.dh-read") ? row_new("idle", "idle.dh-read", "dh-read waiting", 0) : NULL;
	struct row *rc = want("idle.cat") ? row_new("idle", "idle.cat", "cat on an empty pipe", 0) : NULL;
	uint64_t win = B.quick ? 400000000u : 1000000000u;
	double pct[2][REPS], wk[2][REPS];
	char path[512], name[96], *ar[] = { path, name, NULL }, *ac[] = { (char *)"/bin/cat", NULL };
	struct dh_writer *w = NULL;
	struct pcpu a[2], b[2];
	uint64_t tick0[2] = { 0, 0 }, tick1[2] = { 0, 0 }, t_start;
	pid_t pid[2] = { -1, -1 };
	int null = open("/dev/null", O_RDWR | O_CLOEXEC), p[2], n = 0, err;
	struct row *rows[2] = { rd, rc };

	if (!rd && !rc)
		return;
	snprintf(path, sizeof path, "%s/dh-read", B.bin);
	if (rd && access(path, X_OK) != 0) {
		snprintf(rd->why, sizeof rd->why, "%.200s not built", path);
		rows[0] = rd = NULL;
	}
	if (access(ac[0], X_OK) != 0)
		ac[0] = (char *)"/usr/bin/cat";
	if (rd) {
		channel_name(name, sizeof name, "idle");
		if ((err = make_channel(name, 64, 65536, DH_POLICY_SYNC, DH_CHECKSUM_XXH3, 16)) < 0 ||
		    (err = dh_writer_open(name, "dh-bench idle", &w, NULL)) < 0)
			die("idle channel %s: %s", name, dh_strerror(err));
		pid[0] = spawn_exec(B.cpu_b, ar, null, null);
	}
	if (rc) {
		if (pipe2(p, O_CLOEXEC) < 0)
			die("pipe: %s", strerror(errno));
		pid[1] = spawn_exec(B.cpu_b, ac, p[0], null);
		close(p[0]);
	}
	sleep_ns(300000000u);   /* attached, past its spin, asleep */
	t_start = now_ns();
	for (int i = 0; i < 2; i++)
		if (rows[i] && sample(pid[i], &a[i]) == 0)
			tick0[i] = a[i].ticks;
	for (n = 0; n < REPS; n++) {
		uint64_t t0 = now_ns(), dt;

		sleep_ns(win);
		dt = now_ns() - t0;
		for (int i = 0; i < 2; i++) {
			if (!rows[i])
				continue;
			if (!alive(pid[i]) || sample(pid[i], &b[i]) < 0) {
				snprintf(rows[i]->why, sizeof rows[i]->why, "process exited while idle");
				rows[i]->errors++;
				continue;
			}
			/* schedstat counts nanoseconds; stat counts clock ticks */
			pct[i][n] = b[i].run_ns ? 100.0 * (double)(b[i].run_ns - a[i].run_ns) / (double)dt
						: 100.0 * (double)(b[i].ticks - a[i].ticks) /
							  (double)sysconf(_SC_CLK_TCK) / ((double)dt / 1e9);
			wk[i][n] = (double)(b[i].vcsw - a[i].vcsw) / ((double)dt / 1e9);
			tick1[i] = b[i].ticks;
			a[i] = b[i];
			rows[i]->reps_v[rows[i]->nreps++] = pct[i][n];
		}
	}
	for (int i = 0; i < 2; i++) {
		struct row *r = rows[i];
		double total_s = (double)(now_ns() - t_start) / 1e9;

		if (!r)
			continue;
		r->ok = r->nreps == REPS && !r->errors;
		r->cpu_pct = median(pct[i], r->nreps);
		r->wakeups_s = median(wk[i], r->nreps);
		/* /proc/PID/stat over the whole span, for the record */
		r->secs = total_s;
		r->cpu_pct_stat = 100.0 * (double)(tick1[i] - tick0[i]) / (double)sysconf(_SC_CLK_TCK) / total_s;
		note("%s: %.4f%% of a core, %.1f wake-ups/s", r->key, r->cpu_pct, r->wakeups_s);
	}
	if (w) {
		dh_writer_eos(w);
		dh_writer_close(w);
	}
	if (rc)
		close(p[1]);
	for (int i = 0; i < 2; i++)
		if (pid[i] > 0) {
			int st = wait_child(pid[i]);
			if (st != 0 && rows[i] && rows[i]->ok) {
				snprintf(rows[i]->why, sizeof rows[i]->why, "exited %d at end-of-stream", st);
				rows[i]->ok = 0;
			}
		}
	if (rd)
		drop_channel(name);
	close(null);
}
