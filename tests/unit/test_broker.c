/* test_broker.c: the broker's request handler without sockets: registry,
 * conflicts, liveness, events, caps and hostile input. See LICENSE. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "dh_broker.h"
#include "tap.h"

#define MS (1000000LL)
#define SEC (1000000000LL)

#define HASH_A "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
#define HASH_B "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"

/* ---- harness ---- */

#define MAXEV 64

static struct {
	int n;
	char *ev[MAXEV];
	int logs;
} sink;

static void
on_emit(void *arg, const char *json, size_t len)
{
	(void)arg;
	if (strlen(json) != len) {
		diag("event length mismatch");
		return;
	}
	if (sink.n < MAXEV)
		sink.ev[sink.n++] = strdup(json);
}

static void
on_log(void *arg, int detail, const char *msg)
{
	(void)arg;
	(void)detail;
	(void)msg;
	sink.logs++;
}

static void
events_clear(void)
{
	for (int i = 0; i < sink.n; i++)
		free(sink.ev[i]);
	sink.n = 0;
}

/* Index of the first event named name (after from), or -1. */
static int
event_find(const char *name, int from)
{
	char pat[64];

	snprintf(pat, sizeof pat, "{\"event\":\"%s\",", name);
	for (int i = from; i < sink.n; i++)
		if (strncmp(sink.ev[i], pat, strlen(pat)) == 0)
			return i;
	return -1;
}

static json_t *
event_json(int i)
{
	return i < 0 ? NULL : json_loads(sink.ev[i], 0, NULL);
}

static struct dh_broker *
mkbroker(unsigned max_regs, unsigned per_peer, unsigned max_readers)
{
	struct dh_broker_config cfg;
	struct dh_broker *b;

	dh_broker_config_init(&cfg);
	cfg.heartbeat_ns = 100 * MS;
	cfg.emit = on_emit;
	cfg.log = on_log;
	cfg.events = "ipc:///tmp/ev";
	if (max_regs)
		cfg.max_regs = max_regs;
	if (per_peer)
		cfg.max_per_peer = per_peer;
	if (max_readers)
		cfg.max_readers = max_readers;
	if (dh_broker_new(&cfg, &b) < 0)
		return NULL;
	return b;
}

static int64_t now = 1000 * SEC;
static int reply_valid; /* every reply so far was a JSON object with id and status */

/* Send len bytes from peer; return the parsed reply (caller decrefs). */
static json_t *
send_raw(struct dh_broker *b, const char *peer, const void *buf, size_t len)
{
	char *rep = NULL;
	size_t rlen = 0;
	json_t *j;
	int r = dh_broker_handle(b, buf, len, peer, now, &rep, &rlen);

	if (r < 0 || rep == NULL || strlen(rep) != rlen) {
		reply_valid = 0;
		free(rep);
		return NULL;
	}
	j = json_loads(rep, JSON_REJECT_DUPLICATES, NULL);
	if (j == NULL || !json_is_object(j) || json_object_get(j, "id") == NULL ||
	    !json_is_string(json_object_get(j, "status"))) {
		diag("bad reply: %s", rep);
		reply_valid = 0;
	}
	free(rep);
	return j;
}

static json_t *
send_str(struct dh_broker *b, const char *peer, const char *s)
{
	return send_raw(b, peer, s, strlen(s));
}

static const char *
sget(json_t *j, const char *key)
{
	const char *s = json_string_value(json_object_get(j, key));
	return s ? s : "";
}

static long long
iget(json_t *j, const char *key)
{
	return json_integer_value(json_object_get(j, key));
}

/* 1 if reply j is an error with code. */
static int
is_err(json_t *j, const char *code)
{
	int r = j && strcmp(sget(j, "status"), "error") == 0 && strcmp(sget(j, "error"), code) == 0;

	if (!r && j) {
		char *s = json_dumps(j, JSON_COMPACT);
		diag("expected error %s, got %s", code, s ? s : "?");
		free(s);
	}
	return r;
}

static int
is_ok(json_t *j)
{
	int r = j && strcmp(sget(j, "status"), "ok") == 0;

	if (!r && j) {
		char *s = json_dumps(j, JSON_COMPACT);
		diag("expected ok, got %s", s ? s : "?");
		free(s);
	}
	return r;
}

/* Register channel name on host by pid; the token into tok (33 bytes) on success. */
static json_t *
reg(struct dh_broker *b, const char *peer, const char *name, const char *host, int pid,
    const char *extra, char *tok)
{
	char buf[2048];
	json_t *j;

	snprintf(buf, sizeof buf,
		 "{\"id\":\"r%d\",\"type\":\"register\",\"channel\":\"%s\",\"host\":\"%s\",\"pid\":%d,"
		 "\"policy\":\"sync\",\"slots\":64,\"slot_size\":65536,\"max_readers\":16,"
		 "\"checksum\":\"xxh3\"%s%s}",
		 pid, name, host, pid, extra ? "," : "", extra ? extra : "");
	j = send_str(b, peer, buf);
	if (tok && j && strcmp(sget(j, "status"), "ok") == 0)
		snprintf(tok, DH_BROKER_TOKEN_LEN + 1, "%s", sget(j, "token"));
	return j;
}

