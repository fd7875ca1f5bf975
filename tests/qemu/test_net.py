#!/usr/bin/env python3
"""The network end to end over QEMU's user network (the guest reaches the host's 127.0.0.1 as
10.0.2.2): DHCP, ping, NBD exports as disks (refused names, reads and writes checked on the
host), then a rescue of a failing virtio source into a cow on nbd0 during which the NBD server
is killed and restarted (the job goes on, nothing lost) and QEMU is killed with SIGKILL; a second
boot re-attaches the export and finishes the rescue. The host then checks the export with
cowtool: every sector the map calls finished equals the source; the source never changes."""
import os
import re
import shutil
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cowboot_qemu import (FailingNbd, Machine, check, finish, host_crc,  # noqa: E402
                          make_pattern_disk, sha256_file, start_nbdkit)
from netlib import TcpNbd, free_port, net_args, wait_rescued, wrong_finished  # noqa: E402

SECTOR = 512
SIZE = 24 << 20
# The rescue reads 128 KiB at a time; while the gate file exists every read past 1 MiB takes
# 0.5 s, so the first boot's job cannot end (about 90 s of reading left) before its steps are done
# however fast or loaded the machine is; the gate goes before the second boot, which finishes.
GATE_NAME = "slow-while"
NIC = os.environ.get("COWBOOT_NIC", "virtio-net-pci")


def nbdkit_commands(log):
    """(bytes nbdkit's log filter saw zeroed without a hole, zeroes that may punch one, writes)."""
    zero = hole = writes = 0
    with open(log) as f:
        for line in f:
            m = re.search(r" (Zero|Write) id=\d+ offset=0x[0-9a-f]+ count=(0x[0-9a-f]+)(?: trim=(\d))?", line)
            if m and m.group(1) == "Write":
                writes += 1
            elif m and m.group(3) == "0":
                zero += int(m.group(2), 16)
            elif m:
                hole += int(m.group(2), 16)
    return zero, hole, writes


