#!/usr/bin/env bash
# The map and commit benchmark (bench_map.c): built here against the host library of `make all`,
# then run at 1 M and 10 M scattered extents on a 16 TiB source. Then a 3,000,000-area ddrescue
# mapfile of an 8 TiB source: cowtool import-map, map, info and check of it, beside
# `ddrescuelog -t` reading the same file (best of BENCH_MAP_ROUNDS, 3). Prints figures only.
set -eu
B=$(realpath "${COWBOOT_BUILD:-build}")
R=${COWBOOT_ROOT:-$(dirname "$(dirname "$(dirname "$(realpath "$0")")")")}
C="$B/cowtool"
T=$(mktemp -d /tmp/cowboot-bench-map-XXXXXX)
trap 'rm -rf "$T"' EXIT
${HOSTCC:-gcc} -std=c11 -O2 -Wall -Wextra -Werror -D_GNU_SOURCE -I"$R" "$R/tests/bench/bench_map.c" \
	"$B/host/libcowboot.a" -o "$T/bench_map"
"$T/bench_map" "${BENCH_MAP_SIZES:-2}"

AREAS=${BENCH_MAP_AREAS:-3000000}
ROUNDS=${BENCH_MAP_ROUNDS:-3}
cd "$T"
./bench_map genmap "$AREAS" > big.map
truncate -s 8T src.img
"$C" format cow src.img >/dev/null
echo "import of a $AREAS-area mapfile ($(($(stat -c %s big.map) / 1048576)) MiB) of an 8 TiB source; load $(cut -d' ' -f1-3 /proc/loadavg):"
TIMEFORMAT='%3R'
best() {   # best wall time of ROUNDS runs of the command
	local b=
	for _ in $(seq "$ROUNDS"); do
		local t
		t=$( { time "$@" >/dev/null 2>&1; } 2>&1 )
		if [ -z "$b" ] || awk "BEGIN{exit !($t < $b)}"; then b=$t; fi
	done
	echo "$b"
}
cat big.map > /dev/null
dt=$(best ddrescuelog -t big.map)
it=$(best "$C" import-map cow big.map)
"$C" map cow > ours.map
mt=$(best "$C" map cow)
ot=$(best ddrescuelog -t ours.map)
inf=$(best "$C" info cow)
ck=$(best "$C" check cow)
same=no
diff <(ddrescuelog -t big.map | grep -v 'current pos') <(ddrescuelog -t ours.map | grep -v 'current pos') >/dev/null && same=yes
awk -v d="$dt" -v i="$it" -v m="$mt" -v o="$ot" -v f="$inf" -v k="$ck" -v s="$same" 'BEGIN {
	printf "  ddrescuelog -t of it %.2f s; cowtool import-map %.2f s (ratio %.2f); cowtool map %.2f s (ratio %.2f to ddrescuelog -t)\n", d, i, i / d, m, m / d
	printf "  ddrescuelog -t of cowtool'\''s map %.2f s; cowtool info %.2f s, check %.2f s; same totals as the original: %s\n", o, f, k, s
}'
dataoff=$("$C" info cow | sed -n 's/.*data at \([0-9]*\).*/\1/p')
echo "  cow file: $(du -k cow | cut -f1) KiB allocated; metadata area $((dataoff / 1048576)) MiB"
