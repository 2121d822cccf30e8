"""bench/python.py: the Python section of `make bench` (issue 15).

dh's Python package against pyzmq PUSH/PULL over ipc://, one writer process
-> one reader process, at 64 B and 64 KiB.  Each side uses its natural
fastest per-message API:

  dh    writer: Writer.write(bytes) (sync policy; slots 1024x64B, 16x64KiB)
        reader: `for m in reader`; 64 B: m.tobytes() (the payload as bytes);
                64 KiB: numpy.frombuffer(m, uint64), a zero-copy view of the
                slot, XOR-folded (every byte is read)
  zmq   writer: PUSH send(bytes) (both writers copy the payload once)
        reader: PULL; 64 B: recv() (bytes); 64 KiB: recv(copy=False),
                numpy.frombuffer(frame.buffer, uint64), the same fold

The reader times from the first message to the last one (so start-up is
not counted) and reports messages/s and GB/s.  Every case is the median of
REPS repetitions, run interleaved (dh, zmq, dh, zmq, ...).  Sides are
pinned to the first two usable CPUs like dh-bench's.  Run with the system
interpreter and PYTHONPATH=build/python:

    /usr/bin/python3 bench/python.py [--quick] [--no-pin] [--json FILE]
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

REPS = 5
SIZES = (64, 65536)


def pin(cpu):
    if cpu is not None:
        try:
            os.sched_setaffinity(0, {cpu})
        except OSError:
            pass


def touch_np(np, buf):
    """Consume every byte, like dh-bench's readers: XOR-fold a zero-copy view."""
    return int(np.bitwise_xor.reduce(np.frombuffer(buf, dtype=np.uint64)))


