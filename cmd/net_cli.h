/* net_cli.h: channels across hosts in the commands: dh-read --serve/--connect, dh-write --connect (commands only). See LICENSE. */
#ifndef DH_NET_CLI_H
#define DH_NET_CLI_H

#include "broker_cli.h"
#include "cli.h"
#include "dh_net.h"

/* getopt_long values of --serve, --connect and --curve: put them in the
 * command's option table and hand them to cli_net_option. */
enum { CLI_OPT_SERVE = 0x2000, CLI_OPT_CONNECT, CLI_OPT_CURVE };

struct cli_net {
	const char *serve;         /* --serve ENDPOINT */
	const char *connect;       /* --connect ENDPOINT */
	const char *curve;         /* --curve DIR, else $DH_CURVE_DIR with --serve/--connect */
	int curve_given;
	uint64_t count;            /* dh-read --count: never ask for more in flight */
};

/* 1 if c is one of the options above (arg recorded), else 0. */
int cli_net_option(struct cli_net *n, int c, const char *arg);

/* After parsing: endpoints checked (usage error), --curve defaulted from
 * $DH_CURVE_DIR.  Returns 1 when --serve or --connect was given. */
int cli_net_setup(struct cli_net *n, const char *synopsis);

/* dh-read --serve: export channel name until a signal (then re-raised),
 * registered with the broker, if any, as its exporter.  Returns the exit
 * status. */
int cli_net_serve(const struct cli_net *n, const char *name, const struct cli_owner *owner, int quiet,
		  struct cli_broker *broker);

/* dh-read --connect / dh-write --connect: a subscriber of channel name
 * (NULL: whichever the exporter serves) with the common options; exits 1
 * with a message if it cannot start. */
struct dh_net_client *cli_net_client(const struct cli_net *n, const char *name, const struct dh_reader_opts *ro,
				     const uint8_t *key, const struct dh_schema *want);

/* The message for a code dh_net_client_next returned (for cli_warn). */
const char *cli_net_error(struct dh_net_client *c, int rc);

/* dh-write --connect: copy the subscription into writer w until the
 * remote end-of-stream (0, *eos = 1), a failure (1, *eos = 0; *eos = -1
 * when the remote writer died: the caller should die as a writer too) or
 * a signal. Returns the exit status. */
int cli_net_import(struct dh_net_client *c, const char *name, struct dh_writer *w, int64_t timeout_ns,
		   int *eos);

#endif
