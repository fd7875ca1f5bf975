#!/usr/bin/env python3
"""`make bench`: runs every tests/bench/bench_*.py and bench_*.sh in turn and shows their output."""
import argparse
import os
import subprocess
import sys

here = os.path.dirname(os.path.abspath(__file__))
ap = argparse.ArgumentParser()
ap.add_argument("--build", default="build")
args = ap.parse_args()
env = dict(os.environ, COWBOOT_BUILD=os.path.abspath(args.build),
           COWBOOT_ROOT=os.path.dirname(os.path.dirname(here)))
status = 0
for name in sorted(os.listdir(here)):
    if not name.startswith("bench_") or not name.endswith((".py", ".sh")):
        continue
    print(f"=== {name}", flush=True)
    argv = [sys.executable if name.endswith(".py") else "bash", os.path.join(here, name)]
    rc = subprocess.call(argv, env=env)
    if rc:
        print(f"{name}: exit status {rc}")
        status = 1
sys.exit(status)
