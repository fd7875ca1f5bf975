#!/usr/bin/env bash
# Sequential read and write MiB/s through the cowboot nbdkit plugin (cowtool serve) beside
# nbdkit's own file plugin on the same image, both copied with nbdcopy, in the same run.
# BENCH_SERVE_MIB: size (512); BENCH_SERVE_ROUNDS: rounds (3). The cow's rescue is finished, so
# the plugin reads its own copy; writes are timed twice: the first over rescued sectors (each
# request first commits "written" for them, docs/cow-format.md), then again over what is already
# written (the plain path). nbdcopy --flush makes each write durable at its end (a commit).
set -eu
B=$(realpath "${COWBOOT_BUILD:-build}")
MIB=${BENCH_SERVE_MIB:-512}
ROUNDS=${BENCH_SERVE_ROUNDS:-3}
T=$(mktemp -d /tmp/cowboot-bench-serve-XXXXXX)
PIDS=()
trap 'for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done; rm -rf "$T"' EXIT
cd "$T"
dd if=/dev/urandom of=src.img bs=1M count="$MIB" status=none
dd if=/dev/urandom of=new.img bs=1M count="$MIB" status=none
printf '0 +\n0 0x%X +\n' $((MIB * 1048576)) > done.map
echo "load before: $(cut -d' ' -f1-3 /proc/loadavg); $(nbdkit --version); $(nbdcopy --version | head -1)"
wait_sock() { for _ in $(seq 200); do nbdinfo --size "nbd+unix:///?socket=$1" >/dev/null 2>&1 && return 0; sleep 0.05; done; return 1; }
TIMEFORMAT='%3R'
: > times
for round in $(seq "$ROUNDS"); do
	rm -f cow file.img s1 s2
	"$B/cowtool" format cow src.img >/dev/null
	"$B/cowtool" import-map cow done.map --image src.img >/dev/null
	cp src.img file.img
	"$B/cowtool" serve cow -U "$T/s1" 2>/dev/null & PIDS+=($!); p1=$!
	nbdkit -f -U "$T/s2" file file.img & PIDS+=($!); p2=$!
	wait_sock s1 && wait_sock s2
	sync
	cat cow file.img new.img > /dev/null
	# Alternate which server goes first.
	order="plugin file"; [ $((round % 2)) = 0 ] && order="file plugin"
	for who in $order; do
		s=s1; [ "$who" = file ] && s=s2
		u="nbd+unix:///?socket=$T/$s"
		{ time nbdcopy "$u" null: ; } 2>> t; echo "$who read $(tail -1 t)" >> times
		{ time nbdcopy --flush new.img "$u" ; } 2>> t; echo "$who write $(tail -1 t)" >> times
		{ time nbdcopy --flush src.img "$u" ; } 2>> t; echo "$who rewrite $(tail -1 t)" >> times
	done
	kill $p1 $p2; wait $p1 $p2 2>/dev/null || true
	if [ "$round" = 1 ]; then
		"$B/cowtool" export cow out.img >/dev/null 2>&1
		cmp -s out.img src.img || { echo "the cow does not hold what was written through the plugin"; exit 1; }
		rm -f out.img
	fi
done
echo "load after:  $(cut -d' ' -f1-3 /proc/loadavg)"
med() { awk -v w="$1" -v k="$2" '$1 == w && $2 == k { print $3 }' times | sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }
printf '%d MiB, %d rounds, median MiB/s     plugin    file   ratio plugin/file\n' "$MIB" "$ROUNDS"
for k in read write rewrite; do
	p=$(med plugin $k); f=$(med file $k)
	awk -v k="$k" -v m="$MIB" -v p="$p" -v f="$f" 'BEGIN {
		name = k == "read" ? "sequential read" : k == "write" ? "write over rescued data" : "rewrite (already written)";
		printf "%-30s %8.1f %8.1f %8.2f\n", name, m / p, m / f, f / p }'
done
