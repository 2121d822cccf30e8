/* stat_text.c: dh-stat's text output: the table of channels and the full picture of one. See LICENSE. */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "stat_text.h"

static const char *
size_text(uint64_t v, char *buf, size_t cap)
{
	static const char suffix[] = "KMGT";
	int k = -1;

	while (v >= 1024 && v % 1024 == 0 && k < 3) {
		v /= 1024;
		k++;
	}
	if (k < 0)
		snprintf(buf, cap, "%llu", (unsigned long long)v);
	else
		snprintf(buf, cap, "%llu%c", (unsigned long long)v, suffix[k]);
	return buf;
}

/* "1.5s ago" from an idle time; "never" for an entry never active. */
static const char *
idle_text(uint64_t last_active_ns, uint64_t idle_ns, char *buf, size_t cap)
{
	uint64_t s = idle_ns / 1000000000u;

	if (last_active_ns == 0)
		snprintf(buf, cap, "never");
	else if (s < 60)
		snprintf(buf, cap, "%.1fs ago", (double)idle_ns / 1e9);
	else if (s < 3600)
		snprintf(buf, cap, "%llum%02llus ago", (unsigned long long)(s / 60), (unsigned long long)(s % 60));
	else if (s < 86400)
		snprintf(buf, cap, "%lluh%02llum ago", (unsigned long long)(s / 3600),
			 (unsigned long long)(s / 60 % 60));
	else
		snprintf(buf, cap, "%llud%02lluh ago", (unsigned long long)(s / 86400),
			 (unsigned long long)(s / 3600 % 24));
	return buf;
}

