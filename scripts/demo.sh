#!/bin/sh
# demo.sh: a live pipeline through a dh channel. See LICENSE.
#
#   sh scripts/demo.sh [BINDIR]      (make demo)
#
# A synthetic sensor (four thermometers, 6000 readings) feeds dh-write; two
# dh-read consumers attached to the same lossless (sync) channel each see
# every reading: one keeps a running mean, the other counts readings per
# sensor.  Prints a summary, removes its channel, exits 0 if both consumers
# saw everything.
set -eu

bin=$(cd "${1:-build/bin}" && pwd)
PATH=$bin:$PATH
export PATH LC_ALL=C
ch=dhdemo-$$
n=6000
tmp=$(mktemp -d "${TMPDIR:-/tmp}/dhdemo.XXXXXX")

cleanup() {
	trap - EXIT INT TERM
	dh-create --remove --force "$ch" 2>/dev/null || true
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'cleanup; exit 130' INT
trap 'cleanup; exit 143' TERM

echo "demo: channel $ch (sync policy: every consumer gets every reading)"
dh-create --slots 256 --slot-size 64 --policy sync "$ch"

# Consumer 1: running mean, reported every 1000 readings.
dh-read --lines --name mean "$ch" | awk -v out="$tmp/mean" '
	{ n++; s += $2; if (n % 1000 == 0) { printf "  [mean]  %5d readings, running mean %.3f C\n", n, s / n; fflush() } }
	END { printf "%d %.3f\n", n, (n ? s / n : 0) > out }' &

# Consumer 2: readings per sensor.
dh-read --lines --name count "$ch" | awk -v out="$tmp/count" '
	{ c[$1]++; n++; if (n % 1500 == 0) { printf "  [count] %5d readings\n", n; fflush() } }
	END { for (k in c) printf "%s %d\n", k, c[k] | "sort > \"" out "\"" }' &

# The sensor: four thermometers drifting around 21 C; dh-write starts once
# both consumers are attached.
start=$(date +%s.%N)
awk -v n="$n" 'BEGIN {
	srand(42)
	for (i = 0; i < n; i++) {
		printf "t%d %.2f\n", i % 4, 21 + 2 * sin(i / 400) + (i % 4) * 0.5 + rand() - 0.5
		if (i % 200 == 199) {          # a burst every 50 ms: about 1.5 s in all
			fflush()
			system("sleep 0.05")
		}
	}
}' | tee "$tmp/sent" | dh-write --lines --name sensor --wait-readers 2 --timeout 10s "$ch"
wait
end=$(date +%s.%N)

read -r got mean <"$tmp/mean"
want=$(awk '{ s += $2 } END { printf "%.3f", s / NR }' "$tmp/sent")
total=$(awk '{ s += $2 } END { print s + 0 }' "$tmp/count")
echo "demo: summary"
echo "  sensor wrote     $n readings in $(awk -v a="$start" -v b="$end" 'BEGIN { printf "%.2f", b - a }') s"
echo "  mean consumer    $got readings, mean $mean C (expected $want C)"
echo "  count consumer   $total readings: $(awk '{ printf "%s%s=%s", (NR > 1 ? " " : ""), $1, $2 }' "$tmp/count")"
if [ "$got" -eq "$n" ] && [ "$total" -eq "$n" ] && [ "$mean" = "$want" ]; then
	echo "demo: ok, both consumers saw every reading; channel removed"
else
	echo "demo: FAILED: a consumer missed readings" >&2
	exit 1
fi
