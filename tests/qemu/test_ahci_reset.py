#!/usr/bin/env python3
"""AHCI reset ladder through the console: `sata reset` from each rung (port restart, COMRESET,
HBA reset) keeps the disk and its neighbours readable; a disk whose identity changed (its
backend resized through QMP) is reported gone instead of being taken for the old one."""
import os
import re
import sys
import shutil
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cowboot_qemu import Machine, check, finish, make_pattern_disk, sum_matches  # noqa: E402

tmp = tempfile.mkdtemp(prefix="cowboot-ahcireset-")
paths = [os.path.join(tmp, f"r{i}.img") for i in range(3)]
for i, p in enumerate(paths):
    make_pattern_disk(p, 2 << 20, f"r{i}")

disks = [dict(path=paths[0], transport="sata", serial="R-A", bus="ide.0"),
         dict(path=paths[1], transport="sata", serial="R-B", bus="ide.1"),
         dict(path=paths[2], transport="sata", serial="R-C", bus="a1.0")]


with Machine(disks=disks, controllers=["-device", "ich9-ahci,id=a1"], name="ahcireset") as m:
    m.wait_prompt(60)
    out = m.cmd("disks")
    n = {serial: name for name, serial in re.findall(r"^(sata\d)\s.*\s(R-\S+)\s+ahci", out, re.M)}
    check("three SATA disks found", len(n) == 3, out)
    a, b, c = n.get("R-A"), n.get("R-B"), n.get("R-C")
    for rung in ("port", "comreset", "hba"):
        out = m.cmd(f"sata reset {a} {rung}", 60)
        check(f"{rung} reset: IDENTIFY answers with the same identity",
              f"{a}: same identity after the {rung} reset" in out, out)
        ok, out = sum_matches(m, a, 0, 4096, paths[0])
        check(f"{rung} reset: the disk reads correctly afterwards", ok, out)
    out = m.cmd("log 40")
    check("the HBA reset was logged", f"{a}: HBA reset" in out, out)
    ok, out = sum_matches(m, b, 7, 300, paths[1])
    check("the neighbour on the same controller reads correctly after the HBA reset", ok, out)
    out = m.cmd(f"testwrite {b} 100 8 0x5a")
    check("the neighbour writes after the HBA reset", "wrote and flushed 8 sectors" in out, out)

    # Another disk on the neighbour's port: same model and serial, another capacity.
    r = m.qmp("block_resize", device="d1", size=4 << 20)
    check("QMP resized the neighbour's backend", "return" in r, r)
    out = m.cmd(f"sata reset {a} hba", 60)
    check("the reset disk itself keeps its identity", f"{a}: same identity after the hba reset" in out, out)
    out = m.cmd("log 20")
    check("a neighbour answering with another identity is reported gone",
          re.search(rf"{b}: lost in the HBA reset \(source identity differs\)", out) and
          f"disk {b} is gone" in out, out)
    out = m.cmd(f"read {b} 0")
    check("the gone disk refuses I/O", "device is gone" in out, out)
    ok, out = sum_matches(m, a, 100, 50, paths[0])
    check("the disk that kept its identity still reads", ok, out)

    # The ladder climbing all the way: the disk answers, but as another disk, at every rung.
    r = m.qmp("block_resize", device="d2", size=3 << 20)
    check("QMP resized the other controller's backend", "return" in r, r)
    out = m.cmd(f"sata reset {c}", 60)
    check("a disk with another identity fails every rung and is gone",
          f"{c}: device is gone after the reset" in out, out)
    out = m.cmd("log 20")
    check("the ladder climbed port restart, COMRESET and HBA reset",
          all(f"{c}: {s}" in out for s in ("port restart", "COMRESET", "HBA reset")), out)
    out = m.cmd("disks")
    check("`disks` still lists the gone disk under its name", re.search(rf"^{c}\s", out, re.M), out)
    m.cmd("sleep 2500")
    out = m.cmd("log 20")
    check("the re-probe of a gone disk refuses the other identity (said once)",
          out.count(f"{c}: the device on its port answers as another disk; still gone") == 1 and
          f"disk {c} is back" not in out, out)

    # The original disks come back (the backends get their size again): the poller re-probes
    # gone disks whose link is up and lets them return with a new instance, never the others.
    for dev, name in (("d1", b), ("d2", c)):
        r = m.qmp("block_resize", device=dev, size=2 << 20)
        check(f"QMP restored {name}'s backend", "return" in r, r)
    m.cmd("sleep 3000")
    out = m.cmd("log 20")
    check("both gone disks are back with their identity",
          f"disk {b} is back" in out and f"disk {c} is back" in out, out)
    for name, path in ((b, paths[1]), (c, paths[2])):
        ok, out = sum_matches(m, name, 9, 777, path)
        check(f"{name} reads correctly after returning", ok, out)
    out = m.cmd(f"info {c}")
    check("the returned disk has a new instance", re.search(r"instance ([2-9]|\d\d)", out), out)
    code = m.poweroff_and_wait()
    check("poweroff", code == 0, code)
with open(paths[1], "rb") as f:
    f.seek(100 * 512)
    check("the neighbour's write after the HBA reset reached the host", f.read(8 * 512) == b"\x5a" * 4096)
shutil.rmtree(tmp, ignore_errors=True)
finish()
