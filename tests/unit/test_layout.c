/* test_layout.c: config defaults, layout arithmetic, overflow rejection,
 * channel names, policy/checksum names, error strings. See LICENSE. */
#include <limits.h>

#include "dhtest.h"

static int
file_exists(const char *name)
{
	char path[DH_NAME_MAX + 16];
	struct stat st;

	wb_path(name, path, sizeof path);
	return stat(path, &st) == 0;
}

static void
test_defaults(void)
{
	struct dh_config c;

	memset(&c, 0xa5, sizeof c);
	dh_config_init(&c);
	ok(c.slots == 64 && c.slot_size == 65536 && c.policy == DH_POLICY_SYNC &&
		   c.checksum == DH_CHECKSUM_XXH3 && c.max_readers == 16 && c.mode == 0600 &&
		   c.meta_size == 0 && c.evict_after_ns == 0,
	   "dh_config_init: 64 x 64K, sync, xxh3, 16 readers, 0600, no meta, no eviction");
}

/* Check every structural property of a layout; returns NULL or what failed. */
static const char *
layout_problem(const struct dh_config *c, const struct dh_layout *l)
{
	if (l->table_off % 64 || l->desc_off % 64 || l->meta_off % 64 || l->data_off % 64)
		return "offset not 64-byte aligned";
	if (l->data_off % 4096)
		return "data not page aligned";
	if (l->table_off < DH_HDR_SIZE)
		return "table overlaps header";
	if (l->table_size < (uint64_t)(1 + c->max_readers) * sizeof(struct dh_pentry))
		return "table too small for 1 + max_readers entries";
	if (l->desc_off < l->table_off + l->table_size)
		return "descriptors overlap table";
	if (l->desc_size < (uint64_t)c->slots * sizeof(struct dh_desc))
		return "descriptor area too small";
	if (c->meta_size == 0) {
		if (l->meta_size != 0)
			return "meta_size nonzero without a metadata zone";
		if (l->data_off < l->desc_off + l->desc_size)
			return "data overlaps descriptors";
	} else {
		if (l->meta_off < l->desc_off + l->desc_size)
			return "metadata overlaps descriptors";
		if (l->meta_size < sizeof(struct dh_meta) + (uint64_t)c->meta_size)
			return "metadata zone smaller than its header + meta_size";
		if (l->data_off < l->meta_off + l->meta_size)
			return "data overlaps metadata";
	}
	if (l->stride < c->slot_size)
		return "stride < slot_size";
	if (l->stride % 64)
		return "stride not 64-byte aligned";
	if (l->data_size < (uint64_t)c->slots * l->stride)
		return "data_size < slots * stride";
	if (l->data_size - (uint64_t)c->slots * l->stride >= 4096)
		return "data_size more than a page beyond slots * stride";
	if (l->total < l->data_off + l->data_size)
		return "total < end of data";
	if (l->total - (l->data_off + l->data_size) >= 4096)
		return "total more than a page beyond end of data";
	return NULL;
}

static void
test_layout_grid(void)
{
	static const uint32_t slots[] = {1, 2, 3, 7, 64, 1000, 4096};
	static const uint32_t sizes[] = {1, 8, 63, 64, 65, 100, 4096, 4097, 65536, 1u << 20};
	static const uint32_t readers[] = {1, 2, 16, 255, 256};
	static const uint32_t metas[] = {0, 1, 64, 100, 4096};
	int n = 0, bad = 0, impure = 0, monotone_bad = 0;
	const char *why = NULL;

	for (size_t a = 0; a < sizeof slots / sizeof slots[0]; a++)
	for (size_t b = 0; b < sizeof sizes / sizeof sizes[0]; b++)
	for (size_t r = 0; r < sizeof readers / sizeof readers[0]; r++)
	for (size_t m = 0; m < sizeof metas / sizeof metas[0]; m++) {
		struct dh_config c;
		struct dh_layout l1, l2, l3;
		int rc;

		dh_config_init(&c);
		c.slots = slots[a];
		c.slot_size = sizes[b];
		c.max_readers = readers[r];
		c.meta_size = metas[m];
		memset(&l1, 0, sizeof l1);
		memset(&l2, 0, sizeof l2);
		rc = dh_layout_compute(&c, &l1);
		n++;
		if (rc != 0) {
			if (!bad++)
				diag("slots %u size %u readers %u meta %u: %s", c.slots, c.slot_size,
				     c.max_readers, c.meta_size, estr(rc));
			continue;
		}
		const char *p = layout_problem(&c, &l1);
		if (p) {
			if (!bad++) {
				why = p;
				diag("slots %u size %u readers %u meta %u: %s", c.slots, c.slot_size,
				     c.max_readers, c.meta_size, p);
			}
		}
		dh_layout_compute(&c, &l2);
		if (memcmp(&l1, &l2, sizeof l1))
			impure++;
		c.slots++;
		if (dh_layout_compute(&c, &l3) != 0 || l3.total < l1.total ||
		    l3.data_size <= l1.data_size)
			monotone_bad++;
	}
	ok(bad == 0, "layout of %d geometries: aligned, ordered, non-overlapping, sized%s%s", n,
	   why ? ": " : "", why ? why : "");
	ok(impure == 0, "dh_layout_compute is a pure function");
	ok(monotone_bad == 0, "one more slot: strictly more data, never a smaller segment");
}

