/* broker_session.c: a registration kept alive by a thread of its own (what dh-write and dh-read use). See LICENSE. */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "broker_impl.h"

#define MS 1000000LL

struct dh_broker_session {
	pthread_t th;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int stop;
	atomic_int cancel;         /* stop, readable without the lock */
	int state;
	struct dh_broker_session_opts o;
	struct dh_broker_client *c;
	char *strs[9];
	int nstrs;
	struct dh_snapshot *snap;
	struct dh_block *blk;
	char token[DH_BROKER_TOKEN_LEN + 1];
	struct {
		uint64_t seq;
		char detail[DH_BROKER_DETAIL_MAX + 1];
	} reports[16];             /* checksum failures to send, under mu */
	unsigned nreports;
};

static int
keep(struct dh_broker_session *s, const char **p)
{
	char *d;

	if (*p == NULL)
		return 0;
	if ((d = strdup(*p)) == NULL)
		return -ENOMEM;
	s->strs[s->nstrs++] = d;
	*p = d;
	return 0;
}

static void
set_state(struct dh_broker_session *s, int state, const char *msg)
{
	int changed;

	pthread_mutex_lock(&s->mu);
	changed = s->state != state;
	s->state = state;
	pthread_mutex_unlock(&s->mu);
	if (changed && s->o.notify)
		s->o.notify(s->o.arg, state, msg);
}

/* Send the queued checksum reports; called and returns with mu held. */
static void
send_reports(struct dh_broker_session *s)
{
	while (s->nreports > 0 && !s->stop) {
		uint64_t seq = s->reports[0].seq;
		char detail[DH_BROKER_DETAIL_MAX + 1];

		memcpy(detail, s->reports[0].detail, sizeof detail);
		memmove(&s->reports[0], &s->reports[1], --s->nreports * sizeof s->reports[0]);
		pthread_mutex_unlock(&s->mu);
		dh_broker_report_checksum(s->c, s->o.reg.channel, s->o.reg.host, s->o.reg.pid, seq,
					  detail[0] ? detail : NULL); /* best effort */
		pthread_mutex_lock(&s->mu);
	}
}

/* Wait up to ns unless stopped, sending checksum reports as they come;
 * 1 if stopped. */
static int
pause_for(struct dh_broker_session *s, int64_t ns)
{
	struct timespec ts;
	int stop;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	ts.tv_sec += (time_t)(ns / 1000000000);
	ts.tv_nsec += (long)(ns % 1000000000);
	if (ts.tv_nsec >= 1000000000) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000;
	}
	pthread_mutex_lock(&s->mu);
	for (;;) {
		send_reports(s);
		if (s->stop || pthread_cond_timedwait(&s->cv, &s->mu, &ts) == ETIMEDOUT)
			break;
	}
	send_reports(s);
	stop = s->stop;
	pthread_mutex_unlock(&s->mu);
	return stop;
}

int
dh_broker_session_report_checksum(struct dh_broker_session *s, uint64_t seq, const char *detail)
{
	int r = 0;

	if (seq > INT64_MAX)
		return -EINVAL;
	pthread_mutex_lock(&s->mu);
	if (s->nreports == sizeof s->reports / sizeof s->reports[0]) {
		r = -ENOBUFS;
	} else {
		s->reports[s->nreports].seq = seq;
		snprintf(s->reports[s->nreports].detail, sizeof s->reports[0].detail, "%s", detail ? detail : "");
		s->nreports++;
		pthread_cond_signal(&s->cv);
	}
	pthread_mutex_unlock(&s->mu);
	return r;
}

static size_t
session_metrics(struct dh_broker_session *s, struct dh_broker_metric *m, size_t cap)
{
	if (s->o.metrics_channel == NULL)
		return 0;
	if (s->blk == NULL && dh_block_open(s->o.metrics_channel, DH_OPEN_RDONLY, &s->blk) < 0)
		return 0;
	if (s->snap == NULL && (s->snap = malloc(sizeof *s->snap)) == NULL)
		return 0;
	if (dh_block_snapshot(s->blk, s->snap) < 0) {
		dh_block_close(s->blk); /* the channel may have been replaced: reopen next time */
		s->blk = NULL;
		return 0;
	}
	return dh_broker_metrics_from_snapshot(s->snap, m, cap);
}

