/* dh_broker_client.h: a broker's clients: requests, events, sessions, and the protocol's limits and key files they share with it. See LICENSE. */
#ifndef DH_BROKER_CLIENT_H
#define DH_BROKER_CLIENT_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "dh_block.h"

/*
 * The broker is a registry of channels across hosts: writers register and
 * heartbeat, readers register, anyone discovers, lists and subscribes to
 * events.  No data flows through it.  docs/PROTOCOL.md is the wire
 * protocol.  This header is what a client needs: the protocol's limits,
 * endpoints, CURVE key files, a connection to a broker (one request at a
 * time), an event subscriber, and a session that keeps one registration
 * alive from a thread of its own (what dh-write and dh-read use).  The
 * broker itself (request handler, ZAP handler, server loop) is in
 * dh_broker.h.
 *
 * Errors are 0 / -errno / -DH_E*.  Replies that carry a protocol error map
 * to: not_found, not_registered -> -ENOENT; conflict -> -EBUSY;
 * schema_mismatch -> -DH_ESCHEMA; too_many -> -ENOSPC; invalid_request,
 * unknown_type, too_large and malformed replies -> -EPROTO.  No reply
 * within the timeout -> -ETIMEDOUT; handshake refused by a CURVE broker ->
 * -EACCES (when libzmq reports it; otherwise it is a timeout).
 */

#define DH_BROKER_PROTOCOL 3        /* 2: list and discover replies are paged; 3: readers may be dh-net exporters */
#define DH_BROKER_MSG_MAX 16384u          /* largest request, bytes (ZMQ_MAXMSGSIZE) */
#define DH_BROKER_REPLY_MAX (64u << 20)   /* largest reply or event a client accepts */
#define DH_BROKER_DEPTH_MAX 3             /* JSON nesting of a request */
#define DH_BROKER_ID_MAX 64               /* request id, bytes */
#define DH_BROKER_HOST_MAX 255            /* host name, bytes */
#define DH_BROKER_LABEL_MAX (DH_PNAME_MAX - 1)
#define DH_BROKER_DETAIL_MAX 256          /* checksum_failure detail, bytes */
#define DH_BROKER_TOKEN_LEN 32            /* registration token: hex digits */
#define DH_BROKER_METRICS_MAX 32          /* entries of a metrics object */
#define DH_BROKER_METRIC_NAME_MAX 63      /* bytes of a metric name */
#define DH_BROKER_PEER_MAX 80             /* peer identity passed to the handler */
#define DH_BROKER_SCHEMA_MAX 1023         /* canonical schema, bytes (DH_SCHEMA_MAX - 1) */
#define DH_BROKER_PAGE_BYTES 65536u       /* list/discover reply budget: more only for one channel */
#define DH_BROKER_REPLY_QUEUE 100         /* replies queued per connection (ZMQ_SNDHWM) */

/* ==== CURVE key files ==================================================== */

/*
 * Key files hold one Z85-encoded CurveZMQ key (40 characters) and
 * optionally a newline.  Secret key files must be regular files owned by
 * the caller without group or other permissions.  A key directory, as
 * made by dh_broker_keygen:
 *
 *   DIR/broker.key      broker secret key
 *   DIR/broker.pub      broker public key: clients need it
 *   DIR/clients/        allow-list: one NAME.pub per admitted client
 *   DIR/client.key      a client secret key for local clients ...
 *   DIR/clients/client.pub  ... and its public key, admitted
 */
#define DH_BROKER_Z85_LEN 40

/* Create DIR (mode 0700; an existing directory of ours is fine) and
 * the files above, all with O_EXCL|O_NOFOLLOW and mode 0600.  -EEXIST if
 * one of them exists.  Files created before a failure are removed. */
int dh_broker_keygen(const char *dir);

/* Load the Z85 key in path into z85 (NUL-terminated). secret: check the
 * file's owner and mode (-DH_EKEYMODE). -EINVAL if it holds no valid key;
 * -ENOENT, -EACCES, -ELOOP (symlink for a secret key), ... */
int dh_broker_key_load(const char *path, int secret, char z85[DH_BROKER_Z85_LEN + 1]);

