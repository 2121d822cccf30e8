/* stat.c: metrics derived from channel snapshots; JSON and Prometheus renderings. See LICENSE. */
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "dh_block.h"
#include "dh_error.h"
#include "dh_stat.h"

static const char *const health_names[DH_HEALTH_NBITS] = {
	"writer-dead", "checksum", "reader-dead", "evicted", "lost", "full", "stalled", "unknown",
	"mismatch"
};

const char *
dh_level_name(enum dh_level l)
{
	switch (l) {
	case DH_LEVEL_OK:
		return "ok";
	case DH_LEVEL_WARN:
		return "warn";
	case DH_LEVEL_BAD:
		return "bad";
	}
	return "?";
}

const char *
dh_health_name(unsigned bit)
{
	for (int i = 0; i < DH_HEALTH_NBITS; i++)
		if (bit == 1u << i)
			return health_names[i];
	return "?";
}

const char *
dh_pstate_name(enum dh_pstate st)
{
	switch (st) {
	case DH_P_FREE:
		return "free";
	case DH_P_ALIVE:
		return "alive";
	case DH_P_DEAD:
		return "dead";
	case DH_P_EVICTED:
		return "evicted";
	case DH_P_UNKNOWN:
		return "unknown";
	}
	return "?";
}

int
dh_stat_lag(const struct dh_snapshot *s, int index, uint64_t *lag)
{
	const struct dh_participant *p;

	if (index < 1 || index >= s->nparticipants || dh_policy_info(s->cfg.policy)->claims)
		return -ENODATA;
	p = &s->part[index];
	if (p->state == DH_P_FREE)
		return -ENODATA;
	*lag = s->committed > p->position ? s->committed - p->position : 0;
	return 0;
}

uint64_t
dh_stat_idle(const struct dh_participant *p, uint64_t now_ns)
{
	if (p->idle_ns != 0 || p->last_active_ns == 0 || now_ns <= p->last_active_ns)
		return p->idle_ns;
	return now_ns - p->last_active_ns;
}

void
dh_stat_derive(const struct dh_snapshot *s, uint64_t now_ns, struct dh_stat *out)
{
	struct dh_stat st;
	int n = s->nparticipants;

	memset(&st, 0, sizeof st);
	st.slowest = -1;
	if (n > 1 + DH_READERS_MAX)
		n = 1 + DH_READERS_MAX;
	st.writer = n > 0 ? s->part[0].state : DH_P_FREE;
	if (st.writer == DH_P_UNKNOWN)
		st.health |= DH_HEALTH_UNKNOWN;
	for (int i = 1; i < n; i++) {
		const struct dh_participant *p = &s->part[i];
		uint64_t lag;

		if (p->state == DH_P_FREE)
			continue;
		st.readers++;
		st.lost += p->lost;
		switch (p->state) {
		case DH_P_ALIVE:
			st.readers_alive++;
			break;
		case DH_P_DEAD:
			st.readers_dead++;
			continue;
		case DH_P_EVICTED:
			st.readers_evicted++;
			continue;
		default:
			st.readers_unknown++;
			break;
		}
		/* alive, or maybe alive: it may be what holds the writer back */
		if (dh_stat_lag(s, i, &lag) < 0)
			continue;
		if (!st.lag_known || lag > st.lag) {
			st.lag_known = 1;
			st.lag = lag;
			st.slowest = i;
		}
		if (lag > 0 && p->state == DH_P_ALIVE && dh_stat_idle(p, now_ns) >= DH_STAT_STALL_NS)
			st.health |= DH_HEALTH_STALLED;
	}
	if (dh_policy_info(s->cfg.policy)->claims && s->committed >= s->claim_head) {
		/* a queue's lag is its backlog: committed and not yet claimed */
		st.lag_known = 1;
		st.lag = s->committed - s->claim_head;
	}
	if (st.lag_known)
		st.fill = st.lag < s->cfg.slots ? st.lag : s->cfg.slots;
	if (st.writer == DH_P_DEAD && !s->eos)
		st.health |= DH_HEALTH_WRITER_DEAD;
	/* past events that dh-validate --repair acknowledged do not count */
	if (s->checksum_failures > s->acked_checksum_failures)
		st.health |= DH_HEALTH_CHECKSUM;
	if (st.readers_dead)
		st.health |= DH_HEALTH_READER_DEAD;
	if (st.readers_evicted)
		st.health |= DH_HEALTH_EVICTED;
	if (st.readers_unknown)
		st.health |= DH_HEALTH_UNKNOWN;
	if (s->schema_mismatches > s->acked_schema_mismatches || s->key_mismatches > s->acked_key_mismatches)
		st.health |= DH_HEALTH_MISMATCH;
	if (st.lost > 0 || s->queue_lost > s->acked_queue_lost)
		st.health |= DH_HEALTH_LOST;
	if (dh_policy_info(s->cfg.policy)->positions_hold && st.writer == DH_P_ALIVE && st.lag_known &&
	    st.lag >= s->cfg.slots)
		st.health |= DH_HEALTH_FULL;
	st.level = st.health & DH_HEALTH_BAD ? DH_LEVEL_BAD : st.health ? DH_LEVEL_WARN : DH_LEVEL_OK;
	*out = st;
}

