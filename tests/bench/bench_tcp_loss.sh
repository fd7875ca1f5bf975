#!/bin/bash
# What a lost packet costs the stack's TCP: tests/unit/test_tcp.c's fake link and peer built as a
# benchmark (TCP_LOSS_BENCH), 8 MiB each way at 0 to 3% loss, in simulated time, beside the
# lossless run of the same program.
set -e
ROOT=${COWBOOT_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}
BUILD=${COWBOOT_BUILD:-$ROOT/build}
out=$BUILD/bench/bench_tcp_loss
mkdir -p "$(dirname "$out")"
make -s -C "$ROOT" BUILD="$BUILD" "$BUILD/host/libcowboot.a" >/dev/null
gcc -std=c11 -O2 -D_GNU_SOURCE -DTCP_LOSS_BENCH -I"$ROOT" "$ROOT/tests/unit/test_tcp.c" "$BUILD/host/libcowboot.a" -o "$out"
"$out"
