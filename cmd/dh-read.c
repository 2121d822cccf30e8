/* dh-read: copy the messages of a channel to standard output. See LICENSE. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "broker_cli.h"
#include "cli.h"
#include "meta_cli.h"
#include "net_cli.h"
#include "progress.h"

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

struct opts {
	const char *name;
	struct dh_reader_opts ro;
	enum dh_frame_mode mode;
	int csv, meta, no_wait, quiet, strict;
	struct dh_schema *want;    /* --schema */
	struct dh_schema *sc;      /* the channel's, when decoding records (--json, --csv) */
	uint64_t count;            /* 0: unlimited */
	int64_t timeout_ns, wait_ns;
	int wait;                  /* --wait-channel */
	uint8_t key[DH_KEY_BYTES];
	struct cli_broker broker;
	struct cli_owner owner;    /* --owner, $DH_OWNER */
	struct cli_net net;        /* --serve, --connect, --curve */
	struct progress_opts progress;
};

/* --progress: NULL when off. */
static struct progress *pg;

/* Where messages come from: the local channel, or an exporter (--connect). */
struct src {
	struct dh_reader *r;
	struct dh_net_client *c;
};

static int
src_next(struct src *s, struct dh_msg *m, int64_t timeout_ns)
{
	return s->c ? dh_net_client_next(s->c, m, timeout_ns) : dh_reader_next(s->r, m, timeout_ns);
}

static void
src_release(struct src *s)
{
	if (s->r)
		dh_reader_release(s->r);
}

/* Output buffer: small messages are gathered, large ones written from the slot. */
#define OUT_CAP (256u << 10)
#define DIRECT_MIN (64u << 10)

