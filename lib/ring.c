/* ring.c: the writer and reader protocols over a segment. See LICENSE. */
#include <errno.h>
#include <linux/membarrier.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "dh_cancel.h"
#include "dh_impl.h"
#include "dh_ring.h"

#define SPIN_ITERS 200
#define SLICE_NS 50000000         /* recheck liveness this often while blocked */
#define TAG_MASK ((uint64_t)(1u << DH_Q_SHIFT) - 1)

static inline void
cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__asm__ __volatile__("pause");
#elif defined(__aarch64__)
	__asm__ __volatile__("yield");
#endif
}

static inline uint64_t
qword(uint64_t seq, uint64_t tag)
{
	return seq << DH_Q_SHIFT | tag;
}

static uint64_t
now_coarse(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME_COARSE, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Owner-only counters: a plain load and store is enough and avoids a locked op. */
static inline void
bump(_Atomic uint64_t *c, uint64_t by)
{
	atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + by, memory_order_relaxed);
}

static void
fill_name(char dst[DH_PNAME_MAX], const char *label)
{
	memset(dst, 0, DH_PNAME_MAX);
	if (label)
		strncpy(dst, label, DH_PNAME_MAX - 1);
}

/* Remaining ns until deadline (mono), never negative; -1 for none. */
static int64_t
remaining(int64_t timeout_ns, uint64_t start)
{
	uint64_t el;

	if (timeout_ns < 0)
		return -1;
	el = dh__now_mono() - start;
	return el >= (uint64_t)timeout_ns ? 0 : (int64_t)((uint64_t)timeout_ns - el);
}

static int64_t
slice(int64_t rem)
{
	return rem < 0 || rem > SLICE_NS ? SLICE_NS : rem;
}

/* --- writer --------------------------------------------------------------- */

struct dh_writer {
	struct dh_block *b;
	struct dh_pentry *e;
	uint64_t seq;
	int reserved;
	uint64_t gen_cache;
	int light;                     /* DH_W_LIGHT: odd stamps without a barrier */
	uint64_t min_cache;            /* slowest live sync reader position at gen_cache */
	/* evict_after timers, each valid only for the occupant word it timed */
	uint64_t stall_since[DH_READERS_MAX + 1];
	uint32_t stall_word[DH_READERS_MAX + 1];
	struct dh_cancel *cancel;
	int started;                   /* this session's stream has begun */
	/* Batched publication: commits up to `pub` are visible (the committed
	 * count); those from pub to seq are stamped and checked but not yet
	 * published.  batch is the most we let pile up before publishing. */
	uint64_t pub;
	uint64_t pend_bytes;
	uint64_t batch_time;           /* commit time of the batch's first message */
	unsigned batch;
};

/*
 * membarrier(2) moves the sync writer's per-message barrier to the rare
 * reader attach (docs/DESIGN.md, "The light reserve").  The writer
 * registers for global expedited barriers; an attaching reader then makes
 * every CPU running a registered process execute a full barrier.
 */
static int
light_register(void)
{
#if defined(__x86_64__) || defined(__i386__)
	long cmds = syscall(SYS_membarrier, MEMBARRIER_CMD_QUERY, 0, 0);

	if (cmds < 0 || !(cmds & MEMBARRIER_CMD_REGISTER_GLOBAL_EXPEDITED))
		return -DH_EUNSUPPORTED;
	if (syscall(SYS_membarrier, MEMBARRIER_CMD_REGISTER_GLOBAL_EXPEDITED, 0, 0) < 0)
		return -errno;
	return 0;
#else
	/* Only where the seq_cst store is a locked instruction (x86) is the
	 * trade a gain: elsewhere the release fence of the light store costs
	 * about what a store-release does, and readers pay membarrier on top. */
	return -DH_EUNSUPPORTED;
#endif
}

/* May this process call membarrier at all (no seccomp filter against it)? */
static int
light_callable(void)
{
	return syscall(SYS_membarrier, MEMBARRIER_CMD_QUERY, 0, 0) >= 0;
}

/* The writer registered, so the kernel has the expedited command; a
 * filter may still refuse it.  The plain global command (an RCU grace
 * period, milliseconds) does too.  Without either, attaching is unsafe. */
static int
light_barrier(void)
{
	if (syscall(SYS_membarrier, MEMBARRIER_CMD_GLOBAL_EXPEDITED, 0, 0) == 0 ||
	    syscall(SYS_membarrier, MEMBARRIER_CMD_GLOBAL, 0, 0) == 0)
		return 0;
	return -DH_EUNSUPPORTED;
}

/* Begin the next stream: its start first, then the old end mark cleared,
 * then its number, so a reader that attaches meanwhile sees either the
 * ended stream with its end (and waits for the next) or the new start
 * (dh_reader_open). */
static void
start_stream(struct dh_writer *w)
{
	struct dh_hdr *h = w->b->hdr;

	w->started = 1;
	atomic_store(&h->stream_start, w->seq);
	atomic_store(&h->eos_seq, DH_SEQ_NONE);
	atomic_fetch_add(&h->stream, 1);
	/* readers waiting between streams */
	atomic_fetch_add(&h->data_futex, 1);
	dh__futex_wake(&h->data_futex);
}

/*
 * Make every commit so far visible: one release store of the count, the
 * statistics once for the lot, and at most one wake-up.  The stamps were
 * made even one by one at commit, so a reader that sees the count sees
 * every message below it whole.
 */
static void
publish(struct dh_writer *w)
{
	struct dh_hdr *h = w->b->hdr;
	uint64_t n = w->seq - w->pub;

	if (n == 0)
		return;
	atomic_store_explicit(&h->committed, w->seq, memory_order_release);
	w->pub = w->seq;
	atomic_store_explicit(&w->e->position, w->seq, memory_order_relaxed);
	dh__touch(w->e, w->batch_time);
	bump(&h->messages_written, n);
	bump(&h->bytes_written, w->pend_bytes);
	bump(&w->e->messages, n);
	bump(&w->e->bytes, w->pend_bytes);
	w->pend_bytes = 0;
	/* The locked add orders committed before the sleep-flag check (Dekker
	 * with the reader, which sets the flag before it looks for data): no
	 * lost wake-up. Only the first publication after a reader went to
	 * sleep pays for a system call; the ones before it wakes up do not. */
	atomic_fetch_add(&h->data_futex, 1);
	if (atomic_load(&h->data_sleep) && atomic_exchange(&h->data_sleep, 0))
		dh__futex_wake(&h->data_futex);
}

int
dh_writer_open(const char *name, const char *label, struct dh_writer **out, pid_t *holder)
{
	struct dh_writer_opts o = { .label = label };

	return dh_writer_open_opts(name, &o, out, holder);
}

