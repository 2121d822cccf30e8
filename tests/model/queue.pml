/*
 * queue.pml: SPIN model of dh's slot protocol under the queue policy,
 * with crashes, eviction, index reuse and re-attach.  See
 * docs/DESIGN.md ("Slots", "Queue claims"), lib/ring.c (next_queue,
 * dh_reader_release, queue_space), lib/block.c (dh__reap) and
 * lib/validate.c (check_live_reader).  `make model` runs it.
 *
 * verify: none
 * counterexample: -DBUG1, -DBUG2
 * reach: -DREACH_EVICTED_RELEASE, -DREACH_REAP_LOST, -DREACH_RESUME_AVAIL
 *   (tests/model/run.sh reads those lines: each "verify" variant must
 *   verify with the state space exhausted, each "counterexample" and
 *   "reach" variant must produce a violation.)
 *   -DBUG1: today's release (a plain store of (seq, DONE) over the whole
 *           claim word) and today's eviction, which marks a live reader's
 *           claims DONE (issue 19, finding 1).
 *   -DBUG2: today's evictor CAS ACTIVE -> EVICTED, blind to who occupies
 *           the entry now (issue 19, finding 2, dh-validate's half).
 *   -DREACH_*: an assert(false) at a state the verified variant must
 *           reach, so that it is not verified vacuously: an evicted live
 *           reader releases its own claim; a dead reader's claim is counted
 *           lost; a successor writer takes (s, AVAIL) as free.
 *   Without them: the protocol of FIX19 A and B (attach generation in the
 *   state word, CAS from the observed word; release is a CAS from the
 *   reader's own claim; eviction of a live reader only marks it).
 *
 * Actors: a writer that may die (up to WDEATHS times) after each of its
 * steps (waiting, stamping odd with the payload half-written, completing
 * payload and stamp, the claim word), each time replaced by a successor
 * that resumes at the committed count; two reader processes sharing two
 * table entries; one of them may die between calls (holding a claim or
 * not) or between its claim and helping the head on, or close and attach
 * again (to either entry: index reuse);
 * the other never dies but re-attaches after being evicted; an evictor
 * (dh-validate --repair --force) that may evict one live reader holding
 * a claim, at any moment (the stall threshold is time, abstracted away:
 * any reader with a claim may have held it long enough); a repairer
 * that reclaims a dead reader's entry under its lock (the blocked
 * writer, dh-validate --repair and an attaching reader all do this).
 *
 * Checked:
 *   - no torn delivery: a reader only consumes the payload of the message
 *     it claimed, completely written;
 *   - zero copy: the writer never starts overwriting a slot whose message
 *     a reader holds in place (claimed and not yet released);
 *   - no duplicate: no message is delivered twice;
 *   - accounting: at the end every message was delivered or counted lost
 *     (a reader that dies after consuming but before releasing is counted
 *     lost: nobody can know it finished);
 *   - no corruption reported on a sound channel: reaching an ECORRUPT
 *     branch is an error, except that an evicted reader reports EVICTED;
 *   - an evictor only evicts the occupant it saw holding the claim;
 *   - progress: the writer publishes every message and every slot ends
 *     DONE (no deadlock: SPIN reports invalid end states).
 */

#define N 2          /* slots */
#define M 3          /* messages */
#define E 2          /* reader table entries; tag of entry i is i + 1 */
#define P 2          /* reader processes */
#define WDEATHS 2    /* writer deaths */
#define MAXEV 1      /* evictions */
#define AVAIL 0
#define DONE 9
#define NONE 255
#define FREE 0
#define ACTIVE 1
#define EVICTED 2
#define REPAIRER 7   /* lock holder id of the repairer; readers are p + 1 */

byte committed = 0;
byte head = 0;                 /* claim head: a hint */
byte stamp[N];                 /* 2s+1 writing, 2s+2 committed */
byte data[N];                  /* the payload: its seq, or NONE while torn */
byte qseq[N], qtag[N];         /* claim word = (seq, tag) */
byte est[E];                   /* entry state */
byte egen[E];                  /* attach generation (FIX19 A) */
byte lock[E];                  /* entry lock holder, 0 if free */
byte eclaim[E];                /* entry claim word */
byte occ[E];                   /* ghost: process attached there (p + 1) */
byte held[P];                  /* ghost: seq process p holds in place */
byte delivered[M];
byte lost[M];
bool writer_done = false;
byte wdeaths = 0;
byte evictions = 0;
byte immortal;                 /* the reader process that never dies */

