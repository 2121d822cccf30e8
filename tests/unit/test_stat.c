/* test_stat.c: unit tests of the snapshot metrics and renderings (lib/stat.c). See LICENSE. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "dh.h"
#include "dh_stat.h"
#include "tap.h"

#define NOW (1800000000ull * 1000000000ull)

/* A snapshot of a channel with the given geometry and no participants. */
static struct dh_snapshot *
mksnap(enum dh_policy pol, uint32_t slots, uint64_t committed)
{
	struct dh_snapshot *s = calloc(1, sizeof *s);

	if (!s) {
		perror("calloc");
		exit(1);
	}
	dh_config_init(&s->cfg);
	s->cfg.policy = pol;
	s->cfg.slots = slots;
	s->cfg.max_readers = 4;
	dh_layout_compute(&s->cfg, &s->lay);
	s->created_ns = NOW - 1000000000ull;
	s->committed = committed;
	s->messages_written = committed;
	s->bytes_written = committed * 10;
	s->nparticipants = 5;
	for (int i = 0; i < s->nparticipants; i++)
		s->part[i].index = i;
	return s;
}

static void
attach(struct dh_snapshot *s, int i, enum dh_pstate st, uint64_t pos, uint64_t active_ns)
{
	s->part[i].state = st;
	s->part[i].pid = 1000 + i;
	s->part[i].position = pos;
	s->part[i].last_active_ns = active_ns;
}

static const char *
fmt(const struct dh_stat *st)
{
	static char buf[160];

	return dh_health_format(st, buf, sizeof buf);
}

