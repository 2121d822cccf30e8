/* test_soak_crash.c: writers SIGKILLed at random moments, restarted, while
 * sync and ring readers check every message they get.  100 kills per
 * policy in make check, DH_SOAK=1 for 10 000 (DH_KILLS overrides).
 * See LICENSE. */
#define TAP_CHAN_TAG "kill"
#include <sched.h>
#include <stdint.h>
#include <sys/mman.h>

#include "dh.h"
#include "tap.h"

#define SLOTS 16
#define SIZE 256

struct tally {
	int64_t got, lost, out_of_order, torn, gaps, errors, last;
	volatile int64_t total;   /* -1 until the last writer sets where the stream ends */
	int done;
};

/* The payload is a function of the seq alone, so a writer restarted at the
 * same seq rewrites the same bytes and a reader can check any message. */
static size_t
fill(unsigned char *p, uint64_t seq)
{
	size_t len = 8 + seq % (SIZE - 8);

	memcpy(p, &seq, 8);
	memset(p + 8, (int)(seq * 131 % 251), len - 8);
	return len;
}

static int
intact(const unsigned char *p, size_t len, uint64_t seq)
{
	uint64_t v;

	if (len != 8 + seq % (SIZE - 8))
		return 0;
	memcpy(&v, p, 8);
	if (v != seq)
		return 0;
	for (size_t i = 8; i < len; i++)
		if (p[i] != (unsigned char)(seq * 131 % 251))
			return 0;
	return 1;
}

static void
reader(const char *name, struct tally *t)
{
	struct dh_reader_opts o = { .label = "soak", .start = DH_START_OLDEST, .follow = 1 };
	struct dh_reader *r;
	struct dh_msg m;
	int first = 1, rc;

	alarm(0); /* the parent's watchdog covers the whole soak */
	if (dh_reader_open(name, &o, &r) < 0) {
		t->errors++;
		t->done = 1;
		_exit(1);
	}
	t->last = -1;
	while (t->total < 0 || t->last + 1 < t->total) {
		rc = dh_reader_next(r, &m, 30 * 1000000000ll);
		if (rc < 0) {
			t->errors++;
			break;
		}
		if (!first && (int64_t)m.seq <= t->last)
			t->out_of_order++;
		if (!first && (int64_t)m.seq != t->last + 1 + (int64_t)m.lost)
			t->gaps++;
		if (!intact(m.data, m.len, m.seq))
			t->torn++;
		t->lost += (int64_t)m.lost;
		t->last = (int64_t)m.seq;
		t->got++;
		first = 0;
	}
	dh_reader_close(r);
	t->done = 1;
	_exit(0);
}

/* Writes until killed, or, as the last writer (t != NULL), 1000 more
 * messages and end-of-stream. */
static void
writer(const char *name, struct tally *t, int ready_fd)
{
	uint64_t total = UINT64_MAX;
	unsigned char buf[SIZE];
	struct dh_writer *w;
	int rc;

	/* the previous writer's lock may take a moment to vanish after SIGKILL */
	while ((rc = dh_writer_open(name, "soak", &w, NULL)) == -EBUSY)
		sched_yield();
	if (rc < 0)
		_exit(2);
	if (t)
		t->total = (int64_t)(total = dh_writer_seq(w) + 1000);
	if (write(ready_fd, "r", 1) != 1)
		_exit(2);
	for (uint64_t s = dh_writer_seq(w); s < total; s++) {
		void *slot;
		size_t cap, len;

		if (dh_writer_reserve(w, &slot, &cap, -1) < 0)
			_exit(2);
		len = fill(buf, s);
		memcpy(slot, buf, len);
		if (dh_writer_commit(w, len) < 0)
			_exit(2);
	}
	dh_writer_eos(w);
	dh_writer_close(w);
	_exit(0);
}

