/* dh-read: copy the messages of a channel to standard output. See LICENSE. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "meta_cli.h"
#include "read.h"

static const char synopsis[] =
	"dh-read [-q] [--follow] [--count N] [--from oldest|latest|now|SEQ] [--no-wait] "
	"[--lines | --null | --framed | --json | --csv] [--timeout DUR] [--key FILE] [--schema SPEC] [--strict] "
	"[--name LABEL] [--owner USER] [--meta] [--wait-channel DUR] [--progress[=auto|log]] [--progress-interval DUR] "
	"[--broker ENDPOINT [--broker-key FILE --client-key FILE]] [--serve ENDPOINT | --connect ENDPOINT] "
	"[--curve DIR] NAME";

enum {
	OPT_COUNT = 256, OPT_CSV, OPT_FOLLOW, OPT_FRAMED, OPT_FROM, OPT_JSON, OPT_KEY, OPT_LINES, OPT_META,
	OPT_NAME, OPT_NO_WAIT, OPT_NULL, OPT_OWNER, OPT_PROGRESS, OPT_PROGRESS_INTERVAL, OPT_SCHEMA, OPT_STRICT, OPT_TIMEOUT, OPT_WAIT_CHANNEL
};

static const struct option longopts[] = {
	{ "broker", required_argument, NULL, CLI_OPT_BROKER },
	{ "broker-key", required_argument, NULL, CLI_OPT_BROKER_KEY },
	{ "client-key", required_argument, NULL, CLI_OPT_CLIENT_KEY },
	{ "connect", required_argument, NULL, CLI_OPT_CONNECT },
	{ "count", required_argument, NULL, OPT_COUNT },
	{ "csv", no_argument, NULL, OPT_CSV },
	{ "curve", required_argument, NULL, CLI_OPT_CURVE },
	{ "follow", no_argument, NULL, OPT_FOLLOW },
	{ "framed", no_argument, NULL, OPT_FRAMED },
	{ "from", required_argument, NULL, OPT_FROM },
	{ "help", no_argument, NULL, 'h' },
	{ "json", no_argument, NULL, OPT_JSON },
	{ "key", required_argument, NULL, OPT_KEY },
	{ "lines", no_argument, NULL, OPT_LINES },
	{ "meta", no_argument, NULL, OPT_META },
	{ "name", required_argument, NULL, OPT_NAME },
	{ "no-wait", no_argument, NULL, OPT_NO_WAIT },
	{ "null", no_argument, NULL, OPT_NULL },
	{ "owner", required_argument, NULL, OPT_OWNER },
	{ "progress", optional_argument, NULL, OPT_PROGRESS },
	{ "progress-interval", required_argument, NULL, OPT_PROGRESS_INTERVAL },
	{ "quiet", no_argument, NULL, 'q' },
	{ "schema", required_argument, NULL, OPT_SCHEMA },
	{ "serve", required_argument, NULL, CLI_OPT_SERVE },
	{ "strict", no_argument, NULL, OPT_STRICT },
	{ "timeout", required_argument, NULL, OPT_TIMEOUT },
	{ "version", no_argument, NULL, 'V' },
	{ "wait-channel", required_argument, NULL, OPT_WAIT_CHANNEL },
	{ NULL, 0, NULL, 0 }
};

/* Undo an open before refusing an untrusted owner (cli_owner_enforce). */
static void
close_reader(void *p)
{
	dh_reader_close(p);
}

static _Noreturn void
help(void)
{
	cli_print_usage(stdout, (const char *const[]){ synopsis, NULL });
	putchar('\n');
	printf("Copy the messages of channel NAME to standard output until end-of-stream.\n\n"
	       "  --follow          keep waiting across writers (like tail -F)\n"
	       "  --count N         exit after N messages\n"
	       "  --from WHERE      start at the oldest message held, the latest, now (only\n"
	       "                    new messages) or sequence number SEQ\n"
	       "  --no-wait         print what is there now and exit\n"
	       "  --lines           newline after each message\n"
	       "  --null            NUL after each message\n"
	       "  --framed          4-byte little-endian length before each message\n"
	       "  --json            one JSON object per line: seq, time, length, text or base64;\n"
	       "                    on a schema channel the decoded record, one member per field\n"
	       "  --csv             schema channel: a header line, then one CSV row per record\n"
	       "                    (default: raw, payloads concatenated)\n"
	       "  --timeout DUR     exit 3 if no message arrives within DUR\n"
	       "  --key FILE        MAC key of a keyed channel\n"
	       "  --schema SPEC     refuse a channel whose record schema differs from SPEC\n"
	       "  --strict          stop at the first message that fails its checksum\n"
	       "  --name LABEL      label shown by dh-stat for this reader\n"
	       "  --owner USER      use NAME only if USER owns it (default: $DH_OWNER, else\n"
	       "                    only channels of yours or root's)\n"
	       "  --meta            print the metadata zone and exit\n"
	       "  --wait-channel DUR\n"
	       "                    wait up to DUR for NAME to exist here or to be registered\n"
	       "                    with the broker on this host (exit 3 if it does not)\n"
	       "  --progress[=auto|log]  on standard error: a live status line on a terminal,\n"
	       "                    else (or with log) one line per interval\n"
	       "  --progress-interval DUR  between progress reports (default 0.2s live, 1s log)\n"
	       "  --broker ENDPOINT register as a reader with dh-broker(1) there\n"
	       "                    (default: $DH_BROKER; none: no broker)\n"
	       "  --broker-key FILE, --client-key FILE   CURVE: the broker's public key and\n"
	       "                    our secret key (default: in $DH_CURVE_DIR)\n"
	       "  --serve ENDPOINT  export NAME to remote readers (ZeroMQ: tcp://HOST:PORT,\n"
	       "                    ipc://PATH) until interrupted; each one is a reader here\n"
	       "  --connect ENDPOINT\n"
	       "                    read NAME from the exporter there instead of locally\n"
	       "  --curve DIR       CURVE on that connection, with a key directory as\n"
	       "                    dh-broker(1) makes them (default: $DH_CURVE_DIR)\n"
	       "  -q, --quiet       do not report messages lost to a lap\n"
	       "  -h, --help        print this help and exit\n"
	       "  -V, --version     print the version and exit\n\n"
	       "Exit status: 0 done, 1 failed, 2 usage error, 3 timed out.\n");
	exit(cli_close_stdout());
}

