/* broker_cli.c: --broker, --broker-key and --client-key of dh-write, dh-read and dh-stat: sessions, waiting, listing, events. See LICENSE. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>
#include <sodium.h>

#include "broker_cli.h"
#include "dh_schema.h"
#include "dh_stat.h"

#define MS 1000000LL
#define WAIT_SLICE (250 * MS)      /* --wait-channel: ask the broker this long, then look here */
#define EVENTS_SLICE (100 * MS)    /* --events: longest wait before the signal flag is looked at */

static int64_t
mono(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (int64_t)t.tv_sec * 1000000000 + t.tv_nsec;
}

int
cli_broker_option(struct cli_broker *b, int c, const char *arg)
{
	if (c == CLI_OPT_BROKER)
		b->opts.endpoint = arg;
	else if (c == CLI_OPT_BROKER_KEY)
		b->opts.server_key = arg;
	else if (c == CLI_OPT_CLIENT_KEY)
		b->opts.client_key = arg;
	else
		return 0;
	return 1;
}

/* A key file that cannot be used ends the command: exit 1, naming the file. */
static void
check_key(const char *path, int secret)
{
	char z85[DH_BROKER_Z85_LEN + 1], buf[256];
	int r = dh_broker_key_load(path, secret, z85);

	sodium_memzero(z85, sizeof z85);
	if (r == -EINVAL)
		cli_die(EXIT_FAIL, "%s: not a CURVE key file (40 Z85 characters)", cli_safe(path, buf, sizeof buf));
	if (r < 0)
		cli_diec(EXIT_FAIL, r, "%s", cli_safe(path, buf, sizeof buf));
}

int
cli_broker_setup(struct cli_broker *b, const char *synopsis)
{
	char buf[256];
	int keys = b->opts.server_key != NULL || b->opts.client_key != NULL;
	int r = dh_broker_opts_env(&b->opts, b->env, sizeof b->env);

	if (r < 0)
		cli_diec(EXIT_FAIL, r, "DH_CURVE_DIR");
	b->on = r == 1;
	if (keys && !b->on)
		cli_usage(synopsis, "--broker-key and --client-key need --broker (or DH_BROKER)");
	if ((b->opts.server_key == NULL) != (b->opts.client_key == NULL))
		cli_usage(synopsis, "--broker-key and --client-key go together");
	if (!b->on)
		return 0;
	if (b->opts.server_key != NULL) {
		check_key(b->opts.server_key, 0);
		check_key(b->opts.client_key, 1);
	}
	/* (not by connecting: a connection dropped at once is logged by the broker) */
	if ((strncmp(b->opts.endpoint, "ipc://", 6) != 0 && strncmp(b->opts.endpoint, "tcp://", 6) != 0) ||
	    dh_broker_endpoint_check(b->opts.endpoint) < 0)
		cli_die(EXIT_USAGE, "broker %s: invalid endpoint (ipc://PATH or tcp://HOST:PORT)",
			cli_safe(b->opts.endpoint, buf, sizeof buf));
	return 1;
}

/* ---- sessions ----------------------------------------------------------- */

/* From the session thread, on every change of state. */
static void
notify(void *arg, int state, const char *msg)
{
	struct cli_broker *b = arg;

	if (state == 0) {
		if (b->warned && !b->quiet)
			cli_warn("broker: %s", b->registered ? "registered again" : "registered");
		b->warned = 0;
		b->registered = 1;
		return;
	}
	if (b->reader && state == -ENOENT)
		return;         /* the channel's writer has not registered (yet): retried */
	if (!b->quiet)
		cli_warn("broker: %s", msg != NULL && msg[0] ? msg : dh_strerror(state));
	b->warned = 1;
}

static void
start(struct cli_broker *b, struct dh_broker_session_opts *so)
{
	int r;

	so->broker = b->opts;
	so->notify = notify;
	so->arg = b;
	if ((r = dh_broker_session_start(so, &b->session)) < 0 && !b->quiet)
		cli_warnc(r, "broker: %s: cannot register", so->reg.channel);
}

