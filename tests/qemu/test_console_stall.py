#!/usr/bin/env python3
"""Output never stalls the work: a rescue runs on a slow source while the console prints the long
map of a second overlay (16,000 extents, about 420 KB, imported on the host with cowtool) and
its source reads go on at the idle rate; then the serial reader stops reading for 30 s in the
middle of that map and the source is read and commits reach the cow on disk meanwhile (checked
from the host); afterwards every line of the map arrives, none lost. Meanwhile a third rescue,
on a throttled source where every read fails, runs 1000 retry passes and logs each one: those
job lines find the queue full and are dropped, and once the reader is back the
note saying how many lines and bytes were not sent arrives over serial, matching the counters."""
import atexit
import json
import os
import re
import shutil
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
PAUSE_S = 30
SIZE2, EXTENTS = 1 << 30, 16000      # the second overlay: max_extents is sectors / 64
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
atexit.register(shutil.rmtree, tmp, True)   # 2.3 GiB of sparse images
src, cow = os.path.join(tmp, "src.img"), os.path.join(tmp, "cow.img")
make_pattern_disk(src, SIZE, "source")
with open(cow, "wb") as f:
    f.truncate(SIZE + (16 << 20))
src_hash = sha256_file(src)

# The second pair: a sparse source, its cow made on the host from a mapfile of 16,000 extents.
src2, cow2, mapf = (os.path.join(tmp, n) for n in ("src2.img", "cow2.img", "long.map"))
for path, size in ((src2, SIZE2), (cow2, SIZE2 + (64 << 20))):
    with open(path, "wb") as f:
        f.truncate(size)
with open(mapf, "w") as f:
    f.write("# Mapfile\n0x00000000     +               1\n")
    step = SIZE2 // EXTENTS // 512 * 512
    for i in range(EXTENTS):
        size = step if i < EXTENTS - 1 else SIZE2 - step * i
        f.write(f"0x{step * i:08X}  0x{size:08X}  {'+-'[i % 2]}\n")
for argv in ([COWTOOL, "format", cow2, src2, "--yes"], [COWTOOL, "import-map", cow2, mapf, "--image", src2]):
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL)
src2_hash = sha256_file(src2)
# The third pair: a source behind blkdebug (every read fails; with nothing that ever read well
# the rescue trusts the failures, so it never pauses for a dead drive) and a throttle (20 reads
# a second), so its retry passes, an event each, go on all through the stall. (virtio: QEMU
# 7.2's AHCI crashes when failing reads meet a throttle.)
src3, cow3, rules3 = (os.path.join(tmp, n) for n in ("src3.img", "cow3.img", "bad3.conf"))
make_pattern_disk(src3, 4 << 20, "chatty")
with open(cow3, "wb") as f:
    f.truncate(18 << 20)
with open(rules3, "w") as f:
    f.write('[inject-error]\nevent = "read_aio"\niotype = "read"\nerrno = "5"\nonce = "off"\n')
src3_hash = sha256_file(src3)
node3 = {"driver": "raw", "node-name": "s3raw", "read-only": True,
         "file": {"driver": "blkdebug", "config": rules3, "image": {"driver": "file", "filename": src3}}}
EXTRA3 = ["-object", "throttle-group,id=tg3,x-iops-read=20", "-blockdev", json.dumps(node3),
          "-blockdev", "driver=throttle,node-name=s3,throttle-group=tg3,file=s3raw,read-only=on",
          "-device", "virtio-blk-pci,drive=s3,serial=CHATTY-3"]
NOTE = re.compile(r"\(console: (\d+) lines, (\d+) bytes not sent while the serial line was slow; "
                  r"log has the events\)")
MAP_LINE = re.compile(r"^0x[0-9A-F]{8,}\s+0x[0-9A-F]{8,}\s+[-+?*/]$", re.M)

