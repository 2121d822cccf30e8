/* stress.c: 1 writer and 3 reader threads per policy under ThreadSanitizer. See LICENSE. */
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dh.h"

#define READERS 3

struct job {
	const char *name;
	enum dh_policy policy;
	uint64_t count;
	pthread_barrier_t *ready;
	uint64_t got, lost, bad;
	uint64_t *seen;                  /* queue: per-seq delivery count, atomically bumped */
};

static int
uniform(const unsigned char *p, size_t len, uint64_t seq)
{
	uint64_t v;

	if (len < sizeof v)
		return 0;
	memcpy(&v, p, sizeof v);
	if (v != seq)
		return 0;
	for (size_t i = sizeof v; i < len; i++)
		if (p[i] != (unsigned char)seq)
			return 0;
	return 1;
}

static void *
reader(void *arg)
{
	struct job *j = arg;
	struct dh_reader_opts o = { .label = "tsan", .start = DH_START_OLDEST };
	struct dh_reader *r;
	struct dh_msg m;
	uint64_t last = 0;
	int first = 1, rc;

	if ((rc = dh_reader_open(j->name, &o, &r)) < 0) {
		fprintf(stderr, "reader open: %s\n", dh_strerror(rc));
		j->bad++;
		pthread_barrier_wait(j->ready);
		return NULL;
	}
	pthread_barrier_wait(j->ready);
	while ((rc = dh_reader_next(r, &m, 10000000000ll)) == 0) {
		if (!uniform(m.data, m.len, m.seq) || (!first && m.seq <= last))
			j->bad++;
		if (j->seen)
			__atomic_fetch_add(&j->seen[m.seq], 1, __ATOMIC_RELAXED);
		first = 0;
		last = m.seq;
		j->got++;
		j->lost += m.lost;
	}
	if (rc != DH_END) {
		fprintf(stderr, "reader next: %s\n", dh_strerror(rc));
		j->bad++;
	}
	dh_reader_close(r);
	return NULL;
}

/* batch > 1: publish in batches of that many, flushing now and then as a
 * writer whose source runs dry would. */
static int
run(enum dh_policy policy, uint64_t count, unsigned batch)
{
	char name[64];
	struct dh_config c;
	struct dh_writer *w;
	pthread_t t[READERS];
	pthread_barrier_t ready;
	struct job j[READERS];
	uint64_t *seen = NULL, got = 0, bad = 0;
	unsigned char buf[200];
	int rc, ok = 1;

	snprintf(name, sizeof name, "dhtest-tsan-%d-%d-%u", (int)getpid(), (int)policy, batch);
	dh_config_init(&c);
	c.slots = 32;
	c.slot_size = sizeof buf;
	c.policy = policy;
	if ((rc = dh_block_create(name, &c)) < 0) {
		fprintf(stderr, "create: %s\n", dh_strerror(rc));
		return 0;
	}
	if (policy == DH_POLICY_QUEUE && !(seen = calloc(count, sizeof *seen)))
		return 0;
	pthread_barrier_init(&ready, NULL, READERS + 1);
	for (int i = 0; i < READERS; i++) {
		j[i] = (struct job){ .name = name, .policy = policy, .count = count, .ready = &ready, .seen = seen };
		pthread_create(&t[i], NULL, reader, &j[i]);
	}
	pthread_barrier_wait(&ready);
	if ((rc = dh_writer_open(name, "tsan", &w, NULL)) < 0) {
		fprintf(stderr, "writer open: %s\n", dh_strerror(rc));
		ok = 0;
	} else {
		dh_writer_set_batch(w, batch);
		for (uint64_t s = 0; s < count; s++) {
			size_t len = 8 + s % (sizeof buf - 8);
			if (batch > 1 && s % 37 == 0)
				dh_writer_flush(w);
			memcpy(buf, &s, 8);
			memset(buf + 8, (unsigned char)s, len - 8);
			if ((rc = dh_writer_write(w, buf, len, -1)) < 0) {
				fprintf(stderr, "write: %s\n", dh_strerror(rc));
				ok = 0;
				break;
			}
		}
		dh_writer_eos(w);
		dh_writer_close(w);
	}
	for (int i = 0; i < READERS; i++) {
		pthread_join(t[i], NULL);
		got += j[i].got;
		bad += j[i].bad;
		if (policy == DH_POLICY_SYNC && j[i].got != count)
			ok = 0;
		if (policy == DH_POLICY_RING && j[i].got + j[i].lost > count)
			ok = 0;
	}
	if (policy == DH_POLICY_QUEUE) {
		for (uint64_t s = 0; s < count; s++)
			if (seen[s] != 1)
				ok = 0;
		if (got != count)
			ok = 0;
	}
	printf("%s %s%s: %llu messages, %llu delivered, %llu bad\n", ok && !bad ? "ok" : "not ok",
	       dh_policy_name(policy), batch > 1 ? " batched" : "", (unsigned long long)count, (unsigned long long)got,
	       (unsigned long long)bad);
	free(seen);
	pthread_barrier_destroy(&ready);
	dh_block_unlink(name, 1, NULL);
	return ok && !bad;
}

int
main(int argc, char **argv)
{
	uint64_t count = argc > 1 ? strtoull(argv[1], NULL, 10) : 1000000;
	int ok = 1;

	for (int p = DH_POLICY_LATEST; p <= DH_POLICY_QUEUE; p++) {
		ok &= run((enum dh_policy)p, count, 1);
		ok &= run((enum dh_policy)p, count, 16);
	}
	return ok ? 0 : 1;
}