void
cli_broker_writer(struct cli_broker *b, const char *name, const char *label)
{
	struct dh_broker_session_opts so;
	char schema[DH_SCHEMA_MAX];
	struct dh_block *blk;
	int r;

	if (!b->on)
		return;
	memset(&so, 0, sizeof so);
	if ((r = dh_block_open(name, DH_OPEN_RDONLY, &blk)) == 0) {
		r = dh_broker_reg_from_block(blk, name, &so.reg, schema, sizeof schema);
		dh_block_close(blk);
	}
	if (r < 0) {
		if (!b->quiet)
			cli_warnc(r, "broker: %s: cannot register", name);
		return;
	}
	so.reg.label = label;
	so.role = DH_BROKER_WRITER;
	so.metrics_channel = name;
	start(b, &so);
}

/* The hash of a schema SPEC: 0, or the parse error. */
static int
spec_hash(const char *spec, uint8_t hash[32])
{
	struct dh_schema *s = malloc(sizeof *s);
	int r;

	if (s == NULL)
		return -ENOMEM;
	if ((r = dh_schema_parse(spec, s)) == 0)
		memcpy(hash, s->hash, 32);
	free(s);
	return r;
}

void
cli_broker_reader(struct cli_broker *b, const char *name, const char *label, const char *schema)
{
	struct dh_broker_session_opts so;

	if (!b->on)
		return;
	memset(&so, 0, sizeof so);
	so.reg.channel = name;
	so.reg.label = label;
	so.reg.has_schema = schema != NULL && spec_hash(schema, so.reg.schema_hash) == 0;
	so.role = DH_BROKER_READER;
	b->reader = 1;
	start(b, &so);
}

void
cli_broker_exporter(struct cli_broker *b, const char *name, const char *endpoint)
{
	struct dh_broker_session_opts so;

	if (!b->on)
		return;
	memset(&so, 0, sizeof so);
	so.reg.channel = name;
	so.reg.label = "net-export";
	so.reg.endpoint = endpoint;
	so.role = DH_BROKER_READER;
	b->reader = 1;
	start(b, &so);
}

void
cli_broker_remote_reader(struct cli_broker *b, const char *name, const char *host, const char *label,
			 const char *endpoint)
{
	struct dh_broker_session_opts so;

	if (!b->on)
		return;
	memset(&so, 0, sizeof so);
	so.reg.channel = name;
	so.reg.host = host;
	so.reg.label = label;
	so.reg.endpoint = endpoint;
	so.reg.subscriber = 1;
	so.role = DH_BROKER_READER;
	b->reader = 1;
	start(b, &so);
}

int
cli_broker_find_export(struct cli_broker *b, const char *name, char *ep, size_t cap, char *host)
{
	struct dh_broker_client *c;
	int r;

	if (!b->on)
		return -ENOENT;
	if ((r = dh_broker_connect(&b->opts, &c)) < 0)
		return r;
	r = dh_broker_discover_export(c, name, NULL, ep, cap, host);
	dh_broker_disconnect(c);
	return r;
}

void
cli_broker_checksum(const struct cli_broker *b, uint64_t seq)
{
	if (b->session != NULL)
		(void)dh_broker_session_report_checksum(b->session, seq, NULL); /* best effort */
}

void
cli_broker_stop(struct cli_broker *b)
{
	dh_broker_session_stop(b->session);
	b->session = NULL;
}

/* ---- dh-read --wait-channel --------------------------------------------- */

/* A discovered channel whose schema differs from ours is refused. */
static void
check_schema(const char *name, const struct dh_broker_info *in, const char *schema)
{
	uint8_t want[32];
	char have_hex[65], want_hex[65];

	if (schema == NULL || !in->has_schema || spec_hash(schema, want) < 0 ||
	    memcmp(want, in->schema_hash, sizeof want) == 0)
		return;
	dh_schema_hash_hex(in->schema_hash, have_hex);
	dh_schema_hash_hex(want, want_hex);
	cli_die(EXIT_FAIL, "%s: the channel registered on %s has another schema (hash %.16s..., --schema %.16s...)",
		name, in->host, have_hex, want_hex);
}

