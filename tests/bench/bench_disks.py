#!/usr/bin/env python3
"""Sequential read throughput of a 1 GiB disk through the appliance's `bench` on each transport
(virtio-blk, AHCI, NVMe) in one boot, beside `qemu-img bench` on the same image on the host."""
import os
import re
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "qemu"))
from cowboot_qemu import Machine  # noqa: E402

tmp = tempfile.mkdtemp(prefix="cowboot-bench-")
img = os.path.join(tmp, "disk.img")
# Real data, not a sparse file: holes would measure nothing but QEMU's zero path.
subprocess.run(["dd", "if=/dev/urandom", f"of={img}", "bs=1M", "count=1024", "status=none"], check=True)
qi = subprocess.run(["qemu-img", "bench", "-f", "raw", "-d", "8", "-s", "1M", "-c", "1024", img],
                    stdout=subprocess.PIPE, text=True, check=True).stdout
ref = 1024 / float(re.search(r"Run completed in ([\d.]+) seconds", qi).group(1))

# The same image three times, read-only, once per transport.
disks = [dict(path=img, readonly=True, serial="B-VIRTIO"),
         dict(path=img, readonly=False, transport="sata", serial="B-SATA", bus="ide.0"),
         dict(path=img, readonly=True, transport="nvme", serial="B-NVME")]
results = {}
with Machine(disks=disks, name="bench-disks", extra_args=["-snapshot"]) as m:
    m.wait_prompt(60)
    names = dict((s, n) for n, s in re.findall(r"^(\S+)\s.*\s(B-\S+)\s", m.cmd("disks"), re.M))
    for serial, label in (("B-VIRTIO", "virtio-blk"), ("B-SATA", "AHCI (NCQ)"), ("B-NVME", "NVMe")):
        m.cmd(f"bench {names[serial]} 1024", 600)        # warm the host page cache
        out = m.cmd(f"bench {names[serial]} 1024", 600)
        mm = re.search(r"([\d.]+) MiB/s \(queue depth (\d+), (\d+) KiB", out)
        results[label] = (float(mm.group(1)), mm.group(2), mm.group(3))
    m.poweroff_and_wait()
os.remove(img)
os.rmdir(tmp)

print(f"{'qemu-img bench (host, depth 8, 1 MiB)':40s} {ref:9.1f} MiB/s  (page cache: an upper bound)")
for label, (rate, depth, kib) in results.items():
    print(f"{'cowboot bench ' + label:40s} {rate:9.1f} MiB/s  depth {depth}, {kib} KiB/request, "
          f"ratio to host {rate / ref:.3f}")
print("per-disk driver memory: virtio 24 KiB DMA (ring, headers); AHCI 16 KiB DMA "
      "(command list, FIS, one table, IDENTIFY); NVMe controller 4 queue pages + 63 PRP list pages")