/* The public key of a Z85 secret key. -EINVAL if it is not one. */
int dh_broker_key_public(const char *secret_z85, char public_z85[DH_BROKER_Z85_LEN + 1]);

/* ==== Client ============================================================= */

/* Default request endpoint: ipc://$XDG_RUNTIME_DIR/dh-broker.sock when
 * that variable is set to an absolute path, else ipc:///tmp/dh-broker.sock.
 * Returns buf, or NULL if cap is too small. */
const char *dh_broker_default_endpoint(char *buf, size_t cap);

/* Is ep an endpoint the broker and its clients accept?  ipc://PATH,
 * inproc://NAME, or tcp://HOST:PORT with PORT a decimal 0..65535 or "*"
 * (0 and "*": any free port, for a bind).  libzmq itself takes a larger
 * number modulo 65536, which would bind or connect somewhere else.
 * 0 or -EINVAL. */
int dh_broker_endpoint_check(const char *ep);

struct dh_broker_opts {
	const char *endpoint;      /* NULL: dh_broker_default_endpoint */
	const char *server_key;    /* broker public key file: CURVE; NULL: none */
	const char *client_key;    /* our secret key file (needed with server_key) */
	int64_t timeout_ns;        /* per request; <= 0: 2 s */
};

/*
 * The environment the dh commands share, for options the caller left NULL:
 * endpoint from DH_BROKER; with DH_CURVE_DIR (and neither key set),
 * server_key = DIR/broker.pub and client_key = DIR/client.key (the paths
 * are written into buf, cap bytes, which must outlive opts).  Returns 1
 * when a broker is configured (an endpoint given or in DH_BROKER), 0 when
 * not (commands then run without a broker), -ENAMETOOLONG.
 */
int dh_broker_opts_env(struct dh_broker_opts *opts, char *buf, size_t cap);

struct dh_broker_client;

/* Connect (libzmq connects in the background: nothing is sent yet, so a
 * missing broker shows as -ETIMEDOUT on the first request).  Key errors as
 * dh_broker_key_load; -EINVAL for a bad endpoint or client_key without
 * server_key.  One thread at a time per client. */
int dh_broker_connect(const struct dh_broker_opts *opts, struct dh_broker_client **out);
void dh_broker_disconnect(struct dh_broker_client *c);

/* The message of the last error reply, or a description of the last
 * failure ("" after a success). Valid until the next call on c. */
const char *dh_broker_errmsg(const struct dh_broker_client *c);

/* Send one raw request (a JSON object; its "id" is replaced) and return
 * the raw reply in *reply (malloc'd, NUL-terminated): 0 even for error
 * replies.  For tools and tests; the calls below are built on it. */
int dh_broker_request(struct dh_broker_client *c, const char *json, char **reply);

struct dh_broker_pong {
	int protocol;
	char version[32];
	int64_t heartbeat_ns, stale_ns, expire_ns;
	char events[256];          /* events endpoint as bound, "" if none */
};
int dh_broker_ping(struct dh_broker_client *c, struct dh_broker_pong *out);

/* This host's name as registrations use it by default: gethostname(), or
 * "localhost" if that is empty or has characters the protocol refuses.
 * Returns buf, NULL if cap is too small (DH_BROKER_HOST_MAX + 1 is enough). */
const char *dh_broker_local_host(char *buf, size_t cap);

/* What a writer registers: its channel as created. */
struct dh_broker_reg {
	const char *channel;
	const char *host;          /* NULL: dh_broker_local_host() */
	pid_t pid;                 /* 0: getpid() */
	const char *label;         /* NULL: none */
	enum dh_policy policy;
	uint32_t slots, slot_size, max_readers;
	enum dh_checksum checksum;
	int has_schema;
	uint8_t schema_hash[32];
	const char *schema;        /* canonical form, or NULL (hash only) */
	int keyed;
	uint8_t key_id[32];
	/* A reader that is a dh-net exporter (dh-read --serve): the endpoint
	 * it serves the channel at, registered with transport "zmq"
	 * (protocol 3). NULL: an ordinary reader (transport "shm"). */
	const char *endpoint;
	/* With endpoint: not an exporter but a reader on another host that
	 * reads the channel through the exporter at endpoint (role
	 * "subscriber"; discovery never hands its endpoint out). */
	int subscriber;
};

