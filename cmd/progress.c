/* progress.c: the --progress status of dh-read and dh-write. See LICENSE. */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "dh_stat.h"
#include "progress.h"

struct progress_priv {
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	int stop;                  /* under lock */
	int tty;                   /* redraw one line in place */
	int reader;
	int64_t interval_ns;
	const char *name;
	struct dh_block *b;
	struct dh_snapshot *snap;
	uint64_t t0;               /* CLOCK_MONOTONIC at start */
	uint64_t last_t, last_msgs, last_bytes;
	int broken;                /* stderr failed: stop drawing */
};

void
progress_opt_mode(struct progress_opts *o, const char *arg, const char *synopsis)
{
	char buf[64];

	if (arg == NULL || strcmp(arg, "auto") == 0)
		o->mode = PROGRESS_AUTO;
	else if (strcmp(arg, "log") == 0)
		o->mode = PROGRESS_LOG;
	else
		cli_usage(synopsis, "--progress=%s: auto or log", cli_safe(arg, buf, sizeof buf));
}

void
progress_opt_interval(struct progress_opts *o, const char *arg, const char *synopsis)
{
	char buf[64];
	int64_t ns;

	if (cli_parse_duration(arg, &ns) < 0 || ns < 10000000)
		cli_usage(synopsis, "--progress-interval %s: a duration of at least 10ms",
			  cli_safe(arg, buf, sizeof buf));
	o->interval_ns = ns;
	if (o->mode == PROGRESS_OFF)
		o->mode = PROGRESS_AUTO;
}

