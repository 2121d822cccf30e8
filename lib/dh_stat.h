/* dh_stat.h: metrics derived from channel snapshots, and their JSON and Prometheus renderings. See LICENSE. */
#ifndef DH_STAT_H
#define DH_STAT_H

#include <stddef.h>
#include <stdint.h>

#include "dh_block.h"

/*
 * Everything here is a pure function of snapshots (dh_block_snapshot):
 * no I/O, no global state, thread-safe.  Strings taken
 * from a segment (participant labels) are untrusted: the renderers escape
 * them, and dh_stat_safe() does the same for text output.
 */

/* Health conditions, one bit each.  DH_HEALTH_BAD ones make the channel
 * "bad", the others "warn". */
enum {
	DH_HEALTH_WRITER_DEAD = 1u << 0, /* writer died without marking end-of-stream */
	DH_HEALTH_CHECKSUM = 1u << 1,    /* messages failed their checksum */
	DH_HEALTH_READER_DEAD = 1u << 2, /* a reader died and is not reaped yet */
	DH_HEALTH_EVICTED = 1u << 3,     /* a reader was evicted for stalling the writer */
	DH_HEALTH_LOST = 1u << 4,        /* readers lost messages (lapped, or a dead queue reader's claim) */
	DH_HEALTH_FULL = 1u << 5,        /* sync: the slowest live reader is a whole ring behind */
	DH_HEALTH_STALLED = 1u << 6,     /* a live reader is behind and idle for DH_STAT_STALL_NS */
	DH_HEALTH_UNKNOWN = 1u << 7,     /* the liveness of an entry could not be told */
	DH_HEALTH_MISMATCH = 1u << 8,    /* participants were refused for a wrong schema or key */
	DH_HEALTH_NBITS = 9
};
#define DH_HEALTH_BAD (DH_HEALTH_WRITER_DEAD | DH_HEALTH_CHECKSUM)
#define DH_STAT_STALL_NS (10ull * 1000000000u)

enum dh_level { DH_LEVEL_OK = 0, DH_LEVEL_WARN = 1, DH_LEVEL_BAD = 2 };

/* What dh_stat_derive concludes from one snapshot. */
struct dh_stat {
	enum dh_pstate writer;      /* state of the writer entry */
	unsigned readers;           /* reader entries in use: alive, dead, evicted or unknown */
	unsigned readers_alive;
	unsigned readers_dead, readers_evicted, readers_unknown;
	int lag_known;              /* 0: no live reader, or a queue (no per-reader position) */
	uint64_t lag;               /* messages the slowest live reader has not read yet */
	int slowest;                /* table index of that reader, -1 if none */
	uint64_t fill;              /* min(lag, slots): slots holding unread messages; valid with lag_known */
	uint64_t lost;              /* sum of the readers' lost counters */
	unsigned health;            /* DH_HEALTH_* bits */
	enum dh_level level;
};

/* Derive s.  Staleness is judged by the participants' idle times, which
 * are on the monotonic clock: a wall-clock jump cannot fake them.  now_ns
 * (CLOCK_REALTIME when s was taken) serves only entries that have no
 * monotonic heartbeat (written by a build that predates it). */
void dh_stat_derive(const struct dh_snapshot *s, uint64_t now_ns, struct dh_stat *out);

/* Lag of participant index: committed minus its position (0 if ahead).
 * Returns 0 and sets *lag, or -ENODATA when it has no meaning (queue
 * readers claim from a shared head; free entries; the writer). */
int dh_stat_lag(const struct dh_snapshot *s, int index, uint64_t *lag);

/* Time since p's last activity: its monotonic idle time, or for an entry
 * without a monotonic heartbeat, now_ns minus its wall-clock activity time. */
uint64_t dh_stat_idle(const struct dh_participant *p, uint64_t now_ns);

const char *dh_level_name(enum dh_level l);       /* "ok", "warn", "bad" */
const char *dh_health_name(unsigned bit);         /* "writer-dead", ...; "?" if not one bit */
const char *dh_pstate_name(enum dh_pstate st);    /* "free", "alive", "dead", "evicted", "unknown" */

/* "ok", or the level and the conditions: "warn:lost,stalled".  Writes at
 * most cap bytes (NUL included, cut if needed) and returns buf. */
const char *dh_health_format(const struct dh_stat *st, char *buf, size_t cap);

/* Rates between two snapshots of the same channel dt_ns apart.  -ESTALE if
 * cur is not a later view of the channel prev was taken from (recreated:
 * creation time differs, or counters went back); -EINVAL if dt_ns is 0. */
int dh_stat_rate(const struct dh_snapshot *prev, const struct dh_snapshot *cur, uint64_t dt_ns,
		 double *msgs_per_s, double *bytes_per_s);

/* s as printable ASCII on one line: other bytes as \xNN; writes at most
 * cap bytes (cap >= 8), cutting with "..."; returns buf. */
const char *dh_stat_safe(const char *s, char *buf, size_t cap);

/* One channel as seen by a stat pass. */
struct dh_stat_channel {
	const char *name;                 /* as found in /dev/shm (escaped when rendered) */
	int error;                        /* 0, or the negative code opening or reading it failed with */
	const struct dh_snapshot *snap;   /* valid when error == 0 */
	const char *schema;               /* canonical schema text (dh_block_schema), or NULL */
	int has_rate;                     /* msgs_per_s and bytes_per_s are set */
	double msgs_per_s, bytes_per_s;
};

#define DH_STAT_ALL 1u  /* renderers: also the layout and free table entries */

/*
 * Render n channels observed at now_ns (CLOCK_REALTIME) into a malloc'd,
 * NUL-terminated string in *out (the caller frees it).  JSON: one compact
 * document and a newline, {"time_ns":now_ns,"channels":[...]}, with the field names documented in dh-stat(1).  Prometheus: the
 * text exposition format (HELP and TYPE once per family, dh_ prefix,
 * channel and reader labels, counters ending in _total).  0, or -ENOMEM.
 */
int dh_stat_json(const struct dh_stat_channel *ch, size_t n, uint64_t now_ns, unsigned flags, char **out);
int dh_stat_prometheus(const struct dh_stat_channel *ch, size_t n, uint64_t now_ns, unsigned flags,
		       char **out);

#endif
