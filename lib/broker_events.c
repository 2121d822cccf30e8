/* broker_events.c: the event subscriber. See LICENSE. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <zmq.h>

#include "broker_impl.h"

#define MS 1000000LL

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
	if ((r = dh__broker_open_socket(o, ZMQ_SUB, &e->ctx, &e->sock, e->endpoint, sizeof e->endpoint)) < 0) {
		free(e);
		return r;
	}
	*out = e;
	return 0;
}

ssize_t
dh_broker_events_next(struct dh_broker_events *e, char **json, int64_t timeout_ns)
{
	int64_t deadline = timeout_ns < 0 ? INT64_MAX : dh__broker_mono_ns() + timeout_ns;

	*json = NULL;
	for (;;) {
		zmq_pollitem_t it = { e->sock, 0, ZMQ_POLLIN, 0 };
		int64_t left = deadline - dh__broker_mono_ns();
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
		n = dh__broker_recv_parts(e->sock, p, 1, ZMQ_DONTWAIT);
		if (n == -EAGAIN || n == -EINTR)
			continue;
		if (n < 0)
			return n;
		size_t len = zmq_msg_size(&p[0]);
		char *s = malloc(len + 1);
		if (s == NULL) {
			dh__broker_close_parts(p, n);
			return -ENOMEM;
		}
		memcpy(s, zmq_msg_data(&p[0]), len);
		s[len] = '\0';
		dh__broker_close_parts(p, n);
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
