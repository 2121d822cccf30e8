/* iox.c: Eclipse iceoryx as a peer of libdh (issue 14), through its C binding.
 * See LICENSE.
 *
 * Built with the real code when the Makefile finds the binding's headers
 * (it defines DH_BENCH_IOX); otherwise the peer is reported as skipped.
 *
 * Configured as a lossless channel like the others: the publisher waits for
 * a full subscriber queue (WAIT_FOR_CONSUMER), the subscriber blocks the
 * producer (BLOCK_PRODUCER), queues as deep as libdh's ring (capped at
 * iceoryx's 256).  Zero-copy both ways: loan/publish, take/release.
 *
 * The harness runs its own iox-roudi for the whole run, with a config file of
 * its own (so /etc/iceoryx cannot change the pools), and stops it at exit,
 * on a signal, and — through PR_SET_PDEATHSIG — if the harness is killed.
 * A clean RouDi shutdown removes what it made (/dev/shm/iceoryx_mgmt, the
 * payload segment named after the user's group, /tmp/roudi*, the unique-RouDi
 * lock); our applications remove their /tmp sockets when they exit(), so an
 * iceoryx process ends with exit(), never _exit().
 *
 * One iceoryx runtime per process, and a forked copy of an initialised one
 * is not a new participant: every iceoryx measurement therefore runs in a
 * fresh session process (drive.c), whose readers fork before it initialises.
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench.h"

#ifdef DH_BENCH_IOX

#include "iceoryx_binding_c/log.h"
#include "iceoryx_binding_c/publisher.h"
#include "iceoryx_binding_c/runtime.h"
#include "iceoryx_binding_c/subscriber.h"
#include "iceoryx_binding_c/wait_set.h"

#define READY_LINE "RouDi is ready for clients"
#define READY_TIMEOUT_NS 20000000000ull
#define QUEUE_MAX 256           /* iceoryx 2.0's MAX_SUBSCRIBER_QUEUE_CAPACITY */
#define END_SEQ (~0ull)         /* end-of-stream marker in the header's seq */
#define ALIGN 64

/* Chunk pools: each message size fits one pool with room for the chunk
 * header; counts cover 4 readers' full queues plus chunks in flight. */
static const char roudi_config[] =
	"[general]\nversion = 1\n\n[[segment]]\n\n"
	"[[segment.mempool]]\nsize = 256\ncount = 8192\n\n"
	"[[segment.mempool]]\nsize = 8192\ncount = 1024\n\n"
	"[[segment.mempool]]\nsize = 131072\ncount = 128\n";

/* Every runtime name our processes register, so that the harness can
 * remove the /tmp sockets of a process that was killed: shared memory,
 * filled by the iceoryx processes, read by iox_stop. */
#define MAX_APPS 512
#define APP_NAME 48
struct apps {
	_Atomic unsigned n;
	char name[MAX_APPS][APP_NAME];
};

/* Read by iox_stop from a signal handler. */
static volatile pid_t roudi_pid;
static struct apps *apps;
static int state;               /* 0 not tried, 1 running, -1 unusable */
static char reason[160];
static char cfg_path[96], log_path[96];

struct iox {
	iox_pub_storage_t pub_st;
	iox_sub_storage_t sub_st;
	iox_ws_storage_t ws_st;
	iox_pub_t pub;
	iox_sub_t sub;
	iox_ws_t ws;
	void *loan;                 /* writer: chunk between begin and commit */
	const void *held;           /* reader: chunk handed out, released on the next call */
};

/* Files a RouDi that did not shut down cleanly would leave: removed only
 * after our own RouDi died, and only because no other RouDi could have been
 * running beside it (RouDi refuses to start next to another). */
static void
remove_roudi_files(void)
{
	struct group *g = getgrgid(getgid());
	char path[128];

	unlink("/dev/shm/iceoryx_mgmt");
	if (g && snprintf(path, sizeof path, "/dev/shm/%s", g->gr_name) < (int)sizeof path)
		unlink(path);
	unlink("/tmp/roudi");
	unlink("/tmp/roudi.lock");
	unlink("/tmp/iox-unique-roudi.lock");
}

