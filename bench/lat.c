/* lat.c: case 2 (one-way latency, and its physical floor) and case 4b (1 writer,
 * 10 readers, 10 000 msg/s stress). See LICENSE. */
#include <errno.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench.h"

#define WARM 64

struct lvariant {
	const char *key;
	enum xkind kind;
	enum dh_checksum ck;
	int busy;
	int floor;
};

/* --- the floor: one cache line written by one process, polled by the other - */

struct floor_shm {
	_Alignas(64) _Atomic uint64_t seq;
	uint64_t t_send;
	_Alignas(64) _Atomic uint64_t ack;
	_Alignas(64) uint64_t n;
	uint64_t *lat;
};

static void
floor_reader(void *arg)
{
	struct floor_shm *f = arg;

	for (uint64_t i = 1; i <= f->n + WARM; i++) {
		uint64_t t;
		while (atomic_load_explicit(&f->seq, memory_order_acquire) != i)
			;
		t = now_ns();
		if (i > WARM)
			f->lat[i - 1 - WARM] = t - f->t_send;
		atomic_store_explicit(&f->ack, i, memory_order_release);
	}
}

/* One-way samples go to lat[], half round trips to half_rtt[]. */
static int
floor_once(uint64_t n, uint64_t gap, uint64_t *lat, uint64_t *half_rtt, char *why, size_t whylen)
{
	struct floor_shm *f = shared_alloc(sizeof *f);
	uint64_t next;
	pid_t pid;
	int st;

	f->n = n;
	f->lat = lat;
	pid = spawn_fn(B.cpu_b, floor_reader, f);
	next = now_ns() + 1000000;
	for (uint64_t i = 1; i <= n + WARM; i++, next += gap) {
		uint64_t t, deadline;

		while (now_ns() < next)
			sched_yield();
		t = now_ns();
		f->t_send = t;
		atomic_store_explicit(&f->seq, i, memory_order_release);
		deadline = t + 5000000000u;
		for (uint32_t spins = 1; atomic_load_explicit(&f->ack, memory_order_acquire) != i; spins++)
			if ((spins & 0xffff) == 0 && now_ns() > deadline) {
				snprintf(why, whylen, "ping-pong peer stopped answering");
				kill_children();
				shared_free(f, sizeof *f);
				return -1;
			}
		if (i > WARM)
			half_rtt[i - 1 - WARM] = (now_ns() - t) / 2;
	}
	st = wait_child(pid);
	shared_free(f, sizeof *f);
	if (st != 0) {
		snprintf(why, whylen, "ping-pong peer exited %d", st);
		return -1;
	}
	return 0;
}

/* --- rows -------------------------------------------------------------------------- */

struct pstat {
	double p50[REPS], p95[REPS], p99[REPS], p999[REPS], max;
	int n;
};

static void
pstat_add(struct pstat *s, uint64_t *v, size_t n)
{
	sort_u64(v, n);
	s->p50[s->n] = percentile_u64(v, n, 50);
	s->p95[s->n] = percentile_u64(v, n, 95);
	s->p99[s->n] = percentile_u64(v, n, 99);
	s->p999[s->n] = percentile_u64(v, n, 99.9);
	if ((double)v[n - 1] > s->max)
		s->max = (double)v[n - 1];
	s->n++;
}

static void
pstat_conclude(struct pstat *s, struct row *r)
{
	memcpy(r->reps_v, s->p50, sizeof r->reps_v);
	r->nreps = s->n;
	r->p50 = median(s->p50, s->n);
	r->p95 = median(s->p95, s->n);
	r->p99 = median(s->p99, s->n);
	r->p999 = median(s->p999, s->n);
	r->pmax = s->max;
	r->ok = s->n == REPS && !r->errors;
}

