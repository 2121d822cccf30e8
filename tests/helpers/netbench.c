/* netbench.c: dh export over loopback TCP against plain ZeroMQ PUSH/PULL of the same messages (docs/PERFORMANCE.md). See LICENSE.
 *
 *   netbench zmq|zmqbuf|dh SIZE COUNT [PACE_US]
 *
 * zmq: a PUSH process sends COUNT messages of SIZE bytes to a PULL bound on
 * tcp://127.0.0.1 (zmqbuf: with the kernel socket buffers dh asks for,
 * DH_NET_SOCKBUF, on both sockets: the same tuning, for comparison).  dh: a writer process writes them into a sync channel,
 * an exporter process (dh_net_server) serves it on tcp://127.0.0.1, and
 * this process subscribes (dh_net_client: every message verified) -- the
 * path of `dh-read --serve` to `dh-read --connect`.  Both consumers touch
 * every byte.  Without PACE_US: back to back, prints messages/s and MB/s
 * between the first and the last message.  With PACE_US: one message every
 * PACE_US microseconds, prints the p50 and p99 one-way latency (the
 * payload carries its CLOCK_MONOTONIC send time).
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <zmq.h>

#include "dh.h"

static uint64_t
mono(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

static void
pace_until(uint64_t t)
{
	while (mono() < t)
		;
}

static int
cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

static _Noreturn void
die(const char *what, int e)
{
	fprintf(stderr, "netbench: %s: %s\n", what, e > 0 ? strerror(e) : dh_strerror(e));
	exit(1);
}

static void
fill(unsigned char *p, size_t size, uint64_t seq)
{
	uint64_t t = mono();

	memset(p, (int)(seq & 0xff), size);
	if (size >= 16) {
		memcpy(p, &seq, 8);
		memcpy(p + 8, &t, 8);
	}
}

static uint64_t sink;

static void
touch(const unsigned char *p, size_t size)
{
	uint64_t acc = 0;

	for (size_t i = 0; i < size; i++)
		acc += p[i];
	sink += acc;
}

/* Consumer-side results. */
struct res {
	uint64_t first, last, n;
	uint64_t *lat;
};

static void
got(struct res *r, const unsigned char *p, size_t size, uint64_t pace)
{
	uint64_t now = mono(), t;

	touch(p, size);
	if (r->n == 0)
		r->first = now;
	r->last = now;
	if (pace && size >= 16) {
		memcpy(&t, p + 8, 8);
		r->lat[r->n] = now - t;
	}
	r->n++;
}

static void
report(const char *what, struct res *r, size_t size, uint64_t pace)
{
	if (pace) {
		qsort(r->lat, r->n, sizeof *r->lat, cmp_u64);
		printf("%s size %zu: latency p50 %.1f us p99 %.1f us (%llu messages, one per %llu us)\n", what, size,
		       r->lat[r->n / 2] / 1e3, r->lat[r->n * 99 / 100] / 1e3, (unsigned long long)r->n,
		       (unsigned long long)pace);
	} else {
		double s = (double)(r->last - r->first) / 1e9;
		printf("%s size %zu: %.0f msg/s %.1f MB/s (%llu messages in %.3f s)\n", what, size,
		       (double)(r->n - 1) / s, (double)(r->n - 1) * (double)size / s / 1e6,
		       (unsigned long long)r->n, s);
	}
}

static pid_t
child(void)
{
	pid_t p = fork();

	if (p == 0)
		prctl(PR_SET_PDEATHSIG, SIGKILL);
	return p;
}

static void
run_zmq(size_t size, uint64_t count, uint64_t pace, int sockbuf, struct res *r)
{
	void *ctx = zmq_ctx_new(), *pull = zmq_socket(ctx, ZMQ_PULL);
	char ep[128];
	size_t len = sizeof ep;
	zmq_msg_t m;
	pid_t p;

	if (sockbuf)
		zmq_setsockopt(pull, ZMQ_RCVBUF, &sockbuf, sizeof sockbuf);

	if (zmq_bind(pull, "tcp://127.0.0.1:0") < 0)
		die("bind", errno);
	zmq_getsockopt(pull, ZMQ_LAST_ENDPOINT, ep, &len);
	if ((p = child()) == 0) {
		void *c2 = zmq_ctx_new(), *push = zmq_socket(c2, ZMQ_PUSH);
		unsigned char *buf = malloc(size);
		uint64_t t0 = mono();

		if (sockbuf)
			zmq_setsockopt(push, ZMQ_SNDBUF, &sockbuf, sizeof sockbuf);
		zmq_connect(push, ep);
		for (uint64_t i = 0; i < count; i++) {
			if (pace)
				pace_until(t0 + i * pace * 1000);
			fill(buf, size, i);
			while (zmq_send(push, buf, size, 0) < 0 && errno == EINTR)
				;
		}
		zmq_close(push);
		zmq_ctx_term(c2);
		_exit(0);
	}
	zmq_msg_init(&m);
	while (r->n < count) {
		if (zmq_msg_recv(&m, pull, 0) < 0)
			die("recv", errno);
		got(r, zmq_msg_data(&m), zmq_msg_size(&m), pace);
	}
	zmq_msg_close(&m);
	waitpid(p, NULL, 0);
	zmq_close(pull);
	zmq_ctx_term(ctx);
}

