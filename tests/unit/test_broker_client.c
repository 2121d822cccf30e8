/* test_broker_client.c: the broker client API against a live dh-broker:
 * requests, errors, wait, events, sessions across a broker restart, CURVE
 * keys and the ZAP allow-list, failing closed. See LICENSE. */
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>
#include <zmq.h>

#include "dh_block.h"
#include "dh_broker.h"
#include "dh_error.h"

#define TAP_CHAN_TAG "bc"
#include "tap.h"

#define MS (1000000LL)
#define SEC (1000000000LL)

static char bin[PATH_MAX];
static char tmp[256];
static char ep[PATH_MAX + 16], evep[PATH_MAX + 16];

static int
find_broker(void)
{
	const char *top = getenv("DH_TOP"), *build = getenv("DH_BUILD");

	if (build && build[0] == '/')
		snprintf(bin, sizeof bin, "%s/bin/dh-broker", build);
	else
		snprintf(bin, sizeof bin, "%s/%s/bin/dh-broker", top ? top : ".", build ? build : "build");
	return access(bin, X_OK) == 0;
}

/* Start dh-broker with extra args (NULL-terminated); returns its pid. */
static pid_t
broker_start(const char *curve, const char *hb)
{
	pid_t pid = tap_fork();

	if (pid == 0) {
		const char *argv[12];
		int n = 0;
		int fd = open("/dev/null", O_WRONLY);
		if (fd >= 0 && !getenv("TEST_BROKER_LOG"))
			dup2(fd, 2);
		argv[n++] = bin;
		argv[n++] = "--bind";
		argv[n++] = ep;
		argv[n++] = "--events";
		argv[n++] = evep;
		argv[n++] = "--heartbeat";
		argv[n++] = hb ? hb : "100ms";
		if (curve) {
			argv[n++] = "--curve";
			argv[n++] = curve;
		}
		argv[n] = NULL;
		execv(bin, (char *const *)argv);
		_exit(127);
	}
	return pid;
}

/* Await a broker answering ping with opts (5 s). */
static int
broker_up(const struct dh_broker_opts *o)
{
	struct dh_broker_client *c;
	struct dh_broker_pong p;
	double t0 = tap_now();
	int r = -1;

	if (dh_broker_connect(o, &c) < 0)
		return 0;
	while (tap_now() - t0 < 5 && (r = dh_broker_ping(c, &p)) != 0)
		;
	dh_broker_disconnect(c);
	return r == 0;
}

/* SIGTERM; 1 if it died of SIGTERM (cleanly re-raised). */
static int
broker_stop(pid_t pid)
{
	int st = 0;

	kill(pid, SIGTERM);
	if (!tap_wait(pid, &st, 10))
		return 0;
	return WIFSIGNALED(st) && WTERMSIG(st) == SIGTERM;
}

static int
file_exists(const char *p)
{
	struct stat st;
	return stat(p, &st) == 0;
}

static int awaited;

static void
nap(void)
{
	struct timespec d = { 0, 2 * 1000000 };
	nanosleep(&d, NULL);
}

/* Poll cond every 2 ms for up to seconds; the outcome in awaited. */
#define AWAIT(cond, seconds)                                                  \
	do {                                                                  \
		double t0_ = tap_now();                                       \
		while (!(awaited = (cond)) && tap_now() - t0_ < (seconds))    \
			nap();                                                \
	} while (0)

static struct dh_broker_reg
wreg(const char *chan, pid_t pid)
{
	struct dh_broker_reg r;

	memset(&r, 0, sizeof r);
	r.channel = chan;
	r.host = "hostA";
	r.pid = pid;
	r.label = "test";
	r.policy = DH_POLICY_RING;
	r.slots = 8;
	r.slot_size = 128;
	r.max_readers = 4;
	r.checksum = DH_CHECKSUM_XXH3;
	return r;
}

/* ---- tests without a broker ---- */

