/* broker_client.c: the client: one connection to a broker, one request at a time, and the calls built on it. See LICENSE. */
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <sodium.h>
#include <zmq.h>

#include "broker_impl.h"
#include "dh_error.h"
#include "dh_block.h"

#define MS 1000000LL
#define DEFAULT_TIMEOUT (2000 * MS)

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
	if ((r = dh__broker_open_socket(o, ZMQ_DEALER, &c->ctx, &c->sock, c->endpoint, sizeof c->endpoint)) < 0) {
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

void
dh__broker_client_cancel(struct dh_broker_client *c, atomic_int *flag)
{
	c->cancel = flag;
}

void
dh__broker_client_limit(struct dh_broker_client *c, int64_t max_ns)
{
	if (c->timeout_ns > max_ns)
		c->timeout_ns = max_ns;
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

	while (c->mon && (n = dh__broker_recv_parts(c->mon, p, 2, ZMQ_DONTWAIT)) > 0) {
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
		dh__broker_close_parts(p, n);
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
		int64_t left = deadline - dh__broker_mono_ns();
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
	int64_t deadline = dh__broker_mono_ns() + c->timeout_ns;
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
		n = dh__broker_recv_parts(c->sock, p, 2, ZMQ_DONTWAIT);
		if (n == -EAGAIN || n == -EINTR)
			continue;
		if (n < 0) {
			seterr(c, "receive: %s", zmq_strerror(-n));
			return n;
		}
		rep = n == 1 ? json_loadb(zmq_msg_data(&p[0]), zmq_msg_size(&p[0]), 0, NULL) : NULL;
		dh__broker_close_parts(p, n);
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
	if (reader && reg->endpoint) {
		json_object_set_new(req, "transport", json_string("zmq"));
		json_object_set_new(req, "endpoint", json_string(reg->endpoint));
		if (reg->subscriber)
			json_object_set_new(req, "role", json_string("subscriber"));
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
			reg->keyed = dh_block_key_id(blk, reg->key_id) == 0 && memcmp(reg->key_id, zero, 32) != 0;
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
	PUT("stream", s->stream);
	PUT("readers", readers);
	PUT("lost", lost);
	PUT("writer_waits", s->writer_waits);
	PUT("writer_wait_ms", s->writer_wait_ns / 1000000);
	PUT("checksum_failures", s->checksum_failures > (uint64_t)rfail ? s->checksum_failures : (uint64_t)rfail);
	PUT("readers_reaped", s->readers_reaped);
	PUT("evictions", s->evictions);
	PUT("queue_lost", s->queue_lost);
	PUT("readers_lost", s->readers_lost);
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
dh_broker_discover_export(struct dh_broker_client *c, const char *channel, const char *host, char *ep,
			  size_t cap, char *chan_host)
{
	json_t *req = json_pack("{s:s,s:s}", "type", "discover", "channel", channel ? channel : ""), *rep, *chans;
	int r = -ENOENT;

	if (req == NULL)
		return -ENOMEM;
	if (host)
		json_object_set_new(req, "host", json_string(host));
	r = transact(c, req, &rep, NULL);
	json_decref(req);
	if (r < 0)
		return r;
	r = -ENOENT;
	chans = json_object_get(rep, "channels");
	/* live registrations come first: the first one exported wins */
	for (size_t i = 0; r == -ENOENT && i < json_array_size(chans); i++) {
		json_t *ch = json_array_get(chans, i);
		const char *e = json_string_value(json_object_get(ch, "zmq_endpoint"));
		const char *h = json_string_value(json_object_get(ch, "host"));

		if (e == NULL || h == NULL)
			continue;
		if ((size_t)snprintf(ep, cap, "%s", e) >= cap || dh_broker_endpoint_check(ep) < 0) {
			r = -ENAMETOOLONG;
			break;
		}
		if (chan_host)
			snprintf(chan_host, DH_BROKER_HOST_MAX + 1, "%s", h);
		r = 0;
	}
	if (r == -ENOENT)
		seterr(c, "channel %s is not exported", channel);
	json_decref(rep);
	return r;
}

int
dh_broker_wait_channel(struct dh_broker_client *c, const char *channel, const char *host,
		       int64_t timeout_ns, struct dh_broker_info *out)
{
	int64_t deadline = timeout_ns < 0 ? INT64_MAX : dh__broker_mono_ns() + timeout_ns;
	int64_t saved = c->timeout_ns;
	int r;

	for (;;) {
		int64_t left = deadline - dh__broker_mono_ns();
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
		left = deadline - dh__broker_mono_ns();
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
