/* test_policy.c: the four policies, the start points and the writer API,
 * single process (one writer handle and reader handles, each with its own
 * file description). See LICENSE. */
#include "dhtest.h"

#define SZ 200   /* slot size used here */

static int
next0(struct dh_reader *r, struct dh_msg *m)
{
	memset(m, 0, sizeof *m);
	return dh_reader_next(r, m, 0);
}

/* Write seqs [from, to) with timeout 0; returns the number written. */
static uint64_t
wr(struct dh_writer *w, uint64_t from, uint64_t to)
{
	uint64_t s;

	for (s = from; s < to; s++)
		if (dh_writer_seq(w) != s || pl_write(w, s, SZ, 0) != 0)
			break;
	return s - from;
}

static void
test_latest(void)
{
	char name[DH_NAME_MAX + 1];
	struct dh_writer *w;
	struct dh_reader *r;
	struct dh_msg m;
	int rc, r1, r2, r3;

	tap_chan(name);
	rc = mkchan(name, DH_POLICY_LATEST, 8, SZ, DH_CHECKSUM_XXH3, 4, 0);
	r = ropen(name, DH_START_DEFAULT, 0, 0);
	w = wopen(name);
	ok(rc == 0 && r && w, "latest: create, reader, writer (%s)", estr(rc));
	if (!r || !w) {
		fail_rest(8, "latest");
		goto out;
	}
	r1 = next0(r, &m);
	ok(r1 == -EAGAIN, "latest: empty channel -> -EAGAIN with timeout 0 (%s)", estr(r1));
	ok(wr(w, 0, 5) == 5, "latest: writer writes 5 without waiting");
	r1 = next0(r, &m);
	ok(r1 == 0 && m.seq == 4 && m.lost == 0 && pl_check(m.data, m.len, 4, SZ),
	   "latest: reader gets the newest (seq 4), intact, lost 0 (%s, seq %llu, lost %llu)", estr(r1),
	   (unsigned long long)m.seq, (unsigned long long)m.lost);
	r2 = next0(r, &m);
	ok(r2 == -EAGAIN, "latest: nothing newer -> -EAGAIN (%s)", estr(r2));
	/* lap the ring several times: still the newest, skips are not losses */
	ok(wr(w, 5, 31) == 26, "latest: writer laps the ring three times without waiting");
	r1 = next0(r, &m);
	ok(r1 == 0 && m.seq == 30 && m.lost == 0 && pl_check(m.data, m.len, 30, SZ),
	   "latest: after laps, newest (seq 30), lost 0 (%s, seq %llu, lost %llu)", estr(r1),
	   (unsigned long long)m.seq, (unsigned long long)m.lost);
	wr(w, 31, 32);
	r2 = next0(r, &m);
	r3 = next0(r, &m);
	ok(r2 == 0 && r3 == -EAGAIN && dh_reader_lost(r) == 0,
	   "latest: one more -> seq 31, then drained; dh_reader_lost stays 0 (%s, %s, lost %llu)", estr(r2),
	   estr(r3), (unsigned long long)dh_reader_lost(r));
	/* every read returns the newest at that moment */
	{
		int bad = 0;
		for (uint64_t s = 32; s < 200; s++) {
			uint64_t k = 1 + s % 5;
			wr(w, dh_writer_seq(w), dh_writer_seq(w) + k);
			if (next0(r, &m) != 0 || m.seq != dh_writer_seq(w) - 1 || m.lost != 0 ||
			    !pl_check(m.data, m.len, m.seq, SZ))
				bad++;
		}
		ok(bad == 0, "latest: 168 rounds of 1..5 writes, each read is the newest, intact (%d bad)",
		   bad);
	}
out:
	dh_reader_close(r);
	dh_writer_close(w);
	dh_block_unlink(name, 1, NULL);
}

