/* broker_zap.c: the ZAP handler (RFC 27) that admits CURVE clients listed in DIR/clients, and CURVE server sockets. See LICENSE. */
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>
#include <zmq.h>

#include "broker_impl.h"
#include "dh_broker.h"

#ifndef ZMQ_ZAP_ENFORCE_DOMAIN
#define ZMQ_ZAP_ENFORCE_DOMAIN 93 /* DRAFT in zmq.h, implemented since 4.3.0 */
#endif

#define ZAP_DOMAIN "dh"
#define ZAP_ENDPOINT "inproc://zeromq.zap.01"

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

	n = dh__broker_recv_parts(z->sock, p, 8, 0);
	if (n < 0)
		return;
	/* version, request id, domain, address, routing id, mechanism, credentials... */
	if (n < 6 || !frame_is(&p[0], "1.0")) {
		zap_reply(z->sock, n >= 2 ? &p[1] : NULL, "500", "malformed ZAP request", "");
		dh__broker_close_parts(p, n);
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
		dh__broker_close_parts(p, n);
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
	dh__broker_close_parts(p, n);
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
	if ((r = dh__broker_spawn(&z->th, zap_main, z)) < 0)
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
	if (secret_z85 == NULL || !dh__broker_z85_ok(secret_z85, strlen(secret_z85), NULL))
		return -EINVAL;
	if (zmq_setsockopt(sock, ZMQ_CURVE_SERVER, &one, sizeof one) < 0 ||
	    zmq_setsockopt(sock, ZMQ_CURVE_SECRETKEY, secret_z85, DH_BROKER_Z85_LEN) < 0 ||
	    zmq_setsockopt(sock, ZMQ_ZAP_DOMAIN, ZAP_DOMAIN, strlen(ZAP_DOMAIN)) < 0)
		return -errno;
	if (zmq_setsockopt(sock, ZMQ_ZAP_ENFORCE_DOMAIN, &one, sizeof one) < 0)
		return -ENOTSUP;
	return 0;
}
