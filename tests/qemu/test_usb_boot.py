#!/usr/bin/env python3
"""Booting from a USB stick (usb-storage, GPT: an EFI system partition with cowboot and a data
partition): the stick is recognised as the boot disk (the loaded image's device path), flagged
`boot`, found as `boot`, its partitions are listed, wipe refuses it and its partitions, and its
second partition holds a working cow for a source on another USB disk; the first screen says a
USB disk's health cannot be had through QEMU's bridge (no SAT), and the reports written when
the rescue ends and at poweroff land in the stick's FAT partition: read back on the host with
mtools, fsck.fat clean, the mapfile accepted by `ddrescuelog -t`. The source never changes."""
import atexit
import os
import re
import shutil
import struct
import subprocess
import sys
import tempfile
import uuid
import zlib

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cowboot_qemu import BUILD, Machine, check, finish, sha256_file  # noqa: E402
from mkdemo import gpt_disk  # noqa: E402

SECTOR = 512
ESP = uuid.UUID("c12a7328-f81f-11d2-ba4b-00a0c93ec93b")
COW = uuid.UUID("84024261-2707-4790-a2ef-be9e11429f11")   # "cowboot cow" (docs/cow-format.md)


def make_stick(path, fat, size):
    """A GPT stick: partition 1 the FAT image (EFI system partition), partition 2 the rest, of the
    "cowboot cow" type (as `sgdisk --typecode=2:84024261-2707-4790-a2ef-be9e11429f11` makes it)."""
    sectors = size // SECTOR
    fat_sectors = os.path.getsize(fat) // SECTOR
    es = 32
    parts = [(ESP, 2048, 2048 + fat_sectors - 1, "EFI"), (COW, 2048 + fat_sectors, sectors - 2 - es - 1, "cow")]
    entries = bytearray(128 * 128)
    for i, (t, first, last, label) in enumerate(parts):
        e = t.bytes_le + uuid.uuid4().bytes_le + struct.pack("<QQQ", first, last, 0) + label.encode("utf-16-le")
        entries[128 * i:128 * i + len(e)] = e
    ecrc = zlib.crc32(entries)
    guid = uuid.uuid4().bytes_le

    def header(my, alt, lba):
        h = struct.pack("<8sIIIIQQQQ16sQIII", b"EFI PART", 0x10000, 92, 0, 0, my, alt, 2 + es,
                        sectors - 2 - es, guid, lba, 128, 128, ecrc)
        return (h[:16] + struct.pack("<I", zlib.crc32(h)) + h[20:]).ljust(SECTOR, b"\0")
    with open(path, "wb") as f:
        f.truncate(size)
        mbr = bytearray(SECTOR)
        mbr[446:462] = struct.pack("<BBBBBBBBII", 0, 0, 2, 0, 0xEE, 0xFF, 0xFF, 0xFF, 1, sectors - 1)
        mbr[510:512] = b"\x55\xaa"
        f.write(mbr)
        f.write(header(1, sectors - 1, 2))
        f.write(entries)
        f.seek((sectors - 1 - es) * SECTOR)
        f.write(entries)
        f.write(header(sectors - 1, 1, sectors - 1 - es))
        f.seek(2048 * SECTOR)
        with open(fat, "rb") as g:
            f.write(g.read())


tmp = tempfile.mkdtemp(prefix="cowboot-usbboot-")
atexit.register(shutil.rmtree, tmp, True)
stick, src = os.path.join(tmp, "stick.img"), os.path.join(tmp, "src.img")
make_stick(stick, os.path.join(BUILD, "boot.img"), 96 << 20)
gpt_disk(src, 16 << 20)   # partitions: the first screen takes it for a source
src_hash = sha256_file(src)
ctrl = ["-device", "qemu-xhci,id=xhci",
        "-drive", f"if=none,id=src,file={src},format=raw,cache=none,readonly=on",
        "-device", "usb-storage,bus=xhci.0,port=1,drive=src,serial=USB-SRC"]
