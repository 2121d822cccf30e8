/* test_misc.c: metadata zone, unlink refusal, one writer per channel,
 * participant table limits, dh_writer_wait_readers, snapshot counters.
 * See LICENSE. */
#include <pthread.h>
#include <stdatomic.h>

#include "dhtest.h"

#define SZ 100

static int
exists(const char *name)
{
	char path[DH_NAME_MAX + 16];
	struct stat st;

	wb_path(name, path, sizeof path);
	return stat(path, &st) == 0;
}

/* ---- metadata zone ---- */

struct metath {
	struct dh_block *b;
	atomic_int stop;
	atomic_int writes;
};

static void *
meta_writer(void *arg)
{
	struct metath *t = arg;
	unsigned char buf[256];

	for (unsigned k = 0; !atomic_load(&t->stop); k++) {
		size_t len = 1 + (size_t)(k % 256);
		memset(buf, k & 0xff, len);
		if (dh_meta_write(t->b, buf, len) == 0)
			atomic_fetch_add(&t->writes, 1);
	}
	return NULL;
}

static void
test_meta(void)
{
	char name[DH_NAME_MAX + 1], nometa[DH_NAME_MAX + 1];
	struct dh_block *b = NULL, *ro = NULL, *nb = NULL;
	unsigned char buf[512], big[300];
	ssize_t n;
	int rc;

	tap_chan(name);
	rc = mkchan(name, DH_POLICY_RING, 4, SZ, DH_CHECKSUM_XXH3, 2, 256);
	if (rc == 0)
		rc = dh_block_open(name, 0, &b);
	if (rc == 0)
		rc = dh_block_open(name, DH_OPEN_RDONLY, &ro);
	ok(rc == 0 && dh_meta_capacity(b) == 256, "meta: channel with a 256-byte zone, capacity 256 (%s)",
	   estr(rc));
	if (rc != 0) {
		fail_rest(14, "meta");
		goto out;
	}
	n = dh_meta_read(b, buf, sizeof buf);
	ok(n == 0, "meta: fresh zone reads as empty (%zd)", n);
	rc = dh_meta_write(b, "hello", 5);
	n = dh_meta_read(ro, buf, sizeof buf);
	ok(rc == 0 && n == 5 && memcmp(buf, "hello", 5) == 0,
	   "meta: write \"hello\", read back through another (read-only) handle (%s, %zd)", estr(rc), n);
	memset(big, 'M', sizeof big);
	rc = dh_meta_write(b, big, 256);
	n = dh_meta_read(b, buf, sizeof buf);
	ok(rc == 0 && n == 256 && memcmp(buf, big, 256) == 0, "meta: exactly 256 bytes round-trip (%s, %zd)",
	   estr(rc), n);
	rc = dh_meta_write(b, "x", 257);
	ok(rc == -EMSGSIZE, "meta: 257 bytes -> -EMSGSIZE (%s)", estr(rc));
	n = dh_meta_read(b, buf, sizeof buf);
	ok(n == 256 && memcmp(buf, big, 256) == 0, "meta: refused write left the old content (%zd)", n);
	n = dh_meta_read(b, buf, 10);
	ok(n == -ENOBUFS, "meta: read into 10 bytes -> -ENOBUFS (%s)", estr((int)n));
	rc = dh_meta_write(ro, "no", 2);
	ok(rc < 0, "meta: write through a read-only handle refused (%s)", estr(rc));
	rc = dh_meta_write(b, "", 0);
	n = dh_meta_read(b, buf, sizeof buf);
	ok(rc == 0 && n == 0, "meta: empty write -> empty read (%s, %zd)", estr(rc), n);
	/* seqlock: a reader racing a writer never sees a mixed version */
	{
		struct metath t;
		pthread_t tid;
		int mixed = 0, reads = 0, gaveup = 0;
		memset(&t, 0, sizeof t);
		t.b = b;
		pthread_create(&tid, NULL, meta_writer, &t);
		double end = tap_now() + 0.3;
		while (tap_now() < end || atomic_load(&t.writes) < 1000) {
			n = dh_meta_read(ro, buf, sizeof buf);
			reads++;
			if (n == -EBUSY) {
				gaveup++;   /* starved by the writer: an error, not data */
				continue;
			}
			if (n < 0 || n > 256) {
				if (mixed++ < 3)
					diag("unexpected dh_meta_read result %zd (%s)", n, estr((int)n));
				continue;
			}
			for (ssize_t i = 1; i < n; i++)
				if (buf[i] != buf[0])
					mixed++;
			if (n > 0 && (size_t)n != 1 + (size_t)buf[0]) /* version k: 1 + k%256 bytes of k */
				mixed++;
			if (tap_now() > end + 5)
				break;
		}
		atomic_store(&t.stop, 1);
		pthread_join(tid, NULL);
		ok(mixed == 0, "meta: %d reads racing %d writes: never a mixed version (%d gave up)", reads,
		   atomic_load(&t.writes), gaveup);
	}
	/* corrupt the stored bytes: the checksum catches it */
	{
		struct wbmap m;
		rc = dh_meta_write(b, "checked", 7);
		if (rc == 0 && wb_map(name, &m) == 0) {
			struct dh_meta *mz = (struct dh_meta *)(void *)(m.base + m.hdr->meta_off);
			unsigned cur = (atomic_load(&mz->seq) >> 1) & 1;   /* the current copy */
			m.base[m.hdr->meta_off + sizeof(struct dh_meta) + cur * 256 + 2] ^= 0x20;
			n = dh_meta_read(b, buf, sizeof buf);
			wb_unmap(&m);
		} else {
			n = -9999;
		}
		ok(n == -DH_ECHECKSUM, "meta: a damaged byte -> -DH_ECHECKSUM (%s)", estr((int)n));
	}
	/* an updater that died inside leaves seq odd and its copy half
	 * written: readers keep the intact copy, the next writer goes on */
	{
		struct wbmap m;
		ssize_t n2 = -9999;
		double t0 = 0, dt = -1;
		rc = dh_meta_write(b, "before", 6);
		if (rc == 0 && wb_map(name, &m) == 0) {
			struct dh_meta *mz = (struct dh_meta *)(void *)(m.base + m.hdr->meta_off);
			unsigned other = ((atomic_load(&mz->seq) >> 1) + 1) & 1;
			atomic_fetch_add(&mz->seq, 1);  /* odd: "being written" */
			memset(m.base + m.hdr->meta_off + sizeof(struct dh_meta) + other * 256, '#', 100);
			mz->length[other] = 100;  /* its check was never stored */
			n = dh_meta_read(b, buf, sizeof buf);
			if (n != 6 || memcmp(buf, "before", 6) != 0)
				n = -9998;
			t0 = tap_now();
			rc = dh_meta_write(b, "after", 5);
			dt = tap_now() - t0;
			n2 = dh_meta_read(b, buf, sizeof buf);
			wb_unmap(&m);
		} else {
			n = -9999;
		}
		ok(n == 6, "meta: zone left odd with a half-written copy by a dead updater: read -> the old "
		   "content at once (%zd)", n);
		ok(rc == 0 && dt < 1 && n2 == 5 && memcmp(buf, "after", 5) == 0,
		   "meta: the next write takes the zone over without waiting for a timer (%s, %.3fs), reads the new "
		   "content (%zd)", estr(rc), dt, n2);
	}
	/* no zone */
	tap_chan(nometa);
	rc = mkchan(nometa, DH_POLICY_RING, 4, SZ, DH_CHECKSUM_XXH3, 2, 0);
	if (rc == 0)
		rc = dh_block_open(nometa, 0, &nb);
	ok(rc == 0 && dh_meta_capacity(nb) == 0 && dh_meta_read(nb, buf, sizeof buf) == -ENODEV,
	   "meta: channel without a zone: capacity 0, read -> -ENODEV (%s)", estr(rc));
	ok(rc == 0 && dh_meta_write(nb, "x", 1) == -ENODEV, "meta: channel without a zone: write -> -ENODEV");
	dh_block_close(nb);
	dh_block_unlink(nometa, 1, NULL);
out:
	dh_block_close(b);
	dh_block_close(ro);
	dh_block_unlink(name, 1, NULL);
}