static void
t_keys(void)
{
	char dir[PATH_MAX], path[PATH_MAX + 32], z[41], pub[41], name[64];
	uint8_t raw[32];
	int fd;

	snprintf(dir, sizeof dir, "%s/keys", tmp);
	ok(dh_broker_keygen(dir) == 0, "keygen: creates the key directory");
	snprintf(path, sizeof path, "%s/broker.key", dir);
	struct stat st;
	ok(stat(path, &st) == 0 && (st.st_mode & 0777) == 0600 && stat(dir, &st) == 0 &&
		   (st.st_mode & 0777) == 0700,
	   "keygen: files 0600, directory 0700");
	ok(dh_broker_keygen(dir) == -EEXIST && file_exists(path), "keygen again: -EEXIST, keys kept");
	ok(dh_broker_key_load(path, 1, z) == 0 && strlen(z) == 40, "key_load: the broker secret key");
	snprintf(path, sizeof path, "%s/client.key", dir);
	ok(dh_broker_key_load(path, 1, z) == 0 && dh_broker_key_public(z, pub) == 0,
	   "key_load + key_public: the client key pair");
	snprintf(path, sizeof path, "%s/clients/client.pub", dir);
	ok(dh_broker_key_load(path, 0, z) == 0 && strcmp(z, pub) == 0, "clients/client.pub is the client's public key");

	snprintf(path, sizeof path, "%s/clients", dir);
	zmq_z85_decode(raw, pub);
	ok(dh_broker_allowed(path, raw, name, sizeof name) == 1 && strcmp(name, "client") == 0,
	   "allowed: the listed key, named after its file");
	raw[0] ^= 1;
	ok(dh_broker_allowed(path, raw, name, sizeof name) == 0, "allowed: another key is not");
	snprintf(path, sizeof path, "%s/nope", dir);
	ok(dh_broker_allowed(path, raw, name, sizeof name) < 0, "allowed: a missing directory is an error (fail closed)");

	snprintf(path, sizeof path, "%s/loose.key", tmp);
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0644);
	ok(fd >= 0 && write(fd, z, 40) == 40 && fchmod(fd, 0644) == 0, "a world-readable key file");
	close(fd);
	ok(dh_broker_key_load(path, 1, z) == -DH_EKEYMODE && dh_broker_key_load(path, 0, z) == 0,
	   "key_load: a world-readable secret key is refused (-DH_EKEYMODE), a public one is fine");
	snprintf(path, sizeof path, "%s/bad.key", tmp);
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600);
	ok(fd >= 0 && write(fd, "not a key\n", 10) == 10, "a key file with junk");
	close(fd);
	ok(dh_broker_key_load(path, 1, z) == -EINVAL, "key_load: junk is -EINVAL");
	snprintf(path, sizeof path, "%s/link.key", tmp);
	char target[PATH_MAX + 32];
	snprintf(target, sizeof target, "%s/keys/client.key", tmp);
	ok(symlink(target, path) == 0 && dh_broker_key_load(path, 1, z) == -ELOOP,
	   "key_load: a symlinked secret key is refused (-ELOOP)");
}

static void
t_nobroker(void)
{
	struct dh_broker_opts o = { .timeout_ns = 200 * MS };
	struct dh_broker_client *c;
	struct dh_broker_pong p;
	char e[PATH_MAX + 16];
	double t0;
	int r;

	snprintf(e, sizeof e, "ipc://%s/none.sock", tmp);
	o.endpoint = e;
	ok(dh_broker_connect(&o, &c) == 0, "connect to a missing broker succeeds (libzmq connects lazily)");
	t0 = tap_now();
	r = dh_broker_ping(c, &p);
	ok(r == -ETIMEDOUT && tap_now() - t0 < 2 && strlen(dh_broker_errmsg(c)) > 0,
	   "a request to a missing broker: -ETIMEDOUT within the timeout, with a message");
	dh_broker_disconnect(c);
	o.endpoint = "bogus://x";
	ok(dh_broker_connect(&o, &c) == -EINVAL, "connect: a bad endpoint is -EINVAL");
	o.endpoint = e;
	o.server_key = "/nonexistent";
	ok(dh_broker_connect(&o, &c) == -EINVAL, "connect: a server key without a client key is -EINVAL");
	o.client_key = "/nonexistent";
	ok(dh_broker_connect(&o, &c) == -ENOENT, "connect: a missing key file is -ENOENT");
}

