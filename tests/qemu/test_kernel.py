#!/usr/bin/env python3
"""Kernel core through the console: PCI enumeration, memory map, and the exception report."""
import os
import re
import time
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cowboot_qemu import Machine, check, finish  # noqa: E402

with Machine(name="kernel") as m:
    mm = m.wait_for(r"cpu: .*TSC (\d+) MHz \(measured against the ([^)]*)\)", 60)
    check("the TSC is calibrated against the ACPI PM timer", mm.group(2) == "ACPI PM timer", mm.group(0))
    m.wait_prompt(60)
    t0 = time.time()
    out = m.cmd("sleep 2000")
    dt = time.time() - t0
    check("sleep 2000 takes about two seconds of host time", 1.5 < dt < 4.0, dt)
    out = m.cmd("pci")
    check("pci lists the q35 host bridge", re.search(r"00:00\.0\s+8086:29c0\s+06/00/00 host bridge", out), out)
    check("pci lists the AHCI controller", re.search(r"00:1f\.2\s+8086:2922\s+01/06/01 SATA", out), out)
    check("pci lists the virtio disk", re.search(r"1af4:(1001|1042)", out), out)
    n = re.search(r"(\d+) devices", out)
    check("pci counts its devices", n and int(n.group(1)) == len(re.findall(r"^[0-9a-f]{2}:[0-9a-f]{2}\.\d", out, re.M)), out)
    check("pci uses ECAM from the ACPI MCFG table", re.search(r"config space: ECAM at 0x[0-9a-f]+", out), out)
    out = m.cmd("pci extra")
    check("pci with arguments prints its usage", "usage: pci" in out, out)
    out = m.cmd("mem")
    check("mem shows the conventional memory", re.search(r"conventional\s+\d+ KiB", out), out)
    tot = re.search(r"total (\d+) MiB, free (\d+) MiB", out)
    check("mem totals are plausible for -m 256", tot and 150 < int(tot.group(1)) <= 256 and int(tot.group(2)) <= int(tot.group(1)), out)
    out = m.cmd("crash nosuch")
    check("crash with a bad kind prints usage", "usage: crash" in out, out)
    m.send("crash ud")
    m.wait_for(r"\*\*\* CPU EXCEPTION 6 \(invalid opcode\)", 20)
    m.wait_for(r"system halted", 10)
    rep = m.last_before
    check("#UD report has RIP with an image offset", re.search(r"RIP [0-9a-f]{16} \(image\+0x[0-9a-f]+\)", rep), rep)
    check("#UD report has the general registers", all(r in rep for r in ("RAX", "RSP", "R15")), rep)
    check("#UD report has a stack trace", re.search(r"#0 0x[0-9a-f]+\n\s+#1 0x", rep), rep)

with Machine(name="pagefault") as m:
    m.wait_prompt(60)
    m.send("crash pf")
    m.wait_for(r"\*\*\* CPU EXCEPTION 14 \(page fault\) error code 0x([0-9a-f]+)", 20)
    m.wait_for(r"system halted", 10)
    rep = m.last_before
    check("#PF report names the faulting address in CR2", "CR2 00007ff000000000" in rep, rep)

# A smashed stack (as an overflowing parser leaves it): the trace says where it stops, and why.
with Machine(name="smash") as m:
    m.wait_prompt(60)
    m.send("crash smash")
    m.wait_for(r"\*\*\* CPU EXCEPTION 14 \(page fault\)", 20)
    m.wait_for(r"system halted", 10)
    rep = m.last_before
    check("a jump off the image is named, not printed as an offset",
          "#0 RIP 00007ff0deadbee0 is outside the image" in rep and "#0 0x" not in rep, rep)
    check("the smashed frame chain ends the trace with a reason",
          "frame pointer 4141414141414141 is outside the stack" in rep and "#1 " not in rep, rep)

# The framebuffer mirror: with a display, the console is drawn with the firmware's glyphs.
with Machine(name="fbcon", extra_args=["-device", "VGA"]) as m:
    mm = m.wait_for(r"screen: (\d+)x(\d+), console mirrored", 60)
    check("a GOP framebuffer is found and mirrored", True)
    m.wait_prompt(60)
    m.cmd("echo ZZZZZZZZZZZZ")
    shot = os.path.join(m.tmp, "screen.ppm")
    m.qmp("screendump", filename=shot)
    data = open(shot, "rb").read()
    _, dims, _, px = data.split(b"\n", 3)
    w, h = map(int, dims.split())
    gw, gh = 8, 19   # OVMF's narrow glyphs

    def cell(col, row):
        return b"".join(px[((row * gh + y) * w + col * gw) * 3:((row * gh + y) * w + col * gw + gw) * 3]
                        for y in range(gh))
    found = None
    for row in range(h // gh):
        cells = [cell(c, row) for c in range(16)]
        lit = lambda c: any(b > 0x40 for b in c)
        if all(c == cells[0] for c in cells[:12]) and lit(cells[0]):
            found = row
            break
    check("twelve identical glyphs are drawn for ZZZZZZZZZZZZ", found is not None, "no such row")
    check("the echoed command line is drawn above them",
          found is not None and found > 0 and any(b > 0x40 for b in b"".join(cell(c, found - 1) for c in range(20))))

finish()