static void
test_derive(void)
{
	struct dh_snapshot *s = mksnap(DH_POLICY_SYNC, 8, 100);
	struct dh_stat st;
	uint64_t lag = 0;

	dh_stat_derive(s, NOW, &st);
	ok(st.level == DH_LEVEL_OK && st.health == 0 && !st.lag_known && st.readers == 0 &&
	   st.writer == DH_P_FREE && st.slowest == -1,
	   "idle channel: ok, no lag, no participants");
	ok(strcmp(fmt(&st), "ok") == 0, "idle channel formats as \"ok\" (got %s)", fmt(&st));

	attach(s, 0, DH_P_ALIVE, 100, NOW);
	attach(s, 1, DH_P_ALIVE, 97, NOW);
	attach(s, 3, DH_P_ALIVE, 99, NOW);
	dh_stat_derive(s, NOW, &st);
	ok(st.lag_known && st.lag == 3 && st.slowest == 1 && st.fill == 3 && st.readers == 2 &&
	   st.readers_alive == 2 && st.level == DH_LEVEL_OK,
	   "sync: lag and fill of the slowest live reader (lag %llu, slowest %d)",
	   (unsigned long long)st.lag, st.slowest);
	ok(dh_stat_lag(s, 3, &lag) == 0 && lag == 1, "per-reader lag");
	ok(dh_stat_lag(s, 0, &lag) == -ENODATA && dh_stat_lag(s, 2, &lag) == -ENODATA &&
	   dh_stat_lag(s, 99, &lag) == -ENODATA,
	   "no lag for the writer, a free entry or an index out of range");

	s->part[3].position = 150; /* ahead of committed: hostile or racing */
	ok(dh_stat_lag(s, 3, &lag) == 0 && lag == 0, "a position past committed lags 0");

	s->part[1].position = 90;
	dh_stat_derive(s, NOW, &st);
	ok(st.lag == 10 && st.fill == 8 && (st.health & DH_HEALTH_FULL) && st.level == DH_LEVEL_WARN,
	   "sync: a reader a whole ring behind makes the channel full (%s)", fmt(&st));

	s->part[1].last_active_ns = NOW - 2 * DH_STAT_STALL_NS;
	s->part[1].idle_ns = 1000;
	dh_stat_derive(s, NOW, &st);
	ok(!(st.health & DH_HEALTH_STALLED), "staleness is judged by the monotonic idle time");
	s->part[1].idle_ns = 0;
	dh_stat_derive(s, NOW, &st);
	ok(st.health & DH_HEALTH_STALLED, "without a heartbeat, by the wall clock");
	s->part[1].idle_ns = DH_STAT_STALL_NS;
	dh_stat_derive(s, NOW, &st);
	ok(st.health & DH_HEALTH_STALLED, "a lagging reader idle for the stall time is stalled");
	s->part[1].position = 100;
	dh_stat_derive(s, NOW, &st);
	ok(!(st.health & DH_HEALTH_STALLED), "an idle reader with nothing to read is not stalled");

	attach(s, 2, DH_P_DEAD, 0, NOW);
	dh_stat_derive(s, NOW, &st);
	ok(st.readers == 3 && st.readers_alive == 2 && st.readers_dead == 1 && st.lag == 0 &&
	   strcmp(fmt(&st), "warn:reader-dead") == 0,
	   "a dead reader is counted, warned about and never the slowest (%s)", fmt(&st));

	s->part[0].state = DH_P_DEAD;
	dh_stat_derive(s, NOW, &st);
	ok(st.level == DH_LEVEL_BAD && strcmp(fmt(&st), "bad:writer-dead,reader-dead") == 0,
	   "writer dead without end-of-stream is bad (%s)", fmt(&st));
	s->eos = 1;
	dh_stat_derive(s, NOW, &st);
	ok(!(st.health & DH_HEALTH_WRITER_DEAD), "writer dead after end-of-stream is not flagged");

	s->part[2].state = DH_P_EVICTED;
	s->part[2].lost = 4;
	s->checksum_failures = 1;
	dh_stat_derive(s, NOW, &st);
	ok(st.readers_evicted == 1 && st.lost == 4 &&
	   strcmp(fmt(&st), "bad:checksum,evicted,lost") == 0,
	   "evicted, lost and checksum failures (%s)", fmt(&st));

	s->part[4].state = DH_P_UNKNOWN;
	dh_stat_derive(s, NOW, &st);
	ok(st.readers_unknown == 1 && (st.health & DH_HEALTH_UNKNOWN), "unknown liveness is reported");
	s->key_mismatches = 1;
	dh_stat_derive(s, NOW, &st);
	ok((st.health & DH_HEALTH_MISMATCH) && strstr(fmt(&st), "mismatch") != NULL,
	   "refused participants (wrong key or schema) are reported (%s)", fmt(&st));

	free(s);
	s = mksnap(DH_POLICY_QUEUE, 8, 50);
	attach(s, 0, DH_P_ALIVE, 50, NOW);
	attach(s, 1, DH_P_ALIVE, 0, NOW);
	s->queue_lost = 2;
	s->claim_head = 45;
	dh_stat_derive(s, NOW, &st);
	ok(dh_stat_lag(s, 1, &lag) == -ENODATA && (st.health & DH_HEALTH_LOST),
	   "queue: no per-reader lag; queue losses count as lost");
	ok(st.lag_known && st.lag == 5 && st.fill == 5,
	   "queue: the channel's lag and fill are its backlog, committed - claimed (%llu, %llu)",
	   (unsigned long long)st.lag, (unsigned long long)st.fill);
	free(s);

	s = mksnap(DH_POLICY_RING, 8, 50);
	attach(s, 1, DH_P_ALIVE, 10, NOW);
	dh_stat_derive(s, NOW, &st);
	ok(st.lag == 40 && st.fill == 8 && !(st.health & DH_HEALTH_FULL),
	   "ring: a lapped reader's lag exceeds the slots; the writer is never blocked");
	free(s);

	s = mksnap(DH_POLICY_SYNC, 8, 0);
	s->nparticipants = 100000; /* nonsense must not send it out of bounds */
	dh_stat_derive(s, NOW, &st);
	ok(st.readers == 0, "participant count is clamped");
	free(s);
}

static void
test_names(void)
{
	char buf[64], small[10];

	ok(strcmp(dh_health_name(DH_HEALTH_STALLED), "stalled") == 0 &&
	   strcmp(dh_health_name(DH_HEALTH_FULL | DH_HEALTH_LOST), "?") == 0,
	   "health names, \"?\" for a non-bit");
	ok(strcmp(dh_pstate_name(DH_P_EVICTED), "evicted") == 0 && strcmp(dh_level_name(DH_LEVEL_BAD), "bad") == 0,
	   "state and level names");
	ok(strcmp(dh_stat_safe("a\\b\n\xff", buf, sizeof buf), "a\\x5cb\\x0a\\xff") == 0,
	   "safe: backslash and non-printable bytes escaped (%s)", buf);
	ok(strcmp(dh_stat_safe("abcdefghijkl", small, sizeof small), "abcdef...") == 0,
	   "safe: cut to fit with ... (%s)", small);
}

static void
test_rate(void)
{
	struct dh_snapshot *a = mksnap(DH_POLICY_RING, 8, 100), *b = mksnap(DH_POLICY_RING, 8, 300);
	double m = 0, by = 0;

	int rc = dh_stat_rate(a, b, 2000000000ull, &m, &by);

	ok(rc == 0 && m == 100.0 && by == 1000.0, "rate over two seconds (%g msg/s, %g B/s)", m, by);
	ok(dh_stat_rate(a, b, 0, &m, &by) == -EINVAL, "zero interval refused");
	ok(dh_stat_rate(b, a, 1000000000ull, &m, &by) == -ESTALE, "counters going back: stale");
	b->created_ns++;
	ok(dh_stat_rate(a, b, 1000000000ull, &m, &by) == -ESTALE, "recreated channel: stale");
	free(a);
	free(b);
}

