/* broker_zmq.c: the broker over ZeroMQ: CURVE key files, the ZAP handler, the client, events, sessions. See LICENSE. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <sodium.h>
#include <zmq.h>

#include "dh_broker.h"
#include "dh_error.h"
#include "dh_impl.h"

#ifndef ZMQ_ZAP_ENFORCE_DOMAIN
#define ZMQ_ZAP_ENFORCE_DOMAIN 93 /* DRAFT in zmq.h, implemented since 4.3.0 */
#endif

#define ZAP_DOMAIN "dh"
#define ZAP_ENDPOINT "inproc://zeromq.zap.01"
#define MS 1000000LL
#define DEFAULT_TIMEOUT (2000 * MS)
#define ALLOW_SCAN_MAX 100000

static int64_t
mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* ---- key files -------------------------------------------------------------- */

static int
z85_ok(const char *s, size_t len, uint8_t out[32])
{
	char buf[DH_BROKER_Z85_LEN + 1];
	uint8_t tmp[32];

	if (len != DH_BROKER_Z85_LEN)
		return 0;
	memcpy(buf, s, len);
	buf[len] = '\0';
	if (zmq_z85_decode(out ? out : tmp, buf) == NULL)
		return 0;
	sodium_memzero(tmp, sizeof tmp);
	return 1;
}

/* Read a key from fd into z85: 40 characters, then only whitespace. */
static int
read_key(int fd, char z85[DH_BROKER_Z85_LEN + 1], uint8_t raw[32])
{
	char buf[128];
	ssize_t n;
	size_t len = 0;
	int r = -EINVAL;

	while (len < sizeof buf && (n = read(fd, buf + len, sizeof buf - len)) != 0) {
		if (n < 0) {
			if (errno == EINTR)
				continue;
			r = -errno;
			goto out;
		}
		len += (size_t)n;
	}
	if (len == sizeof buf)
		goto out;
	while (len > 0 && (buf[len - 1] == '\n' || buf[len - 1] == '\r' || buf[len - 1] == ' ' ||
			   buf[len - 1] == '\t'))
		len--;
	if (!z85_ok(buf, len, raw))
		goto out;
	memcpy(z85, buf, DH_BROKER_Z85_LEN);
	z85[DH_BROKER_Z85_LEN] = '\0';
	r = 0;
out:
	sodium_memzero(buf, sizeof buf);
	return r;
}

int
dh_broker_key_load(const char *path, int secret, char z85[DH_BROKER_Z85_LEN + 1])
{
	struct stat st;
	int fd, r;

	fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | (secret ? O_NOFOLLOW : 0));
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0)
		r = -errno;
	else if (!S_ISREG(st.st_mode))
		r = secret ? -DH_EKEYMODE : -EINVAL;
	else if (secret && (st.st_uid != geteuid() || (st.st_mode & 077)))
		r = -DH_EKEYMODE;
	else
		r = read_key(fd, z85, NULL);
	close(fd);
	return r;
}

int
dh_broker_key_public(const char *secret_z85, char public_z85[DH_BROKER_Z85_LEN + 1])
{
	if (secret_z85 == NULL || !z85_ok(secret_z85, strlen(secret_z85), NULL))
		return -EINVAL;
	if (zmq_curve_public(public_z85, secret_z85) < 0)
		return errno == ENOTSUP ? -ENOTSUP : -EINVAL;
	return 0;
}

static int
write_keyfile(int dirfd, const char *name, const char *z85)
{
	char buf[DH_BROKER_Z85_LEN + 1];
	int fd, r = 0;
	ssize_t n;

	fd = openat(dirfd, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	memcpy(buf, z85, DH_BROKER_Z85_LEN);
	buf[DH_BROKER_Z85_LEN] = '\n';
	if (fchmod(fd, 0600) < 0)
		r = -errno;
	else if ((n = write(fd, buf, sizeof buf)) != (ssize_t)sizeof buf)
		r = n < 0 ? -errno : -EIO;
	else if (fsync(fd) < 0)
		r = -errno;
	sodium_memzero(buf, sizeof buf);
	if (close(fd) < 0 && r == 0)
		r = -errno;
	if (r < 0)
		unlinkat(dirfd, name, 0);
	return r;
}

int
dh_broker_keygen(const char *dir)
{
	char bpub[41], bsec[41], cpub[41], csec[41];
	struct stat st;
	int dfd = -1, cfd = -1, made_dir = 0, made_clients = 0, r;
	const char *done[5];
	int ndone = 0, where[5];

	if (!zmq_has("curve"))
		return -ENOTSUP;
	if (mkdir(dir, 0700) == 0)
		made_dir = 1;
	else if (errno != EEXIST)
		return -errno;
	dfd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (dfd < 0) {
		r = -errno;
		goto fail;
	}
	if (fstat(dfd, &st) < 0) {
		r = -errno;
		goto fail;
	}
	if (st.st_uid != geteuid()) {
		r = -EPERM;
		goto fail;
	}
	if (made_dir && fchmod(dfd, 0700) < 0) {
		r = -errno;
		goto fail;
	}
	if (mkdirat(dfd, "clients", 0700) < 0) {
		r = -errno;
		goto fail;
	}
	made_clients = 1;
	cfd = openat(dfd, "clients", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (cfd < 0 || fchmod(cfd, 0700) < 0) {
		r = -errno;
		goto fail;
	}
	if (zmq_curve_keypair(bpub, bsec) < 0 || zmq_curve_keypair(cpub, csec) < 0) {
		r = -errno;
		goto fail;
	}
#define PUT(fd, name, key)                                   \
	do {                                                 \
		if ((r = write_keyfile(fd, name, key)) < 0)  \
			goto fail;                           \
		where[ndone] = fd;                           \
		done[ndone++] = name;                        \
	} while (0)
	PUT(dfd, "broker.key", bsec);
	PUT(dfd, "broker.pub", bpub);
	PUT(dfd, "client.key", csec);
	PUT(cfd, "client.pub", cpub);
#undef PUT
	r = 0;
	goto out;
fail:
	while (ndone-- > 0)
		unlinkat(where[ndone], done[ndone], 0);
	if (made_clients && dfd >= 0)
		unlinkat(dfd, "clients", AT_REMOVEDIR);
	if (made_dir)
		rmdir(dir);
out:
	sodium_memzero(bsec, sizeof bsec);
	sodium_memzero(csec, sizeof csec);
	if (cfd >= 0)
		close(cfd);
	if (dfd >= 0)
		close(dfd);
	return r;
}

int
dh_broker_allowed(const char *clients_dir, const uint8_t key[32], char *name, size_t cap)
{
	DIR *d;
	struct dirent *e;
	int found = 0, scanned = 0;

	if ((d = opendir(clients_dir)) == NULL)
		return -errno;
	while (!found && scanned++ < ALLOW_SCAN_MAX && (e = readdir(d)) != NULL) {
		size_t len = strlen(e->d_name);
		char z85[DH_BROKER_Z85_LEN + 1];
		uint8_t raw[32];
		struct stat st;
		int fd;

		if (e->d_name[0] == '.' || len < 5 || strcmp(e->d_name + len - 4, ".pub") != 0)
			continue;
		fd = openat(dirfd(d), e->d_name, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOFOLLOW);
		if (fd < 0)
			continue;
		if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && read_key(fd, z85, raw) == 0 &&
		    sodium_memcmp(raw, key, 32) == 0) {
			found = 1;
			if (name && cap > 0)
				snprintf(name, cap, "%.*s", (int)(len - 4), e->d_name);
		}
		close(fd);
	}
	closedir(d);
	return found;
}

/* ---- ZAP handler ------------------------------------------------------------- */

struct dh_broker_zap {
	void *ctx;
	void *sock;                /* REP on ZAP_ENDPOINT, used by the thread */
	void *ctl;                 /* PAIR: the owner's end */
	void *ctl_peer;            /* PAIR: the thread's end */
	char clients[PATH_MAX];
	void (*log)(void *, int, const char *);
	void *arg;
	pthread_t th;
};

#if defined(__GNUC__)
__attribute__((format(printf, 3, 4)))
#endif
static void
zap_log(struct dh_broker_zap *z, int detail, const char *fmt, ...)
{
	char buf[512];
	va_list ap;

	if (z->log == NULL)
		return;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof buf, fmt, ap);
	va_end(ap);
	z->log(z->arg, detail, buf);
}

