/* test_schema.c: unit tests of record schemas (lib/schema.c). See LICENSE. */
#include <errno.h>
#include <float.h>
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "dh_schema.h"
#include "tap.h"

static struct dh_schema S, S2;

/* ---- parsing -------------------------------------------------------------- */

static const struct good {
	const char *spec, *canonical;
	uint32_t size;
} goods[] = {
	{"ts:u64;temp:f32;flags:u8;name:char[16];v:i16[3]",
	 "ts:u64;temp:f32;flags:u8;name:char[16];_pad0:pad[1];v:i16[3];_pad1:pad[4]", 40},
	{" a : u8 ;\n b:u32\t\r\n", "a:u8;_pad0:pad[3];b:u32", 8},
	{"a:u8;_pad7:pad[1];b:u32", "a:u8;_pad0:pad[3];b:u32", 8},
	{"a:u8;_pad0:pad[3];b:u32", "a:u8;_pad0:pad[3];b:u32", 8},
	{"_pad5:pad[2];a:u16", "_pad0:pad[2];a:u16", 4},
	{"x:f64;y:u8", "x:f64;y:u8;_pad0:pad[7]", 16},
	{"c:char[3];d:u16", "c:char[3];_pad0:pad[1];d:u16", 6},
	{"packed;a:u8;b:u64", "packed;a:u8;b:u64", 9},
	{" packed ; a : u8 [ 2 ] ", "packed;a:u8[2]", 2},
	{"packed;a:u8;_pad0:pad[2];b:u16", "packed;a:u8;_pad0:pad[2];b:u16", 5},
	{"packed:u8", "packed:u8", 1},
	{"a:u8[1]", "a:u8[1]", 1},
	{"a:i8;b:i16;c:i32;d:i64;e:u8;f:u16;g:u32;h:u64;i:f32;j:f64",
	 "a:i8;_pad0:pad[1];b:i16;c:i32;d:i64;e:u8;_pad1:pad[1];f:u16;g:u32;h:u64;i:f32;_pad2:pad[4];j:f64", 48},
	{"Name_1:u8;_x:i16", "Name_1:u8;_pad0:pad[1];_x:i16", 4},
	{"big:u64[134217728]", "big:u64[134217728]", 1u << 30},
	{"t:char[1073741824]", "t:char[1073741824]", 1u << 30},
	{"n23456789012345678901234567890123456789012345678901234567890123:u8",
	 "n23456789012345678901234567890123456789012345678901234567890123:u8", 1},
};
#define NGOOD (int)(sizeof goods / sizeof goods[0])

static const struct bad {
	const char *spec;
	int rc;
	uint32_t at;
} bads[] = {
	{"", -EINVAL, 0},
	{"   ", -EINVAL, 3},
	{"a:u8;", -EINVAL, 5},
	{";a:u8", -EINVAL, 0},
	{"a:u8;;b:u8", -EINVAL, 5},
	{"a:u8;a:u16", -EINVAL, 5},
	{"a:u8;b:u8;a:u8", -EINVAL, 10},
	{"a:u8;_pad1:pad[1];_pad1:pad[1];b:u32", -EINVAL, 18},
	{":u8", -EINVAL, 0},
	{"1a:u8", -EINVAL, 0},
	{"a-b:u8", -EINVAL, 1},
	{"a u8", -EINVAL, 2},
	{"a:", -EINVAL, 2},
	{"a:u9", -EINVAL, 2},
	{"a:U8", -EINVAL, 2},
	{"a:u8x", -EINVAL, 2},
	{"a:int", -EINVAL, 2},
	{"a:u8[0]", -EINVAL, 5},
	{"a:u8[01]", -EINVAL, 5},
	{"a:u8[]", -EINVAL, 5},
	{"a:u8[-1]", -EINVAL, 5},
	{"a:u8[3", -EINVAL, 6},
	{"a:u8[3x]", -EINVAL, 6},
	{"a:u8[99999999999999999999]", -EINVAL, 5},
	{"a:u64[134217729]", -EINVAL, 6},
	{"a:char[1073741825]", -EINVAL, 7},
	{"a:char[1073741824];b:u8", -EINVAL, 19},
	{"a:u8;b:u64[134217728]", -EINVAL, 5},
	{"a:u8 x", -EINVAL, 5},
	{"a:u8;b:u32 junk", -EINVAL, 11},
	{"a:u8[2][3]", -EINVAL, 7},
	{"a:u8\x01", -EINVAL, 4},
	{"a:char", -EINVAL, 6},
	{"a:pad", -EINVAL, 5},
	{"a:pad[2];b:u8", -EINVAL, 0},
	{"_pad0:u8", -EINVAL, 0},
	{"_pad:pad[1];b:u8", -EINVAL, 0},
	{"_pad0:pad[4]", -EINVAL, 12},
	{"packed", -EINVAL, 6},
	{"packed;", -EINVAL, 7},
	{"packed;packed;a:u8", -EINVAL, 13},
	{"n234567890123456789012345678901234567890123456789012345678901234:u8", -EINVAL, 0},
};
#define NBAD (int)(sizeof bads / sizeof bads[0])