const char *
dh_health_format(const struct dh_stat *st, char *buf, size_t cap)
{
	size_t len;
	char sep = ':';

	if (cap == 0)
		return buf;
	len = (size_t)snprintf(buf, cap, "%s", dh_level_name(st->level));
	for (int i = 0; i < DH_HEALTH_NBITS && len < cap; i++)
		if (st->health & (1u << i)) {
			len += (size_t)snprintf(buf + len, cap - len, "%c%s", sep, health_names[i]);
			sep = ',';
		}
	return buf;
}

int
dh_stat_rate(const struct dh_snapshot *prev, const struct dh_snapshot *cur, uint64_t dt_ns,
	     double *msgs_per_s, double *bytes_per_s)
{
	if (dt_ns == 0)
		return -EINVAL;
	if (prev->created_ns != cur->created_ns || cur->messages_written < prev->messages_written ||
	    cur->bytes_written < prev->bytes_written)
		return -ESTALE;
	*msgs_per_s = (double)(cur->messages_written - prev->messages_written) * 1e9 / (double)dt_ns;
	*bytes_per_s = (double)(cur->bytes_written - prev->bytes_written) * 1e9 / (double)dt_ns;
	return 0;
}

const char *
dh_stat_safe(const char *s, char *buf, size_t cap)
{
	static const char hex[] = "0123456789abcdef";
	size_t n = 0, full = 0, room;

	if (cap < 8) {
		if (cap > 0)
			buf[0] = '\0';
		return buf;
	}
	for (const char *p = s; *p; p++)
		full += (unsigned char)*p >= 0x20 && (unsigned char)*p < 0x7f && *p != '\\' ? 1 : 4;
	room = full < cap ? cap : cap - 3;
	for (const char *p = s; *p; p++) {
		unsigned char c = (unsigned char)*p;
		size_t need = c >= 0x20 && c < 0x7f && c != '\\' ? 1 : 4;

		if (n + need + 1 > room) {
			memcpy(buf + n, "...", 3);
			n += 3;
			break;
		}
		if (need == 1) {
			buf[n++] = (char)c;
		} else {
			buf[n++] = '\\';
			buf[n++] = 'x';
			buf[n++] = hex[c >> 4];
			buf[n++] = hex[c & 15];
		}
	}
	buf[n] = '\0';
	return buf;
}

/* --- JSON ----------------------------------------------------------------- */

/* Counters beyond INT64_MAX can only come from a hostile segment: keep
 * them representable rather than failing the document. */
static json_t *
ju64(uint64_t v)
{
	return v <= (uint64_t)INT64_MAX ? json_integer((json_int_t)v) : json_real((double)v);
}

static json_t *
jstr(const char *s)
{
	char buf[4 * DH_NAME_MAX + 8];

	return json_string(dh_stat_safe(s, buf, sizeof buf));
}

static int
jset(json_t *o, const char *key, json_t *v)
{
	return v == NULL || json_object_set_new(o, key, v) < 0 ? -1 : 0;
}

