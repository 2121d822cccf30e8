#!/usr/bin/python3
# serve_client.py: hostile HTTP clients for stat-serve.bats. Every mode is
# bounded in time; each prints one result line. See LICENSE.
#
#   slowloris HOST PORT SECONDS   dribble a request's headers, a byte every
#                                 0.1 s; print "ready" once started, then
#                                 "open" or "closed after N.Ns"
#   idle HOST PORT LIMIT          connect, send nothing: "closed after N.Ns"
#                                 or "open after LIMITs"
#   huge HOST PORT BYTES          a request with a BYTES-long header: the
#                                 status code answered, or "closed"
#   flood HOST PORT N SRC HOLD    N connections from address SRC; once the
#                                 server has closed what it refuses, print
#                                 "ready open=K", hold them HOLD seconds
import select
import socket
import sys
import time


def connect(host, port, src=None, timeout=5.0):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if src:
        s.bind((src, 0))
    s.settimeout(timeout)
    s.connect((host, port))
    return s


def closed(s, wait):
    """True if the peer closed s (EOF or reset) within wait seconds."""
    r, _, _ = select.select([s], [], [], wait)
    if not r:
        return False
    try:
        return s.recv(65536, socket.MSG_PEEK) == b""
    except (ConnectionResetError, BrokenPipeError):
        return True


def slowloris(host, port, seconds):
    s = connect(host, port)
    s.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n")
    print("ready", flush=True)
    start = time.monotonic()
    header = b"X-Slow: " + b"a" * 1000
    i = 0
    while time.monotonic() - start < seconds:
        try:
            s.send(header[i % len(header):i % len(header) + 1])
        except OSError:
            break
        i += 1
        if closed(s, 0.1):
            break
    else:
        print("open", flush=True)
        return
    print("closed after %.1fs" % (time.monotonic() - start), flush=True)


def idle(host, port, limit):
    s = connect(host, port)
    start = time.monotonic()
    while time.monotonic() - start < limit:
        if closed(s, 0.2):
            print("closed after %.1fs" % (time.monotonic() - start), flush=True)
            return
    print("open after %ds" % limit, flush=True)


def huge(host, port, size):
    s = connect(host, port)
    req = b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-Big: " + b"b" * size + b"\r\n\r\n"
    try:
        s.sendall(req)
    except OSError:
        pass            # closed while we were still sending: refused
    data = b""
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            chunk = s.recv(4096)
        except OSError:
            break
        if not chunk:
            break
        data += chunk
        if b"\r\n" in data:
            break
    if data.startswith(b"HTTP/1."):
        print(data.split(b" ")[1].decode(), flush=True)
    else:
        print("closed", flush=True)


def flood(host, port, n, src, hold):
    socks = []
    for _ in range(n):
        try:
            socks.append(connect(host, port, src, timeout=2))
        except OSError:
            pass        # refused or backlog full: the server is bounded
    # settle: the server closes what it will not serve at once
    deadline = time.monotonic() + 5
    stable_since = time.monotonic()
    last = len(socks)
    while time.monotonic() < deadline:
        socks = [s for s in socks if not closed(s, 0)]
        if len(socks) != last:
            last = len(socks)
            stable_since = time.monotonic()
        elif time.monotonic() - stable_since > 1:
            break
        time.sleep(0.05)
    print("ready open=%d" % len(socks), flush=True)
    time.sleep(hold)


def main():
    mode, host, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
    if mode == "slowloris":
        slowloris(host, port, float(sys.argv[4]))
    elif mode == "idle":
        idle(host, port, int(sys.argv[4]))
    elif mode == "huge":
        huge(host, port, int(sys.argv[4]))
    elif mode == "flood":
        flood(host, port, int(sys.argv[4]), sys.argv[5], float(sys.argv[6]))
    else:
        sys.exit("unknown mode " + mode)


main()