/* dst = a b c, truncated; async-signal-safe, unlike snprintf. */
static void
cat3(char *dst, size_t len, const char *a, const char *b, const char *c)
{
	const char *parts[3] = { a, b, c };
	size_t o = 0;

	for (int i = 0; i < 3; i++)
		for (const char *p = parts[i]; *p && o + 1 < len; p++)
			dst[o++] = *p;
	dst[o] = 0;
}

/* The caller has killed and reaped our iceoryx processes first: RouDi's
 * shutdown waits (up to -k seconds) for registered processes to go. */
void
iox_stop(void)
{
	pid_t pid = roudi_pid;
	char path[APP_NAME + 16];
	unsigned n;
	int st;

	if (pid <= 0)
		return;
	roudi_pid = 0;
	kill(pid, SIGTERM);
	while (waitpid(pid, &st, 0) < 0)
		if (errno != EINTR)
			break;
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
		remove_roudi_files();
	n = apps ? apps->n : 0;
	for (unsigned i = 0; i < n && i < MAX_APPS; i++) {
		cat3(path, sizeof path, "/tmp/", apps->name[i], "");
		unlink(path);
		cat3(path, sizeof path, "/tmp/", apps->name[i], ".lock");
		unlink(path);
	}
	if (apps)
		apps->n = 0;
	unlink(cfg_path);
	unlink(log_path);
}

static int
log_has(const char *needle, char *last, size_t lastlen)
{
	char buf[8192];
	ssize_t n;
	int fd = open(log_path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return 0;
	n = read(fd, buf, sizeof buf - 1);
	close(fd);
	if (n <= 0)
		return 0;
	buf[n] = 0;
	if (last) {
		/* the first fatal error, else the last non-empty line, without
		 * terminal colour codes */
		char *e = buf + n, *s = strstr(buf, "Fatal");
		size_t o = 0;
		while (e > buf && (e[-1] == '\n' || e[-1] == ' '))
			*--e = 0;
		if (s) {
			s = strstr(s, ": ") ? strstr(s, ": ") + 2 : s;
		} else {
			s = strrchr(buf, '\n');
			s = s ? s + 1 : buf;
		}
		for (; *s && *s != '\n' && o + 1 < lastlen; s++) {
			if (*s == '\033') {
				while (*s && *s != 'm')
					s++;
				if (!*s)
					break;
				continue;
			}
			last[o++] = *s;
		}
		last[o] = 0;
	}
	return strstr(buf, needle) != NULL;
}

static int
start_roudi(void)
{
	uint64_t deadline;
	pid_t pid;
	int fd, st;

	snprintf(cfg_path, sizeof cfg_path, "/tmp/dhbench-%ld-roudi.toml", (long)getpid());
	snprintf(log_path, sizeof log_path, "/tmp/dhbench-%ld-roudi.log", (long)getpid());
	fd = open(cfg_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0 || write_full(fd, roudi_config, sizeof roudi_config - 1) < 0) {
		snprintf(reason, sizeof reason, "%s: %s", cfg_path, strerror(errno));
		if (fd >= 0)
			close(fd);
		unlink(cfg_path);
		return -1;
	}
	close(fd);
	fd = open(log_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0) {
		snprintf(reason, sizeof reason, "%s: %s", log_path, strerror(errno));
		unlink(cfg_path);
		return -1;
	}
	fflush(NULL);
	if ((pid = fork()) < 0)
		die("fork: %s", strerror(errno));
	if (pid == 0) {
		/* -k 1: at shutdown, wait 1 s, not 45, for registered processes */
		char *argv[] = { "iox-roudi", "-c", cfg_path, "-l", "warning", "-k", "1", NULL };
		static const int sigs[] = { SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGPIPE };
		for (size_t i = 0; i < sizeof sigs / sizeof *sigs; i++)
			signal(sigs[i], SIG_DFL);
		/* TERM, not KILL: a RouDi that shuts down cleans up after itself */
		prctl(PR_SET_PDEATHSIG, SIGTERM);
		setpgid(0, 0);     /* a terminal's ^C goes to the harness, which stops RouDi last */
		pin_cpu(-1);
		if (dup2(fd, 1) < 0 || dup2(fd, 2) < 0)
			_exit(126);
		execvp(argv[0], argv);
		dprintf(2, "iox-roudi: %s\n", strerror(errno));
		_exit(127);
	}
	close(fd);
	roudi_pid = pid;
	if (!apps)
		apps = shared_alloc(sizeof *apps);
	deadline = now_ns() + READY_TIMEOUT_NS;
	for (;;) {
		if (log_has(READY_LINE, NULL, 0))
			return 0;
		if (waitpid(pid, &st, WNOHANG) == pid) {
			char last[120] = "";
			roudi_pid = 0;
			log_has(READY_LINE, last, sizeof last);
			snprintf(reason, sizeof reason, "iox-roudi exited %d: %s",
				 WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st), last);
			unlink(cfg_path);
			unlink(log_path);
			return -1;
		}
		if (now_ns() > deadline) {
			snprintf(reason, sizeof reason, "iox-roudi not ready after %llu s",
				 READY_TIMEOUT_NS / 1000000000ull);
			iox_stop();
			return -1;
		}
		sleep_ns(2000000);
	}
}