int
dh_writer_open_opts(const char *name, const struct dh_writer_opts *opts, struct dh_writer **out, pid_t *holder)
{
	const char *label = opts ? opts->label : NULL;
	struct dh_writer *w;
	struct dh_block *b;
	int rc;

	if ((rc = dh_block_open(name, 0, &b)) < 0)
		return rc;
	if (opts && (rc = dh__check_identity(b, opts->key, opts->schema)) < 0) {
		dh_block_close(b);
		return rc;
	}
	if (!opts && (rc = dh__check_identity(b, NULL, NULL)) < 0) {
		dh_block_close(b);
		return rc;
	}
	if ((rc = dh__lock_try(b->fd, 0)) < 0) {
		if (rc == -EAGAIN) {
			if (holder)
				*holder = (pid_t)b->table[0].pid;
			rc = -EBUSY;
		}
		dh_block_close(b);
		return rc;
	}
	if (!(w = calloc(1, sizeof *w))) {
		dh__lock_drop(b->fd, 0);
		dh_block_close(b);
		return -ENOMEM;
	}
	w->b = b;
	w->e = &b->table[0];
	/* A predecessor that died mid-write left an odd stamp and an
	 * unchanged committed count: we simply rewrite that seq. */
	w->seq = atomic_load(&b->hdr->committed);
	w->pub = w->seq;
	w->batch = 1;
	w->gen_cache = UINT64_MAX;
	/* Before our first look at reader_gen (seq_cst store, seq_cst load):
	 * a reader that attaches either sees the flag or is seen by us. */
	w->light = b->pol->positions_hold && light_register() == 0;
	atomic_store(&w->e->flags, w->light ? DH_W_LIGHT : 0);
	w->e->pid = (uint32_t)getpid();
	fill_name(w->e->name, label);
	atomic_store(&w->e->position, w->seq);
	dh__touch(w->e, dh__now_real());
	atomic_store(&w->e->state, dh__ent_attach(atomic_load(&w->e->state)));
	/* After an end-of-stream (or on a new channel) the next stream starts
	 * with our first message or our own end, not here: a writer that
	 * refuses its input and leaves must leave the channel as it found it. */
	w->started = atomic_load(&b->hdr->stream) != 0 && atomic_load(&b->hdr->eos_seq) == DH_SEQ_NONE;
	atomic_fetch_add(&b->hdr->writer_sessions, 1);
	*out = w;
	return 0;
}

void
dh_writer_close(struct dh_writer *w)
{
	if (!w)
		return;
	w->reserved = 0;
	publish(w);
	/* every odd stamp of ours is visible now: readers need no barrier */
	atomic_store(&w->e->flags, 0);
	atomic_store(&w->e->state, dh__ent_with(atomic_load(&w->e->state), DH_ENT_FREE));
	dh__lock_drop(w->b->fd, 0);
	dh_block_close(w->b);
	free(w);
}

struct dh_block *
dh_writer_block(struct dh_writer *w)
{
	return w->b;
}

void
dh_writer_set_cancel(struct dh_writer *w, struct dh_cancel *c)
{
	w->cancel = c;
}

size_t
dh_writer_slot_size(const struct dh_writer *w)
{
	return w->b->cfg.slot_size;
}

uint64_t
dh_writer_seq(const struct dh_writer *w)
{
	return w->seq;
}

/* Reclaim reader i if its lock is free; 1 if it was dead and is now free. */
static int
reap_if_dead(struct dh_block *b, int i)
{
	int rc;

	if (dh__lock_held(b->fd, i) != 0)
		return 0;
	if (dh__lock_try(b->fd, i) < 0)
		return 0; /* someone is attaching there right now */
	rc = dh__reap(b, i, 0);
	dh__lock_drop(b->fd, i);
	return rc;
}

/* Does this position keep seq need - 1 (the slot's old message) from reuse? */
static int
holds_back(uint64_t raw, uint64_t need, int evicted)
{
	/* An evicted reader no longer holds the stream back, only a message
	 * it holds in place (DH_POS_HOLD) until it lets go or dies. */
	if (evicted && !(raw & DH_POS_HOLD))
		return 0;
	return (raw & ~DH_POS_HOLD) < need;
}

/* sync: may seq s overwrite the slot of s - slots? */
static int
sync_space(struct dh_writer *w, uint64_t s, int live)
{
	struct dh_block *b = w->b;
	uint64_t need = s + 1 - b->cfg.slots, gen, min = UINT64_MAX, now = 0;
	int blocked = 0, seen = 0;

	gen = atomic_load(&b->hdr->reader_gen);
	if (s < b->cfg.slots || (gen == w->gen_cache && w->min_cache >= need))
		return 1;
	for (uint32_t i = 1; i <= b->cfg.max_readers; i++) {
		struct dh_pentry *e = &b->table[i];
		uint32_t word = atomic_load(&e->state), st = dh__ent_state(word);
		uint64_t raw, pos;

		if (st != DH_ENT_ACTIVE && st != DH_ENT_EVICTED) {
			w->stall_since[i] = 0;
			continue;
		}
		raw = atomic_load(&e->position);
		if (!holds_back(raw, need, st == DH_ENT_EVICTED)) {
			w->stall_since[i] = 0;
		} else if (live && reap_if_dead(b, (int)i)) {
			w->stall_since[i] = 0;
			continue;
		} else if (live && st == DH_ENT_ACTIVE && b->cfg.evict_after_ns) {
			now = now ? now : dh__now_mono();
			if (!w->stall_since[i] || w->stall_word[i] != word) {
				w->stall_since[i] = now;
				w->stall_word[i] = word;
			} else if (now - w->stall_since[i] >= b->cfg.evict_after_ns) {
				uint32_t expect = word;
				w->stall_since[i] = 0;
				if (atomic_compare_exchange_strong(&e->state, &expect, dh__ent_with(word, DH_ENT_EVICTED))) {
					atomic_fetch_add(&b->hdr->evictions, 1);
					st = DH_ENT_EVICTED;
					/* after the CAS: either the reader sees it is evicted
					 * before it touches a slot, or we see its hold here */
					raw = atomic_load(&e->position);
				}
			}
		}
		seen = 1;
		pos = raw & ~DH_POS_HOLD;
		if (!holds_back(raw, need, st == DH_ENT_EVICTED)) {
			if (st == DH_ENT_EVICTED)
				continue;
		} else {
			blocked = 1;
		}
		if (pos < min)
			min = pos;
	}
	if (!seen) {
		/* Nobody attached: like a pipe's writer, keep what no reader
		 * has consumed rather than overwrite it. */
		min = atomic_load(&b->hdr->drained);
		blocked = min < need;
	}
	w->gen_cache = gen;
	w->min_cache = min;
	return !blocked;
}