/* A CURVE server socket with the domain enforced and no ZAP handler must
 * refuse even a client with good keys. */
static void
t_failclosed(void)
{
	char spub[41], ssec[41], cpub[41], csec[41], e[PATH_MAX + 16];
	void *ctx = zmq_ctx_new(), *srv = zmq_socket(ctx, ZMQ_ROUTER), *cl = zmq_socket(ctx, ZMQ_DEALER);
	int zero = 0, to = 500, r;
	char buf[64];

	snprintf(e, sizeof e, "ipc://%s/closed.sock", tmp);
	zmq_curve_keypair(spub, ssec);
	zmq_curve_keypair(cpub, csec);
	zmq_setsockopt(srv, ZMQ_LINGER, &zero, sizeof zero);
	zmq_setsockopt(cl, ZMQ_LINGER, &zero, sizeof zero);
	ok(dh_broker_curve_server(srv, ssec) == 0 && zmq_bind(srv, e) == 0,
	   "curve_server: CURVE with ZMQ_ZAP_ENFORCE_DOMAIN set");
	zmq_setsockopt(cl, ZMQ_CURVE_SERVERKEY, spub, 40);
	zmq_setsockopt(cl, ZMQ_CURVE_PUBLICKEY, cpub, 40);
	zmq_setsockopt(cl, ZMQ_CURVE_SECRETKEY, csec, 40);
	zmq_setsockopt(srv, ZMQ_RCVTIMEO, &to, sizeof to);
	zmq_connect(cl, e);
	zmq_send(cl, "hello", 5, ZMQ_DONTWAIT);
	r = zmq_recv(srv, buf, sizeof buf, 0);
	ok(r < 0 && errno == EAGAIN, "no ZAP handler: a client with valid keys gets nothing through");
	zmq_close(cl);
	zmq_close(srv);
	zmq_ctx_term(ctx);
	ok(dh_broker_curve_server(NULL, "short") == -EINVAL, "curve_server: a bad key is -EINVAL");
}

/* ---- tests against a broker ---- */

struct waiter {
	struct dh_broker_opts o;
	const char *chan;
	int r;
	struct dh_broker_info info;
};

static void *
wait_thread(void *arg)
{
	struct waiter *w = arg;
	struct dh_broker_client *c;

	w->r = dh_broker_connect(&w->o, &c);
	if (w->r == 0) {
		w->r = dh_broker_wait_channel(c, w->chan, NULL, 10 * SEC, &w->info);
		dh_broker_disconnect(c);
	}
	return NULL;
}

