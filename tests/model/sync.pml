/*
 * sync.pml: SPIN model of dh's slot protocol under the sync policy with
 * the writer's eviction (evict_after), zero-copy readers, index reuse and
 * re-attach, and crashes.  See lib/ring.c (sync_space, dh_writer_reserve,
 * next_ordered, skip_lapped, dh_reader_open/release/close).
 * `make model` runs it.
 *
 * verify: none, -DNOVALIDATOR -DWDEATHS=2
 * counterexample: -DBUG2, -DBUG2 -DNOVALIDATOR, -DBUG3
 * reach: -DREACH_CLAIM_BLOCKS, -DREACH_EVICTED_RECHECK, -DREACH_REUSED_EVICT, -DREACH_VALIDATOR_EVICT
 *   (tests/model/run.sh reads those lines: each "verify" variant must
 *   verify with the state space exhausted, each "counterexample" and
 *   "reach" variant must produce a violation.)
 *   -DBUG2: today's stall timers: one per entry index, reset only when a
 *           scan sees that entry caught up, and eviction (by the writer
 *           and by dh-validate) by CAS ACTIVE -> EVICTED whoever occupies
 *           the entry (issue 19, finding 2).
 *   -DBUG3: today's eviction of a reader that holds a message in place:
 *           the writer skips the evicted entry and overwrites the slot;
 *           the reader learns of its eviction only on its next call
 *           (issue 19, finding 3).
 *   -DREACH_*: an assert(false) at a state the verified variant must
 *           reach, so that it is not verified vacuously: the writer waits
 *           for an evicted live reader's claim; a reader that stored its
 *           claim finds itself evicted; the writer evicts an occupant of a
 *           reused index; dh-validate evicts a reader.
 *   Without them: FIX19 A and B (attach generation in the state word,
 *   the timer stored with the word it timed, CAS from that word; the
 *   reader stores claim = pos before it re-checks its own state; the
 *   writer respects the claim of an evicted live reader; every path that
 *   would report corruption checks the reader's own state first).
 *
 * Actors: a writer that may die (WDEATHS times, 0 by default, 2 in the
 * NOVALIDATOR variant, for time; the successor resumes at the committed
 * count with timers of its own) and evicts a reader that stays behind on two of
 * its scans (time is abstracted: a timer that is running may have
 * expired at any later scan; up to MAXEV evictions); two reader
 * processes reading in place and taking turns on ONE table entry, so
 * every attach after the first reuses the index; one may die between
 * calls (holding a message in place or not) or close and attach again, the other never dies and re-attaches after
 * an eviction.  Dead entries are reaped by the writer's scan or by the
 * next reader that attaches there.  Unless NOVALIDATOR, dh-validate
 * --repair --force also evicts a live reader that holds the writer back,
 * at any moment (the evictions of both count against MAXEV).  (Two entries give the same checks
 * tens of times the states: see docs/RELIABILITY.md.)
 *
 * Checked:
 *   - zero copy: the writer never starts overwriting a slot whose message
 *     a reader holds in place;
 *   - no torn delivery, and within one attachment a reader gets every
 *     message from its start on, each once, in order (nothing lost
 *     uncounted, nothing twice);
 *   - no corruption reported on a sound channel: an evicted reader
 *     reports EVICTED;
 *   - the writer only evicts the occupant whose stall it timed;
 *   - progress: the writer publishes every message (SPIN reports an
 *     invalid end state if it waits for ever).
 *
 * Not modelled: the writer's cached minimum (gen_cache/min_cache: the
 * writer here always scans), the futex words (waits are SPIN conditions,
 * ideal wake-ups; a blocked writer also rescans while a stall timer runs,
 * as its 50 ms slices do), memory orders weaker than seq_cst (SPIN
 * interleaves; the attach fence of FIX19 E is outside this model).
 */

#define N 2          /* slots */
#define M 3          /* messages */
#ifndef E
#define E 1          /* reader table entries: both processes take turns on it */
#endif
#define P 2          /* reader processes */
#ifndef WDEATHS
#define WDEATHS 0
#endif
#define MAXEV 2      /* evictions */
#define NONE 255
#define FREE 0
#define ACTIVE 1
#define EVICTED 2

byte committed = 0;
byte stamp[N];                 /* 2s+1 writing, 2s+2 committed */
byte data[N];                  /* the payload: its seq, or NONE while torn */
byte est[E];                   /* entry state */
byte egen[E];                  /* attach generation (FIX19 A) */
byte lock[E];                  /* entry lock holder (p + 1), 0 if free */
byte epos[E];                  /* entry position */
byte eclaim[E];                /* entry claim: seq held in place (FIX19 B) */
byte occ[E];                   /* ghost: process attached there (p + 1) */
byte held[P];                  /* ghost: seq process p holds in place */
bool stall_on[E];              /* the writer's stall timers */
byte stall_gen[E];             /* ... and the word each one timed */
byte stall_occ[E];             /* ghost: the occupant it timed */
bool wake = false;             /* something the blocked writer waits for changed */
bool writer_done = false;
byte wdeaths = 0;
byte evictions = 0;
byte immortal;

