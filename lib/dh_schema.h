/* dh_schema.h: record schemas: parsing, canonical form, hashing, JSON/CSV codecs. See LICENSE. */
#ifndef DH_SCHEMA_H
#define DH_SCHEMA_H

#include <stddef.h>
#include <stdint.h>

#define DH_SCHEMA_MAX 1024        /* canonical form, including NUL */
#define DH_SCHEMA_FIELDS_MAX 128
#define DH_SCHEMA_NAME_MAX 64

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
};

/* Parse SPEC; fills *out (canonical, hash, size, fields). -EINVAL with
 * out->error_at set on a syntax error, -E2BIG if too many fields or too long. */
int dh_schema_parse(const char *spec, struct dh_schema *out);

#endif