static const struct dh_schema_field *field(const struct dh_schema *s, const char *name)
{
	for (uint32_t i = 0; i < s->nfields; i++)
		if (strcmp(s->fields[i].name, name) == 0)
			return &s->fields[i];
	return NULL;
}

static uint32_t off_of(const struct dh_schema *s, const char *name)
{
	const struct dh_schema_field *f = field(s, name);

	return f ? f->offset : UINT32_MAX;
}

static void test_parse(void)
{
	char buf[4096];
	int rc;

	for (int i = 0; i < NGOOD; i++) {
		rc = dh_schema_parse(goods[i].spec, &S);
		if (!ok(rc == 0 && strcmp(S.canonical, goods[i].canonical) == 0 && S.size == goods[i].size &&
			S.error_at == 0,
			"parse good spec %d: %s", i, goods[i].canonical))
			diag("rc %d at %u size %u canonical '%s'", rc, S.error_at, S.size, S.canonical);
	}
	for (int i = 0; i < NGOOD; i++) {
		int ok1 = dh_schema_parse(goods[i].spec, &S) == 0;
		int ok2 = dh_schema_parse(S.canonical, &S2) == 0;

		ok(ok1 && ok2 && strcmp(S.canonical, S2.canonical) == 0 && memcmp(S.hash, S2.hash, 32) == 0 &&
		   S.size == S2.size && S.nfields == S2.nfields && S.packed == S2.packed,
		   "canonical form %d parses to itself", i);
	}
	for (int i = 0; i < NBAD; i++) {
		rc = dh_schema_parse(bads[i].spec, &S);
		if (!ok(rc == bads[i].rc && S.error_at == bads[i].at, "bad spec %d refused at %u: %s", i,
			bads[i].at, bads[i].spec))
			diag("rc %d at %u", rc, S.error_at);
	}
	ok(dh_schema_parse(NULL, &S) == -EINVAL && dh_schema_parse("a:u8", NULL) == -EINVAL,
	   "NULL spec or schema: -EINVAL");

	/* limits */
	{
		size_t n = 0;

		for (int i = 0; i < 129; i++)
			n += (size_t)snprintf(buf + n, sizeof buf - n, "%sf%d:u8", i ? ";" : "", i);
		rc = dh_schema_parse(buf, &S);
		ok(rc == -E2BIG && S.error_at == (uint32_t)(strstr(buf, "f128:") - buf),
		   "129 fields: -E2BIG at the 129th (rc %d at %u)", rc, S.error_at);
		/* 126 fields and 2 pads fit; one more field that needs a pad does not */
		n = 0;
		for (int i = 0; i < 122; i++)
			n += (size_t)snprintf(buf + n, sizeof buf - n, "f%d:u8;", i);
		n += (size_t)snprintf(buf + n, sizeof buf - n, "g:u16;h:u8;i:u16;j:u8");
		rc = dh_schema_parse(buf, &S);
		ok(rc == 0 && S.nfields == 128 && S.fields[127].type == DH_F_PAD,
		   "126 fields + 2 pads fit (rc %d, %u fields)", rc, S.nfields);
		snprintf(buf + n, sizeof buf - n, ";z:u16");
		rc = dh_schema_parse(buf, &S);
		ok(rc == -E2BIG && S.error_at == n + 1, "127 fields + 2 pads: -E2BIG at the last (rc %d at %u)", rc,
		   S.error_at);
		/* canonical form longer than DH_SCHEMA_MAX - 1 */
		n = 0;
		for (int i = 0; i < 17; i++)
			n += (size_t)snprintf(buf + n, sizeof buf - n,
					      "%sfield_with_a_rather_long_name_number_%02d_xxxxxxxxxxxxxxxxxx:u8",
					      i ? ";" : "", i);
		rc = dh_schema_parse(buf, &S);
		ok(rc == -E2BIG && strlen(buf) >= DH_SCHEMA_MAX, "canonical form too long: -E2BIG (rc %d)", rc);
	}
	{
		char *big = malloc(DH_SCHEMA_SPEC_MAX + 16);

		memset(big, ' ', DH_SCHEMA_SPEC_MAX + 8);
		memcpy(big + DH_SCHEMA_SPEC_MAX - 8, "a:u8", 4);
		big[DH_SCHEMA_SPEC_MAX] = '\0';
		rc = dh_schema_parse(big, &S);
		ok(rc == 0 && strcmp(S.canonical, "a:u8") == 0, "spec of DH_SCHEMA_SPEC_MAX bytes accepted");
		big[DH_SCHEMA_SPEC_MAX] = ' ';
		big[DH_SCHEMA_SPEC_MAX + 1] = '\0';
		rc = dh_schema_parse(big, &S);
		ok(rc == -E2BIG, "spec longer than DH_SCHEMA_SPEC_MAX: -E2BIG (rc %d)", rc);
		free(big);
	}

	/* fields, columns, arrays */
	rc = dh_schema_parse("ts:u64;temp:f32;flags:u8;name:char[16];v:i16[3];one:u8[1];s:u8", &S);
	{
		const struct dh_schema_field *v = field(&S, "v"), *nm = field(&S, "name");

		ok(rc == 0 && S.ncolumns == 9 && S.align == 8 && !S.packed && v && v->type == DH_F_I16 &&
		   v->count == 3 && v->size == 6 && nm && nm->type == DH_F_CHAR && nm->count == 16 &&
		   nm->size == 16 && field(&S, "_pad0") == &S.fields[4] && S.fields[4].type == DH_F_PAD &&
		   S.is_array[0] == 0 && S.is_array[3] == 1 && S.is_array[4] == 1 && S.is_array[5] == 1 &&
		   S.is_array[6] == 1 && S.is_array[7] == 0 && S.fields[8].type == DH_F_PAD && S.size == 40,
		   "field table: types, counts, sizes, is_array, columns");
	}
	rc = dh_schema_parse("packed;a:u8;b:u64", &S);
	ok(rc == 0 && S.packed && S.align == 1 && off_of(&S, "b") == 1, "packed: no padding, align 1");
}

