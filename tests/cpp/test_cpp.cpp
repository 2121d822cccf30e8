/* test_cpp.cpp: the C++ layer lib/dh.hpp: every policy, the transaction
 * guard, moved-from handles, errors and timeouts, options, typed records
 * (against dh-read --csv) and interop with dh-write/dh-read, which are
 * taken from PATH (tests/run.sh puts build/bin first).  See LICENSE. */
#include "dh.hpp"

#include <algorithm>
#include <cstdio>
#include <stdexcept>
#include <string>
#include <vector>

#define TAP_CHAN_TAG "cpp"
#include "../unit/tap.h"

using namespace std::chrono_literals;
using std::string;

static string
chan()
{
	char b[DH_NAME_MAX + 1];
	return tap_chan(b);
}

static string
mkchan(dh::policy p, std::uint32_t slots, std::uint32_t slot_size = 64, const char *schema = nullptr)
{
	string n = chan();
	dh::config c;
	c.policy(p).slots(slots).slot_size(slot_size);
	if (schema)
		c.schema(schema);
	dh::create(n, c);
	return n;
}

/* Run f, which plans n tests; an exception escaping it fails the rest. */
static void
group(const char *name, int n, void (*f)())
{
	int before = tap_run;
	try {
		f();
	} catch (const std::exception &e) {
		diag("%s: unexpected exception: %s", name, e.what());
	}
	int ran = tap_run - before;
	if (ran < n)
		fail_rest(n - ran, name);
	else if (ran > n)
		diag("%s: ran %d tests, planned %d", name, ran, n);
}

/* The error code a callable throws as dh::error; {} if it does not throw. */
template <class F>
static std::error_code
thrown(F &&f, string *what = nullptr)
{
	try {
		f();
	} catch (const dh::error &e) {
		if (what)
			*what = e.what();
		return e.code();
	}
	return {};
}

/* A code's message for a test name; several may be used in one ok(). */
static const char *
cstr(const std::error_code &ec)
{
	static string s[4];
	static unsigned i;
	string &t = s[i++ % 4];
	t = ec ? ec.message() : "no error";
	return t.c_str();
}

/* Standard output of a shell command; *status its wait status. */
static string
sh(const string &cmd, int *status = nullptr)
{
	string out;
	char buf[4096];
	size_t n;
	FILE *f = popen(cmd.c_str(), "r");

	if (!f) {
		if (status)
			*status = -1;
		return out;
	}
	while ((n = fread(buf, 1, sizeof buf, f)) > 0)
		out.append(buf, n);
	int st = pclose(f);
	if (status)
		*status = st;
	return out;
}

static std::vector<string>
drain(dh::reader &r, dh::duration t = 1s)
{
	std::vector<string> v;
	for (auto &m : r.messages(t))
		v.emplace_back(m.str());
	return v;
}

/* ---- policies ----------------------------------------------------------- */

static void
test_sync()
{
	string n = mkchan(dh::policy::sync, 4);
	dh::reader r(n);
	dh::writer w(n);
	for (int i = 0; i < 4; i++)
		w.write(string("m") + std::to_string(i), dh::no_wait);
	auto ec = thrown([&] { w.write(string("m4"), dh::no_wait); });
	ok(dh::is_timeout(ec) && w.seq() == 4,
	   "sync: the writer waits for its reader: a fifth write into 4 slots times out (%s)", cstr(ec));
	w.eos();
	std::vector<string> got;
	std::vector<std::uint64_t> seqs, lost;
	for (auto &m : r.messages(1s)) {
		got.emplace_back(m.str());
		seqs.push_back(m.seq);
		lost.push_back(m.lost);
	}
	ok(got == std::vector<string>{"m0", "m1", "m2", "m3"} && seqs == std::vector<std::uint64_t>{0, 1, 2, 3} &&
	       lost == std::vector<std::uint64_t>(4, 0) && r.at_end(),
	   "sync: the range yields m0..m3 in order, nothing lost, and ends at end-of-stream");
}

