/* test_light.c: the sync writer's light reserve (issue 14): odd stamps
 * without a barrier, a membarrier(2) at reader attach instead
 * (tests/model/attach.pml has the protocol).  A reader that cannot call
 * membarrier must refuse a light writer's channel and may read a heavy
 * one's; readers attaching at an old message while the writer laps the
 * ring never see it change under them.  See LICENSE. */
#define TAP_CHAN_TAG "light"
#include <linux/filter.h>
#include <linux/membarrier.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>

#include "dhtest.h"

#define SZ 64

static int
kernel_light(void)
{
	long cmds = syscall(SYS_membarrier, MEMBARRIER_CMD_QUERY, 0, 0);

	return cmds >= 0 && (cmds & MEMBARRIER_CMD_REGISTER_GLOBAL_EXPEDITED);
}

/* From here on membarrier(2) fails with EPERM in this process, as under a
 * container's seccomp profile that lacks it. */
static int
deny_membarrier(void)
{
	struct sock_filter f[] = {
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_membarrier, 0, 1),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EPERM),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
	};
	struct sock_fprog prog = { .len = sizeof f / sizeof f[0], .filter = f };

	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0 || prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) < 0)
		return -1;
	return syscall(SYS_membarrier, MEMBARRIER_CMD_QUERY, 0, 0) < 0 && errno == EPERM ? 0 : -1;
}

/* Can a child of ours install the filter?  (Not in every sandbox.) */
static int
can_deny(void)
{
	int st = -1;
	pid_t kid = fork();

	if (kid == 0)
		_exit(deny_membarrier() < 0);
	return kid > 0 && waitpid(kid, &st, 0) == kid && WIFEXITED(st) && WEXITSTATUS(st) == 0;
}

static uint64_t
writer_flags(struct dh_writer *w)
{
	return atomic_load(&dh_writer_block(w)->table[0].flags);
}

/* Which writers take the light path: sync ones, where the kernel allows. */
static void
flag_per_policy(void)
{
	static const enum dh_policy pols[] = { DH_POLICY_LATEST, DH_POLICY_RING, DH_POLICY_SYNC, DH_POLICY_QUEUE };
	int light = kernel_light();

	for (size_t i = 0; i < sizeof pols / sizeof pols[0]; i++) {
		char name[DH_NAME_MAX + 1];
		struct dh_writer *w;
		uint64_t want = pols[i] == DH_POLICY_SYNC && light ? DH_W_LIGHT : 0, got = UINT64_MAX;

		tap_chan(name);
		if (mkchan(name, pols[i], 8, SZ, DH_CHECKSUM_XXH3, 4, 0) == 0 && (w = wopen(name))) {
			got = writer_flags(w);
			dh_writer_close(w);
		}
		ok(got == want, "%s writer publishes flags %#llx (want %#llx; kernel has global expedited membarrier: %s)",
		   dh_policy_name(pols[i]), (unsigned long long)got, (unsigned long long)want, light ? "yes" : "no");
	}
}

/*
 * A child that may not call membarrier: as a writer it falls back to the
 * barrier per message (no flag), as a reader it reads that writer's
 * channel, and it refuses a light writer's channel without leaving a
 * trace (entry free, nothing folded into drained).
 */