/* queue: has the previous message in this slot been consumed? */
static int
queue_space(struct dh_writer *w, uint64_t s, int live)
{
	struct dh_block *b = w->b;
	uint64_t want;

	uint64_t q;

	if (s < b->cfg.slots)
		return 1;
	want = qword(s - b->cfg.slots, DH_Q_DONE);
	q = atomic_load(&dh__desc(b, s)->qword);
	/* (s, available): a predecessor wrote this very seq and died before
	 * publishing the count; it had waited for the slot, and no reader can
	 * claim a seq not yet committed.  Found by tests/model/queue.pml. */
	if (q == want || q == qword(s, DH_Q_AVAIL))
		return 1;
	if (!live)
		return 0;
	for (uint32_t i = 1; i <= b->cfg.max_readers; i++)
		if (dh__ent_state(atomic_load(&b->table[i].state)) != DH_ENT_FREE)
			reap_if_dead(b, (int)i);
	q = atomic_load(&dh__desc(b, s)->qword);
	return q == want || q == qword(s, DH_Q_AVAIL);
}

static int
has_space(struct dh_writer *w, uint64_t s, int live)
{
	const struct dh_policy_desc *pol = w->b->pol;

	if (pol->positions_hold)
		return sync_space(w, s, live);
	if (pol->claims)
		return queue_space(w, s, live);
	return 1;
}

static int
wait_space(struct dh_writer *w, uint64_t s, int64_t timeout_ns)
{
	struct dh_hdr *h = w->b->hdr;
	uint64_t start = 0, last_live = 0;
	int rc = 0;

	if (has_space(w, s, 0))
		return 0;
	/* Our readers may be waiting for exactly what we have not published
	 * yet: never wait with a batch held back. */
	publish(w);
	if (has_space(w, s, 1))
		return 0;
	if (timeout_ns == 0)
		return -EAGAIN;
	start = last_live = dh__now_mono();
	bump(&h->writer_waits, 1);
	for (;;) {
		int64_t rem = remaining(timeout_ns, start);
		uint32_t v;
		int ok = 0;

		for (int i = 0; i < SPIN_ITERS && !(ok = has_space(w, s, 0)); i++)
			cpu_relax();
		if (ok)
			break;
		if (rem == 0) {
			rc = -ETIMEDOUT;
			break;
		}
		atomic_fetch_add(&h->space_waiters, 1);
		atomic_store(&h->space_sleep, 1);
		v = atomic_load(&h->space_futex);
		if (!has_space(w, s, 0))
			rc = dh__futex_wait_cancel(w->cancel, &h->space_futex, v, slice(rem));
		atomic_fetch_sub(&h->space_waiters, 1);
		if (rc == -EINTR)
			break;
		rc = 0;
		uint64_t now = dh__now_mono();
		if (now - last_live >= SLICE_NS / 2) {
			last_live = now;
			dh__touch(w->e, dh__now_real());
			if (has_space(w, s, 1))
				break;
		}
	}
	bump(&h->writer_wait_ns, dh__now_mono() - start);
	return rc;
}

/* The common case without a call: latest and ring never wait; in sync the
 * slowest position cached at the last scan is past the slot's old message
 * (a reader that attached since bumped reader_gen, which the reserve looks
 * at after its odd stamp).  Queue looks at the slot's claim word. */
static inline int
space_cached(const struct dh_writer *w, uint64_t s)
{
	const struct dh_block *b = w->b;

	if (b->pol->positions_hold)
		return s < b->cfg.slots || w->min_cache >= s + 1 - b->cfg.slots;
	return !b->pol->claims;
}

int
dh_writer_reserve(struct dh_writer *w, void **buf, size_t *cap, int64_t timeout_ns)
{
	struct dh_block *b = w->b;
	uint64_t s = w->seq;
	int rc;

	if (!w->reserved) {
		if (!w->started)
			start_stream(w);
		if (!space_cached(w, s) && (rc = wait_space(w, s, timeout_ns)) < 0)
			return rc;
		struct dh_desc *d = dh__desc(b, s);
		if (b->pol->positions_hold) {
			/* A reader attaching now may have chosen this slot's old
			 * message as its start.  Either it sees the odd stamp and
			 * skips it, or we see its attach and wait for it.  That
			 * needs our store ordered before our load: a seq_cst
			 * store (a full barrier per message), or, light, the
			 * reader's membarrier(2) at attach (tests/model/attach.pml). */
			if (w->light) {
				atomic_store_explicit(&d->stamp, 2 * s + 1, memory_order_relaxed);
				atomic_thread_fence(memory_order_release);
				atomic_signal_fence(memory_order_seq_cst);
			} else {
				atomic_store(&d->stamp, 2 * s + 1);
			}
			/* seq_cst: the heavy Dekker needs both sides so (an
			 * acquire load may pass a store-release on ARM) */
			if (atomic_load(&b->hdr->reader_gen) != w->gen_cache &&
			    (rc = wait_space(w, s, timeout_ns)) < 0)
				return rc;
		} else {
			atomic_store_explicit(&d->stamp, 2 * s + 1, memory_order_relaxed);
			atomic_thread_fence(memory_order_release);
		}
		w->reserved = 1;
	}
	*buf = dh__slot(b, s);
	*cap = b->cfg.slot_size;
	return 0;
}

int
dh_writer_commit(struct dh_writer *w, size_t len)
{
	struct dh_block *b = w->b;
	uint64_t s = w->seq;
	struct dh_desc *d = dh__desc(b, s);

	if (!w->reserved)
		return -EINVAL;
	if (len > b->cfg.slot_size)
		return -DH_ETOOBIG;
	if (b->record_size && len != b->record_size)
		return -DH_ESCHEMA;
	/* One clock read per batch: every message of a batch carries the time
	 * its first one was committed (dh_writer_set_batch). */
	if (s == w->pub || w->batch == 1)
		w->batch_time = dh__now_real();
	d->length = (uint32_t)len;
	d->flags = 0;
	d->time_ns = w->batch_time;
	if (b->ck->digest_len)
		dh__check_compute(b, s, dh__slot(b, s), (uint32_t)len, d->check);
	atomic_store_explicit(&d->stamp, 2 * s + 2, memory_order_release);
	if (b->pol->claims)
		atomic_store_explicit(&d->qword, qword(s, DH_Q_AVAIL), memory_order_release);
	w->seq = s + 1;
	w->reserved = 0;
	w->pend_bytes += len;
	if (w->seq - w->pub >= w->batch)
		publish(w);
	return 0;
}

int
dh_writer_flush(struct dh_writer *w)
{
	publish(w);
	return 0;
}

uint64_t
dh_writer_pending(const struct dh_writer *w)
{
	return w->seq - w->pub;
}

unsigned
dh_writer_set_batch(struct dh_writer *w, unsigned max)
{
	/* At most half the ring: the other half is what readers work through
	 * while we fill this one, and a latest reader's newest message is
	 * never the one being overwritten. */
	unsigned cap = w->b->cfg.slots / 2 ? w->b->cfg.slots / 2 : 1;

	w->batch = max == 0 ? 1 : max > cap ? cap : max;
	if (w->seq - w->pub >= w->batch)
		publish(w);
	return w->batch;
}

void
dh_writer_abort(struct dh_writer *w)
{
	/* The odd stamp stays: the slot's old message may be half
	 * overwritten, and readers already treat it as gone. */
	w->reserved = 0;
}