static volatile sig_atomic_t stop;

static void
on_term(int sig)
{
	(void)sig;
	stop = 1;
}

static void
run_dh(size_t size, uint64_t count, uint64_t pace, struct res *r)
{
	char name[64], ep[256];
	struct dh_config cfg;
	struct dh_net_server_opts so = { 0 };
	struct dh_net_server *s;
	struct dh_net_client_opts co = { 0 };
	struct dh_net_client *c;
	struct dh_msg m;
	int pfd[2], rc;
	pid_t exp, wr;
	ssize_t n;

	snprintf(name, sizeof name, "dhbench-net-%d", (int)getpid());
	dh_config_init(&cfg);
	cfg.slots = size <= 4096 ? 4096 : 256;  /* about as deep as zmq's two default high-water marks */
	cfg.slot_size = (uint32_t)size;
	cfg.policy = DH_POLICY_SYNC;
	if ((rc = dh_block_create(name, &cfg)) < 0)
		die(name, rc);
	if (pipe(pfd) < 0)
		die("pipe", errno);
	if ((exp = child()) == 0) {
		char err[256];

		signal(SIGTERM, on_term);
		so.endpoint = "tcp://127.0.0.1:0";
		so.channel = name;
		if ((rc = dh_net_server_open(&so, &s, err, sizeof err)) < 0)
			die(err, rc);
		snprintf(ep, sizeof ep, "%s", dh_net_server_endpoint(s));
		if (write(pfd[1], ep, strlen(ep) + 1) < 0)
			_exit(1);
		dh_net_server_run(s, &stop, err, sizeof err);
		dh_net_server_close(s);
		_exit(0);
	}
	if ((n = read(pfd[0], ep, sizeof ep)) <= 0)
		die("exporter", EIO);
	if ((wr = child()) == 0) {
		struct dh_writer *w;
		void *buf;
		size_t cap;
		uint64_t t0;

		if ((rc = dh_writer_open(name, NULL, &w, NULL)) < 0)
			die("writer", rc);
		dh_writer_wait_readers(w, 1, -1);
		t0 = mono();
		for (uint64_t i = 0; i < count; i++) {
			if (pace)
				pace_until(t0 + i * pace * 1000);
			if ((rc = dh_writer_reserve(w, &buf, &cap, -1)) < 0)
				die("reserve", rc);
			fill(buf, size, i);
			dh_writer_commit(w, size);
		}
		dh_writer_eos(w);
		dh_writer_close(w);
		_exit(0);
	}
	co.endpoint = ep;
	co.channel = name;
	co.start = DH_START_SEQ;
	co.start_seq = 0;
	co.window = getenv("NETBENCH_WINDOW") ? (uint32_t)atoi(getenv("NETBENCH_WINDOW")) : 0;
	if ((rc = dh_net_client_open(&co, &c)) < 0)
		die("client", rc);
	while ((rc = dh_net_client_next(c, &m, 30000000000LL)) == 0)
		got(r, m.data, m.len, pace);
	if (rc != DH_END)
		die(dh_net_client_error(c), rc);
	dh_net_client_close(c);
	waitpid(wr, NULL, 0);
	kill(exp, SIGTERM);
	waitpid(exp, NULL, 0);
	dh_block_unlink(name, 1, NULL);
}

int
main(int argc, char **argv)
{
	struct res r = { 0 };
	size_t size;
	uint64_t count, pace;

	if (argc < 4 || argc > 5) {
		fprintf(stderr, "usage: netbench zmq|zmqbuf|dh SIZE COUNT [PACE_US]\n");
		return 2;
	}
	size = strtoul(argv[2], NULL, 10);
	count = strtoull(argv[3], NULL, 10);
	pace = argc == 5 ? strtoull(argv[4], NULL, 10) : 0;
	if (size < 16 || count < 2)
		return 2;
	r.lat = calloc(count, sizeof *r.lat);
	if (strcmp(argv[1], "zmq") == 0 || strcmp(argv[1], "zmqbuf") == 0)
		run_zmq(size, count, pace, strcmp(argv[1], "zmqbuf") == 0 ? DH_NET_SOCKBUF : 0, &r);
	else
		run_dh(size, count, pace, &r);
	report(argv[1], &r, size, pace);
	return sink == 42 ? 3 : 0;
}
