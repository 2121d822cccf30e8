/* fuzz_schema.c: the schema parser and the JSON/CSV record codecs on arbitrary bytes. See LICENSE.
 *
 * data[0] % 3 picks what the rest is:
 *   0  a SPEC; when it parses, the canonical form must parse to itself and
 *      the record codecs run on a record made of the input bytes;
 *   1  a CSV row for a fixed schema with every type (data[0] & 4: packed);
 *   2  a SPEC, a '\n', then a CSV row for it.
 * Invariants (abort on violation): a parsed schema is self-consistent and
 * its canonical form is a fixed point; every encoder output fits the bound
 * and JSON output is valid JSON with one key per field; a row that parses
 * encodes to a row that parses back to the same text; a refused row names a
 * column in 1..ncolumns+1 and a reason.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "dh_schema.h"

#define REC_MAX 65536   /* largest record the codecs are run on */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(int cond)
{
	if (!cond)
		abort();
}

static void check_schema(const struct dh_schema *s)
{
	uint64_t end = 0;
	uint32_t cols = 0, data = 0;

	check(s->nfields > 0 && s->nfields <= DH_SCHEMA_FIELDS_MAX);
	check(s->size > 0 && s->size <= DH_SCHEMA_RECORD_MAX && s->error_at == 0);
	check(strlen(s->canonical) < DH_SCHEMA_MAX);
	for (uint32_t i = 0; i < s->nfields; i++) {
		const struct dh_schema_field *f = &s->fields[i];

		check(f->offset == end && f->count > 0);
		check(f->size == f->count * dh_schema_type_size(f->type));
		check(f->name[0] != '\0' && strlen(f->name) < DH_SCHEMA_NAME_MAX);
		if (f->type != DH_F_PAD) {
			data++;
			cols += f->type == DH_F_CHAR ? 1 : f->count;
			if (!s->packed)
				check(f->offset % dh_schema_type_size(f->type) == 0);
		} else if (i > 0) {
			check(s->fields[i - 1].type != DH_F_PAD);   /* pads are merged */
		}
		end += f->size;
	}
	check(end == s->size && cols == s->ncolumns && data > 0);
	check(s->size % s->align == 0);
}

/* Canonical form parses to itself. */
static void check_fixed_point(const struct dh_schema *s)
{
	struct dh_schema *t = malloc(sizeof *t);

	check(t != NULL);
	check(dh_schema_parse(s->canonical, t) == 0);
	check(strcmp(t->canonical, s->canonical) == 0 && memcmp(t->hash, s->hash, 32) == 0);
	check(t->size == s->size && t->nfields == s->nfields && t->packed == s->packed);
	check(memcmp(t->fields, s->fields, sizeof s->fields[0] * s->nfields) == 0);
	free(t);
}

static void check_json(const struct dh_schema *s, const void *rec)
{
	size_t cap = dh_schema_json_bound(s);
	char *out = malloc(cap);
	ssize_t n;
	json_t *j;
	json_error_t err;
	size_t keys = 0;

	check(out != NULL);
	n = dh_schema_to_json(s, rec, s->size, out, cap);
	check(n > 0 && (size_t)n < cap && out[n] == '\0' && strlen(out) == (size_t)n);
	j = json_loadb(out, (size_t)n, JSON_DECODE_INT_AS_REAL | JSON_REJECT_DUPLICATES, &err);
	check(j != NULL && json_is_object(j));
	for (uint32_t i = 0; i < s->nfields; i++)
		if (s->fields[i].type != DH_F_PAD) {
			check(json_object_get(j, s->fields[i].name) != NULL);
			keys++;
		}
	check(json_object_size(j) == keys);
	json_decref(j);
	free(out);
}

