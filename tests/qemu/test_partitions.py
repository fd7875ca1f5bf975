#!/usr/bin/env python3
"""Partitions as disks: a GPT (and its backup when the primary is damaged) and an MBR, reads and
writes at the right offsets, ranges bounded by the partition, protection shared with the disk."""
import os
import re
import struct
import sys
import shutil
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cowboot_qemu import Machine, check, finish  # noqa: E402
from mkdemo import gpt_disk  # noqa: E402

tmp = tempfile.mkdtemp(prefix="cowboot-part-")
gpt, broken, mbr = (os.path.join(tmp, n) for n in ("gpt.img", "broken.img", "mbr.img"))
gpt_disk(gpt, 16 << 20)
gpt_disk(broken, 16 << 20)
with open(broken, "r+b") as f:     # damage the primary header's CRC-covered bytes
    f.seek(512 + 40)
    f.write(b"\xff" * 8)
with open(mbr, "wb") as f:
    f.truncate(8 << 20)
    sector = bytearray(512)
    for i, (start, count) in enumerate(((63, 1000), (4096, 8192))):
        sector[446 + 16 * i:446 + 16 * i + 16] = struct.pack("<B3sB3sII", 0, b"\0\0\0", 0x83, b"\0\0\0", start, count)
    sector[510:512] = b"\x55\xaa"
    f.seek(0)
    f.write(sector)
    f.seek(4096 * 512)
    f.write(b"mbr partition two starts here")

with Machine(disks=[dict(path=gpt, serial="GPT"), dict(path=broken, serial="BROKEN"),
                    dict(path=mbr, serial="MBR")], name="part") as m:
    m.wait_prompt(60)
    out = m.cmd("disks")
    sizes = dict(re.findall(r"^(vd\dp\d)\s+(\S+ \S+)", out, re.M))
    check("a GPT partition becomes vd1p1", "vd1p1" in sizes, out)
    check("its size is the entry's range (LBA 2048 to the last usable)", sizes.get("vd1p1") == "14.9 MiB", out)
    check("the damaged primary GPT falls back to the backup", "vd2p1" in sizes, out)
    check("MBR primary partitions become vd3p1 and vd3p2", "vd3p1" in sizes and "vd3p2" in sizes, out)
    check("the FAT boot disk gets no bogus partitions", not any(k.startswith("vd0p") for k in sizes), out)
    out = m.cmd("log 30")
    check("the fallback is logged", "disk vd2: primary GPT header CRC mismatch, using the backup" in out, out)
    out = m.cmd("read vd1p1 0")
    check("partition LBA 0 is the disk's LBA 2048", "|rce, lba 2048...|" in out, out[:300])
    out = m.cmd("read vd3p2 0")
    check("MBR partition 2 starts at its LBA", "|mbr partition tw|" in out, out[:200])
    out = m.cmd("read vd3p1 1000")
    check("reads past a partition's end are refused", "beyond the end" in out, out)
    out = m.cmd("testwrite vd3p2 1 1 0x42")
    check("a write to a partition is acknowledged", "wrote and flushed" in out, out)
    m.cmd("protect vd1p1")
    out = m.cmd("testwrite vd1 5000 1 0x42")
    check("protecting a partition protects its disk", "device is read-only" in out, out)
    m.cmd("protect vd3")
    out = m.cmd("testwrite vd3p1 0 1 0x42")
    check("protecting a disk protects its partitions", "device is read-only" in out, out)
    m.poweroff_and_wait()
with open(mbr, "rb") as f:
    f.seek((4096 + 1) * 512)
    check("the partition write landed at partition start + LBA", f.read(512) == b"\x42" * 512)
    f.seek(63 * 512)
    check("the protected partition was not written", f.read(512) == b"\0" * 512)
shutil.rmtree(tmp, ignore_errors=True)
finish()
