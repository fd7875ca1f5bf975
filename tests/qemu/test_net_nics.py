#!/usr/bin/env python3
"""The Intel NICs (e1000 = 82540EM, e1000e = 82574L) over QEMU's user network, one boot each:
DHCP, ping, link down and up, an NBD export read and written (checked on the host), and one
rescue of a failing virtio source into a cow on nbd1 carried across both boots. On e1000e the
NBD server is restarted mid-rescue (the disk reconnects), then QEMU is killed with SIGKILL (the
host checks that the map on the server never runs ahead of the data). The e1000 boot re-attaches
the export and continues the rescue, with the server stopped for longer than the client's
reconnect back-off and the deadline (nbd1 gone, the job paused) and then restarted (the job
resumes); the host checks the finished export with cowtool, and the source is unchanged."""
import os
import re
import shutil
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cowboot_qemu import FailingNbd, Machine, check, finish, host_crc, make_pattern_disk, sha256_file  # noqa: E402
from netlib import TcpNbd, free_port, net_args, wait_rescued, wrong_finished  # noqa: E402

SECTOR = 512
SIZE = 8 << 20
OUTAGE_S = 10   # nbdkit away this long after the disk is declared gone: past the 4 s back-off

tmp = tempfile.mkdtemp(prefix="cowboot-nics-")
# The slow zone, read 64 KiB at a time (max-read=), keeps the rescue going through both boots'
# steps while the gate file exists: 120 reads of 0.4 s, about 48 s of reading, however fast the
# machine; the gate goes once the second boot's last step is done, and the rescue finishes.
gate = os.path.join(tmp, "slow-while")
open(gate, "w").close()
ZONES = [dict(start=1024, count=SIZE // SECTOR - 1024, kind="slow", delay_ms=400, **{"while": gate}),
         dict(start=5000, count=8, kind="bad")]
src, cow = os.path.join(tmp, "src.img"), os.path.join(tmp, "cow.img")
make_pattern_disk(src, SIZE, "source")
src_hash = sha256_file(src)
with open(cow, "wb") as f:
    f.truncate(16 << 20)


def rescued(m):
    out = m.cmd("status", 30)
    mm = re.search(r"ov0 rescue: ([a-z ]+);.*\n  rescued (\S+ \S+),", out)
    return (mm.group(1), mm.group(2)) if mm else (None, out)


with FailingNbd(src, ZONES, tmp) as failing:
    for nic in ("e1000e", "e1000"):
        first = nic == "e1000e"
        plain = os.path.join(tmp, f"plain-{nic}.img")
        make_pattern_disk(plain, 2 << 20, nic)
        disks = [dict(nbd_socket=failing.sock, serial="FAILING-I", readonly=True)]
        with TcpNbd(cow, "cow", free_port()) as server, TcpNbd(plain, "plain", free_port()) as psrv, \
                Machine(disks=disks, extra_args=net_args(nic), name=nic) as m:
            m.wait_prompt(90)
            out = m.cmd("net dhcp", 60)
            check(f"{nic}: the driver binds and DHCP gives the lease",
                  re.search(r"eth0  e1000", out) and "inet 10.0.2.15/24  gateway 10.0.2.2  (dhcp)" in out, out)
            out = m.cmd("ping 10.0.2.2 2", 60)
            check(f"{nic}: ping the host answers", "2 sent, 2 received" in out, out)
            m.qmp("set_link", name="n0", up=False)
            m.wait_for(r"eth0: link down", 30)
            out = m.cmd("ping 10.0.2.2 1", 60)
            check(f"{nic}: the cable pulled: link down is seen and nothing gets through",
                  "1 sent, 0 received" in out, out)
            m.qmp("set_link", name="n0", up=True)
            m.wait_for(r"eth0: link up", 30)
            out = m.cmd("ping 10.0.2.2 1", 60)
            check(f"{nic}: the cable back: link up and ping answers", "1 sent, 1 received" in out, out)
            if nic == "e1000":
                out = m.cmd("set ip=10.0.2.99/24 gateway=10.0.2.2", 30)
                out = m.cmd("net", 30) + m.cmd("ping 10.0.2.2 1", 60)
                check("set ip= and gateway= give a static address that works",
                      "inet 10.0.2.99/24  gateway 10.0.2.2  (static)" in out and "1 sent, 1 received" in out, out)
                out = m.cmd("set ip=10.0.2.300", 30)
                check("a bad address is refused and changes nothing", "set: ip takes" in out and "error:" in out, out)
                m.cmd("set ip=dhcp", 30)
                out = m.cmd("net dhcp", 60)
                check("set ip=dhcp goes back to the lease", "inet 10.0.2.15/24  gateway 10.0.2.2  (dhcp)" in out, out)
            m.cmd(f"net nbd 10.0.2.2:{psrv.port} plain", 60)
            got = re.search(r"crc32 ([0-9a-f]{8})", m.cmd("sum nbd0 0 4096", 120))
            check(f"{nic}: an NBD export reads the host's bytes", got and got.group(1) == host_crc(plain, 0, 4096), got)
            m.cmd("testwrite nbd0 9 4 90", 60)
            with open(plain, "rb") as f:
                f.seek(9 * SECTOR)
                check(f"{nic}: a write reaches the server's file", f.read(4 * SECTOR) == bytes([90]) * 4 * SECTOR)
            out = m.cmd(f"net nbd 10.0.2.2:{server.port} cow", 60)
            if first:
                m.cmd("cow format nbd1 vd1 --yes", 120)
            out = m.cmd("cow open vd1 nbd1", 120)
            check(f"{nic}: a cow on nbd1 opens{'' if first else ' again after the kill'}", "ov0: nbd1 over vd1" in out, out)
            m.cmd("set progress=lines")
            m.cmd("rescue ov0 timeout=3000 retries=1 max-read=64KiB")
            if first:
                state, got = wait_rescued(m, 1 << 20)
                check(f"{nic}: the rescue writes into the cow on nbd1", state == "running" and got >= 1 << 20, (state, got))
                server.kill()
                time.sleep(1)
                server.start()
                m.wait_for(r"nbd1: reconnected to the same export", 90)
                check(f"{nic}: nbdkit restarted mid-rescue: the disk reconnects", True)
                time.sleep(2)
                state, _ = rescued(m)
                check(f"{nic}: the rescue runs on after the reconnect", state == "running", state)
                m.kill()   # kill -9 of QEMU: a power cut in the middle of the rescue
            else:
                time.sleep(3)
                state, _ = rescued(m)
                check(f"{nic}: the second boot continues the rescue", state == "running", state)
                m.cmd("set io-timeout=3000")
                server.kill()
                m.wait_for(r"ov0: cow nbd1 is gone; the job waits for it", 120)
                check(f"{nic}: nbdkit stopped past the deadline: nbd1 is gone and the job waits", True)
                state, before = rescued(m)
                time.sleep(OUTAGE_S)
                state2, after = rescued(m)
                check(f"{nic}: through a {OUTAGE_S} s outage (past the reconnect back-off) the job stays paused",
                      state == state2 == "waiting for the cow" and before == after, (state, state2, before, after))
                server.start()
                m.wait_for(r"ov0: cow nbd1 answers again; resuming", 120)
                check(f"{nic}: nbdkit back after the long outage: the job resumes on the same export", True)
                os.unlink(gate)   # every step is done: the rest of the source reads at full speed
                m.cmd("set io-timeout=30000")
                out = m.cmd("wait ov0", 600)
                check(f"{nic}: the rescue finishes", re.search(r"ov0: rescue finished in \d+ s", m.last_before + out), out[-500:])
                check(f"{nic}: poweroff", m.poweroff_and_wait(60) == 0)
        wrong, text, blocks = wrong_finished(cow, src, tmp)
        good = sum(s for p, s, st in blocks if st == "+")
        bad = sum(s for p, s, st in blocks if st == "-")
        if first:
            check(f"{nic}: after the kill every finished sector on the server equals the source, and the rescue is unfinished",
                  wrong == 0 and 0 < good and good + bad < SIZE, (wrong, good, bad, text[-300:]))
        else:
            check(f"{nic}: cowtool on the server's export: every finished sector equals the source",
                  wrong == 0 and good + bad == SIZE and bad == 8 * SECTOR, (wrong, good, bad, text[-300:]))
check("the source image is unchanged", sha256_file(src) == src_hash)
shutil.rmtree(tmp, ignore_errors=True)
finish()
