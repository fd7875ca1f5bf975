#!/usr/bin/env python3
"""cowboot's rescue beside GNU ddrescue (1.27, -d, the same retry count) on the same simulated
drives, served by nbdkit: a failing drive (tests/qemu/failing_disk.py: bad sectors, a bad zone,
weak sectors, a slow zone, a hanging zone) and a clean 1 GiB drive. ddrescue runs on the host and
reads the drive through a FUSE file exported by qemu-storage-daemon; cowboot runs in QEMU (TCG)
and reads it as a virtio disk. Printed side by side: time, bytes rescued, and reads that touched
bad areas (the drive's wear, counted by the drive model)."""
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "qemu"))
from cowboot_qemu import FailingNbd, Machine, make_pattern_disk, map_text, parse_mapfile  # noqa: E402

SECTOR = 512
RETRIES = 1
FAILING = [
    dict(start=3000, count=3, kind="bad"),
    dict(start=20000, count=2048, kind="bad"),              # 1 MiB bad zone
    dict(start=40000, count=8, kind="weak", tries=1),
    dict(start=60000, count=4096, kind="slow", delay_ms=20),  # 2 MiB that read slowly
    dict(start=80000, count=8, kind="hang", delay_ms=2000),   # stalls 2 s, then fails
    dict(start=100001, count=1, kind="bad"),
]


def fresh_nbd(img, zones, tmp, name):
    return FailingNbd(img, zones, tmp, name=name)


def run_ddrescue(img, zones, tmp, tag):
    with fresh_nbd(img, zones, tmp, f"dd-{tag}") as nbd:
        fuse = os.path.join(tmp, f"fuse-{tag}.raw")
        open(fuse, "w").close()
        qsd = subprocess.Popen(["qemu-storage-daemon", "--blockdev",
                                f"driver=nbd,server.type=unix,server.path={nbd.sock},node-name=n0,read-only=on",
                                "--export", f"type=fuse,id=e0,node-name=n0,mountpoint={fuse},writable=off"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(100):
            if os.path.getsize(fuse) > 0:
                break
            time.sleep(0.05)
        out, mapf = os.path.join(tmp, f"dd-{tag}.img"), os.path.join(tmp, f"dd-{tag}.map")
        t = time.time()
        subprocess.run(["ddrescue", "-d", f"-r{RETRIES}", fuse, out, mapf],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        secs = time.time() - t
        qsd.terminate()
        qsd.wait()
        stats = nbd.stats()
        with open(mapf) as f:
            blocks = parse_mapfile(f.read())
        os.remove(out)
    return secs, sum(s for p, s, st in blocks if st == "+"), stats["bad_reads"], stats["reads"]


def run_cowboot(img, zones, tmp, tag, size):
    cow = os.path.join(tmp, f"cow-{tag}.img")
    with open(cow, "wb") as f:
        f.truncate(size + (64 << 20))
    with fresh_nbd(img, zones, tmp, f"cb-{tag}") as nbd:
        disks = [dict(nbd_socket=nbd.sock, serial="BENCH-SRC", readonly=True), dict(path=cow, serial="BENCH-COW")]
        with Machine(disks=disks, name=f"bench-rescue-{tag}") as m:
            m.wait_prompt(60)
            m.cmd("cow format vd2 vd1 --yes", 120)
            m.cmd("cow open vd1 vd2", 120)
            m.cmd("set progress=lines")
            base = nbd.stats()
            t = time.time()
            m.cmd(f"rescue ov0 retries={RETRIES} timeout=1000", 60)
            m.cmd("wait ov0", 3600)
            secs = time.time() - t
            blocks = parse_mapfile(map_text(m.cmd("map ov0", 120)))
            m.poweroff_and_wait(60)
        stats = nbd.stats()
    os.remove(cow)
    return (secs, sum(s for p, s, st in blocks if st == "+"), stats["bad_reads"] - base["bad_reads"],
            stats["reads"] - base["reads"])


def truth_rescued(size, zones):
    bad = set()
    for z in zones:
        if z["kind"] in ("bad", "hang"):
            bad.update(range(z["start"], z["start"] + z["count"]))
    return size - len(bad) * SECTOR


tmp = tempfile.mkdtemp(prefix="cowboot-bench-rescue-")
rows = []
# BENCH_RESCUE_ONLY=clean measures the clean drive alone (throughput work); =nohang the failing
# drive without its hanging zone alone (the cost of the reads next to bad areas).
ONLY = os.environ.get("BENCH_RESCUE_ONLY", "")
if ONLY != "clean":
    fail_img = os.path.join(tmp, "failing.img")
    FAIL_SIZE = 64 << 20
    make_pattern_disk(fail_img, FAIL_SIZE, "bench")
    if ONLY != "nohang":
        truth = truth_rescued(FAIL_SIZE, FAILING)
        d = run_ddrescue(fail_img, FAILING, tmp, "fail")
        c = run_cowboot(fail_img, FAILING, tmp, "fail", FAIL_SIZE)
        rows.append(("failing 64 MiB", d, c, truth))
    # The same drive without its hanging zone: what the tools themselves cost, without the stalls
    # that QEMU makes both of them wait out.
    NOHANG = [z for z in FAILING if z["kind"] != "hang"]
    d = run_ddrescue(fail_img, NOHANG, tmp, "nohang")
    c = run_cowboot(fail_img, NOHANG, tmp, "nohang", FAIL_SIZE)
    rows.append(("no-hang 64 MiB", d, c, truth_rescued(FAIL_SIZE, NOHANG)))
    os.remove(fail_img)

clean_mib = int(os.environ.get("BENCH_RESCUE_MIB", "1024"))
if ONLY != "nohang":
    clean_img = os.path.join(tmp, "clean.img")
    subprocess.run(["dd", "if=/dev/urandom", f"of={clean_img}", "bs=1M", f"count={clean_mib}", "status=none"], check=True)
    d2 = run_ddrescue(clean_img, [], tmp, "clean")
    c2 = run_cowboot(clean_img, [], tmp, "clean", clean_mib << 20)
    rows.append((f"clean {clean_mib} MiB", d2, c2, clean_mib << 20))
shutil.rmtree(tmp, ignore_errors=True)

print(f"{'drive':16s} {'tool':9s} {'time s':>8s} {'rescued B':>12s} {'truth B':>12s} {'bad reads':>9s} {'reads':>7s} {'MiB/s':>8s}")
for name, dd, cb, tr in rows:
    for tool, (secs, res, bad, reads) in (("ddrescue", dd), ("cowboot", cb)):
        print(f"{name:16s} {tool:9s} {secs:8.1f} {res:12d} {tr:12d} {bad:9d} {reads:7d} {res / secs / 1048576:8.1f}")
    print(f"{name:16s} ratios: time cowboot/ddrescue {cb[0] / dd[0]:.2f} (target <= 0.9 on the failing drive), "
          f"rescued {cb[1] - dd[1]:+d} B vs ddrescue (target >= 0), bad reads {cb[2]}/{dd[2]} (target <= 1), "
          f"throughput {dd[0] / cb[0]:.2f}x ddrescue's (target >= 1.2 on the clean drive)")
print("Notes: cowboot's time is from `rescue` to the end of `wait` (the boot, ~6 s, is not counted), in QEMU\n"
      "under TCG; ddrescue runs natively on the host. Inside QEMU a device reset waits for the backend's\n"
      "in-flight request, so a hanging read costs its full stall (2 s here) in both tools: the per-command\n"
      "deadline (timeout=1000) cannot cut it short in QEMU, only on real hardware.")