static void
denied_process(void)
{
	char heavy[DH_NAME_MAX + 1], light[DH_NAME_MAX + 1];
	struct dh_writer *lw = NULL;
	int st = -1, p[2], q[2];
	pid_t kid;
	char res[5] = "????";
	uint64_t drained0 = 0, drained1 = 1;
	unsigned used = 0;
	int light_here = kernel_light();

	if (!can_deny()) {
		for (int i = 0; i < 5; i++)
			skip("membarrier denied", "this process cannot install a seccomp filter");
		return;
	}
	tap_chan(heavy);
	tap_chan(light);
	if (mkchan(heavy, DH_POLICY_SYNC, 8, SZ, DH_CHECKSUM_XXH3, 4, 0) != 0 ||
	    mkchan(light, DH_POLICY_SYNC, 8, SZ, DH_CHECKSUM_XXH3, 4, 0) != 0 || !(lw = wopen(light)) ||
	    pipe(p) < 0 || pipe(q) < 0) {
		fail_rest(5, "membarrier denied: setup");
		dh_writer_close(lw);
		return;
	}
	for (uint64_t i = 0; i < 3; i++)
		pl_write(lw, i, SZ, 0);
	dh_writer_flush(lw);
	drained0 = atomic_load(&dh_writer_block(lw)->hdr->drained);
	kid = tap_fork();
	if (kid == 0) {
		struct dh_writer *w;
		struct dh_reader *r = NULL, *lr = NULL;
		struct dh_msg m;
		int rc = -1, ok_read = 1;
		char go = 0;

		close(p[0]);
		close(q[1]);
		if (deny_membarrier() < 0)
			_exit(9);
		/* [0]: our writer's flags; [1]: we read what we wrote; [2]: refused */
		w = wopen(heavy);
		res[0] = w && writer_flags(w) == 0 ? 'h' : 'L';
		r = w ? ropen(heavy, DH_START_DEFAULT, 0, 0) : NULL;
		for (uint64_t i = 0; r && i < 20 && ok_read; i++) {
			ok_read = pl_write(w, i, SZ, 0) == 0 && dh_writer_flush(w) == 0 &&
				  dh_reader_next(r, &m, 0) == 0 && pl_check(m.data, m.len, i, SZ);
		}
		res[1] = r && ok_read ? 'r' : 'x';
		dh_reader_close(r);
		dh_writer_close(w);
		{
			/* at the end: were it to fold its position, drained
			 * would pass three messages nobody read */
			struct dh_reader_opts o = { .start = DH_START_NOW };

			rc = dh_reader_open(light, &o, &lr);
		}
		res[2] = rc == -DH_EUNSUPPORTED ? 'u' : rc == 0 ? 'o' : 'e';
		dh_reader_close(lr);
		xwrite(p[1], res, 3);
		/* [3]: once the light writer has left, its channel is readable:
		 * the three messages nobody read */
		xread(q[0], &go, 1);
		lr = ropen(light, DH_START_DEFAULT, 0, 0);
		ok_read = lr != NULL;
		for (uint64_t i = 0; ok_read && i < 3; i++)
			ok_read = dh_reader_next(lr, &m, 0) == 0 && pl_check(m.data, m.len, i, SZ);
		res[3] = ok_read ? 'r' : lr ? 'x' : 'u';
		dh_reader_close(lr);
		xwrite(p[1], res + 3, 1);
		_exit(0);
	}
	close(p[1]);
	close(q[0]);
	xread(p[0], res, 3);
	drained1 = atomic_load(&dh_writer_block(lw)->hdr->drained);
	for (uint32_t i = 1; i <= dh_writer_block(lw)->cfg.max_readers; i++)
		used += dh__ent_state(atomic_load(&dh_writer_block(lw)->table[i].state)) != DH_ENT_FREE;
	dh_writer_close(lw);
	xwrite(q[1], "g", 1);
	xread(p[0], res + 3, 1);
	close(p[0]);
	close(q[1]);
	tap_wait(kid, &st, 30);
	ok(st == 0 && res[0] == 'h', "membarrier denied: a sync writer falls back to a barrier per message (no flag) [%c]",
	   res[0]);
	ok(res[1] == 'r', "membarrier denied: a reader reads that writer's channel in place [%c]", res[1]);
	if (light_here) {
		ok(res[2] == 'u', "membarrier denied: a reader refuses a live light writer's channel with DH_EUNSUPPORTED [%c]",
		   res[2]);
		ok(used == 0 && drained1 == drained0,
		   "membarrier denied: the refused reader leaves no entry (%u in use) and drained unchanged (%llu -> %llu)",
		   used, (unsigned long long)drained0, (unsigned long long)drained1);
		ok(res[3] == 'r',
		   "membarrier denied: once the light writer has closed, the reader gets the messages nobody read [%c]",
		   res[3]);
	} else {
		for (int i = 0; i < 3; i++)
			skip("membarrier denied: refusing a light writer", "no writer is light on this kernel");
	}
}

