/* net_cli.c: channels across hosts in the commands: the exporter (dh-read --serve), subscribers (--connect). See LICENSE. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "net_cli.h"

int
cli_net_option(struct cli_net *n, int c, const char *arg)
{
	switch (c) {
	case CLI_OPT_SERVE: n->serve = arg; return 1;
	case CLI_OPT_CONNECT: n->connect = arg; return 1;
	case CLI_OPT_CURVE: n->curve = arg; n->curve_given = 1; return 1;
	default: return 0;
	}
}

int
cli_net_setup(struct cli_net *n, const char *synopsis)
{
	char buf[64];
	const char *ep = n->serve ? n->serve : n->connect;
	const char *env;

	if (n->serve && n->connect)
		cli_usage(synopsis, "--serve and --connect exclude each other");
	if (ep == NULL) {
		if (n->curve_given)
			cli_usage(synopsis, "--curve goes with --serve or --connect");
		return 0;
	}
	if (dh_broker_endpoint_check(ep) < 0 || strncmp(ep, "inproc://", 9) == 0)
		cli_usage(synopsis, "%s: not an endpoint (tcp://HOST:PORT or ipc://PATH)", cli_safe(ep, buf, sizeof buf));
	if (!n->curve_given && (env = getenv("DH_CURVE_DIR")) != NULL && *env)
		n->curve = env;
	return 1;
}

struct serve_ctx {
	const char *name;
	const struct cli_owner *owner;
	int quiet;
};

static void
serve_log(void *arg, int detail, const char *msg)
{
	struct serve_ctx *x = arg;

	if (!detail && !x->quiet)
		cli_warn("%s: %s", x->name, msg);
}

/* The owner rule of dh-read (cli_owner_enforce), per attach: the name may
 * change hands while we serve. */
static int
serve_admit(void *arg, struct dh_block *b)
{
	struct serve_ctx *x = arg;
	uid_t uid = dh_block_owner(b);

	if (x->owner->set ? uid == x->owner->uid : uid == geteuid() || uid == 0)
		return 0;
	return -DH_EOWNER;
}

/* What the broker hands out: the endpoint as bound, a wildcard host
 * replaced by our host name (remote readers cannot connect to "*"). */
static void
advertised(const char *bound, char *out, size_t cap)
{
	static const char *const wild[] = { "tcp://*:", "tcp://0.0.0.0:", "tcp://[::]:", "tcp://[::0]:" };
	char host[DH_BROKER_HOST_MAX + 1];

	for (size_t i = 0; i < sizeof wild / sizeof *wild; i++)
		if (strncmp(bound, wild[i], strlen(wild[i])) == 0) {
			snprintf(out, cap, "tcp://%s:%s", dh_broker_local_host(host, sizeof host),
				 bound + strlen(wild[i]));
			return;
		}
	snprintf(out, cap, "%s", bound);
}

int
cli_net_serve(const struct cli_net *n, const char *name, const struct cli_owner *owner, int quiet,
	      struct cli_broker *broker)
{
	char adv[600];
	struct serve_ctx x = { name, owner, quiet };
	struct dh_net_server_opts so = { 0 };
	struct dh_net_server *s;
	char err[512];
	int r;

	so.endpoint = n->serve;
	so.channel = name;
	so.curve_dir = n->curve;
	so.cancel = &cli_cancel;
	so.admit = serve_admit;
	so.log = serve_log;
	so.arg = &x;
	if ((r = dh_net_server_open(&so, &s, err, sizeof err)) < 0)
		cli_die(EXIT_FAIL, "%s: --serve: %s", name, err[0] ? err : dh_strerror(r));
	if (!quiet)
		cli_warn("%s: serving on %s%s", name, dh_net_server_endpoint(s), n->curve ? " (CURVE)" : "");
	advertised(dh_net_server_endpoint(s), adv, sizeof adv);
	cli_broker_exporter(broker, name, adv);
	r = dh_net_server_run(s, &cli_signal, err, sizeof err);
	cli_broker_stop(broker);
	dh_net_server_close(s);
	if (r < 0)
		cli_die(EXIT_FAIL, "%s: --serve: %s", name, err);
	cli_reraise();
	return EXIT_OK;
}

struct dh_net_client *
cli_net_client(const struct cli_net *n, const char *name, const struct dh_reader_opts *ro, const uint8_t *key,
	       const struct dh_schema *want)
{
	struct dh_net_client_opts co = { 0 };
	struct dh_net_client *c;
	int r;

	co.endpoint = n->connect;
	co.channel = name;
	co.curve_dir = n->curve;
	co.start = ro ? ro->start : DH_START_DEFAULT;
	co.start_seq = ro ? ro->start_seq : 0;
	co.follow = ro ? ro->follow : 0;
	co.rx.key = key;
	if (want) {
		co.rx.has_schema = 1;
		memcpy(co.rx.schema_hash, want->hash, 32);
	}
	co.cancel = &cli_cancel;
	/* both callers say when a message is out (written, published) */
	co.manual_ack = 1;
	/* a queue's exporter claims what it sends: a reader wanting N
	 * messages asks for no more, leaving the rest to others */
	if (n->count > 0 && n->count < 1024)
		co.window = (uint32_t)n->count;
	if ((r = dh_net_client_open(&co, &c)) < 0)
		cli_die(EXIT_FAIL, "%s: --connect %s: %s", name ? name : "", n->connect, dh_strerror(r));
	return c;
}