static void
t_requests(const struct dh_broker_opts *o)
{
	struct dh_broker_client *c;
	struct dh_broker_pong p;
	struct dh_broker_info in, *all;
	struct dh_broker_reg r = wreg("dhtest-bc-a", 4242);
	char tok[40], rtok[40], *json = NULL, *raw;
	int64_t hb = 0;
	size_t n;

	ok(dh_broker_connect(o, &c) == 0 && dh_broker_ping(c, &p) == 0 && p.protocol == DH_BROKER_PROTOCOL &&
		   p.heartbeat_ns == 100 * MS && strcmp(p.events, evep) == 0,
	   "ping: protocol, heartbeat and events endpoint");
	ok(dh_broker_register(c, &r, tok, &hb) == 0 && strlen(tok) == 32 && hb == 100 * MS,
	   "register: token and heartbeat interval");
	ok(dh_broker_discover(c, "dhtest-bc-a", NULL, &in) == 0 && !in.stale && in.pid == 4242 &&
		   strcmp(in.host, "hostA") == 0 && in.policy == DH_POLICY_RING && in.slots == 8 &&
		   in.slot_size == 128 && in.checksum == DH_CHECKSUM_XXH3 && strcmp(in.label, "test") == 0,
	   "discover: the registered geometry");
	ok(dh_broker_discover(c, "dhtest-bc-none", NULL, &in) == -ENOENT && strstr(dh_broker_errmsg(c), "not_found"),
	   "discover unknown: -ENOENT, message names not_found");

	struct dh_broker_reg r2 = wreg("dhtest-bc-a", 4343);
	ok(dh_broker_register(c, &r2, rtok, NULL) == -EBUSY, "second live writer: -EBUSY");
	r2.host = "hostB";
	r2.has_schema = 1;
	memset(r2.schema_hash, 0x11, 32);
	r.has_schema = 1;
	memset(r.schema_hash, 0x22, 32);
	ok(dh_broker_register(c, &r, tok, NULL) == 0, "re-register by the same writer with a schema");
	ok(dh_broker_register(c, &r2, rtok, NULL) == -DH_ESCHEMA, "same channel, other host, other schema: -DH_ESCHEMA");

	struct dh_broker_reg rr = { .channel = "dhtest-bc-a", .host = "hostA", .pid = 777, .label = "rd" };
	ok(dh_broker_register_reader(c, &rr, rtok, NULL) == 0, "register_reader");
	rr.channel = "dhtest-bc-zz";
	char ztok[40];
	ok(dh_broker_register_reader(c, &rr, ztok, NULL) == -ENOENT, "register_reader for an unknown channel: -ENOENT");
	rr.channel = "dhtest-bc-a";

	struct dh_broker_metric m[2] = { { "committed", 99 }, { "bytes", 1 << 20 } };
	ok(dh_broker_heartbeat(c, tok, m, 2) == 0, "heartbeat with metrics");
	ok(dh_broker_list(c, NULL, &all, &n, &json) == 0 && n == 1 && all[0].readers == 1 && json &&
		   strstr(json, "\"committed\":99") != NULL,
	   "list: one channel, its reader and metrics");
	free(all);
	free(json);
	ok(dh_broker_report_checksum(c, "dhtest-bc-a", "hostA", 777, 5, "test") == 0, "report_checksum");
	ok(dh_broker_request(c, "{\"type\":\"bogus\"}", &raw) == 0 && strstr(raw, "unknown_type"),
	   "request: a raw error reply is returned as is");
	free(raw);
	ok(dh_broker_heartbeat(c, "00000000000000000000000000000000", NULL, 0) == -ENOENT,
	   "heartbeat with an unknown token: -ENOENT (register again)");
	ok(dh_broker_deregister(c, rtok) == 0 && dh_broker_deregister(c, tok) == 0 &&
		   dh_broker_discover(c, "dhtest-bc-a", NULL, &in) == -ENOENT,
	   "deregister reader and writer: gone");

	/* wait_channel: a thread waits, we register */
	struct waiter w = { .o = *o, .chan = "dhtest-bc-w", .r = 1 };
	pthread_t th;
	pthread_create(&th, NULL, wait_thread, &w);
	struct dh_broker_reg rw = wreg("dhtest-bc-w", 4444);
	struct timespec d = { 0, 150 * 1000000 };
	nanosleep(&d, NULL); /* let the waiter miss it at least once: not synchronisation */
	ok(dh_broker_register(c, &rw, tok, NULL) == 0, "register while a reader waits");
	pthread_join(th, NULL);
	ok(w.r == 0 && w.info.pid == 4444, "wait_channel: returns once the channel is registered");
	dh_broker_deregister(c, tok);
	double t0 = tap_now();
	ok(dh_broker_wait_channel(c, "dhtest-bc-never", NULL, 300 * MS, &in) == -ETIMEDOUT &&
		   tap_now() - t0 < 2,
	   "wait_channel: -ETIMEDOUT at the deadline");
	dh_broker_disconnect(c);
}

