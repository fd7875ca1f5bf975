#!/usr/bin/env python3
"""The cow commands in the appliance, checked from the host with cowtool: format, open (identity,
the source becoming read-only), stats, map (accepted by ddrescuelog), sync, close, commit at
poweroff. The same format is read by the appliance and by the host tool."""
import os
import re
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cowboot_qemu import BUILD, Machine, check, finish, make_pattern_disk, sha256_file  # noqa: E402

tmp = tempfile.mkdtemp(prefix="cowboot-cowcon-")
src, other, cow = (os.path.join(tmp, n) for n in ("src.img", "other.img", "cow.img"))
make_pattern_disk(src, 8 << 20, "source")
make_pattern_disk(other, 8 << 20, "other")
with open(cow, "wb") as f:
    f.truncate(16 << 20)
src_hash = sha256_file(src)
cowtool = os.path.join(BUILD, "cowtool")

disks = [dict(path=src, serial="SRC-1"), dict(path=cow, serial="COW-1"), dict(path=other, serial="SRC-1")]
with Machine(disks=disks, name="cowcon") as m:
    m.wait_prompt(60)
    out = m.cmd("cow format vd2 vd1")
    check("cow format refuses without --yes", "add --yes" in out, out)
    out = m.cmd("cow format vd1 vd1 --yes")
    check("cow format refuses the source as its own cow", "must be different" in out, out)
    out = m.cmd("cow format vd3 vd1 --yes")
    check("cow format refuses a cow too small for the source", "too small" in out or "needs" in out, out)
    out = m.cmd("cow format vd2 vd1 --yes", 60)
    check("cow format succeeds", "error" not in out, out)
    out = m.cmd("cow open vd3 vd2", 60)
    check("cow open refuses another disk with the same serial, naming what differs",
          "source contents differ" in out, out)
    out = m.cmd("cow open vd1 vd2", 60)
    check("cow open binds the overlay", re.search(r"ov0: vd2 over vd1", out), out)
    out = m.cmd("disks")
    check("disks flags the source and the cow", re.search(r"^vd1 .*source", out, re.M) and re.search(r"^vd2 .*cow", out, re.M), out)
    out = m.cmd("testwrite vd1 0 1 0x55")
    check("the source refuses writes once it is a source", "device is read-only" in out, out)
    out = m.cmd("cow open vd1 vd2")
    check("a disk cannot be in two overlays", "already in an open overlay" in out, out)
    out = m.cmd("cow stats ov0")
    check("cow stats shows the counters", "non-tried 8388608 bytes" in out, out)
    out = m.cmd("cow list")
    check("cow list shows ov0", "ov0  source vd1  cow vd2" in out, out)
    out = m.cmd("map ov0")
    mapfile = os.path.join(tmp, "appliance.map")
    with open(mapfile, "w") as f:
        f.write(out)
    t = subprocess.run(["ddrescuelog", "-t", mapfile], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    check("map ov0 is accepted by ddrescuelog -t", t.returncode == 0 and "non-tried:    8388 kB" in t.stdout, t.stdout + out)
    out = m.cmd("map ov9")
    check("map of an unknown overlay says so", "no overlay 'ov9'" in out, out)
    out = m.cmd("cow sync ov0")
    check("cow sync commits", "error" not in out, out)
    out = m.cmd("cow close ov0", 60)
    out2 = m.cmd("disks")
    check("cow close detaches and the source is no longer flagged", "error" not in out and
          not re.search(r"^vd1 .*source", out2, re.M), out + out2)
    out = m.cmd("cow open vd1 vd2", 60)
    check("the cow opens again after close", re.search(r"ov0: vd2 over vd1", out), out)
    code = m.poweroff_and_wait()
    check("poweroff with an open overlay", code == 0, code)

info = subprocess.run([cowtool, "info", cow], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
check("cowtool reads the cow the appliance formatted", info.returncode == 0 and "serial 'SRC-1'" in info.stdout, info.stdout)
check("the commits are counted", re.search(r"commits [1-9]", info.stdout), info.stdout)
out = os.path.join(tmp, "out.img")
ex = subprocess.run([cowtool, "export", cow, src, out], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
check("cowtool export with the source gives it back", ex.returncode == 0 and sha256_file(out) == src_hash, ex.stdout)
check("the source image is unchanged", sha256_file(src) == src_hash)
shutil.rmtree(tmp, ignore_errors=True)
finish()
