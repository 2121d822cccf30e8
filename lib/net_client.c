/* net_client.c: a subscriber of an exporter: credit, keepalive, reconnection and resume, every frame checked by dh_net_rx. See LICENSE. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>
#include <zmq.h>

#include "broker_impl.h"
#include "dh_broker_client.h"
#include "dh_impl.h"
#include "dh_net.h"

#define KEEPALIVE_NS 1000000000LL
#define INFLIGHT_BYTES (16u << 20)
#define STEP_WELCOME 2
#define STEP_NONE 3              /* (1 is DH_END) */

struct dh_net_client {
	char endpoint[512];
	char channel[DH_NAME_MAX + 1];
	enum dh_start start;
	uint64_t start_seq;
	int follow;
	uint32_t window_opt, window;
	uint32_t eff;              /* window in use: at most INFLIGHT_BYTES of slots in flight */
	int64_t reconnect_ns;
	struct dh_cancel *cancel;
	int curve;
	char spub[DH_BROKER_Z85_LEN + 1], cpub[DH_BROKER_Z85_LEN + 1], csec[DH_BROKER_Z85_LEN + 1];
	void *ctx, *sock, *mon;
	struct dh_net_rx *rx;
	int refused;               /* errno of the last failed handshake, 0 */
	int welcomed;
	int have_pos;              /* pos is where to resume */
	uint64_t pos;
	uint32_t outstanding;      /* credit granted and not used by the exporter */
	uint32_t consumed;         /* messages taken since the last grant */
	int manual_ack;            /* acks come from dh_net_client_ack, not from the calls */
	uint64_t acked;            /* manual: what the caller passed on (next seq) */
	uint64_t ack_sent;         /* the ack last sent */
	uint32_t last_session;     /* of the last WELCOME: a reconnection resumes it */
	int64_t heard, sent;
	int held;                  /* parts[] back the message last returned */
	zmq_msg_t parts[2];
	size_t off;                /* a DATA frame being taken apart: parts[0] from here on */
	int inbatch;
	int ended, end_rc;
	uint64_t reconnects;
	char err[256];
};

#if defined(__GNUC__)
__attribute__((format(printf, 2, 3)))
#endif
static void
cerr(struct dh_net_client *c, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(c->err, sizeof c->err, fmt, ap);
	va_end(ap);
}

static int
keys(struct dh_net_client *c, const struct dh_net_client_opts *o)
{
	char a[4096], b[4096];
	const char *sk = o->server_key, *ck = o->client_key;
	int r;

	if (sk == NULL && ck == NULL && o->curve_dir == NULL)
		return 0;
	if ((sk == NULL) != (ck == NULL) && o->curve_dir == NULL)
		return -EINVAL;
	if (sk == NULL) {
		if ((size_t)snprintf(a, sizeof a, "%s/broker.pub", o->curve_dir) >= sizeof a)
			return -ENAMETOOLONG;
		sk = a;
	}
	if (ck == NULL) {
		if ((size_t)snprintf(b, sizeof b, "%s/client.key", o->curve_dir) >= sizeof b)
			return -ENAMETOOLONG;
		ck = b;
	}
	if (!zmq_has("curve"))
		return -ENOTSUP;
	if ((r = dh_broker_key_load(sk, 0, c->spub)) < 0) {
		cerr(c, "%s: %s", sk, dh_strerror(r));
		return r;
	}
	if ((r = dh_broker_key_load(ck, 1, c->csec)) < 0) {
		cerr(c, "%s: %s", ck, dh_strerror(r));
		return r;
	}
	if ((r = dh_broker_key_public(c->csec, c->cpub)) < 0) {
		cerr(c, "%s: not a secret key", ck);
		return r;
	}
	c->curve = 1;
	return 0;
}

static int send_frame(struct dh_net_client *c, const void *buf, size_t len);

static void
close_sock(struct dh_net_client *c)
{
	if (c->mon) {
		zmq_socket_monitor(c->sock, NULL, 0);
		zmq_close(c->mon);
		c->mon = NULL;
	}
	if (c->sock)
		zmq_close(c->sock);
	c->sock = NULL;
}

/* A fresh socket and a HELLO: a new connection never carries frames of
 * an earlier session, so anything of another session is forged. */
