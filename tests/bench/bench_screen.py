#!/usr/bin/env python3
"""Scrolling 10,000 lines on a 3840x2160 screen (QEMU VGA, cowboot.cfg `screen 3840x2160`,
2x glyphs) beside the same lines with no screen at all, in the same run: the time from the
command to its prompt on the serial line, and the screen's own drawing time."""
import os
import re
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "qemu"))
from cowboot_qemu import Machine  # noqa: E402

LINES = ["read vd0 0 256", "read vd0 256 57"]   # 8192 + 1824 hexdump lines


def run(name, extra, cfg):
    with Machine(name=name, extra_args=extra, cfg=cfg, memory=512) as m:
        m.wait_prompt(120)
        mode = m.cmd("screen")
        t0 = time.time()
        n = 0
        for c in LINES:
            n += len(re.findall(r"^[0-9a-f]{8}:", m.cmd(c, 600), re.M))
        dt = time.time() - t0
        st = m.cmd("screen")
        return dt, n, mode.strip().splitlines()[0], st


base_s, n0, mode0, _ = run("bench-noscreen", [], None)
big_s, n1, mode1, st = run("bench-4k", ["-device", "VGA,vgamem_mb=64"], "screen 3840x2160\n")
print(f"baseline (no screen): {n0} lines in {base_s:.2f} s")
print(f"{mode1}")
print(f"3840x2160: {n1} lines in {big_s:.2f} s; ratio {big_s / base_s:.2f}x the baseline")
mm = re.search(r"(\d+) frames, (\d+) cells drawn in (\d+) ms", st)
if mm:
    print(f"screen: {mm.group(1)} frames, {mm.group(2)} cells, {mm.group(3)} ms drawing "
          f"({int(mm.group(3)) / max(1, n1):.2f} ms a line)")