/*
 * The race the barrier is for, on real CPUs: a writer lapping an 4-slot
 * sync ring as fast as a consumer lets it, and readers attaching again and
 * again at the oldest message held (the one the writer is about to
 * overwrite), each holding it in place for a while.  A held message must
 * never change; a reader that lost the race skips it and starts later.
 */
#define LAP_MSGS 150000
#define LAP_SECS 3.0

static double
now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static void
attach_while_lapping(int heavy)
{
	char name[DH_NAME_MAX + 1];
	pid_t wkid, ckid;
	int wst = -1, cst = -1, go[2];
	long attaches = 0, held = 0, changed = 0, errors = 0;
	double t0;

	if (!heavy && !kernel_light()) {
		skip("attach while lapping, light writer", "no writer is light on this kernel");
		skip("attach while lapping, light writer", "no writer is light on this kernel");
		return;
	}
	if (heavy && !can_deny()) {
		skip("attach while lapping, heavy writer", "this process cannot install a seccomp filter");
		skip("attach while lapping, heavy writer", "this process cannot install a seccomp filter");
		return;
	}
	tap_chan(name);
	if (mkchan(name, DH_POLICY_SYNC, 4, SZ, DH_CHECKSUM_NONE, 8, 0) != 0 || pipe(go) < 0) {
		fail_rest(2, "attach while lapping: setup");
		return;
	}
	/* the consumer first, so the writer never waits for drained */
	ckid = tap_fork();
	if (ckid == 0) {
		struct dh_reader *r = ropen(name, DH_START_DEFAULT, 0, 0);
		struct dh_msg m;
		uint64_t want = 0;

		close(go[0]);
		xwrite(go[1], "c", 1);
		while (r && want < LAP_MSGS && dh_reader_next(r, &m, 10 * SEC) == 0 &&
		       pl_check(m.data, m.len, m.seq, SZ) && m.seq == want)
			want++;
		_exit(want == LAP_MSGS ? 0 : 1);
	}
	{
		char c;

		xread(go[0], &c, 1);
	}
	wkid = tap_fork();
	if (wkid == 0) {
		struct dh_writer *w = heavy && deny_membarrier() < 0 ? NULL : wopen(name);
		int e = !w || (writer_flags(w) != 0) != (!heavy && kernel_light());

		for (uint64_t i = 0; !e && i < LAP_MSGS; i++)
			e = pl_write(w, i, SZ, 10 * SEC) != 0;
		dh_writer_close(w);
		_exit(e);
	}
	close(go[0]);
	close(go[1]);
	t0 = now_s();
	while (now_s() - t0 < LAP_SECS && waitpid(wkid, &wst, WNOHANG) == 0) {
		struct dh_reader_opts o = { .start = DH_START_OLDEST };
		struct dh_reader *r = NULL;
		struct dh_msg m;

		if (dh_reader_open(name, &o, &r) != 0) {
			errors++;
			break;
		}
		attaches++;
		if (dh_reader_next(r, &m, 0) == 0) {
			held++;
			/* use it in place for a while: about a lap of the writer */
			for (int k = 0; k < 200; k++)
				if (!pl_check(m.data, m.len, m.seq, SZ)) {
					changed++;
					break;
				}
		}
		dh_reader_close(r);
	}
	if (wst == -1)
		tap_wait(wkid, &wst, 60);
	else
		tap_forget(wkid);   /* reaped above: never to be killed as a leftover */
	tap_wait(ckid, &cst, 60);
	ok(attaches > 100 && held > 0 && changed == 0 && errors == 0,
	   "attach while lapping, %s writer: %ld attaches at the oldest message, %ld held in place, %ld changed under "
	   "the reader, %ld errors",
	   heavy ? "heavy" : "light", attaches, held, changed, errors);
	ok(wst == 0 && cst == 0,
	   "attach while lapping, %s writer: it took the path it should and wrote, and the consumer read, all %d "
	   "messages in order",
	   heavy ? "heavy" : "light", LAP_MSGS);
}

int
main(void)
{
	plan(13);
	tap_watch(120, "test_light");
	flag_per_policy();
	denied_process();
	attach_while_lapping(0);
	attach_while_lapping(1);
	return done();
}
