/* broker_cli.h: the broker options and sessions of dh-write, dh-read and dh-stat (commands only). See LICENSE. */
#ifndef DH_BROKER_CLI_H
#define DH_BROKER_CLI_H

#include <limits.h>
#include <stdint.h>

#include "cli.h"
#include "dh_broker_client.h"

/* getopt_long values of --broker, --broker-key and --client-key: put them
 * in the command's option table and hand them to cli_broker_option. */
enum { CLI_OPT_BROKER = 0x1000, CLI_OPT_BROKER_KEY, CLI_OPT_CLIENT_KEY };

struct cli_broker {
	struct dh_broker_opts opts;    /* the options, then the environment */
	int on;                        /* a broker is configured (cli_broker_setup) */
	int quiet;                     /* no warnings about the broker (dh-read -q) */
	int reader;                    /* a reader's session: quiet while the channel is unregistered */
	int warned, registered;        /* session thread only: for the "registered again" note */
	struct dh_broker_session *session;
	char env[2 * PATH_MAX + 32];   /* key paths from DH_CURVE_DIR */
};

/* 1 if c is CLI_OPT_BROKER, CLI_OPT_BROKER_KEY or CLI_OPT_CLIENT_KEY (arg
 * recorded in b), else 0. */
int cli_broker_option(struct cli_broker *b, int c, const char *arg);

/*
 * After option parsing: complete b from DH_BROKER and DH_CURVE_DIR, check
 * that the key options go together (else usage error with synopsis), that
 * the key files can be loaded and the endpoint parses (else exit 1 or 2).
 * Returns 1 when a broker is configured, 0 when the command runs without.
 */
int cli_broker_setup(struct cli_broker *b, const char *synopsis);

/* dh-write: register channel name (open, ours) with label (may be NULL),
 * and keep the registration alive with the channel's counters from a
 * thread until cli_broker_stop.  Never blocks, never fails the command: a
 * broker that is away or refuses us is a warning ("broker: ..."). */
void cli_broker_writer(struct cli_broker *b, const char *name, const char *label);

/* dh-read: register as a reader of name expecting schema (a SPEC, or NULL). */
void cli_broker_reader(struct cli_broker *b, const char *name, const char *label, const char *schema);

/*
 * dh-read --wait-channel: wait until channel name exists here, or (with a
 * broker) a live writer has registered it on this host, at most timeout_ns
 * (< 0: forever).  A registration whose schema hash differs from that of
 * schema (a SPEC, or NULL) is refused: exit 1.  Timing out is exit 3.
 * Returns 0, or -EINTR when a signal caught by cli_catch_signals arrived.
 */
/* 0: the channel was there; 1: it appeared while we waited; -EINTR. */
int cli_broker_wait_channel(struct cli_broker *b, const char *name, const char *schema, int64_t timeout_ns);

/* dh-read --serve: register as the exporter of name at endpoint (a
 * reader with transport zmq: discover hands the endpoint out). */
void cli_broker_exporter(struct cli_broker *b, const char *name, const char *endpoint);

/* dh-read reading name of host from another host, through the exporter
 * at endpoint: register as a reader there with label, transport zmq and
 * role subscriber, so the broker lists remote readers and their path. */
void cli_broker_remote_reader(struct cli_broker *b, const char *name, const char *host, const char *label,
			      const char *endpoint);

/* One discover: the endpoint of a live exporter of name (ep, cap bytes)
 * and the channel's host (DH_BROKER_HOST_MAX + 1 bytes). 0, -ENOENT. */
int cli_broker_find_export(struct cli_broker *b, const char *name, char *ep, size_t cap, char *host);

/* Report a checksum failure at seq through the session (queued, never
 * blocks; nothing without a session). */
void cli_broker_checksum(const struct cli_broker *b, uint64_t seq);

/* Deregister (briefly: at most 0.5 s) and stop the session, if any. */
void cli_broker_stop(struct cli_broker *b);

/* dh-stat --broker: print the registrations of the channels in names (all
 * when n is 0) as an aligned table, or one JSON document with json.
 * Returns the exit status. */
int cli_broker_list(struct cli_broker *b, int json, char **names, int n);

/* dh-stat --events: print every event as one JSON line until a signal,
 * then re-raise it. Returns the exit status when it ends otherwise. */
int cli_broker_events(struct cli_broker *b);

#endif
