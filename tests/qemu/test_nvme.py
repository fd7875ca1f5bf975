#!/usr/bin/env python3
"""NVMe through the console: a controller with one namespace and one with several (512 and
4096-byte LBAs), reads against the host, writes and flush, the read-only guard, media errors
with the error log consulted for the LBA, and the health log. Hung commands: test_nvme_hang.py."""
import atexit
import os
import re
import sys
import shutil
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cowboot_qemu import (Machine, blkdebug_read_error, check, check_sum, finish,  # noqa: E402
                          make_pattern_disk, sha256_file as sha)

tmp = tempfile.mkdtemp(prefix="cowboot-nvme-")
atexit.register(shutil.rmtree, tmp, True)
A, N1, N2, M = (os.path.join(tmp, n) for n in ("a.img", "n1.img", "n2.img", "m.img"))
make_pattern_disk(A, 8 << 20, "nvA")
make_pattern_disk(M, 2 << 20, "nvM")
make_pattern_disk(N1, 4 << 20, "nsOne")
make_pattern_disk(N2, 4 << 20, "nsTwo")
n1_hash = sha(N1)

BAD, WBAD = 1234, 3000
rules = blkdebug_read_error(BAD) + ('\n[inject-error]\nevent = "write_aio"\niotype = "write"\nerrno = "5"\n'
                                   f'sector = "{WBAD}"\nonce = "off"\n')
EUI64 = "0123456789abcdef"
disks = [dict(path=A, transport="nvme", serial="NV-ONE", blkdebug_rules=rules),
         dict(path=N2, transport="nvme-ns", bus="nvc", nsid=2, lbs=4096)]
# Namespace 1 by hand: the harness has no way to give it an EUI-64 (QEMU 7.2 has no NGUID knob).
ctrl = ["-device", "nvme,id=nvc,serial=NV-MULTI",
        "-drive", f"if=none,id=ns1,file={N1},format=raw,cache=none",
        "-device", f"nvme-ns,drive=ns1,bus=nvc,nsid=1,eui64=0x{EUI64}",
        # A controller with a 16 KiB MDTS (2^2 pages): every larger request is split.
        "-drive", f"if=none,id=md,file={M},format=raw,cache=none",
        "-device", "nvme,drive=md,serial=NV-MDTS,mdts=2"]
