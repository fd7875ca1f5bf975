#!/usr/bin/env python3
"""A rescue of a drive with a dead head (tests/qemu/deadhead_disk.py over nbdkit, geometry
qemu-4h: 4 heads, head 2 dead, two zones, two bad sectors, a weak area) through the console: the
head map is said in the log, `status` and the summary; every readable sector is rescued after
well under one read of a bad area per band (the drive model counts); the mapfile is exact
(ddrescuelog accepts it with the totals of the map, nothing finished that is bad, nothing bad
that reads, the insides of the bands left unread by passes= and then read by a domain rescue);
finished data equals the source (cowtool export) and the source image is unchanged."""
import os
import re
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cowboot_qemu import (BUILD, Machine, check, finish, make_pattern_disk, map_text,  # noqa: E402
                          parse_mapfile, sha256_file)
from deadhead_geometry import Geometry  # noqa: E402
from deadhead_nbd import DeadheadNbd, geometry  # noqa: E402

SECTOR = 512
tmp = tempfile.mkdtemp(prefix="cowboot-deadhead-")
spec = geometry("qemu-4h")
src, cow = os.path.join(tmp, "src.img"), os.path.join(tmp, "cow.img")


def states(blocks, nsect):
    st = bytearray(b"?" * nsect)
    for p, s, c in blocks:
        st[p // SECTOR:(p + s) // SECTOR] = c.encode() * (s // SECTOR)
    return st


geo = Geometry(spec)
make_pattern_disk(src, geo.sectors * SECTOR, "deadhead")
with open(cow, "wb") as f:
    f.truncate(geo.sectors * SECTOR + (32 << 20))
src_hash = sha256_file(src)
bad = geo.bad_ranges()
isbad = bytearray(geo.sectors)
for a, b in bad:
    isbad[a:b] = b"\x01" * (b - a)
bands = geo.bands(64)

with DeadheadNbd(src, spec, tmp) as nbd:
    disks = [dict(nbd_socket=nbd.sock, serial="DEADHEAD-1", readonly=True), dict(path=cow, serial="COW-1")]
    with Machine(disks=disks, name="deadhead") as m:
        m.wait_prompt(60)
        m.cmd("cow format vd2 vd1 --yes", 60)
        out = m.cmd("cow open vd1 vd2", 60)
        check("the dead-head drive opens as ov0", "ov0: vd2 over vd1" in out, out)
        m.cmd("set progress=lines")
        base = nbd.stats()
        out = m.cmd("rescue ov0 timeout=1000 retries=0 passes=copy,trim,scrape,retry")
        check("rescue starts", "ov0: rescue started" in out, out)
        out = m.cmd("wait ov0", 900)
        tail = m.last_before + out
        check("the summary names the head map in words",
              re.search(r"ov0: head map: bad areas repeat every 768 KiB, 192 KiB long: likely one failed head of four", tail),
              tail[-1500:])
        st = nbd.stats()
        done_bad = (st["done_bad_reads"] or 0) - base["bad_reads"] if st.get("done_time") else None
        print(f"drive: {st['reads'] - base['reads']} reads, every readable sector read after "
              f"{done_bad} reads of bad areas for {len(bands)} bands")
        check("every readable sector was read (the drive model says)", st.get("done_time") is not None, st)
        check("after well under one read of a bad area a band (with the head map)",
              done_bad is not None and done_bad * 4 <= len(bands) * 3, (done_bad, len(bands)))
        out = m.cmd("status")
        check("status says the head map and that the bands' insides are left unread",
              "head map: bad areas repeat every" in out and "left unread" in out and "passes=...,interiors" in out, out)
        out = m.cmd("log 400")
        check("the log has the pattern, learnt per zone", out.count("bad areas repeat every") >= 2 and
              "the insides of large bad areas are left unread" in out, out[-3000:])
        mp = map_text(m.cmd("map ov0", 60))
        mapfile = os.path.join(tmp, "first.map")
        with open(mapfile, "w") as f:
            f.write(mp)
        blocks = parse_mapfile(mp)
        s = states(blocks, geo.sectors)
        wrong_fin = sum(1 for k in range(geo.sectors) if s[k] == ord("+") and isbad[k])
        weak = bytearray(geo.sectors)   # weak sectors may be finished or bad (they failed a read)
        for a, b in geo.weak_ranges():
            weak[a:b] = b"\x01" * (b - a)
        wrong_bad = sum(1 for k in range(geo.sectors) if s[k] == ord("-") and not isbad[k] and not weak[k])
        unread_good = sum(1 for k in range(geo.sectors) if s[k] != ord("+") and not isbad[k] and not weak[k])
        check("the map is exact: nothing bad is finished, nothing marked bad reads, every readable sector is finished",
              wrong_fin == 0 and wrong_bad == 0 and unread_good == 0, (wrong_fin, wrong_bad, unread_good))
        t = subprocess.run(["ddrescuelog", "-t", mapfile], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        fin = sum(sz for p, sz, c in blocks if c == "+")
        got = re.search(r"rescued:\s+(\d+) kB", t.stdout)
        check("ddrescuelog -t accepts the map, with its rescued total (kB)",
              t.returncode == 0 and got and abs(int(got.group(1)) * 1000 - fin) < 1000, t.stdout)
        # Three bands of the second zone, all phases: their insides too, to the truth.
        lo, hi = bands[60][0], bands[62][1]
        out = m.cmd(f"rescue ov0 timeout=1000 retries=1 domain=lba:{lo}+{hi - lo}")
        out = m.cmd("wait ov0", 600)
        mp = map_text(m.cmd("map ov0", 60))
        s = states(parse_mapfile(mp), geo.sectors)
        wrong = sum(1 for k in range(lo, hi) if s[k] != (ord("-") if isbad[k] else ord("+")))
        check("a domain rescue over three bands reads their insides too: the map equals the truth there",
              wrong == 0, wrong)
        code = m.poweroff_and_wait()
        check("poweroff after the rescue", code == 0, code)
    blocks = parse_mapfile(mp)
    ex = os.path.join(tmp, "export.img")
    r = subprocess.run([os.path.join(BUILD, "cowtool"), "export", cow, ex], stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, text=True)
    diff = r.returncode
    if r.returncode == 0:
        with open(ex, "rb") as a, open(src, "rb") as b:
            for p, sz, c in blocks:
                if c == "+":
                    a.seek(p)
                    b.seek(p)
                    diff += a.read(sz) != b.read(sz)
    check("every finished sector equals the source (cowtool export)", diff == 0, r.stdout)
check("the source image is unchanged", sha256_file(src) == src_hash)
shutil.rmtree(tmp, ignore_errors=True)
finish()
