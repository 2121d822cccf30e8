#!/usr/bin/python3
"""hostile.py ENDPOINT CASE LOG: a raw ZeroMQ peer posing as a dh-read --serve
exporter (docs/PROTOCOL.md part II) for tests/bats/net.bats.  To every HELLO
it answers a good WELCOME and one good message ("good"), then the crafted
frame CASE.  It writes "bound ENDPOINT" to LOG once listening.  See LICENSE."""
import hashlib
import signal
import struct
import sys

import zmq

VERSION = 1
SLOT = 64


def head(t, version=VERSION):
    return b"DHN" + bytes([version, t, 0, 0, 0])


def welcome(session, policy):
    # session, policy, checksum 2 (blake2b), keyed 0, schema 0, slots, slot size,
    # record size, 0, start, channel id, key id, schema hash, schema length, 0
    return (head(2) + struct.pack("<IBBBBIIIIQ", session, policy, 2, 0, 0, 8, SLOT, 0, 0, 0)
            + bytes(range(1, 17)) + bytes(64) + struct.pack("<HH", 0, 0))


def check(seq, data):
    h = hashlib.blake2b(digest_size=32)
    h.update(struct.pack("<QI", seq, len(data)))
    h.update(data)
    return h.digest()


def data(session, seq, payload, lost=0, announce=None, forge=False, version=VERSION):
    c = bytearray(check(seq, payload))
    if forge:
        c[0] ^= 1
    n = len(payload) if announce is None else announce
    return [head(4, version) + struct.pack("<IIQQQ", session, n, seq, 5, lost) + bytes(c) + payload]


def eos(session, seq):
    return [head(5) + struct.pack("<IHHiIQ", session, 1, 0, 0, 0, seq)]


def main():
    ep, case, log = sys.argv[1], sys.argv[2], sys.argv[3]
    signal.signal(signal.SIGTERM, lambda *a: sys.exit(0))
    ctx = zmq.Context()
    s = ctx.socket(zmq.ROUTER)
    s.linger = 0
    host = ep.rsplit(":", 1)[0]
    port = s.bind_to_random_port(host)
    with open(log, "a") as f:
        f.write("bound %s:%d\n" % (host, port))
    S = 77
    # latest for the reordered case (any later seq is fine there), ring otherwise
    policy = 0 if case == "reordered" else 1
    first = 5 if case == "reordered" else 0
    while True:
        rid, frame = s.recv_multipart()
        if frame[4] != 1:           # only HELLO gets an answer
            continue
        out = [[welcome(S, policy)], data(S, first, b"good")]
        if case == "batch-truncated":
            # one frame: a good record, then one announcing more than the frame holds
            out = [[welcome(S, policy)], [data(S, 0, b"good")[0] + data(S, 1, b"short", announce=10)[0]]]
        elif case == "batch-replayed":
            out = [[welcome(S, policy)], [data(S, 0, b"good")[0] + data(S, 0, b"good")[0]]]
        elif case == "forged":
            out += [data(S, 1, b"evil", forge=True), eos(S, 2)]
        elif case == "truncated":
            out += [data(S, 1, b"short", announce=10)]
        elif case == "replayed":
            out += [data(S, 0, b"good")]
        elif case == "reordered":
            out += [data(S, 3, b"older")]
        elif case == "oversized":
            out += [data(S, 1, b"x" * (SLOT + 36))]
        elif case == "version":
            out += [data(S, 1, b"next", version=7)]
        elif case == "session":
            out += [data(S + 1, 1, b"other")]
        elif case == "gap":
            out += [data(S, 5, b"later")]
        for m in out:
            s.send_multipart([rid] + m)


main()