static void
test_ring(void)
{
	char name[DH_NAME_MAX + 1];
	struct dh_writer *w;
	struct dh_reader *r, *r2;
	struct dh_msg m;
	int rc, bad;

	tap_chan(name);
	rc = mkchan(name, DH_POLICY_RING, 8, SZ, DH_CHECKSUM_XXH3, 4, 0);
	r = ropen(name, DH_START_DEFAULT, 0, 0);
	r2 = ropen(name, DH_START_DEFAULT, 0, 0);
	w = wopen(name);
	ok(rc == 0 && r && r2 && w, "ring: create, 2 readers, writer (%s)", estr(rc));
	if (!r || !r2 || !w) {
		fail_rest(10, "ring");
		goto out;
	}
	/* a reader that keeps up gets everything in order */
	ok(wr(w, 0, 6) == 6, "ring: 6 written");
	bad = 0;
	for (uint64_t s = 0; s < 6; s++)
		if (next0(r2, &m) != 0 || m.seq != s || m.lost != 0 || !pl_check(m.data, m.len, s, SZ))
			bad++;
	ok(bad == 0 && next0(r2, &m) == -EAGAIN, "ring: keeping-up reader gets 0..5 in order, then -EAGAIN");
	/* 20 messages into 8 slots: seqs 12..19 still held, 0..11 overwritten */
	ok(wr(w, 6, 20) == 14, "ring: writer never waits (20 into 8 slots, a reader 20 behind)");
	rc = next0(r, &m);
	ok(rc == 0 && m.seq >= 12 && m.seq < 20 && m.lost == m.seq && pl_check(m.data, m.len, m.seq, SZ),
	   "ring: lapped reader skips ahead with lost == the gap, intact (%s, seq %llu, lost %llu)",
	   estr(rc), (unsigned long long)m.seq, (unsigned long long)m.lost);
	ok(rc == 0 && m.seq == 12 && m.lost == 12,
	   "ring: ... to the oldest still held (12): lost == the 12 overwritten (seq %llu, lost %llu)",
	   (unsigned long long)m.seq, (unsigned long long)m.lost);
	{
		uint64_t l1 = rc == 0 ? m.lost : 0, s0 = rc == 0 ? m.seq + 1 : 20, l2;
		bad = 0;
		for (uint64_t s = s0; s < 20; s++)
			if (next0(r, &m) != 0 || m.seq != s || m.lost != 0 || !pl_check(m.data, m.len, s, SZ))
				bad++;
		ok(bad == 0, "ring: then continues in order to 19 with lost 0");
		rc = next0(r, &m);
		ok(rc == -EAGAIN && dh_reader_lost(r) == l1, "ring: drained, dh_reader_lost == %llu (%s, %llu)",
		   (unsigned long long)l1, estr(rc), (unsigned long long)dh_reader_lost(r));
		/* second lap mid-stream: reader reads 20, writer goes to 45 (37..44 held) */
		wr(w, 20, 22);
		next0(r, &m);
		wr(w, 22, 45);
		rc = next0(r, &m);
		l2 = rc == 0 ? m.lost : 0;
		ok(rc == 0 && m.seq >= 37 && m.seq < 45 && m.lost == m.seq - 21 && dh_reader_lost(r) == l1 + l2 &&
			   pl_check(m.data, m.len, m.seq, SZ),
		   "ring: lapped again at 21 -> seq %llu, lost %llu == gap, total %llu == sum (%s)",
		   (unsigned long long)m.seq, (unsigned long long)m.lost,
		   (unsigned long long)dh_reader_lost(r), estr(rc));
		{
			struct dh_snapshot *sn = snap_alloc();
			int src = snap(name, sn);
			int found = 0;
			for (int i = 1; src == 0 && i < sn->nparticipants; i++)
				if (sn->part[i].state == DH_P_ALIVE && sn->part[i].lost == l1 + l2 &&
				    sn->part[i].pid == getpid())
					found = 1;
			ok(src == 0 && found, "ring: the reader's table entry counts lost == %llu (%s)",
			   (unsigned long long)(l1 + l2), estr(src));
			free(sn);
		}
	}
	/* the keeping-up reader, still at 6, was lapped too */
	rc = next0(r2, &m);
	ok(rc == 0 && m.seq >= 37 && m.lost == m.seq - 6,
	   "ring: other reader, at 6, lapped: lost == gap (%s, seq %llu, lost %llu)", estr(rc),
	   (unsigned long long)m.seq, (unsigned long long)m.lost);
out:
	dh_reader_close(r);
	dh_reader_close(r2);
	dh_writer_close(w);
	dh_block_unlink(name, 1, NULL);
}

