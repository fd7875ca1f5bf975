#!/usr/bin/env python3
"""Drives with a dead head (tests/qemu/deadhead_disk.py over nbdkit, geometries bench-* of
tests/lib/deadhead_geometries.txt): GNU ddrescue 1.27 (`ddrescue -d`, on the host through a FUSE
file exported by qemu-storage-daemon) and cowboot's rescue in QEMU, without and with the head
map (infer=off, infer=on), on the same drives. The drive model records the moment every readable
sector had been read once; each tool is stopped there (or at BENCH_DEADHEAD_LIMIT seconds).
Printed: reads of bad areas until then, per bad band, and the time until then.
BENCH_DEADHEAD_GEOMS=name,... picks geometries; BENCH_DEADHEAD_BAD_MS is the time each read of a
bad area costs in the model (a real drive retrying a dead head takes seconds; the estimate
column counts 2 s each)."""
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "qemu"))
from cowboot_qemu import Machine, map_text, parse_mapfile  # noqa: E402
from deadhead_geometry import Geometry, load  # noqa: E402
from deadhead_nbd import GEOMETRIES, DeadheadNbd  # noqa: E402

LIMIT = float(os.environ.get("BENCH_DEADHEAD_LIMIT", "900"))
BAD_MS = int(os.environ.get("BENCH_DEADHEAD_BAD_MS", "5"))
REAL_BAD_S = 2.0


def wait_done(nbd, alive, limit):
    """Polls the model until every readable sector was read (True), the tool ended or the limit."""
    t = time.time()
    while time.time() - t < limit:
        if nbd.stats().get("done_time"):
            return True
        if not alive():
            return bool(nbd.stats().get("done_time"))
        time.sleep(0.5)
    return False


def run_ddrescue(img, spec, tmp):
    with DeadheadNbd(img, spec, tmp, name="dd", bad_ms=BAD_MS) as nbd:
        fuse = os.path.join(tmp, "fuse.raw")
        open(fuse, "w").close()
        qsd = subprocess.Popen(["qemu-storage-daemon", "--blockdev",
                                f"driver=nbd,server.type=unix,server.path={nbd.sock},node-name=n0,read-only=on",
                                "--export", f"type=fuse,id=e0,node-name=n0,mountpoint={fuse},writable=off"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(100):
            if os.path.getsize(fuse) > 0:
                break
            time.sleep(0.05)
        base = nbd.stats()
        out, mapf = os.path.join(tmp, "dd.img"), os.path.join(tmp, "dd.map")
        t0 = time.time()
        dd = subprocess.Popen(["ddrescue", "-d", "-r1", fuse, out, mapf],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        done = wait_done(nbd, lambda: dd.poll() is None, LIMIT)
        dd.send_signal(signal.SIGINT)   # ddrescue writes its mapfile and ends
        dd.wait()
        qsd.terminate()
        qsd.wait()
        st = nbd.stats()
        with open(mapf) as f:
            rescued = sum(s for p, s, c in parse_mapfile(f.read()) if c == "+")
        for p in (out, mapf):
            os.remove(p)
    return result(st, base, t0, done, rescued)


def run_cowboot(img, spec, tmp, infer):
    cow = os.path.join(tmp, "cow.img")
    with DeadheadNbd(img, spec, tmp, name=f"cb-{infer}", bad_ms=BAD_MS) as nbd:
        with open(cow, "wb") as f:
            f.truncate(nbd.geo.sectors * 512 + (64 << 20))
        disks = [dict(nbd_socket=nbd.sock, serial="DEADHEAD-1", readonly=True), dict(path=cow, serial="COW-1")]
        status, rescued, done, base, t0 = "", 0, False, nbd.stats(), time.time()
        with Machine(disks=disks, name=f"bench-deadhead-{infer}") as m:
            m.wait_prompt(60)
            m.cmd("cow format vd2 vd1 --yes", 120)
            m.cmd("cow open vd1 vd2", 120)
            base = nbd.stats()
            t0 = time.time()
            m.cmd(f"rescue ov0 retries=1 timeout=1000 infer={infer}", 60)
            done = wait_done(nbd, lambda: True, LIMIT)
            status = m.cmd("status", 60)
            m.cmd("stop ov0", 120)
            rescued = sum(s for p, s, c in parse_mapfile(map_text(m.cmd("map ov0", 120))) if c == "+")
            m.poweroff_and_wait(60)
        st = nbd.stats()
    os.remove(cow)
    words = [ln.strip() for ln in status.splitlines() if "head map" in ln]
    return result(st, base, t0, done, rescued) + (words[0] if words else "",)


def result(st, base, t0, done, rescued):
    bad = (st["done_bad_reads"] if done else st["bad_reads"]) - base["bad_reads"]
    secs = (st["done_time"] - t0) if done else None
    return (done, bad, secs, rescued)


tmp = tempfile.mkdtemp(prefix="cowboot-bench-deadhead-")
geoms = load(GEOMETRIES)
names = [n for n in geoms if n.startswith("bench-")]
if os.environ.get("BENCH_DEADHEAD_GEOMS"):
    names = os.environ["BENCH_DEADHEAD_GEOMS"].split(",")
rows = []
for name in names:
    spec = geoms[name]

    g = Geometry(spec)
    nbands = len(g.bands(64))
    readable = (g.sectors - sum(b - a for a, b in g.bad_ranges())) * 512
    img = os.path.join(tmp, "src.img")
    with open(img, "wb") as f:
        f.truncate(g.sectors * 512)
    rows.append((name, "ddrescue", nbands, readable) + run_ddrescue(img, spec, tmp) + ("",))
    rows.append((name, "cowboot infer=off", nbands, readable) + run_cowboot(img, spec, tmp, "off"))
    rows.append((name, "cowboot infer=on", nbands, readable) + run_cowboot(img, spec, tmp, "on"))
    os.remove(img)
shutil.rmtree(tmp, ignore_errors=True)

print(f"Reads of bad areas and time until every readable sector had been read once (model: {BAD_MS} ms a bad read;")
print(f"'real' estimates {REAL_BAD_S:.0f} s a bad read, as a drive retrying a dead head):")
print(f"{'drive':10s} {'tool':18s} {'bands':>5s} {'bad reads':>9s} {'per band':>8s} {'time s':>7s} {'real h':>6s} {'rescued/readable':>16s}")
for name, tool, nb, readable, done, bad, secs, rescued, words in rows:
    t = f"{secs:7.1f}" if secs is not None else "    n/a"
    real = f"{(secs + bad * (REAL_BAD_S - BAD_MS / 1000)) / 3600:6.2f}" if secs is not None else "   n/a"
    print(f"{name:10s} {tool:18s} {nb:5d} {bad:9d} {bad / nb:8.2f} {t} {real} {rescued / readable:16.4f}"
          + ("" if done else f"  (not all read within {LIMIT:.0f} s)"))
    if words:
        print(f"{'':10s} {'':18s} {words}")
by = {}
for name, tool, nb, readable, done, bad, secs, rescued, words in rows:
    by.setdefault(name, {})[tool] = bad
for name, d in by.items():
    dd = d.get("ddrescue") or 1
    print(f"{name}: bad reads cowboot/ddrescue: infer=off {d['cowboot infer=off'] / dd:.3f}, infer=on {d['cowboot infer=on'] / dd:.3f}"
          f" (targets: per band <= 2 without the map, well under 1 with it)")
