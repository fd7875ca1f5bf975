# nbdkit python plugin: a drive with dead heads over an image file, from a geometry spec
# (tests/qemu/deadhead_geometry.py; the same specs drive the C model of the unit tests). Reads
# touching a dead head's band or a bad sector fail (EIO) after `bad_ms`; weak sectors fail their
# first `tries` reads. `stats` (JSON) counts reads and reads of bad areas, and records the moment
# every sector readable on the first try has been read once (done_time, done_reads,
# done_bad_reads) and the same with the weak sectors too (weak_done_*).
#   nbdkit -U SOCK python tests/qemu/deadhead_disk.py file=IMG spec='size=... heads=...' stats=S.json
import bisect
import errno
import os
import sys
import time

import nbdkit

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from deadhead_geometry import SECTOR, Geometry  # noqa: E402
from image_plugin import API_VERSION, cfg, close, config, can_write, open, save_stats, thread_model  # noqa: E402,F401

geo = None
bad_starts, bad_ends = [], []
weak = set()
tries = {}
seen = None
counters = {"reads": 0, "bad_reads": 0, "bytes": 0, "readable_left": 0, "weak_left": 0,
            "done_time": None, "done_reads": None, "done_bad_reads": None,
            "weak_done_time": None, "weak_done_bad_reads": None}


def config_complete():
    global geo, seen
    geo = Geometry(cfg["spec"])
    for a, b in geo.bad_ranges():
        bad_starts.append(a)
        bad_ends.append(b)
    for a, b in geo.weak_ranges():
        weak.update(range(a, b))
    # seen: 1 for sectors that never count (bad) or were read; weak ones are counted apart.
    seen = bytearray(geo.sectors)
    nbad = 0
    for a, b in zip(bad_starts, bad_ends):
        seen[a:b] = b"\x01" * (b - a)
        nbad += b - a
    for s in weak:
        seen[s] = 1
    counters["readable_left"] = geo.sectors - nbad - len(weak)
    counters["weak_left"] = len(weak)


def get_size(fd):
    return geo.sectors * SECTOR


def _touches_bad(first, end):
    i = bisect.bisect_right(bad_ends, first)   # the first bad range ending after `first`
    return i < len(bad_starts) and bad_starts[i] < end


def pread(fd, buf, offset, flags):
    first, end = offset // SECTOR, (offset + len(buf) + SECTOR - 1) // SECTOR
    counters["reads"] += 1
    fail = _touches_bad(first, end)
    weak_here = [s for s in weak if first <= s < end] if weak else []
    for s in weak_here:
        tries[s] = tries.get(s, 0) + 1
        if tries[s] <= geo.tries:
            fail = True
    if fail:
        counters["bad_reads"] += 1
        time.sleep(float(cfg.get("bad_ms", "0")) / 1000.0)
        save_stats(counters)
        nbdkit.set_error(errno.EIO)
        raise OSError(errno.EIO, "simulated dead head")
    new = seen[first:end].count(0)
    if new:
        seen[first:end] = b"\x01" * (end - first)
        counters["readable_left"] -= new
        if counters["readable_left"] == 0:
            counters["done_time"] = time.time()
            counters["done_reads"] = counters["reads"]
            counters["done_bad_reads"] = counters["bad_reads"]
    for s in weak_here:
        if s in weak:
            weak.discard(s)
            counters["weak_left"] -= 1
            if counters["weak_left"] == 0:
                counters["weak_done_time"] = time.time()
                counters["weak_done_bad_reads"] = counters["bad_reads"]
    counters["bytes"] += len(buf)
    save_stats(counters)
    data = os.pread(fd, len(buf), offset)
    buf[:len(data)] = data
