/* csv_cli.h: CSV rows of a record schema read line by line (dh-write --csv; commands only). See LICENSE. */
#ifndef DH_CSV_CLI_H
#define DH_CSV_CLI_H

#include <stddef.h>
#include <stdint.h>

#include "cli.h"

/*
 * A row is one input line, or several when a quoted field holds line
 * breaks.  The first line is the header when it equals the schema's
 * (dh_schema_csv_header, a CR before the newline ignored) and is then
 * skipped; any other first line is a row, except that one starting with
 * the first column's name and a comma is a header that does not match.
 */
struct cli_csv {
	const struct dh_schema *sc;
	char *row;                 /* the row being assembled, len bytes */
	size_t len, cap;
	size_t max;                /* longest row that can be valid (cli_csv_row_max) */
	uint64_t line;             /* the line where it starts (1-based) */
};

/* Longest row or line that can be valid for sc: each number field at most
 * 127 bytes, each text field quoted with every byte a doubled quote. */
size_t cli_csv_row_max(const struct dh_schema *sc);

void cli_csv_init(struct cli_csv *c, const struct dh_schema *sc);
void cli_csv_free(struct cli_csv *c);

/* Append input line number line (len bytes, without its newline).  1: the
 * row is complete; 0: it goes on (a quoted field is open); -EMSGSIZE: it
 * is longer than any valid row.  Exits 1 if out of memory. */
int cli_csv_line(struct cli_csv *c, const void *data, size_t len, uint64_t line);

/*
 * Take the row (complete, or left open at the end of input) and encode it
 * into record (sc->size bytes).  0: a record; 1: it was the header, nothing
 * to write; -EINVAL: malformed, after printing on stderr
 *     "NAME: line L, column C (COLUMN): what is wrong"
 * or "NAME: line 1: a header must be exactly the schema's columns ...".
 */
int cli_csv_record(struct cli_csv *c, const char *name, void *record);

#endif
