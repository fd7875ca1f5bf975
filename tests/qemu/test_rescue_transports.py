#!/usr/bin/env python3
"""Rescue from a SATA (AHCI) source and an NVMe source at the same time, each with blkdebug bad
sectors: both maps equal the truth, the finished sectors equal the sources (cowtool export), and
neither source image changes (QEMU's ide-hd cannot be read-only, so the hash is the proof)."""
import os
import re
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cowboot_qemu import (BUILD, Machine, check, finish, make_pattern_disk, map_text,  # noqa: E402
                          parse_mapfile, sha256_file)

SECTOR = 512
SIZE = 16 << 20
BAD = {"sata": [7000, 7001, 15000], "nvme": [9000, 20000, 20001, 20002]}


def rules(sectors):
    return "".join(f'[inject-error]\nevent = "read_aio"\niotype = "read"\nerrno = "5"\n'
                   f'sector = "{s}"\nonce = "off"\n\n' for s in sectors)


def verify(tag, text, src, cow, tmp):
    blocks = parse_mapfile(text)
    bad = set(BAD[tag])
    wrong = sum(1 for p, s, st in blocks for k in range(p // SECTOR, (p + s) // SECTOR)
                if st != ("-" if k in bad else "+"))
    check(f"{tag}: the map equals the truth", blocks and wrong == 0, text[:1500])
    out = os.path.join(tmp, f"{tag}.export")
    subprocess.run([os.path.join(BUILD, "cowtool"), "export", cow, out], check=True, stdout=subprocess.DEVNULL)
    with open(out, "rb") as a, open(src, "rb") as b:
        diff = 0
        for p, s, st in blocks:
            if st == "+":
                a.seek(p)
                b.seek(p)
                diff += a.read(s) != b.read(s)
    check(f"{tag}: every finished sector equals the source", diff == 0, diff)


tmp = tempfile.mkdtemp(prefix="cowboot-transports-")
paths = {}
for tag in ("sata", "nvme"):
    src, cow = os.path.join(tmp, f"{tag}-src.img"), os.path.join(tmp, f"{tag}-cow.img")
    make_pattern_disk(src, SIZE, tag)
    with open(cow, "wb") as f:
        f.truncate(32 << 20)
    paths[tag] = (src, cow, sha256_file(src))

disks = [dict(path=paths["sata"][0], transport="sata", serial="SATA-SRC", bus="ide.0",
              blkdebug_rules=rules(BAD["sata"])),
         dict(path=paths["nvme"][0], transport="nvme", serial="NVME-SRC", readonly=True,
              blkdebug_rules=rules(BAD["nvme"])),
         dict(path=paths["sata"][1], serial="COW-SATA"), dict(path=paths["nvme"][1], serial="COW-NVME")]
maps = {}
with Machine(disks=disks, name="transports") as m:
    m.wait_prompt(60)
    out = m.cmd("disks")
    names = dict((s, n) for n, s in re.findall(r"^(\S+)\s.*\s(\S+-\S+)\s", out, re.M))
    sata, nvme = names.get("SATA-SRC"), names.get("NVME-SRC")
    check("the SATA and NVMe sources are found", sata and nvme, out)
    m.cmd(f"cow format vd1 {sata} --yes", 60)
    m.cmd(f"cow format vd2 {nvme} --yes", 60)
    out = m.cmd(f"cow open {sata} vd1", 60) + m.cmd(f"cow open {nvme} vd2", 60)
    check("both overlays open", "ov0: vd1 over" in out and "ov1: vd2 over" in out, out)
    m.cmd("set progress=lines")
    out = m.cmd("rescue ov0 timeout=2000") + m.cmd("rescue ov1 timeout=2000")
    out = m.cmd("wait", 300)
    check("both rescues finish", sorted(re.findall(r"(ov\d): rescue finished", out)) == ["ov0", "ov1"], out[-1500:])
    maps["sata"] = map_text(m.cmd("map ov0", 60))
    maps["nvme"] = map_text(m.cmd("map ov1", 60))
    code = m.poweroff_and_wait()
    check("poweroff", code == 0, code)
for tag in ("sata", "nvme"):
    src, cow, h = paths[tag]
    verify(tag, maps[tag], src, cow, tmp)
    check(f"{tag}: the source image is unchanged", sha256_file(src) == h)
shutil.rmtree(tmp, ignore_errors=True)
finish()