int
cli_broker_wait_channel(struct cli_broker *b, const char *name, const char *schema, int64_t timeout_ns)
{
	struct dh_broker_client *c = NULL;
	struct dh_broker_info info;
	char host[DH_BROKER_HOST_MAX + 1] = "localhost", buf[256];
	int64_t deadline = timeout_ns < 0 ? INT64_MAX : mono() + timeout_ns;
	int r, warned = b->quiet, found = 0, looked = 0;

	if (b->on) {
		if ((r = dh_broker_connect(&b->opts, &c)) < 0)
			cli_diec(EXIT_FAIL, r, "broker %s", cli_safe(b->opts.endpoint, buf, sizeof buf));
		dh_broker_local_host(host, sizeof host);
	}
	/* Every wait below lasts at most WAIT_SLICE (or 50 ms) and the flag is
	 * checked before each: a signal that lands outside a wait, where its
	 * EINTR is lost, still ends the loop within a slice. */
	for (;;) {
		struct dh_block *blk;
		struct timespec ts;
		int64_t left;

		if (cli_signal) {
			r = -EINTR;
			break;
		}
		if ((r = dh_block_open(name, DH_OPEN_RDONLY, &blk)) != -ENOENT) {
			if (r == 0)
				dh_block_close(blk);
			r = looked;     /* here (or unusable: attaching says why) */
			break;
		}
		looked = 1;
		if ((left = deadline - mono()) <= 0) {
			r = -ETIMEDOUT;
			break;
		}
		if (c != NULL) {
			r = dh_broker_wait_channel(c, name, host, left < WAIT_SLICE ? left : WAIT_SLICE, &info);
			if (r == 0) {
				found = 1;
				break;
			}
			if (r == -ETIMEDOUT || r == -EINTR)
				continue;       /* a slice without it, or a signal: the loop checks */
			if (!warned)
				cli_warn("broker: %s", dh_broker_errmsg(c));
			warned = 1;     /* refused, say: keep looking here */
		}
		ts.tv_sec = 0;
		ts.tv_nsec = (long)(left < 50 * MS ? left : 50 * MS);
		nanosleep(&ts, NULL);
	}
	dh_broker_disconnect(c);
	if (r == -ETIMEDOUT)
		cli_die(EXIT_TIMEOUT, "%s: channel did not appear in time", name);
	if (found)
		check_schema(name, &info, schema);
	return r < 0 ? r : looked;
}

/* ---- dh-stat --broker --------------------------------------------------- */

static _Noreturn void
broker_die(const struct cli_broker *b, struct dh_broker_client *c, int r)
{
	char buf[256];
	const char *msg = c != NULL ? dh_broker_errmsg(c) : "";

	if (msg[0] != '\0')
		cli_die(EXIT_FAIL, "broker %s: %s", cli_safe(b->opts.endpoint, buf, sizeof buf), msg);
	cli_diec(EXIT_FAIL, r, "broker %s", cli_safe(b->opts.endpoint, buf, sizeof buf));
}

#define NCOL 11
#define CELL 1040                  /* a host name made safe: 4 * 255 + room */

static const char *const head[NCOL] = { "CHANNEL", "HOST",     "STATE", "PID",     "LABEL", "POLICY",
					"SLOTS",   "MESSAGES", "BYTES", "READERS", "AGE" };
static const int right[NCOL] = { 0, 0, 0, 1, 0, 0, 0, 1, 1, 1, 1 };

