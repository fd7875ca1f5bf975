#!/usr/bin/env python3
"""Runs every test of cowboot and ends with the line `N passed, N failed`.

A test program prints one line per check: `PASS <name>` or `FAIL <name>: <why>`. A program that
exits non-zero without a FAIL line, prints no result at all, or overruns its time limit counts as
one failure. Programs: build/tests/test_* (host unit tests), tests/tools/test_* (tool scenarios),
build/fuzz/fuzz_* (short fuzz runs), tests/qemu/test_*.py (QEMU+OVMF scenarios).
"""
import argparse
import concurrent.futures as cf
import os
import re
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RESULT = re.compile(r"^(PASS|FAIL)\b")


def discover(build, only):
    found = []
    def add(kind, argv, timeout):
        if only in (None, kind):
            found.append((kind, argv, timeout))
    unit = os.path.join(build, "tests")
    if os.path.isdir(unit):
        for n in sorted(os.listdir(unit)):
            p = os.path.join(unit, n)
            if n.startswith("test_") and os.access(p, os.X_OK) and not n.endswith(".d"):
                add("unit", [p], 600)
    tools = os.path.join(ROOT, "tests", "tools")
    for n in sorted(os.listdir(tools)) if os.path.isdir(tools) else []:
        p = os.path.join(tools, n)
        if n.startswith("test_") and os.access(p, os.X_OK):
            add("tools", [p], 900)
    fuzz = os.path.join(build, "fuzz")
    if os.path.isdir(fuzz):
        for n in sorted(os.listdir(fuzz)):
            p = os.path.join(fuzz, n)
            if n.startswith("fuzz_") and os.access(p, os.X_OK) and not n.endswith(".d"):
                add("fuzz", [p], 900)
    qemu = os.path.join(ROOT, "tests", "qemu")
    for n in sorted(os.listdir(qemu)) if os.path.isdir(qemu) else []:
        if n.startswith("test_") and n.endswith(".py"):
            add("qemu", [sys.executable, os.path.join(qemu, n)], 1200)
    return found


def run_fuzzer(argv, seconds, build):
    name = os.path.basename(argv[0])
    corpus = os.path.join(build, "fuzz-corpus", name)
    os.makedirs(corpus, exist_ok=True)
    seeds = os.path.join(ROOT, "tests", "fuzz", "seeds", name.replace("fuzz_", ""))
    dirs = [corpus] + ([seeds] if os.path.isdir(seeds) else [])
    return argv + [f"-max_total_time={seconds}", "-print_final_stats=0",
                   f"-artifact_prefix={corpus}-crash-"] + dirs


def run_one(item, build, fuzz_seconds):
    kind, argv, timeout = item
    name = os.path.relpath(argv[-1], ROOT)
    if kind == "fuzz":
        argv = run_fuzzer(argv, fuzz_seconds, build)
    env = dict(os.environ, COWBOOT_ROOT=ROOT, COWBOOT_BUILD=os.path.abspath(build))
    t0 = time.time()
    try:
        p = subprocess.run(argv, cwd=ROOT, env=env, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, timeout=timeout, stdin=subprocess.DEVNULL)
        out, rc, late = p.stdout.decode(errors="replace"), p.returncode, False
    except subprocess.TimeoutExpired as e:
        out, rc, late = (e.stdout or b"").decode(errors="replace"), -1, True
    dt = time.time() - t0
    passed = failed = 0
    for line in out.splitlines():
        m = RESULT.match(line)
        if m:
            passed += m.group(1) == "PASS"
            failed += m.group(1) == "FAIL"
    extra = []
    if kind == "fuzz":
        # libFuzzer prints no PASS lines: a clean exit is one pass.
        if rc == 0 and not late:
            passed += 1
            extra.append(f"PASS {name} (fuzzed {fuzz_seconds}s)")
        else:
            failed += 1
            extra.append(f"FAIL {name}: fuzzer exit {rc}")
    elif late:
        failed += 1
        extra.append(f"FAIL {name}: timed out after {timeout}s")
    elif rc != 0 and failed == 0:
        failed += 1
        extra.append(f"FAIL {name}: exit status {rc} without a FAIL line")
    elif passed + failed == 0:
        failed += 1
        extra.append(f"FAIL {name}: printed no result")
    return name, out, extra, passed, failed, dt


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default="build")
    ap.add_argument("--only", choices=["unit", "tools", "fuzz", "qemu"])
    ap.add_argument("--jobs", type=int, default=int(os.environ.get("COWBOOT_TEST_JOBS", "2")))
    ap.add_argument("--fuzz-seconds", type=int, default=20)
    ap.add_argument("-k", dest="pattern", help="run only programs whose path contains this")
    args = ap.parse_args()
    items = discover(args.build, args.only)
    if args.pattern:
        items = [i for i in items if args.pattern in i[1][-1]]
    total_p = total_f = 0
    failures = []
    t0 = time.time()
    with cf.ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        futs = [pool.submit(run_one, i, args.build, args.fuzz_seconds) for i in items]
        for f in cf.as_completed(futs):
            name, out, extra, p, fl, dt = f.result()
            print(f"=== {name} ({dt:.1f}s): {p} passed, {fl} failed", flush=True)
            for line in out.splitlines():
                if fl or RESULT.match(line) or os.environ.get("VERBOSE"):
                    print("    " + line)
            for line in extra:
                print("    " + line)
            total_p += p
            total_f += fl
            if fl:
                failures.append(name)
    print(f"--- {len(items)} programs in {time.time() - t0:.0f}s; failing: {' '.join(failures) or 'none'}")
    print(f"{total_p} passed, {total_f} failed")
    return 1 if total_f or not items else 0


if __name__ == "__main__":
    sys.exit(main())