static void
set_mode(struct read_opts *o, enum dh_frame_mode m, int csv)
{
	cli_framing(&o->mode, &o->csv, m, csv, synopsis, "--lines, --null, --framed, --json and --csv");
}

static void
parse(int argc, char **argv, struct read_opts *o)
{
	char buf[64];
	int c;

	memset(o, 0, sizeof *o);
	o->timeout_ns = -1;
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":hqV", longopts, NULL)) != -1) {
		if (cli_broker_option(&o->broker, c, optarg) || cli_net_option(&o->net, c, optarg))
			continue;
		switch (c) {
		case OPT_COUNT:
			if (cli_parse_u64(optarg, 1, UINT64_MAX, &o->count) < 0)
				cli_die(EXIT_USAGE, "--count %s: invalid number (1 or more)",
					cli_safe(optarg, buf, sizeof buf));
			break;
		case OPT_CSV: set_mode(o, DH_FRAME_JSON, 1); break;
		case OPT_FOLLOW: o->ro.follow = 1; break;
		case OPT_FRAMED: set_mode(o, DH_FRAME_FRAMED, 0); break;
		case OPT_FROM:
			if (strcmp(optarg, "oldest") == 0)
				o->ro.start = DH_START_OLDEST;
			else if (strcmp(optarg, "latest") == 0)
				o->ro.start = DH_START_LATEST;
			else if (strcmp(optarg, "now") == 0)
				o->ro.start = DH_START_NOW;
			else if (cli_parse_u64(optarg, 0, UINT64_MAX, &o->ro.start_seq) == 0)
				o->ro.start = DH_START_SEQ;
			else
				cli_die(EXIT_USAGE, "--from %s: expected oldest, latest, now or a sequence number",
					cli_safe(optarg, buf, sizeof buf));
			break;
		case 'h': help();
		case OPT_JSON: set_mode(o, DH_FRAME_JSON, 0); break;
		case OPT_KEY:
			cli_key_load(optarg, o->key, EXIT_FAIL);
			o->ro.key = o->key;
			break;
		case OPT_LINES: set_mode(o, DH_FRAME_LINES, 0); break;
		case OPT_META: o->meta = 1; break;
		case OPT_NAME: o->ro.label = optarg; break;
		case OPT_NO_WAIT: o->no_wait = 1; break;
		case OPT_NULL: set_mode(o, DH_FRAME_NULL, 0); break;
		case OPT_OWNER: cli_owner_set(&o->owner, optarg, synopsis); break;
		case OPT_PROGRESS: progress_opt_mode(&o->progress, optarg, synopsis); break;
		case OPT_PROGRESS_INTERVAL: progress_opt_interval(&o->progress, optarg, synopsis); break;
		case 'q': o->quiet = 1; break;
		case OPT_SCHEMA:
			free(o->want);
			o->want = cli_schema_parse(optarg);
			o->ro.schema = optarg;
			break;
		case OPT_STRICT: o->strict = 1; break;
		case OPT_TIMEOUT:
			if (cli_parse_duration(optarg, &o->timeout_ns) < 0)
				cli_die(EXIT_USAGE, "--timeout %s: invalid duration",
					cli_safe(optarg, buf, sizeof buf));
			break;
		case 'V': cli_version();
		case OPT_WAIT_CHANNEL:
			if (cli_parse_duration(optarg, &o->wait_ns) < 0)
				cli_die(EXIT_USAGE, "--wait-channel %s: invalid duration",
					cli_safe(optarg, buf, sizeof buf));
			o->wait = 1;
			break;
		default:
			cli_bad_option(synopsis, c, argv);
		}
	}
	if (argc - optind != 1)
		cli_usage(synopsis, argc == optind ? "missing channel name" : "one channel name expected");
	o->name = argv[optind];
	if (dh_name_check(o->name) < 0)
		cli_die(EXIT_USAGE, "%s: invalid channel name (A-Z a-z 0-9 . _ -, 1..%d, no leading dot)",
			cli_safe(o->name, buf, sizeof buf), DH_NAME_MAX);
	cli_owner_env(&o->owner, synopsis);
	if (cli_net_setup(&o->net, synopsis) &&
	    (o->meta || o->wait || (o->no_wait && o->net.connect) || (o->net.serve && (o->mode != DH_FRAME_RAW || o->count))))
		cli_usage(synopsis, o->net.serve ? "--serve takes no --meta, --wait-channel, output or --count option"
						 : "--connect takes no --meta, --wait-channel or --no-wait");
	if (o->no_wait)
		o->timeout_ns = 0;
	/* Not waiting: what the channel holds, even of a stream that ended,
	 * rather than nothing until a next stream. */
	if (o->no_wait && o->ro.start == DH_START_DEFAULT)
		o->ro.start = DH_START_HELD;
	o->broker.quiet = o->quiet;
	cli_broker_setup(&o->broker, synopsis);
}


