# nbdkit python plugin: a failing drive over an image file. Zones (a JSON list) make sectors
# bad (EIO always), weak (EIO for the first `tries` reads, then good), slow (a delay per read)
# or hanging (the read stalls `delay_ms`, then fails). A zone with "while": PATH acts only while
# that file exists (a test keeps a job slow through its steps, then lets it finish). Counts reads
# and reads touching bad, weak or hanging sectors (the drive's wear) into `stats`, with the
# seconds spent answering them (`busy_s`: the time the drive itself took, delays included).
# trace=FILE (optional) gets a line a read: start and end (monotonic seconds), offset, length,
# 1 if it failed.
#   nbdkit -U SOCK python tests/qemu/failing_disk.py file=IMG zones=ZONES.json stats=STATS.json
import builtins
import errno
import json
import os
import sys
import time

import nbdkit

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from image_plugin import API_VERSION, cfg, close, config, can_write, open, save_stats, thread_model  # noqa: E402,F401

SECTOR = 512
zones = []
tries = {}
counters = {"reads": 0, "bad_reads": 0, "bytes": 0, "busy_s": 0.0}
trace = None
last = {"failed": False}


def config_complete():
    global zones, trace
    with builtins.open(cfg["zones"]) as f:
        zones = json.load(f)
    if "trace" in cfg:
        trace = builtins.open(cfg["trace"], "w", buffering=1)   # a line at a time: nbdkit may be killed


def get_size(fd):
    return os.fstat(fd).st_size


def pread(fd, buf, offset, flags):
    t0 = time.monotonic()
    try:
        _pread(fd, buf, offset)
    finally:
        t1 = time.monotonic()
        counters["busy_s"] += t1 - t0
        save_stats(counters)
        if trace:
            trace.write(f"{t0:.6f} {t1:.6f} {offset} {len(buf)} {int(last['failed'])}\n")


def _pread(fd, buf, offset):
    first, end = offset // SECTOR, (offset + len(buf) + SECTOR - 1) // SECTOR
    counters["reads"] += 1
    fail = touched = False
    delay = 0.0
    for z in zones:
        lo, hi = max(first, z["start"]), min(end, z["start"] + z["count"])
        if lo >= hi or ("while" in z and not os.path.exists(z["while"])):
            continue
        kind = z["kind"]
        if kind == "bad":
            fail = touched = True
        elif kind == "weak":
            touched = True
            for s in range(lo, hi):
                tries[s] = tries.get(s, 0) + 1
                if tries[s] <= z.get("tries", 1):
                    fail = True
        elif kind == "slow":
            delay += z.get("delay_ms", 20) / 1000.0
        elif kind == "hang":
            fail = touched = True
            delay += z.get("delay_ms", 1500) / 1000.0
    counters["bad_reads"] += touched
    if delay:
        time.sleep(delay)
    if not fail:
        counters["bytes"] += len(buf)
    last["failed"] = fail
    if fail:
        nbdkit.set_error(errno.EIO)
        raise OSError(errno.EIO, "simulated media error")
    data = os.pread(fd, len(buf), offset)
    buf[:len(data)] = data