static const char *
time_text(uint64_t ns, char *buf, size_t cap)
{
	time_t t = (time_t)(ns / 1000000000u);
	struct tm tm;

	if (ns == 0 || !gmtime_r(&t, &tm) || strftime(buf, cap, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
		snprintf(buf, cap, "-");
	return buf;
}

static const char *
u64_text(uint64_t v, char *buf, size_t cap)
{
	snprintf(buf, cap, "%llu", (unsigned long long)v);
	return buf;
}

/* An aligned table: cells are copied; numeric columns are right-aligned. */
#define MAXCOLS 16
struct table {
	int ncols;
	const char *head[MAXCOLS];
	int right[MAXCOLS];
	size_t width[MAXCOLS];
	char **cells;
	size_t nrows;
};

static void
table_row(struct table *t, const char **cells)
{
	char **nc = realloc(t->cells, (t->nrows + 1) * (size_t)t->ncols * sizeof *nc);

	if (!nc)
		cli_die(EXIT_FAIL, "out of memory");
	t->cells = nc;
	for (int i = 0; i < t->ncols; i++) {
		char *s = strdup(cells[i]);
		size_t w;

		if (!s)
			cli_die(EXIT_FAIL, "out of memory");
		t->cells[t->nrows * (size_t)t->ncols + (size_t)i] = s;
		w = strlen(s);
		if (w > t->width[i])
			t->width[i] = w;
	}
	t->nrows++;
}

static void
table_print_row(const struct table *t, const char *const *cells)
{
	for (int i = 0; i < t->ncols; i++) {
		int last = i == t->ncols - 1;
		int w = (int)t->width[i];

		if (t->right[i])
			printf("%*s%s", w, cells[i], last ? "" : "  ");
		else if (last)
			printf("%s", cells[i]);
		else
			printf("%-*s  ", w, cells[i]);
	}
	putchar('\n');
}

static void
table_print(struct table *t)
{
	for (int i = 0; i < t->ncols; i++)
		if (strlen(t->head[i]) > t->width[i])
			t->width[i] = strlen(t->head[i]);
	table_print_row(t, t->head);
	for (size_t r = 0; r < t->nrows; r++)
		table_print_row(t, (const char *const *)&t->cells[r * (size_t)t->ncols]);
	for (size_t r = 0; r < t->nrows * (size_t)t->ncols; r++)
		free(t->cells[r]);
	free(t->cells);
	t->cells = NULL;
	t->nrows = 0;
}

static void
table_col(struct table *t, const char *head, int right)
{
	t->head[t->ncols] = head;
	t->right[t->ncols] = right;
	t->width[t->ncols] = 0;
	t->ncols++;
}

void
stat_text_list(const struct dh_stat_channel *ch, size_t n, uint64_t now_ns, unsigned flags)
{
	struct table t = { 0 };
	char name[4 * DH_NAME_MAX + 8], geo[64], fill[48], msgs[24], mr[32], br[32], wr[48], rd[32],
	    lag[24], health[160], lost[24], cks[24], eos[8], created[32];

	table_col(&t, "NAME", 0);
	table_col(&t, "POLICY", 0);
	if ((flags & STAT_TEXT_ALL))
		table_col(&t, "CHECKSUM", 0);
	table_col(&t, "SLOTS", 0);
	table_col(&t, "FILL", 1);
	table_col(&t, "MESSAGES", 1);
	if ((flags & STAT_TEXT_RATES)) {
		table_col(&t, "MSG/S", 1);
		table_col(&t, "MB/S", 1);
	}
	table_col(&t, "WRITER", 0);
	table_col(&t, "READERS", 1);
	table_col(&t, "LAG", 1);
	if ((flags & STAT_TEXT_ALL)) {
		table_col(&t, "LOST", 1);
		table_col(&t, "CKFAIL", 1);
		table_col(&t, "EOS", 0);
		table_col(&t, "CREATED", 0);
	}
	table_col(&t, "HEALTH", 0);

	for (size_t i = 0; i < n; i++) {
		const struct dh_stat_channel *c = &ch[i];
		const struct dh_snapshot *s = c->snap;
		const char *cells[MAXCOLS];
		struct dh_stat st;
		int k = 0;

		dh_stat_safe(c->name, name, sizeof name);
		if (c->error != 0) {
			snprintf(health, sizeof health, "error: %s", dh_strerror(c->error));
			cells[k++] = name;
			while (k < t.ncols - 1)
				cells[k++] = "-";
			cells[k++] = health;
			table_row(&t, cells);
			continue;
		}
		dh_stat_derive(s, now_ns, &st);
		cells[k++] = name;
		cells[k++] = dh_policy_name(s->cfg.policy);
		if ((flags & STAT_TEXT_ALL))
			cells[k++] = dh_checksum_name(s->cfg.checksum);
		size_text(s->cfg.slot_size, br, sizeof br);
		snprintf(geo, sizeof geo, "%ux%s", s->cfg.slots, br);
		cells[k++] = geo;
		if (st.lag_known)
			snprintf(fill, sizeof fill, "%llu/%u", (unsigned long long)st.fill, s->cfg.slots);
		else
			snprintf(fill, sizeof fill, "-");
		cells[k++] = fill;
		cells[k++] = u64_text(s->messages_written, msgs, sizeof msgs);
		if ((flags & STAT_TEXT_RATES)) {
			if (c->has_rate) {
				snprintf(mr, sizeof mr, "%.1f", c->msgs_per_s);
				snprintf(br, sizeof br, "%.2f", c->bytes_per_s / 1e6);
			} else {
				snprintf(mr, sizeof mr, "-");
				snprintf(br, sizeof br, "-");
			}
			cells[k++] = mr;
			cells[k++] = br;
		}
		if (st.writer == DH_P_FREE)
			snprintf(wr, sizeof wr, "none");
		else
			snprintf(wr, sizeof wr, "%ld/%s", (long)s->part[0].pid, dh_pstate_name(st.writer));
		cells[k++] = wr;
		snprintf(rd, sizeof rd, "%u/%u", st.readers_alive, st.readers);
		cells[k++] = rd;
		if (st.lag_known)
			u64_text(st.lag, lag, sizeof lag);
		else
			snprintf(lag, sizeof lag, "-");
		cells[k++] = lag;
		if ((flags & STAT_TEXT_ALL)) {
			cells[k++] = u64_text(st.lost + s->queue_lost, lost, sizeof lost);
			cells[k++] = u64_text(s->checksum_failures, cks, sizeof cks);
			snprintf(eos, sizeof eos, "%s", s->eos ? "yes" : "no");
			cells[k++] = eos;
			cells[k++] = time_text(s->created_ns, created, sizeof created);
		}
		cells[k++] = dh_health_format(&st, health, sizeof health);
		table_row(&t, cells);
	}
	table_print(&t);
}

static void
kv(const char *key, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void
kv(const char *key, const char *fmt, ...)
{
	va_list ap;

	printf("%-20s ", key);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
}

static void
print_participants(const struct dh_snapshot *s, uint64_t now, unsigned flags)
{
	struct table t = { 0 };
	char idx[12], pid[24], name[4 * DH_PNAME_MAX + 8], pos[24], lag[24], msgs[24], bytes[24], lost[24],
	    cks[24], act[32];

	table_col(&t, "INDEX", 1);
	table_col(&t, "ROLE", 0);
	table_col(&t, "STATE", 0);
	table_col(&t, "PID", 1);
	table_col(&t, "NAME", 0);
	table_col(&t, "POSITION", 1);
	table_col(&t, "LAG", 1);
	table_col(&t, "MESSAGES", 1);
	table_col(&t, "BYTES", 1);
	table_col(&t, "LOST", 1);
	table_col(&t, "CKFAIL", 1);
	table_col(&t, "ACTIVE", 0);
	for (int i = 0; i < s->nparticipants && i <= DH_READERS_MAX; i++) {
		const struct dh_participant *p = &s->part[i];
		const char *cells[MAXCOLS];
		uint64_t l;
		int k = 0;

		if (p->state == DH_P_FREE && !(flags & STAT_TEXT_ALL))
			continue;
		snprintf(idx, sizeof idx, "%d", i);
		cells[k++] = idx;
		cells[k++] = i == 0 ? "writer" : "reader";
		cells[k++] = dh_pstate_name(p->state);
		snprintf(pid, sizeof pid, "%ld", (long)p->pid);
		cells[k++] = pid;
		cells[k++] = p->name[0] ? dh_stat_safe(p->name, name, sizeof name) : "-";
		cells[k++] = u64_text(p->position, pos, sizeof pos);
		if (dh_stat_lag(s, i, &l) == 0)
			u64_text(l, lag, sizeof lag);
		else
			snprintf(lag, sizeof lag, "-");
		cells[k++] = lag;
		cells[k++] = u64_text(p->messages, msgs, sizeof msgs);
		cells[k++] = u64_text(p->bytes, bytes, sizeof bytes);
		cells[k++] = i == 0 ? "-" : u64_text(p->lost, lost, sizeof lost);
		cells[k++] = i == 0 ? "-" : u64_text(p->checksum_failures, cks, sizeof cks);
		cells[k++] = idle_text(p->last_active_ns, dh_stat_idle(p, now), act, sizeof act);
		table_row(&t, cells);
	}
	if (t.nrows == 0) {
		free(t.cells);
		printf("  (none)\n");
		return;
	}
	table_print(&t);
}

void
stat_text_channel(const struct dh_stat_channel *c, uint64_t now, unsigned flags)
{
	const struct dh_snapshot *s = c->snap;
	char name[4 * DH_NAME_MAX + 8], b1[64], health[160];
	struct dh_stat st;

	dh_stat_derive(s, now, &st);
	dh_stat_safe(c->name, name, sizeof name);
	kv("channel", "%s", name);
	kv("path", "%s/dh.%s", dh_block_dir(), name);
	kv("created", "%s by uid %lu, pid %lu", time_text(s->created_ns, b1, sizeof b1),
	   (unsigned long)s->creator_uid, (unsigned long)s->creator_pid);
	kv("policy", "%s", dh_policy_name(s->cfg.policy));
	kv("checksum", "%s", dh_checksum_name(s->cfg.checksum));
	kv("keyed", "%s", s->keyed ? "yes" : "no");
	if (s->record_size > 0) {
		char text[4 * DH_SCHEMA_MAX];
		kv("schema", "%s", dh_stat_safe(c->schema ? c->schema : "", text, sizeof text));
		kv("record size", "%u bytes", s->record_size);
	} else {
		kv("schema", "none");
	}
	kv("slots", "%u x %u bytes (stride %llu)", s->cfg.slots, s->cfg.slot_size,
	   (unsigned long long)s->lay.stride);
	kv("max readers", "%u", s->cfg.max_readers);
	kv("metadata zone", "%u bytes", s->cfg.meta_size);
	kv("segment size", "%llu bytes", (unsigned long long)s->lay.total);
	if (s->cfg.evict_after_ns)
		kv("evict after", "%.3fs", (double)s->cfg.evict_after_ns / 1e9);
	else
		kv("evict after", "never");
	kv("committed", "%llu", (unsigned long long)s->committed);
	kv("stream", "%llu, from seq %llu", (unsigned long long)s->stream, (unsigned long long)s->stream_start);
	kv("end of stream", "%s", s->eos ? "yes" : "no");
	if (st.lag_known) {
		kv("fill", "%llu/%u", (unsigned long long)st.fill, s->cfg.slots);
		kv("lag", "%llu (reader %d)", (unsigned long long)st.lag, st.slowest);
	} else {
		kv("fill", "-");
		kv("lag", "-");
	}
	kv("health", "%s", dh_health_format(&st, health, sizeof health));
	if ((flags & STAT_TEXT_RATES)) {
		if (c->has_rate)
			kv("rate", "%.1f msg/s, %.2f MB/s", c->msgs_per_s, c->bytes_per_s / 1e6);
		else
			kv("rate", "-");
	}
	kv("messages written", "%llu", (unsigned long long)s->messages_written);
	kv("bytes written", "%llu", (unsigned long long)s->bytes_written);
	kv("writer waits", "%llu", (unsigned long long)s->writer_waits);
	kv("writer wait time", "%.3fs", (double)s->writer_wait_ns / 1e9);
	kv("readers reaped", "%llu", (unsigned long long)s->readers_reaped);
	kv("evictions", "%llu", (unsigned long long)s->evictions);
	kv("end-of-stream marks", "%llu", (unsigned long long)s->eos_count);
	kv("queue lost", "%llu", (unsigned long long)s->queue_lost);
	kv("checksum failures", "%llu", (unsigned long long)s->checksum_failures);
	kv("schema mismatches", "%llu", (unsigned long long)s->schema_mismatches);
	kv("key mismatches", "%llu", (unsigned long long)s->key_mismatches);
	if (st.writer == DH_P_FREE)
		kv("writer", "none");
	else
		kv("writer", "pid %ld, %s", (long)s->part[0].pid, dh_pstate_name(st.writer));
	kv("readers", "%u alive of %u", st.readers_alive, st.readers);
	if ((flags & STAT_TEXT_ALL)) {
		const struct dh_layout *l = &s->lay;

		kv("layout", "table %llu+%llu, descriptors %llu+%llu, metadata %llu+%llu, data %llu+%llu",
		   (unsigned long long)l->table_off, (unsigned long long)l->table_size,
		   (unsigned long long)l->desc_off, (unsigned long long)l->desc_size,
		   (unsigned long long)l->meta_off, (unsigned long long)l->meta_size,
		   (unsigned long long)l->data_off, (unsigned long long)l->data_size);
	}
	print_participants(s, now, flags);
}

