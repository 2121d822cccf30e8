/* dh_block.h: channel segments: naming, geometry, create/open/unlink, inspection. See LICENSE. */
#ifndef DH_BLOCK_H
#define DH_BLOCK_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define DH_NAME_MAX 200          /* longest channel name */
#define DH_PNAME_MAX 32          /* participant label, including NUL */
#define DH_SLOT_SIZE_MAX (1u << 30)
#define DH_SLOTS_MAX (1u << 24)
#define DH_READERS_MAX 256
#define DH_META_MAX (64u << 20)

enum dh_policy { DH_POLICY_LATEST = 0, DH_POLICY_RING = 1, DH_POLICY_SYNC = 2, DH_POLICY_QUEUE = 3 };
/* MAC is keyed BLAKE2b-256: chosen by creating with a key, not by name. */
enum dh_checksum { DH_CHECKSUM_NONE = 0, DH_CHECKSUM_XXH3 = 1, DH_CHECKSUM_BLAKE2B = 2, DH_CHECKSUM_MAC = 3 };

#define DH_KEY_BYTES 32

/* Creation parameters; dh_config_init() fills the documented defaults
 * (64 slots of 64 KiB, sync, xxh3, 16 readers, mode 0600, no metadata zone). */
struct dh_config {
	uint32_t slots;
	uint32_t slot_size;       /* payload capacity of one slot, bytes */
	uint32_t meta_size;       /* metadata zone capacity, bytes, 0 = none */
	uint32_t max_readers;     /* 1..DH_READERS_MAX */
	enum dh_policy policy;
	enum dh_checksum checksum;
	unsigned mode;            /* permission bits applied with fchmod after creation */
	uint64_t evict_after_ns;  /* sync: evict a live reader stalling the writer this long; 0 = never */
	const uint8_t *key;       /* DH_KEY_BYTES, or NULL: a keyed channel uses DH_CHECKSUM_MAC */
	const char *schema;       /* schema SPEC, or NULL; its record size must fit slot_size */
};

/* Byte offsets of the parts of a segment, as derived from a geometry. */
struct dh_layout {
	uint64_t table_off, table_size;   /* participant table: 1 writer + max_readers entries */
	uint64_t desc_off, desc_size;     /* one 64-byte descriptor per slot */
	uint64_t meta_off, meta_size;     /* metadata zone including its seqlock header */
	uint64_t data_off, data_size;     /* slots * stride, page aligned */
	uint64_t stride;
	uint64_t total;
};

void dh_config_init(struct dh_config *cfg);

/* 0 if name is a valid channel name ([A-Za-z0-9._-], 1..DH_NAME_MAX, no
 * leading dot), else -EINVAL or -ENAMETOOLONG. */
int dh_name_check(const char *name);

/* Derive the layout of cfg. -EINVAL on an out-of-range field, -EOVERFLOW if
 * the segment size does not fit. Pure function. */
int dh_layout_compute(const struct dh_config *cfg, struct dh_layout *out);

/*
 * What a policy promises.  The library and the tools ask these flags, never
 * the enum value; iterate with dh_policy_info(0), (1), ... until NULL.
 */
struct dh_policy_desc {
	const char *name;          /* "sync" */
	const char *summary;       /* one line for help texts */
	unsigned writer_waits : 1; /* lossless: the writer waits for space */
	unsigned zero_copy : 1;    /* readers get the slot itself, held until release */
	unsigned positions_hold : 1; /* each reader's position holds the writer back (sync) */
	unsigned claims : 1;       /* readers compete through per-slot claim words (queue) */
	unsigned counts_lost : 1;  /* a lapped reader counts what it missed (ring) */
	unsigned newest_only : 1;  /* readers skip to the newest message (latest) */
	unsigned evictable : 1;    /* a stalled live reader may be cut loose (evict_after) */
	unsigned in_order : 1;     /* every reader gets every message in order: a gap is a loss */
};
const struct dh_policy_desc *dh_policy_info(enum dh_policy p);

