/*
 * meta.pml: SPIN model of the metadata update (lib/block.c dh_meta_write,
 * dh_meta_read) with the 200 ms takeover of an updater that looks dead
 * but is only stopped (SIGSTOP, a debugger, a paused VM).
 * `make model` runs it.
 *
 * verify: none, -DTHIRD
 * counterexample: -DBUG4, -DONEBUF, -DTHIRD -DUNBOUND
 * reach: -DREACH_DISCARD
 *   (tests/model/run.sh reads those lines: each "verify" variant must
 *   verify with the state space exhausted, each "counterexample" and
 *   "reach" variant must produce a violation.)
 *   -DBUG4:    today's finish, a plain store of the updater's odd value
 *              + 1 (issue 19, finding 4): the sequence goes backwards.
 *   -DONEBUF:  the finish by compare-and-swap but today's single buffer:
 *              the resumed updater's late copy lands on the bytes the one
 *              that took over published.
 *   -DUNBOUND: the check does not cover the odd value the copy was
 *              written under (as today: XXH3 of the bytes seeded with the
 *              length only).  With THIRD a stopped updater's complete
 *              copy lands in the buffer a later updater publishes, and
 *              readers take the old copy for the new one.
 *   -DREACH_DISCARD: an assert(false) where a resumed updater's finishing
 *              CAS fails, so that the verified variant is not vacuous.
 *   Without them: FIX19 C, the finish is CAS(own odd -> odd + 1) and a
 *   failed CAS discards the update; the bytes go to one of two buffers,
 *   chosen by the odd value ((odd >> 1) & 1), a reader of the even value
 *   e reads the buffer of e - 1; and the check covers the odd value
 *   (modelled as a check word of (version, odd value)).
 *
 * Time is abstracted: an odd value may be taken over (CAS odd -> odd + 2)
 * at any moment, which is what the 200 ms threshold allows when the
 * updater is stopped rather than dead.  An updater may also die at any
 * step.  The payload is two bytes, each written separately; the check is
 * modelled exactly (a copy verifies iff both bytes carry the check's
 * version, and, bound, the check's odd value is e - 1).
 *
 * Checked:
 *   - the sequence never goes backwards (every store to it is asserted);
 *   - a read that succeeds returns exactly the version published with the
 *     sequence it read (never an older one, never a mix);
 *   - with two updaters: the newer metadata survives a resumed stopped
 *     updater: once every updater has finished or died, a read at an even
 *     sequence succeeds and returns the version published there.
 *   With THIRD (three updaters, so two takeovers or a takeover and a later
 *   update can race the stopped one) only the first two hold: with two
 *   buffers every second acquisition after a takeover writes the stopped
 *   updater's buffer, and a reader then gets a checksum error (never old
 *   or mixed data) until the next update.
 */

#define NONE 0
#ifdef THIRD
#define U 3
#else
#define U 2
#endif

byte seq = 0;
byte b0[2], b1[2], chk[2];     /* the buffers: two payload bytes and the check */
byte ver[10];                  /* ghost: version published with each even seq */
byte finished = 0;             /* updaters that returned or died */

#if defined(BUG4) || defined(UNBOUND)
#define CHK(u, o) (u)
#define CHK_OK(c, x0, x1, e) (x0 == c && x1 == c)
#define CHK_VER(c) (c)
#else
#define CHK(u, o) ((u) * 16 + (o))
#define CHK_OK(c, x0, x1, e) (x0 == (c) / 16 && x1 == (c) / 16 && (c) % 16 == (e) - 1)
#define CHK_VER(c) ((c) / 16)
#endif

#if defined(ONEBUF) || defined(BUG4)
#define WBUF(o) 0
#define RBUF(e) 0
#else
#define WBUF(o) ((o >> 1) & 1)
#define RBUF(e) (((e - 1) >> 1) & 1)
#endif

inline mdie() {
	if
	:: goto died
	:: true -> skip
	fi
}

proctype updater(byte u)
{
	byte s, b;
	/* acquire: even -> odd, or take over an odd value that stayed */
	if
	:: atomic { seq % 2 == 0 -> s = seq + 1; assert(s > seq); seq = s }
	:: atomic { seq % 2 == 1 -> s = seq + 2; assert(s > seq); seq = s }
	fi;
	b = WBUF(s);
	mdie();
	b0[b] = u;
	mdie();
	b1[b] = u;
	chk[b] = CHK(u, s);
	mdie();
#ifdef BUG4
	atomic { assert(s + 1 > seq); seq = s + 1; ver[seq] = u }
#else
	atomic {
		if
		:: seq == s -> seq = s + 1; ver[seq] = u
		:: else ->             /* taken over: the update is discarded */
#ifdef REACH_DISCARD
			assert(false)
#else
			skip
#endif
		fi
	}
#endif
died:
	finished++
}

/* dh_meta_read: an even sequence, the copy, the same sequence again, the
 * check.  Returns ok and the version in got. */
inline readmeta() {
	ok = false; got = NONE;
	s1 = seq;
	if
	:: s1 % 2 == 0 && s1 > 0 ->
		x0 = b0[RBUF(s1)];
		x1 = b1[RBUF(s1)];
		c = chk[RBUF(s1)];
		if
		:: seq == s1 && CHK_OK(c, x0, x1, s1) ->
			ok = true; got = CHK_VER(c);
			assert(got == ver[s1])     /* exactly what was published there */
		:: else -> skip                /* moved, or a checksum error */
		fi
	:: else -> skip
	fi;
	x0 = 0; x1 = 0; c = 0
}

proctype reader()
{
	byte s1, x0, x1, c, got, n = 0;
	bool ok;
	do
	:: n < 2 -> readmeta(); n++
	:: n >= 2 -> break
	od
}

init {
	byte s1, x0, x1, c, got;
	bool ok;
	atomic {
		run updater(1);
		run updater(2);
#ifdef THIRD
		run updater(3);
#endif
		run reader()
	}
	finished == U;
	readmeta();
#ifndef THIRD
	/* the newer metadata survived */
	assert(s1 % 2 == 1 || s1 == 0 || ok)
#endif
}