static void
test_sync(void)
{
	char name[DH_NAME_MAX + 1];
	struct dh_writer *w;
	struct dh_reader *r, *r2 = NULL;
	struct dh_msg m;
	void *buf;
	size_t cap;
	int rc, bad;
	double t0, dt;

	tap_chan(name);
	rc = mkchan(name, DH_POLICY_SYNC, 4, SZ, DH_CHECKSUM_XXH3, 4, 0);
	r = ropen(name, DH_START_DEFAULT, 0, 0);
	w = wopen(name);
	ok(rc == 0 && r && w, "sync: create, reader, writer (%s)", estr(rc));
	if (!r || !w) {
		fail_rest(16, "sync");
		goto out;
	}
	ok(wr(w, 0, 4) == 4, "sync: 4 writes fill 4 slots without waiting");
	rc = dh_writer_reserve(w, &buf, &cap, 0);
	ok(rc == -EAGAIN, "sync: reader 4 behind: reserve with timeout 0 -> -EAGAIN (%s)", estr(rc));
	if (rc == 0)
		dh_writer_abort(w);
	t0 = tap_now();
	rc = dh_writer_reserve(w, &buf, &cap, 30 * MS);
	dt = tap_now() - t0;
	ok(rc == -ETIMEDOUT && dt >= 0.025 && dt < 3,
	   "sync: reserve with timeout 30ms -> -ETIMEDOUT after >= 30ms (%s, %.3fs)", estr(rc), dt);
	if (rc == 0)
		dh_writer_abort(w);
	rc = pl_write(w, 4, SZ, 10 * MS);
	ok(rc == -ETIMEDOUT && dh_writer_seq(w) == 4,
	   "sync: dh_writer_write with 10ms -> -ETIMEDOUT, seq still 4 (%s)", estr(rc));
	{
		struct dh_snapshot *s = snap_alloc();
		int src = snap(name, s);
		ok(src == 0 && s->writer_waits >= 1 && s->writer_wait_ns >= 20 * MS,
		   "sync: snapshot counts writer waits and wait time (waits %llu, %llu ns)",
		   (unsigned long long)s->writer_waits, (unsigned long long)s->writer_wait_ns);
		free(s);
	}
	/* zero-copy: the slot being read stays held until release */
	rc = next0(r, &m);
	ok(rc == 0 && m.seq == 0 && pl_check(m.data, m.len, 0, SZ), "sync: reader gets seq 0 (%s)", estr(rc));
	rc = dh_writer_reserve(w, &buf, &cap, 0);
	ok(rc == -EAGAIN, "sync: slot of seq 0 still held by the reader before release (%s)", estr(rc));
	if (rc == 0)
		dh_writer_abort(w);
	dh_reader_release(r);
	rc = dh_writer_reserve(w, &buf, &cap, 0);
	ok(rc == 0 && buf && cap == SZ, "sync: after release the writer can reserve (%s, cap %zu)", estr(rc),
	   cap);
	if (rc == 0) {
		size_t len = pl_len(4, SZ);
		pl_fill(buf, 4, len);
		rc = dh_writer_commit(w, len);
	}
	ok(rc == 0 && dh_writer_seq(w) == 5, "sync: commit -> seq 4 published (%s)", estr(rc));
	bad = 0;
	for (uint64_t s = 1; s < 5; s++)
		if (next0(r, &m) != 0 || m.seq != s || !pl_check(m.data, m.len, s, SZ))
			bad++;
	rc = next0(r, &m);
	ok(bad == 0 && rc == -EAGAIN, "sync: reader gets 1..4 in order, then -EAGAIN (%d bad, %s)", bad,
	   estr(rc));
	/* two readers: the writer waits for the slowest */
	r2 = ropen(name, DH_START_NOW, 0, 0);
	ok(r2 != NULL && wr(w, 5, 9) == 4, "sync: second reader attached (start now), 4 more written");
	if (!r2) {
		fail_rest(5, "sync, second reader");
		goto out;
	}
	bad = 0;
	for (uint64_t s = 5; s < 9; s++)
		if (next0(r, &m) != 0 || m.seq != s)
			bad++;
	dh_reader_release(r);
	rc = dh_writer_reserve(w, &buf, &cap, 0);
	ok(bad == 0 && rc == -EAGAIN, "sync: fast reader done, slow one 4 behind: writer blocked (%s)",
	   estr(rc));
	if (rc == 0)
		dh_writer_abort(w);
	rc = next0(r2, &m);
	dh_reader_release(r2);
	ok(rc == 0 && m.seq == 5 && wr(w, 9, 10) == 1 && dh_writer_reserve(w, &buf, &cap, 0) == -EAGAIN,
	   "sync: slow reader reads one -> exactly one more slot (%s)", estr(rc));
	{
		struct dh_snapshot *s = snap_alloc();
		int src = snap(name, s), okp = 0;
		for (int i = 1; src == 0 && i < s->nparticipants; i++)
			if (s->part[i].state == DH_P_ALIVE && s->part[i].position == 6)
				okp++;
		ok(okp == 1 && dh_reader_position(r2) == 6 && dh_reader_position(r) == 9,
		   "sync: positions after release: 9 and 6, also in the table (%llu, %llu)",
		   (unsigned long long)dh_reader_position(r), (unsigned long long)dh_reader_position(r2));
		free(s);
	}
	/* a reader that detaches no longer holds the writer back: r is at 9 */
	dh_reader_close(r2);
	r2 = NULL;
	rc = dh_writer_reserve(w, &buf, &cap, 0);
	if (rc == 0) {
		pl_fill(buf, 10, pl_len(10, SZ));
		rc = dh_writer_commit(w, pl_len(10, SZ));
	}
	ok(rc == 0, "sync: slow reader detached: writer no longer held back (%s)", estr(rc));
	ok(wr(w, 11, 13) == 2 && dh_writer_reserve(w, &buf, &cap, 0) == -EAGAIN,
	   "sync: remaining reader at 9: seqs up to 12 fit, then -EAGAIN");
out:
	dh_reader_close(r);
	dh_reader_close(r2);
	dh_writer_close(w);
	dh_block_unlink(name, 1, NULL);
}