with FailingNbd(src, ZONES, tmp) as nbd:
    disks = [dict(nbd_socket=nbd.sock, serial="SLOW-1", readonly=True), dict(path=cow, serial="COW-S"),
             dict(path=src2, serial="SPARSE-2", readonly=True), dict(path=cow2, serial="COW-L"),
             dict(path=cow3, serial="COW-3")]
    with Machine(disks=disks, name="stall", extra_args=EXTRA3) as m:
        m.wait_prompt(60)
        m.cmd("cow format vd2 vd1 --yes", 60)
        out = m.cmd("cow open vd1 vd2", 60)
        check("the cow opens over the slow source", "ov0: vd2 over vd1" in out, out)
        out = m.cmd("cow open vd3 vd4", 60)
        check("the host-made cow with 16,000 extents opens", "ov1: vd4 over vd3" in out, out)
        m.cmd("rescue ov0 commit=1000 max-read=64K")

        # The rate with the console idle, then while a long listing prints (the reader keeps up).
        b0 = nbd.stats()["bytes"]
        drain(m, 6)
        idle = (nbd.stats()["bytes"] - b0) / 6
        t0, b0 = time.time(), nbd.stats()["bytes"]
        listing = m.cmd("map ov1", 120)
        dt = time.time() - t0
        busy = (nbd.stats()["bytes"] - b0) / dt
        lines = len(MAP_LINE.findall(listing))
        check("a long map prints whole while a rescue runs", lines == EXTENTS, (lines, len(listing)))
        print(f"source reads: idle {idle / 1e3:.0f} KB/s, during {dt:.1f} s of map ({len(listing)} bytes) "
              f"{busy / 1e3:.0f} KB/s")
        check("a long map does not slow the running rescue", idle > 0 and busy >= 0.5 * idle, (idle, busy))

        # The third rescue logs a retry pass every 50 ms or so from now on.
        got = re.search(r"^(vd\d+)\s.*CHATTY-3", m.cmd("disks"), re.M)
        chatty = got.group(1) if got else "vd6"
        m.cmd(f"cow format vd5 {chatty} --yes", 60)
        out = m.cmd(f"cow open {chatty} vd5", 60)
        check("the failing source opens over its cow", f"ov2: vd5 over {chatty}" in out, out)
        m.cmd("rescue ov2 passes=copy,retry retries=1000")
        time.sleep(3)
        print("ov2 before the stall:", re.findall(r"ov2 rescue:.*", m.cmd("status")))

        # The reader stops: the long map fills the socket and the console's queue.
        m.send("map ov1")
        time.sleep(2)
        b1, r1 = nbd.stats()["bytes"], committed(cow)
        time.sleep(PAUSE_S)
        b2, r2 = nbd.stats()["bytes"], committed(cow)
        print(f"during {PAUSE_S} s unread: source reads {b1} -> {b2}, committed rescued {r1} -> {r2}")
        check("the source is read while nobody reads the serial line", b2 - b1 > PAUSE_S * idle * 0.3,
              (b1, b2, idle))
        check("commits reach the cow while nobody reads the serial line", r1 >= 0 and r2 > r1, (r1, r2))
        m.wait_for(r"map ov1\n", 180)
        m.wait_prompt(180)
        seen = m.last_before
        lines = len(MAP_LINE.findall(seen))
        check("the map asked for arrives whole after the stall", lines == EXTENTS, lines)
        # The note comes once the queue has emptied: during the map's tail or after its prompt.
        notes = [(int(a), int(b)) for a, b in NOTE.findall(seen)]
        try:
            got = m.wait_for(NOTE.pattern, 10 if notes else 60)
            notes.append((int(got.group(1)), int(got.group(2))))
        except TimeoutError:
            pass
        print("ov2 after the stall:", re.findall(r"ov2 rescue:.*", m.cmd("status")))
        out = m.cmd("screen")
        dropped = re.search(r"(\d+) lines dropped \((\d+) bytes\)", out)
        print(f"notes of dropped output: {notes}; console counters: {dropped and dropped.group(0)}")
        check("the job lines that found the queue full are noted over serial once the reader is back "
              "(the note's lines and bytes add up to the console's drop counters)",
              notes and all(a > 0 and b > a for a, b in notes) and dropped and
              (sum(a for a, b in notes), sum(b for a, b in notes)) == (int(dropped.group(1)), int(dropped.group(2))),
              (notes, out))
        logged = m.cmd("log 3")
        check("the event log kept what the console dropped (the job's events)", "ov2:" in logged, logged)
        mm = re.search(r"the shell waited (\d+) times", out)
        check("the listing really waited for the line (the queue was full)", mm and int(mm.group(1)) > 0, out)
        m.cmd("stop ov2", 60)
        out = m.cmd("wait ov0", 600)
        out = m.cmd("status")
        check("the rescue finishes", "ov0 rescue: finished" in out, out)
        blocks = parse_mapfile(map_text(m.cmd("map ov0", 60)))
        check("the rescue's map has the bad area and everything else rescued",
              sum(s for p, s, st in blocks if st == "+") == SIZE - 16 * 512, blocks)
        m.poweroff_and_wait(60)
check("the source images are unchanged", sha256_file(src) == src_hash and sha256_file(src2) == src2_hash and
      sha256_file(src3) == src3_hash)
finish()
