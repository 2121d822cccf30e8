/* broker.c: the broker's request handler: validation, registry, liveness, events. See LICENSE. */
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>
#include <sodium.h>

#include "dh_broker.h"
#include "dh.h"
#include "dh_error.h"


#define MS 1000000LL

struct reader {
	char token[DH_BROKER_TOKEN_LEN + 1];
	char peer[DH_BROKER_PEER_MAX + 1];
	pid_t pid;
	char label[DH_BROKER_LABEL_MAX + 1];
	int has_schema;
	uint8_t schema_hash[32];
	char endpoint[DH_BROKER_HOST_MAX + 1]; /* a dh-net exporter's (transport zmq), "" for shm */
	int subscriber;            /* zmq: reads through the exporter at endpoint, is none */
	int stale;
	int64_t last_ns;           /* last heartbeat (or registration), monotonic */
	int64_t since_ms;          /* registration, realtime */
	json_t *metrics;           /* object or NULL */
};

struct chan {
	char token[DH_BROKER_TOKEN_LEN + 1];
	char peer[DH_BROKER_PEER_MAX + 1];
	char name[DH_NAME_MAX + 1];
	char host[DH_BROKER_HOST_MAX + 1];
	pid_t pid;
	char label[DH_BROKER_LABEL_MAX + 1];
	enum dh_policy policy;
	uint32_t slots, slot_size, max_readers;
	enum dh_checksum checksum;
	int has_schema;
	uint8_t schema_hash[32];
	char *schema;              /* canonical form or NULL */
	int keyed;
	uint8_t key_id[32];
	int stale;
	int64_t last_ns, since_ms;
	uint64_t serial;           /* registration order: the list cursor */
	json_t *metrics;
	struct reader *readers;
	unsigned nreaders, capreaders;
};

struct dh_broker {
	struct dh_broker_config cfg;
	char *events;
	struct chan **chans;
	unsigned nchans, capchans;
	unsigned nreaders;
	uint64_t event_seq;
	uint64_t serial;           /* last chan->serial handed out */
};

/* One request being served. */
struct req {
	struct dh_broker *b;
	json_t *root;
	const char *peer;
	int64_t now;
	json_t *id;                /* borrowed from root, or NULL */
	const char *type;
	/* outcome: either rep (ok) or code + msg */
	json_t *rep;
	const char *code;
	char msg[256];
};

void
dh_broker_config_init(struct dh_broker_config *cfg)
{
	memset(cfg, 0, sizeof *cfg);
	cfg->heartbeat_ns = 1000 * MS;
	cfg->stale_misses = 3;
	cfg->expire_misses = 10;
	cfg->max_regs = 4096;
	cfg->max_per_peer = 256;
	cfg->max_readers = DH_READERS_MAX;
	cfg->page_bytes = DH_BROKER_PAGE_BYTES;
}

int
dh_broker_new(const struct dh_broker_config *cfg, struct dh_broker **out)
{
	struct dh_broker *b;

	*out = NULL;
	if (cfg->heartbeat_ns <= 0 || cfg->heartbeat_ns > 3600 * 1000 * MS || cfg->stale_misses == 0 ||
	    cfg->expire_misses <= cfg->stale_misses || cfg->expire_misses > 1000 || cfg->max_regs == 0 ||
	    cfg->max_per_peer == 0 || cfg->max_readers == 0 || cfg->page_bytes == 0)
		return -EINVAL;
	if (sodium_init() < 0)
		return -ENOSYS;
	if ((b = calloc(1, sizeof *b)) == NULL)
		return -ENOMEM;
	b->cfg = *cfg;
	if (cfg->events && (b->events = strdup(cfg->events)) == NULL) {
		free(b);
		return -ENOMEM;
	}
	b->cfg.events = b->events;
	*out = b;
	return 0;
}

static void
chan_free(struct chan *c)
{
	if (c == NULL)
		return;
	for (unsigned i = 0; i < c->nreaders; i++)
		json_decref(c->readers[i].metrics);
	free(c->readers);
	free(c->schema);
	json_decref(c->metrics);
	free(c);
}

void
dh_broker_free(struct dh_broker *b)
{
	if (b == NULL)
		return;
	for (unsigned i = 0; i < b->nchans; i++)
		chan_free(b->chans[i]);
	free(b->chans);
	free(b->events);
	free(b);
}

unsigned
dh_broker_count(const struct dh_broker *b, unsigned *readers)
{
	if (readers)
		*readers = b->nreaders;
	return b->nchans;
}

/* ---- small helpers ------------------------------------------------------ */

static int64_t
realtime_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* s made printable ASCII for messages and logs: other bytes become '?',
 * cut with "..." beyond max bytes. */
static const char *
safe(const char *s, size_t len, char *buf, size_t cap, size_t max)
{
	size_t i, o = 0;

	if (max + 4 > cap)
		max = cap - 4;
	for (i = 0; i < len && o < max; i++) {
		unsigned char c = (unsigned char)s[i];
		buf[o++] = c >= 0x20 && c < 0x7f ? (char)c : '?';
	}
	if (i < len) {
		memcpy(buf + o, "...", 3);
		o += 3;
	}
	buf[o] = '\0';
	return buf;
}

static void
hex(const uint8_t *p, size_t n, char *out)
{
	static const char digits[] = "0123456789abcdef";

	for (size_t i = 0; i < n; i++) {
		out[2 * i] = digits[p[i] >> 4];
		out[2 * i + 1] = digits[p[i] & 15];
	}
	out[2 * n] = '\0';
}

static int
unhex(const char *s, size_t len, uint8_t *out, size_t n)
{
	if (len != 2 * n)
		return -1;
	for (size_t i = 0; i < 2 * n; i++) {
		char c = s[i];
		int v = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
		if (v < 0)
			return -1;
		if (i % 2 == 0)
			out[i / 2] = (uint8_t)(v << 4);
		else
			out[i / 2] |= (uint8_t)v;
	}
	return 0;
}

static json_t *
hexstr(const uint8_t *p, size_t n)
{
	char buf[2 * 32 + 1];

	hex(p, n, buf);
	return json_string(buf);
}

#if defined(__GNUC__)
__attribute__((format(printf, 3, 4)))
#endif
static void
logf_(struct dh_broker *b, int detail, const char *fmt, ...)
{
	char buf[512];
	va_list ap;

	if (b->cfg.log == NULL)
		return;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof buf, fmt, ap);
	va_end(ap);
	b->cfg.log(b->cfg.arg, detail, buf);
}

/* Publish an event: "event", "seq" and "time_ms" first, then body's members
 * (body is consumed). */
