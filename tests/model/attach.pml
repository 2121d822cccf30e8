/*
 * attach.pml: SPIN model of the sync writer's reserve against a reader
 * attaching at an old message, on a machine with store buffers (x86-TSO:
 * a store waits in its CPU's FIFO buffer while later loads go ahead), and
 * of the light reserve that moves the barrier to the reader's attach with
 * membarrier(2).  See lib/ring.c (dh_writer_reserve, sync_space,
 * reader_open, light_writer, light_barrier) and dh-format(5), "the light
 * reserve".
 * `make model` runs it.
 *
 * verify: none, -DHEAVY
 * counterexample: -DBUG_NOBARRIER, -DBUG_FLAGFIRST
 * reach: -DREACH_SKIP, -DREACH_WAIT
 *   (tests/model/run.sh reads those lines: each "verify" variant must
 *   verify with the state space exhausted, each "counterexample" and
 *   "reach" variant must produce a violation.)
 *   none:   the light writer: it published DH_W_LIGHT at open, stores the
 *           odd stamp plainly (it may sit in the store buffer while the
 *           writer's load of reader_gen goes ahead), and a reader that
 *           finds the flag after its reader_gen bump calls
 *           membarrier(GLOBAL_EXPEDITED): a full barrier on the writer's
 *           CPU, which drains its store buffer.
 *   -DHEAVY: the writer without membarrier: the odd stamp is a seq_cst
 *           store (an xchg: the buffer drains before it, it goes straight
 *           to memory), the reader sees no flag and calls nothing.
 *   -DBUG_NOBARRIER: the light store with no barrier anywhere (what the
 *           C11 model allows once the seq_cst store is gone): the writer
 *           overwrites the message the reader uses in place.
 *   -DBUG_FLAGFIRST: the reader reads the flag before it publishes its
 *           attach: a writer that opens in between (taking over from a
 *           writer without the flag) is missed by both sides.
 *   -DREACH_*: an assert(false) at a state the verified model must reach,
 *           so that it is not verified vacuously: the attaching reader
 *           finds its start overwritten and skips it (it saw the odd
 *           stamp); the writer sees the attach after its odd stamp and
 *           waits for the reader.
 *
 * Actors: a previous writer left N messages (0..N-1), all consumed by a
 * reader now gone (drained = N), without the flag.  A new writer opens
 * at a moment of its choice (flag, then its first reader_gen load) and
 * writes seqs N..M-1, sync: a slot's old message may be overwritten only
 * once every attached reader is past it (with no reader: once drained is
 * past it); its cached scan (gen_cache/min_cache) stays valid while
 * reader_gen is unchanged.  Its stores go through a FIFO store buffer
 * that drains one store at a time at any moment.  A reader attaches at a
 * moment of its choice at the oldest message held (--from oldest), reads
 * every message in place to the end and closes (folding its position
 * into drained).  The reader's own stores are sequentially consistent
 * (a locked RMW follows each), so they are not buffered.
 *
 * Checked: the writer never writes the payload of a slot whose message
 * the reader uses in place (its odd stamp may land there: the reader
 * checked the stamp before it took the message, and the writer then waits
 * for it), and the reader never sees a torn message; progress (no invalid
 * end state).
 */

#define N 2          /* slots */
#define M 5          /* the new writer writes N..M-1: it laps the ring */
#define BUF 3        /* store buffer entries */
#define NONE 255

#define ST_STAMP 0
#define ST_DATA 1
#define ST_COMMITTED 2

byte committed = N;
byte stamp[N];
byte data[N];
byte drained = N;
byte gen = 0;            /* reader_gen */
byte pos = NONE;         /* the reader's table position, NONE if detached */
bit light = 0;           /* the writer entry's DH_W_LIGHT */
byte in_use = NONE;      /* the seq the reader holds in place */

chan sb = [BUF] of { byte, byte, byte };   /* the writer's store buffer */

