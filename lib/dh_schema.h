/* dh_schema.h: record schemas: parsing, canonical form, hashing, JSON/CSV codecs. See LICENSE. */
#ifndef DH_SCHEMA_H
#define DH_SCHEMA_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/*
 * A schema describes a fixed-size binary record: named fields of fixed-width
 * integers, floats, fixed-length text and fixed-length arrays of those, laid
 * out in host byte order.
 *
 * SPEC syntax (what dh_schema_parse accepts)
 *
 *     spec   := [ "packed" ";" ] field { ";" field }
 *     field  := name ":" type [ "[" count "]" ]
 *     name   := [A-Za-z_][A-Za-z0-9_]*            at most 63 bytes
 *     type   := i8 | i16 | i32 | i64 | u8 | u16 | u32 | u64 | f32 | f64
 *             | char "[" count "]"                 NUL-padded text of count bytes
 *             | pad "[" count "]"                  explicit padding bytes
 *     count  := [1-9][0-9]*                        decimal, no leading zero
 *
 *   Spaces, tabs, CR and LF may surround every token (not inside a name,
 *   a type or a count).  Names are case-sensitive and must be unique
 *   (padding names included).
 *   `x:u8[1]` is an array of one element (a JSON array, a CSV column
 *   `x[0]`), distinct from the scalar `x:u8`.  char and pad need a count.
 *   Empty fields (";;", a leading or trailing ";") are errors.  A record
 *   needs at least one field that is not padding.
 *
 *   Padding fields must be named `_pad` followed by decimal digits, and no
 *   other field may have such a name (they are reserved); their names are
 *   not significant: the canonical form renumbers them.
 *
 * Layout
 *
 *   Unless the spec starts with `packed;`, every field is aligned to the
 *   size of its element type (1, 2, 4 or 8 bytes; char and pad: 1), and the
 *   record size is rounded up to the largest alignment, as a C compiler
 *   lays out the equivalent struct on LP64 ABIs (x86-64, AArch64, ...).
 *   (On i386, 8-byte members of a struct are only 4-aligned: describe such
 *   structs with explicit pad fields and `packed;`.)  With `packed;` fields
 *   follow each other with no implicit padding and the size is the sum.
 *   A record may be at most DH_SCHEMA_RECORD_MAX (1 GiB).
 *
 * Canonical form
 *
 *   The spec with all whitespace removed, `packed;` kept first when given,
 *   and every gap (alignment gaps and the tail that rounds the size up)
 *   written as an explicit field `_padK:pad[N]`, K = 0, 1, ... in record
 *   order; adjacent padding (written and implicit) is merged into one pad
 *   field.  Example:
 *
 *     ts:u64;temp:f32;flags:u8;name:char[16];v:i16[3]
 *  -> ts:u64;temp:f32;flags:u8;name:char[16];_pad0:pad[1];v:i16[3];_pad1:pad[4]
 *     (size 40)
 *
 *   The canonical form is itself a spec that parses to the same canonical
 *   form, and specs that describe the same layout with the same names
 *   (e.g. with and without the explicit pads above) have the same canonical
 *   form and so the same hash.  `packed;` is part of the canonical form.
 *   The hash is BLAKE2b-256 (unkeyed) of the canonical string without NUL.
 *
 * Codecs
 *
 *   Records are exactly schema->size bytes in host byte order.  Padding is
 *   never output and is zeroed on input.  Floats and integers are printed
 *   and parsed with the C library, so LC_NUMERIC must be "C" (the default;
 *   the dh tools never call setlocale).
 *
 *   JSON: one object, no whitespace and no newline, fields in schema order:
 *     {"ts":1700000000,"temp":21.5,"flags":3,"name":"probe","v":[1,-2,3]}
 *   - integers in exact decimal (64-bit values may exceed what a consumer
 *     that parses numbers as doubles, like jq, keeps exactly);
 *   - f32 with %.9g, f64 with %.17g (enough to round-trip); NaN and
 *     infinities as null;
 *   - arrays as JSON arrays (also of one element);
 *   - char[N] as a string: the bytes up to the first NUL (all N if none),
 *     with '"', '\\' and control characters (< 0x20, 0x7f) escaped
 *     (\b \f \n \r \t, else \u00XX), and each byte that does not start a
 *     well-formed UTF-8 sequence (no overlongs, surrogates or code points
 *     above U+10FFFF) replaced by U+FFFD (so the output is always valid
 *     UTF-8 JSON; such text does not round-trip through JSON).
 *
 *   CSV (RFC 4180): one column per scalar, one column per array element
 *   named `v[0]`, `v[1]`, ..., one column per char field; no pad columns.
 *   - integers in decimal; f32 with %.9g, f64 with %.17g; non-finite
 *     floats as nan, -nan, inf, -inf;
 *   - char[N]: the bytes up to the first NUL, verbatim (any bytes, not
 *     only UTF-8), in double quotes with '"' doubled when the text contains
 *     a comma, a double quote, CR or LF, bare otherwise.
 *   Rows and the header carry no line terminator: the caller adds one.
 *   Round trip CSV -> record -> CSV gives the same text for every row that
 *   dh_schema_to_csv produced (and numbers that were printed with these
 *   digits come back bit-exact, except NaN payloads).
 *
 *   dh_schema_from_csv parses strictly:
 *   - exactly one field per column; a trailing LF, then a trailing CR, of
 *     the row are ignored; a quoted field may contain commas, doubled
 *     quotes, CR and LF (see dh_schema_csv_open_quote to join lines);
 *   - any field may be quoted; an unquoted field may not contain '"', CR
 *     or LF, and a closing quote must be followed by ',' or the row's end;
 *   - integers: optional '-' (signed types only), then decimal digits;
 *     nothing else (no spaces, '+', hex); the value must fit the type;
 *   - a number field may be at most 127 bytes long;
 *   - floats: what strtod/strtof accept (decimal, hex floats, inf,
 *     infinity, nan, case-insensitive) with no leading or trailing space;
 *     overflow to infinity is an error, underflow to a denormal or zero is
 *     not; f32 is parsed with strtof (one correct rounding);
 *   - char[N]: at most N bytes, no NUL byte; stored NUL-padded;
 *     an empty field is the empty string.  Numbers may not be empty.
 *
 * Nothing here prints, exits or keeps state; every function is thread-safe
 * and returns 0 (or a length) on success or a negative errno value.
 */

