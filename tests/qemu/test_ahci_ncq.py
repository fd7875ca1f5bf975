#!/usr/bin/env python3
"""AHCI NCQ through the console: many commands in flight read the host's bytes and write what
the host then sees; an NCQ error (blkdebug EIO) is recovered by issuing the queue again one
command at a time, naming the bad LBA; the sata-ncq setting turns NCQ off and on."""
import os
import re
import sys
import shutil
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cowboot_qemu import (Machine, blkdebug_read_error, check, finish,  # noqa: E402
                          make_pattern_disk, sum_matches)

tmp = tempfile.mkdtemp(prefix="cowboot-ahcincq-")
good, bad = os.path.join(tmp, "good.img"), os.path.join(tmp, "bad.img")
make_pattern_disk(good, 32 << 20, "good")
make_pattern_disk(bad, 8 << 20, "bad")
flaky = os.path.join(tmp, "flaky.img")
make_pattern_disk(flaky, 4 << 20, "flaky")
FLAKY = (100, 200, 300)   # each fails once: an error that does not repeat without NCQ
flaky_rules = "".join(f'[inject-error]\nevent = "read_aio"\niotype = "read"\nerrno = "5"\n'
                      f'sector = "{s}"\nonce = "on"\n' for s in FLAKY)
BAD = 12345
SECTORS = (32 << 20) // 512
disks = [dict(path=good, transport="sata", serial="N-GOOD", bus="ide.0"),
         dict(path=bad, transport="sata", serial="N-BAD", bus="ide.1",
              blkdebug_rules=blkdebug_read_error(BAD)),
         dict(path=flaky, transport="sata", serial="N-FLAKY", bus="ide.2", blkdebug_rules=flaky_rules)]


def info_ncq(m, name):
    out = m.cmd(f"info {name}")
    got = re.search(r"NCQ: depth (\d+), (on|off)[^,]*, most in flight (\d+), errors (\d+)", out)
    return (int(got.group(1)), got.group(2), int(got.group(3)), int(got.group(4))) if got else None, out


with Machine(disks=disks, name="ahcincq") as m:
    m.wait_prompt(60)
    n = {s: name for name, s in re.findall(r"^(sata\d)\s.*\s(N-\S+)\s+ahci", m.cmd("disks"), re.M)}
    g, b, fl = n.get("N-GOOD"), n.get("N-BAD"), n.get("N-FLAKY")
    st, out = info_ncq(m, g)
    check("IDENTIFY and CAP give NCQ with 32 tags, on by default", st and st[:2] == (32, "on"), out)
    ok, out = sum_matches(m, g, 0, SECTORS, good, timeout=120)
    check("a 32 MiB read split over many NCQ commands matches the host", ok, out)
    ok, out = sum_matches(m, g, 1001, 40000, good, timeout=120)
    check("an unaligned 40000-sector read over NCQ matches the host", ok, out)
    out = m.cmd(f"bench {g} 32", 120)
    check("bench reads the disk with 8 requests in flight", "queue depth 8" in out, out)
    st, out = info_ncq(m, g)
    check("several NCQ commands were in flight at once", st and st[2] > 1 and st[3] == 0, out)
    out = m.cmd(f"testwrite {g} 5000 20000 0x3c", 120)
    check("a write over many NCQ commands, then a flush, is acknowledged",
          "wrote and flushed 20000 sectors" in out, out)

    st0, _ = info_ncq(m, b)
    out = m.cmd(f"sum {b} 0 16384", 120)
    got = re.search(r"media error \(unreadable sector\) at LBA (\d+)", out)
    # QEMU reports a backend EIO as ABRT without an LBA: the failing command's first sector.
    check("an NCQ read over a bad sector fails naming a sector of the failing command at or before it",
          got and BAD - 8192 < int(got.group(1)) <= BAD, out)
    log = m.cmd("log 30")
    check("the NCQ error was logged and the queue issued again one at a time",
          re.search(rf"{b}: NCQ error .*issuing them again one at a time", log), log)
    st, out = info_ncq(m, b)
    check("info counts the NCQ error", st and st0 and st[3] == st0[3] + 1, out)
    ok, out = sum_matches(m, b, BAD + 1, 16384 - BAD - 1, bad, timeout=120)
    check("after the NCQ error the port reads its neighbours with NCQ again", ok, out)
    st2, out = info_ncq(m, b)
    check("no further NCQ error on good sectors", st2 and st2[3] == st[3], out)

    out = m.cmd(f"bench {b} 8", 120)
    got = re.search(r"media error \(unreadable sector\) at LBA (\d+)", out)
    check("bench over the bad sector with 8 NCQ reads in flight fails naming it",
          got and BAD - 2048 < int(got.group(1)) <= BAD, out)
    log = m.cmd("log 10")
    inflight = [int(x) for x in re.findall(rf"{b}: NCQ error \(TFD 0x[0-9a-f]+, (\d+) in flight\)", log)]
    check("that NCQ error took back several commands in flight", inflight and max(inflight) > 1, log)
    ok, out = sum_matches(m, b, 0, 4096, bad, timeout=120)
    check("the port reads correctly after recovering a full queue", ok, out)

    for i, sector in enumerate(FLAKY):
        out = m.cmd(f"read {fl} {sector}")
        check(f"an NCQ error that does not repeat: the read of {sector} succeeds one at a time",
              f"flaky lba {sector}" in out, out[:300])
        log = m.cmd("log 4")
        check(f"it is counted as an NCQ-only error ({i + 1})",
              f"{fl}: the NCQ error did not repeat without NCQ ({i + 1} so far)" in log, log)
    check("after three of them NCQ is turned off for that disk", f"{fl}: NCQ turned off for this disk" in log, log)
    st, out = info_ncq(m, fl)
    check("info says why NCQ is off, and the disk takes one command at a time",
          st and st[1] == "off" and "after NCQ-only errors" in out and "queue depth 1," in out, out)
    ok, out = sum_matches(m, fl, 0, 8192, flaky, timeout=120)
    check("the disk reads correctly without NCQ", ok, out)
    st, out = info_ncq(m, g)
    check("the other disks keep NCQ", st and st[1] == "on", out)

    m.cmd("set sata-ncq=off")
    st, out = info_ncq(m, g)
    check("the sata-ncq setting turns NCQ off", st and st[1] == "off", out)
    out = m.cmd(f"info {g}")
    check("the disk then takes one command at a time", "queue depth 1," in out, out)
    ok, out = sum_matches(m, g, 3, 30000, good, timeout=120)
    check("reads without NCQ match the host", ok, out)
    out = m.cmd(f"read {b} {BAD}")
    check("a bad sector without NCQ is still a media error naming it",
          f"media error (unreadable sector) at LBA {BAD}" in out, out)
    m.cmd("set sata-ncq=on")
    out = m.cmd(f"info {g}")
    check("NCQ back on: the disk takes 32 commands", "queue depth 32," in out, out)
    code = m.poweroff_and_wait()
    check("poweroff", code == 0, code)
with open(good, "rb") as f:
    f.seek(5000 * 512)
    check("the NCQ write reached the host image", f.read(20000 * 512) == b"\x3c" * (20000 * 512))
    f.seek(4999 * 512)
    check("the sectors around the write are untouched", f.read(512).startswith(b"good lba 4999\n"))
shutil.rmtree(tmp, ignore_errors=True)
finish()
