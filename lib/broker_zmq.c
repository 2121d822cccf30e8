/* broker_zmq.c: ZeroMQ plumbing the broker's parts share: the clock, multipart messages, threads without signals, client sockets. See LICENSE. */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <sodium.h>
#include <zmq.h>

#include "broker_impl.h"

int64_t
dh__broker_mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int
dh__broker_recv_parts(void *sock, zmq_msg_t *parts, int max, int flags)
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

void
dh__broker_close_parts(zmq_msg_t *parts, int n)
{
	for (int i = 0; i < n; i++)
		zmq_msg_close(&parts[i]);
}

int
dh__broker_spawn(pthread_t *th, void *(*fn)(void *), void *arg)
{
	sigset_t all, old;
	int r;

	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	r = pthread_create(th, NULL, fn, arg);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	return -r;
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

int
dh__broker_open_socket(const struct dh_broker_opts *o, int type, void **ctxp, void **sockp, char *ep, size_t cap)
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
