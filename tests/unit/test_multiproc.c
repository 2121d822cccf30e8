/* test_multiproc.c: one writer and forked readers moving 100 000 messages
 * with in-order, no-duplicate, no-torn-payload checks: sync (2 and 4
 * readers, each gets everything), queue (2 and 4 readers, union exactly
 * once), ring (lap detection and lost counts), latest (always newer).
 * Every process opens its own handles after fork; results come back
 * through a shared anonymous mapping. See LICENSE. */
#include <stdatomic.h>

#include "dhtest.h"

#define N 100000
#define SLOT 256
#define MAXR 4

enum mode { M_SYNC, M_QUEUE, M_RING, M_LATEST };

struct res {
	int64_t count;        /* messages received */
	int64_t bad_payload;  /* torn or wrong payloads */
	int64_t bad_order;    /* seq not as the policy promises */
	int64_t bad_lost;     /* m.lost inconsistent with the gap */
	int64_t lost;         /* sum of m.lost */
	int64_t errors;       /* unexpected return codes */
	uint64_t last_seq;
	int end_rc;           /* the code that ended the loop */
	int opened;
};

struct shared {
	struct res r[MAXR];
	_Atomic int64_t progress[MAXR];
	_Atomic int finished[MAXR];
	_Atomic unsigned char seen[N];
};

static struct shared *sh;

static void
reader_child(const char *name, int idx, enum mode mode, int readyfd)
{
	struct res *res = &sh->r[idx];
	struct dh_reader *r = ropen(name, DH_START_DEFAULT, 0, 0);
	struct dh_msg m;
	uint64_t next = 0;    /* next seq expected (sync) / lowest acceptable (others) */
	int rc;

	res->opened = r != NULL;
	xwrite(readyfd, r ? "R" : "E", 1);
	close(readyfd);
	if (!r) {
		atomic_store(&sh->finished[idx], 1);
		_exit(10);
	}
	for (;;) {
		memset(&m, 0, sizeof m);
		rc = dh_reader_next(r, &m, 20 * SEC);
		if (rc != 0)
			break;
		res->count++;
		if (!pl_check(m.data, m.len, m.seq, SLOT))
			res->bad_payload++;
		switch (mode) {
		case M_SYNC:
			if (m.seq != next || m.lost != 0)
				res->bad_order++;
			break;
		case M_QUEUE:
			if (m.seq < next || m.lost != 0)
				res->bad_order++;
			break;
		case M_RING:
			if (m.seq < next)
				res->bad_order++;
			else if (m.lost != m.seq - next)
				res->bad_lost++;
			res->lost += (int64_t)m.lost;
			break;
		case M_LATEST:
			if (m.seq < next)
				res->bad_order++;
			if (m.lost != 0)
				res->bad_lost++;
			break;
		}
		if (m.seq < N)
			atomic_fetch_add(&sh->seen[m.seq], 1);
		res->last_seq = m.seq;
		next = m.seq + 1;
		atomic_store(&sh->progress[idx], res->count);
		if (mode == M_RING && idx == 0 && res->count % 1000 == 0) {
			/* stall until the writer is 200 (> slots) ahead: a sure lap */
			struct dh_hdr *h = dh_reader_block(r)->hdr;
			double end = tap_now() + 5;
			uint64_t c;
			while ((c = atomic_load(&h->committed)) < m.seq + 200 && c < N && tap_now() < end) {
				struct timespec d = {0, 200000};
				nanosleep(&d, NULL);
			}
		}
	}
	res->end_rc = rc;
	atomic_store(&sh->finished[idx], 1);
	if (mode == M_RING && (uint64_t)res->lost != dh_reader_lost(r))
		res->bad_lost++;
	dh_reader_close(r);
	_exit(rc == DH_END ? 0 : 11);
}

static int
progressed(void *arg)
{
	int64_t *since = arg;
	return atomic_load(&sh->progress[0]) != *since || atomic_load(&sh->finished[0]);
}

