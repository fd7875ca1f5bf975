# nbdkit python plugin: a failing drive over an image file. Zones (a JSON list) make sectors
# bad (EIO always), weak (EIO for the first `tries` reads, then good), slow (a delay per read)
# or hanging (the read stalls `delay_ms`, then fails). Counts reads and reads touching bad,
# weak or hanging sectors (the drive's wear) into `stats`, with the seconds spent answering them
# (`busy_s`: the time the drive itself took, delays included). trace=FILE (optional) gets a line
# a read: start and end (monotonic seconds), offset, length, 1 if it failed.
#   nbdkit -U SOCK python tests/qemu/failing_disk.py file=IMG zones=ZONES.json stats=STATS.json
import builtins
import errno
import json
import os
import time

import nbdkit

API_VERSION = 2
SECTOR = 512
cfg = {}
zones = []
tries = {}
counters = {"reads": 0, "bad_reads": 0, "bytes": 0, "busy_s": 0.0}
trace = None
last = {"failed": False}


def config(key, value):
    cfg[key] = value


def config_complete():
    global zones, trace
    with builtins.open(cfg["zones"]) as f:
        zones = json.load(f)
    if "trace" in cfg:
        trace = builtins.open(cfg["trace"], "w", buffering=1)   # a line at a time: nbdkit may be killed


def thread_model():
    return nbdkit.THREAD_MODEL_SERIALIZE_ALL_REQUESTS


def open(readonly):
    return os.open(cfg["file"], os.O_RDONLY)


def close(fd):
    os.close(fd)


def get_size(fd):
    return os.fstat(fd).st_size


def can_write(fd):
    return False


def _save():
    if "stats" in cfg:
        tmp = cfg["stats"] + ".tmp"
        with builtins.open(tmp, "w") as f:
            json.dump(counters, f)
        os.replace(tmp, cfg["stats"])


def pread(fd, buf, offset, flags):
    t0 = time.monotonic()
    try:
        _pread(fd, buf, offset)
    finally:
        t1 = time.monotonic()
        counters["busy_s"] += t1 - t0
        _save()
        if trace:
            trace.write(f"{t0:.6f} {t1:.6f} {offset} {len(buf)} {int(last['failed'])}\n")


def _pread(fd, buf, offset):
    first, end = offset // SECTOR, (offset + len(buf) + SECTOR - 1) // SECTOR
    counters["reads"] += 1
    fail = touched = False
    delay = 0.0
    for z in zones:
        lo, hi = max(first, z["start"]), min(end, z["start"] + z["count"])
        if lo >= hi:
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
