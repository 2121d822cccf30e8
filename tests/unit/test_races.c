/* test_races.c: eviction, takeover and lost-signal races of issue 19, each
 * reproduced deterministically through the public API. See LICENSE. */
#define TAP_CHAN_TAG "race"
#include "dhtest.h"
#include "dh_cancel.h"
#include "dh_validate.h"

#define SZ 64

static int
mkchan_evict(const char *name, enum dh_policy pol, uint32_t slots, uint64_t evict_ns)
{
	struct dh_config c;

	dh_config_init(&c);
	c.policy = pol;
	c.slots = slots;
	c.slot_size = SZ;
	c.checksum = DH_CHECKSUM_XXH3;
	c.max_readers = 4;
	c.evict_after_ns = evict_ns;
	return dh_block_create(name, &c);
}

/* dh-validate --repair --force with a zero stall threshold: evicts every
 * live reader that holds the writer back.  Returns the problems left. */
static int
force_check(const char *name, int repair)
{
	struct dh_block *b = NULL;
	struct dh_report rep;
	int rc;

	if (dh_block_open(name, 0, &b) < 0)
		return -1;
	rc = dh_check_run(b, repair ? DH_CHECK_REPAIR | DH_CHECK_FORCE : 0, 0, &rep);
	if (rc == 0)
		rc = rep.problems;
	for (size_t i = 0; i < rep.n; i++)
		diag("  finding %s/%s: %s", dh_finding_name(rep.f[i].kind), dh_action_name(rep.f[i].action),
		     rep.f[i].detail);
	dh_report_free(&rep);
	dh_block_close(b);
	return rc;
}

static int
evictions(const char *name)
{
	struct dh_snapshot *s = snap_alloc();
	int n = -1;

	if (s && snap(name, s) == 0)
		n = (int)s->evictions;
	free(s);
	return n;
}

/* Finding 1: a queue reader evicted while it holds a claim. */
static void
queue_evict_live_claim(void)
{
	char name[DH_NAME_MAX + 1];
	struct dh_writer *w = NULL;
	struct dh_reader *a = NULL, *bz = NULL;
	struct dh_msg m, mb;
	int rc, bad = 0;

	tap_chan(name);
	rc = mkchan_evict(name, DH_POLICY_QUEUE, 2, 0);
	w = rc == 0 ? wopen(name) : NULL;
	a = w ? ropen(name, DH_START_DEFAULT, 0, 0) : NULL;
	bz = a ? ropen(name, DH_START_DEFAULT, 0, 0) : NULL;
	if (!w || !a || !bz) {
		fail_rest(9, "queue eviction: setup");
		goto out;
	}
	pl_write(w, 0, SZ, 0);
	rc = dh_reader_next(a, &m, 0);
	ok(rc == 0 && m.seq == 0, "queue: reader A holds message 0 (%s)", estr(rc));
	ok(force_check(name, 1) >= 0 && evictions(name) == 1, "queue: --repair --force evicts A while it works on 0");
	ok(pl_write(w, 1, SZ, 0) == 0, "queue: the writer goes on into the free slot");
	rc = pl_write(w, 2, SZ, 0);
	ok(rc == -EAGAIN, "queue: ... but does not reuse the slot A still holds (%s)", estr(rc));
	ok(pl_check(m.data, m.len, 0, SZ), "queue: A's message is intact while A uses it");
	rc = dh_reader_next(a, &m, 0);
	ok(rc == -DH_EEVICTED, "queue: A learns it was evicted on its next call (%s)", estr(rc));
	/* A's release handed slot 0 back: the stream goes on, nothing lost */
	rc = pl_write(w, 2, SZ, 0);
	ok(rc == 0, "queue: A's release lets the writer reuse the slot (%s)", estr(rc));
	for (uint64_t s = 1; s <= 2; s++) {
		int r2 = dh_reader_next(bz, &mb, 0);
		if (r2 != 0 || mb.seq != s || !pl_check(mb.data, mb.len, s, SZ)) {
			diag("reader B at %llu: %s seq %llu", (unsigned long long)s, estr(r2),
			     (unsigned long long)mb.seq);
			bad++;
		}
	}
	ok(bad == 0, "queue: B gets 1 and 2 intact, never 'corrupt segment'");
	dh_reader_close(bz);
	bz = NULL;
	dh_reader_close(a);
	a = NULL;
	ok(force_check(name, 0) == 0, "queue: the channel checks healthy afterwards");
out:
	dh_reader_close(bz);
	dh_reader_close(a);
	dh_writer_close(w);
	dh_block_unlink(name, 1, NULL);
}