static int
connect_sock(struct dh_net_client *c)
{
	int zero = 0, ivl = 100, ivlmax = 1000, hb = 1000, hbt = 5000, hs = 10000, rcvhwm = 0, sockbuf = DH_NET_SOCKBUF;
	int64_t maxmsg = DH_NET_PAYLOAD_MAX + DH_NET_DATA_HEAD;
	struct dh_net_hello h = { 0 };
	unsigned char buf[DH_NET_CTL_MAX];
	char mep[64];
	ssize_t len;

	if ((c->sock = zmq_socket(c->ctx, ZMQ_DEALER)) == NULL)
		return -errno;
	zmq_setsockopt(c->sock, ZMQ_LINGER, &zero, sizeof zero);
	zmq_setsockopt(c->sock, ZMQ_MAXMSGSIZE, &maxmsg, sizeof maxmsg);
	/* credit bounds what arrives; a count limit here would only hide a
	 * peer that ignores it, which next() reports instead */
	zmq_setsockopt(c->sock, ZMQ_RCVHWM, &rcvhwm, sizeof rcvhwm);
	/* as the exporter's send buffer (net_server.c) */
	zmq_setsockopt(c->sock, ZMQ_RCVBUF, &sockbuf, sizeof sockbuf);
	zmq_setsockopt(c->sock, ZMQ_RECONNECT_IVL, &ivl, sizeof ivl);
	zmq_setsockopt(c->sock, ZMQ_RECONNECT_IVL_MAX, &ivlmax, sizeof ivlmax);
	zmq_setsockopt(c->sock, ZMQ_HEARTBEAT_IVL, &hb, sizeof hb);
	zmq_setsockopt(c->sock, ZMQ_HEARTBEAT_TIMEOUT, &hbt, sizeof hbt);
	zmq_setsockopt(c->sock, ZMQ_HANDSHAKE_IVL, &hs, sizeof hs);
	if (c->curve && (zmq_setsockopt(c->sock, ZMQ_CURVE_SERVERKEY, c->spub, DH_BROKER_Z85_LEN) < 0 ||
			 zmq_setsockopt(c->sock, ZMQ_CURVE_PUBLICKEY, c->cpub, DH_BROKER_Z85_LEN) < 0 ||
			 zmq_setsockopt(c->sock, ZMQ_CURVE_SECRETKEY, c->csec, DH_BROKER_Z85_LEN) < 0))
		return -errno;
	snprintf(mep, sizeof mep, "inproc://dh-net-mon-%p-%llu", (void *)c, (unsigned long long)c->reconnects);
	if (zmq_socket_monitor(c->sock, mep,
			       ZMQ_EVENT_HANDSHAKE_FAILED_AUTH | ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL |
				       ZMQ_EVENT_HANDSHAKE_SUCCEEDED) == 0 &&
	    (c->mon = zmq_socket(c->ctx, ZMQ_PAIR)) != NULL) {
		zmq_setsockopt(c->mon, ZMQ_LINGER, &zero, sizeof zero);
		if (zmq_connect(c->mon, mep) < 0) {
			zmq_close(c->mon);
			c->mon = NULL;
		}
	}
	if (zmq_connect(c->sock, c->endpoint) < 0)
		return errno == EPROTONOSUPPORT || errno == ENOCOMPATPROTO ? -EINVAL : -errno;
	snprintf(h.channel, sizeof h.channel, "%s", c->channel);
	h.window = c->window;
	h.flags = c->follow ? DH_NET_F_FOLLOW : 0;
	/* a queue's exporter sends again what was in flight to that session */
	if (c->last_session) {
		h.flags |= DH_NET_F_RESUME;
		h.resume = c->last_session;
	}
	if (c->have_pos) {
		h.start = DH_START_SEQ;
		h.start_seq = c->pos;
	} else {
		h.start = (uint8_t)c->start;
		h.start_seq = c->start_seq;
	}
	if ((len = dh_net_hello_encode(&h, buf, sizeof buf)) < 0)
		return (int)len;
	c->outstanding = c->window;
	c->consumed = 0;
	c->welcomed = 0;
	c->heard = c->sent = dh__broker_mono_ns();
	/* queued until the connection is up: DEALER keeps it for us */
	return send_frame(c, buf, (size_t)len);
}

