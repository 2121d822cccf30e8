/* test_meta.c: the metadata zone under updaters that stop or die mid-update.
 * See LICENSE.
 *
 * A version is self-describing: version k is META_LEN(k) bytes all equal
 * to k & 0xff, so any reader can tell a whole version from a torn one.
 */
#define TAP_CHAN_TAG "meta"
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>

#include "tap.h"
#include "dhtest.h"

#define ZONE (4u << 20)
#define META_LEN(k) ((size_t)ZONE - 4096 * (size_t)((k) % 64))

static unsigned char *ver;

/* 1 if buf/n is some whole version; its number & 0xff in *k. */
static int
whole(const unsigned char *buf, ssize_t n, unsigned *k)
{
	if (n <= 0)
		return 0;
	for (ssize_t i = 1; i < n; i++)
		if (buf[i] != buf[0])
			return 0;
	*k = buf[0];
	/* the length must be one that version (k mod 256) can have */
	for (unsigned j = buf[0]; j < 4096; j += 256)
		if (META_LEN(j) == (size_t)n)
			return 1;
	return 0;
}

static int
put(struct dh_block *b, unsigned k)
{
	memset(ver, (int)(k & 0xff), META_LEN(k));
	return dh_meta_write(b, ver, META_LEN(k));
}

static uint32_t
seq_of(struct dh_block *b)
{
	return atomic_load(&b->meta->seq);
}

/* Child: update without pause until killed. */
static _Noreturn void
updater(const char *name, unsigned first)
{
	struct dh_block *b;

	if (dh_block_open(name, 0, &b) < 0)
		_exit(1);
	for (unsigned k = first;; k++)
		if (put(b, k) < 0)
			_exit(2);
}

/* Wait (bounded) until the zone is odd, i.e. the child is inside an update. */
static int
await_odd(struct dh_block *b)
{
	double end = tap_now() + 5;

	while (tap_now() < end)
		if (seq_of(b) & 1)
			return 1;
	return 0;
}

static void
test_sigkill(const char *name, struct dh_block *b, unsigned char *buf)
{
	int bad = 0, rounds = 0, slow = 0, odd = 0;
	unsigned k;

	put(b, 7);   /* the empty zone is no version */
	for (int i = 0; i < 25; i++) {
		pid_t kid = tap_fork();
		int st;

		if (kid == 0)
			updater(name, 1000u * (unsigned)i + 1);
		/* kill it inside an update: after a random few more spins */
		if (await_odd(b)) {
			for (volatile int spin = rand() % 200000; spin > 0; spin--)
				;
			odd += (seq_of(b) & 1) != 0;
		}
		kill(kid, SIGKILL);
		waitpid(kid, &st, 0);
		rounds++;
		ssize_t n = dh_meta_read(b, buf, ZONE);
		if (!whole(buf, n, &k)) {
			if (bad++ < 3)
				diag("round %d: read after SIGKILL: %zd (%s), not a whole version", i, n,
				     n < 0 ? estr((int)n) : "torn");
		}
		/* the next updater takes over at once: the lock died with the child */
		double t0 = tap_now();
		int rc = put(b, 7);
		if (rc != 0 || tap_now() - t0 > 1) {
			if (slow++ < 3)
				diag("round %d: write after SIGKILL: %s in %.3fs", i, estr(rc), tap_now() - t0);
		}
	}
	ok(bad == 0, "meta: %d updaters SIGKILLed mid-update (%d seen odd at the kill): every read after is a "
	   "whole old or new version", rounds, odd);
	ok(slow == 0 && odd > rounds / 2, "meta: after each kill the next update succeeds within 1 s (%d late)",
	   slow);
}

/* A real process stopped inside an update (SIGSTOP) keeps the zone: a second
 * updater is refused, never takes it over, so the stopped one cannot resume
 * over newer metadata. */
static void
test_sigstop(const char *name, struct dh_block *b, unsigned char *buf)
{
	pid_t kid = -1;
	int stopped = 0, st, rc = -9999;
	uint32_t s0 = 0, s1 = 0;
	ssize_t n = -9999;
	unsigned k = 0;
	double dt = 0;

	for (int tries = 0; tries < 20 && !stopped; tries++) {
		kid = tap_fork();
		if (kid == 0)
			updater(name, 5000);
		if (await_odd(b)) {
			kill(kid, SIGSTOP);
			waitpid(kid, &st, WUNTRACED);
			stopped = (seq_of(b) & 1) != 0;
		}
		if (!stopped) {
			kill(kid, SIGKILL);
			waitpid(kid, &st, 0);
		}
	}
	if (stopped) {
		s0 = seq_of(b);
		double t0 = tap_now();
		memset(ver, 0xee, 100);
		rc = dh_meta_write(b, ver, 100);   /* "newer": must not win a zone it cannot own */
		dt = tap_now() - t0;
		s1 = seq_of(b);
		n = dh_meta_read(b, buf, ZONE);
		kill(kid, SIGCONT);
		kill(kid, SIGKILL);
		waitpid(kid, &st, 0);
	}
	ok(stopped && rc == -EBUSY && dt >= 4 && s1 == s0,
	   "meta: an update while another updater is stopped inside is refused with -EBUSY after its wait, "
	   "never taken over (%s, %.1fs, seq %u -> %u)", estr(rc), dt, s0, s1);
	ok(stopped && whole(buf, n, &k) && k != 0xee,
	   "meta: readers meanwhile get the last whole version, without waiting (%zd)", n);
}