/* Finding 2: the writer's eviction timer outlived the reader it timed. */
static void
sync_timer_occupant(void)
{
	char name[DH_NAME_MAX + 1];
	struct dh_writer *w = NULL;
	struct dh_reader *a = NULL, *bz = NULL;
	struct dh_msg m;
	struct timespec nap = { 0, 150 * MS };
	int rc;

	tap_chan(name);
	rc = mkchan_evict(name, DH_POLICY_SYNC, 4, 100 * MS);
	w = rc == 0 ? wopen(name) : NULL;
	a = w ? ropen(name, DH_START_DEFAULT, 0, 0) : NULL;
	if (!w || !a) {
		fail_rest(3, "sync timer: setup");
		goto out;
	}
	for (uint64_t s = 0; s < 4; s++)
		pl_write(w, s, SZ, 0);
	rc = pl_write(w, 4, SZ, 0);
	ok(rc == -EAGAIN, "sync timer: reader A stalls the writer; its timer starts (%s)", estr(rc));
	/* A consumes what it held up (a sync writer keeps unread messages
	 * for the next reader) and leaves before it is due for eviction */
	for (uint64_t s = 0; s < 4; s++)
		dh_reader_next(a, &m, 0);
	dh_reader_close(a);
	a = NULL;
	/* time passing is the point here, not a condition to await */
	nanosleep(&nap, NULL);
	for (uint64_t s = 4; s < 8; s++)
		pl_write(w, s, SZ, 0);
	bz = ropen(name, DH_START_OLDEST, 0, 0); /* likely index 1 again, behind */
	rc = pl_write(w, 8, SZ, 0);
	ok(rc == -EAGAIN, "sync timer: reader B, newly attached and behind, holds the writer (%s)", estr(rc));
	rc = bz ? dh_reader_next(bz, &m, 0) : -1;
	ok(rc == 0 && m.seq == 4 && evictions(name) == 0,
	   "sync timer: B is not evicted on A's old timer (%s, evictions %d)", estr(rc), evictions(name));
out:
	dh_reader_close(bz);
	dh_reader_close(a);
	dh_writer_close(w);
	dh_block_unlink(name, 1, NULL);
}

/* Finding 3: the writer evicted a sync reader and overwrote the message it
 * was using in place.  Both evictors: dh-validate --force and the writer's
 * own evict_after. */
