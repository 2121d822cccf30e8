#!/usr/bin/python3
# client.py: a second, independent dh-broker client written from
# docs/PROTOCOL.md with Debian's python3-zmq, plus the test scenarios that
# tests/bats/broker.bats runs against a live dh-broker. See LICENSE.
#
# usage: client.py [--endpoint EP] [--events EP] [--server-key FILE --client-key FILE]
#                  [--timeout SEC] COMMAND [ARG...]
#
# Commands print what they received (replies, events) as JSON lines on
# stdout and exit 0 on success, 1 when a check fails (reason on stderr),
# 3 when the broker does not answer in time.
import argparse
import json
import os
import sys
import threading
import time

import zmq

EXIT_FAIL, EXIT_TIMEOUT = 1, 3


class Timeout(Exception):
    pass


class Fail(Exception):
    pass


def check(cond, what):
    if not cond:
        raise Fail(what)


def load_key(path):
    """A Z85 key file: 40 characters, then optional whitespace."""
    with open(path, "rb") as f:
        key = f.read().strip()
    check(len(key) == 40, "%s: not a Z85 key" % path)
    return key


def curve(sock, args):
    if args.server_key:
        secret = load_key(args.client_key)
        sock.curve_serverkey = load_key(args.server_key)
        sock.curve_secretkey = secret
        sock.curve_publickey = zmq.curve_public(secret)


class Broker:
    """Requests over a DEALER: one frame of JSON out, one frame back, matched by id."""

    def __init__(self, ctx, args):
        self.sock = ctx.socket(zmq.DEALER)
        self.sock.linger = 0
        self.sock.setsockopt(zmq.IMMEDIATE, 1)
        curve(self.sock, args)
        self.sock.connect(args.endpoint)
        self.timeout = args.timeout
        self.n = 0

    def call(self, type_, **fields):
        self.n += 1
        rid = "py-%d" % self.n
        msg = dict(fields, id=rid, type=type_)
        deadline = time.monotonic() + self.timeout
        if not self.sock.poll(self.timeout * 1000, zmq.POLLOUT):
            raise Timeout(type_)
        self.sock.send(json.dumps(msg).encode())
        while True:
            left = deadline - time.monotonic()
            if left <= 0 or not self.sock.poll(left * 1000, zmq.POLLIN):
                raise Timeout(type_)
            rep = json.loads(self.sock.recv())
            if rep.get("id") == rid:
                return rep

    def ok(self, type_, **fields):
        rep = self.call(type_, **fields)
        check(rep["status"] == "ok", "%s: %s" % (type_, rep))
        return rep

    def close(self):
        self.sock.close()


class Events:
    """A SUB socket on the events endpoint; the welcome proves the subscription."""

    def __init__(self, ctx, args):
        self.sock = ctx.socket(zmq.SUB)
        self.sock.linger = 0
        curve(self.sock, args)
        self.sock.setsockopt(zmq.SUBSCRIBE, b"")
        self.sock.connect(args.events)
        self.seen = []
        self.next(lambda e: e["event"] == "welcome", 3 * args.timeout)

    def next(self, match, timeout=10.0):
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0 or not self.sock.poll(left * 1000):
                raise Timeout("no matching event")
            raw = self.sock.recv()
            ev = json.loads(raw)
            print(raw.decode(), flush=True)
            self.seen.append(ev)
            if match(ev):
                return ev

    def close(self):
        self.sock.close()


def writer_fields(channel, pid, host="pyhost", **extra):
    f = dict(channel=channel, host=host, pid=pid, label="py", policy="ring", slots=16,
             slot_size=256, max_readers=4, checksum="xxh3")
    f.update(extra)
    return f


def is_ev(name, channel=None, **kv):
    def m(e):
        if e["event"] != name or (channel and e.get("channel") != channel):
            return False
        return all(e.get(k) == v for k, v in kv.items())
    return m


# ---- scenarios ----

