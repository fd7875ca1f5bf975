#!/usr/bin/env python3
"""Hostile disks (tests/qemu/hostile_disks.py): partition tables each broken in one way, and NTFS
boot sectors with absurd geometry, on virtio, AHCI and NVMe with 512 and 4096-byte sectors. The
appliance must boot to the prompt, list every disk, name once what it ignored, keep what is
valid, and let `ls`/`domain ntfs` fail cleanly on them. No image may change."""
import os
import re
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cowboot_qemu import Machine, check, finish, sha256_file  # noqa: E402
from hostile_disks import VARIANTS, make  # noqa: E402

SIZE = 8 << 20
# (variant, transport, logical sector size): every variant on 512 and on 4096, over all three
# drivers (QEMU's AHCI disks have 512-byte sectors only).
LAYOUT = [
    ("hdrsize", "nvme", 4096), ("hdrsize", "sata", 512), ("hdrsize", "virtio", 512),
    ("entsize", "virtio", 512), ("entsize", "virtio", 4096),
    ("count", "virtio", 512), ("count", "nvme", 4096),
    ("entries", "virtio", 512), ("entries", "nvme", 4096),
    ("backup", "sata", 512), ("backup", "virtio", 4096),
    ("mbrloop", "sata", 512), ("mbrloop", "virtio", 4096),
    ("protective", "virtio", 512), ("protective", "nvme", 4096),
    ("hybrid", "nvme", 512), ("hybrid", "virtio", 4096),
    ("ntfs", "virtio", 512), ("ntfs", "nvme", 4096),
]

tmp = tempfile.mkdtemp(prefix="cowboot-hostile-")
disks, hashes, sata_port = [], {}, 0
for i, (name, transport, lbs) in enumerate(LAYOUT):
    path = os.path.join(tmp, f"{name}-{transport}-{lbs}.img")
    make(path, name, SIZE, lbs)
    hashes[path] = sha256_file(path)
    serial = f"H{i:02d}{name[:6]}{lbs // 512}"
    d = dict(path=path, transport=transport, serial=serial)
    if lbs != 512:
        d["lbs"] = lbs
    if transport == "sata":
        d["bus"] = f"ide.{sata_port}"
        sata_port += 1
    disks.append(d)
cow = os.path.join(tmp, "cow.img")
with open(cow, "wb") as f:
    f.truncate(32 << 20)
disks.append(dict(path=cow, serial="COWDISK"))

with Machine(disks=disks, name="hostile", memory=512) as m:
    m.wait_prompt(180)
    boot = m.buf if hasattr(m, "buf") else ""
    out = m.cmd("disks", timeout=60)
    check("no CPU exception at boot", "CPU EXCEPTION" not in out, out[-400:])
    names = {}
    for line in out.splitlines():
        f = line.split()
        for d in disks:
            if len(f) > 1 and d["serial"] in f and not re.search(r"p\d+$", f[0]):
                names[d["serial"]] = f[0]
    check("every disk is listed", len(names) == len(disks), out)
    log = m.cmd("log 400", timeout=60)
    for (variant, transport, lbs), d in zip(LAYOUT, disks):
        n = names.get(d["serial"])
        what = f"{variant} on {transport} ({lbs}-byte sectors)"
        if not n:
            continue
        mine = "\n".join(re.findall(rf"disk {re.escape(n)}: (.*)", log))
        _, says, listed, not_listed = VARIANTS[variant]
        check(f"{what}: says what it ignored", all(s in mine for s in says), f"{n}: {mine!r}")
        parts = set(int(p) for p in re.findall(rf"^{re.escape(n)}p(\d+)\s", out, re.M))
        check(f"{what}: lists partitions {listed}, not {not_listed}",
              set(listed) <= parts and not (set(not_listed) & parts), f"{n}: {sorted(parts)}")
        # Each complaint once: the table is read once, at boot.
        check(f"{what}: each complaint said once",
              all(mine.count(s) == 1 for s in says if "entry" not in s or "GPT ignored" in s), mine)

    # ls and domain ntfs through an overlay of the hostile sources fail cleanly, one by one.
    cowname = names.get("COWDISK")
    for variant, expect in (("ntfs", r"not readable as NTFS|no NTFS volume .* could be read"),
                            ("entsize", r"no NTFS volume on"), ("mbrloop", r"no NTFS volume on")):
        idx = next(i for i, l in enumerate(LAYOUT) if l[0] == variant)
        src = names.get(disks[idx]["serial"])
        if not (src and cowname):
            check(f"ls/domain on {variant}: the disks are there", False, names)
            continue
        out = m.cmd(f"cow format {cowname} {src} --yes", timeout=120)
        out += m.cmd(f"cow open {src} {cowname}", timeout=60)
        ov = re.search(r"\b(ov\d)\b", out)
        check(f"{variant}: an overlay opens over it", ov is not None, out)
        if not ov:
            continue
        ov = ov.group(1)
        out = m.cmd(f"ls {ov} /", timeout=120)
        check(f"{variant}: ls fails with one clear line", out.strip().startswith("ls: ") and
              len(out.strip().splitlines()) <= 3 and "CPU EXCEPTION" not in out, out)
        out = m.cmd(f"domain {ov} ntfs", timeout=120)
        check(f"{variant}: domain ntfs fails cleanly", re.search(expect, out) is not None and
              "CPU EXCEPTION" not in out, out)
        m.cmd(f"cow close {ov}", timeout=60)
    out = m.cmd("version")
    check("the appliance still answers", "cowboot" in out, out)
    m.poweroff_and_wait(60)

for path, h in hashes.items():
    if sha256_file(path) != h:
        check(f"{os.path.basename(path)} is unchanged", False, "hash differs")
        break
else:
    check("no hostile image was written", True)
finish()
