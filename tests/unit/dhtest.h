/* dhtest.h: helpers shared by the libdh unit tests (after tap.h). See LICENSE.
 *
 * Payloads are derived from the sequence number so any reader can check a
 * message on its own: 8 bytes of seq (host order), then len - 8 bytes all
 * equal to (seq & 0xff); the length itself varies with seq.
 */
#ifndef DH_DHTEST_H
#define DH_DHTEST_H

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dh_block.h"
#include "dh_error.h"
#include "dh_impl.h"
#include "dh_ring.h"
#include "tap.h"

#define MS (1000000LL)   /* nanoseconds in a millisecond */
#define SEC (1000000000LL)

/* Payload length for seq in a slot of max bytes (max >= 8): 8..max. */
static inline size_t
pl_len(uint64_t seq, size_t max)
{
	return 8 + (size_t)((seq * 7919u + (seq >> 3)) % (max - 7));
}

static inline void
pl_fill(void *buf, uint64_t seq, size_t len)
{
	unsigned char *p = buf;

	memcpy(p, &seq, 8);
	memset(p + 8, (int)(seq & 0xff), len - 8);
}

/* 1 if data/len is exactly the payload of seq for slots of max bytes. */
static inline int
pl_check(const void *data, size_t len, uint64_t seq, size_t max)
{
	const unsigned char *p = data;
	uint64_t got;

	if (data == NULL || len != pl_len(seq, max))
		return 0;
	memcpy(&got, p, 8);
	if (got != seq)
		return 0;
	for (size_t i = 8; i < len; i++)
		if (p[i] != (unsigned char)(seq & 0xff))
			return 0;
	return 1;
}

/* Write the payload of seq through the writer. */
static inline int
pl_write(struct dh_writer *w, uint64_t seq, size_t max, int64_t timeout_ns)
{
	unsigned char buf[8192];
	size_t len = pl_len(seq, max);

	if (len > sizeof buf)
		return -EINVAL;
	pl_fill(buf, seq, len);
	return dh_writer_write(w, buf, len, timeout_ns);
}

/* Create a channel with the common knobs; the rest are defaults. */
static inline int
mkchan(const char *name, enum dh_policy pol, uint32_t slots, uint32_t slot_size,
       enum dh_checksum ck, uint32_t readers, uint32_t meta)
{
	struct dh_config c;

	dh_config_init(&c);
	c.policy = pol;
	c.slots = slots;
	c.slot_size = slot_size;
	c.checksum = ck;
	c.max_readers = readers;
	c.meta_size = meta;
	return dh_block_create(name, &c);
}

static inline struct dh_reader *
ropen(const char *name, enum dh_start start, uint64_t seq, int follow)
{
	struct dh_reader_opts o;
	struct dh_reader *r = NULL;

	memset(&o, 0, sizeof o);
	o.start = start;
	o.start_seq = seq;
	o.follow = follow;
	if (dh_reader_open(name, &o, &r) != 0)
		return NULL;
	return r;
}

static inline struct dh_writer *
wopen(const char *name)
{
	struct dh_writer *w = NULL;

	if (dh_writer_open(name, NULL, &w, NULL) != 0)
		return NULL;
	return w;
}

/* A white-box second mapping of /dev/shm/dh.NAME. */
struct wbmap {
	int fd;
	unsigned char *base;
	size_t size;
	struct dh_hdr *hdr;
};

static inline int
wb_path(const char *name, char *buf, size_t cap)
{
	int n = snprintf(buf, cap, "/dev/shm/dh.%s", name);
	return n > 0 && (size_t)n < cap ? 0 : -1;
}

static inline int
wb_map(const char *name, struct wbmap *m)
{
	char path[DH_NAME_MAX + 16];
	struct stat st;

	memset(m, 0, sizeof *m);
	m->fd = -1;
	if (wb_path(name, path, sizeof path) < 0)
		return -1;
	m->fd = open(path, O_RDWR | O_CLOEXEC);
	if (m->fd < 0)
		return -1;
	if (fstat(m->fd, &st) < 0 || st.st_size < (off_t)DH_HDR_SIZE) {
		close(m->fd);
		return -1;
	}
	m->size = (size_t)st.st_size;
	m->base = mmap(NULL, m->size, PROT_READ | PROT_WRITE, MAP_SHARED, m->fd, 0);
	if (m->base == MAP_FAILED) {
		close(m->fd);
		return -1;
	}
	m->hdr = (struct dh_hdr *)(void *)m->base;
	return 0;
}

static inline void
wb_unmap(struct wbmap *m)
{
	if (m->base && m->base != MAP_FAILED)
		munmap(m->base, m->size);
	if (m->fd >= 0)
		close(m->fd);
	m->base = NULL;
	m->fd = -1;
}

static inline struct dh_desc *
wb_desc(struct wbmap *m, uint64_t seq)
{
	struct dh_desc *d = (struct dh_desc *)(void *)(m->base + m->hdr->desc_off);
	return &d[seq % m->hdr->slots];
}

static inline unsigned char *
wb_slot(struct wbmap *m, uint64_t seq)
{
	return m->base + m->hdr->data_off + (seq % m->hdr->slots) * (uint64_t)m->hdr->stride;
}

/* Snapshot through a fresh read-only handle. Returns 0 or negative. */
static inline int
snap(const char *name, struct dh_snapshot *s)
{
	struct dh_block *b = NULL;
	int rc = dh_block_open(name, DH_OPEN_RDONLY, &b);

	if (rc != 0)
		return rc;
	rc = dh_block_snapshot(b, s);
	dh_block_close(b);
	return rc;
}

static inline struct dh_snapshot *
snap_alloc(void)
{
	struct dh_snapshot *s = calloc(1, sizeof *s);
	if (s == NULL) {
		perror("calloc");
		abort();
	}
	return s;
}

/* Full-length pipe I/O; 0 on success. */
static inline int
xwrite(int fd, const void *buf, size_t n)
{
	const char *p = buf;

	while (n > 0) {
		ssize_t r = write(fd, p, n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return -1;
		p += r;
		n -= (size_t)r;
	}
	return 0;
}

static inline int
xread(int fd, void *buf, size_t n)
{
	char *p = buf;

	while (n > 0) {
		ssize_t r = read(fd, p, n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return -1;
		p += r;
		n -= (size_t)r;
	}
	return 0;
}

/* Poll cond_fn(arg) every millisecond until it returns nonzero or seconds
 * pass. Returns the last value. */
static inline int
await(int (*cond_fn)(void *), void *arg, double seconds)
{
	double end = tap_now() + seconds;
	int v;

	while (!(v = cond_fn(arg)) && tap_now() < end) {
		struct timespec d = {0, 1000000};
		nanosleep(&d, NULL);
	}
	return v;
}

static inline const char *
estr(int rc)
{
	return rc >= 0 ? "ok" : dh_strerror(rc);
}

#endif