int
dh_writer_write(struct dh_writer *w, const void *data, size_t len, int64_t timeout_ns)
{
	void *buf;
	size_t cap;
	int rc;

	if (len > w->b->cfg.slot_size)
		return -DH_ETOOBIG;
	if ((rc = dh_writer_reserve(w, &buf, &cap, timeout_ns)) < 0)
		return rc;
	memcpy(buf, data, len);
	return dh_writer_commit(w, len);
}

int
dh_writer_eos(struct dh_writer *w)
{
	struct dh_hdr *h = w->b->hdr;

	if (!w->started)
		start_stream(w); /* an empty stream: its readers see its end */
	publish(w);
	atomic_store(&h->eos_seq, w->seq);
	atomic_fetch_add(&h->eos_count, 1);
	atomic_fetch_add(&h->data_futex, 1);
	dh__futex_wake(&h->data_futex);
	return 0;
}

static unsigned
live_readers(struct dh_block *b)
{
	unsigned n = 0;

	for (uint32_t i = 1; i <= b->cfg.max_readers; i++)
		if (dh__ent_state(atomic_load(&b->table[i].state)) == DH_ENT_ACTIVE &&
		    dh__lock_held(b->fd, (int)i) == 1)
			n++;
	return n;
}

int
dh_writer_wait_readers(struct dh_writer *w, unsigned n, int64_t timeout_ns)
{
	uint64_t start = dh__now_mono();

	/* Attaching is rare and this wait happens once: polling is simpler
	 * than a dedicated futex and costs nothing measurable. */
	while (live_readers(w->b) < n) {
		int64_t rem = remaining(timeout_ns, start);
		int rc;

		if (timeout_ns == 0)
			return -EAGAIN;
		if (rem == 0)
			return -ETIMEDOUT;
		if ((rc = dh__cancel_sleep(w->cancel, rem < 0 || rem > 5000000 ? 5000000 : rem)) < 0)
			return rc;
	}
	return 0;
}

/* As for data: only the first release after the writer went to sleep
 * makes a system call. */
static void
wake_writer(struct dh_hdr *h)
{
	if (atomic_load(&h->space_sleep) && atomic_exchange(&h->space_sleep, 0)) {
		atomic_fetch_add(&h->space_futex, 1);
		dh__futex_wake(&h->space_futex);
	}
}

/* --- reader --------------------------------------------------------------- */

struct dh_reader {
	struct dh_block *b;
	struct dh_pentry *e;
	int idx;
	int follow;
	uint64_t pos;           /* next seq (latest/ring/sync) */
	int held;               /* a message is handed out and not yet released */
	uint64_t held_seq;
	uint64_t delivered;
	uint64_t lost_total;
	uint64_t pending_lost;
	int between;            /* joined between streams: the end mark of stream `joined` is not ours */
	uint64_t joined;
	unsigned char *copy;
	uint64_t dead_checked;  /* mono ns of the last writer liveness check */
	struct dh_cancel *cancel;
	uint8_t check[32];      /* the stored check of the message last delivered */
	/* Runs: the committed count is loaded once, then every message below
	 * it is taken without looking again; a sync reader publishes its hold
	 * at the start of a run, every hold_step messages and once the coarse
	 * clock has ticked, not per message (an older hold covers every later
	 * message: the writer reuses no slot at or past it). */
	uint64_t avail;         /* committed count last loaded */
	uint64_t hold_at;       /* seq our position word holds */
	uint64_t hold_step;
	uint64_t tick;          /* CLOCK_MONOTONIC_COARSE at the last of those */
	int touch_due;          /* record activity with the next delivery */
	uint64_t *kept;         /* queue, dh_reader_keep_claims: delivered, still claimed */
	uint32_t nkept;
};

static int reader_open(const char *name, const struct dh_reader_opts *opts, int relay, struct dh_reader **out);

int
dh_reader_open(const char *name, const struct dh_reader_opts *opts, struct dh_reader **out)
{
	return reader_open(name, opts, 0, out);
}

int
dh_reader_open_relay(const char *name, const struct dh_reader_opts *opts, struct dh_reader **out)
{
	return reader_open(name, opts, 1, out);
}

size_t
dh_reader_check(const struct dh_reader *r, uint8_t check[32])
{
	memcpy(check, r->check, 32);
	return r->b->ck->digest_len;
}

/* Leave a table entry we attached to but may not read from: unlike
 * dh_reader_close, fold nothing into drained (we consumed nothing). */
static void
detach_unread(struct dh_reader *r)
{
	struct dh_block *b = r->b;

	/* a start below the oldest held counted its gap lost (DH_START_SEQ) */
	if (r->lost_total)
		atomic_fetch_sub(&b->hdr->readers_lost, r->lost_total);
	atomic_store(&r->e->state, dh__ent_with(atomic_load(&r->e->state), DH_ENT_FREE));
	atomic_fetch_add(&b->hdr->reader_gen, 1);
	wake_writer(b->hdr);
	dh__lock_drop(b->fd, r->idx);
	dh_block_close(b);
	free(r->copy);
	free(r);
}

/* Must an attaching reader drain the writer's store buffer?  Only for a
 * live light writer: a dead one's stores are all visible, and one that
 * takes the lock after our probe sees our reader_gen bump (the kernel's
 * lock orders its acquisition after our probe). */
static int
light_writer(struct dh_block *b)
{
	return b->pol->positions_hold && (atomic_load(&b->table[0].flags) & DH_W_LIGHT) &&
	       dh__lock_held(b->fd, 0) != 0;
}

