/* block.c: channel segments: names, layout, creation, validation, liveness. See LICENSE. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>
#include <xxhash.h>

#include "dh_impl.h"
#include "dh_schema.h"

/* Largest segment we agree to create or map: bigger geometries are typos. */
#define DH_TOTAL_MAX (1ull << 40)


void
dh_config_init(struct dh_config *cfg)
{
	memset(cfg, 0, sizeof *cfg);
	cfg->slots = 64;
	cfg->slot_size = 64 * 1024;
	cfg->max_readers = 16;
	cfg->policy = DH_POLICY_SYNC;
	cfg->checksum = DH_CHECKSUM_XXH3;
	cfg->mode = 0600;
}

int
dh_name_check(const char *name)
{
	size_t n = 0;

	if (!name || !*name || name[0] == '.')
		return -EINVAL;
	for (const char *p = name; *p; p++, n++) {
		if (n >= DH_NAME_MAX)
			return -ENAMETOOLONG;
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
		      *p == '.' || *p == '_' || *p == '-'))
			return -EINVAL;
	}
	return 0;
}

static uint64_t
round_up(uint64_t v, uint64_t a)
{
	return (v + a - 1) / a * a;
}

int
dh_layout_compute(const struct dh_config *cfg, struct dh_layout *out)
{
	struct dh_layout l;
	uint64_t end;

	if (cfg->slots == 0 || cfg->slots > DH_SLOTS_MAX || cfg->slot_size == 0 ||
	    cfg->slot_size > DH_SLOT_SIZE_MAX || cfg->max_readers == 0 ||
	    cfg->max_readers > DH_READERS_MAX || cfg->meta_size > DH_META_MAX ||
	    !dh_policy_info(cfg->policy) || !dh_checksum_info(cfg->checksum))
		return -EINVAL;
	/* All operands are bounded above (2^24 slots, 2^30 bytes), so only
	 * the data size can exceed 64 bits' worth of sense; check it anyway. */
	l.table_off = DH_HDR_SIZE;
	l.table_size = (uint64_t)(1 + cfg->max_readers) * sizeof(struct dh_pentry);
	l.desc_off = l.table_off + l.table_size;
	l.desc_size = (uint64_t)cfg->slots * sizeof(struct dh_desc);
	l.meta_off = l.desc_off + l.desc_size;
	l.meta_size = cfg->meta_size ? sizeof(struct dh_meta) + 2 * round_up(cfg->meta_size, DH_CACHELINE) : 0;
	l.data_off = round_up(l.meta_off + l.meta_size, DH_PAGE);
	l.stride = round_up(cfg->slot_size, DH_CACHELINE);
	if (__builtin_mul_overflow(l.stride, (uint64_t)cfg->slots, &l.data_size) ||
	    __builtin_add_overflow(l.data_off, l.data_size, &end) || end > DH_TOTAL_MAX ||
	    end > (uint64_t)SIZE_MAX)
		return -EOVERFLOW;
	l.total = round_up(end, DH_PAGE);
	*out = l;
	return 0;
}

const char *
dh_block_dir(void)
{
	const char *d = getenv("DH_SHM_DIR");

	return d && *d ? d : "/dev/shm";
}

int
dh_block_path(const char *name, char *buf, size_t len)
{
	const char *dir = dh_block_dir();
	int rc = dh_name_check(name);

	if (rc < 0)
		return rc;
	if (dir[0] != '/')
		return -DH_EDIR;
	if ((size_t)snprintf(buf, len, "%s/dh.%s", dir, name) >= len)
		return -ENAMETOOLONG;
	return 0;
}

int
dh_block_dir_check(void)
{
	const char *dir = dh_block_dir();
	struct stat st;

	if (dir[0] != '/')
		return -DH_EDIR;
	if (stat(dir, &st) < 0)
		return -errno;
	if (!S_ISDIR(st.st_mode))
		return -ENOTDIR;
	/* Whoever may remove or rename entries here can swap a channel for
	 * one of their own between two opens: only we, root, or nobody else
	 * (the sticky bit) may. */
	if (st.st_uid != 0 && st.st_uid != geteuid())
		return -DH_EDIR;
	if ((st.st_mode & (S_IWGRP | S_IWOTH)) && !(st.st_mode & S_ISVTX))
		return -DH_EDIR;
	return 0;
}

