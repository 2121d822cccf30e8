/* driver.c: one full channel life cycle through libdh, for fault injection.
 * Exit 0: every step worked; 1: a step failed cleanly (reported on
 * stderr); 3: memory, descriptors or mappings leaked; 4: the channel was
 * left in /dev/shm.  A crash is anything else.  See LICENSE. */
#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dh.h"

static long
count_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;
	long n = 0;

	while (d && (e = readdir(d)))
		n += e->d_name[0] != '.';
	if (d)
		closedir(d);
	return n - 1; /* the directory's own descriptor */
}

static long
count_maps(void)
{
	FILE *f = fopen("/proc/self/maps", "r");
	long n = 0;
	int c;

	while (f && (c = getc(f)) != EOF)
		n += c == '\n';
	if (f)
		fclose(f);
	return n;
}

#define STEP(what, call)                                                                   \
	do {                                                                               \
		int rc_ = (call);                                                          \
		if (rc_ < 0) {                                                             \
			fprintf(stderr, "driver: %s: %s\n", what, dh_strerror(rc_));     \
			goto out;                                                          \
		}                                                                          \
	} while (0)

static int
cycle(const char *name)
{
	struct dh_config c;
	struct dh_writer *w = NULL;
	struct dh_reader *r = NULL;
	struct dh_block *b = NULL;
	struct dh_snapshot *s = NULL;
	struct dh_report rep = { 0 };
	struct dh_msg m;
	char meta[32];
	int created = 0, ok = 0, rc;

	/* keyed, so the MAC paths run, and so the keyless inspection below
	 * has something to report (its report grows by realloc) */
	static const uint8_t key[DH_KEY_BYTES] = "0123456789abcdef0123456789abcde";
	struct dh_writer_opts wo = { .label = "w", .key = key };
	struct dh_reader_opts ro = { .key = key };

	dh_config_init(&c);
	c.slots = 4;
	c.slot_size = 64;
	c.meta_size = 32;
	c.key = key;
	STEP("create", dh_block_create(name, &c));
	created = 1;
	STEP("writer open", dh_writer_open_opts(name, &wo, &w, NULL));
	STEP("reader open", dh_reader_open(name, &ro, &r));
	for (int i = 0; i < 3; i++)
		STEP("write", dh_writer_write(w, "message", 7, 0));
	STEP("eos", dh_writer_eos(w));
	while ((rc = dh_reader_next(r, &m, 0)) == 0)
		;
	if (rc != DH_END)
		STEP("read", rc);
	STEP("meta write", dh_meta_write(dh_writer_block(w), "meta", 4));
	STEP("meta read", (int)dh_meta_read(dh_writer_block(w), meta, sizeof meta));
	STEP("inspect open", dh_block_open(name, DH_OPEN_RDONLY, &b));
	if (!(s = malloc(sizeof *s)))
		STEP("snapshot", -ENOMEM);
	STEP("snapshot", dh_block_snapshot(b, s));
	STEP("check", dh_check_run(b, 0, 1000000000u, &rep));
	ok = 1;
out:
	dh_report_free(&rep);
	free(s);
	dh_block_close(b);
	dh_reader_close(r);
	dh_writer_close(w);
	if (created && (rc = dh_block_unlink(name, 1, NULL)) < 0) {
		fprintf(stderr, "driver: unlink: %s\n", dh_strerror(rc));
		ok = 0;
	}
	return ok ? 0 : 1;
}

/* Blocks allocated by the program and not freed, as counted by the fault
 * shim; 0 when running without it. */
static long
live_blocks(void)
{
	long (*f)(void) = (long (*)(void))(uintptr_t)dlsym(RTLD_DEFAULT, "fault_live_blocks");

	return f ? f() : 0;
}

int
main(void)
{
	char name[64], path[96];
	long fds, maps;
	long heap;
	int rc;

	snprintf(name, sizeof name, "dhtest-fault-%d", (int)getpid());
	snprintf(path, sizeof path, "/dev/shm/dh.%s", name);
	/* One cycle without faults first: what libc and libsodium allocate
	 * once for good is not a leak.  Then arm the shim and measure. */
	if (cycle(name) != 0)
		return 1;
	setenv("FAULT_ARMED", "1", 1);
	fds = count_fds();
	count_maps();
	maps = count_maps();
	heap = live_blocks();
	rc = cycle(name);
	if (access(path, F_OK) == 0) {
		fprintf(stderr, "driver: %s left behind\n", path);
		unlink(path);
		return 4;
	}
	if (count_fds() != fds || count_maps() != maps || live_blocks() != heap) {
		fprintf(stderr, "driver: leak: fds %ld -> %ld, maps %ld -> %ld, heap blocks %ld -> %ld\n", fds,
			count_fds(), maps, count_maps(), heap, live_blocks());
		return 3;
	}
	return rc;
}