inline claim_free(s) {
	/* (s, AVAIL) is s itself, left by a writer that died between the
	 * claim word and the committed count */
	(s < N || (qseq[s % N] == s - N && qtag[s % N] == DONE) ||
	 (qseq[s % N] == s && qtag[s % N] == AVAIL))
}

inline wdie() {
	if
	:: wdeaths < WDEATHS -> wdeaths++; goto died
	:: true -> skip
	fi
}

/* Reclaim entry i's claims; the caller holds lock i, so its occupant is
 * dead and nobody can attach there meanwhile. */
inline reap(i) {
	/* one step: while lock i is held nobody else writes claims tagged i */
	atomic {
		k = 0;
		do
		:: k < N ->
			if
			:: qtag[k] == i + 1 -> qtag[k] = DONE; lost[qseq[k]]++;
#ifdef REACH_REAP_LOST
				assert(false)
#else
				skip
#endif
			:: else -> skip
			fi;
			k++
		:: k >= N -> k = 0; break
		od;
		eclaim[i] = NONE;
		est[i] = FREE
	}
}

proctype writer()
{
	byte s, p;
restart:
	s = committed;             /* a new writer resumes at the committed count */
	do
	:: s >= M -> writer_done = true; break
	:: s < M ->
		atomic { claim_free(s) };          /* wait for space */
#ifdef REACH_RESUME_AVAIL
		assert(!(s >= N && qseq[s % N] == s && qtag[s % N] == AVAIL));
#endif
		wdie();
		atomic {
			stamp[s % N] = 2 * s + 1;
			p = 0;
			do
			:: p < P -> assert(held[p] == NONE || held[p] % N != s % N); p++
			:: p >= P -> p = 0; break
			od;
			data[s % N] = NONE                 /* overwriting starts */
		};
		wdie();
		data[s % N] = s;
		stamp[s % N] = 2 * s + 2;
		wdie();
		atomic { qseq[s % N] = s; qtag[s % N] = AVAIL };
		wdie();
		committed = s + 1;
		s++
	od;
	goto out;
died:
	/* the successor, a new process, takes the lock and resumes */
	goto restart;
out:
	skip
}

/* dh_reader_release: the held message's claim word back to DONE */
inline release() {
	if
	:: held[p] != NONE ->
		s = held[p];
#ifdef BUG1
		atomic { qseq[s % N] = s; qtag[s % N] = DONE; held[p] = NONE };
#else
		atomic { if
			 :: qseq[s % N] == s && qtag[s % N] == i + 1 -> qtag[s % N] = DONE;
#ifdef REACH_EVICTED_RELEASE
				assert(est[i] != EVICTED)
#else
				skip
#endif
			 :: else -> skip
			 fi;
			 held[p] = NONE };
#endif
		atomic { eclaim[i] = NONE; s = 0 }
	:: else -> skip
	fi
}

proctype reader(byte p)
{
	byte i, h, s, k;
	bool mortal = (p != immortal);
	byte reattach = 1;             /* the mortal one may close and attach once more */

	/* dh_reader_open: an entry whose lock is free (FREE, or a dead
	 * predecessor's, reaped under the lock) */
end_attach:
	if
	:: atomic { lock[0] == 0 -> lock[0] = p + 1; i = 0 }
	:: atomic { lock[1] == 0 -> lock[1] = p + 1; i = 1 }
	fi;
	if
	:: est[i] != FREE -> reap(i)
	:: else -> skip
	fi;
	eclaim[i] = NONE;
	atomic { est[i] = ACTIVE; egen[i]++; occ[i] = p + 1 };

loop:
	if
	:: mortal -> goto died           /* holding a claim or not */
	:: mortal && reattach > 0 -> reattach--; goto close
	:: true -> skip
	fi;
	/* dh_reader_next: release the previous message first */
	release();
	if
	:: est[i] == EVICTED -> goto close     /* EEVICTED */
	:: else -> skip
	fi;
	if
	:: writer_done && head >= M -> goto close
	:: else -> skip
	fi;
	h = head;
end_wait:
	(h < committed || (writer_done && head >= M));
	if
	:: h >= committed -> h = 0; goto loop
	:: else -> skip
	fi;
	if
	:: atomic { qseq[h % N] == h && qtag[h % N] == AVAIL -> qtag[h % N] = i + 1; held[p] = h; s = h }
	:: atomic { qseq[h % N] < h -> skip } ->
		goto corrupt                   /* the claim word is older than the head */
	:: atomic { !(qseq[h % N] == h && qtag[h % N] == AVAIL) && qseq[h % N] >= h ->
		if :: head == h -> head = h + 1 :: else -> skip fi; h = 0 };
		goto loop
	fi;
	if
	:: mortal -> goto died           /* claimed, the head not yet helped on */
	:: true -> skip
	fi;
	atomic { if :: head == h -> head = h + 1 :: else -> skip fi; h = 0 };
	eclaim[i] = s;
	if
	:: stamp[s % N] != 2 * s + 2 -> goto corrupt
	:: else -> skip
	fi;
	atomic {
		assert(data[s % N] == s);          /* no torn delivery */
		assert(delivered[s] == 0);         /* no duplicate */
		delivered[s]++;
		s = 0
	};
	goto loop;

corrupt:
#ifndef BUG1
	/* an evicted reader reports EVICTED, never corruption */
	if
	:: est[i] == EVICTED -> goto close
	:: else -> skip
	fi;
#endif
	assert(false);                     /* corruption reported on a sound channel */

close:
	/* dh_reader_close: release, FREE, drop the lock */
	release();
	est[i] = FREE;
	atomic { lock[i] = 0; h = 0; i = 0 };
	if
	:: writer_done && head >= M -> goto out
	:: else -> goto end_attach
	fi;
died:
	atomic { held[p] = NONE; lock[i] = 0 };    /* the kernel drops its lock */
out:
	skip
}