static void
t_events(const struct dh_broker_opts *o)
{
	struct dh_broker_opts eo = *o;
	struct dh_broker_events *e;
	struct dh_broker_client *c;
	struct dh_broker_reg r = wreg("dhtest-bc-e", 5555);
	char tok[40], *ev = NULL, epb[512];
	ssize_t n;
	int got = 0;

	ok(dh_broker_connect(o, &c) == 0 && dh_broker_events_endpoint(c, epb, sizeof epb) == 0 &&
		   strcmp(epb, evep) == 0,
	   "events_endpoint: what the broker publishes on");
	eo.endpoint = epb;
	ok(dh_broker_events_open(&eo, &e) == 0, "events_open");
	n = dh_broker_events_next(e, &ev, 5 * SEC);
	ok(n > 0 && strstr(ev, "\"event\":\"welcome\""), "the first event is the welcome");
	free(ev);
	dh_broker_register(c, &r, tok, NULL);
	while ((n = dh_broker_events_next(e, &ev, 5 * SEC)) > 0) {
		got = strstr(ev, "\"event\":\"registered\"") && strstr(ev, "dhtest-bc-e");
		free(ev);
		if (got)
			break;
	}
	ok(got, "a registration is announced");
	dh_broker_deregister(c, tok);
	got = 0;
	while ((n = dh_broker_events_next(e, &ev, 5 * SEC)) > 0) {
		got = strstr(ev, "\"event\":\"closed\"") && strstr(ev, "\"reason\":\"deregistered\"");
		free(ev);
		if (got)
			break;
	}
	ok(got, "a deregistration is announced as closed");
	ok(dh_broker_events_next(e, &ev, 50 * MS) == -ETIMEDOUT, "events_next: -ETIMEDOUT when quiet");
	dh_broker_events_close(e);
	dh_broker_disconnect(c);
}

static struct {
	pthread_mutex_t mu;
	int changes, last;
} note = { PTHREAD_MUTEX_INITIALIZER, 0, 1 };

static void
on_state(void *arg, int state, const char *msg)
{
	(void)arg;
	(void)msg;
	pthread_mutex_lock(&note.mu);
	note.changes++;
	note.last = state;
	pthread_mutex_unlock(&note.mu);
}

static int
discover_ok(const struct dh_broker_opts *o, const char *chan, struct dh_broker_info *in)
{
	struct dh_broker_client *c;
	int r;

	if (dh_broker_connect(o, &c) < 0)
		return 0;
	r = dh_broker_discover(c, chan, NULL, in);
	dh_broker_disconnect(c);
	return r == 0 && !in->stale;
}

static int
listed_metric(const struct dh_broker_opts *o, const char *chan, const char *needle)
{
	struct dh_broker_client *c;
	struct dh_broker_info *all;
	size_t n;
	char *json = NULL;
	int r = 0;

	if (dh_broker_connect(o, &c) < 0)
		return 0;
	if (dh_broker_list(c, chan, &all, &n, &json) == 0) {
		r = json && strstr(json, needle) != NULL;
		free(all);
		free(json);
	}
	dh_broker_disconnect(c);
	return r;
}

/* A writer session across a broker restart; metrics from a real channel. */
static pid_t
t_session(const struct dh_broker_opts *o, pid_t broker)
{
	struct dh_broker_session_opts so;
	struct dh_broker_session *s;
	struct dh_broker_info in;
	struct dh_config cfg;
	char chan[DH_NAME_MAX + 1];
	struct dh_block *blk;
	char schema[64];

	tap_chan(chan);
	dh_config_init(&cfg);
	cfg.slots = 4;
	cfg.slot_size = 64;
	ok(dh_block_create(chan, &cfg) == 0 && dh_block_open(chan, DH_OPEN_RDONLY, &blk) == 0,
	   "a channel to register");
	memset(&so, 0, sizeof so);
	so.broker = *o;
	so.broker.timeout_ns = 300 * MS;
	so.role = DH_BROKER_WRITER;
	ok(dh_broker_reg_from_block(blk, chan, &so.reg, schema, sizeof schema) == 0 && so.reg.slots == 4 &&
		   so.reg.slot_size == 64 && so.reg.policy == cfg.policy,
	   "reg_from_block: geometry and policy of the channel");
	dh_block_close(blk);
	so.reg.label = "sess";
	so.metrics_channel = chan;
	so.notify = on_state;
	ok(dh_broker_session_start(&so, &s) == 0, "session_start returns at once");
	AWAIT(dh_broker_session_state(s) == 0, 5);
	ok(awaited, "the session registers");
	AWAIT(discover_ok(o, chan, &in), 5);
	ok(awaited && in.pid == getpid() && strcmp(in.label, "sess") == 0,
	   "the channel is discoverable, pid and label ours");
	AWAIT(listed_metric(o, chan, "\"committed\":0"), 5);
	ok(awaited, "heartbeats carry the channel's counters");

	kill(broker, SIGKILL);
	tap_wait(broker, NULL, 10);
	AWAIT(dh_broker_session_state(s) == -ETIMEDOUT, 5);
	ok(awaited, "broker killed: the session reports -ETIMEDOUT");
	pthread_mutex_lock(&note.mu);
	int changes = note.changes, last = note.last;
	pthread_mutex_unlock(&note.mu);
	ok(changes >= 2 && last == -ETIMEDOUT, "notify saw registered, then -ETIMEDOUT");

	broker = broker_start(NULL, NULL);
	ok(broker > 0 && broker_up(o), "broker restarted on the same endpoint");
	AWAIT(discover_ok(o, chan, &in), 5);
	ok(awaited && dh_broker_session_state(s) == 0, "the session registers again by itself");
	dh_broker_session_stop(s);
	ok(!discover_ok(o, chan, &in), "session_stop deregisters");
	return broker;
}

