/* dh-stat: show channels: geometry, counters, participants, rates, health. See LICENSE. */
#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "broker_cli.h"
#include "cli.h"
#include "dh_schema.h"
#include "dh_stat.h"
#include "stat_mon.h"

static const char synopsis[] =
	"dh-stat [--json | --prometheus] [--watch SEC] [--all-fields] [--filter PATTERN] [NAME ...]";
static const char synopsis_serve[] = "dh-stat --serve ADDR [--all-fields] [--filter PATTERN] [NAME ...]";
static const char synopsis_broker[] =
	"dh-stat --broker ENDPOINT [--broker-key FILE --client-key FILE] [--json] [NAME ...]";
static const char synopsis_events[] = "dh-stat [--broker ENDPOINT] [--broker-key FILE --client-key FILE] --events";

enum { OPT_ALL = 256, OPT_EVENTS, OPT_FILTER, OPT_JSON, OPT_PROM, OPT_SERVE, OPT_WATCH };
enum fmt { FMT_TEXT, FMT_JSON, FMT_PROM };

static const struct option longopts[] = {
	{ "all-fields", no_argument, NULL, OPT_ALL },
	{ "broker", required_argument, NULL, CLI_OPT_BROKER },
	{ "broker-key", required_argument, NULL, CLI_OPT_BROKER_KEY },
	{ "client-key", required_argument, NULL, CLI_OPT_CLIENT_KEY },
	{ "events", no_argument, NULL, OPT_EVENTS },
	{ "filter", required_argument, NULL, OPT_FILTER },
	{ "help", no_argument, NULL, 'h' },
	{ "json", no_argument, NULL, OPT_JSON },
	{ "prometheus", no_argument, NULL, OPT_PROM },
	{ "serve", required_argument, NULL, OPT_SERVE },
	{ "version", no_argument, NULL, 'V' },
	{ "watch", required_argument, NULL, OPT_WATCH },
	{ NULL, 0, NULL, 0 }
};

/* One channel seen in one pass. */
struct chan {
	char *name;
	int error;
	struct dh_snapshot *snap;
	char *schema;              /* canonical schema text, NULL if none */
	uint64_t mono_ns;          /* when snap was taken */
	int has_rate;
	double msgs_per_s, bytes_per_s;
};

struct pass {
	struct chan *c;
	size_t n;
	uint64_t now_ns;           /* CLOCK_REALTIME of the pass */
};

static struct {
	enum fmt fmt;
	int all, events, watch, named, tty;
	int64_t interval_ns;
	const char *filter, *serve;   /* --filter PATTERN, --serve ADDR */
} opt;

static _Noreturn void
help(void)
{
	cli_print_usage(stdout, (const char *const[]){ synopsis, synopsis_serve, synopsis_broker, synopsis_events, NULL });
	putchar('\n');
	printf("Show the channels in /dev/shm, or the full picture of each channel NAME.\n\n"
	       "  --json           one JSON document per refresh\n"
	       "  --prometheus     Prometheus text exposition format\n"
	       "  --watch SEC      refresh every SEC (ms, s or m suffix; decimals allowed)\n"
	       "                   with message and byte rates, until interrupted\n"
	       "                   (on a terminal, without NAME: a full-screen live view)\n"
	       "  --all-fields     also checksum kind, loss and end-of-stream columns,\n"
	       "                   free table entries and the segment layout\n"
	       "  --filter PATTERN only the channels whose name matches the glob PATTERN\n"
	       "                   (without * ? [: whose name contains it)\n"
	       "  --serve ADDR     answer Prometheus scrapes at http://ADDR/metrics until\n"
	       "                   interrupted; ADDR: PORT (loopback), HOST:PORT, [IPV6]:PORT\n"
	       "  --broker ENDPOINT  list the channels registered with dh-broker(1) there,\n"
	       "                   on every host, instead of those in /dev/shm\n"
	       "  --events         print the broker's events as JSON lines until interrupted\n"
	       "                   (the broker of --broker, else $DH_BROKER)\n"
	       "  --broker-key FILE, --client-key FILE   CURVE: the broker's public key and\n"
	       "                   our secret key (default: in $DH_CURVE_DIR)\n"
	       "  -h, --help       print this help and exit\n"
	       "  -V, --version    print the version and exit\n\n"
	       "Reading statistics never modifies a channel. Exit status: 0 done, 1 a named\n"
	       "channel could not be read or output failed, 2 usage error.\n");
	exit(cli_close_stdout());
}