static void
test_queue(void)
{
	char name[DH_NAME_MAX + 1];
	struct dh_writer *w;
	struct dh_reader *r1, *r2, *r3 = NULL;
	struct dh_msg m;
	void *buf;
	size_t cap;
	int rc, got[64], dup = 0, order = 0, bad = 0, n1 = 0, n2 = 0, miss = 0;
	uint64_t last1 = DH_SEQ_NONE, last2 = DH_SEQ_NONE;

	tap_chan(name);
	rc = mkchan(name, DH_POLICY_QUEUE, 8, SZ, DH_CHECKSUM_XXH3, 4, 0);
	r1 = ropen(name, DH_START_DEFAULT, 0, 0);
	r2 = ropen(name, DH_START_DEFAULT, 0, 0);
	w = wopen(name);
	ok(rc == 0 && r1 && r2 && w, "queue: create, 2 readers, writer (%s)", estr(rc));
	if (!r1 || !r2 || !w) {
		fail_rest(13, "queue");
		goto out;
	}
	ok(wr(w, 0, 6) == 6, "queue: 6 written");
	memset(got, 0, sizeof got);
	for (int turn = 0, idle = 0; idle < 2 && turn < 100; turn++) {
		struct dh_reader *r = (turn & 1) ? r2 : r1;
		uint64_t *last = (turn & 1) ? &last2 : &last1;
		rc = next0(r, &m);
		if (rc == -EAGAIN) {
			idle++;
			continue;
		}
		idle = 0;
		if (rc != 0 || m.seq >= 64) {
			bad++;
			continue;
		}
		if (!pl_check(m.data, m.len, m.seq, SZ))
			bad++;
		if (got[m.seq]++)
			dup++;
		if (*last != DH_SEQ_NONE && m.seq <= *last)
			order++;
		*last = m.seq;
		if (turn & 1)
			n2++;
		else
			n1++;
	}
	for (int i = 0; i < 6; i++)
		if (got[i] != 1)
			miss++;
	ok(bad == 0 && dup == 0 && miss == 0 && n1 + n2 == 6,
	   "queue: alternating readers: union is exactly 0..5, none twice, intact (%d bad, %d dup, %d miss)",
	   bad, dup, miss);
	ok(n1 == 3 && n2 == 3, "queue: a claimed message goes to one reader only: 3 + 3 (%d + %d)", n1, n2);
	ok(order == 0, "queue: each reader's messages come in increasing seq order");

	/* unclaimed messages occupy their slots: the writer waits */
	ok(wr(w, 6, 14) == 8, "queue: 8 more fill the 8 slots");
	rc = dh_writer_reserve(w, &buf, &cap, 0);
	ok(rc == -EAGAIN, "queue: all slots unclaimed: reserve -> -EAGAIN (%s)", estr(rc));
	if (rc == 0)
		dh_writer_abort(w);
	rc = next0(r1, &m);
	ok(rc == 0 && m.seq == 6, "queue: r1 claims 6 (%s, seq %llu)", estr(rc), (unsigned long long)m.seq);
	rc = dh_writer_reserve(w, &buf, &cap, 0);
	ok(rc == -EAGAIN, "queue: a claimed, unreleased message still holds its slot (%s)", estr(rc));
	if (rc == 0)
		dh_writer_abort(w);
	dh_reader_release(r1);
	ok(wr(w, 14, 15) == 1, "queue: released -> one more fits (seq 14)");
	/* a reader that closes holding a claim: the message counts as delivered */
	rc = next0(r2, &m);
	ok(rc == 0 && m.seq == 7, "queue: r2 claims 7 (%s)", estr(rc));
	dh_reader_close(r2);
	r2 = NULL;
	bad = 0;
	for (uint64_t s = 8; s < 15; s++)
		if (next0(r1, &m) != 0 || m.seq != s || !pl_check(m.data, m.len, s, SZ))
			bad++;
	rc = next0(r1, &m);
	ok(bad == 0 && rc == -EAGAIN,
	   "queue: r1 gets 8..14; 7, claimed by a closed reader, is not redelivered (%d bad, %s)", bad,
	   estr(rc));
	r3 = ropen(name, DH_START_DEFAULT, 0, 0);
	rc = r3 ? next0(r3, &m) : -9999;
	ok(rc == -EAGAIN, "queue: a new reader finds nothing left (%s)", estr(rc));
	{
		struct dh_snapshot *s = snap_alloc();
		int src = snap(name, s);
		ok(src == 0 && s->queue_lost == 0, "queue: nothing counted lost (%llu)",
		   (unsigned long long)s->queue_lost);
		free(s);
	}
out:
	dh_reader_close(r1);
	dh_reader_close(r2);
	dh_reader_close(r3);
	dh_writer_close(w);
	dh_block_unlink(name, 1, NULL);
}

