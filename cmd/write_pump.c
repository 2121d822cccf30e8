/* write_pump.c: dh-write's pumps: standard input (raw reads, framed items, CSV rows) or an exporter (--connect) into the channel. See LICENSE. */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "csv_cli.h"
#include "write.h"

void
write_records(struct write_opts *o, struct dh_writer *w)
{
	o->sc = cli_channel_schema(dh_writer_block(w), o->name);
	if ((o->sc == NULL && o->csv) ||
	    (o->sc != NULL && o->mode == DH_FRAME_RECORD && o->record_size != o->sc->size)) {
		dh_writer_close(w);
		dh_key_wipe(o->key);
		if (o->sc == NULL)
			cli_die(EXIT_FAIL, "%s: channel has no schema: --csv encodes records (dh-create --schema)",
				o->name);
		cli_die(EXIT_FAIL, "%s: --record-size %llu: the channel's records are %u bytes", o->name,
			(unsigned long long)o->record_size, o->sc->size);
	}
	if (o->sc != NULL && o->mode == DH_FRAME_RAW) {
		o->mode = DH_FRAME_RECORD;
		o->record_size = o->sc->size;
	}
	if (o->csv)
		o->row_max = cli_csv_row_max(o->sc);
}

/* Wait until standard input is readable (so no slot is held while idle).
 * 0, or -EINTR when a signal arrived. */
static int
wait_input(struct dh_writer *w)
{
	/* the signal pipe too: a signal landing after the flag test below
	 * still ends the poll */
	struct pollfd p[2] = { { .fd = 0, .events = POLLIN }, { .fd = cli_signal_fd(), .events = POLLIN } };

	/* Input ready: keep building the batch.  Not ready: publish what we
	 * have before we sleep, so a slow source sees per-line latency. */
	if (poll(p, 1, 0) > 0)
		return 0;
	dh_writer_flush(w);
	for (;;) {
		int n;

		if (cli_signal)
			return -EINTR;
		n = poll(p, p[1].fd >= 0 ? 2 : 1, -1);
		if (cli_signal)
			return -EINTR;
		if (n > 0 || (n < 0 && errno != EINTR))
			return 0;          /* readable, hung up or unpollable: read() tells */
	}
}

int
write_failed(const struct write_opts *o, struct dh_writer *w, int r, const char *what)
{
	if (r == -EINTR && cli_signal)
		return EXIT_OK;
	if (r == -ETIMEDOUT) {
		cli_warn("%s: timed out waiting for %s", o->name, what);
		return EXIT_TIMEOUT;
	}
	if (w != NULL)
		cli_warnc(r, "%s: %s (seq %llu)", o->name, what, (unsigned long long)dh_writer_seq(w));
	else
		cli_warnc(r, "%s", what);
	return EXIT_FAIL;
}

/* Raw: each read(2) lands straight in the reserved slot. */
static int
pump_raw(const struct write_opts *o, struct dh_writer *w)
{
	for (;;) {
		void *slot;
		size_t cap;
		ssize_t n;
		int r;

		if ((r = wait_input(w)) < 0)
			return write_failed(o, w, r, "input");
		if ((r = dh_writer_reserve(w, &slot, &cap, o->timeout_ns)) < 0)
			return write_failed(o, w, r, "space");
		n = read(0, slot, cap);
		if (n <= 0) {
			r = errno;
			dh_writer_abort(w);
			if (n == 0)
				return EXIT_OK;
			if (r == EINTR)
				continue;       /* wait_input checks the signal flag */
			return write_failed(o, NULL, -r, "read error");
		}
		if ((r = dh_writer_commit(w, (size_t)n)) < 0)
			return write_failed(o, w, r, "commit");
		progress_add(o->pg, (size_t)n);
	}
}

/* What an input item is called in messages. */
static const char *
item_name(const struct write_opts *o)
{
	return o->mode == DH_FRAME_LINES ? "line" : o->mode == DH_FRAME_FRAMED ? "frame" : "record";
}

static int
bad_item(const struct write_opts *o, struct dh_writer *w, struct dh_frame_dec *d, int r)
{
	const struct dh_frame_error *e = dh_frame_dec_error(d);
	const char *what = item_name(o);

	if (r == -DH_ETOOBIG && o->csv)
		cli_warn("%s: line %llu is %llu bytes, longer than any row of the schema (%zu bytes)", o->name,
			 (unsigned long long)e->ordinal, (unsigned long long)e->size, o->row_max);
	else if (r == -DH_ETOOBIG)
		cli_warn("%s: %s %llu is %llu bytes, more than the slot payload (%zu bytes)", o->name,
			 what, (unsigned long long)e->ordinal, (unsigned long long)e->size,
			 dh_writer_slot_size(w));
	else if (r == -EPROTO)
		cli_warn("%s: truncated %s %llu at byte offset %llu (%llu of %llu bytes)", o->name, what,
			 (unsigned long long)e->ordinal, (unsigned long long)e->offset,
			 (unsigned long long)e->have, (unsigned long long)e->size);
	else
		cli_warnc(r, "%s: input", o->name);
	return EXIT_FAIL;
}

