/* dh_broker.h: the broker: its request handler, the ZAP handler a CURVE broker runs, and its server loop. See LICENSE. */
#ifndef DH_BROKER_H
#define DH_BROKER_H

#include <signal.h>

#include "dh_broker_client.h"

/*
 * The broker side of docs/PROTOCOL.md (the client side, the limits and
 * the key files are in dh_broker_client.h, included here):
 *
 *  1. the request handler: broker state + one request (JSON bytes) ->
 *     one reply (JSON bytes) + events (JSON bytes, through a callback).
 *     No sockets, no clock reads for liveness (the caller passes the
 *     time), so it can be unit-tested and fuzzed;
 *  2. the allow-list and the ZAP handler a CURVE broker runs;
 *  3. the server: the handler behind a ROUTER socket (requests) and an
 *     XPUB socket (events), served until a stop flag is set.
 *
 * Errors are 0 / -errno / -DH_E*.
 */

/* ==== 1. Request handler ================================================ */

struct dh_broker;

struct dh_broker_config {
	int64_t heartbeat_ns;      /* interval clients are told to keep; default 1 s */
	unsigned stale_misses;     /* stale after this many intervals of silence (3) */
	unsigned expire_misses;    /* removed after this many (10; > stale_misses) */
	unsigned max_regs;         /* registrations, writers plus readers (4096) */
	unsigned max_per_peer;     /* registrations per peer (256) */
	unsigned max_readers;      /* reader registrations per channel (DH_READERS_MAX) */
	const char *events;        /* events endpoint reported by ping, or NULL (copied) */
	/* Bytes of channel descriptions in one list or discover reply: a page
	 * stops before the channel that would pass it (a page holds at least
	 * one channel). Default DH_BROKER_PAGE_BYTES. */
	size_t page_bytes;
	/* Each event as one JSON object (len bytes, NUL-terminated), in order.
	 * Called from dh_broker_handle and dh_broker_tick. May be NULL. */
	void (*emit)(void *arg, const char *json, size_t len);
	/* One line about a request refused, a registration expiring, ...;
	 * detail = 1 for routine lines (a request served). May be NULL. */
	void (*log)(void *arg, int detail, const char *msg);
	void *arg;
};

/* The defaults above. */
void dh_broker_config_init(struct dh_broker_config *cfg);

/* A broker state with no registrations. -EINVAL for a bad config (zero
 * interval or caps, expire_misses <= stale_misses), -ENOMEM, -ENOSYS if
 * libsodium cannot initialise. Free with dh_broker_free (NULL is a no-op). */
int dh_broker_new(const struct dh_broker_config *cfg, struct dh_broker **out);
void dh_broker_free(struct dh_broker *b);

/*
 * Serve one request: len bytes (any bytes: the handler validates them
 * completely) from peer (an identity used for the per-peer cap and in
 * logs, at most DH_BROKER_PEER_MAX bytes), at now_ns on CLOCK_MONOTONIC.
 * Expires registrations first (like dh_broker_tick).  On success *reply is
 * a malloc'd NUL-terminated JSON object (*reply_len bytes without the
 * NUL) for the caller to send and free: an error reply for bad input.
 * Returns 0, or -ENOMEM (no reply: drop the request).
 */
int dh_broker_handle(struct dh_broker *b, const void *req, size_t len, const char *peer,
		     int64_t now_ns, char **reply, size_t *reply_len);

/* Mark registrations stale and remove expired ones as of now_ns, emitting
 * their events. Returns ns until the next such deadline, or the heartbeat
 * interval when nothing is due. */
int64_t dh_broker_tick(struct dh_broker *b, int64_t now_ns);

/* Registrations held: writers (channels) returned, readers in *readers. */
unsigned dh_broker_count(const struct dh_broker *b, unsigned *readers);

/* ==== 2. The allow-list and the ZAP handler ============================= */

/* Is the 32-byte CURVE public key allowed by clients_dir (one NAME.pub per
 * client; files that are not valid keys are ignored)?  1 and NAME in name
 * (cap bytes, truncated) if it is, 0 if not, negative if the directory
 * cannot be read (a caller must then refuse: fail closed). */
int dh_broker_allowed(const char *clients_dir, const uint8_t key[32], char *name, size_t cap);

/*
 * A ZAP handler (RFC 27) on inproc://zeromq.zap.01 of zmq_ctx, running in
 * its own thread until dh_broker_zap_stop: it admits CURVE clients in
 * DIR/clients (re-read at every handshake, so adding or removing a file
 * takes effect for new connections) under ZAP domain "dh", with the file's
 * NAME as user id, and refuses everything else.  Start it before binding
 * sockets; set ZMQ_ZAP_DOMAIN "dh" and ZMQ_ZAP_ENFORCE_DOMAIN 1 on them
 * (dh_broker_curve_server does).  log (may be NULL) gets one line per
 * decision, from the handler thread.  -EADDRINUSE if another handler is
 * bound in this context, -ENOENT/-EACCES/-ENOTDIR if DIR/clients cannot
 * be read.
 */
struct dh_broker_zap;
int dh_broker_zap_start(void *zmq_ctx, const char *dir, void (*log)(void *arg, int detail, const char *msg),
			void *arg, struct dh_broker_zap **out);
void dh_broker_zap_stop(struct dh_broker_zap *z);

/* Make zmq socket sock a CURVE server with secret key secret_z85, in ZAP
 * domain "dh" with the domain enforced (so it refuses all clients when no
 * handler runs).  -EINVAL (bad key), -ENOTSUP if this libzmq lacks CURVE
 * or ZMQ_ZAP_ENFORCE_DOMAIN: the caller must not go on. */
int dh_broker_curve_server(void *sock, const char *secret_z85);

/* ==== 3. Server ========================================================== */

struct dh_broker_server_opts {
	const char *bind;          /* request endpoint (ROUTER) */
	const char *events;        /* events endpoint (XPUB), or NULL */
	const char *curve_dir;     /* CURVE: admit DIR/clients/ (NULL: no CURVE) ... */
	const char *secret_z85;    /* ... with this secret key (DIR/broker.key) */
	int64_t heartbeat_ns;      /* interval asked of clients (<= 0: the default) */
	/* Every line the broker has to say (refusals, expiries, handshakes
	 * that failed; detail = 1 for routine lines: requests served, events,
	 * "listening on"), from any thread. May be NULL. */
	void (*log)(void *arg, int detail, const char *msg);
	void *arg;
};

struct dh_broker_server;

/*
 * Bind the sockets (an ipc:// path on which another broker answers is
 * refused: libzmq would take it over silently) and make the handler.  An
 * ephemeral tcp port (0 or "*") is reported by ping as bound.  On failure
 * err (cap bytes) holds one line saying what failed and why, and the
 * return is -errno (-EADDRINUSE, -ENAMETOOLONG, ...), -EINVAL, -ENOTSUP
 * (CURVE not enforceable), -ENOMEM.
 */
int dh_broker_server_open(const struct dh_broker_server_opts *o, struct dh_broker_server **out, char *err,
			  size_t cap);

/* Serve requests, liveness and events until *stop is non-zero (checked at
 * least every 200 ms and between requests: a signal handler may set it).
 * 0, or -errno if polling failed (err as for open). */
int dh_broker_server_run(struct dh_broker_server *s, volatile sig_atomic_t *stop, char *err, size_t cap);

/* Close the sockets, stop the ZAP handler, remove the ipc socket files
 * this server made (when they are still the ones it made). NULL: no-op. */
void dh_broker_server_close(struct dh_broker_server *s);

#endif
