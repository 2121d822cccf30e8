/* key.c: MAC key files, key ids and the open-time identity checks. See LICENSE. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "dh_impl.h"
#include "dh_key.h"
#include "dh_schema.h"

int
dh_key_load(const char *path, uint8_t key[DH_KEY_BYTES])
{
	struct stat st;
	uint8_t extra;
	ssize_t n;
	int fd, rc = 0;

	if ((fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)) < 0)
		return -errno;
	if (fstat(fd, &st) < 0)
		rc = -errno;
	else if (!S_ISREG(st.st_mode) || st.st_uid != geteuid() || (st.st_mode & 077))
		rc = -DH_EKEYMODE;
	else if ((n = read(fd, key, DH_KEY_BYTES)) < 0)
		rc = -errno;
	else if (n != DH_KEY_BYTES || read(fd, &extra, 1) != 0)
		rc = -DH_EKEYSIZE;
	close(fd);
	if (rc < 0)
		sodium_memzero(key, DH_KEY_BYTES);
	return rc;
}

int
dh_key_generate(const char *path)
{
	uint8_t key[DH_KEY_BYTES];
	int fd, rc = 0;

	if (sodium_init() < 0)
		return -ENOSYS;
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	randombytes_buf(key, sizeof key);
	if (fchmod(fd, 0600) < 0 || write(fd, key, sizeof key) != (ssize_t)sizeof key || fsync(fd) < 0)
		rc = errno ? -errno : -EIO;
	sodium_memzero(key, sizeof key);
	if (close(fd) < 0 && rc == 0)
		rc = -errno;
	if (rc < 0)
		unlink(path);
	return rc;
}

void
dh_key_wipe(uint8_t key[DH_KEY_BYTES])
{
	sodium_memzero(key, DH_KEY_BYTES);
}

/* The id is a keyed hash of a fixed label, so it reveals nothing usable
 * about the key and cannot be confused with a MAC of any message. */
void
dh__key_id(const uint8_t key[DH_KEY_BYTES], uint8_t id[32])
{
	static const char label[] = "dh key id v1";

	crypto_generichash(id, 32, (const unsigned char *)label, sizeof label - 1, key, DH_KEY_BYTES);
}

int
dh_block_set_key(struct dh_block *b, const uint8_t *key)
{
	uint8_t id[32];

	if (!b->ck->keyed)
		return key ? -DH_ENOTKEYED : 0;
	if (!key)
		return -DH_EKEYNEEDED;
	dh__key_id(key, id);
	if (sodium_memcmp(id, b->hdr->key_id, sizeof id) != 0) {
		if (!b->rdonly)
			atomic_fetch_add(&b->hdr->key_mismatches, 1);
		return -DH_EKEY;
	}
	memcpy(b->key, key, DH_KEY_BYTES);
	b->has_key = 1;
	return 0;
}

int
dh_block_schema(struct dh_block *b, char *buf, size_t cap, uint8_t hash[32])
{
	uint32_t n = b->hdr->schema_len;

	if (n >= sizeof b->hdr->schema)
		n = 0; /* validated at open; never trust a re-read length */
	if (buf && cap) {
		size_t k = n < cap - 1 ? n : cap - 1;
		memcpy(buf, b->hdr->schema, k);
		buf[k] = '\0';
	}
	if (hash)
		memcpy(hash, b->hdr->schema_hash, 32);
	return (int)b->record_size;
}

/* Key and schema checks shared by writer and reader open. */
int
dh__check_identity(struct dh_block *b, const uint8_t *key, const char *schema)
{
	int rc;

	if ((rc = dh_block_set_key(b, key)) < 0)
		return rc;
	return dh__check_identity_schema(b, schema);
}

int
dh__check_identity_schema(struct dh_block *b, const char *schema)
{
	int rc = 0;

	if (schema) {
		struct dh_schema *sc = malloc(sizeof *sc);
		if (!sc)
			return -ENOMEM;
		rc = dh_schema_parse(schema, sc);
		if (rc == 0 && (b->record_size == 0 ||
				sodium_memcmp(sc->hash, b->hdr->schema_hash, 32) != 0))
			rc = -DH_ESCHEMA;
		free(sc);
		if (rc == -DH_ESCHEMA && !b->rdonly)
			atomic_fetch_add(&b->hdr->schema_mismatches, 1);
	}
	return rc;
}
