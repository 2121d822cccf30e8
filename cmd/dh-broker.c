/* dh-broker: the channel registry: discovery, liveness and events over ZeroMQ. See LICENSE. */
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sodium.h>

#include "cli.h"
#include "dh_broker.h"

static const char synopsis[] =
	"dh-broker [--bind ENDPOINT] [--events ENDPOINT] [--curve DIR] [--heartbeat DUR] [--verbose]";
static const char synopsis_keygen[] = "dh-broker --keygen DIR";

enum { OPT_HEARTBEAT = 256, OPT_KEYGEN };

static const struct option longopts[] = {
	{ "bind", required_argument, NULL, 'b' },
	{ "curve", required_argument, NULL, 'c' },
	{ "events", required_argument, NULL, 'e' },
	{ "heartbeat", required_argument, NULL, OPT_HEARTBEAT },
	{ "help", no_argument, NULL, 'h' },
	{ "keygen", required_argument, NULL, OPT_KEYGEN },
	{ "verbose", no_argument, NULL, 'v' },
	{ "version", no_argument, NULL, 'V' },
	{ NULL, 0, NULL, 0 }
};

#define LOG_PER_SEC 20     /* refusal lines per second before they are counted instead */

/* The log: the server (lib/broker_server.c) says things, we decide what
 * reaches stderr. */
struct srv {
	int verbose;
	pthread_mutex_t logmu;
	time_t log_sec;
	unsigned log_n, log_dropped, recent_next;
	struct { char line[200]; time_t sec; } recent[8];
};

static _Noreturn void
help(void)
{
	char ep[256];

	cli_print_usage(stdout, (const char *const[]){ synopsis, synopsis_keygen, NULL });
	putchar('\n');
	printf("Keep a registry of dh channels across hosts: writers register and heartbeat,\n"
	       "readers discover channels and subscribe to events. Data never flows through it.\n\n"
	       "  -b, --bind ENDPOINT    request endpoint (ROUTER): ipc://PATH, tcp://HOST:PORT\n"
	       "                         (default %s)\n"
	       "  -e, --events ENDPOINT  publish events there, one JSON object per message\n"
	       "  -c, --curve DIR        CurveZMQ: secret key DIR/broker.key, admit only the\n"
	       "                         clients whose public key is in DIR/clients/*.pub\n"
	       "      --heartbeat DUR    heartbeat interval asked of clients (default 1s); a\n"
	       "                         registration is stale after 3 missed, removed after 10\n"
	       "      --keygen DIR       create broker and client key pairs and the allow-list\n"
	       "  -v, --verbose          log every request, admission and event\n"
	       "  -h, --help             print this help and exit\n"
	       "  -V, --version          print the version and exit\n\n"
	       "DUR takes ms, s or m (default s). The protocol is in docs/PROTOCOL.md.\n"
	       "Exit status: 0 done, 1 failed, 2 usage error; killed by a signal: 128+n.\n",
	       dh_broker_default_endpoint(ep, sizeof ep));
	exit(cli_close_stdout());
}

/* Was msg logged in the last 2 seconds? Remembers it if not. */
static int
repeated(struct srv *s, const char *msg, time_t now)
{
	size_t n = sizeof s->recent / sizeof s->recent[0];

	for (size_t i = 0; i < n; i++)
		if (now - s->recent[i].sec < 2 &&
		    strncmp(s->recent[i].line, msg, sizeof s->recent[i].line - 1) == 0)
			return 1;
	snprintf(s->recent[s->recent_next].line, sizeof s->recent[0].line, "%s", msg);
	s->recent[s->recent_next].sec = now;
	s->recent_next = (s->recent_next + 1) % (unsigned)n;
	return 0;
}

/* One log line, whole, from any thread. Without --verbose, refusals are
 * rate-limited and a line repeating a recent one is counted, not shown. */
static void
logline(void *arg, int detail, const char *msg)
{
	struct srv *s = arg;
	time_t now = time(NULL);
	unsigned dropped = 0;

	if (detail && !s->verbose)
		return;
	pthread_mutex_lock(&s->logmu);
	if (now != s->log_sec) {
		dropped = s->log_dropped;
		s->log_sec = now;
		s->log_n = s->log_dropped = 0;
	}
	if (!s->verbose && repeated(s, msg, now)) {
		s->log_dropped++; /* a client retrying: say it once */
		msg = NULL;
	} else if (!s->verbose && ++s->log_n > LOG_PER_SEC) {
		s->log_dropped++;
		msg = NULL;
	}
	flockfile(stderr);
	if (dropped)
		fprintf(stderr, "%s: %u more log lines suppressed\n", cli_prog, dropped);
	if (msg)
		fprintf(stderr, "%s: %s\n", cli_prog, msg);
	funlockfile(stderr);
	pthread_mutex_unlock(&s->logmu);
}