/* ---- hashes --------------------------------------------------------------- */

static void test_hash(void)
{
	uint8_t h1[32], want[32];
	char hex[65];

	dh_schema_parse("ts:u64;temp:f32;flags:u8;name:char[16];v:i16[3]", &S);
	dh_schema_hash_hex(S.hash, hex);
	/* b2sum -l 256 of the canonical form */
	ok(strcmp(hex, "75fb8911416464acf4b7b379c03752af2b207b1eb5d6c886e2f817a2be5c3b75") == 0,
	   "hash of a known spec matches b2sum -l 256 (%s)", hex);
	crypto_generichash(want, 32, (const unsigned char *)S.canonical, strlen(S.canonical), NULL, 0);
	ok(memcmp(want, S.hash, 32) == 0, "hash is BLAKE2b-256 of the canonical string");

	dh_schema_parse("a:u8;b:u32", &S);
	memcpy(h1, S.hash, 32);
	dh_schema_parse("  a:u8 ;_pad3 : pad[ 3 ]; b : u32  ", &S);
	ok(memcmp(h1, S.hash, 32) == 0, "same layout written differently: same hash");
	dh_schema_parse("a:u8;b:u32", &S);
	ok(memcmp(h1, S.hash, 32) == 0, "same spec twice: same hash");

	{
		static const char *const diff[] = {
			"b:u8;a:u32", "a:u8;b:i32", "a:u8;b:f32", "packed;a:u8;b:u32", "a:u8[1];b:u32",
			"a:u8;b:u32[1]", "a:u8;b:u32;c:u8", "A:u8;b:u32", "a:char[1];b:u32",
		};
		int all = 1;

		for (size_t i = 0; i < sizeof diff / sizeof diff[0]; i++) {
			if (dh_schema_parse(diff[i], &S) != 0 || memcmp(h1, S.hash, 32) == 0) {
				diag("%s: same hash or refused", diff[i]);
				all = 0;
			}
		}
		ok(all, "different specs: different hashes");
	}
	{
		char hx[65];
		uint8_t h[32];

		for (int i = 0; i < 32; i++)
			h[i] = (uint8_t)(i * 17 + 1);
		dh_schema_hash_hex(h, hx);
		ok(strlen(hx) == 64 && strncmp(hx, "011223", 6) == 0 && strcmp(hx + 60, "ff10") == 0,
		   "dh_schema_hash_hex: lowercase, 64 digits");
	}
}

/* ---- layout against the C compiler ---------------------------------------- */

struct s1 {
	uint64_t ts;
	float temp;
	uint8_t flags;
	char name[16];
	int16_t v[3];
};

struct s2 {
	uint8_t a;
	double b;
	uint16_t c;
	uint8_t d[3];
	int32_t e;
	int8_t f;
};

struct s3 {
	char c[5];
	uint64_t x;
	uint8_t y;
	uint32_t z[2];
	int16_t w;
};

struct s4 {
	uint8_t a;
	uint64_t b;
	uint16_t c;
	float d;
} __attribute__((packed));

