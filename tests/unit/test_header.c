/* test_header.c: open-time validation of hand-corrupted segments, both as
 * images (dh_block_check_image) and as real files (dh_block_open). See LICENSE. */
#include "dhtest.h"

#define SLOTS 8
#define SLOT_SIZE 256
#define READERS 4
#define META 128

static char chan[DH_NAME_MAX + 1];
static unsigned char *orig;   /* pristine copy of the whole segment */
static size_t fsize;

static int
load_file(const char *name, unsigned char **buf, size_t *size)
{
	char path[DH_NAME_MAX + 16];
	struct stat st;
	int fd;

	wb_path(name, path, sizeof path);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	if (fstat(fd, &st) < 0) {
		close(fd);
		return -1;
	}
	*size = (size_t)st.st_size;
	*buf = malloc(*size ? *size : 1);
	if (*buf == NULL || pread(fd, *buf, *size, 0) != (ssize_t)*size) {
		close(fd);
		return -1;
	}
	close(fd);
	return 0;
}

/* Overwrite the file with buf (size bytes), truncating or extending it. */
static int
store_file(const char *name, const void *buf, size_t size)
{
	char path[DH_NAME_MAX + 16];
	int fd, rc = 0;

	wb_path(name, path, sizeof path);
	fd = open(path, O_RDWR | O_CLOEXEC);
	if (fd < 0)
		return -1;
	if (ftruncate(fd, (off_t)size) < 0 || pwrite(fd, buf, size, 0) != (ssize_t)size)
		rc = -1;
	close(fd);
	return rc;
}

static int
open_rc(const char *name)
{
	struct dh_block *b = NULL;
	int rc = dh_block_open(name, DH_OPEN_RDONLY, &b);

	if (rc == 0)
		dh_block_close(b);
	return rc;
}

static void
test_valid(void)
{
	struct dh_config cfg, want;
	struct dh_layout lay, wlay;
	int rc;

	dh_config_init(&want);
	want.slots = SLOTS;
	want.slot_size = SLOT_SIZE;
	want.max_readers = READERS;
	want.meta_size = META;
	want.policy = DH_POLICY_RING;
	want.checksum = DH_CHECKSUM_XXH3;
	rc = dh_block_create(chan, &want);
	ok(rc == 0, "create a ring channel to corrupt (%s)", estr(rc));
	if (rc != 0 || load_file(chan, &orig, &fsize) != 0) {
		diag("cannot load the segment; remaining tests will fail");
		orig = calloc(1, 2 * DH_HDR_SIZE);
		fsize = 2 * DH_HDR_SIZE;
	}
	dh_layout_compute(&want, &wlay);
	ok(fsize == wlay.total, "file size equals the layout total (%zu vs %llu)", fsize,
	   (unsigned long long)wlay.total);

	memset(&cfg, 0, sizeof cfg);
	memset(&lay, 0, sizeof lay);
	rc = dh_block_check_image(orig, fsize, fsize, &cfg, &lay);
	ok(rc == 0 && cfg.slots == SLOTS && cfg.slot_size == SLOT_SIZE && cfg.max_readers == READERS &&
		   cfg.meta_size == META && cfg.policy == DH_POLICY_RING &&
		   cfg.checksum == DH_CHECKSUM_XXH3 && memcmp(&lay, &wlay, sizeof lay) == 0,
	   "pristine image validates and yields the creation geometry (%s)", estr(rc));
	rc = dh_block_check_image(orig, DH_HDR_SIZE, fsize, &cfg, &lay);
	ok(rc == 0, "header page alone validates (%s)", estr(rc));
	rc = dh_block_check_image(orig, 100, fsize, &cfg, &lay);
	ok(rc < 0, "image shorter than the header is refused (%s)", estr(rc));
	rc = dh_block_check_image(orig, 0, fsize, &cfg, &lay);
	ok(rc < 0, "empty image is refused (%s)", estr(rc));
	ok(open_rc(chan) == 0, "pristine segment opens");
}