static void
test_batch()
{
	string n = mkchan(dh::policy::sync, 16);
	dh::reader r(n);
	dh::writer w(n);
	unsigned cap = w.set_batch(100), four = w.set_batch(4);
	for (int i = 0; i < 3; i++)
		w.write(string("b") + std::to_string(i), dh::no_wait);
	std::error_code ec;
	auto none = r.next(dh::no_wait, ec);
	ok(cap == 8 && four == 4 && w.pending() == 3 && !none && dh::is_timeout(ec),
	   "batch: clamped to half the ring (%u), 3 commits pending, a reader sees none (%s)", cap, cstr(ec));
	w.flush();
	w.eos();
	ok(w.pending() == 0 && drain(r) == std::vector<string>{"b0", "b1", "b2"},
	   "batch: flush() publishes them; read in order");
}

static void
test_ring()
{
	string n = mkchan(dh::policy::ring, 4);
	dh::reader r(n, dh::reader_options().start(dh::start::oldest));
	dh::writer w(n);
	int written = 0;
	for (int i = 0; i < 10; i++, written++)
		w.write(string("r") + std::to_string(i), dh::no_wait);
	w.eos();
	std::uint64_t first = UINT64_MAX, first_lost = 0, last = 0;
	bool intact = true, ordered = true;
	for (auto &m : r.messages(1s)) {
		if (first == UINT64_MAX) {
			first = m.seq;
			first_lost = m.lost;
		} else if (m.seq != last + 1 || m.lost != 0)
			ordered = false;
		last = m.seq;
		intact = intact && m.str() == "r" + std::to_string(m.seq);
	}
	ok(written == 10 && first > 0 && first_lost == first && r.lost() == first && last == 9 && ordered &&
	       intact && r.at_end(),
	   "ring: 10 writes never block; the lapped reader is told it lost %llu, then gets the rest intact",
	   (unsigned long long)first);

	/* A ring message is a private copy: it must survive the writer lapping
	 * the ring while the loop body looks at it. */
	string n2 = mkchan(dh::policy::ring, 4);
	dh::reader r2(n2);
	dh::writer w2(n2);
	w2.write(string("keep-0"), dh::no_wait);
	bool held = false;
	int iterations = 0;
	for (auto &m : r2.messages(1s)) {
		if (iterations++ == 0) {
			for (int i = 1; i <= 9; i++)
				w2.write("keep-" + std::to_string(i), dh::no_wait);
			w2.eos();
			held = m.str() == "keep-0" && m.seq == 0;
		}
	}
	ok(held && iterations > 1, "ring: a message view stays intact while the writer laps the ring, until the next iteration");
}

static void
test_latest()
{
	string n = mkchan(dh::policy::latest, 4);
	dh::reader r(n);
	dh::writer w(n);
	for (int i = 0; i < 5; i++)
		w.write("l" + std::to_string(i), dh::no_wait);
	auto m = r.next(dh::no_wait);
	ok(m && m->seq == 4 && m->str() == "l4" && m->lost == 0, "latest: the reader gets only the newest (seq 4)");
	auto ec = thrown([&] { r.next(dh::no_wait); });
	ok(ec == std::errc::resource_unavailable_try_again && !r.at_end(),
	   "latest: nothing newer with no_wait is a timeout (EAGAIN), not end-of-stream (%s)", cstr(ec));
	w.eos();
	std::optional<dh::message> e;
	ec = thrown([&] { e = r.next(dh::no_wait); });
	ok(!ec && !e && r.at_end(), "latest: after eos(), next() returns no message and at_end() (%s)", cstr(ec));
}

