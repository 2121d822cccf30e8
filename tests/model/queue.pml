/*
 * queue.pml: SPIN model of dh's slot protocol under the queue policy,
 * with crashes.  See docs/DESIGN.md ("Slots", "Queue claims") and
 * lib/ring.c.  `make model` runs it.
 *
 * Actors: a writer that may die at any step and be replaced by a new one
 * (which resumes at the committed count, as dh_writer_open does); two
 * competing readers that may die at any step; a repairer that reclaims a
 * dead reader's claims once its lock is gone (as the blocked writer,
 * dh-validate --repair or an attaching reader do).
 *
 * Checked:
 *   - no torn delivery: a reader only ever consumes the payload of the
 *     message it claimed, completely written;
 *   - no duplicate: no message is delivered twice, whatever dies when;
 *   - accounting: at the end every message was delivered once or counted
 *     lost (a reader that dies after consuming but before releasing is
 *     counted lost: nobody can know it finished, and a second delivery
 *     is the worse error);
 *   - progress: with at least one reader that never dies, the writer
 *     publishes every message (no deadlock: SPIN reports invalid end
 *     states).
 */

#define N 2          /* slots */
#define M 4          /* messages */
#define R 2          /* readers */
#define AVAIL 0
#define DONE 9       /* tags 1..R: claimed by that reader */
#define NONE 255

byte committed = 0;
byte head = 0;                 /* claim head: a hint */
byte stamp[N];                 /* 2s+1 writing, 2s+2 committed (s < M) */
byte data[N];                  /* the payload: the seq it belongs to, or NONE while torn */
byte qseq[N], qtag[N];         /* claim word = (seq, tag) */
bool alive[R];                 /* reader i holds its lock */
bool inuse[R];                /* reader i's table entry is in use */
byte delivered[M];
byte lost[M];
bool writer_done = false;
byte immortal;                 /* the reader that never dies, chosen at start */

inline claim_free(s) {
	/* may the writer reuse the slot of s?  (s, AVAIL) is s itself, left
	 * by a writer that died between publishing the claim word and the
	 * committed count: without that case the successor waits forever
	 * (the deadlock this model found in lib/ring.c) */
	(s < N || (qseq[s % N] == s - N && qtag[s % N] == DONE) ||
	 (qseq[s % N] == s && qtag[s % N] == AVAIL))
}

proctype writer(bool may_die)
{
	byte s;
	s = committed;             /* a new writer resumes at the committed count */
	do
	:: s >= M -> writer_done = true; break
	:: s < M ->
		if
		:: may_die -> goto died
		:: true -> skip
		fi;
		atomic { claim_free(s) };          /* wait for space */
		if :: may_die -> goto died :: true -> skip fi;
		stamp[s % N] = 2 * s + 1;
		if :: may_die -> goto died :: true -> skip fi;
		data[s % N] = NONE;                /* a half-written payload */
		if :: may_die -> goto died :: true -> skip fi;
		data[s % N] = s;
		if :: may_die -> goto died :: true -> skip fi;
		stamp[s % N] = 2 * s + 2;
		if :: may_die -> goto died :: true -> skip fi;
		atomic { qseq[s % N] = s; qtag[s % N] = AVAIL };
		if :: may_die -> goto died :: true -> skip fi;
		committed = s + 1;
		s++
	od;
	goto out;
died:
	/* a successor takes over; it never dies, so the stream completes */
	run writer(false);
out:
	skip
}

proctype reader(byte i)
{
	byte h, got;
	bool mortal = (i != immortal);
end_loop:
	do
	:: mortal -> goto died
	:: writer_done && head >= M -> break
	:: h = head;
		/* as in next_queue: the head first, then a committed count
		 * above it (waiting on the futex until there is one) */
end_wait:	(h < committed || (writer_done && head >= M));
		if
		:: h >= committed -> goto end_loop
		:: else -> skip
		fi;
		if
		:: mortal -> goto died
		:: true -> skip
		fi;
		if
		:: atomic { qseq[h % N] == h && qtag[h % N] == AVAIL -> qtag[h % N] = i + 1 } ->
			/* claimed: helping the head forward is separate */
			if :: mortal -> goto died :: true -> skip fi;
			atomic { if :: head == h -> head = h + 1 :: else -> skip fi };
			if :: mortal -> goto died :: true -> skip fi;
			assert(stamp[h % N] == 2 * h + 2);
			got = data[h % N];
			assert(got == h);                       /* no torn delivery */
			if :: mortal -> goto died :: true -> skip fi;
			atomic { assert(delivered[h] == 0);     /* no duplicate */
				 delivered[h]++ };
			if :: mortal -> goto died :: true -> skip fi;
			atomic { qtag[h % N] = DONE }           /* release */
		:: atomic { !(qseq[h % N] == h && qtag[h % N] == AVAIL) ->
			/* taken by another reader, done, or already reused */
			if :: head == h -> head = h + 1 :: else -> skip fi }
		fi
	od;
	goto out;
died:
	alive[i] = false;          /* the kernel drops its lock */
out:
	skip
}

/* Reclaims the claims of a reader whose lock is gone: marks them done and
 * counts them lost, never hands them to another reader. */
proctype repairer()
{
	byte i, k;
end_wait:
	do
	:: atomic { inuse[0] && !alive[0] -> i = 0 } -> goto reap
	:: atomic { inuse[1] && !alive[1] -> i = 1 } -> goto reap
	od;
reap:
	k = 0;
	do
	:: k < N ->
		atomic { if
			 :: qtag[k] == i + 1 -> qtag[k] = DONE; lost[qseq[k]]++
			 :: else -> skip
			 fi };
		k++
	:: k >= N -> break
	od;
	inuse[i] = false;
	goto end_wait
}

init {
	byte k;
	atomic {
		k = 0;
		do
		:: k < N -> stamp[k] = 0; data[k] = NONE; qseq[k] = 0; qtag[k] = DONE; k++
		:: k >= N -> break
		od;
		/* qseq 0 / DONE of an unused slot is never mistaken: the writer
		 * only checks it for s >= N, readers only for h < committed */
		if :: immortal = 0 :: immortal = 1 fi;
		alive[0] = true; alive[1] = true;
		inuse[0] = true; inuse[1] = true;
		run writer(true);
		run reader(0);
		run reader(1);
		run repairer()
	}
	/* the end: the writer published everything (progress), and every
	 * message was delivered exactly once or counted lost */
	(writer_done && head >= M && qtag[0] == DONE && qtag[1] == DONE);
	k = 0;
	do
	:: k < M -> assert(delivered[k] <= 1 && delivered[k] + lost[k] >= 1); k++
	:: k >= M -> break
	od
}