const char *
cli_net_error(struct dh_net_client *c, int rc)
{
	const char *e = dh_net_client_error(c);

	return e && *e ? e : dh_strerror(rc);
}

/* Losses, as dh-read reports them: at once, then at most once a second. */
static void
lost_note(const char *name, uint64_t *pending, uint64_t n, uint64_t seq, time_t *last, int final)
{
	struct timespec t;

	*pending += n;
	if (*pending == 0)
		return;
	clock_gettime(CLOCK_MONOTONIC, &t);
	if (!final && *last != 0 && t.tv_sec - *last < 1)
		return;
	cli_warn("%s: lost %llu messages before seq %llu", name, (unsigned long long)*pending,
		 (unsigned long long)seq);
	*pending = 0;
	*last = t.tv_sec ? t.tv_sec : 1;
}

int
cli_net_import(struct dh_net_client *c, const char *name, struct dh_writer *w, int64_t timeout_ns, int *eos)
{
	struct dh_block *b = dh_writer_block(w);
	const struct dh_net_welcome *wel;
	uint8_t hash[32];
	uint64_t pending = 0, lastseq = 0;
	time_t last = 0;
	struct dh_msg m;
	int r, ret = EXIT_OK, written = 0;

	*eos = 0;
	if ((r = dh_net_client_wait_welcome(c, timeout_ns)) < 0) {
		if (r == -EINTR)
			return EXIT_OK;
		cli_warn("%s: %s", name, cli_net_error(c, r));
		return r == -ETIMEDOUT ? EXIT_TIMEOUT : EXIT_FAIL;
	}
	wel = dh_net_client_welcome(c);
	/* the mirror holds the remote's records or nothing: same schema, or none on both sides */
	r = dh_block_schema(b, NULL, 0, hash);
	if ((r > 0) != (wel->has_schema != 0) || (r > 0 && memcmp(hash, wel->schema_hash, 32) != 0)) {
		cli_warn("%s: schema mismatch: the remote channel %s, the local one %s", name,
			 wel->has_schema ? "has a schema" : "has none", r > 0 ? "has another" : "has none");
		return EXIT_FAIL;
	}
	if (wel->slot_size > dh_writer_slot_size(w))
		cli_warn("%s: the remote slots (%u bytes) are larger than ours (%zu): a large message will fail", name,
			 wel->slot_size, dh_writer_slot_size(w));
	for (;;) {
		/* Batched like dh-write's standard input: what has arrived is
		 * published together, and everything is published (and
		 * acknowledged) before we wait for the network. */
		r = dh_net_client_next(c, &m, 0);
		if (r == -ETIMEDOUT) {
			dh_writer_flush(w);
			if (written)
				dh_net_client_ack(c, lastseq + 1);
			r = dh_net_client_next(c, &m, timeout_ns);
		}
		if (r == 0) {
			if (m.lost)
				lost_note(name, &pending, m.lost, m.seq, &last, 0);
			if ((r = dh_writer_write(w, m.data, m.len, -1)) < 0) {
				if (r == -EINTR && cli_signal)
					break;
				cli_warnc(r, "%s: remote seq %llu", name, (unsigned long long)m.seq);
				ret = EXIT_FAIL;
				break;
			}
			lastseq = m.seq;
			written = 1;
			/* a full batch was just published */
			if (dh_writer_pending(w) == 0)
				dh_net_client_ack(c, lastseq + 1);
			continue;
		}
		if (r == -DH_ECHECKSUM) {
			cli_warn("%s: checksum mismatch at remote seq %llu: %s", name, (unsigned long long)m.seq,
				 cli_net_error(c, r));
			ret = EXIT_FAIL;
			continue;
		}
		if (r == DH_END) {
			*eos = 1;
			break;
		}
		if (r == -EINTR)
			break;
		if (r == -DH_EWRITERDEAD)
			*eos = -1;
		cli_warn("%s: %s", name, cli_net_error(c, r));
		ret = r == -ETIMEDOUT ? EXIT_TIMEOUT : EXIT_FAIL;
		break;
	}
	lost_note(name, &pending, 0, lastseq, &last, 1);
	dh_writer_flush(w);
	if (written)
		dh_net_client_ack(c, lastseq + 1);
	return ret;
}
