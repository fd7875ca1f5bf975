#!/usr/bin/env python3
"""A rescue of a simulated failing drive (nbdkit python plugin: bad sectors, a bad zone, weak
sectors, a slow zone, a hanging zone) driven through the serial console: the console stays
usable while the job runs, the final map equals the simulation's truth and is accepted by
ddrescuelog, every finished sector exported by cowtool equals the source, the source image is
unchanged; then domain, reset and a second rescue."""
import os
import re
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cowboot_qemu import (BUILD, FailingNbd, Machine, check, finish, map_text,  # noqa: E402
                          parse_mapfile, sha256_file, source_and_cow)

SECTOR = 512
SIZE = 32 << 20
ZONES = [
    dict(start=5000, count=3, kind="bad"),
    dict(start=16384, count=1024, kind="bad"),          # a 512 KiB bad zone
    dict(start=24000, count=4, kind="weak", tries=1),   # reads on the second try
    dict(start=32768, count=1024, kind="slow", delay_ms=30),
    dict(start=40960, count=4, kind="hang", delay_ms=1500),   # longer than timeout=1000
    dict(start=50001, count=1, kind="bad"),
]


def truth_bad():
    bad = set()
    for z in ZONES:
        if z["kind"] in ("bad", "hang"):
            bad.update(range(z["start"], z["start"] + z["count"]))
    return bad


def map_vs_truth(blocks):
    """(sectors whose state differs from the truth, sectors not covered, the totals by state)."""
    bad = truth_bad()
    wrong, covered, totals = 0, 0, {}
    for pos, size, st in blocks:
        totals[st] = totals.get(st, 0) + size
        for s in range(pos // SECTOR, (pos + size) // SECTOR):
            covered += 1
            want = "-" if s in bad else "+"
            wrong += st != want
    return wrong, SIZE // SECTOR - covered, totals


def finished_equal_source(cow_img, src_img, blocks, tmp):
    out = os.path.join(tmp, "export.img")
    ex = subprocess.run([os.path.join(BUILD, "cowtool"), "export", cow_img, out],
                        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if ex.returncode != 0:
        return False, ex.stdout
    with open(out, "rb") as a, open(src_img, "rb") as b:
        for pos, size, st in blocks:
            if st != "+":
                continue
            a.seek(pos)
            b.seek(pos)
            if a.read(size) != b.read(size):
                return False, f"finished block at {pos:#x} differs"
    return True, ""


tmp, src, cow, src_hash = source_and_cow("rescue", SIZE, 48 << 20)
blocks = []

with FailingNbd(src, ZONES, tmp) as nbd:
    disks = [dict(nbd_socket=nbd.sock, serial="FAILING-1", readonly=True), dict(path=cow, serial="COW-1")]
    with Machine(disks=disks, name="rescue") as m:
        m.wait_prompt(60)
        out = m.cmd("rescue ov0")
        check("rescue of an unknown overlay says so", "no overlay 'ov0'" in out, out)
        m.cmd("cow format vd2 vd1 --yes", 60)
        out = m.cmd("cow open vd1 vd2", 60)
        check("the failing source opens as ov0", "ov0: vd2 over vd1" in out, out)
        out = m.cmd("rescue ov0 retries=x")
        check("a bad option is refused with a usage line and no job", "retries=x: not a number" in out and "usage:" in out, out)
        out = m.cmd("rescue ov0 speed=9")
        check("an unknown option is named", "speed=9: no such option" in out, out)
        m.cmd("set progress=lines")
        out = m.cmd("rescue ov0 timeout=1000 retries=1")
        check("rescue starts in the background and returns at once", "ov0: rescue started" in out, out)
        out = m.cmd("status")
        check("status answers while the job runs", re.search(r"ov0 rescue: (running|finished)", out) and "rescued" in out, out)
        out = m.cmd("rescue ov0")
        check("a second job on the same overlay is refused", "already has a rescue job" in out, out)
        out = m.cmd("cow close ov0")
        check("closing an overlay under a running job is refused", "has a rescue job" in out, out)
        out = m.cmd("wait ov0", 600)
        check("wait returns when the job finishes, with a summary",
              re.search(r"ov0: rescue finished in \d+ s: rescued .* bad 516\.0 KiB in 4 areas", m.last_before + out), out)
        check("the hanging zone was reset by the deadline, not waited out",
              "timed out after 1000 ms" in out, out[-2000:])
        out = m.cmd("log 200")
        check("the event log has the phase changes", all(p in out for p in ("copying, pass 1", "trimming", "scraping", "retrying")), out)
        copy_phase = out[out.find("copying, pass 1"):out.find("trimming, pass 1")]
        hangs = copy_phase.count("timed out after 1000 ms")
        check("the copy passes get past the hanging zone within a few deadlines", 1 <= hangs <= 3, copy_phase)
        mp = map_text(m.cmd("map ov0", 60))
        with open(os.path.join(tmp, "final.map"), "w") as f:
            f.write(mp)
        check("the mapfile names the rescue command and says Finished",
              "# Command line: rescue ov0 timeout=1000 retries=1" in mp and "\n# Finished\n" in mp and
              re.search(r"^0x[0-9A-F]{8,}\s+\+\s+\d+$", mp, re.M), mp[:400])
        blocks = parse_mapfile(mp)
        wrong, missing, totals = map_vs_truth(blocks)
        check("the final map equals the truth of the simulation", wrong == 0 and missing == 0, (wrong, missing, totals))
        t = subprocess.run(["ddrescuelog", "-t", os.path.join(tmp, "final.map")], stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True)
        bad_bytes = len(truth_bad()) * SECTOR
        check("ddrescuelog -t accepts the map with the same totals",
              t.returncode == 0 and re.search(r"bad-sector:\s+%d B,\s+in\s+4 area" % bad_bytes, t.stdout), t.stdout)
        stats = nbd.stats()
        print(f"drive: {stats['reads']} reads, {stats['bad_reads']} touched bad areas")

        out = m.cmd("domain ov0 lba:16384+100")
        check("domain restricts the next rescue", "covers 100 sectors in 1 ranges" in out, out)
        out = m.cmd("domain ov0 lba:99999999+1")
        check("a domain outside the source is refused", "bad domain" in out and "usage:" in out, out)
        out = m.cmd("reset ov0 +")
        check("reset refuses finished as a type", "types are" in out, out)
        out = m.cmd("reset ov0")
        check("reset turns bad areas back into non-tried", f"{bad_bytes} bytes in 4 areas are non-tried again" in out, out)
        out = m.cmd("rescue ov0 timeout=1000 retries=0")
        out = m.cmd("wait ov0", 300)
        mp = map_text(m.cmd("map ov0", 60))
        blocks = parse_mapfile(mp)
        nontried = sum(s for p, s, st in blocks if st == "?")
        check("the domain rescue tried only its 100 sectors",
              nontried == bad_bytes - 100 * SECTOR, (nontried, mp))
        code = m.poweroff_and_wait()
        check("poweroff after the rescue", code == 0, code)

    ok, why = finished_equal_source(cow, src, blocks, tmp)
    check("every sector the map calls finished equals the source (cowtool export)", ok, why)
check("the source image is unchanged", sha256_file(src) == src_hash)
shutil.rmtree(tmp, ignore_errors=True)
finish()
