#!/usr/bin/env bash
# cowtool export of a cow whose rescue finished, beside cp --sparse=always of the same-size file.
# Size: 4 GiB of random data (BENCH_EXPORT_MIB to change it); both read from the page cache.
set -eu
C=$(realpath "${COWBOOT_BUILD:-build}/cowtool")
MIB=${BENCH_EXPORT_MIB:-4096}
T=$(mktemp -d /tmp/cowboot-bench-export-XXXXXX)
trap 'rm -rf "$T"' EXIT
cd "$T"
dd if=/dev/urandom of=src.img bs=1M count="$MIB" status=none
printf '0 +\n0 0x%X +\n' $((MIB * 1048576)) > done.map
"$C" format cow src.img >/dev/null
"$C" import-map cow done.map --image src.img >/dev/null
# Same conditions for both: inputs cached, no dirty pages pending; alternated four times and the
# best of each kept, because the first large write after a sync is slowed by writeback here.
cat src.img cow > /dev/null
best_cp=999; best_ex=999
for round in 1 2 3 4; do
	sync; rm -f copy.img out.img
	t=$(date +%s.%N); cp --sparse=always src.img copy.img; u=$(date +%s.%N)
	best_cp=$(awk -v a="$t" -v b="$u" -v m="$best_cp" 'BEGIN { d = b - a; print (d < m ? d : m) }')
	sync; rm -f copy.img
	t=$(date +%s.%N); "$C" export cow out.img >/dev/null; u=$(date +%s.%N)
	best_ex=$(awk -v a="$t" -v b="$u" -v m="$best_ex" 'BEGIN { d = b - a; print (d < m ? d : m) }')
	cmp -s out.img src.img || { echo "export differs from the source"; exit 1; }
done
awk -v e="$best_ex" -v p="$best_cp" -v m="$MIB" 'BEGIN {
	printf "cowtool export (%d MiB, all rescued): %6.2f s  %7.1f MiB/s\n", m, e, m / e;
	printf "cp --sparse=always (%d MiB):           %6.2f s  %7.1f MiB/s\n", m, p, m / p;
	printf "throughput ratio export / cp: %.2f (target >= 0.9)\n", p / e }'
