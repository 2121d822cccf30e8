/* dh_net.h: channels across hosts: an exporter serving a channel over ZeroMQ, and its subscribers. See LICENSE. */
#ifndef DH_NET_H
#define DH_NET_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>

#include "dh_block.h"
#include "dh_cancel.h"
#include "dh_ring.h"

/*
 * docs/PROTOCOL.md part II is the wire protocol.  In short: an exporter
 * (dh-read --serve) binds a ZeroMQ ROUTER and, for every subscriber (a
 * DEALER) that says HELLO, attaches one ordinary reader of the local
 * channel.  It sends DATA only against credit the subscriber granted, so
 * neither side ever queues more than the subscriber's window: a sync
 * channel's writer is held back by the reader of a subscriber without
 * credit, exactly as by a slow local reader.  A message keeps its seq,
 * commit time, length and stored check (xxh3, BLAKE2b or the channel's
 * MAC), which the subscriber verifies: end to end, so an exporter of a
 * keyed channel never needs the key.  With CURVE the data connection uses
 * the broker's key directory (dh_broker_keygen): the exporter serves with
 * DIR/broker.key and admits the keys in DIR/clients/ (fail closed), a
 * subscriber presents DIR/client.key and expects DIR/broker.pub.
 *
 * Three layers, like the broker's: frames (encode and decode, no I/O, so
 * they can be fuzzed), the receiver's validation of a frame sequence
 * (dh_net_rx: everything a subscriber trusts goes through it), and the
 * sockets (server, client).  Nothing prints; errors are 0 / -errno /
 * -DH_E*, with a message where the cause is worth a sentence.
 */

#define DH_NET_VERSION 1                 /* wire protocol version (the 4th byte of every frame) */
#define DH_NET_HEAD 8                    /* common frame head: "DHN", version, type, 3 zero bytes */
#define DH_NET_DATA_HEAD 72              /* DATA header, bytes (the payload follows in the frame) */
#define DH_NET_PAYLOAD_MAX (64u << 20)   /* largest message carried: larger slots are not exported */
#define DH_NET_CTL_MAX 2048              /* largest frame a subscriber sends */
#define DH_NET_WINDOW_MAX 4096           /* largest credit window a subscriber may declare */
#define DH_NET_TEXT_MAX 200              /* text of a NOTICE */
#define DH_NET_SOCKBUF (4 << 20)         /* kernel socket buffer asked for on the data connection */

enum dh_net_type {
	DH_NET_HELLO = 1,    /* subscriber -> exporter: channel, start, window */
	DH_NET_WELCOME = 2,  /* exporter -> subscriber: session, the channel's identity */
	DH_NET_CREDIT = 3,   /* subscriber -> exporter: more credit (0: keepalive), last seq received */
	DH_NET_DATA = 4,     /* exporter -> subscriber: one message (header, then payload, one frame) */
	DH_NET_NOTICE = 5,   /* exporter -> subscriber: end, writer dead, refusal, keepalive, ... */
	DH_NET_BYE = 6       /* subscriber -> exporter: detach now */
};

enum dh_net_code {
	DH_NET_N_EOS = 1,        /* end-of-stream at seq (terminal) */
	DH_NET_N_WRITER_DEAD,    /* writer died without end-of-stream (terminal) */
	DH_NET_N_EVICTED,        /* our reader was evicted for stalling a sync channel (terminal) */
	DH_NET_N_ERROR,          /* the exporter's reader failed: err, text (terminal) */
	DH_NET_N_REFUSED,        /* HELLO refused: err, text (terminal) */
	DH_NET_N_CHECKSUM,       /* the exporter found message seq failing its check: skipped */
	DH_NET_N_RESET,          /* the exporter does not know this connection: say HELLO again */
	DH_NET_N_PING,           /* keepalive while idle */
	DH_NET_N_LAST
};

/* ==== 1. Frames ========================================================= */