int
main(int argc, char **argv)
{
	struct read_opts o;
	struct dh_reader *r;
	int rc, ret;

	cli_init(argc, argv);
	parse(argc, argv, &o);
	if (o.meta)
		return cli_meta_print(o.name, &o.owner);
	if (o.net.serve || o.net.connect) {
		cli_catch_signals(1);
		if (o.net.serve)
			return cli_net_serve(&o.net, o.name, &o.owner, o.quiet, &o.broker);
		return read_remote(&o);
	}
	/* Before open: a signal from now on detaches us cleanly, then re-raises. */
	cli_catch_signals(1);
	if (o.wait && (rc = cli_broker_wait_channel(&o.broker, o.name, o.ro.schema, o.wait_ns)) == -EINTR)
		cli_reraise();
	/* Created after we started waiting: every stream on it began after
	 * us, so we read from its first message, even if its writer was
	 * quicker than we were to attach (like a FIFO opened first). */
	if (o.wait && rc == 1 && o.ro.start == DH_START_DEFAULT) {
		o.ro.start = DH_START_SEQ;
		o.ro.start_seq = 0;
	}
	/* Not here but exported elsewhere, says the broker: read it there. */
	if (o.broker.on && !o.wait && read_remote_export(&o))
		return read_remote(&o);
	cli_guard_mapping(o.name);
	cli_owner_precheck(&o.owner, o.name);
	rc = dh_reader_open(o.name, &o.ro, &r);
	if (rc == -EINTR)
		cli_reraise();
	if (rc == -ENOENT)
		cli_die(EXIT_FAIL, "%s: no such channel%s", o.name,
			o.wait ? "" : " (--wait-channel DUR waits for it)");
	if (rc == -ENOSPC)
		cli_die(EXIT_FAIL, "%s: reader table full", o.name);
	if (rc == -DH_ESCHEMA)
		cli_schema_mismatch(o.name, o.want);
	dh_key_wipe(o.key);             /* the reader keeps its own copy */
	if (rc == 0)
		dh_reader_set_cancel(r, &cli_cancel);
	if (rc < 0)
		cli_diec(EXIT_FAIL, rc, "%s", o.name);
	/* again on what we attached to: the name may have changed hands since */
	cli_owner_enforce(&o.owner, o.name, dh_reader_block(r), close_reader, r);
	if (o.mode == DH_FRAME_JSON && (o.sc = cli_channel_schema(dh_reader_block(r), o.name)) == NULL &&
	    o.csv) {
		dh_reader_close(r);
		cli_die(EXIT_FAIL, "%s: channel has no schema: --csv decodes records (dh-create --schema)", o.name);
	}
	if (fcntl(1, F_GETPIPE_SZ) > 0 && fcntl(1, F_GETPIPE_SZ) < (1 << 20))
		(void)fcntl(1, F_SETPIPE_SZ, 1 << 20);   /* fewer wakeups downstream; best effort */
	cli_broker_reader(&o.broker, o.name, o.ro.label, o.ro.schema);
	o.pg = progress_start(&o.progress, o.name, dh_reader_block(r), 1);
	ret = read_pump(&o, r, NULL);
	progress_end(o.pg);
	cli_broker_stop(&o.broker);
	dh_reader_close(r);
	dh_key_wipe(o.key);
	free(o.sc);
	free(o.want);
	if (cli_signal)
		cli_reraise();
	if (cli_close_stdout() != 0 && ret == EXIT_OK)
		ret = EXIT_FAIL;
	return ret;
}
