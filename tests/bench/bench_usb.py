#!/usr/bin/env python3
"""Sequential read throughput of a USB disk (usb-storage: Bulk-Only at super and high speed;
usb-uas: UAS with streams at super speed, without at high speed) beside the same image on
virtio-blk in the same boot, through the appliance's `bench`; and the time from the
xHCI controller's start to the last USB disk registered (from the event log's timestamps)."""
import os
import re
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "qemu"))
from cowboot_qemu import Machine  # noqa: E402

MIB = 256
tmp = tempfile.mkdtemp(prefix="cowboot-bench-usb-")
img = os.path.join(tmp, "disk.img")
# Real data, not a sparse file: holes would measure nothing but QEMU's zero path.
subprocess.run(["dd", "if=/dev/urandom", f"of={img}", "bs=1M", f"count={MIB}", "status=none"], check=True)
# A second controller without USB3 ports: the same device there runs at high speed.
ctrl = ["-device", "qemu-xhci,id=xhci", "-device", "qemu-xhci,id=hsx,p3=0",
        "-drive", f"if=none,id=ua,file={img},format=raw,cache=none,readonly=on",
        "-device", "usb-uas,id=uas,bus=xhci.0,port=3",
        "-device", "scsi-hd,bus=uas.0,scsi-id=0,lun=0,drive=ua,serial=B-UAS3",
        "-drive", f"if=none,id=ub,file={img},format=raw,cache=none,readonly=on",
        "-device", "usb-uas,id=uash,bus=hsx.0,port=2",
        "-device", "scsi-hd,bus=uash.0,scsi-id=0,lun=0,drive=ub,serial=B-UAS2"]
disks = [dict(path=img, readonly=True, serial="B-VIRTIO"),
         dict(path=img, readonly=True, transport="usb", serial="B-USB3", port="1"),
         dict(path=img, readonly=True, transport="usb", serial="B-USB2", bus="hsx.0")]
results = {}
with Machine(disks=disks, controllers=ctrl, name="bench-usb") as m:
    m.wait_prompt(120)
    boot_log = m.last_before
    names = dict((s, n) for n, s in re.findall(r"^(\S+)\s.*\s(B-\S+)\s", m.cmd("disks"), re.M))
    for serial in ("B-VIRTIO", "B-USB3", "B-USB2", "B-UAS3", "B-UAS2"):
        m.cmd(f"bench {names[serial]} {MIB}", 600)        # warm the host page cache
        out = m.cmd(f"bench {names[serial]} {MIB}", 600)
        mm = re.search(r"([\d.]+) MiB/s \(queue depth (\d+), (\d+) KiB", out)
        results[serial] = (float(mm.group(1)), mm.group(2), mm.group(3))
    tree = m.cmd("usb")
    m.poweroff_and_wait()
os.remove(img)
os.rmdir(tmp)

t0 = re.search(r"\[\s*([\d.]+)\] xhci0: pci", boot_log)
t1 = re.findall(r"\[\s*([\d.]+)\] disk usb\d+-[\w.]+:", boot_log)
base = results["B-VIRTIO"][0]
speeds = dict((s, sp) for sp, s in re.findall(r"\d\s+(\w+)\s+46f4:0001.*serial (B-USB\d)", tree))
speeds.update({"B-UAS3": "super", "B-UAS2": "high"})
print(f"{'cowboot bench virtio-blk':44s} {base:9.1f} MiB/s  depth {results['B-VIRTIO'][1]} (baseline)")
for serial in ("B-USB3", "B-USB2", "B-UAS3", "B-UAS2"):
    rate, depth, kib = results[serial]
    kind = "usb-storage (BOT) " if serial.startswith("B-USB") else "usb-uas (UAS) "
    label = "cowboot bench " + kind + speeds.get(serial, "?") + " speed"
    print(f"{label:44s} {rate:9.1f} MiB/s  depth {depth}, {kib} KiB/request, "
          f"ratio to virtio {rate / base:.3f}")
if t0 and t1:
    print(f"controller start to all {len(t1)} USB disks listed: {(float(t1[-1]) - float(t0.group(1))) * 1000:.0f} ms")
