/* test_checksum.c: a committed message corrupted in place (through a second
 * mapping of /dev/shm/dh.NAME) is reported with -DH_ECHECKSUM and m.seq,
 * counted, never delivered; the reader continues with the next one.  For
 * xxh3 and blake2b, under every policy; with checksum none nothing is
 * checked. See LICENSE. */
#include "dhtest.h"

#define SZ 128

static const char *
rname(int rc)
{
	return rc == DH_END ? "END" : estr(rc);
}

/* Messages 0..4; corrupt 1 (a payload byte), 2 (the stored check), 3 (the
 * stored length, still within the slot). */
static void
test_ordered(enum dh_policy pol, enum dh_checksum ck)
{
	char name[DH_NAME_MAX + 1];
	const char *pn = dh_policy_name(pol), *cn = dh_checksum_name(ck);
	struct dh_writer *w = NULL;
	struct dh_reader *r = NULL;
	struct wbmap m;
	struct dh_msg msg;
	int rc, res[5], bad = 0;
	uint64_t seqs[5];
	char what[128];

	tap_chan(name);
	rc = mkchan(name, pol, 8, SZ, ck, 4, 0);
	if (rc == -DH_EUNSUPPORTED) {
		snprintf(what, sizeof what, "%s/%s: corrupted messages reported", pn, cn);
		skip(what, "checksum kind not supported by this build");
		snprintf(what, sizeof what, "%s/%s: failures counted", pn, cn);
		skip(what, "checksum kind not supported by this build");
		return;
	}
	r = ropen(name, DH_START_DEFAULT, 0, 0);
	w = wopen(name);
	for (uint64_t s = 0; w && s < 5; s++)
		if (pl_write(w, s, SZ, 0) != 0)
			bad++;
	if (rc != 0 || !r || !w || bad || wb_map(name, &m) != 0) {
		diag("setup: %s", estr(rc));
		fail_rest(2, "checksum setup");
		goto out;
	}
	wb_slot(&m, 1)[9] ^= 0x40;
	wb_desc(&m, 2)->check[0] ^= 0x01;
	wb_desc(&m, 3)->length -= 1;
	for (int i = 0; i < 5; i++) {
		memset(&msg, 0, sizeof msg);
		msg.seq = 999;
		res[i] = dh_reader_next(r, &msg, 0);
		seqs[i] = msg.seq;
		if (ck == DH_CHECKSUM_NONE) {
			/* delivered as stored: 1 and 3 damaged, 2 intact */
			if (res[i] != 0 || msg.seq != (uint64_t)i ||
			    pl_check(msg.data, msg.len, msg.seq, SZ) != (i == 0 || i == 2 || i == 4))
				bad++;
		} else if (i == 0 || i == 4) {
			if (res[i] != 0 || msg.seq != (uint64_t)i || !pl_check(msg.data, msg.len, msg.seq, SZ))
				bad++;
		} else if (res[i] != -DH_ECHECKSUM || msg.seq != (uint64_t)i) {
			bad++;
		}
	}
	if (ck == DH_CHECKSUM_NONE)
		ok(bad == 0, "%s/%s: no check: damaged messages delivered as stored (%s %s %s %s %s)", pn, cn,
		   rname(res[0]), rname(res[1]), rname(res[2]), rname(res[3]), rname(res[4]));
	else
		ok(bad == 0,
		   "%s/%s: damaged payload, check and length -> -DH_ECHECKSUM with m.seq, reader continues "
		   "(%s/%llu %s/%llu %s/%llu %s/%llu %s/%llu)",
		   pn, cn, rname(res[0]), (unsigned long long)seqs[0], rname(res[1]), (unsigned long long)seqs[1],
		   rname(res[2]), (unsigned long long)seqs[2], rname(res[3]), (unsigned long long)seqs[3],
		   rname(res[4]), (unsigned long long)seqs[4]);
	{
		struct dh_snapshot *s = snap_alloc();
		int src = snap(name, s), mine = -1;
		uint64_t want = ck == DH_CHECKSUM_NONE ? 0 : 3;
		for (int i = 1; src == 0 && i < s->nparticipants; i++)
			if (s->part[i].state == DH_P_ALIVE)
				mine = i;
		ok(src == 0 && mine > 0 && s->checksum_failures == want && s->part[mine].checksum_failures == want &&
			   s->part[mine].messages == 5 - want,
		   "%s/%s: counted: channel %llu, reader %llu failures, %llu messages",
		   pn, cn, (unsigned long long)s->checksum_failures,
		   mine > 0 ? (unsigned long long)s->part[mine].checksum_failures : 0ull,
		   mine > 0 ? (unsigned long long)s->part[mine].messages : 0ull);
		free(s);
	}
	wb_unmap(&m);
out:
	dh_reader_close(r);
	dh_writer_close(w);
	dh_block_unlink(name, 1, NULL);
}

