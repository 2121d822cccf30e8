/* dh_ring.h: the writer and reader sides of a channel. See LICENSE. */
#ifndef DH_RING_H
#define DH_RING_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "dh_block.h"
#include "dh_cancel.h"

/*
 * Timeouts are in nanoseconds: < 0 waits forever, 0 never waits (returns
 * -EAGAIN instead), > 0 bounds the wait (-ETIMEDOUT), measured on
 * CLOCK_MONOTONIC.  A blocked call returns -EINTR once the handle's
 * dh_cancel is raised (dh_writer_set_cancel, dh_reader_set_cancel: the way
 * to stop a wait from a signal handler without a window); a handle without
 * one returns -EINTR when a signal handler (installed without SA_RESTART)
 * interrupts its sleep, and may miss a signal that lands just before it.
 *
 * Handles are not thread-safe: one thread per handle.  Several handles in
 * one process are fine (each has its own file description and lock).
 */

struct dh_writer;
struct dh_reader;

/* The single writer. At most one live writer per channel: -EBUSY otherwise,
 * with the holder's pid in *holder (when holder != NULL).  A writer that
 * finds an end-of-stream mark reopens the stream; one that finds a frame
 * left half-written by a dead writer overwrites it (it was never visible).
 * label may be NULL. */
int dh_writer_open(const char *name, const char *label, struct dh_writer **out, pid_t *holder);

struct dh_writer_opts {
	const char *label;     /* NULL: none */
	const uint8_t *key;    /* DH_KEY_BYTES for a keyed channel, else NULL */
	const char *schema;    /* NULL, or a SPEC the channel's schema must equal */
};

/* dh_writer_open with a key and a schema to check: -DH_EKEYNEEDED,
 * -DH_EKEY (wrong key), -DH_ENOTKEYED, -DH_ESCHEMA (counted in the header),
 * -EINVAL for a bad SPEC. The key is copied and wiped on close. */
int dh_writer_open_opts(const char *name, const struct dh_writer_opts *opts, struct dh_writer **out,
			pid_t *holder);

/* Release the writer entry (end-of-stream is not marked: call dh_writer_eos
 * first for that). Publishes pending commits, aborts a reserved, uncommitted
 * slot. NULL is a no-op. */
void dh_writer_close(struct dh_writer *w);

/* Reserve the next slot: *buf points into shared memory, *cap bytes long.
 * Waits for space in sync/queue (reaping dead readers, evicting stalled
 * ones when configured). Nothing is visible until commit. */
int dh_writer_reserve(struct dh_writer *w, void **buf, size_t *cap, int64_t timeout_ns);

/* Commit len bytes of the reserved slot (checksum computed here) and, unless
 * a batch is being built (dh_writer_set_batch), publish it, waking readers
 * only if some are waiting. -EINVAL without a reservation, -DH_ETOOBIG if
 * len > cap, -DH_ESCHEMA if the channel has a schema and len is not its
 * record size (nothing is committed on error; the reservation stays). */
int dh_writer_commit(struct dh_writer *w, size_t len);

/*
 * Batched publication.  With a batch of max > 1, dh_writer_commit stamps
 * and checks each message as before but makes it visible only when max
 * commits are pending, or at dh_writer_flush: readers then see the whole
 * batch with one store of the committed count and are woken (if asleep)
 * once for it.  Pending commits are also published before the writer waits
 * for space (or returns -EAGAIN for it), by dh_writer_eos and by
 * dh_writer_close, never lost by the writer itself; a writer that dies
 * loses its unpublished commits (they were never visible; dh-validate
 * --repair publishes those a checksum proves whole).  A caller that needs
 * latency flushes whenever its source has nothing more ready.
 *
 * max is clamped to half the ring's slots (at least 1); 0 or 1 publishes
 * every commit (the default).  Returns the batch size in force.  Every
 * message of a batch carries in time_ns the commit time of the batch's
 * first message (the clock is read once per batch).
 */
unsigned dh_writer_set_batch(struct dh_writer *w, unsigned max);

/* Publish every pending commit now (a no-op when none is pending). 0. */
int dh_writer_flush(struct dh_writer *w);

/* Commits made and not yet published. */
uint64_t dh_writer_pending(const struct dh_writer *w);

/* Drop the reservation; the slot stays invisible. */
void dh_writer_abort(struct dh_writer *w);

/* reserve + memcpy + commit. */
int dh_writer_write(struct dh_writer *w, const void *data, size_t len, int64_t timeout_ns);

/* Publish pending commits, mark end-of-stream at the committed count and
 * wake all readers. */
int dh_writer_eos(struct dh_writer *w);

/* Wait until at least n readers are attached and alive. */
int dh_writer_wait_readers(struct dh_writer *w, unsigned n, int64_t timeout_ns);

/* Make every wait of w return -EINTR once c is raised (NULL: none). */
void dh_writer_set_cancel(struct dh_writer *w, struct dh_cancel *c);

struct dh_block *dh_writer_block(struct dh_writer *w);
size_t dh_writer_slot_size(const struct dh_writer *w);
uint64_t dh_writer_seq(const struct dh_writer *w);    /* seq the next commit gets */

/*
 * A channel carries a sequence of streams: each writer session that finds
 * the last one ended (end-of-stream) starts the next.  DEFAULT and NOW
 * behave like opening a FIFO: attached after a stream ended, the reader
 * waits for the next stream and reads it from its first message.
 */
