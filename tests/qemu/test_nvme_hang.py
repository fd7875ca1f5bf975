#!/usr/bin/env python3
"""NVMe hung commands through the console. (1) Every read held by nbdkit's delay filter for
longer than the deadline: the overdue read gets an Abort, then (QEMU never aborts) a controller
reset, the read fails with a timeout and I/O works again. (2) One slow zone on a namespace that
shares its controller with another: while one command is stuck the others keep completing, and
after the recovery both namespaces read correctly. (3) The reset for one namespace while the
other has commands in flight: the driver re-issues them."""
import atexit
import os
import re
import sys
import shutil
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cowboot_qemu import (Machine, NbdServer, check, check_sum, finish, make_pattern_disk,  # noqa: E402
                          nbdkit_file_plugin, start_nbdkit)

# An nbdkit python plugin (written to the temp dir): reads touching [slow_start, slow_end)
# (512-byte sectors) sleep `delay` seconds, the rest answer at once, in parallel.
SLOW_PLUGIN = nbdkit_file_plugin('''\
def pread(fd, buf, offset, flags):
    lo, hi = int(cfg["slow_start"]) * 512, int(cfg["slow_end"]) * 512
    if offset < hi and offset + len(buf) > lo:
        time.sleep(float(cfg["delay"]))
    buf[:] = os.pread(fd, len(buf), offset)
def pwrite(fd, buf, offset, flags): os.pwrite(fd, buf, offset)
''', "PARALLEL")


class Nbdkit(NbdServer):
    """nbdkit on a unix socket with the given plugin/filter arguments; stopped on exit."""

    def __init__(self, tmpdir, name, args):
        self.sock = os.path.join(tmpdir, f"{name}.sock")
        self.proc = start_nbdkit(self.sock, args)


tmp = tempfile.mkdtemp(prefix="cowboot-nvme-hang-")
atexit.register(shutil.rmtree, tmp, True)
A, B = os.path.join(tmp, "a.img"), os.path.join(tmp, "b.img")
make_pattern_disk(A, 4 << 20, "nvA")
make_pattern_disk(B, 2 << 20, "nvB")
DEADLINE, DELAY = 1000, 2.5
# Where other commands must NOT time out, a loaded host (QEMU stalled for a second or more) must
# not make them: they get LOAD_DEADLINE, and a held read lasts HELD s, longer than the deadline
# that catches it plus LOAD_DEADLINE, so that the reset it causes (QEMU's waits for the held
# read) still outlasts the others' deadlines, as the proofs below need.
LOAD_DEADLINE, HELD = 3000, 6.0

# (1) The delay filter: every read takes DELAY s, past the DEADLINE ms set for the test.
with Nbdkit(tmp, "delay", ["--filter=delay", "file", A, f"delay-read={int(DELAY * 1000)}ms"]) as nbd:
    with Machine(disks=[dict(nbd_socket=nbd.sock, transport="nvme", serial="NV-DELAY")],
                 name="nvme-delay") as m:
        m.wait_prompt(180)   # the firmware's and the partition scan's reads are delayed too
        m.cmd(f"set io-timeout={DEADLINE}")
        m.send("read nvme0n1 60")
        m.wait_for(rf"request at LBA 60 timed out after {DEADLINE} ms, resetting", 30)
        ab = m.wait_for(r"Abort of command \d+ \(LBA 60; (\d+) other commands completed", 10)
        check("a read past its deadline gets an Abort", ab)
        m.wait_for(r"command \d+ not aborted", 10)
        m.wait_for(r"nvme0: controller reset", 10)
        check("QEMU does not abort it, so the controller is reset", True)
        m.wait_prompt(120)
        check("the hung read fails with a timeout", "command timed out" in m.last_before, m.last_before)
        m.cmd("set io-timeout=15000")   # each read still takes DELAY s
        out = m.cmd("read nvme0n1 61", 30)
        check("reads work again after the reset", "nvA lba 61" in out, out[:300])
        check_sum(m, "a larger read after the reset matches the host", "nvme0n1", 100, 300, A, timeout=30)
        info = m.cmd("info nvme0n1")
        check("info counts the timeout and the reset", re.search(r"timeouts 1, resets 1\b", info), info)
        rec = re.search(r"last recovery: controller reset, ready (\d+) ms after the timeout, "
                        r"I/O flowing again after (\d+) ms", info)
        check("info reports the last recovery", rec, info)
        if rec:
            print(f"  (delay filter: deadline {DEADLINE} ms, read delay {DELAY * 1000:.0f} ms; controller "
                  f"ready {rec.group(1)} ms after the timeout; QEMU's reset waits for the held read)")
        check("poweroff", m.poweroff_and_wait() == 0)

