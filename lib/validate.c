/* validate.c: integrity checks, diagnosis and safe repair. See LICENSE. */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "dh_validate.h"
#include "dh_impl.h"

static const char *const finding_names[] = {
	[DH_FIND_WRITER_DEAD] = "writer_dead",
	[DH_FIND_WRITER_MIDWRITE] = "writer_midwrite",
	[DH_FIND_WRITER_UNPUBLISHED] = "writer_unpublished",
	[DH_FIND_WRITER_STALLED] = "writer_stalled",
	[DH_FIND_READER_DEAD] = "reader_dead",
	[DH_FIND_READER_STALLED] = "reader_stalled",
	[DH_FIND_CLAIM_DEAD] = "claim_dead",
	[DH_FIND_CHECKSUM] = "checksum",
	[DH_FIND_QUARANTINED] = "quarantined",
	[DH_FIND_DESC] = "descriptor",
	[DH_FIND_STATE] = "state",
	[DH_FIND_KEY_UNVERIFIED] = "key_unverified",
	[DH_FIND_ACKNOWLEDGED] = "acknowledged",
};

static const char *const action_names[] = {
	[DH_ACT_NONE] = "none",
	[DH_ACT_REPAIRABLE] = "repairable",
	[DH_ACT_NEEDS_FORCE] = "needs_force",
	[DH_ACT_REPAIRED] = "repaired",
	[DH_ACT_FORCED] = "forced",
	[DH_ACT_UNREPAIRABLE] = "unrepairable",
};

const char *
dh_finding_name(enum dh_finding_kind k)
{
	return (unsigned)k < DH_FIND_LAST ? finding_names[k] : "unknown";
}

const char *
dh_action_name(enum dh_finding_action a)
{
	return (unsigned)a <= DH_ACT_UNREPAIRABLE ? action_names[a] : "unknown";
}

int
dh_proc_stopped(pid_t pid)
{
	char path[64], buf[512], *p;
	ssize_t n;
	int fd;

	snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
		return -errno;
	n = read(fd, buf, sizeof buf - 1);
	close(fd);
	if (n <= 0)
		return -EIO;
	buf[n] = '\0';
	/* the command name may hold spaces and parentheses: state follows the last ')' */
	if (!(p = strrchr(buf, ')')) || p[1] != ' ')
		return -EIO;
	return p[2] == 'T' || p[2] == 't';
}

void
dh_report_free(struct dh_report *rep)
{
	free(rep->f);
	memset(rep, 0, sizeof *rep);
}

static int
is_problem(enum dh_finding_action a)
{
	return a == DH_ACT_REPAIRABLE || a == DH_ACT_NEEDS_FORCE || a == DH_ACT_UNREPAIRABLE;
}

