/* progress.h: the --progress status of dh-read and dh-write (pv-style, or log lines). See LICENSE. */
#ifndef DH_PROGRESS_H
#define DH_PROGRESS_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "dh.h"

/*
 * --progress[=auto|log] and --progress-interval DUR, the same in both
 * commands.  auto: a status line redrawn in place when standard error is a
 * terminal, else one plain line per interval (a log); log: plain lines
 * even on a terminal.  A thread draws them, so a command blocked waiting
 * for space or for messages still reports (and its rate falls to 0).
 */
enum progress_mode { PROGRESS_OFF = 0, PROGRESS_AUTO, PROGRESS_LOG };

struct progress_opts {
	enum progress_mode mode;
	int64_t interval_ns;       /* 0: 0.2 s on a terminal, 1 s in a log */
};

/* The option values (NULL arg: auto); a bad one is a usage error (exit 2).
 * --progress-interval alone implies --progress. */
void progress_opt_mode(struct progress_opts *o, const char *arg, const char *synopsis);
void progress_opt_interval(struct progress_opts *o, const char *arg, const char *synopsis);

/* Counted by the command's own thread, read by the drawing thread. */
struct progress {
	_Atomic uint64_t msgs, bytes;
	struct progress_priv *priv;
};

/* Start reporting on channel name, open as b by this process as its
 * writer (reader 0) or its reader (reader 1).  NULL when off or when it
 * cannot start (reporting is never worth failing the copy for). */
struct progress *progress_start(const struct progress_opts *o, const char *name, struct dh_block *b, int reader);

/* One message of len bytes moved.  Only the command's thread writes the
 * counters: a plain load and store, no locked instruction. */
static inline void
progress_add(struct progress *p, size_t len)
{
	if (p == NULL)
		return;
	atomic_store_explicit(&p->msgs, atomic_load_explicit(&p->msgs, memory_order_relaxed) + 1,
			      memory_order_relaxed);
	atomic_store_explicit(&p->bytes, atomic_load_explicit(&p->bytes, memory_order_relaxed) + len,
			      memory_order_relaxed);
}

/* Stop the thread, print the final line (totals, average rates), free p.
 * Call it before closing the channel. NULL is a no-op. */
void progress_end(struct progress *p);

#endif