/* ---- unlink ---- */

static void
test_unlink(void)
{
	char name[DH_NAME_MAX + 1];
	struct dh_writer *w;
	struct dh_reader *r;
	struct dh_block *b = NULL;
	pid_t holder = 0, kid;
	int rc, p[2], st;
	char c;

	tap_chan(name);
	rc = mkchan(name, DH_POLICY_SYNC, 4, SZ, DH_CHECKSUM_XXH3, 2, 0);
	w = wopen(name);
	rc = dh_block_unlink(name, 0, &holder);
	ok(rc == -EBUSY && holder == getpid() && exists(name),
	   "unlink while a writer is alive -> -EBUSY, holder = writer's pid (%s, %ld)", estr(rc), (long)holder);
	dh_writer_close(w);
	r = ropen(name, DH_START_DEFAULT, 0, 0);
	holder = 0;
	rc = dh_block_unlink(name, 0, &holder);
	ok(rc == -EBUSY && holder == getpid() && exists(name),
	   "unlink while a reader is alive -> -EBUSY, holder = reader's pid (%s, %ld)", estr(rc), (long)holder);
	dh_reader_close(r);
	dh_block_open(name, DH_OPEN_RDONLY, &b);
	rc = dh_block_unlink(name, 0, NULL);
	ok(rc == 0 && !exists(name), "all closed (an inspection handle open): unlink works (%s)", estr(rc));
	dh_block_close(b);
	ok(dh_block_open(name, DH_OPEN_RDONLY, &b) == -ENOENT, "unlinked channel: open -> -ENOENT");

	/* force with a live reader */
	mkchan(name, DH_POLICY_SYNC, 4, SZ, DH_CHECKSUM_XXH3, 2, 0);
	r = ropen(name, DH_START_DEFAULT, 0, 0);
	rc = dh_block_unlink(name, 1, NULL);
	ok(r && rc == 0 && !exists(name), "unlink with force while a reader is alive works (%s)", estr(rc));
	{
		struct dh_msg m;
		rc = r ? dh_reader_next(r, &m, 0) : -9999;
		ok(rc == -EAGAIN, "the orphaned reader keeps working on its mapping (%s)", estr(rc));
	}
	dh_reader_close(r);

	/* a reader in another process; dead participants do not count */
	mkchan(name, DH_POLICY_SYNC, 4, SZ, DH_CHECKSUM_XXH3, 2, 0);
	if (pipe(p) < 0) {
		fail_rest(2, "unlink vs. other process");
		return;
	}
	kid = tap_fork();
	if (kid == 0) {
		struct dh_reader *cr = ropen(name, DH_START_DEFAULT, 0, 0);
		close(p[0]);
		xwrite(p[1], cr ? "R" : "E", 1);
		for (;;)
			pause();
	}
	close(p[1]);
	c = 0;
	xread(p[0], &c, 1);
	close(p[0]);
	holder = 0;
	rc = dh_block_unlink(name, 0, &holder);
	ok(c == 'R' && rc == -EBUSY && holder == kid, "reader in another process: -EBUSY, holder = its pid (%s, %ld vs %ld)",
	   estr(rc), (long)holder, (long)kid);
	kill(kid, SIGKILL);
	tap_wait(kid, &st, 5);
	rc = dh_block_unlink(name, 0, &holder);
	ok(rc == 0 && !exists(name), "that reader SIGKILLed: unlink without force works (%s)", estr(rc));
}

