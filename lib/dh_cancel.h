/* dh_cancel.h: cancelling blocked waits from a signal handler. See LICENSE. */
#ifndef DH_CANCEL_H
#define DH_CANCEL_H

#include <stdint.h>

/*
 * A signal handler that only sets a flag loses the signal when it lands
 * after the waiting code looked at the flag and before it went to sleep.
 * Give a dh_cancel to every handle (dh_writer_set_cancel,
 * dh_reader_set_cancel) and call dh_cancel_raise from the handler: every
 * wait of those handles, present or future, then returns -EINTR promptly,
 * with no such window.  A wait interrupted by any other signal carries on.
 *
 * The structure lives in the caller's memory (a static object in a
 * command); zero-initialised or dh_cancel_init'ed.  It must outlive the
 * handles that use it.  Fields are private.
 */
struct dh_cancel {
	/* private: atomics inside (lib/wait.c); plain storage here so that
	 * C++ can include this header */
	uint64_t opaque[3];
};

void dh_cancel_init(struct dh_cancel *c);

/* Async-signal-safe.  Wakes the wait in progress, if any, and makes every
 * later wait return -EINTR until dh_cancel_reset. */
void dh_cancel_raise(struct dh_cancel *c);

int dh_cancel_raised(const struct dh_cancel *c);

/* Forget an earlier raise (e.g. a command that handled SIGINT and goes on). */
void dh_cancel_reset(struct dh_cancel *c);

#endif