static void
test_layout_defaults_total(void)
{
	struct dh_config c;
	struct dh_layout l;
	int rc;

	dh_config_init(&c);
	rc = dh_layout_compute(&c, &l);
	ok(rc == 0 && l.stride == 65536 && l.data_size == 64u * 65536u &&
		   l.total == l.data_off + l.data_size,
	   "default layout: stride 64K, data 4M, total = data_off + data_size (%s, stride %llu, total %llu)",
	   estr(rc), (unsigned long long)l.stride, (unsigned long long)l.total);
}

static int
layout_rc(uint32_t slots, uint32_t size, uint32_t readers, uint32_t meta, int pol, int ck)
{
	struct dh_config c;
	struct dh_layout l;

	dh_config_init(&c);
	c.slots = slots;
	c.slot_size = size;
	c.max_readers = readers;
	c.meta_size = meta;
	c.policy = (enum dh_policy)pol;
	c.checksum = (enum dh_checksum)ck;
	return dh_layout_compute(&c, &l);
}

static void
test_layout_reject(void)
{
	int rc;

	ok(layout_rc(0, 64, 16, 0, 2, 1) == -EINVAL, "0 slots -> -EINVAL");
	ok(layout_rc(64, 0, 16, 0, 2, 1) == -EINVAL, "slot size 0 -> -EINVAL");
	ok(layout_rc(64, DH_SLOT_SIZE_MAX + 1, 16, 0, 2, 1) == -EINVAL,
	   "slot size DH_SLOT_SIZE_MAX + 1 -> -EINVAL");
	ok(layout_rc(64, UINT32_MAX, 16, 0, 2, 1) == -EINVAL, "slot size UINT32_MAX -> -EINVAL");
	ok(layout_rc(64, 64, 0, 0, 2, 1) == -EINVAL, "0 readers -> -EINVAL");
	ok(layout_rc(64, 64, DH_READERS_MAX + 1, 0, 2, 1) == -EINVAL, "257 readers -> -EINVAL");
	ok(layout_rc(64, 64, UINT32_MAX, 0, 2, 1) == -EINVAL, "UINT32_MAX readers -> -EINVAL");
	rc = layout_rc(DH_SLOTS_MAX + 1, 64, 16, 0, 2, 1);
	ok(rc == -EINVAL || rc == -EOVERFLOW, "DH_SLOTS_MAX + 1 slots rejected (%s)", estr(rc));
	rc = layout_rc(UINT32_MAX, 64, 16, 0, 2, 1);
	ok(rc == -EINVAL || rc == -EOVERFLOW, "UINT32_MAX slots rejected (%s)", estr(rc));
	rc = layout_rc(64, 64, 16, DH_META_MAX + 1, 2, 1);
	ok(rc == -EINVAL || rc == -EOVERFLOW, "meta size DH_META_MAX + 1 rejected (%s)", estr(rc));
	rc = layout_rc(64, 64, 16, UINT32_MAX, 2, 1);
	ok(rc == -EINVAL || rc == -EOVERFLOW, "meta size UINT32_MAX rejected (%s)", estr(rc));
	ok(layout_rc(64, 64, 16, 0, 4, 1) == -EINVAL, "unknown policy 4 -> -EINVAL");
	ok(layout_rc(64, 64, 16, 0, -1, 1) == -EINVAL, "unknown policy -1 -> -EINVAL");
	ok(layout_rc(64, 64, 16, 0, 2, 99) == -EINVAL, "unknown checksum 99 -> -EINVAL");

	/* The largest allowed fields: 2^24 slots of 2^30 bytes = 2^54 bytes.  On
	 * a 64-bit host that fits; whatever the answer, it must not wrap. */
	{
		struct dh_config c;
		struct dh_layout l;

		dh_config_init(&c);
		c.slots = DH_SLOTS_MAX;
		c.slot_size = DH_SLOT_SIZE_MAX;
		c.max_readers = DH_READERS_MAX;
		c.meta_size = DH_META_MAX;
		memset(&l, 0, sizeof l);
		rc = dh_layout_compute(&c, &l);
		ok(rc == -EOVERFLOW ||
			   (rc == 0 && l.stride >= DH_SLOT_SIZE_MAX &&
			    l.data_size >= (uint64_t)DH_SLOTS_MAX * DH_SLOT_SIZE_MAX &&
			    l.total > l.data_size && l.data_off > (uint64_t)DH_META_MAX &&
			    layout_problem(&c, &l) == NULL),
		   "max geometry: -EOVERFLOW or an unwrapped layout (%s, total %llu)", estr(rc),
		   (unsigned long long)l.total);
		/* 2^24 slots of 2^30 - 1 bytes: stride rounding must not wrap 32 bits */
		c.slot_size = DH_SLOT_SIZE_MAX - 1;
		c.slots = 3;
		c.meta_size = 0;
		rc = dh_layout_compute(&c, &l);
		ok(rc == 0 && l.stride >= DH_SLOT_SIZE_MAX - 1 && l.data_size >= 3ull * l.stride &&
			   layout_problem(&c, &l) == NULL,
		   "3 slots of 1G-1: stride rounded without wrapping (%s, stride %llu)", estr(rc),
		   (unsigned long long)l.stride);
	}
}

