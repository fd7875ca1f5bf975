#!/usr/bin/env python3
"""A SATA command past its deadline: the disk sits behind a QEMU throttle filter (a slow drive,
finite: QEMU 7.2's AHCI port reset with an NBD read held forever crashes QEMU), a large read
outlives io-timeout, the ladder restarts the port, IDENTIFY answers with the same identity and
reads continue with the right data."""
import os
import re
import sys
import shutil
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cowboot_qemu import Machine, check, check_sum, finish, make_pattern_disk  # noqa: E402

tmp = tempfile.mkdtemp(prefix="cowboot-ahcihang-")
img = os.path.join(tmp, "slow.img")
make_pattern_disk(img, 8 << 20, "slow")
# 256 KiB/s: a 1 MiB read takes about 4 s once the first burst is spent.
extra = ["-object", "throttle-group,id=tg0,x-bps-read=262144",
         "-blockdev", f"driver=file,node-name=sf,filename={img},cache.direct=on",
         "-blockdev", "driver=raw,node-name=sr,file=sf",
         "-blockdev", "driver=throttle,node-name=st,throttle-group=tg0,file=sr",
         "-device", "ide-hd,drive=st,bus=ide.0,serial=H-SLOW"]
with Machine(extra_args=extra, name="ahcihang") as m:
    m.wait_prompt(90)
    out = m.cmd("disks")
    got = re.search(r"^(sata\d)\s.*H-SLOW", out, re.M)
    check("the throttled SATA disk is found", got, out)
    d = got.group(1) if got else "sata0"
    # With NCQ (the default). Without NCQ, QEMU 7.2 itself crashes (SIGSEGV) when the port is
    # restarted while the throttled DMA read is held, as with a held NBD read.
    m.cmd("set io-timeout=2500")
    timed_out = False
    for _ in range(3):
        out = m.cmd(f"sum {d} 0 2048", 60)
        if "command timed out" in out:
            timed_out = True
            break
    check("a read slower than io-timeout fails with a timeout", timed_out, out)
    log = m.cmd("log 10")
    check("the deadline fired and the ladder restarted the port",
          re.search(rf"disk {d}: request at LBA 0 timed out after 2500 ms, resetting", log) and
          f"{d}: port restart" in log, log)
    got = re.search(rf"{d}: answers as the same disk after the port reset \((\d+) ms\)", log)
    check("the port restart was enough (IDENTIFY answered as the same disk)",
          got and "COMRESET" not in log and "is gone" not in log, log)
    if got:
        print(f"time from the timeout to the disk answering again: {got.group(1)} ms")
    m.cmd("sleep 6000")   # let the throttle's budget refill
    check_sum(m, "reads after the recovery return the host's data", d, 100, 64, img)
    out = m.cmd(f"info {d}")
    check("info counts the timeout and the reset", re.search(r"timeouts 1, resets 1", out), out)
    code = m.poweroff_and_wait()
    check("QEMU survived the port restart and powers off", code == 0, (code, m.qemu_output()))
shutil.rmtree(tmp, ignore_errors=True)
finish()