/* Two handles in one process drive the steps: an updater whose lock was
 * lost while it was stopped (what the old 200 ms takeover did) cannot
 * overwrite the newer update nor move seq backwards. */
static void
test_resumed(const char *name, unsigned char *buf)
{
	struct dh_block *a = NULL, *c = NULL;
	struct dh__meta_tx ta, tc;
	uint32_t s_new, s_end;
	ssize_t n;
	int rc;

	if (dh_block_open(name, 0, &a) < 0 || dh_block_open(name, 0, &c) < 0) {
		fail_rest(5, "resumed updater: open");
		goto out;
	}
	rc = dh_meta_write(a, "v1", 2);
	/* A begins, then stops (we just do not call it) */
	rc = rc ? rc : dh__meta_begin(a, &ta, -1);
	double t0 = tap_now();
	int rb = dh__meta_begin(c, &tc, 200 * MS);
	ok(rc == 0 && rb == -EBUSY && tap_now() - t0 >= 0.2,
	   "meta: while A is inside, B's begin waits and gives up with -EBUSY (%s, %s)", estr(rc), estr(rb));
	/* A's lock is lost: B goes ahead */
	dh__lock_drop(a->fd, DH_META_LOCK);
	rb = dh_meta_write(c, "v2-newer", 8);
	s_new = atomic_load(&c->meta->seq);
	rc = dh__meta_fill(a, &ta, "stale", 5);
	int rcc = dh__meta_commit(a, &ta);
	s_end = atomic_load(&c->meta->seq);
	n = dh_meta_read(c, buf, ZONE);
	ok(rb == 0 && rc == -ESTALE && rcc == -ESTALE,
	   "meta: B takes over; resumed A's fill and commit fail with -ESTALE (%s, %s, %s)", estr(rb), estr(rc),
	   estr(rcc));
	ok(n == 8 && memcmp(buf, "v2-newer", 8) == 0 && s_end == s_new && !(s_end & 1),
	   "meta: B's newer content stays, seq neither moved back nor left odd (%zd, %u -> %u)", n, s_new, s_end);
	/* A stopped after filling, before committing */
	rc = dh__meta_begin(a, &ta, -1);
	rc = rc ? rc : dh__meta_fill(a, &ta, "stale", 5);
	dh__lock_drop(a->fd, DH_META_LOCK);
	rb = dh_meta_write(c, "v3-newest", 9);
	s_new = atomic_load(&c->meta->seq);
	rcc = dh__meta_commit(a, &ta);
	s_end = atomic_load(&c->meta->seq);
	n = dh_meta_read(a, buf, ZONE);
	ok(rc == 0 && rb == 0 && rcc == -ESTALE,
	   "meta: A filled then stopped; B takes over; A's commit fails (%s, %s, %s)", estr(rc), estr(rb),
	   estr(rcc));
	ok(n == 9 && memcmp(buf, "v3-newest", 9) == 0 && s_end == s_new,
	   "meta: B's content stays, seq unchanged by A (%zd, %u -> %u)", n, s_new, s_end);
out:
	dh_block_close(a);
	dh_block_close(c);
}

int
main(void)
{
	char name[DH_NAME_MAX + 1];
	struct dh_block *b = NULL;
	unsigned char *buf;
	int rc;

	plan(2 + 2 + 5);
	tap_watch(120, "test_meta");
	srand((unsigned)getpid());
	ver = malloc(ZONE);
	buf = malloc(ZONE);
	tap_chan(name);
	rc = mkchan(name, DH_POLICY_RING, 2, 4096, DH_CHECKSUM_XXH3, 2, ZONE);
	if (rc == 0)
		rc = dh_block_open(name, 0, &b);
	if (rc != 0 || !ver || !buf) {
		diag("setup: %s", estr(rc));
		fail_rest(9, "meta setup");
		return done();
	}
	double t = tap_now();
	test_sigkill(name, b, buf);
	diag("sigkill: %.1fs", tap_now() - t);
	t = tap_now();
	test_sigstop(name, b, buf);
	diag("sigstop: %.1fs", tap_now() - t);
	t = tap_now();
	test_resumed(name, buf);
	diag("resumed: %.1fs", tap_now() - t);
	dh_block_close(b);
	dh_block_unlink(name, 1, NULL);
	free(ver);
	free(buf);
	return done();
}
