#!/usr/bin/env bash
# The map and commit benchmark (bench_map.c): built here against the host library of `make all`,
# then run at 1K, 100K and 1M scattered extents on a 16 TiB source. Prints figures only.
set -eu
B=$(realpath "${COWBOOT_BUILD:-build}")
R=${COWBOOT_ROOT:-$(dirname "$(dirname "$(dirname "$(realpath "$0")")")")}
T=$(mktemp -d /tmp/cowboot-bench-map-XXXXXX)
trap 'rm -rf "$T"' EXIT
${HOSTCC:-gcc} -std=c11 -O2 -Wall -Wextra -Werror -D_GNU_SOURCE -I"$R" "$R/tests/bench/bench_map.c" \
	"$B/host/libcowboot.a" -o "$T/bench_map"
"$T/bench_map" "${BENCH_MAP_SIZES:-3}"
