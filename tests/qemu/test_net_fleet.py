#!/usr/bin/env python3
"""Fleet imaging: two machines PXE-booted at once from one TFTP directory run the same
cowboot.cfg, which names each machine's export by its NVMe disk's serial
(`net nbd 10.0.2.2:PORT img-${serial:nvme0n1}`), rescues the disk into a cow on it and powers
off; one nbdkit serves both exports from a directory, and the event log goes to a syslog
receiver on the host (`set syslog=`). The host then checks each export with cowtool against
its own source, the sources unchanged, and the lease taken from the firmware's PXE stack."""
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cowboot_qemu import BUILD, BootError, Machine, check, finish, make_pattern_disk, sha256_file  # noqa: E402
from netlib import free_port, wrong_finished  # noqa: E402

SIZE = 8 << 20
tmp = tempfile.mkdtemp(prefix="cowboot-fleet-")
exports = os.path.join(tmp, "exports")
tftp = os.path.join(tmp, "tftp")
os.makedirs(exports)
os.makedirs(tftp)
shutil.copy(os.path.join(BUILD, "cowboot.efi"), os.path.join(tftp, "BOOTX64.EFI"))
port = free_port()
machines = [dict(serial="FLEET-A1", mac="52:54:00:00:0a:01"), dict(serial="FLEET-B2", mac="52:54:00:00:0b:02")]
for mc in machines:
    mc["src"] = os.path.join(tmp, f"{mc['serial']}.img")
    make_pattern_disk(mc["src"], SIZE, mc["serial"])
    mc["hash"] = sha256_file(mc["src"])
    mc["cow"] = os.path.join(exports, f"img-{mc['serial']}")
    with open(mc["cow"], "wb") as f:
        f.truncate(16 << 20)

# The event log over UDP: every datagram the machines send.
syslog = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
syslog.bind(("127.0.0.1", 0))
syslog.settimeout(0.5)
sport = syslog.getsockname()[1]
received = []
stop = threading.Event()


def listen():
    while not stop.is_set():
        try:
            received.append(syslog.recv(2048).decode("latin-1"))
        except socket.timeout:
            pass


threading.Thread(target=listen, daemon=True).start()

with open(os.path.join(tftp, "cowboot.cfg"), "w") as f:
    f.write(f"""# one script for every machine of the room
set syslog=10.0.2.2:{sport}
net
net nbd 10.0.2.2:{port} img-${{serial:nvme0n1}}
cow format nbd0 nvme0n1 --yes
cow open nvme0n1 nbd0
rescue ov0
wait ov0
echo imaged ${{serial:nvme0n1}} ${{model:nvme0n1}} ${{mac}} ${{ip}} ${{date}}
poweroff
""")

nbd = subprocess.Popen(["nbdkit", "-f", "-i", "127.0.0.1", "-p", str(port), "file", f"dir={exports}"],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
try:
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            break
        except OSError:
            time.sleep(0.05)
    ms = [Machine(disks=[dict(path=mc["src"], transport="nvme", serial=mc["serial"], readonly=True)],
                  pxe_dir=tftp, pxe_rom="", name=f"fleet{i}",
                  extra_args=["-global", f"virtio-net-pci.mac={mc['mac']}"]) for i, mc in enumerate(machines)]
    for m in ms:
        m.start()
    try:
        for m, mc in zip(ms, machines):
            tag = mc["serial"]
            try:
                mm = m.wait_for(r"script:   = net nbd 10\.0\.2\.2:\d+ (img-\S+)\n", 180)
                check(f"{tag}: ${{serial:nvme0n1}} names the machine's own export", mm.group(1) == f"img-{tag}",
                      mm.group(0))
                check(f"{tag}: the lease is the firmware's PXE one", re.search(r"\(pxe\)", m.last_before), m.last_before[-800:])
                mm = m.wait_for(r"\nimaged (\S+) (\S+) (\S+) (\S+) (\S+)\n", 600)
                check(f"{tag}: ${{model}} ${{mac}} ${{ip}} ${{date}} expand",
                      mm.group(1) == tag and "QEMU" in mm.group(2) and mm.group(3) == mc["mac"] and
                      mm.group(4) == "10.0.2.15" and re.match(r"\d{4}-\d\d-\d\d$", mm.group(5)), mm.group(0))
                check(f"{tag}: the rescue finished before the poweroff",
                      re.search(r"ov0: rescue finished in \d+ s: rescued 8\.0 MiB of 8\.0 MiB \(100\.0%\)", m.last_before),
                      m.last_before[-800:])
                check(f"{tag}: the script powers the machine off", m.wait_exit(120) == 0, m.exitcode)
            except (TimeoutError, BootError) as e:
                check(f"{tag}: the script ran to its end", False, e)
    finally:
        for m in ms:
            m.close()
finally:
    nbd.kill()
    nbd.wait()
    time.sleep(1)
    stop.set()

for mc in machines:
    tag = mc["serial"]
    wrong, text, blocks = wrong_finished(mc["cow"], mc["src"], tmp)
    good = sum(s for p, s, st in blocks if st == "+")
    check(f"{tag}: its export holds the whole disk, equal to the source (cowtool)",
          wrong == 0 and good == SIZE, (wrong, good, text[-300:]))
    check(f"{tag}: the source is unchanged", sha256_file(mc["src"]) == mc["hash"])
    host = "cowboot-" + mc["mac"].replace(":", "")
    mine = [r for r in received if f" {host} " in r]
    check(f"{tag}: its event log reached the syslog server",
          any("rescue finished" in r for r in mine) and all(r.startswith("<") for r in mine), (len(received), mine[-3:]))
shutil.rmtree(tmp, ignore_errors=True)
finish()