static json_t *
reader(struct dh_broker *b, const char *peer, const char *name, const char *host, int pid,
       const char *extra, char *tok)
{
	char buf[1024];
	json_t *j;

	snprintf(buf, sizeof buf,
		 "{\"id\":\"x\",\"type\":\"reader\",\"channel\":\"%s\",\"host\":\"%s\",\"pid\":%d%s%s}",
		 name, host, pid, extra ? "," : "", extra ? extra : "");
	j = send_str(b, peer, buf);
	if (tok && j && strcmp(sget(j, "status"), "ok") == 0)
		snprintf(tok, DH_BROKER_TOKEN_LEN + 1, "%s", sget(j, "token"));
	return j;
}

static json_t *
tokreq(struct dh_broker *b, const char *type, const char *tok, const char *extra)
{
	char buf[1024];

	snprintf(buf, sizeof buf, "{\"id\":\"t\",\"type\":\"%s\",\"token\":\"%s\"%s%s}", type, tok,
		 extra ? "," : "", extra ? extra : "");
	return send_str(b, "p1", buf);
}

static json_t *
discover(struct dh_broker *b, const char *name, const char *host)
{
	char buf[512];

	if (host)
		snprintf(buf, sizeof buf, "{\"id\":\"d\",\"type\":\"discover\",\"channel\":\"%s\",\"host\":\"%s\"}",
			 name, host);
	else
		snprintf(buf, sizeof buf, "{\"id\":\"d\",\"type\":\"discover\",\"channel\":\"%s\"}", name);
	return send_str(b, "p9", buf);
}

static json_t *
list(struct dh_broker *b)
{
	return send_str(b, "p9", "{\"id\":\"l\",\"type\":\"list\"}");
}

#define DROP(j) json_decref(j)

/* ---- tests ---- */

static void
t_config(void)
{
	struct dh_broker_config cfg;
	struct dh_broker *b = (struct dh_broker *)1;

	dh_broker_config_init(&cfg);
	cfg.expire_misses = cfg.stale_misses;
	ok(dh_broker_new(&cfg, &b) == -EINVAL && b == NULL, "config: expire <= stale is refused");
	dh_broker_config_init(&cfg);
	cfg.heartbeat_ns = 0;
	ok(dh_broker_new(&cfg, &b) == -EINVAL, "config: zero heartbeat is refused");
	dh_broker_config_init(&cfg);
	cfg.max_regs = 0;
	ok(dh_broker_new(&cfg, &b) == -EINVAL, "config: zero cap is refused");
	dh_broker_free(NULL);
}