static void
test_queue()
{
	string n = mkchan(dh::policy::queue, 8);
	dh::reader a(n), b(n);
	dh::writer w(n);
	for (int i = 0; i < 6; i++)
		w.write("q" + std::to_string(i), dh::no_wait);
	std::vector<std::uint64_t> sa, sb;
	bool intact = true;
	for (int i = 0; i < 3; i++) {
		auto ma = a.next(dh::no_wait);
		auto mb = b.next(dh::no_wait);
		if (!ma || !mb)
			break;
		sa.push_back(ma->seq);
		intact = intact && ma->str() == "q" + std::to_string(ma->seq);
		sb.push_back(mb->seq);
		intact = intact && mb->str() == "q" + std::to_string(mb->seq);
	}
	std::vector<std::uint64_t> all(sa);
	all.insert(all.end(), sb.begin(), sb.end());
	std::sort(all.begin(), all.end());
	ok(all == std::vector<std::uint64_t>{0, 1, 2, 3, 4, 5} && intact,
	   "queue: 6 messages, two readers taking turns: each message to exactly one of them");
	w.eos();
	ok(!a.next(100ms) && a.at_end() && !b.next(100ms) && b.at_end(),
	   "queue: once drained and marked, both readers reach end-of-stream");
}

/* ---- timeouts and end-of-stream ----------------------------------------- */

static void
test_timeout()
{
	string n = mkchan(dh::policy::sync, 4);
	dh::reader r(n);
	dh::writer w(n);
	double t0 = tap_now();
	string what;
	auto ec = thrown([&] { r.next(20ms); }, &what);
	double dt = tap_now() - t0;
	ok(ec == std::errc::timed_out && dh::is_timeout(ec) && dt >= 0.019 && !r.at_end() &&
	       what.find(n) != string::npos,
	   "next(20ms) on an empty channel throws dh::error timed_out after >= 20ms (%s, %.3fs)", cstr(ec), dt);
	ec = thrown([&] { r.next(dh::no_wait); });
	ok(ec == std::errc::resource_unavailable_try_again && dh::is_timeout(ec),
	   "next(no_wait) on an empty channel throws EAGAIN, also a timeout (%s)", cstr(ec));
	std::error_code ec2;
	auto m = r.next(20ms, ec2);
	ok(!m && ec2 == std::errc::timed_out && !r.at_end(),
	   "next(timeout, ec): no exception, ec says timed out (%s)", cstr(ec2));

	w.write(string("one"));
	int got = 0;
	bool timed_out = false;
	try {
		for (auto &msg : r.messages(20ms))
			got += msg.str() == "one";
	} catch (const dh::error &e) {
		timed_out = e.timed_out();
	}
	ok(got == 1 && timed_out, "a range with a timeout yields what there is, then throws timed_out (not end)");

	w.eos();
	std::optional<dh::message> e;
	ec = thrown([&] { e = r.next(20ms); });
	auto e2 = r.next(20ms, ec2);
	ok(!ec && !e && r.at_end() && !e2 && !ec2,
	   "after eos(): next returns std::nullopt without throwing, next(ec) leaves ec clear (%s)", cstr(ec));
}

/* ---- the write transaction guard ---------------------------------------- */

