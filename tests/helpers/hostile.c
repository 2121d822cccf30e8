/* hostile: corrupt channel segments at known places, and sweep byte flips through open and check in-process. See LICENSE. */
/*
 * hostile offset FIELD
 *	byte offset of hdr.F (in the segment), pentry.F or desc.F (in an entry)
 * hostile set FILE OFFSET u8|u32|u64 VALUE
 *	store VALUE (host byte order) at OFFSET of FILE
 * hostile xor FILE OFFSET MASK
 *	flip the bits of MASK in the byte at OFFSET of FILE
 * hostile sweep NAME FROM TO
 *	for every offset in [FROM, TO) of /dev/shm/dh.NAME and each mask 0xff,
 *	0x01, 0x80: flip the byte, then dh_block_open (read-write and
 *	read-only), dh_block_snapshot and dh_check_run (check, then repair),
 *	then restore the segment.  Prints one summary line; exits 1 if an
 *	invariant breaks (magic flips must give DH_EFOREIGN, version flips
 *	DH_EVERSION, size flips DH_ECORRUPT; open fails only with those; a check
 *	on an opened segment returns 0).  A crash is a crash: the caller sees it.
 */
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dh.h"
#include "dh_impl.h"

#define F(type, field) { #type "." #field, offsetof(struct dh_##type, field) }

static const struct {
	const char *name;
	size_t off;
} fields[] = {
	F(hdr, magic), F(hdr, version), F(hdr, total_size), F(hdr, slots), F(hdr, slot_size),
	F(hdr, stride), F(hdr, meta_size), F(hdr, max_readers), F(hdr, policy), F(hdr, checksum),
	F(hdr, flags), F(hdr, evict_after_ns), F(hdr, created_ns), F(hdr, creator_uid),
	F(hdr, creator_pid), F(hdr, table_off), F(hdr, desc_off), F(hdr, meta_off), F(hdr, data_off),
	F(hdr, record_size), F(hdr, schema_len), F(hdr, key_id), F(hdr, schema_hash), F(hdr, committed),
	F(hdr, eos_seq), F(hdr, data_futex), F(hdr, claim_head), F(hdr, reader_gen),
	F(hdr, messages_written), F(hdr, checksum_failures), F(hdr, schema),
	F(pentry, state), F(pentry, pid), F(pentry, name), F(pentry, position), F(pentry, last_active_ns),
	F(pentry, messages), F(pentry, claim),
	F(desc, stamp), F(desc, qword), F(desc, length), F(desc, flags), F(desc, time_ns), F(desc, check),
};

static _Noreturn void
usage(void)
{
	fprintf(stderr, "usage: hostile offset FIELD | set FILE OFFSET u8|u32|u64 VALUE | "
			"xor FILE OFFSET MASK | sweep NAME FROM TO\n");
	exit(2);
}

static unsigned long long
number(const char *s)
{
	char *end;
	unsigned long long v;

	errno = 0;
	v = strtoull(s, &end, 0);
	if (errno || *end || end == s)
		usage();
	return v;
}

static int
put(const char *file, off_t off, const void *p, size_t n)
{
	int fd = open(file, O_RDWR | O_NOFOLLOW);

	if (fd < 0 || pwrite(fd, p, n, off) != (ssize_t)n) {
		perror(file);
		return 1;
	}
	close(fd);
	return 0;
}

static int
do_set(const char *file, off_t off, const char *width, unsigned long long v)
{
	uint8_t b = (uint8_t)v;
	uint32_t w = (uint32_t)v;
	uint64_t q = v;

	if (strcmp(width, "u8") == 0)
		return put(file, off, &b, 1);
	if (strcmp(width, "u32") == 0)
		return put(file, off, &w, 4);
	if (strcmp(width, "u64") == 0)
		return put(file, off, &q, 8);
	usage();
}

static int
do_xor(const char *file, off_t off, unsigned mask)
{
	int fd = open(file, O_RDWR | O_NOFOLLOW);
	uint8_t b;

	if (fd < 0 || pread(fd, &b, 1, off) != 1) {
		perror(file);
		return 1;
	}
	b ^= (uint8_t)mask;
	if (pwrite(fd, &b, 1, off) != 1) {
		perror(file);
		return 1;
	}
	close(fd);
	return 0;
}

struct tally {
	unsigned long trials, opened, corrupt, foreign, version, findings, violations;
};