static void
t_basic(void)
{
	struct dh_broker *b = mkbroker(0, 0, 0);
	char tw[40], tr[40];
	json_t *j, *c;
	int i;

	j = send_str(b, "p1", "{\"id\":\"1\",\"type\":\"ping\"}");
	ok(is_ok(j) && strcmp(sget(j, "id"), "1") == 0 && iget(j, "protocol") == DH_BROKER_PROTOCOL &&
		   iget(j, "heartbeat_ms") == 100 && iget(j, "stale_ms") == 300 &&
		   iget(j, "expire_ms") == 1000 && strcmp(sget(j, "events"), "ipc:///tmp/ev") == 0,
	   "ping: protocol, lifetimes and events endpoint");
	DROP(j);

	j = reg(b, "p1", "dhtest-a", "h1", 100, "\"label\":\"w\",\"schema_hash\":\"" HASH_A "\"", tw);
	ok(is_ok(j) && strlen(sget(j, "token")) == DH_BROKER_TOKEN_LEN && iget(j, "heartbeat_ms") == 100,
	   "register: ok with a token and the heartbeat interval");
	DROP(j);
	i = event_find("registered", 0);
	j = event_json(i);
	ok(j && strcmp(sget(j, "channel"), "dhtest-a") == 0 && strcmp(sget(j, "host"), "h1") == 0 &&
		   iget(j, "pid") == 100 && iget(j, "seq") >= 1 && strcmp(sget(j, "policy"), "sync") == 0 &&
		   strcmp(sget(j, "schema_hash"), HASH_A) == 0,
	   "register: 'registered' event with the channel's description");
	DROP(j);

	j = discover(b, "dhtest-a", NULL);
	c = json_array_get(json_object_get(j, "channels"), 0);
	ok(is_ok(j) && strcmp(sget(j, "state"), "live") == 0 && c && iget(c, "pid") == 100 &&
		   iget(c, "slots") == 64 && iget(c, "slot_size") == 65536 &&
		   strcmp(sget(c, "checksum"), "xxh3") == 0 && strcmp(sget(c, "label"), "w") == 0 &&
		   strcmp(sget(c, "schema_hash"), HASH_A) == 0 && json_is_null(json_object_get(c, "key_id")),
	   "discover: found live with its geometry");
	DROP(j);
	j = discover(b, "dhtest-a", "h2");
	ok(is_err(j, "not_found"), "discover: same name on another host is not found");
	DROP(j);
	j = discover(b, "dhtest-nope", NULL);
	ok(is_err(j, "not_found") && strcmp(sget(j, "id"), "d") == 0, "discover: unknown channel is not_found");
	DROP(j);

	events_clear();
	j = reader(b, "p2", "dhtest-a", "h1", 200, "\"label\":\"r1\"", tr);
	ok(is_ok(j) && strlen(tr) == DH_BROKER_TOKEN_LEN && event_find("reader_joined", 0) >= 0,
	   "reader: registered, 'reader_joined' event");
	DROP(j);
	j = reader(b, "p2", "dhtest-zz", "h1", 201, NULL, NULL);
	ok(is_err(j, "not_found"), "reader: unregistered channel is not_found");
	DROP(j);

	j = tokreq(b, "heartbeat", tw, "\"metrics\":{\"committed\":42,\"rate\":1.5}");
	ok(is_ok(j) && strcmp(sget(j, "state"), "live") == 0, "heartbeat: ok with metrics");
	DROP(j);
	j = list(b);
	c = json_array_get(json_object_get(j, "channels"), 0);
	ok(is_ok(j) && json_array_size(json_object_get(j, "channels")) == 1 &&
		   iget(json_object_get(c, "metrics"), "committed") == 42 &&
		   json_array_size(json_object_get(c, "readers")) == 1 &&
		   iget(json_array_get(json_object_get(c, "readers"), 0), "pid") == 200,
	   "list: the channel with its metrics and reader");
	DROP(j);
	j = tokreq(b, "heartbeat", "0123456789abcdef0123456789abcdef", NULL);
	ok(is_err(j, "not_registered"), "heartbeat: unknown token is not_registered");
	DROP(j);

	events_clear();
	j = tokreq(b, "deregister", tr, NULL);
	ok(is_ok(j) && event_find("reader_left", 0) >= 0, "deregister reader: 'reader_left' event");
	DROP(j);
	j = tokreq(b, "deregister", tw, NULL);
	i = event_find("closed", 0);
	c = event_json(i);
	ok(is_ok(j) && c && strcmp(sget(c, "reason"), "deregistered") == 0 && dh_broker_count(b, NULL) == 0,
	   "deregister writer: 'closed' event (deregistered), registry empty");
	DROP(j);
	DROP(c);
	j = tokreq(b, "deregister", tw, NULL);
	ok(is_err(j, "not_registered"), "deregister twice: not_registered");
	DROP(j);
	j = discover(b, "dhtest-a", NULL);
	ok(is_err(j, "not_found"), "discover after deregister: not_found");
	DROP(j);

	j = send_str(b, "p1", "{\"id\":\"c\",\"type\":\"checksum_failure\",\"channel\":\"dhtest-a\","
			      "\"host\":\"h1\",\"pid\":5,\"message_seq\":42,\"detail\":\"xxh3 mismatch\"}");
	c = event_json(event_find("checksum_failure", 0));
	ok(is_ok(j) && c && iget(c, "message_seq") == 42 && iget(c, "seq") > 0 &&
		   strcmp(sget(c, "detail"), "xxh3 mismatch") == 0,
	   "checksum_failure: ok and announced");
	DROP(j);
	DROP(c);
	events_clear();
	dh_broker_free(b);
}

