/* bench.h: shared parts of dh-bench, the side-by-side benchmark harness. See LICENSE. */
#ifndef BENCH_H
#define BENCH_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "dh_block.h"

#define REPS 5                  /* every case: median of this many runs */
#define MAX_SAMPLES_NAME 64

/* Run-wide settings (main.c). */
struct bopt {
	int quick;
	int verbose;
	const char *bin;            /* directory of dh-write and dh-read */
	const char *json;           /* JSON output file, or NULL */
	const char *only;           /* run only cases whose key starts with this */
	int cpu_a, cpu_b;           /* the two cores the sides are pinned to; -1: no pinning */
	int ncpu;
};
extern struct bopt B;

/* --- util.c ----------------------------------------------------------------- */

uint64_t now_ns(void);                         /* CLOCK_MONOTONIC */
void spin_until(uint64_t t);                   /* busy-wait until CLOCK_MONOTONIC >= t */
void sleep_ns(uint64_t ns);
void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
void note(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void *xcalloc(size_t n, size_t sz);
void *shared_alloc(size_t size);               /* MAP_SHARED|MAP_ANONYMOUS, survives fork */
void shared_free(void *p, size_t size);
void affinity_init(void);                      /* remember the starting CPU set */
int affinity_count(void);                      /* CPUs in it */
int affinity_nth(int n);                       /* its n-th CPU, or -1 */
int pin_cpu(int cpu);                          /* 0, or -errno; cpu < 0: the starting set */
void setup_cleanup(void);                      /* signal handlers, stale-channel sweep */
void channel_name(char *buf, size_t len, const char *tag);  /* dhbench-PID-TAG, registered */
void register_path(const char *path);          /* a file to unlink at exit or on a signal */
void forget_path(const char *path);            /* unlink now and stop tracking */
int make_channel(const char *name, uint32_t slots, uint32_t slot_size, enum dh_policy pol,
		 enum dh_checksum ck, uint32_t max_readers);
void drop_channel(const char *name);

/* Children: forked workers die with the harness (PDEATHSIG) and are killed
 * on a signal.  fn runs pinned to cpu (-1: unpinned), then the child exits. */
pid_t spawn_fn(int cpu, void (*fn)(void *), void *arg);
pid_t spawn_exec(int cpu, char *const argv[], int in_fd, int out_fd);
int wait_child(pid_t pid);                     /* exit status, or 128+signal */
void kill_children(void);

/* Control pipes between the harness and a child: fixed-size records. */
struct ctl {
	int rd, wr;
};
void ctl_open(struct ctl *c);
void ctl_close(struct ctl *c);
void ctl_send(struct ctl *c, const void *rec, size_t len);
int ctl_recv(struct ctl *c, void *rec, size_t len, int timeout_ms);   /* 0, -ETIMEDOUT, -EPIPE */

int write_full(int fd, const void *buf, size_t len);
ssize_t read_full(int fd, void *buf, size_t len);  /* short only at EOF */

/* statistics */
double median(double *v, int n);               /* sorts v */
double percentile_u64(uint64_t *v, size_t n, double p);  /* v must be sorted */
void sort_u64(uint64_t *v, size_t n);

/* --- results (main.c) --------------------------------------------------------- */

/* One measured row of the table; JSON gets every field that is set. */
struct row {
	char section[24];           /* "throughput", "latency", ... */
	char key[48];               /* stable identifier: "tput.64.dh-none" */
	char label[48];             /* what the table shows */
	size_t size;                /* message size, bytes (0: n/a) */
	int ok;                     /* measured, no errors */
	char why[256];              /* when !ok: the reason */
	/* throughput and fan-out */
	double msgs_s, bytes_s;
	/* latency, ns */
	double p50, p95, p99, p999, pmax;
	/* pipeline */
	double secs, cpu_s_per_gib;
	/* idle */
	double cpu_pct, cpu_pct_stat, wakeups_s;
	uint64_t samples, lost, errors;
	double reps_v[REPS];        /* the primary metric of each repetition */
	int nreps;
};

struct row *row_new(const char *section, const char *key, const char *label, size_t size);
struct row *row_find(const char *key);
int want(const char *key);                     /* --only filter */
int iox_ok(void);                              /* iceoryx measurable; else its note is kept */

/* --- xport.c: one transport, seen from the harness, a writer and readers ----- */

#define MAX_READERS 16

enum xkind { X_DH, X_PIPE, X_UNIX, X_ZMQ, X_IOX };

struct xport {
	/* set by the caller before x_setup */
	enum xkind kind;
	size_t size;                /* message size */
	int nreaders;               /* fan-out: pipes/sockets per reader; zmq PUB/SUB when > 1 */
	enum dh_checksum ck;        /* dh */
	uint32_t slots;             /* dh ring geometry: slots of `size` bytes */
	int copy;                   /* dh: writer copies from a buffer, reader copies out */
	int busy;                   /* dh reader: poll with timeout 0 instead of waiting */
	unsigned batch;             /* dh writer: publish in batches of this many (0, 1: each) */
	/* filled by x_setup */
	char name[96];              /* dh channel */
	char ep[MAX_READERS][128];  /* zmq endpoints, one per reader (bound by the reader) */
	int fds[MAX_READERS][2];    /* pipe/socket per reader: [0] read end, [1] write end */
	/* per process */
	int me;
	struct dh_writer *w;
	struct dh_reader *r;
	void *zctx, *zs[MAX_READERS];
	void *zmsg;                 /* zmq_msg_t, reader */
	void *iox;                  /* iox.c's publisher or subscriber */
	unsigned char *buf, *slot;
	size_t cap, fill, off;
};

const char *x_label(const struct xport *x);
void x_setup(struct xport *x);                 /* harness, before the children */
void x_teardown(struct xport *x);              /* harness, after */
void x_close_unused(struct xport *x, int reader); /* after fork: drop the other ends */
void x_reader_open(struct xport *x, int idx);  /* in reader idx */
int x_reader_next(struct xport *x, const unsigned char **p); /* 1 message, 0 end, < 0 error */
void x_reader_close(struct xport *x);
void x_writer_open(struct xport *x);
unsigned char *x_writer_begin(struct xport *x); /* where to put the next `size` bytes */
void x_writer_commit(struct xport *x);
void x_writer_flush(struct xport *x);          /* publish a batch in progress (dh) */
void x_writer_end(struct xport *x);            /* end of stream, flushed */
void x_writer_close(struct xport *x);

/* --- iox.c: the Eclipse iceoryx peer, behind the xport calls above ------------ */

/* 1 when iceoryx can be measured (its iox-roudi, started on the first call,
 * is running); 0 with why set to a one-line note otherwise. Harness only. */
int iox_peer(char *why, size_t len);
void iox_stop(void);                           /* stop our iox-roudi; signal-safe */
void iox_release(void);                        /* stop it between cases; the next iox_peer restarts it */
long iox_roudi_pid(void);                      /* 0 when none */
void iox_x_setup(struct xport *x);
void iox_reader_open(struct xport *x, int idx);
int iox_reader_next(struct xport *x, const unsigned char **p);
void iox_reader_close(struct xport *x);
void iox_writer_open(struct xport *x);
unsigned char *iox_writer_begin(struct xport *x);
void iox_writer_commit(struct xport *x);
void iox_writer_end(struct xport *x);
void iox_writer_close(struct xport *x);

/* Message header: the first 16 bytes of every payload. */
#define WARM_BIT (1ull << 63)
struct mhdr {
	uint64_t seq;               /* WARM_BIT | n for warm-up messages */
	uint64_t t_send;            /* CLOCK_MONOTONIC ns (latency cases) */
};

/* --- drive.c: the two measurement protocols over an xport --------------------- */

/* What a reader reports at the end. */
struct rres {
	int32_t type;               /* 'R' attached, 'W' warmed up, 'E' ended */
	int32_t idx;
	int32_t err;                /* negative code, 0 */
	int32_t pad;
	uint64_t count, bad, t_end;
};

struct stream_res {
	double msgs_s;              /* aggregate over readers */
	uint64_t sent, errors;
	char why[96];
};

/* Writer sends back-to-back for dur_ns after a warm-up; the readers count
 * and check sequence numbers. reader_cpu < 0: readers unpinned. */
int stream_once(struct xport *x, uint64_t dur_ns, int reader_cpu, struct stream_res *res);

/* Writer sends n messages paced gap_ns apart (absolute schedule), each with
 * its send time; readers record one-way latency into lat[idx * n + seq].
 * spin: the writer waits for the next send time yielding, not sleeping. */
struct paced_res {
	uint64_t sent, errors, got;
	char why[96];
};
int paced_once(struct xport *x, uint64_t n, uint64_t gap_ns, int spin, int reader_cpu, uint64_t *lat,
	       struct paced_res *res);

/* cases */
void run_throughput(void);
void run_latency(void);
void run_pipeline(void);
void run_lines(void);
void run_fanout(void);
void run_stress(void);
void run_idle(void);

#endif