enum dh_start {
	DH_START_DEFAULT = 0,  /* by the policy's flags (dh_policy_info): claims (queue): next
				* unclaimed; newest_only (latest): newest; others (ring, sync):
				* oldest held of the running stream; between streams: the next
				* stream's first */
	DH_START_OLDEST,       /* oldest message still held, whatever its stream */
	DH_START_LATEST,       /* the newest committed message */
	DH_START_NOW,          /* only messages committed after attaching (between streams: the next) */
	DH_START_SEQ,          /* seq given in dh_reader_opts.start_seq (clamped to what is held) */
	DH_START_HELD          /* what the channel holds now, never waiting for a next stream:
				* newest_only (latest): the newest; others: the oldest held (replay) */
};

struct dh_reader_opts {
	const char *label;     /* NULL: none */
	enum dh_start start;
	uint64_t start_seq;
	int follow;            /* do not report end-of-stream or a dead writer; wait for the next writer */
	const uint8_t *key;    /* as for dh_writer_opts */
	const char *schema;
};

/* Attach a reader: -ENOSPC if the table is full; key and schema errors as
 * for dh_writer_open_opts; -DH_EUNSUPPORTED on a sync channel whose live
 * writer relies on readers calling membarrier(2) (DH_W_LIGHT, dh-format(5))
 * when this process may not call it (a seccomp filter). opts may be NULL. */
int dh_reader_open(const char *name, const struct dh_reader_opts *opts, struct dh_reader **out);

/* As dh_reader_open, for a relay (dh-read --serve): a keyed channel may
 * be opened without its key; its MACs are then passed on unverified (the
 * far end, which has the key, verifies them).  Other checks are verified
 * as usual. */
int dh_reader_open_relay(const char *name, const struct dh_reader_opts *opts, struct dh_reader **out);

/* The check stored with the message dh_reader_next last returned (or
 * reported failing): the digest bytes into check, their count returned
 * (0 for a channel without checksums). */
size_t dh_reader_check(const struct dh_reader *r, uint8_t check[32]);

/* Detach and free the table entry. A queue claim not yet released is
 * handed back as done (it was delivered to this reader). NULL is a no-op. */
void dh_reader_close(struct dh_reader *r);

struct dh_msg {
	const void *data;      /* valid until the next call on this reader */
	size_t len;
	uint64_t seq;
	uint64_t time_ns;      /* commit time, CLOCK_REALTIME */
	uint64_t lost;         /* messages lost to a lap just before this one (ring/latest: latest never counts skips) */
};

#define DH_END 1           /* dh_reader_next: end-of-stream reached, nothing more */

/*
 * Next message for this reader under the channel's policy.  Returns 0 and
 * fills *m; DH_END at end-of-stream; -DH_EWRITERDEAD when the committed data
 * is drained and the writer died without end-of-stream; -DH_ECHECKSUM when
 * the next message failed its check (m->seq says which; the message is
 * skipped and counted; call again to continue); -DH_EEVICTED; -EAGAIN,
 * -ETIMEDOUT, -EINTR per the timeout rules.  In latest/ring m->data is a
 * validated private copy; in sync/queue it points into the slot (zero-copy,
 * the writer cannot reuse it until release or the next call, even if the
 * reader is evicted meanwhile: eviction takes away the stream, never a
 * message held in place).  An evicted reader gets -DH_EEVICTED, never a
 * corruption or checksum report caused by the slot's reuse.
 */
int dh_reader_next(struct dh_reader *r, struct dh_msg *m, int64_t timeout_ns);

/* Done with the current message: advances the position (sync) or marks the
 * queue claim done (and every kept one), letting the writer reuse the slot.
 * Implied by next unless claims are kept. */
void dh_reader_release(struct dh_reader *r);

/*
 * Queue: keep the claims of delivered messages until dh_reader_release
 * (which then marks them all done) instead of releasing each at the next
 * call, so that a message is done only once the caller has passed it on
 * (dh-read: written to its output).  A reader killed meanwhile has its
 * claims counted lost by whoever reaps it, never silently dropped.  At most
 * one claim per slot, so the writer waits for the caller's release once
 * they fill the ring: release before blocking on anything.  0, -EINVAL on
 * other policies, -ENOMEM.
 */
int dh_reader_keep_claims(struct dh_reader *r);

/* Queue, keeping claims: mark done the messages delivered before the
 * current one (their bytes are out; the current one's may not be). */
void dh_reader_release_kept(struct dh_reader *r);

/* Queue, keeping claims: mark done the messages delivered (kept or
 * current) whose seq is below seq, when they were passed on out of order
 * with the calls (a relay hears of it later, from its far end).  Returns
 * how many claims are still kept, the current one included (0 when not
 * keeping claims). */
uint32_t dh_reader_release_before(struct dh_reader *r, uint64_t seq);

/* Queue, keeping claims: the message of the kept (or current) claim with
 * the smallest seq at or above from, again, for a relay handing it out a
 * second time (its far end lost the first copy): data in place, valid
 * while the claim is kept; its stored check into check.  0, -ENOENT (none),
 * -DH_ECORRUPT (the slot no longer holds it). */
int dh_reader_kept_next(struct dh_reader *r, uint64_t from, struct dh_msg *m, uint8_t check[32]);

/* Queue, keeping claims, when the caller stops: of the messages still
 * claimed (the kept ones in delivery order, then the current one), the
 * first `passed` were passed on and are marked done; the others are marked
 * done and counted lost (queue_lost, the entry's lost).  Returns how many
 * were counted lost. */
uint64_t dh_reader_settle(struct dh_reader *r, uint64_t passed);

/* Make every wait of r return -EINTR once c is raised (NULL: none). */
void dh_reader_set_cancel(struct dh_reader *r, struct dh_cancel *c);

struct dh_block *dh_reader_block(struct dh_reader *r);
uint64_t dh_reader_position(const struct dh_reader *r);
uint64_t dh_reader_lost(const struct dh_reader *r);   /* total since attach */

#endif