static void test_layout(void)
{
	int rc;

	rc = dh_schema_parse("ts:u64;temp:f32;flags:u8;name:char[16];v:i16[3]", &S);
	ok(rc == 0 && S.size == sizeof(struct s1) && off_of(&S, "ts") == offsetof(struct s1, ts) &&
	   off_of(&S, "temp") == offsetof(struct s1, temp) &&
	   off_of(&S, "flags") == offsetof(struct s1, flags) &&
	   off_of(&S, "name") == offsetof(struct s1, name) && off_of(&S, "v") == offsetof(struct s1, v),
	   "layout matches struct s1 (size %u vs %zu)", S.size, sizeof(struct s1));
	rc = dh_schema_parse("a:u8;b:f64;c:u16;d:u8[3];e:i32;f:i8", &S);
	ok(rc == 0 && S.size == sizeof(struct s2) && off_of(&S, "a") == offsetof(struct s2, a) &&
	   off_of(&S, "b") == offsetof(struct s2, b) && off_of(&S, "c") == offsetof(struct s2, c) &&
	   off_of(&S, "d") == offsetof(struct s2, d) && off_of(&S, "e") == offsetof(struct s2, e) &&
	   off_of(&S, "f") == offsetof(struct s2, f),
	   "layout matches struct s2 (size %u vs %zu)", S.size, sizeof(struct s2));
	rc = dh_schema_parse("c:char[5];x:u64;y:u8;z:u32[2];w:i16", &S);
	ok(rc == 0 && S.size == sizeof(struct s3) && off_of(&S, "c") == offsetof(struct s3, c) &&
	   off_of(&S, "x") == offsetof(struct s3, x) && off_of(&S, "y") == offsetof(struct s3, y) &&
	   off_of(&S, "z") == offsetof(struct s3, z) && off_of(&S, "w") == offsetof(struct s3, w),
	   "layout matches struct s3 (size %u vs %zu)", S.size, sizeof(struct s3));
	rc = dh_schema_parse("packed;a:u8;b:u64;c:u16;d:f32", &S);
	ok(rc == 0 && S.size == sizeof(struct s4) && off_of(&S, "a") == offsetof(struct s4, a) &&
	   off_of(&S, "b") == offsetof(struct s4, b) && off_of(&S, "c") == offsetof(struct s4, c) &&
	   off_of(&S, "d") == offsetof(struct s4, d),
	   "layout matches packed struct s4 (size %u vs %zu)", S.size, sizeof(struct s4));
	{
		/* the pads cover exactly the gaps */
		uint32_t end = 0;
		int contiguous = 1;

		dh_schema_parse("a:u8;b:f64;c:u16;d:u8[3];e:i32;f:i8", &S);
		for (uint32_t i = 0; i < S.nfields; i++) {
			if (S.fields[i].offset != end ||
			    S.fields[i].size != S.fields[i].count * dh_schema_type_size(S.fields[i].type))
				contiguous = 0;
			end = S.fields[i].offset + S.fields[i].size;
		}
		ok(contiguous && end == S.size, "fields and pads tile the record exactly");
	}
}

/* ---- JSON ----------------------------------------------------------------- */

static int jq_valid(const char *json)
{
	FILE *p = popen("jq -e . >/dev/null 2>&1", "w");

	if (!p)
		return 0;
	fputs(json, p);
	return pclose(p) == 0;
}

