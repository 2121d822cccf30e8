/* tap.h: a tiny TAP producer for the C unit tests, header-only. See LICENSE.
 *
 *   plan(N);                      prints "1..N", sets up cleanup
 *   ok(cond, "name %d", x);       prints "ok K - name" or "not ok K - name"; returns cond
 *   skip("name", "why");          prints "ok K - name # SKIP why"
 *   fail_rest(n, "what");         n "not ok" lines for tests a failed setup prevents
 *   diag("fmt", ...);             prints "# ..." (never counted)
 *   return done();                exit status: 0 if all planned tests ran and passed
 *
 * Channels: tap_chan(buf) writes a fresh name "dhtest-<tag>-<pid>-<n>" into
 * buf (DH_NAME_MAX + 1 bytes) and remembers it; at exit (and on a fatal
 * signal or watchdog timeout) every remembered channel is removed.  Define
 * TAP_CHAN_TAG before including this file to change <tag> (default "u").
 *
 * Children: tap_fork() forks; in the child it disables TAP output and
 * cleanup, asks the kernel to SIGKILL it if the parent dies, and arms a
 * default alarm so a stuck child cannot outlive the suite.  A child must
 * leave with _exit(), never exit() or return from main.  The parent
 * remembers the pid and SIGKILLs every child still alive at its exit.
 *
 * Watchdog: tap_watch(seconds, "what") arms alarm(2); if it fires, the
 * test prints "not ok - what: timed out", kills its children, removes its
 * channels and exits 1.  tap_watch(0, NULL) disarms it.
 */
#ifndef DH_TAP_H
#define DH_TAP_H

#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "dh_block.h"

#ifndef TAP_CHAN_TAG
#define TAP_CHAN_TAG "u"
#endif
#define TAP_MAX_CHANS 256
#define TAP_MAX_KIDS 64

static int tap_planned, tap_run, tap_failed;
static pid_t tap_pid;                 /* the test process; 0 before plan() */
static int tap_nchan;
static char tap_chans[TAP_MAX_CHANS][DH_NAME_MAX + 1];
static pid_t tap_kids[TAP_MAX_KIDS];
static char tap_watch_msg[256];
static size_t tap_watch_len;

static inline void
tap_kill_kids(void)
{
	for (int i = 0; i < TAP_MAX_KIDS; i++)
		if (tap_kids[i] > 0) {
			kill(tap_kids[i], SIGKILL);
			waitpid(tap_kids[i], NULL, 0);
			tap_kids[i] = 0;
		}
}

/* Async-signal-safe removal of the remembered channels. */
static inline void
tap_unlink_raw(void)
{
	char path[DH_NAME_MAX + 16];

	for (int i = 0; i < tap_nchan; i++) {
		size_t n = strlen(tap_chans[i]);
		memcpy(path, "/dev/shm/dh.", 12);
		memcpy(path + 12, tap_chans[i], n + 1);
		unlink(path);
	}
}

static inline void
tap_atexit(void)
{
	if (getpid() != tap_pid)
		return;
	tap_kill_kids();
	for (int i = 0; i < tap_nchan; i++)
		dh_block_unlink(tap_chans[i], 1, NULL);
	tap_unlink_raw();
}

static inline void
tap_fatal(int sig)
{
	if (getpid() == tap_pid) {
		if (sig == SIGALRM && tap_watch_len > 0) {
			ssize_t r = write(1, tap_watch_msg, tap_watch_len);
			(void)r;
		}
		for (int i = 0; i < TAP_MAX_KIDS; i++)
			if (tap_kids[i] > 0) {
				kill(tap_kids[i], SIGKILL);
				waitpid(tap_kids[i], NULL, 0);
			}
		tap_unlink_raw();
	}
	if (sig == SIGALRM)
		_exit(1);
	signal(sig, SIG_DFL);
	raise(sig);
}

static inline void
plan(int n)
{
	struct sigaction sa;
	static const int sigs[] = {SIGSEGV, SIGBUS, SIGABRT, SIGFPE, SIGILL, SIGTERM, SIGINT, SIGALRM};

	setvbuf(stdout, NULL, _IONBF, 0);
	tap_planned = n;
	tap_pid = getpid();
	atexit(tap_atexit);
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = tap_fatal;
	sigemptyset(&sa.sa_mask);
	for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++)
		sigaction(sigs[i], &sa, NULL);
	printf("1..%d\n", n);
}

