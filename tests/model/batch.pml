/*
 * batch.pml: SPIN model of batched publication (lib/ring.c publish,
 * dh_writer_commit with a batch, wait_space publishing first, lapped,
 * next_ordered's runs and run holds, skip_lapped) under the sync policy,
 * with a ring reader beside it.
 * `make model` runs it.
 *
 * verify: none, -DNORING -DWDEATHS=2, -DNORING -DB=5
 * counterexample: -DNORING -DBUG_NOFLUSH -DB=5, -DBUG_OLDLAP, -DBUG_EARLYRELEASE
 * reach: -DREACH_PENDING_LAP, -DREACH_RING_PENDING_LAP, -DREACH_RUN
 *   (tests/model/run.sh reads those lines: each "verify" variant must
 *   verify with the state space exhausted, each "counterexample" and
 *   "reach" variant must produce a violation.)
 *   -DB=5:  batches longer than the ring (the library caps them at
 *           half of it; the ring reader is left out, its lap rule assumes
 *           the cap): still live, because the writer publishes before it
 *           waits.
 *   -DBUG_NOFLUSH -DB=5: the same without that publication: the writer
 *           waits for space with a whole ring unpublished, the reader for
 *           that batch (an invalid end state).  Under the cap the reader
 *           could always free enough; the publication before waiting is
 *           what keeps any batch size live, and what lets the reader start
 *           on a batch while the writer is blocked.
 *   -DBUG_OLDLAP: the lap rule before batches (a lap stamp names a seq no
 *           larger than the committed count): a stamp of the unpublished
 *           part of a batch is taken for corruption.
 *   -DBUG_EARLYRELEASE: a sync reader that, in a run, publishes the
 *           position past the message it is about to use instead of a
 *           hold on it: the writer overwrites a message in use.
 *   -DREACH_*: an assert(false) at a state the verified variant must
 *           reach: the attaching sync reader skips a slot overwritten by
 *           an unpublished message; the ring reader does; a sync reader
 *           takes a message without storing its position (inside a run).
 *
 * Actors: a writer with batches of up to B = N/2 messages that publishes
 * when a batch is full, or at any moment before (a flush: its source ran
 * dry), and always before it waits for space; it may die (WDEATHS times;
 * the successor resumes at the committed count, rewriting what the dead
 * one left unpublished or half-written; 0 by default, 2 in the NORING
 * variant, which leaves the ring reader out, for time).  A sync reader that attaches at
 * a moment of its choice, at the oldest message held, takes runs (one
 * load of the count, then every message below it), and stores its
 * position with the hold at the start of a run and every STEP messages,
 * the exact position when it waits.  A ring reader that copies under the
 * stamp and skips laps, counting them lost.
 *
 * Checked:
 *   - zero copy: the writer never starts overwriting a slot whose message
 *     the sync reader uses in place;
 *   - nothing unpublished, half-written or torn is ever delivered; the
 *     sync reader gets every message from its start on, once, in order;
 *     the ring reader's seqs increase and, at the end, delivered plus
 *     reported lost is everything from its start;
 *   - no corruption reported on a sound channel;
 *   - progress: the writer publishes every message and the readers reach
 *     the end (SPIN reports an invalid end state otherwise).
 *
 * Not modelled: memory orders (SPIN interleaves sequentially consistent
 * steps: the reserve barrier against an attaching reader is the
 * seq_cst store and load of lib/ring.c; the acquire/release pairs are
 * TSan's and the soak tests' business); eviction, reader deaths and
 * claims (sync.pml, queue.pml); the writer's cached minimum.
 */

#define N 4          /* slots */
#ifndef B
#define B (N / 2)    /* batch: half the ring, the library's cap */
#endif
#ifndef M
#define M 6          /* messages: the writer laps the ring */
#endif
#define STEP 2       /* a run re-publishes its hold every STEP messages */
#ifndef WDEATHS
#define WDEATHS 0
#endif
#define NONE 255

byte committed = 0;
byte stamp[N];                 /* 2s+1 writing, 2s+2 written */
byte data[N];                  /* the payload: its seq, or NONE while torn */
byte rpos = 0;                 /* the sync reader's position word */
bool attached = false;
byte gen = 0;                  /* reader_gen */
byte held = NONE;              /* ghost: seq the sync reader uses in place */
bool writer_done = false;
byte wdeaths = 0;

inline wdie() {
	if
	:: wdeaths < WDEATHS -> wdeaths++; goto died
	:: true -> skip
	fi
}

/* may seq s overwrite the slot of s - N? (sync_space, no eviction) */
#define SPACE(s) (s < N || !attached || rpos >= s + 1 - N)

