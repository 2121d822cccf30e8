/* net_server.c: the exporter: one reader of the local channel per remote subscriber, served over a ZeroMQ ROUTER on credit. See LICENSE. */
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>
#include <zmq.h>

#include "broker_impl.h"
#include "dh_broker.h"
#include "dh_impl.h"
#include "dh_net.h"

#define RID_MAX 255
#define PING_NS 1000000000LL          /* keepalive to an idle subscriber */
#define WAIT_DATA_NS 2000000LL        /* longest wait on the channel while the network may speak */
#define BURST 1024                    /* messages to one subscriber before looking at the others */
/* A DATA frame gathers the messages at hand up to this (or one larger):
 * at 64 KiB a message each, 256 KiB cut the wake-ups and context switches
 * of a 64 KiB stream by half (docs/PERFORMANCE.md) */
#define BATCH_BYTES (256u << 10)
#define POOL_MAX 32                   /* frame buffers kept for reuse (8 MiB at most) */
#define PARK_NS 10000000000LL          /* a queue subscriber gone without BYE: how long its claims wait for it */
#define ACK_LINGER_NS 1000000000LL    /* stopping: how long to hear a queue's last acknowledgements */

struct sub {
	unsigned char rid[RID_MAX];
	size_t rid_len;
	struct dh_reader *r;          /* NULL once ended */
	/* queue: claims of messages sent stay ours until the subscriber
	 * acknowledges them (CREDIT ack), so one that vanishes has its
	 * in-flight messages counted lost, never dropped silently; after a
	 * terminal notice the reader waits here for the last acks */
	int keep;
	struct dh_reader *tail;
	/* resumed (DH_NET_F_RESUME): the claims of the session it continues
	 * are sent again first, from seq redo_from up */
	int redo;
	uint64_t redo_from;
	uint32_t session, window;
	uint64_t credit;              /* messages we may still send */
	uint64_t expected;            /* ordered policies: the seq that should come next */
	int ordered;
	int64_t heard, sent;          /* monotonic ns of the last frame from and to it */
	unsigned char *batch;         /* DATA records gathered for one frame */
	size_t blen, cap, slot;
	struct dh_net_notice pend;    /* a notice to send once the batch is out (code 0: none) */
	char label[DH_PNAME_MAX];
	uint64_t messages;
};

/* Frame buffers come back from libzmq's I/O thread once sent: reused, a
 * large frame costs no fresh pages (malloc would hand back memory it
 * just returned to the system, faulting it in again per frame). */
struct pool {
	pthread_mutex_t mu;
	size_t size;                  /* of the buffers kept */
	int n;
	void *buf[POOL_MAX];
};

/* A queue subscriber that went without a word (silence, connection
 * gone): its reader and the claims of what it never acknowledged wait
 * PARK_NS for it to come back (HELLO resuming the session), then are
 * counted lost. */
struct parked {
	uint32_t session;
	struct dh_reader *r;
	char label[DH_PNAME_MAX];
	int64_t since;
};

struct dh_net_server {
	struct dh_net_server_opts o;
	struct pool pool;
	struct parked *parked;
	int nparked;
	char channel[DH_NAME_MAX + 1];
	char endpoint[512];
	void *ctx, *sock;
	struct dh_broker_zap *zap;
	struct sub *subs;
	int nsubs, max;
	unsigned char *buf;           /* frame encoding */
};

static void pool_put(struct pool *p, unsigned char *data);

#if defined(__GNUC__)
__attribute__((format(printf, 3, 4)))
#endif
static void
slog(struct dh_net_server *s, int detail, const char *fmt, ...)
{
	char buf[512];
	va_list ap;

	if (s->o.log == NULL)
		return;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof buf, fmt, ap);
	va_end(ap);
	s->o.log(s->o.arg, detail, buf);
}