static int
reader_open(const char *name, const struct dh_reader_opts *opts, int relay, struct dh_reader **out)
{
	struct dh_reader_opts def = { 0 };
	struct dh_reader *r;
	struct dh_block *b;
	struct dh_hdr *h;
	uint64_t c, n, oldest, p;
	int rc, idx = -1;

	if (!opts)
		opts = &def;
	if ((rc = dh_block_open(name, 0, &b)) < 0)
		return rc;
	/* A relay of a keyed channel without its key passes the MACs on
	 * unverified: whoever has the key checks them at the far end. */
	if (relay && !opts->key && b->ck->keyed)
		rc = dh__check_identity_schema(b, opts->schema);
	else
		rc = dh__check_identity(b, opts->key, opts->schema);
	/* Refuse before taking an entry when we already know we could not
	 * attach safely (the check after the attach covers a writer that
	 * arrives meanwhile). */
	if (rc == 0 && light_writer(b) && !light_callable())
		rc = -DH_EUNSUPPORTED;
	if (rc < 0) {
		dh_block_close(b);
		return rc;
	}
	h = b->hdr;
	for (uint32_t i = 1; i <= b->cfg.max_readers && idx < 0; i++) {
		uint32_t st = dh__ent_state(atomic_load(&b->table[i].state));
		if (st != DH_ENT_FREE && dh__lock_held(b->fd, (int)i) != 0)
			continue;
		if (dh__lock_try(b->fd, (int)i) < 0)
			continue;
		dh__reap(b, (int)i, (int)i); /* a dead predecessor's leftovers */
		idx = (int)i;
	}
	if (idx < 0) {
		dh_block_close(b);
		return -ENOSPC;
	}
	if (!(r = calloc(1, sizeof *r)) ||
	    (!b->pol->zero_copy && !(r->copy = malloc(b->cfg.slot_size)))) {
		free(r);
		dh__lock_drop(b->fd, idx);
		dh_block_close(b);
		return -ENOMEM;
	}
	r->b = b;
	r->idx = idx;
	r->e = &b->table[idx];
	r->hold_step = b->cfg.slots / 8 ? b->cfg.slots / 8 : 1;
	r->touch_due = 1;
	r->follow = opts->follow;
	r->e->pid = (uint32_t)getpid();
	fill_name(r->e->name, opts->label);
	atomic_store(&r->e->messages, 0);
	atomic_store(&r->e->bytes, 0);
	atomic_store(&r->e->lost, 0);
	atomic_store(&r->e->checksum_failures, 0);
	atomic_store(&r->e->claim, DH_SEQ_NONE);
	dh__touch(r->e, dh__now_real());

	n = b->cfg.slots;
	/* A consistent look at the stream: see dh_writer_open for the order. */
	uint64_t stream, eos, sstart, unread;
	do {
		stream = atomic_load(&h->stream);
		eos = atomic_load(&h->eos_seq);
		sstart = atomic_load(&h->stream_start);
		c = atomic_load(&h->committed);
		/* sync: what readers that left consumed; queue: what was claimed */
		unread = b->pol->claims ? atomic_load(&h->claim_head) : atomic_load(&h->drained);
	} while (atomic_load(&h->stream) != stream);
	oldest = c > n ? c - n : 0;
	/* sync: readers still attached consumed up to their positions too */
	for (uint32_t i = 1; b->pol->positions_hold && i <= b->cfg.max_readers; i++) {
		uint64_t at = atomic_load(&b->table[i].position) & ~DH_POS_HOLD;

		if ((int)i != idx && dh__ent_state(atomic_load(&b->table[i].state)) == DH_ENT_ACTIVE && at > unread)
			unread = at;
	}
	if (unread < oldest)
		unread = oldest;
	/* Like opening a FIFO: a reader that arrives after the stream ended
	 * gets what no reader consumed of it (the lossless policies keep
	 * that for it) and otherwise waits for the next stream and reads it
	 * from its first message.  The held tail of the ended stream stays
	 * reachable with an explicit start (oldest, a seq), and without
	 * waiting (dh-read --no-wait). */
	if (eos != DH_SEQ_NONE && eos <= c && opts->start == DH_START_DEFAULT &&
	    (b->pol->positions_hold || b->pol->claims) && unread < eos) {
		oldest = unread;
	} else if (eos != DH_SEQ_NONE && eos <= c &&
	    (opts->start == DH_START_DEFAULT || opts->start == DH_START_NOW)) {
		r->between = 1;
		r->joined = stream;
		c = eos;
	} else if (opts->start == DH_START_DEFAULT && b->pol->positions_hold && unread < sstart) {
		oldest = unread; /* an earlier stream's rest nobody read, kept for us: first */
	} else if (opts->start == DH_START_DEFAULT && sstart > oldest && sstart <= c) {
		oldest = sstart; /* the running stream's first message, not the last one's tail */
	}
	switch (opts->start) {
	case DH_START_OLDEST:
		p = oldest;
		break;
	case DH_START_LATEST:
		p = c ? c - 1 : 0;
		break;
	case DH_START_NOW:
		p = c;
		break;
	case DH_START_SEQ:
		p = opts->start_seq < oldest ? oldest : opts->start_seq > c ? c : opts->start_seq;
		/* asked for messages no longer held: lost, and said so with
		 * the first message delivered */
		if (opts->start_seq < oldest && !b->pol->claims) {
			r->pending_lost = r->lost_total = oldest - opts->start_seq;
			atomic_store(&r->e->lost, r->lost_total);
			atomic_fetch_add(&h->readers_lost, r->lost_total);
		}
		break;
	case DH_START_HELD:
		p = b->pol->newest_only ? (c ? c - 1 : 0) : oldest;
		break;
	default:
		if (r->between)
			p = c;
		else if (b->pol->newest_only)
			p = c > sstart ? c - 1 : c; /* nothing of an earlier stream */
		else
			p = oldest;
		break;
	}
	r->pos = p;
	atomic_store(&r->e->position, p);
	atomic_store(&r->e->state, dh__ent_attach(atomic_load(&r->e->state)));
	atomic_fetch_add(&h->reader_gen, 1);
	/* The sync writer stores an odd stamp, then loads reader_gen; we bump
	 * reader_gen, then load stamps.  Acquire loads alone let both miss
	 * each other (C11 allows it; ARMv8.3 LDAPR does it): one of the two
	 * must see the other, so a full fence here, off the hot path. */
	atomic_thread_fence(memory_order_seq_cst);
	/* A light writer's odd stamp may still sit in its CPU's store buffer
	 * while its load of reader_gen missed us: drain it before we read a
	 * stamp.  The flag is read after our bump (see dh_writer_open). */
	if (light_writer(b) && (rc = light_barrier()) < 0) {
		detach_unread(r);
		return rc;
	}
	wake_writer(h); /* a sync writer may be keeping messages for a reader */
	*out = r;
	return 0;
}

void
dh_reader_set_cancel(struct dh_reader *r, struct dh_cancel *c)
{
	r->cancel = c;
}

static void release_current(struct dh_reader *r);

/* Mark queue message seq done, from our own claim only: if the word is
 * not ours any more (damage), we release nothing rather than clobber a slot
 * the writer may have reused.  seq_cst, like the sync position: ordered
 * before the sleep-flag check in wake_writer.  1 if it was ours. */
static int
claim_done(struct dh_reader *r, uint64_t seq)
{
	uint64_t mine = qword(seq, (uint64_t)r->idx);

	return atomic_compare_exchange_strong(&dh__desc(r->b, seq)->qword, &mine, qword(seq, DH_Q_DONE));
}

int
dh_reader_keep_claims(struct dh_reader *r)
{
	if (!r->b->pol->claims)
		return -EINVAL;
	if (!r->kept && !(r->kept = malloc(sizeof *r->kept * r->b->cfg.slots)))
		return -ENOMEM;
	return 0;
}

void
dh_reader_release_kept(struct dh_reader *r)
{
	if (!r->nkept)
		return;
	for (uint32_t i = 0; i < r->nkept; i++)
		claim_done(r, r->kept[i]);
	r->nkept = 0;
	wake_writer(r->b->hdr);
}

/* The message handed out last joins the kept ones.  One claim per slot,
 * so the array cannot fill unless the segment is damaged. */
static void
keep_held(struct dh_reader *r)
{
	if (r->nkept == r->b->cfg.slots)
		dh_reader_release_kept(r);
	r->kept[r->nkept++] = r->held_seq;
	r->held = 0;
}