/* A row that parsed: encode, parse back, encode again: same text. */
static void check_csv_round_trip(const struct dh_schema *s, const void *rec)
{
	size_t cap = dh_schema_csv_bound(s);
	char *a = malloc(cap), *b = malloc(cap);
	unsigned char *r2 = malloc(s->size);
	ssize_t na, nb;
	uint32_t col;
	const char *what;

	check(a && b && r2);
	na = dh_schema_to_csv(s, rec, s->size, a, cap);
	check(na >= 0 && (size_t)na < cap);
	check(dh_schema_from_csv(s, a, (size_t)na, r2, &col, &what) == 0 && col == 0);
	nb = dh_schema_to_csv(s, r2, s->size, b, cap);
	check(nb == na && memcmp(a, b, (size_t)na) == 0);
	nb = dh_schema_csv_header(s, b, cap);
	check(nb > 0 && (size_t)nb < cap);
	free(a);
	free(b);
	free(r2);
}

static void run_csv(const struct dh_schema *s, const char *row, size_t len)
{
	unsigned char *rec = malloc(s->size);
	uint32_t col = 12345;
	const char *what = NULL;
	int rc;

	check(rec != NULL);
	(void)dh_schema_csv_open_quote(row, len);
	rc = dh_schema_from_csv(s, row, len, rec, &col, &what);
	if (rc == 0) {
		check(col == 0 && what && what[0] == '\0');
		check_json(s, rec);
		check_csv_round_trip(s, rec);
	} else {
		char name[DH_SCHEMA_NAME_MAX + 16];

		check(rc == -EINVAL && col >= 1 && col <= s->ncolumns + 1 && what && what[0] != '\0');
		rc = dh_schema_column_name(s, col, name, sizeof name);
		check(col <= s->ncolumns ? rc == 0 && name[0] != '\0' : rc == -ERANGE);
	}
	free(rec);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct dh_schema *s;
	char *text;
	size_t speclen;
	int mode, rc;

	if (size < 1)
		return 0;
	mode = data[0] % 3;
	s = malloc(sizeof *s);
	text = malloc(size);
	if (!s || !text)
		abort();
	memcpy(text, data + 1, size - 1);
	text[size - 1] = '\0';

	if (mode == 1) {
		rc = dh_schema_parse(data[0] & 4 ? "packed;a:i8;b:i16;c:i32;d:i64;e:u8;f:u16;g:u32;h:u64;"
						   "i:f32;j:f64[2];k:char[8];l:u8[1]"
						 : "a:i8;b:i16;c:i32;d:i64;e:u8;f:u16;g:u32;h:u64;"
						   "i:f32;j:f64[2];k:char[8];l:u8[1]",
				     s);
		check(rc == 0);
		run_csv(s, text, size - 1);
		goto out;
	}

	speclen = size - 1;
	if (mode == 2) {
		char *nl = memchr(text, '\n', size - 1);

		if (nl) {
			*nl = '\0';
			speclen = (size_t)(nl - text);
		}
	}
	rc = dh_schema_parse(text, s);
	if (rc != 0) {
		check(rc == -EINVAL || rc == -E2BIG);
		check(s->error_at <= strlen(text));
		goto out;
	}
	check_schema(s);
	check_fixed_point(s);
	{
		char hex[65];

		dh_schema_hash_hex(s->hash, hex);
		check(strlen(hex) == 64);
	}
	if (s->size > REC_MAX)
		goto out;
	if (mode == 0) {
		/* a record from the input bytes, repeated */
		unsigned char *rec = malloc(s->size);

		check(rec != NULL);
		for (uint32_t i = 0; i < s->size; i++)
			rec[i] = data[i % size];
		check_json(s, rec);
		{
			size_t cap = dh_schema_csv_bound(s);
			char *row = malloc(cap);
			ssize_t n = dh_schema_to_csv(s, rec, s->size, row, cap);

			check(n >= 0 && (size_t)n < cap);
			run_csv(s, row, (size_t)n);   /* must parse: rc 0 path */
			{
				unsigned char *r2 = malloc(s->size);

				check(r2 && dh_schema_from_csv(s, row, (size_t)n, r2, NULL, NULL) == 0);
				free(r2);
			}
			free(row);
		}
		free(rec);
	} else if (speclen < size - 1) {
		run_csv(s, text + speclen + 1, size - 2 - speclen);
	}
out:
	free(text);
	free(s);
	return 0;
}
