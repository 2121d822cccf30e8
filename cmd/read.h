/* read.h: dh-read's parts beyond its main: the copy loop (read_pump.c) and reading a channel another host exports (read_remote.c). See LICENSE. */
#ifndef DH_READ_H
#define DH_READ_H

#include <stdint.h>

#include "broker_cli.h"
#include "cli.h"
#include "net_cli.h"
#include "progress.h"

/* What dh-read was asked (its parse). */
struct read_opts {
	const char *name;
	struct dh_reader_opts ro;
	enum dh_frame_mode mode;
	int csv, meta, no_wait, quiet, strict;
	struct dh_schema *want;    /* --schema */
	struct dh_schema *sc;      /* the channel's, when decoding records (--json, --csv) */
	uint64_t count;            /* 0: unlimited */
	int64_t timeout_ns, wait_ns;
	int wait;                  /* --wait-channel */
	uint8_t key[DH_KEY_BYTES];
	struct cli_broker broker;
	struct cli_owner owner;    /* --owner, $DH_OWNER */
	struct cli_net net;        /* --serve, --connect, --curve */
	struct progress_opts progress;
	struct progress *pg;       /* --progress: NULL when off */
};

/* The copy loop: the messages of r (local) or c (an exporter, --connect)
 * to standard output in o's framing, until the end of the stream, --count,
 * a timeout, an error or a signal (cli_signal left set).  Problems are
 * reported on standard error; returns the exit status.  A queue reader's
 * claims are kept until their bytes are written out. */
int read_pump(const struct read_opts *o, struct dh_reader *r, struct dh_net_client *c);

/* The channel does not exist here and the broker knows an exporter of it:
 * 1, with o->net set to connect there (registered as a remote reader). */
int read_remote_export(struct read_opts *o);

/* --connect: read_pump over an exporter's messages; returns the exit
 * status, or re-raises the signal that stopped it. */
int read_remote(struct read_opts *o);

#endif