proctype writer()
{
	byte s, mygen;
died:
	atomic { s = committed; mygen = gen };
	do
	:: s >= M -> committed = s; writer_done = true; break
	:: s < M ->
		if
		:: SPACE(s) -> skip
		:: else ->
#ifndef BUG_NOFLUSH
			committed = s;           /* publish before waiting */
#endif
			SPACE(s)      /* not an end state: the writer must finish */
		fi;
		/* reserve: the odd stamp (seq_cst), then reader_gen */
		stamp[s % N] = 2 * s + 1;
		wdie();
		do
		:: gen == mygen -> break
		:: gen != mygen ->
			mygen = gen;
			if
			:: SPACE(s) -> skip
			:: else -> committed = s; SPACE(s)
			fi
		od;
		/* the payload, torn while it is written */
		assert(held == NONE || s < N || held != s - N);
		data[s % N] = NONE;
		wdie();
		data[s % N] = s;
		wdie();
		stamp[s % N] = 2 * s + 2;
		wdie();
		s++;
		/* a full batch is published; before that, whenever the source
		 * runs dry (a flush) */
		if
		:: s - committed >= B -> committed = s
		:: s - committed < B -> committed = s
		:: s - committed < B -> skip
		fi
	od
}

/* Is stamp st of the slot of pos a lap (lib/ring.c lapped)? */
#ifdef BUG_OLDLAP
#define LAPPED(st, pos, c) ((st - 1) / 2 > pos && ((st - 1) / 2) % N == pos % N && (st - 1) / 2 <= c)
#else
#define LAPPED(st, pos, c) ((st - 1) / 2 > pos && ((st - 1) / 2) % N == pos % N && (st - 1) / 2 < c + N)
#endif

proctype syncr()
{
	byte pos, avail = 0, hold_at = 0, c, st, x, last = NONE, start;
	bool isrun, delivered = false, holding = false;

	atomic {
		c = committed;
		pos = (c > N -> c - N : 0);
		start = pos;
		rpos = pos;
		attached = true;
		gen++;
		c = 0
	};
	do
	:: held = NONE;                 /* the previous message is released by this call */
		isrun = false;
		if
		:: pos >= avail -> avail = committed; isrun = true
		:: else -> skip
		fi;
		if
		:: pos >= avail ->
			rpos = pos; holding = false;   /* release: the exact position */
			if
			:: atomic { writer_done && pos >= committed } -> break
			:: else ->
end_wait:			(committed > pos || writer_done)
			fi
		:: else ->
			if
			:: isrun || !holding || pos - hold_at >= STEP ->
				rpos = pos; hold_at = pos; holding = true
			:: else ->
#ifdef BUG_EARLYRELEASE
				rpos = pos + 1;
#endif
#ifdef REACH_RUN
				assert(false);
#endif
				skip
			fi;
			st = stamp[pos % N];
			if
			:: st == 2 * pos + 2 ->
				held = pos;
				x = data[pos % N];
				assert(x == pos);              /* whole, its own */
				assert(last == NONE && pos == start || last != NONE && pos == last + 1);
				last = pos;
				delivered = true;
				pos++
			:: st != 2 * pos + 2 ->
				c = committed;
				if
				:: st > 2 * pos + 2 && !delivered && LAPPED(st, pos, c) ->
					/* overwritten while we attached: start one later */
#ifdef REACH_PENDING_LAP
					assert((st - 1) / 2 <= c);
#endif
					pos++; start = pos; rpos = pos; holding = false; avail = 0
				:: else -> assert(false)      /* ECORRUPT on a sound channel */
				fi;
				c = 0
			fi
		fi
	od;
	assert(pos == M);
	attached = false
}

proctype ringr()
{
	byte pos, start, c, st, x, last = NONE, got = 0, lost = 0, np;

	atomic { c = committed; pos = (c > N -> c - N : 0); start = pos; c = 0 };
	do
	:: c = committed;
		if
		:: pos >= c ->
			c = 0;
			if
			:: atomic { writer_done && pos >= committed } -> break
			:: else ->
end_rwait:			(committed > pos || writer_done)
			fi
		:: pos < c ->
			st = stamp[pos % N];
			if
			:: c - pos <= N && st == 2 * pos + 2 ->
				x = data[pos % N];
				if
				:: stamp[pos % N] == st ->      /* the copy is whole */
					assert(x == pos);
					assert(last == NONE || pos > last);
					last = pos; got++; pos++
				:: else -> skip                 /* lapped while copying: retry */
				fi
			:: c - pos > N || st != 2 * pos + 2 ->
				if
				:: c - pos <= N && st < 2 * pos + 2 -> assert(false)   /* ECORRUPT */
				:: c - pos <= N && st > 2 * pos + 2 && !LAPPED(st, pos, committed) -> assert(false)
				:: else ->
#ifdef REACH_RING_PENDING_LAP
					assert(!(c - pos <= N && (st - 1) / 2 >= committed));
#endif
					/* skip_lapped: to the oldest held, the rest lost */
					c = committed;
					np = (c > N -> c - N : 0);
					if :: np <= pos -> np = pos + 1 :: else -> skip fi;
					lost = lost + np - pos;
					pos = np; np = 0
				fi
			fi;
			c = 0; st = 0; x = 0
		fi
	od;
	assert(got + lost == M - start)
}

init {
	atomic {
		run writer();
		run syncr();
#ifndef NORING
		run ringr()
#endif
	}
}