def cmd_ping(ctx, args, rest):
    b = Broker(ctx, args)
    rep = b.ok("ping")
    check(rep["protocol"] == 3, "protocol 3")
    print(json.dumps(rep))


def cmd_request(ctx, args, rest):
    b = Broker(ctx, args)
    msg = json.loads(rest[0])
    t = msg.pop("type", "")
    msg.pop("id", None)
    print(json.dumps(b.call(t, **msg)))


def cmd_demo(ctx, args, rest):
    """Register, heartbeat, discover, list, receive events, deregister."""
    ch = rest[0]
    ev = Events(ctx, args)
    b = Broker(ctx, args)
    pong = b.ok("ping")
    w = b.ok("register", **writer_fields(ch, 4001))
    check(len(w["token"]) == 32 and w["heartbeat_ms"] > 0, "register reply")
    e = ev.next(is_ev("registered", ch))
    check(e["pid"] == 4001 and e["policy"] == "ring" and e["slots"] == 16, "registered event")
    b.ok("heartbeat", token=w["token"], metrics={"committed": 7, "rate": 2.5})
    d = b.ok("discover", channel=ch)
    check(d["state"] == "live" and d["channels"][0]["host"] == "pyhost", "discover live")
    r = b.ok("reader", channel=ch, host="pyhost", pid=4002, label="pyr")
    ev.next(is_ev("reader_joined", ch, pid=4002))
    lst = b.ok("list", channel=ch)["channels"]
    check(len(lst) == 1 and lst[0]["metrics"]["committed"] == 7, "list metrics")
    check([x["pid"] for x in lst[0]["readers"]] == [4002], "list readers")
    nf = b.call("discover", channel=ch + "-nope")
    check(nf["status"] == "error" and nf["error"] == "not_found", "discover unknown")
    b.ok("checksum_failure", channel=ch, host="pyhost", pid=4002, message_seq=11, detail="py")
    ev.next(is_ev("checksum_failure", ch, message_seq=11))
    b.ok("deregister", token=r["token"])
    ev.next(is_ev("reader_left", ch, pid=4002))
    b.ok("deregister", token=w["token"])
    ev.next(is_ev("closed", ch, reason="deregistered"))
    check(b.call("discover", channel=ch)["error"] == "not_found", "gone after deregister")
    check(pong["heartbeat_ms"] > 0, "ping")


def cmd_expiry(ctx, args, rest):
    """A writer that stops heartbeating: stale, then removed and closed."""
    ch = rest[0]
    ev = Events(ctx, args)
    b = Broker(ctx, args)
    w = b.ok("register", **writer_fields(ch, 4101))
    b.ok("heartbeat", token=w["token"])
    ev.next(is_ev("stale", ch, role="writer"))
    check(b.ok("discover", channel=ch)["state"] == "stale", "discover says stale")
    ev.next(is_ev("closed", ch, reason="expired"))
    check(b.call("discover", channel=ch)["error"] == "not_found", "removed after expiry")
    check(b.call("heartbeat", token=w["token"])["error"] == "not_registered", "token void")


def cmd_conflict(ctx, args, rest):
    """A second live writer for the same host and channel is refused."""
    ch = rest[0]
    b = Broker(ctx, args)
    w = b.ok("register", **writer_fields(ch, 4201))
    rep = b.call("register", **writer_fields(ch, 4202))
    print(json.dumps(rep))
    check(rep["status"] == "error" and rep["error"] == "conflict", "conflict: %s" % rep)
    b.ok("register", **writer_fields(ch, 4203, host="otherhost"))
    b.ok("deregister", token=w["token"])


