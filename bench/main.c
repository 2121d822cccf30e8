/* dh-bench: dh side by side with pipes, Unix sockets and ZeroMQ (issue 7). See LICENSE.
 *
 * usage: dh-bench [--quick] [--bin DIR] [--json FILE] [--only PREFIX] [-v]
 *
 * The Eclipse iceoryx peer (iox.c) is measured when dh-bench was built with
 * its C binding; the harness runs its own iox-roudi for it.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"
#include "dh.h"


#define MAX_ROWS 128

struct bopt B = { .bin = "build/bin", .cpu_a = -1, .cpu_b = -1 };

static struct row rows[MAX_ROWS];
static int nrows;

struct row *
row_new(const char *section, const char *key, const char *label, size_t size)
{
	struct row *r;

	if (nrows >= MAX_ROWS)
		die("too many rows");
	r = &rows[nrows++];
	memset(r, 0, sizeof *r);
	snprintf(r->section, sizeof r->section, "%s", section);
	snprintf(r->key, sizeof r->key, "%s", key);
	snprintf(r->label, sizeof r->label, "%s", label);
	r->size = size;
	return r;
}

struct row *
row_find(const char *key)
{
	for (int i = 0; i < nrows; i++)
		if (strcmp(rows[i].key, key) == 0)
			return &rows[i];
	return NULL;
}

int
want(const char *key)
{
	return !B.only || strncmp(key, B.only, strlen(B.only)) == 0;
}

static void jstr(FILE *f, const char *s);

static char iox_note[200];     /* why the iceoryx peer was skipped */

int
iox_ok(void)
{
	return iox_peer(iox_note, sizeof iox_note);
}

/* --- machine ------------------------------------------------------------------- */

static char cpu_model[128] = "unknown";
static double load_start[3], load_end[3];
static char date_s[64];

static void
read_machine(void)
{
	FILE *f = fopen("/proc/cpuinfo", "r");
	char line[256];

	if (f) {
		while (fgets(line, sizeof line, f))
			if (strncmp(line, "model name", 10) == 0) {
				char *p = strchr(line, ':');
				if (p) {
					snprintf(cpu_model, sizeof cpu_model, "%s", p + 2);
					cpu_model[strcspn(cpu_model, "\n")] = 0;
				}
				break;
			}
		fclose(f);
	}
}

static void
loadavg(double l[3])
{
	if (getloadavg(l, 3) != 3)
		l[0] = l[1] = l[2] = -1;
}

/* --- foreign load: CPU time used by processes that are not ours ------------- */

struct cpu_mark {
	double busy;                /* machine: non-idle seconds, all CPUs (/proc/stat) */
	double ours;                /* harness + reaped children, seconds */
	uint64_t t;
};

struct case_load {
	const char *name;
	double foreign;             /* other processes, in cores (1.0 = one core busy) */
	double secs;
};

static struct case_load loads[8];
static int nloads;