uint32_t
dh_reader_release_before(struct dh_reader *r, uint64_t seq)
{
	uint32_t i = 0;

	if (!r->kept)
		return 0;
	/* kept in delivery order, which is claim order: seqs only grow */
	while (i < r->nkept && r->kept[i] < seq)
		claim_done(r, r->kept[i++]);
	if (i > 0) {
		memmove(r->kept, r->kept + i, sizeof *r->kept * (r->nkept - i));
		r->nkept -= i;
		wake_writer(r->b->hdr);
	}
	if (r->held && r->held_seq < seq)
		release_current(r);
	return r->nkept + (uint32_t)r->held;
}

int
dh_reader_kept_next(struct dh_reader *r, uint64_t from, struct dh_msg *m, uint8_t check[32])
{
	struct dh_block *b = r->b;
	uint64_t s = UINT64_MAX;
	struct dh_desc *d;

	if (!r->kept)
		return -ENOENT;
	for (uint32_t i = 0; i < r->nkept && s == UINT64_MAX; i++)
		if (r->kept[i] >= from)
			s = r->kept[i];
	if (s == UINT64_MAX && r->held && r->held_seq >= from)
		s = r->held_seq;
	if (s == UINT64_MAX)
		return -ENOENT;
	/* still our claim, so the writer has not reused the slot */
	d = dh__desc(b, s);
	if (atomic_load_explicit(&d->qword, memory_order_acquire) != qword(s, (uint64_t)r->idx) ||
	    atomic_load_explicit(&d->stamp, memory_order_acquire) != 2 * s + 2 || d->length > b->cfg.slot_size)
		return -DH_ECORRUPT;
	memcpy(check, d->check, 32);
	m->data = dh__slot(b, s);
	m->len = d->length;
	m->seq = s;
	m->time_ns = d->time_ns;
	m->lost = 0;
	return 0;
}

uint64_t
dh_reader_settle(struct dh_reader *r, uint64_t passed)
{
	uint64_t n = 0;

	if (!r->kept)
		return 0;
	if (r->held) {
		keep_held(r);
		atomic_store_explicit(&r->e->claim, DH_SEQ_NONE, memory_order_relaxed);
	}
	for (uint32_t i = 0; i < r->nkept; i++)
		if (claim_done(r, r->kept[i]) && i >= passed)
			n++;
	r->nkept = 0;
	if (n) {
		atomic_fetch_add(&r->b->hdr->queue_lost, n);
		bump(&r->e->lost, n);
		wake_writer(r->b->hdr);
	}
	return n;
}

void
dh_reader_release(struct dh_reader *r)
{
	dh_reader_release_kept(r);
	release_current(r);
}

/* The message handed out last, not the kept ones (their bytes may still
 * be on their way out). */
static void
release_current(struct dh_reader *r)
{
	struct dh_block *b = r->b;

	if (!r->held)
		return;
	r->held = 0;
	if (b->pol->claims) {
		claim_done(r, r->held_seq);
		atomic_store_explicit(&r->e->claim, DH_SEQ_NONE, memory_order_relaxed);
	} else {
		/* seq_cst: ordered before the waiter check, like the writer's commit */
		atomic_store(&r->e->position, r->held_seq + 1);
	}
	wake_writer(b->hdr);
}

void
dh_reader_close(struct dh_reader *r)
{
	if (!r)
		return;
	dh_reader_release(r);
	if (r->b->pol->positions_hold) {
		dh__fold_drained(r->b->hdr, atomic_load(&r->e->position));
		/* the writer's cached view of the readers is stale now: with
		 * none left, drained rules (an evicted reader's cache said
		 * nothing holds the writer back) */
		atomic_fetch_add(&r->b->hdr->reader_gen, 1);
	}
	atomic_store(&r->e->state, dh__ent_with(atomic_load(&r->e->state), DH_ENT_FREE));
	wake_writer(r->b->hdr);
	dh__lock_drop(r->b->fd, r->idx);
	dh_block_close(r->b);
	free(r->copy);
	free(r->kept);
	free(r);
}

struct dh_block *
dh_reader_block(struct dh_reader *r)
{
	return r->b;
}

uint64_t
dh_reader_position(const struct dh_reader *r)
{
	return r->b->pol->claims ? atomic_load(&r->b->hdr->claim_head) : r->pos;
}

uint64_t
dh_reader_lost(const struct dh_reader *r)
{
	return r->lost_total;
}

static int
writer_dead(struct dh_block *b)
{
	if (dh__ent_state(atomic_load(&b->table[0].state)) != DH_ENT_ACTIVE)
		return 0;
	return dh__lock_held(b->fd, 0) == 0;
}

/* Still between streams: the end mark in place is the stream we arrived
 * after, not one we read.  Once a new stream starts, marks are ours. */
static int
waiting_next(struct dh_reader *r)
{
	if (!r->between)
		return 0;
	if (atomic_load(&r->b->hdr->stream) == r->joined)
		return 1;
	r->between = 0;
	return 0;
}

/* Is there something for this reader (data, or an end to report)? */
static int
ready(struct dh_reader *r)
{
	struct dh_hdr *h = r->b->hdr;
	uint64_t at = r->b->pol->claims ? atomic_load(&h->claim_head) : r->pos;
	uint64_t e;

	if (atomic_load_explicit(&h->committed, memory_order_acquire) > at)
		return 1;
	e = atomic_load(&h->eos_seq);
	return !r->follow && e != DH_SEQ_NONE && at >= e && !waiting_next(r);
}

/*
 * Nothing to read: report end-of-stream or a dead writer, or wait for the
 * writer's next commit.  Returns 0 to retry, DH_END, or a negative code.
 */
static int
await_data(struct dh_reader *r, int64_t timeout_ns, uint64_t *start)
{
	struct dh_hdr *h = r->b->hdr;
	uint64_t at = r->b->pol->claims ? atomic_load(&h->claim_head) : r->pos;
	uint64_t e = atomic_load(&h->eos_seq);
	int64_t rem;
	uint32_t v;
	int rc = 0;

	if (!r->follow && e != DH_SEQ_NONE && at >= e && !waiting_next(r))
		return DH_END;
	if (!r->follow) {
		/* A lock probe is a syscall: not on every catch-up of a busy stream. */
		uint64_t now = dh__now_mono();
		if (now - r->dead_checked >= SLICE_NS / 2) {
			r->dead_checked = now;
			if (writer_dead(r->b))
				return ready(r) ? 0 : -DH_EWRITERDEAD;
		}
	}
	if (timeout_ns == 0)
		return -EAGAIN;
	if (!*start)
		*start = dh__now_mono();
	for (int i = 0; i < SPIN_ITERS; i++) {
		if (ready(r))
			return 0;
		cpu_relax();
	}
	rem = remaining(timeout_ns, *start);
	if (rem == 0)
		return -ETIMEDOUT;
	dh__touch(r->e, now_coarse());
	atomic_fetch_add(&h->data_waiters, 1);
	atomic_store(&h->data_sleep, 1);
	v = atomic_load(&h->data_futex);
	if (!ready(r))
		rc = dh__futex_wait_cancel(r->cancel, &h->data_futex, v, slice(rem));
	atomic_fetch_sub(&h->data_waiters, 1);
	return rc == -EINTR ? -EINTR : 0;
}