/* Reader session whose writer is not registered yet: retries. */
static void
t_reader_session(const struct dh_broker_opts *o)
{
	struct dh_broker_session_opts so;
	struct dh_broker_session *s;
	struct dh_broker_client *c;
	struct dh_broker_reg r = wreg("dhtest-bc-rs", 6000);
	struct dh_broker_info *all;
	size_t n;
	char tok[40];

	memset(&so, 0, sizeof so);
	so.broker = *o;
	so.role = DH_BROKER_READER;
	so.reg.channel = "dhtest-bc-rs";
	so.reg.host = "hostA";
	ok(dh_broker_session_start(&so, &s) == 0, "reader session starts before its channel exists");
	AWAIT(dh_broker_session_state(s) == -ENOENT, 5);
	ok(awaited, "reader session: -ENOENT while unregistered");
	dh_broker_connect(o, &c);
	dh_broker_register(c, &r, tok, NULL);
	AWAIT(dh_broker_session_state(s) == 0, 5);
	ok(awaited, "reader session registers once the channel does");
	ok(dh_broker_list(c, "dhtest-bc-rs", &all, &n, NULL) == 0 && n == 1 && all[0].readers == 1,
	   "list shows the reader");
	free(all);

	struct dh_broker_opts eo = *o;
	struct dh_broker_events *e;
	char *ev = NULL;
	int got = 0;
	eo.endpoint = evep;
	if (dh_broker_events_open(&eo, &e) == 0 && dh_broker_events_next(e, &ev, 5 * SEC) > 0) {
		free(ev);
		ok(dh_broker_session_report_checksum(s, 42, "bad xxh3") == 0, "session_report_checksum queues");
		while (!got && dh_broker_events_next(e, &ev, 5 * SEC) > 0) {
			got = strstr(ev, "\"checksum_failure\"") && strstr(ev, "\"message_seq\":42") &&
			      strstr(ev, "\"detail\":\"bad xxh3\"") && strstr(ev, "dhtest-bc-rs");
			free(ev);
		}
		ok(got, "the session thread reports it: a checksum_failure event");
		dh_broker_events_close(e);
	} else {
		fail_rest(2, "events for session reports");
	}
	dh_broker_session_stop(s);
	ok(dh_broker_list(c, "dhtest-bc-rs", &all, &n, NULL) == 0 && n == 1 && all[0].readers == 0,
	   "reader session_stop deregisters the reader");
	free(all);
	dh_broker_deregister(c, tok);
	dh_broker_disconnect(c);
}