static void
emit(struct dh_broker *b, const char *name, json_t *body)
{
	json_t *ev;
	const char *k;
	json_t *v;
	char *s;

	b->event_seq++;
	if (b->cfg.emit == NULL) {
		json_decref(body);
		return;
	}
	ev = json_object();
	if (ev == NULL || json_object_set_new(ev, "event", json_string(name)) < 0 ||
	    json_object_set_new(ev, "seq", json_integer((json_int_t)b->event_seq)) < 0 ||
	    json_object_set_new(ev, "time_ms", json_integer(realtime_ms())) < 0)
		goto out;
	if (body)
		json_object_foreach(body, k, v)
			if (json_object_get(ev, k) == NULL) /* the envelope stays */
				json_object_set(ev, k, v);
	s = json_dumps(ev, JSON_COMPACT);
	if (s) {
		b->cfg.emit(b->cfg.arg, s, strlen(s));
		free(s);
	}
out:
	json_decref(ev);
	json_decref(body);
}

static int
token_new(char token[DH_BROKER_TOKEN_LEN + 1])
{
	uint8_t r[DH_BROKER_TOKEN_LEN / 2];

	randombytes_buf(r, sizeof r);
	hex(r, sizeof r, token);
	sodium_memzero(r, sizeof r);
	return 0;
}

static int
token_eq(const char *a, const char *b)
{
	return sodium_memcmp(a, b, DH_BROKER_TOKEN_LEN) == 0;
}

static struct chan *
chan_find(struct dh_broker *b, const char *host, const char *name, unsigned *idx)
{
	for (unsigned i = 0; i < b->nchans; i++)
		if (strcmp(b->chans[i]->name, name) == 0 && strcmp(b->chans[i]->host, host) == 0) {
			if (idx)
				*idx = i;
			return b->chans[i];
		}
	return NULL;
}

static unsigned
peer_count(struct dh_broker *b, const char *peer)
{
	unsigned n = 0;

	for (unsigned i = 0; i < b->nchans; i++) {
		struct chan *c = b->chans[i];
		n += strcmp(c->peer, peer) == 0;
		for (unsigned j = 0; j < c->nreaders; j++)
			n += strcmp(c->readers[j].peer, peer) == 0;
	}
	return n;
}

static void
chan_remove(struct dh_broker *b, unsigned i)
{
	struct chan *c = b->chans[i];

	b->nreaders -= c->nreaders;
	chan_free(c);
	memmove(&b->chans[i], &b->chans[i + 1], (b->nchans - i - 1) * sizeof b->chans[0]);
	b->nchans--;
}

static void
reader_remove(struct dh_broker *b, struct chan *c, unsigned j)
{
	json_decref(c->readers[j].metrics);
	memmove(&c->readers[j], &c->readers[j + 1], (c->nreaders - j - 1) * sizeof c->readers[0]);
	c->nreaders--;
	b->nreaders--;
}

static json_t *
chan_ident(const struct chan *c)
{
	return json_pack("{s:s,s:s,s:i}", "channel", c->name, "host", c->host, "pid", (int)c->pid);
}

static json_t *
reader_ident(const struct chan *c, const struct reader *r)
{
	json_t *o = json_pack("{s:s,s:s,s:i}", "channel", c->name, "host", c->host, "pid", (int)r->pid);

	if (o && r->label[0])
		json_object_set_new(o, "label", json_string(r->label));
	return o;
}

static int64_t
age_ms(int64_t now, int64_t last)
{
	return now > last ? (now - last) / MS : 0;
}

/* The full description of a channel, as discover and list return it. */
static json_t *
chan_json(const struct chan *c, int64_t now)
{
	json_t *o, *rs;

	o = json_pack("{s:s,s:s,s:s,s:i,s:s,s:s,s:I,s:I,s:I,s:s}", "channel", c->name, "host", c->host,
		      "state", c->stale ? "stale" : "live", "pid", (int)c->pid, "label", c->label,
		      "policy", dh_policy_name(c->policy), "slots", (json_int_t)c->slots, "slot_size",
		      (json_int_t)c->slot_size, "max_readers", (json_int_t)c->max_readers, "checksum",
		      dh_checksum_name(c->checksum));
	if (o == NULL)
		return NULL;
	json_object_set_new(o, "schema_hash", c->has_schema ? hexstr(c->schema_hash, 32) : json_null());
	json_object_set_new(o, "schema", c->schema ? json_string(c->schema) : json_null());
	json_object_set_new(o, "key_id", c->keyed ? hexstr(c->key_id, 32) : json_null());
	json_object_set_new(o, "since_ms", json_integer(c->since_ms));
	json_object_set_new(o, "age_ms", json_integer(age_ms(now, c->last_ns)));
	json_object_set_new(o, "metrics", c->metrics ? json_incref(c->metrics) : json_object());
	/* protocol 3: where the data can be had from another host */
	const char *zep = NULL;
	for (unsigned j = 0; zep == NULL && j < c->nreaders; j++)
		if (c->readers[j].endpoint[0] && !c->readers[j].subscriber && !c->readers[j].stale)
			zep = c->readers[j].endpoint;
	json_object_set_new(o, "data_transport", json_string(zep ? "zmq" : "shm"));
	json_object_set_new(o, "zmq_endpoint", zep ? json_string(zep) : json_null());
	rs = json_array();
	for (unsigned j = 0; rs && j < c->nreaders; j++) {
		const struct reader *r = &c->readers[j];
		json_t *ro = json_pack("{s:i,s:s,s:s,s:I,s:I}", "pid", (int)r->pid, "label", r->label, "state",
				       r->stale ? "stale" : "live", "since_ms", (json_int_t)r->since_ms,
				       "age_ms", (json_int_t)age_ms(now, r->last_ns));
		if (ro) {
			json_object_set_new(ro, "schema_hash",
					    r->has_schema ? hexstr(r->schema_hash, 32) : json_null());
			json_object_set_new(ro, "metrics", r->metrics ? json_incref(r->metrics) : json_object());
			json_object_set_new(ro, "transport", json_string(r->endpoint[0] ? "zmq" : "shm"));
			json_object_set_new(ro, "endpoint", r->endpoint[0] ? json_string(r->endpoint) : json_null());
			json_object_set_new(ro, "role", json_string(!r->endpoint[0] ? "reader"
								    : r->subscriber ? "subscriber" : "exporter"));
		}
		json_array_append_new(rs, ro);
	}
	json_object_set_new(o, "readers", rs);
	return o;
}

/* ---- liveness ------------------------------------------------------------ */

