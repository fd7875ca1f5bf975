#!/usr/bin/env python3
"""Rescue jobs that are paused, ended and cut off: stop/wake, quit then rescue again, and
kill -9 of QEMU at random moments of a rescue. After every cut the cow opens again and no
sector its map calls finished differs from the source; rescuing on to the end gives the
simulation's truth, as an uninterrupted run does; the source image never changes."""
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cowboot_qemu import (BUILD, FailingNbd, Machine, check, finish, make_pattern_disk,  # noqa: E402
                          map_text, parse_mapfile, sha256_file)

SECTOR = 512
SIZE = 48 << 20
ZONES = [
    dict(start=4096, count=92160, kind="slow", delay_ms=6),   # most of the disk: ~6 ms a read
    dict(start=20000, count=64, kind="bad"),
    dict(start=40000, count=512, kind="bad"),
    dict(start=60000, count=2, kind="weak", tries=1),
]
COWTOOL = os.path.join(BUILD, "cowtool")


def truth(s):
    return "-" if any(z["kind"] == "bad" and z["start"] <= s < z["start"] + z["count"] for z in ZONES) else "+"


def host_map(cow):
    r = subprocess.run([COWTOOL, "map", cow], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    return r.returncode, r.stdout


def wrong_finished(cow, src, tmp):
    """Sectors the cow's map (read on the host) calls finished whose data differs."""
    rc, text = host_map(cow)
    if rc != 0:
        return -1, text
    out = os.path.join(tmp, "cut.img")
    ex = subprocess.run([COWTOOL, "export", cow, out], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if ex.returncode != 0:
        return -1, ex.stdout
    wrong = 0
    with open(out, "rb") as a, open(src, "rb") as b:
        for pos, size, st in parse_mapfile(text):
            if st == "+":
                a.seek(pos)
                b.seek(pos)
                x, y = a.read(size), b.read(size)
                if x != y:
                    wrong += sum(1 for k in range(0, size, SECTOR) if x[k:k + SECTOR] != y[k:k + SECTOR])
    os.unlink(out)
    return wrong, text


def rescued_bytes(text):
    return sum(s for p, s, st in parse_mapfile(text) if st == "+")


tmp = tempfile.mkdtemp(prefix="cowboot-resume-")
src, cow = os.path.join(tmp, "src.img"), os.path.join(tmp, "cow.img")
src2, cow2 = os.path.join(tmp, "src2.img"), os.path.join(tmp, "cow2.img")
make_pattern_disk(src, SIZE, "source")
make_pattern_disk(src2, 8 << 20, "second")
with open(cow2, "wb") as f:
    f.truncate(16 << 20)
with open(cow, "wb") as f:
    f.truncate(64 << 20)
src_hash = sha256_file(src)
rng = random.Random(int(os.environ.get("COWBOOT_SEED", "7")))

with FailingNbd(src, ZONES, tmp) as nbd:
    disks = [dict(nbd_socket=nbd.sock, serial="FAILING-2", readonly=True), dict(path=cow, serial="COW-2")]

    # 1. two jobs at once; stop, wake, quit, and rescue again.
    more = [dict(path=src2, serial="SECOND-1", readonly=True), dict(path=cow2, serial="COW-4")]
    with Machine(disks=disks + more, name="resume") as m:
        m.wait_prompt(60)
        m.cmd("cow format vd2 vd1 --yes", 60)
        m.cmd("cow open vd1 vd2", 60)
        m.cmd("cow format vd4 vd3 --yes", 60)
        out = m.cmd("cow open vd3 vd4", 60)
        m.cmd("set progress=lines")
        m.cmd("rescue ov0 commit=1000 max-read=64K")
        out = m.cmd("rescue ov1")
        mm = re.search(r"rescue: the map holds (\d+) extents; memory allows about (\d+), the cow (\d+)", out)
        check("before it starts, a rescue says how many extents memory and the cow allow",
              mm and int(mm.group(2)) > 1000000 and int(mm.group(3)) >= 4096, out)
        out += m.cmd("status")
        check("two jobs run at once on two overlays", "ov1: rescue started" in out and
              re.search(r"ov0 rescue: running", out) and re.search(r"ov1 rescue: (running|finished)", out), out)
        out = m.cmd("wait ov1", 120)
        blocks1 = parse_mapfile(map_text(m.cmd("map ov1", 60)))
        check("the second job finishes its clean disk while the first runs",
              blocks1 == [(0, 8 << 20, "+")] and "ov0 rescue: running" in m.cmd("status"), blocks1)
        time.sleep(1)
        out = m.cmd("stop ov0", 60)
        out += m.cmd("status")
        check("stop pauses the job and commits", re.search(r"ov0: stopped at byte \d+, progress committed", out)
              and "ov0 rescue: stopped" in out, out)
        mp = map_text(m.cmd("map ov0", 60))
        check("a stopped job's mapfile has its command and phase in ddrescue's words",
              "# Command line: rescue ov0 commit=1000 max-read=64K" in mp and
              re.search(r"# Copying non-tried blocks\.\.\. Pass \d \((for|back)wards\)\n.*\n0x[0-9A-F]{8,}\s+\?\s+\d", mp), mp[:500])
        before = rescued_bytes(mp)
        time.sleep(1)
        after = rescued_bytes(map_text(m.cmd("map ov0", 60)))
        check("a stopped job reads nothing", before == after and before > 0, (before, after))
        out = m.cmd("wake ov0")
        time.sleep(1)
        out = m.cmd("status")
        check("wake resumes the job", "ov0 rescue: running" in out or "ov0 rescue: finished" in out, out)
        out = m.cmd("quit", 60)
        check("quit ends the jobs and commits", "all jobs ended; progress committed" in out, out)
        mid = rescued_bytes(map_text(m.cmd("map ov0", 60)))
        out = m.cmd("status")
        check("after quit the job is no longer running", "running" not in out, out)
        m.cmd("rescue ov0 commit=1000 max-read=64K")
        time.sleep(1)
        out = m.cmd("stop ov0", 60)
        again = rescued_bytes(map_text(m.cmd("map ov0", 60)))
        check("rescue after quit continues from the map", again >= mid > 0, (mid, again))
        m.kill()

    # 2. power cuts at random moments of the rescue.
    cuts, bad_cuts, details, progress = 0, 0, [], []
    for i in range(3):
        with Machine(disks=disks, name=f"cut{i}") as m:
            m.wait_prompt(60)
            out = m.cmd("cow open vd1 vd2", 60)
            if "ov0: vd2 over vd1" not in out:
                bad_cuts += 1
                details.append(out)
                break
            m.cmd("rescue ov0 commit=1000 max-read=64K")
            time.sleep(rng.uniform(0.5, 4.0))
            m.kill()
        cuts += 1
        wrong, text = wrong_finished(cow, src, tmp)
        progress.append(rescued_bytes(text))
        if wrong != 0:
            bad_cuts += 1
            details.append((wrong, text[:500]))
    print("rescued bytes at the cuts:", progress)
    good = sum(1 for k in range(SIZE // SECTOR) if truth(k) == "+") * SECTOR
    check("the cuts fell in the middle of the copy and progress survived them",
          all(a <= b for a, b in zip(progress, progress[1:])) and 0 < progress[0] < good and
          len(set(progress)) > 1, progress)
    check("after every kill -9 the cow opens and no finished sector differs from the source",
          cuts == 3 and bad_cuts == 0, details)

    with Machine(disks=disks, name="final") as m:
        m.wait_prompt(60)
        m.cmd("cow open vd1 vd2", 60)
        m.cmd("rescue ov0")
        out = m.cmd("wait ov0", 600)
        mp = map_text(m.cmd("map ov0", 60))
        code = m.poweroff_and_wait()
    blocks = parse_mapfile(mp)
    wrong_state = sum(1 for p, s, st in blocks for k in range(p // SECTOR, (p + s) // SECTOR) if st != truth(k))
    check("rescue after the cuts ends equal to the truth (as an uninterrupted run)", wrong_state == 0 and blocks, mp[:2000])
    wrong, text = wrong_finished(cow, src, tmp)
    check("and every finished sector equals the source", wrong == 0, text[:500])
check("the source image is unchanged", sha256_file(src) == src_hash)
shutil.rmtree(tmp, ignore_errors=True)
finish()
