/* drive.c: the back-to-back (throughput) and paced (latency) protocols. See LICENSE. */
#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"

#define CTL_TIMEOUT_MS 60000
#define PUB_WARM_GAP_NS 1000000u

/* The producer writes every payload byte and the consumer reads every one,
 * whatever the transport: zero-copy must not mean "nobody looked at it".
 * Bytes 16.. hold (seq & 0xff); the consumer XOR-folds them and checks. */
typedef uint64_t v2u64 __attribute__((vector_size(16)));

static void
fill(unsigned char *p, size_t size, const struct mhdr *h)
{
	memcpy(p, h, sizeof *h);
	memset(p + sizeof *h, (int)(h->seq & 0xff), size - sizeof *h);
}

static int
consume(const unsigned char *p, size_t size, uint64_t seq)
{
	v2u64 acc[4] = { { 0, 0 }, { 0, 0 }, { 0, 0 }, { 0, 0 } };
	size_t i = sizeof(struct mhdr), n = (size - i) / 8;
	uint64_t got, want = (seq & 0xff) * 0x0101010101010101ull;

	for (; i + 64 <= size; i += 64)
		for (int k = 0; k < 4; k++) {
			v2u64 v;
			memcpy(&v, p + i + 16 * k, sizeof v);
			acc[k] ^= v;
		}
	acc[0] ^= acc[1] ^ acc[2] ^ acc[3];
	got = acc[0][0] ^ acc[0][1];
	for (; i + 8 <= size; i += 8) {
		uint64_t w;
		memcpy(&w, p + i, 8);
		got ^= w;
	}
	return got == (n % 2 ? want : 0);
}

/* Publish/subscribe that connects asynchronously: messages sent before a
 * subscriber is matched are not delivered to it. */
static int
late_join(const struct xport *x)
{
	return (x->kind == X_ZMQ && x->nreaders > 1) || x->kind == X_IOX;
}

struct rarg {
	struct xport *x;
	struct ctl *ctl;
	int idx;
	uint64_t warm_n;            /* warm-up messages before 'W' (PUB: the first one) */
	uint64_t *lat;              /* paced: lat[seq], lat_n entries */
	uint64_t lat_n;
};

static void
reply(struct ctl *c, int type, int idx, int err, uint64_t count, uint64_t bad, uint64_t t)
{
	struct rres r = { .type = type, .idx = idx, .err = err, .count = count, .bad = bad, .t_end = t };

	ctl_send(c, &r, sizeof r);
}

static void
reader_main(void *arg)
{
	struct rarg *a = arg;
	struct xport *x = a->x;
	uint64_t warm = 0, count = 0, bad = 0, expect = 0;
	int rc, pub = late_join(x);

	x_reader_open(x, a->idx);
	reply(a->ctl, 'R', a->idx, 0, 0, 0, 0);
	for (;;) {
		const unsigned char *p;
		struct mhdr h;

		if ((rc = x_reader_next(x, &p)) <= 0)
			break;
		memcpy(&h, p, sizeof h);
		if (a->lat && !(h.seq & WARM_BIT) && h.seq < a->lat_n)
			a->lat[h.seq] = now_ns() - h.t_send;
		if (!consume(p, x->size, h.seq))
			bad++;
		if (h.seq & WARM_BIT) {
			if (++warm == (pub ? 1 : a->warm_n))
				reply(a->ctl, 'W', a->idx, 0, 0, 0, 0);
			continue;
		}
		if (h.seq != expect)
			bad++;
		expect = h.seq + 1;
		count++;
	}
	reply(a->ctl, 'E', a->idx, rc, count, bad, now_ns());
	x_reader_close(x);
	if (x->kind == X_IOX)
		exit(0);        /* iceoryx's runtime deregisters and removes its /tmp socket in its destructors */
}

/* Wait for one record of type from each of k readers; fills res[idx]. */
static int
gather(struct ctl *c, int k, int type, struct rres *res, char *why, size_t whylen)
{
	int got = 0;

	while (got < k) {
		struct rres r;
		int rc = ctl_recv(c, &r, sizeof r, CTL_TIMEOUT_MS);
		if (rc < 0) {
			snprintf(why, whylen, "reader silent (%s)", rc == -ETIMEDOUT ? "timeout" : "died");
			return -1;
		}
		if (r.type != type || r.idx < 0 || r.idx >= k) {
			snprintf(why, whylen, "reader %d: unexpected record", r.idx);
			return -1;
		}
		if (res)
			res[r.idx] = r;
		got++;
	}
	return 0;
}