static void *
session_main(void *arg)
{
	struct dh_broker_session *s = arg;
	int64_t hb = 1000 * MS, backoff = 100 * MS;
	struct dh_broker_metric m[DH_BROKER_METRICS_MAX];
	int r;

	for (;;) {
		int64_t wait = hb;

		if (s->token[0] == '\0') {
			if (s->o.role == DH_BROKER_WRITER)
				r = dh_broker_register(s->c, &s->o.reg, s->token, &hb);
			else
				r = dh_broker_register_reader(s->c, &s->o.reg, s->token, &hb);
			if (hb <= 0)
				hb = 1000 * MS;
			if (r == -ECANCELED)
				break;
			if (r == 0) {
				backoff = 100 * MS;
				wait = 0; /* send the first metrics at once */
				set_state(s, 0, "registered");
			} else {
				s->token[0] = '\0';
				set_state(s, r, dh_broker_errmsg(s->c));
				wait = backoff < hb ? backoff : hb;
				backoff *= 2;
			}
		} else {
			size_t n = session_metrics(s, m, DH_BROKER_METRICS_MAX);
			r = dh_broker_heartbeat(s->c, s->token, m, n);
			if (r == -ECANCELED)
				break;
			if (r == -ENOENT) { /* the broker forgot us: register again now */
				s->token[0] = '\0';
				wait = 0;
			} else if (r < 0) {
				set_state(s, r, dh_broker_errmsg(s->c));
			} else {
				set_state(s, 0, "registered");
			}
		}
		if (wait > 0 ? pause_for(s, wait) : pause_for(s, 0))
			break;
	}
	/* Deregister only while the broker answers, and briefly: a broker that
	 * is gone must not delay our exit. It expires us anyway. */
	dh__broker_client_cancel(s->c, NULL);
	if (s->token[0] && dh_broker_session_state(s) == 0) {
		dh__broker_client_limit(s->c, 500 * MS);
		pthread_mutex_lock(&s->mu);
		s->stop = 0; /* let send_reports run: we are leaving anyway */
		send_reports(s);
		s->stop = 1;
		pthread_mutex_unlock(&s->mu);
		dh_broker_deregister(s->c, s->token);
	}
	return NULL;
}

int
dh_broker_session_start(const struct dh_broker_session_opts *opts, struct dh_broker_session **out)
{
	struct dh_broker_session *s;
	pthread_condattr_t ca;
	int r;

	*out = NULL;
	if (opts->reg.channel == NULL || (opts->role != DH_BROKER_WRITER && opts->role != DH_BROKER_READER))
		return -EINVAL;
	if ((s = calloc(1, sizeof *s)) == NULL)
		return -ENOMEM;
	s->o = *opts;
	s->state = 1;
	if ((r = keep(s, &s->o.broker.endpoint)) < 0 || (r = keep(s, &s->o.broker.server_key)) < 0 ||
	    (r = keep(s, &s->o.broker.client_key)) < 0 || (r = keep(s, &s->o.reg.channel)) < 0 ||
	    (r = keep(s, &s->o.reg.host)) < 0 || (r = keep(s, &s->o.reg.label)) < 0 ||
	    (r = keep(s, &s->o.reg.schema)) < 0 || (r = keep(s, &s->o.metrics_channel)) < 0 ||
	    (r = keep(s, &s->o.reg.endpoint)) < 0)
		goto fail;
	if (s->o.reg.pid <= 0)
		s->o.reg.pid = getpid();
	if ((r = dh_broker_connect(&s->o.broker, &s->c)) < 0)
		goto fail;
	atomic_init(&s->cancel, 0);
	dh__broker_client_cancel(s->c, &s->cancel);
	pthread_mutex_init(&s->mu, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&s->cv, &ca);
	pthread_condattr_destroy(&ca);
	if ((r = dh__broker_spawn(&s->th, session_main, s)) < 0) {
		pthread_cond_destroy(&s->cv);
		pthread_mutex_destroy(&s->mu);
		dh_broker_disconnect(s->c);
		goto fail;
	}
	*out = s;
	return 0;
fail:
	while (s->nstrs > 0)
		free(s->strs[--s->nstrs]);
	free(s);
	return r;
}

int
dh_broker_session_state(struct dh_broker_session *s)
{
	int st;

	pthread_mutex_lock(&s->mu);
	st = s->state;
	pthread_mutex_unlock(&s->mu);
	return st;
}

void
dh_broker_session_stop(struct dh_broker_session *s)
{
	if (s == NULL)
		return;
	pthread_mutex_lock(&s->mu);
	s->stop = 1;
	atomic_store(&s->cancel, 1);
	pthread_cond_signal(&s->cv);
	pthread_mutex_unlock(&s->mu);
	pthread_join(s->th, NULL);
	dh_broker_disconnect(s->c);
	if (s->blk)
		dh_block_close(s->blk);
	free(s->snap);
	pthread_cond_destroy(&s->cv);
	pthread_mutex_destroy(&s->mu);
	while (s->nstrs > 0)
		free(s->strs[--s->nstrs]);
	free(s);
}