struct dh_net_hello {
	uint32_t window;         /* credit granted now, 1..DH_NET_WINDOW_MAX: also the most ever outstanding */
	uint32_t flags;          /* DH_NET_F_* */
	uint8_t start;           /* enum dh_start */
	uint64_t start_seq;      /* DH_START_SEQ: resume here */
	uint32_t resume;         /* DH_NET_F_RESUME: the session this one continues (nonzero) */
	char channel[DH_NAME_MAX + 1];   /* "": whichever channel the exporter serves */
};
#define DH_NET_F_FOLLOW 1u       /* as dh_reader_opts.follow */
#define DH_NET_F_RESUME 2u       /* a reconnection: queue messages in flight to session resume come again */

struct dh_net_welcome {
	uint32_t session;        /* nonzero; DATA and NOTICE carry it */
	enum dh_policy policy;
	enum dh_checksum checksum;
	uint32_t slots, slot_size, record_size;
	uint64_t start;          /* seq the exporter's reader starts at (queue: its claim head) */
	uint8_t chan_id[16];     /* what a MAC binds a message to */
	int keyed;
	uint8_t key_id[32];
	int has_schema;
	uint8_t schema_hash[32];
	char schema[1024];       /* canonical schema, "" if none or not sent */
};

struct dh_net_data {
	uint32_t session;
	uint32_t len;            /* payload bytes (the rest of the frame) */
	uint64_t seq, time_ns, lost;
	uint8_t check[32];       /* the digest as stored by the writer (unused bytes zero) */
};

struct dh_net_notice {
	uint32_t session;
	enum dh_net_code code;
	int32_t err;             /* a libdh code (negative), 0 if none */
	uint64_t seq;
	char text[DH_NET_TEXT_MAX + 1];
};

struct dh_net_credit {
	uint32_t grant;
	uint64_t ack;            /* last seq received + 1, 0: none yet */
};

/* Encoders return the frame length written into buf (cap bytes), or
 * -ENOBUFS / -EINVAL (a field out of range).  dh_net_data_encode writes the
 * DATA header only (DH_NET_DATA_HEAD bytes); the payload follows it in the
 * same frame, and dh_net_data_decode takes the header only. */
ssize_t dh_net_hello_encode(const struct dh_net_hello *h, void *buf, size_t cap);
ssize_t dh_net_welcome_encode(const struct dh_net_welcome *w, void *buf, size_t cap);
ssize_t dh_net_credit_encode(const struct dh_net_credit *c, void *buf, size_t cap);
ssize_t dh_net_data_encode(const struct dh_net_data *d, void *buf, size_t cap);
ssize_t dh_net_notice_encode(const struct dh_net_notice *n, void *buf, size_t cap);
ssize_t dh_net_bye_encode(void *buf, size_t cap);

/*
 * The type of a frame (its head checked): a DH_NET_* type, or -EPROTO
 * (short, not "DHN", reserved bytes set, unknown type) or -EPROTONOSUPPORT
 * (another protocol version; *version, when not NULL, gets it).
 */
int dh_net_frame_type(const void *buf, size_t len, unsigned *version);

/* Decoders: the whole frame, exactly (no trailing bytes), every field in
 * range: 0 or -EPROTO (-EPROTONOSUPPORT for another version). */
int dh_net_hello_decode(const void *buf, size_t len, struct dh_net_hello *out);
int dh_net_welcome_decode(const void *buf, size_t len, struct dh_net_welcome *out);
int dh_net_credit_decode(const void *buf, size_t len, struct dh_net_credit *out);
int dh_net_data_decode(const void *buf, size_t len, struct dh_net_data *out);
int dh_net_notice_decode(const void *buf, size_t len, struct dh_net_notice *out);

/* ==== 2. The subscriber's checks ========================================= */