/* ---- one writer ---- */

static void
test_one_writer(void)
{
	char name[DH_NAME_MAX + 1];
	struct dh_writer *w1, *w2 = NULL;
	pid_t holder = 0, kid, first = 0;
	int rc, p[2], st;
	char c = 0;

	tap_chan(name);
	mkchan(name, DH_POLICY_RING, 4, SZ, DH_CHECKSUM_XXH3, 2, 0);
	w1 = wopen(name);
	rc = dh_writer_open(name, NULL, &w2, &holder);
	ok(w1 && rc == -EBUSY && holder == getpid(), "second writer (same process) -> -EBUSY, holder pid (%s, %ld)",
	   estr(rc), (long)holder);
	if (rc == 0)
		dh_writer_close(w2);
	dh_writer_close(w1);
	w2 = NULL;
	rc = dh_writer_open(name, NULL, &w2, NULL);
	ok(rc == 0, "after the first writer closes, a new one opens (%s)", estr(rc));
	dh_writer_close(w2);
	w2 = NULL;

	if (pipe(p) < 0) {
		fail_rest(3, "one writer across processes");
		return;
	}
	kid = tap_fork();
	if (kid == 0) {
		struct dh_writer *cw = wopen(name);
		close(p[0]);
		xwrite(p[1], cw ? "W" : "E", 1);
		for (;;)
			pause();
	}
	close(p[1]);
	xread(p[0], &c, 1);
	close(p[0]);
	holder = 0;
	rc = dh_writer_open(name, NULL, &w2, &holder);
	{
		struct dh_block *b = NULL;
		int alive = -1;
		if (dh_block_open(name, DH_OPEN_RDONLY, &b) == 0) {
			alive = dh_block_alive(b, &first);
			dh_block_close(b);
		}
		ok(c == 'W' && rc == -EBUSY && holder == kid && alive == 1 && first == kid,
		   "writer in another process: -EBUSY with its pid; dh_block_alive 1, that pid (%s, %ld, %d, %ld)",
		   estr(rc), (long)holder, alive, (long)first);
	}
	if (rc == 0)
		dh_writer_close(w2);
	w2 = NULL;
	kill(kid, SIGKILL);
	tap_wait(kid, &st, 5);
	rc = dh_writer_open(name, NULL, &w2, &holder);
	ok(rc == 0, "that writer SIGKILLed: its lock is gone, a new writer opens (%s)", estr(rc));
	{
		struct dh_snapshot *s = snap_alloc();
		int src = snap(name, s);
		ok(src == 0 && s->part[0].index == 0 && s->part[0].state == DH_P_ALIVE && s->part[0].pid == getpid(),
		   "snapshot: writer entry alive with the new pid (%s, state %d, pid %ld)", estr(src),
		   (int)s->part[0].state, (long)s->part[0].pid);
		free(s);
	}
	dh_writer_close(w2);
	dh_block_unlink(name, 1, NULL);
}

