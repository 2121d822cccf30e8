"""Fixtures of the dh Python suite, and its TAP report (see run.sh).

Channels come from the `chan` fixture: names unique to the test
(dhtest-py-<test>-<pid>-<n>, so tests/run.sh's leak check sees them),
removed in teardown even when the test failed. Processes started with
`spawn` are killed in teardown.
"""
import itertools
import os
import re
import signal
import subprocess
import sys
import time

import pytest

import dh

TOP = os.environ.get("DH_TOP") or os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BUILD = os.environ.get("DH_BUILD", "build")
BIN = os.path.join(TOP, BUILD, "bin")
PYTHON = "/usr/bin/python3"
_counter = itertools.count()


def await_(cond, timeout=10.0, what="condition"):
    """Poll cond() until true (bounded): never sleep a fixed time instead."""
    deadline = time.monotonic() + timeout
    while True:
        v = cond()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.005)


@pytest.fixture
def chan(request):
    made = []

    def new(tag=""):
        base = re.sub(r"[^A-Za-z0-9._-]", "_", request.node.name)[:60]
        name = f"dhtest-py-{base}-{os.getpid()}-{next(_counter)}{'-' + tag if tag else ''}"
        made.append(name)
        return name

    yield new
    for name in made:
        try:
            dh.remove(name, force=True)
        except dh.ChannelNotFound:
            pass


@pytest.fixture
def spawn():
    procs = []

    def start(args, **kw):
        kw.setdefault("stdout", subprocess.PIPE)
        kw.setdefault("stderr", subprocess.PIPE)
        env = dict(os.environ)
        env["PATH"] = BIN + os.pathsep + env.get("PATH", "")
        env.update(kw.pop("env", {}))
        p = subprocess.Popen(args, env=env, **kw)
        procs.append(p)
        return p

    yield start
    for p in procs:
        if p.poll() is None:
            p.kill()
        p.wait(10)
        for f in (p.stdin, p.stdout, p.stderr):
            if f is not None:
                f.close()


def cmd(*args, input=None, check=True, timeout=30):
    """Run a dh command from the build tree; CompletedProcess (bytes)."""
    env = dict(os.environ)
    env["PATH"] = BIN + os.pathsep + env.get("PATH", "")
    r = subprocess.run(list(args), input=input, capture_output=True, env=env, timeout=timeout)
    if check and r.returncode != 0:
        raise AssertionError(f"{args}: exit {r.returncode}: {r.stderr.decode(errors='replace')}")
    return r


# ---- TAP report -------------------------------------------------------------------------

_results = {}


def pytest_runtest_logreport(report):
    r = _results.setdefault(report.nodeid, {"failed": False, "skipped": None, "ran": False})
    if report.failed:
        r["failed"] = True
    elif report.skipped:
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        r["skipped"] = reason
    if report.when == "call" and report.passed:
        r["ran"] = True


def pytest_sessionfinish(session, exitstatus):
    path = os.environ.get("DH_PYTEST_TAP")
    if not path:
        return
    with open(path, "w") as f:
        f.write(f"1..{len(_results)}\n")
        for i, (nodeid, r) in enumerate(_results.items(), 1):
            name = "python: " + nodeid.replace("\n", " ")
            if r["failed"]:
                f.write(f"not ok {i} - {name}\n")
            elif r["skipped"] is not None:
                f.write(f"ok {i} - {name} # SKIP {r['skipped']}\n")
            elif r["ran"]:
                f.write(f"ok {i} - {name}\n")
            else:
                f.write(f"not ok {i} - {name} (no result)\n")
