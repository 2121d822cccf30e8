/* dh-write: copy standard input into a channel, one message per read, line, record or frame. See LICENSE. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "broker_cli.h"
#include "cli.h"
#include "meta_cli.h"
#include "csv_cli.h"
#include "net_cli.h"
#include "dh_stat.h"
#include "progress.h"

static const char synopsis[] =
	"dh-write [--create [--slots N] [--slot-size SIZE] [--policy latest|ring|sync|queue] "
	"[--checksum none|xxh3|blake2b] [--meta-size SIZE] [--max-readers N] [--mode OCTAL] "
	"[--evict-after DUR]] [--key FILE] [--schema SPEC] [--lines | --null | --framed | --record-size N | --csv] "
	"[--timeout DUR] [--wait-readers N] [--no-eos] [--progress[=auto|log]] [--progress-interval DUR] [--meta FILE] [--name LABEL] [--owner USER] "
	"[--broker ENDPOINT [--broker-key FILE --client-key FILE]] [--connect ENDPOINT [--curve DIR] "
	"[--remote-key FILE]] NAME";

enum {
	OPT_CREATE = 256, OPT_CSV, OPT_FRAMED, OPT_KEY, OPT_LINES, OPT_META, OPT_NAME, OPT_NO_EOS, OPT_NULL,
	OPT_OWNER, OPT_PROGRESS, OPT_PROGRESS_INTERVAL, OPT_RECORD_SIZE, OPT_REMOTE_KEY, OPT_SCHEMA, OPT_TIMEOUT,
	OPT_WAIT_READERS
};

static const struct option longopts[] = {
	{ "broker", required_argument, NULL, CLI_OPT_BROKER },
	{ "broker-key", required_argument, NULL, CLI_OPT_BROKER_KEY },
	{ "checksum", required_argument, NULL, CLI_OPT_CHECKSUM },
	{ "client-key", required_argument, NULL, CLI_OPT_CLIENT_KEY },
	{ "connect", required_argument, NULL, CLI_OPT_CONNECT },
	{ "create", no_argument, NULL, OPT_CREATE },
	{ "csv", no_argument, NULL, OPT_CSV },
	{ "curve", required_argument, NULL, CLI_OPT_CURVE },
	{ "evict-after", required_argument, NULL, CLI_OPT_EVICT },
	{ "framed", no_argument, NULL, OPT_FRAMED },
	{ "help", no_argument, NULL, 'h' },
	{ "key", required_argument, NULL, OPT_KEY },
	{ "lines", no_argument, NULL, OPT_LINES },
	{ "max-readers", required_argument, NULL, CLI_OPT_MAX_READERS },
	{ "meta", required_argument, NULL, OPT_META },
	{ "meta-size", required_argument, NULL, CLI_OPT_META_SIZE },
	{ "mode", required_argument, NULL, CLI_OPT_MODE },
	{ "name", required_argument, NULL, OPT_NAME },
	{ "no-eos", no_argument, NULL, OPT_NO_EOS },
	{ "null", no_argument, NULL, OPT_NULL },
	{ "owner", required_argument, NULL, OPT_OWNER },
	{ "policy", required_argument, NULL, CLI_OPT_POLICY },
	{ "progress", optional_argument, NULL, OPT_PROGRESS },
	{ "progress-interval", required_argument, NULL, OPT_PROGRESS_INTERVAL },
	{ "record-size", required_argument, NULL, OPT_RECORD_SIZE },
	{ "remote-key", required_argument, NULL, OPT_REMOTE_KEY },
	{ "schema", required_argument, NULL, OPT_SCHEMA },
	{ "slot-size", required_argument, NULL, CLI_OPT_SLOT_SIZE },
	{ "slots", required_argument, NULL, CLI_OPT_SLOTS },
	{ "timeout", required_argument, NULL, OPT_TIMEOUT },
	{ "version", no_argument, NULL, 'V' },
	{ "wait-readers", required_argument, NULL, OPT_WAIT_READERS },
	{ NULL, 0, NULL, 0 }
};

struct opts {
	const char *name, *label, *meta, *schema;
	struct dh_config cfg;
	int create, csv, no_eos;
	struct progress_opts progress;
	struct dh_schema *want;    /* --schema */
	struct dh_schema *sc;      /* the channel's schema, NULL if it has none */
	size_t row_max;            /* --csv: longest row (line) that can be valid */
	enum dh_frame_mode mode;
	uint64_t record_size, wait_readers;
	int64_t timeout_ns;
	uint8_t key[DH_KEY_BYTES];
	struct cli_broker broker;
	struct cli_owner owner;    /* --owner, $DH_OWNER */
	struct cli_net net;        /* --connect, --curve */
	int remote_key;            /* --remote-key given */
	uint8_t rkey[DH_KEY_BYTES];
};