/* A header mutation, applied to a copy. */
struct mut {
	const char *what;
	int want;        /* expected error (negative) */
	int want2;       /* alternative accepted error, or 0 */
	void (*fn)(struct dh_hdr *h);
};

static void m_magic(struct dh_hdr *h) { atomic_store(&h->magic, 0xdeadbeefu); }
static void m_magic_swapped(struct dh_hdr *h) { atomic_store(&h->magic, 0x44484231u); }
static void m_ver0(struct dh_hdr *h) { h->version = 0; }
static void m_ver2(struct dh_hdr *h) { h->version = DH_FORMAT_VERSION + 1; }
static void m_verff(struct dh_hdr *h) { h->version = 0xffffffffu; }
static void m_total(struct dh_hdr *h) { h->total_size += 4096; }
static void m_total0(struct dh_hdr *h) { h->total_size = 0; }
static void m_slots0(struct dh_hdr *h) { h->slots = 0; }
static void m_slots_huge(struct dh_hdr *h) { h->slots = 0xffffffffu; }
static void m_slots_max(struct dh_hdr *h) { h->slots = DH_SLOTS_MAX; }
static void m_slots_dbl(struct dh_hdr *h) { h->slots *= 2; }
static void m_slots_plus1(struct dh_hdr *h) { h->slots += 1; }
static void m_size0(struct dh_hdr *h) { h->slot_size = 0; }
static void m_size_huge(struct dh_hdr *h) { h->slot_size = 0xffffffffu; }
static void m_size_gt_stride(struct dh_hdr *h) { h->slot_size = h->stride + 1; }
static void m_stride_lt(struct dh_hdr *h) { h->stride = h->slot_size - 64; }
static void m_stride0(struct dh_hdr *h) { h->stride = 0; }
static void m_stride_huge(struct dh_hdr *h) { h->stride = 0xffffffc0u; }
static void m_stride_plus(struct dh_hdr *h) { h->stride += 64; }
static void m_stride_odd(struct dh_hdr *h) { h->stride += 1; }
static void m_meta_huge(struct dh_hdr *h) { h->meta_size = 0xffffffffu; }
static void m_meta_plus(struct dh_hdr *h) { h->meta_size += 4096; }
static void m_readers0(struct dh_hdr *h) { h->max_readers = 0; }
static void m_readers257(struct dh_hdr *h) { h->max_readers = 257; }
static void m_readers_huge(struct dh_hdr *h) { h->max_readers = 0xffffffffu; }
static void m_readers_plus(struct dh_hdr *h) { h->max_readers += 8; }
static void m_policy(struct dh_hdr *h) { h->policy = 4; }
static void m_policy_huge(struct dh_hdr *h) { h->policy = 0xffffffffu; }
static void m_checksum(struct dh_hdr *h) { h->checksum = 77; }
static void m_table_off(struct dh_hdr *h) { h->table_off += 64; }
static void m_table_off0(struct dh_hdr *h) { h->table_off = 0; }
static void m_desc_off(struct dh_hdr *h) { h->desc_off += 64; }
static void m_desc_off_huge(struct dh_hdr *h) { h->desc_off = UINT64_MAX - 63; }
static void m_meta_off(struct dh_hdr *h) { h->meta_off -= 64; }
static void m_data_off(struct dh_hdr *h) { h->data_off += 4096; }
static void m_data_off_back(struct dh_hdr *h) { h->data_off -= 4096; }
static void m_data_off_huge(struct dh_hdr *h) { h->data_off = UINT64_MAX - 4095; }
static void m_data_off_mis(struct dh_hdr *h) { h->data_off += 8; }
/* a hostile but self-consistent geometry that no longer matches the file */
static void m_consistent_lie(struct dh_hdr *h) { h->slots = 1u << 20; h->total_size = (uint64_t)h->data_off + (1ull << 20) * h->stride; }

