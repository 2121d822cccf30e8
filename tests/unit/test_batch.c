/* test_batch.c: batched publication (dh_writer_set_batch, dh_writer_flush).
 * Nothing of a batch is visible before it is published, all of it is after,
 * in order and intact; a writer publishes before it waits for space, at
 * end-of-stream and at close; a writer killed mid-batch exposes nothing
 * unpublished and no torn frame, whatever the policy, and a new writer
 * resumes at the published count; batched streams between processes arrive
 * whole and in order. See LICENSE. */
#include <signal.h>
#include <stdatomic.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>

#include "dhtest.h"

#define SZ 64

static const enum dh_policy pols[] = { DH_POLICY_SYNC, DH_POLICY_RING, DH_POLICY_LATEST, DH_POLICY_QUEUE };

static uint64_t
committed_of(const char *name)
{
	struct wbmap wb;
	uint64_t c = UINT64_MAX;

	if (wb_map(name, &wb) == 0) {
		c = atomic_load(&wb.hdr->committed);
		wb_unmap(&wb);
	}
	return c;
}

/* ---- what a batch makes visible, and when ---- */

static void
test_visibility(enum dh_policy pol)
{
	char name[DH_NAME_MAX + 1];
	const char *pn = dh_policy_name(pol);
	struct dh_writer *w;
	struct dh_reader *r;
	struct dh_msg m;
	unsigned cap, one, four;
	int rc, bad = 0, early;
	uint64_t t0 = 0, c3;

	tap_chan(name);
	if (mkchan(name, pol, 16, SZ, DH_CHECKSUM_XXH3, 4, 0) != 0 || !(w = wopen(name))) {
		fail_rest(5, "visibility: setup");
		return;
	}
	r = ropen(name, pol == DH_POLICY_LATEST ? DH_START_DEFAULT : DH_START_OLDEST, 0, 1);
	cap = dh_writer_set_batch(w, 1000);
	one = dh_writer_set_batch(w, 0);
	four = dh_writer_set_batch(w, 4);
	ok(cap == 8 && one == 1 && four == 4, "%s: batch clamped to half the ring (8), 0 means 1, 4 kept (%u %u %u)",
	   pn, cap, one, four);
	for (uint64_t s = 0; s < 3; s++)
		if (pl_write(w, s, SZ, 0) != 0)
			bad++;
	rc = r ? dh_reader_next(r, &m, 0) : -9999;
	c3 = committed_of(name);
	early = rc != -EAGAIN;
	ok(!bad && !early && c3 == 0 && dh_writer_pending(w) == 3 && dh_writer_seq(w) == 3,
	   "%s: 3 commits of a batch of 4: pending 3, committed count 0, a reader sees nothing (%s)", pn, estr(rc));
	/* the 4th commit publishes the batch at once */
	if (pl_write(w, 3, SZ, 0) != 0)
		bad++;
	if (pol == DH_POLICY_LATEST) {
		rc = dh_reader_next(r, &m, 0);
		ok(!bad && rc == 0 && m.seq == 3 && pl_check(m.data, m.len, 3, SZ) && dh_writer_pending(w) == 0,
		   "%s: the 4th commit publishes: the newest (3) is read, intact (%s)", pn, estr(rc));
	} else {
		for (uint64_t s = 0; r && s < 4; s++) {
			rc = dh_reader_next(r, &m, 0);
			if (rc != 0 || m.seq != s || !pl_check(m.data, m.len, s, SZ))
				bad++;
			else if (s == 0)
				t0 = m.time_ns;
			else if (m.time_ns != t0)
				bad++;
		}
		ok(!bad && dh_writer_pending(w) == 0,
		   "%s: the 4th commit publishes: 0..3 read in order, intact, one commit time for the batch (%d bad)",
		   pn, bad);
	}
	/* flush publishes a partial batch */
	if (pl_write(w, 4, SZ, 0) != 0 || pl_write(w, 5, SZ, 0) != 0)
		bad++;
	rc = r ? dh_reader_next(r, &m, 0) : -9999;
	early = rc != -EAGAIN;
	dh_writer_flush(w);
	int got = 0;
	while (r && (rc = dh_reader_next(r, &m, 0)) == 0) {
		if (m.seq < 4 || m.seq > 5 || !pl_check(m.data, m.len, m.seq, SZ))
			bad++;
		got++;
	}
	ok(!bad && !early && got == (pol == DH_POLICY_LATEST ? 1 : 2) && committed_of(name) == 6,
	   "%s: 2 pending are invisible until dh_writer_flush, then read (%d read, %d bad)", pn, got, bad);
	/* end-of-stream publishes what is pending first */
	if (pl_write(w, 6, SZ, 0) != 0)
		bad++;
	dh_writer_eos(w);
	got = 0;
	dh_reader_close(r);
	r = ropen(name, DH_START_SEQ, 6, 0);
	while (r && (rc = dh_reader_next(r, &m, 0)) == 0)
		got += m.seq == 6 && pl_check(m.data, m.len, 6, SZ);
	ok(got == 1 && rc == DH_END, "%s: end-of-stream publishes the pending commit before the mark (%d, %s)", pn, got,
	   estr(rc));
	dh_reader_close(r);
	dh_writer_close(w);
	dh_block_unlink(name, 1, NULL);
}

