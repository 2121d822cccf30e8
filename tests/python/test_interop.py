"""The Python package against the dh commands, in other processes: both
directions, records as CSV, keyed channels, signals, a writer killed
mid-reserve, and threads each owning a handle."""
import csv
import io
import os
import signal
import subprocess
import sys
import threading
import time

import pytest

import dh

from conftest import PYTHON, await_, cmd

np = pytest.importorskip("numpy")

SCHEMA = "ts:u64; temp:f32; v:i16[3]; name:char[8]; x:f64; n:i8"


@pytest.mark.parametrize("policy", ["ring", "sync", "queue"])
def test_dh_write_to_python_reader(chan, policy):
    n = chan()
    lines = [b"line %d" % i for i in range(50)]
    cmd("dh-write", "--create", "--slots", "64", "--slot-size", "128", "--policy", policy, "--lines", n,
        input=b"\n".join(lines) + b"\n")
    with dh.Reader(n, start="oldest", timeout=5) as r:
        got = [bytes(m.data) for m in r]                   # ends at dh-write's end-of-stream
    assert got == lines


def test_live_dh_write_to_python_reader(chan, spawn):
    n = chan()
    dh.create(n, slots=4, slot_size=64, policy="sync")
    with dh.Reader(n, timeout=10) as r:
        p = spawn(["dh-write", "--lines", n], stdin=subprocess.PIPE)
        p.stdin.write(b"".join(b"%d\n" % i for i in range(100)))   # more than the ring holds
        p.stdin.close()
        got = [int(bytes(m.data)) for m in r]
        assert p.wait(10) == 0
    assert got == list(range(100))


def test_python_writer_to_dh_read(chan, spawn):
    n = chan()
    dh.create(n, slots=4, slot_size=64, policy="sync")
    p = spawn(["dh-read", "--lines", n])
    with dh.Writer(n, timeout=10) as w:
        w.wait_readers(1, timeout=10)                       # dh-read is attached
        for i in range(100):
            w.write(b"msg %d" % i)
    out, err = p.communicate(timeout=10)
    assert p.returncode == 0, err
    assert out.decode().splitlines() == ["msg %d" % i for i in range(100)]


def test_python_reserve_to_dh_read_json(chan):
    n = chan()
    dh.create(n, slots=8, slot_size=64)
    with dh.Writer(n) as w:
        for i in range(3):
            with w.reserve(3) as slot:
                slot[:] = b"r%02d" % i
    out = cmd("dh-read", "--from", "oldest", "--json", n).stdout.decode().splitlines()
    import json
    docs = [json.loads(line) for line in out]
    assert [(d["seq"], d["text"]) for d in docs] == [(0, "r00"), (1, "r01"), (2, "r02")]


def _records(dtype, count):
    rng = np.random.default_rng(15)
    a = np.zeros(count, dtype=dtype)
    a["ts"] = rng.integers(0, 2**63, count, dtype=np.uint64)
    a["temp"] = rng.standard_normal(count).astype(np.float32) * 100
    a["v"] = rng.integers(-32768, 32767, (count, 3), dtype=np.int16)
    a["name"] = [b"probe%d" % (i % 1000) for i in range(count)]
    a["x"] = rng.standard_normal(count) * 1e300
    a["n"] = rng.integers(-128, 127, count, dtype=np.int8)
    return a


def _csv_rows(arr):
    """The rows dh-read --csv prints, from numpy (f32 %.9g, f64 %.17g)."""
    rows = []
    for r in arr:
        rows.append(",".join(
            [str(int(r["ts"])), "%.9g" % float(r["temp"])] + [str(int(v)) for v in r["v"]]
            + [r["name"].decode(), "%.17g" % float(r["x"]), str(int(r["n"]))]))
    return rows


def test_schema_records_numpy_equal_dh_read_csv(chan):
    n = chan()
    dh.create(n, slots=256, schema=SCHEMA)
    with dh.Writer(n) as w:
        a = _records(w.dtype, 200)
        w.write_records(a)
    with dh.Reader(n, start="oldest", timeout=5) as r:
        got = r.read_records(1000)
    assert np.array_equal(got, a)
    out = cmd("dh-read", "--from", "oldest", "--csv", n).stdout.decode().splitlines()
    assert out[0] == "ts,temp,v[0],v[1],v[2],name,x,n"
    assert out[1:] == _csv_rows(got)