#define DH_SCHEMA_MAX 1024        /* canonical form, including NUL */
#define DH_SCHEMA_FIELDS_MAX 128  /* fields of the canonical form, pads included */
#define DH_SCHEMA_NAME_MAX 64     /* field name, including NUL */
#define DH_SCHEMA_RECORD_MAX (1u << 30)  /* largest record size, bytes */
#define DH_SCHEMA_SPEC_MAX 65536  /* longest SPEC accepted, bytes without NUL */

enum dh_ftype {
	DH_F_I8, DH_F_I16, DH_F_I32, DH_F_I64,
	DH_F_U8, DH_F_U16, DH_F_U32, DH_F_U64,
	DH_F_F32, DH_F_F64,
	DH_F_CHAR,                /* char[N]: NUL-padded text */
	DH_F_PAD                  /* explicit padding in the canonical form */
};

struct dh_schema_field {
	char name[DH_SCHEMA_NAME_MAX];
	enum dh_ftype type;
	uint32_t count;           /* array length (1 for scalars; N for char[N]) */
	uint32_t offset;          /* byte offset in the record */
	uint32_t size;            /* bytes: element size * count */
};

struct dh_schema {
	uint32_t nfields;
	struct dh_schema_field fields[DH_SCHEMA_FIELDS_MAX];
	uint32_t size;            /* record size in bytes */
	int packed;
	char canonical[DH_SCHEMA_MAX];
	uint8_t hash[32];         /* BLAKE2b-256 of canonical */
	uint32_t error_at;        /* on -EINVAL: byte offset in the spec of the problem */
	/* 1 if fields[i] was declared with a count (`x:u8[1]` is an array,
	 * `x:u8` is not); always 1 for char and pad */
	uint8_t is_array[DH_SCHEMA_FIELDS_MAX];
	uint32_t ncolumns;        /* CSV columns (elements of non-pad, non-char fields + char fields) */
	uint32_t align;           /* largest field alignment (1 when packed) */
};