static int
send_frame(struct dh_net_client *c, const void *buf, size_t len)
{
	if (zmq_send(c->sock, buf, len, ZMQ_DONTWAIT) < 0)
		return errno == EAGAIN ? 0 : -errno; /* not connected yet: keepalives retry */
	c->sent = dh__broker_mono_ns();
	return 0;
}

int
dh_net_client_open(const struct dh_net_client_opts *o, struct dh_net_client **out)
{
	struct dh_net_client *c;
	int r;

	*out = NULL;
	if (o->endpoint == NULL || dh_broker_endpoint_check(o->endpoint) < 0 ||
	    (o->channel != NULL && dh_name_check(o->channel) < 0) || (unsigned)o->start > DH_START_HELD || o->window > DH_NET_WINDOW_MAX)
		return -EINVAL;
	if (sodium_init() < 0)
		return -ENOSYS;
	if ((c = calloc(1, sizeof *c)) == NULL)
		return -ENOMEM;
	snprintf(c->endpoint, sizeof c->endpoint, "%s", o->endpoint);
	snprintf(c->channel, sizeof c->channel, "%s", o->channel ? o->channel : "");
	c->start = o->start;
	c->start_seq = o->start_seq;
	c->follow = o->follow;
	c->window_opt = o->window;
	c->window = o->window ? o->window : 1024;
	c->eff = c->window;
	c->reconnect_ns = o->reconnect_ns > 0 ? o->reconnect_ns : 3000000000LL;
	c->cancel = o->cancel;
	c->manual_ack = o->manual_ack;
	if ((r = keys(c, o)) < 0)
		goto fail;
	if ((r = dh_net_rx_new(&o->rx, &c->rx)) < 0)
		goto fail;
	if ((c->ctx = zmq_ctx_new()) == NULL) {
		r = -errno;
		goto fail;
	}
	zmq_ctx_set(c->ctx, ZMQ_BLOCKY, 0);
	if ((r = connect_sock(c)) < 0)
		goto fail;
	*out = c;
	return 0;
fail:
	dh_net_client_close(c);
	return r;
}

const char *
dh_net_client_error(const struct dh_net_client *c)
{
	return c->err;
}

const struct dh_net_welcome *
dh_net_client_welcome(const struct dh_net_client *c)
{
	return dh_net_rx_welcome(c->rx);
}

uint64_t
dh_net_client_reconnects(const struct dh_net_client *c)
{
	return c->reconnects;
}

static void
release(struct dh_net_client *c)
{
	if (c->inbatch)
		return; /* the rest of the frame is still to be taken */
	for (int i = 0; i < c->held; i++)
		zmq_msg_close(&c->parts[i]);
	c->held = 0;
}

static int
reconnect(struct dh_net_client *c)
{
	c->inbatch = 0;
	release(c);
	close_sock(c);
	dh_net_rx_reset(c->rx);
	c->reconnects++;
	return connect_sock(c);
}

static void
monitor_drain(struct dh_net_client *c)
{
	zmq_msg_t p[2];
	int n;

	while (c->mon && (n = dh__broker_recv_parts(c->mon, p, 2, ZMQ_DONTWAIT)) > 0) {
		if (zmq_msg_size(&p[0]) >= 6) {
			uint16_t ev;

			memcpy(&ev, zmq_msg_data(&p[0]), 2);
			if (ev == ZMQ_EVENT_HANDSHAKE_SUCCEEDED)
				c->refused = 0;
			else if (ev == ZMQ_EVENT_HANDSHAKE_FAILED_AUTH)
				c->refused = EACCES;
			else if (c->refused == 0)
				c->refused = EPROTO;
		}
		dh__broker_close_parts(p, n);
	}
}

static int
finish(struct dh_net_client *c, int rc)
{
	c->ended = 1;
	c->end_rc = rc;
	return rc;
}

/* What was passed on: the seq after the last message given out before
 * this call (each call says the caller is done with the one before), or,
 * manual, what the caller acknowledged. */
static uint64_t
ack_value(const struct dh_net_client *c)
{
	if (c->manual_ack)
		return c->acked;
	return c->have_pos ? c->pos : 0;
}

void
dh_net_client_ack(struct dh_net_client *c, uint64_t next)
{
	if (next > c->acked)
		c->acked = next;
}

