/* broker_server.c: the broker's server loop: the request handler behind a ROUTER socket, events on an XPUB socket. See LICENSE. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <zmq.h>

#include "broker_impl.h"
#include "dh_broker.h"
#include "dh.h"
#include "dh_error.h"


#define BURST 256          /* requests served before liveness is checked again */
#define POLL_MAX_MS 200    /* bounds the delay of a signal that lands outside zmq_poll */

struct dh_broker_server {
	void *ctx, *router, *pub, *mon;
	struct dh_broker *b;
	struct dh_broker_zap *zap;
	int curve;
	int code;                  /* -errno of the last failure of open_sock */
	void (*log)(void *arg, int detail, const char *msg);
	void *arg;
	char *err;                 /* the caller's, while open runs */
	size_t errcap;
	char bound[2][512];
	struct { char path[sizeof(((struct sockaddr_un *)0)->sun_path)]; dev_t dev; ino_t ino; } ipc[2];
};

static void
logline(struct dh_broker_server *s, int detail, const char *msg)
{
	if (s->log)
		s->log(s->arg, detail, msg);
}

/* One line for the caller of open: what failed and why. */
#if defined(__GNUC__)
__attribute__((format(printf, 2, 3)))
#endif
static void
seterr(struct dh_broker_server *s, const char *fmt, ...)
{
	va_list ap;

	if (s->err == NULL || s->errcap == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(s->err, s->errcap, fmt, ap);
	va_end(ap);
}

static void
emit(void *arg, const char *json, size_t len)
{
	struct dh_broker_server *s = arg;

	logline(s, 1, json);
	if (s->pub)
		zmq_send(s->pub, json, len, ZMQ_DONTWAIT); /* a slow subscriber loses events */
}

static void
broker_log(void *arg, int detail, const char *msg)
{
	logline(arg, detail, msg);
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
ipc_free(struct dh_broker_server *s, const char *ep)
{
	const char *path = ipc_path(ep);
	struct sockaddr_un sa;
	int fd, r;

	if (path == NULL)
		return 1;
	if (strlen(path) >= sizeof sa.sun_path) {
		seterr(s, "%s: socket path too long", ep);
		s->code = -ENAMETOOLONG;
		return 0;
	}
	memset(&sa, 0, sizeof sa);
	sa.sun_family = AF_UNIX;
	memcpy(sa.sun_path, path, strlen(path));
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0)
		return 1;
	r = connect(fd, (struct sockaddr *)&sa, sizeof sa);
	close(fd);
	if (r == 0) {
		seterr(s, "%s: address in use (another broker listens there)", ep);
		s->code = -EADDRINUSE;
	}
	return r != 0;
}

/* A bound socket, or NULL after a message. For ipc://PATH, refuse to take
 * over the socket of a running broker (libzmq would silently replace it). */
static void *
open_sock(struct dh_broker_server *s, int type, const char *ep, const char *secret, int slot)
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
		s->code = -errno;
		seterr(s, "zmq socket: %s", zmq_strerror(-s->code));
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
			 DH_BROKER_PROTOCOL, DH_VERSION);
		zmq_setsockopt(sock, ZMQ_XPUB_WELCOME_MSG, w, strlen(w));
	}
	if (secret && (r = dh_broker_curve_server(sock, secret)) < 0) {
		seterr(s, "%s: cannot enforce CURVE authentication: %s", ep, dh_strerror(r));
		s->code = r;
		goto fail;
	}
	if (!ipc_free(s, ep))
		goto fail;
	if (zmq_bind(sock, ep) < 0) {
		s->code = -errno;
		seterr(s, "bind %s: %s", ep, zmq_strerror(-s->code));
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
watch_handshakes(struct dh_broker_server *s)
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
handshake_event(struct dh_broker_server *s)
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
serve_one(struct dh_broker_server *s, zmq_msg_t *parts, int n, int total)
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

int
dh_broker_server_run(struct dh_broker_server *s, volatile sig_atomic_t *stop, char *err, size_t cap)
{
	while (!*stop) {
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
			int e = errno;
			if (err && cap)
				snprintf(err, cap, "zmq_poll: %s", zmq_strerror(e));
			return -e;
		}
		for (int k = 0; k < BURST && (it[0].revents & ZMQ_POLLIN) && !*stop; k++) {
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
	return 0;
}

void
dh_broker_server_close(struct dh_broker_server *s)
{
	struct stat st;

	if (s == NULL)
		return;
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
	free(s);
}

int
dh_broker_server_open(const struct dh_broker_server_opts *o, struct dh_broker_server **out, char *err,
		      size_t cap)
{
	struct dh_broker_config cfg;
	struct dh_broker_server *s;
	const char *bind = o->bind, *events = o->events;
	char line[1200];
	int r;

	*out = NULL;
	if (err && cap)
		err[0] = '\0';
	if ((s = calloc(1, sizeof *s)) == NULL)
		return -ENOMEM;
	s->log = o->log;
	s->arg = o->arg;
	s->err = err;
	s->errcap = cap;
	s->curve = o->curve_dir != NULL;
	if (bind == NULL || dh_broker_endpoint_check(bind) < 0 || (events && dh_broker_endpoint_check(events) < 0) ||
	    (s->curve && o->secret_z85 == NULL)) {
		free(s);
		if (err && cap)
			snprintf(err, cap, "invalid endpoint");
		return -EINVAL;
	}
	if ((s->ctx = zmq_ctx_new()) == NULL) {
		r = -errno;
		seterr(s, "zmq context: %s", zmq_strerror(-r));
		free(s);
		return r;
	}
	if (s->curve && (r = dh_broker_zap_start(s->ctx, o->curve_dir, o->log, o->arg, &s->zap)) < 0) {
		/* fail closed: never bind without it */
		seterr(s, "%s/clients: allow-list: %s", o->curve_dir, dh_strerror(r));
		goto fail;
	}
	if ((s->router = open_sock(s, ZMQ_ROUTER, bind, o->secret_z85, 0)) == NULL ||
	    (events && (s->pub = open_sock(s, ZMQ_XPUB, events, o->secret_z85, 1)) == NULL)) {
		r = s->code < 0 ? s->code : -EIO;
		goto fail;
	}
	/* bound first: ping must report the port an ephemeral bind chose */
	bind = bound_endpoint(s->router, bind, s->bound[0], sizeof s->bound[0]);
	if (events)
		events = bound_endpoint(s->pub, events, s->bound[1], sizeof s->bound[1]);
	dh_broker_config_init(&cfg);
	if (o->heartbeat_ns > 0)
		cfg.heartbeat_ns = o->heartbeat_ns;
	cfg.events = events;
	cfg.emit = emit;
	cfg.arg = s;
	cfg.log = broker_log;
	if ((r = dh_broker_new(&cfg, &s->b)) < 0) {
		seterr(s, "broker: %s", dh_strerror(r));
		goto fail;
	}
	watch_handshakes(s);
	snprintf(line, sizeof line, "listening on %s%s%s%s", bind, events ? ", events on " : "",
		 events ? events : "", s->curve ? " (CURVE)" : "");
	logline(s, 1, line);
	s->err = NULL;
	*out = s;
	return 0;
fail:
	s->err = NULL;
	dh_broker_server_close(s);
	return r;
}

