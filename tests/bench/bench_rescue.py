#!/usr/bin/env python3
"""cowboot's rescue beside GNU ddrescue (1.27, -d, the same retry count) on the same simulated
drives, served by nbdkit: a failing drive (tests/qemu/failing_disk.py: bad sectors, a bad zone,
weak sectors, a slow zone, a hanging zone) and a clean 1 GiB drive. ddrescue runs on the host and
reads the drive through a FUSE file exported by qemu-storage-daemon; cowboot runs in QEMU (TCG)
and reads it as a virtio disk. Printed side by side: time, bytes rescued, and reads that touched
bad areas (the drive's wear, counted by the drive model).

Where cowboot's time goes, for each of its runs: the drive model's busy time (`model s`: what
the drive itself took, delays included), the cow's writes, bytes written and flushes (QEMU's
block statistics of the cow disk), commits (`cow stats`), and the time inside source reads as
the appliance saw it (`info` of the source disk: requests times average latency).

BENCH_RESCUE_BUILDS=name=builddir,name=builddir runs several cowboot builds (an older commit's
worktree beside this one) on the same drives in the same run; BENCH_RESCUE_RUNS=N repeats each
drive N times, the tools taking turns, and prints the medians beside every run's figures;
BENCH_RESCUE_TRACE=dir keeps a line a read of every run (tests/qemu/failing_disk.py's trace=)."""
import os
import re
import statistics
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "qemu"))
import cowboot_qemu  # noqa: E402
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



TRACE = os.environ.get("BENCH_RESCUE_TRACE", "")   # a directory: each run's reads, a line each


class TracedNbd(FailingNbd):
    """The drive model, writing a line a read into TRACE/<name>.trace when asked."""

    def start(self, path=None):
        if not TRACE:
            return super().start(path)
        os.makedirs(TRACE, exist_ok=True)
        if os.path.exists(self.sock):
            os.unlink(self.sock)
        plugin = os.path.join(os.path.dirname(cowboot_qemu.__file__), "failing_disk.py")
        name = os.path.basename(self.sock)[:-5]
        self.proc = cowboot_qemu.start_nbdkit(self.sock, [
            "python", plugin, f"file={path or self.path}", f"zones={self.zones_path}",
            f"stats={self.stats_path}", f"trace={os.path.join(TRACE, name + '.trace')}"])


def mark_window(nbd, t0, t1):
    """The run's own span beside its trace (the reads before it are the boot's)."""
    if TRACE:
        with open(os.path.join(TRACE, os.path.basename(nbd.sock)[:-5] + ".window"), "w") as f:
            f.write(f"{t0:.6f} {t1:.6f}\n")