static void
sync_evict_holder(int by_writer)
{
	const char *who = by_writer ? "evict_after" : "--force";
	char name[DH_NAME_MAX + 1];
	struct dh_writer *w = NULL;
	struct dh_reader *a = NULL;
	struct dh_msg m;
	int rc;

	tap_chan(name);
	rc = mkchan_evict(name, DH_POLICY_SYNC, 2, by_writer ? 50 * MS : 0);
	w = rc == 0 ? wopen(name) : NULL;
	a = w ? ropen(name, DH_START_DEFAULT, 0, 0) : NULL;
	if (!w || !a) {
		fail_rest(5, "sync hold: setup");
		goto out;
	}
	pl_write(w, 0, SZ, 0);
	pl_write(w, 1, SZ, 0);
	rc = dh_reader_next(a, &m, 0);
	ok(rc == 0 && m.seq == 0, "sync hold (%s): A uses message 0 in place (%s)", who, estr(rc));
	if (by_writer) {
		/* the writer waits, then evicts A, and still must not take slot 0 */
		rc = pl_write(w, 2, SZ, 300 * MS);
		ok(rc == -ETIMEDOUT && evictions(name) == 1,
		   "sync hold (%s): the writer evicts A but never overwrites what A holds (%s)", who, estr(rc));
	} else {
		ok(force_check(name, 1) >= 0 && evictions(name) == 1 && pl_write(w, 2, SZ, 0) == -EAGAIN,
		   "sync hold (%s): A evicted, the writer still does not overwrite what A holds", who);
	}
	ok(pl_check(m.data, m.len, 0, SZ), "sync hold (%s): A's message is intact", who);
	rc = dh_reader_next(a, &m, 0);
	ok(rc == -DH_EEVICTED, "sync hold (%s): A's next call says evicted (%s)", who, estr(rc));
	rc = pl_write(w, 2, SZ, 0);
	ok(rc == 0, "sync hold (%s): once A let go, the writer goes on (%s)", who, estr(rc));
out:
	dh_reader_close(a);
	dh_writer_close(w);
	dh_block_unlink(name, 1, NULL);
}

/* An evicted sync reader that held nothing: the writer laps it freely, and
 * it reports eviction, never corruption or checksum failures. */
static void
sync_evict_idle(void)
{
	char name[DH_NAME_MAX + 1];
	struct dh_writer *w = NULL;
	struct dh_reader *a = NULL;
	struct dh_msg m;
	int rc, ok_writes = 0;

	tap_chan(name);
	rc = mkchan_evict(name, DH_POLICY_SYNC, 2, 0);
	w = rc == 0 ? wopen(name) : NULL;
	a = w ? ropen(name, DH_START_DEFAULT, 0, 0) : NULL;
	if (!w || !a) {
		fail_rest(2, "sync idle eviction: setup");
		goto out;
	}
	pl_write(w, 0, SZ, 0);
	pl_write(w, 1, SZ, 0);
	ok(force_check(name, 1) >= 0 && evictions(name) == 1, "sync idle eviction: A evicted at seq 0");
	for (uint64_t s = 2; s < 7; s++)
		ok_writes += pl_write(w, s, SZ, 0) == 0;
	rc = dh_reader_next(a, &m, 0);
	ok(ok_writes == 5 && rc == -DH_EEVICTED, "sync idle eviction: the writer laps A, A says evicted (%d, %s)",
	   ok_writes, estr(rc));
out:
	dh_reader_close(a);
	dh_writer_close(w);
	dh_block_unlink(name, 1, NULL);
}

/* Issue 11: dh_check_run handed the writer's own block judged the writer dead. */
static void
check_in_writer_process(void)
{
	char name[DH_NAME_MAX + 1];
	struct dh_writer *w = NULL, *w2 = NULL;
	struct dh_report rep;
	int rc;

	tap_chan(name);
	rc = mkchan(name, DH_POLICY_RING, 4, SZ, DH_CHECKSUM_XXH3, 2, 0);
	w = rc == 0 ? wopen(name) : NULL;
	if (!w) {
		fail_rest(2, "check in the writer's process: setup");
		goto out;
	}
	pl_write(w, 0, SZ, 0);
	rc = dh_check_run(dh_writer_block(w), DH_CHECK_REPAIR, 0, &rep);
	ok(rc == 0 && rep.problems == 0, "check through the writer's own block: no problem (%s, %d)", estr(rc),
	   rep.problems);
	for (size_t i = 0; i < rep.n; i++)
		diag("  finding %s: %s", dh_finding_name(rep.f[i].kind), rep.f[i].detail);
	dh_report_free(&rep);
	rc = dh_writer_open(name, NULL, &w2, NULL);
	ok(rc == -EBUSY, "... and the live writer still excludes a second one (%s)", estr(rc));
out:
	dh_writer_close(w2);
	dh_writer_close(w);
	dh_block_unlink(name, 1, NULL);
}

