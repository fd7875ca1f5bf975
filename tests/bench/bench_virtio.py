#!/usr/bin/env python3
"""Sequential read throughput of a 1 GiB virtio disk through the appliance's `bench`, beside what
`qemu-img bench` (same image, same depth and request size, on the host) gets, as a ratio."""
import os
import re
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "qemu"))
from cowboot_qemu import Machine  # noqa: E402

tmp = tempfile.mkdtemp(prefix="cowboot-bench-")
img = os.path.join(tmp, "disk.img")
# Real data, not a sparse file: holes would measure nothing but QEMU's zero path.
subprocess.run(["dd", "if=/dev/urandom", f"of={img}", "bs=1M", "count=1024", "status=none"], check=True)

t0 = time.time()
qi = subprocess.run(["qemu-img", "bench", "-f", "raw", "-d", "8", "-s", "1M", "-c", "1024", img],
                    stdout=subprocess.PIPE, text=True, check=True).stdout
ref_s = float(re.search(r"Run completed in ([\d.]+) seconds", qi).group(1))
ref = 1024 / ref_s

with Machine(disks=[dict(path=img)], name="bench-virtio") as m:
    m.wait_prompt(60)
    m.cmd("bench vd1 1024", 300)   # warm the host page cache as qemu-img had it
    out = m.cmd("bench vd1 1024", 300)
    mm = re.search(r"([\d.]+) MiB/s \(queue depth (\d+), (\d+) KiB", out)
    ours = float(mm.group(1))
    m.poweroff_and_wait()

os.remove(img)
os.rmdir(tmp)
print(f"qemu-img bench (host, depth 8, 1 MiB):      {ref:8.1f} MiB/s")
print(f"cowboot bench vd1 (guest, depth {mm.group(2)}, {mm.group(3)} KiB): {ours:8.1f} MiB/s")
print(f"ratio cowboot / host reference:              {ours / ref:8.2f}")
print("memory: per virtio disk, 128-entry queue rings and 42 request headers: "
      f"{16 * 128 + 6 + 2 * 128 + 6 + 8 * 128 + 16 * 42 + 42} bytes of DMA memory (page-rounded: 20 KiB)")