/* A session never holds its caller up when the broker is gone. */
static void
t_session_nobroker(void)
{
	struct dh_broker_session_opts so;
	struct dh_broker_session *s;
	char e[PATH_MAX + 16], host[DH_BROKER_HOST_MAX + 1];
	double t0;

	snprintf(e, sizeof e, "ipc://%s/gone.sock", tmp);
	memset(&so, 0, sizeof so);
	so.broker.endpoint = e;
	so.broker.timeout_ns = 5 * SEC;
	so.role = DH_BROKER_WRITER;
	so.reg = wreg("dhtest-bc-gone", 0);
	ok(dh_broker_session_start(&so, &s) == 0 && dh_broker_session_state(s) == 1,
	   "session against no broker: started, state 1 (not tried yet)");
	nap();
	t0 = tap_now();
	dh_broker_session_stop(s);
	ok(tap_now() - t0 < 1, "stop while a 5 s request is in flight returns at once (%.3f s)", tap_now() - t0);
	ok(dh_broker_local_host(host, sizeof host) == host && host[0] != '\0', "local_host: %s", host);

	struct dh_broker_opts eo = { 0 };
	char kb[PATH_MAX * 2];
	unsetenv("DH_BROKER");
	setenv("DH_CURVE_DIR", "/k", 1);
	ok(dh_broker_opts_env(&eo, kb, sizeof kb) == 0 && strcmp(eo.server_key, "/k/broker.pub") == 0 &&
		   strcmp(eo.client_key, "/k/client.key") == 0,
	   "opts_env: DH_CURVE_DIR gives both key paths; no DH_BROKER, no broker");
	setenv("DH_BROKER", "ipc:///x", 1);
	memset(&eo, 0, sizeof eo);
	eo.server_key = "/mine.pub";
	eo.client_key = "/mine.key";
	ok(dh_broker_opts_env(&eo, kb, sizeof kb) == 1 && strcmp(eo.endpoint, "ipc:///x") == 0 &&
		   strcmp(eo.server_key, "/mine.pub") == 0,
	   "opts_env: DH_BROKER is the endpoint; keys given win over DH_CURVE_DIR");
	unsetenv("DH_BROKER");
	unsetenv("DH_CURVE_DIR");

	/* a keyed channel with a schema registers its key id and schema */
	struct dh_config cfg;
	struct dh_block *blk;
	struct dh_broker_reg reg;
	char chan[DH_NAME_MAX + 1], schema[1024];
	uint8_t key[DH_KEY_BYTES], zero[32] = { 0 };
	memset(key, 7, sizeof key);
	dh_config_init(&cfg);
	cfg.slots = 2;
	cfg.slot_size = 64;
	cfg.key = key;
	cfg.schema = "a:u32;b:f64";
	tap_chan(chan);
	if (dh_block_create(chan, &cfg) == 0 && dh_block_open(chan, DH_OPEN_RDONLY, &blk) == 0) {
		int r = dh_broker_reg_from_block(blk, chan, &reg, schema, sizeof schema);
		ok(r == 0 && reg.checksum == DH_CHECKSUM_MAC && reg.keyed && memcmp(reg.key_id, zero, 32) != 0 &&
			   reg.has_schema && reg.schema && strstr(reg.schema, "a:u32") != NULL,
		   "reg_from_block: a keyed channel's key id, schema hash and canonical schema");
		dh_block_close(blk);
	} else {
		fail_rest(1, "keyed channel with a schema");
	}
}