static void
test_tx()
{
	string n = mkchan(dh::policy::sync, 8, 16);
	dh::reader r(n);
	dh::writer w(n);
	std::error_code ec;

	{
		auto tx = w.reserve();
		std::memcpy(tx.data(), "hello", 5);
		tx.commit(5);
		ok(!tx && tx.capacity() == 0, "commit closes the transaction");
	}
	auto m = r.next(dh::no_wait);
	ok(m && m->str() == "hello" && m->seq == 0, "reserve, fill, commit(5): the reader gets it");

	bool caught = false;
	try {
		auto tx = w.reserve();
		std::memcpy(tx.data(), "secret", 6);
		throw std::runtime_error("boom");
	} catch (const std::runtime_error &) {
		caught = true;
	}
	ec = thrown([&] { r.next(dh::no_wait); });
	ok(caught && ec == std::errc::resource_unavailable_try_again && w.seq() == 1,
	   "an exception leaving the guard's scope aborts: no message visible, seq unchanged (%s)", cstr(ec));

	{
		auto tx = w.reserve();
		std::memcpy(tx.data(), "dropped", 7);
	}
	{
		auto tx = w.reserve();
		std::memcpy(tx.data(), "aborted", 7);
		tx.abort();
		tx.abort(); // twice is harmless
		ok(!tx, "abort() closes the transaction");
	}
	w.write(string("after"));
	m = r.next(dh::no_wait);
	ec = thrown([&] { r.next(dh::no_wait); });
	ok(m && m->str() == "after" && m->seq == 1 && ec == std::errc::resource_unavailable_try_again,
	   "a guard destroyed uncommitted and an explicit abort publish nothing; the next write is seq 1");

	{
		auto tx = w.reserve();
		auto e1 = thrown([&] { w.reserve(); });
		auto e2 = thrown([&] { w.write(string("x")); });
		std::memcpy(tx.data(), "tx", 2);
		tx.commit(2);
		auto e3 = thrown([&] { w.write(string("y")); });
		ok(e1 == std::errc::device_or_resource_busy && e2 == std::errc::device_or_resource_busy && !e3,
		   "reserve or write while a transaction is open throws EBUSY; after its commit write works");
	}
	m = r.next(dh::no_wait);
	auto m2 = r.next(dh::no_wait);
	bool both = m && m->str() == "tx" && m2 && m2->str() == "y";

	{
		auto tx = w.reserve();
		auto e1 = thrown([&] { tx.commit(tx.capacity() + 1); });
		bool still = static_cast<bool>(tx);
		std::memcpy(tx.data(), "fit", 3);
		tx.commit(3);
		ok(both && e1 == dh::errc::too_big && still, "commit(capacity + 1) throws errc::too_big and leaves the transaction open (%s)",
		   cstr(e1));
	}
	m = r.next(dh::no_wait);
	bool fit = m && m->str() == "fit";

	{
		auto tx = w.reserve();
		dh::transaction tx2 = std::move(tx);
		std::memcpy(tx2.data(), "moved", 5);
		bool states = !tx && tx2;
		{
			dh::transaction gone = std::move(tx); // moved-from: nothing to abort
		}
		tx2.commit(5);
		m = r.next(dh::no_wait);
		ok(fit && states && m && m->str() == "moved",
		   "a moved transaction commits; the moved-from one is empty and aborts nothing");
	}

	{
		auto tx = w.reserve();
		std::memcpy(tx.data(), "wmove", 5);
		dh::writer w3 = std::move(w);
		tx.commit(5);
		m = r.next(dh::no_wait);
		ok(m && m->str() == "wmove" && w3.seq() == 7 && !w,
		   "a transaction follows its writer when the writer is moved");
		w = std::move(w3);
	}

	{
		dh::transaction tx;
		w.close();
		{
			dh::writer w4(n);
			tx = w4.reserve();
			std::memcpy(tx.data(), "orphan", 6);
		}
		auto e1 = thrown([&] { tx.commit(6); });
		dh::writer w5(n);
		w5.eos();
		auto rest = drain(r);
		ok(!tx && e1 == std::errc::invalid_argument && rest.empty() && r.at_end(),
		   "closing the writer first empties its transaction: commit throws, nothing published (%s)", cstr(e1));
	}

	{
		/* The writer must forget the transaction it emptied: reopening
		 * it after that transaction is gone must not touch it (make
		 * asan sees the use after scope). */
		dh::writer wc(n);
		bool emptied;
		{
			auto tx = wc.reserve();
			wc.close();
			emptied = !tx;
		}
		wc = dh::writer(n); // the same object, open again
		auto tx2 = wc.reserve();
		std::memcpy(tx2.data(), "reopened", 8);
		tx2.commit(8);
		wc.eos();
		auto rest = drain(r);
		ok(emptied && rest == std::vector<string>{"reopened"},
		   "a writer closed with a transaction open, then reopened, reserves afresh");
	}
}

/* ---- moved-from handles ------------------------------------------------- */