/* --- taking snapshots ------------------------------------------------------ */

/* A segment truncated under us raises SIGBUS on access: report it as
 * corrupt instead of dying. */
static sigjmp_buf bus_env;
static volatile sig_atomic_t bus_armed;

static void
on_bus(int sig)
{
	if (bus_armed) {
		bus_armed = 0;
		siglongjmp(bus_env, 1);
	}
	signal(sig, SIG_DFL);
	raise(sig);
}

static int
snapshot(struct dh_block *b, struct dh_snapshot *s, char *schema, size_t cap)
{
	int rc;

	if (sigsetjmp(bus_env, 1))
		return -DH_ECORRUPT;
	bus_armed = 1;
	rc = dh_block_snapshot(b, s);
	if (rc == 0 && s->record_size > 0)
		dh_block_schema(b, schema, cap, NULL);
	bus_armed = 0;
	return rc;
}

static uint64_t
now_ns(clockid_t clk)
{
	struct timespec ts;

	clock_gettime(clk, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void
take(struct chan *c)
{
	char schema[DH_SCHEMA_MAX];
	struct dh_block *b;
	int rc;

	if (dh_name_check(c->name) < 0) {
		c->error = -DH_EFOREIGN; /* a dh.* file no dh tool could have made */
		return;
	}
	if (!c->snap && !(c->snap = malloc(sizeof *c->snap)))
		cli_die(EXIT_FAIL, "out of memory");
	/* a listing does not wait for creators: an unpublished file says so at once */
	if ((rc = dh_block_open(c->name, DH_OPEN_RDONLY | DH_OPEN_NOWAIT, &b)) == 0) {
		schema[0] = '\0';
		rc = snapshot(b, c->snap, schema, sizeof schema);
		c->mono_ns = now_ns(CLOCK_MONOTONIC);
		dh_block_close(b);
		if (rc == 0 && c->snap->record_size > 0 && !(c->schema = strdup(schema)))
			cli_die(EXIT_FAIL, "out of memory");
	}
	c->error = rc;
}

static int
by_name(const void *a, const void *b)
{
	return strcmp(((const struct chan *)a)->name, ((const struct chan *)b)->name);
}

static void
add(struct pass *p, const char *name)
{
	struct chan *c;

	if (!(c = realloc(p->c, (p->n + 1) * sizeof *c)))
		cli_die(EXIT_FAIL, "out of memory");
	p->c = c;
	c = &p->c[p->n++];
	memset(c, 0, sizeof *c);
	if (!(c->name = strdup(name)))
		cli_die(EXIT_FAIL, "out of memory");
}

/* Every dh.* regular file of the channel directory, sorted by name. */
static int
list(struct pass *p)
{
	struct dirent *d;
	DIR *dir;

	if (!(dir = opendir(dh_block_dir()))) {
		cli_warn("%s: %s", dh_block_dir(), strerror(errno));
		return -1;
	}
	errno = 0;
	while ((d = readdir(dir)) != NULL) {
		if (strncmp(d->d_name, "dh.", 3) == 0 && cli_dirent_regular(dir, d) &&
		    (opt.filter == NULL || stat_filter_match(opt.filter, d->d_name + 3)))
			add(p, d->d_name + 3);
		errno = 0;
	}
	if (errno != 0) {
		cli_warn("%s: %s", dh_block_dir(), strerror(errno));
		closedir(dir);
		return -1;
	}
	closedir(dir);
	if (p->n > 1)
		qsort(p->c, p->n, sizeof *p->c, by_name);
	return 0;
}

static void
pass_free(struct pass *p)
{
	for (size_t i = 0; i < p->n; i++) {
		free(p->c[i].name);
		free(p->c[i].snap);
		free(p->c[i].schema);
	}
	free(p->c);
	memset(p, 0, sizeof *p);
}

/* Rates against the previous pass's view of the same channel. */
static void
rates(struct pass *cur, const struct pass *prev)
{
	for (size_t i = 0; i < cur->n; i++) {
		struct chan *c = &cur->c[i];

		for (size_t j = 0; j < prev->n && c->error == 0; j++) {
			const struct chan *o = &prev->c[j];

			if (o->error != 0 || strcmp(o->name, c->name) != 0)
				continue;
			c->has_rate = dh_stat_rate(o->snap, c->snap, c->mono_ns - o->mono_ns, &c->msgs_per_s,
						   &c->bytes_per_s) == 0;
			break;
		}
	}
}

/* --- text output ----------------------------------------------------------- */

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

static void
print_list(const struct pass *p)
{
	struct table t = { 0 };
	char name[4 * DH_NAME_MAX + 8], geo[64], fill[48], msgs[24], mr[32], br[32], wr[48], rd[32],
	    lag[24], health[160], lost[24], cks[24], eos[8], created[32];

	table_col(&t, "NAME", 0);
	table_col(&t, "POLICY", 0);
	if (opt.all)
		table_col(&t, "CHECKSUM", 0);
	table_col(&t, "SLOTS", 0);
	table_col(&t, "FILL", 1);
	table_col(&t, "MESSAGES", 1);
	if (opt.watch) {
		table_col(&t, "MSG/S", 1);
		table_col(&t, "MB/S", 1);
	}
	table_col(&t, "WRITER", 0);
	table_col(&t, "READERS", 1);
	table_col(&t, "LAG", 1);
	if (opt.all) {
		table_col(&t, "LOST", 1);
		table_col(&t, "CKFAIL", 1);
		table_col(&t, "EOS", 0);
		table_col(&t, "CREATED", 0);
	}
	table_col(&t, "HEALTH", 0);

	for (size_t i = 0; i < p->n; i++) {
		const struct chan *c = &p->c[i];
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
		dh_stat_derive(s, p->now_ns, &st);
		cells[k++] = name;
		cells[k++] = dh_policy_name(s->cfg.policy);
		if (opt.all)
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
		if (opt.watch) {
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
		if (opt.all) {
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
print_participants(const struct dh_snapshot *s, uint64_t now)
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

		if (p->state == DH_P_FREE && !opt.all)
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

static void
print_channel(const struct chan *c, uint64_t now)
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
	if (opt.watch) {
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
	if (opt.all) {
		const struct dh_layout *l = &s->lay;

		kv("layout", "table %llu+%llu, descriptors %llu+%llu, metadata %llu+%llu, data %llu+%llu",
		   (unsigned long long)l->table_off, (unsigned long long)l->table_size,
		   (unsigned long long)l->desc_off, (unsigned long long)l->desc_size,
		   (unsigned long long)l->meta_off, (unsigned long long)l->meta_size,
		   (unsigned long long)l->data_off, (unsigned long long)l->data_size);
	}
	print_participants(s, now);
}

/* --- main loop ------------------------------------------------------------- */

/* --broker, --events: the broker's view instead of /dev/shm. */
static int
broker(struct cli_broker *b, char **names, int n)
{
	const char *syn = opt.events ? synopsis_events : synopsis_broker;

	if (opt.fmt == FMT_PROM || opt.watch || opt.all || opt.serve || opt.filter)
		cli_usage(syn, "--prometheus, --watch, --all-fields, --filter and --serve are for the channels "
			  "in /dev/shm");
	if (opt.events && n > 0)
		cli_usage(syn, "--events takes no channel name");
	if (!cli_broker_setup(b, syn))
		cli_usage(syn, "--events needs --broker ENDPOINT (or DH_BROKER)");
	return opt.events ? cli_broker_events(b) : cli_broker_list(b, opt.fmt == FMT_JSON, names, n);
}

/* Print one pass; returns 1 if a named channel could not be read. */
static int
print_pass(const struct pass *p)
{
	struct dh_stat_channel *sc;
	char *doc = NULL;
	int rc, failed = 0, first = 1;

	if (opt.named)
		for (size_t i = 0; i < p->n; i++)
			if (p->c[i].error != 0) {
				char name[4 * DH_NAME_MAX + 8];
				/* worded like the other commands' (issue 17) */
				if (p->c[i].error == -ENOENT)
					cli_warn("%s: no such channel", dh_stat_safe(p->c[i].name, name, sizeof name));
				else
					cli_warnc(p->c[i].error, "%s", dh_stat_safe(p->c[i].name, name, sizeof name));
				failed = 1;
			}
	if (opt.fmt == FMT_TEXT) {
		if (!opt.named) {
			print_list(p);
			return failed;
		}
		for (size_t i = 0; i < p->n; i++) {
			if (p->c[i].error != 0)
				continue;
			if (!first)
				putchar('\n');
			first = 0;
			print_channel(&p->c[i], p->now_ns);
		}
		return failed;
	}
	if (!(sc = calloc(p->n ? p->n : 1, sizeof *sc)))
		cli_die(EXIT_FAIL, "out of memory");
	for (size_t i = 0; i < p->n; i++) {
		sc[i].name = p->c[i].name;
		sc[i].error = p->c[i].error;
		sc[i].snap = p->c[i].snap;
		sc[i].schema = p->c[i].schema;
		sc[i].has_rate = p->c[i].has_rate;
		sc[i].msgs_per_s = p->c[i].msgs_per_s;
		sc[i].bytes_per_s = p->c[i].bytes_per_s;
	}
	if (opt.fmt == FMT_JSON)
		rc = dh_stat_json(sc, p->n, p->now_ns, opt.all ? DH_STAT_ALL : 0, &doc);
	else
		rc = dh_stat_prometheus(sc, p->n, p->now_ns, opt.all ? DH_STAT_ALL : 0, &doc);
	free(sc);
	if (rc < 0)
		cli_diec(EXIT_FAIL, rc, "render");
	fputs(doc, stdout);
	free(doc);
	return failed;
}

static void
collect(struct pass *p, char **names, int nnames)
{
	memset(p, 0, sizeof *p);
	if (nnames > 0) {
		for (int i = 0; i < nnames; i++)
			add(p, names[i]);
	} else if (list(p) < 0) {
		exit(EXIT_FAIL);
	}
	p->now_ns = now_ns(CLOCK_REALTIME);
	for (size_t i = 0; i < p->n; i++)
		take(&p->c[i]);
}

static int
watch(char **names, int nnames)
{
	struct pass prev = { 0 }, cur;
	struct timespec next;
	int failed = 0;

	cli_catch_signals(0);
	clock_gettime(CLOCK_MONOTONIC, &next);
	while (!cli_signal) {
		collect(&cur, names, nnames);
		rates(&cur, &prev);
		if (opt.tty)
			fputs("\033[H\033[2J", stdout);
		else if (prev.c != NULL && opt.fmt != FMT_JSON)
			putchar('\n');
		failed |= print_pass(&cur);
		pass_free(&prev);
		prev = cur;
		if (fflush(stdout) != 0 || ferror(stdout))
			break;
		next.tv_sec += opt.interval_ns / 1000000000;
		next.tv_nsec += opt.interval_ns % 1000000000;
		if (next.tv_nsec >= 1000000000) {
			next.tv_sec++;
			next.tv_nsec -= 1000000000;
		}
		/* fell behind (a slow pass, a stopped process): restart the cadence */
		if ((uint64_t)next.tv_sec * 1000000000u + (uint64_t)next.tv_nsec < now_ns(CLOCK_MONOTONIC))
			clock_gettime(CLOCK_MONOTONIC, &next);
		while (!cli_signal && clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &next, NULL) == EINTR)
			;
	}
	pass_free(&prev);
	if (cli_close_stdout() != 0)
		return EXIT_FAIL;
	cli_reraise();
	return failed ? EXIT_FAIL : EXIT_OK;
}

/* The source of --serve and the full-screen --watch (stat_mon.h): a pass,
 * with rates against the one before. */
struct live {
	char **names;
	int nnames;
	struct pass prev, cur;
	struct dh_stat_channel *ch;
};

static int
live_take(void *arg, struct stat_frame *f)
{
	struct live *l = arg;

	pass_free(&l->prev);
	l->prev = l->cur;
	collect(&l->cur, l->names, l->nnames);
	rates(&l->cur, &l->prev);
	free(l->ch);
	if (!(l->ch = calloc(l->cur.n ? l->cur.n : 1, sizeof *l->ch)))
		return -ENOMEM;
	for (size_t i = 0; i < l->cur.n; i++) {
		const struct chan *c = &l->cur.c[i];

		l->ch[i] = (struct dh_stat_channel){ .name = c->name, .error = c->error, .snap = c->snap,
						     .schema = c->schema, .has_rate = c->has_rate,
						     .msgs_per_s = c->msgs_per_s, .bytes_per_s = c->bytes_per_s };
	}
	f->ch = l->ch;
	f->n = l->cur.n;
	f->now_ns = l->cur.now_ns;
	return 0;
}

static int
live(char **names, int nnames)
{
	struct live l = { .names = names, .nnames = nnames };
	struct stat_source src = { live_take, &l, opt.all ? DH_STAT_ALL : 0 };
	const char *filter = opt.filter;
	int rc;

	if (opt.serve != NULL) {
		rc = stat_serve(opt.serve, synopsis_serve, &src);
	} else {
		opt.filter = NULL;      /* the view filters, and can change it */
		if ((rc = stat_top(&src, opt.interval_ns, filter)) < 0) {
			opt.filter = filter;
			rc = watch(names, nnames);
		}
	}
	pass_free(&l.prev);
	pass_free(&l.cur);
	free(l.ch);
	return rc;
}

int
main(int argc, char **argv)
{
	struct cli_broker bk = { 0 };
	struct sigaction sa;
	struct pass p;
	char buf[64];
	int c, failed;

	cli_init(argc, argv);
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":hV", longopts, NULL)) != -1) {
		if (cli_broker_option(&bk, c, optarg))
			continue;
		switch (c) {
		case OPT_ALL:
			opt.all = 1;
			break;
		case OPT_EVENTS:
			opt.events = 1;
			break;
		case OPT_FILTER:
			opt.filter = optarg;
			break;
		case OPT_SERVE:
			opt.serve = optarg;
			break;
		case 'h':
			help();
		case OPT_JSON:
		case OPT_PROM:
			if (opt.fmt != FMT_TEXT && opt.fmt != (c == OPT_JSON ? FMT_JSON : FMT_PROM))
				cli_usage(synopsis, "--json and --prometheus are exclusive");
			opt.fmt = c == OPT_JSON ? FMT_JSON : FMT_PROM;
			break;
		case 'V':
			cli_version();
		case OPT_WATCH:
			if (cli_parse_duration(optarg, &opt.interval_ns) < 0 || opt.interval_ns <= 0)
				cli_die(EXIT_USAGE, "--watch %s: invalid interval (seconds, or ms, s, m suffix)",
					cli_safe(optarg, buf, sizeof buf));
			opt.watch = 1;
			break;
		case ':':
			cli_usage(synopsis, "option %s needs an argument", argv[optind - 1]);
		default:
			if (optopt != 0)
				cli_usage(synopsis, "unknown option -%c", optopt);
			cli_usage(synopsis, "unknown option %s", argv[optind - 1]);
		}
	}
	argc -= optind;
	argv += optind;
	for (int i = 0; i < argc; i++) {
		int r = dh_name_check(argv[i]);
		if (r < 0)
			cli_die(EXIT_USAGE, "%s: invalid channel name", cli_safe(argv[i], buf, sizeof buf));
	}
	opt.named = argc > 0;
	opt.tty = isatty(STDOUT_FILENO);
	if (bk.opts.endpoint != NULL || opt.events)
		return broker(&bk, argv, argc);
	if (bk.opts.server_key != NULL || bk.opts.client_key != NULL)
		cli_usage(synopsis, "--broker-key and --client-key need --broker or --events");

	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_bus;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGBUS, &sa, NULL);

	if (opt.serve != NULL && (opt.fmt != FMT_TEXT || opt.watch))
		cli_usage(synopsis_serve, "--serve answers in the Prometheus format: no --json, --prometheus, --watch");
	if (opt.filter != NULL && opt.named)
		cli_usage(synopsis, "--filter selects among all channels: no NAME with it");
	/* the full-screen view: a listing, in text, on a terminal */
	if (opt.serve != NULL || (opt.watch && opt.tty && !opt.named && opt.fmt == FMT_TEXT))
		return live(argv, argc);
	if (opt.watch)
		return watch(argv, argc);
	collect(&p, argv, argc);
	failed = print_pass(&p);
	pass_free(&p);
	if (cli_close_stdout() != 0)
		return EXIT_FAIL;
	return failed ? EXIT_FAIL : EXIT_OK;
}