static const struct mut muts[] = {
	{"bad magic", -DH_EFOREIGN, 0, m_magic},
	{"byte-swapped magic", -DH_EFOREIGN, 0, m_magic_swapped},
	{"version 0", -DH_EVERSION, 0, m_ver0},
	{"version 2", -DH_EVERSION, 0, m_ver2},
	{"version 0xffffffff", -DH_EVERSION, 0, m_verff},
	{"total_size != file size", -DH_ECORRUPT, 0, m_total},
	{"total_size 0", -DH_ECORRUPT, 0, m_total0},
	{"0 slots", -DH_ECORRUPT, 0, m_slots0},
	{"0xffffffff slots", -DH_ECORRUPT, 0, m_slots_huge},
	{"2^24 slots (huge, in range)", -DH_ECORRUPT, 0, m_slots_max},
	{"slot count doubled", -DH_ECORRUPT, 0, m_slots_dbl},
	{"slot count + 1", -DH_ECORRUPT, 0, m_slots_plus1},
	{"slot size 0", -DH_ECORRUPT, 0, m_size0},
	{"slot size 0xffffffff", -DH_ECORRUPT, 0, m_size_huge},
	{"slot size > stride", -DH_ECORRUPT, 0, m_size_gt_stride},
	{"stride < slot size", -DH_ECORRUPT, 0, m_stride_lt},
	{"stride 0", -DH_ECORRUPT, 0, m_stride0},
	{"stride 0xffffffc0", -DH_ECORRUPT, 0, m_stride_huge},
	{"stride + 64", -DH_ECORRUPT, 0, m_stride_plus},
	{"stride not 64-aligned", -DH_ECORRUPT, 0, m_stride_odd},
	{"meta size 0xffffffff", -DH_ECORRUPT, 0, m_meta_huge},
	{"meta size + 4096", -DH_ECORRUPT, 0, m_meta_plus},
	{"0 max readers", -DH_ECORRUPT, 0, m_readers0},
	{"257 max readers", -DH_ECORRUPT, 0, m_readers257},
	{"0xffffffff max readers", -DH_ECORRUPT, 0, m_readers_huge},
	{"max readers + 8", -DH_ECORRUPT, 0, m_readers_plus},
	{"policy 4", -DH_ECORRUPT, 0, m_policy},
	{"policy 0xffffffff", -DH_ECORRUPT, 0, m_policy_huge},
	{"checksum kind 77", -DH_ECORRUPT, -DH_EUNSUPPORTED, m_checksum},
	{"table_off + 64", -DH_ECORRUPT, 0, m_table_off},
	{"table_off 0 (inside header)", -DH_ECORRUPT, 0, m_table_off0},
	{"desc_off + 64", -DH_ECORRUPT, 0, m_desc_off},
	{"desc_off near UINT64_MAX", -DH_ECORRUPT, 0, m_desc_off_huge},
	{"meta_off - 64", -DH_ECORRUPT, 0, m_meta_off},
	{"data_off + 4096", -DH_ECORRUPT, 0, m_data_off},
	{"data_off - 4096", -DH_ECORRUPT, 0, m_data_off_back},
	{"data_off near UINT64_MAX", -DH_ECORRUPT, 0, m_data_off_huge},
	{"data_off misaligned", -DH_ECORRUPT, 0, m_data_off_mis},
	{"2^20 slots with total_size to match", -DH_ECORRUPT, 0, m_consistent_lie},
};
#define NMUTS ((int)(sizeof muts / sizeof muts[0]))

static void
test_image_mutations(void)
{
	unsigned char *img = malloc(fsize);
	int nbad = 0;

	for (int i = 0; i < NMUTS; i++) {
		struct dh_config cfg;
		struct dh_layout lay;
		int rc;

		memcpy(img, orig, fsize);
		muts[i].fn((struct dh_hdr *)(void *)img);
		rc = dh_block_check_image(img, fsize, fsize, &cfg, &lay);
		if (!ok(rc == muts[i].want || (muts[i].want2 && rc == muts[i].want2),
			"check_image: %s -> %s (got %s)", muts[i].what, estr(muts[i].want), estr(rc)))
			nbad++;
	}
	free(img);
	(void)nbad;
}

