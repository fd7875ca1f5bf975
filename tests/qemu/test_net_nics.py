#!/usr/bin/env python3
"""The Intel NICs (e1000 = 82540EM, e1000e = 82574L) over QEMU's user network, one boot each:
DHCP, ping, an NBD export read and written (checked on the host), and a rescue of a failing
virtio source into a cow on nbd0 with the NBD server killed and restarted mid-way; the host
then checks the export with cowtool and the source is unchanged."""
import os
import re
import shutil
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cowboot_qemu import FailingNbd, Machine, check, finish, host_crc, make_pattern_disk, sha256_file  # noqa: E402
from netlib import TcpNbd, free_port, net_args, wrong_finished  # noqa: E402

SECTOR = 512
SIZE = 8 << 20
ZONES = [dict(start=1024, count=12000, kind="slow", delay_ms=25), dict(start=5000, count=8, kind="bad")]

tmp = tempfile.mkdtemp(prefix="cowboot-nics-")
src = os.path.join(tmp, "src.img")
make_pattern_disk(src, SIZE, "source")
src_hash = sha256_file(src)

with FailingNbd(src, ZONES, tmp) as failing:
    for nic in ("e1000", "e1000e"):
        cow, plain = os.path.join(tmp, f"cow-{nic}.img"), os.path.join(tmp, f"plain-{nic}.img")
        with open(cow, "wb") as f:
            f.truncate(16 << 20)
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
            m.cmd("cow format nbd1 vd1 --yes", 120)
            out = m.cmd("cow open vd1 nbd1", 120)
            check(f"{nic}: a cow on nbd1 opens", "ov0: nbd1 over vd1" in out, out)
            m.cmd("set progress=lines")
            m.cmd("rescue ov0 timeout=3000 retries=1")
            time.sleep(5)
            server.kill()
            time.sleep(1)
            server.start()
            m.wait_for(r"nbd1: reconnected to the same export", 90)
            check(f"{nic}: nbdkit restarted mid-rescue: the disk reconnects", True)
            out = m.cmd("wait ov0", 600)
            check(f"{nic}: the rescue finishes", re.search(r"ov0: rescue finished in \d+ s", m.last_before + out), out[-500:])
            check(f"{nic}: poweroff", m.poweroff_and_wait(60) == 0)
        wrong, text, blocks = wrong_finished(cow, src, tmp)
        good = sum(s for p, s, st in blocks if st == "+")
        bad = sum(s for p, s, st in blocks if st == "-")
        check(f"{nic}: cowtool on the server's export: every finished sector equals the source",
              wrong == 0 and good + bad == SIZE and bad == 8 * SECTOR, (wrong, good, bad, text[-300:]))
check("the source image is unchanged", sha256_file(src) == src_hash)
shutil.rmtree(tmp, ignore_errors=True)
finish()