/* --progress: NULL when off. */
static struct progress *pg;

/* Messages published at once at most (the library caps it at half the
 * ring): large enough to amortize the publication, small enough that the
 * reader starts on a burst while the rest of it is being written. */
#define BATCH_MAX 256

/* Undo an open before refusing an untrusted owner (cli_owner_enforce). */
static void
close_writer(void *p)
{
	dh_writer_close(p);
}

static _Noreturn void
help(void)
{
	cli_print_usage(stdout, (const char *const[]){ synopsis, NULL });
	putchar('\n');
	printf("Copy standard input into channel NAME until end of input, then mark\nend-of-stream.\n\n"
	       "  --create             create NAME if missing, with the geometry options below\n"
	       "  --slots N, --slot-size SIZE, --policy P, --checksum C, --meta-size SIZE,\n"
	       "  --max-readers N, --mode OCTAL, --evict-after DUR   as in dh-create(1)\n"
	       "  --key FILE           MAC key of a keyed channel (with --create: make it keyed)\n"
	       "  --schema SPEC        refuse a channel whose record schema differs from SPEC\n"
	       "                       (with --create: give a new channel that schema)\n"
	       "  --lines              one message per line, newline stripped\n"
	       "  --null               one message per NUL-terminated record\n"
	       "  --framed             4-byte little-endian length, then that many bytes\n"
	       "  --record-size N      fixed-size records of N bytes\n"
	       "                       (default: raw, each read of up to a slot is one message;\n"
	       "                       on a schema channel, records of the schema's size)\n"
	       "  --csv                CSV rows, encoded as records of the channel's schema; a\n"
	       "                       first line equal to the schema's header is skipped\n"
	       "  --timeout DUR        give up a wait for space or readers after DUR (exit 3)\n"
	       "  --wait-readers N     wait until N readers are attached before writing\n"
	       "  --no-eos             do not mark end-of-stream at the end\n"
	       "  --progress[=auto|log]  on standard error: a live status line on a terminal,\n"
	       "                       else (or with log) one line per interval\n"
	       "  --progress-interval DUR  between progress reports (default 0.2s live, 1s log)\n"
	       "  --meta FILE          replace the metadata zone with FILE (- reads standard\n"
	       "                       input, and no data then, nor with a terminal as input)\n"
	       "  --name LABEL         label shown by dh-stat for this writer\n"
	       "  --owner USER         use NAME only if USER owns it (default: $DH_OWNER, else\n"
	       "                       only channels of yours or root's; --create too)\n"
	       "  --broker ENDPOINT    register NAME with dh-broker(1) there while writing\n"
	       "                       (default: $DH_BROKER; none: no broker)\n"
	       "  --broker-key FILE, --client-key FILE   CURVE: the broker's public key and\n"
	       "                       our secret key (default: in $DH_CURVE_DIR)\n"
	       "  --connect ENDPOINT   import: copy the channel that an exporter (dh-read(1))\n"
	       "                       serves there into NAME, instead of standard input\n"
	       "  --curve DIR          CURVE on that connection, with a key directory as\n"
	       "                       dh-broker(1) makes them (default: $DH_CURVE_DIR)\n"
	       "  --remote-key FILE    MAC key of the remote channel, when it is keyed\n"
	       "  -h, --help           print this help and exit\n"
	       "  -V, --version        print the version and exit\n\n"
	       "Exit status: 0 done, 1 failed, 2 usage error, 3 timed out.\n");
	exit(cli_close_stdout());
}

static void
set_mode(struct opts *o, enum dh_frame_mode m, int csv)
{
	cli_framing(&o->mode, &o->csv, m, csv, synopsis, "--lines, --null, --framed, --record-size and --csv");
}