def cmd_schema(ctx, args, rest):
    """The same channel with another schema: refused and announced."""
    ch = rest[0]
    ev = Events(ctx, args)
    b = Broker(ctx, args)
    ha, hb = "a" * 64, "b" * 64
    w = b.ok("register", **writer_fields(ch, 4301, schema_hash=ha))
    rep = b.call("register", **writer_fields(ch, 4302, host="otherhost", schema_hash=hb))
    print(json.dumps(rep))
    check(rep["status"] == "error" and rep["error"] == "schema_mismatch", "schema_mismatch: %s" % rep)
    e = ev.next(is_ev("schema_conflict", ch))
    check(e["schema_hash"] == hb and e["existing_schema_hash"] == ha and e["role"] == "writer",
          "schema_conflict event")
    rep = b.call("reader", channel=ch, host="pyhost", pid=4303, schema_hash=hb)
    check(rep["error"] == "schema_mismatch", "reader schema_mismatch")
    ev.next(is_ev("schema_conflict", ch, role="reader"))
    b.ok("deregister", token=w["token"])


def cmd_reader_died(ctx, args, rest):
    """A reader stops heartbeating while its writer goes on: reader_died."""
    ch = rest[0]
    ev = Events(ctx, args)
    b = Broker(ctx, args)
    w = b.ok("register", **writer_fields(ch, 4401))
    hb = w["heartbeat_ms"] / 1000.0
    b.ok("reader", channel=ch, host="pyhost", pid=4402)
    stop = threading.Event()
    died = []

    def watch():
        try:
            died.append(ev.next(is_ev("reader_died", ch, pid=4402), 15))
        except Timeout:
            pass
        stop.set()

    t = threading.Thread(target=watch)
    t.start()
    while not stop.wait(hb):
        b.ok("heartbeat", token=w["token"])
    t.join()
    check(died and died[0]["reason"] == "expired", "reader_died event")
    d = b.ok("discover", channel=ch)
    check(d["state"] == "live" and d["channels"][0]["readers"] == [], "channel survives its reader")
    b.ok("deregister", token=w["token"])


