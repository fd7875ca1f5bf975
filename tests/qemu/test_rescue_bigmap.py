#!/usr/bin/env python3
"""A rescue whose map holds more than 200,000 extents, resumed after kill -9. The map comes
from a ddrescue mapfile imported on the host (a bad sector every 8 KiB over 781 MiB: what a
drive with a dead head leaves after the first passes), so no 100,000 read errors need to be
emulated. The appliance says how many extents its memory allows and copies the non-tried areas
between the bad sectors; it is killed mid-copy, and a second run goes on from the map and is
stopped (copying all of it under TCG would take minutes). After each run the cow passes
`cowtool check` and its map (read on the host: 200,000 lines are too many for the serial
console) keeps every bad sector; progress only grows, and the export with the source equals the
source, so no sector the cow holds differs from it. The second boot also carries a version-1
cow made on the host (tests/qemu/mkcow_v1.c): `cow upgrade` refuses the open cow, converts the
old one to version 3 and says so, a second time says it already is; the upgraded cow opens with
the map it had, and on the host passes `cowtool check` as version 3 with that same map."""
import hashlib
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cowboot_qemu import BUILD, Machine, check, finish, map_text, parse_mapfile  # noqa: E402

COWTOOL = os.path.join(BUILD, "cowtool")
KIB = 1024
HEAD = 16 << 20                     # healthy space before and after the damaged region
BADS = 100000                       # one bad sector every 8 KiB (the cow holds one extent per 4 KiB)
REGION = BADS * 8 * KIB
SIZE = HEAD + REGION + HEAD


def run(*argv):
    r = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    return r.returncode, r.stdout


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for b in iter(lambda: f.read(1 << 20), b""):
            h.update(b)
    return h.hexdigest()


tmp = tempfile.mkdtemp(prefix="cowboot-bigmap-")
src, cow = os.path.join(tmp, "src.img"), os.path.join(tmp, "cow.img")
rng = random.Random(int(os.environ.get("COWBOOT_SEED", "11")))
block = bytes(rng.getrandbits(8) for _ in range(1 << 20))
with open(src, "wb") as f:
    for i in range(SIZE >> 20):
        f.write(block[i % 997:] + block[:i % 997])   # every MiB different
    f.write(block[:SIZE & ((1 << 20) - 1)])
src_hash = sha256_file(src)

lines = ["# Mapfile. Created by GNU ddrescue version 1.27", "0x00000000     ?               1",
         "#      pos        size  status", f"0x{0:08X}  0x{HEAD:08X}  ?"]
for k in range(BADS):
    at = HEAD + k * 8 * KIB
    lines.append(f"0x{at:08X}  0x{4 * KIB:08X}  ?")
    lines.append(f"0x{at + 4 * KIB:08X}  0x{512:08X}  -")
    lines.append(f"0x{at + 4 * KIB + 512:08X}  0x{4 * KIB - 512:08X}  ?")
lines.append(f"0x{HEAD + REGION:08X}  0x{HEAD:08X}  ?")
mapfile = os.path.join(tmp, "dead-head.map")
with open(mapfile, "w") as f:
    f.write("\n".join(lines) + "\n")
rc, out = run(COWTOOL, "format", cow, src)
rc2, out2 = run(COWTOOL, "import-map", cow, mapfile)
check("the host takes over a ddrescue run with 200,000 bad-sector extents", rc == 0 and rc2 == 0, out + out2)

disks = [dict(path=src, serial="DEADHEAD-1", readonly=True), dict(path=cow, serial="COW-BIG")]
with Machine(disks=disks, name="bigmap1", memory=256) as m:
    m.wait_prompt(60)
    out = m.cmd("cow open vd1 vd2", 120)
    check("the appliance opens the cow", "ov0: vd2 over vd1" in out, out)
    out = m.cmd("rescue ov0 passes=copy commit=1000")
    mm = re.search(r"the map holds (\d+) extents; memory allows about (\d+), the cow (\d+)", out)
    check("before it starts, the rescue says the map holds > 200,000 extents and how many memory allows",
          mm and int(mm.group(1)) > 200000 and int(mm.group(2)) > int(mm.group(1)), out)
    time.sleep(rng.uniform(8, 14))
    m.kill()



def host_state():
    """cowtool check's verdict, and the map's finished bytes and bad areas, read on the host."""
    rc, out = run(COWTOOL, "check", cow)
    rc2, text = run(COWTOOL, "map", cow)
    blocks = parse_mapfile(text)
    return rc == 0 and rc2 == 0, sum(s for p, s, st in blocks if st == "+"), \
        sum(1 for p, s, st in blocks if st == "-"), len(blocks), out