static void
cpu_mark(struct cpu_mark *m)
{
	unsigned long long v[10] = { 0 };
	struct rusage ru;
	FILE *f = fopen("/proc/stat", "r");
	double tck = (double)sysconf(_SC_CLK_TCK);

	m->busy = 0;
	if (f) {
		if (fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2], &v[3], &v[4], &v[5],
			   &v[6], &v[7]) == 8)
			m->busy = (double)(v[0] + v[1] + v[2] + v[5] + v[6] + v[7]) / tck;
		fclose(f);
	}
	m->ours = 0;
	getrusage(RUSAGE_SELF, &ru);
	m->ours += (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
		   (double)ru.ru_stime.tv_usec / 1e6;
	getrusage(RUSAGE_CHILDREN, &ru);
	m->ours += (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
		   (double)ru.ru_stime.tv_usec / 1e6;
	m->t = now_ns();
}

/* Run one case and record how much CPU everybody else used meanwhile. */
static void
run_case(const char *name, void (*fn)(void))
{
	struct cpu_mark a, b;
	struct case_load *l = &loads[nloads++];

	cpu_mark(&a);
	fn();
	cpu_mark(&b);
	iox_release();  /* no RouDi in the background of the cases without iceoryx */
	l->name = name;
	l->secs = (double)(b.t - a.t) / 1e9;
	l->foreign = l->secs > 0 ? ((b.busy - a.busy) - (b.ours - a.ours)) / l->secs : 0;
	if (l->foreign < 0)
		l->foreign = 0;   /* tick granularity */
}

/* --- table ---------------------------------------------------------------------- */

static double
msgs(const char *key)
{
	struct row *r = row_find(key);

	return r && r->ok ? r->msgs_s : 0;
}

static void
si(char *buf, size_t len, double v)
{
	if (v >= 1e9)
		snprintf(buf, len, "%.2f G", v / 1e9);
	else if (v >= 1e6)
		snprintf(buf, len, "%.2f M", v / 1e6);
	else if (v >= 1e3)
		snprintf(buf, len, "%.1f k", v / 1e3);
	else
		snprintf(buf, len, "%.0f  ", v);
}

static void
ratio(char *buf, size_t len, double a, double b)
{
	if (a > 0 && b > 0)
		snprintf(buf, len, "%.2fx", a / b);
	else
		snprintf(buf, len, "-");
}

static const char *
size_s(size_t s)
{
	static char buf[32];

	if (s >= 1024)
		snprintf(buf, sizeof buf, "%zuKiB", s >> 10);
	else
		snprintf(buf, sizeof buf, "%zuB", s);
	return buf;
}

static void
print_failed(const struct row *r)
{
	printf("  %-7s %-30s not measured: %s\n", r->size ? size_s(r->size) : "", r->label,
	       r->why[0] ? r->why : "failed");
}

static void
table_throughput(void)
{
	static const size_t sizes[] = { 64, 4096, 65536 };
	int any = 0;

	for (int i = 0; i < nrows; i++)
		any |= strcmp(rows[i].section, "throughput") == 0;
	if (!any)
		return;
	printf("\n1. THROUGHPUT, one writer -> one reader process, back to back\n");
	printf("   libdh: sync policy, zero-copy reserve/commit and next/release; slots: 1024x64B,\n"
	       "   128x4KiB, 16x64KiB. +copy: writer copies in, reader copies out, like read()/write().\n");
	printf("  %-7s %-30s %10s %8s %8s %8s %8s\n", "size", "transport", "msg/s", "GB/s", "vs pipe",
	       "vs unix", "vs zmq");
	for (size_t s = 0; s < 3; s++) {
		char kp[48], ku[48], kz[48];
		snprintf(kp, sizeof kp, "tput.%zu.pipe", sizes[s]);
		snprintf(ku, sizeof ku, "tput.%zu.unix", sizes[s]);
		snprintf(kz, sizeof kz, "tput.%zu.zmq", sizes[s]);
		for (int i = 0; i < nrows; i++) {
			struct row *r = &rows[i];
			char m[16], a[16], b[16], c[16];
			if (strcmp(r->section, "throughput") || r->size != sizes[s])
				continue;
			if (!r->ok) {
				print_failed(r);
				continue;
			}
			si(m, sizeof m, r->msgs_s);
			if (strstr(r->key, ".dh-")) {
				ratio(a, sizeof a, r->msgs_s, msgs(kp));
				ratio(b, sizeof b, r->msgs_s, msgs(ku));
				ratio(c, sizeof c, r->msgs_s, msgs(kz));
			} else {
				a[0] = b[0] = c[0] = 0;
			}
			printf("  %-7s %-30s %10s %8.3f %8s %8s %8s\n", size_s(r->size), r->label, m,
			       r->bytes_s / 1e9, a, b, c);
		}
	}
}

static double
p50(const char *key)
{
	struct row *r = row_find(key);

	return r && r->ok ? r->p50 : 0;
}

static void
table_latency(void)
{
	int any = 0;

	for (int i = 0; i < nrows; i++)
		any |= strncmp(rows[i].section, "latency", 7) == 0;
	if (!any)
		return;
	printf("\n2. ONE-WAY LATENCY, 64 B, messages paced 50 us apart, send time in the payload (us)\n");
	printf("  %-38s %8s %8s %8s %9s %9s\n", "transport", "p50", "p99", "p99.9", "p50/floor",
	       "p50/pipe");
	for (int i = 0; i < nrows; i++) {
		struct row *r = &rows[i];
		char a[16], b[16];
		if (strncmp(r->section, "latency", 7))
			continue;
		if (!r->ok) {
			print_failed(r);
			continue;
		}
		ratio(a, sizeof a, r->p50, p50("lat.64.floor"));
		ratio(b, sizeof b, r->p50, p50("lat.64.pipe"));
		printf("  %-38s %8.2f %8.2f %8.2f %9s %9s\n", r->label, r->p50 / 1e3, r->p99 / 1e3,
		       r->p999 / 1e3, a, b);
	}
}

static void
table_pipeline(void)
{
	struct row *cat = row_find("pipe.cat");
	int any = 0;

	for (int i = 0; i < nrows; i++)
		any |= strcmp(rows[i].section, "pipeline") == 0;
	if (!any)
		return;
	printf("\n3. PIPELINE, a %s file (tmpfs) to /dev/null, two processes pinned apart\n",
	       B.quick ? "256 MiB" : "1 GiB");
	printf("  %-38s %8s %8s %10s %11s\n", "pipeline", "seconds", "GB/s", "CPU s/GiB", "vs cat|cat");
	for (int i = 0; i < nrows; i++) {
		struct row *r = &rows[i];
		char a[16];
		if (strcmp(r->section, "pipeline"))
			continue;
		if (!r->ok) {
			print_failed(r);
			continue;
		}
		ratio(a, sizeof a, cat && cat->ok ? cat->secs : 0, r->secs);
		printf("  %-38s %8.3f %8.3f %10.3f %11s\n", r->label, r->secs, r->bytes_s / 1e9,
		       r->cpu_s_per_gib, r != cat ? a : "");
	}
}

static double
secs(const char *key)
{
	struct row *r = row_find(key);

	return r && r->ok ? r->secs : 0;
}

static void
table_lines(void)
{
	int any = 0;

	for (int i = 0; i < nrows; i++)
		any |= strcmp(rows[i].section, "lines") == 0;
	if (!any)
		return;
	printf("\n3b. LINES, `seq 1 %s` as lines, NUL records or frames, through two stages into wc\n",
	       B.quick ? "1000000" : "5000000");
	printf("   dh: a sync channel of 4096 slots of 64 B, xxh3; dh-write publishes in batches and flushes\n"
	       "   whenever its input has nothing ready. First two stages pinned apart, wc unpinned.\n");
	printf("  %-38s %8s %10s %11s\n", "pipeline", "seconds", "records/s", "vs cat|cat");
	for (int i = 0; i < nrows; i++) {
		struct row *r = &rows[i];
		char m[16], a[16], ck[48];
		if (strcmp(r->section, "lines"))
			continue;
		if (!r->ok) {
			print_failed(r);
			continue;
		}
		snprintf(ck, sizeof ck, "%.*s.cat", (int)(strrchr(r->key, '.') - r->key), r->key);
		si(m, sizeof m, r->msgs_s);
		a[0] = 0;
		if (strstr(r->key, ".dh"))
			ratio(a, sizeof a, secs(ck), r->secs);
		printf("  %-38s %8.3f %10s %11s\n", r->label, r->secs, m, a);
	}
}

static void
table_fanout(void)
{
	int any = 0;

	for (int i = 0; i < nrows; i++)
		any |= strcmp(rows[i].section, "fanout") == 0;
	if (any) {
		printf("\n4a. FAN-OUT, 64 B, one writer -> 4 reader processes (aggregate delivered)\n");
		printf("  %-38s %10s %8s %8s %8s\n", "transport", "msg/s", "GB/s", "vs pipe", "vs zmq");
		for (int i = 0; i < nrows; i++) {
			struct row *r = &rows[i];
			char m[16], a[16], b[16];
			if (strcmp(r->section, "fanout"))
				continue;
			if (!r->ok) {
				print_failed(r);
				continue;
			}
			si(m, sizeof m, r->msgs_s);
			a[0] = b[0] = 0;
			if (strstr(r->key, ".dh-")) {
				ratio(a, sizeof a, r->msgs_s, msgs("fanout4.64.pipe"));
				ratio(b, sizeof b, r->msgs_s, msgs("fanout4.64.zmq"));
			}
			printf("  %-38s %10s %8.3f %8s %8s\n", r->label, m, r->bytes_s / 1e9, a, b);
		}
	}
	any = 0;
	for (int i = 0; i < nrows; i++)
		any |= strcmp(rows[i].section, "stress") == 0;
	if (any) {
		printf("\n4b. STRESS, one writer -> 10 readers, 10 000 msg/s of 64 B, %s, end-to-end (us)\n",
		       B.quick ? "5 x 0.4 s" : "5 x 10 s");
		printf("  %-38s %8s %8s %8s %9s %10s\n", "transport", "p50", "p95", "p99", "max", "delivered");
		for (int i = 0; i < nrows; i++) {
			struct row *r = &rows[i];
			if (strcmp(r->section, "stress"))
				continue;
			if (!r->ok) {
				print_failed(r);
				continue;
			}
			printf("  %-38s %8.1f %8.1f %8.1f %9.1f %10llu\n", r->label, r->p50 / 1e3, r->p95 / 1e3,
			       r->p99 / 1e3, r->pmax / 1e3, (unsigned long long)r->samples);
		}
	}
}

static void
table_idle(void)
{
	int any = 0;

	for (int i = 0; i < nrows; i++)
		any |= strcmp(rows[i].section, "idle") == 0;
	if (!any)
		return;
	printf("\n5. IDLE, a waiting process over %s s (live writer, no messages)\n", B.quick ? "2" : "5");
	printf("  %-38s %14s %14s %11s\n", "process", "CPU % (sched)", "CPU % (stat)", "wake-ups/s");
	for (int i = 0; i < nrows; i++) {
		struct row *r = &rows[i];
		if (strcmp(r->section, "idle"))
			continue;
		if (!r->ok) {
			print_failed(r);
			continue;
		}
		printf("  %-38s %14.4f %14.2f %11.1f\n", r->label, r->cpu_pct, r->cpu_pct_stat, r->wakeups_s);
	}
}

/* --- iceoryx: libdh against the other shared-memory transport ----------------- */

/* Each pair: a libdh row and the iceoryx row measured in the same
 * interleaved repetitions. The advantage is how many times better libdh
 * is: msg/s libdh / iceoryx, or p50 iceoryx / libdh. */
struct iox_pair {
	const char *what, *dh, *iox;
	int latency;
};

static const struct iox_pair iox_pairs[] = {
	{ "throughput 64 B, libdh none", "tput.64.dh-none", "tput.64.iox", 0 },
	{ "throughput 4 KiB, libdh none", "tput.4096.dh-none", "tput.4096.iox", 0 },
	{ "throughput 64 KiB, libdh none", "tput.65536.dh-none", "tput.65536.iox", 0 },
	{ "throughput 64 B, libdh none batched", "tput.64.dh-none-batch", "tput.64.iox", 0 },
	{ "busy-poll latency p50, libdh none", "lat.64.dh-busy-none", "lat.64.iox-busy", 1 },
	{ "waiting latency p50, libdh none", "lat.64.dh-wait-none", "lat.64.iox-wait", 1 },
	{ "fan-out 4 readers 64 B, libdh none", "fanout4.64.dh-none", "fanout4.64.iox", 0 },
	{ "fan-out 4 readers 64 B, libdh none batched", "fanout4.64.dh-none-batch", "fanout4.64.iox", 0 },
};
#define NIOX (sizeof iox_pairs / sizeof *iox_pairs)

/* The advantage over the medians, and per interleaved repetition (rep[i]
 * pairs the two rows' i-th runs); 0 when a side is missing. */
static double
iox_advantage(const struct iox_pair *p, double *rep, int *nrep)
{
	struct row *d = row_find(p->dh), *x = row_find(p->iox);
	double a, b;

	*nrep = 0;
	if (!d || !x || !d->ok || !x->ok)
		return 0;
	for (int i = 0; i < REPS && i < d->nreps && i < x->nreps; i++)
		if (d->reps_v[i] > 0 && x->reps_v[i] > 0)
			rep[(*nrep)++] = p->latency ? x->reps_v[i] / d->reps_v[i] : d->reps_v[i] / x->reps_v[i];
	a = p->latency ? x->p50 : d->msgs_s;
	b = p->latency ? d->p50 : x->msgs_s;
	return a > 0 && b > 0 ? a / b : 0;
}

static void
table_iceoryx(void)
{
	int any = 0;

	for (size_t i = 0; i < NIOX; i++)
		any |= row_find(iox_pairs[i].iox) != NULL;
	if (!any) {
		if (iox_note[0])
			printf("\n6. ICEORYX: %s\n", iox_note);
		return;
	}
	printf("\n6. ICEORYX 2.0 (Eclipse, shared memory), lossless: WAIT_FOR_CONSUMER + BLOCK_PRODUCER,\n"
	       "   zero-copy loan/publish and take/release, our own iox-roudi. Times libdh is ahead:\n"
	       "   msg/s libdh / iceoryx, or p50 iceoryx / libdh; then each interleaved repetition's pair.\n");
	printf("  %-44s %10s %10s %7s  %s\n", "case", "libdh", "iceoryx", "ahead", "per repetition");
	for (size_t i = 0; i < NIOX; i++) {
		const struct iox_pair *p = &iox_pairs[i];
		struct row *d = row_find(p->dh), *x = row_find(p->iox);
		double rep[REPS], adv;
		char a[16], b[16];
		int n;

		if (!d || !x)
			continue;
		adv = iox_advantage(p, rep, &n);
		if (!adv) {
			printf("  %-44s not measured: %s\n", p->what, !d->ok ? d->why : x->why);
			continue;
		}
		if (p->latency) {
			snprintf(a, sizeof a, "%.2f us", d->p50 / 1e3);
			snprintf(b, sizeof b, "%.2f us", x->p50 / 1e3);
		} else {
			si(a, sizeof a, d->msgs_s);
			si(b, sizeof b, x->msgs_s);
		}
		printf("  %-44s %10s %10s %6.2fx ", p->what, a, b, adv);
		for (int k = 0; k < n; k++)
			printf(" %.2f", rep[k]);
		printf("\n");
	}
}

static void
json_iceoryx(FILE *f)
{
	int first = 1;

	fprintf(f, "  \"iceoryx\": {\"note\": ");
	jstr(f, iox_note);
	fprintf(f, ", \"pairs\": [");
	for (size_t i = 0; i < NIOX; i++) {
		const struct iox_pair *p = &iox_pairs[i];
		double rep[REPS], adv;
		int n;

		if (!row_find(p->dh) || !row_find(p->iox))
			continue;
		adv = iox_advantage(p, rep, &n);
		fprintf(f, "%s\n    {\"case\": ", first ? "" : ",");
		first = 0;
		jstr(f, p->what);
		fprintf(f, ", \"libdh\": \"%s\", \"iceoryx\": \"%s\", \"metric\": \"%s\"", p->dh, p->iox,
			p->latency ? "p50_ns, iceoryx/libdh" : "msgs_per_s, libdh/iceoryx");
		if (adv)
			fprintf(f, ", \"libdh_ahead\": %.6g", adv);
		else
			fprintf(f, ", \"libdh_ahead\": null");
		fprintf(f, ", \"per_rep\": [");
		for (int k = 0; k < n; k++)
			fprintf(f, "%s%.6g", k ? ", " : "", rep[k]);
		fprintf(f, "]}");
	}
	fprintf(f, "%s]},\n", first ? "" : "\n  ");
}

/* --- targets --------------------------------------------------------------------- */

struct target {
	const char *what;
	double value, need;
	int higher_better;          /* value >= need, else value <= need */
	int known;
};

static struct target targets[32];
static int issue7_targets;      /* targets before this index are issue 7's, the rest issue 14's */
static int ntargets;

static void
target(const char *what, double a, double b, double need, int higher_better)
{
	struct target *t = &targets[ntargets++];

	t->what = what;
	t->known = a > 0 && b > 0;
	t->value = t->known ? a / b : 0;
	t->need = need;
	t->higher_better = higher_better;
}

static int
met(const struct target *t)
{
	return t->higher_better ? t->value >= t->need : t->value <= t->need;
}

static void
eval_targets(void)
{
	struct row *cat = row_find("pipe.cat"), *x = row_find("pipe.dh-xxh3"), *n = row_find("pipe.dh-none");
	struct row *idle = row_find("idle.dh-read");

	ntargets = 0;
	target("64 B throughput, libdh (none) / zmq ipc      >= 5x", msgs("tput.64.dh-none"), msgs("tput.64.zmq"), 5, 1);
	target("64 B throughput, libdh (none) / pipe         >= 5x", msgs("tput.64.dh-none"), msgs("tput.64.pipe"), 5, 1);
	target("64 KiB throughput, libdh (none) / pipe       >= 2x", msgs("tput.65536.dh-none"),
	       msgs("tput.65536.pipe"), 2, 1);
	target("latency p50, busy-poll / cache-line floor    <= 3x", p50("lat.64.dh-busy-none"), p50("lat.64.floor"), 3, 0);
	target("latency p50, default wait (xxh3) / pipe      <= 1x", p50("lat.64.dh-wait-xxh3"), p50("lat.64.pipe"), 1, 0);
	target("pipeline, dh xxh3 / cat|cat                  >= 0.9x", cat && cat->ok ? cat->secs : 0,
	       x && x->ok ? x->secs : 0, 0.9, 1);
	target("pipeline, dh none / cat|cat                  >= 1.0x", cat && cat->ok ? cat->secs : 0,
	       n && n->ok ? n->secs : 0, 1.0, 1);
	target("idle dh-read, % of a core                    <  1", idle && idle->ok ? idle->cpu_pct + 1e-9 : 0, 1, 1,
	       0);
	issue7_targets = ntargets;
	target("64 B msg/s, libdh none / zmq ipc             >= 5x", msgs("tput.64.dh-none"), msgs("tput.64.zmq"), 5, 1);
	target("64 B msg/s, libdh none batched / zmq ipc     >= 5x", msgs("tput.64.dh-none-batch"), msgs("tput.64.zmq"),
	       5, 1);
	target("64 B msg/s, libdh none / pipe                >= 10x", msgs("tput.64.dh-none"), msgs("tput.64.pipe"), 10,
	       1);
	target("64 B msg/s, libdh none batched / pipe        >= 10x", msgs("tput.64.dh-none-batch"),
	       msgs("tput.64.pipe"), 10, 1);
	target("fan-out 4, libdh none / zmq PUB/SUB          >= 5x", msgs("fanout4.64.dh-none"),
	       msgs("fanout4.64.zmq"), 5, 1);
	target("fan-out 4, libdh none batched / zmq PUB/SUB  >= 5x", msgs("fanout4.64.dh-none-batch"),
	       msgs("fanout4.64.zmq"), 5, 1);
	target("lines, dh-write|dh-read|wc / cat|cat|wc      >= 0.25x", secs("lines.lines.cat"),
	       secs("lines.lines.dh"), 0.25, 1);
	target("busy-poll p50 / cache-line floor             <= 3x", p50("lat.64.dh-busy-none"), p50("lat.64.floor"), 3, 0);
	target("64 B msg/s, libdh none / iceoryx             >= 1x", msgs("tput.64.dh-none"), msgs("tput.64.iox"), 1, 1);
	target("4 KiB msg/s, libdh none / iceoryx            >= 1x", msgs("tput.4096.dh-none"), msgs("tput.4096.iox"), 1,
	       1);
	target("64 KiB msg/s, libdh none / iceoryx           >= 1x", msgs("tput.65536.dh-none"),
	       msgs("tput.65536.iox"), 1, 1);
	target("busy-poll p50, libdh none / iceoryx          <= 1x", p50("lat.64.dh-busy-none"), p50("lat.64.iox-busy"),
	       1, 0);
	target("fan-out 4, libdh none / iceoryx              >= 1x", msgs("fanout4.64.dh-none"), msgs("fanout4.64.iox"),
	       1, 1);
}

static void
table_targets(void)
{
	for (int i = 0; i < ntargets; i++) {
		struct target *t = &targets[i];
		if (i == 0 || i == issue7_targets)
			printf("\nTARGETS (issue %d)\n", i ? 14 : 7);
		if (!t->known)
			printf("  [n/a   ] %s: not measured\n", t->what);
		else
			printf("  [%-6s] %s: %.3g%s\n", met(t) ? "met" : "MISSED", t->what, t->value,
			       strstr(t->what, "%") ? "" : "x");
	}
}

/* --- JSON ------------------------------------------------------------------------- */

static void
jstr(FILE *f, const char *s)
{
	fputc('"', f);
	for (; *s; s++) {
		if (*s == '"' || *s == '\\')
			fprintf(f, "\\%c", *s);
		else if ((unsigned char)*s < 0x20)
			fprintf(f, "\\u%04x", *s);
		else
			fputc(*s, f);
	}
	fputc('"', f);
}

static void
jnum(FILE *f, const char *k, double v)
{
	fprintf(f, ", \"%s\": %.6g", k, v);
}

static int
write_json(const char *path, double wall)
{
	FILE *f = fopen(path, "w");
	struct utsname u;

	if (!f)
		return -errno;
	uname(&u);
	fprintf(f, "{\n  \"tool\": \"dh-bench\", \"version\": \"%s\", \"date\": ", DH_VERSION);
	jstr(f, date_s);
	fprintf(f, ", \"mode\": \"%s\", \"repetitions\": %d, \"wall_seconds\": %.1f,\n", B.quick ? "quick" : "full",
		REPS, wall);
	fprintf(f, "  \"machine\": {\"cpu\": ");
	jstr(f, cpu_model);
	fprintf(f, ", \"cpus\": %d, \"kernel\": ", B.ncpu);
	jstr(f, u.release);
	fprintf(f, ", \"pinned\": [%d, %d], \"load_start\": [%.2f, %.2f, %.2f], \"load_end\": [%.2f, %.2f, %.2f]},\n",
		B.cpu_a, B.cpu_b, load_start[0], load_start[1], load_start[2], load_end[0], load_end[1],
		load_end[2]);
	fprintf(f, "  \"foreign_cpu_cores\": {");
	for (int i = 0; i < nloads; i++)
		fprintf(f, "%s\"%s\": %.3f", i ? ", " : "", loads[i].name, loads[i].foreign);
	fprintf(f, "},\n  \"results\": [\n");
	for (int i = 0; i < nrows; i++) {
		struct row *r = &rows[i];
		fprintf(f, "    {\"key\": ");
		jstr(f, r->key);
		fprintf(f, ", \"section\": ");
		jstr(f, r->section);
		fprintf(f, ", \"label\": ");
		jstr(f, r->label);
		fprintf(f, ", \"ok\": %s", r->ok ? "true" : "false");
		if (r->size)
			fprintf(f, ", \"size\": %zu", r->size);
		if (!r->ok) {
			fprintf(f, ", \"why\": ");
			jstr(f, r->why[0] ? r->why : "failed");
		}
		if (r->msgs_s)
			jnum(f, "msgs_per_s", r->msgs_s);
		if (r->bytes_s)
			jnum(f, "bytes_per_s", r->bytes_s);
		if (!strncmp(r->section, "latency", 7) || !strcmp(r->section, "stress")) {
			jnum(f, "p50_ns", r->p50);
			jnum(f, "p95_ns", r->p95);
			jnum(f, "p99_ns", r->p99);
			jnum(f, "p999_ns", r->p999);
			jnum(f, "max_ns", r->pmax);
			fprintf(f, ", \"samples\": %llu", (unsigned long long)r->samples);
		}
		if (!strcmp(r->section, "lines")) {
			jnum(f, "seconds", r->secs);
			fprintf(f, ", \"records\": %llu", (unsigned long long)r->samples);
		}
		if (!strcmp(r->section, "pipeline")) {
			jnum(f, "seconds", r->secs);
			jnum(f, "cpu_s_per_gib", r->cpu_s_per_gib);
			fprintf(f, ", \"bytes\": %llu", (unsigned long long)r->samples);
		}
		if (!strcmp(r->section, "idle")) {
			jnum(f, "cpu_percent", r->cpu_pct);
			jnum(f, "cpu_percent_proc_stat", r->cpu_pct_stat);
			jnum(f, "wakeups_per_s", r->wakeups_s);
			jnum(f, "seconds", r->secs);
		}
		fprintf(f, ", \"reps\": [");
		for (int k = 0; k < r->nreps; k++)
			fprintf(f, "%s%.6g", k ? ", " : "", r->reps_v[k]);
		fprintf(f, "]}%s\n", i + 1 < nrows ? "," : "");
	}
	fprintf(f, "  ],\n");
	json_iceoryx(f);
	fprintf(f, "  \"targets\": [\n");
	for (int i = 0; i < ntargets; i++) {
		struct target *t = &targets[i];
		fprintf(f, "    {\"target\": ");
		jstr(f, t->what);
		if (t->known)
			fprintf(f, ", \"value\": %.6g, \"need\": %g, \"met\": %s}", t->value, t->need,
				met(t) ? "true" : "false");
		else
			fprintf(f, ", \"value\": null, \"need\": %g, \"met\": null}", t->need);
		fprintf(f, "%s\n", i + 1 < ntargets ? "," : "");
	}
	fprintf(f, "  ]\n}\n");
	return fclose(f) == 0 ? 0 : -errno;
}

/* --- main -------------------------------------------------------------------------- */

static void
usage(int st)
{
	fprintf(st ? stderr : stdout,
		"usage: dh-bench [--quick] [--bin DIR] [--json FILE] [--only PREFIX] [-v]\n");
	exit(st);
}

int
main(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "quick", no_argument, NULL, 'q' },   { "bin", required_argument, NULL, 'b' },
		{ "json", required_argument, NULL, 'j' }, { "only", required_argument, NULL, 'o' },
		{ "verbose", no_argument, NULL, 'v' }, { "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 }
	};
	struct utsname u;
	uint64_t t0;
	time_t now;
	int c;

	while ((c = getopt_long(argc, argv, "qb:j:o:vh", lo, NULL)) != -1) {
		switch (c) {
		case 'q': B.quick = 1; break;
		case 'b': B.bin = optarg; break;
		case 'j': B.json = optarg; break;
		case 'o': B.only = optarg; break;
		case 'v': B.verbose = 1; break;
		case 'h': usage(0); break;
		default: usage(2);
		}
	}
	if (optind != argc)
		usage(2);
	setvbuf(stdout, NULL, _IOLBF, 0);
	setup_cleanup();
	affinity_init();
	B.ncpu = affinity_count();
	if (B.ncpu >= 2) {
		B.cpu_a = affinity_nth(0);
		B.cpu_b = affinity_nth(1);
	}
	pin_cpu(B.cpu_a);
	prctl(PR_SET_TIMERSLACK, 1UL);   /* paced sends wake on time */
	read_machine();
	uname(&u);
	now = time(NULL);
	strftime(date_s, sizeof date_s, "%Y-%m-%d %H:%M:%S %Z", localtime(&now));
	loadavg(load_start);
	printf("dh-bench %s, %s run: every case is the median of %d repetitions, interleaved\n", DH_VERSION,
	       B.quick ? "QUICK" : "full", REPS);
	printf("machine: %s, %d CPUs usable, Linux %s; %s\n", cpu_model, B.ncpu, u.release, date_s);
	if (B.cpu_a >= 0)
		printf("pinning: writer/first stage on cpu%d, reader/second stage on cpu%d (fan-out readers unpinned)\n",
		       B.cpu_a, B.cpu_b);
	else
		printf("pinning: not possible (one CPU usable)\n");
	printf("load average at start: %.2f %.2f %.2f\n", load_start[0], load_start[1], load_start[2]);

	t0 = now_ns();
	run_case("throughput", run_throughput);
	run_case("latency", run_latency);
	run_case("pipeline", run_pipeline);
	run_case("lines", run_lines);
	run_case("fan-out", run_fanout);
	run_case("stress", run_stress);
	run_case("idle", run_idle);
	loadavg(load_end);

	table_throughput();
	table_latency();
	table_pipeline();
	table_lines();
	table_fanout();
	table_idle();
	table_iceoryx();
	eval_targets();
	table_targets();
	printf("\nOTHER PROCESSES: CPU used by everything but this harness and its children, in cores\n ");
	for (int i = 0; i < nloads; i++)
		if (loads[i].secs >= 0.05)
			printf("  %s %.2f (%.0f s)", loads[i].name, loads[i].foreign, loads[i].secs);
	printf("\n");
	printf("load average at end: %.2f %.2f %.2f (includes our own processes); %.1f s\n", load_end[0],
	       load_end[1], load_end[2], (double)(now_ns() - t0) / 1e9);
	if (B.json) {
		int rc = write_json(B.json, (double)(now_ns() - t0) / 1e9);
		if (rc < 0)
			die("%s: %s", B.json, strerror(-rc));
		printf("JSON: %s\n", B.json);
	}
	return 0;
}