/* Has the coarse clock ticked (1-4 ms) since we last published? A vDSO read
 * of a few ns, where the hold store and the activity record cost more. */
static int
tick_moved(struct dh_reader *r)
{
	struct timespec ts;
	uint64_t t;

	clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
	t = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
	if (t == r->tick)
		return 0;
	r->tick = t;
	return 1;
}

/* seq_cst: after our hold is published (see sync_space) */
static int
evicted(struct dh_reader *r)
{
	return dh__ent_state(atomic_load(&r->e->state)) == DH_ENT_EVICTED;
}

/* A reader that was cut loose reports that, whatever it saw in a slot the
 * writer was then free to reuse: never corruption or a checksum failure. */
static int
fail(struct dh_reader *r, int rc)
{
	return evicted(r) ? -DH_EEVICTED : rc;
}

static void
count_bad(struct dh_reader *r)
{
	bump(&r->e->checksum_failures, 1);
	atomic_fetch_add(&r->b->hdr->checksum_failures, 1);
}

static void
deliver(struct dh_reader *r, struct dh_msg *m, const void *data, uint32_t len, uint64_t seq, uint64_t t)
{
	m->data = data;
	m->len = len;
	m->seq = seq;
	m->time_ns = t;
	m->lost = r->pending_lost;
	r->pending_lost = 0;
	r->delivered++;
	bump(&r->e->messages, 1);
	bump(&r->e->bytes, len);
	if (r->touch_due) {
		r->touch_due = 0;
		dh__touch(r->e, now_coarse());
	}
}

/* The reader's position was overtaken; move to the oldest message held. */
static void
skip_lapped(struct dh_reader *r)
{
	uint64_t c = atomic_load(&r->b->hdr->committed), n = r->b->cfg.slots;
	/* The oldest message held is c - n (dh-format(5)).  If the writer is
	 * overwriting it right now, its stamp shows a lap again and we come
	 * back here; starting at c + 1 - n instead would lose a message that
	 * an idle writer leaves intact. */
	uint64_t np = c > n ? c - n : 0;

	if (np <= r->pos)
		np = r->pos + 1;
	/* A sync reader is overtaken only while attaching: that just moves
	 * its start.  A ring reader really missed these. */
	if (r->b->pol->counts_lost || r->delivered) {
		r->pending_lost += np - r->pos;
		r->lost_total += np - r->pos;
		bump(&r->e->lost, np - r->pos);
		/* the channel keeps the total after the reader is gone */
		atomic_fetch_add(&r->b->hdr->readers_lost, np - r->pos);
	}
	r->pos = np;
	if (r->b->pol->positions_hold) {
		/* the writer may be waiting for exactly this step */
		atomic_store(&r->e->position, np);
		wake_writer(r->b->hdr);
	} else {
		atomic_store_explicit(&r->e->position, np, memory_order_relaxed);
	}
}

/*
 * Everything a lossy reader takes from a slot the writer may be rewriting
 * at the same moment.  The result counts only if the stamp is unchanged
 * afterwards; kept in one function so ThreadSanitizer can be told that
 * this race is the protocol (tests/tsan/tsan.supp).
 */
__attribute__((noinline)) static int
dh__seqlock_copy(const struct dh_block *b, const struct dh_desc *d, uint64_t seq, void *dst, uint32_t *len,
		 uint64_t *t, uint8_t check[32])
{
	*len = d->length;
	*t = d->time_ns;
	memcpy(check, d->check, 32);
	if (*len > b->cfg.slot_size)
		return -1;
	memcpy(dst, dh__slot(b, seq), *len);
	return 0;
}

/*
 * A stamp newer than the seq we want: is it one the writer could have
 * written since (a lap), or damage?  A lap stamp names a later seq of the
 * same slot, at most the one being written now.  The writer runs ahead of
 * the committed count by at most one batch (less than one lap of the ring,
 * dh_writer_set_batch), so read after the stamp, the count plus one lap is
 * beyond that seq.
 */
static int
lapped(const struct dh_block *b, uint64_t pos, uint64_t st)
{
	uint64_t t = (st - 1) / 2; /* 2t+1 and 2t+2 both name t */

	return t > pos && t % b->cfg.slots == pos % b->cfg.slots &&
	       t < atomic_load_explicit(&b->hdr->committed, memory_order_acquire) + b->cfg.slots;
}

/* sync: publish that we hold seq pos in place; 0, or -DH_EEVICTED. */
static int
hold(struct dh_reader *r, uint64_t pos)
{
	/* One seq_cst store both releases the previous message (pos - 1)
	 * and announces this one; then our eviction is either visible here or
	 * the evictor sees the hold (sync_space, dh-validate). */
	atomic_store(&r->e->position, pos | DH_POS_HOLD);
	r->hold_at = pos;
	if (r->held) {
		r->held = 0;
		wake_writer(r->b->hdr);
	}
	if (evicted(r)) {
		atomic_store(&r->e->position, pos);
		wake_writer(r->b->hdr);
		return -DH_EEVICTED;
	}
	return 0;
}

