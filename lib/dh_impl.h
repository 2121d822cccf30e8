/* dh_impl.h: the segment layout and internals shared by the lib/ sources (and white-box tests). See LICENSE. */
#ifndef DH_IMPL_H
#define DH_IMPL_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "dh_block.h"
#include "dh_error.h"

/*
 * Segment layout (format version 1; 2 once the metadata zone is doubled), all integers in host byte order,
 * every part 64-byte aligned, the data area page aligned:
 *
 *   0                 struct dh_hdr (4096 bytes)
 *   table_off         struct dh_pentry[1 + max_readers]  (writer first)
 *   desc_off          struct dh_desc[slots]
 *   meta_off          struct dh_meta + 2 copies of meta_size bytes, 64-aligned (absent when 0)
 *   data_off          slots * stride bytes
 *
 * man/dh-format.5 describes the protocol that runs over it.
 */

#define DH_MAGIC 0x31424844u /* "DHB1" little-endian */
#define DH_FORMAT_VERSION 2u
#define DH_HDR_SIZE 4096u
#define DH_CACHELINE 64u
#define DH_PAGE 4096u
#define DH_SEQ_NONE UINT64_MAX

/* Queue claim words: (seq << 9) | tag. */
#define DH_Q_SHIFT 9
#define DH_Q_AVAIL 0u      /* committed, unclaimed */
#define DH_Q_DONE 511u     /* consumed (or reaped): the writer may reuse the slot */
/* tags 1..256: claimed by reader index tag (table index) */

#define DH_ALIGNED(n) _Alignas(n)

struct dh_hdr {
	/* line 0: identity, immutable after publication */
	_Atomic uint32_t magic;    /* stored last at creation (release) */
	uint32_t version;
	uint64_t total_size;
	uint32_t slots;
	uint32_t slot_size;
	uint32_t stride;
	uint32_t meta_size;
	uint32_t max_readers;
	uint32_t policy;
	uint32_t checksum;
	uint32_t flags;
	uint64_t evict_after_ns;
	uint64_t created_ns;

	/* line 1 */
	DH_ALIGNED(64) uint32_t creator_uid;
	uint32_t creator_pid;
	uint64_t table_off;
	uint64_t desc_off;
	uint64_t meta_off;
	uint64_t data_off;
	uint32_t record_size;       /* schema record size, 0: no schema */
	uint32_t schema_len;        /* bytes of schema[] used, without NUL */
	uint8_t chan_id[16];        /* random at creation: MACs bind messages to this channel */

	/* line 2: integrity identity */
	DH_ALIGNED(64) uint8_t key_id[32]; /* BLAKE2b of the MAC key, zero: unkeyed */
	uint8_t schema_hash[32];           /* BLAKE2b-256 of schema[], zero: none */

	/* line 3: written by the writer on every commit */
	DH_ALIGNED(64) _Atomic uint64_t committed;   /* messages committed = next seq */
	_Atomic uint64_t eos_seq;                    /* DH_SEQ_NONE, or committed at end-of-stream */
	_Atomic uint32_t data_futex;                 /* bumped on commit and end-of-stream */
	_Atomic uint32_t data_waiters;               /* readers inside futex wait (statistics) */
	_Atomic uint32_t data_sleep;                 /* 1: some reader may sleep; the next commit wakes */

	/* line 4: readers signal space to a blocked writer */
	DH_ALIGNED(64) _Atomic uint32_t space_futex;
	_Atomic uint32_t space_waiters;
	_Atomic uint32_t space_sleep;                /* 1: the writer may sleep; the next release wakes */

	/* line 5: queue claim head (a hint: the claim itself is the slot's qword) */
	DH_ALIGNED(64) _Atomic uint64_t claim_head;

	/* bumped whenever a reader attaches, so a sync writer knows its cached
	 * slowest-reader position is stale */
	DH_ALIGNED(64) _Atomic uint64_t reader_gen;

	/* lines 7-8: metrics written by the writer or by reapers */
	DH_ALIGNED(64) _Atomic uint64_t messages_written;
	_Atomic uint64_t bytes_written;
	_Atomic uint64_t writer_waits;
	_Atomic uint64_t writer_wait_ns;
	_Atomic uint64_t readers_reaped;
	_Atomic uint64_t evictions;
	_Atomic uint64_t eos_count;
	_Atomic uint64_t queue_lost;
	DH_ALIGNED(64) _Atomic uint64_t checksum_failures;
	_Atomic uint64_t writer_sessions;
	_Atomic uint64_t schema_mismatches;
	_Atomic uint64_t key_mismatches;

	/* canonical schema text (NUL-terminated), at a fixed place in the page */
	DH_ALIGNED(64) char schema[1024];