/* ---- close publishes; a wait for space publishes first ---- */

static void
test_close_and_space(void)
{
	char name[DH_NAME_MAX + 1];
	struct dh_writer *w;
	struct dh_reader *r;
	struct dh_msg m;
	int bad = 0, rc;
	uint64_t c;

	tap_chan(name);
	if (mkchan(name, DH_POLICY_SYNC, 8, SZ, DH_CHECKSUM_XXH3, 4, 0) != 0 || !(w = wopen(name))) {
		fail_rest(3, "close/space: setup");
		return;
	}
	dh_writer_set_batch(w, 3);
	if (pl_write(w, 0, SZ, 0) != 0 || pl_write(w, 1, SZ, 0) != 0)
		bad++;
	dh_writer_close(w);
	c = committed_of(name);
	ok(!bad && c == 2, "sync: dh_writer_close publishes pending commits (committed %llu)", (unsigned long long)c);

	/* a reader that does not read holds the ring: seq 8 must wait for
	 * it, so the writer publishes 6 and 7 (pending: 2..5 went out as a
	 * batch of 4) before it reports
	 * -EAGAIN; otherwise the reader could never get to them */
	r = ropen(name, DH_START_OLDEST, 0, 1);
	w = wopen(name);
	if (!r || !w) {
		fail_rest(2, "close/space: reopen");
		return;
	}
	dh_writer_set_batch(w, 4);
	for (uint64_t s = 2; s < 8; s++)
		if (pl_write(w, s, SZ, 0) != 0)
			bad++;
	c = committed_of(name);
	int pend = (int)dh_writer_pending(w);
	rc = pl_write(w, 8, SZ, 0);
	ok(!bad && c == 6 && pend == 2 && rc == -EAGAIN && dh_writer_pending(w) == 0 && committed_of(name) == 8,
	   "sync: full ring, 2 pending: the writer publishes them before reporting no space (%llu, %d, %s)",
	   (unsigned long long)c, pend, estr(rc));
	for (uint64_t s = 0; s < 8; s++)
		if (dh_reader_next(r, &m, 0) != 0 || m.seq != s || !pl_check(m.data, m.len, s, SZ))
			bad++;
	ok(!bad, "sync: the reader gets 0..7 whole, in order");
	dh_reader_close(r);
	dh_writer_close(w);
	dh_block_unlink(name, 1, NULL);
}

/* ---- a writer killed mid-batch ---- */

/*
 * The child writes 0..9 (published: batch 1), then with a batch of 4
 * commits 10 and 11 (pending: they overwrite the slots of 2 and 3, an
 * 8-slot ring) and reserves 12, half-writing it, and is SIGKILLed.
 */