with Machine(disks=disks, controllers=ctrl, name="nvme") as m:
    m.wait_prompt(60)
    out = m.cmd("disks")
    rows = dict(re.findall(r"^(nvme\d+n\d+)\s+(.*)$", out, re.M))
    one = next((n for n, r in rows.items() if "NV-ONE" in r), None)
    multi = sorted(n for n, r in rows.items() if "NV-MULTI" in r)
    check("one namespace on the first controller, two on the second", one and len(multi) == 2, out)
    ns1, ns2 = (multi + [None, None])[:2]
    check("namespaces are named nvme<c>n<nsid>", ns1 and ns1.endswith("n1") and ns2.endswith("n2"), out)
    check("a 4096-byte LBA format is reported", ns2 and re.search(rf"^{ns2}\s+4\.0 MiB\s+4096/4096", out, re.M), out)
    check("the model is the controller's", one and "QEMU NVMe Ctrl" in rows[one], out)
    check("capacities and sector sizes are the images'",
          one and ns1 and re.match(r"\s*8\.0 MiB\s+512/512", rows[one]) and re.match(r"\s*4\.0 MiB\s+512/512", rows[ns1]), out)
    md = next((n for n, r in rows.items() if "NV-MDTS" in r), None)
    o = m.cmd(f"info {md}")
    check("MDTS limits the transfer size", "max transfer 16 KiB" in o and "limits: 32 sectors per command" in o, o)
    check_sum(m, "a read split at MDTS matches the host", md, 5, 3001, M)
    o = m.cmd(f"testwrite {md} 50 100 0x77")
    check("a write split at MDTS is acknowledged", "wrote and flushed 100 sectors" in o, o)
    for lba, count in ((0, BAD), (7, 1000), (BAD + 1, 16383 - BAD), (16383, 1)):   # around BAD
        check_sum(m, f"sum of {count} sectors at {lba} matches the host", one, lba, count, A)
    check_sum(m, "the 4096-byte namespace reads correctly", ns2, 0, 1024, N2, 4096)
    check_sum(m, "an unaligned 4096-byte read over several commands matches", ns2, 3, 509, N2, 4096)
    o = m.cmd(f"testwrite {ns2} 100 40 0x5a")
    check("a 160 KiB write (a PRP list) is acknowledged", "wrote and flushed 40 sectors" in o, o)
    o = m.cmd(f"info {ns1}")
    check("info shows the namespace's EUI-64", f"namespace id: EUI-64 {EUI64}" in o, o)
    check("info shows the firmware and the transfer limit", re.search(r"firmware '[^']+', max transfer \d+ KiB", o), o)
    o = m.cmd(f"read {ns1} 77")
    check("the first namespace of the second controller reads", "nsOne lba 77" in o, o[:200])
    o = m.cmd(f"testwrite {ns2} 10 2 0x66")
    check("write and flush on a namespace are acknowledged", "wrote and flushed 2 sectors" in o, o)
    m.cmd(f"protect {ns1}")
    o = m.cmd(f"testwrite {ns1} 0 1 0")
    check("a protected (source) namespace refuses writes", "device is read-only" in o, o)
    o = m.cmd(f"read {one} {BAD}")
    check("a blkdebug error is a media error naming the LBA", f"media error (unreadable sector) at LBA {BAD}" in o, o)
    # Spanning the bad sector: the failing LBA comes from the Error Information log when the
    # controller records one there; QEMU 7.2 returns an empty log, so the command's first LBA.
    o = m.cmd(f"read {one} {BAD - 3} 8")
    lg = m.cmd("log 4")
    named = re.search(r"error log entry \d+ for command 0x[0-9a-f]{4} names LBA (\d+)", lg)
    empty = re.search(r"error log \((\d+) valid entries of (\d+)\) names no LBA for command 0x[0-9a-f]{4}: "
                      rf"LBA {BAD - 3} is the command's first", lg)
    check("the error log is read and decoded after a media error", named or empty, lg)
    if named:
        check("the error log's LBA is the bad sector and is the one reported",
              int(named.group(1)) == BAD and f"media error (unreadable sector) at LBA {BAD}\n" in o, o + lg)
    else:
        check("without an error log entry the command's first LBA is reported",
              f"media error (unreadable sector) at LBA {BAD - 3}\n" in o, o)
    o = m.cmd(f"read {one} {BAD + 1}")
    check("the queue keeps working after a media error", f"nvA lba {BAD + 1}" in o, o[:200])
    o = m.cmd(f"testwrite {one} {WBAD - 1} 4 0x11")
    check("a failing write is an I/O error, not a media error", "error: I/O error" in o and "media" not in o, o)
    o = m.cmd(f"testwrite {one} {WBAD + 8} 2 0x22")
    check("writes work after a failed write", "wrote and flushed 2 sectors" in o, o)
    check_sum(m, "large reads after the media errors match the host", one, BAD + 1, 4000, A)
    o = m.cmd(f"info {one}")
    check("info shows the health log (warnings, temperature, spare, used, media errors)",
          re.search(r"health: warnings 0x[0-9a-f]{2}, temperature -?\d+ C, spare \d+%, used \d+%, "
                    r"media errors \d+, power-on hours \d+", o), o)
    code = m.poweroff_and_wait()
    check("poweroff", code == 0, code)
    check("each controller is shut down (CC.SHN) before the power-off",
          len(re.findall(r"nvme\d: shut down in \d+ ms", m.buf)) == 3 and m.buf.rfind("shut down") < m.buf.find("powering off"), m.buf)
with open(N2, "rb") as f:
    f.seek(10 * 4096)
    check("the written 4 KiB sectors reached the host image", f.read(2 * 4096) == b"\x66" * 8192)
    f.seek(100 * 4096)
    check("the PRP-list write reached the host image", f.read(40 * 4096) == b"\x5a" * 40 * 4096)
with open(A, "rb") as f:
    f.seek((WBAD + 8) * 512)
    check("the write after the failed one reached the host image", f.read(1024) == b"\x22" * 1024)
with open(M, "rb") as f:
    f.seek(49 * 512)
    got = f.read(102 * 512)
    check("the split write reached the host image, and no further",
          got[512:-512] == b"\x77" * 100 * 512 and got[:512] != b"\x77" * 512 and got[-512:] != b"\x77" * 512)
check("the protected namespace's image is unchanged", sha(N1) == n1_hash)

finish()