/* latest: the newest message is the damaged one. */
static void
test_latest(enum dh_checksum ck)
{
	char name[DH_NAME_MAX + 1];
	const char *cn = dh_checksum_name(ck);
	struct dh_writer *w = NULL;
	struct dh_reader *r = NULL;
	struct wbmap m;
	struct dh_msg msg;
	int rc, r1 = -9999, r2 = -9999;
	uint64_t s1 = 999;

	tap_chan(name);
	rc = mkchan(name, DH_POLICY_LATEST, 8, SZ, ck, 4, 0);
	if (rc == -DH_EUNSUPPORTED) {
		skip("latest: corrupted newest message reported", "checksum kind not supported by this build");
		return;
	}
	r = ropen(name, DH_START_DEFAULT, 0, 0);
	w = wopen(name);
	if (rc == 0 && r && w && pl_write(w, 0, SZ, 0) == 0 && pl_write(w, 1, SZ, 0) == 0 &&
	    pl_write(w, 2, SZ, 0) == 0 && wb_map(name, &m) == 0) {
		wb_slot(&m, 2)[20] ^= 0x01;
		memset(&msg, 0, sizeof msg);
		r1 = dh_reader_next(r, &msg, 0);
		s1 = msg.seq;
		pl_write(w, 3, SZ, 0);
		r2 = dh_reader_next(r, &msg, 0);
		if (r2 == 0 && (msg.seq != 3 || !pl_check(msg.data, msg.len, 3, SZ)))
			r2 = -9998;
		wb_unmap(&m);
	}
	ok(r1 == -DH_ECHECKSUM && s1 == 2 && r2 == 0,
	   "latest/%s: damaged newest -> -DH_ECHECKSUM seq 2; next newest 3 delivered (%s/%llu, %s)", cn,
	   rname(r1), (unsigned long long)s1, rname(r2));
	dh_reader_close(r);
	dh_writer_close(w);
	dh_block_unlink(name, 1, NULL);
}

/* queue: a damaged message is consumed once, by whoever claims it. */
static void
test_queue_once(void)
{
	char name[DH_NAME_MAX + 1];
	struct dh_writer *w = NULL;
	struct dh_reader *r1 = NULL, *r2 = NULL;
	struct wbmap m;
	struct dh_msg msg;
	int rc, a = -9999, b = -9999, c = -9999;
	uint64_t sa = 99, sb = 99;

	tap_chan(name);
	rc = mkchan(name, DH_POLICY_QUEUE, 8, SZ, DH_CHECKSUM_XXH3, 4, 0);
	r1 = ropen(name, DH_START_DEFAULT, 0, 0);
	r2 = ropen(name, DH_START_DEFAULT, 0, 0);
	w = wopen(name);
	if (rc == 0 && r1 && r2 && w && pl_write(w, 0, SZ, 0) == 0 && pl_write(w, 1, SZ, 0) == 0 &&
	    wb_map(name, &m) == 0) {
		wb_slot(&m, 0)[3] ^= 0x01; /* seq 0 is 8 bytes long */
		a = dh_reader_next(r1, &msg, 0);
		sa = msg.seq;
		b = dh_reader_next(r2, &msg, 0);
		sb = msg.seq;
		c = dh_reader_next(r1, &msg, 0);
		wb_unmap(&m);
	}
	ok(a == -DH_ECHECKSUM && sa == 0 && b == 0 && sb == 1 && c == -EAGAIN,
	   "queue: damaged message reported to the reader that claimed it, not offered again (%s/%llu %s/%llu %s)",
	   rname(a), (unsigned long long)sa, rname(b), (unsigned long long)sb, rname(c));
	dh_reader_close(r1);
	dh_reader_close(r2);
	dh_writer_close(w);
	dh_block_unlink(name, 1, NULL);
}

int
main(void)
{
	static const enum dh_policy pols[] = {DH_POLICY_RING, DH_POLICY_SYNC, DH_POLICY_QUEUE};
	static const enum dh_checksum cks[] = {DH_CHECKSUM_XXH3, DH_CHECKSUM_BLAKE2B, DH_CHECKSUM_NONE};

	plan(3 * 3 * 2 + 2 + 1);
	tap_watch(60, "test_checksum");
	for (int c = 0; c < 3; c++)
		for (int p = 0; p < 3; p++)
			test_ordered(pols[p], cks[c]);
	test_latest(DH_CHECKSUM_XXH3);
	test_latest(DH_CHECKSUM_BLAKE2B);
	test_queue_once();
	return done();
}
