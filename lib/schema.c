/* schema.c: record schemas: SPEC parser, canonical form and hash, JSON and CSV codecs. See LICENSE. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "dh_impl.h"
#include "dh_schema.h"

/* Longest printed number: %.17g of a double, "-1.2345678901234567e-308". */
#define NUM_MAX 24
/* Longest number dh_schema_from_csv accepts, in bytes. */
#define NUM_IN_MAX 127

static const struct {
	const char *name;
	enum dh_ftype type;
} type_names[] = {
	{"i8", DH_F_I8},   {"i16", DH_F_I16}, {"i32", DH_F_I32}, {"i64", DH_F_I64},
	{"u8", DH_F_U8},   {"u16", DH_F_U16}, {"u32", DH_F_U32}, {"u64", DH_F_U64},
	{"f32", DH_F_F32}, {"f64", DH_F_F64}, {"char", DH_F_CHAR}, {"pad", DH_F_PAD},
};

size_t dh_schema_type_size(enum dh_ftype type)
{
	switch (type) {
	case DH_F_I8: case DH_F_U8: case DH_F_CHAR: case DH_F_PAD: return 1;
	case DH_F_I16: case DH_F_U16: return 2;
	case DH_F_I32: case DH_F_U32: case DH_F_F32: return 4;
	case DH_F_I64: case DH_F_U64: case DH_F_F64: return 8;
	}
	return 0;
}

const char *dh_schema_type_name(enum dh_ftype type)
{
	for (size_t i = 0; i < sizeof type_names / sizeof type_names[0]; i++)
		if (type_names[i].type == type)
			return type_names[i].name;
	return "?";
}

void dh_schema_hash_hex(const uint8_t hash[32], char out[65])
{
	static const char hex[] = "0123456789abcdef";

	for (int i = 0; i < 32; i++) {
		out[2 * i] = hex[hash[i] >> 4];
		out[2 * i + 1] = hex[hash[i] & 15];
	}
	out[64] = '\0';
}

/* ---- parser ---------------------------------------------------------------- */

