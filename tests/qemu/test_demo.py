#!/usr/bin/env python3
"""The README's `make run`, as a user would drive it: the demo disks are generated, the appliance
boots on this terminal's stdio, and the commands the banner suggests rescue the failing demo
source (its four bad sectors found, in two areas) and clone it to the spare; poweroff ends QEMU
with status 0."""
import os
import re
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time

here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, here)
from cowboot_qemu import BUILD, check, finish  # noqa: E402

tmp = tempfile.mkdtemp(prefix="cowboot-demo-")
os.symlink(os.path.join(BUILD, "boot.img"), os.path.join(tmp, "boot.img"))
subprocess.run([sys.executable, os.path.join(here, "mkdemo.py"), os.path.join(tmp, "demo")], check=True,
               stdout=subprocess.DEVNULL)
# Its own session, so that QEMU (run_demo's child) goes too when the test kills it.
proc = subprocess.Popen([sys.executable, os.path.join(here, "run_demo.py"), tmp], stdin=subprocess.PIPE,
                        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
buf = ""


def expect(pattern, timeout):
    global buf
    end = time.time() + timeout
    while time.time() < end:
        m = re.search(pattern, buf)
        if m:
            before, buf = buf[:m.end()], buf[m.end():]
            return before
        r, _, _ = select.select([proc.stdout], [], [], 0.2)
        if r:
            data = os.read(proc.stdout.fileno(), 65536)
            if not data:
                break
            buf += data.decode("utf-8", "replace")
    raise TimeoutError(f"no {pattern!r}; tail: {buf[-500:]!r}")


def cmd(line, timeout=60):
    proc.stdin.write((line + "\r").encode())
    proc.stdin.flush()
    expect(re.escape(line) + r"\r*\n", timeout)   # the echo: events may come before it
    return expect(r"cowboot> ", timeout)


try:
    banner = expect(r"cowboot> ", 90)
    check("make run boots to the prompt and suggests the demo commands", "rescue ov0" in banner, banner[-600:])
    cmd("cow format vd2 vd1 --yes")
    out = cmd("cow open vd1 vd2")
    check("the demo cow opens over the demo source", "ov0: vd2 over vd1" in out, out)
    out = cmd("ls ov0 /Users/ann/Pictures", 60)
    if "no such object" in out:   # made without FUSE: the files are at the volume's root
        out = cmd("ls ov0 /", 60)
    check("the demo source's NTFS volume lists its pictures", re.search(r"^- +2100000 .* beach\.jpg\r?$", out, re.M), out)
    cmd("set progress=lines")
    cmd("rescue ov0")
    out = cmd("wait", 300)
    check("the demo rescue finds the four bad sectors in two areas",
          re.search(r"rescue finished in \d+ s: rescued .* bad 2\.0 KiB in 2 areas", out), out[-800:])
    out = cmd("map ov0")
    check("map ov0 prints the mapfile", out.count("  -") == 2 or len(re.findall(r"0x[0-9A-F]+\s+0x[0-9A-F]+\s+-", out)) == 2, out)
    cmd("clone ov0 sata0")
    out = cmd("wait", 300)
    check("the demo clone to the spare finishes", re.search(r"clone finished in \d+ s", out), out[-800:])
    proc.stdin.write(b"poweroff\r")
    proc.stdin.flush()
    rc = proc.wait(60)
    check("poweroff leaves make run with status 0", rc == 0, rc)
except (TimeoutError, subprocess.TimeoutExpired) as e:
    check("the demo scenario ran to the end", False, e)
finally:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    shutil.rmtree(tmp, ignore_errors=True)
finish()