static void
test_moved()
{
	string n = mkchan(dh::policy::sync, 8, 64);
	dh::config one;
	one.max_readers(1).slots(4);
	string n1 = chan();
	dh::create(n1, one);

	dh::reader r(n);
	{
		dh::writer w1(n);
		dh::writer w2 = std::move(w1);
		string what;
		auto ec = thrown([&] { w1.write(string("x")); }, &what);
		auto ec2 = thrown([&] { w1.seq(); });
		w2.write(string("via w2"));
		auto m = r.next(dh::no_wait);
		ok(!w1 && w2 && ec == std::errc::bad_file_descriptor && ec2 == std::errc::bad_file_descriptor &&
		       what.find("moved from") != string::npos && m && m->str() == "via w2",
		   "a moved-from writer is empty and throws EBADF; the moved-to one writes (%s)", what.c_str());
	}
	{
		dh::writer keep;
		{
			dh::writer w1(n);
			keep = std::move(w1);
		} // the moved-from w1 is destroyed here
		auto ec = thrown([&] { dh::writer other(n); });
		keep.write(string("still"));
		auto m = r.next(dh::no_wait);
		ok(ec == std::errc::device_or_resource_busy && m && m->str() == "still",
		   "destroying a moved-from writer does not release the channel (%s)", cstr(ec));
	}
	{
		string a = mkchan(dh::policy::sync, 4), b = mkchan(dh::policy::sync, 4);
		dh::writer wa(a), wb(b);
		wa = std::move(wb);
		auto ea = thrown([&] { dh::writer x(a); });
		auto eb = thrown([&] { dh::writer x(b); });
		ok(!ea && eb == std::errc::device_or_resource_busy && wa.name() == b,
		   "move-assigning over an open writer closes its old channel (%s / %s)", cstr(ea), cstr(eb));
	}
	{
		dh::writer w(n1);
		dh::reader keep;
		{
			dh::reader r1(n1);
			keep = std::move(r1);
			std::error_code ec;
			auto none = r1.next(dh::no_wait, ec);
			auto e1 = thrown([&] { r1.next(); });
			auto e2 = thrown([&] {
				for (auto &m : r1.messages())
					(void)m;
			});
			ok(!r1 && keep && !none && ec == std::errc::bad_file_descriptor &&
			       e1 == std::errc::bad_file_descriptor && e2 == std::errc::bad_file_descriptor,
			   "a moved-from reader is empty: next, next(ec) and its range all say EBADF");
		}
		auto e3 = thrown([&] { dh::reader x(n1); }); // one reader entry, still held
		w.write(string("to keep"));
		auto m = keep.next(dh::no_wait);
		bool got = m && m->str() == "to keep";
		keep.close();
		auto e4 = thrown([&] { dh::reader x(n1); });
		dh::reader empty;
		auto e5 = thrown([&] { empty.lost(); });
		ok(e3 == std::errc::no_space_on_device && got && !e4 && !keep && e5 == std::errc::bad_file_descriptor,
		   "destroying a moved-from reader keeps the entry; close() frees it (%s, %s)", cstr(e3), cstr(e4));
	}
}

/* ---- errors ------------------------------------------------------------- */

static void
test_errors()
{
	string missing = chan();
	string what;
	auto ec = thrown([&] { dh::writer w(missing); }, &what);
	ok(ec == std::errc::no_such_file_or_directory && what.find(missing) != string::npos,
	   "opening a missing channel throws ENOENT naming it (%s)", what.c_str());

	string n = mkchan(dh::policy::sync, 4);
	dh::writer w(n);
	ec = thrown([&] { dh::writer w2(n); }, &what);
	ok(ec == std::errc::device_or_resource_busy && what.find("pid " + std::to_string(getpid())) != string::npos,
	   "a second writer throws EBUSY with the holder's pid (%s)", what.c_str());

	const std::error_category &cat = dh::category();
	std::error_code schema(DH_ESCHEMA, cat), tmo(ETIMEDOUT, cat);
	dh::error neg(-ENOENT, "x");
	ok(string(cat.name()) == "dh" && cat.message(DH_ECHECKSUM) == dh_strerror(DH_ECHECKSUM) &&
	       schema == dh::errc::schema && schema != std::errc::invalid_argument && tmo == std::errc::timed_out &&
	       tmo != dh::errc::schema && make_error_code(dh::errc::checksum).message() == "checksum mismatch" &&
	       neg.code().value() == ENOENT && neg.code() == std::errc::no_such_file_or_directory &&
	       dh::error(ETIMEDOUT, "y").timed_out() && !dh::error(DH_EWRITERDEAD, "z").timed_out(),
	   "dh::category: DH_E* codes match dh::errc, errno codes match std::errc, messages of dh_strerror");

	string s = mkchan(dh::policy::sync, 4, 64, "a:u32;b:u32");
	auto e1 = thrown([&] { dh::writer x(s, dh::writer_options().schema("a:u32")); });
	auto e2 = thrown([&] { dh::reader x(s, dh::reader_options().schema("a:u32")); });
	auto e3 = thrown([&] { dh::reader x(s, dh::reader_options().schema("a:u32; b:u32")); });
	ok(e1 == dh::errc::schema && e2 == dh::errc::schema && !e3,
	   "the schema option refuses a channel of another schema, accepts an equal spec (%s)", cstr(e3));

	auto e4 = thrown([&] { dh::create(n); });
	bool removed_missing = dh::remove(missing);
	ok(e4 == std::errc::file_exists && !removed_missing, "create of an existing channel throws EEXIST; remove of none is false");
}