inline wdie() {
	if
	:: wdeaths < WDEATHS -> wdeaths++; goto died
	:: true -> skip
	fi
}

/*
 * sync_space for seq s: blocked unless every live reader is past s - N.
 * One entry per step (its state word, position and lock, and the
 * writer's private timer), then the eviction CAS and the read of the
 * evicted entry's claim as steps of their own: readers move between.
 */
inline scan(s) {
	blocked = false;
	i = 0;
	do
	:: i >= E -> i = 0; break
	:: i < E ->
		atomic {
			st = est[i]; g = egen[i]; o = occ[i]; pos = epos[i];
			if
			:: st == ACTIVE && pos >= s + 1 - N -> stall_on[i] = false
			:: st == ACTIVE && pos < s + 1 - N && lock[i] == 0 ->
				est[i] = FREE; eclaim[i] = NONE    /* dead: reaped under its lock */
			:: st == ACTIVE && pos < s + 1 - N && lock[i] != 0 ->
#ifdef BUG2
				if
				:: !stall_on[i] -> stall_on[i] = true; stall_occ[i] = o; blocked = true
				:: stall_on[i] -> blocked = true                /* not yet expired */
				:: stall_on[i] && evictions < MAXEV -> ev = true
				fi
#else
				if
				:: !(stall_on[i] && stall_gen[i] == g) ->
					/* a new occupant, or a new stall: the timer (re)starts */
					stall_on[i] = true; stall_gen[i] = g; stall_occ[i] = o; blocked = true
				:: stall_on[i] && stall_gen[i] == g -> blocked = true
				:: stall_on[i] && stall_gen[i] == g && evictions < MAXEV -> ev = true
				fi
#endif
#ifndef BUG3
			:: st == EVICTED && lock[i] != 0 && eclaim[i] < s + 1 - N ->
				blocked = true         /* an evicted live reader's claim */
#endif
			:: else -> skip
			fi
		};
		if
		:: ev ->
			atomic {
#ifdef BUG2
				if
				:: est[i] == ACTIVE -> est[i] = EVICTED; evictions++;
					assert(occ[i] == stall_occ[i])     /* the occupant it timed */
				:: else -> skip
				fi;
#else
				if
				:: est[i] == ACTIVE && egen[i] == g -> est[i] = EVICTED; evictions++;
					assert(occ[i] == stall_occ[i]);    /* the occupant it timed */
#ifdef REACH_REUSED_EVICT
					assert(g < 2)      /* an occupant after another one */
#else
					skip
#endif
				:: else -> skip
				fi;
#endif
				stall_on[i] = false; ev = false
			};
#ifndef BUG3
			/* it still protects the slot it claimed */
			atomic { if
				 :: est[i] == EVICTED && lock[i] != 0 && eclaim[i] < s + 1 - N -> blocked = true;
#ifdef REACH_CLAIM_BLOCKS
					assert(false)
#else
					skip
#endif
				 :: else -> skip
				 fi }
#else
			skip
#endif
		:: else -> skip
		fi;
		atomic { st = 0; g = 0; o = 0; pos = 0; i++ }
	od
}

#if E == 1
#define anytimer stall_on[0]
#else
#define anytimer (stall_on[0] || stall_on[1])
#endif

inline space(s) {
	if
	:: s >= N ->
		do
		:: wake = false;
			scan(s);
			if
			:: !blocked -> break
			:: else ->
				/* the futex wait, or a 50 ms slice while a timer runs */
				(wake || anytimer)
			fi
		od
	:: else -> skip
	fi
}

proctype writer()
{
	byte s, i, st, g, o, pos, q;
	bool blocked, ev;
restart:
	s = committed;             /* a new writer resumes at the committed count */
	do
	:: s >= M -> writer_done = true; break
	:: s < M ->
		space(s);
		wdie();
		stamp[s % N] = 2 * s + 1;
		/* dh_writer_reserve: a reader attaching meanwhile may have chosen
		 * this slot's old message; scan again */
		space(s);
		atomic {
			q = 0;
			do
			:: q < P -> assert(held[q] == NONE || held[q] % N != s % N); q++
			:: q >= P -> q = 0; break
			od;
			data[s % N] = NONE                 /* overwriting starts */
		};
		wdie();
		data[s % N] = s;
		stamp[s % N] = 2 * s + 2;
		wdie();
		committed = s + 1;
		s++
	od;
	goto out;
died:
	/* the successor's timers are its own, zeroed */
	atomic { stall_on[0] = false; stall_gen[0] = 0; stall_occ[0] = 0;
#if E > 1
		 stall_on[1] = false; stall_gen[1] = 0; stall_occ[1] = 0
#endif
	};
	goto restart;
out:
	skip
}

