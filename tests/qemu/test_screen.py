#!/usr/bin/env python3
"""The screen as a person sees it, read back from QMP screendumps: glyphs are learnt from a line
the test types (echo of every character it needs), then every cell of the screen is decoded.
After boot the first screen names the disks (a source, a disk that could hold its cow), says each
one's health in words (QEMU's SMART on a SATA disk, NVMe health logs with critical warnings set,
drawn red when failing and yellow with a warning; over serial too) and what to type; a failing
command is drawn in red however it words its failure (a refused wipe); during a rescue the bottom row is the status line (phase,
position, rescued, bad, rate, ETA), on its own colour and live; Shift+PgUp scrolls back."""
import os
import re
import struct
import sys
import tempfile
import time
import zlib

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cowboot_qemu import (FailingNbd, Machine, ROOT, check, finish, make_pattern_disk,  # noqa: E402
                          sha256_file)

GW, GH = 8, 19   # OVMF's glyphs (1x below 2000 pixels); the 2x boot sets 16, 38
ALPHABET = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.,:;@%/()+-_=|<>[]*#!?"
SIZE = 16 << 20


def shot(m, name):
    path = os.path.join(m.tmp, name + ".ppm")
    m.qmp("screendump", filename=path)
    data = open(path, "rb").read()
    magic, dims, maxval, px = data.split(b"\n", 3)
    w, h = map(int, dims.split())
    return w, h, px


def png(ppm, path):
    """PPM (P6) to PNG with zlib only."""
    w, h, px = ppm
    raw = b"".join(b"\0" + px[y * w * 3:(y + 1) * w * 3] for y in range(h))

    def chunk(t, b):
        return struct.pack(">I", len(b)) + t + b + struct.pack(">I", zlib.crc32(t + b) & 0xffffffff)
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)) +
                chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b""))


def pixel(img, x, y):
    w, h, px = img
    i = (y * w + x) * 3
    return tuple(px[i:i + 3])


def cell(img, col, row):
    """(mask of lit pixels, foreground colour, background colour) of one character cell."""
    w, h, px = img
    bg = pixel(img, col * GW, row * GH)
    mask, fg = [], None
    for y in range(GH):
        for x in range(GW):
            p = pixel(img, col * GW + x, row * GH + y)
            lit = p != bg
            mask.append(lit)
            if lit:
                fg = p
    return tuple(mask), fg, bg


class Screen:
    def __init__(self, img, glyphs):
        self.img = img
        self.cols, self.rows = img[0] // GW, img[1] // GH
        self.glyphs = glyphs

    def row(self, r):
        out = []
        for c in range(self.cols):
            mask = cell(self.img, c, r)[0]
            out.append(" " if not any(mask) else self.glyphs.get(mask, "?"))
        return "".join(out).rstrip()

    def text(self):
        return [self.row(r) for r in range(self.rows)]


def learn(img):
    """Glyphs from the echo of ALPHABET: the row whose cells repeat those of the row above it
    from column 14 on (after 'cowboot> echo ')."""
    cols, rows = img[0] // GW, img[1] // GH
    n = len(ALPHABET)
    for r in range(1, rows):
        below = [cell(img, c, r)[0] for c in range(n)]
        above = [cell(img, 14 + c, r - 1)[0] for c in range(n)]
        if below == above and all(any(m) for m in below) and len(set(below)) == n:
            return dict(zip(below, ALPHABET))
    return None


def colour_of(img, s, row):
    """The foreground colour of a text row (its first lit cell)."""
    for c in range(s.cols):
        fg = cell(img, c, row)[1]
        if fg:
            return fg
    return None


def is_red(fg):
    return bool(fg) and fg[0] > 200 and fg[1] < 120 and fg[2] < 120


def is_yellow(fg):
    return bool(fg) and fg[0] > 200 and fg[1] > 160 and fg[2] < 120


def is_plain(fg):
    return bool(fg) and abs(fg[0] - fg[1]) < 16 and abs(fg[1] - fg[2]) < 16