static json_t *
json_participant(const struct dh_snapshot *s, int i)
{
	const struct dh_participant *p = &s->part[i];
	json_t *o = json_object();
	uint64_t lag;
	int bad = 0;

	if (!o)
		return NULL;
	bad |= jset(o, "index", json_integer(i));
	bad |= jset(o, "state", json_string(dh_pstate_name(p->state)));
	bad |= jset(o, "pid", json_integer((json_int_t)p->pid));
	bad |= jset(o, "name", jstr(p->name));
	bad |= jset(o, "position", ju64(p->position));
	if (i > 0)
		bad |= jset(o, "lag", dh_stat_lag(s, i, &lag) == 0 ? ju64(lag) : json_null());
	bad |= jset(o, "last_active_ns", ju64(p->last_active_ns));
	bad |= jset(o, "idle_ns", ju64(p->idle_ns));
	bad |= jset(o, "messages", ju64(p->messages));
	bad |= jset(o, "bytes", ju64(p->bytes));
	if (i > 0) {
		bad |= jset(o, "lost", ju64(p->lost));
		bad |= jset(o, "checksum_failures", ju64(p->checksum_failures));
	}
	if (bad) {
		json_decref(o);
		return NULL;
	}
	return o;
}

static json_t *
json_layout(const struct dh_layout *l)
{
	return json_pack("{sI sI sI sI sI sI sI sI sI sI}", "table_off", (json_int_t)l->table_off,
			 "table_size", (json_int_t)l->table_size, "desc_off", (json_int_t)l->desc_off,
			 "desc_size", (json_int_t)l->desc_size, "meta_off", (json_int_t)l->meta_off,
			 "meta_size", (json_int_t)l->meta_size, "data_off", (json_int_t)l->data_off,
			 "data_size", (json_int_t)l->data_size, "stride", (json_int_t)l->stride,
			 "total", (json_int_t)l->total);
}