static void
violation(struct tally *t, size_t off, unsigned mask, const char *what, int rc)
{
	t->violations++;
	if (t->violations <= 20)
		printf("violation: offset %zu mask %#x: %s (%s)\n", off, mask, what, dh_strerror(rc));
}

/* One flipped segment through everything a tool does with it. */
static void
trial(const char *name, size_t off, unsigned mask, struct tally *t)
{
	struct dh_block *b;
	struct dh_report rep;
	static struct dh_snapshot snap;
	int rc, want = 0;

	t->trials++;
	if (off < 4)
		want = -DH_EFOREIGN;
	else if (off < 8)
		want = -DH_EVERSION;
	else if (off < 16)
		want = -DH_ECORRUPT;
	rc = dh_block_open(name, DH_OPEN_RDONLY, &b);
	if (want && rc != want)
		violation(t, off, mask, "expected a specific open error", rc);
	if (rc < 0) {
		if (rc == -DH_ECORRUPT)
			t->corrupt++;
		else if (rc == -DH_EFOREIGN)
			t->foreign++;
		else if (rc == -DH_EVERSION)
			t->version++;
		else
			violation(t, off, mask, "unexpected open error", rc);
		return;
	}
	t->opened++;
	if ((rc = dh_block_snapshot(b, &snap)) < 0)
		violation(t, off, mask, "snapshot failed", rc);
	rc = dh_check_run(b, 0, 0, &rep);
	if (rc < 0)
		violation(t, off, mask, "read-only check failed", rc);
	t->findings += rep.n > 0;
	dh_report_free(&rep);
	dh_block_close(b);

	if ((rc = dh_block_open(name, 0, &b)) < 0) {
		violation(t, off, mask, "read-write open failed after read-only open succeeded", rc);
		return;
	}
	for (int pass = 0; pass < 2; pass++) {
		rc = dh_check_run(b, DH_CHECK_REPAIR, 0, &rep);
		if (rc < 0)
			violation(t, off, mask, "repair failed", rc);
		dh_report_free(&rep);
	}
	dh_block_close(b);
}

static int
do_sweep(const char *name, size_t from, size_t to)
{
	static const unsigned masks[] = { 0xff, 0x01, 0x80 };
	char path[DH_NAME_MAX + 16];
	struct tally t = { 0 };
	struct stat st;
	uint8_t *img;
	int fd;

	snprintf(path, sizeof path, "/dev/shm/dh.%s", name);
	if ((fd = open(path, O_RDWR | O_NOFOLLOW)) < 0 || fstat(fd, &st) < 0) {
		perror(path);
		return 2;
	}
	if (to > (size_t)st.st_size || from >= to)
		usage();
	if (!(img = malloc((size_t)st.st_size)) || pread(fd, img, (size_t)st.st_size, 0) != st.st_size) {
		perror(path);
		return 2;
	}
	for (size_t off = from; off < to; off++) {
		for (size_t k = 0; k < sizeof masks / sizeof masks[0]; k++) {
			uint8_t v = img[off] ^ (uint8_t)masks[k];
			if (pwrite(fd, &v, 1, (off_t)off) != 1) {
				perror(path);
				return 2;
			}
			trial(name, off, masks[k], &t);
			if (pwrite(fd, img, (size_t)st.st_size, 0) != st.st_size) {
				perror(path);
				return 2;
			}
		}
	}
	close(fd);
	free(img);
	printf("sweep %zu..%zu: %lu trials, %lu opened (%lu with findings), %lu corrupt, %lu foreign, "
	       "%lu version, %lu violations\n",
	       from, to, t.trials, t.opened, t.findings, t.corrupt, t.foreign, t.version, t.violations);
	return t.violations ? 1 : 0;
}

int
main(int argc, char **argv)
{
	if (argc == 3 && strcmp(argv[1], "offset") == 0) {
		for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++)
			if (strcmp(fields[i].name, argv[2]) == 0) {
				printf("%zu\n", fields[i].off);
				return 0;
			}
		fprintf(stderr, "hostile: %s: unknown field\n", argv[2]);
		return 2;
	}
	if (argc == 6 && strcmp(argv[1], "set") == 0)
		return do_set(argv[2], (off_t)number(argv[3]), argv[4], number(argv[5]));
	if (argc == 5 && strcmp(argv[1], "xor") == 0)
		return do_xor(argv[2], (off_t)number(argv[3]), (unsigned)number(argv[4]));
	if (argc == 5 && strcmp(argv[1], "sweep") == 0)
		return do_sweep(argv[2], (size_t)number(argv[3]), (size_t)number(argv[4]));
	usage();
}