	/* Streams: a writer session that finds the last stream ended (or
	 * none yet) starts the next one.  Written at writer open only. */
	DH_ALIGNED(64) _Atomic uint64_t stream;      /* current stream number, 0: none yet */
	_Atomic uint64_t stream_start;               /* seq of its first message */
	_Atomic uint64_t readers_lost;               /* messages readers lost to laps, ever */
	/* sync: seq up to which readers that have left had consumed.  With
	 * no reader attached the writer keeps everything from here on, as a
	 * pipe keeps unread bytes; a reader that arrives after the stream
	 * ended reads what is left of it from here. */
	_Atomic uint64_t drained;
	/* Counter values dh-validate --repair acknowledged: health describes
	 * what happened since, the counters above stay lifetime totals. */
	_Atomic uint64_t acked_schema_mismatches;
	_Atomic uint64_t acked_key_mismatches;
	_Atomic uint64_t acked_checksum_failures;
	_Atomic uint64_t acked_queue_lost;
};

/*
 * Participant entry state word: bits 0-1 the state, bits 2-31 the occupant
 * generation, advanced by every attach.  An evictor compares-and-swaps from
 * the exact word it judged, so it can never evict a later occupant of the
 * same index; per-entry timers are keyed by the word for the same reason.
 */
enum { DH_ENT_FREE = 0, DH_ENT_ACTIVE = 1, DH_ENT_EVICTED = 2 };
#define DH_ENT_MASK 3u
#define DH_ENT_GEN_STEP 4u

static inline uint32_t
dh__ent_state(uint32_t word)
{
	return word & DH_ENT_MASK;
}

/* The word a new occupant stores over a FREE entry word. */
static inline uint32_t
dh__ent_attach(uint32_t word)
{
	return ((word & ~DH_ENT_MASK) + DH_ENT_GEN_STEP) | DH_ENT_ACTIVE;
}

/* The same occupant, another state. */
static inline uint32_t
dh__ent_with(uint32_t word, uint32_t state)
{
	return (word & ~DH_ENT_MASK) | state;
}

/*
 * A sync reader's position word: the next seq it reads, with DH_POS_HOLD set
 * while it holds that message in place (zero-copy).  The writer never
 * overwrites a held message, even once the reader is evicted: an evicted
 * reader that holds nothing learns of its eviction before it touches a slot.
 */
#define DH_POS_HOLD (UINT64_C(1) << 63)

struct dh_pentry {
	DH_ALIGNED(64) _Atomic uint32_t state;
	uint32_t pid;
	char name[DH_PNAME_MAX];
	_Atomic uint64_t position;       /* next seq to read (readers) / to write (writer) */
	_Atomic uint64_t last_active_ns; /* CLOCK_REALTIME */
	_Atomic uint64_t messages;
	_Atomic uint64_t bytes;
	_Atomic uint64_t lost;
	_Atomic uint64_t checksum_failures;
	_Atomic uint64_t claim;          /* queue: seq held, or DH_SEQ_NONE */
	_Atomic uint64_t heartbeat_mono; /* CLOCK_MONOTONIC(_COARSE) of last activity:
					  * idle times that a wall-clock jump cannot fake */
	_Atomic uint64_t flags;          /* writer: DH_W_* (dh-format(5), the light reserve) */
	uint64_t reserved[1];
};

/* The sync writer stores its odd stamps without a barrier: a reader that
 * attaches must call membarrier(2) before it reads a stamp. */
#define DH_W_LIGHT 1u

struct dh_desc {
	DH_ALIGNED(64) _Atomic uint64_t stamp; /* 2s+1 while seq s is written, 2s+2 once committed */
	_Atomic uint64_t qword;                /* queue claim word */
	uint32_t length;
	uint32_t flags;                        /* DH_DESC_* */
	uint64_t time_ns;
	uint8_t check[32];                     /* xxh3: first 8 bytes; blake2b: 32 */
};

#define DH_DESC_QUARANTINED 1u

/*
 * Metadata zone: this header, then two copies of round_up(meta_size, 64)
 * bytes. Copy (seq >> 1) & 1 is the current one whatever seq is, so readers
 * never wait and a dead updater never leaves a torn current copy. An updater
 * holds the OFD write lock on byte DH_META_LOCK of the file (exclusion that
 * dies with its holder, never by a timer), moves seq from even s to s + 1
 * (or, after a dead updater left odd o, to o + 4, which still selects the
 * intact copy), fills copy ((odd >> 1) + 1) & 1 and its length and check,
 * and publishes with CAS(odd -> odd + 1): only from its own odd value.
 */
struct dh_meta {
	DH_ALIGNED(64) _Atomic uint32_t seq;  /* odd while an update is in progress */
	uint32_t length[2];                   /* bytes used in each copy */
	uint32_t reserved;
	uint64_t check[2];                    /* xxh3 of each copy, seeded with its length */
	uint8_t pad[32];
	/* two copies follow */
};

