"""Helpers of the network scenarios: nbdkit over TCP on the host's loopback (the guest sees it
at 10.0.2.2), QEMU's user network with a given NIC, and the host-side check of a cow export."""
import os
import re
import socket
import subprocess
import time

from cowboot_qemu import BUILD, BootError, NbdServer, parse_mapfile

SECTOR = 512
COWTOOL = os.path.join(BUILD, "cowtool")


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


class TcpNbd(NbdServer):
    """nbdkit's file plugin on 127.0.0.1:port with export name `name`, more `filters`
    (--filter=...) and their `params`; kill() (the harness's stop()) and start()."""

    def __init__(self, path, name, port, filters=(), params=()):
        self.path, self.name, self.port, self.filters = path, name, port, list(filters)
        self.params = list(params)
        self.proc = None
        self.start()

    def start(self):
        # The exportname filter makes the server refuse any other name, as a real one would.
        self.proc = subprocess.Popen(["nbdkit", "-f", "-i", "127.0.0.1", "-p", str(self.port),
                                      "--filter=exportname"] + self.filters +
                                     ["file", self.path, f"exportname={self.name}", "exportname-strict=true"] +
                                     self.params,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(200):
            try:
                socket.create_connection(("127.0.0.1", self.port), 0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        raise BootError("nbdkit did not listen")

    kill = NbdServer.stop


def net_args(nic):
    # romfile= (none): the firmware's own virtio-net/e1000 driver, no iPXE ROM to load.
    return ["-netdev", "user,id=n0", "-device", f"{nic},netdev=n0,romfile="]


def wrong_finished(cow, src, tmp):
    """(sectors the cow's map calls finished whose exported data differs from the source, the
    map's text, its blocks), read on the host with cowtool; -1 when cowtool refuses the cow."""
    r = subprocess.run([COWTOOL, "map", cow], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if r.returncode != 0:
        return -1, r.stdout, []
    out = os.path.join(tmp, "export.img")
    ex = subprocess.run([COWTOOL, "export", cow, out], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if ex.returncode != 0:
        return -1, ex.stdout, []
    blocks = parse_mapfile(r.stdout)
    wrong = 0
    with open(out, "rb") as a, open(src, "rb") as b:
        for pos, size, st in blocks:
            if st == "+":
                a.seek(pos)
                b.seek(pos)
                x, y = a.read(size), b.read(size)
                wrong += sum(1 for k in range(0, size, SECTOR) if x[k:k + SECTOR] != y[k:k + SECTOR])
    os.unlink(out)
    return wrong, r.stdout, blocks


UNITS = {"B": 1, "KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30}


def job_rescued(m, ov="ov0"):
    """(the job's state, the bytes it has rescued) from `status`; (None, its output) when absent."""
    out = m.cmd("status", 30)
    mm = re.search(rf"{ov} (?:rescue|clone): ([a-z ]+);.*\n  rescued ([\d.]+) ([KMG]?i?B),", out)
    if not mm:
        return None, out
    return mm.group(1), int(float(mm.group(2)) * UNITS[mm.group(3)])


def wait_rescued(m, at_least, timeout=180, ov="ov0"):
    """Polls `status` until the job has rescued at_least bytes (or is no longer running): a step
    that needs the job to have written something waits for that, not for a time."""
    deadline = time.time() + timeout
    while True:
        state, got = job_rescued(m, ov)
        if state != "running" or got >= at_least or time.time() > deadline:
            return state, got
        time.sleep(1)
