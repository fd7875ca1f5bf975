#!/usr/bin/env python3
"""AHCI sequential read throughput of a 1 GiB disk via `bench`, with NCQ and without (sata-ncq
setting), beside virtio-blk on the same image in the same boot; and the time `sata reset` takes
at each rung of the ladder."""
import os
import re
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "qemu"))
from cowboot_qemu import Machine  # noqa: E402

MIB = int(os.environ.get("BENCH_MIB", "1024"))
tmp = tempfile.mkdtemp(prefix="cowboot-benchahci-")
img = os.path.join(tmp, "disk.img")
# Real data, not a sparse file: holes would measure nothing but QEMU's zero path.
subprocess.run(["dd", "if=/dev/urandom", f"of={img}", "bs=1M", f"count={MIB}", "status=none"], check=True)
disks = [dict(path=img, readonly=True, serial="B-VIRTIO"),
         dict(path=img, transport="sata", serial="B-SATA", bus="ide.0")]
rates = {}
resets = {}
with Machine(disks=disks, name="bench-ahci", extra_args=["-snapshot"]) as m:
    m.wait_prompt(60)
    names = dict((s, n) for n, s in re.findall(r"^(\S+)\s.*\s(B-\S+)\s", m.cmd("disks"), re.M))
    sata = names["B-SATA"]
    m.cmd(f"bench {names['B-VIRTIO']} {MIB}", 900)     # warm the host page cache
    for label, setup in (("virtio-blk", None), ("AHCI with NCQ", "set sata-ncq=on"),
                         ("AHCI without NCQ", "set sata-ncq=off")):
        if setup:
            m.cmd(setup)
        disk = names["B-VIRTIO"] if label == "virtio-blk" else sata
        out = m.cmd(f"bench {disk} {MIB}", 900)
        mm = re.search(r"([\d.]+) MiB/s \(queue depth (\d+), (\d+) KiB", out)
        rates[label] = (float(mm.group(1)), mm.group(2), mm.group(3)) if mm else None
    m.cmd("set sata-ncq=on")
    for rung in ("port", "comreset", "hba"):
        out = m.cmd(f"sata reset {sata} {rung}", 60)
        mm = re.search(r"same identity after the \w+ reset \((\d+) ms\)", out)
        resets[rung] = int(mm.group(1)) if mm else None
    m.poweroff_and_wait()
os.remove(img)
os.rmdir(tmp)

for label, r in rates.items():
    print(f"{'cowboot bench ' + label:32s} " +
          (f"{r[0]:9.1f} MiB/s  (bench depth {r[1]}, {r[2]} KiB per request)" if r else "no result"))
for rung, ms in resets.items():
    print(f"{'sata reset from ' + rung:32s} " + (f"{ms:9d} ms to the same identity" if ms is not None else "failed"))