static void test_json(void)
{
	struct s1 r;
	char out[4096];
	ssize_t n;
	int have_jq = system("command -v jq >/dev/null 2>&1") == 0;

	dh_schema_parse("ts:u64;temp:f32;flags:u8;name:char[16];v:i16[3]", &S);
	memset(&r, 0, sizeof r);
	r.ts = 1700000000123ull;
	r.temp = 21.5f;
	r.flags = 3;
	memcpy(r.name, "probe", 5);
	r.v[0] = 1;
	r.v[1] = -2;
	r.v[2] = 32767;
	n = dh_schema_to_json(&S, &r, sizeof r, out, sizeof out);
	ok(n > 0 && strcmp(out, "{\"ts\":1700000000123,\"temp\":21.5,\"flags\":3,\"name\":\"probe\","
			   "\"v\":[1,-2,32767]}") == 0 && (size_t)n == strlen(out),
	   "JSON of a known record: %s", out);
	if (have_jq)
		ok(jq_valid(out), "jq accepts it");
	else
		skip("jq accepts it", "no jq");

	memcpy(r.name, "a\"b\\c\n\x01\x7f\xff\xc3\xa9\xed\xa0\x80zz", 16);
	n = dh_schema_to_json(&S, &r, sizeof r, out, sizeof out);
	ok(n > 0 && strstr(out, "\"name\":\"a\\\"b\\\\c\\n\\u0001\\u007f\xef\xbf\xbd\xc3\xa9"
				"\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbdzz\"") != NULL,
	   "JSON text: escapes, 16 bytes without NUL, invalid UTF-8 as U+FFFD");
	if (have_jq)
		ok(jq_valid(out), "jq accepts the escaped text");
	else
		skip("jq accepts the escaped text", "no jq");
	memcpy(r.name, "ab\0cd", 6);
	n = dh_schema_to_json(&S, &r, sizeof r, out, sizeof out);
	ok(n > 0 && strstr(out, "\"name\":\"ab\",") != NULL, "JSON text stops at the first NUL");

	{
		size_t len;

		n = dh_schema_to_json(&S, &r, sizeof r, out, sizeof out);
		len = (size_t)n;
		ok(dh_schema_to_json(&S, &r, sizeof r, out, len) == -ENOBUFS &&
		   dh_schema_to_json(&S, &r, sizeof r, out, len + 1) == n && out[len] == '\0' &&
		   dh_schema_to_json(&S, &r, sizeof r, out, 0) == -ENOBUFS,
		   "JSON: -ENOBUFS without room for the NUL, exact fit works");
		ok(dh_schema_to_json(&S, &r, sizeof r - 1, out, sizeof out) == -EMSGSIZE &&
		   dh_schema_to_json(&S, &r, sizeof r + 1, out, sizeof out) == -EMSGSIZE,
		   "JSON: record of the wrong size: -EMSGSIZE");
	}

	{
		struct {
			int8_t a;
			int64_t b;
			uint64_t c;
			float f[6];
			double d[6];
			uint8_t one[1];
		} x;

		memset(&x, 0, sizeof x);
		dh_schema_parse("a:i8;b:i64;c:u64;f:f32[6];d:f64[6];one:u8[1]", &S);
		x.a = -128;
		x.b = INT64_MIN;
		x.c = UINT64_MAX;
		x.f[0] = 0.1f;
		x.f[1] = -0.0f;
		x.f[2] = NAN;
		x.f[3] = -INFINITY;
		x.f[4] = FLT_MAX;
		x.f[5] = 1e-45f;
		x.d[0] = 0.1;
		x.d[1] = 1e300;
		x.d[2] = INFINITY;
		x.d[3] = -NAN;
		x.d[4] = DBL_TRUE_MIN;
		x.d[5] = -2.5;
		x.one[0] = 7;
		n = dh_schema_to_json(&S, &x, sizeof x, out, sizeof out);
		ok(S.size == sizeof x && n > 0 &&
		   strcmp(out, "{\"a\":-128,\"b\":-9223372036854775808,\"c\":18446744073709551615,"
			       "\"f\":[0.100000001,-0,null,null,3.40282347e+38,1.40129846e-45],"
			       "\"d\":[0.10000000000000001,1.0000000000000001e+300,null,null,"
			       "4.9406564584124654e-324,-2.5],\"one\":[7]}") == 0,
		   "JSON numbers: extremes, round-trip digits, non-finite as null, array of one: %s", out);
		if (have_jq)
			ok(jq_valid(out), "jq accepts the numbers");
		else
			skip("jq accepts the numbers", "no jq");
	}

	{
		/* worst case fits the bound */
		unsigned char rec[64];
		size_t bound;
		char *big;

		dh_schema_parse("t:char[20];b:i64[2];d:f64[1]", &S);
		memset(rec, 1, sizeof rec);
		{
			int64_t v = INT64_MIN;
			double d = -DBL_MIN / 3;

			memcpy(rec + 24, &v, 8);
			memcpy(rec + 32, &v, 8);
			memcpy(rec + 40, &d, 8);
		}
		bound = dh_schema_json_bound(&S);
		big = malloc(bound);
		n = dh_schema_to_json(&S, rec, S.size, big, bound);
		ok(n > 0 && (size_t)n < bound && (size_t)n + 1 > bound - 40,
		   "JSON bound holds the worst case, tightly (%zd of %zu)", n, bound);
		free(big);
	}
}

/* ---- CSV ------------------------------------------------------------------ */

static uint64_t rng = 0x9e3779b97f4a7c15ull;

