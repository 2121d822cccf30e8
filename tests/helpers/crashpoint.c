/* crashpoint: writers and readers that stop themselves at exact points of the protocol, for the crash suites. See LICENSE. */
/*
 * crashpoint [-k KEYFILE] write NAME COUNT [PREFIX]
 *	write COUNT messages "PREFIX-<i>" (i from the current seq), mark end-of-stream
 * crashpoint [-k KEYFILE] crash NAME COUNT reserve|midpayload|prepublish [PREFIX]
 *	write COUNT messages, then stop (SIGSTOP) at the crash point of the next:
 *	reserve     the slot is reserved (stamp odd), nothing written
 *	midpayload  half of the payload "TORN..." is in the slot
 *	prepublish  payload, length, checksum and the even stamp are stored, the
 *	            committed count is not (what dh_writer_commit does up to there)
 *	midbatch    with a batch of 4, two more messages are committed but not
 *	            published, and a third is reserved with "TORN" half written
 * crashpoint [-k KEYFILE] read NAME
 *	read what is there without waiting: payloads one per line on stdout,
 *	"checksum mismatch at seq N" on stderr; exit 1 if any failed
 * crashpoint hold NAME COUNT
 *	attach a reader at the oldest message, read COUNT messages, print
 *	"holding SEQ" and stop; once continued, try the next message and print
 *	"next: ok SEQ" or "next: <error>"
 * crashpoint idle NAME COUNT
 *	like hold, but stays alive and running (pause) instead of stopping:
 *	a live reader that just does not read
 * crashpoint claim NAME
 *	queue: claim one message, print "claimed SEQ" and stop holding it
 *
 * Messages and errors go to stdout/stderr unbuffered-by-line so the test
 * sees them before the process stops. Exit 2 on usage or open errors.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dh.h"
#include "dh_impl.h"

static uint8_t key[DH_KEY_BYTES];
static const uint8_t *keyp;

static _Noreturn void
usage(void)
{
	fprintf(stderr, "usage: crashpoint [-k KEYFILE] write|crash|read|hold|claim NAME ...\n");
	exit(2);
}

static _Noreturn void
fail(const char *what, int rc)
{
	fprintf(stderr, "crashpoint: %s: %s\n", what, dh_strerror(rc));
	exit(2);
}

static void
stop_here(void)
{
	fflush(stdout);
	raise(SIGSTOP);
}

static struct dh_writer *
writer(const char *name)
{
	struct dh_writer_opts wo = { .label = "crashpoint", .key = keyp };
	struct dh_writer *w;
	int rc;

	if ((rc = dh_writer_open_opts(name, &wo, &w, NULL)) < 0)
		fail("open writer", rc);
	return w;
}

static void
put(struct dh_writer *w, const char *prefix)
{
	char msg[128];
	int n = snprintf(msg, sizeof msg, "%s-%llu", prefix, (unsigned long long)dh_writer_seq(w));
	int rc = dh_writer_write(w, msg, (size_t)n, 5000000000ll);

	if (rc < 0)
		fail("write", rc);
}

static int
do_write(const char *name, unsigned long count, const char *prefix)
{
	struct dh_writer *w = writer(name);

	for (unsigned long i = 0; i < count; i++)
		put(w, prefix);
	dh_writer_eos(w);
	dh_writer_close(w);
	return 0;
}

static int
do_crash(const char *name, unsigned long count, const char *point, const char *prefix)
{
	struct dh_writer *w = writer(name);
	struct dh_block *b = dh_writer_block(w);
	char msg[128];
	void *buf;
	size_t cap;
	uint64_t s;
	int n, rc;

	if (strcmp(point, "reserve") && strcmp(point, "midpayload") && strcmp(point, "prepublish") &&
	    strcmp(point, "midbatch"))
		usage();
	for (unsigned long i = 0; i < count; i++)
		put(w, prefix);
	if (strcmp(point, "midbatch") == 0) {
		dh_writer_set_batch(w, 4);
		put(w, prefix);
		put(w, prefix);
		point = "midpayload";
	}
	s = dh_writer_seq(w);
	if ((rc = dh_writer_reserve(w, &buf, &cap, 5000000000ll)) < 0)
		fail("reserve", rc);
	if (strcmp(point, "reserve") == 0) {
		stop_here();
		_exit(0);
	}
	if (strcmp(point, "midpayload") == 0) {
		memset(buf, 'T', cap < 16 ? cap : 16);
		memcpy(buf, "TORN", cap < 4 ? cap : 4);
		stop_here();
		_exit(0);
	}
	/* prepublish: dh_writer_commit's stores, in its order, up to the
	 * committed count */
	n = snprintf(msg, sizeof msg, "%s-%llu", prefix, (unsigned long long)s);
	memcpy(buf, msg, (size_t)n);
	struct dh_desc *d = dh__desc(b, s);
	d->length = (uint32_t)n;
	d->flags = 0;
	d->time_ns = dh__now_real();
	if (b->cfg.checksum != DH_CHECKSUM_NONE)
		dh__check_compute(b, s, buf, (uint32_t)n, d->check);
	atomic_store_explicit(&d->stamp, 2 * s + 2, memory_order_release);
	if (b->cfg.policy == DH_POLICY_QUEUE)
		atomic_store_explicit(&d->qword, (s << DH_Q_SHIFT) | DH_Q_AVAIL, memory_order_release);
	stop_here();
	_exit(0);
}

