#!/usr/bin/env python3
"""Output never stalls the work: a rescue runs on a slow source while the console prints a long
listing (its source reads go on at the idle rate) and while the serial reader stops reading for
30 s in the middle of a 650 KB hexdump (the source is read and commits reach the cow on disk
meanwhile, checked from the host); afterwards every line of the hexdump arrives, none lost."""
import os
import re
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cowboot_qemu import (BUILD, FailingNbd, Machine, check, finish, make_pattern_disk,  # noqa: E402
                          map_text, parse_mapfile, sha256_file)

SIZE = 32 << 20
ZONES = [dict(start=0, count=SIZE // 512, kind="slow", delay_ms=100),
         dict(start=50000, count=16, kind="bad")]
HEX_LINES = 256 * 512 // 16          # `read <disk> 0 256`: one line per 16 bytes
PAUSE_S = 30
COWTOOL = os.path.join(BUILD, "cowtool")


def committed(cow):
    """Rescued bytes in the cow's last commit, read on the host while the appliance runs."""
    r = subprocess.run([COWTOOL, "map", cow], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    return sum(s for p, s, st in parse_mapfile(r.stdout) if st == "+") if r.returncode == 0 else -1


def drain(m, seconds):
    end = time.time() + seconds
    while time.time() < end:
        m._pump()


tmp = tempfile.mkdtemp(prefix="cowboot-stall-")
src, cow = os.path.join(tmp, "src.img"), os.path.join(tmp, "cow.img")
make_pattern_disk(src, SIZE, "source")
with open(cow, "wb") as f:
    f.truncate(SIZE + (16 << 20))
src_hash = sha256_file(src)

with FailingNbd(src, ZONES, tmp) as nbd:
    disks = [dict(nbd_socket=nbd.sock, serial="SLOW-1", readonly=True), dict(path=cow, serial="COW-S")]
    with Machine(disks=disks, name="stall") as m:
        m.wait_prompt(60)
        m.cmd("cow format vd2 vd1 --yes", 60)
        out = m.cmd("cow open vd1 vd2", 60)
        check("the cow opens over the slow source", "ov0: vd2 over vd1" in out, out)
        m.cmd("rescue ov0 commit=1000 max-read=64K")

        # The rate with the console idle, then while a long listing prints (the reader keeps up).
        b0 = nbd.stats()["bytes"]
        drain(m, 6)
        idle = (nbd.stats()["bytes"] - b0) / 6
        t0, b0 = time.time(), nbd.stats()["bytes"]
        listing = m.cmd("read vd2 0 256", 120)
        m.cmd("map ov0", 60)
        dt = time.time() - t0
        busy = (nbd.stats()["bytes"] - b0) / dt
        lines = len(re.findall(r"^[0-9a-f]{8}:", listing, re.M))
        check("a long listing prints whole while a rescue runs", lines == HEX_LINES, lines)
        print(f"source reads: idle {idle / 1e3:.0f} KB/s, during {dt:.1f} s of listing {busy / 1e3:.0f} KB/s")
        check("a long listing does not slow the running rescue", idle > 0 and busy >= 0.5 * idle,
              (idle, busy))

        # The reader stops: a 650 KB hexdump fills the socket and the console's queue.
        m.send("read vd2 0 256")
        time.sleep(2)
        b1, r1 = nbd.stats()["bytes"], committed(cow)
        time.sleep(PAUSE_S)
        b2, r2 = nbd.stats()["bytes"], committed(cow)
        print(f"during {PAUSE_S} s unread: source reads {b1} -> {b2}, committed rescued {r1} -> {r2}")
        check("the source is read while nobody reads the serial line", b2 - b1 > PAUSE_S * idle * 0.3,
              (b1, b2, idle))
        check("commits reach the cow while nobody reads the serial line", r1 >= 0 and r2 > r1, (r1, r2))
        m.wait_for(r"read vd2 0 256\n", 180)
        m.wait_prompt(180)
        lines = len(re.findall(r"^[0-9a-f]{8}:", m.last_before, re.M))
        check("the hexdump asked for arrives whole after the stall", lines == HEX_LINES, lines)
        out = m.cmd("screen")
        mm = re.search(r"the shell waited (\d+) times", out)
        check("the listing really waited for the line (the queue was full)", mm and int(mm.group(1)) > 0, out)
        out = m.cmd("wait", 600)
        out = m.cmd("status")
        check("the rescue finishes", "ov0 rescue: finished" in out, out)
        blocks = parse_mapfile(map_text(m.cmd("map ov0", 60)))
        check("the rescue's map has the bad area and everything else rescued",
              sum(s for p, s, st in blocks if st == "+") == SIZE - 16 * 512, blocks)
        m.poweroff_and_wait(60)
check("the source image is unchanged", sha256_file(src) == src_hash)
finish()
