#!/usr/bin/env python3
"""HBA resets while a neighbour is busy: a rescue reads a SATA source with NCQ while another disk
on the same controller is reset with GHC.HR again and again; the source's commands in flight are
taken back and issued again, so the rescue finishes with every sector rescued and equal to the
source."""
import os
import re
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cowboot_qemu import (BUILD, Machine, check, finish, make_pattern_disk, map_text,  # noqa: E402
                          parse_mapfile, sha256_file)

SIZE = 128 << 20
tmp = tempfile.mkdtemp(prefix="cowboot-ahcibusy-")
src, other, cow = (os.path.join(tmp, n) for n in ("src.img", "other.img", "cow.img"))
make_pattern_disk(src, SIZE, "src")
make_pattern_disk(other, 1 << 20, "other")
with open(cow, "wb") as f:
    f.truncate(160 << 20)
h = sha256_file(src)
disks = [dict(path=src, transport="sata", serial="BUSY-SRC", bus="ide.0"),
         dict(path=other, transport="sata", serial="BUSY-OTHER", bus="ide.1"),
         dict(path=cow, serial="BUSY-COW")]
with Machine(disks=disks, name="ahcibusy") as m:
    m.wait_prompt(60)
    names = dict((s, n) for n, s in re.findall(r"^(\S+)\s.*\s(BUSY-\S+)\s", m.cmd("disks"), re.M))
    s, o, c = names.get("BUSY-SRC"), names.get("BUSY-OTHER"), names.get("BUSY-COW")
    check("source, neighbour and cow disk found", s and o and c, names)
    m.cmd(f"cow format {c} {s} --yes", 60)
    out = m.cmd(f"cow open {s} {c}", 60)
    check("the overlay opens", "ov0:" in out, out)
    m.cmd("set progress=lines")
    m.cmd("rescue ov0 max-read=1M")
    resets = 0
    for _ in range(6):
        out = m.cmd(f"sata reset {o} hba", 60)
        resets += f"{o}: same identity after the hba reset" in out
        m.cmd("sleep 100")
    check("six HBA resets of the neighbour answer with its identity", resets == 6, out)
    out = m.cmd("wait", 300)
    log = m.cmd("log 200")
    check("the rescue finishes", "ov0: rescue finished" in out + log, out[-800:])
    check("an HBA reset hit the source with commands in flight, issued again",
          re.search(rf"{s}: \d+ command\(s\) issued again after the HBA reset", log), log[-1500:])
    text = map_text(m.cmd("map ov0", 60))
    out = m.cmd(f"info {s}")
    check("the source had no errors or timeouts", re.search(r"errors 0, timeouts 0", out), out)
    code = m.poweroff_and_wait()
    check("poweroff", code == 0, code)
blocks = parse_mapfile(text)
check("every sector rescued", blocks and all(st == "+" for _, _, st in blocks) and
      sum(sz for _, sz, _ in blocks) == SIZE, text[:800])
exp = os.path.join(tmp, "export.img")
subprocess.run([os.path.join(BUILD, "cowtool"), "export", cow, exp], check=True, stdout=subprocess.DEVNULL)
with open(exp, "rb") as a, open(src, "rb") as b:
    check("the rescued data equals the source", a.read(SIZE) == b.read(SIZE))
check("the source image is unchanged", sha256_file(src) == h)
shutil.rmtree(tmp, ignore_errors=True)
finish()