/* Grant what was consumed once half the window is used (fewer frames
 * than one per message), or keep the session alive while idle.  About to
 * block (idle) on a queue, grant and acknowledge everything now: its
 * exporter holds the claims of unacknowledged messages, and they may be
 * what its writer waits for (other policies need no acknowledgement, and
 * a frame per wait would cost a paced stream latency). */
static int
credit(struct dh_net_client *c, int64_t now, int idle)
{
	struct dh_net_credit cr = { 0 };
	unsigned char buf[64];
	ssize_t len;

	if (!c->welcomed)
		return 0;
	idle = idle && dh_net_rx_welcome(c->rx)->policy == DH_POLICY_QUEUE;
	cr.ack = ack_value(c);
	if (c->consumed > 0 && c->outstanding < c->eff &&
	    (c->consumed >= (c->eff + 1) / 2 || c->outstanding == 0 || idle))
		cr.grant = c->consumed < c->eff - c->outstanding ? c->consumed : c->eff - c->outstanding;
	else if (now - c->sent < KEEPALIVE_NS && !(idle && cr.ack > c->ack_sent))
		return 0;
	if ((len = dh_net_credit_encode(&cr, buf, sizeof buf)) < 0)
		return (int)len;
	if (zmq_send(c->sock, buf, (size_t)len, ZMQ_DONTWAIT) < 0)
		return 0; /* no connection now: the grant waits */
	c->outstanding += cr.grant;
	c->consumed -= cr.grant;
	c->ack_sent = cr.ack;
	c->sent = now;
	return 0;
}

/* The next message of the DATA frame in parts[0] (c->inbatch): each one is
 * a DATA header and its payload, and goes through dh_net_rx_feed on its
 * own, so a record cut short or overrunning the frame is refused there. */
static int
take(struct dh_net_client *c, struct dh_msg *m)
{
	const unsigned char *p = (const unsigned char *)zmq_msg_data(&c->parts[0]) + c->off;
	size_t left = zmq_msg_size(&c->parts[0]) - c->off, len = left;
	const void *pp[1] = { p };
	struct dh_net_notice n;
	int r;

	if (left >= DH_NET_DATA_HEAD) {
		uint32_t plen = (uint32_t)p[12] | (uint32_t)p[13] << 8 | (uint32_t)p[14] << 16 | (uint32_t)p[15] << 24;

		if (plen <= left - DH_NET_DATA_HEAD)
			len = DH_NET_DATA_HEAD + plen;
	}
	c->off += len;
	if (c->off >= zmq_msg_size(&c->parts[0]))
		c->inbatch = 0;   /* the last one: the frame goes at the next call */
	r = dh_net_rx_feed(c->rx, pp, &len, 1, m, &n);
	if (r != DH_NET_EV_DATA && r != -DH_ECHECKSUM) {
		c->inbatch = 0;
		release(c);
		cerr(c, "%s", r < 0 ? dh_net_rx_error(c->rx) : "protocol error: not a DATA record in a DATA frame");
		return finish(c, r < 0 ? r : -EPROTO);
	}
	if (c->outstanding == 0) {
		c->inbatch = 0;
		release(c);
		cerr(c, "protocol error: DATA seq %llu beyond the credit granted", (unsigned long long)m->seq);
		return finish(c, -EPROTO);
	}
	c->outstanding--;
	c->consumed++;
	c->have_pos = 1;
	c->pos = m->seq + 1;
	if (r == -DH_ECHECKSUM) {
		cerr(c, "%s", dh_net_rx_error(c->rx));
		return r;
	}
	return 0;
}

/* One step: wait up to wait_ms for a message from the exporter and check
 * it.  Returns STEP_NONE for nothing yet, STEP_WELCOME, 0 for a message, or what
 * next returns. */