/*
 * Open the segment file of name. O_NONBLOCK because anyone who may write
 * the directory can plant a FIFO there, and a plain open of a FIFO waits for
 * a peer for ever; O_NOFOLLOW because a symlink could point anywhere. Only
 * a regular file is a segment. On success *st holds its fstat and the fd is
 * returned.
 */
static int
seg_open(const char *name, int oflags, mode_t mode, struct stat *st)
{
	char path[PATH_MAX];
	int fd, rc;

	if ((rc = dh_block_path(name, path, sizeof path)) < 0)
		return rc;
	if ((rc = dh_block_dir_check()) < 0)
		return rc;
	fd = open(path, oflags | O_NONBLOCK | O_NOFOLLOW | O_CLOEXEC, mode);
	if (fd < 0)
		return errno == ENXIO || errno == EISDIR ? -DH_ENOTREG : -errno;
	if (fstat(fd, st) < 0) {
		rc = -errno;
		close(fd);
		return rc;
	}
	if (!S_ISREG(st->st_mode)) {
		close(fd);
		return -DH_ENOTREG;
	}
	return fd;
}

/* A class (group, others) with read but not write access, or the reverse,
 * holds an open file that can take locks on the liveness bytes (read locks
 * with read access, write locks with write access) without being a
 * participant: such a user could block or fake participants. */
int
dh_mode_check(unsigned mode)
{
	if (mode & ~0777u)
		return -EINVAL;
	for (int shift = 0; shift <= 3; shift += 3) {
		unsigned rw = (mode >> shift) & 06;
		if (rw == 04 || rw == 02)
			return -DH_EMODE;
	}
	return 0;
}