inline apply(k, i, v)
{
	if
	:: k == ST_STAMP -> stamp[i] = v
	:: k == ST_DATA ->
		/* overwriting a message in use: the odd stamp before it may
		 * land (the reader checked the stamp before), the payload and
		 * the descriptor (written with it) may not */
		assert(!(in_use != NONE && i == in_use % N && v != in_use));
		data[i] = v
	:: k == ST_COMMITTED -> committed = v
	fi
}

/* A full barrier on the writer's CPU: its store buffer drains. */
inline drain_all()
{
	do
	:: len(sb) > 0 -> sb?k0, i0, v0; apply(k0, i0, v0)
	:: len(sb) == 0 -> break
	od
}

proctype cpu()
{
	byte k, i, v;
end:	do
	:: atomic { sb?k, i, v -> apply(k, i, v) }
	od
}

/* The writer's scan: the slowest attached position, or drained. */
inline scan(g, mc)
{
	atomic { g = gen; mc = (pos == NONE -> drained : pos) }
}

proctype writer()
{
	byte s = N, gc = NONE, mc = 0, g, need;
	byte k0, i0, v0;

	/* open: the flag, a full barrier, then the first look at the readers */
#ifndef HEAVY
	atomic { len(sb) == 0 -> light = 1 }
#endif
	do
	:: s == M -> break
	:: s < M ->
		need = s + 1 - N;
		/* space: the cache, else scan until the slot's old message is free */
		if
		:: mc >= need -> skip    /* space_cached: the minimum alone */
		:: else ->
			do
			:: scan(g, mc); gc = g;
			   if
			   :: mc >= need -> break
			   :: else -> gen != g || (pos == NONE -> drained : pos) != mc
			   fi
			od
		fi;
		/* the odd stamp, then reader_gen */
#ifdef HEAVY
		atomic { len(sb) == 0 -> apply(ST_STAMP, s % N, 2 * s + 1) }
#else
		sb!ST_STAMP, s % N, 2 * s + 1;
#endif
		g = gen;
		if
		:: g != gc ->
#ifdef REACH_WAIT
			assert(false);
#endif
			do
			:: scan(g, mc); gc = g;
			   if
			   :: mc >= need -> break
			   :: else -> gen != g || (pos == NONE -> drained : pos) != mc
			   fi
			od
		:: else -> skip
		fi;
		sb!ST_DATA, s % N, s;
		sb!ST_STAMP, s % N, 2 * s + 2;
		sb!ST_COMMITTED, 0, s + 1;
		s++
	od
}

proctype reader()
{
	byte c, p, st, f;
	byte k0, i0, v0;

#ifdef BUG_FLAGFIRST
	f = light;
#endif
	c = committed;
	p = (c >= N -> c - N : 0);
	pos = p;
	gen++;
#ifndef BUG_FLAGFIRST
	f = light;
#endif
#ifndef BUG_NOBARRIER
	if
	:: f -> atomic { drain_all() }
	:: else -> skip
	fi;
#endif
	do
	:: p == M -> break
	:: p < M ->
		p < committed;
		atomic {
			st = stamp[p % N];
			if
			:: st == 2 * p + 2 -> in_use = p
			:: else -> skip
			fi
		}
		if
		:: in_use == p ->
			assert(data[p % N] == p);   /* used in place, a while */
			assert(data[p % N] == p);
			atomic { in_use = NONE; p++; pos = p }
		:: else ->
#ifdef REACH_SKIP
			assert(false);
#endif
			/* overwritten since we chose it: skipped, counted lost */
			atomic { p++; pos = p }
		fi
	od;
	atomic { drained = (p > drained -> p : drained); pos = NONE; gen++ }
}

init
{
	byte j = 0;

	atomic {
		do
		:: j < N -> stamp[j] = 2 * j + 2; data[j] = j; j++
		:: j == N -> break
		od;
		run cpu();
		run writer();
		run reader()
	}
}
