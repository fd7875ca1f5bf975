# The common part of the harness's nbdkit python plugins that simulate a drive over an image
# file (failing_disk.py, deadhead_disk.py): `file=` (the image) and the other key=value
# parameters into cfg, one request at a time (the plugins keep plain Python counters), the image
# opened read-only, no writes, and the counters saved as JSON to `stats=` (written whole, then
# renamed, so a reader never sees half a file). A plugin imports these names as its own.
import builtins
import json
import os

import nbdkit

API_VERSION = 2
cfg = {}


def config(key, value):
    cfg[key] = value


def thread_model():
    return nbdkit.THREAD_MODEL_SERIALIZE_ALL_REQUESTS


def open(readonly):
    return os.open(cfg["file"], os.O_RDONLY)


def close(fd):
    os.close(fd)


def can_write(fd):
    return False


def save_stats(counters):
    if "stats" in cfg:
        tmp = cfg["stats"] + ".tmp"
        with builtins.open(tmp, "w") as f:
            json.dump(counters, f)
        os.replace(tmp, cfg["stats"])