/* Run one scenario; returns 0 if the writer and every reader finished. */
static int
run(enum mode mode, enum dh_policy pol, int nreaders, uint32_t slots, int pace, double *secs, int *werr)
{
	char name[DH_NAME_MAX + 1];
	pid_t kids[MAXR];
	int p[2], rc, ready = 0, finished = 0;
	struct dh_writer *w = NULL;
	double t0 = tap_now();
	char c;

	memset(sh, 0, sizeof *sh);
	*werr = 0;
	tap_chan(name);
	rc = mkchan(name, pol, slots, SLOT, DH_CHECKSUM_XXH3, 8, 0);
	if (rc != 0 || pipe(p) < 0) {
		diag("create: %s", estr(rc));
		return -1;
	}
	for (int i = 0; i < nreaders; i++) {
		kids[i] = tap_fork();
		if (kids[i] == 0) {
			close(p[0]);
			reader_child(name, i, mode, p[1]);
		}
	}
	close(p[1]);
	for (int i = 0; i < nreaders; i++)
		if (xread(p[0], &c, 1) == 0 && c == 'R')
			ready++;
	close(p[0]);
	if (ready == nreaders)
		w = wopen(name);
	if (w) {
		int64_t since = 0;
		for (uint64_t s = 0; s < N; s++) {
			void *buf;
			size_t cap, len = pl_len(s, SLOT);
			if (pace && s % pace == 0 && s) {
				/* let the paced reader (0) move before the next burst */
				await(progressed, &since, 5);
				since = atomic_load(&sh->progress[0]);
			}
			rc = dh_writer_reserve(w, &buf, &cap, 20 * SEC);
			if (rc == 0 && dh_writer_seq(w) != s)
				rc = -9000;
			if (rc == 0) {
				pl_fill(buf, s, len);
				rc = dh_writer_commit(w, len);
			}
			if (rc != 0) {
				diag("writer at seq %llu: %s", (unsigned long long)s, estr(rc));
				(*werr)++;
				break;
			}
		}
		rc = dh_writer_eos(w);
		if (rc != 0)
			(*werr)++;
	} else {
		diag("readers ready %d/%d, writer %s", ready, nreaders, w ? "open" : "not open");
		(*werr)++;
	}
	for (int i = 0; i < nreaders; i++) {
		int st;
		if (tap_wait(kids[i], &st, 30) && WIFEXITED(st) && WEXITSTATUS(st) == 0)
			finished++;
		else
			diag("reader %d: did not end with DH_END (end rc %d, %lld received)", i, sh->r[i].end_rc,
			     (long long)sh->r[i].count);
	}
	dh_writer_close(w);
	dh_block_unlink(name, 1, NULL);
	*secs = tap_now() - t0;
	return finished == nreaders && *werr == 0 ? 0 : -1;
}

static void
test_sync(int nreaders)
{
	double secs = 0;
	int werr, rc = run(M_SYNC, DH_POLICY_SYNC, nreaders, 64, 0, &secs, &werr);
	int bad = 0;

	for (int i = 0; i < nreaders; i++) {
		struct res *r = &sh->r[i];
		if (r->count != N || r->bad_order || r->bad_payload || r->last_seq != N - 1)
			bad++;
		if (r->count != N || r->bad_order || r->bad_payload)
			diag("sync reader %d: %lld received, %lld out of order, %lld torn", i, (long long)r->count,
			     (long long)r->bad_order, (long long)r->bad_payload);
	}
	ok(rc == 0, "sync, %d readers: writer wrote %d, eos; every reader ended with DH_END (%.2fs)", nreaders, N,
	   secs);
	ok(bad == 0, "sync, %d readers: each got all %d in order, intact, no duplicates", nreaders, N);
}