static void
test_image_misc(void)
{
	unsigned char *img = malloc(fsize);
	struct dh_config cfg;
	struct dh_layout lay;
	int rc;

	rc = dh_block_check_image(orig, fsize, fsize - 4096, &cfg, &lay);
	ok(rc == -DH_ECORRUPT, "check_image: file shorter than the geometry -> ECORRUPT (%s)", estr(rc));
	rc = dh_block_check_image(orig, fsize, fsize + 1, &cfg, &lay);
	ok(rc == -DH_ECORRUPT, "check_image: file one byte longer -> ECORRUPT (%s)", estr(rc));
	rc = dh_block_check_image(orig, fsize, 0, &cfg, &lay);
	ok(rc < 0, "check_image: file size 0 refused (%s)", estr(rc));
	for (size_t i = 0; i < fsize; i++)
		img[i] = (unsigned char)("this is not a dh segment\n"[i % 25]);
	rc = dh_block_check_image(img, fsize, fsize, &cfg, &lay);
	ok(rc == -DH_EFOREIGN, "check_image: text file -> EFOREIGN (%s)", estr(rc));
	memset(img, 0xff, fsize);
	rc = dh_block_check_image(img, fsize, fsize, &cfg, &lay);
	ok(rc == -DH_EFOREIGN, "check_image: all 0xff -> EFOREIGN (%s)", estr(rc));

	/* Random garbage behind a valid magic and version: never 0 unless
	 * the garbage happens to be a consistent header (it will not). */
	{
		unsigned seed = 12345;
		int accepted = 0;
		for (int t = 0; t < 2000; t++) {
			memcpy(img, orig, DH_HDR_SIZE);
			for (int k = 0; k < 4; k++) {
				seed = seed * 1103515245u + 12345u;
				size_t off = 8 + (seed >> 8) % (256 - 8);
				seed = seed * 1103515245u + 12345u;
				img[off] ^= (unsigned char)(1u << ((seed >> 16) % 8));
			}
			/* flips inside fields the validator may ignore (times, uids,
			 * reserved, runtime words) may be accepted; so may a flip that
			 * yields another geometry whose layout matches the stored offsets
			 * and the file.  Anything else accepted is a validation hole. */
			struct dh_hdr *h = (struct dh_hdr *)(void *)img;
			rc = dh_block_check_image(img, DH_HDR_SIZE, fsize, &cfg, &lay);
			if (rc == 0) {
				struct dh_config c2;
				struct dh_layout l2;
				dh_config_init(&c2);
				c2.slots = h->slots;
				c2.slot_size = h->slot_size;
				c2.meta_size = h->meta_size;
				c2.max_readers = h->max_readers;
				c2.policy = (enum dh_policy)h->policy;
				c2.checksum = (enum dh_checksum)h->checksum;
				if (dh_layout_compute(&c2, &l2) != 0 || l2.total != fsize ||
				    h->total_size != fsize || l2.stride != h->stride ||
				    l2.table_off != h->table_off || l2.desc_off != h->desc_off ||
				    (c2.meta_size && l2.meta_off != h->meta_off) ||
				    l2.data_off != h->data_off || cfg.slots != c2.slots ||
				    cfg.slot_size != c2.slot_size || cfg.max_readers != c2.max_readers ||
				    cfg.policy != c2.policy || cfg.checksum != c2.checksum) {
					if (!accepted++)
						diag("accepted inconsistent header: slots %u size %u stride %u "
						     "readers %u meta %u", h->slots, h->slot_size, h->stride,
						     h->max_readers, h->meta_size);
				}
			}
		}
		ok(accepted == 0, "check_image: 2000 random bit-flip headers, no inconsistent one accepted (%d)",
		   accepted);
	}
	free(img);
}