static struct dh_finding *
add(struct dh_report *rep, enum dh_finding_kind kind, enum dh_finding_action act, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static struct dh_finding *
add(struct dh_report *rep, enum dh_finding_kind kind, enum dh_finding_action act, const char *fmt, ...)
{
	static struct dh_finding oom; /* never stored: only a place to write into */
	struct dh_finding *f;
	va_list ap;

	if (rep->n == rep->cap) {
		size_t cap = rep->cap ? rep->cap * 2 : 16;
		struct dh_finding *nf = realloc(rep->f, cap * sizeof *nf);
		if (!nf) {
			rep->problems += is_problem(act);
			return &oom;
		}
		rep->f = nf;
		rep->cap = cap;
	}
	f = &rep->f[rep->n++];
	memset(f, 0, sizeof *f);
	f->kind = kind;
	f->action = act;
	f->index = -1;
	f->seq = UINT64_MAX;
	f->slot = UINT32_MAX;
	va_start(ap, fmt);
	vsnprintf(f->detail, sizeof f->detail, fmt, ap);
	va_end(ap);
	rep->problems += is_problem(act);
	return f;
}

/* Change the action of the last finding, keeping rep->problems right. */
static void
set_action(struct dh_report *rep, struct dh_finding *f, enum dh_finding_action a)
{
	rep->problems -= is_problem(f->action);
	f->action = a;
	rep->problems += is_problem(a);
}

struct ctx {
	struct dh_block *b;
	int fd;         /* our own open file description: see dh_check_run */
	struct dh_report *rep;
	int repair, force;
	uint64_t stall_ns;
	uint64_t committed;
	int writer_alive;
	unsigned char *buf;
};

/* Reader i is dead: report it and its queue claims, reclaim if asked. */
static void
check_dead_reader(struct ctx *c, int i)
{
	struct dh_block *b = c->b;
	struct dh_pentry *e = &b->table[i];
	struct dh_finding *f;
	int nclaims = 0;

	f = add(c->rep, DH_FIND_READER_DEAD, DH_ACT_REPAIRABLE, "reader %d (%.31s, pid %u) died at seq %llu", i,
		e->name, e->pid, (unsigned long long)(atomic_load(&e->position) & ~DH_POS_HOLD));
	f->index = i;
	f->pid = (pid_t)e->pid;
	if (b->pol->claims) {
		for (uint32_t s = 0; s < b->cfg.slots; s++) {
			uint64_t q = atomic_load(&b->desc[s].qword);
			if ((q & ((1u << DH_Q_SHIFT) - 1)) == (uint64_t)i) {
				struct dh_finding *g = add(c->rep, DH_FIND_CLAIM_DEAD, DH_ACT_REPAIRABLE,
							   "message %llu claimed by dead reader %d; reclaiming counts it lost",
							   (unsigned long long)(q >> DH_Q_SHIFT), i);
				g->index = i;
				g->pid = (pid_t)e->pid;
				g->seq = q >> DH_Q_SHIFT;
				g->slot = s;
				nclaims++;
			}
		}
	}
	if (!c->repair)
		return;
	enum dh_finding_action done = DH_ACT_REPAIRED;
	if (dh__lock_try(c->fd, i) < 0) {
		/* Someone holds the entry's lock: a new reader that reaped it on
		 * attach, or another repairer doing this very work. Either way
		 * it is handled, not a problem left for us. */
		done = DH_ACT_NONE;
	} else {
		if (dh__ent_state(atomic_load(&e->state)) != DH_ENT_FREE)
			dh__reap(b, i, 0);
		dh__lock_drop(c->fd, i);
	}
	for (size_t k = c->rep->n - (size_t)nclaims - 1; k < c->rep->n; k++) {
		set_action(c->rep, &c->rep->f[k], done);
		if (done == DH_ACT_NONE)
			strncat(c->rep->f[k].detail, " (reclaimed by another process)",
				sizeof c->rep->f[k].detail - strlen(c->rep->f[k].detail) - 1);
	}
}

static int
blocks_writer(struct ctx *c, struct dh_pentry *e)
{
	if (c->b->pol->positions_hold)
		return (atomic_load(&e->position) & ~DH_POS_HOLD) + c->b->cfg.slots <=
		       atomic_load(&c->b->hdr->committed);
	if (c->b->pol->claims)
		return atomic_load(&e->claim) != DH_SEQ_NONE;
	return 0;
}

static void
check_live_reader(struct ctx *c, int i, uint32_t word, uint64_t now)
{
	struct dh_block *b = c->b;
	struct dh_pentry *e = &b->table[i];
	uint64_t hb = atomic_load(&e->heartbeat_mono);
	uint64_t age = hb && now > hb ? now - hb : 0;
	int stopped = dh_proc_stopped((pid_t)e->pid) == 1;
	int blocking = blocks_writer(c, e);
	struct dh_finding *f;

	if (!stopped && !(blocking && age >= c->stall_ns))
		return;
	f = add(c->rep, DH_FIND_READER_STALLED, blocking ? DH_ACT_NEEDS_FORCE : DH_ACT_NONE,
		"reader %d (%.31s, pid %u) alive but %s, inactive %.1fs%s", i, e->name, e->pid,
		stopped ? "stopped" : "stalled", (double)age / 1e9, blocking ? ", holding the writer back" : "");
	f->index = i;
	f->pid = (pid_t)e->pid;
	f->age_ns = age;
	if (!blocking || !c->repair || !c->force)
		return;
	/* Cut it loose: it learns on its next call (DH_EEVICTED).  From the
	 * exact word we judged, so a reader that attached at this index since
	 * is never the one evicted.  A message it holds in place (a queue
	 * claim, a sync hold) stays its own until it lets go or dies: taking
	 * it back would let the writer overwrite memory the reader uses. */
	if (!atomic_compare_exchange_strong(&e->state, &word, dh__ent_with(word, DH_ENT_EVICTED)))
		return;
	atomic_fetch_add(&b->hdr->evictions, 1);
	atomic_fetch_add(&b->hdr->reader_gen, 1); /* the sync writer rescans */
	atomic_fetch_add(&b->hdr->space_futex, 1);
	dh__futex_wake(&b->hdr->space_futex);
	set_action(c->rep, f, DH_ACT_FORCED);
	if (b->pol->claims || (atomic_load(&e->position) & DH_POS_HOLD))
		strncat(f->detail, "; the message it holds stays its own until it releases it or dies",
			sizeof f->detail - strlen(f->detail) - 1);
}

static void
check_readers(struct ctx *c)
{
	struct dh_block *b = c->b;
	struct timespec ts;
	uint64_t now;

	clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
	now = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
	for (uint32_t i = 1; i <= b->cfg.max_readers; i++) {
		struct dh_pentry *e = &b->table[i];
		uint32_t word = atomic_load(&e->state), st = dh__ent_state(word);
		uint64_t pos = atomic_load(&e->position) & ~DH_POS_HOLD, committed;
		int held;

		if (st == DH_ENT_FREE)
			continue;
		if (st != DH_ENT_ACTIVE && st != DH_ENT_EVICTED) {
			struct dh_finding *f = add(c->rep, DH_FIND_STATE, DH_ACT_UNREPAIRABLE,
						   "reader entry %u has unknown state %u", i, st);
			f->index = (int)i;
			continue;
		}
		/* Read after the position: the count only grows and a live
		 * reader never passes it, so only damage can be past it now. */
		committed = atomic_load(&b->hdr->committed);
		if (!b->pol->claims && pos > committed) {
			struct dh_finding *f = add(c->rep, DH_FIND_STATE, DH_ACT_UNREPAIRABLE,
						   "reader %u position %llu is past the committed count %llu", i,
						   (unsigned long long)pos, (unsigned long long)committed);
			f->index = (int)i;
		}
		held = dh__lock_held(c->fd, (int)i);
		if (held == 0)
			check_dead_reader(c, (int)i);
		else if (held == 1 && st == DH_ENT_ACTIVE)
			check_live_reader(c, (int)i, word, now);
	}
}

/* Publish a message the dead writer completed: its stamp and checksum say
 * it is whole, only the committed count was not advanced. */
static int
publish_orphan(struct ctx *c, uint64_t s)
{
	struct dh_block *b = c->b;
	struct dh_desc *d = dh__desc(b, s);

	/* We hold lock 0, so no writer runs now; but one may have opened,
	 * reserved this very slot and died since we looked at it. */
	if (atomic_load(&b->hdr->committed) != s || atomic_load(&d->stamp) != 2 * s + 2)
		return 0;
	if (!dh__verifiable(b))
		return 0; /* cannot prove it whole (no check, or no key) */
	if (d->length > b->cfg.slot_size || dh__check_verify(b, s, dh__slot(b, s), d->length, d->check) < 0)
		return 0;
	if (b->pol->claims)
		atomic_store(&d->qword, (s << DH_Q_SHIFT) | DH_Q_AVAIL);
	atomic_store(&b->hdr->committed, s + 1);
	atomic_fetch_add(&b->hdr->data_futex, 1);
	dh__futex_wake(&b->hdr->data_futex);
	return 1;
}

static void
check_writer(struct ctx *c)
{
	struct dh_block *b = c->b;
	struct dh_pentry *e = &b->table[0];
	uint32_t word = atomic_load(&e->state), st = dh__ent_state(word);
	uint64_t s = c->committed, stamp = atomic_load(&dh__desc(b, s)->stamp);
	struct dh_finding *f;
	int held = dh__lock_held(c->fd, 0), published = 0;

	c->writer_alive = held == 1;
	if (st == DH_ENT_FREE || held != 0) {
		if (held == 1 && st == DH_ENT_ACTIVE && dh_proc_stopped((pid_t)e->pid) == 1) {
			f = add(c->rep, DH_FIND_WRITER_STALLED, DH_ACT_UNREPAIRABLE,
				"writer (pid %u) alive but stopped; nothing can safely take its place", e->pid);
			f->index = 0;
			f->pid = (pid_t)e->pid;
		}
		return;
	}
	f = add(c->rep, DH_FIND_WRITER_DEAD, DH_ACT_REPAIRABLE, "writer (%.31s, pid %u) died at seq %llu%s",
		e->name, e->pid, (unsigned long long)s,
		atomic_load(&b->hdr->eos_seq) == s ? "" : " without end-of-stream");
	f->index = 0;
	f->pid = (pid_t)e->pid;
	struct dh_finding *g = NULL;
	if (stamp == 2 * s + 1) {
		g = add(c->rep, DH_FIND_WRITER_MIDWRITE, DH_ACT_REPAIRABLE,
			"message %llu was half-written when the writer died; it was never visible and the next writer rewrites it",
			(unsigned long long)s);
	} else if (stamp == 2 * s + 2) {
		g = add(c->rep, DH_FIND_WRITER_UNPUBLISHED, DH_ACT_REPAIRABLE,
			"message %llu was complete but not published when the writer died", (unsigned long long)s);
	}
	if (g) {
		g->index = 0;
		g->pid = (pid_t)e->pid;
		g->seq = s;
		g->slot = (uint32_t)(s % b->cfg.slots);
	}
	if (!c->repair)
		return;
	if (dh__lock_try(c->fd, 0) < 0) {
		/* a new writer, or another repairer, has the entry now */
		set_action(c->rep, f, DH_ACT_NONE);
		if (g)
			set_action(c->rep, g, DH_ACT_NONE);
		return;
	}
	word = atomic_load(&e->state);
	if (dh__ent_state(word) == DH_ENT_ACTIVE && atomic_load(&b->hdr->committed) == s) {
		if (g && g->kind == DH_FIND_WRITER_UNPUBLISHED)
			published = publish_orphan(c, s);
		atomic_store(&e->state, dh__ent_with(word, DH_ENT_FREE));
	}
	dh__lock_drop(c->fd, 0);
	set_action(c->rep, f, DH_ACT_REPAIRED);
	if (g) {
		if (g->kind == DH_FIND_WRITER_MIDWRITE || published)
			set_action(c->rep, g, DH_ACT_REPAIRED);
		else
			set_action(c->rep, g, DH_ACT_NONE); /* left invisible: the next writer rewrites it */
	}
	if (published)
		c->committed = s + 1;
}

/* The newest seq below committed that maps to slot i, or UINT64_MAX. */
static uint64_t
expected_seq(const struct ctx *c, uint32_t i)
{
	uint64_t n = c->b->cfg.slots;

	if (c->committed <= i)
		return UINT64_MAX;
	return c->committed - 1 - ((c->committed - 1 - i) % n);
}

static void
check_payload(struct ctx *c, uint32_t i, uint64_t t, uint64_t stamp)
{
	struct dh_block *b = c->b;
	struct dh_desc *d = &b->desc[i];
	uint32_t len = d->length;
	uint8_t check[32];
	struct dh_finding *f;
	int bad;

	if (!dh__verifiable(b))
		return;
	memcpy(check, d->check, sizeof check);
	if (len > b->cfg.slot_size)
		return;
	memcpy(c->buf, dh__slot(b, t), len);
	atomic_thread_fence(memory_order_acquire);
	if (atomic_load(&d->stamp) != stamp)
		return; /* overwritten meanwhile: not ours to judge */
	c->rep->slots_checked++;
	bad = dh__check_verify(b, t, c->buf, len, check) < 0;
	if (!bad)
		return;
	if (d->flags & DH_DESC_QUARANTINED) {
		f = add(c->rep, DH_FIND_QUARANTINED, DH_ACT_NONE,
			"message %llu fails its checksum and is quarantined: readers skip it", (unsigned long long)t);
	} else {
		f = add(c->rep, DH_FIND_CHECKSUM, DH_ACT_REPAIRABLE,
			"message %llu (slot %u) fails its checksum; repair quarantines it", (unsigned long long)t, i);
		if (c->repair) {
			d->flags |= DH_DESC_QUARANTINED;
			atomic_thread_fence(memory_order_seq_cst);
			if (atomic_load(&d->stamp) == stamp)
				set_action(c->rep, f, DH_ACT_REPAIRED);
			else
				d->flags &= ~DH_DESC_QUARANTINED; /* the writer reused it: moot */
		}
	}
	f->seq = t;
	f->slot = i;
}

static void
check_slots(struct ctx *c)
{
	struct dh_block *b = c->b;

	for (uint32_t i = 0; i < b->cfg.slots; i++) {
		struct dh_desc *d = &b->desc[i];
		uint64_t stamp = atomic_load(&d->stamp), want, q;
		struct dh_finding *f = NULL;

		/* A live writer keeps committing: judge each slot against the
		 * count read between two equal reads of its stamp. */
		c->committed = atomic_load(&b->hdr->committed);
		if (atomic_load(&d->stamp) != stamp)
			continue;
		want = expected_seq(c, i);

		if (stamp == 0) {
			if (want != UINT64_MAX)
				f = add(c->rep, DH_FIND_DESC, DH_ACT_UNREPAIRABLE,
					"slot %u never written, yet message %llu should be there", i,
					(unsigned long long)want);
		} else if (stamp & 1) {
			uint64_t t = (stamp - 1) / 2;
			if (t != c->committed || t % b->cfg.slots != i)
				f = add(c->rep, DH_FIND_DESC, DH_ACT_UNREPAIRABLE,
					"slot %u marked as being written with message %llu; only message %llu may be",
					i, (unsigned long long)t, (unsigned long long)c->committed);
		} else {
			uint64_t t = stamp / 2 - 1;
			if (t == c->committed && t % b->cfg.slots == i) {
				/* complete but unpublished: a live writer between two
				 * stores, or a dead one reported by check_writer */
			} else if (t != want) {
				f = add(c->rep, DH_FIND_DESC, DH_ACT_UNREPAIRABLE,
					"slot %u holds message %llu, expected %llu", i, (unsigned long long)t,
					(unsigned long long)want);
			} else if (d->length > b->cfg.slot_size) {
				f = add(c->rep, DH_FIND_DESC, DH_ACT_UNREPAIRABLE,
					"slot %u: message %llu length %u exceeds the slot size %u", i,
					(unsigned long long)t, d->length, b->cfg.slot_size);
			} else {
				check_payload(c, i, t, stamp);
			}
		}
		if (f) {
			f->slot = i;
			continue;
		}
		if (!b->pol->claims)
			continue;
		q = atomic_load(&d->qword);
		uint64_t tag = q & ((1u << DH_Q_SHIFT) - 1);
		if ((tag > b->cfg.max_readers && tag != DH_Q_DONE) ||
		    (want != UINT64_MAX && (q >> DH_Q_SHIFT) % b->cfg.slots != i)) {
			f = add(c->rep, DH_FIND_DESC, DH_ACT_UNREPAIRABLE, "slot %u has an invalid queue claim word %#llx",
				i, (unsigned long long)q);
			f->slot = i;
		}
	}
}

static void
check_header(struct ctx *c)
{
	struct dh_hdr *h = c->b->hdr;
	/* Each mark first, the count after it: the count only grows, so a
	 * live channel can never look inconsistent here. */
	uint64_t eos = atomic_load(&h->eos_seq), head = atomic_load(&h->claim_head);
	uint64_t committed = atomic_load(&h->committed);
	uint32_t wst = dh__ent_state(atomic_load(&c->b->table[0].state));

	if (eos != DH_SEQ_NONE && eos > committed)
		add(c->rep, DH_FIND_STATE, DH_ACT_UNREPAIRABLE, "end-of-stream mark %llu is past the committed count %llu",
		    (unsigned long long)eos, (unsigned long long)committed);
	if (c->b->pol->claims && head > committed)
		add(c->rep, DH_FIND_STATE, DH_ACT_UNREPAIRABLE, "queue head %llu is past the committed count %llu",
		    (unsigned long long)head, (unsigned long long)committed);
	if (wst > DH_ENT_ACTIVE)
		add(c->rep, DH_FIND_STATE, DH_ACT_UNREPAIRABLE, "writer entry has unknown state %u", wst);
}

/*
 * A file description of our own for the lock probes.  OFD locks held
 * through b's description (a writer or reader in this very process handed
 * us its block) look free to a probe through it, and taking one of them
 * would succeed and then drop the holder's lock: a live writer judged dead.
 */
static int
probe_fd(const struct dh_block *b)
{
	char path[64];
	struct stat a, n;
	int fd;

	snprintf(path, sizeof path, "/proc/self/fd/%d", b->fd);
	fd = open(path, (b->rdonly ? O_RDONLY : O_RDWR) | O_CLOEXEC | O_NONBLOCK);
	if (fd < 0)
		return -errno;
	if (fstat(b->fd, &a) < 0 || fstat(fd, &n) < 0 || a.st_dev != n.st_dev || a.st_ino != n.st_ino) {
		close(fd);
		return -EIO;
	}
	return fd;
}

/* Health describes the present: events up to now are acknowledged, their
 * lifetime counters stay.  Last, so that failures this run quarantined are
 * among them. */
static void
acknowledge(struct ctx *c)
{
	struct dh_hdr *h = c->b->hdr;
	uint64_t sm = atomic_load(&h->schema_mismatches), km = atomic_load(&h->key_mismatches);
	uint64_t cf = atomic_load(&h->checksum_failures), ql = atomic_load(&h->queue_lost);
	uint64_t n = (sm - atomic_load(&h->acked_schema_mismatches)) + (km - atomic_load(&h->acked_key_mismatches)) +
		     (cf - atomic_load(&h->acked_checksum_failures)) + (ql - atomic_load(&h->acked_queue_lost));

	if (n == 0)
		return;
	atomic_store(&h->acked_schema_mismatches, sm);
	atomic_store(&h->acked_key_mismatches, km);
	atomic_store(&h->acked_checksum_failures, cf);
	atomic_store(&h->acked_queue_lost, ql);
	/* informational: nothing was broken, and "repaired N" stays the count of fixes */
	add(c->rep, DH_FIND_ACKNOWLEDGED, DH_ACT_NONE,
	    "acknowledged %llu schema and %llu key refusals, %llu checksum failures, %llu queue messages lost "
	    "(lifetime totals)",
	    (unsigned long long)sm, (unsigned long long)km, (unsigned long long)cf, (unsigned long long)ql);
}

int
dh_check_run(struct dh_block *b, int flags, uint64_t stall_ns, struct dh_report *rep)
{
	struct ctx c = { 0 };

	memset(rep, 0, sizeof *rep);
	if ((flags & DH_CHECK_REPAIR) && b->rdonly)
		return -EBADF;
	if ((c.fd = probe_fd(b)) < 0)
		return c.fd;
	c.b = b;
	c.rep = rep;
	c.repair = (flags & DH_CHECK_REPAIR) != 0;
	c.force = (flags & DH_CHECK_FORCE) != 0;
	c.stall_ns = stall_ns;
	if (!(c.buf = malloc(b->cfg.slot_size))) {
		close(c.fd);
		return -ENOMEM;
	}
	c.committed = atomic_load(&b->hdr->committed);
	if (b->ck->keyed && !b->has_key)
		add(rep, DH_FIND_KEY_UNVERIFIED, DH_ACT_NONE, "keyed channel checked without its key: MACs not verified");
	check_header(&c);
	check_writer(&c);
	check_readers(&c);
	check_slots(&c);
	if (c.repair)
		acknowledge(&c);
	free(c.buf);
	close(c.fd);
	return 0;
}
