/* util.c: timing, pinning, children, cleanup and statistics for dh-bench. See LICENSE. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"
#include "dh_error.h"

#define MAX_PATHS 64
#define MAX_KIDS 64
#define PATH_LEN 256

/* Read by the signal handler: plain arrays, counts as sig_atomic_t. */
static char paths[MAX_PATHS][PATH_LEN];
static volatile sig_atomic_t npaths;
static pid_t kids[MAX_KIDS];
static volatile sig_atomic_t nkids;
static pid_t harness_pid;

uint64_t
now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

void
spin_until(uint64_t t)
{
	while (now_ns() < t)
		;
}

void
sleep_ns(uint64_t ns)
{
	struct timespec ts = { (time_t)(ns / 1000000000u), (long)(ns % 1000000000u) };

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

void
die(const char *fmt, ...)
{
	va_list ap;

	fputs("dh-bench: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	if (getpid() != harness_pid)
		_exit(1);
	exit(1);
}

void
note(const char *fmt, ...)
{
	va_list ap;

	if (!B.verbose)
		return;
	fputs("dh-bench: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

void *
xcalloc(size_t n, size_t sz)
{
	void *p = calloc(n, sz);

	if (!p)
		die("out of memory");
	return p;
}

void *
shared_alloc(size_t size)
{
	void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED)
		die("mmap %zu bytes: %s", size, strerror(errno));
	return p;
}

void
shared_free(void *p, size_t size)
{
	munmap(p, size);
}

/* The affinity the harness started with: "unpinned" restores it. */
static cpu_set_t start_set;
static int start_set_ok;

void
affinity_init(void)
{
	start_set_ok = sched_getaffinity(0, sizeof start_set, &start_set) == 0;
}

int
affinity_count(void)
{
	return start_set_ok ? CPU_COUNT(&start_set) : 0;
}

int
affinity_nth(int n)
{
	for (int c = 0; start_set_ok && c < CPU_SETSIZE; c++)
		if (CPU_ISSET(c, &start_set) && n-- == 0)
			return c;
	return -1;
}

int
pin_cpu(int cpu)
{
	cpu_set_t set;

	if (cpu < 0) {
		if (!start_set_ok)
			return 0;
		return sched_setaffinity(0, sizeof start_set, &start_set) < 0 ? -errno : 0;
	}
	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	return sched_setaffinity(0, sizeof set, &set) < 0 ? -errno : 0;
}

/* --- cleanup ---------------------------------------------------------------- */

static void
cleanup_now(void)
{
	for (int i = 0; i < nkids; i++)
		if (kids[i] > 0)
			kill(kids[i], SIGKILL);
	/* reaped before iox-roudi stops: it waits for processes that exist */
	for (int i = 0; i < nkids; i++)
		if (kids[i] > 0 && waitpid(kids[i], NULL, 0) >= 0)
			kids[i] = 0;
	for (int i = 0; i < npaths; i++)
		if (paths[i][0])
			unlink(paths[i]);
	iox_stop();
}

static void
at_exit(void)
{
	if (getpid() != harness_pid)
		return;
	cleanup_now();
}

static void
on_signal(int sig)
{
	if (getpid() == harness_pid)
		cleanup_now();
	signal(sig, SIG_DFL);
	raise(sig);
}

/* Remove what an earlier harness that died hard (SIGKILL) left behind. */
static void
sweep(const char *dir, const char *prefix)
{
	size_t pl = strlen(prefix);
	struct dirent *de;
	DIR *d = opendir(dir);

	if (!d)
		return;
	while ((de = readdir(d))) {
		char *end, path[PATH_LEN];
		long pid;

		if (strncmp(de->d_name, prefix, pl) != 0)
			continue;
		pid = strtol(de->d_name + pl, &end, 10);
		if (end == de->d_name + pl || *end != '-' || pid <= 0)
			continue;
		if (kill((pid_t)pid, 0) == 0 || errno != ESRCH)
			continue;
		if ((size_t)snprintf(path, sizeof path, "%s/%s", dir, de->d_name) < sizeof path)
			unlink(path);
	}
	closedir(d);
}

void
setup_cleanup(void)
{
	static const int sigs[] = { SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGPIPE };
	struct sigaction sa;

	harness_pid = getpid();
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	for (size_t i = 0; i < sizeof sigs / sizeof *sigs; i++)
		sigaction(sigs[i], &sa, NULL);
	atexit(at_exit);
	sweep("/dev/shm", "dh.dhbench-");
	sweep("/dev/shm", "dhbench-");
	sweep("/tmp", "dhbench-");
}

void
register_path(const char *path)
{
	for (int i = 0; i < npaths; i++)
		if (!paths[i][0]) {
			snprintf(paths[i], PATH_LEN, "%s", path);
			return;
		}
	if (npaths >= MAX_PATHS)
		die("too many temporary files");
	snprintf(paths[npaths], PATH_LEN, "%s", path);
	npaths = npaths + 1;
}

void
forget_path(const char *path)
{
	unlink(path);
	for (int i = 0; i < npaths; i++)
		if (strcmp(paths[i], path) == 0)
			paths[i][0] = 0;
}

void
channel_name(char *buf, size_t len, const char *tag)
{
	char path[PATH_LEN];

	snprintf(buf, len, "dhbench-%ld-%s", (long)getpid(), tag);
	snprintf(path, sizeof path, "/dev/shm/dh.%s", buf);
	register_path(path);
}

int
make_channel(const char *name, uint32_t slots, uint32_t slot_size, enum dh_policy pol,
	     enum dh_checksum ck, uint32_t max_readers)
{
	struct dh_config cfg;

	dh_config_init(&cfg);
	cfg.slots = slots;
	cfg.slot_size = slot_size;
	cfg.policy = pol;
	cfg.checksum = ck;
	cfg.max_readers = max_readers;
	return dh_block_create(name, &cfg);
}

void
drop_channel(const char *name)
{
	char path[PATH_LEN];

	dh_block_unlink(name, 1, NULL);
	snprintf(path, sizeof path, "/dev/shm/dh.%s", name);
	forget_path(path);
}

/* --- children ----------------------------------------------------------------- */

static void
child_setup(int cpu, pid_t parent)
{
	static const int sigs[] = { SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGPIPE };

	for (size_t i = 0; i < sizeof sigs / sizeof *sigs; i++)
		signal(sigs[i], SIG_DFL);
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (getppid() != parent)
		_exit(1);
	/* a child's children are its own (an iceoryx session forks its readers) */
	nkids = 0;
	pin_cpu(cpu);
}

static void
add_kid(pid_t pid)
{
	for (int i = 0; i < nkids; i++)
		if (kids[i] == 0) {
			kids[i] = pid;
			return;
		}
	if (nkids >= MAX_KIDS) {
		kill(pid, SIGKILL);
		die("too many children");
	}
	kids[nkids] = pid;
	nkids = nkids + 1;
}

pid_t
spawn_fn(int cpu, void (*fn)(void *), void *arg)
{
	pid_t pid, parent = getpid();

	fflush(NULL);
	if ((pid = fork()) < 0)
		die("fork: %s", strerror(errno));
	if (pid == 0) {
		child_setup(cpu, parent);
		fn(arg);
		_exit(0);
	}
	add_kid(pid);
	return pid;
}

pid_t
spawn_exec(int cpu, char *const argv[], int in_fd, int out_fd)
{
	pid_t pid, parent = getpid();

	fflush(NULL);
	if ((pid = fork()) < 0)
		die("fork: %s", strerror(errno));
	if (pid == 0) {
		child_setup(cpu, parent);
		if ((in_fd >= 0 && dup2(in_fd, 0) < 0) || (out_fd >= 0 && dup2(out_fd, 1) < 0))
			_exit(126);
		execv(argv[0], argv);
		_exit(127);
	}
	add_kid(pid);
	return pid;
}

int
wait_child(pid_t pid)
{
	int st;

	while (waitpid(pid, &st, 0) < 0)
		if (errno != EINTR)
			return -1;
	for (int i = 0; i < nkids; i++)
		if (kids[i] == pid)
			kids[i] = 0;
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

void
kill_children(void)
{
	for (int i = 0; i < nkids; i++)
		if (kids[i] > 0) {
			kill(kids[i], SIGKILL);
			wait_child(kids[i]);
		}
}

/* --- control pipes ------------------------------------------------------------- */

void
ctl_open(struct ctl *c)
{
	int fd[2];

	if (pipe2(fd, O_CLOEXEC) < 0)
		die("pipe: %s", strerror(errno));
	c->rd = fd[0];
	c->wr = fd[1];
}

void
ctl_close(struct ctl *c)
{
	if (c->rd >= 0)
		close(c->rd);
	if (c->wr >= 0)
		close(c->wr);
	c->rd = c->wr = -1;
}

void
ctl_send(struct ctl *c, const void *rec, size_t len)
{
	if (write_full(c->wr, rec, len) < 0)
		die("control pipe: %s", strerror(errno));
}

int
ctl_recv(struct ctl *c, void *rec, size_t len, int timeout_ms)
{
	struct pollfd p = { .fd = c->rd, .events = POLLIN };
	int n;

	while ((n = poll(&p, 1, timeout_ms)) < 0 && errno == EINTR)
		;
	if (n == 0)
		return -ETIMEDOUT;
	return read_full(c->rd, rec, len) == (ssize_t)len ? 0 : -EPIPE;
}

int
write_full(int fd, const void *buf, size_t len)
{
	const char *p = buf;

	while (len) {
		ssize_t n = write(fd, p, len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

ssize_t
read_full(int fd, void *buf, size_t len)
{
	char *p = buf;
	size_t got = 0;

	while (got < len) {
		ssize_t n = read(fd, p + got, len - got);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (n == 0)
			break;
		got += (size_t)n;
	}
	return (ssize_t)got;
}

/* --- statistics ---------------------------------------------------------------- */

static int
cmp_d(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static int
cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

double
median(double *v, int n)
{
	if (n <= 0)
		return 0;
	qsort(v, (size_t)n, sizeof *v, cmp_d);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

void
sort_u64(uint64_t *v, size_t n)
{
	qsort(v, n, sizeof *v, cmp_u64);
}

/* Nearest-rank percentile of sorted v. */
double
percentile_u64(uint64_t *v, size_t n, double p)
{
	size_t k;

	if (n == 0)
		return 0;
	k = (size_t)(p / 100.0 * (double)n + 0.999999);
	if (k < 1)
		k = 1;
	if (k > n)
		k = n;
	return (double)v[k - 1];
}
