#!/usr/bin/env python3
"""Unattended PXE runs: cowboot.efi booted over TFTP (OVMF's own PXE stack, and QEMU's
iPXE ROM) fetches cowboot.cfg from the same server and runs it; a failing line stops it; no cfg
on the server means the prompt."""
import os
import re
import shutil
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cowboot_qemu import Machine, check, finish  # noqa: E402

EFI = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "build", "cowboot.efi")


TFTP_DIRS = []


def tftp_dir(cfg):
    d = tempfile.mkdtemp(prefix="cowboot-tftp-")
    TFTP_DIRS.append(d)
    shutil.copy(EFI, os.path.join(d, "BOOTX64.EFI"))
    if cfg is not None:
        with open(os.path.join(d, "cowboot.cfg"), "w") as f:
            f.write(cfg)
    return d


# pxe_rom="" drops QEMU's iPXE ROM so OVMF's own PXE stack loads the image.
# Boot 1: a script ending in poweroff runs in order and leaves the machine off.
with Machine(pxe_dir=tftp_dir("# over TFTP\necho pxe-start\ndisks\nversion\npoweroff\n"),
             pxe_rom="", name="pxe-ok") as m:
    m.wait_for(r"cowboot \S+\n", 90)
    m.wait_for(r"script: echo pxe-start\npxe-start\n", 30)
    m.wait_for(r"script: disks\n", 30)
    m.wait_for(r"script: version\n", 30)
    m.wait_for(r"script: poweroff\n", 30)
    check("TFTP cowboot.cfg runs its commands in order", True)
    m.wait_exit(30)
    check("script's poweroff ends QEMU with status 0", m.exitcode == 0, str(m.exitcode))

# Boot 2: a failing line is reported with its number, and the prompt follows.
with Machine(pxe_dir=tftp_dir("echo pxe-one\nno-such-command\necho never-reached\n"),
             pxe_rom="", name="pxe-fail") as m:
    mm = m.wait_for(r"script failed at line (\d+): ([^\n]*)\n", 90)
    check("failing TFTP script line is reported", mm.group(1) == "2" and "no-such-command"
          in mm.group(2), mm.group(0))
    m.wait_prompt()
    check("failing TFTP script stops there", "never-reached" not in m.last_before + m.buf)
    m.poweroff_and_wait()

# Boot 3: no cowboot.cfg on the server: straight to the prompt, nothing about TFTP.
with Machine(pxe_dir=tftp_dir(None), pxe_rom="", name="pxe-none") as m:
    m.wait_prompt(90)
    log = m.buf + m.last_before
    check("no TFTP cowboot.cfg: prompt without errors",
          not re.search(r"TFTP|script failed|cowboot\.cfg", log), log[-800:])
    m.poweroff_and_wait()

# Boot 4: QEMU's default iPXE ROM (its PXE_BASE_CODE lacks GET_FILE_SIZE: the read-to-limit path).
with Machine(pxe_dir=tftp_dir("echo ipxe-start\nversion\npoweroff\n"), name="pxe-ipxe") as m:
    m.wait_for(r"iPXE", 60)
    m.wait_for(r"script: echo ipxe-start\nipxe-start\n", 90)
    m.wait_for(r"script: version\n", 30)
    m.wait_for(r"script: poweroff\n", 30)
    check("under iPXE the TFTP cowboot.cfg runs too", "cowboot: TFTP" not in m.last_before,
          m.last_before[-800:])
    m.wait_exit(30)
    check("under iPXE the script's poweroff exits 0", m.exitcode == 0, str(m.exitcode))

for d in TFTP_DIRS:
    shutil.rmtree(d, ignore_errors=True)
finish()