static void
t_conflicts(void)
{
	struct dh_broker *b = mkbroker(0, 0, 0);
	char t1[40], t2[40];
	json_t *j, *e;
	int k;

	j = reg(b, "p1", "dhtest-c", "h1", 100, "\"schema_hash\":\"" HASH_A "\"", t1);
	DROP(j);
	j = reg(b, "p2", "dhtest-c", "h1", 101, "\"schema_hash\":\"" HASH_A "\"", NULL);
	ok(is_err(j, "conflict"), "second live writer for host+channel: conflict");
	DROP(j);
	j = reg(b, "p1", "dhtest-c", "h1", 100, "\"schema_hash\":\"" HASH_A "\"", t2);
	ok(is_ok(j) && strcmp(t1, t2) != 0 && dh_broker_count(b, NULL) == 1,
	   "the same writer registering again gets a new token, no duplicate");
	DROP(j);
	j = tokreq(b, "heartbeat", t1, NULL);
	ok(is_err(j, "not_registered"), "the replaced token is void");
	DROP(j);

	events_clear();
	j = reg(b, "p3", "dhtest-c", "h2", 300, "\"schema_hash\":\"" HASH_B "\"", NULL);
	k = event_find("schema_conflict", 0);
	e = event_json(k);
	ok(is_err(j, "schema_mismatch") && e && strcmp(sget(e, "schema_hash"), HASH_B) == 0 &&
		   strcmp(sget(e, "existing_schema_hash"), HASH_A) == 0 &&
		   strcmp(sget(e, "existing_host"), "h1") == 0 && strcmp(sget(e, "role"), "writer") == 0,
	   "same channel elsewhere with another schema: schema_mismatch, 'schema_conflict' event");
	DROP(j);
	DROP(e);
	j = reg(b, "p3", "dhtest-c", "h2", 300, "\"schema_hash\":\"" HASH_A "\"", NULL);
	ok(is_ok(j), "same channel elsewhere with the same schema: ok");
	DROP(j);
	j = reg(b, "p3", "dhtest-d", "h2", 301, NULL, NULL);
	ok(is_ok(j), "a channel without a schema: ok");
	DROP(j);

	events_clear();
	j = reader(b, "p4", "dhtest-c", "h1", 400, "\"schema_hash\":\"" HASH_B "\"", NULL);
	e = event_json(event_find("schema_conflict", 0));
	ok(is_err(j, "schema_mismatch") && e && strcmp(sget(e, "role"), "reader") == 0,
	   "reader expecting another schema: schema_mismatch, 'schema_conflict' event");
	DROP(j);
	DROP(e);
	j = reader(b, "p4", "dhtest-c", "h1", 400, "\"schema_hash\":\"" HASH_A "\"", NULL);
	ok(is_ok(j), "reader expecting the channel's schema: ok");
	DROP(j);

	/* schema text must match its hash */
	j = reg(b, "p5", "dhtest-s", "h1", 500, "\"schema\":\"x:u8\",\"schema_hash\":\"" HASH_A "\"", NULL);
	ok(is_err(j, "invalid_request"), "schema text that does not hash to schema_hash: invalid_request");
	DROP(j);
	j = reg(b, "p5", "dhtest-s", "h1", 500,
		"\"schema\":\"x:u8\",\"schema_hash\":"
		"\"5b7a6af2e4fa7a56e8b0cf1d2cd5b8cdb4b2e84b0d2ff0ec2fa2cc8cd1d1b3e5\"", NULL);
	ok(is_err(j, "invalid_request"), "schema_hash of something else: invalid_request");
	DROP(j);
	events_clear();
	dh_broker_free(b);
}

static void
t_liveness(void)
{
	struct dh_broker *b = mkbroker(0, 0, 0);
	char tw[40], tr[40], t2[40];
	json_t *j, *e;
	int64_t d;

	j = reg(b, "p1", "dhtest-l", "h1", 100, NULL, tw);
	DROP(j);
	j = reader(b, "p2", "dhtest-l", "h1", 200, NULL, tr);
	DROP(j);
	events_clear();

	d = dh_broker_tick(b, now);
	ok(d > 0 && d <= 300 * MS, "tick: next deadline within the stale time (%lld ms)", (long long)(d / MS));
	now += 250 * MS;
	j = tokreq(b, "heartbeat", tw, NULL);
	DROP(j);
	now += 100 * MS; /* reader silent for 350 ms: stale; writer 100 ms */
	dh_broker_tick(b, now);
	e = event_json(event_find("stale", 0));
	ok(e && strcmp(sget(e, "role"), "reader") == 0 && iget(e, "pid") == 200 &&
		   event_find("closed", 0) < 0,
	   "reader silent past 3 intervals: 'stale' event, writer untouched");
	DROP(e);
	j = list(b);
	e = json_array_get(json_object_get(json_array_get(json_object_get(j, "channels"), 0), "readers"), 0);
	ok(strcmp(sget(e, "state"), "stale") == 0, "list shows the reader stale");
	DROP(j);

	/* keep the writer alive, let the reader die */
	events_clear();
	for (int k = 0; k < 8; k++) {
		now += 90 * MS;
		j = tokreq(b, "heartbeat", tw, NULL);
		DROP(j);
	}
	e = event_json(event_find("reader_died", 0));
	ok(e && iget(e, "pid") == 200 && strcmp(sget(e, "reason"), "expired") == 0 &&
		   event_find("closed", 0) < 0,
	   "reader silent past 10 intervals: 'reader_died' event, channel kept");
	DROP(e);
	j = tokreq(b, "heartbeat", tr, NULL);
	ok(is_err(j, "not_registered"), "the dead reader's token is void");
	DROP(j);

	/* writer: stale, then back to live, then expired */
	events_clear();
	now += 310 * MS;
	j = discover(b, "dhtest-l", NULL);
	ok(is_ok(j) && strcmp(sget(j, "state"), "stale") == 0 && event_find("stale", 0) >= 0,
	   "writer silent past 3 intervals: discover says stale, 'stale' event");
	DROP(j);
	j = reg(b, "p3", "dhtest-l", "h1", 101, NULL, t2);
	e = event_json(event_find("closed", 0));
	ok(is_ok(j) && e && strcmp(sget(e, "reason"), "replaced") == 0 && iget(e, "pid") == 100,
	   "a new writer replaces a stale one: 'closed' (replaced) event");
	DROP(j);
	DROP(e);
	j = tokreq(b, "heartbeat", tw, NULL);
	ok(is_err(j, "not_registered"), "the replaced writer's token is void");
	DROP(j);

	events_clear();
	now += 400 * MS;
	dh_broker_tick(b, now);
	j = tokreq(b, "heartbeat", t2, NULL);
	ok(is_ok(j) && event_find("stale", 0) >= 0 && event_find("live", 0) > event_find("stale", 0),
	   "a heartbeat revives a stale writer: 'live' event");
	DROP(j);
	events_clear();
	now += 1000 * MS;
	dh_broker_tick(b, now);
	e = event_json(event_find("closed", 0));
	ok(e && strcmp(sget(e, "reason"), "expired") == 0 && iget(e, "pid") == 101 &&
		   dh_broker_count(b, NULL) == 0,
	   "writer silent past 10 intervals: 'closed' (expired) event, removed");
	DROP(e);
	j = discover(b, "dhtest-l", NULL);
	ok(is_err(j, "not_found"), "discover after expiry: not_found");
	DROP(j);
	events_clear();
	dh_broker_free(b);
}