/* ---- options ------------------------------------------------------------ */

static string tmpdir;

static void
test_key()
{
	string kf = tmpdir + "/k1", kf2 = tmpdir + "/k2";
	dh::key::generate(kf);
	dh::key::generate(kf2);
	dh::key k = dh::key::load(kf), k2 = dh::key::load(kf2);
	string n = chan();
	dh::create(n, dh::config().slots(4).key(k));
	dh::writer w(n, dh::writer_options().key(k));
	w.write(string("sealed"));
	w.eos();
	auto e1 = thrown([&] { dh::reader x(n); });
	auto e2 = thrown([&] { dh::reader x(n, dh::reader_options().key(k2)); });
	auto e3 = thrown([&] { dh::writer x(n); });
	ok(e1 == dh::errc::key_needed && e2 == dh::errc::key && e3 == dh::errc::key_needed,
	   "a keyed channel: a reader without key -> key_needed, with another key -> key; a writer without key -> key_needed (%s, %s, %s)", cstr(e1),
	   cstr(e2), cstr(e3));
	dh::reader r(n, dh::reader_options().key(k).start(dh::start::oldest));
	auto v = drain(r);
	ok(v == std::vector<string>{"sealed"}, "with the key a reader gets the message");
}

static void
test_options()
{
	string n = mkchan(dh::policy::ring, 8);
	dh::writer w(n, dh::writer_options().label("cpp-writer"));
	dh::reader r0(n, dh::reader_options().label("cpp-reader"));
	{
		dh_block *b = nullptr;
		auto *s = new dh_snapshot;
		bool wl = false, rl = false;
		if (dh_block_open(n.c_str(), DH_OPEN_RDONLY, &b) == 0 && dh_block_snapshot(b, s) == 0)
			for (int i = 0; i < s->nparticipants; i++) {
				wl = wl || (i == 0 && string(s->part[i].name) == "cpp-writer");
				rl = rl || (i > 0 && string(s->part[i].name) == "cpp-reader");
			}
		dh_block_close(b);
		delete s;
		ok(wl && rl, "label: the writer's and the reader's labels are in the participant table");
	}
	for (int i = 0; i < 5; i++)
		w.write("s" + std::to_string(i));
	dh::reader ro(n, dh::reader_options().start(dh::start::oldest));
	dh::reader rl(n, dh::reader_options().start(dh::start::latest));
	dh::reader rn(n, dh::reader_options().start(dh::start::now));
	dh::reader rs(n, dh::reader_options().start_seq(2));
	auto mo = ro.next(dh::no_wait);
	auto ml = rl.next(dh::no_wait);
	auto en = thrown([&] { rn.next(dh::no_wait); });
	auto ms = rs.next(dh::no_wait);
	w.write(string("s5"));
	auto mn = rn.next(dh::no_wait);
	ok(mo && mo->seq == 0 && ml && ml->seq == 4 && dh::is_timeout(en) && mn && mn->seq == 5 && ms && ms->seq == 2,
	   "start: oldest -> 0, latest -> 4, now -> only seq 5, start_seq(2) -> 2");

	string f = mkchan(dh::policy::sync, 4);
	dh::reader follower(f, dh::reader_options().follow());
	dh::reader plain(f);
	{
		dh::writer w1(f);
		w1.write(string("first"));
		w1.eos();
	}
	auto a = follower.next(1s);
	auto ec = thrown([&] { follower.next(30ms); });
	auto pv = drain(plain);
	{
		dh::writer w2(f);
		w2.write(string("second"));
	}
	auto b = follower.next(1s);
	ok(a && a->str() == "first" && ec == std::errc::timed_out && !follower.at_end() && b && b->str() == "second" &&
	       pv == std::vector<string>{"first"} && plain.at_end(),
	   "follow: past end-of-stream the reader waits (times out) and gets the next writer's message");

	string g = mkchan(dh::policy::sync, 4);
	dh::reader rg(g);
	{
		dh::writer wg(g);
		wg.write(string("unfinished"));
	} // destroyed without eos()
	auto got = rg.next(dh::no_wait);
	std::error_code ec2;
	auto more = rg.next(30ms, ec2);
	ok(got && got->str() == "unfinished" && !more && ec2 && !rg.at_end(),
	   "the writer's destructor does not mark end-of-stream (%s)", cstr(ec2));
}