static int
next_ordered(struct dh_reader *r, struct dh_msg *m, int64_t timeout_ns)
{
	struct dh_block *b = r->b;
	int copy = !b->pol->zero_copy;
	uint64_t start = 0;

	for (;;) {
		uint64_t c, pos = r->pos, st, t;
		uint32_t len;
		uint8_t check[32];
		struct dh_desc *d;
		const void *data;
		int rc;

		if (evicted(r)) {
			dh_reader_release(r);
			return -DH_EEVICTED;
		}
		int run = 0;
		c = r->avail;
		if (pos >= c) {
			c = r->avail = atomic_load_explicit(&b->hdr->committed, memory_order_acquire);
			run = r->touch_due = 1;
		} else if (tick_moved(r)) {
			/* a slow consumer inside a long run: its hold and its
			 * activity are never more than a clock tick old, so the
			 * writer's stall timer and the tools judge it as before */
			run = r->touch_due = 1;
		}
		if (pos >= c) {
			dh_reader_release(r);
			if ((rc = await_data(r, timeout_ns, &start)) != 0)
				return rc;
			continue;
		}
		if (b->pol->counts_lost && c - pos > b->cfg.slots) {
			skip_lapped(r);
			continue;
		}
		if (!copy && (run || !r->held || pos - r->hold_at >= r->hold_step)) {
			if ((rc = hold(r, pos)) < 0)
				return rc;
		} else if (!copy) {
			r->held = 0;    /* the previous message: covered by hold_at */
		}
		d = dh__desc(b, pos);
		st = atomic_load_explicit(&d->stamp, memory_order_acquire);
		if (st != 2 * pos + 2) {
			/* In sync the writer cannot lap a reader that has started:
			 * a newer stamp there is damage, not a lap to skip quietly. */
			if (st > 2 * pos + 2 && (copy || !r->delivered) && lapped(b, pos, st)) {
				if (!copy)
					atomic_store(&r->e->position, pos);
				skip_lapped(r);
				continue;
			}
			if (!copy)
				atomic_store(&r->e->position, pos);
			m->seq = pos;
			return fail(r, -DH_ECORRUPT);
		}
		if (copy) {
			int bad = dh__seqlock_copy(b, d, pos, r->copy, &len, &t, check);
			atomic_thread_fence(memory_order_acquire);
			if (atomic_load_explicit(&d->stamp, memory_order_relaxed) != st)
				continue; /* overwritten while we copied: lapped */
			if (bad)
				return fail(r, -DH_ECORRUPT);
			data = r->copy;
		} else {
			len = d->length;
			t = d->time_ns;
			memcpy(check, d->check, sizeof check);
			if (len > b->cfg.slot_size) {
				atomic_store(&r->e->position, pos);
				m->seq = pos;
				return fail(r, -DH_ECORRUPT);
			}
			data = dh__slot(b, pos);
		}
		r->pos = pos + 1;
		if (copy)
			atomic_store_explicit(&r->e->position, pos + 1, memory_order_relaxed);
		if (!copy) {
			r->held = 1;
			r->held_seq = pos;
		}
		memcpy(r->check, check, sizeof check);
		if (dh__verifiable(b) &&
		    dh__check_verify(b, pos, data, len, check) < 0) {
			if (evicted(r)) {
				dh_reader_release(r);
				return -DH_EEVICTED;
			}
			count_bad(r);
			m->seq = pos;
			dh_reader_release(r);
			return -DH_ECHECKSUM;
		}
		deliver(r, m, data, len, pos, t);
		return 0;
	}
}

static int
next_latest(struct dh_reader *r, struct dh_msg *m, int64_t timeout_ns)
{
	struct dh_block *b = r->b;
	uint64_t start = 0;

	for (;;) {
		uint64_t c, s, st, t;
		uint32_t len;
		uint8_t check[32];
		struct dh_desc *d;
		int rc;

		c = atomic_load_explicit(&b->hdr->committed, memory_order_acquire);
		if (c == 0 || c - 1 < r->pos) {
			if ((rc = await_data(r, timeout_ns, &start)) != 0)
				return rc;
			continue;
		}
		s = c - 1;
		d = dh__desc(b, s);
		st = atomic_load_explicit(&d->stamp, memory_order_acquire);
		if (st != 2 * s + 2) {
			if (st > 2 * s + 2 && lapped(b, s, st)) {
				/* The newest message is being overwritten by the next
				 * one (or was, by a writer that died or aborted): it is
				 * gone, and latest readers wait for the next, which
				 * may never come; never spin on it. */
				r->pos = c;
				atomic_store_explicit(&r->e->position, c, memory_order_relaxed);
				continue;
			}
			m->seq = s;
			return -DH_ECORRUPT;
		}
		int bad = dh__seqlock_copy(b, d, s, r->copy, &len, &t, check);
		atomic_thread_fence(memory_order_acquire);
		if (atomic_load_explicit(&d->stamp, memory_order_relaxed) != st)
			continue;
		if (bad)
			return -DH_ECORRUPT;
		r->pos = s + 1;
		atomic_store_explicit(&r->e->position, s + 1, memory_order_relaxed);
		memcpy(r->check, check, sizeof check);
		if (dh__verifiable(b) &&
		    dh__check_verify(b, s, r->copy, len, check) < 0) {
			count_bad(r);
			m->seq = s;
			return -DH_ECHECKSUM;
		}
		deliver(r, m, r->copy, len, s, t);
		return 0;
	}
}

static int
next_queue(struct dh_reader *r, struct dh_msg *m, int64_t timeout_ns)
{
	struct dh_block *b = r->b;
	struct dh_hdr *h = b->hdr;
	uint64_t start = 0, s, st;
	struct dh_desc *d;
	int rc;

	for (;;) {
		uint64_t head, c, q;

		if (evicted(r))
			return -DH_EEVICTED;
		head = atomic_load_explicit(&h->claim_head, memory_order_acquire);
		c = atomic_load_explicit(&h->committed, memory_order_acquire);
		if (head >= c) {
			if ((rc = await_data(r, timeout_ns, &start)) != 0)
				return rc;
			continue;
		}
		d = dh__desc(b, head);
		q = atomic_load_explicit(&d->qword, memory_order_acquire);
		if (q == qword(head, DH_Q_AVAIL)) {
			/* The slot's claim word is the claim: claim_head is only a
			 * hint that everyone helps forward, so a reader dying
			 * between the two steps stalls nobody. */
			if (!atomic_compare_exchange_strong(&d->qword, &q, qword(head, (uint64_t)r->idx)))
				continue;
			s = head;
			atomic_compare_exchange_strong(&h->claim_head, &head, s + 1);
			break;
		}
		if ((q >> DH_Q_SHIFT) < head)
			return fail(r, -DH_ECORRUPT);
		atomic_compare_exchange_strong(&h->claim_head, &head, head + 1);
	}
	atomic_store_explicit(&r->e->claim, s, memory_order_relaxed);
	r->held = 1;
	r->held_seq = s;
	st = atomic_load_explicit(&d->stamp, memory_order_acquire);
	if (st != 2 * s + 2 || d->length > b->cfg.slot_size) {
		release_current(r);
		m->seq = s;
		return fail(r, -DH_ECORRUPT);
	}
	memcpy(r->check, d->check, sizeof r->check);
	if (dh__verifiable(b) &&
	    dh__check_verify(b, s, dh__slot(b, s), d->length, d->check) < 0) {
		count_bad(r);
		m->seq = s;
		release_current(r);
		return -DH_ECHECKSUM;
	}
	deliver(r, m, dh__slot(b, s), d->length, s, d->time_ns);
	return 0;
}

/*
 * The reader side of each policy.  The flags of dh_policy_info say what a
 * policy promises; this says which loop delivers it.  sync releases inside
 * next_ordered (hold() releases and holds in one store).
 */
int
dh_reader_next(struct dh_reader *r, struct dh_msg *m, int64_t timeout_ns)
{
	const struct dh_policy_desc *pol = r->b->pol;

	if (r->kept) {
		/* passed on only when the caller says so (dh_reader_release):
		 * nothing kept is released here, even when nothing is held (the
		 * last call failed a checksum) */
		if (r->held)
			keep_held(r);
	} else if (!pol->positions_hold) {
		dh_reader_release(r);
	}
	if (pol->newest_only)
		return next_latest(r, m, timeout_ns);
	if (pol->claims)
		return next_queue(r, m, timeout_ns);
	return next_ordered(r, m, timeout_ns);
}