static void
t_curve(void)
{
	char kd[PATH_MAX], spub[PATH_MAX + 32], ckey[PATH_MAX + 32], other[PATH_MAX], okey[PATH_MAX + 32],
		opub[PATH_MAX + 32];
	struct dh_broker_opts o = { .endpoint = ep, .timeout_ns = 1 * SEC };
	struct dh_broker_client *c;
	struct dh_broker_pong p;
	pid_t pid;
	int r;

	snprintf(kd, sizeof kd, "%s/keys", tmp); /* made by t_keys */
	snprintf(spub, sizeof spub, "%s/broker.pub", kd);
	snprintf(ckey, sizeof ckey, "%s/client.key", kd);
	snprintf(other, sizeof other, "%s/other", tmp);
	snprintf(okey, sizeof okey, "%s/client.key", other);
	snprintf(opub, sizeof opub, "%s/broker.pub", other);
	dh_broker_keygen(other);

	pid = broker_start(kd, NULL);
	o.server_key = spub;
	o.client_key = ckey;
	ok(pid > 0 && broker_up(&o), "CURVE broker: an allow-listed client is served");
	if (dh_broker_connect(&o, &c) == 0) {
		struct dh_broker_opts eo = o;
		struct dh_broker_events *e;
		char *ev = NULL;
		eo.endpoint = evep;
		ok(dh_broker_events_open(&eo, &e) == 0 && dh_broker_events_next(e, &ev, 5 * SEC) > 0 &&
			   strstr(ev, "welcome"),
		   "CURVE broker: events reach an allow-listed subscriber");
		free(ev);
		dh_broker_events_close(e);
		dh_broker_disconnect(c);
	} else {
		fail_rest(1, "CURVE events");
	}

	o.client_key = okey; /* a key the broker does not list */
	dh_broker_connect(&o, &c);
	r = dh_broker_ping(c, &p);
	ok(r == -EACCES || r == -ETIMEDOUT, "CURVE broker: an unknown client key is refused (%s)", dh_strerror(r));
	dh_broker_disconnect(c);

	o.client_key = ckey;
	o.server_key = opub; /* the wrong broker key */
	dh_broker_connect(&o, &c);
	r = dh_broker_ping(c, &p);
	ok(r == -EACCES || r == -ETIMEDOUT, "CURVE broker: a client with the wrong server key gets nothing (%s)",
	   dh_strerror(r));
	dh_broker_disconnect(c);

	o.server_key = o.client_key = NULL;
	dh_broker_connect(&o, &c);
	r = dh_broker_ping(c, &p);
	ok(r == -EACCES || r == -ETIMEDOUT, "CURVE broker: a client without CURVE gets nothing (%s)", dh_strerror(r));
	dh_broker_disconnect(c);

	/* adding the other key to the allow-list admits it without a restart */
	char src[PATH_MAX + 32], dst[PATH_MAX + 32], z[41];
	snprintf(src, sizeof src, "%s/clients/client.pub", other);
	snprintf(dst, sizeof dst, "%s/clients/other.pub", kd);
	int fd = open(dst, O_WRONLY | O_CREAT | O_EXCL, 0600);
	ok(dh_broker_key_load(src, 0, z) == 0 && fd >= 0 && write(fd, z, 40) == 40, "allow-list the other client");
	close(fd);
	o.server_key = spub;
	o.client_key = okey;
	ok(broker_up(&o), "the newly listed client is admitted without a restart");
	unlink(dst);
	ok(broker_stop(pid), "CURVE broker: SIGTERM ends it by re-raising");
}

int
main(void)
{
	struct dh_broker_opts o = { .timeout_ns = 2 * SEC };
	pid_t pid;
	int nkeys = 14, nnob = 5, nfc = 3, nreq = 18, nev = 6, nsess = 11, nrs = 7 + 6, ncurve = 8;

	plan(nkeys + nnob + nfc + 3 + nreq + nev + nsess + nrs + ncurve);
	tap_watch(110, "test_broker_client");
	snprintf(tmp, sizeof tmp, "/tmp/dhtest-bc-%ld-XXXXXX", (long)getpid());
	if (mkdtemp(tmp) == NULL) {
		fail_rest(nkeys + nnob + nfc + 3 + nreq + nev + nsess + nrs + ncurve, "mkdtemp");
		return done();
	}
	snprintf(ep, sizeof ep, "ipc://%s/req.sock", tmp);
	snprintf(evep, sizeof evep, "ipc://%s/ev.sock", tmp);
	o.endpoint = ep;

	t_keys();
	t_nobroker();
	t_failclosed();
	if (!find_broker()) {
		for (int i = 0; i < 3 + nreq + nev + nsess + nrs + ncurve; i++)
			skip("dh-broker", "no dh-broker binary (set DH_TOP and DH_BUILD)");
	} else {
		char sock[PATH_MAX + 16];
		pid = broker_start(NULL, NULL);
		ok(pid > 0 && broker_up(&o), "dh-broker answers");
		t_requests(&o);
		t_events(&o);
		pid = t_session(&o, pid);
		t_reader_session(&o);
		t_session_nobroker();
		ok(broker_stop(pid), "SIGTERM: dh-broker exits by re-raising it");
		snprintf(sock, sizeof sock, "%s/req.sock", tmp);
		ok(!file_exists(sock), "its ipc socket is removed");
		t_curve();
	}
	char cmd[PATH_MAX + 16];
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp);
	if (system(cmd) != 0)
		diag("could not remove %s", tmp);
	return done();
}
