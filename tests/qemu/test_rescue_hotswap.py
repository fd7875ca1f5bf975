#!/usr/bin/env python3
"""A clone whose source vanishes (the NBD server killed) pauses with a clear message, refuses
another disk offered in its place (by `disk` and by a server restarted on another image),
resumes when the same disk is back, and ends with the simulation's truth in the map and the
source's data in the target's finished ranges. A failing clone target stops the clone and
leaves the cow unharmed. The source image never changes."""
import os
import re
import shutil
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cowboot_qemu import (FailingNbd, Machine, check, finish, make_pattern_disk,  # noqa: E402
                          map_text, parse_mapfile, sha256_file, source_and_cow)

SECTOR = 512
SIZE = 32 << 20
ZONES = [
    dict(start=4096, count=57344, kind="slow", delay_ms=5),
    dict(start=30000, count=256, kind="bad"),
]
FAIL_AT = 12345   # the second target refuses writes touching this sector


def truth(s):
    return "-" if 30000 <= s < 30256 else "+"


def state_errors(blocks):
    return sum(1 for p, s, st in blocks for k in range(p // SECTOR, (p + s) // SECTOR) if st != truth(k))


def target_errors(target, src, blocks):
    wrong = 0
    with open(target, "rb") as a, open(src, "rb") as b:
        for pos, size, st in blocks:
            if st == "+":
                a.seek(pos)
                b.seek(pos)
                wrong += a.read(size) != b.read(size)
    return wrong


tmp, src, cow, src_hash = source_and_cow("hotswap", SIZE, 48 << 20)
other, tgt, tgt2 = (os.path.join(tmp, n) for n in ("other.img", "tgt.img", "tgt2.img"))
make_pattern_disk(other, SIZE, "impostor")
for p in (tgt, tgt2):
    with open(p, "wb") as f:
        f.truncate(SIZE)
write_error = (f'[inject-error]\nevent = "write_aio"\niotype = "write"\nerrno = "5"\n'
               f'sector = "{FAIL_AT}"\nonce = "off"\n')

with FailingNbd(src, ZONES, tmp) as nbd:
    disks = [dict(nbd_socket=nbd.sock, serial="FAILING-3", readonly=True), dict(path=cow, serial="COW-3"),
             dict(path=tgt, serial="TARGET-1"), dict(path=other, serial="OTHER-1", readonly=True),
             dict(path=tgt2, serial="TARGET-2", blkdebug_rules=write_error)]
    with Machine(disks=disks, name="hotswap") as m:
        m.wait_prompt(60)
        m.cmd("cow format vd2 vd1 --yes", 60)
        m.cmd("cow open vd1 vd2", 60)
        m.cmd("set progress=lines")
        out = m.cmd("clone ov0 vd1")
        check("clone refuses the source as its target", "cannot be the target" in out, out)
        out = m.cmd("clone ov0 vd2")
        check("clone refuses the cow as its target", "cannot be the target" in out, out)
        out = m.cmd("clone ov0 vd3 timeout=1000 commit=1000")
        check("clone starts", "ov0: clone started" in out, out)
        time.sleep(1.5)
        nbd.stop()
        m.wait_for(r"the source stopped answering", 60)
        m.wait_for(r"ov0: source vd1 is not answering; the job waits for it", 30)
        check("a vanished source pauses the job with a clear message", True)
        out = m.cmd("status")
        check("status shows the job waiting for its source", "ov0 clone: waiting for the source" in out, out)
        out = m.cmd("wipe vd3 --yes")
        check("wipe refuses a clone job's target", "vd3 is a clone job's target" in out, out)
        out = m.cmd("disk ov0 vd4", 60)
        check("disk with another drive is refused, the differing field named",
              "vd4 refused: source serial differs" in out, out)
        nbd.start(path=other)
        m.wait_for(r"vd1 is not this overlay's source, refused: source contents differ", 60)
        check("an impostor drive in the source's place is refused, contents named", True)
        nbd.stop()
        nbd.start()
        m.wait_for(r"ov0: source vd1 answers again with the same identity; resuming", 60)
        check("the same drive coming back resumes the job", True)
        out = m.cmd("wait ov0", 600)
        check("the clone finishes", re.search(r"ov0: clone finished in \d+ s", m.last_before + out), out[-1500:])
        blocks = parse_mapfile(map_text(m.cmd("map ov0", 60)))
        check("the map equals the truth although the source vanished mid-run",
              blocks and state_errors(blocks) == 0, blocks)
        out = m.cmd("status")
        check("status names the clone target and its bytes", re.search(r"clone target vd3: \d+ bytes written", out), out)

        out = m.cmd("clone ov0 vd5 timeout=1000")
        out += m.cmd("wait ov0", 120)
        check("a failing clone target stops the clone, named with its offset",
              f"clone target vd5 failed at byte {FAIL_AT // 8 * 8 * SECTOR}" in out or
              re.search(r"clone target vd5 failed at byte \d+", out), out[-1500:])
        check("wait reports the failed clone", "error: clone target failed" in out, out[-500:])
        blocks2 = parse_mapfile(map_text(m.cmd("map ov0", 60)))
        check("the cow is unharmed by the failing target", blocks2 == blocks, blocks2)
        code = m.poweroff_and_wait()
        check("poweroff", code == 0, code)
    check("the clone target's finished ranges equal the source", target_errors(tgt, src, blocks) == 0)
check("the source image is unchanged", sha256_file(src) == src_hash)
shutil.rmtree(tmp, ignore_errors=True)
finish()