struct out {
	char *buf;
	size_t len, cap;
	int err;                   /* first write error (-errno) */
	size_t done;               /* bytes the failed flush got out */
	/* queue: claims are kept until their bytes are out; where each kept
	 * message ends in buf (0: written directly) */
	struct dh_reader *keeper;
	size_t *ends;
	size_t nends;
	/* --connect: the exporter of a queue keeps what we have not
	 * acknowledged, so acknowledge only what is out: the seq after the
	 * last message in buf, told at each complete flush */
	struct dh_net_client *acker;
	uint64_t ack_next;
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
set_mode(struct opts *o, enum dh_frame_mode m, int csv)
{
	cli_framing(&o->mode, &o->csv, m, csv, synopsis, "--lines, --null, --framed, --json and --csv");
}

static void
parse(int argc, char **argv, struct opts *o)
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

/* writev until done; EINTR retried unless a signal is pending. */
static int
writev_all(struct iovec *iov, int n)
{
	while (n > 0) {
		ssize_t w = writev(1, iov, n);

		if (w < 0) {
			if (errno == EINTR && !cli_signal)
				continue;
			return -errno;
		}
		while (n > 0 && (size_t)w >= iov->iov_len) {
			w -= (ssize_t)iov->iov_len;
			iov++;
			n--;
		}
		if (n > 0) {
			iov->iov_base = (char *)iov->iov_base + w;
			iov->iov_len -= (size_t)w;
		}
	}
	return 0;
}

static int
flush(struct out *o)
{
	while (o->err == 0 && o->done < o->len) {
		ssize_t n = write(1, o->buf + o->done, o->len - o->done);

		if (n < 0 && errno == EINTR && !cli_signal)
			continue;
		if (n < 0) {
			o->err = -errno;
		} else {
			o->done += (size_t)n;
			/* a signal cut the write short: do not block again */
			if (cli_signal && o->done < o->len)
				o->err = -EINTR;
		}
	}
	if (o->err != 0)
		return o->err;
	o->len = o->done = 0;
	/* everything delivered before the current message is out now */
	if (o->keeper)
		dh_reader_release_kept(o->keeper);
	if (o->acker && o->ack_next)
		dh_net_client_ack(o->acker, o->ack_next);
	o->nends = 0;
	return 0;
}

static int
emit(struct out *o, enum dh_frame_mode mode, const struct dh_msg *m)
{
	unsigned char head[DH_FRAME_HEAD_MAX], tail;
	size_t hl, tl;
	ssize_t n;

	if (mode == DH_FRAME_JSON) {
		size_t bound = dh_frame_encode_bound(mode, m->len);

		if (bound > o->cap - o->len && flush(o) < 0)
			return o->err;
		if (bound > o->cap) {
			char *nb = bound == SIZE_MAX ? NULL : realloc(o->buf, bound);

			if (nb == NULL)
				return o->err = -ENOMEM;
			o->buf = nb;
			o->cap = bound;
		}
		n = dh_frame_encode(mode, m->data, m->len, m->seq, m->time_ns, o->buf + o->len,
				    o->cap - o->len);
		if (n < 0)
			return o->err = (int)n;
		o->len += (size_t)n;
		return 0;
	}
	if ((n = dh_frame_wrap(mode, m->len, head, &hl, &tail, &tl)) < 0)
		return o->err = (int)n;
	if (m->len >= DIRECT_MIN) {
		/* zero copy: straight from the slot (or the validated copy) */
		struct iovec iov[3] = { { head, hl }, { (void *)m->data, m->len }, { &tail, tl } };

		if (flush(o) < 0)
			return o->err;
		return o->err = writev_all(iov, 3);
	}
	if (hl + m->len + tl > o->cap - o->len && flush(o) < 0)
		return o->err;
	memcpy(o->buf + o->len, head, hl);
	memcpy(o->buf + o->len + hl, m->data, m->len);
	memcpy(o->buf + o->len + hl + m->len, &tail, tl);
	o->len += hl + m->len + tl;
	return 0;
}

/* Room for bound more bytes in the output buffer (flushing, or growing it
 * for a large record). */
static int
room(struct out *o, size_t bound)
{
	char *nb;

	if (bound > o->cap - o->len && flush(o) < 0)
		return o->err;
	if (bound > o->cap) {
		if ((nb = realloc(o->buf, bound)) == NULL)
			return o->err = -ENOMEM;
		o->buf = nb;
		o->cap = bound;
	}
	return 0;
}

/* --json or --csv on a schema channel: the decoded record and a newline.
 * -EMSGSIZE (out->err untouched) for a message that is not a record. */
static int
emit_record(struct out *o, const struct opts *opt, const struct dh_msg *m)
{
	size_t bound = opt->csv ? dh_schema_csv_bound(opt->sc) : dh_schema_json_bound(opt->sc);
	ssize_t n;

	if (room(o, bound) < 0)      /* bound counts a NUL: room for the newline */
		return o->err;
	if (opt->csv)
		n = dh_schema_to_csv(opt->sc, m->data, m->len, o->buf + o->len, o->cap - o->len);
	else
		n = dh_schema_to_json(opt->sc, m->data, m->len, o->buf + o->len, o->cap - o->len);
	if (n == -EMSGSIZE)
		return (int)n;
	if (n < 0)
		return o->err = (int)n;
	o->len += (size_t)n;
	o->buf[o->len++] = '\n';
	return 0;
}

/* --csv: the header line, before the first record. */
static int
emit_header(struct out *o, const struct dh_schema *sc)
{
	ssize_t n;

	if (room(o, dh_schema_csv_bound(sc)) < 0)
		return o->err;
	if ((n = dh_schema_csv_header(sc, o->buf + o->len, o->cap - o->len)) < 0)
		return o->err = (int)n;
	o->len += (size_t)n;
	o->buf[o->len++] = '\n';
	return 0;
}

/* --meta: print the metadata zone. */
static int
print_meta(const struct opts *o)
{
	return cli_meta_print(o->name, &o->owner);
}

/* Losses to a lap, reported at once but then at most once a second. */
struct lost {
	uint64_t pending, seq;
	time_t last;
};

static void
lost_report(const struct opts *o, struct lost *l, uint64_t n, uint64_t seq, int final)
{
	struct timespec t;

	l->pending += n;
	if (n > 0)
		l->seq = seq;
	if (l->pending == 0)
		return;
	clock_gettime(CLOCK_MONOTONIC, &t);
	if (!final && l->last != 0 && t.tv_sec - l->last < 1)
		return;
	cli_warn("%s: lost %llu messages before seq %llu", o->name, (unsigned long long)l->pending,
		 (unsigned long long)l->seq);
	l->pending = 0;
	l->last = t.tv_sec ? t.tv_sec : 1;
}

/* The copy loop. Returns the exit status; a caught signal leaves cli_signal set. */
static int
pump(const struct opts *o, struct src *src)
{
	struct out out = { .cap = OUT_CAP };
	struct lost lost = { 0 };
	struct dh_msg m;
	uint64_t got = 0;
	int rc, ret = EXIT_OK;

	if ((out.buf = malloc(out.cap)) == NULL)
		cli_diec(EXIT_FAIL, -ENOMEM, "%s", o->name);
	/* A queue message is done only once written out: killed or cut off
	 * before that, it is counted lost, never silently dropped. */
	if (src->r && dh_reader_keep_claims(src->r) == 0) {
		out.keeper = src->r;
		if ((out.ends = malloc(sizeof *out.ends * (dh_block_config(dh_reader_block(src->r))->slots + 1))) == NULL)
			cli_diec(EXIT_FAIL, -ENOMEM, "%s", o->name);
	}
	/* On a channel that evicts stalled readers, a message used in place
	 * stays held until we let go of it: copy it out and let go before
	 * writing, so a stalled consumer downstream holds nothing. */
	const struct dh_config *cfg = src->r ? dh_block_config(dh_reader_block(src->r)) : NULL;
	unsigned char *own = NULL;
	if (cfg && dh_policy_info(cfg->policy)->zero_copy && cfg->evict_after_ns &&
	    (own = malloc(cfg->slot_size ? cfg->slot_size : 1)) == NULL)
		cli_diec(EXIT_FAIL, -ENOMEM, "%s", o->name);
	out.acker = src->c;
	if (o->csv)
		emit_header(&out, o->sc);
	while (out.err == 0 && (o->count == 0 || got < o->count)) {
		if (cli_signal)
			break;
		rc = src_next(src, &m, 0);
		if ((rc == -EAGAIN || (src->c && rc == -ETIMEDOUT)) && !o->no_wait) {
			/* about to block: hand over what we have first */
			if (flush(&out) < 0 || cli_signal)
				break;
			rc = src_next(src, &m, o->timeout_ns);
		}
		if (rc == 0 && own != NULL) {
			memcpy(own, m.data, m.len);
			m.data = own;
			src_release(src);
		}
		if (rc == 0) {
			if (m.lost > 0 && !o->quiet)
				lost_report(o, &lost, m.lost, m.seq, 0);
			rc = o->sc != NULL ? emit_record(&out, o, &m) : emit(&out, o->mode, &m);
			if (out.keeper && out.err == 0)
				out.ends[out.nends++] = out.len;
			if (rc == -EMSGSIZE && out.err == 0) {
				cli_warn("%s: message at seq %llu is %zu bytes, not a record of the schema (%u bytes)",
					 o->name, (unsigned long long)m.seq, m.len, o->sc->size);
				ret = EXIT_FAIL;
				continue;
			}
			if (rc < 0)
				break;
			out.ack_next = m.seq + 1;
			got++;
			progress_add(pg, m.len);
		} else if (rc == -DH_ECHECKSUM) {
			cli_warn("%s: checksum mismatch at seq %llu", o->name, (unsigned long long)m.seq);
			if (src->r)
				cli_broker_checksum(&o->broker, m.seq);
			ret = EXIT_FAIL;
			if (o->strict)
				break;
		} else if (rc == -EINTR) {
			continue;
		} else {
			if (rc == -ETIMEDOUT) {
				cli_warn("%s: no message within the timeout", o->name);
				ret = EXIT_TIMEOUT;
			} else if (rc == -DH_EWRITERDEAD) {
				cli_warn("%s: %swriter died without marking end-of-stream", o->name,
					 src->c ? "the remote " : "");
				ret = EXIT_FAIL;
			} else if (rc < 0 && rc != -EAGAIN && src->c) {
				cli_warn("%s: %s", o->name, cli_net_error(src->c, rc));
				ret = EXIT_FAIL;
			} else if (rc < 0 && rc != -EAGAIN) {
				cli_warnc(rc, "%s", o->name);
				ret = EXIT_FAIL;
			}
			break;          /* DH_END, -EAGAIN with --no-wait, or an error */
		}
	}
	lost_report(o, &lost, 0, 0, 1);
	flush(&out);
	if (out.err == 0) {
		src_release(src);
	} else if (out.keeper) {
		size_t passed = 0;

		while (passed < out.nends && out.ends[passed] <= out.done)
			passed++;
		uint64_t n = dh_reader_settle(out.keeper, passed);

		if (n > 0 && !o->quiet)
			cli_warn("%s: %llu claimed messages not written out, counted lost", o->name,
				 (unsigned long long)n);
	}
	free(out.buf);
	free(out.ends);
	free(own);
	/* interrupted while the output was blocked: a signal exit, not a write error */
	if (out.err != 0 && out.err != -EPIPE && !(out.err == -EINTR && cli_signal)) {
		cli_warnc(out.err, "write error");
		ret = EXIT_FAIL;
	}
	return ret;
}

/* The channel does not exist here and the broker knows an exporter of it:
 * 1, with o->net set to connect there (registered as a remote reader). */
static int
remote_export(struct opts *o)
{
	static char ep[512];
	char path[4096], host[DH_BROKER_HOST_MAX + 1], me[DH_BROKER_HOST_MAX + 1], label[DH_PNAME_MAX];
	const char *env;

	if (dh_block_path(o->name, path, sizeof path) < 0 || access(path, F_OK) == 0 || errno != ENOENT)
		return 0;
	if (o->no_wait || cli_broker_find_export(&o->broker, o->name, ep, sizeof ep, host) < 0)
		return 0;
	o->net.connect = ep;
	if (!o->net.curve_given && (env = getenv("DH_CURVE_DIR")) != NULL && *env)
		o->net.curve = env;
	if (!o->quiet)
		cli_warn("%s: not here: reading it from %s at %s", o->name, host, ep);
	snprintf(label, sizeof label, "net:%s", dh_broker_local_host(me, sizeof me));
	cli_broker_remote_reader(&o->broker, o->name, host, o->ro.label ? o->ro.label : label, ep);
	return 1;
}

/* --connect: the loop above over an exporter's messages. */
static int
read_remote(struct opts *o)
{
	struct src src = { NULL, NULL };
	int ret, rc;

	o->net.count = o->count;
	src.c = cli_net_client(&o->net, o->name, &o->ro, o->ro.key ? o->key : NULL, o->want);
	dh_key_wipe(o->key);
	if (o->mode == DH_FRAME_JSON) {
		const struct dh_net_welcome *w;

		if ((rc = dh_net_client_wait_welcome(src.c, o->timeout_ns)) < 0) {
			char why[256];

			snprintf(why, sizeof why, "%s", cli_net_error(src.c, rc));
			dh_net_client_close(src.c);
			if (rc == -EINTR)
				cli_reraise();
			cli_die(rc == -ETIMEDOUT ? EXIT_TIMEOUT : EXIT_FAIL, "%s: %s", o->name, why);
		}
		w = dh_net_client_welcome(src.c);
		if (w->has_schema && w->schema[0] && ((o->sc = malloc(sizeof *o->sc)) == NULL ||
						       dh_schema_parse(w->schema, o->sc) < 0)) {
			dh_net_client_close(src.c);
			cli_die(EXIT_FAIL, "%s: the exporter sent a schema that does not parse", o->name);
		}
		if (o->csv && o->sc == NULL) {
			dh_net_client_close(src.c);
			cli_die(EXIT_FAIL, "%s: channel has no schema: --csv decodes records (dh-create --schema)", o->name);
		}
	}
	ret = pump(o, &src);
	cli_broker_stop(&o->broker);
	dh_net_client_close(src.c);
	free(o->sc);
	free(o->want);
	if (cli_signal)
		cli_reraise();
	if (cli_close_stdout() != 0 && ret == EXIT_OK)
		ret = EXIT_FAIL;
	return ret;
}

int
main(int argc, char **argv)
{
	struct opts o;
	struct dh_reader *r;
	int rc, ret;

	cli_init(argc, argv);
	parse(argc, argv, &o);
	if (o.meta)
		return print_meta(&o);
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
	if (o.broker.on && !o.wait && remote_export(&o))
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
	pg = progress_start(&o.progress, o.name, dh_reader_block(r), 1);
	struct src src = { r, NULL };
	ret = pump(&o, &src);
	progress_end(pg);
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