/* Apply a mutation to the real file, try every way in, restore. */
static void
file_case(const char *what, void (*fn)(struct dh_hdr *), int want, int want2)
{
	unsigned char *img = malloc(fsize);
	struct dh_reader *r = NULL;
	struct dh_writer *w = NULL;
	pid_t holder = 0;
	int rb, rr, rw, rok;

	memcpy(img, orig, fsize);
	fn((struct dh_hdr *)(void *)img);
	store_file(chan, img, fsize);
	rb = open_rc(chan);
	rr = dh_reader_open(chan, NULL, &r);
	rw = dh_writer_open(chan, NULL, &w, &holder);
	if (rr == 0)
		dh_reader_close(r);
	if (rw == 0)
		dh_writer_close(w);
	store_file(chan, orig, fsize);
	rok = open_rc(chan);
	ok((rb == want || (want2 && rb == want2)) && rr == rb && rw == rb && rok == 0,
	   "file with %s: block/reader/writer open -> %s (got %s, %s, %s; restored: %s)", what,
	   estr(want), estr(rb), estr(rr), estr(rw), estr(rok));
	free(img);
}

static void
test_files(void)
{
	char other[DH_NAME_MAX + 1];
	struct dh_reader *r = NULL;
	struct dh_writer *w = NULL;
	int rc;

	file_case("bad magic", m_magic, -DH_EFOREIGN, 0);
	file_case("bad version", m_ver2, -DH_EVERSION, 0);
	file_case("huge slot count", m_slots_huge, -DH_ECORRUPT, 0);
	file_case("2^24 slots", m_slots_max, -DH_ECORRUPT, 0);
	file_case("stride < slot size", m_stride_lt, -DH_ECORRUPT, 0);
	file_case("desc_off inconsistent", m_desc_off, -DH_ECORRUPT, 0);
	file_case("data_off near UINT64_MAX", m_data_off_huge, -DH_ECORRUPT, 0);
	file_case("max readers 0xffffffff", m_readers_huge, -DH_ECORRUPT, 0);

	/* size mismatch: truncated and extended files */
	store_file(chan, orig, fsize - 4096);
	rc = open_rc(chan);
	ok(rc == -DH_ECORRUPT, "file truncated by a page -> ECORRUPT (%s)", estr(rc));
	store_file(chan, orig, DH_HDR_SIZE);
	rc = open_rc(chan);
	ok(rc == -DH_ECORRUPT, "file truncated to the header page -> ECORRUPT (%s)", estr(rc));
	{
		unsigned char *big = calloc(1, fsize + 4096);
		memcpy(big, orig, fsize);
		store_file(chan, big, fsize + 4096);
		rc = open_rc(chan);
		ok(rc == -DH_ECORRUPT, "file extended by a page -> ECORRUPT (%s)", estr(rc));
		free(big);
	}
	tap_watch(30, "open of a 100-byte segment");
	store_file(chan, orig, 100);
	rc = open_rc(chan);
	ok(rc == -DH_ECORRUPT || rc == -DH_EFOREIGN || rc == -ETIMEDOUT,
	   "file shorter than a header -> error, bounded (%s)", estr(rc));
	tap_watch(0, NULL);
	store_file(chan, orig, fsize);
	ok(open_rc(chan) == 0, "restored file opens again");

	/* a non-dh file in the namespace */
	tap_chan(other);
	{
		unsigned char *txt = malloc(20000);
		char path[DH_NAME_MAX + 16];
		int fd;
		for (size_t i = 0; i < 20000; i++)
			txt[i] = (unsigned char)("hello world\n"[i % 12]);
		wb_path(other, path, sizeof path);
		fd = open(path, O_RDWR | O_CREAT | O_EXCL, 0600);
		if (fd >= 0) {
			if (write(fd, txt, 20000) != 20000)
				diag("short write");
			close(fd);
		}
		free(txt);
	}
	rc = open_rc(other);
	ok(rc == -DH_EFOREIGN, "a text file named dh.NAME -> EFOREIGN (%s)", estr(rc));
	rc = dh_block_unlink(other, 0, NULL);
	ok(rc == -DH_EFOREIGN || rc == 0 || rc == -DH_ECORRUPT,
	   "unlink of a foreign file: refused as foreign or removed (%s)", estr(rc));
	if (rc != 0) {
		char path[DH_NAME_MAX + 16];
		wb_path(other, path, sizeof path);
		unlink(path);
	}

	/* never published: magic still 0 -> bounded wait then -DH_ECORRUPT (dh_block.h) */
	{
		unsigned char *img = malloc(fsize);
		double t0, dt;
		memcpy(img, orig, fsize);
		atomic_store(&((struct dh_hdr *)(void *)img)->magic, 0);
		store_file(chan, img, fsize);
		tap_watch(40, "open of an unpublished segment");
		t0 = tap_now();
		rc = open_rc(chan);
		dt = tap_now() - t0;
		tap_watch(0, NULL);
		ok(rc == -DH_ECORRUPT && dt < 30, "unpublished segment (magic 0): -DH_ECORRUPT after a bounded wait (%s, %.2fs)",
		   estr(rc), dt);
		store_file(chan, orig, fsize);
		free(img);
	}

	/* missing channel */
	tap_chan(other);
	rc = open_rc(other);
	ok(rc == -ENOENT, "dh_block_open of a missing channel -> -ENOENT (%s)", estr(rc));
	rc = dh_reader_open(other, NULL, &r);
	ok(rc == -ENOENT, "dh_reader_open of a missing channel -> -ENOENT (%s)", estr(rc));
	rc = dh_writer_open(other, NULL, &w, NULL);
	ok(rc == -ENOENT, "dh_writer_open of a missing channel -> -ENOENT (%s)", estr(rc));
	rc = dh_block_unlink(other, 0, NULL);
	ok(rc == -ENOENT, "dh_block_unlink of a missing channel -> -ENOENT (%s)", estr(rc));
	{
		struct dh_config c;
		dh_config_init(&c);
		rc = dh_block_create(chan, &c);
		ok(rc == -EEXIST, "creating an existing channel -> -EEXIST (%s)", estr(rc));
		ok(open_rc(chan) == 0, "the existing channel is untouched by the refused create");
	}
}