# (2) One stuck command among many on a controller with two namespaces: nvme0n1 over the slow-
# zone plugin, nvme0n2 a plain image. The bench's deadline is LOAD_DEADLINE, so that only the
# held command passes it.
plugin = os.path.join(tmp, "slow_zone.py")
with open(plugin, "w") as f:
    f.write(SLOW_PLUGIN)
SLOW = 4096   # 2 MiB into the namespace, inside the bench's first requests
with Nbdkit(tmp, "slow", ["python", plugin, f"file={A}", f"slow_start={SLOW}", f"slow_end={SLOW + 8}",
                          f"delay={HELD}"]) as nbd:
    disks = [dict(nbd_socket=nbd.sock, transport="nvme-ns", bus="nvc", nsid=1),
             dict(path=B, transport="nvme-ns", bus="nvc", nsid=2)]
    with Machine(disks=disks, controllers=["-device", "nvme,id=nvc,serial=NV-ZONE"], name="nvme-zone") as m:
        m.wait_prompt(120)
        m.cmd(f"set io-timeout={LOAD_DEADLINE}")
        out = m.cmd("bench nvme0n1 4", 60)
        ab = re.search(r"Abort of command \d+ \(LBA (\d+); (\d+) other commands completed since", out)
        check("the command at the slow zone is the one aborted", ab and int(ab.group(1)) <= SLOW < int(ab.group(1)) + 1024, out)
        check("other commands kept completing while it was stuck", ab and int(ab.group(2)) >= 4, out)
        check("the bench reports the timeout", "command timed out" in out, out)
        m.cmd("set io-timeout=15000")   # the slow zone still takes HELD s
        check_sum(m, "after the recovery the stuck namespace reads correctly", "nvme0n1", 0, 8192, A)
        check_sum(m, "the other namespace of the controller reads correctly", "nvme0n2", 0, 4096, B)
        check("poweroff", m.poweroff_and_wait() == 0)
# (3) A reset while another namespace is busy: a background rescue reads nvme0n1 over the slow
# zone while `bench` keeps 8 requests in flight on nvme0n2, each held 100 ms by the delay filter
# so that some are always in flight and the bench (512 MiB, at most 16 requests at a time
# through QEMU's NBD client: 3 s or more) is still running when the rescue's read, a moment
# after it starts, passes its DEADLINE. The reset for it takes nvme0n2's commands with it and lasts until the read's HELD s
# are over, past their LOAD_DEADLINE; the driver re-issues them with their deadlines moved by
# the reset's time, so that bench ends without an error or timeout.
C = os.path.join(tmp, "c.img")   # sparse
with open(C, "wb") as f:
    f.truncate(1 << 30)
COW = os.path.join(tmp, "cow.img")
with open(COW, "wb") as f:
    f.truncate(16 << 20)
with Nbdkit(tmp, "slow3", ["python", plugin, f"file={A}", f"slow_start={SLOW}", f"slow_end={SLOW + 1}",
                           f"delay={HELD}"]) as nbd, \
     Nbdkit(tmp, "busy", ["--filter=delay", "file", C, "delay-read=100ms"]) as busy:
    disks = [dict(nbd_socket=nbd.sock, transport="nvme-ns", bus="nvc", nsid=1),
             dict(nbd_socket=busy.sock, transport="nvme-ns", bus="nvc", nsid=2),
             dict(path=COW, serial="COW-1")]
    with Machine(disks=disks, controllers=["-device", "nvme,id=nvc,serial=NV-BUSY"], name="nvme-busy") as m:
        m.wait_prompt(120)
        out = m.cmd("disks")
        cowdisk = re.search(r"^(vd\d+)\s.*COW-1", out, re.M)
        m.cmd(f"cow format {cowdisk.group(1)} nvme0n1 --yes", 60)
        out = m.cmd(f"cow open nvme0n1 {cowdisk.group(1)}", 60)
        ov = re.search(r"(ov\d+): ", out)
        check("an overlay over the slow namespace opens", ov, out)
        m.cmd(f"set io-timeout={LOAD_DEADLINE}")   # the bench's: the reset must not count against them
        out = m.cmd(f"rescue {ov.group(1)} timeout={DEADLINE} retries=0")
        out = m.cmd("bench nvme0n2 512", 180)
        n = [int(x) for x in re.findall(r"controller reset \((\d+) commands of other namespaces to re-issue\)", out)]
        check("a reset for the overdue namespace caught the other's commands in flight", n and max(n) > 0, out)
        check("the other namespace's bench ended without an error", re.search(r"read 512 MiB in \d+ ms", out), out)
        out = m.cmd("info nvme0n2")
        check("the other namespace saw no timeout", re.search(r"errors 0, timeouts 0, resets 0", out), out)
        m.cmd(f"wait {ov.group(1)}", 120)
        out = m.cmd("sum nvme0n2 0 4096")
        check("the other namespace still reads", "crc32 " in out, out)
        check("poweroff", m.poweroff_and_wait() == 0)
finish()