static inline int
tap_vok(int cond, const char *fmt, va_list ap)
{
	tap_run++;
	if (!cond)
		tap_failed++;
	printf("%sok %d - ", cond ? "" : "not ", tap_run);
	vprintf(fmt, ap);
	putchar('\n');
	return cond;
}

#if defined(__GNUC__)
__attribute__((format(printf, 2, 3)))
#endif
static inline int
ok(int cond, const char *fmt, ...)
{
	va_list ap;
	int r;

	va_start(ap, fmt);
	r = tap_vok(cond, fmt, ap);
	va_end(ap);
	return r;
}

static inline void
skip(const char *name, const char *why)
{
	tap_run++;
	printf("ok %d - %s # SKIP %s\n", tap_run, name, why);
}

/* Count n tests that cannot run because their setup failed, as failures. */
static inline void
fail_rest(int n, const char *what)
{
	for (int i = 0; i < n; i++) {
		tap_run++;
		tap_failed++;
		printf("not ok %d - %s (not run: setup failed)\n", tap_run, what);
	}
}

#if defined(__GNUC__)
__attribute__((format(printf, 1, 2)))
#endif
static inline void
diag(const char *fmt, ...)
{
	va_list ap;

	fputs("# ", stdout);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
}

static inline int
done(void)
{
	alarm(0);
	if (tap_run != tap_planned) {
		printf("not ok %d - planned %d tests but ran %d\n", tap_run + 1, tap_planned, tap_run);
		return 1;
	}
	return tap_failed ? 1 : 0;
}

static inline void
tap_watch(unsigned seconds, const char *what)
{
	int n;

	alarm(0);
	tap_watch_len = 0;
	if (seconds == 0 || what == NULL)
		return;
	n = snprintf(tap_watch_msg, sizeof tap_watch_msg, "not ok - %s: timed out after %us\n",
		     what, seconds);
	if (n > 0)
		tap_watch_len = (size_t)n < sizeof tap_watch_msg ? (size_t)n : sizeof tap_watch_msg - 1;
	alarm(seconds);
}

/* A fresh channel name, remembered for cleanup. */
static inline const char *
tap_chan(char *buf)
{
	static unsigned seq;

	snprintf(buf, DH_NAME_MAX + 1, "dhtest-%s-%ld-%u", TAP_CHAN_TAG, (long)getpid(), seq++);
	if (tap_nchan < TAP_MAX_CHANS)
		memcpy(tap_chans[tap_nchan++], buf, strlen(buf) + 1);
	return buf;
}

/* fork() for tests: see the comment at the top. Returns like fork(). */
static inline pid_t
tap_fork(void)
{
	pid_t parent = getpid();
	pid_t pid;

	fflush(NULL);
	pid = fork();
	if (pid == 0) {
		tap_pid = 0;
		tap_nchan = 0;
		memset(tap_kids, 0, sizeof tap_kids);
		signal(SIGALRM, SIG_DFL);
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() != parent)
			_exit(99);
		alarm(120);
		return 0;
	}
	if (pid > 0)
		for (int i = 0; i < TAP_MAX_KIDS; i++)
			if (tap_kids[i] == 0) {
				tap_kids[i] = pid;
				break;
			}
	return pid;
}

/* Forget a child that was reaped by the test itself. */
static inline void
tap_forget(pid_t pid)
{
	for (int i = 0; i < TAP_MAX_KIDS; i++)
		if (tap_kids[i] == pid)
			tap_kids[i] = 0;
}

/* waitpid with a deadline; returns 1 and the status if the child ended,
 * 0 on timeout (child left running). */
static inline int
tap_wait(pid_t pid, int *status, double seconds)
{
	struct timespec t0, t;
	int st = 0;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (;;) {
		pid_t r = waitpid(pid, &st, WNOHANG);
		if (r == pid) {
			tap_forget(pid);
			if (status)
				*status = st;
			return 1;
		}
		if (r < 0 && errno != EINTR) {
			tap_forget(pid);
			if (status)
				*status = -1;
			return 1;
		}
		clock_gettime(CLOCK_MONOTONIC, &t);
		if ((double)(t.tv_sec - t0.tv_sec) + (double)(t.tv_nsec - t0.tv_nsec) / 1e9 > seconds)
			return 0;
		struct timespec d = {0, 1000000};
		nanosleep(&d, NULL);
	}
}

/* Seconds on CLOCK_MONOTONIC. */
static inline double
tap_now(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

#endif
