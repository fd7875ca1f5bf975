#!/usr/bin/env python3
"""The network's cost: a clean rescue (1 GiB by default, BENCH_NET_MIB) into a cow on an NBD
export (nbdkit's file plugin on the host, over QEMU's user network and virtio-net) beside the
same rescue into a cow on a local virtio disk, in the same run; and sequential reads of an
export (`sum nbd0`, the TCP stack's throughput from the host) beside the same file as a virtio
disk; and a zero wipe of an export and of a virtio disk (ZERO_MIB, 256 by default) written as data
(`pattern=00`) beside the same wipe sent as write-zeroes commands (`zero`). Printed: seconds,
MiB/s and the ratios."""
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "qemu"))
from cowboot_qemu import Machine  # noqa: E402
from netlib import TcpNbd, free_port, net_args  # noqa: E402

MIB = int(os.environ.get("BENCH_NET_MIB", "1024"))
ZERO_MIB = int(os.environ.get("BENCH_NET_ZERO_MIB", "256"))
tmp = tempfile.mkdtemp(prefix="cowboot-bench-net-")
src = os.path.join(tmp, "src.img")
subprocess.run(["dd", "if=/dev/urandom", f"of={src}", "bs=1M", f"count={MIB}", "status=none"], check=True)


def rescue(cow_on_nbd):
    cow = os.path.join(tmp, "cow.img")
    with open(cow, "wb") as f:
        f.truncate((MIB << 20) + (64 << 20))
    disks = [dict(path=src, serial="BENCH-SRC", readonly=True)]
    if not cow_on_nbd:
        disks.append(dict(path=cow, serial="BENCH-COW"))
    with TcpNbd(cow, "cow", free_port()) as srv, \
            Machine(disks=disks, extra_args=net_args("virtio-net-pci"), memory=512, name="bench-net") as m:
        m.wait_prompt(90)
        target = "vd2"
        if cow_on_nbd:
            m.cmd(f"net nbd 10.0.2.2:{srv.port} cow", 90)
            target = "nbd0"
        m.cmd(f"cow format {target} vd1 --yes", 300)
        m.cmd(f"cow open vd1 {target}", 300)
        m.cmd("set progress=lines")
        t = time.time()
        m.cmd("rescue ov0", 60)
        out = m.cmd("wait ov0", 7200)
        secs = time.time() - t
        ok = re.search(r"rescued \S+ \S+ of \S+ \S+ \(100\.0%\)", m.last_before + out)
        m.poweroff_and_wait(120)
    os.remove(cow)
    return secs, bool(ok)


def reads():
    zn, zv = os.path.join(tmp, "zero-nbd.img"), os.path.join(tmp, "zero-vd.img")
    for z in (zn, zv):
        with open(z, "wb") as f:
            f.truncate(ZERO_MIB << 20)
    disks = [dict(path=src, serial="BENCH-SRC", readonly=True), dict(path=zv, serial="BENCH-ZERO")]
    with TcpNbd(src, "src", free_port()) as srv, TcpNbd(zn, "zero", free_port()) as zsrv, \
            Machine(disks=disks, extra_args=net_args("virtio-net-pci"), name="bench-net-read") as m:
        m.wait_prompt(90)
        m.cmd(f"net nbd 10.0.2.2:{srv.port} src", 90)
        m.cmd(f"net nbd 10.0.2.2:{zsrv.port} zero", 90)
        sectors = (MIB << 20) // 512
        res = {}
        for disk in ("vd1", "nbd0"):
            out = m.cmd(f"sum {disk} 0 {sectors}", 3600)
            ms = re.search(r"\((\d+) ms\)", out)
            res[disk] = int(ms.group(1)) / 1000 if ms else float("nan")
        for disk in ("nbd1", "vd2"):
            for mode in ("pattern=00", "zero"):
                out = m.cmd(f"wipe {disk} {mode} --yes", 3600)
                ms = re.search(r"of (?:zeros|the pattern) in (\d+) ms", out)
                res[disk, mode] = int(ms.group(1)) / 1000 if ms else float("nan")
        m.poweroff_and_wait(60)
    return res


local, local_ok = rescue(False)
net, net_ok = rescue(True)
r = reads()
shutil.rmtree(tmp, ignore_errors=True)
print(f"{'what':34s} {'seconds':>8s} {'MiB/s':>8s}")
print(f"{'rescue into a local virtio cow':34s} {local:8.1f} {MIB / local:8.1f}{'' if local_ok else '  (did not finish)'}")
print(f"{'rescue into a cow on NBD':34s} {net:8.1f} {MIB / net:8.1f}{'' if net_ok else '  (did not finish)'}")
print(f"{'sum vd1 (virtio read)':34s} {r['vd1']:8.1f} {MIB / r['vd1']:8.1f}")
print(f"{'sum nbd0 (NBD over TCP read)':34s} {r['nbd0']:8.1f} {MIB / r['nbd0']:8.1f}")
for disk, what in (("nbd1", "an NBD export"), ("vd2", "a virtio disk")):
    for mode, how in (("pattern=00", "zeros as data"), ("zero", "write-zeroes")):
        t = r[disk, mode]
        print(f"{'wipe ' + what + ', ' + how:34s} {t:8.2f} {ZERO_MIB / t:8.1f}")
print(f"ratios: rescue NBD/local time {net / local:.2f}; read NBD/virtio time {r['nbd0'] / r['vd1']:.2f}; "
      f"zero wipe write-zeroes/data time: NBD {r['nbd1', 'zero'] / r['nbd1', 'pattern=00']:.3f}, "
      f"virtio {r['vd2', 'zero'] / r['vd2', 'pattern=00']:.3f}")
print("Notes: QEMU under TCG with its user network (slirp) and virtio-net; the host's nbdkit serves a file.\n"
      "The rescue time runs from `rescue` to the end of `wait` (boot and format not counted).")