/* ---- participant table ---- */

static void
test_table(void)
{
	char name[DH_NAME_MAX + 1];
	struct dh_reader *r1, *r2, *r3 = NULL;
	int rc, p[2], st;
	pid_t kid;
	char c = 0;

	tap_chan(name);
	mkchan(name, DH_POLICY_RING, 4, SZ, DH_CHECKSUM_XXH3, 2, 0);
	r1 = ropen(name, DH_START_DEFAULT, 0, 0);
	r2 = ropen(name, DH_START_DEFAULT, 0, 0);
	rc = dh_reader_open(name, NULL, &r3);
	ok(r1 && r2 && rc == -ENOSPC, "max_readers 2: a third reader -> -ENOSPC (%s)", estr(rc));
	if (rc == 0)
		dh_reader_close(r3);
	r3 = NULL;
	dh_reader_close(r1);
	rc = dh_reader_open(name, NULL, &r3);
	ok(rc == 0, "one detached: the third reader gets its entry (%s)", estr(rc));
	dh_reader_close(r3);
	dh_reader_close(r2);
	r3 = NULL;

	/* entries held by dead processes are reclaimed by a new reader */
	if (pipe(p) < 0) {
		fail_rest(1, "table reclaim");
		return;
	}
	kid = tap_fork();
	if (kid == 0) {
		struct dh_reader *a = ropen(name, DH_START_DEFAULT, 0, 0);
		struct dh_reader *b = ropen(name, DH_START_DEFAULT, 0, 0);
		close(p[0]);
		xwrite(p[1], a && b ? "R" : "E", 1);
		for (;;)
			pause();
	}
	close(p[1]);
	xread(p[0], &c, 1);
	close(p[0]);
	kill(kid, SIGKILL);
	tap_wait(kid, &st, 5);
	rc = dh_reader_open(name, NULL, &r3);
	ok(c == 'R' && rc == 0, "table full of entries of a SIGKILLed process: a new reader still attaches (%s)",
	   estr(rc));
	dh_reader_close(r3);
	dh_block_unlink(name, 1, NULL);
}