static void
t_caps(void)
{
	struct dh_broker *b = mkbroker(6, 3, 2);
	char name[64];
	json_t *j;
	int okc = 0;

	for (int i = 0; i < 3; i++) {
		snprintf(name, sizeof name, "dhtest-cap%d", i);
		j = reg(b, "pa", name, "h1", 10 + i, NULL, NULL);
		okc += is_ok(j);
		DROP(j);
	}
	j = reg(b, "pa", "dhtest-cap9", "h1", 19, NULL, NULL);
	ok(okc == 3 && is_err(j, "too_many"), "per-client cap: the 4th registration of one peer is refused");
	DROP(j);
	j = reg(b, "pb", "dhtest-capb", "h1", 20, NULL, NULL);
	ok(is_ok(j), "another client is still served");
	DROP(j);
	j = reader(b, "pc", "dhtest-capb", "h1", 30, NULL, NULL);
	DROP(j);
	j = reader(b, "pd", "dhtest-capb", "h1", 31, NULL, NULL);
	DROP(j);
	j = reader(b, "pe", "dhtest-capb", "h1", 32, NULL, NULL);
	ok(is_err(j, "too_many"), "per-channel reader cap");
	DROP(j);
	j = reg(b, "pf", "dhtest-capf", "h1", 40, NULL, NULL);
	ok(is_err(j, "too_many"), "total cap: broker full");
	DROP(j);
	unsigned nr, nc = dh_broker_count(b, &nr);
	ok(nc == 4 && nr == 2, "registrations held: 4 writers, 2 readers");
	dh_broker_free(b);

	/* 10000 registrations against the default cap of 4096 */
	b = mkbroker(0, 100000, 0);
	int refused = 0;
	for (int i = 0; i < 10000; i++) {
		char buf[400];
		size_t rl;
		char *rep;
		snprintf(buf, sizeof buf,
			 "{\"id\":\"f\",\"type\":\"register\",\"channel\":\"dhtest-f%d\",\"host\":\"h\",\"pid\":1,"
			 "\"policy\":\"ring\",\"slots\":1,\"slot_size\":1,\"max_readers\":1,\"checksum\":\"none\"}",
			 i);
		if (dh_broker_handle(b, buf, strlen(buf), "flood", now, &rep, &rl) == 0) {
			refused += strstr(rep, "\"too_many\"") != NULL;
			free(rep);
		}
	}
	ok(dh_broker_count(b, NULL) == 4096 && refused == 10000 - 4096,
	   "flood: 10000 registrations stop at the cap of 4096");
	now += 2 * SEC;
	dh_broker_tick(b, now);
	ok(dh_broker_count(b, NULL) == 0, "flood: all of them expire");
	events_clear();
	dh_broker_free(b);
}