int64_t
dh_broker_tick(struct dh_broker *b, int64_t now)
{
	int64_t iv = b->cfg.heartbeat_ns;
	int64_t stale = iv * b->cfg.stale_misses, expire = iv * b->cfg.expire_misses;
	int64_t next = iv;
	unsigned i, j;

#define DUE(last, limit) ((now - (last)) >= (limit))
#define NEXT(last, limit)                                   \
	do {                                                \
		int64_t d_ = (last) + (limit) - now;        \
		if (d_ > 0 && d_ < next)                    \
			next = d_;                          \
	} while (0)

	for (i = b->nchans; i-- > 0;) {
		struct chan *c = b->chans[i];

		for (j = c->nreaders; j-- > 0;) {
			struct reader *r = &c->readers[j];
			if (DUE(r->last_ns, expire)) {
				json_t *ev = reader_ident(c, r);
				json_object_set_new(ev, "reason", json_string("expired"));
				logf_(b, 0, "%s: reader pid %d on %s died (no heartbeat for %lld ms)", c->name,
				      (int)r->pid, c->host, (long long)((now - r->last_ns) / MS));
				emit(b, "reader_died", ev);
				reader_remove(b, c, j);
				continue;
			}
			if (!r->stale && DUE(r->last_ns, stale)) {
				json_t *ev = reader_ident(c, r);
				r->stale = 1;
				json_object_set_new(ev, "role", json_string("reader"));
				emit(b, "stale", ev);
			}
			if (!r->stale)
				NEXT(r->last_ns, stale);
			NEXT(r->last_ns, expire);
		}
		if (DUE(c->last_ns, expire)) {
			json_t *ev = chan_ident(c);
			json_object_set_new(ev, "reason", json_string("expired"));
			logf_(b, 0, "%s: writer pid %d on %s expired (no heartbeat for %lld ms)", c->name,
			      (int)c->pid, c->host, (long long)((now - c->last_ns) / MS));
			emit(b, "closed", ev);
			chan_remove(b, i);
			continue;
		}
		if (!c->stale && DUE(c->last_ns, stale)) {
			json_t *ev = chan_ident(c);
			c->stale = 1;
			json_object_set_new(ev, "role", json_string("writer"));
			logf_(b, 0, "%s: writer pid %d on %s is stale", c->name, (int)c->pid, c->host);
			emit(b, "stale", ev);
		}
		if (!c->stale)
			NEXT(c->last_ns, stale);
		NEXT(c->last_ns, expire);
	}
#undef DUE
#undef NEXT
	return next;
}

/* ---- request validation ---------------------------------------------------- */

#if defined(__GNUC__)
__attribute__((format(printf, 3, 4)))
#endif
static int
fail(struct req *q, const char *code, const char *fmt, ...)
{
	va_list ap;
	char raw[256];

	va_start(ap, fmt);
	vsnprintf(raw, sizeof raw, fmt, ap);
	va_end(ap);
	q->code = code;
	safe(raw, strlen(raw), q->msg, sizeof q->msg, sizeof q->msg - 4);
	return -1;
}

/* Nesting of JSON text: 0 if deeper than max (strings skipped). */
static int
depth_ok(const unsigned char *p, size_t n, int max)
{
	int d = 0, in_str = 0;

	for (size_t i = 0; i < n; i++) {
		unsigned char c = p[i];
		if (in_str) {
			if (c == '\\')
				i++;
			else if (c == '"')
				in_str = 0;
		} else if (c == '"') {
			in_str = 1;
		} else if (c == '{' || c == '[') {
			if (++d > max)
				return 0;
		} else if (c == '}' || c == ']') {
			d--;
		}
	}
	return 1;
}

/* Only the listed fields (plus "id" and "type") may appear. */
static int
only(struct req *q, const char *const *fields)
{
	const char *k;
	json_t *v;
	char buf[48];

	json_object_foreach(q->root, k, v) {
		const char *const *f;
		if (strcmp(k, "id") == 0 || strcmp(k, "type") == 0)
			continue;
		for (f = fields; *f; f++)
			if (strcmp(k, *f) == 0)
				break;
		if (*f == NULL)
			return fail(q, "invalid_request", "unknown field \"%s\" in %s",
				    safe(k, strlen(k), buf, sizeof buf, 32), q->type);
	}
	return 0;
}

enum { OPT = 0, REQ = 1 };

/* A member that must be absent (or null) unless required. 1 if present. */
static int
member(struct req *q, const char *key, int required, json_t **out)
{
	json_t *v = json_object_get(q->root, key);

	*out = NULL;
	if (v == NULL || json_is_null(v)) {
		if (required)
			return fail(q, "invalid_request", "\"%s\": missing", key);
		return 0;
	}
	*out = v;
	return 1;
}

enum { CH_PRINT = 1, CH_HOST = 2, CH_TEXT = 3, CH_METRIC = 4 };

static int
char_ok(unsigned char c, int class)
{
	switch (class) {
	case CH_PRINT:
		return c > 0x20 && c < 0x7f;
	case CH_HOST:
	case CH_METRIC:
		return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		       c == '.' || c == '_' || c == '-' || (class == CH_HOST && c == ':');
	default: /* UTF-8 text without control characters */
		return c >= 0x20 && c != 0x7f;
	}
}

/* String member: length in [min, max] bytes, every byte of class. 1 if
 * present, 0 if absent (optional), -1 on error. */
static int
get_str(struct req *q, const char *key, int required, size_t min, size_t max, int class,
	const char **out)
{
	json_t *v;
	const char *s;
	size_t len;
	int r;

	*out = NULL;
	if ((r = member(q, key, required, &v)) <= 0)
		return r;
	if (!json_is_string(v))
		return fail(q, "invalid_request", "\"%s\": not a string", key);
	s = json_string_value(v);
	len = json_string_length(v);
	if (len < min || len > max)
		return fail(q, "invalid_request", "\"%s\": length %zu not in %zu..%zu bytes", key, len,
			    min, max);
	for (size_t i = 0; i < len; i++) {
		/* jansson checked the UTF-8: U+0080..U+009F (C1 controls) are
		 * exactly the pairs C2 80..C2 9F */
		if (!char_ok((unsigned char)s[i], class) ||
		    (class == CH_TEXT && (unsigned char)s[i] == 0xc2 && i + 1 < len &&
		     (unsigned char)s[i + 1] <= 0x9f))
			return fail(q, "invalid_request", "\"%s\": invalid character at byte %zu", key, i);
	}
	*out = s;
	return 1;
}

static int
get_int(struct req *q, const char *key, int required, json_int_t min, json_int_t max, json_int_t *out)
{
	json_t *v;
	int r;

	if ((r = member(q, key, required, &v)) <= 0)
		return r;
	if (!json_is_integer(v))
		return fail(q, "invalid_request", "\"%s\": not an integer", key);
	*out = json_integer_value(v);
	if (*out < min || *out > max)
		return fail(q, "invalid_request", "\"%s\": %" JSON_INTEGER_FORMAT " not in %" JSON_INTEGER_FORMAT
			    "..%" JSON_INTEGER_FORMAT, key, *out, min, max);
	return 1;
}