static json_t *
json_channel(const struct dh_stat_channel *c, uint64_t now_ns, unsigned flags)
{
	const struct dh_snapshot *s = c->snap;
	char path[PATH_MAX];
	struct dh_stat st;
	json_t *o = json_object(), *a, *w, *pr;
	int bad = 0;

	if (!o)
		return NULL;
	if (dh_block_path(c->name, path, sizeof path) < 0)
		snprintf(path, sizeof path, "%s/dh.%s", dh_block_dir(), c->name);
	/* "channel" as in dh-diagnose, dh-validate and the broker
	 * (dh-json(5)); "name" is its deprecated alias until 0.2 */
	bad |= jset(o, "channel", jstr(c->name));
	bad |= jset(o, "name", jstr(c->name));
	bad |= jset(o, "path", jstr(path));
	bad |= jset(o, "ok", json_boolean(c->error == 0));
	if (c->error != 0) {
		bad |= jset(o, "error", json_string(dh_strerror(c->error)));
		goto out;
	}
	dh_stat_derive(s, now_ns, &st);
	bad |= jset(o, "policy", json_string(dh_policy_name(s->cfg.policy)));
	bad |= jset(o, "checksum", json_string(dh_checksum_name(s->cfg.checksum)));
	bad |= jset(o, "keyed", json_boolean(s->keyed));
	if (s->record_size) {
		char hex[65];
		for (int i = 0; i < 32; i++)
			snprintf(hex + 2 * i, 3, "%02x", s->schema_hash[i]);
		bad |= jset(o, "schema", c->schema ? jstr(c->schema) : json_null());
		bad |= jset(o, "schema_hash", json_string(hex));
		bad |= jset(o, "record_size", ju64(s->record_size));
	} else {
		bad |= jset(o, "schema", json_null());
		bad |= jset(o, "schema_hash", json_null());
		bad |= jset(o, "record_size", json_null());
	}
	bad |= jset(o, "slots", ju64(s->cfg.slots));
	bad |= jset(o, "slot_size", ju64(s->cfg.slot_size));
	bad |= jset(o, "max_readers", ju64(s->cfg.max_readers));
	bad |= jset(o, "meta_size", ju64(s->cfg.meta_size));
	bad |= jset(o, "segment_size", ju64(s->lay.total));
	bad |= jset(o, "evict_after_ns", ju64(s->cfg.evict_after_ns));
	bad |= jset(o, "created_ns", ju64(s->created_ns));
	bad |= jset(o, "creator_uid", ju64(s->creator_uid));
	bad |= jset(o, "creator_pid", ju64(s->creator_pid));
	bad |= jset(o, "committed", ju64(s->committed));
	bad |= jset(o, "end_of_stream", json_boolean(s->eos));
	bad |= jset(o, "stream", ju64(s->stream));
	bad |= jset(o, "stream_start", ju64(s->stream_start));
	bad |= jset(o, "fill", st.lag_known ? ju64(st.fill) : json_null());
	bad |= jset(o, "lag", st.lag_known ? ju64(st.lag) : json_null());
	bad |= jset(o, "slowest_reader", st.slowest >= 0 ? json_integer(st.slowest) : json_null());
	bad |= jset(o, "readers_alive", ju64(st.readers_alive));
	bad |= jset(o, "readers_total", ju64(st.readers));
	bad |= jset(o, "health", json_string(dh_level_name(st.level)));
	if ((a = json_array()) == NULL)
		bad = 1;
	for (int i = 0; a && i < DH_HEALTH_NBITS; i++)
		if (st.health & (1u << i) && json_array_append_new(a, json_string(health_names[i])) < 0)
			bad = 1;
	bad |= jset(o, "problems", a);
	bad |= jset(o, "msg_rate", c->has_rate ? json_real(c->msgs_per_s) : json_null());
	bad |= jset(o, "byte_rate", c->has_rate ? json_real(c->bytes_per_s) : json_null());
	bad |= jset(o, "counters",
		    json_pack("{so so so so so so so so so so so so}", "messages_written", ju64(s->messages_written),
			      "bytes_written", ju64(s->bytes_written), "writer_waits", ju64(s->writer_waits),
			      "writer_wait_ns", ju64(s->writer_wait_ns), "readers_reaped",
			      ju64(s->readers_reaped), "evictions", ju64(s->evictions), "eos_count",
			      ju64(s->eos_count), "queue_lost", ju64(s->queue_lost), "readers_lost",
			      ju64(s->readers_lost), "checksum_failures",
			      ju64(s->checksum_failures), "schema_mismatches", ju64(s->schema_mismatches),
			      "key_mismatches", ju64(s->key_mismatches)));
	/* what health no longer counts (dh-validate --repair) */
	bad |= jset(o, "acknowledged",
		    json_pack("{so so so so}", "checksum_failures", ju64(s->acked_checksum_failures),
			      "schema_mismatches", ju64(s->acked_schema_mismatches), "key_mismatches",
			      ju64(s->acked_key_mismatches), "queue_lost", ju64(s->acked_queue_lost)));
	if (s->nparticipants > 0 && (s->part[0].state != DH_P_FREE || flags & DH_STAT_ALL))
		w = json_participant(s, 0);
	else
		w = json_null();
	bad |= jset(o, "writer", w);
	if ((pr = json_array()) == NULL)
		bad = 1;
	for (int i = 1; pr && i < s->nparticipants && i <= DH_READERS_MAX; i++) {
		json_t *p;

		if (s->part[i].state == DH_P_FREE && !(flags & DH_STAT_ALL))
			continue;
		if ((p = json_participant(s, i)) == NULL || json_array_append_new(pr, p) < 0)
			bad = 1;
	}
	bad |= jset(o, "readers", pr);
	if (flags & DH_STAT_ALL)
		bad |= jset(o, "layout", json_layout(&s->lay));
out:
	if (bad) {
		json_decref(o);
		return NULL;
	}
	return o;
}

int
dh_stat_json(const struct dh_stat_channel *ch, size_t n, uint64_t now_ns, unsigned flags, char **out)
{
	json_t *doc, *arr;
	char *text, *nl;
	size_t len;

	doc = json_object();
	arr = json_array();
	if (!doc || !arr || json_object_set_new(doc, "time_ns", ju64(now_ns)) < 0)
		goto fail;
	for (size_t i = 0; i < n; i++) {
		json_t *c = json_channel(&ch[i], now_ns, flags);
		if (!c || json_array_append_new(arr, c) < 0)
			goto fail;
	}
	if (json_object_set_new(doc, "channels", arr) < 0) {
		arr = NULL;
		goto fail;
	}
	text = json_dumps(doc, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(6));
	json_decref(doc);
	if (!text)
		return -ENOMEM;
	len = strlen(text);
	if (!(nl = realloc(text, len + 2))) {
		free(text);
		return -ENOMEM;
	}
	nl[len] = '\n';
	nl[len + 1] = '\0';
	*out = nl;
	return 0;
fail:
	json_decref(arr);
	json_decref(doc);
	return -ENOMEM;
}