def vmrss_kb(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise Fail("no VmRSS for pid %d" % pid)


HOSTILE = [
    b"", b"{", b"}", b"null", b"[]", b"\"ping\"", b"42", b"\xff\xfe\xfd", b"{\"id\":\"x\"}",
    b"{\"id\":\"x\",\"type\":\"nope\"}", b"{\"id\":1,\"type\":\"ping\"}",
    b"{\"id\":\"x\",\"type\":\"ping\",\"id\":\"y\"}",
    b"{\"id\":\"x\",\"type\":\"register\",\"channel\":5}",
    b"{\"id\":\"x\",\"type\":\"register\",\"channel\":\"a\",\"pid\":\"1\"}",
    b"{\"id\":\"x\",\"type\":\"discover\",\"channel\":\"../../etc/passwd\"}",
    b"{\"id\":\"x\",\"type\":\"heartbeat\",\"token\":\"" + b"0" * 32 + b"\",\"metrics\":{\"a\":[1]}}",
    b"{\"id\":\"x\",\"type\":\"ping\",\"n\":18446744073709551616}",
    b"{\"id\":\"x\",\"type\":\"ping\",\"s\":\"\xc3\x28\"}",
    b"[" * 8000 + b"]" * 8000,
    b"{\"id\":\"x\",\"type\":\"ping\",\"pad\":\"" + b"x" * 16000 + b"\"}",
]


def cmd_hostile(ctx, args, rest):
    """Malformed input and floods from many connections while a good
    client is served; the broker's memory stays bounded."""
    pid = int(rest[0])
    rounds = int(rest[1]) if len(rest) > 1 else 3
    good = Broker(ctx, args)
    good.ok("ping")
    stop = threading.Event()
    lat = []
    errors = []

    def serve_good():
        g = Broker(ctx, args)
        try:
            while not stop.is_set():
                t0 = time.monotonic()
                g.ok("ping")
                lat.append(time.monotonic() - t0)
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(repr(e))
        g.close()

    def drain(sock, rid, timeout=60):
        """Ping on a flooding connection: its reply comes after every
        request queued before it has been served."""
        sock.send(json.dumps({"id": rid, "type": "ping"}).encode())
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if sock.poll(1000) and json.loads(sock.recv()).get("id") == rid:
                return
        errors.append("flood connection %s never drained" % rid)

    def flood(k, r):
        s = ctx.socket(zmq.DEALER)
        s.linger = 0
        curve(s, args)
        s.connect(args.endpoint)
        for m in HOSTILE * 10:
            s.send(m)
        s.send_multipart([b"{}", b"two frames", b"three"])
        for i in range(300):  # past the per-client and total caps
            s.send(json.dumps(dict(writer_fields("dhtest-flood-%d-%d" % (k, i), 1), id="f",
                                   type="register")).encode())
        drain(s, "drain-%d-%d" % (r, k))
        s.close()

    def oversized():
        s = ctx.socket(zmq.DEALER)
        s.linger = 1000
        curve(s, args)
        s.connect(args.endpoint)
        s.send(b"x" * (1 << 20))  # over ZMQ_MAXMSGSIZE: libzmq drops the connection
        s.close()

    t = threading.Thread(target=serve_good)
    t.start()
    rss = [vmrss_kb(pid)]
    for r in range(rounds):
        oversized()
        threads = [threading.Thread(target=flood, args=(k, r)) for k in range(20)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        rss.append(vmrss_kb(pid))
    stop.set()
    t.join()
    rep = good.ok("ping")
    print(json.dumps({"vmrss_kb": rss, "good_requests": len(lat),
                      "good_max_latency_ms": int(max(lat) * 1000) if lat else None,
                      "registrations": rep["channels"]}))
    check(not errors, "good client failed: %s" % errors)
    check(len(lat) > 10, "good client served meanwhile (%d requests)" % len(lat))
    check(rep["channels"] <= 4096, "registration cap held")
    growth = rss[-1] - rss[1]
    check(rss[1] - rss[0] < 64 * 1024, "first flood grew VmRSS by %d kB" % (rss[1] - rss[0]))
    check(growth < 8 * 1024, "VmRSS kept growing after the caps were hit: %s kB" % rss)


# Requests refused as a whole (before a parser could read "id") whose id is
# usable, and the id each reply must carry: PROTOCOL.md 2.1.
KEEP_ID = [
    (b'{"id":"k1","type":"ping","x":1,"x":2}', "k1"),
    (b'{"id":"k2","type":"register","pid":18446744073709551616}', "k2"),
    (b'{"id":"k3","type":"ping","s":"\xc3\x28"}', "k3"),
    (b'{"id":"k4","type":"ping","s":"\\u0000"}', "k4"),
    (b'{"id":"k5","type":"ping","p":[[[[[]]]]]}', "k5"),
    (b'{"id":"k6","type":"ping","id":"k6"}', None),
    (b'{"id":"k7","type":"ping"} trailing', None),
]


def cmd_ids(ctx, args, rest):
    """Each reply carries the request's id whenever it was usable."""
    b = Broker(ctx, args)
    for raw, want in KEEP_ID:
        b.sock.send(raw)
        if not b.sock.poll(args.timeout * 1000):
            raise Timeout("reply to %r" % raw)
        rep = json.loads(b.sock.recv())
        print(json.dumps(rep))
        check(rep["status"] == "error" and rep.get("id", "missing") == want,
              "%r: id %r, expected %r" % (raw, rep.get("id", "missing"), want))


def vmhwm_kb(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    raise Fail("no VmHWM for pid %d" % pid)


def count_in(path, text):
    with open(path, "rb") as f:
        return f.read().count(text)


def fat_channels(b, n, base=5000):
    """n channels with 32 metrics with long names each: about 3 kB of
    description apiece, so that a list of them spans several pages."""
    metrics = {"m%02d%s" % (k, "0" * 60): -1.2345678901234567e-300 for k in range(32)}
    for i in range(n):
        w = b.ok("register", **writer_fields("dhtest-flood-%d" % i, base + i))
        b.ok("heartbeat", token=w["token"], metrics=metrics)


def cmd_fill(ctx, args, rest):
    """N: register N fat channels (fat_channels) and leave them."""
    fat_channels(Broker(ctx, args), int(rest[0]))


def cmd_list_flood(ctx, args, rest):
    """PID LOG: 250 channels with 32 long metrics each (a list of them is
    about 800 kB), then `list` 300 times on a connection that never reads:
    the broker's peak memory must stay far below 300 (or 100 queued)
    copies.  LOG is the broker's --verbose log, which says when all 300
    were served."""
    pid, log = int(rest[0]), rest[1]
    b = Broker(ctx, args)
    fat_channels(b, 250)
    base = vmhwm_kb(pid)
    served = count_in(log, b": list: ok")
    s = ctx.socket(zmq.DEALER)
    s.linger = 0
    s.rcvhwm = 1             # our own queue stays empty: the broker holds the replies
    s.setsockopt(zmq.RCVBUF, 4096)
    curve(s, args)
    s.connect(args.endpoint)
    for k in range(300):
        s.send(json.dumps({"id": "f%d" % k, "type": "list"}).encode())
    deadline = time.monotonic() + 120
    while count_in(log, b": list: ok") < served + 300:
        check(time.monotonic() < deadline, "the broker did not serve 300 lists in 120 s")
        time.sleep(0.05)
    peak = vmhwm_kb(pid)
    print(json.dumps({"vmhwm_kb_before": base, "vmhwm_kb_after": peak, "growth_kb": peak - base}))
    check(peak - base < 24 * 1024, "the broker grew by %d kB for unread list replies" % (peak - base))
    got = 0
    while s.poll(1000):      # now read what was kept: some replies, each a page
        rep = json.loads(s.recv())
        check(rep["status"] == "ok" and "next" in rep, "a paged list reply")
        got += 1
    s.close()
    check(got > 0, "the replies kept are delivered once read")


def cmd_churn(ctx, args, rest):
    """SECONDS STOPFILE: register and deregister as fast as the broker
    answers (two events each) until STOPFILE exists or SECONDS pass."""
    end = time.monotonic() + float(rest[0])
    b = Broker(ctx, args)
    n = 0
    while time.monotonic() < end and not os.path.exists(rest[1]):
        w = b.ok("register", **writer_fields("dhtest-churn", 6000 + n % 1000))
        b.ok("deregister", token=w["token"])
        n += 1
    print(json.dumps({"cycles": n}))


COMMANDS = {
    "ping": cmd_ping, "request": cmd_request, "demo": cmd_demo, "expiry": cmd_expiry,
    "conflict": cmd_conflict, "schema": cmd_schema, "reader-died": cmd_reader_died,
    "hostile": cmd_hostile, "ids": cmd_ids, "list-flood": cmd_list_flood, "churn": cmd_churn,
    "fill": cmd_fill,
}


def main():
    ap = argparse.ArgumentParser(description="dh-broker test client")
    ap.add_argument("--endpoint", default=os.environ.get("DH_BROKER"))
    ap.add_argument("--events")
    ap.add_argument("--server-key")
    ap.add_argument("--client-key")
    ap.add_argument("--timeout", type=float, default=3.0)
    ap.add_argument("command", choices=sorted(COMMANDS))
    ap.add_argument("rest", nargs="*")
    args = ap.parse_args()
    if bool(args.server_key) != bool(args.client_key):
        ap.error("--server-key and --client-key go together")
    ctx = zmq.Context()
    try:
        COMMANDS[args.command](ctx, args, args.rest)
    except Timeout as e:
        print("client.py: no reply from the broker (%s)" % e, file=sys.stderr)
        return EXIT_TIMEOUT
    except Fail as e:
        print("client.py: check failed: %s" % e, file=sys.stderr)
        return EXIT_FAIL
    finally:
        ctx.destroy(linger=0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