static void
metric(json_t *o, const char *key, char *buf, size_t cap)
{
	json_t *v = json_object_get(json_object_get(o, "metrics"), key);

	if (json_is_integer(v))
		snprintf(buf, cap, "%lld", (long long)json_integer_value(v));
	else if (json_is_real(v))
		snprintf(buf, cap, "%.17g", json_real_value(v));
	else
		snprintf(buf, cap, "-");
}

static void
row(const struct dh_broker_info *in, json_t *o, char cell[NCOL][CELL])
{
	static const char suffix[] = "KMGT";
	uint64_t sz = in->slot_size;
	int64_t s = in->age_ms / 1000;
	int k = -1;

	dh_stat_safe(in->channel, cell[0], CELL);
	dh_stat_safe(in->host, cell[1], CELL);
	snprintf(cell[2], CELL, "%s", in->stale ? "stale" : "live");
	snprintf(cell[3], CELL, "%ld", (long)in->pid);
	dh_stat_safe(in->label[0] ? in->label : "-", cell[4], CELL);
	snprintf(cell[5], CELL, "%s", dh_policy_name(in->policy));
	while (sz >= 1024 && sz % 1024 == 0 && k < 3) {
		sz /= 1024;
		k++;
	}
	if (k < 0)
		snprintf(cell[6], CELL, "%ux%llu", in->slots, (unsigned long long)sz);
	else
		snprintf(cell[6], CELL, "%ux%llu%c", in->slots, (unsigned long long)sz, suffix[k]);
	metric(o, "messages", cell[7], CELL);
	metric(o, "bytes", cell[8], CELL);
	snprintf(cell[9], CELL, "%u", in->readers);
	if (s < 60)
		snprintf(cell[10], CELL, "%.1fs", (double)in->age_ms / 1000);
	else if (s < 3600)
		snprintf(cell[10], CELL, "%lldm%02llds", (long long)(s / 60), (long long)(s % 60));
	else
		snprintf(cell[10], CELL, "%lldh%02lldm", (long long)(s / 3600), (long long)(s / 60 % 60));
}

static void
print_row(char cell[NCOL][CELL], const size_t *width)
{
	for (int i = 0; i < NCOL; i++) {
		if (i == NCOL - 1)
			printf(right[i] ? "%*s\n" : "%-*s\n", right[i] ? (int)width[i] : 0, cell[i]);
		else
			printf(right[i] ? "%*s  " : "%-*s  ", (int)width[i], cell[i]);
	}
}

static void
print_table(const struct dh_broker_info *in, size_t n, json_t *all)
{
	static char cell[NCOL][CELL];
	size_t width[NCOL];

	for (int i = 0; i < NCOL; i++) {
		width[i] = strlen(head[i]);
		snprintf(cell[i], CELL, "%s", head[i]);
	}
	for (size_t r = 0; r < n; r++) {
		row(&in[r], json_array_get(all, r), cell);
		for (int i = 0; i < NCOL; i++)
			if (strlen(cell[i]) > width[i])
				width[i] = strlen(cell[i]);
	}
	for (int i = 0; i < NCOL; i++)
		snprintf(cell[i], CELL, "%s", head[i]);
	print_row(cell, width);
	for (size_t r = 0; r < n; r++) {
		row(&in[r], json_array_get(all, r), cell);
		print_row(cell, width);
	}
}