int
iox_peer(char *why, size_t len)
{
	if (state == 0) {
		state = start_roudi() == 0 ? 1 : -1;
		if (state > 0)
			note("iceoryx: iox-roudi pid %ld started", (long)roudi_pid);
	}
	if (state < 0)
		snprintf(why, len, "iceoryx skipped: %s", reason);
	return state > 0;
}

long
iox_roudi_pid(void)
{
	return (long)roudi_pid;
}

void
iox_release(void)
{
	if (state > 0) {
		iox_stop();
		state = 0;
	}
}

static void
runtime(const char *role)
{
	char name[APP_NAME];
	unsigned i;

	/* dhbench-PID-: the startup sweep removes a crashed run's /tmp sockets */
	snprintf(name, sizeof name, "dhbench-%ld-iox-%s", (long)getpid(), role);
	if ((i = atomic_fetch_add(&apps->n, 1)) < MAX_APPS)
		memcpy(apps->name[i], name, sizeof name);
	iox_set_loglevel(Iceoryx_LogLevel_Warn);
	iox_runtime_init(name);
}

static void
service(const struct xport *x, char *inst, size_t len)
{
	snprintf(inst, len, "%s", x->name);
}

static uint64_t
queue_cap(const struct xport *x)
{
	return x->slots && x->slots < QUEUE_MAX ? x->slots : QUEUE_MAX;
}

void
iox_x_setup(struct xport *x)
{
	static unsigned serial;

	snprintf(x->name, sizeof x->name, "%ld-%u", (long)getpid(), serial++);
}

void
iox_reader_open(struct xport *x, int idx)
{
	struct iox *o = xcalloc(1, sizeof *o);
	iox_sub_options_t so;
	char inst[96];

	(void)idx;
	runtime("sub");
	iox_sub_options_init(&so);
	so.queueCapacity = queue_cap(x);
	so.historyRequest = 0;
	so.queueFullPolicy = QueueFullPolicy_BLOCK_PRODUCER;
	service(x, inst, sizeof inst);
	o->sub = iox_sub_init(&o->sub_st, "dhbench", inst, "msg", &so);
	if (!x->busy) {
		o->ws = iox_ws_init(&o->ws_st);
		if (iox_ws_attach_subscriber_state(o->ws, o->sub, SubscriberState_HAS_DATA, 0, NULL) !=
		    WaitSetResult_SUCCESS)
			die("iceoryx: cannot attach the subscriber to a waitset");
	}
	x->iox = o;
}

