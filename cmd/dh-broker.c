/* dh-broker: the channel registry: discovery, liveness and events over ZeroMQ. See LICENSE. */
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>
#include <zmq.h>

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

#define BURST 256          /* requests served before liveness is checked again */
#define POLL_MAX_MS 200    /* bounds the delay of a signal that lands outside zmq_poll */
#define LOG_PER_SEC 20     /* refusal lines per second before they are counted instead */

struct srv {
	void *ctx, *router, *pub, *mon;
	struct dh_broker *b;
	struct dh_broker_zap *zap;
	int verbose, curve;
	pthread_mutex_t logmu;
	time_t log_sec;
	unsigned log_n, log_dropped, recent_next;
	struct { char line[200]; time_t sec; } recent[8];
	struct { char path[sizeof(((struct sockaddr_un *)0)->sun_path)]; dev_t dev; ino_t ino; } ipc[2];
};

static _Noreturn void
help(void)
{
	char ep[256];

	printf("usage: %s\n       %s\n\n", synopsis, synopsis_keygen);
	printf("Keep a registry of dh channels across hosts: writers register and heartbeat,\n"
	       "readers discover channels and subscribe to events. Data never flows through it.\n\n"
	       "  -b, --bind ENDPOINT    request endpoint (ROUTER), ipc://PATH or tcp://HOST:PORT\n"
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

static void
emit(void *arg, const char *json, size_t len)
{
	struct srv *s = arg;

	if (s->verbose)
		logline(s, 1, json);
	if (s->pub)
		zmq_send(s->pub, json, len, ZMQ_DONTWAIT); /* a slow subscriber loses events */
}

static int64_t
now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* The path of an ipc:// endpoint, or NULL. */
static const char *
ipc_path(const char *ep)
{
	return strncmp(ep, "ipc://", 6) == 0 && ep[6] != '@' ? ep + 6 : NULL;
}

static int
ipc_free(const char *ep)
{
	const char *path = ipc_path(ep);
	struct sockaddr_un sa;
	int fd, r;

	if (path == NULL)
		return 1;
	if (strlen(path) >= sizeof sa.sun_path) {
		cli_warn("%s: socket path too long", ep);
		return 0;
	}
	memset(&sa, 0, sizeof sa);
	sa.sun_family = AF_UNIX;
	memcpy(sa.sun_path, path, strlen(path));
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0)
		return 1;
	r = connect(fd, (struct sockaddr *)&sa, sizeof sa);
	close(fd);
	if (r == 0)
		cli_warn("%s: address in use (another broker listens there)", ep);
	return r != 0;
}

/* A bound socket, or NULL after a message. For ipc://PATH, refuse to take
 * over the socket of a running broker (libzmq would silently replace it). */
static void *
open_sock(struct srv *s, int type, const char *ep, const char *secret, int slot)
{
	/* Replies queued for one connection are bounded in count here and in
	 * size by the handler's pages: together they bound its bytes. */
	int zero = 0, sndhwm = type == ZMQ_ROUTER ? DH_BROKER_REPLY_QUEUE : 1000;
	int rcvhwm = type == ZMQ_ROUTER ? 100 : 1000, hs = 5000, r;
	int64_t max = type == ZMQ_ROUTER ? DH_BROKER_MSG_MAX : 1024;
	void *sock = zmq_socket(s->ctx, type);
	struct stat st;
	const char *path;

	if (sock == NULL) {
		cli_warn("zmq socket: %s", zmq_strerror(errno));
		return NULL;
	}
	zmq_setsockopt(sock, ZMQ_LINGER, &zero, sizeof zero);
	zmq_setsockopt(sock, ZMQ_MAXMSGSIZE, &max, sizeof max);
	zmq_setsockopt(sock, ZMQ_SNDHWM, &sndhwm, sizeof sndhwm);
	zmq_setsockopt(sock, ZMQ_RCVHWM, &rcvhwm, sizeof rcvhwm);
	zmq_setsockopt(sock, ZMQ_HANDSHAKE_IVL, &hs, sizeof hs);
	if (type == ZMQ_XPUB) {
		char w[128];
		snprintf(w, sizeof w, "{\"event\":\"welcome\",\"protocol\":%d,\"version\":\"%s\"}",
			 DH_BROKER_PROTOCOL, DH_VERSION_STR);
		zmq_setsockopt(sock, ZMQ_XPUB_WELCOME_MSG, w, strlen(w));
	}
	if (secret && (r = dh_broker_curve_server(sock, secret)) < 0) {
		cli_warnc(r, "%s: cannot enforce CURVE authentication", ep);
		goto fail;
	}
	if (!ipc_free(ep))
		goto fail;
	if (zmq_bind(sock, ep) < 0) {
		cli_warn("bind %s: %s", ep, zmq_strerror(errno));
		goto fail;
	}
	if ((path = ipc_path(ep)) && stat(path, &st) == 0) {
		snprintf(s->ipc[slot].path, sizeof s->ipc[slot].path, "%s", path);
		s->ipc[slot].dev = st.st_dev;
		s->ipc[slot].ino = st.st_ino;
	}
	return sock;
fail:
	zmq_close(sock);
	return NULL;
}

/*
 * The endpoint sock is bound to, as ping reports it: what was asked,
 * except that an ephemeral tcp port (0 or "*") becomes the port libzmq
 * chose, which is the only way a client can learn it.  A named host stays
 * as written (clients elsewhere may resolve it differently).
 */
static const char *
bound_endpoint(void *sock, const char *ep, char *buf, size_t cap)
{
	const char *port = strncmp(ep, "tcp://", 6) == 0 ? strrchr(ep, ':') : NULL;
	size_t len = cap;

	if (port == NULL || (strcmp(port, ":0") != 0 && strcmp(port, ":*") != 0))
		return ep;
	if (zmq_getsockopt(sock, ZMQ_LAST_ENDPOINT, buf, &len) < 0 || len == 0)
		return ep;
	buf[cap - 1] = '\0';
	return buf;
}

/* Log handshakes that fail on the request socket (a wrong broker key, no
 * CURVE against a CURVE broker, a refused key, garbage): libzmq drops
 * those connections by itself. */
static void
watch_handshakes(struct srv *s)
{
	int zero = 0;

	if (zmq_socket_monitor(s->router, "inproc://dh-broker-handshakes",
			       ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL | ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL |
				       ZMQ_EVENT_HANDSHAKE_FAILED_AUTH) < 0 ||
	    (s->mon = zmq_socket(s->ctx, ZMQ_PAIR)) == NULL)
		return;
	zmq_setsockopt(s->mon, ZMQ_LINGER, &zero, sizeof zero);
	if (zmq_connect(s->mon, "inproc://dh-broker-handshakes") < 0) {
		zmq_close(s->mon);
		s->mon = NULL;
	}
}

static void
handshake_event(struct srv *s)
{
	zmq_msg_t ev, addr;
	char line[256];
	uint16_t id = 0;
	uint32_t val = 0;

	zmq_msg_init(&ev);
	zmq_msg_init(&addr);
	while (zmq_msg_recv(&ev, s->mon, ZMQ_DONTWAIT) >= 0) {
		if (!zmq_msg_more(&ev) || zmq_msg_recv(&addr, s->mon, 0) < 0)
			continue;
		if (zmq_msg_size(&ev) >= 6) {
			memcpy(&id, zmq_msg_data(&ev), 2);
			memcpy(&val, (char *)zmq_msg_data(&ev) + 2, 4);
		}
		char why[64];
		if (id == ZMQ_EVENT_HANDSHAKE_FAILED_AUTH)
			snprintf(why, sizeof why, "refused: client key not allowed");
		else if (id == ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL && val == ZMQ_PROTOCOL_ERROR_ZMTP_CRYPTOGRAPHIC)
			snprintf(why, sizeof why, "failed: client uses another broker key");
		else if (id == ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL && val == ZMQ_PROTOCOL_ERROR_ZMTP_MECHANISM_MISMATCH)
			snprintf(why, sizeof why, "failed: client without CURVE");
		else if (id == ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL)
			snprintf(why, sizeof why, "failed: ZMTP protocol error 0x%x", (unsigned)val);
		else
			snprintf(why, sizeof why, "failed: %s", zmq_strerror((int)val));
		snprintf(line, sizeof line, "handshake on %.*s %s",
			 (int)(zmq_msg_size(&addr) < 128 ? zmq_msg_size(&addr) : 128),
			 (const char *)zmq_msg_data(&addr), why);
		logline(s, 0, line);
	}
	zmq_msg_close(&ev);
	zmq_msg_close(&addr);
}

/* Serve one message from the ROUTER: [routing id, (empty,) body]. */
static void
serve_one(struct srv *s, zmq_msg_t *parts, int n, int total)
{
	char peer[DH_BROKER_PEER_MAX + 1], *reply;
	size_t len;
	int delim = n == 3;
	zmq_msg_t *body = &parts[n - 1];

	if (total > 3 || total < 2 || (delim && zmq_msg_size(&parts[1]) != 0)) {
		logline(s, 0, "dropped a request of an unexpected shape (send one frame of JSON)");
		return;
	}
	if (s->curve) {
		const char *uid = zmq_msg_gets(body, "User-Id");
		snprintf(peer, sizeof peer, "curve:%s", uid ? uid : "?");
	} else {
		const unsigned char *id = zmq_msg_data(&parts[0]);
		size_t k, o = (size_t)snprintf(peer, sizeof peer, "conn:");
		for (k = 0; k < zmq_msg_size(&parts[0]) && o + 3 < sizeof peer; k++)
			o += (size_t)snprintf(peer + o, sizeof peer - o, "%02x", id[k]);
	}
	if (dh_broker_handle(s->b, zmq_msg_data(body), zmq_msg_size(body), peer, now_ns(), &reply, &len) < 0) {
		logline(s, 0, "out of memory: request dropped");
		return;
	}
	if (zmq_send(s->router, zmq_msg_data(&parts[0]), zmq_msg_size(&parts[0]), ZMQ_SNDMORE | ZMQ_DONTWAIT) >= 0 &&
	    (!delim || zmq_send(s->router, "", 0, ZMQ_SNDMORE | ZMQ_DONTWAIT) >= 0))
		zmq_send(s->router, reply, len, ZMQ_DONTWAIT);
	free(reply);
}

/* Receive up to 3 frames of one message; *total counts them all. */
static int
recv_msg(void *sock, zmq_msg_t *parts, int *total)
{
	int n = 0, more;

	*total = 0;
	do {
		zmq_msg_t m;
		zmq_msg_init(&m);
		if (zmq_msg_recv(&m, sock, *total ? 0 : ZMQ_DONTWAIT) < 0) {
			zmq_msg_close(&m);
			while (n > 0)
				zmq_msg_close(&parts[--n]);
			return -1;
		}
		more = zmq_msg_more(&m);
		(*total)++;
		if (n < 3)
			parts[n++] = m;
		else
			zmq_msg_close(&m);
	} while (more);
	return n;
}

static void
run(struct srv *s)
{
	while (!cli_signal) {
		zmq_pollitem_t it[3] = { { s->router, 0, ZMQ_POLLIN, 0 } };
		int n = 1, imon = -1, ipub = -1;
		int64_t next = dh_broker_tick(s->b, now_ns());
		long ms = (long)(next / 1000000) + 1;

		if (s->mon)
			it[imon = n++] = (zmq_pollitem_t){ s->mon, 0, ZMQ_POLLIN, 0 };
		if (s->pub)
			it[ipub = n++] = (zmq_pollitem_t){ s->pub, 0, ZMQ_POLLIN, 0 };
		if (ms > POLL_MAX_MS)
			ms = POLL_MAX_MS;
		if (zmq_poll(it, n, ms) < 0) {
			if (errno == EINTR)
				continue;
			cli_die(EXIT_FAIL, "zmq_poll: %s", zmq_strerror(errno));
		}
		for (int k = 0; k < BURST && (it[0].revents & ZMQ_POLLIN) && !cli_signal; k++) {
			zmq_msg_t parts[3];
			int total, nf = recv_msg(s->router, parts, &total);
			if (nf < 0)
				break;
			serve_one(s, parts, nf, total);
			while (nf > 0)
				zmq_msg_close(&parts[--nf]);
		}
		if (imon >= 0 && (it[imon].revents & ZMQ_POLLIN))
			handshake_event(s);
		if (ipub >= 0 && (it[ipub].revents & ZMQ_POLLIN)) { /* subscriptions: read and drop */
			zmq_msg_t m;
			zmq_msg_init(&m);
			while (zmq_msg_recv(&m, s->pub, ZMQ_DONTWAIT) >= 0)
				;
			zmq_msg_close(&m);
		}
	}
}

static void
shutdown_srv(struct srv *s)
{
	struct stat st;

	if (s->mon) {
		zmq_socket_monitor(s->router, NULL, 0);
		zmq_close(s->mon);
	}
	if (s->router)
		zmq_close(s->router);
	if (s->pub)
		zmq_close(s->pub);
	dh_broker_zap_stop(s->zap);
	zmq_ctx_term(s->ctx);
	for (int i = 0; i < 2; i++)
		if (s->ipc[i].path[0] && stat(s->ipc[i].path, &st) == 0 && st.st_dev == s->ipc[i].dev &&
		    st.st_ino == s->ipc[i].ino)
			unlink(s->ipc[i].path);
	dh_broker_free(s->b);
}

int
main(int argc, char **argv)
{
	struct dh_broker_config cfg;
	static struct srv s;
	const char *bind = NULL, *events = NULL, *curve = NULL, *keygen = NULL;
	char epbuf[256], secret[DH_BROKER_Z85_LEN + 1], path[4096], buf[64], bound[2][512];
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
		case ':':
			cli_usage(synopsis, "option %s needs an argument", argv[optind - 1]);
		default:
			if (optopt != 0)
				cli_usage(synopsis, "unknown option -%c", optopt);
			cli_usage(synopsis, "unknown option %s", argv[optind - 1]);
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
		s.curve = 1;
	}
	pthread_mutex_init(&s.logmu, NULL);
	cli_catch_signals(0);
	if ((s.ctx = zmq_ctx_new()) == NULL)
		cli_die(EXIT_FAIL, "zmq context: %s", zmq_strerror(errno));
	if (curve && (r = dh_broker_zap_start(s.ctx, curve, logline, &s, &s.zap)) < 0)
		cli_diec(EXIT_FAIL, r, "%s/clients: allow-list", curve); /* fail closed: never bind without it */
	s.router = open_sock(&s, ZMQ_ROUTER, bind, curve ? secret : NULL, 0);
	if (s.router && events)
		s.pub = open_sock(&s, ZMQ_XPUB, events, curve ? secret : NULL, 1);
	sodium_memzero(secret, sizeof secret);
	if (s.router == NULL || (events && s.pub == NULL)) {
		shutdown_srv(&s);
		return EXIT_FAIL;
	}
	/* bound first: ping must report the port an ephemeral bind chose */
	bind = bound_endpoint(s.router, bind, bound[0], sizeof bound[0]);
	if (events)
		events = bound_endpoint(s.pub, events, bound[1], sizeof bound[1]);
	dh_broker_config_init(&cfg);
	cfg.heartbeat_ns = hb;
	cfg.events = events;
	cfg.emit = emit;
	cfg.log = logline;
	cfg.arg = &s;
	if ((r = dh_broker_new(&cfg, &s.b)) < 0) {
		shutdown_srv(&s);
		cli_diec(EXIT_FAIL, r, "broker");
	}
	watch_handshakes(&s);
	if (s.verbose) {
		snprintf(path, sizeof path, "listening on %s%s%s%s", bind, events ? ", events on " : "",
			 events ? events : "", curve ? " (CURVE)" : "");
		logline(&s, 1, path);
	}
	run(&s);
	shutdown_srv(&s);
	cli_reraise();
	return EXIT_OK;
}