static void
soak(enum dh_policy policy, int kills)
{
	char name[DH_NAME_MAX + 1];
	struct dh_config c;
	struct tally *t;
	pid_t rp, wp;
	int p[2], killed = 0, st, writers = 0, bad_exit = 0;
	unsigned seed = (unsigned)getpid() ^ (unsigned)policy;
	char ch;

	tap_chan(name);
	dh_config_init(&c);
	c.slots = SLOTS;
	c.slot_size = SIZE;
	c.policy = policy;
	t = mmap(NULL, sizeof *t, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (t == MAP_FAILED || dh_block_create(name, &c) < 0 || pipe(p) < 0) {
		fail_rest(3, "crash soak setup");
		return;
	}
	memset(t, 0, sizeof *t);
	t->total = -1;
	if ((rp = tap_fork()) == 0)
		reader(name, t);
	/* wait until the reader is attached, so a sync writer waits for it */
	for (int i = 0; i < 5000; i++) {
		struct dh_block *b;
		pid_t any;
		int n = 0;
		if (dh_block_open(name, DH_OPEN_RDONLY, &b) == 0) {
			n = dh_block_alive(b, &any);
			dh_block_close(b);
		}
		if (n >= 1)
			break;
		usleep(1000);
	}
	while (killed < kills) {
		if ((wp = tap_fork()) == 0)
			writer(name, NULL, p[1]);
		writers++;
		if (read(p[0], &ch, 1) != 1)
			break;
		/* a random moment inside the write loop: reserve, copy,
		 * checksum or publish, wherever it happens to be */
		struct timespec d = { 0, (long)(rand_r(&seed) % 2000) * 1000 };
		nanosleep(&d, NULL);
		kill(wp, SIGKILL);
		waitpid(wp, &st, 0);
		tap_forget(wp);
		if (WIFEXITED(st)) {
			bad_exit++;
			break;
		}
		killed++;
	}
	if ((wp = tap_fork()) == 0)
		writer(name, t, p[1]);
	writers++;
	if (read(p[0], &ch, 1) == 1) {
		waitpid(wp, &st, 0);
		tap_forget(wp);
		bad_exit += !WIFEXITED(st) || WEXITSTATUS(st) != 0;
	}
	waitpid(rp, &st, 0);
	tap_forget(rp);
	close(p[0]);
	close(p[1]);

	ok(killed >= kills && !bad_exit, "%s: %d writers, %d SIGKILLed at random moments, each successor resumed",
	   dh_policy_name(policy), writers, killed);
	ok(t->done && !t->errors && t->total > 0 && t->last == t->total - 1,
	   "%s: reader followed the stream to its last message %lld (got %lld, errors %lld)", dh_policy_name(policy),
	   (long long)t->total - 1, (long long)t->last, (long long)t->errors);
	if (policy == DH_POLICY_SYNC)
		ok(!t->torn && !t->out_of_order && !t->gaps && t->got == t->total && t->lost == 0,
		   "sync: every message exactly once, in order, intact (%lld delivered, %lld torn, %lld gaps)",
		   (long long)t->got, (long long)t->torn, (long long)t->gaps);
	else
		ok(!t->torn && !t->out_of_order && !t->gaps && t->got + t->lost == t->total,
		   "ring: in order, intact, delivered + reported lost = all (%lld + %lld, %lld torn)",
		   (long long)t->got, (long long)t->lost, (long long)t->torn);
	munmap(t, sizeof *t);
	dh_block_unlink(name, 1, NULL);
}

int
main(void)
{
	const char *k = getenv("DH_KILLS");
	int kills = k ? atoi(k) : getenv("DH_SOAK") && strcmp(getenv("DH_SOAK"), "1") == 0 ? 10000 : 100;

	plan(6);
	tap_watch((unsigned)(120 + kills / 10), "crash soak");
	soak(DH_POLICY_SYNC, kills);
	soak(DH_POLICY_RING, kills);
	return done();
}