static void
parse(int argc, char **argv, struct opts *o)
{
	struct cli_config cc;
	char buf[64];
	int c;

	memset(o, 0, sizeof *o);
	cli_config_init(&cc);
	o->timeout_ns = -1;
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":hV", longopts, NULL)) != -1) {
		if (cli_config_option(c, optarg, &cc) || cli_broker_option(&o->broker, c, optarg) ||
		    cli_net_option(&o->net, c, optarg))
			continue;
		switch (c) {
		case OPT_CREATE: o->create = 1; break;
		case OPT_CSV: set_mode(o, DH_FRAME_LINES, 1); break;
		case OPT_FRAMED: set_mode(o, DH_FRAME_FRAMED, 0); break;
		case 'h': help();
		case OPT_KEY:
			cli_key_load(optarg, o->key, EXIT_FAIL);
			cc.cfg.key = o->key;
			break;
		case OPT_LINES: set_mode(o, DH_FRAME_LINES, 0); break;
		case OPT_META: o->meta = optarg; break;
		case OPT_NAME: o->label = optarg; break;
		case OPT_NO_EOS: o->no_eos = 1; break;
		case OPT_NULL: set_mode(o, DH_FRAME_NULL, 0); break;
		case OPT_OWNER: cli_owner_set(&o->owner, optarg, synopsis); break;
		case OPT_PROGRESS: progress_opt_mode(&o->progress, optarg, synopsis); break;
		case OPT_PROGRESS_INTERVAL: progress_opt_interval(&o->progress, optarg, synopsis); break;
		case OPT_REMOTE_KEY:
			cli_key_load(optarg, o->rkey, EXIT_FAIL);
			o->remote_key = 1;
			break;
		case OPT_RECORD_SIZE:
			o->record_size = cli_opt_number("record-size", optarg, 1, 1, DH_SLOT_SIZE_MAX);
			set_mode(o, DH_FRAME_RECORD, 0);
			break;
		case OPT_SCHEMA:
			free(o->want);
			o->want = cli_schema_parse(optarg);
			o->schema = optarg;
			break;
		case OPT_TIMEOUT: o->timeout_ns = cli_opt_duration("timeout", optarg); break;
		case 'V': cli_version();
		case OPT_WAIT_READERS:
			o->wait_readers = cli_opt_number("wait-readers", optarg, 0, 1, DH_READERS_MAX);
			break;
		default:
			cli_bad_option(synopsis, c, argv);
		}
	}
	if (argc - optind != 1)
		cli_usage(synopsis, argc == optind ? "missing channel name" : "one channel name expected");
	o->name = argv[optind];
	cli_owner_env(&o->owner, synopsis);
	if (cc.any && !o->create)
		cli_usage(synopsis, "geometry options need --create");
	cli_config_key_conflict(&cc);
	if (o->create)
		cc.cfg.schema = o->schema;
	cli_config_finish(&cc);
	o->cfg = cc.cfg;
	if (dh_name_check(o->name) < 0)
		cli_die(EXIT_USAGE, "%s: invalid channel name (A-Z a-z 0-9 . _ -, 1..%d, no leading dot)",
			cli_safe(o->name, buf, sizeof buf), DH_NAME_MAX);
	cli_broker_setup(&o->broker, synopsis);
	if (o->net.serve)
		cli_usage(synopsis, "unknown option --serve");
	if (cli_net_setup(&o->net, synopsis) && (o->mode != DH_FRAME_RAW || o->csv || o->meta))
		cli_usage(synopsis, "--connect reads no standard input: no framing or --meta option");
	if (o->remote_key && !o->net.connect)
		cli_usage(synopsis, "--remote-key goes with --connect");
}

static void
create(const struct opts *o)
{
	struct dh_layout lay;
	int r = dh_layout_compute(&o->cfg, &lay);

	if (r < 0)
		cli_diec(EXIT_USAGE, r, "%s: invalid geometry", o->name);
	r = dh_block_create(o->name, &o->cfg);
	if (r < 0 && r != -EEXIST)
		cli_diec(EXIT_FAIL, r, "%s: create", o->name);
}

/* --meta FILE: replace the metadata zone. */
static void
write_meta(const struct opts *o)
{
	cli_meta_write(o->name, o->meta, &o->owner);
}

/* Wait until standard input is readable (so no slot is held while idle).
 * 0, or -EINTR when a signal arrived. */