static void
test_killed_midbatch(enum dh_policy pol)
{
	char name[DH_NAME_MAX + 1];
	const char *pn = dh_policy_name(pol);
	struct dh_reader *r;
	struct dh_writer *w;
	struct dh_msg m;
	int p[2], st, bad = 0, rc = -EINVAL;
	uint64_t c, first = UINT64_MAX, last = 0, lost = 0, n = 0;
	char ch = 0;
	pid_t kid;

	tap_chan(name);
	if (mkchan(name, pol, 8, SZ, DH_CHECKSUM_XXH3, 4, 0) != 0 || pipe(p) < 0) {
		fail_rest(3, "killed mid-batch: setup");
		return;
	}
	kid = tap_fork();
	if (kid == 0) {
		struct dh_writer *cw = wopen(name);
		void *buf;
		size_t cap;
		int e = !cw;

		/* sync and queue writers wait for consumption (sync keeps what
		 * no reader consumed): consume as we go */
		int consume = pol == DH_POLICY_QUEUE || pol == DH_POLICY_SYNC;
		struct dh_reader *q = consume ? ropen(name, DH_START_DEFAULT, 0, 0) : NULL;
		struct dh_msg qm;

		close(p[0]);
		for (uint64_t s = 0; !e && s < 10; s++) {
			e = pl_write(cw, s, SZ, 0) != 0;
			if (!e && consume)
				e = !q || dh_reader_next(q, &qm, 0) != 0;
		}
		dh_reader_close(q);
		if (!e)
			dh_writer_set_batch(cw, 4);
		for (uint64_t s = 10; !e && s < 12; s++)
			e = pl_write(cw, s, SZ, 0) != 0;
		if (!e)
			e = dh_writer_reserve(cw, &buf, &cap, 0) != 0;
		if (!e) {
			memset(buf, 0xEE, cap / 2);
			memcpy(buf, &(uint64_t){12}, 8);
		}
		xwrite(p[1], e ? "E" : "H", 1);
		for (;;)
			pause();
	}
	close(p[1]);
	xread(p[0], &ch, 1);
	close(p[0]);
	kill(kid, SIGKILL);
	tap_wait(kid, &st, 5);
	c = committed_of(name);

	r = ropen(name, pol == DH_POLICY_LATEST ? DH_START_DEFAULT : DH_START_OLDEST, 0, 0);
	while (r && (rc = dh_reader_next(r, &m, 0)) == 0) {
		if (!pl_check(m.data, m.len, m.seq, SZ) || m.seq >= 10 || (n && m.seq != last + 1))
			bad++;
		if (first == UINT64_MAX)
			first = m.seq;
		last = m.seq;
		lost += m.lost;
		n++;
	}
	/* sync and ring start at the oldest slot intact (2 and 3 were
	 * overwritten by the unpublished 10 and 11, 4 by the half-written 12:
	 * a lap, never damage); ring counts them lost, sync had not been
	 * promised them; latest takes the newest; queue had consumed all */
	int want_ok = pol == DH_POLICY_SYNC	? first == 5 && last == 9 && lost == 0
		      : pol == DH_POLICY_RING	? first == 5 && last == 9 && lost == 3
		      : pol == DH_POLICY_LATEST ? n == 1 && last == 9
						: n == 0;
	ok(ch == 'H' && c == 10 && !bad && want_ok && rc == -DH_EWRITERDEAD,
	   "%s: writer killed with 2 pending and 1 half-written: committed stays 10; readers get only published, whole "
	   "messages (%llu..%llu, %llu read, %llu lost, %d bad), then writer-dead (%s)",
	   pn, (unsigned long long)(n ? first : 0), (unsigned long long)last, (unsigned long long)n,
	   (unsigned long long)lost, bad, estr(rc));
	dh_reader_close(r);

	/* a new writer resumes at the published count and rewrites 10.. */
	r = ropen(name, pol == DH_POLICY_LATEST ? DH_START_DEFAULT : DH_START_NOW, 0, 1);
	w = wopen(name);
	rc = w && dh_writer_seq(w) == 10 ? 0 : -1;
	if (w)
		dh_writer_set_batch(w, 4);
	for (uint64_t s = 10; w && !rc && s < 16; s++)
		rc = pl_write(w, s, SZ, 0);
	if (w)
		dh_writer_flush(w);
	n = 0;
	bad = 0;
	while (r && dh_reader_next(r, &m, 0) == 0) {
		if (!pl_check(m.data, m.len, m.seq, SZ) || m.seq < 10 || m.seq > 15)
			bad++;
		n++;
	}
	ok(w && rc == 0 && !bad && n == (pol == DH_POLICY_LATEST ? 1u : 6u),
	   "%s: a new writer resumes at seq 10; its messages are read whole (%llu read, %d bad)", pn,
	   (unsigned long long)n, bad);
	dh_reader_close(r);
	dh_writer_close(w);
	dh_block_unlink(name, 1, NULL);
}

