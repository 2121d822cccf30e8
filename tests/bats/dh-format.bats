#!/usr/bin/env bats
# dh-format(5) against the implementation: an independent reader written from the page. See LICENSE.

load test_helper

setup() {
	dh_setup
	ch=$(dh_name)
	T=$BATS_TEST_TMPDIR
	command -v python3 >/dev/null || skip "python3 not installed"
}

# format.py SEGMENT: decode a segment using only what dh-format(5) says;
# prints "key value" lines and one "msg SEQ HEX" line per committed message
# still held, and fails on any inconsistency with the page.
format_py() {
	python3 - "$@" <<'EOF'
import hashlib, struct, sys

seg = open(sys.argv[1], "rb").read()
u32 = lambda o: struct.unpack_from("=I", seg, o)[0]
u64 = lambda o: struct.unpack_from("=Q", seg, o)[0]
up = lambda x, a: (x + a - 1) // a * a

def need(cond, what):
    if not cond:
        sys.exit("format: " + what)

need(u32(0) == 0x31424844 and seg[0:4] in (b"DHB1", b"1BHD"), "magic")
need(u32(4) == 2, "version")
slots, slot_size, stride, meta_size, max_readers = (u32(o) for o in (16, 20, 24, 28, 32))
policy, checksum = u32(36), u32(40)
table_off = 4096
desc_off = table_off + (1 + max_readers) * 128
meta_off = desc_off + slots * 64
meta_region = 0 if meta_size == 0 else 64 + up(meta_size, 64)
data_off = up(meta_off + meta_region, 4096)
need(stride == up(slot_size, 64), "stride")
total = up(data_off + stride * slots, 4096)
need((u64(72), u64(80), u64(88), u64(96)) == (table_off, desc_off, meta_off, data_off), "offsets")
need(u64(8) == total == len(seg), "total size %d %d %d" % (u64(8), total, len(seg)))
committed, eos = u64(192), u64(200)
print("policy", ["latest", "ring", "sync", "queue"][policy])
print("checksum", ["none", "xxh3", "blake2b", "mac"][checksum])
print("committed", committed)
print("eos", "none" if eos == 2**64 - 1 else eos)
print("messages_written", u64(448))
print("bytes_written", u64(456))
print("eos_count", u64(496))
print("writer_sessions", u64(520))
for i in range(1 + max_readers):
    e = table_off + 128 * i
    # state word: bits 0-1 the state, the rest the attach generation;
    # bit 63 of a position: the message there is held in place
    if u32(e) & 3 != 0:
        name = seg[e + 8:e + 40].split(b"\0")[0].decode()
        print("entry", i, "state", u32(e) & 3, "generation", u32(e) >> 2, "pid", u32(e + 4),
              "name", name or "-", "position", u64(e + 40) & ~(1 << 63), "messages", u64(e + 56))
for s in range(max(0, committed - slots), committed):
    d = desc_off + 64 * (s % slots)
    need(u64(d) == 2 * s + 2, "stamp of seq %d: %d" % (s, u64(d)))
    n = u32(d + 16)
    need(n <= slot_size, "length")
    p = seg[data_off + stride * (s % slots):][:n]
    if checksum == 2:
        h = hashlib.blake2b(struct.pack("<QI", s, n) + p, digest_size=32).digest()
        need(seg[d + 32:d + 64] == h, "blake2b of seq %d" % s)
    if policy == 3:
        need(u64(d + 8) in ((s << 9) | 0, (s << 9) | 511), "claim word of seq %d" % s)
    print("msg", s, p.hex())
EOF
}

@test "dh-format(5): an independent decoder reads a blake2b ring channel written by dh-write" {
	dh-create --policy ring --checksum blake2b --slots 4 --slot-size 100 --meta-size 10 "$ch"
	printf 'zero\none\ntwo\nthree\nfour\nfive\n' | dh-write --lines --name w1 "$ch"
	run -0 format_py "$(dh_shm "$ch")"
	assert_line "policy ring"
	assert_line "checksum blake2b"
	assert_line "committed 6"
	assert_line "eos 6"
	assert_line "messages_written 6"
	assert_line "bytes_written 23"
	assert_line "eos_count 1"
	assert_line "writer_sessions 1"
	# the four slots hold seq 2..5
	assert_line "msg 2 $(printf two | od -An -tx1 | tr -d ' \n')"
	assert_line "msg 5 $(printf five | od -An -tx1 | tr -d ' \n')"
	refute_line --partial "msg 1 "
}

@test "dh-format(5): participant entries and the OFD lock on byte i" {
	dh-create --policy queue --slots 8 "$ch"
	dh_feed "$ch" --lines --name prod
	printf 'a\nb\nc\n' >&"$DH_FEED"
	dh_await eval "format_py '$(dh_shm "$ch")' | grep -qx 'committed 3'"
	run -0 format_py "$(dh_shm "$ch")"
	assert_line --regexp "^entry 0 state 1 generation 1 pid $DH_FEED_PID name prod position 3 messages 3\$"
	assert_line "msg 2 63"
	# the writer holds a write lock on byte 0 of the file, and only there
	key=$(stat -c '%Hd %Ld %i' "$(dh_shm "$ch")" | awk '{ printf "%02x:%02x:%s", $1, $2, $3 }')
	run -0 awk -v k="$key" '$2 != "->" && $6 == k { print $2, $4, $7, $8 }' /proc/locks
	assert_output "OFDLCK WRITE 0 0"
}