/* First message for a reader opened with start/seq: rc, and its seq. */
static int
first(const char *name, enum dh_start start, uint64_t seq, uint64_t *got)
{
	struct dh_reader *r = ropen(name, start, seq, 0);
	struct dh_msg m;
	int rc;

	*got = DH_SEQ_NONE;
	if (!r)
		return -9999;
	rc = next0(r, &m);
	if (rc == 0)
		*got = m.seq;
	if (rc == 0 && !pl_check(m.data, m.len, m.seq, SZ))
		rc = -9998;
	dh_reader_close(r);
	return rc;
}

#define NSTART 7
#define NSTART_LAP 5

static void
test_start(enum dh_policy pol)
{
	char name[DH_NAME_MAX + 1];
	const char *pn = dh_policy_name(pol);
	struct dh_writer *w;
	struct dh_reader *r;
	struct dh_msg m;
	uint64_t g;
	int rc;

	tap_chan(name);
	rc = mkchan(name, pol, 8, SZ, DH_CHECKSUM_XXH3, 8, 0);
	w = wopen(name);
	ok(rc == 0 && w && wr(w, 0, 5) == 5, "%s start: 5 written into 8 slots (%s)", pn, estr(rc));
	if (!w) {
		fail_rest(NSTART - 1 + (pol == DH_POLICY_RING ? NSTART_LAP : 0), pn);
		goto out;
	}
	if (pol == DH_POLICY_QUEUE) {
		/* queue readers compete for the shared claim head: whatever the
		 * start point, a new reader gets the next unclaimed message */
		static const enum dh_start st[] = {DH_START_OLDEST, DH_START_LATEST, DH_START_SEQ,
						   DH_START_DEFAULT, DH_START_NOW};
		for (int i = 0; i < 5; i++) {
			rc = first(name, st[i], 3, &g);
			ok(rc == 0 && g == (uint64_t)i, "queue start %d: a new reader gets the next unclaimed, %d (%s, %lld)",
			   (int)st[i], i, estr(rc), (long long)g);
		}
		rc = first(name, DH_START_DEFAULT, 0, &g);
		ok(rc == -EAGAIN, "queue start: all claimed -> nothing for the next reader (%s)", estr(rc));
		goto out;
	}
	/* latest: the reader takes the newest message it has not seen, so the
	 * start point only decides what counts as seen */
	rc = first(name, DH_START_OLDEST, 0, &g);
	ok(rc == 0 && g == (pol == DH_POLICY_LATEST ? 4 : 0), "%s start: OLDEST -> %d (%s, %lld)", pn,
	   pol == DH_POLICY_LATEST ? 4 : 0, estr(rc), (long long)g);
	rc = first(name, DH_START_LATEST, 0, &g);
	ok(rc == 0 && g == 4, "%s start: LATEST -> 4 (%s, %lld)", pn, estr(rc), (long long)g);
	rc = first(name, DH_START_SEQ, 2, &g);
	ok(rc == 0 && g == (pol == DH_POLICY_LATEST ? 4 : 2), "%s start: SEQ 2 -> %d (%s, %lld)", pn,
	   pol == DH_POLICY_LATEST ? 4 : 2, estr(rc), (long long)g);
	rc = first(name, DH_START_DEFAULT, 0, &g);
	if (pol == DH_POLICY_LATEST)
		ok(rc == 0 && g == 4, "%s start: DEFAULT -> newest 4 (%s, %lld)", pn, estr(rc), (long long)g);
	else
		ok(rc == 0 && g == 0, "%s start: DEFAULT -> oldest 0 (%s, %lld)", pn, estr(rc), (long long)g);
	r = ropen(name, DH_START_NOW, 0, 0);
	rc = r ? next0(r, &m) : -9999;
	ok(rc == -EAGAIN, "%s start: NOW -> nothing yet (%s)", pn, estr(rc));
	wr(w, 5, 6);
	rc = r ? next0(r, &m) : -9999;
	ok(rc == 0 && m.seq == 5, "%s start: NOW -> then the next commit, 5 (%s)", pn, estr(rc));
	dh_reader_close(r);
	if (pol == DH_POLICY_RING) {
		/* lap: 20 written, 12..19 held */
		wr(w, 6, 20);
		rc = first(name, DH_START_OLDEST, 0, &g);
		ok(rc == 0 && g == 12, "%s start: OLDEST after laps -> 12 (%s, %lld)", pn, estr(rc), (long long)g);
		rc = first(name, DH_START_SEQ, 3, &g);
		ok(rc == 0 && g == 12, "%s start: SEQ 3, overwritten -> clamped to 12 (%s, %lld)", pn, estr(rc),
		   (long long)g);
		rc = first(name, DH_START_SEQ, 15, &g);
		ok(rc == 0 && g == 15, "%s start: SEQ 15 -> 15 (%s, %lld)", pn, estr(rc), (long long)g);
		rc = first(name, DH_START_LATEST, 0, &g);
		ok(rc == 0 && g == 19, "%s start: LATEST -> 19 (%s, %lld)", pn, estr(rc), (long long)g);
		rc = first(name, DH_START_SEQ, 1000, &g);
		ok((rc == 0 && g == 19) || rc == -EAGAIN,
		   "%s start: SEQ 1000 (future) clamped: 19 or wait for the next (%s, %lld)", pn, estr(rc),
		   (long long)g);
	}
out:
	dh_writer_close(w);
	dh_block_unlink(name, 1, NULL);
}