/* Each hostile request gets an error reply of the given code. */
static void
t_hostile(void)
{
	static const struct {
		const char *req;
		const char *code;
		const char *what;
	} cases[] = {
		{ "", "invalid_request", "empty request" },
		{ "{", "invalid_request", "truncated JSON" },
		{ "{\"id\":\"a\",\"type\":\"ping\"} x", "invalid_request", "trailing garbage" },
		{ "[1,2]", "invalid_request", "array instead of object" },
		{ "\"ping\"", "invalid_request", "string instead of object" },
		{ "42", "invalid_request", "number instead of object" },
		{ "null", "invalid_request", "null" },
		{ "{\"type\":\"ping\"}", "invalid_request", "missing id" },
		{ "{\"id\":7,\"type\":\"ping\"}", "invalid_request", "id not a string" },
		{ "{\"id\":\"\",\"type\":\"ping\"}", "invalid_request", "empty id" },
		{ "{\"id\":\"a\\nb\",\"type\":\"ping\"}", "invalid_request", "id with a newline" },
		{ "{\"id\":\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\",\"type\":\"ping\"}",
		  "invalid_request", "id of 65 bytes" },
		{ "{\"id\":\"a\"}", "invalid_request", "missing type" },
		{ "{\"id\":\"a\",\"type\":3}", "invalid_request", "type not a string" },
		{ "{\"id\":\"a\",\"type\":\"shutdown\"}", "unknown_type", "unknown type" },
		{ "{\"id\":\"a\",\"type\":\"PING\"}", "unknown_type", "type is case-sensitive" },
		{ "{\"id\":\"a\",\"type\":\"ping\",\"x\":1}", "invalid_request", "unknown field" },
		{ "{\"id\":\"a\",\"type\":\"ping\",\"type\":\"list\"}", "invalid_request", "duplicate key" },
		{ "{\"id\":\"a\",\"type\":\"discover\"}", "invalid_request", "missing channel" },
		{ "{\"id\":\"a\",\"type\":\"discover\",\"channel\":5}", "invalid_request", "channel not a string" },
		{ "{\"id\":\"a\",\"type\":\"discover\",\"channel\":\"../etc\"}", "invalid_request",
		  "channel with a slash" },
		{ "{\"id\":\"a\",\"type\":\"discover\",\"channel\":\".x\"}", "invalid_request",
		  "channel with a leading dot" },
		{ "{\"id\":\"a\",\"type\":\"discover\",\"channel\":\"x\",\"host\":\"a b\"}", "invalid_request",
		  "host with a space" },
		{ "{\"id\":\"a\",\"type\":\"discover\",\"channel\":\"x\",\"host\":\"\"}", "invalid_request",
		  "empty host" },
		{ "{\"id\":\"a\",\"type\":\"register\",\"channel\":\"dhtest-h\",\"host\":\"h\",\"pid\":\"1\","
		  "\"policy\":\"sync\",\"slots\":1,\"slot_size\":1,\"max_readers\":1,\"checksum\":\"none\"}",
		  "invalid_request", "pid as a string" },
		{ "{\"id\":\"a\",\"type\":\"register\",\"channel\":\"dhtest-h\",\"host\":\"h\",\"pid\":0,"
		  "\"policy\":\"sync\",\"slots\":1,\"slot_size\":1,\"max_readers\":1,\"checksum\":\"none\"}",
		  "invalid_request", "pid 0" },
		{ "{\"id\":\"a\",\"type\":\"register\",\"channel\":\"dhtest-h\",\"host\":\"h\",\"pid\":1.5,"
		  "\"policy\":\"sync\",\"slots\":1,\"slot_size\":1,\"max_readers\":1,\"checksum\":\"none\"}",
		  "invalid_request", "pid as a real" },
		{ "{\"id\":\"a\",\"type\":\"register\",\"channel\":\"dhtest-h\",\"host\":\"h\",\"pid\":1,"
		  "\"policy\":\"sync\",\"slots\":-1,\"slot_size\":1,\"max_readers\":1,\"checksum\":\"none\"}",
		  "invalid_request", "negative slots" },
		{ "{\"id\":\"a\",\"type\":\"register\",\"channel\":\"dhtest-h\",\"host\":\"h\",\"pid\":1,"
		  "\"policy\":\"sync\",\"slots\":18446744073709551616,\"slot_size\":1,\"max_readers\":1,"
		  "\"checksum\":\"none\"}",
		  "invalid_request", "slots of 2^64" },
		{ "{\"id\":\"a\",\"type\":\"register\",\"channel\":\"dhtest-h\",\"host\":\"h\",\"pid\":1,"
		  "\"policy\":\"sync\",\"slots\":1e400,\"slot_size\":1,\"max_readers\":1,\"checksum\":\"none\"}",
		  "invalid_request", "slots of 1e400" },
		{ "{\"id\":\"a\",\"type\":\"register\",\"channel\":\"dhtest-h\",\"host\":\"h\",\"pid\":1,"
		  "\"policy\":\"fifo\",\"slots\":1,\"slot_size\":1,\"max_readers\":1,\"checksum\":\"none\"}",
		  "invalid_request", "unknown policy" },
		{ "{\"id\":\"a\",\"type\":\"register\",\"channel\":\"dhtest-h\",\"host\":\"h\",\"pid\":1,"
		  "\"policy\":\"sync\",\"slots\":1,\"slot_size\":1,\"max_readers\":1,\"checksum\":\"md5\"}",
		  "invalid_request", "unknown checksum" },
		{ "{\"id\":\"a\",\"type\":\"register\",\"channel\":\"dhtest-h\",\"host\":\"h\",\"pid\":1,"
		  "\"policy\":\"sync\",\"slots\":1,\"slot_size\":1,\"max_readers\":1}",
		  "invalid_request", "missing checksum" },
		{ "{\"id\":\"a\",\"type\":\"register\",\"channel\":\"dhtest-h\",\"host\":\"h\",\"pid\":1,"
		  "\"policy\":\"sync\",\"slots\":1,\"slot_size\":1,\"max_readers\":1,\"checksum\":\"none\","
		  "\"schema_hash\":\"ABCD\"}",
		  "invalid_request", "schema_hash not 64 hex digits" },
		{ "{\"id\":\"a\",\"type\":\"register\",\"channel\":\"dhtest-h\",\"host\":\"h\",\"pid\":1,"
		  "\"policy\":\"sync\",\"slots\":1,\"slot_size\":1,\"max_readers\":1,\"checksum\":\"none\","
		  "\"label\":\"a\\u0001b\"}",
		  "invalid_request", "label with a control character" },
		{ "{\"id\":\"a\",\"type\":\"register\",\"channel\":\"dhtest-h\",\"host\":\"h\",\"pid\":1,"
		  "\"policy\":\"sync\",\"slots\":1,\"slot_size\":1,\"max_readers\":1,\"checksum\":\"none\","
		  "\"label\":\"0123456789012345678901234567890123\"}",
		  "invalid_request", "label too long" },
		{ "{\"id\":\"a\",\"type\":\"register\",\"channel\":\"dhtest-h\",\"host\":\"h\",\"pid\":1,"
		  "\"policy\":\"sync\",\"slots\":1,\"slot_size\":1,\"max_readers\":1,\"checksum\":\"none\","
		  "\"metrics\":{}}",
		  "invalid_request", "metrics in register" },
		{ "{\"id\":\"a\",\"type\":\"heartbeat\",\"token\":\"xyz\"}", "invalid_request", "short token" },
		{ "{\"id\":\"a\",\"type\":\"heartbeat\"}", "invalid_request", "missing token" },
		{ "{\"id\":\"a\",\"type\":\"heartbeat\",\"token\":\"0123456789abcdef0123456789abcdef\","
		  "\"metrics\":[1]}",
		  "invalid_request", "metrics not an object" },
		{ "{\"id\":\"a\",\"type\":\"heartbeat\",\"token\":\"0123456789abcdef0123456789abcdef\","
		  "\"metrics\":{\"a\":\"1\"}}",
		  "invalid_request", "metric not a number" },
		{ "{\"id\":\"a\",\"type\":\"heartbeat\",\"token\":\"0123456789abcdef0123456789abcdef\","
		  "\"metrics\":{\"a b\":1}}",
		  "invalid_request", "metric name with a space" },
		{ "{\"id\":\"a\",\"type\":\"heartbeat\",\"token\":\"0123456789abcdef0123456789abcdef\","
		  "\"metrics\":{\"a\":{\"b\":1}}}",
		  "invalid_request", "nested metric" },
		{ "{\"id\":\"a\",\"type\":\"checksum_failure\",\"channel\":\"dhtest-h\",\"host\":\"h\",\"pid\":1,"
		  "\"message_seq\":-1}",
		  "invalid_request", "negative message_seq" },
		{ "{\"id\":\"a\",\"type\":\"ping\",\"p\":[[[[[[[[[[]]]]]]]]]]}", "invalid_request", "deep nesting" },
		{ "{\"id\":\"a\",\"type\":\"ping\",\"s\":\"\\u0000\"}", "invalid_request", "NUL escape in a string" },
	};
	struct dh_broker *b = mkbroker(0, 0, 0);
	size_t i;
	int bad = 0;

	for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		json_t *j = send_str(b, "evil", cases[i].req);
		if (!j || strcmp(sget(j, "status"), "error") != 0 || strcmp(sget(j, "error"), cases[i].code) != 0 ||
		    strlen(sget(j, "message")) == 0) {
			bad++;
			diag("case '%s' failed", cases[i].what);
		}
		DROP(j);
	}
	ok(bad == 0, "%zu hostile requests each get the expected error reply", i);

	json_t *j = send_str(b, "evil", "{\"id\":\"keep\",\"type\":\"nope\"}");
	ok(is_err(j, "unknown_type") && strcmp(sget(j, "id"), "keep") == 0, "error replies echo a valid id");
	DROP(j);
	j = send_str(b, "evil", "{\"id\":5,\"type\":\"ping\"}");
	ok(j && json_is_null(json_object_get(j, "id")), "error replies carry id null when the id is unusable");
	DROP(j);

	/* raw bytes: invalid UTF-8, NUL bytes, binary junk */
	static const char utf8[] = "{\"id\":\"a\",\"type\":\"ping\",\"x\":\"\xc3\x28\"}";
	j = send_raw(b, "evil", utf8, sizeof utf8 - 1);
	ok(is_err(j, "invalid_request"), "invalid UTF-8: invalid_request");
	DROP(j);
	static const char nul[] = "{\"id\":\"a\",\0\"type\":\"ping\"}";
	j = send_raw(b, "evil", nul, sizeof nul - 1);
	ok(is_err(j, "invalid_request"), "NUL byte in the request: invalid_request");
	DROP(j);
	j = send_raw(b, "evil", NULL, 0);
	ok(is_err(j, "invalid_request"), "NULL request: invalid_request");
	DROP(j);

	/* oversized */
	size_t big = DH_BROKER_MSG_MAX + 1;
	char *p = malloc(big);
	memset(p, ' ', big);
	memcpy(p, "{\"id\":\"a\",\"type\":\"ping\"}", 24);
	j = send_raw(b, "evil", p, big);
	ok(is_err(j, "too_large"), "request over %u bytes: too_large", DH_BROKER_MSG_MAX);
	DROP(j);
	/* nesting as deep as the size limit allows */
	size_t depth = DH_BROKER_MSG_MAX / 2;
	memset(p, '[', depth);
	memset(p + depth, ']', depth);
	j = send_raw(b, "evil", p, 2 * depth);
	ok(is_err(j, "invalid_request"), "nesting depth %zu: invalid_request, no crash", depth);
	DROP(j);
	/* a request of exactly the maximum size with a long string is served */
	size_t n = DH_BROKER_MSG_MAX;
	int hdr = snprintf(p, n, "{\"id\":\"big\",\"type\":\"ping\",\"pad\":\"");
	memset(p + hdr, 'x', n - (size_t)hdr - 2);
	memcpy(p + n - 2, "\"}", 2);
	j = send_raw(b, "evil", p, n);
	ok(is_err(j, "invalid_request") && strstr(sget(j, "message"), "unknown field"),
	   "a request of exactly %u bytes is parsed (and its unknown field refused)", DH_BROKER_MSG_MAX);
	DROP(j);
	/* many keys */
	size_t o = (size_t)snprintf(p, n, "{\"id\":\"k\",\"type\":\"heartbeat\",\"token\":"
					  "\"0123456789abcdef0123456789abcdef\",\"metrics\":{");
	for (int k = 0; k < 2000 && o + 32 < n; k++)
		o += (size_t)snprintf(p + o, n - o, "%s\"m%d\":%d", k ? "," : "", k, k);
	o += (size_t)snprintf(p + o, n - o, "}}");
	j = send_raw(b, "evil", p, o);
	ok(is_err(j, "invalid_request"), "metrics with 2000 entries: invalid_request");
	DROP(j);
	free(p);
	ok(reply_valid, "every reply so far was a JSON object with id and status");
	ok(dh_broker_count(b, NULL) == 0, "no hostile request left a registration");
	dh_broker_free(b);
}