static int
wait_input(struct dh_writer *w)
{
	/* the signal pipe too: a signal landing after the flag test below
	 * still ends the poll */
	struct pollfd p[2] = { { .fd = 0, .events = POLLIN }, { .fd = cli_signal_fd(), .events = POLLIN } };

	/* Input ready: keep building the batch.  Not ready: publish what we
	 * have before we sleep, so a slow source sees per-line latency. */
	if (poll(p, 1, 0) > 0)
		return 0;
	dh_writer_flush(w);
	for (;;) {
		int n;

		if (cli_signal)
			return -EINTR;
		n = poll(p, p[1].fd >= 0 ? 2 : 1, -1);
		if (cli_signal)
			return -EINTR;
		if (n > 0 || (n < 0 && errno != EINTR))
			return 0;          /* readable, hung up or unpollable: read() tells */
	}
}

/* A failed wait, commit or read: message and exit status (0 if a signal stopped us). */
static int
failed(const struct opts *o, struct dh_writer *w, int r, const char *what)
{
	if (r == -EINTR && cli_signal)
		return EXIT_OK;
	if (r == -ETIMEDOUT) {
		cli_warn("%s: timed out waiting for %s", o->name, what);
		return EXIT_TIMEOUT;
	}
	if (w != NULL)
		cli_warnc(r, "%s: %s (seq %llu)", o->name, what, (unsigned long long)dh_writer_seq(w));
	else
		cli_warnc(r, "%s", what);
	return EXIT_FAIL;
}

/* Raw: each read(2) lands straight in the reserved slot. */
static int
pump_raw(const struct opts *o, struct dh_writer *w)
{
	for (;;) {
		void *slot;
		size_t cap;
		ssize_t n;
		int r;

		if ((r = wait_input(w)) < 0)
			return failed(o, w, r, "input");
		if ((r = dh_writer_reserve(w, &slot, &cap, o->timeout_ns)) < 0)
			return failed(o, w, r, "space");
		n = read(0, slot, cap);
		if (n <= 0) {
			r = errno;
			dh_writer_abort(w);
			if (n == 0)
				return EXIT_OK;
			if (r == EINTR)
				continue;       /* wait_input checks the signal flag */
			return failed(o, NULL, -r, "read error");
		}
		if ((r = dh_writer_commit(w, (size_t)n)) < 0)
			return failed(o, w, r, "commit");
		progress_add(pg, (size_t)n);
	}
}

/* What an input item is called in messages. */
static const char *
item_name(const struct opts *o)
{
	return o->mode == DH_FRAME_LINES ? "line" : o->mode == DH_FRAME_FRAMED ? "frame" : "record";
}

static int
bad_item(const struct opts *o, struct dh_writer *w, struct dh_frame_dec *d, int r)
{
	const struct dh_frame_error *e = dh_frame_dec_error(d);
	const char *what = item_name(o);

	if (r == -DH_ETOOBIG && o->csv)
		cli_warn("%s: line %llu is %llu bytes, longer than any row of the schema (%zu bytes)", o->name,
			 (unsigned long long)e->ordinal, (unsigned long long)e->size, o->row_max);
	else if (r == -DH_ETOOBIG)
		cli_warn("%s: %s %llu is %llu bytes, more than the slot payload (%zu bytes)", o->name,
			 what, (unsigned long long)e->ordinal, (unsigned long long)e->size,
			 dh_writer_slot_size(w));
	else if (r == -EPROTO)
		cli_warn("%s: truncated %s %llu at byte offset %llu (%llu of %llu bytes)", o->name, what,
			 (unsigned long long)e->ordinal, (unsigned long long)e->offset,
			 (unsigned long long)e->have, (unsigned long long)e->size);
	else
		cli_warnc(r, "%s: input", o->name);
	return EXIT_FAIL;
}

/* --csv: encode a complete row and write its record (the header: nothing). */
static int
csv_write(const struct opts *o, struct dh_writer *w, struct cli_csv *c, void *rec)
{
	int r = cli_csv_record(c, o->name, rec);

	if (r != 0)
		return r < 0 ? EXIT_FAIL : EXIT_OK;
	if ((r = dh_writer_write(w, rec, o->sc->size, o->timeout_ns)) < 0)
		return failed(o, w, r, "space");
	progress_add(pg, o->sc->size);
	return EXIT_OK;
}