/* Finding 6: a cancel raised before a wait starts (a signal that landed
 * between the caller's flag test and the sleep) ends it at once. */
static struct dh_cancel sigcancel;

static void
on_usr1(int sig)
{
	(void)sig;
	dh_cancel_raise(&sigcancel);
}

static void
cancel_waits(void)
{
	char name[DH_NAME_MAX + 1];
	struct dh_writer *w = NULL;
	struct dh_reader *r = NULL;
	struct dh_msg m;
	struct sigaction sa;
	double t0;
	int rc;

	tap_chan(name);
	rc = mkchan(name, DH_POLICY_SYNC, 2, SZ, DH_CHECKSUM_XXH3, 2, 0);
	w = rc == 0 ? wopen(name) : NULL;
	if (!w) {
		fail_rest(5, "cancel: setup");
		goto out;
	}
	dh_cancel_init(&sigcancel);
	dh_writer_set_cancel(w, &sigcancel);
	dh_cancel_raise(&sigcancel);
	t0 = tap_now();
	rc = dh_writer_wait_readers(w, 1, 5 * SEC);
	ok(rc == -EINTR && tap_now() - t0 < 1, "cancel: wait_readers raised beforehand returns -EINTR at once (%s)",
	   estr(rc));
	dh_cancel_reset(&sigcancel);
	r = ropen(name, DH_START_DEFAULT, 0, 0);
	dh_reader_set_cancel(r, &sigcancel);
	dh_cancel_raise(&sigcancel);
	t0 = tap_now();
	rc = r ? dh_reader_next(r, &m, 5 * SEC) : -1;
	ok(rc == -EINTR && tap_now() - t0 < 1, "cancel: a reader's wait for data, raised beforehand (%s)", estr(rc));
	dh_cancel_reset(&sigcancel);
	pl_write(w, 0, SZ, 0);
	pl_write(w, 1, SZ, 0);
	dh_cancel_raise(&sigcancel);
	t0 = tap_now();
	rc = pl_write(w, 2, SZ, 5 * SEC);
	ok(rc == -EINTR && tap_now() - t0 < 1, "cancel: a writer's wait for space, raised beforehand (%s)", estr(rc));
	dh_cancel_reset(&sigcancel);

	/* signals from another process in a tight loop while the reader
	 * waits: it must come back with -EINTR, whenever the one that
	 * raises lands */
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_usr1;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGUSR1, &sa, NULL);
	int fails = 0;
	for (int trial = 0; trial < 50; trial++) {
		pid_t parent = getpid(), k;
		dh_cancel_reset(&sigcancel);
		k = tap_fork();
		if (k == 0) {
			struct timespec d = { 0, (long)(trial % 10) * 100000 };
			nanosleep(&d, NULL);
			kill(parent, SIGUSR1);
			_exit(0);
		}
		while ((rc = dh_reader_next(r, &m, 3 * SEC)) == 0)
			;
		if (rc != -EINTR)
			fails++;
		tap_wait(k, NULL, 5);
	}
	ok(fails == 0, "cancel: 50 signals landing anywhere in a reader's wait each end it (%d missed)", fails);
	signal(SIGUSR1, SIG_DFL);
	ok(dh_cancel_raised(&sigcancel), "cancel: raised state is visible");
out:
	dh_reader_close(r);
	dh_writer_close(w);
	dh_block_unlink(name, 1, NULL);
}

int
main(void)
{
	plan(31);
	tap_watch(120, "test_races");
	queue_evict_live_claim();
	sync_timer_occupant();
	sync_evict_holder(0);
	sync_evict_holder(1);
	sync_evict_idle();
	check_in_writer_process();
	cancel_waits();
	return done();
}