/* ---- wait_readers ---- */

struct openth {
	const char *name;
	struct dh_reader *r;
};

static void *
open_later(void *arg)
{
	struct openth *t = arg;
	struct timespec d = {0, 20 * 1000000};

	nanosleep(&d, NULL); /* not synchronisation: either order must work */
	t->r = ropen(t->name, DH_START_DEFAULT, 0, 0);
	return NULL;
}

static void
test_wait_readers(void)
{
	char name[DH_NAME_MAX + 1];
	struct dh_writer *w;
	struct openth t;
	pthread_t tid;
	int rc, rc2;

	tap_chan(name);
	mkchan(name, DH_POLICY_SYNC, 4, SZ, DH_CHECKSUM_XXH3, 4, 0);
	w = wopen(name);
	if (!w) {
		fail_rest(3, "wait_readers");
		return;
	}
	rc = dh_writer_wait_readers(w, 1, 0);
	rc2 = dh_writer_wait_readers(w, 1, 20 * MS);
	ok(rc == -EAGAIN && rc2 == -ETIMEDOUT, "wait_readers(1) with none: -EAGAIN / -ETIMEDOUT (%s, %s)",
	   estr(rc), estr(rc2));
	t.name = name;
	t.r = NULL;
	pthread_create(&tid, NULL, open_later, &t);
	rc = dh_writer_wait_readers(w, 1, 5 * SEC);
	pthread_join(tid, NULL);
	ok(rc == 0 && t.r, "wait_readers(1) returns when a reader attaches (%s)", estr(rc));
	rc = dh_writer_wait_readers(w, 2, 20 * MS);
	ok(rc == -ETIMEDOUT, "wait_readers(2) with one -> -ETIMEDOUT (%s)", estr(rc));
	dh_reader_close(t.r);
	dh_writer_close(w);
	dh_block_unlink(name, 1, NULL);
}

/* ---- snapshot ---- */

static void
test_snapshot(void)
{
	char name[DH_NAME_MAX + 1];
	struct dh_writer *w = NULL;
	struct dh_reader *r = NULL;
	struct dh_reader_opts o;
	struct dh_snapshot *s = snap_alloc();
	struct dh_msg m;
	struct timespec ts;
	uint64_t t0, bytes = 0;
	int rc, ri = -1, nfree = 0, src;

	clock_gettime(CLOCK_REALTIME, &ts);
	t0 = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
	tap_chan(name);
	rc = mkchan(name, DH_POLICY_RING, 16, SZ, DH_CHECKSUM_XXH3, 3, 0);
	memset(&o, 0, sizeof o);
	o.label = "the-reader";
	if (rc == 0)
		rc = dh_reader_open(name, &o, &r);
	if (rc == 0)
		rc = dh_writer_open(name, "the-writer", &w, NULL);
	for (uint64_t i = 0; rc == 0 && i < 10; i++) {
		pl_write(w, i, SZ, 0);
		bytes += pl_len(i, SZ);
	}
	for (int i = 0; rc == 0 && i < 10; i++)
		dh_reader_next(r, &m, 0);
	src = snap(name, s);
	for (int i = 1; src == 0 && i < s->nparticipants; i++) {
		if (s->part[i].state == DH_P_ALIVE)
			ri = i;
		else if (s->part[i].state == DH_P_FREE)
			nfree++;
	}
	ok(rc == 0 && src == 0 && s->cfg.slots == 16 && s->cfg.slot_size == SZ && s->cfg.max_readers == 3 &&
		   s->cfg.policy == DH_POLICY_RING && s->nparticipants == 4 && s->creator_pid == (uint32_t)getpid() &&
		   s->creator_uid == (uint32_t)getuid() && s->created_ns + 1000000000u >= t0 &&
		   s->created_ns <= t0 + 60 * 1000000000ull,
	   "snapshot: geometry, 1 + max_readers entries, creator pid/uid, creation time (%s, %s)", estr(rc),
	   estr(src));
	ok(src == 0 && s->committed == 10 && s->messages_written == 10 && s->bytes_written == bytes && s->eos == 0,
	   "snapshot: committed 10, messages 10, bytes %llu written (%llu, %llu, %llu)",
	   (unsigned long long)bytes, (unsigned long long)s->committed, (unsigned long long)s->messages_written,
	   (unsigned long long)s->bytes_written);
	ok(src == 0 && s->part[0].state == DH_P_ALIVE && s->part[0].pid == getpid() &&
		   strcmp(s->part[0].name, "the-writer") == 0 && s->part[0].position == 10,
	   "snapshot: writer entry alive, pid, label, position 10 (\"%s\", %llu)", s->part[0].name,
	   (unsigned long long)s->part[0].position);
	ok(ri > 0 && nfree == 2 && strcmp(s->part[ri].name, "the-reader") == 0 && s->part[ri].pid == getpid() &&
		   s->part[ri].messages == 10 && s->part[ri].bytes == bytes && s->part[ri].position == 10 &&
		   s->part[ri].lost == 0 && s->part[ri].last_active_ns + 1000000000u >= t0,
	   "snapshot: reader entry: label, pid, 10 messages, bytes, position 10, activity; 2 free entries");
	dh_reader_close(r);
	dh_writer_close(w);
	src = snap(name, s);
	nfree = 0;
	for (int i = 0; src == 0 && i < s->nparticipants; i++)
		if (s->part[i].state == DH_P_FREE)
			nfree++;
	ok(src == 0 && nfree == 4, "snapshot: after close every entry is free (%d/4)", nfree);
	free(s);
	dh_block_unlink(name, 1, NULL);
}