/*
 * Everything an exporter sends goes through dh_net_rx_feed before anything
 * of it is used: frame shape and version, session, the channel's identity
 * (schema, key id) against what the subscriber expects, message sizes
 * against the announced slot size, sequence order (a seq at or before the
 * last one is a replay or reordering; in ring and sync a seq must follow
 * the last one plus the loss the frame reports, so nothing vanishes
 * silently) and the check of every message.
 */
struct dh_net_rx;

struct dh_net_rx_opts {
	const uint8_t *key;      /* DH_KEY_BYTES: verify the MACs of a keyed channel (copied) */
	int has_schema;          /* refuse a channel whose schema hash is not ... */
	uint8_t schema_hash[32]; /* ... this one (or that has none) */
	uint64_t after;          /* resuming: seqs below this are replays; 0: none */
};

int dh_net_rx_new(const struct dh_net_rx_opts *o, struct dh_net_rx **out);
void dh_net_rx_free(struct dh_net_rx *rx);

/* What one message (all its frames) from the exporter was. */
enum dh_net_event {
	DH_NET_EV_WELCOME = 1,   /* session established: dh_net_rx_welcome */
	DH_NET_EV_DATA,          /* a verified message in *m */
	DH_NET_EV_NOTICE         /* *n filled (PING and CHECKSUM are informational) */
};

/*
 * Check one message of nparts frames (parts[i], lens[i]; every valid
 * message is one frame).  Returns a DH_NET_EV_* (m or n filled; m->data
 * points into parts[0]), or:
 *   -EPROTO           malformed, out of order, replayed, wrong session,
 *                     oversized, truncated: the peer cannot be trusted
 *                     any further (dh_net_rx_error says what)
 *   -EPROTONOSUPPORT  the peer speaks another protocol version
 *   -DH_ESCHEMA       the channel's schema is not the expected one
 *   -DH_EKEYNEEDED    keyed channel and no key
 *   -DH_ENOTKEYED     a key for an unkeyed channel
 *   -DH_EKEY          the key is not the channel's
 *   -DH_ECHECKSUM     the message failed its check (m->seq says which):
 *                     skipped; the stream may go on
 * After any error but -DH_ECHECKSUM the rx refuses everything further.
 */
int dh_net_rx_feed(struct dh_net_rx *rx, const void *const *parts, const size_t *lens, int nparts,
		   struct dh_msg *m, struct dh_net_notice *n);

const char *dh_net_rx_error(const struct dh_net_rx *rx);
const struct dh_net_welcome *dh_net_rx_welcome(const struct dh_net_rx *rx); /* NULL before WELCOME */
uint64_t dh_net_rx_next_seq(const struct dh_net_rx *rx);  /* last seq accepted + 1, or opts.after */
/* A new session (after a reconnection): expect WELCOME again, keep the position. */
void dh_net_rx_reset(struct dh_net_rx *rx);

/* Verify one message against a checksum kind, channel id and key (NULL
 * unless keyed): 0 or -DH_ECHECKSUM. */
int dh_net_check_verify(enum dh_checksum kind, const uint8_t chan_id[16], const uint8_t *key, uint64_t seq,
			const void *data, size_t len, const uint8_t check[32]);

/* ==== 3. Sockets ========================================================= */

/* CURVE on a data connection: the broker's key directory layout. */
struct dh_net_curve {
	const char *dir;         /* NULL: plaintext */
};

struct dh_net_server_opts {
	const char *endpoint;    /* ZeroMQ endpoint to bind (dh_broker_endpoint_check rules) */
	const char *channel;     /* the local channel served */
	const char *curve_dir;   /* serve with DIR/broker.key, admit DIR/clients/ (NULL: plaintext) */
	int max_subscribers;     /* 1..DH_READERS_MAX; 0: 64 */
	int64_t idle_ns;         /* a subscriber silent this long is dropped; <= 0: 5 s */
	struct dh_cancel *cancel;/* given to every reader (may be NULL) */
	/* Called with each channel attached for a subscriber (the name may
	 * have changed hands since the last): < 0 refuses it (an owner
	 * check). May be NULL. */
	int (*admit)(void *arg, struct dh_block *b);
	/* One line per event worth telling (subscriber joined, left, refused,
	 * handshake refused; detail = 1 for routine lines). May be NULL. */
	void (*log)(void *arg, int detail, const char *msg);
	void *arg;
};