/* Receive one multipart message: up to max frames into parts (the rest
 * are dropped); returns the number stored, or -errno. */
static int
recv_parts(void *sock, zmq_msg_t *parts, int max, int flags)
{
	int n = 0, more;

	do {
		zmq_msg_t m;
		zmq_msg_init(&m);
		if (zmq_msg_recv(&m, sock, flags) < 0) {
			int e = errno;
			zmq_msg_close(&m);
			while (n > 0)
				zmq_msg_close(&parts[--n]);
			return -e;
		}
		flags &= ~ZMQ_DONTWAIT; /* the rest of a message is there */
		more = zmq_msg_more(&m);
		if (n < max)
			parts[n++] = m;
		else
			zmq_msg_close(&m);
	} while (more);
	return n;
}

static void
close_parts(zmq_msg_t *parts, int n)
{
	for (int i = 0; i < n; i++)
		zmq_msg_close(&parts[i]);
}

static int
frame_is(zmq_msg_t *m, const char *s)
{
	return zmq_msg_size(m) == strlen(s) && memcmp(zmq_msg_data(m), s, strlen(s)) == 0;
}

static void
zap_reply(void *sock, zmq_msg_t *reqid, const char *code, const char *text, const char *user)
{
	zmq_send(sock, "1.0", 3, ZMQ_SNDMORE);
	zmq_send(sock, reqid ? zmq_msg_data(reqid) : "", reqid ? zmq_msg_size(reqid) : 0, ZMQ_SNDMORE);
	zmq_send(sock, code, strlen(code), ZMQ_SNDMORE);
	zmq_send(sock, text, strlen(text), ZMQ_SNDMORE);
	zmq_send(sock, user, strlen(user), ZMQ_SNDMORE);
	zmq_send(sock, "", 0, 0);
}

static void
zap_one(struct dh_broker_zap *z)
{
	zmq_msg_t p[8];
	char name[DH_BROKER_PEER_MAX], key[DH_BROKER_Z85_LEN + 1] = "?", addr[64];
	int n, r;

	n = recv_parts(z->sock, p, 8, 0);
	if (n < 0)
		return;
	/* version, request id, domain, address, routing id, mechanism, credentials... */
	if (n < 6 || !frame_is(&p[0], "1.0")) {
		zap_reply(z->sock, n >= 2 ? &p[1] : NULL, "500", "malformed ZAP request", "");
		close_parts(p, n);
		return;
	}
	snprintf(addr, sizeof addr, "%.*s", (int)(zmq_msg_size(&p[3]) < 63 ? zmq_msg_size(&p[3]) : 63),
		 (const char *)zmq_msg_data(&p[3]));
	for (char *q = addr; *q; q++) /* an address from the network: keep the log line clean */
		if (*q < 0x20 || *q > 0x7e)
			*q = '?';
	if (!frame_is(&p[2], ZAP_DOMAIN) || !frame_is(&p[5], "CURVE") || n < 7 || zmq_msg_size(&p[6]) != 32) {
		zap_reply(z->sock, &p[1], "400", "CURVE in domain " ZAP_DOMAIN " only", "");
		zap_log(z, 0, "refused a client (peer %s): not CURVE", addr[0] ? addr : "local");
		close_parts(p, n);
		return;
	}
	zmq_z85_encode(key, zmq_msg_data(&p[6]), 32);
	r = dh_broker_allowed(z->clients, zmq_msg_data(&p[6]), name, sizeof name);
	if (r == 1) {
		zap_reply(z->sock, &p[1], "200", "OK", name);
		zap_log(z, 1, "admitted client %s (key %s)", name, key);
	} else if (r == 0) {
		zap_reply(z->sock, &p[1], "400", "key not allowed", "");
		zap_log(z, 0, "refused client key %s (peer %s): not in the allow-list", key, addr[0] ? addr : "local");
	} else {
		zap_reply(z->sock, &p[1], "500", "allow-list unreadable", "");
		zap_log(z, 0, "refused client key %s: cannot read %s", key, z->clients);
	}
	close_parts(p, n);
}