/* --- Prometheus ----------------------------------------------------------- */

struct sbuf {
	char *p;
	size_t len, cap;
	int oom;
};

static void __attribute__((format(printf, 2, 3)))
sb_printf(struct sbuf *b, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (b->oom)
		return;
	for (;;) {
		va_start(ap, fmt);
		n = vsnprintf(b->p ? b->p + b->len : NULL, b->p ? b->cap - b->len : 0, fmt, ap);
		va_end(ap);
		if (n < 0) {
			b->oom = 1;
			return;
		}
		if (b->p && b->len + (size_t)n < b->cap) {
			b->len += (size_t)n;
			return;
		}
		size_t ncap = b->cap ? b->cap : 4096;
		while (ncap <= b->len + (size_t)n)
			ncap *= 2;
		char *np = realloc(b->p, ncap);
		if (!np) {
			b->oom = 1;
			return;
		}
		b->p = np;
		b->cap = ncap;
	}
}

/* A label value: printable ASCII, with \ and " escaped; other bytes (which
 * could break UTF-8 or the line) become '?'. */
static const char *
label(const char *s, char *buf, size_t cap)
{
	size_t n = 0;

	for (; *s && n + 3 < cap; s++) {
		unsigned char c = (unsigned char)*s;

		if (c == '\\' || c == '"') {
			buf[n++] = '\\';
			buf[n++] = (char)c;
		} else {
			buf[n++] = c >= 0x20 && c < 0x7f ? (char)c : '?';
		}
	}
	buf[n] = '\0';
	return buf;
}

enum mtype { GAUGE, COUNTER };

/* One metric family of the channels, or of their readers.  Every value is
 * an integer; NS families hold nanoseconds and are exported in seconds. */
struct family {
	const char *name;
	enum mtype type;
	int ns;
	const char *help;
	/* 1 and *v if the channel (r < 0) or its reader r has a sample */
	int (*value)(const struct dh_stat_channel *c, const struct dh_stat *st, int r, uint64_t *v);
};

#define CHAN(fn, expr)                                                                           \
	static int fn(const struct dh_stat_channel *c, const struct dh_stat *st, int r, uint64_t *v) \
	{                                                                                        \
		const struct dh_snapshot *s = c->snap;                                           \
		(void)s;                                                                         \
		(void)st;                                                                        \
		(void)r;                                                                         \
		if (c->error)                                                                    \
			return 0;                                                                \
		*v = (uint64_t)(expr);                                                           \
		return 1;                                                                        \
	}

static int
v_up(const struct dh_stat_channel *c, const struct dh_stat *st, int r, uint64_t *v)
{
	(void)st;
	(void)r;
	*v = c->error == 0;
	return 1;
}

CHAN(v_slots, s->cfg.slots)
CHAN(v_slot_size, s->cfg.slot_size)
CHAN(v_max_readers, s->cfg.max_readers)
CHAN(v_segment, s->lay.total)
CHAN(v_created, s->created_ns)
CHAN(v_committed, s->committed)
CHAN(v_eos, s->eos != 0)
CHAN(v_health, st->level)
CHAN(v_writer_up, st->writer == DH_P_ALIVE)
CHAN(v_messages, s->messages_written)
CHAN(v_bytes, s->bytes_written)
CHAN(v_waits, s->writer_waits)
CHAN(v_wait_s, s->writer_wait_ns)
CHAN(v_reaped, s->readers_reaped)
CHAN(v_evictions, s->evictions)
CHAN(v_eos_count, s->eos_count)
CHAN(v_queue_lost, s->queue_lost)
CHAN(v_readers_lost, s->readers_lost)
CHAN(v_cksum, s->checksum_failures)
CHAN(v_schema_mm, s->schema_mismatches)
CHAN(v_key_mm, s->key_mismatches)
CHAN(v_ack_cksum, s->acked_checksum_failures)
CHAN(v_ack_schema_mm, s->acked_schema_mismatches)
CHAN(v_ack_key_mm, s->acked_key_mismatches)
CHAN(v_ack_queue_lost, s->acked_queue_lost)