/* ---- batched streams between processes ---- */

#define TOTAL 200000

struct res {
	_Atomic long long count, bad_order, bad_payload, err;
};

static void
reader_proc(const char *name, enum dh_policy pol, struct res *res)
{
	struct dh_reader *r = ropen(name, DH_START_OLDEST, 0, 0);
	struct dh_msg m;
	uint64_t next = 0;
	int rc;

	if (!r) {
		atomic_fetch_add(&res->err, 1);
		_exit(1);
	}
	while ((rc = dh_reader_next(r, &m, 20 * SEC)) == 0) {
		if (!pl_check(m.data, m.len, m.seq, SZ))
			atomic_fetch_add(&res->bad_payload, 1);
		if (pol == DH_POLICY_SYNC ? m.seq != next : m.seq < next)
			atomic_fetch_add(&res->bad_order, 1);
		next = m.seq + 1;
		atomic_fetch_add(&res->count, 1);
	}
	if (rc != DH_END)
		atomic_fetch_add(&res->err, 1);
	dh_reader_close(r);
	_exit(0);
}

static void
test_stream(enum dh_policy pol)
{
	char name[DH_NAME_MAX + 1];
	const char *pn = dh_policy_name(pol);
	struct res *res = mmap(NULL, 2 * sizeof *res, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	int nr = pol == DH_POLICY_QUEUE ? 2 : 1, st, werr = 0;
	struct dh_writer *w;
	pid_t kids[2];
	unsigned seed = 12345;

	tap_chan(name);
	if (res == MAP_FAILED || mkchan(name, pol, 64, SZ, DH_CHECKSUM_XXH3, 4, 0) != 0 || !(w = wopen(name))) {
		fail_rest(1, "batched stream: setup");
		return;
	}
	memset(res, 0, 2 * sizeof *res);
	for (int i = 0; i < nr; i++) {
		kids[i] = tap_fork();
		if (kids[i] == 0)
			reader_proc(name, pol, &res[i]);
	}
	dh_writer_wait_readers(w, (unsigned)nr, 5 * SEC);
	dh_writer_set_batch(w, 16);
	for (uint64_t s = 0; s < TOTAL && !werr; s++) {
		werr = pl_write(w, s, SZ, 20 * SEC) != 0;
		if (pol == DH_POLICY_RING && s % 256 == 0) {
			/* let the lossy reader in now and then, so it both reads
			 * and gets lapped */
			struct timespec d = { 0, 20000 };
			nanosleep(&d, NULL);
		}
		/* flush at random points, as a writer whose source runs dry */
		seed = seed * 1103515245u + 12345u;
		if ((seed >> 16) % 7 == 0)
			dh_writer_flush(w);
	}
	dh_writer_eos(w);
	for (int i = 0; i < nr; i++)
		tap_wait(kids[i], &st, 30);
	long long got = res[0].count + (nr > 1 ? res[1].count : 0);
	long long bad = res[0].bad_order + res[0].bad_payload + res[0].err + res[1].bad_order + res[1].bad_payload +
			res[1].err;
	ok(!werr && bad == 0 && (pol == DH_POLICY_RING ? got > 0 && got <= TOTAL : got == TOTAL),
	   "%s: %d messages in batches of up to 16, flushed at random points: %lld delivered%s, none torn, "
	   "reordered or duplicated (%lld bad)",
	   pn, TOTAL, got, pol == DH_POLICY_RING ? " (ring may lose)" : "", bad);
	dh_writer_close(w);
	munmap(res, 2 * sizeof *res);
	dh_block_unlink(name, 1, NULL);
}

int
main(void)
{
	plan(4 * 5 + 3 + 4 * 2 + 3);
	tap_watch(60, "batch visibility");
	for (size_t i = 0; i < sizeof pols / sizeof pols[0]; i++)
		test_visibility(pols[i]);
	test_close_and_space();
	tap_watch(60, "killed mid-batch");
	for (size_t i = 0; i < sizeof pols / sizeof pols[0]; i++)
		test_killed_midbatch(pols[i]);
	tap_watch(120, "batched streams");
	test_stream(DH_POLICY_SYNC);
	test_stream(DH_POLICY_QUEUE);
	test_stream(DH_POLICY_RING);
	return done();
}
