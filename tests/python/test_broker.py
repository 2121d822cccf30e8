"""dh.Broker against a live dh-broker on ipc:// endpoints (plain and CURVE)."""
import subprocess

import pytest

import dh

from conftest import await_, cmd


@pytest.fixture
def broker(spawn, tmp_path):
    """Start dh-broker with args on this test's ipc endpoints; returns (req, events)."""

    def start(*args):
        req, ev = f"ipc://{tmp_path}/req.sock", f"ipc://{tmp_path}/ev.sock"
        spawn(["dh-broker", "--bind", req, "--events", ev, "--heartbeat", "1s", *args],
              stdout=subprocess.DEVNULL, stderr=open(tmp_path / "broker.log", "wb"))
        return req, ev

    return start


def _pinged(b):
    try:
        return b.ping()
    except dh.Timeout:
        return None


def test_ping_list_discover_and_a_registered_writer(broker, chan, spawn):
    req, ev = broker()
    n = chan()
    with dh.Broker(req, timeout=0.5) as b:
        pong = await_(lambda: _pinged(b), what="the broker answering")
        assert pong["protocol"] == 3 and pong["events"] == ev
        assert repr(b) == f"<dh.Broker {req}>"
        with pytest.raises(dh.ChannelNotFound):
            b.discover(n)
        with pytest.raises(dh.Timeout):
            b.discover(n, timeout=0.3)
        w = spawn(["dh-write", "--create", "--slots", "8", "--slot-size", "1K", "--policy", "ring",
                   "--lines", "--broker", req, n], stdin=subprocess.PIPE)
        info = b.discover(n, timeout=10)
        assert (info["channel"], info["pid"], info["policy"], info["slots"], info["slot_size"]) == \
            (n, w.pid, "ring", 8, 1024)
        listed = [c for c in b.channels() if c["channel"] == n]
        assert len(listed) == 1 and listed[0]["pid"] == w.pid
        assert [c["channel"] for c in b.channels(n)] == [n]
        w.stdin.close()
        assert w.wait(10) == 0
        await_(lambda: not [c for c in b.channels() if c["channel"] == n], what="deregistration")


def test_events(broker, chan, spawn):
    import json
    req, _ = broker()
    n = chan()
    with dh.Broker(req, timeout=0.5) as b:
        await_(lambda: _pinged(b), what="the broker answering")
        sub = b.subscribe(timeout=10)
        try:
            first = json.loads(sub.next_json())
            assert first["event"] == "welcome"           # the subscription is in place
            w = spawn(["dh-write", "--create", "--slots", "4", "--slot-size", "64", "--lines", "--broker",
                       req, n], stdin=subprocess.PIPE)

            def next_for(kind):
                while True:
                    e = json.loads(sub.next_json())
                    if e.get("channel") == n:
                        seen.append(e)
                        if e["event"] == kind:
                            return e

            seen = []
            assert next_for("registered")["pid"] == w.pid
            w.stdin.close()
            assert w.wait(10) == 0
            next_for("closed")
            # a loaded machine may let a heartbeat slip: stale and live are allowed between
            kinds = [e["event"] for e in seen if e["event"] not in ("stale", "live")]
            assert kinds == ["registered", "closed"]
            assert seen[-1]["reason"] in ("deregistered", "expired")   # expired: deregistration lost under load
            with pytest.raises(dh.Timeout):
                sub.next_json(timeout=0.2)
        finally:
            sub.close()
        # the generator form: a dict per event, the welcome first
        gen = b.events(timeout=10)
        assert next(gen)["event"] == "welcome"
        gen.close()


def test_curve(broker, tmp_path):
    keys = tmp_path / "k"
    cmd("dh-broker", "--keygen", str(keys))
    req, _ = broker("--curve", str(keys))
    with dh.Broker(req, broker_key=str(keys / "broker.pub"), client_key=str(keys / "client.key"),
                   timeout=0.5) as b:
        assert await_(lambda: _pinged(b), what="the CURVE broker answering")["protocol"] == 3
        assert "curve" in repr(b)
    # without keys the broker never answers
    with dh.Broker(req, timeout=0.3) as plain:
        with pytest.raises((dh.Timeout, dh.AccessDenied)):
            plain.ping()
    with pytest.raises(dh.Error):
        dh.Broker(req, broker_key=str(tmp_path / "missing.pub"), client_key=str(keys / "client.key"))