with Machine(controllers=ctrl, boot_usb=stick, name="usbboot") as m:
    m.wait_prompt(120)
    first = m.last_before[m.last_before.find("Found "):]
    check("the first screen says the USB disks' health is not to be had through the bridge",
          len(re.findall(r"^ +health: not available over this USB bridge$", first, re.M)) == 2, first[:1500])
    out = m.cmd("disks")
    row = re.search(r"^(usb\d+-[\w.]+)\s+96\.0 MiB.*BOOT-STICK\s+usb\s+boot\s*$", out, re.M)
    check("the stick cowboot was loaded from is flagged boot", row, out)
    stk = row.group(1) if row else "usb?"
    srcn = re.search(r"^(usb\d+-[\w.]+)\s.*USB-SRC", out, re.M)
    srcn = srcn.group(1) if srcn else "usb?"
    check("only the stick is flagged boot", len(re.findall(r"\s(?:cow,)?boot\s*$", out, re.M)) == 3, out)
    check("the stick's GPT partitions are listed", f"{stk}p1 " in out and f"{stk}p2 " in out, out)
    check("the partition of type cowboot cow is flagged cow, the EFI system partition not",
          re.search(rf"^{stk}p2\s.*\scow,boot\s*$", out, re.M) and re.search(rf"^{stk}p1\s.*\sboot\s*$", out, re.M), out)
    check("the first screen names the stick's cow partition and offers it for the source's cow",
          re.search(rf"{stk} .*the disk cowboot started from; its {stk}p2 is a cowboot cow partition", first) and
          f"To rescue {srcn} into {stk}p2: cow format {stk}p2 {srcn} --yes" in first, first[-1500:])
    o = m.cmd(f"info {stk}p2")
    check("info names the partition type", "partition type: cowboot cow" in o, o)
    o = m.cmd("info boot")
    check("`boot` names the stick", f"{stk}:" in o and "BOOT-STICK" in o, o)
    o = m.cmd(f"wipe {stk} --yes")
    check("wipe refuses the boot stick", f"{stk} is the boot disk cowboot runs from" in o, o)
    o = m.cmd(f"wipe {stk}p2 --yes")
    check("wipe refuses a partition of the boot stick", "the boot disk cowboot runs from" in o, o)
    o = m.cmd(f"cow format {stk}p2 {srcn} --yes", 60)
    check("a cow is formatted on the stick's second partition", f"{stk}p2 formatted as the cow of {srcn}" in o, o)
    o = m.cmd(f"cow open {srcn} {stk}p2", 60)
    check("and opens over the USB source", f"ov0: {stk}p2 over {srcn}" in o, o)
    o = m.cmd("rescue ov0") + m.cmd("wait ov0", 300)
    check("a rescue into the cow on the boot stick finishes",
          re.search(r"ov0: rescue finished .*rescued 16\.0 MiB of 16\.0 MiB", m.last_before + o), o[-800:])
    ended = m.last_before + o
    code = m.poweroff_and_wait()
    check("poweroff", code == 0, code)
    ended += m.buf

# The reports: the stick's first partition (LBA 2048) is its FAT.
check("the reports went to the stick's FAT partition",
      re.search(r"report written to %sp1: cowboot/\S+/ \(events\.log, ov0-USB-SRC\.map, summary\.txt\)" % stk,
                ended), ended[-1500:])
part1 = os.path.join(tmp, "part1.img")
with open(stick, "rb") as f, open(part1, "wb") as g:
    f.seek(2048 * SECTOR)
    g.write(f.read(os.path.getsize(os.path.join(BUILD, "boot.img"))))
env = dict(os.environ, MTOOLS_SKIP_CHECK="1")
fsck = subprocess.run(["fsck.fat", "-n", part1], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
ls = subprocess.run(["mdir", "-i", part1, "-/", "-b", "::/cowboot"], stdout=subprocess.PIPE, text=True,
                    env=env).stdout.split()
got = {os.path.basename(p): p for p in ls}
check("fsck.fat -n finds the stick's partition clean, with events.log, the mapfile and summary.txt",
      fsck.returncode == 0 and {"events.log", "ov0-USB-SRC.map", "summary.txt"} <= set(got), (fsck.stdout, ls))


def mtype(name):
    return subprocess.run(["mtype", "-i", part1, got[name]], stdout=subprocess.PIPE, text=True,
                          env=env).stdout if name in got else ""
sm = mtype("summary.txt")
check("summary.txt names the stick as the volume and the USB disks' health in words",
      f"volume:   {stk}p1 (FAT" in sm and "health: not available over this USB bridge" in sm, sm[:2000])
mpath = os.path.join(tmp, "ov0.map")
with open(mpath, "w") as f:
    f.write(mtype("ov0-USB-SRC.map"))
t = subprocess.run(["ddrescuelog", "-t", mpath], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
check("ddrescuelog -t reads the mapfile from the stick: all 16 MiB rescued",
      t.returncode == 0 and re.search(r"rescued:\s+16777\s*kB", t.stdout), t.stdout)
check("the source image is unchanged", sha256_file(src) == src_hash)
finish()
