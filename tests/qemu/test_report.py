#!/usr/bin/env python3
"""Reports on the boot stick (docs/report.md). An unattended run from the boot image's
cowboot.cfg (cow format, open, rescue, wait, report, poweroff) leaves cowboot/<date>-<machine>/
on it, read back on the host with mtools: the mapfile is accepted by `ddrescuelog -t` with the
truth's totals and `cowtool import-map` continues from it, events.log and summary.txt say what
happened, `fsck.fat -n` is clean. A second boot: a full boot volume, a damaged FAT and a
protected boot disk are each refused with a clear message and the image is left as it was."""
import os
import re
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cowboot_qemu import (BUILD, Machine, check, finish, parse_mapfile, sha256_file,  # noqa: E402
                          source_and_cow)
from mkdemo import gpt_disk  # noqa: E402

SECTOR = 512
SIZE = 8 << 20
BAD = [3000, 3001, 12000]
SRC_SERIAL = "SRC-4711"


def rules(sectors):
    return "".join(f'[inject-error]\nevent = "read_aio"\niotype = "read"\nerrno = "5"\n'
                   f'sector = "{s}"\nonce = "off"\n\n' for s in sectors)


def run(*argv, **kw):
    return subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **kw)


def fsck(img):
    p = run("fsck.fat", "-n", img)
    return p.returncode == 0, p.stdout


class StickMachine(Machine):
    """A boot image changed by `prepare(path)` before QEMU starts (a full stick)."""

    def __init__(self, prepare=None, **kw):
        super().__init__(**kw)
        self.prepare = prepare

    def _boot_image(self):
        img = super()._boot_image()
        if self.prepare:
            self.prepare(img)
        return img


tmp, src, cow, src_hash = source_and_cow("report", SIZE, 32 << 20, "src")
disks = [dict(path=src, serial=SRC_SERIAL, readonly=True, blkdebug_rules=rules(BAD)),
         dict(path=cow, serial="COW-0001")]
cfg = ("set progress=lines\ncow format vd2 vd1 --yes\ncow open vd1 vd2\nrescue ov0 timeout=2000\n"
       "wait\nreport\npoweroff\n")

# ---- 1: the unattended run ----------------------------------------------------------------
files = {}
with Machine(disks=disks, cfg=cfg, name="report") as m:
    code = m.wait_exit(300)
    check("the unattended run powers off with status 0", code == 0, m.buf[-1500:])
    log = m.buf
    check("the report command says where it wrote",
          re.search(r"report written to vd0: cowboot/\S+/ \(events\.log, ov0-SRC-4711\.map, summary\.txt\)", log),
          log[-2000:])
    img = os.path.join(m.tmp, "boot.img")
    ok, out = fsck(img)
    check("fsck.fat -n finds the boot volume clean", ok, out)
    ls = run("mdir", "-i", img, "-b", "::/cowboot").stdout.split()
    dirs = [p for p in ls if re.match(r"::/cowboot/\d{8}-\d{6}-unknown/?$", p)]
    check("one report directory cowboot/<date>-<machine serial>/", len(dirs) == 1, ls)
    if dirs:
        d = dirs[0].rstrip("/")
        listing = run("mdir", "-i", img, "-b", d).stdout.split()
        names = sorted(os.path.basename(p) for p in listing)
        check("it holds events.log, the overlay's mapfile and summary.txt",
              names == ["events.log", f"ov0-{SRC_SERIAL}.map", "summary.txt"], listing)
        for n in names:
            p = run("mtype", "-i", img, f"{d}/{n}")
            files[n] = p.stdout
            with open(os.path.join(tmp, n), "w") as f:
                f.write(p.stdout)

