#!/usr/bin/env bash
# cowtool export of a cow whose rescue finished, beside cp --sparse=always of the same-size file.
# BENCH_EXPORT_MIB: size (4096); BENCH_EXPORT_ROUNDS: rounds (5). Both tools get the same
# conditions in every round: the previous output removed, sync, both inputs read into the page
# cache, then the timed run; which tool goes first alternates. The median and the best of each
# are reported with the spread and user+sys CPU, and also the time until the output is on the
# disk (the tool, then `sync FILE`, i.e. fsync): cp leaves its output in dirty pages, export
# writes with direct I/O. Other work on the machine slows both: the load is shown.
set -eu
C=$(realpath "${COWBOOT_BUILD:-build}/cowtool")
MIB=${BENCH_EXPORT_MIB:-4096}
ROUNDS=${BENCH_EXPORT_ROUNDS:-5}
T=$(mktemp -d /tmp/cowboot-bench-export-XXXXXX)
trap 'rm -rf "$T"' EXIT
cd "$T"
dd if=/dev/urandom of=src.img bs=1M count="$MIB" status=none
printf '0 +\n0 0x%X +\n' $((MIB * 1048576)) > done.map
"$C" format cow src.img >/dev/null
"$C" import-map cow done.map --image src.img >/dev/null
echo "load before: $(cut -d' ' -f1-3 /proc/loadavg); cp: $(cp --version | head -1)"

TIMEFORMAT='%3R %3U %3S'
# run LABEL OUTPUT COMMAND...: one timed run, then the same output made durable, timed apart.
run() {
	local label=$1 out=$2
	shift 2
	rm -f copy.img out.img
	sync
	cat src.img cow > /dev/null
	{ time "$@" >/dev/null 2>&1; } 2> t.run
	{ time sync "$out"; } 2> t.sync
	read -r wall user sys < t.run
	read -r swall _ _ < t.sync
	echo "$label $wall $user $sys $swall" >> times
}
: > times
for round in $(seq "$ROUNDS"); do
	if [ $((round % 2)) = 1 ]; then
		run cp copy.img cp --sparse=always src.img copy.img
		run export out.img "$C" export cow out.img
	else
		run export out.img "$C" export cow out.img
		run cp copy.img cp --sparse=always src.img copy.img
	fi
	if [ "$round" = 1 ] || [ "$round" = "$ROUNDS" ]; then
		cmp -s out.img src.img || { echo "export differs from the source"; exit 1; }
	fi
done
echo "load after:  $(cut -d' ' -f1-3 /proc/loadavg)"
# Per tool: median and best wall time, the slowest, median CPU, median wall time with the fsync.
stats() {
	awk -v t="$1" '$1 == t { print $2, $3 + $4, $2 + $5 }' times | awk '
		{ w[NR] = $1; c[NR] = $2; d[NR] = $3 }
		function med(a, n,   i, j, x) {
			for (i = 2; i <= n; i++) { x = a[i]; for (j = i - 1; j > 0 && a[j] > x; j--) a[j + 1] = a[j]; a[j + 1] = x }
			return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
		}
		END { n = NR; mw = med(w, n); print mw, w[1], w[n], med(c, n), med(d, n) }'
}
read -r ex_med ex_best ex_worst ex_cpu ex_dur <<< "$(stats export)"
read -r cp_med cp_best cp_worst cp_cpu cp_dur <<< "$(stats cp)"
awk -v m="$MIB" -v r="$ROUNDS" \
    -v em="$ex_med" -v eb="$ex_best" -v ew="$ex_worst" -v ec="$ex_cpu" -v ed="$ex_dur" \
    -v cm="$cp_med" -v cb="$cp_best" -v cw="$cp_worst" -v cc="$cp_cpu" -v cd="$cp_dur" 'BEGIN {
	printf "%d MiB, %d rounds          median     best    worst  MiB/s(med)  cpu(med)  +fsync(med)\n", m, r;
	printf "cowtool export (all rescued) %6.2f s %6.2f s %6.2f s %9.1f %8.2f s %9.2f s\n", em, eb, ew, m / em, ec, ed;
	printf "cp --sparse=always           %6.2f s %6.2f s %6.2f s %9.1f %8.2f s %9.2f s\n", cm, cb, cw, m / cm, cc, cd;
	printf "throughput ratio export / cp: median %.2f, best %.2f, until on disk %.2f (target >= 0.9)\n",
		cm / em, cb / eb, cd / ed }'