static int
get_hash(struct req *q, const char *key, int required, uint8_t out[32], int *has)
{
	const char *s;
	int r;

	*has = 0;
	if ((r = get_str(q, key, required, 64, 64, CH_PRINT, &s)) <= 0)
		return r;
	if (unhex(s, 64, out, 32) < 0)
		return fail(q, "invalid_request", "\"%s\": not 64 lowercase hex digits", key);
	*has = 1;
	return 1;
}

static int
get_channel(struct req *q, int required, const char **out)
{
	int r;

	if ((r = get_str(q, "channel", required, 1, DH_NAME_MAX, CH_PRINT, out)) <= 0)
		return r;
	if (dh_name_check(*out) < 0)
		return fail(q, "invalid_request", "\"channel\": invalid channel name");
	return 1;
}

static int
get_token(struct req *q, const char **out)
{
	int r;
	uint8_t raw[DH_BROKER_TOKEN_LEN / 2];

	if ((r = get_str(q, "token", REQ, DH_BROKER_TOKEN_LEN, DH_BROKER_TOKEN_LEN, CH_PRINT, out)) <= 0)
		return r < 0 ? r : -1;
	if (unhex(*out, DH_BROKER_TOKEN_LEN, raw, sizeof raw) < 0)
		return fail(q, "invalid_request", "\"token\": not %d lowercase hex digits", DH_BROKER_TOKEN_LEN);
	return 1;
}

/* The metrics object: at most DH_BROKER_METRICS_MAX numbers. A new
 * reference in *out, or NULL when absent. */
static int
get_metrics(struct req *q, json_t **out)
{
	json_t *v, *m;
	const char *k;
	int r;

	*out = NULL;
	if ((r = member(q, "metrics", OPT, &v)) <= 0)
		return r;
	if (!json_is_object(v))
		return fail(q, "invalid_request", "\"metrics\": not an object");
	if (json_object_size(v) > DH_BROKER_METRICS_MAX)
		return fail(q, "invalid_request", "\"metrics\": more than %d entries", DH_BROKER_METRICS_MAX);
	json_object_foreach(v, k, m) {
		size_t len = strlen(k);
		char buf[48];
		if (len == 0 || len > DH_BROKER_METRIC_NAME_MAX)
			return fail(q, "invalid_request", "\"metrics\": name of %zu bytes", len);
		for (size_t i = 0; i < len; i++)
			if (!char_ok((unsigned char)k[i], CH_METRIC))
				return fail(q, "invalid_request", "\"metrics\": invalid name \"%s\"",
					    safe(k, len, buf, sizeof buf, 32));
		if (!json_is_integer(m) && !json_is_real(m))
			return fail(q, "invalid_request", "\"metrics\": \"%s\" is not a number",
				    safe(k, len, buf, sizeof buf, 32));
	}
	*out = json_incref(v);
	return 1;
}

static json_t *
ok_reply(struct req *q)
{
	q->rep = json_pack("{s:O,s:s}", "id", q->id, "status", "ok");
	return q->rep;
}

static void
lifetimes(struct req *q)
{
	const struct dh_broker_config *c = &q->b->cfg;

	json_object_set_new(q->rep, "heartbeat_ms", json_integer(c->heartbeat_ns / MS));
	json_object_set_new(q->rep, "stale_ms", json_integer(c->heartbeat_ns * c->stale_misses / MS));
	json_object_set_new(q->rep, "expire_ms", json_integer(c->heartbeat_ns * c->expire_misses / MS));
}

static int
room(struct req *q, int new_reg)
{
	struct dh_broker *b = q->b;

	if (new_reg && b->nchans + b->nreaders >= b->cfg.max_regs)
		return fail(q, "too_many", "broker full: %u registrations", b->cfg.max_regs);
	if (peer_count(b, q->peer) >= b->cfg.max_per_peer)
		return fail(q, "too_many", "at most %u registrations per client", b->cfg.max_per_peer);
	return 0;
}

/* ---- requests ---------------------------------------------------------------- */

static int
do_ping(struct req *q)
{
	static const char *const fields[] = { NULL };
	unsigned readers, chans;

	if (only(q, fields) < 0 || ok_reply(q) == NULL)
		return -1;
	chans = dh_broker_count(q->b, &readers);
	json_object_set_new(q->rep, "protocol", json_integer(DH_BROKER_PROTOCOL));
	json_object_set_new(q->rep, "version", json_string(DH_VERSION));
	lifetimes(q);
	json_object_set_new(q->rep, "events", q->b->events ? json_string(q->b->events) : json_null());
	json_object_set_new(q->rep, "channels", json_integer(chans));
	json_object_set_new(q->rep, "readers", json_integer(readers));
	return 0;
}