/* --csv: one input line; a row may span several. */
static int
csv_line(const struct opts *o, struct dh_writer *w, struct cli_csv *c, const struct dh_frame_item *it,
	 void *rec)
{
	int r = cli_csv_line(c, it->data, it->len, it->ordinal);

	if (r == -EMSGSIZE) {
		cli_warn("%s: line %llu: a row longer than any row of the schema (%zu bytes)", o->name,
			 (unsigned long long)c->line, o->row_max);
		return EXIT_FAIL;
	}
	return r == 0 ? EXIT_OK : csv_write(o, w, c, rec);
}

/* Lines, null, framed, record: read into the decoder, copy each item once into a slot. */
static int
pump_framed(const struct opts *o, struct dh_writer *w)
{
	struct dh_frame_dec *d;
	struct dh_frame_item it;
	struct cli_csv csv = { 0 };
	void *rec = NULL;
	int r, ret = EXIT_OK;

	if (o->csv) {
		cli_csv_init(&csv, o->sc);
		if ((rec = malloc(o->sc->size)) == NULL)
			cli_diec(EXIT_FAIL, -ENOMEM, "%s", o->name);
	}
	r = dh_frame_dec_new(o->mode, o->csv ? o->row_max : dh_writer_slot_size(w), (size_t)o->record_size,
			     &d);
	if (r < 0) {
		/* refused before writing anything: leave the channel as we found
		 * it (entry free, the last stream's end mark in place) */
		size_t cap = dh_writer_slot_size(w);
		dh_writer_close(w);
		if (r == -DH_ETOOBIG)
			cli_die(EXIT_FAIL, "%s: record size %llu is more than the slot payload (%zu bytes)",
				o->name, (unsigned long long)o->record_size, cap);
		cli_diec(EXIT_FAIL, r, "%s", o->name);
	}
	for (;;) {
		void *p;
		size_t len;
		ssize_t n;

		while ((r = dh_frame_dec_next(d, &it)) == 0) {
			if (cli_signal)
				goto out;
			if (o->csv) {
				if ((ret = csv_line(o, w, &csv, &it, rec)) != EXIT_OK)
					goto out;
				continue;
			}
			if (o->sc != NULL && it.len != o->sc->size) {
				cli_warn("%s: %s %llu is %zu bytes, not a record of the channel's schema (%u bytes)",
					 o->name, item_name(o), (unsigned long long)it.ordinal, it.len, o->sc->size);
				ret = EXIT_FAIL;
				goto out;
			}
			if ((r = dh_writer_write(w, it.data, it.len, o->timeout_ns)) < 0) {
				ret = failed(o, w, r, "space");
				goto out;
			}
			progress_add(pg, it.len);
		}
		if (r == DH_FRAME_EOF) {
			if (csv.len > 0)        /* a quoted field left open: the parser says so */
				ret = csv_write(o, w, &csv, rec);
			break;
		}
		if (r < 0) {
			ret = bad_item(o, w, d, r);
			break;
		}
		if ((r = dh_frame_dec_space(d, &p, &len)) < 0 || (r = wait_input(w)) < 0) {
			ret = failed(o, w, r, "input");
			break;
		}
		n = read(0, p, len);
		if (n < 0 && errno != EINTR) {
			ret = failed(o, NULL, -errno, "read error");
			break;
		}
		if (n >= 0)
			dh_frame_dec_fill(d, (size_t)n);
	}
out:
	dh_frame_dec_free(d);
	cli_csv_free(&csv);
	free(rec);
	return ret;
}

static struct dh_writer *
open_writer(const struct opts *o)
{
	struct dh_writer *w;
	struct dh_writer_opts wo = { .label = o->label, .key = o->cfg.key, .schema = o->schema };
	pid_t pid = 0;
	int r;

	cli_guard_mapping(o->name);
	cli_owner_precheck(&o->owner, o->name);
	r = dh_writer_open_opts(o->name, &wo, &w, &pid);

	if (r == -EINTR)
		cli_reraise();
	if (r == -ENOENT)
		cli_die(EXIT_FAIL, "%s: no such channel (--create creates it)", o->name);
	if (r == -EBUSY)
		cli_die(EXIT_FAIL, "%s: another writer is active (pid %ld)", o->name, (long)pid);
	if (r == -DH_ESCHEMA)
		cli_schema_mismatch(o->name, o->want);
	if (r < 0)
		cli_diec(EXIT_FAIL, r, "%s", o->name);
	/* again on what we attached to: the name may have changed hands since */
	cli_owner_enforce(&o->owner, o->name, dh_writer_block(w), close_writer, w);
	dh_writer_set_cancel(w, &cli_cancel);
	return w;
}

