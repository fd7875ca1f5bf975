#!/usr/bin/env python3
"""NVMe recovery time: from a command's timeout to I/O flowing again, beside the deadline. One
namespace over an nbdkit python plugin where one sector answers only after DELAY ms (every other
read at once, in parallel); `bench` keeps 8 requests in flight, one of which hits that sector,
for several deadlines. The driver's own events give the times (guest clock)."""
import os
import re
import subprocess
import sys
import shutil
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "qemu"))
from cowboot_qemu import Machine, make_pattern_disk, nbdkit_file_plugin  # noqa: E402

PLUGIN = nbdkit_file_plugin('''\
def can_write(fd): return False
def pread(fd, buf, offset, flags):
    slow = int(cfg["slow"]) * 512
    if offset <= slow < offset + len(buf):
        time.sleep(int(cfg["delay_ms"]) / 1000)
    buf[:] = os.pread(fd, len(buf), offset)
''', "PARALLEL", writable=False)
DELAY_MS = 3000
SLOW = 4096                       # 2 MiB in: the bench's third request
DEADLINES = (500, 1000, 2000)
BENCH_MIB = 2048

tmp = tempfile.mkdtemp(prefix="cowboot-bench-nvme-")
img, plugin, sock = (os.path.join(tmp, n) for n in ("disk.img", "slow.py", "nbd.sock"))
make_pattern_disk(img, 16 << 20, "bench")
with open(img, "r+b") as f:   # the rest sparse: enough to keep reading past every deadline
    f.truncate(BENCH_MIB << 20)
with open(plugin, "w") as f:
    f.write(PLUGIN)
nbd = subprocess.Popen(["nbdkit", "-f", "-U", sock, "python", plugin, f"file={img}", f"slow={SLOW}",
                        f"delay_ms={DELAY_MS}"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
rows = []
try:
    for _ in range(200):
        if os.path.exists(sock):
            break
        time.sleep(0.05)
    disks = [dict(nbd_socket=sock, transport="nvme", serial="NV-RECOVER", readonly=True)]
    with Machine(disks=disks, name="bench-nvme") as m:
        m.wait_prompt(60)
        for deadline in DEADLINES:
            m.cmd(f"set io-timeout={deadline}")
            out = m.cmd(f"bench nvme0n1 {BENCH_MIB}", 300)
            ab = re.search(r"Abort of command \d+ \(LBA \d+; (\d+) other commands completed", out)
            # The bench's other requests are in flight at the reset: re-issued, they complete at once.
            fl = ab and re.compile(r"I/O flowing again (\d+) ms after the timeout \(([^:]+): (\d+) ms\)").search(out, ab.end())
            if not (ab and fl):
                print(f"deadline {deadline} ms: no recovery seen:\n{out[-1500:]}")
                continue
            rows.append((deadline, int(ab.group(1)), fl.group(2), int(fl.group(3)), int(fl.group(1))))
        m.poweroff_and_wait()
finally:
    nbd.terminate()
    nbd.wait()
    shutil.rmtree(tmp, ignore_errors=True)

print(f"one read held {DELAY_MS} ms by the backend, 8 x 1 MiB requests in flight (bench), guest clock")
print(f"{'deadline':>9} {'completed while stuck':>22} {'step':>17} {'ready after':>12} {'I/O flowing after':>18}"
      f" {'backend still held':>19} {'ready to flowing':>17}")
for deadline, others, step, ready, flowing in rows:
    print(f"{deadline:>6} ms {others:>22} {step:>17} {ready:>9} ms {flowing:>15} ms {DELAY_MS - deadline:>16} ms {flowing - ready:>14} ms")
print("QEMU 7.2 limits: its Abort never aborts (result bit 0 set), so every timeout goes on to a\n"
      "controller reset; its CC.EN=0 cancels the queues synchronously and an NBD request cannot be\n"
      "cancelled, so the reset (and the vCPU) waits until the backend answers the held read. The\n"
      "time to I/O flowing again is therefore the backend's remaining delay plus the driver's\n"
      "re-enable, Identify and re-issue; on hardware whose Abort works it would be the Abort alone.")