static int
do_register(struct req *q)
{
	static const char *const fields[] = { "channel", "host", "pid", "label", "policy", "slots",
		"slot_size", "max_readers", "checksum", "schema_hash", "schema", "key_id", NULL };
	struct dh_broker *b = q->b;
	struct chan n, *old, *c;
	const char *name, *host, *label, *policy, *checksum, *schema;
	json_int_t pid, slots, slot_size, max_readers;
	unsigned idx = 0;
	char names[128];

	memset(&n, 0, sizeof n);
	if (only(q, fields) < 0 || get_channel(q, REQ, &name) < 0 ||
	    get_str(q, "host", REQ, 1, DH_BROKER_HOST_MAX, CH_HOST, &host) < 0 ||
	    get_int(q, "pid", REQ, 1, INT_MAX, &pid) < 0 ||
	    get_str(q, "label", OPT, 0, DH_BROKER_LABEL_MAX, CH_TEXT, &label) < 0 ||
	    get_str(q, "policy", REQ, 1, 16, CH_PRINT, &policy) < 0 ||
	    get_int(q, "slots", REQ, 1, DH_SLOTS_MAX, &slots) < 0 ||
	    get_int(q, "slot_size", REQ, 1, DH_SLOT_SIZE_MAX, &slot_size) < 0 ||
	    get_int(q, "max_readers", REQ, 1, DH_READERS_MAX, &max_readers) < 0 ||
	    get_str(q, "checksum", REQ, 1, 16, CH_PRINT, &checksum) < 0 ||
	    get_hash(q, "schema_hash", OPT, n.schema_hash, &n.has_schema) < 0 ||
	    get_str(q, "schema", OPT, 1, DH_BROKER_SCHEMA_MAX, CH_PRINT, &schema) < 0 ||
	    get_hash(q, "key_id", OPT, n.key_id, &n.keyed) < 0)
		return -1;
	if (dh_policy_parse(policy, &n.policy) < 0)
		return fail(q, "invalid_request", "\"policy\": not one of %s",
			    dh_policy_names(", ", names, sizeof names));
	if (strcmp(checksum, dh_checksum_name(DH_CHECKSUM_MAC)) == 0)
		n.checksum = DH_CHECKSUM_MAC;
	else if (dh_checksum_parse(checksum, &n.checksum) < 0)
		return fail(q, "invalid_request", "\"checksum\": not one of %s, %s",
			    dh_checksum_names(", ", names, sizeof names), dh_checksum_name(DH_CHECKSUM_MAC));
	if (schema) {
		uint8_t h[32];
		if (!n.has_schema)
			return fail(q, "invalid_request", "\"schema\" needs \"schema_hash\"");
		crypto_generichash(h, sizeof h, (const unsigned char *)schema, strlen(schema), NULL, 0);
		if (sodium_memcmp(h, n.schema_hash, 32) != 0)
			return fail(q, "invalid_request", "\"schema_hash\" is not the hash of \"schema\"");
	}

	old = chan_find(b, host, name, &idx);
	if (old && old->pid != (pid_t)pid && !old->stale)
		return fail(q, "conflict", "channel %s on %s has a live writer (pid %d)", name, host,
			    (int)old->pid);
	if (n.has_schema)
		for (unsigned i = 0; i < b->nchans; i++) {
			c = b->chans[i];
			if (c == old || c->stale || !c->has_schema || strcmp(c->name, name) != 0 ||
			    sodium_memcmp(c->schema_hash, n.schema_hash, 32) == 0)
				continue;
			json_t *ev = json_pack("{s:s,s:s,s:I,s:s}", "channel", name, "host", host, "pid", pid,
					       "role", "writer");
			json_object_set_new(ev, "schema_hash", hexstr(n.schema_hash, 32));
			json_object_set_new(ev, "existing_host", json_string(c->host));
			json_object_set_new(ev, "existing_pid", json_integer(c->pid));
			json_object_set_new(ev, "existing_schema_hash", hexstr(c->schema_hash, 32));
			emit(b, "schema_conflict", ev);
			return fail(q, "schema_mismatch", "channel %s is registered on %s with another schema",
				    name, c->host);
		}
	if (old == NULL || strcmp(old->peer, q->peer) != 0)
		if (room(q, old == NULL) < 0)
			return -1;

	if (old == NULL) {
		if (b->nchans == b->capchans) {
			unsigned cap = b->capchans ? 2 * b->capchans : 16;
			struct chan **p = realloc(b->chans, cap * sizeof *p);
			if (p == NULL)
				return fail(q, "internal", "out of memory");
			b->chans = p;
			b->capchans = cap;
		}
		if ((c = calloc(1, sizeof *c)) == NULL)
			return fail(q, "internal", "out of memory");
		c->serial = ++b->serial;
	} else {
		c = old;
		if (old->pid != (pid_t)pid) {
			json_t *ev = chan_ident(old);
			json_object_set_new(ev, "reason", json_string("replaced"));
			emit(b, "closed", ev);
		}
	}
	char *sc = NULL;
	if (schema && (sc = strdup(schema)) == NULL) {
		if (old == NULL)
			free(c);
		return fail(q, "internal", "out of memory");
	}
	free(c->schema);
	c->schema = sc;
	token_new(c->token);
	snprintf(c->peer, sizeof c->peer, "%s", q->peer);
	snprintf(c->name, sizeof c->name, "%s", name);
	snprintf(c->host, sizeof c->host, "%s", host);
	snprintf(c->label, sizeof c->label, "%s", label ? label : "");
	c->pid = (pid_t)pid;
	c->policy = n.policy;
	c->slots = (uint32_t)slots;
	c->slot_size = (uint32_t)slot_size;
	c->max_readers = (uint32_t)max_readers;
	c->checksum = n.checksum;
	c->has_schema = n.has_schema;
	memcpy(c->schema_hash, n.schema_hash, 32);
	c->keyed = n.keyed;
	memcpy(c->key_id, n.key_id, 32);
	c->stale = 0;
	c->last_ns = q->now;
	c->since_ms = realtime_ms();
	json_decref(c->metrics);
	c->metrics = NULL;
	if (old == NULL)
		b->chans[b->nchans++] = c;

	json_t *ev = chan_json(c, q->now);
	json_object_del(ev, "readers");
	json_object_del(ev, "metrics");
	json_object_del(ev, "state");
	json_object_del(ev, "age_ms");
	emit(b, "registered", ev);
	if (ok_reply(q) == NULL)
		return -1;
	json_object_set_new(q->rep, "token", json_string(c->token));
	lifetimes(q);
	return 0;
}