static uint64_t
mono_ns(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

static const char *
human(double v, char *buf, size_t cap)
{
	static const char units[] = " KMGTP";
	int u = 0;

	while (v >= 1024 && u < 5) {
		v /= 1024;
		u++;
	}
	if (u)
		snprintf(buf, cap, "%.1f%ciB", v, units[u]);
	else
		snprintf(buf, cap, "%.0fB", v);
	return buf;
}

/* "fill 12%  lag 3" of the writer (the slowest live reader) or "lag 3" of
 * this reader, from a snapshot; "-" where it has no meaning. */
static void
position(struct progress_priv *q, char *fill, size_t fcap, char *lag, size_t lcap)
{
	struct timespec rt;
	struct dh_stat st;
	uint64_t l;
	pid_t me = getpid();

	snprintf(fill, fcap, "-");
	snprintf(lag, lcap, "-");
	if (dh_block_snapshot(q->b, q->snap) != 0)
		return;
	if (!q->reader) {
		clock_gettime(CLOCK_REALTIME, &rt);
		dh_stat_derive(q->snap, (uint64_t)rt.tv_sec * 1000000000u + (uint64_t)rt.tv_nsec, &st);
		if (st.lag_known) {
			snprintf(fill, fcap, "%.0f%%", 100.0 * (double)st.fill / q->snap->cfg.slots);
			snprintf(lag, lcap, "%llu", (unsigned long long)st.lag);
		}
		return;
	}
	for (int i = 1; i < q->snap->nparticipants && i <= DH_READERS_MAX; i++) {
		const struct dh_participant *p = &q->snap->part[i];

		/* our own entry: its lock is ours, so it never looks alive to us */
		if (p->state == DH_P_FREE || p->pid != me)
			continue;
		if (dh_stat_lag(q->snap, i, &l) == 0)
			snprintf(lag, lcap, "%llu", (unsigned long long)l);
		else    /* a queue: what no reader has claimed yet */
			snprintf(lag, lcap, "%llu", (unsigned long long)(q->snap->committed > q->snap->claim_head
									? q->snap->committed - q->snap->claim_head
									: 0));
		return;
	}
}

/* One report: the rates over the last interval, or for the final one over
 * the whole run. */
static void
draw(struct progress *p, int final)
{
	struct progress_priv *q = p->priv;
	uint64_t t = mono_ns(), msgs = atomic_load_explicit(&p->msgs, memory_order_relaxed),
		 bytes = atomic_load_explicit(&p->bytes, memory_order_relaxed);
	uint64_t since = final ? q->t0 : q->last_t;
	double dt = (double)(t - since) / 1e9, el = (double)(t - q->t0) / 1e9;
	double mr = dt > 0 ? (double)(msgs - (final ? 0 : q->last_msgs)) / dt : 0;
	double br = dt > 0 ? (double)(bytes - (final ? 0 : q->last_bytes)) / dt : 0;
	char fill[16], lag[24], b1[24], b2[24], line[320], fills[32] = "";
	int n;

	if (q->broken)
		return;
	position(q, fill, sizeof fill, lag, sizeof lag);
	if (!q->reader)
		snprintf(fills, sizeof fills, " fill %s", fill);
	if (q->tty) {
		unsigned s = (unsigned)el;
		n = snprintf(line, sizeof line, "\r%s  %llu msgs  %.0f msg/s  %s/s %s  lag %s  %u:%02u:%02u%s\033[K%s",
			     human((double)bytes, b1, sizeof b1), (unsigned long long)msgs, mr,
			     human(br, b2, sizeof b2), fills, lag, s / 3600, s / 60 % 60, s % 60,
			     final ? " (avg)" : "", final ? "\n" : "");
	} else {
		n = snprintf(line, sizeof line, "%s: %s: %s%.1fs %llu msgs %llu bytes %.1f msg/s %.1f bytes/s%s lag %s\n",
			     cli_prog, q->name, final ? "done " : "", el, (unsigned long long)msgs,
			     (unsigned long long)bytes, mr, br, fills, lag);
	}
	/* one write per report: lines from several processes sharing a log
	 * never interleave */
	if (n > 0 && cli_write_all(2, line, (size_t)n < sizeof line ? (size_t)n : sizeof line - 1) < 0)
		q->broken = 1;
	q->last_t = t;
	q->last_msgs = msgs;
	q->last_bytes = bytes;
}

static void *
run(void *arg)
{
	struct progress *p = arg;
	struct progress_priv *q = p->priv;
	uint64_t next = q->t0 + (uint64_t)q->interval_ns;

	pthread_mutex_lock(&q->lock);
	while (!q->stop) {
		struct timespec ts = { .tv_sec = (time_t)(next / 1000000000u), .tv_nsec = (long)(next % 1000000000u) };

		if (pthread_cond_timedwait(&q->cond, &q->lock, &ts) != ETIMEDOUT || q->stop)
			continue;
		pthread_mutex_unlock(&q->lock);
		draw(p, 0);
		pthread_mutex_lock(&q->lock);
		next += (uint64_t)q->interval_ns;
		if (next < mono_ns())      /* fell behind (stopped, loaded): keep the cadence, skip the debt */
			next = mono_ns() + (uint64_t)q->interval_ns;
	}
	pthread_mutex_unlock(&q->lock);
	return NULL;
}

struct progress *
progress_start(const struct progress_opts *o, const char *name, struct dh_block *b, int reader)
{
	struct progress *p;
	struct progress_priv *q;
	pthread_condattr_t ca;
	sigset_t all, old;
	int rc;

	if (o->mode == PROGRESS_OFF)
		return NULL;
	if (!(p = calloc(1, sizeof *p)) || !(q = calloc(1, sizeof *q)) || !(q->snap = calloc(1, sizeof *q->snap))) {
		if (p)
			free(p->priv);
		free(p);
		return NULL;
	}
	p->priv = q;
	q->tty = o->mode == PROGRESS_AUTO && isatty(2);
	q->interval_ns = o->interval_ns ? o->interval_ns : q->tty ? 200000000 : 1000000000;
	q->name = name;
	q->b = b;
	q->reader = reader;
	q->t0 = q->last_t = mono_ns();
	pthread_mutex_init(&q->lock, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&q->cond, &ca);
	pthread_condattr_destroy(&ca);
	/* signals stay with the command's thread, whose handlers expect them;
	 * not the faults of the thread's own accesses (a segment truncated
	 * underneath: cli_guard_mapping's SIGBUS), which cannot wait */
	sigfillset(&all);
	sigdelset(&all, SIGBUS);
	sigdelset(&all, SIGSEGV);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	rc = pthread_create(&q->thread, NULL, run, p);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (rc != 0) {
		pthread_cond_destroy(&q->cond);
		pthread_mutex_destroy(&q->lock);
		free(q->snap);
		free(q);
		free(p);
		return NULL;
	}
	return p;
}

void
progress_end(struct progress *p)
{
	struct progress_priv *q;

	if (p == NULL)
		return;
	q = p->priv;
	pthread_mutex_lock(&q->lock);
	q->stop = 1;
	pthread_cond_signal(&q->cond);
	pthread_mutex_unlock(&q->lock);
	pthread_join(q->thread, NULL);
	draw(p, 1);
	pthread_cond_destroy(&q->cond);
	pthread_mutex_destroy(&q->lock);
	free(q->snap);
	free(q);
	free(p);
}