/* A checksum kind; iterate like dh_policy_info. */
struct dh_checksum_desc {
	const char *name;          /* "xxh3" */
	size_t digest_len;         /* bytes of the descriptor's check field used */
	unsigned keyed : 1;        /* a MAC: verifiable only with the channel's key */
	unsigned parseable : 1;    /* may be named on a command line (a key selects the MAC) */
	unsigned needs_sodium : 1;
};
const struct dh_checksum_desc *dh_checksum_info(enum dh_checksum c);

/* Policy and checksum names ("sync", "xxh3", ...): parse returns 0 or -EINVAL.
 * Parsing never yields DH_CHECKSUM_MAC: a key selects it. */
const char *dh_policy_name(enum dh_policy p);
int dh_policy_parse(const char *s, enum dh_policy *out);
const char *dh_checksum_name(enum dh_checksum c);
int dh_checksum_parse(const char *s, enum dh_checksum *out);

/* The names the parse functions accept, in table order, joined by sep
 * ("latest, ring, sync, queue" with ", "), into buf: at most cap bytes,
 * terminated, cut short if it is too small.  Returns buf, so that messages
 * and help texts list the choices from the tables. */
const char *dh_policy_names(const char *sep, char *buf, size_t cap);
const char *dh_checksum_names(const char *sep, char *buf, size_t cap);

/*
 * Where segments live: the directory named by $DH_SHM_DIR when it is set
 * and not empty, else /dev/shm; channel NAME is the file dh.NAME there.
 * dh_block_dir returns that directory (a pointer into the environment or a
 * constant). dh_block_path writes DIR/dh.NAME into buf: -EINVAL or
 * -ENAMETOOLONG for a bad name, -DH_EDIR if $DH_SHM_DIR is not absolute.
 * dh_block_dir_check: 0 if the directory is safe to keep channels in (owned
 * by the caller's euid or root; if group or others may write it, sticky),
 * -DH_EDIR if not, -errno if it cannot be examined. Every function that
 * opens or removes a segment checks it first.
 */
const char *dh_block_dir(void);
int dh_block_path(const char *name, char *buf, size_t len);
int dh_block_dir_check(void);

/*
 * The channels of dh_block_dir(): the names after "dh." of its regular
 * files (never opened: a FIFO planted there could block), sorted by strcmp,
 * in a NULL-terminated vector the caller frees with dh_channel_list_free.
 * Names are as found: one dh_name_check refuses (even "") is a foreign file,
 * for the caller to report or skip.  count may be NULL.  0, or -errno from
 * opendir/readdir, -ENOMEM; *out is NULL on failure.
 */
int dh_channel_list(char ***out, size_t *count);
void dh_channel_list_free(char **names);

/* 0 if mode (permission bits) is one dh accepts for a channel: group and
 * others each get read and write, or neither. Read-only or write-only access
 * would let that user lock the liveness bytes without being a participant
 * (blocking attaches), so it is -DH_EMODE; bits outside 0777 are -EINVAL. */
int dh_mode_check(unsigned mode);

/* Create DIR/dh.NAME exclusively (see dh_block_dir; -DH_EMODE for a mode
 * dh_mode_check refuses).  With cfg->key the channel is keyed
 * (MAC checksums, the header keeps only a key id); with cfg->schema it
 * records the canonical schema and its hash (-EINVAL if the spec is bad,
 * -EMSGSIZE if its record does not fit a slot). Created: private until fully initialised,
 * pages reserved up front (a full /dev/shm fails here with -ENOSPC, never
 * SIGBUS later).  -EEXIST if it exists; nothing is left behind on failure. */
int dh_block_create(const char *name, const struct dh_config *cfg);

/* Remove channel NAME. Unless force, -EBUSY while a participant is alive
 * (its pid in *holder when holder != NULL), -DH_ENOTREG if the name is not a
 * regular file (force removes any entry, never following a symlink).
 * -ENOENT if missing. */
int dh_block_unlink(const char *name, int force, pid_t *holder);

/* A mapping of a channel for inspection.  Each handle has its own open file
 * description (liveness locks are per description), so handles must not be
 * shared across fork(). */
struct dh_block;

#define DH_OPEN_RDONLY 1  /* map read-only: never modifies the segment */
#define DH_OPEN_NOWAIT 2  /* do not wait for a creator to publish the header */

