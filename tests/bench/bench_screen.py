#!/usr/bin/env python3
"""Scrolling 10,000 lines on a 3840x2160 screen (QEMU VGA, cowboot.cfg `screen 3840x2160`,
2x glyphs) beside the same lines with no screen at all, in the same run: the time from the
command to its prompt on the serial line, and the screen's own drawing time."""
import os
import re
import shutil
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "qemu"))
from cowboot_qemu import Machine, make_pattern_disk  # noqa: E402

LINES = ["read vd1 0 256", "read vd1 256 57"]   # 8192 + 1824 hexdump lines, each one different
TMP = tempfile.mkdtemp(prefix="cowboot-bench-screen-")
DISK = os.path.join(TMP, "pattern.img")
make_pattern_disk(DISK, 1 << 20, "bench")


def run(name, extra, cfg):
    with Machine(name=name, extra_args=extra, cfg=cfg, memory=512,
                 disks=[dict(path=DISK, serial="BENCH", readonly=True)]) as m:
        m.wait_prompt(120)
        mode = m.cmd("screen")
        t0 = time.time()
        n = 0
        for c in LINES:
            n += len(re.findall(r"^[0-9a-f]{8}:", m.cmd(c, 600), re.M))
        dt = time.time() - t0
        st = m.cmd("screen")
        return dt, n, mode.strip().splitlines()[0], st


def report(label, secs, n, st):
    mm = re.search(r"(\d+) frames, (\d+) cells drawn in (\d+) ms", st or "")
    drawn = f"; {mm.group(1)} frames, {mm.group(2)} cells drawn in {mm.group(3)} ms" if mm else ""
    print(f"{label}: {n} lines in {secs:.2f} s, {secs / base_s:.2f}x the baseline{drawn}", flush=True)


base_s, n0, _, _ = run("bench-noscreen", [], None)
print(f"baseline (no screen): {n0} lines in {base_s:.2f} s", flush=True)
small_s, n1, mode1, st1 = run("bench-1280", ["-device", "VGA"], None)
report(mode1.split(",")[0], small_s, n1, st1)
big_s, n2, mode2, st2 = run("bench-4k", ["-device", "VGA,vgamem_mb=64"], "screen 3840x2160\n")
report(mode2.split(",")[0] + " (2x glyphs)", big_s, n2, st2)
shutil.rmtree(TMP, ignore_errors=True)