/* ---- --evict-after ---- */

static void
test_evict(void)
{
	char name[DH_NAME_MAX + 1];
	struct dh_config c;
	struct dh_writer *w = NULL;
	struct dh_reader *stall = NULL, *good = NULL;
	struct dh_snapshot *s = snap_alloc();
	struct dh_msg m;
	int rc, src, bad = 0, st = -1;
	double t0, dt = -1;

	tap_chan(name);
	dh_config_init(&c);
	c.policy = DH_POLICY_SYNC;
	c.slots = 4;
	c.slot_size = SZ;
	c.max_readers = 4;
	c.evict_after_ns = 100 * MS;
	rc = dh_block_create(name, &c);
	stall = ropen(name, DH_START_DEFAULT, 0, 0);
	good = ropen(name, DH_START_DEFAULT, 0, 0);
	w = wopen(name);
	if (rc != 0 || !stall || !good || !w) {
		fail_rest(3, "evict-after");
		goto out;
	}
	for (uint64_t i = 0; i < 4; i++)
		if (pl_write(w, i, SZ, 0) != 0 || dh_reader_next(good, &m, 0) != 0)
			bad++;
	dh_reader_release(good);
	t0 = tap_now();
	rc = pl_write(w, 4, SZ, 5 * SEC);
	dt = tap_now() - t0;
	ok(bad == 0 && rc == 0 && dt >= 0.05 && dt < 5,
	   "evict-after 100ms: a writer stalled by a live reader that never reads resumes (%s, %.3fs)", estr(rc), dt);
	src = snap(name, s);
	for (int i = 1; src == 0 && i < s->nparticipants; i++)
		if (s->part[i].state == DH_P_EVICTED)
			st = i;
	ok(src == 0 && s->evictions == 1 && st > 0, "evict-after: snapshot evictions 1, the entry shows EVICTED (%llu)",
	   (unsigned long long)s->evictions);
	rc = dh_reader_next(stall, &m, 0);
	ok(rc == -DH_EEVICTED && dh_reader_next(good, &m, 0) == 0 && m.seq == 4,
	   "evict-after: the stalled reader gets -DH_EEVICTED; the other reader continues (%s)", estr(rc));
out:
	dh_reader_close(stall);
	dh_reader_close(good);
	dh_writer_close(w);
	free(s);
	dh_block_unlink(name, 1, NULL);
}

int
main(void)
{
	plan(15 + 8 + 5 + 3 + 3 + 5 + 3);
	tap_watch(60, "test_misc");
	test_meta();
	test_unlink();
	test_one_writer();
	test_table();
	test_wait_readers();
	test_snapshot();
	test_evict();
	return done();
}