static int
do_reader(struct req *q)
{
	static const char *const fields[] = { "channel", "host", "pid", "label", "schema_hash", "transport",
		"endpoint", "role", NULL };
	struct dh_broker *b = q->b;
	const char *name, *host, *label, *transport, *endpoint, *role;
	struct reader *r = NULL;
	struct chan *c;
	json_int_t pid;
	uint8_t hash[32];
	int has_schema;
	unsigned j;

	if (only(q, fields) < 0 || get_channel(q, REQ, &name) < 0 ||
	    get_str(q, "host", REQ, 1, DH_BROKER_HOST_MAX, CH_HOST, &host) < 0 ||
	    get_int(q, "pid", REQ, 1, INT_MAX, &pid) < 0 ||
	    get_str(q, "label", OPT, 0, DH_BROKER_LABEL_MAX, CH_TEXT, &label) < 0 ||
	    get_hash(q, "schema_hash", OPT, hash, &has_schema) < 0 ||
	    get_str(q, "transport", OPT, 3, 3, CH_PRINT, &transport) < 0 ||
	    get_str(q, "endpoint", OPT, 1, DH_BROKER_HOST_MAX, CH_PRINT, &endpoint) < 0 ||
	    get_str(q, "role", OPT, 1, 16, CH_PRINT, &role) < 0)
		return -1;
	if (transport && strcmp(transport, "shm") != 0 && strcmp(transport, "zmq") != 0)
		return fail(q, "invalid_request", "\"transport\" must be \"shm\" or \"zmq\"");
	if ((transport && strcmp(transport, "zmq") == 0) != (endpoint != NULL))
		return fail(q, "invalid_request", "\"endpoint\" goes with \"transport\":\"zmq\" and only with it");
	if (role && (endpoint == NULL || (strcmp(role, "exporter") != 0 && strcmp(role, "subscriber") != 0)))
		return fail(q, "invalid_request", "\"role\" goes with \"transport\":\"zmq\": \"exporter\" or \"subscriber\"");
	if (endpoint && (dh_broker_endpoint_check(endpoint) < 0 || strncmp(endpoint, "inproc://", 9) == 0))
		return fail(q, "invalid_request", "\"endpoint\" is not a tcp:// or ipc:// endpoint");
	if ((c = chan_find(b, host, name, NULL)) == NULL)
		return fail(q, "not_found", "channel %s is not registered on %s", name, host);
	if (has_schema && c->has_schema && sodium_memcmp(hash, c->schema_hash, 32) != 0) {
		json_t *ev = json_pack("{s:s,s:s,s:I,s:s}", "channel", name, "host", host, "pid", pid, "role",
				       "reader");
		json_object_set_new(ev, "schema_hash", hexstr(hash, 32));
		json_object_set_new(ev, "existing_host", json_string(c->host));
		json_object_set_new(ev, "existing_pid", json_integer(c->pid));
		json_object_set_new(ev, "existing_schema_hash", hexstr(c->schema_hash, 32));
		emit(b, "schema_conflict", ev);
		return fail(q, "schema_mismatch", "channel %s on %s has another schema", name, host);
	}
	for (j = 0; j < c->nreaders; j++)
		if (c->readers[j].pid == (pid_t)pid) {
			r = &c->readers[j];
			break;
		}
	if (r == NULL || strcmp(r->peer, q->peer) != 0) {
		if (r == NULL && c->nreaders >= b->cfg.max_readers)
			return fail(q, "too_many", "channel %s has %u reader registrations", name, c->nreaders);
		if (room(q, r == NULL) < 0)
			return -1;
	}
	if (r == NULL) {
		if (c->nreaders == c->capreaders) {
			unsigned cap = c->capreaders ? 2 * c->capreaders : 4;
			struct reader *p = realloc(c->readers, cap * sizeof *p);
			if (p == NULL)
				return fail(q, "internal", "out of memory");
			c->readers = p;
			c->capreaders = cap;
		}
		r = &c->readers[c->nreaders++];
		memset(r, 0, sizeof *r);
		b->nreaders++;
	}
	token_new(r->token);
	snprintf(r->peer, sizeof r->peer, "%s", q->peer);
	snprintf(r->label, sizeof r->label, "%s", label ? label : "");
	r->pid = (pid_t)pid;
	r->has_schema = has_schema;
	memcpy(r->schema_hash, hash, 32);
	snprintf(r->endpoint, sizeof r->endpoint, "%s", endpoint ? endpoint : "");
	r->subscriber = role != NULL && strcmp(role, "subscriber") == 0;
	r->stale = 0;
	r->last_ns = q->now;
	r->since_ms = realtime_ms();
	json_decref(r->metrics);
	r->metrics = NULL;
	emit(b, "reader_joined", reader_ident(c, r));
	if (ok_reply(q) == NULL)
		return -1;
	json_object_set_new(q->rep, "token", json_string(r->token));
	lifetimes(q);
	return 0;
}

/* Find a registration by token: *ci and *rj (-1 for the writer). */
static int
token_find(struct dh_broker *b, const char *token, unsigned *ci, int *rj)
{
	for (unsigned i = 0; i < b->nchans; i++) {
		struct chan *c = b->chans[i];
		if (token_eq(c->token, token)) {
			*ci = i;
			*rj = -1;
			return 1;
		}
		for (unsigned j = 0; j < c->nreaders; j++)
			if (token_eq(c->readers[j].token, token)) {
				*ci = i;
				*rj = (int)j;
				return 1;
			}
	}
	return 0;
}

static int
do_heartbeat(struct req *q)
{
	static const char *const fields[] = { "token", "metrics", NULL };
	struct dh_broker *b = q->b;
	const char *token;
	json_t *metrics;
	unsigned ci;
	int rj;

	if (only(q, fields) < 0 || get_token(q, &token) < 0 || get_metrics(q, &metrics) < 0)
		return -1;
	if (!token_find(b, token, &ci, &rj)) {
		json_decref(metrics);
		return fail(q, "not_registered", "unknown token: register again");
	}
	struct chan *c = b->chans[ci];
	int *stale = rj < 0 ? &c->stale : &c->readers[rj].stale;
	json_t **mp = rj < 0 ? &c->metrics : &c->readers[rj].metrics;
	if (rj < 0)
		c->last_ns = q->now;
	else
		c->readers[rj].last_ns = q->now;
	if (metrics) {
		json_decref(*mp);
		*mp = metrics;
	}
	if (*stale) {
		json_t *ev = rj < 0 ? chan_ident(c) : reader_ident(c, &c->readers[rj]);
		*stale = 0;
		json_object_set_new(ev, "role", json_string(rj < 0 ? "writer" : "reader"));
		emit(b, "live", ev);
	}
	if (ok_reply(q) == NULL)
		return -1;
	json_object_set_new(q->rep, "state", json_string("live"));
	json_object_set_new(q->rep, "heartbeat_ms", json_integer(b->cfg.heartbeat_ns / MS));
	return 0;
}

static int
do_deregister(struct req *q)
{
	static const char *const fields[] = { "token", NULL };
	struct dh_broker *b = q->b;
	const char *token;
	unsigned ci;
	int rj;

	if (only(q, fields) < 0 || get_token(q, &token) < 0)
		return -1;
	if (!token_find(b, token, &ci, &rj))
		return fail(q, "not_registered", "unknown token");
	struct chan *c = b->chans[ci];
	if (rj < 0) {
		json_t *ev = chan_ident(c);
		json_object_set_new(ev, "reason", json_string("deregistered"));
		emit(b, "closed", ev);
		chan_remove(b, ci);
	} else {
		emit(b, "reader_left", reader_ident(c, &c->readers[rj]));
		reader_remove(b, c, (unsigned)rj);
	}
	return ok_reply(q) ? 0 : -1;
}

/*
 * Append c's description to a page of at most the configured bytes (a
 * page always takes its first channel, whatever its size).  0 if added,
 * 1 if the page is full, -1 on memory.  Pages bound what one reply costs
 * the broker and what a connection that sends requests without reading
 * the replies can make it queue (docs/PROTOCOL.md, 1.2).
 */
static int
page_add(struct req *q, json_t *arr, size_t *used, const struct chan *c)
{
	json_t *cj = chan_json(c, q->now);
	size_t sz;

	if (cj == NULL)
		return -1;
	sz = json_dumpb(cj, NULL, 0, JSON_COMPACT) + 1;
	if (json_array_size(arr) > 0 && *used + sz > q->b->cfg.page_bytes) {
		json_decref(cj);
		return 1;
	}
	if (json_array_append_new(arr, cj) < 0)
		return -1;
	*used += sz;
	return 0;
}

