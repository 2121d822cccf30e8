"""The dh package in one process: policies, transactions, EOS, timeouts,
errors, message validity, records, metadata, stat and check."""
import errno
import os
import subprocess
import sys
import time

import pytest

import dh

from conftest import PYTHON

np = pytest.importorskip("numpy")

SCHEMA = "ts:u64; temp:f32; v:i16[3]; name:char[8]; x:f64"


def payloads(n, size=None):
    return [(b"m%05d-" % i) * (1 if size is None else max(1, size // 7)) for i in range(n)]


@pytest.mark.parametrize("policy", ["ring", "sync", "queue"])
def test_every_message_in_order(chan, policy):
    n = chan()
    dh.create(n, slots=16, slot_size=256, policy=policy)
    want = payloads(10)
    with dh.Reader(n, timeout=5) as r, dh.Writer(n) as w:
        for p in want:
            w.write(p)
        w.eos()
        got = [(m.seq, bytes(m.data)) for m in r]
    assert got == list(enumerate(want))


def test_a_batch_is_invisible_until_flushed_then_read_whole(chan):
    n = chan()
    dh.create(n, slots=16, slot_size=64, policy="sync")
    with dh.Reader(n, timeout=0) as r, dh.Writer(n) as w:
        assert w.set_batch(1000) == 8             # half the ring at most
        assert w.set_batch(4) == 4
        for p in payloads(3):
            w.write(p)
        assert w.pending == 3
        with pytest.raises(dh.Timeout):
            r.read()
        w.flush()
        assert w.pending == 0
        got = []
        for _ in range(3):
            m = r.read()
            got.append((m.seq, bytes(m.data)))
        assert got == list(enumerate(payloads(3)))
        w.write(b"last")                          # published by eos() on exit
    with dh.Reader(n, timeout=1, start="held") as r:
        assert [bytes(m.data) for m in r][-1] == b"last"


def test_write_many_is_visible_when_it_returns(chan):
    n = chan()
    dh.create(n, slots=64, slot_size=8, policy="sync")
    with dh.Reader(n, timeout=0) as r, dh.Writer(n, eos=False) as w:
        assert w.write_many(b"abcdefgh" * 20, 8) == 20
        assert w.pending == 0
        got = [r.read().seq for _ in range(20)]
    assert got == list(range(20))


def test_latest_policy_delivers_the_newest(chan):
    n = chan()
    dh.create(n, slots=4, slot_size=64, policy="latest")
    with dh.Writer(n) as w:
        for p in payloads(10):
            w.write(p)
    with dh.Reader(n, timeout=5, start="held") as r:
        got = [(m.seq, bytes(m.data)) for m in r]
    # latest: the newest message, then end-of-stream
    assert got == [(9, payloads(10)[9])]


def test_ring_reports_laps_as_lost(chan):
    n = chan()
    dh.create(n, slots=4, slot_size=64, policy="ring")
    with dh.Reader(n, timeout=5) as r:
        with dh.Writer(n) as w:
            for p in payloads(10):
                w.write(p)
        msgs = [(m.seq, m.lost) for m in r]
    assert msgs[0][1] > 0 and msgs[-1][0] == 9
    assert sum(lost for _, lost in msgs) + len(msgs) == 10


def test_queue_splits_messages_between_readers(chan):
    n = chan()
    dh.create(n, slots=16, slot_size=64, policy="queue")
    with dh.Reader(n, timeout=5) as a, dh.Reader(n, timeout=5) as b, dh.Writer(n) as w:
        for p in payloads(6):
            w.write(p)
        w.eos()
        ga = [a.read().seq for _ in range(3)]
        gb = [m.seq for m in b]
        assert a.read() is None
    assert sorted(ga + gb) == list(range(6))
    assert not set(ga) & set(gb)


def test_message_attributes_and_repr(chan):
    n = chan()
    dh.create(n, slots=4, slot_size=64)
    before = time.time_ns()
    with dh.Reader(n, timeout=5) as r, dh.Writer(n, label="py") as w:
        w.write(b"hello")
        m = r.read()
        assert (m.seq, m.lost, len(m), bytes(m.data), m.tobytes()) == (0, 0, 5, b"hello", b"hello")
        assert before <= m.time_ns <= time.time_ns()
        assert m.data.readonly
        assert "seq=0" in repr(m) and "len=5" in repr(m)
        assert repr(r).startswith(f"<dh.Reader {n} position=1")
        assert repr(w).startswith(f"<dh.Writer {n} seq=1")
    assert repr(r) == f"<dh.Reader {n} closed>"


def test_data_of_an_earlier_message_is_refused_after_the_next_read(chan):
    n = chan()
    dh.create(n, slots=4, slot_size=64, policy="sync")
    with dh.Reader(n, timeout=5) as r, dh.Writer(n) as w:
        w.write(b"one")
        w.write(b"two")
        m1 = r.read()
        assert m1.valid
        r.read()
        assert not m1.valid
        with pytest.raises(ValueError, match="no longer valid"):
            m1.data
        with pytest.raises(ValueError):
            bytes(m1)


def test_a_view_held_past_close_stays_readable_and_the_reader_detaches_when_it_goes(chan):
    n = chan()
    dh.create(n, slots=4, slot_size=64, policy="sync")
    w = dh.Writer(n)
    r = dh.Reader(n, timeout=5)
    w.write(b"kept")
    view = r.read().data
    r.close()
    assert bytes(view) == b"kept"         # no unmapping under the view
    assert dh.stat(n)["readers_alive"] == 1
    view.release()
    assert dh.stat(n)["readers_alive"] == 0
    w.close()


def test_reserve_commits_on_exit(chan):
    n = chan()
    dh.create(n, slots=4, slot_size=64)
    with dh.Reader(n, timeout=5) as r, dh.Writer(n) as w:
        with w.reserve(5) as slot:
            assert isinstance(slot, memoryview) and not slot.readonly and len(slot) == 5
            slot[:] = b"abcde"
        t = w.reserve()
        with t as slot:
            assert len(slot) == 64 == t.capacity   # default: the whole slot
            slot[:3] = b"xyz"
            t.commit(3)                           # shorter, explicitly
        got = [bytes(r.read().data), bytes(r.read().data)]
    assert got == [b"abcde", b"xyz"]


def test_an_exception_in_reserve_aborts_and_nothing_is_visible(chan):
    n = chan()
    dh.create(n, slots=4, slot_size=64)
    with dh.Reader(n, timeout=0) as r, dh.Writer(n) as w:
        with pytest.raises(RuntimeError, match="boom"):
            with w.reserve(4) as slot:
                slot[:] = b"torn"
                raise RuntimeError("boom")
        assert w.seq == 0
        with pytest.raises(dh.Timeout):
            r.read()
        w.write(b"next")                          # the slot is usable again
        m = r.read()
        assert (m.seq, bytes(m.data)) == (0, b"next")


def test_a_view_outliving_the_transaction_refuses_the_commit(chan):
    n = chan()
    dh.create(n, slots=4, slot_size=64)
    with dh.Reader(n, timeout=0) as r, dh.Writer(n) as w:
        with pytest.raises(BufferError, match="outlives"):
            with w.reserve(8) as slot:
                kept = np.frombuffer(slot, dtype=np.uint8)
                kept[:] = 7
        assert w.seq == 0
        with pytest.raises(dh.Timeout):
            r.read()
        del kept
        with w.reserve(8) as slot:               # and the writer goes on
            slot[:] = b"12345678"
        assert bytes(r.read().data) == b"12345678"


def test_reserve_refuses_a_second_open_transaction(chan):
    n = chan()
    dh.create(n, slots=4, slot_size=64)
    with dh.Writer(n) as w:
        with w.reserve(1) as slot:
            slot[0] = 1
            with pytest.raises(RuntimeError, match="reservation is open"):
                w.write(b"x")
            with pytest.raises(RuntimeError, match="reservation is open"):
                w.reserve()
        with pytest.raises(dh.MessageTooBig):
            with w.reserve(65):
                pass


def test_clean_exit_marks_eos_an_exception_does_not(chan):
    n = chan()
    dh.create(n, slots=8, slot_size=64)
    with dh.Reader(n, timeout=5) as r:
        with dh.Writer(n) as w:
            w.write(b"a")
        assert bytes(r.read().data) == b"a"
        assert r.read() is None                   # end-of-stream
    m = chan()
    dh.create(m, slots=8, slot_size=64)
    with dh.Reader(m, timeout=0.2) as r:
        with pytest.raises(ZeroDivisionError):
            with dh.Writer(m) as w:
                w.write(b"a")
                1 / 0
        assert bytes(r.read().data) == b"a"
        # no end-of-stream: the stream is paused until a next writer
        with pytest.raises(dh.Timeout):
            r.read()
        with dh.Writer(m) as w:
            w.write(b"b")
        assert [bytes(x.data) for x in r] == [b"b"]
    assert dh.stat(m)["end_of_stream"] is True      # the second writer marked it


def test_read_timeout_and_zero_timeout(chan):
    n = chan()
    dh.create(n, slots=4, slot_size=64)
    with dh.Writer(n), dh.Reader(n, timeout=0.2) as r:
        t = time.monotonic()
        with pytest.raises(dh.Timeout) as e:
            r.read()
        took = time.monotonic() - t
        assert 0.19 <= took < 3
        assert isinstance(e.value, TimeoutError) and e.value.errno == errno.ETIMEDOUT
        with pytest.raises(dh.Timeout):
            next(iter(r))
        with pytest.raises(dh.Timeout):
            r.read(timeout=0)
        r.timeout = None
        assert r.timeout is None


def test_write_timeout_when_the_queue_is_full(chan):
    n = chan()
    dh.create(n, slots=2, slot_size=64, policy="queue")
    with dh.Reader(n), dh.Writer(n, timeout=0.2) as w:
        w.write(b"1")
        w.write(b"2")
        t = time.monotonic()
        with pytest.raises(dh.Timeout):
            w.write(b"3")
        assert time.monotonic() - t >= 0.19
        with pytest.raises(dh.Timeout):
            with w.reserve(timeout=0):
                pass
        assert w.seq == 2


def test_errors_map_to_typed_exceptions(chan):
    n = chan()
    with pytest.raises(dh.ChannelNotFound) as e:
        dh.Reader(n)
    assert isinstance(e.value, FileNotFoundError) and e.value.channel == n and e.value.code == errno.ENOENT
    dh.create(n, slots=4, slot_size=64)
    with pytest.raises(dh.ChannelExists):
        dh.create(n, slots=4, slot_size=64)
    dh.create(n, slots=4, slot_size=64, exist_ok=True)
    with dh.Writer(n):
        with pytest.raises(dh.ChannelBusy) as e:
            dh.Writer(n)
        assert e.value.holder == os.getpid()
        with pytest.raises(dh.ChannelBusy):
            dh.remove(n)
    with pytest.raises(ValueError, match="invalid channel name"):
        dh.Reader("../etc")
    with pytest.raises(ValueError, match="policy"):
        dh.create(chan(), policy="fifo")
    with pytest.raises(ValueError, match="syntax error at byte"):
        dh.create(chan(), schema="x:u9")
    assert issubclass(dh.ChecksumError, dh.Error) and issubclass(dh.Error, OSError)
    assert dh.strerror(dh._dh.DH_ECHECKSUM) == "checksum mismatch"


def test_too_big_and_schema_mismatch(chan):
    n = chan()
    dh.create(n, slots=4, slot_size=16)
    with dh.Writer(n) as w:
        with pytest.raises(dh.MessageTooBig):
            w.write(b"x" * 17)
    s = chan()
    dh.create(s, slots=4, slot_size=64, schema="a:u32")
    with pytest.raises(dh.SchemaMismatch):
        dh.Reader(s, schema="a:u64")
    with dh.Writer(s, schema="a:u32") as w:
        with pytest.raises(dh.SchemaMismatch):
            w.write(b"12345")                     # not one record
        w.write(b"1234")


def test_closed_handles_refuse_use(chan):
    n = chan()
    dh.create(n, slots=4, slot_size=64)
    w = dh.Writer(n)
    r = dh.Reader(n)
    w.close()
    w.close()
    r.close()
    r.close()
    assert w.closed and r.closed
    with pytest.raises(ValueError, match="closed Writer"):
        w.write(b"x")
    with pytest.raises(ValueError, match="closed Reader"):
        r.read()


def test_garbage_collected_writer_releases_the_channel(chan):
    n = chan()
    dh.create(n, slots=4, slot_size=64)
    w = dh.Writer(n)
    t = w.reserve(4)
    slot = t.__enter__()
    slot[:] = b"half"
    del slot, t, w                                # never committed, never closed
    with dh.Writer(n) as w2:                      # the writer entry is free again
        assert w2.seq == 0
    with dh.Reader(n, start="oldest", timeout=5) as r:
        assert [bytes(m.data) for m in r] == []


def test_keyed_channel(chan, tmp_path):
    n = chan()
    key = tmp_path / "k"
    dh.keygen(str(key))
    assert os.stat(key).st_mode & 0o777 == 0o600
    dh.create(n, slots=4, slot_size=64, key=key)
    with pytest.raises(dh.KeyNeeded):
        dh.Writer(n)
    with pytest.raises(dh.WrongKey):
        dh.Writer(n, key=b"\0" * 32)
    with pytest.raises(ValueError, match="32 bytes"):
        dh.Writer(n, key=b"short")
    with dh.Writer(n, key=str(key)) as w:
        w.write(b"secret")
    with dh.Reader(n, key=key.read_bytes(), timeout=5, start="held") as r:
        assert [bytes(m.data) for m in r] == [b"secret"]
    assert dh.stat(n)["keyed"] is True


def test_schema_records_numpy(chan):
    n = chan()
    dh.create(n, slots=64, schema=SCHEMA)
    with dh.Writer(n) as w:
        a = np.zeros(5, dtype=w.dtype)
        a["ts"] = np.arange(5) + 1_700_000_000
        a["temp"] = np.linspace(-1.5, 2.5, 5)
        a["v"] = np.arange(15).reshape(5, 3) - 7
        a["name"] = [b"p%d" % i for i in range(5)]
        a["x"] = np.pi * np.arange(5)
        assert w.write_records(a) == 5
    with dh.Reader(n, timeout=5, start="held") as r:
        assert r.dtype.itemsize == r.record_size == dh.schema_info(SCHEMA)["size"]
        got = r.read_records(3)
        rest = r.read_records(100)                # what is there, not waiting for 100
        assert len(r.read_records(10)) == 0       # end-of-stream
    assert got.dtype == a.dtype and len(got) == 3 and len(rest) == 2
    assert np.array_equal(np.concatenate([got, rest]), a)


def test_one_record_zero_copy_with_frombuffer(chan):
    n = chan()
    dh.create(n, slots=4, schema="ts:u64; temp:f32", policy="sync")
    with dh.Reader(n, timeout=5) as r, dh.Writer(n) as w:
        with w.reserve() as slot:                 # the record size by default
            rec = np.frombuffer(slot, dtype=w.dtype)
            rec["ts"], rec["temp"] = 42, 1.25
            del rec
        m = r.read()
        arr = np.frombuffer(m, dtype=r.dtype)
        assert (int(arr["ts"][0]), float(arr["temp"][0])) == (42, 1.25)
        # zero-copy: the array's memory is the message's, not a copy
        assert np.shares_memory(arr, np.frombuffer(m.data, dtype=np.uint8))
        del arr


def test_records_without_numpy_are_tuples(chan):
    n = chan()
    dh.create(n, slots=8, schema="ts:u64; temp:f32; v:i16[2]; name:char[4]")
    with dh.Writer(n) as w:
        a = np.zeros(2, dtype=w.dtype)
        a[0] = (1, 0.5, (1, -2), b"ab")
        a[1] = (2, 1.5, (3, -4), b"cdef")
        w.write_records(a)
    code = (
        "import sys; sys.modules['numpy'] = None\n"
        "import dh\n"
        "with dh.Reader(sys.argv[1], timeout=5, start='held') as r:\n"
        "    print(r.read_records(10))\n"
    )
    out = subprocess.run([PYTHON, "-c", code, n], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[(1, 0.5, (1, -2), b'ab\\x00\\x00'), (2, 1.5, (3, -4), b'cdef')]"


def test_metadata_zone(chan):
    n = chan()
    dh.create(n, slots=4, slot_size=64, meta_size="1K")
    with dh.Writer(n) as w, dh.Reader(n) as r:
        w.set_meta(b'{"unit":"C"}')
        assert r.meta == w.meta == b'{"unit":"C"}'


def test_stat_and_check(chan):
    n = chan()
    dh.create(n, slots=8, slot_size="1K", policy="ring", checksum="blake2b")
    with dh.Writer(n) as w:
        for p in payloads(3):
            w.write(p)
    st = dh.stat(n)
    assert (st["name"], st["policy"], st["checksum"], st["slots"], st["slot_size"]) == \
        (n, "ring", "blake2b", 8, 1024)
    assert st["committed"] == 3 and st["end_of_stream"] is True
    assert any(c["name"] == n for c in dh.stat()["channels"])
    rep = dh.check(n)
    assert (rep["channel"], rep["status"], rep["checked"], rep["problems"]) == (n, "valid", 3, 0)
    with pytest.raises(dh.ChannelNotFound):
        dh.stat(n + "-missing")


def test_help_is_useful():
    out = subprocess.run([PYTHON, "-c", "import dh; help(dh)"], capture_output=True, text=True,
                         env={**os.environ, "PAGER": "cat", "TERM": "dumb"}, timeout=30)
    assert out.returncode == 0
    for word in ("Reader(name", "Writer(name", "reserve(", "read_records", "ChecksumError", "Broker"):
        assert word in out.stdout, word
    for name in dh.__all__:
        assert getattr(dh, name).__doc__, f"dh.{name} has no docstring"
