/*
 * ring.pml: SPIN model of the ring and latest policies (lib/ring.c
 * next_ordered with copy, skip_lapped, next_latest, dh__seqlock_copy):
 * a writer that never waits and may die, readers that copy a slot under
 * its stamp and retry or skip when the writer laps them.
 * `make model` runs it.
 *
 * verify: none
 * counterexample: -DMUT_NORECHECK
 * reach: -DREACH_LAPPED, -DREACH_RETRY
 *   (tests/model/run.sh reads those lines: each "verify" variant must
 *   verify with the state space exhausted, each "counterexample" and
 *   "reach" variant must produce a violation.)
 *   -DMUT_NORECHECK: a mutation, not a bug of today: the readers do not
 *           load the stamp again after copying.  The model must then see a
 *           torn copy, which shows it can.
 *   -DREACH_*: an assert(false) at a state the verified variant must
 *           reach: a ring reader lapped and told of its losses; a copy
 *           overwritten while it was taken, and retried.
 *
 * Actors: a writer that never waits (up to WDEATHS deaths, the successor
 * resumes at the committed count and rewrites the seq its predecessor
 * left half-written) writing M messages into N slots, each payload two
 * bytes written one at a time; a ring reader that attaches at a moment
 * of its choice, starting at the oldest message; a latest reader.
 *
 * Checked:
 *   - no torn copy: a delivered message's two bytes are both its own;
 *   - ring: seqs strictly increase, and when the stream ends, delivered
 *     plus reported lost is everything from its start (nothing lost
 *     uncounted, nothing twice);
 *   - latest: the seq never goes back;
 *   - no ECORRUPT on a sound channel.
 *
 * Not modelled: memory orders (the acquire/release pairs and the fence
 * in the copy are what make this hold on real hardware: TSan and the
 * torn-read soak test them); eviction and claims (ring and latest
 * readers hold nothing and the writer waits for no one).
 */

#define N 2          /* slots */
#define M 4          /* messages: the ring reader can be lapped */
#define WDEATHS 2
#define NONE 255

byte committed = 0;
byte stamp[N];
byte d0[N], d1[N];             /* the payload, byte by byte */
bool writer_done = false;
byte wdeaths = 0;

proctype writer()
{
	byte s;
restart:
	s = committed;
	do
	:: s >= M -> writer_done = true; break
	:: s < M ->
		stamp[s % N] = 2 * s + 1;
		if
		:: wdeaths < WDEATHS -> wdeaths++; goto restart   /* died; a successor */
		:: true -> skip
		fi;
		d0[s % N] = s;
		if
		:: wdeaths < WDEATHS -> wdeaths++; goto restart
		:: true -> skip
		fi;
		d1[s % N] = s;
		stamp[s % N] = 2 * s + 2;
		if
		:: wdeaths < WDEATHS -> wdeaths++; goto restart
		:: true -> skip
		fi;
		committed = s + 1;
		s++
	od
}

/* skip_lapped: move to the oldest message held, counting the rest lost */
inline skip_lapped() {
	c = committed;
	atomic {
		np = (c > N -> c - N : 0);
		if :: np <= pos -> np = pos + 1 :: else -> skip fi;
		lost = lost + np - pos;
		pos = np; np = 0; c = 0
	}
#ifdef REACH_LAPPED
	; assert(false)
#endif
}

proctype ring()
{
	byte pos, start, c, np, st, x0, x1, last = NONE, got = 0, lost = 0;

	c = committed;
	atomic { pos = (c > N -> c - N : 0); start = pos; c = 0 };
	do
	:: c = committed;
		if
		:: pos >= c ->
			c = 0;
			if
			:: atomic { writer_done && pos >= committed } -> break
			:: else ->
end_wait:			(committed > pos || writer_done)
			fi
		:: pos < c && c - pos > N -> skip_lapped()
		:: pos < c && c - pos <= N ->
			c = 0;
			st = stamp[pos % N];
			if
			:: st != 2 * pos + 2 ->
				if
				:: st > 2 * pos + 2 -> st = 0; skip_lapped()
				:: else -> assert(false)      /* ECORRUPT on a sound channel */
				fi
			:: else ->
				x0 = d0[pos % N];
				x1 = d1[pos % N];
#ifndef MUT_NORECHECK
				if
				:: stamp[pos % N] != st ->
#ifdef REACH_RETRY
					assert(false);
#endif
					st = 0; x0 = 0; x1 = 0       /* overwritten meanwhile: again */
				:: else ->
#endif
					atomic {
						assert(x0 == pos && x1 == pos);     /* no torn copy */
						assert(last == NONE || pos > last);
						last = pos; got++; pos++;
						st = 0; x0 = 0; x1 = 0
					}
#ifndef MUT_NORECHECK
				fi
#endif
			fi
		fi
	od;
	assert(got + lost == M - start)       /* everything delivered or reported lost */
}

proctype latest()
{
	byte pos = 0, c, s, st, x0, x1;
	do
	:: c = committed;
		if
		:: c == 0 || c - 1 < pos ->
			c = 0;
			if
			:: atomic { writer_done && committed <= pos } -> break
			:: else ->
end_wait:			(committed > pos || writer_done)
			fi
		:: else ->
			atomic { s = c - 1; c = 0 };
			st = stamp[s % N];
			if
			:: st != 2 * s + 2 ->
				if
				:: st > 2 * s + 2 -> st = 0         /* lapped: again */
				:: else -> assert(false)            /* ECORRUPT on a sound channel */
				fi
			:: else ->
				x0 = d0[s % N];
				x1 = d1[s % N];
#ifndef MUT_NORECHECK
				if
				:: stamp[s % N] != st -> st = 0; x0 = 0; x1 = 0
				:: else ->
#endif
					atomic {
						assert(x0 == s && x1 == s);         /* no torn copy */
						assert(s >= pos);                   /* never back */
						pos = s + 1;
						s = 0; st = 0; x0 = 0; x1 = 0
					}
#ifndef MUT_NORECHECK
				fi
#endif
			fi
		fi
	od
}

init {
	atomic {
		d0[0] = NONE; d0[1] = NONE; d1[0] = NONE; d1[1] = NONE;
		run writer();
		run ring();
		run latest()
	}
}
