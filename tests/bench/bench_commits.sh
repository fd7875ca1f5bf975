#!/usr/bin/env bash
# The commits of rescues of drives with a dead head through the engine (bench_commits.c), built
# here against the host library of `make all`: an 8 GiB drive whose failed reads take 2 s (as a
# drive retrying a dead head does) and a 64 GiB one whose fail in 5 ms (the most scattered
# changes a commit can get; its map grows past 2 M extents). Prints figures only;
# BENCH_COMMITS_SPEC replaces both drives, BENCH_COMMITS_SECONDS caps each run's wall time (300).
set -eu
B=$(realpath "${COWBOOT_BUILD:-build}")
R=${COWBOOT_ROOT:-$(dirname "$(dirname "$(dirname "$(realpath "$0")")")")}
T=$(mktemp -d /tmp/cowboot-bench-commits-XXXXXX)
trap 'rm -rf "$T"' EXIT
${HOSTCC:-gcc} -std=c11 -O2 -Wall -Wextra -Werror -D_GNU_SOURCE -I"$R" "$R/tests/bench/bench_commits.c" \
	"$R/tests/lib/deadhead.c" "$B/host/libcowboot.a" -o "$T/bench_commits"
S=${BENCH_COMMITS_SECONDS:-300}
"$T/bench_commits" "${BENCH_COMMITS_SPEC:-size=8G heads=4 dead=1 zones=4G:16K,4G:12K}" 2000 "$S"
"$T/bench_commits" "${BENCH_COMMITS_SPEC:-size=64G heads=4 dead=1 zones=32G:16K,32G:12K}" 5 "$S"