static struct dh_reader *
reader(const char *name)
{
	struct dh_reader_opts ro = { .label = "crashpoint", .start = DH_START_OLDEST, .key = keyp };
	struct dh_reader *r;
	int rc;

	if ((rc = dh_reader_open(name, &ro, &r)) < 0)
		fail("open reader", rc);
	return r;
}

static int
do_read(const char *name)
{
	struct dh_reader *r = reader(name);
	struct dh_msg m;
	int rc, ret = 0;

	for (;;) {
		rc = dh_reader_next(r, &m, 0);
		if (rc == 0) {
			fwrite(m.data, 1, m.len, stdout);
			putchar('\n');
		} else if (rc == -DH_ECHECKSUM) {
			fprintf(stderr, "checksum mismatch at seq %llu\n", (unsigned long long)m.seq);
			ret = 1;
		} else {
			if (rc != DH_END && rc != -EAGAIN) {
				fprintf(stderr, "crashpoint: read: %s\n", dh_strerror(rc));
				ret = 1;
			}
			break;
		}
	}
	dh_reader_close(r);
	return ret;
}

static int
do_hold(const char *name, unsigned long count, int stop)
{
	struct dh_reader *r = reader(name);
	struct dh_msg m;
	uint64_t held = DH_SEQ_NONE;
	int rc;

	for (unsigned long i = 0; i < count; i++) {
		if ((rc = dh_reader_next(r, &m, 5000000000ll)) < 0)
			fail("next", rc);
		held = m.seq;
	}
	if (held == DH_SEQ_NONE)
		printf("holding none\n");
	else
		printf("holding %llu\n", (unsigned long long)held);
	if (!stop) {
		fflush(stdout);
		for (;;)
			pause();
	}
	stop_here();
	rc = dh_reader_next(r, &m, 0);
	if (rc == 0)
		printf("next: ok %llu\n", (unsigned long long)m.seq);
	else
		printf("next: %s\n", rc == DH_END ? "end" : dh_strerror(rc));
	dh_reader_close(r);
	return 0;
}

static int
do_claim(const char *name)
{
	struct dh_reader *r = reader(name);
	struct dh_msg m;
	int rc;

	if ((rc = dh_reader_next(r, &m, 5000000000ll)) < 0)
		fail("next", rc);
	printf("claimed %llu\n", (unsigned long long)m.seq);
	stop_here();
	dh_reader_close(r);
	return 0;
}

static unsigned long
number(const char *s)
{
	char *end;
	unsigned long v;

	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno || *end || end == s)
		usage();
	return v;
}

int
main(int argc, char **argv)
{
	int rc;

	setvbuf(stdout, NULL, _IOLBF, 0);
	if (argc > 2 && strcmp(argv[1], "-k") == 0) {
		if ((rc = dh_key_load(argv[2], key)) < 0)
			fail(argv[2], rc);
		keyp = key;
		argc -= 2;
		argv += 2;
	}
	if (argc < 3)
		usage();
	if (strcmp(argv[1], "write") == 0 && (argc == 4 || argc == 5))
		return do_write(argv[2], number(argv[3]), argc == 5 ? argv[4] : "msg");
	if (strcmp(argv[1], "crash") == 0 && (argc == 5 || argc == 6))
		return do_crash(argv[2], number(argv[3]), argv[4], argc == 6 ? argv[5] : "msg");
	if (strcmp(argv[1], "read") == 0 && argc == 3)
		return do_read(argv[2]);
	if (strcmp(argv[1], "hold") == 0 && argc == 4)
		return do_hold(argv[2], number(argv[3]), 1);
	if (strcmp(argv[1], "idle") == 0 && argc == 4)
		return do_hold(argv[2], number(argv[3]), 0);
	if (strcmp(argv[1], "claim") == 0 && argc == 3)
		return do_claim(argv[2]);
	usage();
}