#define NWAPI 13

static void
test_writer_api(void)
{
	char name[DH_NAME_MAX + 1];
	struct dh_writer *w;
	struct dh_reader *r;
	struct dh_msg m;
	unsigned char big[SZ + 1];
	void *buf;
	size_t cap = 0;
	int rc;
	uint64_t t0, t1;
	struct timespec ts;

	tap_chan(name);
	rc = mkchan(name, DH_POLICY_RING, 4, SZ, DH_CHECKSUM_XXH3, 2, 0);
	r = ropen(name, DH_START_DEFAULT, 0, 0);
	w = wopen(name);
	ok(rc == 0 && r && w && dh_writer_slot_size(w) == SZ && dh_writer_seq(w) == 0,
	   "writer: slot size %d, first seq 0 (%s)", SZ, estr(rc));
	if (!r || !w) {
		fail_rest(NWAPI - 1, "writer api");
		goto out;
	}
	rc = dh_writer_commit(w, 1);
	ok(rc == -EINVAL, "writer: commit without reserve -> -EINVAL (%s)", estr(rc));
	rc = dh_writer_reserve(w, &buf, &cap, 0);
	ok(rc == 0 && cap == SZ, "writer: reserve gives the slot capacity (%s, %zu)", estr(rc), cap);
	if (rc == 0) {
		memset(buf, 'x', cap);
		rc = dh_writer_commit(w, cap + 1);
		dh_writer_abort(w);
	}
	ok(rc == -DH_ETOOBIG, "writer: commit(cap + 1) -> -DH_ETOOBIG (%s)", estr(rc));
	rc = next0(r, &m);
	ok(rc == -EAGAIN && dh_writer_seq(w) == 0, "writer: aborted slot invisible, seq still 0 (%s)", estr(rc));
	memset(big, 'y', sizeof big);
	rc = dh_writer_write(w, big, SZ + 1, 0);
	ok(rc == -DH_ETOOBIG && dh_writer_seq(w) == 0, "writer: write of slot size + 1 -> -DH_ETOOBIG (%s)",
	   estr(rc));
	clock_gettime(CLOCK_REALTIME, &ts);
	t0 = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
	rc = dh_writer_write(w, big, SZ, 0);
	clock_gettime(CLOCK_REALTIME, &ts);
	t1 = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
	ok(rc == 0 && dh_writer_seq(w) == 1, "writer: write of exactly slot size (%s)", estr(rc));
	rc = dh_writer_write(w, big, 0, 0);
	ok(rc == 0 && dh_writer_seq(w) == 2, "writer: empty message (%s)", estr(rc));
	rc = next0(r, &m);
	ok(rc == 0 && m.seq == 0 && m.len == SZ && m.data && memcmp(m.data, big, SZ) == 0 && m.lost == 0,
	   "reader: full-slot message intact (%s, len %zu)", estr(rc), m.len);
	ok(rc == 0 && m.time_ns + 50 * MS >= t0 && m.time_ns <= t1 + 50 * MS,
	   "reader: time_ns is the commit time on CLOCK_REALTIME");
	rc = next0(r, &m);
	ok(rc == 0 && m.seq == 1 && m.len == 0, "reader: empty message delivered with len 0 (%s, len %zu)",
	   estr(rc), m.len);
	/* a reservation left open at close is aborted */
	rc = dh_writer_reserve(w, &buf, &cap, 0);
	if (rc == 0)
		memset(buf, 'z', cap);
	dh_writer_close(w);
	w = wopen(name);
	ok(w && dh_writer_seq(w) == 2 && next0(r, &m) == -EAGAIN,
	   "writer: close with a reservation aborts it; a new writer resumes at seq 2");
	{
		double a = tap_now();
		rc = dh_reader_next(r, &m, 30 * MS);
		a = tap_now() - a;
		ok(rc == -ETIMEDOUT && a >= 0.025 && a < 3,
		   "reader: next with 30ms on a drained channel -> -ETIMEDOUT (%s, %.3fs)", estr(rc), a);
	}
out:
	dh_reader_close(r);
	dh_writer_close(w);
	dh_block_unlink(name, 1, NULL);
}

int
main(void)
{
	plan(9 + 11 + 17 + 14 + 4 * NSTART + NSTART_LAP + NWAPI);
	tap_watch(60, "test_policy");
	test_latest();
	test_ring();
	test_sync();
	test_queue();
	test_start(DH_POLICY_LATEST);
	test_start(DH_POLICY_RING);
	test_start(DH_POLICY_SYNC);
	test_start(DH_POLICY_QUEUE);
	test_writer_api();
	return done();
}