static void
test_queue(int nreaders)
{
	double secs = 0;
	int werr, rc = run(M_QUEUE, DH_POLICY_QUEUE, nreaders, 64, 0, &secs, &werr);
	int64_t total = 0, order = 0, torn = 0, missing = 0, dup = 0;
	char counts[128];
	size_t off = 0;

	for (int i = 0; i < nreaders; i++) {
		total += sh->r[i].count;
		order += sh->r[i].bad_order;
		torn += sh->r[i].bad_payload;
		off += (size_t)snprintf(counts + off, sizeof counts - off, "%s%lld", i ? "+" : "",
					(long long)sh->r[i].count);
	}
	for (int s = 0; s < N; s++) {
		unsigned v = atomic_load(&sh->seen[s]);
		if (v == 0)
			missing++;
		else if (v > 1)
			dup += v - 1;
	}
	ok(rc == 0, "queue, %d readers: writer wrote %d, eos; every reader ended with DH_END (%.2fs)", nreaders, N,
	   secs);
	ok(total == N && missing == 0 && dup == 0,
	   "queue, %d readers: union is exactly 0..%d, each once (%s; %lld missing, %lld duplicated)", nreaders,
	   N - 1, counts, (long long)missing, (long long)dup);
	ok(order == 0 && torn == 0, "queue, %d readers: each reader's seqs increase; payloads intact (%lld, %lld)",
	   nreaders, (long long)order, (long long)torn);
}

static void
test_ring(void)
{
	double secs = 0;
	int werr, rc;

	/* the writer writes bursts of 500, each after reader 0 moved; reader 0
	 * stalls every 1000 messages until the writer is 200 ahead (a lap each
	 * time); reader 1 runs free */
	rc = run(M_RING, DH_POLICY_RING, 2, 64, 500, &secs, &werr);
	ok(rc == 0, "ring, 2 readers: writer never blocked, both readers ended with DH_END (%.2fs)", secs);
	for (int i = 0; i < 2; i++) {
		struct res *r = &sh->r[i];
		ok(r->count + r->lost == N && r->last_seq == N - 1 && r->bad_order == 0 && r->bad_lost == 0 &&
			   r->bad_payload == 0,
		   "ring reader %d (%s): received %lld + lost %lld == %d, seqs increase, m.lost == gap, intact "
		   "(%lld order, %lld lost-mismatch, %lld torn)",
		   i, i ? "free" : "paced", (long long)r->count, (long long)r->lost, N, (long long)r->bad_order,
		   (long long)r->bad_lost, (long long)r->bad_payload);
	}
	ok(sh->r[0].lost > 0, "ring: the paced reader was lapped (lost %lld)", (long long)sh->r[0].lost);
}

static void
test_latest(void)
{
	double secs = 0;
	int werr, rc = run(M_LATEST, DH_POLICY_LATEST, 2, 16, 0, &secs, &werr);

	ok(rc == 0, "latest, 2 readers: both ended with DH_END (%.2fs)", secs);
	for (int i = 0; i < 2; i++) {
		struct res *r = &sh->r[i];
		ok(r->count > 0 && r->bad_order == 0 && r->bad_lost == 0 && r->bad_payload == 0 &&
			   r->last_seq == N - 1,
		   "latest reader %d: %lld received, always newer, never lost, intact, ends with the last (%llu)", i,
		   (long long)r->count, (unsigned long long)r->last_seq);
	}
}

int
main(void)
{
	sh = mmap(NULL, sizeof *sh, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (sh == MAP_FAILED) {
		perror("mmap");
		return 1;
	}
	plan(2 * 2 + 3 * 2 + 4 + 3);
	tap_watch(50, "sync, 2 readers");
	test_sync(2);
	tap_watch(50, "sync, 4 readers");
	test_sync(4);
	tap_watch(50, "queue, 2 readers");
	test_queue(2);
	tap_watch(50, "queue, 4 readers");
	test_queue(4);
	tap_watch(50, "ring");
	test_ring();
	tap_watch(50, "latest");
	test_latest();
	return done();
}