static int
v_record(const struct dh_stat_channel *c, const struct dh_stat *st, int r, uint64_t *v)
{
	(void)st;
	(void)r;
	if (c->error || c->snap->record_size == 0)
		return 0;
	*v = c->snap->record_size;
	return 1;
}

static int
v_fill(const struct dh_stat_channel *c, const struct dh_stat *st, int r, uint64_t *v)
{
	(void)r;
	if (c->error || !st->lag_known)
		return 0;
	*v = st->fill;
	return 1;
}

static int
v_lag(const struct dh_stat_channel *c, const struct dh_stat *st, int r, uint64_t *v)
{
	if (c->error)
		return 0;
	if (r < 0) {
		if (!st->lag_known)
			return 0;
		*v = st->lag;
		return 1;
	}
	return dh_stat_lag(c->snap, r, v) == 0;
}

static int
v_writer_active(const struct dh_stat_channel *c, const struct dh_stat *st, int r, uint64_t *v)
{
	(void)r;
	if (c->error || st->writer == DH_P_FREE)
		return 0;
	*v = c->snap->part[0].last_active_ns;
	return 1;
}

#define READER(fn, expr)                                                                         \
	static int fn(const struct dh_stat_channel *c, const struct dh_stat *st, int r, uint64_t *v) \
	{                                                                                        \
		const struct dh_participant *p = &c->snap->part[r];                              \
		(void)st;                                                                        \
		*v = (uint64_t)(expr);                                                           \
		return 1;                                                                        \
	}

READER(r_up, p->state == DH_P_ALIVE)
READER(r_position, p->position)
READER(r_messages, p->messages)
READER(r_bytes, p->bytes)
READER(r_lost, p->lost)
READER(r_cksum, p->checksum_failures)
READER(r_active, p->last_active_ns)
READER(r_idle, p->idle_ns)

static const struct family chan_families[] = {
	{ "dh_channel_up", GAUGE, 0, "1 if the channel could be opened and read, 0 if not.", v_up },
	{ "dh_channel_slots", GAUGE, 0, "Number of message slots.", v_slots },
	{ "dh_channel_slot_size_bytes", GAUGE, 0, "Payload capacity of one slot.", v_slot_size },
	{ "dh_channel_max_readers", GAUGE, 0, "Reader entries in the participant table.", v_max_readers },
	{ "dh_channel_segment_bytes", GAUGE, 0, "Size of the shared-memory segment.", v_segment },
	{ "dh_channel_created_timestamp_seconds", GAUGE, 1, "Creation time of the channel.", v_created },
	{ "dh_channel_committed_sequence", GAUGE, 0, "Sequence number the next message gets.", v_committed },
	{ "dh_channel_end_of_stream", GAUGE, 0, "1 if end-of-stream is marked at the committed sequence.",
	  v_eos },
	{ "dh_channel_health", GAUGE, 0, "Health of the channel: 0 ok, 1 warn, 2 bad (see dh-stat(1)).",
	  v_health },
	{ "dh_channel_writer_up", GAUGE, 0, "1 if a live writer is attached.", v_writer_up },
	{ "dh_channel_writer_last_active_timestamp_seconds", GAUGE, 1, "Last activity of the writer entry.",
	  v_writer_active },
	{ "dh_channel_fill_slots", GAUGE, 0, "Slots holding messages the slowest live reader has not read.",
	  v_fill },
	{ "dh_channel_lag_messages", GAUGE, 0, "Messages the slowest live reader has not read yet.", v_lag },
	{ "dh_channel_messages_written_total", COUNTER, 0, "Messages committed by writers.", v_messages },
	{ "dh_channel_written_bytes_total", COUNTER, 0, "Payload bytes committed by writers.", v_bytes },
	{ "dh_channel_writer_waits_total", COUNTER, 0, "Times a writer had to wait for space.", v_waits },
	{ "dh_channel_writer_wait_seconds_total", COUNTER, 1, "Time writers spent waiting for space.",
	  v_wait_s },
	{ "dh_channel_readers_reaped_total", COUNTER, 0, "Dead readers whose entries were reclaimed.",
	  v_reaped },
	{ "dh_channel_evictions_total", COUNTER, 0, "Live readers evicted for stalling a sync writer.",
	  v_evictions },
	{ "dh_channel_end_of_stream_marks_total", COUNTER, 0, "Times end-of-stream was marked.", v_eos_count },
	{ "dh_channel_queue_lost_messages_total", COUNTER, 0,
	  "Queue messages lost because the reader that claimed them died.", v_queue_lost },
	{ "dh_channel_reader_lost_messages_total", COUNTER, 0,
	  "Messages readers lost to laps or asked for when no longer held, kept after they detach.", v_readers_lost },
	{ "dh_channel_checksum_failures_total", COUNTER, 0, "Messages that failed their checksum.", v_cksum },
	{ "dh_channel_schema_mismatches_total", COUNTER, 0, "Participants refused for a different schema.",
	  v_schema_mm },
	{ "dh_channel_key_mismatches_total", COUNTER, 0, "Participants refused for a wrong or missing key.",
	  v_key_mm },
	/* the part of the lifetime counters above that health no longer
	 * counts: unacknowledged = total - acknowledged */
	{ "dh_channel_acknowledged_checksum_failures_total", COUNTER, 0,
	  "Checksum failures dh-validate --repair acknowledged (health no longer counts them).", v_ack_cksum },
	{ "dh_channel_acknowledged_schema_mismatches_total", COUNTER, 0,
	  "Schema refusals dh-validate --repair acknowledged (health no longer counts them).", v_ack_schema_mm },
	{ "dh_channel_acknowledged_key_mismatches_total", COUNTER, 0,
	  "Key refusals dh-validate --repair acknowledged (health no longer counts them).", v_ack_key_mm },
	{ "dh_channel_acknowledged_queue_lost_messages_total", COUNTER, 0,
	  "Queue losses dh-validate --repair acknowledged (health no longer counts them).", v_ack_queue_lost },
	{ "dh_channel_record_size_bytes", GAUGE, 0, "Record size of the channel's schema.", v_record },
};