void
run_latency(void)
{
	static const struct lvariant lv[] = {
		{ "floor", X_DH, DH_CHECKSUM_NONE, 0, 1 },
		{ "dh-busy-none", X_DH, DH_CHECKSUM_NONE, 1, 0 },
		{ "dh-busy-xxh3", X_DH, DH_CHECKSUM_XXH3, 1, 0 },
		{ "dh-wait-none", X_DH, DH_CHECKSUM_NONE, 0, 0 },
		{ "dh-wait-xxh3", X_DH, DH_CHECKSUM_XXH3, 0, 0 },
		{ "pipe", X_PIPE, DH_CHECKSUM_NONE, 0, 0 },
		{ "unix", X_UNIX, DH_CHECKSUM_NONE, 0, 0 },
		{ "zmq", X_ZMQ, DH_CHECKSUM_NONE, 0, 0 },
		{ "iox-busy", X_IOX, DH_CHECKSUM_NONE, 1, 0 },
		{ "iox-wait", X_IOX, DH_CHECKSUM_NONE, 0, 0 },
	};
	enum { NV = sizeof lv / sizeof *lv };
	uint64_t n = B.quick ? 1500 : 10000, gap = 50000;
	struct pstat ps[NV], half;
	struct row *rows[NV], *rtt = NULL;
	uint64_t *lat = shared_alloc(n * sizeof *lat), *hr = xcalloc(n, sizeof *hr);
	char key[48];

	memset(ps, 0, sizeof ps);
	memset(&half, 0, sizeof half);
	for (int v = 0; v < NV; v++) {
		struct xport x = { .kind = lv[v].kind, .ck = lv[v].ck, .busy = lv[v].busy };
		snprintf(key, sizeof key, "lat.64.%s", lv[v].key);
		rows[v] = want(key) && (x.kind != X_IOX || iox_ok()) ? row_new("latency", key,
					      lv[v].floor ? "floor: cache-line handoff" :
					      lv[v].busy ? x_label(&x) :
					      x.kind == X_DH ? (x.ck ? "libdh xxh3 default wait" : "libdh none default wait") :
					      x_label(&x), 64)
				    : NULL;
		if (lv[v].floor && rows[v])
			rtt = row_new("latency-ref", "lat.64.floor-rtt2", "floor: round trip / 2", 64);
	}
	for (int rep = 0; rep < REPS; rep++)
		for (int v = 0; v < NV; v++) {
			struct row *r = rows[v];
			char why[96] = "";
			int rc;

			if (!r)
				continue;
			if (lv[v].floor) {
				rc = floor_once(n, gap, lat, hr, why, sizeof why);
				if (rc == 0)
					pstat_add(&half, hr, n);
			} else {
				struct xport x;
				struct paced_res res;
				memset(&x, 0, sizeof x);
				x.kind = lv[v].kind;
				x.size = 64;
				x.ck = lv[v].ck;
				x.busy = lv[v].busy;
				x.slots = 256;
				rc = paced_once(&x, n, gap, 1, B.cpu_b, lat, &res);
				if (rc < 0)
					snprintf(why, sizeof why, "%s", res.why);
			}
			if (rc < 0) {
				r->errors++;
				snprintf(r->why, sizeof r->why, "%s", why);
				note("%s rep %d: %s", r->key, rep, why);
				continue;
			}
			r->samples += n;
			pstat_add(&ps[v], lat, n);
			note("%s rep %d: p50 %.0f ns", r->key, rep, ps[v].p50[ps[v].n - 1]);
		}
	for (int v = 0; v < NV; v++)
		if (rows[v])
			pstat_conclude(&ps[v], rows[v]);
	if (rtt) {
		rtt->samples = rows[0]->samples;
		pstat_conclude(&half, rtt);
	}
	shared_free(lat, n * sizeof *lat);
	free(hr);
}

/* 1 writer, 10 readers, 10 000 msg/s: end-to-end latency from the payload's timestamp. */
void
run_stress(void)
{
	static const struct lvariant sv[] = {
		{ "dh-xxh3", X_DH, DH_CHECKSUM_XXH3, 0, 0 },
		{ "pipe", X_PIPE, DH_CHECKSUM_NONE, 0, 0 },
		{ "zmq", X_ZMQ, DH_CHECKSUM_NONE, 0, 0 },
	};
	enum { NV = sizeof sv / sizeof *sv, K = 10, RATE = 10000 };
	/* full: every repetition is the whole 10 s run; quick: 2 s in all, as 5 x 0.4 s */
	uint64_t n = B.quick ? RATE * 2 / REPS : RATE * 10, gap = 1000000000u / RATE;
	struct pstat ps[NV];
	struct row *rows[NV];
	uint64_t *lat = shared_alloc((size_t)K * n * sizeof *lat);
	char key[48];

	memset(ps, 0, sizeof ps);
	for (int v = 0; v < NV; v++) {
		struct xport x = { .kind = sv[v].kind, .ck = sv[v].ck, .nreaders = K };
		snprintf(key, sizeof key, "stress10.64.%s", sv[v].key);
		rows[v] = want(key) ? row_new("stress", key, x_label(&x), 64) : NULL;
	}
	for (int rep = 0; rep < REPS; rep++)
		for (int v = 0; v < NV; v++) {
			struct row *r = rows[v];
			struct xport x;
			struct paced_res res;

			if (!r)
				continue;
			memset(&x, 0, sizeof x);
			x.kind = sv[v].kind;
			x.size = 64;
			x.ck = sv[v].ck;
			x.nreaders = K;
			x.slots = 1024;
			if (paced_once(&x, n, gap, 0, -1, lat, &res) < 0) {
				r->errors++;
				snprintf(r->why, sizeof r->why, "%s", res.why);
				note("%s rep %d: %s", r->key, rep, res.why);
				continue;
			}
			r->samples += res.got;
			pstat_add(&ps[v], lat, (size_t)K * n);
			note("%s rep %d: p50 %.0f ns p99 %.0f ns", r->key, rep, ps[v].p50[ps[v].n - 1],
			     ps[v].p99[ps[v].n - 1]);
		}
	for (int v = 0; v < NV; v++)
		if (rows[v])
			pstat_conclude(&ps[v], rows[v]);
	shared_free(lat, (size_t)K * n * sizeof *lat);
}