static int
step(struct dh_net_client *c, struct dh_msg *m, int wait_ms)
{
	zmq_pollitem_t item = { c->sock, 0, ZMQ_POLLIN, 0 };
	const void *pp[2];
	size_t pl[2];
	struct dh_net_notice n;
	int64_t now = dh__broker_mono_ns();
	int r, np = 0, more;

	if ((r = credit(c, now, 0)) < 0)
		return finish(c, r);
	if (now - c->heard > c->reconnect_ns) {
		monitor_drain(c);
		if ((r = reconnect(c)) < 0)
			return finish(c, r);
		return STEP_NONE;
	}
	/* A busy stream has the next message queued already: poll (a system
	 * call) only when there is none. */
	zmq_msg_init(&c->parts[0]);
	if (zmq_msg_recv(&c->parts[0], c->sock, ZMQ_DONTWAIT) < 0) {
		zmq_msg_close(&c->parts[0]);
		if (errno != EAGAIN && errno != EINTR)
			return finish(c, -errno);
		if (wait_ms == 0)
			return STEP_NONE;
		if ((r = credit(c, now, 1)) < 0)
			return finish(c, r);
		r = zmq_poll(&item, 1, wait_ms);
		monitor_drain(c);
		if (r < 0)
			return errno == EINTR ? (c->cancel && dh_cancel_raised(c->cancel) ? -EINTR : STEP_NONE)
					      : finish(c, -errno);
		if (r == 0)
			return STEP_NONE;
		zmq_msg_init(&c->parts[0]);
		if (zmq_msg_recv(&c->parts[0], c->sock, ZMQ_DONTWAIT) < 0) {
			zmq_msg_close(&c->parts[0]);
			return errno == EAGAIN || errno == EINTR ? STEP_NONE : finish(c, -errno);
		}
	}
	np = 1;
	more = zmq_msg_more(&c->parts[0]);
	while (more) {
		zmq_msg_t part;

		zmq_msg_init(&part);
		if (zmq_msg_recv(&part, c->sock, ZMQ_DONTWAIT) < 0) {
			zmq_msg_close(&part);
			for (int i = 0; i < np && i < 2; i++)
				zmq_msg_close(&c->parts[i]);
			return errno == EAGAIN || errno == EINTR ? STEP_NONE : finish(c, -errno);
		}
		more = zmq_msg_more(&part);
		if (np < 2)
			c->parts[np] = part;
		else
			zmq_msg_close(&part);
		np++;
	}
	c->heard = dh__broker_mono_ns();
	if (np > 2) {
		for (int i = 0; i < 2; i++)
			zmq_msg_close(&c->parts[i]);
		cerr(c, "protocol error: a message of %d frames from the exporter", np);
		return finish(c, -EPROTO);
	}
	for (int i = 0; i < np; i++) {
		pp[i] = zmq_msg_data(&c->parts[i]);
		pl[i] = zmq_msg_size(&c->parts[i]);
	}
	/* a DATA frame carries one or more messages back to back */
	if (np == 1 && dh_net_frame_type(pp[0], pl[0], NULL) == DH_NET_DATA) {
		c->held = 1;
		c->inbatch = 1;
		c->off = 0;
		return take(c, m);
	}
	r = dh_net_rx_feed(c->rx, pp, pl, np, m, &n);
	for (int i = 0; i < np; i++)
		zmq_msg_close(&c->parts[i]);
	if (r == -DH_ECHECKSUM) {
		cerr(c, "%s", dh_net_rx_error(c->rx));
		return r;
	}
	if (r < 0) {
		cerr(c, "%s", dh_net_rx_error(c->rx));
		return finish(c, r);
	}
	if (r == DH_NET_EV_WELCOME) {
		const struct dh_net_welcome *w = dh_net_rx_welcome(c->rx);

		c->welcomed = 1;
		c->last_session = w->session;
		/* large slots: keep fewer in flight than the window announced */
		c->eff = c->window;
		if ((uint64_t)c->eff * w->slot_size > INFLIGHT_BYTES)
			c->eff = w->slot_size >= INFLIGHT_BYTES ? 1 : INFLIGHT_BYTES / w->slot_size;
		if (!c->have_pos && dh_policy_info(w->policy)->in_order) {
			c->have_pos = 1;
			c->pos = w->start;
		}
		return STEP_WELCOME;
	}
	switch (n.code) {
	case DH_NET_N_PING:
		return STEP_NONE;
	case DH_NET_N_CHECKSUM:
		m->seq = n.seq;
		c->have_pos = 1;
		c->pos = n.seq + 1;
		cerr(c, "checksum mismatch at seq %llu (found by the exporter)", (unsigned long long)n.seq);
		return -DH_ECHECKSUM;
	case DH_NET_N_RESET:
		if ((r = reconnect(c)) < 0)
			return finish(c, r);
		return STEP_NONE;
	case DH_NET_N_EOS:
		return finish(c, DH_END);
	case DH_NET_N_WRITER_DEAD:
		cerr(c, "the remote writer died without marking end-of-stream");
		return finish(c, -DH_EWRITERDEAD);
	case DH_NET_N_EVICTED:
		cerr(c, "evicted by the remote channel (stalled its sync writer)");
		return finish(c, -DH_EEVICTED);
	case DH_NET_N_REFUSED:
		cerr(c, "refused by the exporter: %s", n.text);
		return finish(c, n.err < 0 ? n.err : -ECONNREFUSED);
	default:
		cerr(c, "the exporter failed: %s", n.text);
		return finish(c, n.err < 0 ? n.err : -EIO);
	}
}