struct dh_net_server;

/* Bind.  -EINVAL bad endpoint, -EADDRINUSE, -ENOENT/-EACCES/-DH_EKEYMODE
 * (key directory: fail closed), -ENOTSUP (CURVE not enforceable); err gets
 * one line. The channel is opened per subscriber, not here. */
int dh_net_server_open(const struct dh_net_server_opts *o, struct dh_net_server **out, char *err, size_t cap);

/* The endpoint as bound (a tcp port 0 replaced by the one chosen). */
const char *dh_net_server_endpoint(const struct dh_net_server *s);

/* Serve until *stop is set (checked at least every 100 ms) or the cancel
 * is raised. 0, or -errno (err as for open). */
int dh_net_server_run(struct dh_net_server *s, volatile sig_atomic_t *stop, char *err, size_t cap);

/* Subscribers attached now. */
int dh_net_server_subscribers(const struct dh_net_server *s);

void dh_net_server_close(struct dh_net_server *s);

struct dh_net_client_opts {
	const char *endpoint;
	const char *channel;     /* the channel expected there; NULL: whichever it serves */
	const char *curve_dir;   /* present DIR/client.key, expect DIR/broker.pub (NULL: plaintext) */
	const char *server_key;  /* or these two files (override curve_dir) */
	const char *client_key;
	enum dh_start start;
	uint64_t start_seq;
	int follow;
	uint32_t window;         /* 0: by slot size, at most 16 MiB in flight */
	struct dh_net_rx_opts rx;
	int64_t reconnect_ns;    /* nothing heard this long: reconnect and resume; <= 0: 3 s */
	struct dh_cancel *cancel;/* optional: a raise makes next return -EINTR */
	/* The exporter of a queue keeps the claims of the messages it sent
	 * until we acknowledge them, and counts lost those never
	 * acknowledged when we go.  0: a message counts as passed on once
	 * next (or close) is called again; 1: only once dh_net_client_ack
	 * says so (the caller buffers its output). */
	int manual_ack;
};

struct dh_net_client;

int dh_net_client_open(const struct dh_net_client_opts *o, struct dh_net_client **out);

/*
 * The next message, verified (data valid until the next call): 0; DH_END at
 * end-of-stream; -DH_EWRITERDEAD; -DH_EEVICTED; -DH_ECHECKSUM (m->seq;
 * skipped, call again); -ETIMEDOUT after timeout_ns without a message
 * (< 0: forever; 0: only what has arrived, never blocking; reconnections
 * go on meanwhile); -EINTR; -EPROTO,
 * -EPROTONOSUPPORT, -DH_ESCHEMA, -DH_EKEY, -DH_EKEYNEEDED, -EACCES (refused)
 * as dh_net_client_error says: terminal.
 */
int dh_net_client_next(struct dh_net_client *c, struct dh_msg *m, int64_t timeout_ns);

/* manual_ack: every message with a seq below next was passed on (written
 * out, published).  Sent with the next grant, or before next blocks. */
void dh_net_client_ack(struct dh_net_client *c, uint64_t next);

const char *dh_net_client_error(const struct dh_net_client *c);
const struct dh_net_welcome *dh_net_client_welcome(const struct dh_net_client *c); /* NULL before */
/* Reconnections so far, and messages the exporter reported lost to us. */
uint64_t dh_net_client_reconnects(const struct dh_net_client *c);
/* Wait (at most timeout_ns) for the WELCOME: 0, or as next. */
int dh_net_client_wait_welcome(struct dh_net_client *c, int64_t timeout_ns);

void dh_net_client_close(struct dh_net_client *c);

#endif