/* Parse SPEC; fills *out (canonical, hash, size, fields). -EINVAL with
 * out->error_at set on a syntax error, -E2BIG if too many fields or too long. */
int dh_schema_parse(const char *spec, struct dh_schema *out);

/*
 * More on dh_schema_parse: error_at is 0 on success; on -E2BIG it points at
 * the field where a limit was passed (the canonical form does not fit in
 * DH_SCHEMA_MAX, more than DH_SCHEMA_FIELDS_MAX fields with the pads, or
 * SPEC longer than DH_SCHEMA_SPEC_MAX).  -EINVAL covers every syntax error,
 * an unknown type, a bad, reserved, too long or duplicate name, a zero or
 * malformed count, a record larger than DH_SCHEMA_RECORD_MAX, and a NULL
 * spec; error_at then is the offset of the offending token (for a missing
 * token: where it was expected).  -ENOSYS if libsodium cannot initialise.
 * Apart from error_at, *out is unspecified after a failure.
 */

/* Element size in bytes of a field type (1 for char and pad), 0 if unknown. */
size_t dh_schema_type_size(enum dh_ftype type);

/* Type name as in a spec ("u64", "char", "pad"), or "?" if unknown. */
const char *dh_schema_type_name(enum dh_ftype type);

/* Lowercase hex of a schema hash: 64 digits and a NUL into out. */
void dh_schema_hash_hex(const uint8_t hash[32], char out[65]);

/* ---- JSON ---------------------------------------------------------------- */

/* Bytes enough for dh_schema_to_json of any record, NUL included. */
size_t dh_schema_json_bound(const struct dh_schema *s);

/*
 * Decode one record (len must be s->size, else -EMSGSIZE) into a JSON
 * object in buf, NUL-terminated; returns its length without the NUL.
 * -ENOBUFS if cap is too small (dh_schema_json_bound is always enough),
 * -EINVAL for NULL arguments.
 */
ssize_t dh_schema_to_json(const struct dh_schema *s, const void *record, size_t len, char *buf,
			  size_t cap);

/* ---- CSV ----------------------------------------------------------------- */

/* Bytes enough for the header or any row, NUL included. */
size_t dh_schema_csv_bound(const struct dh_schema *s);

/* The header row (column names, comma-separated, NUL-terminated); returns
 * its length without the NUL, -ENOBUFS if cap is too small. */
ssize_t dh_schema_csv_header(const struct dh_schema *s, char *buf, size_t cap);

/* Name of CSV column col (1-based): "temp", "v[2]".  0, or -ERANGE if there
 * is no such column, -ENOBUFS if cap is too small (DH_SCHEMA_NAME_MAX + 16
 * is always enough). */
int dh_schema_column_name(const struct dh_schema *s, uint32_t col, char *buf, size_t cap);

/* Encode one record (len must be s->size, else -EMSGSIZE) as a CSV row,
 * NUL-terminated; returns its length without the NUL, -ENOBUFS if cap is
 * too small. */
ssize_t dh_schema_to_csv(const struct dh_schema *s, const void *record, size_t len, char *buf,
			 size_t cap);

/*
 * Parse one CSV row of len bytes (need not be NUL-terminated) into record,
 * which must have room for s->size bytes; every byte of it is written.
 * 0 on success.  -EINVAL on a malformed row, with *err_col set to the
 * 1-based column at fault (for too many fields: s->ncolumns + 1) and
 * *err_what to a short static description ("not an integer", "out of
 * range", "text too long", "too few fields", ...); both pointers may be
 * NULL, and are set to 0 / "" on success.  The record is unspecified after
 * a failure.
 */
int dh_schema_from_csv(const struct dh_schema *s, const char *line, size_t len, void *record,
		       uint32_t *err_col, const char **err_what);

/*
 * 1 if buf ends inside a quoted CSV field (an odd number of '"'), so a
 * line-oriented reader should append the line break and the next line
 * before calling dh_schema_from_csv; 0 otherwise.
 */
int dh_schema_csv_open_quote(const char *buf, size_t len);

#endif