static void
test_json(void)
{
	struct dh_snapshot *s = mksnap(DH_POLICY_SYNC, 8, 10);
	struct dh_stat_channel ch[2];
	json_t *doc, *c0, *c1, *r;
	json_error_t err;
	char *text = NULL;

	attach(s, 0, DH_P_ALIVE, 10, NOW);
	attach(s, 2, DH_P_ALIVE, 7, NOW);
	memcpy(s->part[2].name, "r\"\xff\x01", 5); /* hostile label: not UTF-8 */
	memset(ch, 0, sizeof ch);
	ch[0].name = "good";
	ch[0].snap = s;
	ch[0].has_rate = 1;
	ch[0].msgs_per_s = 2.5;
	ch[1].name = "locked";
	ch[1].error = -EACCES;

	ok(dh_stat_json(ch, 2, NOW, 0, &text) == 0 && text && text[strlen(text) - 1] == '\n' &&
	   strchr(text, '\n') == text + strlen(text) - 1,
	   "json: one line, newline-terminated");
	doc = text ? json_loads(text, 0, &err) : NULL;
	ok(doc != NULL, "json: parses (%s)", doc ? "ok" : err.text);
	c0 = json_array_get(json_object_get(doc, "channels"), 0);
	c1 = json_array_get(json_object_get(doc, "channels"), 1);
	ok(json_integer_value(json_object_get(doc, "time_ns")) == (json_int_t)NOW, "json: time_ns");
	ok(json_is_true(json_object_get(c0, "ok")) &&
	   strcmp(json_string_value(json_object_get(c0, "policy")), "sync") == 0 &&
	   json_integer_value(json_object_get(c0, "lag")) == 3 &&
	   json_integer_value(json_object_get(c0, "slowest_reader")) == 2 &&
	   json_real_value(json_object_get(c0, "msg_rate")) == 2.5 &&
	   json_integer_value(json_object_get(json_object_get(c0, "counters"), "bytes_written")) == 100 &&
	   strcmp(json_string_value(json_object_get(c0, "health")), "ok") == 0,
	   "json: channel fields");
	r = json_array_get(json_object_get(c0, "readers"), 0);
	ok(json_array_size(json_object_get(c0, "readers")) == 1 &&
	   json_integer_value(json_object_get(r, "index")) == 2 &&
	   strcmp(json_string_value(json_object_get(r, "name")), "r\"\\xff\\x01") == 0 &&
	   json_integer_value(json_object_get(r, "lag")) == 3,
	   "json: only used entries; an untrusted label is escaped");
	ok(json_is_false(json_object_get(c1, "ok")) &&
	   strcmp(json_string_value(json_object_get(c1, "error")), "Permission denied") == 0 &&
	   json_object_get(c1, "policy") == NULL,
	   "json: an unreadable channel has ok false and the reason");
	ok(json_object_get(c0, "layout") == NULL && json_is_null(json_object_get(c0, "schema")) &&
	   json_is_false(json_object_get(c0, "keyed")),
	   "json: no layout without DH_STAT_ALL; no schema, not keyed");
	json_decref(doc);
	free(text);

	text = NULL;
	s->record_size = 12;
	s->schema_hash[0] = 0xab;
	ch[0].schema = "a:u32;b:f64";
	ok(dh_stat_json(ch, 1, NOW, DH_STAT_ALL, &text) == 0 && (doc = json_loads(text, 0, &err)) != NULL,
	   "json with DH_STAT_ALL parses");
	c0 = json_array_get(json_object_get(doc, "channels"), 0);
	ok(json_array_size(json_object_get(c0, "readers")) == 4 &&
	   json_integer_value(json_object_get(json_object_get(c0, "layout"), "total")) ==
		   (json_int_t)s->lay.total,
	   "json with DH_STAT_ALL: free entries and the layout");
	ok(strcmp(json_string_value(json_object_get(c0, "schema")), "a:u32;b:f64") == 0 &&
	   json_integer_value(json_object_get(c0, "record_size")) == 12 &&
	   strncmp(json_string_value(json_object_get(c0, "schema_hash")), "ab00", 4) == 0 &&
	   strlen(json_string_value(json_object_get(c0, "schema_hash"))) == 64,
	   "json: schema text, record size and hash in hex");
	json_decref(doc);
	free(text);

	text = NULL;
	ok(dh_stat_json(NULL, 0, NOW, 0, &text) == 0 && strstr(text, "\"channels\":[]") != NULL,
	   "json: no channels gives an empty array");
	free(text);
	free(s);
}