/* dh-validate --repair --force: evicts a live reader that holds a claim
 * (it "stalled"), comparing against the state word it observed. */
proctype evictor()
{
	byte i, g, o, k;
	bool ok;
end_ev:
	do
	:: atomic { evictions < MAXEV && est[0] == ACTIVE && lock[0] != 0 && eclaim[0] != NONE ->
		i = 0; g = egen[0]; o = occ[0] } -> goto cas
	:: atomic { evictions < MAXEV && est[1] == ACTIVE && lock[1] != 0 && eclaim[1] != NONE ->
		i = 1; g = egen[1]; o = occ[1] } -> goto cas
	od;
cas:
		atomic {
#ifdef BUG2
			if
			:: est[i] == ACTIVE -> est[i] = EVICTED; ok = true
			:: else -> ok = false
			fi;
#else
			if
			:: est[i] == ACTIVE && egen[i] == g -> est[i] = EVICTED; ok = true
			:: else -> ok = false
			fi;
#endif
			if
			:: ok -> evictions++;
				assert(occ[i] == o)    /* only the occupant it saw stalled */
			:: else -> skip
			fi;
			g = 0; o = 0
		};
#ifdef BUG1
		if
		:: ok ->
			/* today: its claims are marked done and counted lost */
			k = 0;
			do
			:: k < N ->
				atomic { if
					 :: qtag[k] == i + 1 -> qtag[k] = DONE; lost[qseq[k]]++
					 :: else -> skip
					 fi };
				k++
			:: k >= N -> break
			od
		:: else -> skip
		fi;
#endif
	atomic { i = 0; k = 0; ok = false; goto end_ev }
}

/* Reclaims the entry of a reader whose lock is gone: marks its claims
 * done and counts them lost, never hands them to another reader. */
proctype repairer()
{
	byte i, k;
end_rep:
	do
	:: atomic { est[0] != FREE && lock[0] == 0 -> lock[0] = REPAIRER; i = 0 } ->
		reap(i); lock[i] = 0
	:: atomic { est[1] != FREE && lock[1] == 0 -> lock[1] = REPAIRER; i = 1 } ->
		reap(i); lock[i] = 0
	od
}

init {
	byte k;
	atomic {
		k = 0;
		do
		:: k < N -> stamp[k] = 0; data[k] = NONE; qseq[k] = 0; qtag[k] = DONE; k++
		:: k >= N -> break
		od;
		/* (0, DONE) of an unused slot is never mistaken: the writer only
		 * checks it for s >= N, readers only for h < committed */
		held[0] = NONE; held[1] = NONE;
		eclaim[0] = NONE; eclaim[1] = NONE;
		immortal = 0;          /* the readers are alike: no loss */
		run writer();
		run reader(0);
		run reader(1);
		run evictor();
		run repairer()
	}
	(writer_done && head >= M && qtag[0] == DONE && qtag[1] == DONE);
	k = 0;
	do
	:: k < M -> assert(delivered[k] <= 1 && delivered[k] + lost[k] >= 1); k++
	:: k >= M -> break
	od
}