uint64_t
dh__now_real(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

uint64_t
dh__now_mono(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/*
 * Liveness: participant i holds an OFD write lock on byte i of the segment
 * file.  The kernel drops it when the holder's last reference to the open
 * file description goes (death included), so a free lock on an ACTIVE entry
 * means a dead participant, with no pid or clock involved.
 */
static int
lock_op(int fd, int cmd, short type, int index, struct flock *fl)
{
	memset(fl, 0, sizeof *fl);
	fl->l_type = type;
	fl->l_whence = SEEK_SET;
	fl->l_start = index;
	fl->l_len = 1;
	return fcntl(fd, cmd, fl) == 0 ? 0 : -errno;
}

void
dh__touch(struct dh_pentry *e, uint64_t real_ns)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
	atomic_store_explicit(&e->last_active_ns, real_ns, memory_order_relaxed);
	atomic_store_explicit(&e->heartbeat_mono, (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec,
			      memory_order_relaxed);
}

int
dh__lock_try(int fd, int index)
{
	struct flock fl;
	int rc = lock_op(fd, F_OFD_SETLK, F_WRLCK, index, &fl);

	return rc == -EACCES ? -EAGAIN : rc;
}

void
dh__lock_drop(int fd, int index)
{
	struct flock fl;

	lock_op(fd, F_OFD_SETLK, F_UNLCK, index, &fl);
}

int
dh__lock_held(int fd, int index)
{
	struct flock fl;
	int rc = lock_op(fd, F_OFD_GETLK, F_WRLCK, index, &fl);

	if (rc < 0)
		return rc;
	/* Participants hold write locks. A read lock is someone with read
	 * access playing games: it must not pass for a live participant. */
	return fl.l_type == F_WRLCK;
}

static int
cfg_from_hdr(const struct dh_hdr *h, struct dh_config *cfg)
{
	memset(cfg, 0, sizeof *cfg);
	cfg->slots = h->slots;
	cfg->slot_size = h->slot_size;
	cfg->meta_size = h->meta_size;
	cfg->max_readers = h->max_readers;
	if (!dh_policy_info((enum dh_policy)h->policy) || !dh_checksum_info((enum dh_checksum)h->checksum))
		return -DH_ECORRUPT;
	cfg->policy = (enum dh_policy)h->policy;
	cfg->checksum = (enum dh_checksum)h->checksum;
	cfg->evict_after_ns = h->evict_after_ns;
	cfg->mode = 0;
	return 0;
}

static int
all_zero(const uint8_t *p, size_t n)
{
	uint8_t acc = 0;

	for (size_t i = 0; i < n; i++)
		acc |= p[i];
	return acc == 0;
}

/* Key id present exactly when keyed; schema text, its hash and its record
 * size agree with each other and with the slot size. */
static int
identity_ok(const struct dh_hdr *h)
{
	uint8_t hash[32];

	if ((h->checksum == DH_CHECKSUM_MAC) == all_zero(h->key_id, sizeof h->key_id))
		return -1;
	if (h->schema_len == 0)
		return h->record_size == 0 && all_zero(h->schema_hash, 32) ? 0 : -1;
	if (h->schema_len >= sizeof h->schema || h->schema[h->schema_len] != '\0' ||
	    memchr(h->schema, '\0', h->schema_len) || h->record_size == 0 || h->record_size > h->slot_size)
		return -1;
	crypto_generichash(hash, sizeof hash, (const unsigned char *)h->schema, h->schema_len, NULL, 0);
	return sodium_memcmp(hash, h->schema_hash, 32) == 0 ? 0 : -1;
}

int
dh_block_check_image(const void *img, size_t size, uint64_t file_size, struct dh_config *cfg,
		     struct dh_layout *lay)
{
	struct dh_hdr h;
	struct dh_config c;
	struct dh_layout l;

	if (size < sizeof h)
		return file_size < sizeof h ? -DH_ECORRUPT : -EINVAL;
	memcpy(&h, img, sizeof h);
	if (atomic_load_explicit(&h.magic, memory_order_relaxed) != DH_MAGIC)
		return -DH_EFOREIGN;
	if (h.version != DH_FORMAT_VERSION)
		return -DH_EVERSION;
	if (cfg_from_hdr(&h, &c) < 0 || dh_layout_compute(&c, &l) < 0)
		return -DH_ECORRUPT;
	if (h.stride != l.stride || h.total_size != l.total || file_size != l.total ||
	    h.table_off != l.table_off || h.desc_off != l.desc_off || h.meta_off != l.meta_off ||
	    h.data_off != l.data_off)
		return -DH_ECORRUPT;
	if (identity_ok(&h) < 0)
		return -DH_ECORRUPT;
	if (cfg)
		*cfg = c;
	if (lay)
		*lay = l;
	return 0;
}

static void
init_segment(void *base, const struct dh_config *cfg, const struct dh_layout *l, const struct dh_schema *sc)
{
	struct dh_hdr *h = base;
	struct dh_pentry *t = (struct dh_pentry *)((char *)base + l->table_off);
	struct dh_desc *d = (struct dh_desc *)((char *)base + l->desc_off);

	/* posix_fallocate on a fresh object gives zeroes: only non-zero fields are set. */
	h->version = DH_FORMAT_VERSION;
	h->total_size = l->total;
	h->slots = cfg->slots;
	h->slot_size = cfg->slot_size;
	h->stride = (uint32_t)l->stride;
	h->meta_size = cfg->meta_size;
	h->max_readers = cfg->max_readers;
	h->policy = cfg->policy;
	h->checksum = cfg->checksum;
	h->evict_after_ns = cfg->evict_after_ns;
	h->created_ns = dh__now_real();
	h->creator_uid = (uint32_t)getuid();
	h->creator_pid = (uint32_t)getpid();
	h->table_off = l->table_off;
	h->desc_off = l->desc_off;
	h->meta_off = l->meta_off;
	h->data_off = l->data_off;
	randombytes_buf(h->chan_id, sizeof h->chan_id);
	if (cfg->key)
		dh__key_id(cfg->key, h->key_id);
	if (sc) {
		h->record_size = sc->size;
		h->schema_len = (uint32_t)strlen(sc->canonical);
		memcpy(h->schema, sc->canonical, h->schema_len + 1);
		memcpy(h->schema_hash, sc->hash, 32);
	}
	atomic_init(&h->eos_seq, DH_SEQ_NONE);
	for (uint32_t i = 0; i <= cfg->max_readers; i++)
		atomic_init(&t[i].claim, DH_SEQ_NONE);
	for (uint32_t i = 0; i < cfg->slots; i++)
		atomic_init(&d[i].qword, DH_Q_DONE);
	if (cfg->meta_size) {
		struct dh_meta *m = (struct dh_meta *)((char *)base + l->meta_off);
		m->check[0] = m->check[1] = XXH3_64bits_withSeed(NULL, 0, 0);
	}
	atomic_store_explicit(&h->magic, DH_MAGIC, memory_order_release);
}

int
dh_block_create(const char *name, const struct dh_config *cfg)
{
	char path[PATH_MAX];
	struct dh_config c = *cfg;
	struct stat st;
	struct dh_schema *sc = NULL;
	struct dh_layout l;
	void *base;
	int fd, rc;

	if ((rc = dh_block_path(name, path, sizeof path)) < 0)
		return rc;
	if (c.key)
		c.checksum = DH_CHECKSUM_MAC;
	else if (c.checksum == DH_CHECKSUM_MAC)
		return -DH_EKEYNEEDED;
	if ((rc = dh_layout_compute(&c, &l)) < 0)
		return rc;
	if ((rc = dh_mode_check(c.mode)) < 0)
		return rc;
	if (sodium_init() < 0)
		return -ENOSYS;
	if (c.schema) {
		if (!(sc = malloc(sizeof *sc)))
			return -ENOMEM;
		rc = dh_schema_parse(c.schema, sc);
		if (rc == 0 && sc->size > c.slot_size)
			rc = -EMSGSIZE;
		if (rc < 0) {
			free(sc);
			return rc;
		}
	}
	fd = seg_open(name, O_RDWR | O_CREAT | O_EXCL, 0600, &st);
	if (fd < 0) {
		free(sc);
		return fd;
	}
	if (fchmod(fd, c.mode) < 0 || ftruncate(fd, (off_t)l.total) < 0) {
		rc = -errno;
		goto fail;
	}
	/* Reserve every page now: a sparse tmpfs object would turn a full
	 * /dev/shm into SIGBUS in some later writer. */
	if ((rc = posix_fallocate(fd, 0, (off_t)l.total)) != 0) {
		rc = -rc;
		goto fail;
	}
	base = mmap(NULL, l.total, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (base == MAP_FAILED) {
		rc = -errno;
		goto fail;
	}
	init_segment(base, &c, &l, sc);
	munmap(base, l.total);
	close(fd);
	free(sc);
	return 0;
fail:
	unlink(path);
	close(fd);
	free(sc);
	return rc;
}

/* Is any participant of the segment open on fd alive? Works on corrupt
 * segments too: locks live on file bytes, not in the contents. */
static int
any_alive(int fd, pid_t *holder)
{
	struct dh_hdr h;
	struct dh_config c;
	struct dh_layout l;
	struct stat st;
	int valid = 0;

	if (fstat(fd, &st) == 0 && pread(fd, &h, sizeof h, 0) == (ssize_t)sizeof h &&
	    dh_block_check_image(&h, sizeof h, (uint64_t)st.st_size, &c, &l) == 0)
		valid = 1;
	for (int i = 0; i <= DH_READERS_MAX; i++) {
		int rc = dh__lock_held(fd, i);
		if (rc < 0)
			return rc;
		if (rc) {
			if (holder) {
				uint32_t pid = 0;
				if (valid && (uint32_t)i <= c.max_readers) {
					off_t at = (off_t)(l.table_off + (uint64_t)i * sizeof(struct dh_pentry) +
							   offsetof(struct dh_pentry, pid));
					if (pread(fd, &pid, sizeof pid, at) != (ssize_t)sizeof pid)
						pid = 0;
				}
				*holder = (pid_t)pid;
			}
			return 1;
		}
	}
	return 0;
}

int
dh_block_unlink(const char *name, int force, pid_t *holder)
{
	char path[PATH_MAX];
	struct stat st;
	int fd, rc;

	if ((rc = dh_block_path(name, path, sizeof path)) < 0)
		return rc;
	if (!force) {
		if ((fd = seg_open(name, O_RDONLY, 0, &st)) < 0)
			return fd;
		rc = any_alive(fd, holder);
		close(fd);
		if (rc < 0)
			return rc;
		if (rc > 0)
			return -EBUSY;
	} else if ((rc = dh_block_dir_check()) < 0) {
		return rc;
	}
	/* unlink never follows a symlink nor opens a FIFO: force removes
	 * whatever file was planted under the name (a directory stays) */
	if (unlink(path) == 0)
		return 0;
	return errno == EISDIR ? -DH_ENOTREG : -errno;
}

int
dh_block_open(const char *name, int flags, struct dh_block **out)
{
	struct dh_block *b;
	struct dh_hdr h;
	struct stat st;
	int rc, rdonly = (flags & DH_OPEN_RDONLY) != 0;

	if ((rc = dh_name_check(name)) < 0)
		return rc;
	if (!(b = calloc(1, sizeof *b)))
		return -ENOMEM;
	b->rdonly = rdonly;
	snprintf(b->name, sizeof b->name, "%s", name);
	b->fd = seg_open(name, rdonly ? O_RDONLY : O_RDWR, 0, &st);
	if (b->fd < 0) {
		rc = b->fd;
		goto fail;
	}

	/* A creator publishes the magic last; give a racing creator a moment. */
	for (int tries = 0;; tries++) {
		if (fstat(b->fd, &st) < 0) {
			rc = -errno;
			goto fail;
		}
		if (!S_ISREG(st.st_mode)) {
			rc = -DH_ENOTREG;
			goto fail;
		}
		memset(&h, 0, sizeof h);
		if (pread(b->fd, &h, sizeof h, 0) < 0) {
			rc = -errno;
			goto fail;
		}
		rc = dh_block_check_image(&h, sizeof h, (uint64_t)st.st_size, &b->cfg, &b->lay);
		if (rc != -DH_EFOREIGN || atomic_load_explicit(&h.magic, memory_order_relaxed) != 0 ||
		    tries >= 200 || (flags & DH_OPEN_NOWAIT))
			break;
		struct timespec ts = { 0, 2500000 };
		nanosleep(&ts, NULL);
	}
	if (rc == -DH_EFOREIGN && atomic_load_explicit(&h.magic, memory_order_relaxed) == 0 &&
	    st.st_size >= (off_t)sizeof h)
		rc = -DH_ECORRUPT; /* created but never published: the creator died */
	if (rc < 0)
		goto fail;
	b->pol = dh_policy_info(b->cfg.policy);
	b->ck = dh_checksum_info(b->cfg.checksum);
	/* A participant refuses a channel that users without write access can
	 * lock (see dh_mode_check); inspecting one is harmless. */
	if (!rdonly && (rc = dh_mode_check(st.st_mode & 0777)) < 0)
		goto fail;
	b->size = b->lay.total;
	b->base = mmap(NULL, b->size, rdonly ? PROT_READ : PROT_READ | PROT_WRITE, MAP_SHARED, b->fd, 0);
	if (b->base == MAP_FAILED) {
		rc = -errno;
		b->base = NULL;
		goto fail;
	}
	b->hdr = b->base;
	b->table = (struct dh_pentry *)((char *)b->base + b->lay.table_off);
	b->desc = (struct dh_desc *)((char *)b->base + b->lay.desc_off);
	b->meta = b->cfg.meta_size ? (struct dh_meta *)((char *)b->base + b->lay.meta_off) : NULL;
	b->data = (unsigned char *)b->base + b->lay.data_off;
	b->record_size = h.record_size;
	memcpy(b->chan_id, h.chan_id, sizeof b->chan_id);
	if (b->ck->needs_sodium && sodium_init() < 0) {
		rc = -ENOSYS;
		goto fail;
	}
	*out = b;
	return 0;
fail:
	dh_block_close(b);
	return rc;
}

uid_t
dh_block_owner(const struct dh_block *b)
{
	struct stat st;

	/* fstat of an open descriptor fails only on a bad descriptor */
	return fstat(b->fd, &st) == 0 ? st.st_uid : (uid_t)-1;
}

void
dh_block_close(struct dh_block *b)
{
	if (!b)
		return;
	if (b->base)
		munmap(b->base, b->size);
	if (b->fd >= 0)
		close(b->fd);
	sodium_memzero(b->key, sizeof b->key);
	free(b);
}

/*
 * Reclaim entry index (a reader) whose owner died.  The caller holds the
 * entry's lock, so nobody else can be attaching there meanwhile.  Queue
 * claims the dead reader held are marked done and counted lost: handing
 * them to another reader could deliver a message twice.
 */
int
dh__reap(struct dh_block *b, int index, int self_index)
{
	struct dh_pentry *e = &b->table[index];
	uint32_t word = atomic_load(&e->state);

	(void)self_index;
	if (dh__ent_state(word) == DH_ENT_FREE)
		return 0;
	if (b->pol->claims && index > 0) {
		for (uint32_t i = 0; i < b->cfg.slots; i++) {
			uint64_t q = atomic_load(&b->desc[i].qword);
			if ((q & ((1u << DH_Q_SHIFT) - 1)) == (uint64_t)index) {
				uint64_t done = (q & ~(uint64_t)((1u << DH_Q_SHIFT) - 1)) | DH_Q_DONE;
				if (atomic_compare_exchange_strong(&b->desc[i].qword, &q, done)) {
					atomic_fetch_add(&b->hdr->queue_lost, 1);
					atomic_fetch_add(&e->lost, 1);
				}
			}
		}
	}
	if (b->pol->positions_hold && index > 0) {
		dh__fold_drained(b->hdr, atomic_load(&e->position));
		atomic_fetch_add(&b->hdr->reader_gen, 1); /* as at reader close */
	}
	atomic_store(&e->claim, DH_SEQ_NONE);
	atomic_store(&e->state, dh__ent_with(word, DH_ENT_FREE));
	if (index > 0)
		atomic_fetch_add(&b->hdr->readers_reaped, 1);
	atomic_fetch_add(&b->hdr->space_futex, 1);
	dh__futex_wake(&b->hdr->space_futex);
	return 1;
}

int
dh_block_alive(struct dh_block *b, pid_t *first_pid)
{
	for (uint32_t i = 0; i <= b->cfg.max_readers; i++) {
		int rc = dh__lock_held(b->fd, (int)i);
		if (rc < 0)
			return rc;
		if (rc) {
			int n = 1;
			if (first_pid)
				*first_pid = (pid_t)b->table[i].pid;
			for (uint32_t j = i + 1; j <= b->cfg.max_readers; j++)
				n += dh__lock_held(b->fd, (int)j) == 1;
			return n;
		}
	}
	return 0;
}

int
dh_block_snapshot(struct dh_block *b, struct dh_snapshot *s)
{
	struct dh_hdr *h = b->hdr;

	memset(s, 0, sizeof *s);
	s->cfg = b->cfg;
	s->lay = b->lay;
	s->created_ns = h->created_ns;
	s->creator_uid = h->creator_uid;
	s->creator_pid = h->creator_pid;
	s->committed = atomic_load(&h->committed);
	s->eos = atomic_load(&h->eos_seq) == s->committed;
	s->stream = atomic_load(&h->stream);
	s->stream_start = atomic_load(&h->stream_start);
	s->messages_written = atomic_load(&h->messages_written);
	s->bytes_written = atomic_load(&h->bytes_written);
	s->writer_waits = atomic_load(&h->writer_waits);
	s->writer_wait_ns = atomic_load(&h->writer_wait_ns);
	s->readers_reaped = atomic_load(&h->readers_reaped);
	s->evictions = atomic_load(&h->evictions);
	s->eos_count = atomic_load(&h->eos_count);
	s->queue_lost = atomic_load(&h->queue_lost);
	s->readers_lost = atomic_load(&h->readers_lost);
	s->checksum_failures = atomic_load(&h->checksum_failures);
	s->schema_mismatches = atomic_load(&h->schema_mismatches);
	s->key_mismatches = atomic_load(&h->key_mismatches);
	s->acked_schema_mismatches = atomic_load(&h->acked_schema_mismatches);
	s->acked_key_mismatches = atomic_load(&h->acked_key_mismatches);
	s->acked_checksum_failures = atomic_load(&h->acked_checksum_failures);
	s->acked_queue_lost = atomic_load(&h->acked_queue_lost);
	s->drained = atomic_load(&h->drained);
	s->keyed = b->cfg.checksum == DH_CHECKSUM_MAC;
	s->claim_head = atomic_load(&h->claim_head);
	s->writer_sessions = atomic_load(&h->writer_sessions);
	s->data_waiters = atomic_load(&h->data_waiters);
	s->space_waiters = atomic_load(&h->space_waiters);
	s->record_size = b->record_size;
	memcpy(s->schema_hash, h->schema_hash, 32);
	s->nparticipants = (int)b->cfg.max_readers + 1;
	struct timespec mts;
	clock_gettime(CLOCK_MONOTONIC_COARSE, &mts);
	uint64_t mono_now = (uint64_t)mts.tv_sec * 1000000000u + (uint64_t)mts.tv_nsec;
	for (int i = 0; i < s->nparticipants; i++) {
		struct dh_pentry *e = &b->table[i];
		struct dh_participant *p = &s->part[i];
		uint32_t st = dh__ent_state(atomic_load(&e->state));
		int held;

		p->index = i;
		p->pid = (pid_t)e->pid;
		memcpy(p->name, e->name, sizeof p->name);
		p->name[sizeof p->name - 1] = '\0';
		p->position = atomic_load(&e->position) & ~DH_POS_HOLD;
		p->last_active_ns = atomic_load(&e->last_active_ns);
		uint64_t hb = atomic_load(&e->heartbeat_mono);
		p->idle_ns = hb && mono_now > hb ? mono_now - hb : 0;
		p->messages = atomic_load(&e->messages);
		p->bytes = atomic_load(&e->bytes);
		p->lost = atomic_load(&e->lost);
		p->checksum_failures = atomic_load(&e->checksum_failures);
		p->claim = atomic_load(&e->claim);
		if (st == DH_ENT_FREE) {
			p->state = DH_P_FREE;
			continue;
		}
		if (st == DH_ENT_EVICTED) {
			p->state = DH_P_EVICTED;
			continue;
		}
		held = dh__lock_held(b->fd, i);
		p->state = held < 0 ? DH_P_UNKNOWN : held ? DH_P_ALIVE : DH_P_DEAD;
	}
	return 0;
}

size_t
dh_meta_capacity(const struct dh_block *b)
{
	return b->cfg.meta_size;
}

static uint64_t
meta_hash(const void *data, uint32_t len)
{
	return XXH3_64bits_withSeed(data, len, len);
}

static unsigned char *
meta_copy(const struct dh_block *b, unsigned i)
{
	return (unsigned char *)(b->meta + 1) + (size_t)i * round_up(b->cfg.meta_size, DH_CACHELINE);
}

ssize_t
dh_meta_read(struct dh_block *b, void *buf, size_t cap)
{
	struct dh_meta *m = b->meta;

	if (!m)
		return -ENODEV;
	for (int tries = 0; tries < 10000; tries++) {
		uint32_t s1 = atomic_load_explicit(&m->seq, memory_order_acquire), s2, len;
		unsigned c = (s1 >> 1) & 1;
		uint64_t check;

		len = m->length[c];
		check = m->check[c];
		if (len > b->cfg.meta_size)
			len = b->cfg.meta_size + 1; /* torn or hostile; re-check below */
		if (len <= cap && len <= b->cfg.meta_size)
			memcpy(buf, meta_copy(b, c), len);
		atomic_thread_fence(memory_order_acquire);
		s2 = atomic_load_explicit(&m->seq, memory_order_relaxed);
		/* Copy c is rewritten only by the update after the next one to
		 * finish: from even s1 that starts at s1 + 3, from odd s1 at
		 * s1 + 2. Before that, what we copied is whole. */
		if ((uint32_t)(s2 - s1) > (s1 | 1) + 1 - s1) {
			sched_yield();
			continue;
		}
		if (len > b->cfg.meta_size)
			return -DH_ECORRUPT;
		if (len > cap)
			return -ENOBUFS;
		if (meta_hash(buf, len) != check)
			return -DH_ECHECKSUM;
		return (ssize_t)len;
	}
	/* Updates overtook us 10000 times: someone rewrites it without pause. */
	return -EBUSY;
}

int
dh__meta_begin(struct dh_block *b, struct dh__meta_tx *tx, int64_t timeout_ns)
{
	struct dh_meta *m = b->meta;
	uint64_t t0 = dh__now_mono();
	uint32_t s, odd;
	int rc;

	/* The lock, not a timer, says whether an odd seq's updater is alive:
	 * a stopped one keeps it, so it is never taken over and can never
	 * resume over a newer update. */
	while ((rc = dh__lock_try(b->fd, DH_META_LOCK)) == -EAGAIN) {
		struct timespec ts = { 0, 1000000 };

		if (timeout_ns >= 0 && dh__now_mono() - t0 >= (uint64_t)timeout_ns)
			return -EBUSY;
		nanosleep(&ts, NULL);
	}
	if (rc < 0)
		return rc;
	s = atomic_load(&m->seq);
	do
		odd = (s & 1) ? s + 4 : s + 1; /* odd: its updater died inside */
	while (!atomic_compare_exchange_weak(&m->seq, &s, odd));
	tx->odd = odd;
	return 0;
}

int
dh__meta_fill(struct dh_block *b, const struct dh__meta_tx *tx, const void *data, size_t len)
{
	struct dh_meta *m = b->meta;
	unsigned t = ((tx->odd >> 1) + 1) & 1;

	if (atomic_load(&m->seq) != tx->odd)
		return -ESTALE;
	memcpy(meta_copy(b, t), data, len);
	m->length[t] = (uint32_t)len;
	m->check[t] = meta_hash(data, (uint32_t)len);
	return 0;
}

int
dh__meta_commit(struct dh_block *b, const struct dh__meta_tx *tx)
{
	uint32_t s = tx->odd;
	int ok = atomic_compare_exchange_strong_explicit(&b->meta->seq, &s, tx->odd + 1, memory_order_release,
							 memory_order_relaxed);

	dh__lock_drop(b->fd, DH_META_LOCK);
	return ok ? 0 : -ESTALE;
}

int
dh_meta_write(struct dh_block *b, const void *data, size_t len)
{
	struct dh__meta_tx tx;
	int rc;

	if (!b->meta)
		return -ENODEV;
	if (b->rdonly)
		return -EBADF;
	if (len > b->cfg.meta_size)
		return -EMSGSIZE;
	if ((rc = dh__meta_begin(b, &tx, 5000000000)) < 0)
		return rc;
	if ((rc = dh__meta_fill(b, &tx, data, len)) < 0) {
		dh__lock_drop(b->fd, DH_META_LOCK);
		return rc;
	}
	return dh__meta_commit(b, &tx);
}