/* Every line of a Prometheus exposition is a comment or name{labels} value. */
static int
prom_lines_ok(const char *text, char *why, size_t cap)
{
	const char *p = text;

	while (*p) {
		const char *nl = strchr(p, '\n');
		size_t len = nl ? (size_t)(nl - p) : strlen(p);
		const char *brace = memchr(p, '{', len), *close;

		if (!nl) {
			snprintf(why, cap, "no final newline");
			return 0;
		}
		if (len > 0 && p[0] != '#') {
			close = brace ? memchr(brace, '}', len - (size_t)(brace - p)) : NULL;
			if (!brace || !close || close[1] != ' ' || strncmp(p, "dh_", 3) != 0) {
				snprintf(why, cap, "bad line: %.*s", (int)len, p);
				return 0;
			}
		}
		p = nl + 1;
	}
	return 1;
}

static int
count(const char *hay, const char *needle)
{
	int n = 0;

	for (const char *p = hay; (p = strstr(p, needle)) != NULL; p++)
		n++;
	return n;
}

static void
test_prometheus(void)
{
	struct dh_snapshot *s = mksnap(DH_POLICY_RING, 8, 10);
	struct dh_stat_channel ch[2];
	char *text = NULL, why[256] = "";

	attach(s, 0, DH_P_ALIVE, 10, NOW);
	attach(s, 1, DH_P_ALIVE, 4, NOW + 1500000000ull);
	memcpy(s->part[1].name, "a\"b\\c\nd", 8);
	s->writer_wait_ns = 1500000001ull;
	memset(ch, 0, sizeof ch);
	ch[0].name = "chan";
	ch[0].snap = s;
	ch[1].name = "gone";
	ch[1].error = -DH_ECORRUPT;

	ok(dh_stat_prometheus(ch, 2, NOW, 0, &text) == 0 && text != NULL, "prometheus: renders");
	if (!text) {
		fail_rest(7, "prometheus");
		free(s);
		return;
	}
	ok(prom_lines_ok(text, why, sizeof why), "prometheus: every sample line is well formed %s", why);
	ok(strstr(text, "dh_channel_up{channel=\"chan\"} 1\n") && strstr(text, "dh_channel_up{channel=\"gone\"} 0\n") &&
	   !strstr(text, "dh_channel_slots{channel=\"gone\"}"),
	   "prometheus: up 1/0, nothing else for an unreadable channel");
	ok(count(text, "# TYPE dh_channel_messages_written_total counter\n") == 1 &&
	   count(text, "# HELP dh_channel_up ") == 1,
	   "prometheus: HELP and TYPE once per family");
	ok(strstr(text, "reader_name=\"a\\\"b\\\\c?d\"") != NULL,
	   "prometheus: label values escaped, control bytes replaced");
	ok(strstr(text, "dh_channel_writer_wait_seconds_total{channel=\"chan\"} 1.500000001\n") != NULL &&
	   strstr(text, "dh_reader_last_active_timestamp_seconds{channel=\"chan\",reader=\"1\",reader_name=") != NULL &&
	   strstr(text, "} 1800000001.500000000\n") != NULL,
	   "prometheus: nanoseconds exported exactly as seconds");
	ok(strstr(text, "dh_reader_lag_messages{channel=\"chan\",reader=\"1\",") != NULL &&
	   strstr(text, "dh_channel_lag_messages{channel=\"chan\"} 6\n") != NULL &&
	   strstr(text, "dh_channel_info{channel=\"chan\",policy=\"ring\",checksum=\"xxh3\"} 1\n") != NULL,
	   "prometheus: lag and info samples");
	{
		/* counters and only counters end in _total */
		int bad = 0;
		for (const char *p = strstr(text, "# TYPE "); p; p = strstr(p + 1, "# TYPE ")) {
			const char *sp = strchr(p + 7, ' ');
			int total = sp - p - 7 > 6 && strncmp(sp - 6, "_total", 6) == 0;
			int counter = strncmp(sp + 1, "counter", 7) == 0;
			bad += total != counter;
		}
		ok(bad == 0, "prometheus: counters end in _total, gauges do not");
	}
	free(text);
	free(s);
}

int
main(void)
{
	plan(48);
	test_derive();
	test_names();
	test_rate();
	test_json();
	test_prometheus();
	return done();
}