static int is_ws(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

static int is_digit(char c)
{
	return c >= '0' && c <= '9';
}

static int is_ident0(char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_';
}

static int is_ident(char c)
{
	return is_ident0(c) || is_digit(c);
}

static size_t skip_ws(const char *s, size_t p)
{
	while (is_ws(s[p]))
		p++;
	return p;
}

/* `_pad` followed by one or more digits: reserved for padding fields. */
static int is_pad_name(const char *name, size_t len)
{
	if (len < 5 || memcmp(name, "_pad", 4) != 0)
		return 0;
	for (size_t i = 4; i < len; i++)
		if (!is_digit(name[i]))
			return 0;
	return 1;
}

static int fail(struct dh_schema *out, size_t at, int rc)
{
	out->error_at = (uint32_t)at;
	return rc;
}

/* Append size bytes of padding at offset off, merged with a pad field that
 * ends there. src[] keeps the spec offset each field came from. */
static int add_pad(struct dh_schema *out, uint32_t *src, uint64_t off, uint64_t size, size_t at)
{
	struct dh_schema_field *f;

	if (out->nfields > 0 && out->fields[out->nfields - 1].type == DH_F_PAD) {
		f = &out->fields[out->nfields - 1];
		f->count += (uint32_t)size;
		f->size += (uint32_t)size;
		return 0;
	}
	if (out->nfields == DH_SCHEMA_FIELDS_MAX)
		return fail(out, at, -E2BIG);
	src[out->nfields] = (uint32_t)at;
	out->is_array[out->nfields] = 1;
	f = &out->fields[out->nfields++];
	f->type = DH_F_PAD;
	f->count = (uint32_t)size;
	f->size = (uint32_t)size;
	f->offset = (uint32_t)off;
	return 0;
}

/* Append s to the canonical form at *pos; 0, or -1 if it does not fit. */
static int canon_put(struct dh_schema *out, size_t *pos, const char *s)
{
	size_t n = strlen(s);

	if (n >= DH_SCHEMA_MAX - *pos)
		return -1;
	memcpy(out->canonical + *pos, s, n + 1);
	*pos += n;
	return 0;
}

static int build_canonical(struct dh_schema *out, const uint32_t *src)
{
	size_t pos = 0;
	unsigned npad = 0;

	out->canonical[0] = '\0';
	if (out->packed && canon_put(out, &pos, "packed;") < 0)
		return fail(out, 0, -E2BIG);
	for (uint32_t i = 0; i < out->nfields; i++) {
		struct dh_schema_field *f = &out->fields[i];
		char tmp[32];

		if (f->type == DH_F_PAD)
			snprintf(f->name, sizeof f->name, "_pad%u", npad++);
		if ((i > 0 && canon_put(out, &pos, ";") < 0) || canon_put(out, &pos, f->name) < 0 ||
		    canon_put(out, &pos, ":") < 0 || canon_put(out, &pos, dh_schema_type_name(f->type)) < 0)
			return fail(out, src[i], -E2BIG);
		if (out->is_array[i]) {
			snprintf(tmp, sizeof tmp, "[%u]", (unsigned)f->count);
			if (canon_put(out, &pos, tmp) < 0)
				return fail(out, src[i], -E2BIG);
		}
	}
	return 0;
}

int dh_schema_parse(const char *spec, struct dh_schema *out)
{
	uint32_t src[DH_SCHEMA_FIELDS_MAX];
	struct {
		uint32_t at, len;
	} names[DH_SCHEMA_FIELDS_MAX];        /* every name in the spec, pads too */
	uint32_t nnames = 0;
	uint64_t off = 0;
	uint32_t maxalign = 1;
	size_t p = 0, q;
	int ndata = 0, rc;

	if (!out)
		return -EINVAL;
	memset(out, 0, sizeof *out);
	if (!spec)
		return -EINVAL;
	if (strnlen(spec, DH_SCHEMA_SPEC_MAX + 1) > DH_SCHEMA_SPEC_MAX)
		return fail(out, DH_SCHEMA_SPEC_MAX, -E2BIG);

	/* `packed;` first; `packed:...` is a field named packed. */
	q = skip_ws(spec, 0);
	if (strncmp(spec + q, "packed", 6) == 0 && !is_ident(spec[q + 6])) {
		size_t r = skip_ws(spec, q + 6);

		if (spec[r] == ';') {
			out->packed = 1;
			p = r + 1;
		}
	}

	for (;;) {
		size_t start, nstart, nlen, tstart, cstart = 0;
		enum dh_ftype type = DH_F_PAD;
		uint64_t count = 1, esize, size, align;
		int found = 0, is_array = 0;

		start = p = skip_ws(spec, p);
		/* name */
		if (!is_ident0(spec[p]))
			return fail(out, p, -EINVAL);
		nstart = p;
		while (is_ident(spec[p]))
			p++;
		nlen = p - nstart;
		if (nlen >= DH_SCHEMA_NAME_MAX)
			return fail(out, nstart, -EINVAL);
		p = skip_ws(spec, p);
		if (spec[p] != ':')
			return fail(out, p, -EINVAL);
		p = skip_ws(spec, p + 1);
		/* type */
		tstart = p;
		while (is_ident(spec[p]))
			p++;
		for (size_t i = 0; i < sizeof type_names / sizeof type_names[0]; i++)
			if (strlen(type_names[i].name) == p - tstart &&
			    memcmp(type_names[i].name, spec + tstart, p - tstart) == 0) {
				type = type_names[i].type;
				found = 1;
			}
		if (!found)
			return fail(out, tstart, -EINVAL);
		p = skip_ws(spec, p);
		/* count */
		if (spec[p] == '[') {
			p = cstart = skip_ws(spec, p + 1);
			if (!is_digit(spec[p]) || spec[p] == '0')
				return fail(out, p, -EINVAL);
			count = 0;
			while (is_digit(spec[p])) {
				count = count * 10 + (uint64_t)(spec[p++] - '0');
				if (count > DH_SCHEMA_RECORD_MAX)
					return fail(out, cstart, -EINVAL);
			}
			p = skip_ws(spec, p);
			if (spec[p] != ']')
				return fail(out, p, -EINVAL);
			p = skip_ws(spec, p + 1);
			is_array = 1;
		} else if (type == DH_F_CHAR || type == DH_F_PAD) {
			return fail(out, p, -EINVAL);
		}
		if (spec[p] != ';' && spec[p] != '\0')
			return fail(out, p, -EINVAL);
		/* name rules */
		if ((type == DH_F_PAD) != is_pad_name(spec + nstart, nlen))
			return fail(out, nstart, -EINVAL);
		for (uint32_t i = 0; i < nnames; i++)
			if (names[i].len == nlen && memcmp(spec + names[i].at, spec + nstart, nlen) == 0)
				return fail(out, nstart, -EINVAL);
		if (nnames == DH_SCHEMA_FIELDS_MAX)
			return fail(out, start, -E2BIG);
		names[nnames].at = (uint32_t)nstart;
		names[nnames++].len = (uint32_t)nlen;
		/* layout */
		esize = dh_schema_type_size(type);
		size = esize * count;
		if (size > DH_SCHEMA_RECORD_MAX)
			return fail(out, cstart, -EINVAL);
		align = out->packed ? 1 : esize;
		if (align > maxalign)
			maxalign = (uint32_t)align;
		if (off % align) {
			uint64_t gap = align - off % align;

			if ((rc = add_pad(out, src, off, gap, start)) < 0)
				return rc;
			off += gap;
		}
		if (off + size > DH_SCHEMA_RECORD_MAX)
			return fail(out, start, -EINVAL);
		if (type == DH_F_PAD) {
			if ((rc = add_pad(out, src, off, size, start)) < 0)
				return rc;
		} else {
			struct dh_schema_field *f;

			if (out->nfields == DH_SCHEMA_FIELDS_MAX)
				return fail(out, start, -E2BIG);
			src[out->nfields] = (uint32_t)start;
			out->is_array[out->nfields] = (uint8_t)(is_array || type == DH_F_CHAR);
			f = &out->fields[out->nfields++];
			memcpy(f->name, spec + nstart, nlen);
			f->name[nlen] = '\0';
			f->type = type;
			f->count = (uint32_t)count;
			f->offset = (uint32_t)off;
			f->size = (uint32_t)size;
			out->ncolumns += type == DH_F_CHAR ? 1 : (uint32_t)count;
			ndata++;
		}
		off += size;
		if (spec[p] == '\0')
			break;
		p++;
	}
	if (ndata == 0)
		return fail(out, p, -EINVAL);
	if (off % maxalign) {
		uint64_t gap = maxalign - off % maxalign;

		if (off + gap > DH_SCHEMA_RECORD_MAX)
			return fail(out, p, -EINVAL);
		if ((rc = add_pad(out, src, off, gap, p)) < 0)
			return rc;
		off += gap;
	}
	out->size = (uint32_t)off;
	out->align = maxalign;
	if ((rc = build_canonical(out, src)) < 0)
		return rc;
	if (sodium_init() < 0)
		return -ENOSYS;
	crypto_generichash(out->hash, sizeof out->hash, (const unsigned char *)out->canonical,
			   strlen(out->canonical), NULL, 0);
	out->error_at = 0;
	return 0;
}

/* ---- output helpers -------------------------------------------------------- */

/* A bounded output buffer; always keeps room for the final NUL. */
struct obuf {
	char *buf;
	size_t cap, n;
	int full;
};

static void put(struct obuf *o, const void *s, size_t len)
{
	if (o->full)
		return;
	if (len >= o->cap - o->n) {
		o->full = 1;
		return;
	}
	memcpy(o->buf + o->n, s, len);
	o->n += len;
}

static void putc1(struct obuf *o, char c)
{
	put(o, &c, 1);
}

static ssize_t finish(struct obuf *o)
{
	if (o->full)
		return -ENOBUFS;
	o->buf[o->n] = '\0';
	return (ssize_t)o->n;
}

static size_t fmt_u64(char *t, uint64_t v)
{
	char r[20];
	size_t n = 0, i;

	do {
		r[n++] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	for (i = 0; i < n; i++)
		t[i] = r[n - 1 - i];
	return n;
}

static size_t fmt_i64(char *t, int64_t v)
{
	if (v < 0) {
		t[0] = '-';
		return 1 + fmt_u64(t + 1, (uint64_t)0 - (uint64_t)v);
	}
	return fmt_u64(t, (uint64_t)v);
}

/* Print element p of type into t (NUM_MAX + 1 bytes or more); json: non-finite as null. */
static size_t fmt_elem(char *t, size_t tcap, const unsigned char *p, enum dh_ftype type, int json)
{
	int n = 0;

	switch (type) {
	case DH_F_I8: { int8_t v; memcpy(&v, p, 1); return fmt_i64(t, v); }
	case DH_F_I16: { int16_t v; memcpy(&v, p, 2); return fmt_i64(t, v); }
	case DH_F_I32: { int32_t v; memcpy(&v, p, 4); return fmt_i64(t, v); }
	case DH_F_I64: { int64_t v; memcpy(&v, p, 8); return fmt_i64(t, v); }
	case DH_F_U8: { uint8_t v; memcpy(&v, p, 1); return fmt_u64(t, v); }
	case DH_F_U16: { uint16_t v; memcpy(&v, p, 2); return fmt_u64(t, v); }
	case DH_F_U32: { uint32_t v; memcpy(&v, p, 4); return fmt_u64(t, v); }
	case DH_F_U64: { uint64_t v; memcpy(&v, p, 8); return fmt_u64(t, v); }
	case DH_F_F32: {
		float v;

		memcpy(&v, p, 4);
		if (json && !isfinite(v))
			n = snprintf(t, tcap, "null");
		else
			n = snprintf(t, tcap, "%.9g", (double)v);
		break;
	}
	case DH_F_F64: {
		double v;

		memcpy(&v, p, 8);
		if (json && !isfinite(v))
			n = snprintf(t, tcap, "null");
		else
			n = snprintf(t, tcap, "%.17g", v);
		break;
	}
	case DH_F_CHAR: case DH_F_PAD:
		break;
	}
	return n > 0 && (size_t)n < tcap ? (size_t)n : 0;
}

static void json_text(struct obuf *o, const unsigned char *p, size_t len)
{
	static const char hex[] = "0123456789abcdef";
	const unsigned char *end = p + len;

	putc1(o, '"');
	while (p < end && !o->full) {
		unsigned char c = *p;
		size_t n;

		switch (c) {
		case '"': put(o, "\\\"", 2); p++; continue;
		case '\\': put(o, "\\\\", 2); p++; continue;
		case '\b': put(o, "\\b", 2); p++; continue;
		case '\f': put(o, "\\f", 2); p++; continue;
		case '\n': put(o, "\\n", 2); p++; continue;
		case '\r': put(o, "\\r", 2); p++; continue;
		case '\t': put(o, "\\t", 2); p++; continue;
		default: break;
		}
		if (c < 0x20 || c == 0x7f) {
			char e[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};

			put(o, e, 6);
			p++;
		} else if ((n = dh__utf8_seq(p, end)) > 0) {
			put(o, p, n);
			p += n;
		} else {
			put(o, "\xef\xbf\xbd", 3);  /* U+FFFD */
			p++;
		}
	}
	putc1(o, '"');
}

/* Bytes of a char field's text: up to the first NUL. */
static size_t text_len(const unsigned char *p, size_t n)
{
	const unsigned char *z = memchr(p, '\0', n);

	return z ? (size_t)(z - p) : n;
}

static size_t clamp(uint64_t v)
{
	return v > SIZE_MAX ? SIZE_MAX : (size_t)v;
}

/* ---- JSON ------------------------------------------------------------------ */

size_t dh_schema_json_bound(const struct dh_schema *s)
{
	uint64_t n = 3;   /* {}\0 */

	for (uint32_t i = 0; i < s->nfields; i++) {
		const struct dh_schema_field *f = &s->fields[i];

		if (f->type == DH_F_PAD)
			continue;
		n += strlen(f->name) + 4;  /* "name": and a comma */
		if (f->type == DH_F_CHAR)
			n += 2 + 6 * (uint64_t)f->count;
		else if (s->is_array[i])
			n += 2 + (uint64_t)f->count * (NUM_MAX + 1);
		else
			n += NUM_MAX;
	}
	return clamp(n);
}

ssize_t dh_schema_to_json(const struct dh_schema *s, const void *record, size_t len, char *buf,
			  size_t cap)
{
	struct obuf o = {buf, cap, 0, cap == 0};
	const unsigned char *rec = record;
	int first = 1;

	if (!s || !record || !buf)
		return -EINVAL;
	if (len != s->size)
		return -EMSGSIZE;
	putc1(&o, '{');
	for (uint32_t i = 0; i < s->nfields && !o.full; i++) {
		const struct dh_schema_field *f = &s->fields[i];
		const unsigned char *p = rec + f->offset;
		size_t esize = dh_schema_type_size(f->type);
		char t[NUM_MAX + 8];

		if (f->type == DH_F_PAD)
			continue;
		if (!first)
			putc1(&o, ',');
		first = 0;
		putc1(&o, '"');
		put(&o, f->name, strlen(f->name));
		put(&o, "\":", 2);
		if (f->type == DH_F_CHAR) {
			json_text(&o, p, text_len(p, f->count));
		} else if (s->is_array[i]) {
			putc1(&o, '[');
			for (uint32_t e = 0; e < f->count && !o.full; e++) {
				if (e)
					putc1(&o, ',');
				put(&o, t, fmt_elem(t, sizeof t, p + e * esize, f->type, 1));
			}
			putc1(&o, ']');
		} else {
			put(&o, t, fmt_elem(t, sizeof t, p, f->type, 1));
		}
	}
	putc1(&o, '}');
	return finish(&o);
}

/* ---- CSV ------------------------------------------------------------------- */

size_t dh_schema_csv_bound(const struct dh_schema *s)
{
	uint64_t head = 1, row = 1;

	for (uint32_t i = 0; i < s->nfields; i++) {
		const struct dh_schema_field *f = &s->fields[i];
		uint64_t name = strlen(f->name) + 1;  /* and a comma */

		if (f->type == DH_F_PAD)
			continue;
		if (f->type == DH_F_CHAR) {
			head += name;
			row += 3 + 2 * (uint64_t)f->count;
		} else if (s->is_array[i]) {
			head += (uint64_t)f->count * (name + 12);  /* [4294967295] */
			row += (uint64_t)f->count * (NUM_MAX + 1);
		} else {
			head += name;
			row += NUM_MAX + 1;
		}
	}
	return clamp(head > row ? head : row);
}

ssize_t dh_schema_csv_header(const struct dh_schema *s, char *buf, size_t cap)
{
	struct obuf o = {buf, cap, 0, cap == 0};
	int first = 1;

	if (!s || !buf)
		return -EINVAL;
	for (uint32_t i = 0; i < s->nfields && !o.full; i++) {
		const struct dh_schema_field *f = &s->fields[i];
		size_t nl = strlen(f->name);

		if (f->type == DH_F_PAD)
			continue;
		if (f->type == DH_F_CHAR || !s->is_array[i]) {
			if (!first)
				putc1(&o, ',');
			first = 0;
			put(&o, f->name, nl);
			continue;
		}
		for (uint32_t e = 0; e < f->count && !o.full; e++) {
			char t[24];

			if (!first)
				putc1(&o, ',');
			first = 0;
			put(&o, f->name, nl);
			t[0] = '[';
			{
				size_t n = 1 + fmt_u64(t + 1, e);

				t[n++] = ']';
				put(&o, t, n);
			}
		}
	}
	return finish(&o);
}

int dh_schema_column_name(const struct dh_schema *s, uint32_t col, char *buf, size_t cap)
{
	uint32_t c = 1;
	int n;

	if (!s || !buf)
		return -EINVAL;
	if (col == 0)
		return -ERANGE;
	for (uint32_t i = 0; i < s->nfields; i++) {
		const struct dh_schema_field *f = &s->fields[i];
		uint32_t ncol;

		if (f->type == DH_F_PAD)
			continue;
		ncol = f->type == DH_F_CHAR ? 1 : f->count;
		if (col - c < ncol) {
			if (f->type == DH_F_CHAR || !s->is_array[i])
				n = snprintf(buf, cap, "%s", f->name);
			else
				n = snprintf(buf, cap, "%s[%u]", f->name, (unsigned)(col - c));
			return n >= 0 && (size_t)n < cap ? 0 : -ENOBUFS;
		}
		c += ncol;
	}
	return -ERANGE;
}

static void csv_text(struct obuf *o, const unsigned char *p, size_t len)
{
	const unsigned char *end = p + len;
	int quote = 0;

	for (size_t i = 0; i < len; i++)
		if (p[i] == ',' || p[i] == '"' || p[i] == '\r' || p[i] == '\n') {
			quote = 1;
			break;
		}
	if (!quote) {
		put(o, p, len);
		return;
	}
	putc1(o, '"');
	while (p < end && !o->full) {
		const unsigned char *q = memchr(p, '"', (size_t)(end - p));

		if (!q) {
			put(o, p, (size_t)(end - p));
			break;
		}
		put(o, p, (size_t)(q - p) + 1);
		putc1(o, '"');
		p = q + 1;
	}
	putc1(o, '"');
}

ssize_t dh_schema_to_csv(const struct dh_schema *s, const void *record, size_t len, char *buf,
			 size_t cap)
{
	struct obuf o = {buf, cap, 0, cap == 0};
	const unsigned char *rec = record;
	int first = 1;

	if (!s || !record || !buf)
		return -EINVAL;
	if (len != s->size)
		return -EMSGSIZE;
	for (uint32_t i = 0; i < s->nfields && !o.full; i++) {
		const struct dh_schema_field *f = &s->fields[i];
		const unsigned char *p = rec + f->offset;
		size_t esize = dh_schema_type_size(f->type);
		char t[NUM_MAX + 8];

		if (f->type == DH_F_PAD)
			continue;
		if (f->type == DH_F_CHAR) {
			if (!first)
				putc1(&o, ',');
			first = 0;
			csv_text(&o, p, text_len(p, f->count));
			continue;
		}
		for (uint32_t e = 0; e < f->count && !o.full; e++) {
			if (!first)
				putc1(&o, ',');
			first = 0;
			put(&o, t, fmt_elem(t, sizeof t, p + e * esize, f->type, 0));
		}
	}
	return finish(&o);
}

int dh_schema_csv_open_quote(const char *buf, size_t len)
{
	size_t n = 0;

	for (const char *p = buf, *end = buf + len; p < end; p++) {
		p = memchr(p, '"', (size_t)(end - p));
		if (!p)
			break;
		n++;
	}
	return (int)(n & 1);
}

/* One CSV field at *pp: its raw bytes (for a quoted field, between the
 * quotes, quotes still doubled). Leaves *pp at the ',' or the end. NULL, or
 * what is wrong. */
static const char *scan_field(const char **pp, const char *end, const char **tok, size_t *toklen,
			      int *quoted)
{
	const char *p = *pp;

	if (p < end && *p == '"') {
		*tok = ++p;
		for (;;) {
			p = memchr(p, '"', (size_t)(end - p));
			if (!p)
				return "unterminated quoted field";
			if (p + 1 < end && p[1] == '"') {
				p += 2;
				continue;
			}
			break;
		}
		*toklen = (size_t)(p - *tok);
		p++;
		if (p < end && *p != ',')
			return "text after closing quote";
		*quoted = 1;
	} else {
		*tok = p;
		for (; p < end && *p != ','; p++) {
			if (*p == '"')
				return "quote in unquoted field";
			if (*p == '\r' || *p == '\n')
				return "line break in unquoted field";
		}
		*toklen = (size_t)(p - *tok);
		*quoted = 0;
	}
	*pp = p;
	return NULL;
}

/* Copy a field's bytes to dst (at most cap), undoubling quotes when quoted.
 * Returns the length, or cap + 1 if it does not fit. */
static size_t unquote(char *dst, size_t cap, const char *tok, size_t len, int quoted)
{
	size_t n = 0;

	for (size_t i = 0; i < len; i++) {
		if (quoted && tok[i] == '"')
			i++;          /* the first of a doubled pair */
		if (n == cap)
			return cap + 1;
		dst[n++] = tok[i];
	}
	return n;
}

static const char *parse_int(const char *t, size_t n, enum dh_ftype type, unsigned char *dst)
{
	uint64_t mag = 0, lim;
	size_t i = 0;
	int neg = 0, is_signed = type <= DH_F_I64;
	unsigned bits = 8 * (unsigned)dh_schema_type_size(type);

	if (n == 0)
		return "empty field";
	if (t[0] == '-') {
		neg = 1;
		i = 1;
	}
	if (i == n)
		return "not an integer";
	for (; i < n; i++) {
		unsigned d = (unsigned char)t[i] - (unsigned)'0';

		if (d > 9)
			return "not an integer";
		if (mag > (UINT64_MAX - d) / 10) {
			/* keep checking the syntax before calling it out of range */
			for (; i < n; i++)
				if (!is_digit(t[i]))
					return "not an integer";
			return "out of range";
		}
		mag = mag * 10 + d;
	}
	if (is_signed) {
		int64_t v;

		lim = ((uint64_t)1 << (bits - 1)) - 1;
		if (mag > lim + (uint64_t)neg)
			return "out of range";
		if (!neg)
			v = (int64_t)mag;
		else if (mag == (uint64_t)INT64_MAX + 1)
			v = INT64_MIN;
		else
			v = -(int64_t)mag;
		switch (type) {
		case DH_F_I8: { int8_t x = (int8_t)v; memcpy(dst, &x, 1); break; }
		case DH_F_I16: { int16_t x = (int16_t)v; memcpy(dst, &x, 2); break; }
		case DH_F_I32: { int32_t x = (int32_t)v; memcpy(dst, &x, 4); break; }
		default: memcpy(dst, &v, 8); break;
		}
	} else {
		lim = bits == 64 ? UINT64_MAX : ((uint64_t)1 << bits) - 1;
		if (neg && mag != 0)
			return "out of range";
		if (mag > lim)
			return "out of range";
		switch (type) {
		case DH_F_U8: { uint8_t x = (uint8_t)mag; memcpy(dst, &x, 1); break; }
		case DH_F_U16: { uint16_t x = (uint16_t)mag; memcpy(dst, &x, 2); break; }
		case DH_F_U32: { uint32_t x = (uint32_t)mag; memcpy(dst, &x, 4); break; }
		default: memcpy(dst, &mag, 8); break;
		}
	}
	return NULL;
}

/* t is NUL-terminated at t[n]. */
static const char *parse_float(const char *t, size_t n, enum dh_ftype type, unsigned char *dst)
{
	int saved = errno, bad;
	char *end;

	if (n == 0)
		return "empty field";
	if (t[0] == ' ' || (t[0] >= '\t' && t[0] <= '\r'))
		return "not a number";
	errno = 0;
	if (type == DH_F_F32) {
		float v = strtof(t, &end);

		bad = errno == ERANGE && isinf(v);
		memcpy(dst, &v, 4);
	} else {
		double v = strtod(t, &end);

		bad = errno == ERANGE && isinf(v);
		memcpy(dst, &v, 8);
	}
	errno = saved;
	if (end != t + n)
		return "not a number";
	return bad ? "out of range" : NULL;
}

int dh_schema_from_csv(const struct dh_schema *s, const char *line, size_t len, void *record,
		       uint32_t *err_col, const char **err_what)
{
	const char *p = line, *end, *what = NULL;
	unsigned char *rec = record;
	uint32_t col = 0;

	if (err_col)
		*err_col = 0;
	if (err_what)
		*err_what = "";
	if (!s || !record || (!line && len)) {
		if (err_what)
			*err_what = "invalid arguments";
		return -EINVAL;
	}
	if (len > 0 && line[len - 1] == '\n')
		len--;
	if (len > 0 && line[len - 1] == '\r')
		len--;
	end = line + len;
	memset(rec, 0, s->size);
	for (uint32_t i = 0; i < s->nfields && !what; i++) {
		const struct dh_schema_field *f = &s->fields[i];
		size_t esize = dh_schema_type_size(f->type);
		uint32_t ncol = f->type == DH_F_CHAR ? 1 : f->count;

		if (f->type == DH_F_PAD)
			continue;
		for (uint32_t e = 0; e < ncol && !what; e++) {
			const char *tok;
			size_t toklen, n;
			int quoted;

			if (++col > 1) {
				if (p == end) {
					what = "too few fields";
					break;
				}
				p++;  /* the ',' scan_field stopped at */
			}
			if ((what = scan_field(&p, end, &tok, &toklen, &quoted)))
				break;
			if (f->type == DH_F_CHAR) {
				char *dst = (char *)rec + f->offset;

				n = unquote(dst, f->count, tok, toklen, quoted);
				if (n > f->count)
					what = "text too long";
				else if (memchr(dst, '\0', n))
					what = "NUL byte in text";
			} else {
				char t[NUM_IN_MAX + 1];

				n = unquote(t, NUM_IN_MAX, tok, toklen, quoted);
				if (n > NUM_IN_MAX) {
					what = "number too long";
					break;
				}
				t[n] = '\0';
				if (f->type == DH_F_F32 || f->type == DH_F_F64)
					what = parse_float(t, n, f->type, rec + f->offset + e * esize);
				else
					what = parse_int(t, n, f->type, rec + f->offset + e * esize);
			}
		}
	}
	if (!what && p != end) {
		col = s->ncolumns + 1;
		what = "too many fields";
	}
	if (what) {
		if (err_col)
			*err_col = col;
		if (err_what)
			*err_what = what;
		return -EINVAL;
	}
	return 0;
}
