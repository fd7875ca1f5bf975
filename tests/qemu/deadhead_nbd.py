"""nbdkit serving an image through tests/qemu/deadhead_disk.py (a drive with dead heads from a
geometry spec), for the rescue scenario and the benchmark: stats() are the model's counters,
including the moment every readable sector had been read once."""
import os
import socket
import time

from cowboot_qemu import NbdServer, start_nbdkit
from deadhead_geometry import SECTOR, Geometry, load

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
GEOMETRIES = os.path.join(ROOT, "tests", "lib", "deadhead_geometries.txt")


def geometry(name):
    """The spec named in tests/lib/deadhead_geometries.txt."""
    return load(GEOMETRIES)[name]


class DeadheadNbd(NbdServer):
    no_stats = {"reads": 0, "bad_reads": 0, "bytes": 0, "done_time": None}

    def __init__(self, path, spec, tmpdir, name="deadhead", bad_ms=0):
        self.geo = Geometry(spec)
        self.sock = os.path.join(tmpdir, f"{name}.sock")
        self.stats_path = os.path.join(tmpdir, f"{name}.stats.json")
        for stale in (self.stats_path, self.sock):
            if os.path.exists(stale):
                os.remove(stale)
        plugin = os.path.join(os.path.dirname(os.path.abspath(__file__)), "deadhead_disk.py")
        self.proc = start_nbdkit(self.sock, ["python", plugin, f"file={path}", f"spec={spec}",
                                             f"stats={self.stats_path}", f"bad_ms={bad_ms}"])
        # The socket file exists once bound; under load the listen can come a little later.
        for _ in range(200):
            try:
                with socket.socket(socket.AF_UNIX) as c:
                    c.connect(self.sock)
                break
            except OSError:
                time.sleep(0.05)

    def truth_bad(self):
        """Unreadable [start, end) sector ranges."""
        return self.geo.bad_ranges()

    def bands(self, min_sectors=64):
        return self.geo.bands(min_sectors)

    def readable_bytes(self):
        return (self.geo.sectors - sum(b - a for a, b in self.truth_bad())) * SECTOR
