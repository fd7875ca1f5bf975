#!/usr/bin/env python3
"""virtio-blk and the block layer through the console, checked against the host's bytes:
reads of many sizes, writes and flushes, the read-only guard, media errors, and a hung request."""
import os
import re
import sys
import shutil
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cowboot_qemu import (Machine, PausedNbd, blkdebug_read_error, check, check_hung_read,  # noqa: E402
                          check_sum, finish, make_pattern_disk, sha256_file as sha)

tmp = tempfile.mkdtemp(prefix="cowboot-vblk-")
A, B, C = (os.path.join(tmp, n) for n in ("a.img", "b.img", "c.img"))
make_pattern_disk(A, 8 << 20, "diskA")
make_pattern_disk(B, 4 << 20, "diskB")
make_pattern_disk(C, 4 << 20, "diskC")
b_hash = sha(B)



def hexdump_bytes(out):
    data = bytearray()
    for line in out.splitlines():
        m = re.match(r"[0-9a-f]{8}:((?: {1,2}[0-9a-f]{2}){16})", line)
        if m:
            data += bytes.fromhex(m.group(1).replace(" ", ""))
    return bytes(data)


BAD = 3000   # blkdebug makes this sector of disk C unreadable
rules = blkdebug_read_error(BAD)
disks = [dict(path=A, serial="SER-A"), dict(path=B, serial="SER-B", readonly=True),
         dict(path=C, serial="SER-C", blkdebug_rules=rules),
         dict(path=B, serial="SER-LEGACY", readonly=True, legacy=True)]
with Machine(disks=disks, name="vblk") as m:
    m.wait_prompt(60)
    out = m.cmd("disks")
    check("disks names the virtio disks in PCI order", re.search(r"^vd1 .*SER-A", out, re.M) and
          re.search(r"^vd2 .*SER-B", out, re.M) and re.search(r"^vd3 .*SER-C", out, re.M), out)
    check("disks shows sizes and sector sizes", re.search(r"^vd1\s+8\.0 MiB\s+512/512", out, re.M), out)
    check("a read-only drive is flagged ro", re.search(r"^vd2 .*\bro$", out, re.M), out)
    check("the boot disk is flagged boot", re.search(r"^vd0 .*\bboot$", out, re.M), out)
    check("a legacy-only virtio device is driven", re.search(r"^vd4 .*virtio-blk \(legacy\)\s+SER-LEGACY", out, re.M), out)
    check_sum(m, "the legacy device reads the host's bytes", "vd4", 0, 8192, B)
    out = m.cmd("testwrite vd4 0 1 1")
    check("the legacy device honours read-only", "device is read-only" in out, out)
    for lba, count in ((0, 1), (5, 1), (16383, 1), (100, 3), (2047, 2)):
        out = m.cmd(f"read vd1 {lba} {count}")
        with open(A, "rb") as f:
            f.seek(lba * 512)
            want = f.read(count * 512)
        check(f"read vd1 {lba} {count} equals the host's bytes", hexdump_bytes(out) == want,
              out[:200])
    out = m.cmd("read serial=SER-B 7")
    check("a disk can be named by serial=", "diskB lba 7" in out, out[:200])
    for lba, count in ((0, 16384), (1, 4095), (2047, 2050), (100, 1)):
        check_sum(m, f"sum vd1 {lba} {count} (split across commands) matches the host", "vd1", lba, count, A)
    out = m.cmd("read vd1 16384")
    check("reading past the end is refused", "beyond the end" in out, out)
    out = m.cmd("read nosuch 0")
    check("an unknown disk is named", "no disk 'nosuch'" in out, out)

    out = m.cmd("testwrite vd2 0 1 0x41")
    check("a drive read-only to the device refuses writes", "device is read-only" in out, out)
    out = m.cmd("testwrite vd1 200 3 0x5a")
    check("a write through the block layer is acknowledged", "wrote and flushed 3 sectors" in out, out)
    out = m.cmd("protect vd1")
    out = m.cmd("testwrite vd1 300 1 0x11")
    check("a disk protected in the block layer refuses writes", "device is read-only" in out, out)
    out = m.cmd("info vd1")
    check("info shows identity and counters", "serial 'SER-A'" in out and re.search(r"writes [1-9]", out), out)

    out = m.cmd(f"read vd3 {BAD}")
    check("a blkdebug error is a media error naming the LBA",
          f"media error (unreadable sector) at LBA {BAD}" in out, out)
    out = m.cmd(f"read vd3 {BAD - 1}")
    check("the sector before a bad one still reads", f"diskC lba {BAD - 1}" in out, out[:200])
    out = m.cmd(f"read vd3 {BAD + 1}")
    check("the sector after a bad one still reads", f"diskC lba {BAD + 1}" in out, out[:200])
    code = m.poweroff_and_wait()
    check("poweroff after the I/O tests", code == 0, code)

with open(A, "rb") as f:
    f.seek(200 * 512)
    check("the written sectors reached the host image", f.read(3 * 512) == b"\x5a" * 1536)
    f.seek(300 * 512)
    check("the protected write did not reach the host", f.read(16).startswith(b"diskA lba 300"))
check("the read-only disk's image is unchanged", sha(B) == b_hash)

# A flushed write survives a power cut (SIGKILL of QEMU right after the command returns).
with Machine(disks=[dict(path=C, serial="SER-C")], name="vblk-cut") as m:
    m.wait_prompt(60)
    out = m.cmd("testwrite vd1 10 4 0x77")
    m.kill()
with open(C, "rb") as f:
    f.seek(10 * 512)
    check("a flushed write survives kill -9 of QEMU", f.read(4 * 512) == b"\x77" * 2048)

# A hung request: nbdkit's pause filter holds reads; the deadline fires, the device is reset.
with PausedNbd(A, tmp) as nbd:
    with Machine(disks=[dict(nbd_socket=nbd.sock, serial="NBD")], name="vblk-hang") as m:
        m.nbd = nbd
        m.wait_prompt(60)
        check_hung_read(m, "vd1", 50, "virtio")
        out = m.cmd("info vd1")
        check("info counts the timeout and the reset", "timeouts 1, resets 1" in out, out)
shutil.rmtree(tmp, ignore_errors=True)
finish()