static int
do_discover(struct req *q)
{
	static const char *const fields[] = { "channel", "host", NULL };
	struct dh_broker *b = q->b;
	const char *name, *host;
	json_t *arr;
	int live = 0, full = 0;
	size_t used = 0;

	if (only(q, fields) < 0 || get_channel(q, REQ, &name) < 0 ||
	    get_str(q, "host", OPT, 1, DH_BROKER_HOST_MAX, CH_HOST, &host) < 0)
		return -1;
	if ((arr = json_array()) == NULL)
		return fail(q, "internal", "out of memory");
	for (int pass = 0; pass < 2 && !full; pass++) /* live ones first */
		for (unsigned i = 0; i < b->nchans && !full; i++) {
			struct chan *c = b->chans[i];
			if (strcmp(c->name, name) != 0 || (host && strcmp(c->host, host) != 0) ||
			    c->stale != pass)
				continue;
			if ((full = page_add(q, arr, &used, c)) < 0) {
				json_decref(arr);
				return fail(q, "internal", "out of memory");
			}
			live |= !c->stale && !full;
		}
	if (json_array_size(arr) == 0) {
		json_decref(arr);
		if (host)
			return fail(q, "not_found", "channel %s is not registered on %s", name, host);
		return fail(q, "not_found", "channel %s is not registered", name);
	}
	if (ok_reply(q) == NULL) {
		json_decref(arr);
		return -1;
	}
	json_object_set_new(q->rep, "state", json_string(live ? "live" : "stale"));
	json_object_set_new(q->rep, "channels", arr);
	json_object_set_new(q->rep, "more", json_boolean(full));
	return 0;
}

static int
do_list(struct req *q)
{
	static const char *const fields[] = { "channel", "host", "after", NULL };
	struct dh_broker *b = q->b;
	const char *name, *host;
	json_int_t after = 0;
	uint64_t last = 0;
	size_t used = 0;
	json_t *arr;
	int full = 0;

	if (only(q, fields) < 0 || get_channel(q, OPT, &name) < 0 ||
	    get_str(q, "host", OPT, 1, DH_BROKER_HOST_MAX, CH_HOST, &host) < 0 ||
	    get_int(q, "after", OPT, 0, INT64_MAX, &after) < 0)
		return -1;
	if ((arr = json_array()) == NULL)
		return fail(q, "internal", "out of memory");
	/* chans stays in registration order (appended, removed with memmove),
	 * so serials ascend and a cursor survives removals between pages */
	for (unsigned i = 0; i < b->nchans; i++) {
		struct chan *c = b->chans[i];
		if ((name && strcmp(c->name, name) != 0) || (host && strcmp(c->host, host) != 0) ||
		    c->serial <= (uint64_t)after)
			continue;
		if ((full = page_add(q, arr, &used, c)) < 0) {
			json_decref(arr);
			return fail(q, "internal", "out of memory");
		}
		if (full)
			break;
		last = c->serial;
	}
	if (ok_reply(q) == NULL) {
		json_decref(arr);
		return -1;
	}
	json_object_set_new(q->rep, "channels", arr);
	json_object_set_new(q->rep, "next", full ? json_integer((json_int_t)last) : json_null());
	return 0;
}

static int
do_checksum(struct req *q)
{
	static const char *const fields[] = { "channel", "host", "pid", "message_seq", "detail", NULL };
	const char *name, *host, *detail;
	json_int_t pid, seq;

	if (only(q, fields) < 0 || get_channel(q, REQ, &name) < 0 ||
	    get_str(q, "host", REQ, 1, DH_BROKER_HOST_MAX, CH_HOST, &host) < 0 ||
	    get_int(q, "pid", REQ, 1, INT_MAX, &pid) < 0 ||
	    get_int(q, "message_seq", REQ, 0, INT64_MAX, &seq) < 0 ||
	    get_str(q, "detail", OPT, 0, DH_BROKER_DETAIL_MAX, CH_TEXT, &detail) < 0)
		return -1;
	json_t *ev = json_pack("{s:s,s:s,s:I,s:I}", "channel", name, "host", host, "pid", pid, "message_seq",
			       seq);
	if (detail)
		json_object_set_new(ev, "detail", json_string(detail));
	logf_(q->b, 0, "%s: checksum failure at seq %lld reported by pid %d on %s", name, (long long)seq,
	      (int)pid, host);
	emit(q->b, "checksum_failure", ev);
	return ok_reply(q) ? 0 : -1;
}

static const struct {
	const char *type;
	int (*fn)(struct req *);
} handlers[] = {
	{ "checksum_failure", do_checksum },
	{ "deregister", do_deregister },
	{ "discover", do_discover },
	{ "heartbeat", do_heartbeat },
	{ "list", do_list },
	{ "ping", do_ping },
	{ "reader", do_reader },
	{ "register", do_register },
};

/* Parse and dispatch; leaves q->rep or q->code set. */
static void
serve(struct req *q, const void *buf, size_t len)
{
	json_error_t jerr;
	json_t *v;
	const char *type;
	char tbuf[48];
	size_t i;

	if (len > DH_BROKER_MSG_MAX) {
		fail(q, "too_large", "request of %zu bytes (at most %u)", len, DH_BROKER_MSG_MAX);
		return;
	}
	if (!depth_ok(buf, len, DH_BROKER_DEPTH_MAX)) {
		fail(q, "invalid_request", "JSON nested deeper than %d", DH_BROKER_DEPTH_MAX);
		return;
	}
	q->root = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &jerr);
	if (q->root == NULL) {
		fail(q, "invalid_request", "malformed JSON at byte %d: %s", jerr.position, jerr.text);
		return;
	}
	if (!json_is_object(q->root)) {
		fail(q, "invalid_request", "request is not a JSON object");
		return;
	}
	v = json_object_get(q->root, "id");
	if (v == NULL) {
		fail(q, "invalid_request", "\"id\": missing");
		return;
	}
	if (!json_is_string(v) || json_string_length(v) < 1 || json_string_length(v) > DH_BROKER_ID_MAX) {
		fail(q, "invalid_request", "\"id\": not a string of 1..%d bytes", DH_BROKER_ID_MAX);
		return;
	}
	for (i = 0; i < json_string_length(v); i++)
		if (!char_ok((unsigned char)json_string_value(v)[i], CH_PRINT)) {
			fail(q, "invalid_request", "\"id\": invalid character at byte %zu", i);
			return;
		}
	q->id = v;
	v = json_object_get(q->root, "type");
	if (v == NULL || !json_is_string(v)) {
		fail(q, "invalid_request", "\"type\": %s", v ? "not a string" : "missing");
		return;
	}
	type = json_string_value(v);
	for (i = 0; i < sizeof handlers / sizeof handlers[0]; i++)
		if (strcmp(type, handlers[i].type) == 0)
			break;
	if (i == sizeof handlers / sizeof handlers[0]) {
		fail(q, "unknown_type", "unknown request type \"%s\"",
		     safe(type, json_string_length(v), tbuf, sizeof tbuf, 32));
		return;
	}
	q->type = handlers[i].type;
	if (handlers[i].fn(q) < 0 && q->code == NULL)
		fail(q, "internal", "out of memory");
}