/* ---- typed records ------------------------------------------------------ */

#define SPEC "ts:u64;temp:f32;flags:u8;name:char[16];v:i16[3]"
struct rec {
	std::uint64_t ts;
	float temp;
	std::uint8_t flags;
	char name[16];
	std::int16_t v[3];
};
static_assert(sizeof(rec) == 40, "rec matches " SPEC);

static rec
mkrec(std::uint64_t ts, float temp, std::uint8_t flags, const char *name, std::int16_t a, std::int16_t b,
      std::int16_t c)
{
	rec x{};
	x.ts = ts;
	x.temp = temp;
	x.flags = flags;
	std::strncpy(x.name, name, sizeof x.name);
	x.v[0] = a;
	x.v[1] = b;
	x.v[2] = c;
	return x;
}

static bool
same(const rec &a, const rec &b)
{
	return a.ts == b.ts && a.temp == b.temp && a.flags == b.flags && std::memcmp(a.name, b.name, 16) == 0 &&
	       a.v[0] == b.v[0] && a.v[1] == b.v[1] && a.v[2] == b.v[2];
}

struct small {
	std::uint32_t x;
};

static void
test_typed()
{
	string n = mkchan(dh::policy::sync, 8, 64, SPEC);
	{
		dh::writer w(n);
		w.write_record(mkrec(1700000000, 21.5f, 3, "probe", 1, -2, 3));
		w.write_record(mkrec(1700000001, -0.25f, 255, "a,b", -32768, 0, 32767));
		auto tx = w.reserve_record<rec>();
		tx->ts = 1700000002;
		tx->temp = 1024.75f;
		(*tx).v[2] = 7;
		tx.commit();
		w.eos();
		ok(w.record_size() == 40 && !tx, "write_record and reserve_record on a schema channel of 40-byte records");
	}
	int st = -1;
	string csv = sh("dh-read --csv --no-wait " + n, &st);
	const string want = "ts,temp,flags,name,v[0],v[1],v[2]\n"
			    "1700000000,21.5,3,probe,1,-2,3\n"
			    "1700000001,-0.25,255,\"a,b\",-32768,0,32767\n"
			    "1700000002,1024.75,0,,0,0,7\n";
	ok(st == 0 && csv == want, "records written from C++ are what dh-read --csv prints");
	if (csv != want)
		diag("got:\n%s", csv.c_str());

	string n2 = mkchan(dh::policy::sync, 8, 64, SPEC);
	dh::reader r(n2);
	dh::writer w(n2);
	auto e1 = thrown([&] { w.write_record(small{1}); });
	std::uint64_t seq = w.seq();
	w.write_record(mkrec(5, 0.5f, 1, "x", 4, 5, 6));
	auto e2 = thrown([&] { r.next_record<small>(dh::no_wait); });
	std::uint64_t pos = r.position();
	auto got = r.next_record<rec>(dh::no_wait);
	ok(e1 == dh::errc::schema && seq == 0 && e2 == dh::errc::schema && pos == 0 && got &&
	       same(*got, mkrec(5, 0.5f, 1, "x", 4, 5, 6)),
	   "sizeof(T) other than the record size: write_record and next_record throw errc::schema before "
	   "touching the channel (%s / %s)",
	   cstr(e1), cstr(e2));

	w.eos();
	auto end = r.next_record<rec>(1s);
	string n3 = mkchan(dh::policy::sync, 8, 64, SPEC);
	dh::reader r3(n3);
	string cmd = "printf '%s\\n' 9,2.5,4,csv,7,8,9 '10,-1e+30,0,\"q\"\"uote\",0,0,-1' | dh-write --csv " + n3;
	int wst = sh(cmd + " 2>&1; echo rc=$?") == "rc=0\n" ? 0 : 1;
	auto a = r3.next_record<rec>(1s);
	auto b = r3.next_record<rec>(1s);
	auto c = r3.next_record<rec>(1s);
	ok(!end && wst == 0 && a && same(*a, mkrec(9, 2.5f, 4, "csv", 7, 8, 9)) && b &&
	       same(*b, mkrec(10, -1e30f, 0, "q\"uote", 0, 0, -1)) && !c && r3.at_end(),
	   "records written by dh-write --csv come out of next_record<T> field for field");

	string raw = mkchan(dh::policy::sync, 8, 16);
	dh::writer wr(raw);
	dh::reader rr(raw);
	auto e3 = thrown([&] { wr.write_record(rec{}); });
	wr.write_record(small{42});
	wr.write(string("abc"));
	auto s1 = rr.next_record<small>(dh::no_wait);
	auto m = rr.next(dh::no_wait);
	auto e4 = thrown([&] { m->as<small>(); });
	ok(e3 == dh::errc::too_big && s1 && s1->x == 42 && e4 == dh::errc::schema,
	   "no schema: a record larger than a slot is too_big, a message of another size will not convert (%s)",
	   cstr(e4));
}

