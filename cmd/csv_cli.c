/* csv_cli.c: CSV rows of a record schema read line by line (dh-write --csv). See LICENSE. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "csv_cli.h"

size_t
cli_csv_row_max(const struct dh_schema *sc)
{
	/* dh_schema_csv_bound allows 25 bytes per number, the parser 127 */
	return dh_schema_csv_bound(sc) + 128 * (size_t)sc->ncolumns;
}

void
cli_csv_init(struct cli_csv *c, const struct dh_schema *sc)
{
	memset(c, 0, sizeof *c);
	c->sc = sc;
	c->max = cli_csv_row_max(sc);
}

void
cli_csv_free(struct cli_csv *c)
{
	free(c->row);
	c->row = NULL;
	c->len = c->cap = 0;
}

/* 1 if the row ends inside a quoted field (the line break belongs to the
 * field: join the next line), 0 if it is complete or malformed. */
static int
open_quote(const char *p, size_t n)
{
	int start = 1, quoted = 0;
	size_t i;

	for (i = 0; i < n; i++) {
		if (quoted) {
			if (p[i] == '"' && i + 1 < n && p[i + 1] == '"')
				i++;
			else if (p[i] == '"')
				quoted = 0;
			continue;
		}
		if (p[i] == '"' && !start)
			return 0;  /* a quote inside a bare field: the parser says so */
		quoted = p[i] == '"';
		start = p[i] == ',';
	}
	return quoted;
}

int
cli_csv_line(struct cli_csv *c, const void *data, size_t len, uint64_t line)
{
	if (c->len == 0)
		c->line = line;
	else
		c->row[c->len++] = '\n';        /* room kept below */
	if (len + 1 > c->max - c->len)
		return -EMSGSIZE;
	if (c->len + len + 1 > c->cap) {
		size_t cap = c->cap ? c->cap : 4096;
		char *nr;

		while (cap < c->len + len + 1)
			cap *= 2;
		if ((nr = realloc(c->row, cap)) == NULL)
			cli_diec(EXIT_FAIL, -ENOMEM, "csv");
		c->row = nr;
		c->cap = cap;
	}
	memcpy(c->row + c->len, data, len);
	c->len += len;
	return open_quote(c->row, c->len) ? 0 : 1;
}

/* 1 if row (n bytes, a trailing CR ignored) is the header of sc; with
 * prefix, if it starts with the first column's name and a comma. */
static int
is_header(const struct dh_schema *sc, const char *row, size_t n, int prefix)
{
	size_t cap = dh_schema_csv_bound(sc);
	char *h, *comma;
	ssize_t hl;
	int r = 0;

	if (n > 0 && row[n - 1] == '\r')
		n--;
	if ((h = malloc(cap)) == NULL || (hl = dh_schema_csv_header(sc, h, cap)) < 0) {
		free(h);
		return 0;
	}
	if (prefix)     /* one column: only an exact match is a header */
		hl = (comma = strchr(h, ',')) != NULL ? comma - h + 1 : -1;
	if (hl >= 0 && (prefix ? n >= (size_t)hl : n == (size_t)hl))
		r = memcmp(row, h, (size_t)hl) == 0;
	free(h);
	return r;
}

/* The byte capacity of the char[N] field that CSV column COL (1-based)
 * is, or 0: what "text too long" is too long for. */
static uint32_t
text_limit(const struct dh_schema *sc, uint32_t col)
{
	uint32_t at = 0;

	for (uint32_t i = 0; i < sc->nfields; i++) {
		const struct dh_schema_field *f = &sc->fields[i];

		if (f->type == DH_F_PAD)
			continue;
		at += f->type == DH_F_CHAR ? 1 : f->count;
		if (at >= col)
			return f->type == DH_F_CHAR && at == col ? f->count : 0;
	}
	return 0;
}

int
cli_csv_record(struct cli_csv *c, const char *name, void *record)
{
	char col_name[DH_SCHEMA_NAME_MAX + 16];
	size_t n = c->len;
	const char *what;
	uint32_t col;

	c->len = 0;
	if (c->line == 1 && is_header(c->sc, c->row, n, 0))
		return 1;
	if (dh_schema_from_csv(c->sc, c->row, n, record, &col, &what) == 0)
		return 0;
	if (c->line == 1 && is_header(c->sc, c->row, n, 1)) {
		cli_warn("%s: line 1: a header must be exactly the schema's columns (dh-read --csv prints them)",
			 name);
		return -EINVAL;
	}
	if (dh_schema_column_name(c->sc, col, col_name, sizeof col_name) < 0)
		col_name[0] = '\0';
	if (strcmp(what, "text too long") == 0 && text_limit(c->sc, col) > 0) {
		cli_warn("%s: line %llu, column %u%s%s%s: text too long (at most %u bytes)", name,
			 (unsigned long long)c->line, col, col_name[0] ? " (" : "", col_name,
			 col_name[0] ? ")" : "", text_limit(c->sc, col));
		return -EINVAL;
	}
	cli_warn("%s: line %llu, column %u%s%s%s: %s", name, (unsigned long long)c->line, col,
		 col_name[0] ? " (" : "", col_name, col_name[0] ? ")" : "", what);
	return -EINVAL;
}