def role_dh_writer(a):
    import dh
    payload = bytes(range(256)) * (a.size // 256) if a.size >= 256 else b"x" * a.size
    with dh.Writer(a.channel, timeout=30) as w:
        w.wait_readers(1, timeout=30)
        write = w.write
        for _ in range(a.count):
            write(payload)


def role_dh_reader(a):
    import numpy as np
    import dh
    n, t0, s = 0, 0.0, 0
    with dh.Reader(a.channel, timeout=30) as r:
        print("ready", flush=True)
        for m in r:
            if n == 0:
                t0 = time.perf_counter()
            if a.size >= 4096:
                s += touch_np(np, m)
            else:
                s += len(m.tobytes())
            n += 1
    t1 = time.perf_counter()
    print(json.dumps({"msgs": n - 1, "secs": t1 - t0, "check": s}), flush=True)


BATCH_SCHEMA = "seq:u64; v:u8[56]"     # a 64-byte record
BATCH = 1024


def role_dhb_writer(a):
    import numpy as np
    import dh
    with dh.Writer(a.channel, timeout=30) as w:
        arr = np.zeros(BATCH, dtype=w.dtype)
        arr["seq"] = np.arange(BATCH)
        w.wait_readers(1, timeout=30)
        left = a.count
        while left > 0:
            k = min(left, BATCH)
            w.write_records(arr[:k])
            left -= k


def role_dhb_reader(a):
    import dh
    n, t0, s = 0, 0.0, 0
    with dh.Reader(a.channel, timeout=30) as r:
        print("ready", flush=True)
        first = r.read_records(1)        # the clock starts at the first record
        t0 = time.perf_counter()
        n = len(first)
        for batch in r.records(batch=BATCH):
            s += int(batch["seq"][-1])
            n += len(batch)
    t1 = time.perf_counter()
    print(json.dumps({"msgs": n - 1, "secs": t1 - t0, "check": s}), flush=True)


def role_zmq_writer(a):
    import zmq
    payload = bytes(range(256)) * (a.size // 256) if a.size >= 256 else b"x" * a.size
    ctx = zmq.Context()
    s = ctx.socket(zmq.PUSH)
    s.connect(a.channel)
    send = s.send
    for _ in range(a.count):
        send(payload)
    # libzmq drops what is still queued when the process ends (even with
    # linger -1 here): stay until the harness has the reader's result
    sys.stdin.read()
    s.close(linger=-1)
    ctx.term()


def role_zmq_reader(a):
    import numpy as np
    import zmq
    ctx = zmq.Context()
    s = ctx.socket(zmq.PULL)
    s.setsockopt(zmq.RCVTIMEO, 20000)     # a lost message shows as an error, not a hang
    s.bind(a.channel)
    print("ready", flush=True)
    n, t0, sm = 0, 0.0, 0
    recv = s.recv
    big = a.size >= 4096
    while n < a.count:
        try:
            f = recv(copy=not big)
        except zmq.Again:
            print(json.dumps({"msgs": n - 1, "secs": 1, "check": 0}), flush=True)
            raise SystemExit(f"zmq reader: {n} of {a.count} messages, then nothing for 20 s")
        if n == 0:
            t0 = time.perf_counter()
        if big:
            sm += touch_np(np, f.buffer)
        else:
            sm += len(f)
        n += 1
    t1 = time.perf_counter()
    s.close()
    ctx.term()
    print(json.dumps({"msgs": n - 1, "secs": t1 - t0, "check": sm}), flush=True)


ROLES = {"dh-writer": role_dh_writer, "dh-reader": role_dh_reader,
         "dhb-writer": role_dhb_writer, "dhb-reader": role_dhb_reader,
         "zmq-writer": role_zmq_writer, "zmq-reader": role_zmq_reader}


def cpus():
    try:
        c = sorted(os.sched_getaffinity(0))
    except OSError:
        return None, None
    return (c[0], c[1]) if len(c) >= 2 else (None, None)


def run_once(kind, size, count, tmp, pinned=True):
    import dh
    ca, cb = cpus() if pinned else (None, None)
    if kind in ("dh", "dhb"):
        chan = f"dhbench-py-{os.getpid()}-{size}"
        slots = 1024 if size <= 4096 else 16
        try:
            dh.remove(chan, force=True)
        except dh.ChannelNotFound:
            pass
        dh.create(chan, slots=slots, slot_size=size, policy="sync",
                  schema=BATCH_SCHEMA if kind == "dhb" else None)
    else:
        chan = f"ipc://{tmp}/bench-{size}.sock"
    me = [sys.executable, os.path.abspath(__file__), "--count", str(count), "--size", str(size),
          "--channel", chan]
    try:
        rd = subprocess.Popen(me + ["--role", f"{kind}-reader", "--cpu", str(cb)], stdout=subprocess.PIPE)
        if rd.stdout.readline() != b"ready\n":
            raise RuntimeError(f"{kind} reader did not start")
        wr = subprocess.Popen(me + ["--role", f"{kind}-writer", "--cpu", str(ca)], stdin=subprocess.PIPE)
        out = rd.stdout.readline()
        wr.stdin.close()
        if wr.wait(300) != 0 or rd.wait(60) != 0:
            raise RuntimeError(f"{kind} {size}: a side failed")
        rd.stdout.close()
        res = json.loads(out)
        if res["msgs"] != count - 1:
            raise RuntimeError(f"{kind} {size}: {res['msgs'] + 1} of {count} messages arrived")
        return res["msgs"] / res["secs"]
    finally:
        if kind in ("dh", "dhb"):
            try:
                dh.remove(chan, force=True)
            except dh.ChannelNotFound:
                pass


def si(v):
    for d, u in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if v >= d:
            return f"{v / d:.2f} {u}"
    return f"{v:.0f}  "


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--json")
    ap.add_argument("--no-pin", action="store_true",
                    help="let the scheduler place both sides (on a loaded machine, pinning a side "
                         "to a CPU another process keeps busy measures that process)")
    ap.add_argument("--role", choices=sorted(ROLES))
    ap.add_argument("--count", type=int)
    ap.add_argument("--size", type=int)
    ap.add_argument("--channel")
    ap.add_argument("--cpu")
    a = ap.parse_args()
    if a.role:
        pin(None if a.cpu in (None, "None") else int(a.cpu))
        ROLES[a.role](a)
        return 0
    # SIGTERM/SIGHUP unwind like Ctrl-C, so that channels are removed
    import signal
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, signal.default_int_handler)
    reps = 3 if a.quick else REPS
    counts = {64: 200_000 if a.quick else 1_000_000, 65536: 5_000 if a.quick else 40_000}
    import numpy
    import zmq
    import dh
    ca, cb = cpus() if not a.no_pin else (None, None)
    print(f"\n{'QUICK' if a.quick else 'full'} run of the Python section: {sys.executable} "
          f"{sys.version.split()[0]}, dh {dh.__version__}, pyzmq {zmq.__version__} "
          f"(libzmq {zmq.zmq_version()}), numpy {numpy.__version__}; median of {reps}, interleaved")
    print(f"pinning: writer on cpu{ca}, reader on cpu{cb}" if ca is not None else "pinning: none")
    print(f"load average at start: {' '.join('%.2f' % x for x in os.getloadavg())}")
    results = {}
    with tempfile.TemporaryDirectory(prefix="dhbench-py-") as tmp:
        for size in SIZES:
            kinds = ("dh", "dhb", "zmq") if size == 64 else ("dh", "zmq")
            runs = {k: [] for k in kinds}
            for _ in range(reps):
                for kind in kinds:
                    runs[kind].append(run_once(kind, size, counts[size], tmp, not a.no_pin))
            for kind in kinds:
                m = statistics.median(runs[kind])
                results[f"py.{size}.{kind}"] = {"size": size, "msgs_s": m, "bytes_s": m * size,
                                                "reps": runs[kind], "count": counts[size]}
    print("\n7. PYTHON: one writer process -> one reader process, per-message Python API calls")
    print("   dh: Writer.write / for m in Reader (sync policy); 64B: m.tobytes(), 64KiB: numpy.frombuffer(m)")
    print("   dh batched: 64-byte records, write_records / read_records of 1024 into numpy")
    print("   zmq: pyzmq PUSH/PULL over ipc://, send / recv (64KiB: copy=False, numpy.frombuffer)")
    print(f"  {'size':<7} {'transport':<30} {'msg/s':>10} {'GB/s':>8} {'vs zmq':>8}")
    for size in SIZES:
        z = results[f"py.{size}.zmq"]["msgs_s"]
        for kind in ("dh", "dhb", "zmq"):
            r = results.get(f"py.{size}.{kind}")
            if r is None:
                continue
            label = {"dh": "dh (Python, per message)", "dhb": "dh (Python, batched records)",
                     "zmq": "pyzmq PUSH/PULL ipc"}[kind]
            vs = f"{r['msgs_s'] / z:.2f}x" if kind != "zmq" else ""
            sz = "64KiB" if size == 65536 else f"{size}B"
            print(f"  {sz:<7} {label:<30} {si(r['msgs_s']):>10} {r['bytes_s'] / 1e9:8.3f} {vs:>8}")
    r64 = results["py.64.dh"]["msgs_s"] / results["py.64.zmq"]["msgs_s"]
    r64b = results["py.64.dhb"]["msgs_s"] / results["py.64.zmq"]["msgs_s"]
    r64k = results["py.65536.dh"]["bytes_s"] / results["py.65536.zmq"]["bytes_s"]
    print("\n  targets (issue 15):")
    print(f"    64 B msg/s, dh / pyzmq       >= 3x   {r64:.2f}x  {'met' if r64 >= 3 else 'MISSED'}"
          f" per message; {r64b:.2f}x  {'met' if r64b >= 3 else 'MISSED'} batched")
    print(f"    64 KiB GB/s, dh / pyzmq      >= 5x   {r64k:.2f}x  {'met' if r64k >= 5 else 'MISSED'}")
    print(f"  load average at end: {' '.join('%.2f' % x for x in os.getloadavg())}")
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"quick": a.quick, "reps": reps, "pinned": not a.no_pin, "results": results,
                       "targets": {"64B_msgs_ratio": r64, "64B_batched_msgs_ratio": r64b,
                                   "64KiB_bytes_ratio": r64k}}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