/* Descriptor lengths are untrusted too: a length beyond the slot payload
 * must be an error for that message, never an out-of-bounds copy. */
static void
test_desc_length(enum dh_policy pol)
{
	char name[DH_NAME_MAX + 1];
	struct dh_writer *w;
	struct dh_reader *r;
	struct wbmap m;
	struct dh_msg msg;
	int rc, r0 = -1, r1 = -1;
	uint64_t seq1 = 0;

	tap_chan(name);
	rc = mkchan(name, pol, 4, 128, DH_CHECKSUM_NONE, 2, 0);
	r = ropen(name, DH_START_OLDEST, 0, 0);
	w = wopen(name);
	if (rc == 0 && w && r && pl_write(w, 0, 128, 0) == 0 && pl_write(w, 1, 128, 0) == 0 &&
	    wb_map(name, &m) == 0) {
		wb_desc(&m, 1)->length = 0xfffffff0u;
		memset(&msg, 0, sizeof msg);
		r0 = dh_reader_next(r, &msg, 0);
		if (r0 == 0 && !pl_check(msg.data, msg.len, 0, 128))
			r0 = -1000;
		r1 = dh_reader_next(r, &msg, 0);
		seq1 = msg.seq;
		wb_unmap(&m);
	}
	ok(r0 == 0 && r1 == -DH_ECORRUPT,
	   "%s: descriptor length 0xfffffff0 > slot size -> ECORRUPT for that message (%s, %s, seq %llu)",
	   dh_policy_name(pol), estr(r0), estr(r1), (unsigned long long)seq1);
	dh_reader_close(r);
	dh_writer_close(w);
	dh_block_unlink(name, 1, NULL);
}

int
main(void)
{
	plan(7 + NMUTS + 6 + 8 + 5 + 2 + 1 + 4 + 2 + 3);
	tap_watch(60, "test_header");
	tap_chan(chan);
	test_valid();
	test_image_mutations();
	test_image_misc();
	test_files();
	tap_watch(30, "descriptor length checks");
	test_desc_length(DH_POLICY_RING);
	test_desc_length(DH_POLICY_SYNC);
	test_desc_length(DH_POLICY_QUEUE);
	dh_block_unlink(chan, 1, NULL);
	return done();
}