/* Pub/sub joins late: repeat warm-up messages until every reader saw one. */
static int
warm_up(struct xport *x, struct ctl *c, uint64_t warm_n, char *why, size_t whylen)
{
	int k = x->nreaders;

	if (late_join(x)) {
		int got = 0;
		for (uint64_t i = 0; got < k; i++) {
			struct mhdr h = { WARM_BIT | i, 0 };
			struct rres r;
			fill(x_writer_begin(x), x->size, &h);
			x_writer_commit(x);
			while (got < k && ctl_recv(c, &r, sizeof r, 1) == 0)
				if (r.type == 'W')
					got++;
			if (i > 20000) {
				snprintf(why, whylen, "subscribers never joined");
				return -1;
			}
		}
		return 0;
	}
	for (uint64_t i = 0; i < warm_n; i++) {
		struct mhdr h = { WARM_BIT | i, 0 };
		fill(x_writer_begin(x), x->size, &h);
		x_writer_commit(x);
	}
	x_writer_flush(x);      /* the readers wait for all of it */
	return gather(c, k, 'W', NULL, why, whylen);
}

static uint64_t
warm_count(const struct xport *x)
{
	uint64_t w = x->kind == X_DH ? 2 * (uint64_t)x->slots : 0;

	return w < 256 ? 256 : w;
}

/* Start the readers and open the writer; -1 with why set on failure. */
static int
start(struct xport *x, int reader_cpu, struct ctl *c, struct rarg *args, pid_t *pids, char *why,
      size_t whylen)
{
	int k = x->nreaders;

	ctl_open(c);
	for (int i = 0; i < k; i++) {
		pids[i] = spawn_fn(reader_cpu, reader_main, &args[i]);
	}
	if (gather(c, k, 'R', NULL, why, whylen) < 0)
		return -1;
	x_writer_open(x);
	return warm_up(x, c, args[0].warm_n, why, whylen);
}

static void
finish(struct xport *x, int opened, struct ctl *c, pid_t *pids)
{
	if (opened)
		x_writer_close(x);
	for (int i = 0; i < x->nreaders; i++) {
		if (pids[i] <= 0)
			continue;
		int st = wait_child(pids[i]);
		if (st != 0)
			note("reader %d exited %d", i, st);
	}
	ctl_close(c);
	x_teardown(x);
}

static int
stream_run(struct xport *x, uint64_t dur_ns, int reader_cpu, struct stream_res *res)
{
	struct rarg args[MAX_READERS];
	struct rres rr[MAX_READERS];
	pid_t pids[MAX_READERS] = { 0 };
	struct ctl c;
	uint64_t t0, deadline, seq = 0, t_end = 0, total = 0;
	int k, rc = -1;

	memset(res, 0, sizeof *res);
	x_setup(x);
	k = x->nreaders;
	for (int i = 0; i < k; i++)
		args[i] = (struct rarg){ .x = x, .ctl = &c, .idx = i, .warm_n = warm_count(x) };
	if (start(x, reader_cpu, &c, args, pids, res->why, sizeof res->why) < 0) {
		kill_children();
		finish(x, 1, &c, pids);
		return -1;
	}
	t0 = now_ns();
	deadline = t0 + dur_ns;
	for (;;) {
		unsigned char *p = x_writer_begin(x);
		struct mhdr h = { seq, 0 };
		fill(p, x->size, &h);
		x_writer_commit(x);
		seq++;
		if ((seq & 31) == 0 && now_ns() >= deadline)
			break;
	}
	x_writer_end(x);
	res->sent = seq;
	if (gather(&c, k, 'E', rr, res->why, sizeof res->why) == 0) {
		rc = 0;
		for (int i = 0; i < k; i++) {
			if (rr[i].err < 0 || rr[i].bad || rr[i].count != seq) {
				res->errors++;
				snprintf(res->why, sizeof res->why,
					 "reader %d: %llu of %llu messages, %llu out of order, code %d", i,
					 (unsigned long long)rr[i].count, (unsigned long long)seq,
					 (unsigned long long)rr[i].bad, rr[i].err);
				rc = -1;
			}
			total += rr[i].count;
			if (rr[i].t_end > t_end)
				t_end = rr[i].t_end;
		}
		res->msgs_s = t_end > t0 ? (double)total * 1e9 / (double)(t_end - t0) : 0;
	} else {
		kill_children();
	}
	finish(x, 1, &c, pids);
	return rc;
}

static int
paced_run(struct xport *x, uint64_t n, uint64_t gap_ns, int spin, int reader_cpu, uint64_t *lat,
	  struct paced_res *res)
{
	struct rarg args[MAX_READERS];
	struct rres rr[MAX_READERS];
	pid_t pids[MAX_READERS] = { 0 };
	struct ctl c;
	struct timespec ts;
	uint64_t next;
	int k, rc = -1;