#if defined(__GNUC__)
__attribute__((format(printf, 3, 4)))
#endif
static void
seterr(char *err, size_t cap, const char *fmt, ...)
{
	va_list ap;

	if (err == NULL || cap == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(err, cap, fmt, ap);
	va_end(ap);
}

int
dh_net_server_open(const struct dh_net_server_opts *o, struct dh_net_server **out, char *err, size_t cap)
{
	struct dh_net_server *s;
	char secret[DH_BROKER_Z85_LEN + 1], path[4096];
	int r, zero = 0, one = 1, linger = 200, hb = 1000, hbt = 5000;
	int hwm = DH_NET_WINDOW_MAX + 64, sockbuf = DH_NET_SOCKBUF;
	int64_t maxmsg = DH_NET_CTL_MAX;
	size_t len;

	*out = NULL;
	seterr(err, cap, "%s", "");
	if (o->endpoint == NULL || dh_broker_endpoint_check(o->endpoint) < 0) {
		seterr(err, cap, "%s: not an endpoint (tcp://HOST:PORT, ipc://PATH)", o->endpoint ? o->endpoint : "");
		return -EINVAL;
	}
	if (o->channel == NULL || dh_name_check(o->channel) < 0) {
		seterr(err, cap, "invalid channel name");
		return -EINVAL;
	}
	if (sodium_init() < 0)
		return -ENOSYS;
	if ((s = calloc(1, sizeof *s)) == NULL)
		return -ENOMEM;
	pthread_mutex_init(&s->pool.mu, NULL);
	s->o = *o;
	s->max = o->max_subscribers > 0 && o->max_subscribers <= DH_READERS_MAX ? o->max_subscribers : 64;
	snprintf(s->channel, sizeof s->channel, "%s", o->channel);
	s->o.channel = s->channel;
	s->o.endpoint = NULL;
	s->o.curve_dir = NULL;
	if (s->o.idle_ns <= 0)
		s->o.idle_ns = 5000000000LL;
	if ((s->subs = calloc((size_t)s->max, sizeof *s->subs)) == NULL ||
	    (s->parked = calloc((size_t)s->max, sizeof *s->parked)) == NULL ||
	    (s->buf = malloc(DH_NET_CTL_MAX)) == NULL) {
		r = -ENOMEM;
		goto fail;
	}
	if ((s->ctx = zmq_ctx_new()) == NULL) {
		r = -errno;
		goto fail;
	}
	zmq_ctx_set(s->ctx, ZMQ_BLOCKY, 0);
	/* CURVE before the socket exists: a key directory that cannot be
	 * read stops us here (fail closed), never serves in plaintext */
	if (o->curve_dir) {
		if ((size_t)snprintf(path, sizeof path, "%s/broker.key", o->curve_dir) >= sizeof path) {
			r = -ENAMETOOLONG;
			seterr(err, cap, "%s: name too long", o->curve_dir);
			goto fail;
		}
		if ((r = dh_broker_key_load(path, 1, secret)) < 0) {
			seterr(err, cap, "%s: %s", path, dh_strerror(r));
			goto fail;
		}
		if ((r = dh_broker_zap_start(s->ctx, o->curve_dir, o->log, o->arg, &s->zap)) < 0) {
			seterr(err, cap, "%s/clients: %s", o->curve_dir, dh_strerror(r));
			sodium_memzero(secret, sizeof secret);
			goto fail;
		}
	}
	if ((s->sock = zmq_socket(s->ctx, ZMQ_ROUTER)) == NULL) {
		r = -errno;
		sodium_memzero(secret, sizeof secret);
		goto fail;
	}
	zmq_setsockopt(s->sock, ZMQ_LINGER, &linger, sizeof linger);
	zmq_setsockopt(s->sock, ZMQ_MAXMSGSIZE, &maxmsg, sizeof maxmsg);
	/* Credit bounds what we queue per subscriber; the mandatory flag
	 * makes a full pipe an error we see instead of a silent drop. */
	zmq_setsockopt(s->sock, ZMQ_SNDHWM, &hwm, sizeof hwm);
	zmq_setsockopt(s->sock, ZMQ_ROUTER_MANDATORY, &one, sizeof one);
	/* A fixed large send buffer (the kernel caps it at wmem_max) rather
	 * than TCP's autotuning, which starts small: fewer, larger writes
	 * for large messages (docs/PERFORMANCE.md, network section). */
	zmq_setsockopt(s->sock, ZMQ_SNDBUF, &sockbuf, sizeof sockbuf);
	zmq_setsockopt(s->sock, ZMQ_HEARTBEAT_IVL, &hb, sizeof hb);
	zmq_setsockopt(s->sock, ZMQ_HEARTBEAT_TIMEOUT, &hbt, sizeof hbt);
	(void)zero;
	if (o->curve_dir) {
		r = dh_broker_curve_server(s->sock, secret);
		sodium_memzero(secret, sizeof secret);
		if (r < 0) {
			seterr(err, cap, "CURVE: %s", r == -ENOTSUP ? "this libzmq cannot enforce it" : dh_strerror(r));
			goto fail;
		}
	}
	if (zmq_bind(s->sock, o->endpoint) < 0) {
		r = -errno;
		seterr(err, cap, "%s: %s", o->endpoint, zmq_strerror(errno));
		goto fail;
	}
	len = sizeof s->endpoint;
	if (zmq_getsockopt(s->sock, ZMQ_LAST_ENDPOINT, s->endpoint, &len) < 0)
		snprintf(s->endpoint, sizeof s->endpoint, "%s", o->endpoint);
	*out = s;
	return 0;
fail:
	dh_net_server_close(s);
	return r;
}

const char *
dh_net_server_endpoint(const struct dh_net_server *s)
{
	return s->endpoint;
}

int
dh_net_server_subscribers(const struct dh_net_server *s)
{
	int n = 0;

	for (int i = 0; i < s->nsubs; i++)
		n += s->subs[i].r != NULL;
	return n;
}

/* Send [rid, a, (b)] without blocking: 0, -EAGAIN (its pipe is full),
 * -EHOSTUNREACH (gone). */
static int
send_to(struct dh_net_server *s, const unsigned char *rid, size_t rid_len, const void *a, size_t alen,
	const void *b, size_t blen, int two)
{
	if (zmq_send(s->sock, rid, rid_len, ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0)
		return -errno;
	/* once the routing frame is taken, the rest of the message is too */
	if (zmq_send(s->sock, a, alen, two ? ZMQ_SNDMORE : 0) < 0)
		return -errno;
	if (two && zmq_send(s->sock, b, blen, 0) < 0)
		return -errno;
	return 0;
}

static void
notice_to(struct dh_net_server *s, const unsigned char *rid, size_t rid_len, uint32_t session,
	  enum dh_net_code code, int err, uint64_t seq, const char *text)
{
	struct dh_net_notice n = { .session = session, .code = code, .err = err, .seq = seq };
	ssize_t len;

	snprintf(n.text, sizeof n.text, "%s", text ? text : "");
	for (char *p = n.text; *p; p++)
		if (*p < 0x20 || *p > 0x7e)
			*p = '?';
	if ((len = dh_net_notice_encode(&n, s->buf, DH_NET_CTL_MAX)) > 0)
		(void)send_to(s, rid, rid_len, s->buf, (size_t)len, NULL, 0, 0);
}

/* The subscriber is gone: what it was sent and never acknowledged is
 * counted lost (the channel's queue_lost, its reader entry's lost). */
static void
sub_settle(struct dh_net_server *s, struct sub *u, struct dh_reader *r)
{
	uint64_t n;

	if (r == NULL)
		return;
	if (u->keep && (n = dh_reader_settle(r, 0)) > 0)
		slog(s, 0, "subscriber %s (session %u): %llu messages sent and never acknowledged, counted lost",
		     u->label, u->session, (unsigned long long)n);
	dh_reader_close(r);
}

/* The stream to u ends: unacknowledged claims stay in u->tail until acked. */
static void
sub_end(struct dh_net_server *s, struct sub *u)
{
	if (u->r && u->keep && dh_reader_release_before(u->r, 0) > 0) {
		sub_settle(s, u, u->tail);
		u->tail = u->r;
	} else {
		dh_reader_close(u->r);
	}
	u->r = NULL;
	pool_put(&s->pool, u->batch);
	u->batch = NULL;
	u->blen = 0;
	memset(&u->pend, 0, sizeof u->pend);
}

/* Gone without a word: a queue reader still holding claims waits for a
 * resumption (see struct parked) instead of settling now.  1 if parked. */
static int
sub_park(struct dh_net_server *s, struct sub *u, int64_t now)
{
	struct dh_reader *r = u->r ? u->r : u->tail;
	struct parked *p;

	if (!u->keep || r == NULL || s->nparked >= s->max || dh_reader_release_before(r, 0) == 0)
		return 0;
	p = &s->parked[s->nparked++];
	p->session = u->session;
	p->r = r;
	p->since = now;
	snprintf(p->label, sizeof p->label, "%s", u->label);
	slog(s, 0, "subscriber %s (session %u): %u messages unacknowledged, kept %d s for it to resume", u->label,
	     u->session, dh_reader_release_before(r, 0), (int)(PARK_NS / 1000000000LL));
	u->r = u->tail = NULL;
	return 1;
}

static void
parked_settle(struct dh_net_server *s, int k)
{
	struct parked *p = &s->parked[k];
	uint64_t n = dh_reader_settle(p->r, 0);

	if (n > 0)
		slog(s, 0, "subscriber %s (session %u) never came back: %llu messages sent and never acknowledged, "
			   "counted lost", p->label, p->session, (unsigned long long)n);
	dh_reader_close(p->r);
	s->parked[k] = s->parked[--s->nparked];
	memset(&s->parked[s->nparked], 0, sizeof s->parked[s->nparked]);
}

/* HELLO resuming session: the reader of that session, taken from the
 * parked ones or from a subscriber still listed on its old connection
 * (which is dropped); NULL if none. */
static struct dh_reader *
resumable(struct dh_net_server *s, uint32_t session, const void *rid, size_t rid_len)
{
	struct dh_reader *r;

	for (int k = 0; k < s->nparked; k++)
		if (s->parked[k].session == session) {
			r = s->parked[k].r;
			s->parked[k] = s->parked[--s->nparked];
			memset(&s->parked[s->nparked], 0, sizeof s->parked[s->nparked]);
			return r;
		}
	for (int i = 0; i < s->nsubs; i++) {
		struct sub *u = &s->subs[i];

		if (u->session == session && u->keep && (u->rid_len != rid_len || memcmp(u->rid, rid, rid_len) != 0)) {
			r = u->r ? u->r : u->tail;
			u->r = u->tail = NULL;
			s->subs[i] = s->subs[--s->nsubs];
			/* its gathered frame and held notice go: the claims come again */
			pool_put(&s->pool, s->subs[s->nsubs].batch);
			memset(&s->subs[s->nsubs], 0, sizeof s->subs[s->nsubs]);
			return r;
		}
	}
	return NULL;
}

static void
sub_drop(struct dh_net_server *s, int i, const char *why)
{
	struct sub *u = &s->subs[i];

	if (why)
		slog(s, u->r == NULL, "subscriber %s (session %u) left after %llu messages: %s", u->label,
		     u->session, (unsigned long long)u->messages, why);
	sub_settle(s, u, u->r);
	sub_settle(s, u, u->tail);
	u->r = u->tail = NULL;
	sub_end(s, u);
	s->subs[i] = s->subs[--s->nsubs];
	memset(&s->subs[s->nsubs], 0, sizeof s->subs[s->nsubs]);
}

static int
sub_find(struct dh_net_server *s, const void *rid, size_t len)
{
	for (int i = 0; i < s->nsubs; i++)
		if (s->subs[i].rid_len == len && memcmp(s->subs[i].rid, rid, len) == 0)
			return i;
	return -1;
}

/* A terminal notice, then the reader goes (the entry stays until BYE or
 * silence so that late credit is not answered with RESET). */
static void
sub_finish(struct dh_net_server *s, struct sub *u, enum dh_net_code code, int err, uint64_t seq,
	   const char *text)
{
	notice_to(s, u->rid, u->rid_len, u->session, code, err, seq, text);
	slog(s, 1, "subscriber %s: %s after %llu messages", u->label, text, (unsigned long long)u->messages);
	sub_end(s, u);
}

static void
hello(struct dh_net_server *s, zmq_msg_t *rid, zmq_msg_t *frame, int64_t now)
{
	struct dh_net_hello h;
	struct dh_net_welcome w;
	struct dh_reader_opts ro = { 0 };
	const char *peer;
	struct sub *u;
	struct dh_block *b;
	struct dh_reader *adopt = NULL;
	char text[512];
	ssize_t len;
	int i, r;

	peer = zmq_msg_gets(frame, "Peer-Address");
	if (peer == NULL || *peer == '\0')
		peer = "local";
	if (dh_net_hello_decode(zmq_msg_data(frame), zmq_msg_size(frame), &h) < 0) {
		slog(s, 0, "refused a malformed HELLO from %s", peer);
		notice_to(s, zmq_msg_data(rid), zmq_msg_size(rid), 0, DH_NET_N_REFUSED, -EPROTO, 0, "malformed HELLO");
		return;
	}
	if (h.channel[0] && strcmp(h.channel, s->channel) != 0) {
		snprintf(text, sizeof text, "no channel %s here (this exporter serves %s)", h.channel, s->channel);
		slog(s, 0, "refused %s: %s", peer, text);
		notice_to(s, zmq_msg_data(rid), zmq_msg_size(rid), 0, DH_NET_N_REFUSED, -ENOENT, 0, text);
		return;
	}
	if ((i = sub_find(s, zmq_msg_data(rid), zmq_msg_size(rid))) >= 0)
		sub_drop(s, i, "said HELLO again");
	if (h.flags & DH_NET_F_RESUME)
		adopt = resumable(s, h.resume, zmq_msg_data(rid), zmq_msg_size(rid));
	if (s->nsubs >= s->max) {
		if (adopt) {
			uint64_t n = dh_reader_settle(adopt, 0);

			slog(s, 0, "session %u could not resume: %llu messages counted lost", h.resume,
			     (unsigned long long)n);
			dh_reader_close(adopt);
		}
		slog(s, 0, "refused %s: %d subscribers already", peer, s->max);
		notice_to(s, zmq_msg_data(rid), zmq_msg_size(rid), 0, DH_NET_N_REFUSED, -ENOSPC, 0,
			  "too many subscribers");
		return;
	}
	u = &s->subs[s->nsubs];
	memset(u, 0, sizeof *u);
	u->rid_len = zmq_msg_size(rid);
	memcpy(u->rid, zmq_msg_data(rid), u->rid_len);
	snprintf(u->label, sizeof u->label, "net:%s", peer);
	ro.label = u->label;
	ro.start = (enum dh_start)h.start;
	ro.start_seq = h.start_seq;
	ro.follow = (h.flags & DH_NET_F_FOLLOW) != 0;
	if (adopt) {
		/* what it received (below start_seq) is done; the rest comes again */
		u->r = adopt;
		u->redo = 1;
		u->redo_from = h.start == DH_START_SEQ ? h.start_seq : 0;
		slog(s, 0, "%s resumes session %u: %u messages in flight come again", u->label, h.resume,
		     dh_reader_release_before(adopt, u->redo_from));
		r = 0;
	} else {
		r = dh_reader_open_relay(s->channel, &ro, &u->r);
	}
	if (r == 0 && !adopt && s->o.admit && (r = s->o.admit(s->o.arg, dh_reader_block(u->r))) < 0) {
		dh_reader_close(u->r);
		u->r = NULL;
	}
	if (r < 0) {
		snprintf(text, sizeof text, "%s: %s", s->channel,
			 r == -ENOENT ? "no such channel" : r == -ENOSPC ? "reader table full" : dh_strerror(r));
		slog(s, 0, "refused %s: %s", peer, text);
		notice_to(s, u->rid, u->rid_len, 0, DH_NET_N_REFUSED, r, 0, text);
		memset(u, 0, sizeof *u);
		return;
	}
	if (s->o.cancel)
		dh_reader_set_cancel(u->r, s->o.cancel);
	u->keep = dh_block_config(dh_reader_block(u->r))->policy == DH_POLICY_QUEUE &&
		  (adopt || dh_reader_keep_claims(u->r) == 0);
	b = dh_reader_block(u->r);
	memset(&w, 0, sizeof w);
	do
		u->session = randombytes_random();
	while (u->session == 0);
	w.session = u->session;
	w.policy = dh_block_config(b)->policy;
	w.checksum = dh_block_config(b)->checksum;
	w.slots = dh_block_config(b)->slots;
	w.slot_size = dh_block_config(b)->slot_size;
	memcpy(w.chan_id, b->chan_id, 16);
	w.keyed = dh_block_key_id(b, w.key_id) == 0;
	if ((w.record_size = (uint32_t)dh_block_schema(b, w.schema, sizeof w.schema, w.schema_hash)) > 0)
		w.has_schema = 1;
	else
		memset(w.schema_hash, 0, sizeof w.schema_hash), w.schema[0] = '\0';
	u->ordered = dh_policy_info(w.policy)->in_order;
	/* what the subscriber asked for is where the loss count starts */
	u->expected = h.start == DH_START_SEQ ? h.start_seq : dh_reader_position(u->r);
	w.start = u->expected;
	if (w.slot_size > DH_NET_PAYLOAD_MAX) {
		snprintf(text, sizeof text, "%s: slots of %u bytes are too large to export (at most %u)", s->channel,
			 w.slot_size, DH_NET_PAYLOAD_MAX);
		notice_to(s, u->rid, u->rid_len, 0, DH_NET_N_REFUSED, -DH_ETOOBIG, 0, text);
		slog(s, 0, "refused %s: %s", peer, text);
		sub_settle(s, u, u->r);
		u->r = NULL;
		sub_end(s, u);
		memset(u, 0, sizeof *u);
		return;
	}
	if ((len = dh_net_welcome_encode(&w, s->buf, DH_NET_CTL_MAX)) < 0 ||
	    send_to(s, u->rid, u->rid_len, s->buf, (size_t)len, NULL, 0, 0) < 0) {
		slog(s, 0, "subscriber %s: cannot send WELCOME", peer);
		sub_settle(s, u, u->r);
		u->r = NULL;
		sub_end(s, u);
		memset(u, 0, sizeof *u);
		return;
	}
	u->window = h.window;
	u->credit = h.window;
	u->slot = w.slot_size;
	u->cap = DH_NET_DATA_HEAD + w.slot_size > BATCH_BYTES ? DH_NET_DATA_HEAD + w.slot_size : BATCH_BYTES;
	u->heard = u->sent = now;
	s->nsubs++;
	slog(s, 0, "subscriber %s joined (session %u, from %s, window %u)", u->label, u->session,
	     h.start == DH_START_SEQ ? "a seq" : "its start", h.window);
}

static void
input(struct dh_net_server *s, int64_t now)
{
	zmq_msg_t p[3];
	int n, i, t;

	n = dh__broker_recv_parts(s->sock, p, 3, ZMQ_DONTWAIT);
	if (n < 0)
		return;
	if (n != 2) {
		slog(s, 0, "dropped a message of %d frames from a subscriber", n - 1);
		goto out;
	}
	i = sub_find(s, zmq_msg_data(&p[0]), zmq_msg_size(&p[0]));
	t = dh_net_frame_type(zmq_msg_data(&p[1]), zmq_msg_size(&p[1]), NULL);
	if (t == DH_NET_HELLO) {
		hello(s, &p[0], &p[1], now);
	} else if (t == DH_NET_CREDIT) {
		struct dh_net_credit c;

		if (i < 0) {
			notice_to(s, zmq_msg_data(&p[0]), zmq_msg_size(&p[0]), 0, DH_NET_N_RESET, 0, 0,
				  "unknown connection: HELLO again");
		} else if (dh_net_credit_decode(zmq_msg_data(&p[1]), zmq_msg_size(&p[1]), &c) < 0 ||
			   s->subs[i].credit + c.grant > s->subs[i].window) {
			/* more than its window: it would make us queue without bound */
			notice_to(s, s->subs[i].rid, s->subs[i].rid_len, s->subs[i].session, DH_NET_N_ERROR, -EPROTO,
				  0, "credit beyond the declared window");
			sub_drop(s, i, "bad CREDIT (beyond its window)");
		} else {
			struct sub *u = &s->subs[i];

			u->credit += c.grant;
			u->heard = now;
			/* what it passed on is done; the rest stays claimed */
			if (c.ack && u->r && u->keep)
				(void)dh_reader_release_before(u->r, c.ack);
			if (c.ack && u->tail && dh_reader_release_before(u->tail, c.ack) == 0) {
				dh_reader_close(u->tail);
				u->tail = NULL;
			}
		}
	} else if (t == DH_NET_BYE) {
		if (i >= 0)
			sub_drop(s, i, "said BYE");
	} else {
		if (i >= 0)
			sub_drop(s, i, "sent a bad frame");
		else
			slog(s, 0, "dropped a bad frame (%zu bytes) from an unknown connection", zmq_msg_size(&p[1]));
	}
out:
	dh__broker_close_parts(p, n);
}

/* Buffers carry their size in front (libzmq gives the free function the
 * data pointer only): one of another size (the channel changed hands)
 * is freed rather than kept. */
#define POOL_HEAD 16

static unsigned char *
pool_get(struct pool *p, size_t size)
{
	unsigned char *b = NULL;

	pthread_mutex_lock(&p->mu);
	if (p->size != size) {
		while (p->n > 0)
			free(p->buf[--p->n]);
		p->size = size;
	} else if (p->n > 0) {
		b = p->buf[--p->n];
	}
	pthread_mutex_unlock(&p->mu);
	if (b == NULL && (b = malloc(POOL_HEAD + size)) != NULL)
		memcpy(b, &size, sizeof size);
	return b ? b + POOL_HEAD : NULL;
}

static void
pool_put(struct pool *p, unsigned char *data)
{
	unsigned char *b;
	size_t size;

	if (data == NULL)
		return;
	b = data - POOL_HEAD;
	memcpy(&size, b, sizeof size);
	pthread_mutex_lock(&p->mu);
	if (p->n < POOL_MAX && size == p->size) {
		p->buf[p->n++] = b;
		b = NULL;
	}
	pthread_mutex_unlock(&p->mu);
	free(b);
}

/* libzmq's free function: called from its I/O thread once sent. */
static void
free_batch(void *data, void *hint)
{
	pool_put(hint, data);
}

/* Send u's batch (if any), then its held notice (if any): 0, -EAGAIN (no
 * room in its pipe now: both kept, in order, for later), other: gone. */
static int
drain(struct dh_net_server *s, struct sub *u, int64_t now)
{
	zmq_msg_t frame;

	if (u->blen > 0) {
		if (zmq_send(s->sock, u->rid, u->rid_len, ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0)
			return -errno;
		/* the buffer becomes the frame: libzmq frees it once sent */
		if (zmq_msg_init_data(&frame, u->batch, u->blen, free_batch, &s->pool) < 0)
			return -ENOMEM;
		u->batch = NULL;
		u->blen = 0;
		if (zmq_msg_send(&frame, s->sock, 0) < 0) {
			int e = errno;
			zmq_msg_close(&frame);
			return -e;
		}
		u->sent = now;
	}
	if (u->pend.code) {
		struct dh_net_notice n = u->pend;

		memset(&u->pend, 0, sizeof u->pend);
		if (n.code == DH_NET_N_CHECKSUM) {
			notice_to(s, u->rid, u->rid_len, u->session, n.code, n.err, n.seq, n.text);
		} else {
			sub_finish(s, u, n.code, n.err, n.seq, n.text);
		}
	}
	return 0;
}

/* Append the message in hand to u's batch; the slot is let go at once. */
static int
append(struct dh_net_server *s, struct sub *u, const struct dh_msg *m, const uint8_t *check, int64_t now)
{
	struct dh_net_data d = { 0 };

	if (u->batch == NULL && (u->batch = pool_get(&s->pool, u->cap)) == NULL)
		return -ENOMEM;
	d.session = u->session;
	d.len = (uint32_t)m->len;
	d.seq = m->seq;
	d.time_ns = m->time_ns;
	/* ordered: whatever lies between what it should have got and what
	 * it gets is loss, counted here so no gap is ever silent */
	d.lost = u->ordered ? (m->seq > u->expected ? m->seq - u->expected : 0) : m->lost;
	if (check)
		memcpy(d.check, check, sizeof d.check);
	else
		dh_reader_check(u->r, d.check);
	if (dh_net_data_encode(&d, u->batch + u->blen, DH_NET_DATA_HEAD) < 0)
		return -EINVAL;
	memcpy(u->batch + u->blen + DH_NET_DATA_HEAD, m->data, m->len);
	u->blen += DH_NET_DATA_HEAD + m->len;
	u->credit--;
	u->messages++;
	u->expected = m->seq + 1;
	(void)now;
	/* sync: the slot is ours until released; the copy is in the batch.
	 * A kept queue claim waits for the subscriber's acknowledgement. */
	if (!u->keep)
		dh_reader_release(u->r);
	return 0;
}

/* What dh_reader_next said, when it was not a message, as the notice to
 * send after the batch: 0 (none: no data now), -EINTR: stop serving. */
static int
reader_event(struct dh_net_server *s, struct sub *u, int rc, uint64_t seq)
{
	struct dh_net_notice *n = &u->pend;

	switch (rc) {
	case -EAGAIN:
	case -ETIMEDOUT:
		return 0;
	case -EINTR:
		return -EINTR;
	case DH_END:
		n->code = DH_NET_N_EOS;
		snprintf(n->text, sizeof n->text, "end-of-stream");
		break;
	case -DH_EWRITERDEAD:
		n->code = DH_NET_N_WRITER_DEAD;
		snprintf(n->text, sizeof n->text, "writer died without marking end-of-stream");
		break;
	case -DH_EEVICTED:
		n->code = DH_NET_N_EVICTED;
		snprintf(n->text, sizeof n->text, "evicted for stalling the sync writer");
		break;
	case -DH_ECHECKSUM:
		n->code = DH_NET_N_CHECKSUM;
		n->seq = seq;
		n->err = rc;
		snprintf(n->text, sizeof n->text, "checksum mismatch at the exporter");
		u->expected = seq + 1;
		return 0;
	default:
		n->code = DH_NET_N_ERROR;
		snprintf(n->text, sizeof n->text, "%.60s: %.120s", s->channel, dh_strerror(rc));
		break;
	}
	n->err = rc > 0 ? 0 : rc;
	n->seq = u->expected;
	return 0;
}

/* Move messages to u while it has credit: as many as are there now go
 * into one frame (never waiting to fill it), so small messages cost one
 * frame per batch, not one each.  Returns how many, or -EINTR. */
static int
pump(struct dh_net_server *s, int i, int64_t now, int64_t wait_ns)
{
	struct sub *u = &s->subs[i];
	struct dh_msg m;
	int sent = 0, r = 0;

	if ((u->blen || u->pend.code) && (r = drain(s, u, now)) < 0)
		goto out;
	while (u->r && u->credit > 0 && !u->pend.code && sent < BURST) {
		if (u->blen && u->blen + DH_NET_DATA_HEAD + u->slot > u->cap && (r = drain(s, u, now)) < 0)
			goto out;
		if (u->redo) {
			uint8_t chk[32];

			/* resumed: what the last session never acknowledged first */
			if ((r = dh_reader_kept_next(u->r, u->redo_from, &m, chk)) == 0) {
				if ((r = append(s, u, &m, chk, now)) < 0)
					goto out;
				u->redo_from = m.seq + 1;
				sent++;
				continue;
			}
			if (r != -ENOENT)
				slog(s, 0, "subscriber %s: a claimed message is gone from its slot (%s)", u->label,
				     dh_strerror(r));
			u->redo = 0;
			continue;
		}
		r = dh_reader_next(u->r, &m, sent ? 0 : wait_ns);
		if (r == 0) {
			if ((r = append(s, u, &m, NULL, now)) < 0)
				goto out;
			sent++;
			continue;
		}
		if ((r = reader_event(s, u, r, m.seq)) < 0)
			return r;
		break;
	}
	r = (u->r && (u->blen || u->pend.code)) ? drain(s, u, now) : 0;
out:
	if (r < 0 && r != -EAGAIN) {
		sub_park(s, u, now);
		sub_drop(s, i, "connection gone");
	}
	return sent;
}

/* Stopping: a queue's subscribers acknowledge what they passed on when
 * they go idle; hear them for a moment (sending what is gathered first)
 * so that only what truly went missing is counted lost at close. */
static void
await_acks(struct dh_net_server *s)
{
	zmq_pollitem_t item = { s->sock, 0, ZMQ_POLLIN, 0 };
	int64_t end = dh__broker_mono_ns() + ACK_LINGER_NS;

	for (;;) {
		int64_t now = dh__broker_mono_ns();
		uint32_t ev = 0;
		size_t evl = sizeof ev;
		int pending = 0;

		for (int i = 0; i < s->nsubs; i++) {
			struct sub *u = &s->subs[i];
			int before = s->nsubs, r;

			if (!u->keep)
				continue;
			if (u->r && (u->blen || u->pend.code) && (r = drain(s, u, now)) < 0 && r != -EAGAIN) {
				sub_drop(s, i, "connection gone");
				i -= s->nsubs != before;
				continue;
			}
			pending |= u->tail != NULL || (u->r && dh_reader_release_before(u->r, 0) > 0);
		}
		if (!pending || now >= end)
			return;
		(void)zmq_poll(&item, 1, 20);
		while (zmq_getsockopt(s->sock, ZMQ_EVENTS, &ev, &evl) == 0 && (ev & ZMQ_POLLIN))
			input(s, dh__broker_mono_ns());
	}
}

int
dh_net_server_run(struct dh_net_server *s, volatile sig_atomic_t *stop, char *err, size_t cap)
{
	zmq_pollitem_t item = { s->sock, 0, ZMQ_POLLIN, 0 };
	int64_t now, last_tick = 0;

	for (;;) {
		int progress = 0, waiting = -1, r;
		uint32_t ev = 0;
		size_t evl = sizeof ev;

		if ((stop && *stop) || (s->o.cancel && dh_cancel_raised(s->o.cancel))) {
			await_acks(s);
			return 0;
		}
		now = dh__broker_mono_ns();
		while (zmq_getsockopt(s->sock, ZMQ_EVENTS, &ev, &evl) == 0 && (ev & ZMQ_POLLIN)) {
			input(s, now);
			progress = 1;
		}
		for (int i = 0; i < s->nsubs; i++) {
			struct sub *u = &s->subs[i];
			int before = s->nsubs;

			if (u->r == NULL || (u->credit == 0 && !u->blen && !u->pend.code))
				continue;
			if ((r = pump(s, i, now, 0)) < 0) {
				await_acks(s); /* cancelled */
				return 0;
			}
			if (s->nsubs != before) {
				i--;
				continue;
			}
			if (r > 0)
				progress = 1;
			else if (u->r && !u->blen && !u->pend.code && u->credit > 0)
				waiting = i;
		}
		if (now - last_tick >= 100000000LL) {
			last_tick = now;
			for (int k = 0; k < s->nparked; k++)
				if (now - s->parked[k].since > PARK_NS)
					parked_settle(s, k--);
			for (int i = 0; i < s->nsubs; i++) {
				struct sub *u = &s->subs[i];

				if (now - u->heard > s->o.idle_ns) {
					sub_park(s, u, now);
					sub_drop(s, i--, "silent too long");
					continue;
				}
				if (u->r && now - u->sent >= PING_NS) {
					notice_to(s, u->rid, u->rid_len, u->session, DH_NET_N_PING, 0, u->expected, "");
					u->sent = now;
				}
			}
		}
		if (progress)
			continue;
		/* Idle.  A subscriber waiting for data: wait on the channel a
		 * little (a commit wakes us at once), then look at the
		 * network again; otherwise only the network can wake us. */
		if (waiting >= 0 && waiting < s->nsubs) {
			if (pump(s, waiting, now, WAIT_DATA_NS) < 0) {
				await_acks(s);
				return 0;
			}
			continue;
		}
		r = zmq_poll(&item, 1, 100);
		if (r < 0 && errno != EINTR) {
			seterr(err, cap, "poll: %s", zmq_strerror(errno));
			return -errno;
		}
	}
}

void
dh_net_server_close(struct dh_net_server *s)
{
	if (s == NULL)
		return;
	while (s->nsubs > 0) {
		struct sub *u = &s->subs[s->nsubs - 1];

		/* tell it to come back (resume), not that the stream ended */
		if (u->r)
			notice_to(s, u->rid, u->rid_len, 0, DH_NET_N_RESET, 0, 0, "exporter stopping");
		sub_drop(s, s->nsubs - 1, NULL);
	}
	while (s->nparked > 0)
		parked_settle(s, s->nparked - 1);
	if (s->sock)
		zmq_close(s->sock);
	dh_broker_zap_stop(s->zap);
	if (s->ctx)
		zmq_ctx_term(s->ctx); /* every frame's buffer is back in the pool now */
	while (s->pool.n > 0)
		free(s->pool.buf[--s->pool.n]);
	pthread_mutex_destroy(&s->pool.mu);
	free(s->subs);
	free(s->parked);
	free(s->buf);
	free(s);
}
