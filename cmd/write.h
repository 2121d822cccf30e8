/* write.h: dh-write's parts beyond its main: its pumps into the channel (write_pump.c). See LICENSE. */
#ifndef DH_WRITE_H
#define DH_WRITE_H

#include <stddef.h>
#include <stdint.h>

#include "broker_cli.h"
#include "cli.h"
#include "net_cli.h"
#include "progress.h"

/* What dh-write was asked (its parse). */
struct write_opts {
	const char *name, *label, *meta, *schema;
	struct dh_config cfg;
	int create, csv, no_eos;
	struct progress_opts progress;
	struct dh_schema *want;    /* --schema */
	struct dh_schema *sc;      /* the channel's schema, NULL if it has none */
	size_t row_max;            /* --csv: longest row (line) that can be valid */
	enum dh_frame_mode mode;
	uint64_t record_size, wait_readers;
	int64_t timeout_ns;
	uint8_t key[DH_KEY_BYTES];
	struct cli_broker broker;
	struct cli_owner owner;    /* --owner, $DH_OWNER */
	struct cli_net net;        /* --connect, --curve */
	int remote_key;            /* --remote-key given */
	uint8_t rkey[DH_KEY_BYTES];
	struct progress *pg;       /* --progress: NULL when off */
};

/* On a schema channel every message is one record: raw input is cut into
 * records of its size, --record-size must be that size, and --csv rows are
 * encoded as records (a channel without a schema cannot take them).  Sets
 * o->sc, o->mode, o->record_size and o->row_max for the pumps.  A refusal
 * (exit 1) leaves the stream as it was: writer closed, no end-of-stream. */
void write_records(struct write_opts *o, struct dh_writer *w);

/* Standard input into w, in o's framing, until its end, an error or a
 * signal (cli_signal left set).  Problems are reported on standard error;
 * returns the exit status. */
int write_pump(const struct write_opts *o, struct dh_writer *w);

/* --connect: an exporter's messages into w until its end of stream.
 * Returns the exit status; sets o->no_eos when the remote stream did not
 * end; exits 1 when the remote writer died, leaving w to the kernel. */
int write_import(struct write_opts *o, struct dh_writer *w);

/* A failed wait, commit or read: message and exit status (0 if a signal
 * stopped us). */
int write_failed(const struct write_opts *o, struct dh_writer *w, int r, const char *what);

#endif