static const struct family reader_families[] = {
	{ "dh_reader_up", GAUGE, 0, "1 if the reader is alive, 0 if it died or was evicted.", r_up },
	{ "dh_reader_position", GAUGE, 0, "Next sequence number the reader reads.", r_position },
	{ "dh_reader_lag_messages", GAUGE, 0, "Messages committed that the reader has not read yet.", v_lag },
	{ "dh_reader_messages_total", COUNTER, 0, "Messages delivered to the reader since it attached.",
	  r_messages },
	{ "dh_reader_read_bytes_total", COUNTER, 0, "Payload bytes delivered to the reader since it attached.",
	  r_bytes },
	{ "dh_reader_lost_messages_total", COUNTER, 0, "Messages the reader lost since it attached.", r_lost },
	{ "dh_reader_checksum_failures_total", COUNTER, 0,
	  "Messages that failed their checksum at this reader.", r_cksum },
	{ "dh_reader_last_active_timestamp_seconds", GAUGE, 1, "Last activity of the reader.", r_active },
	{ "dh_reader_idle_seconds", GAUGE, 1, "Time since the reader's last activity (monotonic clock).",
	  r_idle },
};

/* Exact: nanoseconds print as seconds with nine decimals. */
static void
sample(struct sbuf *b, const char *name, const char *labels, uint64_t v, int ns)
{
	if (ns)
		sb_printf(b, "%s{%s} %llu.%09llu\n", name, labels, (unsigned long long)(v / 1000000000u),
			  (unsigned long long)(v % 1000000000u));
	else
		sb_printf(b, "%s{%s} %llu\n", name, labels, (unsigned long long)v);
}

static void
family_head(struct sbuf *b, const struct family *f)
{
	sb_printf(b, "# HELP %s %s\n# TYPE %s %s\n", f->name, f->help, f->name,
		  f->type == COUNTER ? "counter" : "gauge");
}

