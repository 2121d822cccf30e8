/* dh-stat: show channels: geometry, counters, participants, rates, health. See LICENSE. */
#include <errno.h>
#include <getopt.h>
#include <setjmp.h>
#include <signal.h>
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
#include "stat_pass.h"
#include "stat_text.h"

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
	const unsigned text = (opt.all ? STAT_TEXT_ALL : 0) | (opt.watch ? STAT_TEXT_RATES : 0);
	struct dh_stat_channel *sc;
	char *doc = NULL;
	int rc = 0, failed = 0, first = 1;

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
	if (opt.fmt == FMT_TEXT && !opt.named) {
		stat_text_list(sc, p->n, p->now_ns, text);
	} else if (opt.fmt == FMT_TEXT) {
		for (size_t i = 0; i < p->n; i++) {
			if (sc[i].error != 0)
				continue;
			if (!first)
				putchar('\n');
			first = 0;
			stat_text_channel(&sc[i], p->now_ns, text);
		}
	} else if (opt.fmt == FMT_JSON) {
		rc = dh_stat_json(sc, p->n, p->now_ns, opt.all ? DH_STAT_ALL : 0, &doc);
	} else {
		rc = dh_stat_prometheus(sc, p->n, p->now_ns, opt.all ? DH_STAT_ALL : 0, &doc);
	}
	free(sc);
	if (rc < 0)
		cli_diec(EXIT_FAIL, rc, "render");
	if (doc != NULL)
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
			stat_add(p, names[i]);
	} else if (stat_list(p, opt.filter) < 0) {
		exit(EXIT_FAIL);
	}
	p->now_ns = stat_now_ns(CLOCK_REALTIME);
	for (size_t i = 0; i < p->n; i++)
		stat_take(&p->c[i]);
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
		stat_rates(&cur, &prev);
		if (opt.tty)
			fputs("\033[H\033[2J", stdout);
		else if (prev.c != NULL && opt.fmt != FMT_JSON)
			putchar('\n');
		failed |= print_pass(&cur);
		stat_pass_free(&prev);
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
		if ((uint64_t)next.tv_sec * 1000000000u + (uint64_t)next.tv_nsec < stat_now_ns(CLOCK_MONOTONIC))
			clock_gettime(CLOCK_MONOTONIC, &next);
		while (!cli_signal && clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &next, NULL) == EINTR)
			;
	}
	stat_pass_free(&prev);
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

	stat_pass_free(&l->prev);
	l->prev = l->cur;
	collect(&l->cur, l->names, l->nnames);
	stat_rates(&l->cur, &l->prev);
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
	stat_pass_free(&l.prev);
	stat_pass_free(&l.cur);
	free(l.ch);
	return rc;
}

int
main(int argc, char **argv)
{
	struct cli_broker bk = { 0 };
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
		default:
			cli_bad_option(synopsis, c, argv);
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

	cli_bus_catch();

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
	stat_pass_free(&p);
	if (cli_close_stdout() != 0)
		return EXIT_FAIL;
	return failed ? EXIT_FAIL : EXIT_OK;
}