def test_dh_write_csv_to_numpy(chan):
    n = chan()
    dh.create(n, slots=64, schema=SCHEMA)
    with dh.Writer(n, eos=False) as w:
        dtype = w.dtype
    a = _records(dtype, 30)
    text = "\n".join(_csv_rows(a)) + "\n"
    cmd("dh-write", "--csv", n, input=text.encode())
    with dh.Reader(n, start="oldest", timeout=5) as r:
        got = np.concatenate(list(r.records(batch=7)))
    assert np.array_equal(got, a)


def test_keyed_channel_both_ways(chan, tmp_path):
    n = chan()
    key = tmp_path / "key"
    dh.keygen(key)
    cmd("dh-create", "--key", str(key), "--slots", "8", "--slot-size", "64", n)
    with dh.Writer(n, key=key) as w:
        w.write(b"from python")
    assert cmd("dh-read", "--from", "oldest", "--key", str(key), "--lines", n).stdout == b"from python\n"
    r = cmd("dh-read", "--from", "oldest", "--lines", n, check=False)
    assert r.returncode == 1                            # no key: refused
    cmd("dh-write", "--key", str(key), "--lines", n, input=b"from dh-write\n")
    with dh.Reader(n, key=str(key), start="oldest", timeout=5) as rd:
        assert [bytes(m.data) for m in rd] == [b"from python", b"from dh-write"]


def test_busy_writer_reports_the_holder(chan, spawn):
    n = chan()
    dh.create(n, slots=4, slot_size=64)
    p = spawn(["dh-write", "--lines", n], stdin=subprocess.PIPE)
    await_(lambda: dh.stat(n)["writer"] is not None and dh.stat(n)["writer"]["state"] == "alive",
           what="dh-write attached")
    with pytest.raises(dh.ChannelBusy) as e:
        dh.Writer(n)
    assert e.value.holder == p.pid
    p.stdin.close()
    assert p.wait(10) == 0


READ_LOOP = """
import sys, dh
n = sys.argv[1]
r = dh.Reader(n, timeout=None)
print("attached", flush=True)
try:
    for m in r:
        print("got", bytes(m.data).decode(), flush=True)
except KeyboardInterrupt:
    print("interrupted", flush=True)
    r.close()
    sys.exit(42)
"""


def _waiting_readers(n):
    return dh._dh._waiters(n)[0]


def test_sigint_in_a_read_loop_raises_keyboardinterrupt_promptly(chan, spawn):
    n = chan()
    dh.create(n, slots=4, slot_size=64, policy="sync")
    p = spawn([PYTHON, "-c", READ_LOOP, n], stdin=subprocess.DEVNULL)
    assert p.stdout.readline() == b"attached\n"
    with dh.Writer(n) as w:
        w.write(b"one")
        assert p.stdout.readline() == b"got one\n"
        # provably waiting: asleep in the channel's data futex
        await_(lambda: _waiting_readers(n) > 0, what="the reader asleep in its wait")
        t = time.monotonic()
        p.send_signal(signal.SIGINT)
        assert p.wait(5) == 42
        took = time.monotonic() - t
        assert p.stdout.read() == b"interrupted\n"
        assert took < 1.0, f"KeyboardInterrupt took {took:.3f}s"
        # the channel is clean: the reader detached, nothing to repair
        st = dh.stat(n)
        assert st["readers_alive"] == 0 and st["readers_total"] == 0
        assert dh.check(n)["problems"] == 0


THREAD_READ = """
import sys, threading, dh
n = sys.argv[1]
def run():
    with dh.Reader(n, timeout=None) as r:
        for m in r:
            pass
t = threading.Thread(target=run, daemon=True)
t.start()
try:
    # inside the try: a signal may land the moment the line is out
    print("started", flush=True)
    t.join()
except KeyboardInterrupt:
    print("interrupted", flush=True)
    sys.exit(42)
"""


def test_sigint_while_another_thread_waits(chan, spawn):
    # the main thread gets the signal; the reading thread keeps its GIL-free
    # wait, which must not stop the main thread from handling it
    n = chan()
    dh.create(n, slots=4, slot_size=64)
    p = spawn([PYTHON, "-c", THREAD_READ, n], stdin=subprocess.DEVNULL)
    assert p.stdout.readline() == b"started\n"
    await_(lambda: _waiting_readers(n) > 0, what="the thread asleep in its wait")
    t = time.monotonic()
    p.send_signal(signal.SIGINT)
    assert p.wait(5) == 42
    assert time.monotonic() - t < 1.0


KILLED_MID_RESERVE = """
import sys, dh
n = sys.argv[1]
w = dh.Writer(n)
for i in range(3):
    w.write(b"whole %d" % i)
t = w.reserve(16)
slot = t.__enter__()
slot[:8] = b"TORNTORN"
print("reserved", flush=True)
sys.stdin.read()          # until killed
"""