/* Open and validate an existing channel. Never blocks on what was planted
 * under the name (O_NONBLOCK, O_NOFOLLOW). Errors: -ENOENT, -EACCES, -ELOOP
 * (a symlink), -DH_ENOTREG (a FIFO, socket, device or directory), -DH_EDIR,
 * -DH_EMODE (unless DH_OPEN_RDONLY: the file's mode is one dh_mode_check
 * refuses), -DH_EFOREIGN, -DH_EVERSION, -DH_ECORRUPT (also for a segment whose
 * creator never published the header: after a bounded wait, or at once
 * with DH_OPEN_NOWAIT, since a creator that died there leaves it so). *out is owned by the caller: dh_block_close(). */
int dh_block_open(const char *name, int flags, struct dh_block **out);
void dh_block_close(struct dh_block *b);

/* The uid owning the segment file of an open channel (the kernel's word,
 * unlike the header's creator_uid, which anyone with write access can set). */
uid_t dh_block_owner(const struct dh_block *b);

/* Validate a header image of size bytes (the start of a segment whose file
 * size is file_size) without mapping anything. Used by open and by fuzzers. */
int dh_block_check_image(const void *img, size_t size, uint64_t file_size, struct dh_config *cfg,
			 struct dh_layout *lay);

/* Use key (DH_KEY_BYTES, copied) to verify MACs through this handle:
 * -DH_EKEY if it is not the channel's, -DH_ENOTKEYED for an unkeyed one. */
int dh_block_set_key(struct dh_block *b, const uint8_t *key);

/* The channel's schema: canonical form into buf (cap bytes, NUL-terminated)
 * and hash; returns the record size, 0 if the channel has no schema. */
int dh_block_schema(struct dh_block *b, char *buf, size_t cap, uint8_t hash[32]);

/* The channel's geometry and policy as checked at open (key and schema
 * pointers are NULL).  Valid while b is open. */
const struct dh_config *dh_block_config(const struct dh_block *b);

/* Participant states as reported by dh_block_snapshot. */
enum dh_pstate {
	DH_P_FREE = 0,      /* entry unused */
	DH_P_ALIVE = 1,     /* lock held: the process is alive */
	DH_P_DEAD = 2,      /* entry claimed but nobody holds its lock */
	DH_P_EVICTED = 3,   /* reader cut loose by --evict-after; alive or not */
	DH_P_UNKNOWN = 4    /* could not tell (e.g. read-only view without lock access) */
};

struct dh_participant {
	int index;                   /* 0 = writer, 1.. readers */
	enum dh_pstate state;
	pid_t pid;
	char name[DH_PNAME_MAX];
	uint64_t position;           /* writer: next seq; reader: next seq to read */
	uint64_t last_active_ns;     /* CLOCK_REALTIME of last activity, for display */
	uint64_t idle_ns;            /* time since last activity, on the monotonic clock:
				      * what to judge staleness by (wall-clock jumps cannot fake it) */
	uint64_t messages, bytes, lost, checksum_failures;
	uint64_t claim;              /* queue: seq this reader holds, or UINT64_MAX */
};

struct dh_snapshot {
	struct dh_config cfg;
	struct dh_layout lay;
	uint64_t created_ns;         /* CLOCK_REALTIME */
	uint32_t creator_uid, creator_pid;
	uint64_t committed;          /* messages ever committed = next seq */
	int eos;                     /* end-of-stream marked at committed */
	uint64_t stream;             /* current stream number (1 for the first writer), 0: none yet */
	uint64_t stream_start;       /* seq of the current stream's first message */
	uint64_t messages_written, bytes_written;
	uint64_t writer_waits, writer_wait_ns;
	uint64_t readers_reaped, evictions, eos_count, queue_lost;
	uint64_t readers_lost;       /* messages readers lost to laps (ring) or asked for unheld, ever */
	uint64_t checksum_failures;
	uint64_t schema_mismatches, key_mismatches;
	/* the four counters' values dh-validate --repair last acknowledged:
	 * health counts only what came after */
	uint64_t acked_schema_mismatches, acked_key_mismatches, acked_checksum_failures, acked_queue_lost;
	uint64_t drained;            /* sync: seq up to which departed readers consumed */
	uint64_t claim_head;         /* queue: next seq to claim (backlog = committed - claim_head) */
	uint64_t writer_sessions;    /* writers that have opened the channel */
	uint32_t data_waiters;       /* readers asleep waiting for data now */
	uint32_t space_waiters;      /* 1 while the writer sleeps waiting for space */
	int keyed;
	uint32_t record_size;        /* 0: no schema */
	uint8_t schema_hash[32];
	int nparticipants;           /* entries in part[] (1 + max_readers) */
	struct dh_participant part[1 + DH_READERS_MAX];
};