static void
test_create_reject(void)
{
	char name[DH_NAME_MAX + 1];
	struct dh_config c;
	int rc;

	tap_chan(name);
	dh_config_init(&c);
	c.slots = 0;
	rc = dh_block_create(name, &c);
	ok(rc == -EINVAL && !file_exists(name), "create with 0 slots: -EINVAL, nothing created (%s)",
	   estr(rc));
	dh_config_init(&c);
	c.max_readers = 300;
	rc = dh_block_create(name, &c);
	ok(rc == -EINVAL && !file_exists(name), "create with 300 readers: -EINVAL, nothing created (%s)",
	   estr(rc));

	/* 2^54 bytes cannot be reserved anywhere: must fail cleanly, not SIGBUS later */
	tap_watch(30, "create of an enormous segment");
	dh_config_init(&c);
	c.slots = DH_SLOTS_MAX;
	c.slot_size = DH_SLOT_SIZE_MAX;
	rc = dh_block_create(name, &c);
	tap_watch(0, NULL);
	ok(rc < 0 && !file_exists(name), "create of a 2^54-byte segment fails, nothing left behind (%s)",
	   estr(rc));

	rc = dh_block_create("a/b", &c);
	ok(rc == -EINVAL, "create with a bad name -> -EINVAL (%s)", estr(rc));
}

static void
test_names(void)
{
	static const char *good[] = {"a", "Z", "0", "a.b", "a-b_c.D9", "x..", "a.", "-", "_", "x.y.z"};
	static const char *bad[] = {"", ".x", ".", "..", "a/b", "/a", "a/", "a b", "a\tb", "a\nb",
				    "caf\xc3\xa9", "a*", "a:b", "a~", "$x", "a\\b", "a\"b", "a,b",
				    "a;b", "a@b", "\x7f", "a%2fb"};
	char buf[4200];
	int nbad = 0;

	for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
		int rc = dh_name_check(good[i]);
		if (rc != 0) {
			nbad++;
			diag("dh_name_check(\"%s\") = %s", good[i], estr(rc));
		}
	}
	ok(nbad == 0, "dh_name_check accepts valid names");

	nbad = 0;
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		int rc = dh_name_check(bad[i]);
		if (rc != -EINVAL) {
			nbad++;
			diag("dh_name_check(\"%s\") = %s, want -EINVAL", bad[i], estr(rc));
		}
	}
	ok(nbad == 0, "dh_name_check rejects empty, leading dot, '/', and other characters with -EINVAL");

	memset(buf, 'n', DH_NAME_MAX);
	buf[DH_NAME_MAX] = 0;
	ok(dh_name_check(buf) == 0, "200-character name accepted");
	buf[DH_NAME_MAX] = 'n';
	buf[DH_NAME_MAX + 1] = 0;
	{
		int rc = dh_name_check(buf);
		ok(rc == -ENAMETOOLONG || rc == -EINVAL, "201-character name rejected (%s)", estr(rc));
	}
	memset(buf, 'n', sizeof buf - 1);
	buf[sizeof buf - 1] = 0;
	{
		int rc = dh_name_check(buf);
		ok(rc == -ENAMETOOLONG || rc == -EINVAL, "4199-character name rejected (%s)", estr(rc));
	}
}

