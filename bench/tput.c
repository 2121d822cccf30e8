/* tput.c: case 1 (throughput between two processes) and case 4a (fan-out). See LICENSE. */
#include <stdio.h>
#include <string.h>

#include "bench.h"

/* Batched rows: the writer publishes this many messages at once (a producer
 * with a burst of data ready); every message is still stamped, checked and
 * read one by one. */
#define BATCH 64

struct variant {
	const char *key;
	enum xkind kind;
	enum dh_checksum ck;
	int copy;
	unsigned batch;         /* dh: batched publication (dh_writer_set_batch) */
};

static const struct variant variants[] = {
	{ "dh-none", X_DH, DH_CHECKSUM_NONE, 0, 0 },
	{ "dh-xxh3", X_DH, DH_CHECKSUM_XXH3, 0, 0 },
	{ "dh-blake2b", X_DH, DH_CHECKSUM_BLAKE2B, 0, 0 },
	{ "dh-none-copy", X_DH, DH_CHECKSUM_NONE, 1, 0 },
	{ "dh-none-batch", X_DH, DH_CHECKSUM_NONE, 0, BATCH },
	{ "dh-xxh3-batch", X_DH, DH_CHECKSUM_XXH3, 0, BATCH },
	{ "pipe", X_PIPE, DH_CHECKSUM_NONE, 0, 0 },
	{ "unix", X_UNIX, DH_CHECKSUM_NONE, 0, 0 },
	{ "zmq", X_ZMQ, DH_CHECKSUM_NONE, 0, 0 },
	{ "iox", X_IOX, DH_CHECKSUM_NONE, 0, 0 },
};
#define NVAR (sizeof variants / sizeof *variants)

static const size_t sizes[] = { 64, 4096, 65536 };
#define NSIZE (sizeof sizes / sizeof *sizes)

/* Ring geometry per message size: a few hundred KiB to 1 MiB of slots, so
 * the writer can run ahead without leaving L2. */
static uint32_t
tput_slots(size_t size)
{
	return size <= 64 ? 1024 : size <= 4096 ? 128 : 16;
}

static void
one(struct row *r, const struct variant *v, size_t size, int nreaders, uint64_t dur, int rcpu, int rep)
{
	struct xport x;
	struct stream_res res;

	memset(&x, 0, sizeof x);
	x.kind = v->kind;
	x.size = size;
	x.nreaders = nreaders;
	x.ck = v->ck;
	x.copy = v->copy;
	x.batch = v->batch;
	x.slots = tput_slots(size);
	if (stream_once(&x, dur, rcpu, &res) < 0) {
		r->errors++;
		snprintf(r->why, sizeof r->why, "%s", res.why);
		note("%s rep %d: %s", r->key, rep, res.why);
		return;
	}
	r->reps_v[r->nreps++] = res.msgs_s;
	note("%s rep %d: %.0f msg/s (%llu sent)", r->key, rep, res.msgs_s, (unsigned long long)res.sent);
}

static void
conclude(struct row *r)
{
	double v[REPS];

	if (!r)
		return;
	memcpy(v, r->reps_v, sizeof v);
	r->ok = r->nreps == REPS && !r->errors;
	if (r->nreps)
		r->msgs_s = median(v, r->nreps);
	r->bytes_s = r->msgs_s * (double)r->size;
}

void
run_throughput(void)
{
	struct row *rows[NSIZE][NVAR];
	uint64_t dur = B.quick ? 60000000u : 400000000u;
	char key[48], label[48];

	for (size_t s = 0; s < NSIZE; s++)
		for (size_t v = 0; v < NVAR; v++) {
			struct xport x = { .kind = variants[v].kind, .ck = variants[v].ck, .copy = variants[v].copy,
				   .batch = variants[v].batch };
			snprintf(key, sizeof key, "tput.%zu.%s", sizes[s], variants[v].key);
			snprintf(label, sizeof label, "%s", x_label(&x));
			rows[s][v] = want(key) && (x.kind != X_IOX || iox_ok()) ?
					     row_new("throughput", key, label, sizes[s]) : NULL;
		}
	/* Repetitions interleave the variants so slow drift in machine load
	 * hits them all alike. */
	for (int rep = 0; rep < REPS; rep++)
		for (size_t s = 0; s < NSIZE; s++)
			for (size_t v = 0; v < NVAR; v++)
				if (rows[s][v])
					one(rows[s][v], &variants[v], sizes[s], 1, dur, B.cpu_b, rep);
	for (size_t s = 0; s < NSIZE; s++)
		for (size_t v = 0; v < NVAR; v++)
			conclude(rows[s][v]);
}

/* Fan-out: one writer, 4 readers, 64 B; aggregate messages/s delivered. */
void
run_fanout(void)
{
	static const struct variant fv[] = {
		{ "dh-none", X_DH, DH_CHECKSUM_NONE, 0, 0 },
		{ "dh-xxh3", X_DH, DH_CHECKSUM_XXH3, 0, 0 },
		{ "dh-none-batch", X_DH, DH_CHECKSUM_NONE, 0, BATCH },
		{ "pipe", X_PIPE, DH_CHECKSUM_NONE, 0, 0 },
		{ "zmq", X_ZMQ, DH_CHECKSUM_NONE, 0, 0 },
		{ "iox", X_IOX, DH_CHECKSUM_NONE, 0, 0 },
	};
	enum { NF = sizeof fv / sizeof *fv };
	struct row *rows[NF];
	uint64_t dur = B.quick ? 60000000u : 400000000u;
	char key[48];

	for (size_t v = 0; v < NF; v++) {
		struct xport x = { .kind = fv[v].kind, .ck = fv[v].ck, .nreaders = 4, .batch = fv[v].batch };
		snprintf(key, sizeof key, "fanout4.64.%s", fv[v].key);
		rows[v] = want(key) && (x.kind != X_IOX || iox_ok()) ? row_new("fanout", key, x_label(&x), 64) :
									   NULL;
	}
	for (int rep = 0; rep < REPS; rep++)
		for (size_t v = 0; v < NF; v++)
			if (rows[v])
				one(rows[v], &fv[v], 64, 4, dur, -1, rep);
	for (size_t v = 0; v < NF; v++)
		conclude(rows[v]);
}