int
dh_stat_prometheus(const struct dh_stat_channel *ch, size_t n, uint64_t now_ns, unsigned flags,
		   char **out)
{
	static const char *const states[] = { "alive", "dead", "evicted", "unknown" };
	struct sbuf b = { 0 };
	struct dh_stat *st;
	char cl[4 * DH_NAME_MAX + 16], nl[4 * DH_PNAME_MAX + 8], labels[sizeof cl + sizeof nl + 64];
	uint64_t v;

	(void)flags;
	if (!(st = calloc(n ? n : 1, sizeof *st)))
		return -ENOMEM;
	for (size_t i = 0; i < n; i++)
		if (ch[i].error == 0)
			dh_stat_derive(ch[i].snap, now_ns, &st[i]);

	for (size_t f = 0; f < sizeof chan_families / sizeof chan_families[0]; f++) {
		const struct family *fam = &chan_families[f];

		family_head(&b, fam);
		for (size_t i = 0; i < n; i++) {
			if (!fam->value(&ch[i], &st[i], -1, &v))
				continue;
			snprintf(labels, sizeof labels, "channel=\"%s\"", label(ch[i].name, cl, sizeof cl));
			sample(&b, fam->name, labels, v, fam->ns);
		}
	}

	/* the families with extra labels */
	sb_printf(&b, "# HELP dh_channel_info Constant 1, with the channel's policy and checksum kind.\n"
		      "# TYPE dh_channel_info gauge\n");
	for (size_t i = 0; i < n; i++) {
		if (ch[i].error)
			continue;
		snprintf(labels, sizeof labels, "channel=\"%s\",policy=\"%s\",checksum=\"%s\"",
			 label(ch[i].name, cl, sizeof cl), dh_policy_name(ch[i].snap->cfg.policy),
			 dh_checksum_name(ch[i].snap->cfg.checksum));
		sample(&b, "dh_channel_info", labels, 1, 0);
	}
	sb_printf(&b, "# HELP dh_channel_readers Reader entries in use, by state.\n"
		      "# TYPE dh_channel_readers gauge\n");
	for (size_t i = 0; i < n; i++) {
		unsigned counts[4];

		if (ch[i].error)
			continue;
		counts[0] = st[i].readers_alive;
		counts[1] = st[i].readers_dead;
		counts[2] = st[i].readers_evicted;
		counts[3] = st[i].readers_unknown;
		for (int k = 0; k < 4; k++) {
			snprintf(labels, sizeof labels, "channel=\"%s\",state=\"%s\"",
				 label(ch[i].name, cl, sizeof cl), states[k]);
			sample(&b, "dh_channel_readers", labels, counts[k], 0);
		}
	}

	/* which conditions make dh_channel_health what it is now: alert on one
	 * without decoding the level */
	sb_printf(&b, "# HELP dh_channel_health_condition 1 if the health condition holds now (see dh-stat(1)).\n"
		      "# TYPE dh_channel_health_condition gauge\n");
	for (size_t i = 0; i < n; i++) {
		if (ch[i].error)
			continue;
		for (int k = 0; k < DH_HEALTH_NBITS; k++) {
			snprintf(labels, sizeof labels, "channel=\"%s\",condition=\"%s\"",
				 label(ch[i].name, cl, sizeof cl), dh_health_name(1u << k));
			sample(&b, "dh_channel_health_condition", labels, (st[i].health >> k) & 1u, 0);
		}
	}

	for (size_t f = 0; f < sizeof reader_families / sizeof reader_families[0]; f++) {
		const struct family *fam = &reader_families[f];

		family_head(&b, fam);
		for (size_t i = 0; i < n; i++) {
			const struct dh_snapshot *s = ch[i].snap;

			if (ch[i].error)
				continue;
			for (int r = 1; r < s->nparticipants && r <= DH_READERS_MAX; r++) {
				if (s->part[r].state == DH_P_FREE || !fam->value(&ch[i], &st[i], r, &v))
					continue;
				snprintf(labels, sizeof labels, "channel=\"%s\",reader=\"%d\",reader_name=\"%s\"",
					 label(ch[i].name, cl, sizeof cl), r,
					 label(s->part[r].name, nl, sizeof nl));
				sample(&b, fam->name, labels, v, fam->ns);
			}
		}
	}
	free(st);
	if (b.oom || !b.p) {
		free(b.p);
		return -ENOMEM;
	}
	*out = b.p;
	return 0;
}