int
cli_broker_list(struct cli_broker *b, int json, char **names, int n)
{
	struct dh_broker_client *c;
	struct dh_broker_info *in = NULL;
	struct timespec now;
	json_t *all = json_array();
	size_t nin = 0;
	int r, failed = 0;

	if (all == NULL)
		cli_die(EXIT_FAIL, "out of memory");
	if ((r = dh_broker_connect(&b->opts, &c)) < 0)
		broker_die(b, NULL, r);
	for (int i = 0; i < (n > 0 ? n : 1); i++) {
		struct dh_broker_info *v, *grown;
		char *text;
		json_t *arr;
		size_t k;

		if ((r = dh_broker_list(c, n > 0 ? names[i] : NULL, &v, &k, &text)) < 0)
			broker_die(b, c, r);
		arr = json_loads(text, 0, NULL);
		free(text);
		if (!json_is_array(arr) || json_array_size(arr) != k)
			cli_die(EXIT_FAIL, "broker %s: malformed list reply", b->opts.endpoint);
		if ((grown = realloc(in, (nin + k + 1) * sizeof *in)) == NULL || json_array_extend(all, arr) < 0)
			cli_die(EXIT_FAIL, "out of memory");
		in = grown;
		memcpy(in + nin, v, k * sizeof *v);
		nin += k;
		free(v);
		json_decref(arr);
		if (n > 0 && k == 0) {
			cli_warn("%s: not registered", names[i]);
			failed = 1;
		}
	}
	dh_broker_disconnect(c);
	if (json) {
		json_t *doc;
		char *text;

		clock_gettime(CLOCK_REALTIME, &now);
		doc = json_pack("{s:s,s:I,s:O}", "broker", b->opts.endpoint, "time_ns",
				(json_int_t)now.tv_sec * 1000000000 + now.tv_nsec, "channels", all);
		if (doc == NULL || (text = json_dumps(doc, JSON_COMPACT)) == NULL)
			cli_die(EXIT_FAIL, "out of memory");
		puts(text);
		free(text);
		json_decref(doc);
	} else {
		print_table(in, nin, all);
	}
	json_decref(all);
	free(in);
	if (cli_close_stdout() != 0)
		return EXIT_FAIL;
	return failed ? EXIT_FAIL : EXIT_OK;
}

/* ---- dh-stat --events ---------------------------------------------------- */

int
cli_broker_events(struct cli_broker *b)
{
	struct dh_broker_client *c;
	struct dh_broker_events *e;
	struct dh_broker_opts eo = b->opts;
	char ep[512];
	int r, ret = EXIT_OK;

	cli_catch_signals(0);   /* SIGPIPE keeps its default: a pure producer */
	if ((r = dh_broker_connect(&b->opts, &c)) < 0)
		broker_die(b, NULL, r);
	r = dh_broker_events_endpoint(c, ep, sizeof ep);
	if (cli_signal) {       /* landed during the ping, EINTR or not */
		dh_broker_disconnect(c);
		cli_reraise();
	}
	if (r == -ENOENT)
		cli_die(EXIT_FAIL, "broker %s publishes no events (dh-broker --events)", b->opts.endpoint);
	if (r < 0)
		broker_die(b, c, r);
	dh_broker_disconnect(c);
	eo.endpoint = ep;
	if ((r = dh_broker_events_open(&eo, &e)) < 0)
		cli_diec(EXIT_FAIL, r, "events %s", ep);
	/*
	 * A signal may land in zmq_poll (EINTR), while a line is printed, or
	 * between the check of the flag and the next zmq_poll; in the last two
	 * cases no EINTR is left to wake a wait, so an unbounded wait would
	 * block until the next event, perhaps for ever.  Hence no wait is
	 * longer than EVENTS_SLICE and the flag is checked before each (and
	 * between events, which may arrive without pause): a signal ends the
	 * loop within EVENTS_SLICE wherever it lands, with no self-pipe for the
	 * library to poll and no signal mask to juggle.
	 */
	while (!cli_signal) {
		char *text;
		ssize_t len = dh_broker_events_next(e, &text, EVENTS_SLICE);

		if (len == -EINTR || len == -ETIMEDOUT)
			continue;
		if (len < 0) {
			cli_warnc((int)len, "events %s", ep);
			ret = EXIT_FAIL;
			break;
		}
		r = printf("%s\n", text) < 0 || fflush(stdout) != 0;
		free(text);
		if (r)
			break;  /* cli_close_stdout reports it, unless a signal cut the write */
	}
	dh_broker_events_close(e);
	if (cli_signal)
		cli_reraise();
	if (cli_close_stdout() != 0)
		return EXIT_FAIL;
	cli_reraise();
	return ret;
}