mp = files.get(f"ov0-{SRC_SERIAL}.map", "")
blocks = parse_mapfile(mp)
wrong = sum(1 for p, s, st in blocks for k in range(p // SECTOR, (p + s) // SECTOR)
            if st != ("-" if k in BAD else "+"))
check("the mapfile on the stick equals the truth", blocks and wrong == 0, mp[:1500])
mpath = os.path.join(tmp, f"ov0-{SRC_SERIAL}.map")
p = run("ddrescuelog", "-t", mpath)
totals = p.stdout[p.stdout.find("mapfile extent"):]
check("ddrescuelog -t accepts it with the right totals",
      p.returncode == 0 and re.search(r"non-tried:\s+0 B", totals) and re.search(r"rescued:\s+\S+ kB,\s+in\s+3 area", totals)
      and re.search(r"bad-sector:\s+1536 B,\s+in\s+2 area", totals), p.stdout)
hcow = os.path.join(tmp, "host.cow")
cowtool = os.path.join(BUILD, "cowtool")
p1 = run(cowtool, "format", hcow, src)
p2 = run(cowtool, "import-map", hcow, mpath, "--image", src)
p3 = run(cowtool, "map", hcow)
p4 = subprocess.run(["ddrescuelog", "-t", "-"], input=p3.stdout, stdout=subprocess.PIPE, text=True)
check("cowtool import-map takes it over and its map has the same totals",
      p1.returncode == 0 and p2.returncode == 0 and totals and
      p4.stdout[p4.stdout.find("mapfile extent"):] == totals, p1.stdout + p2.stdout + p4.stdout)
exp = os.path.join(tmp, "export.img")
p5 = run(cowtool, "export", hcow, exp, "--fill", "00")
with open(exp, "rb") as a, open(src, "rb") as b:
    same = all(a.seek(p) == b.seek(p) and a.read(s) == b.read(s) for p, s, st in blocks if st == "+")
check("the imported cow holds every finished sector of the source", p5.returncode == 0 and blocks and same,
      p5.stdout)
ev = files.get("events.log", "")
check("events.log has the run's events",
      all(s in ev for s in ("ov0 opened: cow vd2, source vd1", "ov0: rescue finished",
                            "report written to vd0")), ev[-2000:])
check("events.log has each event once (appended, not repeated)",
      ev.count("ov0 opened: cow vd2, source vd1") == 1, ev[-2000:])
sm = files.get("summary.txt", "")
check("summary.txt names the machine, the volume and the occasion",
      "machine:  QEMU Standard PC (Q35 + ICH9, 2009), serial unknown" in sm and "volume:   vd0 (FAT" in sm and "(power-off or reboot)" in sm, sm)
check("summary.txt says virtio offers no health data", "health: not offered by virtio" in sm, sm)
check("summary.txt lists the disks with model and serial",
      re.search(r"vd1 .*serial 'SRC-4711' source", sm) and re.search(r"vd2 .*serial 'COW-0001' cow", sm), sm)
check("summary.txt says what was rescued and where the bad areas are",
      re.search(r"bad 1\.5 KiB in 2 areas", sm) and
      "0x00177000  0x00000400" in sm and "0x005DC000  0x00000200" in sm and
      "ov0: rescue finished" in sm, sm)
check("the source image is unchanged", sha256_file(src) == src_hash)


# ---- 2: a full stick, a damaged FAT, a protected boot disk ---------------------------------
def fill(img):
    out = run("mdir", "-i", img, "::/").stdout
    free = int(re.search(r"([\d ]+) bytes free", out).group(1).replace(" ", ""))
    with open(os.path.join(tmp, "filler"), "wb") as f:
        f.truncate(free - 512)
    subprocess.run(["mcopy", "-i", img, os.path.join(tmp, "filler"), "::/filler"], check=True)


with StickMachine(prepare=fill, name="report-full") as m:
    img = os.path.join(m.tmp, "boot.img")
    before = sha256_file(img)
    with open(img, "rb") as g:
        orig = g.read()
    m.wait_prompt(60)
    out = m.cmd("report", 60)
    check("a full boot volume: a clear message", re.search(
        r"report not written: the boot volume vd0 is full \(the report needs .+, .+ free\); nothing was changed", out), out)
    check("the command fails with 'no space left'", "error: no space left" in out, out)
    check("the full volume is untouched", sha256_file(img) == before)
    # FAT copy 2's first sector overwritten by hand: the volume is refused as damaged.
    boot = open(img, "rb").read(512)
    rsvd, fatsz = int.from_bytes(boot[14:16], "little"), int.from_bytes(boot[22:24], "little")
    lba = rsvd + fatsz
    m.cmd(f"testwrite vd0 {lba} 1 0x55", 30)
    out = m.cmd("report", 60)
    check("a damaged FAT: the reason is named",
          "report not written: the boot volume vd0 cannot be used: FAT copy 2 differs" in out, out)
    m.cmd("protect vd0")
    out = m.cmd("report", 60)
    check("a protected boot disk: refused as read-only",
          "report not written: the boot volume vd0 is read-only (protect)" in out, out)
    code = m.poweroff_and_wait()
    check("poweroff", code == 0, code)
    expect = orig[:lba * 512] + b"\x55" * 512 + orig[(lba + 1) * 512:]
    with open(img, "rb") as g:
        after = g.read()
    check("only the sector written by hand changed (the damaged FAT was left as it was)", after == expect)


# ---- 3: other sticks: an NVMe "superfloppy", a GPT disk on SATA with the FAT in partition 1 --
def gpt_stick(img):
    """The FAT image moved into partition 1 (LBA 2048) of a GPT disk, in place."""
    with open(img, "rb") as f:
        fat = f.read()
    sectors = 2048 + len(fat) // SECTOR + 34
    gpt_disk(img, sectors * SECTOR)
    with open(img, "r+b") as f:
        f.seek(2048 * SECTOR)
        f.write(fat)


def earlier_boots(img):
    """Report directories of earlier boots for every second of the next three minutes (as a
    machine without a clock, or two boots in one second, would leave them)."""
    import datetime
    now = datetime.datetime.utcnow()
    names = [(now + datetime.timedelta(seconds=k)).strftime("::/cowboot/%Y%m%d-%H%M%S-MACH_42_x")
             for k in range(-5, 180)]
    subprocess.run(["mmd", "-i", img, "::/cowboot"] + names, check=True)


# The NVMe machine has an SMBIOS serial: it names the directory (made file-name safe); a
# directory of that name left by an earlier boot is not reused.
for boot, prepare, volume, smbios in (("nvme", earlier_boots, "nvme0n1",
                                       ["-smbios", "type=1,manufacturer=ACME,serial=MACH 42/x"]),
                                      ("sata", gpt_stick, "sata0p1", [])):
    end = "poweroff" if boot == "nvme" else "reboot"   # (QEMU's -no-reboot makes a reboot exit)
    with StickMachine(prepare=prepare, boot=boot, cfg=f"report\n{end}\n", name=f"report-{boot}",
                      extra_args=smbios) as m:
        code = m.wait_exit(120)
        check(f"{boot} boot: the report is written to {volume} by `report` and again at {end}",
              code == 0 and m.buf.count(f"report written to {volume}: cowboot/") == 2 and
              ("rebooting" if end == "reboot" else "powering off") in m.buf, m.buf[-1500:])
        img = os.path.join(m.tmp, "boot.img")
        fat = img
        if prepare == gpt_stick:
            fat = os.path.join(tmp, "part1.img")
            with open(img, "rb") as f, open(fat, "wb") as g:
                f.seek(2048 * SECTOR)
                g.write(f.read(16 << 20))
        ok, out = fsck(fat)
        ls = run("mdir", "-i", fat, "-/", "-b", "::/cowboot").stdout.split()
        check(f"{boot} boot: fsck.fat -n clean, one events.log and summary.txt there",
              ok and sum(p.endswith("/events.log") for p in ls) == 1 and
              sum(p.endswith("/summary.txt") for p in ls) == 1, (out, ls))
        sm = run("mtype", "-i", fat, [p for p in ls if p.endswith("/summary.txt")][0]).stdout if ls else ""
        check(f"{boot} boot: summary.txt names {volume} as the volume and no overlays",
              f"volume:   {volume} (FAT16" in sm and "  none open" in sm, sm)
        health = {"nvme": r"health: warnings 0x00, temperature \d+ C, spare \d+%",
                  "sata": r"SMART health: ok; SMART data: "}[boot]
        check(f"{boot} boot: summary.txt has the disk's health", re.search(health, sm), sm)
        if smbios:
            check("the SMBIOS serial names the directory and the machine",
                  any(re.search(r"/cowboot/\d{8}-\d{6}-MACH_42_x-2/summary.txt$", p) for p in ls) and
                  "machine:  ACME Standard PC (Q35 + ICH9, 2009), serial MACH 42/x" in sm, (ls, sm))
shutil.rmtree(tmp, ignore_errors=True)
finish()