static int
run(struct dh_net_client *c, struct dh_msg *m, int64_t timeout_ns, int until_welcome)
{
	int64_t start;
	int polled = 0;

	release(c);
	if (c->inbatch)
		return take(c, m);
	if (c->ended)
		return c->end_rc;
	start = dh__broker_mono_ns();
	for (;;) {
		int64_t left = 100000000LL;
		int r;

		if (c->cancel && dh_cancel_raised(c->cancel))
			return -EINTR;
		if (timeout_ns >= 0) {
			left = timeout_ns - (dh__broker_mono_ns() - start);
			if (left <= 0 && timeout_ns == 0 && !polled) {
				/* no wait: take what has arrived, never block */
				left = 0;
			} else if (left <= 0) {
				if (c->refused == EACCES)
					cerr(c, "the exporter refused our key (not in its allow-list)");
				else if (c->refused)
					cerr(c, "handshake with the exporter failed (CURVE keys?)");
				else
					cerr(c, "no message within the timeout");
				return -ETIMEDOUT;
			}
			if (left > 100000000LL)
				left = 100000000LL;
		}
		r = step(c, m, (int)((left + 999999) / 1000000));
		if (r == STEP_NONE && timeout_ns == 0)
			polled = 1;
		if (c->refused == EACCES) {
			/* the allow-list decides at every handshake: no retry will do */
			cerr(c, "the exporter refused our key (not in its allow-list)");
			return finish(c, -EACCES);
		}
		if (r == STEP_WELCOME && until_welcome)
			return 0;
		if (r <= 0 || r == DH_END)
			return r;
	}
}

int
dh_net_client_next(struct dh_net_client *c, struct dh_msg *m, int64_t timeout_ns)
{
	return run(c, m, timeout_ns, 0);
}

int
dh_net_client_wait_welcome(struct dh_net_client *c, int64_t timeout_ns)
{
	struct dh_msg m;

	if (c->welcomed)
		return 0;
	/* a message before the welcome is impossible (rx refuses it), so
	 * run returns 0 only for the welcome */
	return run(c, &m, timeout_ns, 1);
}

void
dh_net_client_close(struct dh_net_client *c)
{
	unsigned char buf[16];
	ssize_t len;

	if (c == NULL)
		return;
	release(c);
	if (c->sock && (len = dh_net_bye_encode(buf, sizeof buf)) > 0) {
		int linger = 100;
		struct dh_net_credit cr = { .grant = 0, .ack = ack_value(c) };
		unsigned char cb[64];
		ssize_t cl;

		/* best effort: the exporter frees our reader now rather than at
		 * its idle limit, knowing what we passed on (a queue's exporter
		 * counts the rest lost) */
		zmq_setsockopt(c->sock, ZMQ_LINGER, &linger, sizeof linger);
		if (c->welcomed && cr.ack > c->ack_sent && (cl = dh_net_credit_encode(&cr, cb, sizeof cb)) > 0)
			zmq_send(c->sock, cb, (size_t)cl, ZMQ_DONTWAIT);
		zmq_send(c->sock, buf, (size_t)len, ZMQ_DONTWAIT);
	}
	close_sock(c);
	if (c->ctx)
		zmq_ctx_term(c->ctx);
	dh_net_rx_free(c->rx);
	sodium_memzero(c->csec, sizeof c->csec);
	free(c);
}