/* On a schema channel every message is one record: raw input is cut into
 * records of its size, --record-size must be that size, and --csv rows are
 * encoded as records (a channel without a schema cannot take them).  A
 * refusal leaves the stream as it was: writer closed, no end-of-stream. */
static void
records(struct opts *o, struct dh_writer *w)
{
	o->sc = cli_channel_schema(dh_writer_block(w), o->name);
	if ((o->sc == NULL && o->csv) ||
	    (o->sc != NULL && o->mode == DH_FRAME_RECORD && o->record_size != o->sc->size)) {
		dh_writer_close(w);
		dh_key_wipe(o->key);
		if (o->sc == NULL)
			cli_die(EXIT_FAIL, "%s: channel has no schema: --csv encodes records (dh-create --schema)",
				o->name);
		cli_die(EXIT_FAIL, "%s: --record-size %llu: the channel's records are %u bytes", o->name,
			(unsigned long long)o->record_size, o->sc->size);
	}
	if (o->sc != NULL && o->mode == DH_FRAME_RAW) {
		o->mode = DH_FRAME_RECORD;
		o->record_size = o->sc->size;
	}
	if (o->csv)
		o->row_max = cli_csv_row_max(o->sc);
}

int
main(int argc, char **argv)
{
	struct opts o;
	struct dh_writer *w;
	int r, ret;

	cli_init(argc, argv);
	parse(argc, argv, &o);
	if (o.create)
		create(&o);
	if (o.meta != NULL) {
		write_meta(&o);
		/* --meta - has consumed standard input: there is no data to write */
		if (isatty(0) || strcmp(o.meta, "-") == 0)
			return EXIT_OK;
	}
	cli_catch_signals(0);
	w = open_writer(&o);
	records(&o, w);
	cli_broker_writer(&o.broker, o.name, o.label);   /* never waits for the broker */
	if (fcntl(0, F_GETPIPE_SZ) > 0 && fcntl(0, F_GETPIPE_SZ) < (1 << 20))
		(void)fcntl(0, F_SETPIPE_SZ, 1 << 20);   /* bigger reads; best effort */
	pg = progress_start(&o.progress, o.name, dh_writer_block(w), 0);
	/* a burst of input goes out in batches; wait_input flushes when the
	 * input runs dry */
	dh_writer_set_batch(w, BATCH_MAX);

	ret = EXIT_OK;
	if (o.wait_readers > 0 && (r = dh_writer_wait_readers(w, (unsigned)o.wait_readers,
							       o.timeout_ns)) < 0)
		ret = failed(&o, w, r, "readers");
	else if (o.net.connect) {
		int eos;
		struct dh_net_client *c = cli_net_client(&o.net, NULL, NULL, o.remote_key ? o.rkey : NULL, NULL);

		dh_key_wipe(o.rkey);
		/* batched like standard input (BATCH_MAX above): cli_net_import
		 * publishes before it waits for the network */
		ret = cli_net_import(c, o.name, w, o.timeout_ns, &eos);
		dh_net_client_close(c);
		/* The remote writer died: so do we, as a writer, leaving the
		 * entry to the kernel's lock so the mirror's readers see a
		 * dead writer too (closing would look like --no-eos). */
		if (eos == -1) {
			progress_end(pg);
			cli_broker_stop(&o.broker);
			exit(EXIT_FAIL);
		}
		if (!eos && !cli_signal)
			o.no_eos = 1;
	} else if (o.mode == DH_FRAME_RAW)
		ret = pump_raw(&o, w);
	else
		ret = pump_framed(&o, w);

	dh_writer_flush(w);     /* the final tally counts what readers can see */
	progress_end(pg);
	if (!o.no_eos && (r = dh_writer_eos(w)) < 0) {
		cli_warnc(r, "%s: marking end-of-stream", o.name);
		ret = EXIT_FAIL;
	}
	cli_broker_stop(&o.broker);
	dh_writer_close(w);
	dh_key_wipe(o.key);
	free(o.sc);
	free(o.want);
	cli_reraise();
	return ret;
}