/* ---- interop with the commands ----------------------------------------- */

static void
test_interop()
{
	string n = mkchan(dh::policy::sync, 8);
	dh::reader r(n);
	int st = -1;
	sh("printf 'alpha\\nbeta\\ngamma\\n' | dh-write --lines " + n, &st);
	auto v = drain(r);
	ok(st == 0 && v == std::vector<string>{"alpha", "beta", "gamma"} && r.at_end(),
	   "dh-write --lines -> dh::reader: three messages, then end-of-stream");

	string n2 = mkchan(dh::policy::sync, 8);
	{
		dh::writer w(n2);
		for (int i = 0; i < 5; i++)
			w.write("x" + std::to_string(i));
		w.eos();
	}
	string out = sh("dh-read --lines --no-wait " + n2, &st);
	ok(st == 0 && out == "x0\nx1\nx2\nx3\nx4\n", "dh::writer -> dh-read --lines: the five messages, then exit 0");
}

int
main()
{
	char tmpl[] = "/tmp/dhtest-cpp.XXXXXX";
	plan(50);
	tap_watch(120, "test_cpp");
	if (!mkdtemp(tmpl)) {
		fail_rest(50, "mkdtemp");
		return done();
	}
	tmpdir = tmpl;
	int st = -1;
	sh("dh-read --version >/dev/null 2>&1", &st);
	if (st != 0)
		diag("dh-read is not on PATH: the interop tests will fail");

	group("sync", 2, test_sync);
	group("batch", 2, test_batch);
	group("ring", 2, test_ring);
	group("latest", 3, test_latest);
	group("queue", 2, test_queue);
	group("timeout", 5, test_timeout);
	group("transaction", 11, test_tx);
	group("moved", 5, test_moved);
	group("errors", 5, test_errors);
	group("key", 2, test_key);
	group("options", 4, test_options);
	group("typed", 5, test_typed);
	group("interop", 2, test_interop);

	std::remove((tmpdir + "/k1").c_str());
	std::remove((tmpdir + "/k2").c_str());
	rmdir(tmpdir.c_str());
	return done();
}
