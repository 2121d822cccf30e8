/*
 * orphan.pml: SPIN model of dh-validate --repair publishing a message a
 * dead writer completed but did not publish (lib/validate.c check_writer
 * and publish_orphan), racing writers that open, write and die.
 * `make model` runs it.
 *
 * verify: none
 * counterexample: -DBUG8
 * reach: -DREACH_PUBLISH
 *   (tests/model/run.sh reads those lines: each "verify" variant must
 *   verify with the state space exhausted, each "counterexample" and
 *   "reach" variant must produce a violation.)
 *   -DBUG8: today's repair: the stamp is read before lock 0 is taken and
 *           trusted after (issue 19, finding 8).
 *   -DREACH_PUBLISH: an assert(false) where the validator publishes an
 *           orphan, so that the verified variant is not vacuous.
 *   Without it: FIX19 D: under lock 0 the validator re-reads committed c
 *   and the stamp of slot c, and publishes only if the stamp is exactly
 *   2c+2 (and the checksum verifies: not modelled, see below).
 *
 * Actors: writers, one at a time under lock 0, each resuming at the
 * committed count (as dh_writer_open does), each of the first WDEATHS
 * dying at any step (the kernel drops lock 0, the entry stays ACTIVE);
 * a validator that runs check_writer with --repair VRUNS times, at any
 * moment.  No readers and no space waits (the ring policy): what is
 * checked is what gets published.
 *
 * Checked: whenever the committed count is advanced, by a writer or by
 * the validator, the slot of the message it publishes holds that
 * message, completely written, with its committed stamp.
 *
 * Not modelled: the checksum.  The channel here has none (checksum none,
 * where today's bug publishes a half-written slot at once); with a
 * checksum the fix still re-reads the stamp first, and the checksum
 * only adds a refusal.
 */

#define N 2          /* slots */
#define M 2          /* messages */
#define WDEATHS 2
#define VRUNS 2
#define NONE 255
#define FREE 0
#define ACTIVE 1
#define WRITER 1     /* lock 0 holders */
#define VALIDATOR 2
#define UNPUB 1      /* the validator's findings */
#define MIDWRITE 2

byte committed = 0;
byte stamp[N];
byte data[N];
byte lock0 = 0;
byte wstate = FREE;
byte wdeaths = 0;

inline publish(c) {
	assert(data[c % N] == c && stamp[c % N] == 2 * c + 2);
	committed = c + 1
}

inline wdie() {
	if
	:: wdeaths < WDEATHS -> goto died
	:: true -> skip
	fi
}

proctype writers()
{
	byte s;
session:
	/* dh_writer_open */
	atomic { lock0 == 0 -> lock0 = WRITER };
	s = committed;
	wstate = ACTIVE;
	do
	:: s >= M -> break
	:: s < M ->
		wdie();
		stamp[s % N] = 2 * s + 1;
		wdie();
		data[s % N] = NONE;                /* half-written */
		wdie();
		data[s % N] = s;
		wdie();
		stamp[s % N] = 2 * s + 2;
		wdie();
		atomic { publish(s) };
		s++
	od;
	atomic { wstate = FREE; lock0 = 0 };      /* dh_writer_close */
	goto out;
died:
	atomic { wdeaths++; lock0 = 0; s = 0 };    /* the kernel drops lock 0 */
	goto session;
out:
	skip
}

proctype validator()
{
	byte runs = 0, s, st, g, c;
	do
	:: runs >= VRUNS -> break
	:: runs < VRUNS ->
		runs++;
		/* check_writer: the findings first, without the lock */
		s = committed;
		st = stamp[s % N];
		if
		:: atomic { wstate == FREE || lock0 == WRITER } -> goto next   /* nothing dead */
		:: else -> skip
		fi;
		if
		:: st == 2 * s + 2 -> g = UNPUB
		:: st == 2 * s + 1 -> g = MIDWRITE
		:: else -> g = 0
		fi;
		/* --repair: lock 0, so no writer can run */
		if
		:: atomic { lock0 == 0 -> lock0 = VALIDATOR }
		:: else -> goto next              /* a new writer, or another repairer */
		fi;
		if
		:: wstate == ACTIVE && committed == s ->
			if
			:: g == UNPUB ->
#ifdef BUG8
				atomic { publish(s) }
#else
				/* publish_orphan: re-read under the lock */
				c = committed;
				if
				:: stamp[c % N] == 2 * c + 2 -> atomic { publish(c);
#ifdef REACH_PUBLISH
					assert(false)
#else
					skip
#endif
				   }
				:: else -> skip
				fi
#endif
			:: else -> skip
			fi;
			wstate = FREE
		:: else -> skip
		fi;
		lock0 = 0;
next:
		atomic { s = 0; st = 0; g = 0; c = 0 }
	od
}

init {
	atomic {
		stamp[0] = 0; stamp[1] = 0;
		data[0] = NONE; data[1] = NONE;
		run writers();
		run validator()
	}
}