def fresh_nbd(img, zones, tmp, name):
    return TracedNbd(img, zones, tmp, name=name)


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
        t, mt = time.time(), time.monotonic()
        subprocess.run(["ddrescue", "-d", f"-r{RETRIES}", fuse, out, mapf],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        secs = time.time() - t
        mark_window(nbd, mt, time.monotonic())
        qsd.terminate()
        qsd.wait()
        stats = nbd.stats()
        with open(mapf) as f:
            blocks = parse_mapfile(f.read())
        os.remove(out)
        os.remove(mapf)
    return dict(secs=secs, rescued=sum(s for p, s, st in blocks if st == "+"), bad=stats["bad_reads"],
                reads=stats["reads"], model=stats.get("busy_s", 0.0))


def blockstats(m):
    """QEMU's statistics of each guest disk, by drive id (d0 the source, d1 the cow)."""
    r = m.qmp("query-blockstats")
    return {b.get("device") or b.get("qdev", ""): b["stats"] for b in r.get("return", [])}


def run_cowboot(img, zones, tmp, tag, size, build=None):
    cow = os.path.join(tmp, f"cow-{tag}.img")
    with open(cow, "wb") as f:
        f.truncate(size + (64 << 20))
    if build:
        cowboot_qemu.BUILD = build
    with fresh_nbd(img, zones, tmp, f"cb-{tag}") as nbd:
        disks = [dict(nbd_socket=nbd.sock, serial="BENCH-SRC", readonly=True), dict(path=cow, serial="BENCH-COW")]
        with Machine(disks=disks, name=f"bench-rescue-{tag}") as m:
            m.wait_prompt(60)
            m.cmd("cow format vd2 vd1 --yes", 120)
            m.cmd("cow open vd1 vd2", 120)
            m.cmd("set progress=lines")
            base, bs0 = nbd.stats(), blockstats(m)
            src0 = disk_info(m.cmd("info vd1", 60))
            t, mt = time.time(), time.monotonic()
            m.cmd(f"rescue ov0 retries={RETRIES} timeout=1000", 60)
            m.cmd("wait ov0", 3600)
            secs = time.time() - t
            mark_window(nbd, mt, time.monotonic())
            bs1 = blockstats(m)
            src1 = disk_info(m.cmd("info vd1", 60))
            commits = re.search(r"commits (\d+)", m.cmd("cow stats ov0", 60))
            blocks = parse_mapfile(map_text(m.cmd("map ov0", 120)))
            m.poweroff_and_wait(60)
        stats = nbd.stats()
    os.remove(cow)
    cw = {k: bs1["d1"][k] - bs0["d1"][k] for k in ("wr_operations", "wr_bytes", "flush_operations")}
    return dict(secs=secs, rescued=sum(s for p, s, st in blocks if st == "+"),
                bad=stats["bad_reads"] - base["bad_reads"], reads=stats["reads"] - base["reads"],
                model=stats.get("busy_s", 0.0) - base.get("busy_s", 0.0),
                src_s=(src1[0] - src0[0]) / 1e6 if src1 and src0 else float("nan"),
                commits=int(commits.group(1)) if commits else -1,
                cow_writes=cw["wr_operations"], cow_bytes=cw["wr_bytes"], flushes=cw["flush_operations"])


def disk_info(out):
    """Microseconds spent in a disk's requests so far (completed times average latency): `info`."""
    n = re.search(r"reads (\d+), writes (\d+), flushes (\d+)", out)
    lat = re.search(r"latency avg (\d+) us", out)
    if not n or not lat:
        return None
    return (sum(int(x) for x in n.groups()) * int(lat.group(1)),)


def truth_rescued(size, zones):
    bad = set()
    for z in zones:
        if z["kind"] in ("bad", "hang"):
            bad.update(range(z["start"], z["start"] + z["count"]))
    return size - len(bad) * SECTOR


def builds():
    spec = os.environ.get("BENCH_RESCUE_BUILDS", "")
    if not spec:
        return [("cowboot", None)]
    out = []
    for item in spec.split(","):
        name, _, path = item.partition("=")
        out.append((name, os.path.abspath(path)))
    return out


RUNS = int(os.environ.get("BENCH_RESCUE_RUNS", "1"))
BUILDS = builds()


def measure(name, key, img, zones, size, truth):
    """RUNS rounds of ddrescue and every build, taking turns: the same load for each."""
    runs = {"ddrescue": []}
    runs.update({b: [] for b, _ in BUILDS})
    for i in range(RUNS):
        runs["ddrescue"].append(run_ddrescue(img, zones, tmp, f"{key}{i}"))
        for b, path in BUILDS:
            runs[b].append(run_cowboot(img, zones, tmp, f"{key}{i}-{b}", size, path))
    rows.append((name, runs, truth))


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
        measure("failing 64 MiB", "fail", fail_img, FAILING, FAIL_SIZE, truth_rescued(FAIL_SIZE, FAILING))
    # The same drive without its hanging zone: what the tools themselves cost, without the stalls
    # that QEMU makes both of them wait out.
    NOHANG = [z for z in FAILING if z["kind"] != "hang"]
    measure("no-hang 64 MiB", "nohang", fail_img, NOHANG, FAIL_SIZE, truth_rescued(FAIL_SIZE, NOHANG))
    os.remove(fail_img)

clean_mib = int(os.environ.get("BENCH_RESCUE_MIB", "1024"))
if ONLY != "nohang":
    clean_img = os.path.join(tmp, "clean.img")
    subprocess.run(["dd", "if=/dev/urandom", f"of={clean_img}", "bs=1M", f"count={clean_mib}", "status=none"], check=True)
    measure(f"clean {clean_mib} MiB", "clean", clean_img, [], clean_mib << 20, clean_mib << 20)
shutil.rmtree(tmp, ignore_errors=True)


def med(runs, key):
    return statistics.median(r[key] for r in runs)


def fmt_row(name, tool, r, truth):
    extra = ""
    if "commits" in r:
        extra = (f" {r['src_s']:7.1f} {r['commits']:7.0f} {r['cow_writes']:9.0f} {r['cow_bytes'] / 1048576:9.1f}"
                 f" {r['flushes']:7.0f}")
    return (f"{name:16s} {tool:12s} {r['secs']:8.1f} {r['rescued']:12.0f} {truth:12d} {r['bad']:9.0f} {r['reads']:7.0f}"
            f" {r['rescued'] / r['secs'] / 1048576:8.1f} {r['model']:7.1f}{extra}")


print(f"{'drive':16s} {'tool':12s} {'time s':>8s} {'rescued B':>12s} {'truth B':>12s} {'bad reads':>9s} {'reads':>7s}"
      f" {'MiB/s':>8s} {'model s':>7s} {'reads s':>7s} {'commits':>7s} {'cow wr':>9s} {'cow MiB':>9s} {'flushes':>7s}")
for name, runs, tr in rows:
    for tool, rs in runs.items():
        if len(rs) > 1:
            for i, r in enumerate(rs):
                print(fmt_row(name, f"{tool}#{i + 1}", r, tr))
        print(fmt_row(name, tool if len(rs) == 1 else f"{tool} med", {k: med(rs, k) for k in rs[0]}, tr))
    dd = runs["ddrescue"]
    for b, _ in BUILDS:
        cb = runs[b]
        print(f"{name:16s} ratios ({b}, medians): time {b}/ddrescue {med(cb, 'secs') / med(dd, 'secs'):.2f} (target <= 0.9 on the "
              f"failing drive), rescued {med(cb, 'rescued') - med(dd, 'rescued'):+.0f} B vs ddrescue (target >= 0), "
              f"bad reads {med(cb, 'bad'):.0f}/{med(dd, 'bad'):.0f} (target <= 1), "
              f"throughput {med(dd, 'secs') / med(cb, 'secs'):.2f}x ddrescue's (target >= 1.2 on the clean drive)")
print("Notes: cowboot's time is from `rescue` to the end of `wait` (the boot, ~6 s, is not counted), in QEMU\n"
      "under TCG; ddrescue runs natively on the host. `model s`: the drive model's own time answering reads;\n"
      "`reads s`: the appliance's time inside source requests; commits, cow writes, MiB and flushes: the cow's.\n"
      "Inside QEMU a device reset waits for the backend's in-flight request, so a hanging read costs its\n"
      "full stall (2 s here) in both tools: the per-command deadline (timeout=1000) cannot cut it short in\n"
      "QEMU, only on real hardware.")