tmp = tempfile.mkdtemp(prefix="cowboot-screen-")
src, cow = os.path.join(tmp, "src.img"), os.path.join(tmp, "cow.img")
make_pattern_disk(src, SIZE, "source")
with open(src, "r+b") as f:   # an MBR with one partition, so it looks like a source
    mbr = bytearray(512)
    mbr[446:462] = struct.pack("<B3sB3sII", 0, b"\0\0\0", 0x83, b"\0\0\0", 2048, SIZE // 512 - 2048)
    mbr[510:512] = b"\x55\xaa"
    f.write(mbr)
with open(cow, "wb") as f:
    f.truncate(SIZE + (8 << 20))
smalls = []
# Smaller than the source, so not offered for its cow; but the failing NVMe is large enough and
# smaller than vd2, so only its health keeps it from being offered.
for name, size in (("sata.img", 8 << 20), ("nvfail.img", 20 << 20), ("nvwarn.img", 4 << 20)):
    smalls.append(os.path.join(tmp, name))
    with open(smalls[-1], "wb") as f:
        f.truncate(size)
src_hash = sha256_file(src)
ZONES = [dict(start=0, count=SIZE // 512, kind="slow", delay_ms=60), dict(start=20000, count=8, kind="bad")]

with FailingNbd(src, ZONES, tmp) as nbd:
    disks = [dict(nbd_socket=nbd.sock, serial="SCR-SRC", readonly=True), dict(path=cow, serial="SCR-COW"),
             dict(path=smalls[0], transport="sata", serial="SCR-SATA"),
             # NVMe critical warnings as QEMU models them: reliability degraded (a failing
             # drive), and the temperature one alone (a warning).
             dict(path=smalls[1], transport="nvme", serial="SCR-NVF", props="smart_critical_warning=4"),
             dict(path=smalls[2], transport="nvme", serial="SCR-NVW", props="smart_critical_warning=2")]
    with Machine(disks=disks, name="screen", extra_args=["-device", "VGA"]) as m:
        m.wait_prompt(90)
        boot = m.last_before
        first = boot[boot.find("Found "):]
        print("first screen over serial:\n" + first.rstrip())

        def health_of(name):
            got = re.search(r"^  %s .*\n +(.*)$" % re.escape(name), first, re.M)
            return got.group(1) if got else None
        check("over serial the first screen says each disk's health in words: virtio offers none, "
              "QEMU's SATA SMART passes, the NVMe with reliability degraded is failing, the one over "
              "its temperature threshold passes with a warning",
              health_of("vd0") == "health: not offered by virtio" and health_of("sata0") == "SMART: passed" and
              health_of("nvme0n1") == "health log: FAILING (reliability degraded)" and
              (health_of("nvme1n1") or "").startswith("health log: passed, but temperature out of range"),
              first[:1500])
        m.cmd("echo " + ALPHABET)
        img = shot(m, "boot")
        glyphs = learn(img)
        check("the screen shows the typed line and its echo in the firmware's glyphs", glyphs, "no echo row")
        glyphs = glyphs or {}
        s = Screen(img, glyphs)
        text = s.text()
        joined = "\n".join(text)
        check("the first screen counts the disks", re.search(r"Found 6 disks", joined), joined[:1500])
        rows = {}
        for r, t in enumerate(text):
            for name in ("vd0", "sata0", "nvme0n1", "nvme1n1"):
                if t.startswith("  %s " % name) and r + 1 < len(text):
                    rows[name] = (r + 1, text[r + 1].strip())
        check("on the screen each disk's health is the line under it",
              rows.get("sata0", (0, ""))[1] == "SMART: passed" and
              rows.get("nvme0n1", (0, ""))[1] == "health log: FAILING (reliability degraded)" and
              rows.get("nvme1n1", (0, ""))[1].startswith("health log: passed, but temperature"), rows)
        fgs = {k: colour_of(img, s, r) for k, (r, t) in rows.items()}
        check("a failing disk's health is red, a warning yellow, a passing one plain",
              is_red(fgs.get("nvme0n1")) and is_yellow(fgs.get("nvme1n1")) and is_plain(fgs.get("sata0")), fgs)
        check("the first screen calls the partitioned disk a source",
              re.search(r"vd1 .*looks like a source", joined), joined[:1500])
        check("the first screen offers the blank disk for the cow",
              re.search(r"vd2 .*could hold a cow", joined), joined[:1500])
        check("a failing blank disk is not offered for the cow",
              re.search(r"nvme0n1 .*failing: not one to hold a cow", joined), joined[:1500])
        check("the first screen says what to type next",
              "cow format vd2 vd1 --yes, then cow open vd1 vd2, then rescue ov0" in joined, joined[:1500])
        check("the status line sits on the bottom row", text[-1].startswith(" no jobs running"), text[-1])
        fg, bg = cell(img, 1, s.rows - 1)[1:]
        check("the status line has its own colours", bg[2] > 0x60 and bg[0] < 0x60 and fg == (255, 255, 255),
              (fg, bg))

        took = re.search(r"first screen: the disks' health read in (\d+) ms", m.cmd("log 60"))
        print("the first screen's health reads took", took and took.group(1), "ms for 6 disks")
        m.cmd('echo "unterminated')   # a failure the shell words: its "error:" line
        out = m.cmd("read nosuch 0")   # the block layer says it: one line, no "error:" after it
        img = shot(m, "error")
        s = Screen(img, glyphs)
        rows = [r for r, t in enumerate(s.text()) if t.startswith("error:")]
        fg = cell(img, 0, rows[-1])[1] if rows else None
        check("an error line is drawn in red", fg and fg[0] > 200 and fg[1] < 120 and fg[2] < 120,
              (rows, fg, s.text()[-8:]))
        rows = [r for r, t in enumerate(s.text()) if t.startswith("no disk ")]   # ' is not learnt
        check("a missing disk is one red line (no generic error after it)",
              out.strip() == "no disk 'nosuch' (see disks)" and rows and is_red(colour_of(img, s, rows[-1])),
              (out, rows))
        out = m.cmd("wipe vd0 --yes")   # refused: the command words it and fails (cmd_said)
        img = shot(m, "refused")
        s = Screen(img, glyphs)
        rows = [r for r, t in enumerate(s.text()) if t.startswith("wipe: refused:")]
        fg = colour_of(img, s, rows[-1]) if rows else None
        check("a refused wipe (its own words, no 'error:') is drawn in red", "error:" not in out and is_red(fg),
              (out, rows, fg))
        rows = [r for r, t in enumerate(s.text()) if t.startswith("cowboot> wipe vd0")]
        fg = colour_of(img, s, rows[-1]) if rows else None
        check("the typed command line itself stays plain", is_plain(fg), (rows, fg))

        m.cmd("cow format vd2 vd1 --yes", 60)
        m.cmd("cow open vd1 vd2", 60)
        m.cmd("rescue ov0")
        time.sleep(4)
        img = shot(m, "rescue")
        s = Screen(img, glyphs)
        line1 = s.row(s.rows - 1)
        rx = (r"^ ov0 running \w+ p\d (fwd|bwd) @\S+ \S+ rescued \S+ \S+ [\d.]+% bad \S+ \S+/\d+ "
              r"rate \S+ \S+/s avg \S+ \S+/s \d+s ETA \S+")
        check("during a rescue the bottom row is its status line (phase, position, rescued, bad, rate, ETA)",
              re.search(rx, line1), line1)
        fg, bg = cell(img, 1, s.rows - 1)[1:]
        check("the job's status line is coloured (blue, or red once there are bad areas)",
              (bg[2] > 0x60 and bg[0] < 0x60) or (bg[0] > 0x80 and bg[2] < 0x60), bg)
        if os.environ.get("COWBOOT_SAVE_SCREEN"):
            png(img, os.path.join(ROOT, "docs", "screen-rescue.png"))
        time.sleep(3)
        line2 = Screen(shot(m, "rescue2"), glyphs).row(s.rows - 1)
        check("the status line is live (it changed within 3 s)", line2 != line1 and re.search(rx, line2),
              (line1, line2))

        m.cmd("echo SCROLLMARK")
        m.cmd("help")   # two pages push the marker off the screen
        m.cmd("help")
        before = Screen(shot(m, "before-back"), glyphs).text()
        m.send_keys([["shift", "pgup"], ["shift", "pgup"]])
        time.sleep(1)
        s = Screen(shot(m, "back"), glyphs)
        back = s.text()
        check("Shift+PgUp scrolls back: the status line says so and older lines show",
              any("scroll-back:" in t for t in back[-3:]) and "SCROLLMARK" in "\n".join(back) and
              "SCROLLMARK" not in "\n".join(before),
              back[-3:])
        # The view holds its lines while the job's events arrive, so it may take more pages
        # down than it took up to reach the newest line; past it, Shift+PgDn stays there.
        m.send_keys([["shift", "pgdn"]] * 4)
        time.sleep(1)
        fwd = Screen(shot(m, "forward"), glyphs).text()
        check("Shift+PgDn comes back to the newest lines",
              "SCROLLMARK" not in "\n".join(fwd) and not any("scroll-back:" in t for t in fwd), fwd[-3:])
        m.cmd("quit", 60)
        m.poweroff_and_wait(60)
check("the source image is unchanged", sha256_file(src) == src_hash)

# A screen wider than 2000 pixels: the glyphs are doubled (mode asked for in cowboot.cfg).
with Machine(name="screen2x", extra_args=["-device", "VGA,vgamem_mb=32"], cfg="screen 2560x1600\n") as m:
    m.wait_prompt(90)
    out = m.cmd("screen")
    check("cowboot.cfg's screen line sets the 2560x1600 mode and the glyphs are doubled",
          "screen: 2560x1600, 160x42 cells (glyphs x2)" in out, out)
    out = m.cmd("screen 1024x768")
    check("screen WxH at the prompt refuses a mode that is not the one in use",
          "is not the mode in use (2560x1600)" in out and "error:" not in out, out)
    m.cmd("echo " + ALPHABET)
    GW, GH = 16, 38
    img = shot(m, "boot2x")
    glyphs2 = learn(img)
    check("at 2x the typed line and its echo are drawn in 16x38 cells", glyphs2, "no echo row")
    s = Screen(img, glyphs2 or {})
    check("at 2x the status line sits on the bottom row", s.row(s.rows - 1).startswith(" no jobs running"),
          s.row(s.rows - 1))
    check("at 2x every doubled glyph is the 1x glyph scaled", glyphs2 and all(
        any(tuple(mask[(y // 2) * 8 + x // 2] for y in range(38) for x in range(16)) == big
            for big, c2 in glyphs2.items() if c2 == c) for mask, c in glyphs.items()), "scaled glyphs differ")
finish()