int
iox_reader_next(struct xport *x, const unsigned char **p)
{
	struct iox *o = x->iox;
	const void *chunk;
	enum iox_ChunkReceiveResult rc;

	if (o->held) {
		iox_sub_release_chunk(o->sub, o->held);
		o->held = NULL;
	}
	for (;;) {
		rc = iox_sub_take_chunk(o->sub, &chunk);
		if (rc == ChunkReceiveResult_SUCCESS)
			break;
		if (rc != ChunkReceiveResult_NO_CHUNK_AVAILABLE)
			return -EIO;
		if (!x->busy) {
			iox_notification_info_t ev[1];
			uint64_t missed;
			iox_ws_wait(o->ws, ev, 1, &missed);
		}
	}
	o->held = chunk;
	{
		uint64_t seq;
		memcpy(&seq, chunk, sizeof seq);
		if (seq == END_SEQ)
			return 0;
	}
	*p = chunk;
	return 1;
}

void
iox_reader_close(struct xport *x)
{
	struct iox *o = x->iox;

	if (o->held)
		iox_sub_release_chunk(o->sub, o->held);
	if (o->ws) {
		iox_ws_detach_subscriber_state(o->ws, o->sub, SubscriberState_HAS_DATA);
		iox_ws_deinit(o->ws);
	}
	iox_sub_deinit(o->sub);
	free(o);
	x->iox = NULL;
}

void
iox_writer_open(struct xport *x)
{
	struct iox *o = xcalloc(1, sizeof *o);
	iox_pub_options_t po;
	char inst[96];

	runtime("pub");
	iox_pub_options_init(&po);
	po.historyCapacity = 0;
	po.subscriberTooSlowPolicy = ConsumerTooSlowPolicy_WAIT_FOR_CONSUMER;
	service(x, inst, sizeof inst);
	o->pub = iox_pub_init(&o->pub_st, "dhbench", inst, "msg", &po);
	x->iox = o;
}

unsigned char *
iox_writer_begin(struct xport *x)
{
	struct iox *o = x->iox;
	enum iox_AllocationResult rc;

	rc = iox_pub_loan_aligned_chunk(o->pub, &o->loan, (uint32_t)x->size, ALIGN);
	if (rc != AllocationResult_SUCCESS)
		die("iceoryx: loan of %zu bytes failed (%d)", x->size, (int)rc);
	return o->loan;
}

void
iox_writer_commit(struct xport *x)
{
	struct iox *o = x->iox;

	iox_pub_publish_chunk(o->pub, o->loan);
	o->loan = NULL;
}

void
iox_writer_end(struct xport *x)
{
	uint64_t end = END_SEQ;

	memcpy(iox_writer_begin(x), &end, sizeof end);
	iox_writer_commit(x);
}

void
iox_writer_close(struct xport *x)
{
	struct iox *o = x->iox;

	if (!o)         /* the harness closes after a failed start too */
		return;
	iox_pub_deinit(o->pub);
	free(o);
	x->iox = NULL;
}

#else /* !DH_BENCH_IOX */

void
iox_stop(void)
{
}

int
iox_peer(char *why, size_t len)
{
	snprintf(why, len, "iceoryx skipped: dh-bench built without its C binding (libiceoryx-binding-c-dev)");
	return 0;
}

long
iox_roudi_pid(void)
{
	return 0;
}

void
iox_release(void)
{
}

/* Never reached: no iceoryx row is measured when iox_peer() says no. */
void
iox_x_setup(struct xport *x)
{
	(void)x;
	die("iceoryx: not built");
}

void
iox_reader_open(struct xport *x, int idx)
{
	(void)idx;
	iox_x_setup(x);
}

int
iox_reader_next(struct xport *x, const unsigned char **p)
{
	(void)p;
	iox_x_setup(x);
	return -ENOSYS;
}

void
iox_reader_close(struct xport *x)
{
	iox_x_setup(x);
}

void
iox_writer_open(struct xport *x)
{
	iox_x_setup(x);
}

unsigned char *
iox_writer_begin(struct xport *x)
{
	iox_x_setup(x);
	return NULL;
}

void
iox_writer_commit(struct xport *x)
{
	iox_x_setup(x);
}

void
iox_writer_end(struct xport *x)
{
	iox_x_setup(x);
}

void
iox_writer_close(struct xport *x)
{
	iox_x_setup(x);
}

#endif