/* Lock byte of the metadata updater: after the liveness bytes 0..DH_READERS_MAX. */
#define DH_META_LOCK (DH_READERS_MAX + 1)

/* An update in progress (block.c; the steps are separate so tests can
 * interleave two updaters). */
struct dh__meta_tx {
	uint32_t odd;                         /* our odd seq value */
};

int dh__meta_begin(struct dh_block *b, struct dh__meta_tx *tx, int64_t timeout_ns); /* 0, -EBUSY (a live updater holds it), -errno */
int dh__meta_fill(struct dh_block *b, const struct dh__meta_tx *tx, const void *data, size_t len); /* 0, -ESTALE: not ours any more */
int dh__meta_commit(struct dh_block *b, const struct dh__meta_tx *tx); /* 0, -ESTALE: discarded; drops the lock either way */

_Static_assert(sizeof(struct dh_hdr) <= DH_HDR_SIZE, "header fits its page");
_Static_assert(sizeof(struct dh_pentry) == 128, "table entry is two cache lines");
_Static_assert(offsetof(struct dh_pentry, flags) == 104, "flags where dh-format(5) says");
_Static_assert(sizeof(struct dh_desc) == 64, "descriptor is one cache line");
_Static_assert(sizeof(struct dh_meta) == 64, "meta header is one cache line");

/* An open mapping. */
struct dh_block {
	int fd;
	int rdonly;
	char name[DH_NAME_MAX + 1];
	void *base;
	size_t size;
	struct dh_config cfg;     /* validated copy: sizes are taken from here, never re-read */
	const struct dh_policy_desc *pol;   /* cfg.policy's row of the policy table */
	const struct dh_checksum_desc *ck;  /* cfg.checksum's row */
	struct dh_layout lay;
	struct dh_hdr *hdr;
	struct dh_pentry *table;
	struct dh_desc *desc;
	struct dh_meta *meta;
	unsigned char *data;
	uint32_t record_size;       /* validated copy of the header's */
	uint8_t chan_id[16];        /* copy of the header's */
	int has_key;
	uint8_t key[DH_KEY_BYTES];  /* wiped on close */
};

/* Can this handle verify message checks (a MAC needs the key)? */
static inline int
dh__verifiable(const struct dh_block *b)
{
	return b->ck->digest_len && (!b->ck->keyed || b->has_key);
}

/* internal helpers (block.c) */
int dh__lock_try(int fd, int index);            /* 0 taken, -EAGAIN held elsewhere, -errno */
void dh__lock_drop(int fd, int index);
int dh__lock_held(int fd, int index);           /* 1 held by another description, 0 free, -errno */
uint64_t dh__now_real(void);
uint64_t dh__now_mono(void);
void dh__touch(struct dh_pentry *e, uint64_t real_ns); /* record activity now */
int dh__reap(struct dh_block *b, int index, int self_index); /* reclaim a dead entry, 1 if reaped */

/* checksum.c */
void dh__check_compute(const struct dh_block *b, uint64_t seq, const void *data, uint32_t len,
		       uint8_t out[32]);
int dh__check_verify(const struct dh_block *b, uint64_t seq, const void *data, uint32_t len,
		     const uint8_t expect[32]);
void dh__key_id(const uint8_t key[DH_KEY_BYTES], uint8_t id[32]);
int dh__check_identity(struct dh_block *b, const uint8_t *key, const char *schema);
int dh__check_identity_schema(struct dh_block *b, const char *schema); /* the schema half */

/* utf8.c: UTF-8, shared by the framing and schema codecs */
size_t dh__utf8_seq(const unsigned char *p, const unsigned char *end);

/* wait.c: futex on shared words */
struct dh_cancel;
int dh__futex_wait(_Atomic uint32_t *word, uint32_t expect, int64_t timeout_ns);
void dh__futex_wake(_Atomic uint32_t *word);
/* As dh__futex_wait, but -EINTR only once c is raised (c may be NULL: plain). */
int dh__futex_wait_cancel(struct dh_cancel *c, _Atomic uint32_t *word, uint32_t expect, int64_t timeout_ns);
int dh__cancel_sleep(struct dh_cancel *c, int64_t ns);

/* A sync reader leaves (closed, or reaped dead): what it consumed stays
 * consumed for the writer and for readers that come later. */
static inline void
dh__fold_drained(struct dh_hdr *h, uint64_t position_word)
{
	uint64_t pos = position_word & ~DH_POS_HOLD, cur = atomic_load(&h->drained);

	while (cur < pos && !atomic_compare_exchange_weak(&h->drained, &cur, pos))
		;
}

static inline void *
dh__slot(const struct dh_block *b, uint64_t seq)
{
	return b->data + (seq % b->cfg.slots) * b->lay.stride;
}

static inline struct dh_desc *
dh__desc(const struct dh_block *b, uint64_t seq)
{
	return &b->desc[seq % b->cfg.slots];
}

#endif