static uint64_t rnd(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

struct s5 {
	uint8_t a;
	int16_t b;
	float c;
	char d[4];
	uint32_t e[2];
};

#define S5 "a:u8;b:i16;c:f32;d:char[4];e:u32[2]"

static const struct badrow {
	const char *row;
	size_t len;           /* 0: strlen */
	uint32_t col;
	const char *what;
} badrows[] = {
	{"1,2,3.5,abc,4", 0, 6, "too few fields"},
	{"1,2,3.5,abc,4,5,6", 0, 7, "too many fields"},
	{"1,2,3.5,abc,4,5,", 0, 7, "too many fields"},
	{"1", 0, 2, "too few fields"},
	{"", 0, 1, "empty field"},
	{"256,2,3.5,abc,4,5", 0, 1, "out of range"},
	{"-1,2,3.5,abc,4,5", 0, 1, "out of range"},
	{"1 ,2,3.5,abc,4,5", 0, 1, "not an integer"},
	{" 1,2,3.5,abc,4,5", 0, 1, "not an integer"},
	{"+1,2,3.5,abc,4,5", 0, 1, "not an integer"},
	{"-,2,3.5,abc,4,5", 0, 1, "not an integer"},
	{"1,-32769,3.5,abc,4,5", 0, 2, "out of range"},
	{"1,32768,3.5,abc,4,5", 0, 2, "out of range"},
	{"1,1.0,3.5,abc,4,5", 0, 2, "not an integer"},
	{"1,2,x,abc,4,5", 0, 3, "not a number"},
	{"1,2,,abc,4,5", 0, 3, "empty field"},
	{"1,2, 3.5,abc,4,5", 0, 3, "not a number"},
	{"1,2,3.5 ,abc,4,5", 0, 3, "not a number"},
	{"1,2,1e39,abc,4,5", 0, 3, "out of range"},
	{"1,2,3.5.1,abc,4,5", 0, 3, "not a number"},
	{"1,2,3.5,abcde,4,5", 0, 4, "text too long"},
	{"1,2,3.5,\"abcd\"\"\",4,5", 0, 4, "text too long"},
	{"1,2,3.5,ab\"c,4,5", 0, 4, "quote in unquoted field"},
	{"1,2,3.5,\"abc\"x,4,5", 0, 4, "text after closing quote"},
	{"1,2,3.5,\"abc,4,5", 0, 4, "unterminated quoted field"},
	{"1,2,3.5,a\rb,4,5", 0, 4, "line break in unquoted field"},
	{"1,2,3.5,a\0c,4,5", 15, 4, "NUL byte in text"},
	{"1,2,3.5,abc,,5", 0, 5, "empty field"},
	{"1,2,3.5,abc,4,4294967296", 0, 6, "out of range"},
	{"1,2,3.5,abc,4,99999999999999999999", 0, 6, "out of range"},
	{"1,2,3.5,abc,4,9999999999999999999x", 0, 6, "not an integer"},
	{"1,2,3.5,abc,4,0x5", 0, 6, "not an integer"},
	{"1,2,3.5,abc,4,5\n\n", 0, 6, "line break in unquoted field"},
	{"1,2,3.5,abc,4,\"5", 0, 6, "unterminated quoted field"},
};
#define NBADROW (int)(sizeof badrows / sizeof badrows[0])

static void test_csv(void)
{
	struct s1 r, back;
	char out[4096];
	ssize_t n;
	uint32_t col;
	const char *what;
	int rc;

	dh_schema_parse("ts:u64;temp:f32;flags:u8;name:char[16];v:i16[3]", &S);
	n = dh_schema_csv_header(&S, out, sizeof out);
	ok(n > 0 && strcmp(out, "ts,temp,flags,name,v[0],v[1],v[2]") == 0, "CSV header: %s", out);
	{
		char nm[DH_SCHEMA_NAME_MAX + 16];

		ok(dh_schema_column_name(&S, 1, nm, sizeof nm) == 0 && strcmp(nm, "ts") == 0 &&
		   dh_schema_column_name(&S, 4, nm, sizeof nm) == 0 && strcmp(nm, "name") == 0 &&
		   dh_schema_column_name(&S, 7, nm, sizeof nm) == 0 && strcmp(nm, "v[2]") == 0 &&
		   dh_schema_column_name(&S, 0, nm, sizeof nm) == -ERANGE &&
		   dh_schema_column_name(&S, 8, nm, sizeof nm) == -ERANGE &&
		   dh_schema_column_name(&S, 7, nm, 4) == -ENOBUFS,
		   "column names by number");
	}

	memset(&r, 0, sizeof r);
	r.ts = 1700000000123ull;
	r.temp = 21.5f;
	r.flags = 3;
	memcpy(r.name, "probe", 5);
	r.v[0] = 1;
	r.v[1] = -2;
	r.v[2] = 32767;
	n = dh_schema_to_csv(&S, &r, sizeof r, out, sizeof out);
	ok(n > 0 && strcmp(out, "1700000000123,21.5,3,probe,1,-2,32767") == 0, "CSV row: %s", out);
	memset(&back, 0xaa, sizeof back);
	rc = dh_schema_from_csv(&S, out, (size_t)n, &back, &col, &what);
	ok(rc == 0 && col == 0 && strcmp(what, "") == 0 && memcmp(&r, &back, sizeof r) == 0,
	   "CSV row back to the same record bytes (padding zeroed)");
	rc = dh_schema_from_csv(&S, "1700000000123,21.5,3,probe,1,-2,32767\r\n", 39, &back, NULL, NULL);
	ok(rc == 0 && memcmp(&r, &back, sizeof r) == 0, "CSV row with CRLF accepted");
	{
		const char *q = "\"1700000000123\",\"21.5\",3,\"probe\",1,-2,\"32767\"\n";

		rc = dh_schema_from_csv(&S, q, strlen(q), &back, NULL, NULL);
	}
	ok(rc == 0 && memcmp(&r, &back, sizeof r) == 0, "quoted numbers accepted");

	memcpy(r.name, "a,b\"c\nd\xff", 9);
	n = dh_schema_to_csv(&S, &r, sizeof r, out, sizeof out);
	ok(n > 0 && strcmp(out, "1700000000123,21.5,3,\"a,b\"\"c\nd\xff\",1,-2,32767") == 0,
	   "CSV quoting (RFC 4180), bytes verbatim");
	ok(dh_schema_csv_open_quote(out, 28) == 1 && dh_schema_csv_open_quote(out, (size_t)n) == 0 &&
	   dh_schema_csv_open_quote("", 0) == 0,
	   "dh_schema_csv_open_quote sees the open quote at the line break");
	rc = dh_schema_from_csv(&S, out, (size_t)n, &back, &col, &what);
	ok(rc == 0 && memcmp(&r, &back, sizeof r) == 0, "quoted text with comma, quote, LF back exactly");
	memset(r.name, 'x', 16);
	n = dh_schema_to_csv(&S, &r, sizeof r, out, sizeof out);
	rc = dh_schema_from_csv(&S, out, (size_t)n, &back, &col, &what);
	ok(rc == 0 && memcmp(&r, &back, sizeof r) == 0 && strstr(out, ",xxxxxxxxxxxxxxxx,"),
	   "text filling char[16] without NUL round-trips");
	ok(dh_schema_to_csv(&S, &r, sizeof r, out, (size_t)n) == -ENOBUFS &&
	   dh_schema_to_csv(&S, &r, sizeof r, out, (size_t)n + 1) == n &&
	   dh_schema_to_csv(&S, &r, 3, out, sizeof out) == -EMSGSIZE &&
	   dh_schema_csv_header(&S, out, 10) == -ENOBUFS,
	   "CSV: -ENOBUFS, exact fit, -EMSGSIZE");

	/* extremes in and out */
	{
		struct {
			int8_t a;
			uint8_t b;
			int64_t c;
			int64_t d;
			uint64_t e;
			float f[6];
			double g[6];
		} x, y;
		static const char row[] =
			"-128,255,-9223372036854775808,9223372036854775807,18446744073709551615,"
			"3.40282347e+38,1.17549435e-38,1.40129846e-45,-0,inf,-inf,"
			"1.7976931348623157e+308,2.2250738585072014e-308,4.9406564584124654e-324,-0,"
			"0.10000000000000001,-inf";
		static const char r1[] = "0,0,0,0,0,0x1p-149,1e-50,INF,Infinity,NaN,1e-40,"
					 "0x1.8p1,1e-400,1e400,0,0,0";
		static const char r2[] = "0,0,0,0,0,0x1p-149,1e-50,INF,Infinity,NaN,1e-40,"
					 "0x1.8p1,1e-400,-1e300,0,0,0";
		int same;

		dh_schema_parse("a:i8;b:u8;c:i64;d:i64;e:u64;f:f32[6];g:f64[6]", &S);
		memset(&x, 0, sizeof x);
		x.a = INT8_MIN;
		x.b = UINT8_MAX;
		x.c = INT64_MIN;
		x.d = INT64_MAX;
		x.e = UINT64_MAX;
		x.f[0] = FLT_MAX;
		x.f[1] = FLT_MIN;
		x.f[2] = FLT_TRUE_MIN;
		x.f[3] = -0.0f;
		x.f[4] = INFINITY;
		x.f[5] = -INFINITY;
		x.g[0] = DBL_MAX;
		x.g[1] = DBL_MIN;
		x.g[2] = DBL_TRUE_MIN;
		x.g[3] = -0.0;
		x.g[4] = 0.1;
		x.g[5] = -INFINITY;
		n = dh_schema_to_csv(&S, &x, sizeof x, out, sizeof out);
		ok(S.size == sizeof x && n > 0 && strcmp(out, row) == 0, "CSV of extremes: %s", out);
		rc = dh_schema_from_csv(&S, row, strlen(row), &y, &col, &what);
		ok(rc == 0 && memcmp(&x, &y, sizeof x) == 0, "extremes parse back bit-exact (rc %d col %u %s)",
		   rc, col, what);
		x.f[0] = NAN;
		x.g[0] = -NAN;
		n = dh_schema_to_csv(&S, &x, sizeof x, out, sizeof out);
		rc = dh_schema_from_csv(&S, out, (size_t)n, &y, &col, &what);
		same = rc == 0 && isnan(y.f[0]) && isnan(y.g[0]) && signbit(y.g[0]) && !signbit(y.f[0]);
		y.f[0] = x.f[0];
		y.g[0] = x.g[0];
		ok(same && memcmp(&x, &y, sizeof x) == 0 && strstr(out, ",nan,") && strstr(out, ",-nan,"),
		   "NaN prints as nan/-nan and parses back as NaN with its sign");
		rc = dh_schema_from_csv(&S, r1, strlen(r1), &y, &col, &what);
		ok(rc == -EINVAL && col == 14 && strcmp(what, "out of range") == 0,
		   "underflow to zero accepted, f64 overflow refused at its column (col %u %s)", col, what);
		rc = dh_schema_from_csv(&S, r2, strlen(r2), &y, &col, &what);
		ok(rc == 0 && y.f[0] == FLT_TRUE_MIN && y.f[1] == 0.0f && isinf(y.f[2]) && isinf(y.f[3]) &&
		   isnan(y.f[4]) && y.f[5] > 0 && y.g[0] == 3.0 && y.g[1] == 0.0,
		   "strtod syntax: hex floats, INF, Infinity, NaN, denormals (rc %d col %u %s)", rc, col,
		   what);
	}

	/* random round trips: record -> CSV -> record bit-exact, CSV -> record -> CSV same text */
	{
		struct {
			int8_t a;
			int16_t b;
			int32_t c;
			int64_t d;
			uint8_t e;
			uint16_t f;
			uint32_t g;
			uint64_t h;
			float i[2];
			double j[2];
			char k[9];
		} x, y;
		char again[4096];
		int bad = 0;

		rc = dh_schema_parse("a:i8;b:i16;c:i32;d:i64;e:u8;f:u16;g:u32;h:u64;i:f32[2];j:f64[2];k:char[9]", &S);
		ok(rc == 0 && S.size == sizeof x, "round-trip schema matches its struct");
		for (int it = 0; it < 20000 && bad < 5; it++) {
			unsigned char *p = (unsigned char *)&x;
			size_t kl;

			for (size_t b = 0; b < sizeof x; b++)
				p[b] = (unsigned char)rnd();
			for (int e = 0; e < 2; e++) {
				while (!isfinite(x.i[e]))
					memcpy(&x.i[e], &(uint32_t){(uint32_t)rnd()}, 4);
				while (!isfinite(x.j[e]))
					memcpy(&x.j[e], &(uint64_t){rnd()}, 8);
			}
			/* text: random non-NUL bytes, NUL-padded; padding zero */
			kl = rnd() % 10;
			for (size_t b = 0; b < 9; b++)
				x.k[b] = b < kl ? (char)(rnd() % 255 + 1) : 0;
			if (it % 7 == 0)
				memcpy(x.k, "\",\r\n\"\"x,", 8);
			{
				struct dh_schema_field *pf;
				for (uint32_t fi = 0; fi < S.nfields; fi++) {
					pf = &S.fields[fi];
					if (pf->type == DH_F_PAD)
						memset(p + pf->offset, 0, pf->size);
				}
			}
			n = dh_schema_to_csv(&S, &x, sizeof x, out, sizeof out);
			memset(&y, 0x55, sizeof y);
			rc = dh_schema_from_csv(&S, out, (size_t)n, &y, &col, &what);
			if (n <= 0 || rc != 0 || memcmp(&x, &y, sizeof x) != 0 ||
			    dh_schema_to_csv(&S, &y, sizeof y, again, sizeof again) != n ||
			    memcmp(out, again, (size_t)n) != 0) {
				diag("round trip failed (rc %d col %u %s): %s", rc, col, what, out);
				bad++;
			}
		}
		ok(bad == 0, "20000 random records: record -> CSV -> record bit-exact, CSV text stable");
	}

	/* malformed rows */
	dh_schema_parse(S5, &S);
	{
		struct s5 x, want;

		memset(&want, 0, sizeof want);
		want.a = 1;
		want.b = 2;
		want.c = 3.5f;
		memcpy(want.d, "ab,c", 4);
		want.e[0] = 4;
		want.e[1] = 5;
		rc = dh_schema_from_csv(&S, "1,2,3.5,\"ab,c\",4,5", 18, &x, &col, &what);
		ok(rc == 0 && S.size == sizeof x && memcmp(&x, &want, sizeof x) == 0,
		   "valid row for the malformed-row schema");
		rc = dh_schema_from_csv(&S, "1,2,3.5,\"a\nb\",4,5", 17, &x, &col, &what);
		ok(rc == 0 && memcmp(x.d, "a\nb", 4) == 0, "quoted field with a line break");
		rc = dh_schema_from_csv(&S, "1,2,3.5,,4,5", 12, &x, &col, &what);
		ok(rc == 0 && x.d[0] == 0, "empty text field is the empty string");
	}
	for (int i = 0; i < NBADROW; i++) {
		struct s5 x;
		size_t len = badrows[i].len ? badrows[i].len : strlen(badrows[i].row);

		col = 99;
		what = NULL;
		rc = dh_schema_from_csv(&S, badrows[i].row, len, &x, &col, &what);
		if (!ok(rc == -EINVAL && col == badrows[i].col && what && strcmp(what, badrows[i].what) == 0,
			"malformed row %d: column %u, %s", i, badrows[i].col, badrows[i].what))
			diag("rc %d col %u what %s", rc, col, what ? what : "(null)");
	}
	{
		struct s5 x;

		ok(dh_schema_from_csv(&S, "1,2", 3, &x, NULL, NULL) == -EINVAL &&
		   dh_schema_from_csv(NULL, "1", 1, &x, &col, &what) == -EINVAL &&
		   dh_schema_from_csv(&S, NULL, 3, &x, &col, &what) == -EINVAL,
		   "NULL error pointers allowed; NULL arguments refused");
	}

	/* bound */
	{
		char *big;
		size_t bound;
		struct {
			char t[10];
			int64_t v[2];
			double d;
		} x;

		dh_schema_parse("t:char[10];v:i64[2];d:f64", &S);
		memset(x.t, '"', sizeof x.t);
		x.v[0] = INT64_MIN;
		x.v[1] = INT64_MIN;
		x.d = -DBL_MIN / 3;
		bound = dh_schema_csv_bound(&S);
		big = malloc(bound);
		n = dh_schema_to_csv(&S, &x, sizeof x, big, bound);
		ok(S.size == sizeof x && n > 0 && (size_t)n < bound && dh_schema_csv_header(&S, big, bound) > 0,
		   "CSV bound holds the worst row (%zd of %zu) and the header", n, bound);
		free(big);
	}
}

int main(void)
{
	plan(2 * NGOOD + NBAD + 9 + 6 + 5 + 10 + 23 + NBADROW);
	test_parse();
	test_hash();
	test_layout();
	test_json();
	test_csv();
	return done();
}