tmp = tempfile.mkdtemp(prefix="cowboot-net-")
gate = os.path.join(tmp, GATE_NAME)
open(gate, "w").close()
ZONES = [
    dict(start=2048, count=SIZE // SECTOR - 2048, kind="slow", delay_ms=500, **{"while": gate}),
    dict(start=10000, count=16, kind="bad"),
    dict(start=30000, count=100, kind="bad"),
]
src, cow, plain = (os.path.join(tmp, n) for n in ("src.img", "cow.img", "plain.img"))
make_pattern_disk(src, SIZE, "source")
make_pattern_disk(plain, 4 << 20, "plain")
# Zero wipes through the no-data commands: an export of the guest's own NBD client, and a virtio
# disk whose QEMU backend is nbdkit; each nbdkit logs the commands it was sent.
zexp, zvirt = os.path.join(tmp, "zexp.img"), os.path.join(tmp, "zvirt.img")
zexp_log, zvirt_log = os.path.join(tmp, "zexp.log"), os.path.join(tmp, "zvirt.log")
make_pattern_disk(zexp, 4 << 20, "zexp")
make_pattern_disk(zvirt, 4 << 20, "zvirt")
zvirt_sock = os.path.join(tmp, "zvirt.sock")
zvirt_srv = start_nbdkit(zvirt_sock, ["--filter=log", "file", zvirt, f"logfile={zvirt_log}"])
with open(cow, "wb") as f:
    f.truncate(40 << 20)
src_hash = sha256_file(src)
port = free_port()
tag = NIC.replace("-pci", "")

trigger = os.path.join(tmp, "inject-errors")
flaky_img = os.path.join(tmp, "flaky.img")
make_pattern_disk(flaky_img, 1 << 20, "flaky")
# A flaky server: reads take 1.5 s; every request fails with EIO while the trigger file exists.
flaky_args = dict(filters=["--filter=error", "--filter=delay"],
                  params=["delay-read=1500ms", "error=EIO", "error-rate=100%", f"error-file={trigger}"])
with FailingNbd(src, ZONES, tmp) as failing, TcpNbd(cow, "cow-A", port) as server, \
        TcpNbd(plain, "plain", free_port()) as plain_srv, TcpNbd(flaky_img, "flaky", free_port(), **flaky_args) as flaky, \
        TcpNbd(zexp, "zeros", free_port(), filters=["--filter=log"], params=[f"logfile={zexp_log}"]) as zsrv:
    disks = [dict(nbd_socket=failing.sock, serial="FAILING-N", readonly=True)]
    zdisk = dict(nbd_socket=zvirt_sock, serial="ZVIRT")
    with Machine(disks=disks + [zdisk], extra_args=net_args(NIC), name="net") as m:
        m.wait_prompt(90)
        out = m.cmd("net dhcp", 60)
        check(f"{tag}: DHCP gives the user network's lease",
              re.search(r"eth0 .*link up", out) and "inet 10.0.2.15/24  gateway 10.0.2.2  (dhcp)" in out, out)
        out = m.cmd("ping 10.0.2.2 3", 60)
        check(f"{tag}: ping the host answers", "3 sent, 3 received" in out, out)
        m.qmp("set_link", name="n0", up=False)
        m.wait_for(r"eth0: link down", 30)
        m.qmp("set_link", name="n0", up=True)
        m.wait_for(r"eth0: link up", 30)
        out = m.cmd("ping 10.0.2.2 1", 60)
        check(f"{tag}: link down and up are seen (virtio STATUS), and traffic flows after", "1 sent, 1 received" in out, out)
        out = m.cmd("ping 10.0.2.7 1", 60)
        check(f"{tag}: ping of an address nobody has fails", "1 sent, 0 received" in out and "error:" in out, out)
        out = m.cmd(f"net nbd 10.0.2.2:{plain_srv.port} nosuch", 60)
        check(f"{tag}: an export the server does not have is refused by name, in one line", "the server has no export 'nosuch'" in out and "error:" not in out, out)
        out = m.cmd(f"net nbd 10.0.2.2:{plain_srv.port} plain", 60)
        check(f"{tag}: net nbd attaches nbd0 with the export's size",
              re.search(rf"nbd0: 10\.0\.2\.2:{plain_srv.port}/plain, 4\.0 MiB", out), out)
        got = re.search(r"crc32 ([0-9a-f]{8})", m.cmd("sum nbd0 0 8192", 120))
        check(f"{tag}: nbd0 reads the host's bytes", got and got.group(1) == host_crc(plain, 0, 8192), got)
        m.cmd("testwrite nbd0 100 8 171", 60)
        with open(plain, "rb") as f:
            f.seek(100 * SECTOR)
            data = f.read(8 * SECTOR)
        check(f"{tag}: a write and flush on nbd0 reach the server's file", data == bytes([171]) * len(data), data[:16])
        out = m.cmd(f"net nbd 10.0.2.2:{port} cow-A", 60)
        check(f"{tag}: a second export is nbd1", "nbd1: " in out, out)
        m.cmd(f"net nbd 10.0.2.2:{flaky.port} flaky", 60)
        m.cmd("set io-timeout=1000")
        out = m.cmd("read nbd2 0", 60)
        check(f"{tag}: a server slower than the deadline: the read times out and the disk reconnects",
              "timed out after 1000 ms" in out and "command timed out" in out and "nbd2 is gone" not in out, out)
        m.cmd("set io-timeout=30000")
        out = m.cmd("read nbd2 0", 60)
        check(f"{tag}: with a longer deadline the slow server's read arrives", "flaky lba 0" in out, out[:300])
        open(trigger, "w").close()
        out = m.cmd("read nbd2 1", 60) + m.cmd("testwrite nbd2 5 1 1", 60)
        check(f"{tag}: the server's EIO is a media error on a read and an I/O error on a write",
              "media error" in out and "I/O error" in out, out)
        os.unlink(trigger)
        out = m.cmd("read nbd2 2", 60)
        check(f"{tag}: the disk works again when the server does", "flaky lba 2" in out, out[:300])
        # wipe zero: the zeros go as WRITE_ZEROES (no data over the network), verify reads back.
        m.cmd(f"net nbd 10.0.2.2:{zsrv.port} zeros", 60)
        out = m.cmd("info nbd3", 30)
        check(f"{tag}: an nbdkit export offers write-zeroes and discard to the block layer",
              "no-data commands: write-zeroes discard" in out, out)
        for disk, img, log, what in (("nbd3", zexp, zexp_log, "an NBD export"), ("vd2", zvirt, zvirt_log, "a virtio disk")):
            out = m.cmd(f"wipe {disk} zero verify --yes", 120)
            check(f"{tag}: wipe zero of {what} uses write-zeroes and verifies by reading",
                  f"wipe {disk}: zeros by the device's write-zeroes command" in out and
                  "all 8192 sectors match" in out and "error" not in out, out)
            with open(img, "rb") as f:
                data = f.read()
            zero, hole, writes = nbdkit_commands(log)
            check(f"{tag}: host: {what} wiped with zeros holds only zeros, and nbdkit saw "
                  "WRITE_ZEROES (no hole) for all of it and no writes",
                  data == bytes(len(data)) and zero == len(data) and hole == 0 and writes == 0,
                  (data.count(0), zero, hole, writes))
        out = m.cmd("cow format nbd1 vd1 --yes", 120)
        out = m.cmd("cow open vd1 nbd1", 120)
        check(f"{tag}: a cow on the NBD disk opens over the failing source", "ov0: nbd1 over vd1" in out, out)
        m.cmd("set progress=lines")
        out = m.cmd("rescue ov0 timeout=3000 retries=1 max-read=128KiB")
        check(f"{tag}: the rescue into the NBD cow starts", "ov0: rescue started" in out, out)
        state, got = wait_rescued(m, 2 << 20)
        check(f"{tag}: the rescue writes into the NBD cow", state == "running" and got >= 2 << 20, (state, got))
        server.kill()
        time.sleep(2)
        server.start()
        m.wait_for(r"nbd1: reconnected to the same export", 90)
        check(f"{tag}: killing and restarting nbdkit mid-rescue: the disk reconnects", True)
        time.sleep(4)
        out = m.cmd("status", 30)
        check(f"{tag}: the job is still running after the server came back", "ov0 rescue: running" in out, out)
        # A longer outage: past the deadline the disk is gone and the job waits for it.
        m.cmd("set io-timeout=3000")
        server.kill()
        m.wait_for(r"ov0: cow nbd1 is gone; the job waits for it", 120)
        out = m.cmd("status", 30)
        check(f"{tag}: a server away past the deadline: nbd1 is gone and status says the job waits for its cow",
              "ov0 rescue: waiting for the cow;" in out, out)
        server.start()
        m.wait_for(r"ov0: cow nbd1 answers again; resuming", 120)
        check(f"{tag}: the server back: the job resumes on the same export", True)
        m.cmd("set io-timeout=30000")   # the short deadline was for the outage only
        time.sleep(3)
        out = m.cmd("net", 30)
        check(f"{tag}: net shows the interface, counters, connections and NBD disks",
              "rx " in out and "dropped:" in out and re.search(r"tcp\d+ .*established", out) and
              re.search(r"nbd1 .*[12] reconnects", out), out)
        state, _ = wait_rescued(m, 0)
        check(f"{tag}: the rescue is still running when the power is cut", state == "running", state)
        m.kill()   # a power cut in the middle of the rescue
    os.unlink(gate)   # the second boot reads at full speed
    check(f"{tag}: the source image is unchanged after the first boot", sha256_file(src) == src_hash)
    wrong, text, blocks = wrong_finished(cow, src, tmp)
    done1 = sum(s for p, s, st in blocks if st == "+")
    check(f"{tag}: after the cut every finished sector on the server equals the source",
          wrong == 0 and done1 > 0, (wrong, done1, text[-400:]))

    with Machine(disks=disks, extra_args=net_args(NIC), name="net2") as m:
        m.wait_prompt(90)
        out = m.cmd(f"net nbd 10.0.2.2:{port} cow-A", 90)
        check(f"{tag}: the second boot attaches the export again (DHCP at boot)", "nbd0: " in out, out)
        out = m.cmd("cow open vd1 nbd0", 120)
        check(f"{tag}: the cow opens after the cut", "ov0: nbd0 over vd1" in out, out)
        m.cmd("set progress=lines")
        m.cmd("rescue ov0 timeout=3000 retries=1")
        out = m.cmd("wait ov0", 900)
        check(f"{tag}: the rescue finishes on the second boot",
              re.search(r"ov0: rescue finished in \d+ s", m.last_before + out), out[-600:])
        code = m.poweroff_and_wait(60)
        check(f"{tag}: poweroff commits the cow", code == 0, code)
    wrong, text, blocks = wrong_finished(cow, src, tmp)
    bad = sum(s for p, s, st in blocks if st == "-")
    good = sum(s for p, s, st in blocks if st == "+")
    check(f"{tag}: cowtool on the server's export: every finished sector equals the source",
          wrong == 0 and good + bad == SIZE and bad == 116 * SECTOR, (wrong, good, bad, text[-400:]))
check(f"{tag}: the source image is unchanged", sha256_file(src) == src_hash)
zvirt_srv.terminate()
zvirt_srv.wait()
shutil.rmtree(tmp, ignore_errors=True)
finish()
