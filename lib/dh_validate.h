/* dh_validate.h: integrity checks, diagnosis and safe repair of a channel. See LICENSE. */
#ifndef DH_VALIDATE_H
#define DH_VALIDATE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "dh_block.h"

/* What a check found. Stable names for JSON come from dh_finding_name(). */
enum dh_finding_kind {
	DH_FIND_WRITER_DEAD,        /* writer entry active, its lock gone, no end-of-stream */
	DH_FIND_WRITER_MIDWRITE,    /* dead writer left seq `seq` half-written (never visible) */
	DH_FIND_WRITER_UNPUBLISHED, /* dead writer stamped seq `seq` complete but did not publish it */
	DH_FIND_WRITER_STALLED,     /* writer alive but stopped */
	DH_FIND_READER_DEAD,        /* reader entry active, its lock gone */
	DH_FIND_READER_STALLED,     /* reader alive, inactive past the stall limit, holding the writer */
	DH_FIND_CLAIM_DEAD,         /* queue message `seq` claimed by a dead reader */
	DH_FIND_CHECKSUM,           /* committed message `seq` fails its checksum */
	DH_FIND_QUARANTINED,        /* message `seq` quarantined earlier (informational) */
	DH_FIND_DESC,               /* slot descriptor out of range */
	DH_FIND_STATE,              /* header counters or table entry inconsistent */
	DH_FIND_KEY_UNVERIFIED,     /* keyed channel checked without its key: MACs not verified */
	DH_FIND_ACKNOWLEDGED,       /* repair: past refusals, checksum failures and queue losses
	                               acknowledged; health reports only later ones */
	DH_FIND_LAST
};

enum dh_finding_action {
	DH_ACT_NONE = 0,            /* nothing to do (informational) */
	DH_ACT_REPAIRABLE,          /* --repair would fix it */
	DH_ACT_NEEDS_FORCE,         /* --repair --force would override it (not provably safe) */
	DH_ACT_REPAIRED,            /* fixed by this run */
	DH_ACT_FORCED,              /* overridden by this run because of force */
	DH_ACT_UNREPAIRABLE         /* left alone: nothing safe can be done */
};

struct dh_finding {
	enum dh_finding_kind kind;
	enum dh_finding_action action;
	int index;                  /* participant index, or -1 */
	pid_t pid;                  /* participant pid, or 0 */
	uint64_t seq;               /* message seq, or UINT64_MAX */
	uint32_t slot;              /* slot index, or UINT32_MAX */
	uint64_t age_ns;            /* inactivity of a stalled participant */
	char detail[160];           /* one line, no trailing newline */
};

struct dh_report {
	int problems;               /* findings that are problems (not informational) and remain */
	size_t n, cap;
	struct dh_finding *f;       /* owned; dh_report_free() */
	uint64_t slots_checked;     /* committed messages whose checksum was verified */
};

#define DH_CHECK_REPAIR 1           /* fix what is provably safe (needs a writable handle) */
#define DH_CHECK_FORCE 2            /* with REPAIR: also cut loose stalled live participants */

/*
 * Check every header counter, descriptor and table entry of b against the
 * geometry and the kernel's view of liveness, and every committed message
 * still held against its checksum.  With DH_CHECK_REPAIR, reclaim what dead
 * processes held, publish a message a dead writer completed but did not
 * publish, and quarantine messages that fail their check (never re-bless
 * them).  stall_ns: inactivity after which a live participant holding the
 * writer back is reported stalled.  Safe against concurrent writers,
 * readers and other repairers.  Returns 0 (see rep->problems) or a
 * negative code; rep must be freed with dh_report_free even on error.
 */
int dh_check_run(struct dh_block *b, int flags, uint64_t stall_ns, struct dh_report *rep);
void dh_report_free(struct dh_report *rep);

const char *dh_finding_name(enum dh_finding_kind k);     /* "writer_dead", ... */
const char *dh_action_name(enum dh_finding_action a);    /* "repairable", ... */

/* Whether process pid is stopped (SIGSTOP/ptrace), from /proc: 1, 0, or -errno. */
int dh_proc_stopped(pid_t pid);

#endif