	memset(res, 0, sizeof *res);
	x_setup(x);
	k = x->nreaders;
	for (int i = 0; i < k; i++)
		args[i] = (struct rarg){ .x = x, .ctl = &c, .idx = i, .warm_n = 64, .lat = lat + (size_t)i * n,
					 .lat_n = n };
	memset(lat, 0xff, (size_t)k * n * sizeof *lat);
	if (start(x, reader_cpu, &c, args, pids, res->why, sizeof res->why) < 0) {
		kill_children();
		finish(x, 1, &c, pids);
		return -1;
	}
	next = now_ns() + gap_ns;
	for (uint64_t i = 0; i < n; i++, next += gap_ns) {
		unsigned char *p;
		struct mhdr h;

		if (spin) {
			/* the writer's core never idles (a halted vCPU wakes slowly
			 * and may come back elsewhere); yielding lets a transport's
			 * own threads (zmq I/O) run */
			while (now_ns() < next)
				sched_yield();
		} else {
			ts.tv_sec = (time_t)(next / 1000000000u);
			ts.tv_nsec = (long)(next % 1000000000u);
			while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
				;
		}
		h.seq = i;
		h.t_send = now_ns();
		p = x_writer_begin(x);
		fill(p, x->size, &h);
		x_writer_commit(x);
	}
	x_writer_end(x);
	res->sent = n;
	if (gather(&c, k, 'E', rr, res->why, sizeof res->why) == 0) {
		rc = 0;
		for (int i = 0; i < k; i++) {
			res->got += rr[i].count;
			if (rr[i].err < 0 || rr[i].bad || rr[i].count != n) {
				res->errors++;
				snprintf(res->why, sizeof res->why,
					 "reader %d: %llu of %llu messages, %llu out of order, code %d", i,
					 (unsigned long long)rr[i].count, (unsigned long long)n,
					 (unsigned long long)rr[i].bad, rr[i].err);
				rc = -1;
			}
		}
	} else {
		kill_children();
	}
	finish(x, 1, &c, pids);
	return rc;
}

/* --- iceoryx: every measurement in a session process of its own ----------------- */

/* An iceoryx runtime is per process and cannot be re-initialised, and a
 * forked copy of one is not a participant of its own: the session process
 * forks its readers before it initialises its runtime as the writer, and
 * ends with exit() so that the runtime deregisters. The results come back
 * through shared memory (lat[] already is). */
struct session {
	struct xport x;
	uint64_t dur_ns, n, gap_ns;
	uint64_t *lat;
	int spin, reader_cpu, paced, rc;
	struct stream_res sres;
	struct paced_res pres;
};

static void
session_main(void *arg)
{
	struct session *s = arg;
	struct xport x = s->x;  /* private: the readers fork with copies of it */

	if (s->paced)
		s->rc = paced_run(&x, s->n, s->gap_ns, s->spin, s->reader_cpu, s->lat, &s->pres);
	else
		s->rc = stream_run(&x, s->dur_ns, s->reader_cpu, &s->sres);
	exit(0);
}

static int
session(struct session *s, char *why, size_t whylen)
{
	pid_t pid;
	int st;

	if (!iox_peer(why, whylen))
		return -1;
	s->rc = -1;
	pid = spawn_fn(B.cpu_a, session_main, s);
	st = wait_child(pid);
	if (st != 0) {
		snprintf(why, whylen, "iceoryx session exited %d", st);
		return -1;
	}
	return 0;
}

int
stream_once(struct xport *x, uint64_t dur_ns, int reader_cpu, struct stream_res *res)
{
	struct session *s;
	int rc;

	if (x->kind != X_IOX)
		return stream_run(x, dur_ns, reader_cpu, res);
	memset(res, 0, sizeof *res);
	s = shared_alloc(sizeof *s);
	s->x = *x;
	s->dur_ns = dur_ns;
	s->reader_cpu = reader_cpu;
	if ((rc = session(s, res->why, sizeof res->why)) == 0) {
		*res = s->sres;
		rc = s->rc;
	}
	shared_free(s, sizeof *s);
	return rc;
}

int
paced_once(struct xport *x, uint64_t n, uint64_t gap_ns, int spin, int reader_cpu, uint64_t *lat,
	   struct paced_res *res)
{
	struct session *s;
	int rc;

	if (x->kind != X_IOX)
		return paced_run(x, n, gap_ns, spin, reader_cpu, lat, res);
	memset(res, 0, sizeof *res);
	s = shared_alloc(sizeof *s);
	s->x = *x;
	s->paced = 1;
	s->n = n;
	s->gap_ns = gap_ns;
	s->lat = lat;
	s->spin = spin;
	s->reader_cpu = reader_cpu;
	if ((rc = session(s, res->why, sizeof res->why)) == 0) {
		*res = s->pres;
		rc = s->rc;
	}
	shared_free(s, sizeof *s);
	return rc;
}
