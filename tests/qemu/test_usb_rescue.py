#!/usr/bin/env python3
"""A rescue from a USB source with media errors (blkdebug ENODATA: the drive's "unrecovered read
error") into a cow on another USB disk; the source unplugged mid-run through QMP pauses the job,
another drive plugged in its place is refused, the same drive plugged in again resumes it. The
map equals the truth, every finished sector equals the source, the source image never changes.
Nothing here rests on how fast the host is: the throttle keeps the rescue running for 8 s or
more whatever the load, the rescue's read deadline (10 s) is far above a loaded host's slowest
read, so only the blkdebug LBAs can be bad, and every wait is for a line, with room to spare."""
import atexit
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cowboot_qemu import (BUILD, Machine, check, finish, make_pattern_disk, map_text,  # noqa: E402
                          parse_mapfile, sha256_file)

SECTOR = 512
SIZE = 64 << 20
RATE = 8 << 20     # bytes/s the source reads at (a throttle group): 8 s of copying, time to unplug it mid-run
BAD = [5000, 5001, 40000, 90001]

tmp = tempfile.mkdtemp(prefix="cowboot-usbrescue-")
atexit.register(shutil.rmtree, tmp, True)
src, other, cow = (os.path.join(tmp, n) for n in ("src.img", "other.img", "cow.img"))
make_pattern_disk(src, SIZE, "usbSource")
make_pattern_disk(other, SIZE, "impostor")
with open(cow, "wb") as f:
    f.truncate(96 << 20)
src_hash = sha256_file(src)
rules = os.path.join(tmp, "bad.conf")
with open(rules, "w") as f:
    f.write("".join(f'[inject-error]\nevent = "read_aio"\niotype = "read"\nerrno = "61"\n'
                    f'sector = "{s}"\nonce = "off"\n\n' for s in BAD))


def node(name, path, ro=False, debug=None, throttle=None):
    image = {"driver": "file", "filename": path}
    f = {"driver": "blkdebug", "config": debug, "image": image} if debug else image
    top = {"driver": "raw", "read-only": ro, "file": f}
    if throttle:   # above the format node: blkdebug sees the format driver's read events below it
        top = {"driver": "throttle", "throttle-group": throttle, "read-only": ro, "file": top}
    return ["-blockdev", json.dumps(dict(top, **{"node-name": name}))]


ctrl = (["-object", f"throttle-group,id=slow,x-bps-read={RATE}", "-device", "qemu-xhci,id=xhci"] +
        node("src", src, True, rules, "slow") + node("other", other, True) +
        node("cow", cow) +
        ["-device", "usb-storage,id=srcdev,bus=xhci.0,port=1,drive=src,serial=USB-SOURCE",
         "-device", "usb-storage,id=cowdev,bus=xhci.0,port=2,drive=cow,serial=USB-COW"])

text = ""   # the map, once the rescue has finished
with Machine(controllers=ctrl, name="usbrescue") as m:
    m.wait_prompt(120)
    out = m.cmd("disks")
    names = dict((s, n) for n, s in re.findall(r"^(usb\d+-[\w.]+)\s.*\s(USB-\S+)\s+usb", out, re.M))
    s, c = names.get("USB-SOURCE"), names.get("USB-COW")
    check("the USB source and cow disks are found", s and c, out)
    m.cmd(f"cow format {c} {s} --yes", 60)
    out = m.cmd(f"cow open {s} {c}", 60)
    check("the overlay opens on USB", f"ov0: {c} over" in out, out)
    m.cmd("set progress=lines")
    out = m.cmd("rescue ov0 timeout=10000")   # a slow read of a loaded host is no bad sector
    check("the rescue starts", "ov0: rescue started" in out or "rescue" in out, out)
    m.wait_for(r"ov0: copying, pass 1", 120)
    time.sleep(1)
    r = m.qmp("device_del", id="srcdev")
    check("QMP device_del of the source", "return" in r, r)
    m.wait_for(rf"ov0: source {s} is not answering; the job waits for it", 120)
    check("an unplugged source pauses the rescue", True)
    out = m.cmd("status")
    check("status shows the job waiting for its source", "waiting for the source" in out, out)
    r = m.qmp("device_add", driver="usb-storage", id="otherdev", bus="xhci.0", port="1", drive="other",
              serial="USB-IMPOSTOR")
    m.wait_for(r"disk (usb\d+-[\w.]+): \d+ sectors of 512 bytes, model '[^']*', serial 'USB-IMPOSTOR'", 120)
    out = m.cmd("disks")
    imp = re.search(r"^(usb\d+-[\w.]+)\s.*USB-IMPOSTOR", out, re.M)
    imp = imp.group(1) if imp else "usb?"
    out = m.cmd(f"disk ov0 {imp}", 60)
    check("another drive offered in the source's place is refused, the field named",
          f"{imp} refused: source serial differs" in out, out)
    m.qmp("device_del", id="otherdev")
    m.wait_for(rf"disk {imp} is gone", 120)
    time.sleep(1)
    r = m.qmp("device_add", driver="usb-storage", id="srcdev2", bus="xhci.0", port="1", drive="src",
              serial="USB-SOURCE")
    check("QMP device_add of the same source", "return" in r, r)
    m.wait_for(rf"ov0: source {s} answers again with the same identity; resuming", 120)
    check("the same drive plugged in again resumes the rescue", True)
    out = m.cmd("wait ov0", 600)
    check("the rescue finishes", re.search(r"ov0: rescue finished", m.last_before + out), out[-1500:])
    text = map_text(m.cmd("map ov0", 60))
    code = m.poweroff_and_wait()
    check("poweroff", code == 0, code)
blocks = parse_mapfile(text)
wrong = sum(1 for p, sz, st in blocks for k in range(p // SECTOR, (p + sz) // SECTOR)
            if st != ("-" if k in BAD else "+"))
check("the map equals the truth: exactly the failing LBAs are bad", blocks and wrong == 0, text[:1500])
exp = os.path.join(tmp, "export.img")
subprocess.run([os.path.join(BUILD, "cowtool"), "export", cow, exp], check=True, stdout=subprocess.DEVNULL)
diff = 0
with open(exp, "rb") as a, open(src, "rb") as b:
    for p, sz, st in blocks:
        if st == "+":
            a.seek(p)
            b.seek(p)
            diff += a.read(sz) != b.read(sz)
check("every finished sector in the cow equals the source", diff == 0, diff)
check("the source image is unchanged", sha256_file(src) == src_hash)
finish()
