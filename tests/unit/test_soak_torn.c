/* test_soak_torn.c: torn-read detector.  A writer laps ring and latest
 * readers as fast as it can, on another core; every payload is one byte
 * derived from its seq, so a reader that ever returns a mix of two
 * messages is caught.  DH_TORN_SECS per policy (default 30: 60 s in all,
 * as make check budgets; DH_SOAK=1: 600). See LICENSE. */
#define TAP_CHAN_TAG "torn"
#include <sched.h>
#include <stdint.h>
#include <sys/mman.h>

#include "dh.h"
#include "tap.h"

#define SLOTS 4
#define SIZE 4096
#define READERS 2

struct tally {
	int64_t got, lost, torn, backwards, errors;
};

static void
pin(int cpu)
{
	cpu_set_t set;
	int n = (int)sysconf(_SC_NPROCESSORS_ONLN);

	if (n < 2)
		return;
	CPU_ZERO(&set);
	CPU_SET(cpu % n, &set);
	sched_setaffinity(0, sizeof set, &set);
}

static int
uniform(const unsigned char *p, size_t len, uint64_t seq)
{
	unsigned char want = (unsigned char)(seq * 167 + 13);

	if (len != SIZE)
		return 0;
	for (size_t i = 0; i < len; i++)
		if (p[i] != want)
			return 0;
	return 1;
}

static void
reader(const char *name, volatile int *stop, struct tally *t, int cpu, unsigned secs, int ready)
{
	struct dh_reader *r;
	struct dh_msg m;
	int64_t last = -1;
	int rc;

	alarm(secs + 60); /* tap_fork's default watchdog is shorter than a soak */
	pin(cpu);
	if (dh_reader_open(name, NULL, &r) < 0) {
		t->errors++;
		_exit(1);
	}
	if (write(ready, "r", 1) != 1)
		_exit(1);
	/* to the end of the stream, so every message is either taken or
	 * reported lost */
	(void)stop;
	for (;;) {
		rc = dh_reader_next(r, &m, 100000000);
		if (rc == -ETIMEDOUT)
			continue;
		if (rc == DH_END)
			break;
		if (rc < 0) {
			t->errors++;
			break;
		}
		if (!uniform(m.data, m.len, m.seq))
			t->torn++;
		if ((int64_t)m.seq <= last)
			t->backwards++;
		last = (int64_t)m.seq;
		t->got++;
		t->lost += (int64_t)m.lost;
	}
	dh_reader_close(r);
	_exit(0);
}

static void
run(enum dh_policy policy, unsigned secs)
{
	char name[DH_NAME_MAX + 1];
	struct dh_config c;
	struct dh_writer *w;
	struct tally *t;
	volatile int *stop;
	pid_t rp[READERS];
	uint64_t s = 0, t_end;
	int64_t got = 0, torn = 0, back = 0, errs = 0, lost = 0;
	unsigned char *slot;
	size_t cap;

	tap_chan(name);
	dh_config_init(&c);
	c.slots = SLOTS;
	c.slot_size = SIZE;
	c.policy = policy;
	c.checksum = DH_CHECKSUM_NONE; /* the byte pattern is the check: nothing hides a tear */
	t = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (t == MAP_FAILED || dh_block_create(name, &c) < 0 || dh_writer_open(name, "torn", &w, NULL) < 0) {
		fail_rest(2, "torn-read setup");
		return;
	}
	memset(t, 0, 4096);
	stop = (volatile int *)&t[READERS];
	/* readers attached before the first message: all of it is theirs to
	 * take or to be told they lost */
	int p[2];
	char ch;
	if (pipe(p) < 0) {
		fail_rest(3, "torn-read setup");
		return;
	}
	for (int i = 0; i < READERS; i++)
		if ((rp[i] = tap_fork()) == 0)
			reader(name, stop, &t[i], 1 + i, secs, p[1]);
	for (int i = 0; i < READERS; i++)
		if (read(p[0], &ch, 1) != 1)
			errs++;
	close(p[0]);
	close(p[1]);
	pin(0);
	t_end = (uint64_t)time(NULL) + secs;
	while ((uint64_t)time(NULL) < t_end) {
		for (int k = 0; k < 4096; k++, s++) {
			if (dh_writer_reserve(w, (void **)&slot, &cap, -1) < 0)
				break;
			/* byte by byte, so the write takes long enough to be caught */
			for (size_t i = 0; i < SIZE; i++)
				((volatile unsigned char *)slot)[i] = (unsigned char)(s * 167 + 13);
			dh_writer_commit(w, SIZE);
		}
	}
	*stop = 1;
	dh_writer_eos(w);
	for (int i = 0; i < READERS; i++) {
		int st = 0;
		waitpid(rp[i], &st, 0);
		tap_forget(rp[i]);
		/* a reader that died early would freeze its counts: that is a failure */
		if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
			errs++;
		got += t[i].got;
		torn += t[i].torn;
		back += t[i].backwards;
		errs += t[i].errors;
		lost += t[i].lost;
	}
	dh_writer_close(w);
	ok(got > 0 && !errs, "%s: %d readers ran to the end and took %lld messages of %llu written in %us",
	   dh_policy_name(policy), READERS, (long long)got, (unsigned long long)s, secs);
	if (policy == DH_POLICY_RING)
		ok(got + lost == (int64_t)(READERS * s),
		   "ring: each reader's delivered + reported lost covers the stream (%lld + %lld of %d x %llu)",
		   (long long)got, (long long)lost, READERS, (unsigned long long)s);
	ok(!torn && !back, "%s: no torn payload, no seq going back (%lld torn, %lld lapped away%s)",
	   dh_policy_name(policy), (long long)torn, (long long)lost,
	   policy == DH_POLICY_LATEST ? ": latest skips by design" : "");
	munmap(t, 4096);
	dh_block_unlink(name, 1, NULL);
}

int
main(void)
{
	const char *e = getenv("DH_TORN_SECS");
	unsigned secs = e ? (unsigned)atoi(e) : getenv("DH_SOAK") && strcmp(getenv("DH_SOAK"), "1") == 0 ? 600 : 30;

	plan(5);
	tap_watch(2 * secs + 60, "torn-read detector");
	run(DH_POLICY_RING, secs);
	run(DH_POLICY_LATEST, secs);
	return done();
}