static void *
zap_main(void *arg)
{
	struct dh_broker_zap *z = arg;
	zmq_pollitem_t items[2] = { { z->sock, 0, ZMQ_POLLIN, 0 }, { z->ctl_peer, 0, ZMQ_POLLIN, 0 } };

	for (;;) {
		if (zmq_poll(items, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		if (items[1].revents & ZMQ_POLLIN)
			break;
		if (items[0].revents & ZMQ_POLLIN)
			zap_one(z);
	}
	zmq_close(z->sock);
	zmq_close(z->ctl_peer);
	return NULL;
}

/* pthread_create with every signal blocked in the new thread. */
static int
spawn(pthread_t *th, void *(*fn)(void *), void *arg)
{
	sigset_t all, old;
	int r;

	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	r = pthread_create(th, NULL, fn, arg);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	return -r;
}

int
dh_broker_zap_start(void *ctx, const char *dir, void (*log)(void *, int, const char *), void *arg,
		    struct dh_broker_zap **out)
{
	struct dh_broker_zap *z;
	char ep[64];
	DIR *d;
	int r, zero = 0;

	*out = NULL;
	if ((z = calloc(1, sizeof *z)) == NULL)
		return -ENOMEM;
	if ((size_t)snprintf(z->clients, sizeof z->clients, "%s/clients", dir) >= sizeof z->clients) {
		free(z);
		return -ENAMETOOLONG;
	}
	if ((d = opendir(z->clients)) == NULL) {
		r = -errno;
		free(z);
		return r;
	}
	closedir(d);
	z->ctx = ctx;
	z->log = log;
	z->arg = arg;
	snprintf(ep, sizeof ep, "inproc://dh-zap-ctl-%p", (void *)z);
	z->sock = zmq_socket(ctx, ZMQ_REP);
	z->ctl = zmq_socket(ctx, ZMQ_PAIR);
	z->ctl_peer = zmq_socket(ctx, ZMQ_PAIR);
	if (!z->sock || !z->ctl || !z->ctl_peer) {
		r = -errno;
		goto fail;
	}
	zmq_setsockopt(z->sock, ZMQ_LINGER, &zero, sizeof zero);
	zmq_setsockopt(z->ctl, ZMQ_LINGER, &zero, sizeof zero);
	zmq_setsockopt(z->ctl_peer, ZMQ_LINGER, &zero, sizeof zero);
	if (zmq_bind(z->sock, ZAP_ENDPOINT) < 0 || zmq_bind(z->ctl, ep) < 0 || zmq_connect(z->ctl_peer, ep) < 0) {
		r = -errno;
		goto fail;
	}
	if ((r = spawn(&z->th, zap_main, z)) < 0)
		goto fail;
	*out = z;
	return 0;
fail:
	if (z->sock)
		zmq_close(z->sock);
	if (z->ctl)
		zmq_close(z->ctl);
	if (z->ctl_peer)
		zmq_close(z->ctl_peer);
	free(z);
	return r;
}

void
dh_broker_zap_stop(struct dh_broker_zap *z)
{
	if (z == NULL)
		return;
	while (zmq_send(z->ctl, "", 0, 0) < 0 && errno == EINTR)
		;
	pthread_join(z->th, NULL);
	zmq_close(z->ctl);
	free(z);
}

int
dh_broker_curve_server(void *sock, const char *secret_z85)
{
	int one = 1;

	if (!zmq_has("curve"))
		return -ENOTSUP;
	if (secret_z85 == NULL || !z85_ok(secret_z85, strlen(secret_z85), NULL))
		return -EINVAL;
	if (zmq_setsockopt(sock, ZMQ_CURVE_SERVER, &one, sizeof one) < 0 ||
	    zmq_setsockopt(sock, ZMQ_CURVE_SECRETKEY, secret_z85, DH_BROKER_Z85_LEN) < 0 ||
	    zmq_setsockopt(sock, ZMQ_ZAP_DOMAIN, ZAP_DOMAIN, strlen(ZAP_DOMAIN)) < 0)
		return -errno;
	if (zmq_setsockopt(sock, ZMQ_ZAP_ENFORCE_DOMAIN, &one, sizeof one) < 0)
		return -ENOTSUP;
	return 0;
}

/* ---- client -------------------------------------------------------------------- */

const char *
dh_broker_default_endpoint(char *buf, size_t cap)
{
	const char *x = getenv("XDG_RUNTIME_DIR");
	int n;

	if (x && x[0] == '/')
		n = snprintf(buf, cap, "ipc://%s/dh-broker.sock", x);
	else
		n = snprintf(buf, cap, "ipc:///tmp/dh-broker.sock");
	return n > 0 && (size_t)n < cap ? buf : NULL;
}

int
dh_broker_endpoint_check(const char *ep)
{
	const char *port, *p;
	unsigned long v = 0;

	if (ep == NULL)
		return -EINVAL;
	if (strncmp(ep, "ipc://", 6) == 0)
		return ep[6] ? 0 : -EINVAL;
	if (strncmp(ep, "inproc://", 9) == 0)
		return ep[9] ? 0 : -EINVAL;
	if (strncmp(ep, "tcp://", 6) != 0 || (port = strrchr(ep + 6, ':')) == NULL || port == ep + 6)
		return -EINVAL;
	port++;
	if (strcmp(port, "*") == 0)
		return 0;
	for (p = port; *p >= '0' && *p <= '9'; p++)
		if ((v = v * 10 + (unsigned long)(*p - '0')) > 65535)
			return -EINVAL;
	return p > port && *p == '\0' ? 0 : -EINVAL;
}

int
dh_broker_opts_env(struct dh_broker_opts *o, char *buf, size_t cap)
{
	const char *ep = getenv("DH_BROKER"), *dir = getenv("DH_CURVE_DIR");
	int n;

	if (o->endpoint == NULL && ep && ep[0])
		o->endpoint = ep;
	if (o->server_key == NULL && o->client_key == NULL && dir && dir[0]) {
		n = snprintf(buf, cap, "%s/broker.pub%c%s/client.key", dir, '\0', dir);
		if (n < 0 || (size_t)n >= cap)
			return -ENAMETOOLONG;
		o->server_key = buf;
		o->client_key = buf + strlen(buf) + 1;
	}
	return o->endpoint != NULL;
}

struct dh_broker_client {
	void *ctx, *sock, *mon;
	char endpoint[512];
	int64_t timeout_ns;
	unsigned long seq;
	int refused;               /* a handshake failure seen: its errno */
	atomic_int *cancel;        /* a session stopping: give up waiting */
	char err[256];
};

#if defined(__GNUC__)
__attribute__((format(printf, 2, 3)))
#endif
static void
seterr(struct dh_broker_client *c, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(c->err, sizeof c->err, fmt, ap);
	va_end(ap);
}

/* Apply our CURVE keys to sock (a client socket). */
static int
curve_client(void *sock, const struct dh_broker_opts *o)
{
	char spub[41], csec[41], cpub[41];
	int r;

	if (!zmq_has("curve"))
		return -ENOTSUP;
	if ((r = dh_broker_key_load(o->server_key, 0, spub)) < 0)
		return r;
	if ((r = dh_broker_key_load(o->client_key, 1, csec)) < 0)
		return r;
	if ((r = dh_broker_key_public(csec, cpub)) == 0 &&
	    (zmq_setsockopt(sock, ZMQ_CURVE_SERVERKEY, spub, DH_BROKER_Z85_LEN) < 0 ||
	     zmq_setsockopt(sock, ZMQ_CURVE_PUBLICKEY, cpub, DH_BROKER_Z85_LEN) < 0 ||
	     zmq_setsockopt(sock, ZMQ_CURVE_SECRETKEY, csec, DH_BROKER_Z85_LEN) < 0))
		r = -errno;
	sodium_memzero(csec, sizeof csec);
	return r;
}

/* A context and a socket of type with our limits and keys, connected. */
static int
open_socket(const struct dh_broker_opts *o, int type, void **ctxp, void **sockp, char *ep, size_t cap)
{
	int zero = 0, one = 1, ivl = 100, ivlmax = 2000, hs = 10000;
	int64_t maxmsg = DH_BROKER_REPLY_MAX;
	void *ctx, *sock;
	int r;

	*ctxp = *sockp = NULL;
	if (o->endpoint == NULL) {
		if (dh_broker_default_endpoint(ep, cap) == NULL)
			return -ENAMETOOLONG;
	} else if ((size_t)snprintf(ep, cap, "%s", o->endpoint) >= cap) {
		return -ENAMETOOLONG;
	}
	if ((o->server_key == NULL) != (o->client_key == NULL) || dh_broker_endpoint_check(ep) < 0)
		return -EINVAL;
	if ((ctx = zmq_ctx_new()) == NULL)
		return -errno;
	zmq_ctx_set(ctx, ZMQ_BLOCKY, 0);
	if ((sock = zmq_socket(ctx, type)) == NULL) {
		r = -errno;
		zmq_ctx_term(ctx);
		return r;
	}
	zmq_setsockopt(sock, ZMQ_LINGER, &zero, sizeof zero);
	zmq_setsockopt(sock, ZMQ_MAXMSGSIZE, &maxmsg, sizeof maxmsg);
	zmq_setsockopt(sock, ZMQ_RECONNECT_IVL, &ivl, sizeof ivl);
	zmq_setsockopt(sock, ZMQ_RECONNECT_IVL_MAX, &ivlmax, sizeof ivlmax);
	zmq_setsockopt(sock, ZMQ_HANDSHAKE_IVL, &hs, sizeof hs);
	if (type == ZMQ_DEALER)
		zmq_setsockopt(sock, ZMQ_IMMEDIATE, &one, sizeof one);
	if (type == ZMQ_SUB)
		zmq_setsockopt(sock, ZMQ_SUBSCRIBE, "", 0);
	r = o->server_key ? curve_client(sock, o) : 0;
	if (r == 0 && zmq_connect(sock, ep) < 0)
		r = errno == EPROTONOSUPPORT || errno == ENOCOMPATPROTO ? -EINVAL : -errno;
	if (r < 0) {
		zmq_close(sock);
		zmq_ctx_term(ctx);
		return r;
	}
	*ctxp = ctx;
	*sockp = sock;
	return 0;
}

int
dh_broker_connect(const struct dh_broker_opts *o, struct dh_broker_client **out)
{
	struct dh_broker_client *c;
	char mep[64];
	int r;

	*out = NULL;
	if ((c = calloc(1, sizeof *c)) == NULL)
		return -ENOMEM;
	if (sodium_init() < 0) {
		free(c);
		return -ENOSYS;
	}
	c->timeout_ns = o->timeout_ns > 0 ? o->timeout_ns : DEFAULT_TIMEOUT;
	if ((r = open_socket(o, ZMQ_DEALER, &c->ctx, &c->sock, c->endpoint, sizeof c->endpoint)) < 0) {
		free(c);
		return r;
	}
	/* handshake failures (a CURVE broker refusing us) come from a monitor */
	snprintf(mep, sizeof mep, "inproc://dh-broker-mon-%p", (void *)c);
	if (zmq_socket_monitor(c->sock, mep,
			       ZMQ_EVENT_HANDSHAKE_FAILED_AUTH | ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL |
				       ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL | ZMQ_EVENT_HANDSHAKE_SUCCEEDED) == 0 &&
	    (c->mon = zmq_socket(c->ctx, ZMQ_PAIR)) != NULL) {
		int zero = 0;
		zmq_setsockopt(c->mon, ZMQ_LINGER, &zero, sizeof zero);
		if (zmq_connect(c->mon, mep) < 0) {
			zmq_close(c->mon);
			c->mon = NULL;
		}
	}
	*out = c;
	return 0;
}

void
dh_broker_disconnect(struct dh_broker_client *c)
{
	if (c == NULL)
		return;
	if (c->mon) {
		zmq_socket_monitor(c->sock, NULL, 0);
		zmq_close(c->mon);
	}
	zmq_close(c->sock);
	zmq_ctx_term(c->ctx);
	free(c);
}

const char *
dh_broker_errmsg(const struct dh_broker_client *c)
{
	return c->err;
}

/* Drain the monitor: remember handshake failures, clear them on success. */
static void
monitor_drain(struct dh_broker_client *c)
{
	zmq_msg_t p[2];
	int n;

	while (c->mon && (n = recv_parts(c->mon, p, 2, ZMQ_DONTWAIT)) > 0) {
		if (zmq_msg_size(&p[0]) >= 6) {
			uint16_t ev;
			uint32_t val;
			memcpy(&ev, zmq_msg_data(&p[0]), 2);
			memcpy(&val, (char *)zmq_msg_data(&p[0]) + 2, 4);
			if (ev == ZMQ_EVENT_HANDSHAKE_SUCCEEDED)
				c->refused = 0;
			else if (ev == ZMQ_EVENT_HANDSHAKE_FAILED_AUTH)
				c->refused = EACCES;
			else if (ev == ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL && c->refused != EACCES)
				c->refused = EPROTO;
			else if (c->refused == 0)
				c->refused = ECONNRESET;
		}
		close_parts(p, n);
	}
}

static int
timed_out(struct dh_broker_client *c, const char *what)
{
	if (c->refused == EACCES) {
		seterr(c, "broker refused our key (not in its allow-list)");
		return -EACCES;
	}
	if (c->refused == EPROTO) {
		seterr(c, "handshake with the broker failed (CURVE on one side only?)");
		return -EACCES;
	}
	if (c->refused)
		seterr(c, "no reply: the handshake with the broker failed (wrong broker key?) while %s", what);
	else
		seterr(c, "no reply from the broker while %s", what);
	return -ETIMEDOUT;
}

/* Wait for sock to be ready for events (POLLIN/POLLOUT) until deadline,
 * watching the monitor. 0, -ETIMEDOUT (c->err set), -EINTR. */
static int
wait_ready(struct dh_broker_client *c, short events, int64_t deadline, const char *what)
{
	for (;;) {
		zmq_pollitem_t it[2] = { { c->sock, 0, events, 0 }, { c->mon, 0, ZMQ_POLLIN, 0 } };
		int64_t left = deadline - mono_ns();
		long ms;
		int n;

		monitor_drain(c);
		if (c->cancel && atomic_load(c->cancel)) {
			seterr(c, "cancelled");
			return -ECANCELED;
		}
		if (left <= 0)
			return timed_out(c, what);
		if (c->refused == EACCES)
			return timed_out(c, what);
		ms = (long)((left + MS - 1) / MS);
		if (c->cancel && ms > 50)
			ms = 50;
		n = zmq_poll(it, c->mon ? 2 : 1, ms);
		if (n < 0) {
			if (errno == EINTR) {
				seterr(c, "interrupted");
				return -EINTR;
			}
			seterr(c, "%s", zmq_strerror(errno));
			return -errno;
		}
		if (it[0].revents & events)
			return 0;
	}
}

static int
error_code(const char *code)
{
	if (strcmp(code, "not_found") == 0 || strcmp(code, "not_registered") == 0)
		return -ENOENT;
	if (strcmp(code, "conflict") == 0)
		return -EBUSY;
	if (strcmp(code, "schema_mismatch") == 0)
		return -DH_ESCHEMA;
	if (strcmp(code, "too_many") == 0)
		return -ENOSPC;
	return -EPROTO;
}

/* Send req (an object: "id" is set here) and wait for its reply. With
 * raw, the reply is returned as is; otherwise an error reply becomes a
 * negative code (message in c->err) and *out is the ok reply. */
static int
transact(struct dh_broker_client *c, json_t *req, json_t **out, char **raw)
{
	char id[32], *body;
	int64_t deadline = mono_ns() + c->timeout_ns;
	const char *what = json_string_value(json_object_get(req, "type"));
	int r;

	if (out)
		*out = NULL;
	c->err[0] = '\0';
	if (!what)
		what = "?";
	snprintf(id, sizeof id, "c%lu", ++c->seq);
	if (json_object_set_new(req, "id", json_string(id)) < 0 ||
	    (body = json_dumps(req, JSON_COMPACT)) == NULL) {
		seterr(c, "out of memory");
		return -ENOMEM;
	}
	if (strlen(body) > DH_BROKER_MSG_MAX) {
		free(body);
		seterr(c, "request too large");
		return -EMSGSIZE;
	}
	for (;;) {
		if ((r = wait_ready(c, ZMQ_POLLOUT, deadline, what)) < 0) {
			free(body);
			return r;
		}
		if (zmq_send(c->sock, body, strlen(body), ZMQ_DONTWAIT) >= 0)
			break;
		if (errno != EAGAIN && errno != EINTR) {
			r = -errno;
			free(body);
			seterr(c, "send: %s", zmq_strerror(-r));
			return r;
		}
	}
	free(body);
	for (;;) {
		zmq_msg_t p[2];
		json_t *rep;
		int n;

		if ((r = wait_ready(c, ZMQ_POLLIN, deadline, what)) < 0)
			return r;
		n = recv_parts(c->sock, p, 2, ZMQ_DONTWAIT);
		if (n == -EAGAIN || n == -EINTR)
			continue;
		if (n < 0) {
			seterr(c, "receive: %s", zmq_strerror(-n));
			return n;
		}
		rep = n == 1 ? json_loadb(zmq_msg_data(&p[0]), zmq_msg_size(&p[0]), 0, NULL) : NULL;
		close_parts(p, n);
		if (rep == NULL || !json_is_object(rep)) {
			json_decref(rep);
			continue; /* not a reply of ours: ignore */
		}
		const char *rid = json_string_value(json_object_get(rep, "id"));
		if (rid == NULL || strcmp(rid, id) != 0) {
			json_decref(rep); /* a late reply to an earlier request */
			continue;
		}
		if (raw) {
			*raw = json_dumps(rep, JSON_COMPACT);
			json_decref(rep);
			return *raw ? 0 : -ENOMEM;
		}
		const char *status = json_string_value(json_object_get(rep, "status"));
		if (status && strcmp(status, "ok") == 0) {
			if (out)
				*out = rep;
			else
				json_decref(rep);
			return 0;
		}
		const char *code = json_string_value(json_object_get(rep, "error"));
		const char *msg = json_string_value(json_object_get(rep, "message"));
		snprintf(c->err, sizeof c->err, "%s: %s", code ? code : "error", msg ? msg : "");
		r = error_code(code ? code : "");
		json_decref(rep);
		return r;
	}
}

int
dh_broker_request(struct dh_broker_client *c, const char *json, char **reply)
{
	json_t *req = json_loads(json, JSON_REJECT_DUPLICATES, NULL);
	int r;

	*reply = NULL;
	if (req == NULL || !json_is_object(req)) {
		json_decref(req);
		seterr(c, "not a JSON object");
		return -EINVAL;
	}
	r = transact(c, req, NULL, reply);
	json_decref(req);
	return r;
}

static int64_t
jint(json_t *o, const char *k)
{
	json_t *v = json_object_get(o, k);
	return json_is_integer(v) ? (int64_t)json_integer_value(v) : 0;
}

static void
jstr(json_t *o, const char *k, char *buf, size_t cap)
{
	const char *s = json_string_value(json_object_get(o, k));
	snprintf(buf, cap, "%s", s ? s : "");
}

int
dh_broker_ping(struct dh_broker_client *c, struct dh_broker_pong *out)
{
	json_t *req = json_pack("{s:s}", "type", "ping"), *rep;
	int r = req ? transact(c, req, &rep, NULL) : -ENOMEM;

	json_decref(req);
	if (r < 0)
		return r;
	memset(out, 0, sizeof *out);
	out->protocol = (int)jint(rep, "protocol");
	jstr(rep, "version", out->version, sizeof out->version);
	out->heartbeat_ns = jint(rep, "heartbeat_ms") * MS;
	out->stale_ns = jint(rep, "stale_ms") * MS;
	out->expire_ns = jint(rep, "expire_ms") * MS;
	jstr(rep, "events", out->events, sizeof out->events);
	json_decref(rep);
	return 0;
}

static void
hex32(const uint8_t h[32], char out[65])
{
	static const char d[] = "0123456789abcdef";

	for (int i = 0; i < 32; i++) {
		out[2 * i] = d[h[i] >> 4];
		out[2 * i + 1] = d[h[i] & 15];
	}
	out[64] = '\0';
}

static int
unhex32(const char *s, uint8_t out[32])
{
	if (s == NULL || strlen(s) != 64)
		return -1;
	for (int i = 0; i < 64; i++) {
		char ch = s[i];
		int v = ch >= '0' && ch <= '9' ? ch - '0' : ch >= 'a' && ch <= 'f' ? ch - 'a' + 10 : -1;
		if (v < 0)
			return -1;
		out[i / 2] = (uint8_t)(i % 2 ? (out[i / 2] | v) : v << 4);
	}
	return 0;
}

const char *
dh_broker_local_host(char *buf, size_t cap)
{
	char h[DH_BROKER_HOST_MAX + 2] = "";
	size_t n;

	if (gethostname(h, sizeof h - 1) < 0)
		h[0] = '\0';
	h[DH_BROKER_HOST_MAX] = '\0';
	for (n = 0; h[n]; n++) /* what the protocol accepts, else a fallback */
		if (!((h[n] >= 'a' && h[n] <= 'z') || (h[n] >= 'A' && h[n] <= 'Z') || (h[n] >= '0' && h[n] <= '9') ||
		      h[n] == '.' || h[n] == '_' || h[n] == '-' || h[n] == ':'))
			break;
	if (n == 0 || h[n])
		snprintf(h, sizeof h, "localhost");
	if (cap == 0 || (size_t)snprintf(buf, cap, "%s", h) >= cap)
		return NULL;
	return buf;
}

/* host and pid of reg, defaulted. */
static void
who(const struct dh_broker_reg *reg, char host[DH_BROKER_HOST_MAX + 1], json_int_t *pid)
{
	if (reg->host)
		snprintf(host, DH_BROKER_HOST_MAX + 1, "%s", reg->host);
	else
		dh_broker_local_host(host, DH_BROKER_HOST_MAX + 1);
	*pid = reg->pid > 0 ? reg->pid : getpid();
}

static int
do_register(struct dh_broker_client *c, const struct dh_broker_reg *reg, int reader,
	    char token[DH_BROKER_TOKEN_LEN + 1], int64_t *hb)
{
	char host[DH_BROKER_HOST_MAX + 1], h[65];
	json_int_t pid;
	json_t *req, *rep;
	int r;

	if (reg->channel == NULL)
		return -EINVAL;
	who(reg, host, &pid);
	if (reader)
		req = json_pack("{s:s,s:s,s:s,s:I}", "type", "reader", "channel", reg->channel, "host", host,
				"pid", pid);
	else
		req = json_pack("{s:s,s:s,s:s,s:I,s:s,s:I,s:I,s:I,s:s}", "type", "register", "channel",
				reg->channel, "host", host, "pid", pid, "policy", dh_policy_name(reg->policy),
				"slots", (json_int_t)reg->slots, "slot_size", (json_int_t)reg->slot_size,
				"max_readers", (json_int_t)reg->max_readers, "checksum",
				dh_checksum_name(reg->checksum));
	if (req == NULL)
		return -ENOMEM;
	if (reg->label && reg->label[0])
		json_object_set_new(req, "label", json_string(reg->label));
	if (reg->has_schema) {
		hex32(reg->schema_hash, h);
		json_object_set_new(req, "schema_hash", json_string(h));
		if (!reader && reg->schema)
			json_object_set_new(req, "schema", json_string(reg->schema));
	}
	if (!reader && reg->keyed) {
		hex32(reg->key_id, h);
		json_object_set_new(req, "key_id", json_string(h));
	}
	r = transact(c, req, &rep, NULL);
	json_decref(req);
	if (r < 0)
		return r;
	const char *t = json_string_value(json_object_get(rep, "token"));
	if (t == NULL || strlen(t) != DH_BROKER_TOKEN_LEN) {
		json_decref(rep);
		seterr(c, "malformed reply: no token");
		return -EPROTO;
	}
	memcpy(token, t, DH_BROKER_TOKEN_LEN + 1);
	if (hb)
		*hb = jint(rep, "heartbeat_ms") * MS;
	json_decref(rep);
	return 0;
}

int
dh_broker_register(struct dh_broker_client *c, const struct dh_broker_reg *reg,
		   char token[DH_BROKER_TOKEN_LEN + 1], int64_t *heartbeat_ns)
{
	return do_register(c, reg, 0, token, heartbeat_ns);
}

int
dh_broker_register_reader(struct dh_broker_client *c, const struct dh_broker_reg *reg,
			  char token[DH_BROKER_TOKEN_LEN + 1], int64_t *heartbeat_ns)
{
	return do_register(c, reg, 1, token, heartbeat_ns);
}

int
dh_broker_reg_from_block(struct dh_block *blk, const char *channel, struct dh_broker_reg *reg,
			 char *schema_buf, size_t cap)
{
	struct dh_snapshot *s;
	int r;

	memset(reg, 0, sizeof *reg);
	if ((s = malloc(sizeof *s)) == NULL)
		return -ENOMEM;
	r = dh_block_snapshot(blk, s);
	if (r == 0) {
		reg->channel = channel;
		reg->policy = s->cfg.policy;
		reg->slots = s->cfg.slots;
		reg->slot_size = s->cfg.slot_size;
		reg->max_readers = s->cfg.max_readers;
		reg->checksum = s->cfg.checksum;
		if (s->keyed) { /* the key id is immutable once the header is published */
			uint8_t zero[32] = { 0 };
			memcpy(reg->key_id, blk->hdr->key_id, 32);
			reg->keyed = memcmp(reg->key_id, zero, 32) != 0;
		}
		if (s->record_size > 0) {
			reg->has_schema = 1;
			memcpy(reg->schema_hash, s->schema_hash, 32);
			if (schema_buf && cap > 0) {
				uint8_t h[32];
				if (dh_block_schema(blk, schema_buf, cap, h) > 0)
					reg->schema = schema_buf;
			}
		}
	}
	free(s);
	return r;
}

size_t
dh_broker_metrics_from_snapshot(const struct dh_snapshot *s, struct dh_broker_metric *m, size_t cap)
{
	int64_t readers = 0, lost = 0, rfail = 0;
	size_t n = 0;

	for (int i = 1; i < s->nparticipants; i++) {
		const struct dh_participant *p = &s->part[i];
		readers += p->state == DH_P_ALIVE;
		lost += (int64_t)p->lost;
		rfail += (int64_t)p->checksum_failures;
	}
#define PUT(k, v)                                        \
	do {                                             \
		if (n < cap) {                           \
			m[n].name = k;                   \
			m[n].value = (int64_t)(v);       \
			n++;                             \
		}                                        \
	} while (0)
	PUT("committed", s->committed);
	PUT("messages", s->messages_written);
	PUT("bytes", s->bytes_written);
	PUT("eos", s->eos);
	PUT("readers", readers);
	PUT("lost", lost);
	PUT("writer_waits", s->writer_waits);
	PUT("writer_wait_ms", s->writer_wait_ns / 1000000);
	PUT("checksum_failures", s->checksum_failures > (uint64_t)rfail ? s->checksum_failures : (uint64_t)rfail);
	PUT("readers_reaped", s->readers_reaped);
	PUT("evictions", s->evictions);
	PUT("queue_lost", s->queue_lost);
	PUT("schema_mismatches", s->schema_mismatches);
	PUT("key_mismatches", s->key_mismatches);
#undef PUT
	return n;
}

int
dh_broker_heartbeat(struct dh_broker_client *c, const char *token, const struct dh_broker_metric *m,
		    size_t n)
{
	json_t *req = json_pack("{s:s,s:s}", "type", "heartbeat", "token", token ? token : ""), *mo;
	int r;

	if (req == NULL)
		return -ENOMEM;
	if (n > 0) {
		mo = json_object();
		for (size_t i = 0; i < n && i < DH_BROKER_METRICS_MAX; i++)
			json_object_set_new(mo, m[i].name, json_integer(m[i].value));
		json_object_set_new(req, "metrics", mo);
	}
	r = transact(c, req, NULL, NULL);
	json_decref(req);
	return r;
}

int
dh_broker_deregister(struct dh_broker_client *c, const char *token)
{
	json_t *req = json_pack("{s:s,s:s}", "type", "deregister", "token", token ? token : "");
	int r = req ? transact(c, req, NULL, NULL) : -ENOMEM;

	json_decref(req);
	return r;
}

static int
info_from_json(json_t *o, struct dh_broker_info *in)
{
	char buf[32];

	memset(in, 0, sizeof *in);
	if (!json_is_object(o))
		return -EPROTO;
	jstr(o, "channel", in->channel, sizeof in->channel);
	jstr(o, "host", in->host, sizeof in->host);
	jstr(o, "label", in->label, sizeof in->label);
	jstr(o, "state", buf, sizeof buf);
	in->stale = strcmp(buf, "live") != 0;
	in->pid = (pid_t)jint(o, "pid");
	jstr(o, "policy", buf, sizeof buf);
	if (dh_policy_parse(buf, &in->policy) < 0)
		return -EPROTO;
	jstr(o, "checksum", buf, sizeof buf);
	if (strcmp(buf, dh_checksum_name(DH_CHECKSUM_MAC)) == 0)
		in->checksum = DH_CHECKSUM_MAC;
	else if (dh_checksum_parse(buf, &in->checksum) < 0)
		return -EPROTO;
	in->slots = (uint32_t)jint(o, "slots");
	in->slot_size = (uint32_t)jint(o, "slot_size");
	in->max_readers = (uint32_t)jint(o, "max_readers");
	in->has_schema = unhex32(json_string_value(json_object_get(o, "schema_hash")), in->schema_hash) == 0;
	in->keyed = unhex32(json_string_value(json_object_get(o, "key_id")), in->key_id) == 0;
	in->age_ms = jint(o, "age_ms");
	in->since_ms = jint(o, "since_ms");
	in->readers = (unsigned)json_array_size(json_object_get(o, "readers"));
	return in->channel[0] && in->host[0] ? 0 : -EPROTO;
}

int
dh_broker_discover(struct dh_broker_client *c, const char *channel, const char *host,
		   struct dh_broker_info *out)
{
	json_t *req = json_pack("{s:s,s:s}", "type", "discover", "channel", channel ? channel : ""), *rep;
	int r;

	if (req == NULL)
		return -ENOMEM;
	if (host)
		json_object_set_new(req, "host", json_string(host));
	r = transact(c, req, &rep, NULL);
	json_decref(req);
	if (r < 0)
		return r;
	r = info_from_json(json_array_get(json_object_get(rep, "channels"), 0), out);
	if (r < 0)
		seterr(c, "malformed discover reply");
	json_decref(rep);
	return r;
}

int
dh_broker_wait_channel(struct dh_broker_client *c, const char *channel, const char *host,
		       int64_t timeout_ns, struct dh_broker_info *out)
{
	int64_t deadline = timeout_ns < 0 ? INT64_MAX : mono_ns() + timeout_ns;
	int64_t saved = c->timeout_ns;
	int r;

	for (;;) {
		int64_t left = deadline - mono_ns();
		if (left <= 0) {
			r = -ETIMEDOUT;
			break;
		}
		c->timeout_ns = left < saved ? left : saved;
		r = dh_broker_discover(c, channel, host, out);
		c->timeout_ns = saved;
		if (r == 0 && !out->stale)
			break;
		if (r < 0 && r != -ENOENT && r != -ETIMEDOUT)
			break;
		left = deadline - mono_ns();
		if (left <= 0) {
			r = -ETIMEDOUT;
			break;
		}
		struct timespec ts = { 0, (long)(left < 100 * MS ? left : 100 * MS) };
		if (nanosleep(&ts, NULL) < 0 && errno == EINTR) {
			r = -EINTR;
			break;
		}
	}
	c->timeout_ns = saved;
	if (r == -ETIMEDOUT)
		seterr(c, "channel %s not registered in time", channel);
	return r;
}

int
dh_broker_list(struct dh_broker_client *c, const char *channel, struct dh_broker_info **out, size_t *n,
	       char **json)
{
	json_t *all = json_array(), *rep = NULL, *arr, *next;
	json_int_t after = -1;
	struct dh_broker_info *v = NULL;
	size_t k;
	int r = 0;

	*out = NULL;
	*n = 0;
	if (json)
		*json = NULL;
	if (all == NULL)
		return -ENOMEM;
	do { /* a page at a time: "next" is the cursor of the following one */
		json_t *req = json_pack("{s:s}", "type", "list");
		if (req == NULL || (channel && json_object_set_new(req, "channel", json_string(channel)) < 0) ||
		    (after >= 0 && json_object_set_new(req, "after", json_integer(after)) < 0)) {
			json_decref(req);
			r = -ENOMEM;
			goto out;
		}
		r = transact(c, req, &rep, NULL);
		json_decref(req);
		if (r < 0)
			goto out;
		arr = json_object_get(rep, "channels");
		next = json_object_get(rep, "next");
		if (!json_is_array(arr) || (next && !json_is_null(next) &&
					    (!json_is_integer(next) || json_integer_value(next) <= after ||
					     json_array_size(arr) == 0))) {
			seterr(c, "malformed list reply");
			r = -EPROTO;
			goto out;
		}
		if (json_array_extend(all, arr) < 0) {
			r = -ENOMEM;
			goto out;
		}
		after = json_is_integer(next) ? json_integer_value(next) : -1;
		json_decref(rep);
		rep = NULL;
	} while (after >= 0);
	k = json_array_size(all);
	if ((v = calloc(k ? k : 1, sizeof *v)) == NULL) {
		r = -ENOMEM;
		goto out;
	}
	for (size_t i = 0; i < k; i++)
		if (info_from_json(json_array_get(all, i), &v[i]) < 0) {
			seterr(c, "malformed list reply");
			r = -EPROTO;
			goto out;
		}
	if (json && (*json = json_dumps(all, JSON_COMPACT)) == NULL) {
		r = -ENOMEM;
		goto out;
	}
	*out = v;
	*n = k;
	v = NULL;
out:
	free(v);
	json_decref(rep);
	json_decref(all);
	return r;
}

int
dh_broker_report_checksum(struct dh_broker_client *c, const char *channel, const char *host, pid_t pid,
			  uint64_t seq, const char *detail)
{
	struct dh_broker_reg reg = { .channel = channel, .host = host, .pid = pid };
	char h[DH_BROKER_HOST_MAX + 1];
	json_int_t p;
	json_t *req;
	int r;

	if (channel == NULL || seq > INT64_MAX)
		return -EINVAL;
	who(&reg, h, &p);
	req = json_pack("{s:s,s:s,s:s,s:I,s:I}", "type", "checksum_failure", "channel", channel, "host", h,
			"pid", p, "message_seq", (json_int_t)seq);
	if (req == NULL)
		return -ENOMEM;
	if (detail)
		json_object_set_new(req, "detail", json_string(detail));
	r = transact(c, req, NULL, NULL);
	json_decref(req);
	return r;
}

/* ---- events ---------------------------------------------------------------- */

struct dh_broker_events {
	void *ctx, *sock;
	char endpoint[512];
};

int
dh_broker_events_open(const struct dh_broker_opts *o, struct dh_broker_events **out)
{
	struct dh_broker_events *e;
	int r;

	*out = NULL;
	if (o->endpoint == NULL)
		return -EINVAL;
	if ((e = calloc(1, sizeof *e)) == NULL)
		return -ENOMEM;
	if ((r = open_socket(o, ZMQ_SUB, &e->ctx, &e->sock, e->endpoint, sizeof e->endpoint)) < 0) {
		free(e);
		return r;
	}
	*out = e;
	return 0;
}

ssize_t
dh_broker_events_next(struct dh_broker_events *e, char **json, int64_t timeout_ns)
{
	int64_t deadline = timeout_ns < 0 ? INT64_MAX : mono_ns() + timeout_ns;

	*json = NULL;
	for (;;) {
		zmq_pollitem_t it = { e->sock, 0, ZMQ_POLLIN, 0 };
		int64_t left = deadline - mono_ns();
		zmq_msg_t p[1];
		long ms;
		int n;

		if (timeout_ns >= 0 && left <= 0)
			return -ETIMEDOUT;
		ms = timeout_ns < 0 ? -1 : (long)((left + MS - 1) / MS);
		if (zmq_poll(&it, 1, ms) < 0) {
			if (errno == EINTR)
				return -EINTR;
			return -errno;
		}
		if (!(it.revents & ZMQ_POLLIN))
			continue;
		n = recv_parts(e->sock, p, 1, ZMQ_DONTWAIT);
		if (n == -EAGAIN || n == -EINTR)
			continue;
		if (n < 0)
			return n;
		size_t len = zmq_msg_size(&p[0]);
		char *s = malloc(len + 1);
		if (s == NULL) {
			close_parts(p, n);
			return -ENOMEM;
		}
		memcpy(s, zmq_msg_data(&p[0]), len);
		s[len] = '\0';
		close_parts(p, n);
		if (memchr(s, '\0', len)) { /* not text: skip it */
			free(s);
			continue;
		}
		*json = s;
		return (ssize_t)len;
	}
}

void
dh_broker_events_close(struct dh_broker_events *e)
{
	if (e == NULL)
		return;
	zmq_close(e->sock);
	zmq_ctx_term(e->ctx);
	free(e);
}

int
dh_broker_events_endpoint(struct dh_broker_client *c, char *buf, size_t cap)
{
	struct dh_broker_pong p;
	const char *ev, *colon, *host = NULL;
	size_t hostlen = 0;
	int r;

	if ((r = dh_broker_ping(c, &p)) < 0)
		return r;
	if (p.events[0] == '\0')
		return -ENOENT;
	ev = p.events;
	if (strncmp(ev, "tcp://", 6) == 0 && (colon = strrchr(ev + 6, ':')) != NULL) {
		size_t wl = (size_t)(colon - (ev + 6));
		int wild = (wl == 1 && ev[6] == '*') || (wl == 7 && strncmp(ev + 6, "0.0.0.0", 7) == 0) ||
			   (wl == 4 && strncmp(ev + 6, "[::]", 4) == 0);
		const char *ch;
		if (wild && strncmp(c->endpoint, "tcp://", 6) == 0 &&
		    (ch = strrchr(c->endpoint + 6, ':')) != NULL) {
			host = c->endpoint + 6;
			hostlen = (size_t)(ch - host);
			if ((size_t)snprintf(buf, cap, "tcp://%.*s%s", (int)hostlen, host, colon) >= cap)
				return -ENAMETOOLONG;
			return 0;
		}
	}
	if ((size_t)snprintf(buf, cap, "%s", ev) >= cap)
		return -ENAMETOOLONG;
	return 0;
}

/* ---- session ------------------------------------------------------------------ */

struct dh_broker_session {
	pthread_t th;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int stop;
	atomic_int cancel;         /* stop, readable without the lock */
	int state;
	struct dh_broker_session_opts o;
	struct dh_broker_client *c;
	char *strs[8];
	int nstrs;
	struct dh_snapshot *snap;
	struct dh_block *blk;
	char token[DH_BROKER_TOKEN_LEN + 1];
	struct {
		uint64_t seq;
		char detail[DH_BROKER_DETAIL_MAX + 1];
	} reports[16];             /* checksum failures to send, under mu */
	unsigned nreports;
};

static int
keep(struct dh_broker_session *s, const char **p)
{
	char *d;

	if (*p == NULL)
		return 0;
	if ((d = strdup(*p)) == NULL)
		return -ENOMEM;
	s->strs[s->nstrs++] = d;
	*p = d;
	return 0;
}

static void
set_state(struct dh_broker_session *s, int state, const char *msg)
{
	int changed;

	pthread_mutex_lock(&s->mu);
	changed = s->state != state;
	s->state = state;
	pthread_mutex_unlock(&s->mu);
	if (changed && s->o.notify)
		s->o.notify(s->o.arg, state, msg);
}

/* Send the queued checksum reports; called and returns with mu held. */
static void
send_reports(struct dh_broker_session *s)
{
	while (s->nreports > 0 && !s->stop) {
		uint64_t seq = s->reports[0].seq;
		char detail[DH_BROKER_DETAIL_MAX + 1];

		memcpy(detail, s->reports[0].detail, sizeof detail);
		memmove(&s->reports[0], &s->reports[1], --s->nreports * sizeof s->reports[0]);
		pthread_mutex_unlock(&s->mu);
		dh_broker_report_checksum(s->c, s->o.reg.channel, s->o.reg.host, s->o.reg.pid, seq,
					  detail[0] ? detail : NULL); /* best effort */
		pthread_mutex_lock(&s->mu);
	}
}

/* Wait up to ns unless stopped, sending checksum reports as they come;
 * 1 if stopped. */
static int
pause_for(struct dh_broker_session *s, int64_t ns)
{
	struct timespec ts;
	int stop;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	ts.tv_sec += (time_t)(ns / 1000000000);
	ts.tv_nsec += (long)(ns % 1000000000);
	if (ts.tv_nsec >= 1000000000) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000;
	}
	pthread_mutex_lock(&s->mu);
	for (;;) {
		send_reports(s);
		if (s->stop || pthread_cond_timedwait(&s->cv, &s->mu, &ts) == ETIMEDOUT)
			break;
	}
	send_reports(s);
	stop = s->stop;
	pthread_mutex_unlock(&s->mu);
	return stop;
}

int
dh_broker_session_report_checksum(struct dh_broker_session *s, uint64_t seq, const char *detail)
{
	int r = 0;

	if (seq > INT64_MAX)
		return -EINVAL;
	pthread_mutex_lock(&s->mu);
	if (s->nreports == sizeof s->reports / sizeof s->reports[0]) {
		r = -ENOBUFS;
	} else {
		s->reports[s->nreports].seq = seq;
		snprintf(s->reports[s->nreports].detail, sizeof s->reports[0].detail, "%s", detail ? detail : "");
		s->nreports++;
		pthread_cond_signal(&s->cv);
	}
	pthread_mutex_unlock(&s->mu);
	return r;
}

static size_t
session_metrics(struct dh_broker_session *s, struct dh_broker_metric *m, size_t cap)
{
	if (s->o.metrics_channel == NULL)
		return 0;
	if (s->blk == NULL && dh_block_open(s->o.metrics_channel, DH_OPEN_RDONLY, &s->blk) < 0)
		return 0;
	if (s->snap == NULL && (s->snap = malloc(sizeof *s->snap)) == NULL)
		return 0;
	if (dh_block_snapshot(s->blk, s->snap) < 0) {
		dh_block_close(s->blk); /* the channel may have been replaced: reopen next time */
		s->blk = NULL;
		return 0;
	}
	return dh_broker_metrics_from_snapshot(s->snap, m, cap);
}

static void *
session_main(void *arg)
{
	struct dh_broker_session *s = arg;
	int64_t hb = 1000 * MS, backoff = 100 * MS;
	struct dh_broker_metric m[DH_BROKER_METRICS_MAX];
	int r;

	for (;;) {
		int64_t wait = hb;

		if (s->token[0] == '\0') {
			if (s->o.role == DH_BROKER_WRITER)
				r = dh_broker_register(s->c, &s->o.reg, s->token, &hb);
			else
				r = dh_broker_register_reader(s->c, &s->o.reg, s->token, &hb);
			if (hb <= 0)
				hb = 1000 * MS;
			if (r == -ECANCELED)
				break;
			if (r == 0) {
				backoff = 100 * MS;
				wait = 0; /* send the first metrics at once */
				set_state(s, 0, "registered");
			} else {
				s->token[0] = '\0';
				set_state(s, r, dh_broker_errmsg(s->c));
				wait = backoff < hb ? backoff : hb;
				backoff *= 2;
			}
		} else {
			size_t n = session_metrics(s, m, DH_BROKER_METRICS_MAX);
			r = dh_broker_heartbeat(s->c, s->token, m, n);
			if (r == -ECANCELED)
				break;
			if (r == -ENOENT) { /* the broker forgot us: register again now */
				s->token[0] = '\0';
				wait = 0;
			} else if (r < 0) {
				set_state(s, r, dh_broker_errmsg(s->c));
			} else {
				set_state(s, 0, "registered");
			}
		}
		if (wait > 0 ? pause_for(s, wait) : pause_for(s, 0))
			break;
	}
	/* Deregister only while the broker answers, and briefly: a broker that
	 * is gone must not delay our exit. It expires us anyway. */
	s->c->cancel = NULL;
	if (s->token[0] && dh_broker_session_state(s) == 0) {
		if (s->c->timeout_ns > 500 * MS)
			s->c->timeout_ns = 500 * MS;
		pthread_mutex_lock(&s->mu);
		s->stop = 0; /* let send_reports run: we are leaving anyway */
		send_reports(s);
		s->stop = 1;
		pthread_mutex_unlock(&s->mu);
		dh_broker_deregister(s->c, s->token);
	}
	return NULL;
}

int
dh_broker_session_start(const struct dh_broker_session_opts *opts, struct dh_broker_session **out)
{
	struct dh_broker_session *s;
	pthread_condattr_t ca;
	int r;

	*out = NULL;
	if (opts->reg.channel == NULL || (opts->role != DH_BROKER_WRITER && opts->role != DH_BROKER_READER))
		return -EINVAL;
	if ((s = calloc(1, sizeof *s)) == NULL)
		return -ENOMEM;
	s->o = *opts;
	s->state = 1;
	if ((r = keep(s, &s->o.broker.endpoint)) < 0 || (r = keep(s, &s->o.broker.server_key)) < 0 ||
	    (r = keep(s, &s->o.broker.client_key)) < 0 || (r = keep(s, &s->o.reg.channel)) < 0 ||
	    (r = keep(s, &s->o.reg.host)) < 0 || (r = keep(s, &s->o.reg.label)) < 0 ||
	    (r = keep(s, &s->o.reg.schema)) < 0 || (r = keep(s, &s->o.metrics_channel)) < 0)
		goto fail;
	if (s->o.reg.pid <= 0)
		s->o.reg.pid = getpid();
	if ((r = dh_broker_connect(&s->o.broker, &s->c)) < 0)
		goto fail;
	atomic_init(&s->cancel, 0);
	s->c->cancel = &s->cancel;
	pthread_mutex_init(&s->mu, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&s->cv, &ca);
	pthread_condattr_destroy(&ca);
	if ((r = spawn(&s->th, session_main, s)) < 0) {
		pthread_cond_destroy(&s->cv);
		pthread_mutex_destroy(&s->mu);
		dh_broker_disconnect(s->c);
		goto fail;
	}
	*out = s;
	return 0;
fail:
	while (s->nstrs > 0)
		free(s->strs[--s->nstrs]);
	free(s);
	return r;
}

int
dh_broker_session_state(struct dh_broker_session *s)
{
	int st;

	pthread_mutex_lock(&s->mu);
	st = s->state;
	pthread_mutex_unlock(&s->mu);
	return st;
}

void
dh_broker_session_stop(struct dh_broker_session *s)
{
	if (s == NULL)
		return;
	pthread_mutex_lock(&s->mu);
	s->stop = 1;
	atomic_store(&s->cancel, 1);
	pthread_cond_signal(&s->cv);
	pthread_mutex_unlock(&s->mu);
	pthread_join(s->th, NULL);
	dh_broker_disconnect(s->c);
	if (s->blk)
		dh_block_close(s->blk);
	free(s->snap);
	pthread_cond_destroy(&s->cv);
	pthread_mutex_destroy(&s->mu);
	while (s->nstrs > 0)
		free(s->strs[--s->nstrs]);
	free(s);
}