int
main(int argc, char **argv)
{
	struct dh_broker_server_opts so = { 0 };
	struct dh_broker_server *srv;
	static struct srv s;
	const char *bind = NULL, *events = NULL, *curve = NULL, *keygen = NULL;
	char epbuf[256], secret[DH_BROKER_Z85_LEN + 1], path[4096], buf[64], err[1200];
	int64_t hb = 1000000000;
	int c, r;

	cli_init(argc, argv);
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":b:c:e:hvV", longopts, NULL)) != -1) {
		switch (c) {
		case 'b':
			bind = optarg;
			break;
		case 'c':
			curve = optarg;
			break;
		case 'e':
			events = optarg;
			break;
		case OPT_HEARTBEAT:
			if (cli_parse_duration(optarg, &hb) < 0 || hb < 10000000 || hb > 3600000000000LL)
				cli_die(EXIT_USAGE, "--heartbeat %s: invalid duration (10ms to 60m)",
					cli_safe(optarg, buf, sizeof buf));
			break;
		case 'h':
			help();
		case OPT_KEYGEN:
			keygen = optarg;
			break;
		case 'v':
			s.verbose = 1;
			break;
		case 'V':
			cli_version();
		default:
			cli_bad_option(synopsis, c, argv);
		}
	}
	if (optind < argc)
		cli_usage(keygen ? synopsis_keygen : synopsis, "unexpected operand %s",
			  cli_safe(argv[optind], buf, sizeof buf));
	if (keygen) {
		if (bind || events || curve || s.verbose || hb != 1000000000)
			cli_usage(synopsis_keygen, "--keygen takes no other option");
		if ((r = dh_broker_keygen(keygen)) == -EEXIST)
			cli_die(EXIT_FAIL, "%s: key files exist (remove them first)", keygen);
		if (r < 0)
			cli_diec(EXIT_FAIL, r, "%s", keygen);
		return EXIT_OK;
	}
	if (bind == NULL && (bind = dh_broker_default_endpoint(epbuf, sizeof epbuf)) == NULL)
		cli_die(EXIT_FAIL, "default endpoint: path too long");
	if (events && strcmp(events, bind) == 0)
		cli_usage(synopsis, "--events must differ from --bind");
	if (dh_broker_endpoint_check(bind) < 0)
		cli_usage(synopsis, "--bind %s: invalid endpoint (ipc://PATH or tcp://HOST:PORT, PORT 0..65535)",
			  cli_safe(bind, buf, sizeof buf));
	if (events && dh_broker_endpoint_check(events) < 0)
		cli_usage(synopsis, "--events %s: invalid endpoint (ipc://PATH or tcp://HOST:PORT, PORT 0..65535)",
			  cli_safe(events, buf, sizeof buf));

	if (curve) {
		snprintf(path, sizeof path, "%s/broker.key", curve);
		if ((r = dh_broker_key_load(path, 1, secret)) == -EINVAL)
			cli_die(EXIT_FAIL, "%s: not a CurveZMQ secret key (40 Z85 characters)", path);
		if (r < 0)
			cli_diec(EXIT_FAIL, r, "%s", path);
	}
	pthread_mutex_init(&s.logmu, NULL);
	cli_catch_signals(0);
	so.bind = bind;
	so.events = events;
	so.curve_dir = curve;
	so.secret_z85 = curve ? secret : NULL;
	so.heartbeat_ns = hb;
	so.log = logline;
	so.arg = &s;
	r = dh_broker_server_open(&so, &srv, err, sizeof err);
	sodium_memzero(secret, sizeof secret);
	if (r < 0) {
		cli_warn("%s", err);
		return EXIT_FAIL;
	}
	r = dh_broker_server_run(srv, &cli_signal, err, sizeof err);
	dh_broker_server_close(srv);
	if (r < 0) {
		cli_warn("%s", err);
		return EXIT_FAIL;
	}
	cli_reraise();
	return EXIT_OK;
}