/* Fill reg (except host, pid, label) from an open channel: geometry,
 * policy, checksum, schema hash and text (the text points into the
 * caller's schema_buf of cap bytes: DH_SCHEMA_MAX is enough) and key id. */
int dh_broker_reg_from_block(struct dh_block *blk, const char *channel, struct dh_broker_reg *reg,
			     char *schema_buf, size_t cap);

/* Register a writer (or a reader: channel, host, pid, label and, when
 * has_schema, the schema hash it expects; the rest is ignored).  The token
 * (DH_BROKER_TOKEN_LEN hex digits and a NUL) names the registration for
 * heartbeat and deregister.  *heartbeat_ns (may be NULL) is the interval
 * the broker asks for.  -EBUSY: another live writer has this host+channel;
 * -DH_ESCHEMA: schema differs from the channel's; -ENOENT (reader): the
 * channel is not registered; -ENOSPC: broker full. */
int dh_broker_register(struct dh_broker_client *c, const struct dh_broker_reg *reg,
		       char token[DH_BROKER_TOKEN_LEN + 1], int64_t *heartbeat_ns);
int dh_broker_register_reader(struct dh_broker_client *c, const struct dh_broker_reg *reg,
			      char token[DH_BROKER_TOKEN_LEN + 1], int64_t *heartbeat_ns);

/* Counters a writer's heartbeat carries (shown by list). */
struct dh_broker_metric {
	const char *name;          /* [A-Za-z0-9_.-], 1..DH_BROKER_METRIC_NAME_MAX */
	int64_t value;
};

/* Fill up to cap metrics from a snapshot (names are static strings):
 * committed, messages, bytes, writer_waits, checksum_failures, readers,
 * lost, ...  Returns the count. */
size_t dh_broker_metrics_from_snapshot(const struct dh_snapshot *s, struct dh_broker_metric *m,
				       size_t cap);

/* Heartbeat token with n metrics (m may be NULL when n is 0). -ENOENT:
 * the broker does not know the token (it restarted or expired us):
 * register again. */
int dh_broker_heartbeat(struct dh_broker_client *c, const char *token,
			const struct dh_broker_metric *m, size_t n);
int dh_broker_deregister(struct dh_broker_client *c, const char *token);

/* One registered channel as discover and list report it. */
struct dh_broker_info {
	char channel[DH_NAME_MAX + 1];
	char host[DH_BROKER_HOST_MAX + 1];
	int stale;                 /* writer missed heartbeats */
	pid_t pid;
	char label[DH_PNAME_MAX];
	enum dh_policy policy;
	uint32_t slots, slot_size, max_readers;
	enum dh_checksum checksum;
	int has_schema;
	uint8_t schema_hash[32];
	int keyed;
	uint8_t key_id[32];
	int64_t age_ms;            /* since the writer's last heartbeat */
	int64_t since_ms;          /* registration time, ms since the epoch */
	unsigned readers;          /* reader registrations */
};

/* Find channel (on host, or on any host when host is NULL; a live one is
 * preferred).  0 and *out; -ENOENT if it is not registered. */
int dh_broker_discover(struct dh_broker_client *c, const char *channel, const char *host,
		       struct dh_broker_info *out);

/* The endpoint of a live dh-net exporter of channel (a reader registered
 * with transport "zmq"), on host or on any host, into ep (cap bytes), and
 * the host of the channel it serves into chan_host (DH_BROKER_HOST_MAX + 1
 * bytes; may be NULL).  0; -ENOENT if the channel is not registered or
 * nobody exports it; -ENAMETOOLONG. */
int dh_broker_discover_export(struct dh_broker_client *c, const char *channel, const char *host, char *ep,
			      size_t cap, char *chan_host);

/* dh_broker_discover every 100 ms until a live registration appears:
 * 0, -ETIMEDOUT after timeout_ns (< 0: forever), -EINTR if a signal
 * interrupted the wait, other errors as they come (a broker that does not
 * answer is retried until the deadline). */