/* ---- the id of a request refused as a whole ------------------------------ */

/*
 * A request jansson refused (a duplicated key, an integer over 64 bits,
 * bad UTF-8 or U+0000 in some string) or nested too deep is still an
 * object whose "id" a client waits for.  This walks the text lexically:
 * strings (escapes decoded only for keys and the id), balanced brackets
 * and bare tokens, without judging what it skips.  It yields the id only
 * when the text is one object whose top level has exactly one "id" that is
 * a valid id; anything else (not an object, trailing bytes, an "id"
 * twice) leaves none, and the reply carries null.
 */

struct lex {
	const unsigned char *p;
	size_t n, i;
};

static void
lex_ws(struct lex *l)
{
	while (l->i < l->n && (l->p[l->i] == ' ' || l->p[l->i] == '\t' || l->p[l->i] == '\n' ||
			       l->p[l->i] == '\r'))
		l->i++;
}

static int
hexval(unsigned char c)
{
	return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

/* A string at l->i (its opening quote): decoded into out (cap bytes; a
 * character that is not ASCII becomes 0x80, so it fails every check that
 * follows; *len counts past cap) unless out is NULL. 0, or -1 if unclosed. */
static int
lex_string(struct lex *l, char *out, size_t cap, size_t *len)
{
	size_t o = 0;

	l->i++;
	while (l->i < l->n) {
		unsigned c = l->p[l->i++];
		if (c == '"') {
			if (len)
				*len = o;
			return 0;
		}
		if (c == '\\') {
			if (l->i >= l->n)
				return -1;
			c = l->p[l->i++];
			switch (c) {
			case 'b': c = '\b'; break;
			case 'f': c = '\f'; break;
			case 'n': c = '\n'; break;
			case 'r': c = '\r'; break;
			case 't': c = '\t'; break;
			case 'u': {
				unsigned v = 0;
				for (int k = 0; k < 4; k++) {
					int h = l->i < l->n ? hexval(l->p[l->i]) : -1;
					if (h < 0)
						return -1;
					v = v << 4 | (unsigned)h;
					l->i++;
				}
				c = v < 0x80 ? v : 0x80;
				break;
			}
			default: /* '"', '\\', '/'; anything else is no JSON */
				if (c != '"' && c != '\\' && c != '/')
					return -1;
			}
		}
		if (out && o < cap)
			out[o] = (char)c;
		o++;
	}
	return -1;
}

/* Skip one value at l->i. 0, or -1 if the text ends inside it. */
static int
lex_skip(struct lex *l)
{
	size_t depth = 0, start = l->i;

	if (l->i >= l->n)
		return -1;
	if (l->p[l->i] == '"')
		return lex_string(l, NULL, 0, NULL);
	if (l->p[l->i] != '{' && l->p[l->i] != '[') {
		while (l->i < l->n && !strchr(",}] \t\r\n", l->p[l->i]) && l->p[l->i] != '\0')
			l->i++;
		return l->i > start ? 0 : -1;
	}
	while (l->i < l->n) {
		unsigned char c = l->p[l->i];
		if (c == '"') {
			if (lex_string(l, NULL, 0, NULL) < 0)
				return -1;
			continue;
		}
		l->i++;
		if (c == '{' || c == '[')
			depth++;
		else if ((c == '}' || c == ']') && --depth == 0)
			return 0;
	}
	return -1;
}

/* The request's id as a new JSON string, or NULL. */
static json_t *
salvage_id(const void *buf, size_t len)
{
	struct lex l = { buf, len, 0 };
	char key[4], id[DH_BROKER_ID_MAX];
	size_t klen, idlen = 0;
	int ids = 0, good = 0;

	lex_ws(&l);
	if (l.i >= l.n || l.p[l.i++] != '{')
		return NULL;
	lex_ws(&l);
	if (l.i < l.n && l.p[l.i] == '}')
		return NULL;
	for (;;) {
		lex_ws(&l);
		if (l.i >= l.n || l.p[l.i] != '"' || lex_string(&l, key, sizeof key, &klen) < 0)
			return NULL;
		lex_ws(&l);
		if (l.i >= l.n || l.p[l.i++] != ':')
			return NULL;
		lex_ws(&l);
		if (klen == 2 && memcmp(key, "id", 2) == 0) {
			ids++;
			good = 0;
			if (l.i < l.n && l.p[l.i] == '"') {
				if (lex_string(&l, id, sizeof id, &idlen) < 0)
					return NULL;
				good = idlen >= 1 && idlen <= DH_BROKER_ID_MAX;
				for (size_t k = 0; good && k < idlen; k++)
					good = char_ok((unsigned char)id[k], CH_PRINT);
			} else if (lex_skip(&l) < 0) {
				return NULL;
			}
		} else if (lex_skip(&l) < 0) {
			return NULL;
		}
		lex_ws(&l);
		if (l.i >= l.n)
			return NULL;
		if (l.p[l.i] == '}')
			break;
		if (l.p[l.i++] != ',')
			return NULL;
	}
	l.i++;
	lex_ws(&l);
	if (l.i != l.n || ids != 1 || !good)
		return NULL;
	return json_stringn(id, idlen);
}

int
dh_broker_handle(struct dh_broker *b, const void *buf, size_t len, const char *peer, int64_t now_ns,
		 char **reply, size_t *reply_len)
{
	struct req q;
	char pbuf[DH_BROKER_PEER_MAX + 8];
	char *s;

	*reply = NULL;
	*reply_len = 0;
	dh_broker_tick(b, now_ns);
	memset(&q, 0, sizeof q);
	q.b = b;
	q.now = now_ns;
	q.peer = safe(peer ? peer : "?", peer ? strlen(peer) : 1, pbuf, sizeof pbuf, DH_BROKER_PEER_MAX);
	serve(&q, buf ? buf : "", buf ? len : 0);
	if (q.code) {
		json_t *id = q.id ? json_incref(q.id) : buf ? salvage_id(buf, len) : NULL;
		json_decref(q.rep);
		q.rep = json_pack("{s:o?,s:s,s:s,s:s}", "id", id, "status", "error", "error", q.code,
				  "message", q.msg);
		if (q.rep == NULL) /* "id" was fine: this is memory */
			goto nomem;
		logf_(b, 0, "%s: %s: %s: %s", q.peer, q.type ? q.type : "request", q.code, q.msg);
	} else {
		logf_(b, 1, "%s: %s: ok", q.peer, q.type);
	}
	s = json_dumps(q.rep, JSON_COMPACT);
	if (s == NULL)
		goto nomem;
	json_decref(q.rep);
	json_decref(q.root);
	*reply = s;
	*reply_len = strlen(s);
	return 0;
nomem:
	json_decref(q.rep);
	json_decref(q.root);
	return -ENOMEM;
}
