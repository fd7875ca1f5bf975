# nbdkit python plugin: a failing drive over an image file. Zones (a JSON list) make sectors
# bad (EIO always), weak (EIO for the first `tries` reads, then good), slow (a delay per read)
# or hanging (the read stalls `delay_ms`, then fails). A zone with "while": PATH acts only while
# that file exists (a test keeps a job slow through its steps, then lets it finish). Counts reads
# and reads touching bad, weak or hanging sectors (the drive's wear) into `stats`.
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
counters = {"reads": 0, "bad_reads": 0, "bytes": 0}


def config(key, value):
    cfg[key] = value


def config_complete():
    global zones
    with builtins.open(cfg["zones"]) as f:
        zones = json.load(f)


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
    _save()
    if fail:
        nbdkit.set_error(errno.EIO)
        raise OSError(errno.EIO, "simulated media error")
    data = os.pread(fd, len(buf), offset)
    buf[:len(data)] = data
