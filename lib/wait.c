/* wait.c: futex waits on 32-bit words in shared memory, and cancelling them. See LICENSE. */
#include <errno.h>
#include <linux/futex.h>
#include <stddef.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "dh_cancel.h"
#include "dh_impl.h"

/* Shared (not FUTEX_PRIVATE) futexes: the waiters live in other processes. */
int
dh__futex_wait(_Atomic uint32_t *word, uint32_t expect, int64_t timeout_ns)
{
	struct timespec ts, *tsp = NULL;

	if (timeout_ns >= 0) {
		ts.tv_sec = timeout_ns / 1000000000;
		ts.tv_nsec = timeout_ns % 1000000000;
		tsp = &ts;
	}
	if (syscall(SYS_futex, (uint32_t *)word, FUTEX_WAIT, expect, tsp, NULL, 0) == 0)
		return 0;
	switch (errno) {
	case EAGAIN:
		return 0;
	case ETIMEDOUT:
		return -ETIMEDOUT;
	case EINTR:
		return -EINTR;
	default:
		return -errno;
	}
}

void
dh__futex_wake(_Atomic uint32_t *word)
{
	syscall(SYS_futex, (uint32_t *)word, FUTEX_WAKE, INT32_MAX, NULL, NULL, 0);
}

struct cancel {
	_Atomic uint32_t raised;
	_Atomic uint32_t word;                 /* polling waits sleep on this */
	_Atomic(_Atomic uint32_t *) waiting;   /* the futex word a wait sleeps on, or NULL */
};
_Static_assert(sizeof(struct cancel) <= sizeof(struct dh_cancel), "dh_cancel holds a cancel");
_Static_assert(_Alignof(struct cancel) <= _Alignof(uint64_t), "dh_cancel is aligned for a cancel");

static struct cancel *
impl(struct dh_cancel *pub)
{
	return (struct cancel *)(void *)pub->opaque;
}

/*
 * The wait publishes the word it sleeps on before it looks at the flag;
 * raise sets the flag before it looks for that word and bumps it.  So
 * either the wait sees the flag, or the bump changes the word under it and
 * FUTEX_WAIT returns at once: no lost wake-up, whenever the signal lands.
 */
int
dh__futex_wait_cancel(struct dh_cancel *pub, _Atomic uint32_t *word, uint32_t expect, int64_t timeout_ns)
{
	struct cancel *c = pub ? impl(pub) : NULL;
	int rc;

	if (!c)
		return dh__futex_wait(word, expect, timeout_ns);
	atomic_store(&c->waiting, word);
	if (atomic_load(&c->raised)) {
		atomic_store(&c->waiting, NULL);
		return -EINTR;
	}
	rc = dh__futex_wait(word, expect, timeout_ns);
	atomic_store(&c->waiting, NULL);
	if (atomic_load(&c->raised))
		return -EINTR;
	return rc == -EINTR ? 0 : rc; /* some other signal: the caller loops */
}

/* Sleep up to ns on the cancel's own word (a cancellable nanosleep). */
int
dh__cancel_sleep(struct dh_cancel *pub, int64_t ns)
{
	_Atomic uint32_t local = 0;
	_Atomic uint32_t *word = pub ? &impl(pub)->word : &local;
	uint32_t v = atomic_load(word);
	int rc;

	rc = dh__futex_wait_cancel(pub, word, v, ns);
	return rc == -ETIMEDOUT ? 0 : rc;
}

void
dh_cancel_init(struct dh_cancel *pub)
{
	struct cancel *c = impl(pub);

	atomic_init(&c->raised, 0);
	atomic_init(&c->word, 0);
	atomic_init(&c->waiting, NULL);
}

void
dh_cancel_raise(struct dh_cancel *pub)
{
	struct cancel *c = impl(pub);
	_Atomic uint32_t *w;

	atomic_store(&c->raised, 1);
	atomic_fetch_add(&c->word, 1);
	dh__futex_wake(&c->word);
	/* Bumping a segment's futex word only makes its waiters look again. */
	if ((w = atomic_load(&c->waiting)) != NULL) {
		atomic_fetch_add(w, 1);
		dh__futex_wake(w);
	}
}

int
dh_cancel_raised(const struct dh_cancel *pub)
{
	return atomic_load(&impl((struct dh_cancel *)pub)->raised) != 0;
}

void
dh_cancel_reset(struct dh_cancel *pub)
{
	atomic_store(&impl(pub)->raised, 0);
}