/* Mutations of valid requests: every reply stays well-formed. */
static void
t_mutate(void)
{
	static const char *const seeds[] = {
		"{\"id\":\"m\",\"type\":\"register\",\"channel\":\"dhtest-m\",\"host\":\"h\",\"pid\":7,"
		"\"policy\":\"queue\",\"slots\":8,\"slot_size\":64,\"max_readers\":4,\"checksum\":\"blake2b\","
		"\"label\":\"mm\",\"schema_hash\":\"" HASH_A "\"}",
		"{\"id\":\"m\",\"type\":\"reader\",\"channel\":\"dhtest-m\",\"host\":\"h\",\"pid\":8}",
		"{\"id\":\"m\",\"type\":\"discover\",\"channel\":\"dhtest-m\"}",
		"{\"id\":\"m\",\"type\":\"list\"}",
		"{\"id\":\"m\",\"type\":\"heartbeat\",\"token\":\"0123456789abcdef0123456789abcdef\","
		"\"metrics\":{\"a\":1}}",
		"{\"id\":\"m\",\"type\":\"checksum_failure\",\"channel\":\"dhtest-m\",\"host\":\"h\",\"pid\":1,"
		"\"message_seq\":3}",
	};
	struct dh_broker *b = mkbroker(64, 64, 8);
	unsigned seed = 12345;
	char buf[1024];
	int bad = 0;

	reply_valid = 1;
	for (int it = 0; it < 50000; it++) {
		const char *s = seeds[it % 6];
		size_t len = strlen(s);
		memcpy(buf, s, len);
		for (int k = 0; k < 1 + (int)(seed % 4); k++) {
			seed = seed * 1103515245u + 12345u;
			size_t at = (seed >> 8) % len;
			switch ((seed >> 4) % 4) {
			case 0: buf[at] = (char)(seed >> 16); break;
			case 1: len = at + 1; break;
			case 2: buf[at] ^= (char)(1u << ((seed >> 20) % 8)); break;
			default: buf[at] = "{}[]\",:0\\"[(seed >> 12) % 9]; break;
			}
		}
		json_t *j = send_raw(b, "fuzz", buf, len);
		if (j == NULL)
			bad++;
		DROP(j);
		now += MS;
		if (sink.n > 32)
			events_clear();
	}
	ok(bad == 0 && reply_valid, "50000 mutated requests: a well-formed reply to each");
	ok(dh_broker_count(b, NULL) <= 64, "mutations never pass the caps");
	events_clear();
	dh_broker_free(b);
}

int
main(void)
{
	plan(62);
	reply_valid = 1;
	t_config();
	t_basic();
	t_conflicts();
	t_liveness();
	t_caps();
	t_hostile();
	t_mutate();
	ok(sink.logs > 0, "refusals and expiries were logged");
	return done();
}