/* Copy a consistent-enough view of the header counters and the participant
 * table, classifying each entry by its kernel lock. Never modifies the
 * segment. Counters are read individually (they move while we look). */
int dh_block_snapshot(struct dh_block *b, struct dh_snapshot *s);

/* Number of participants alive (lock held), writer included; 0 if none.
 * *first_pid gets the pid of one of them. Negative on error. */
int dh_block_alive(struct dh_block *b, pid_t *first_pid);

/* The on-disk format version this library reads and writes (dh-format(5)). */
unsigned dh_format_version(void);

/* 1 if b can verify its messages' checks (some check, and the key of a
 * keyed channel: dh_block_set_key). */
int dh_block_verifiable(const struct dh_block *b);

/* The key id of a keyed channel (BLAKE2b of the key, not the key):
 * 0, or -DH_ENOTKEYED. */
int dh_block_key_id(const struct dh_block *b, uint8_t id[32]);

/* One slot, decoded (for inspectors such as dh-diagnose). */
enum dh_slot_state {
	DH_SLOT_EMPTY = 0,        /* never written */
	DH_SLOT_WRITING,          /* seq is being written (or was, by a writer that died) */
	DH_SLOT_COMMITTED,        /* holds the message the committed count says it should */
	DH_SLOT_UNPUBLISHED,      /* complete message at seq == committed, not yet published */
	DH_SLOT_INCONSISTENT      /* names a message that cannot be there */
};
enum dh_claim_state {
	DH_CLAIM_NONE = 0,        /* not a queue channel */
	DH_CLAIM_AVAILABLE,       /* committed, unclaimed */
	DH_CLAIM_HELD,            /* claimed by reader claim_reader */
	DH_CLAIM_DONE             /* consumed or reclaimed: the writer may reuse the slot */
};
struct dh_slot_info {
	uint32_t slot;
	enum dh_slot_state state;
	uint64_t stamp;           /* the raw seqlock word */
	uint64_t seq;             /* the message the stamp names, UINT64_MAX when empty */
	uint64_t expected;        /* the message that should be there, UINT64_MAX if none yet */
	uint32_t length, flags;
	int quarantined;          /* a repair flagged it as failing its check */
	uint64_t time_ns;
	uint8_t check[32];
	size_t check_len;         /* bytes of check in use for the channel's checksum */
	uint64_t qword;           /* queue: the raw claim word */
	enum dh_claim_state claim;
	uint64_t claim_seq;       /* queue: the seq the claim word names */
	int claim_reader;         /* DH_CLAIM_HELD: the reader's table index, else -1 */
};

/* Decode slot (0 .. slots-1) against the committed count given (from a
 * snapshot).  Never modifies the segment.  0, or -EINVAL for a bad slot. */
int dh_block_slot(struct dh_block *b, uint64_t committed, uint32_t slot, struct dh_slot_info *out);

/* Metadata zone (two copies, see dh-format(5)). read copies the current
 * version into buf of cap bytes and returns its length without waiting for
 * updaters: -ENOBUFS if cap is too small, -DH_ECHECKSUM or -DH_ECORRUPT if
 * the current copy was damaged from outside the protocol, -EBUSY if updates
 * overtook it 10000 times, -ENODEV if the channel has no metadata zone.
 * write replaces it atomically, even if the caller is killed meanwhile:
 * -EMSGSIZE if too large, -EBUSY if another live updater (stopped or not)
 * kept the zone for 5 s, -ESTALE if the zone was taken from us (never while
 * we live: a dead updater's zone is taken over at once, a live one's never),
 * -EBADF through a read-only handle. */
ssize_t dh_meta_read(struct dh_block *b, void *buf, size_t cap);
int dh_meta_write(struct dh_block *b, const void *data, size_t len);
size_t dh_meta_capacity(const struct dh_block *b);

#endif