proctype reader(byte p)
{
	byte i, pos, c, st, last;
	bool mortal = (p != immortal);
	bool got;                      /* delivered something since attaching */
	byte reattach = 1;

end_attach:
	if
	:: atomic { lock[0] == 0 -> lock[0] = p + 1; i = 0 }
#if E > 1
	:: atomic { lock[1] == 0 -> lock[1] = p + 1; i = 1 }
#endif
	fi;
	if
	:: est[i] != FREE -> atomic { est[i] = FREE; eclaim[i] = NONE }   /* a dead predecessor's */
	:: else -> skip
	fi;
	eclaim[i] = NONE;
	c = committed;
	pos = (c > N -> c - N : 0);
	epos[i] = pos;
	atomic { est[i] = ACTIVE; egen[i]++; occ[i] = p + 1; c = 0; got = false; last = NONE };

loop:
	if
	:: mortal -> goto died
	:: mortal && reattach > 0 -> reattach--; goto close
	:: true -> skip
	fi;
	/* dh_reader_next: release first */
	if
	:: held[p] != NONE ->
		atomic { epos[i] = held[p] + 1; held[p] = NONE; wake = true };
		eclaim[i] = NONE
	:: else -> skip
	fi;
	if
	:: est[i] == EVICTED -> goto close        /* EEVICTED */
	:: else -> skip
	fi;
	c = committed;
	if
	:: pos >= c ->
		c = 0;
		if
		:: atomic { writer_done && pos >= committed } -> goto close    /* end of stream */
		:: else ->
end_wait:		(committed > pos || writer_done);
			goto loop
		fi
	:: else -> skip
	fi;
	st = stamp[pos % N];
	if
	:: st != 2 * pos + 2 ->
		if
		:: st > 2 * pos + 2 && !got ->
			/* skip_lapped: overtaken while attaching, move the start */
			c = committed;
			atomic { st = (c > N -> c - N : 0); if :: st <= pos -> st = pos + 1 :: else -> skip fi;
				 pos = st; c = 0; st = 0 };
			atomic { epos[i] = pos; wake = true };
			goto loop
		:: else -> goto corrupt
		fi
	:: else -> skip
	fi;
#ifndef BUG3
	eclaim[i] = pos;
	if
	:: est[i] == EVICTED ->
#ifdef REACH_EVICTED_RECHECK
		assert(false);
#endif
		eclaim[i] = NONE; goto close           /* EEVICTED, the slot unused */
	:: else -> skip
	fi;
#endif
	atomic { held[p] = pos; st = 0; c = 0 };
	/* in place: the payload and its checksum */
	if
	:: data[pos % N] != pos -> goto corrupt    /* ECHECKSUM */
	:: else -> skip
	fi;
	atomic {
		assert(last == NONE || pos == last + 1);   /* nothing lost or repeated */
		last = pos; got = true; pos++
	};
	goto loop;

corrupt:
#ifndef BUG3
	if
	:: est[i] == EVICTED -> goto close
	:: else -> skip
	fi;
#endif
	assert(false);                     /* corruption reported on a sound channel */

close:
	atomic { if :: held[p] != NONE -> epos[i] = held[p] + 1; held[p] = NONE :: else -> skip fi };
	eclaim[i] = NONE;
	est[i] = FREE;
	atomic { lock[i] = 0; wake = true; i = 0; pos = 0; c = 0; st = 0; last = NONE; got = false };
	if
	:: writer_done -> goto out
	:: else -> goto end_attach
	fi;
died:
	atomic { held[p] = NONE; lock[i] = 0; wake = true };    /* the kernel drops its lock */
out:
	skip
}

/* dh-validate --repair --force (check_live_reader): a live ACTIVE reader
 * that holds the writer back (position + N <= committed) and has been
 * inactive long enough is evicted, by CAS from the word it observed. */
proctype validator()
{
	byte g, o;
	bool ok;
end_val:
	do
	:: atomic { evictions < MAXEV && est[0] == ACTIVE && lock[0] != 0 && epos[0] + N <= committed ->
		g = egen[0]; o = occ[0] } ->
		atomic {
#ifdef BUG2
			if
			:: est[0] == ACTIVE -> est[0] = EVICTED; ok = true
			:: else -> ok = false
			fi;
#else
			if
			:: est[0] == ACTIVE && egen[0] == g -> est[0] = EVICTED; ok = true
			:: else -> ok = false
			fi;
#endif
			if
			:: ok -> evictions++; wake = true;
				assert(occ[0] == o);   /* only the occupant it saw stalled */
#ifdef REACH_VALIDATOR_EVICT
				assert(false)
#else
				skip
#endif
			:: else -> skip
			fi;
			g = 0; o = 0; ok = false
		}
	od
}

init {
	byte k;
	atomic {
		k = 0;
		do
		:: k < N -> stamp[k] = 0; data[k] = NONE; k++
		:: k >= N -> k = 0; break
		od;
		k = 0;
		do
		:: k < E -> eclaim[k] = NONE; k++
		:: k >= E -> k = 0; break
		od;
		held[0] = NONE; held[1] = NONE;
		immortal = 0;          /* the readers are alike: no loss */
		run writer();
		run reader(0);
		run reader(1);
#ifndef NOVALIDATOR
		run validator()
#else
		skip
#endif
	}
	/* progress: everything published */
	writer_done
}