@pytest.mark.parametrize("policy", ["ring", "sync", "queue"])
def test_writer_sigkilled_mid_reserve_leaves_no_torn_message(chan, spawn, policy):
    n = chan()
    dh.create(n, slots=8, slot_size=64, policy=policy)
    with dh.Reader(n, start="oldest", timeout=5) as r:
        p = spawn([PYTHON, "-c", KILLED_MID_RESERVE, n], stdin=subprocess.PIPE)
        assert p.stdout.readline() == b"reserved\n"
        p.kill()
        p.wait(10)
        got = []
        with pytest.raises(dh.WriterDead):
            for m in r:
                got.append(bytes(m.data))
        assert got == [b"whole 0", b"whole 1", b"whole 2"]
    rep = dh.check(n)
    assert any(f["kind"] == "writer_dead" for f in rep["findings"])
    assert not any(f["kind"] == "checksum" for f in rep["findings"])
    # the next writer takes over; the half-written slot never shows
    with dh.Writer(n) as w:
        w.write(b"after")
    out = cmd("dh-read", "--lines", "--from", "oldest", n).stdout.splitlines()
    assert b"TORNTORN" not in b"".join(out)
    assert out[-1] == b"after"


def test_threads_each_owning_a_handle(chan):
    n = chan()
    dh.create(n, slots=8, slot_size=64, policy="sync")
    count, nreaders = 2000, 3
    results = [None] * nreaders
    ready = threading.Barrier(nreaders + 1)

    def reader(i):
        with dh.Reader(n, timeout=10) as r:
            ready.wait(10)
            results[i] = [int(bytes(m.data)) for m in r]

    threads = [threading.Thread(target=reader, args=(i,)) for i in range(nreaders)]
    for t in threads:
        t.start()

    def writer():
        with dh.Writer(n, timeout=10) as w:
            ready.wait(10)
            for i in range(count):
                w.write(b"%d" % i)

    wt = threading.Thread(target=writer)
    wt.start()
    wt.join(60)
    for t in threads:
        t.join(60)
    assert not wt.is_alive() and not any(t.is_alive() for t in threads)
    # sync: every reader gets every message, in order, through a ring of 8
    assert results == [list(range(count))] * nreaders


def test_a_handle_used_from_a_second_thread_while_waiting_is_refused(chan):
    n = chan()
    dh.create(n, slots=4, slot_size=64)
    with dh.Writer(n) as w, dh.Reader(n, timeout=10) as r:
        got = []
        t = threading.Thread(target=lambda: got.append(bytes(r.read().data)))
        t.start()
        await_(lambda: _waiting_readers(n) > 0, what="the thread asleep in read()")
        with pytest.raises(RuntimeError, match="another thread"):
            r.read(timeout=0)
        w.write(b"x")
        t.join(10)
        assert got == [b"x"]


def test_a_forked_child_does_not_close_its_parents_reader(chan):
    n = chan()
    dh.create(n, slots=4, slot_size=64)
    with dh.Reader(n, timeout=5) as r, dh.Writer(n) as w:
        pid = os.fork()
        if pid == 0:
            try:
                r.close()
            finally:
                os._exit(0)
        os.waitpid(pid, 0)
        assert dh.stat(n)["readers_alive"] == 1
        w.write(b"still here")
        assert bytes(r.read().data) == b"still here"


TRUNCATOR = """
import dh, os, sys, time
n = sys.argv[1]
end = time.monotonic() + float(sys.argv[2])
while time.monotonic() < end:
    try:
        dh.remove(n, force=True)
    except dh.ChannelNotFound:
        pass
    dh.create(n, slots=64, slot_size="64K")
    time.sleep(0.0005)
    os.truncate("/dev/shm/dh." + n, 4096)
"""


def test_stat_survives_segments_truncated_underneath(chan, spawn):
    # dh.stat() maps strangers' channels too; one truncated while mapped must
    # not kill the interpreter with SIGBUS (without the guard this dies in
    # about a second here, though a race can never prove it hits)
    n = chan()
    p = spawn([PYTHON, "-c", TRUNCATOR, n, "4"])
    passes = 0
    while p.poll() is None:
        code = "import dh, sys\nfor _ in range(2000):\n    try: dh.stat(sys.argv[1])\n    except dh.ChannelNotFound: pass\n"
        r = subprocess.run([PYTHON, "-c", code, n], capture_output=True, timeout=60)
        assert r.returncode == 0, f"dh.stat died: {r.returncode} {r.stderr.decode(errors='replace')[-300:]}"
        passes += 2000
    assert p.wait(10) == 0 and passes > 0