static void
test_bad_name_everywhere(void)
{
	struct dh_block *b = NULL;
	struct dh_reader *r = NULL;
	struct dh_writer *w = NULL;
	int r1, r2, r3, r4;

	r1 = dh_block_open("../../etc/passwd", DH_OPEN_RDONLY, &b);
	r2 = dh_reader_open("a/../b", NULL, &r);
	r3 = dh_writer_open("../x", NULL, &w, NULL);
	r4 = dh_block_unlink("a/b", 1, NULL);
	ok(r1 == -EINVAL && r2 == -EINVAL && r3 == -EINVAL && r4 == -EINVAL,
	   "open/reader/writer/unlink refuse path-like names with -EINVAL (%s, %s, %s, %s)", estr(r1),
	   estr(r2), estr(r3), estr(r4));
	if (r1 == 0)
		dh_block_close(b);
	if (r2 == 0)
		dh_reader_close(r);
	if (r3 == 0)
		dh_writer_close(w);
}

static void
test_enum_names(void)
{
	static const char *pols[] = {"latest", "ring", "sync", "queue"};
	static const char *cks[] = {"none", "xxh3", "blake2b"};
	enum dh_policy p;
	enum dh_checksum c;
	int nbad = 0;

	for (int i = 0; i < 4; i++) {
		const char *s = dh_policy_name((enum dh_policy)i);
		if (s == NULL || strcmp(s, pols[i]) || dh_policy_parse(pols[i], &p) != 0 || (int)p != i)
			nbad++;
	}
	ok(nbad == 0, "policy names round-trip: latest ring sync queue");
	ok(dh_policy_parse("bogus", &p) == -EINVAL && dh_policy_parse("", &p) == -EINVAL &&
		   dh_policy_parse("sync ", &p) == -EINVAL,
	   "unknown policy name -> -EINVAL");
	nbad = 0;
	for (int i = 0; i < 3; i++) {
		const char *s = dh_checksum_name((enum dh_checksum)i);
		if (s == NULL || strcmp(s, cks[i]) || dh_checksum_parse(cks[i], &c) != 0 || (int)c != i)
			nbad++;
	}
	ok(nbad == 0, "checksum names round-trip: none xxh3 blake2b");
	ok(dh_checksum_parse("md5", &c) == -EINVAL && dh_checksum_parse("", &c) == -EINVAL,
	   "unknown checksum name -> -EINVAL");
}

/* The lists that messages and help texts show come from the tables: every
 * name a parse accepts, in order, nothing else (not the MAC, chosen by key),
 * and a short buffer cut short but terminated. */
static void
test_name_lists(void)
{
	char buf[64], tiny[9];

	ok(strcmp(dh_policy_names(", ", buf, sizeof buf), "latest, ring, sync, queue") == 0,
	   "dh_policy_names: latest, ring, sync, queue");
	ok(strcmp(dh_checksum_names("|", buf, sizeof buf), "none|xxh3|blake2b") == 0,
	   "dh_checksum_names: none|xxh3|blake2b, no MAC");
	memset(tiny, 'x', sizeof tiny);
	ok(dh_policy_names(", ", tiny, sizeof tiny) == tiny && strcmp(tiny, "latest, ") == 0,
	   "a short buffer: cut short, terminated");
	ok(dh_policy_info(DH_POLICY_RING)->in_order && dh_policy_info(DH_POLICY_SYNC)->in_order &&
		   !dh_policy_info(DH_POLICY_LATEST)->in_order && !dh_policy_info(DH_POLICY_QUEUE)->in_order,
	   "in_order: ring and sync (a gap in seq is a loss), not latest or queue");
}

static void
test_strerror(void)
{
	int nbad = 0;

	for (int e = DH_ECORRUPT; e < DH_ELAST; e++) {
		const char *a = dh_strerror(-e), *b = dh_strerror(e);
		if (a == NULL || b == NULL || !*a || strcmp(a, b)) {
			nbad++;
			continue;
		}
		for (int f = DH_ECORRUPT; f < e; f++)
			if (strcmp(a, dh_strerror(-f)) == 0)
				nbad++;
	}
	ok(nbad == 0, "dh_strerror: every DH_E* code has its own message, sign ignored");
	ok(dh_strerror(-ENOENT) && *dh_strerror(-ENOENT) && dh_strerror(0) && dh_strerror(INT_MIN) &&
		   dh_strerror(INT_MAX) && dh_strerror(-DH_ELAST) && dh_strerror(-12345678),
	   "dh_strerror: errno codes, 0, INT_MIN, unknown codes never NULL");
}

int
main(void)
{
	plan(41);
	tap_watch(60, "test_layout");
	test_defaults();
	test_layout_grid();
	test_layout_defaults_total();
	test_layout_reject();
	tap_watch(60, "test_layout");
	test_create_reject();
	test_names();
	test_bad_name_everywhere();
	test_enum_names();
	test_name_lists();
	test_strerror();
	return done();
}