int dh_broker_wait_channel(struct dh_broker_client *c, const char *channel, const char *host,
			   int64_t timeout_ns, struct dh_broker_info *out);

/* All registrations (only channel's when channel != NULL): *out is a
 * malloc'd array of *n entries (free it); *json (may be NULL) gets the
 * "channels" array as JSON text (malloc'd), readers and metrics
 * included.  The broker replies a page at a time; this asks for every
 * page (channels registered meanwhile may or may not appear, none twice). */
int dh_broker_list(struct dh_broker_client *c, const char *channel, struct dh_broker_info **out,
		   size_t *n, char **json);

/* Tell the broker (and its subscribers) that a reader on host found a
 * checksum failure on channel at seq; detail may be NULL. */
int dh_broker_report_checksum(struct dh_broker_client *c, const char *channel, const char *host,
			      pid_t pid, uint64_t seq, const char *detail);

/* ---- events ---- */

struct dh_broker_events;

/* Subscribe to the events endpoint (opts->endpoint; same CURVE keys as
 * for requests).  dh_broker_events_next returns one event (malloc'd
 * NUL-terminated JSON object; its length is returned): -ETIMEDOUT after
 * timeout_ns (< 0: forever), -EINTR on a signal. */
int dh_broker_events_open(const struct dh_broker_opts *opts, struct dh_broker_events **out);
ssize_t dh_broker_events_next(struct dh_broker_events *e, char **json, int64_t timeout_ns);
void dh_broker_events_close(struct dh_broker_events *e);

/* The events endpoint of the broker c talks to, connectable: the one ping
 * reports, with a wildcard tcp host ("*", 0.0.0.0, [::]) replaced by the
 * host of the request endpoint.  -ENOENT if the broker publishes none. */
int dh_broker_events_endpoint(struct dh_broker_client *c, char *buf, size_t cap);

/* ---- session: a registration kept alive by a thread ---- */

enum dh_broker_role { DH_BROKER_WRITER = 0, DH_BROKER_READER = 1 };

struct dh_broker_session_opts {
	struct dh_broker_opts broker;
	enum dh_broker_role role;
	struct dh_broker_reg reg;  /* copied (strings too) */
	/* writer: send the counters of this channel (opened read-only by the
	 * session) with every heartbeat; NULL: none */
	const char *metrics_channel;
	/* Called from the session thread whenever the state changes: 0 once
	 * registered, or the error that ended it (-ETIMEDOUT broker gone,
	 * -EBUSY, -DH_ESCHEMA, ...) with a message. May be NULL. */
	void (*notify)(void *arg, int state, const char *msg);
	void *arg;
};

/*
 * Start a thread that registers, heartbeats at the interval the broker
 * asks for, registers again when the broker forgets us (restart, expiry)
 * and retries with back-off while the broker is unreachable.  It never
 * blocks the caller: start returns at once (the first registration runs
 * in the thread).  The thread blocks all signals.  -EINVAL, -ENOMEM,
 * -EAGAIN (thread), key errors.
 */
struct dh_broker_session;
int dh_broker_session_start(const struct dh_broker_session_opts *opts, struct dh_broker_session **out);

/* Queue a checksum failure at seq (detail may be NULL) for the session
 * thread to report for the session's channel, host and pid: never blocks.
 * -ENOBUFS when 16 reports are already waiting (the broker is slow or
 * gone); reports are best effort. Thread-safe. */
int dh_broker_session_report_checksum(struct dh_broker_session *s, uint64_t seq, const char *detail);

/* Current state: 1 not yet tried, 0 registered, or the last error. Thread-safe. */
int dh_broker_session_state(struct dh_broker_session *s);

/* Stop the thread: it gives up a request in flight, deregisters if the
 * broker answered its last request (one attempt of at most 500 ms: a
 * broker that is gone never delays the caller, it expires us anyway),
 * and everything is freed. NULL is a no-op. */
void dh_broker_session_stop(struct dh_broker_session *s);

#endif