# A version-1 cow of a small source, for the second boot's `cow upgrade`.
src1, cow1 = os.path.join(tmp, "src1.img"), os.path.join(tmp, "cow1.img")
with open(src1, "wb") as f:
    f.write(bytes(rng.getrandbits(8) for _ in range(4 << 20)))
src1_hash = sha256_file(src1)
with open(cow1, "wb") as f:
    f.truncate(8 << 20)
root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
helper = os.path.join(tmp, "mkcow_v1")
rc, out = run(os.environ.get("HOSTCC", "gcc"), "-std=c11", "-O2", "-Wall", "-Wextra", "-Werror", "-D_GNU_SOURCE",
              "-I" + root, os.path.join(root, "tests/qemu/mkcow_v1.c"), os.path.join(BUILD, "host/libcowboot.a"),
              "-o", helper)
rc2, out2 = run(helper, cow1, src1) if rc == 0 else (rc, "")
rc3, info1 = run(COWTOOL, "info", cow1)
rc4, v1map = run(COWTOOL, "map", cow1)
v1blocks = parse_mapfile(v1map)
check("the host makes a version-1 cow with a map of bad, non-scraped and finished areas",
      rc == rc2 == rc3 == rc4 == 0 and "format version 1" in info1 and len(v1blocks) > 500 and
      {"-", "/", "+"} <= {st for p, sz, st in v1blocks}, out + out2 + info1)

ok1, done1, bad1, n1, out = host_state()
check("after kill -9 the cow's metadata is valid and keeps all 100,000 bad sectors", ok1 and bad1 == BADS, out)
check("the cut fell in the middle of the copy, with progress committed", 0 < done1 < SIZE - BADS * 512 and n1 > 200000,
      (done1, n1))

disks2 = disks + [dict(path=src1, serial="OLD-SRC", readonly=True), dict(path=cow1, serial="OLD-COW")]
with Machine(disks=disks2, name="bigmap2", memory=256) as m:
    m.wait_prompt(60)
    m.cmd("cow open vd1 vd2", 120)
    out = m.cmd("cow upgrade vd2", 60)
    check("cow upgrade refuses the cow of an open overlay", "in use by an open overlay" in out, out)
    out = m.cmd("cow upgrade vd4", 120)
    check("cow upgrade converts the version-1 cow and says so", "vd4: upgraded to version 3" in out, out)
    out = m.cmd("cow upgrade vd4", 120)
    check("a second cow upgrade says it already is version 3", "vd4: already version 3" in out, out)
    out = m.cmd("cow open vd3 vd4", 120)
    check("the upgraded cow opens over its source", "ov1: vd4 over vd3" in out, out)
    out = m.cmd("map ov1", 120)
    check("with the map it had as version 1", parse_mapfile(map_text(out)) == v1blocks, out[-2000:])
    out = m.cmd("cow close ov1", 60)
    m.cmd("rescue ov0 passes=copy commit=1000")
    time.sleep(15)
    out = m.cmd("stop ov0", 120)
    check("the resumed rescue stops and commits", re.search(r"ov0: stopped at byte \d+, progress committed", out), out)
    m.poweroff_and_wait()
ok2, done2, bad2, n2, out = host_state()
check("the resumed run went on from the map (progress grew, the bad sectors kept)",
      ok2 and done2 > done1 and bad2 == BADS, (done1, done2, bad2, out))
out_img = os.path.join(tmp, "out.img")
rc, out = run(COWTOOL, "export", cow, src, out_img)
rc2, _ = run("cmp", "-s", out_img, src)
check("the export (the source where the cow has nothing) equals the source", rc == 0 and rc2 == 0, out)
check("the source image is unchanged", sha256_file(src) == src_hash)
rc, info1 = run(COWTOOL, "info", cow1)
rc2, chk1 = run(COWTOOL, "check", cow1)
rc3, map1 = run(COWTOOL, "map", cow1)
check("on the host the upgraded cow is version 3, passes check and keeps its map",
      rc == rc2 == rc3 == 0 and "format version 3" in info1 and parse_mapfile(map1) == v1blocks, info1 + chk1)
check("the old cow's source image is unchanged", sha256_file(src1) == src1_hash)
shutil.rmtree(tmp, ignore_errors=True)
finish()