/* --csv: encode a complete row and write its record (the header: nothing). */
static int
csv_write(const struct write_opts *o, struct dh_writer *w, struct cli_csv *c, void *rec)
{
	int r = cli_csv_record(c, o->name, rec);

	if (r != 0)
		return r < 0 ? EXIT_FAIL : EXIT_OK;
	if ((r = dh_writer_write(w, rec, o->sc->size, o->timeout_ns)) < 0)
		return write_failed(o, w, r, "space");
	progress_add(o->pg, o->sc->size);
	return EXIT_OK;
}

/* --csv: one input line; a row may span several. */
static int
csv_line(const struct write_opts *o, struct dh_writer *w, struct cli_csv *c, const struct dh_frame_item *it,
	 void *rec)
{
	int r = cli_csv_line(c, it->data, it->len, it->ordinal);

	if (r == -EMSGSIZE) {
		cli_warn("%s: line %llu: a row longer than any row of the schema (%zu bytes)", o->name,
			 (unsigned long long)c->line, o->row_max);
		return EXIT_FAIL;
	}
	return r == 0 ? EXIT_OK : csv_write(o, w, c, rec);
}

/* Lines, null, framed, record: read into the decoder, copy each item once into a slot. */
static int
pump_framed(const struct write_opts *o, struct dh_writer *w)
{
	struct dh_frame_dec *d;
	struct dh_frame_item it;
	struct cli_csv csv = { 0 };
	void *rec = NULL;
	int r, ret = EXIT_OK;

	if (o->csv) {
		cli_csv_init(&csv, o->sc);
		if ((rec = malloc(o->sc->size)) == NULL)
			cli_diec(EXIT_FAIL, -ENOMEM, "%s", o->name);
	}
	r = dh_frame_dec_new(o->mode, o->csv ? o->row_max : dh_writer_slot_size(w), (size_t)o->record_size,
			     &d);
	if (r < 0) {
		/* refused before writing anything: leave the channel as we found
		 * it (entry free, the last stream's end mark in place) */
		size_t cap = dh_writer_slot_size(w);
		dh_writer_close(w);
		if (r == -DH_ETOOBIG)
			cli_die(EXIT_FAIL, "%s: record size %llu is more than the slot payload (%zu bytes)",
				o->name, (unsigned long long)o->record_size, cap);
		cli_diec(EXIT_FAIL, r, "%s", o->name);
	}
	for (;;) {
		void *p;
		size_t len;
		ssize_t n;

		while ((r = dh_frame_dec_next(d, &it)) == 0) {
			if (cli_signal)
				goto out;
			if (o->csv) {
				if ((ret = csv_line(o, w, &csv, &it, rec)) != EXIT_OK)
					goto out;
				continue;
			}
			if (o->sc != NULL && it.len != o->sc->size) {
				cli_warn("%s: %s %llu is %zu bytes, not a record of the channel's schema (%u bytes)",
					 o->name, item_name(o), (unsigned long long)it.ordinal, it.len, o->sc->size);
				ret = EXIT_FAIL;
				goto out;
			}
			if ((r = dh_writer_write(w, it.data, it.len, o->timeout_ns)) < 0) {
				ret = write_failed(o, w, r, "space");
				goto out;
			}
			progress_add(o->pg, it.len);
		}
		if (r == DH_FRAME_EOF) {
			if (csv.len > 0)        /* a quoted field left open: the parser says so */
				ret = csv_write(o, w, &csv, rec);
			break;
		}
		if (r < 0) {
			ret = bad_item(o, w, d, r);
			break;
		}
		if ((r = dh_frame_dec_space(d, &p, &len)) < 0 || (r = wait_input(w)) < 0) {
			ret = write_failed(o, w, r, "input");
			break;
		}
		n = read(0, p, len);
		if (n < 0 && errno != EINTR) {
			ret = write_failed(o, NULL, -errno, "read error");
			break;
		}
		if (n >= 0)
			dh_frame_dec_fill(d, (size_t)n);
	}
out:
	dh_frame_dec_free(d);
	cli_csv_free(&csv);
	free(rec);
	return ret;
}

int
write_pump(const struct write_opts *o, struct dh_writer *w)
{
	return o->mode == DH_FRAME_RAW ? pump_raw(o, w) : pump_framed(o, w);
}

int
write_import(struct write_opts *o, struct dh_writer *w)
{
	int eos, ret;
	struct dh_net_client *c = cli_net_client(&o->net, NULL, NULL, o->remote_key ? o->rkey : NULL, NULL);

	dh_key_wipe(o->rkey);
	/* batched like standard input: cli_net_import publishes before it
	 * waits for the network */
	ret = cli_net_import(c, o->name, w, o->timeout_ns, &eos);
	dh_net_client_close(c);
	/* The remote writer died: so do we, as a writer, leaving the
	 * entry to the kernel's lock so the mirror's readers see a
	 * dead writer too (closing would look like --no-eos). */
	if (eos == -1) {
		progress_end(o->pg);
		cli_broker_stop(&o->broker);
		exit(EXIT_FAIL);
	}
	if (!eos && !cli_signal)
		o->no_eos = 1;
	return ret;
}
