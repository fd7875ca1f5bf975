#!/usr/bin/env python3
"""`make run`: boots the appliance in QEMU+OVMF on the demo disks with the serial console on
this terminal. The source is attached read-only. Leave with `poweroff`, or Ctrl-A then X."""
import os
import shutil
import subprocess
import sys
import tempfile

build = sys.argv[1] if len(sys.argv) > 1 else "build"
demo = os.path.join(build, "demo")
tmp = tempfile.mkdtemp(prefix="cowboot-run-")
vars_fd = os.path.join(tmp, "vars.fd")
shutil.copy("/usr/share/OVMF/OVMF_VARS_4M.fd", vars_fd)
argv = ["qemu-system-x86_64", "-machine", "q35", "-m", "512", "-smp", "1",
        "-display", "none", "-nodefaults", "-serial", "mon:stdio", "-no-reboot",
        "-drive", "if=pflash,format=raw,readonly=on,file=/usr/share/OVMF/OVMF_CODE_4M.fd",
        "-drive", f"if=pflash,format=raw,file={vars_fd}",
        "-drive", f"if=none,id=boot,file={build}/boot.img,format=raw,readonly=on",
        "-device", "virtio-blk-pci,drive=boot,bootindex=1",
        "-drive", f"if=none,id=src,file={demo}/source.img,format=raw,readonly=on",
        "-device", "virtio-blk-pci,drive=src,serial=DEMO-SOURCE",
        "-drive", f"if=none,id=cow,file={demo}/cow.img,format=raw",
        "-device", "virtio-blk-pci,drive=cow,serial=DEMO-COW",
        "-drive", f"if=none,id=spare,file={demo}/spare.img,format=raw",
        "-device", "ide-hd,drive=spare,bus=ide.0,serial=DEMO-SPARE"]
print("cowboot demo: source (read-only) and cow on virtio, a spare on SATA.")
print("Type `help` at the prompt; `poweroff` or Ctrl-A X to leave.\n", flush=True)
try:
    rc = subprocess.call(argv)
finally:
    shutil.rmtree(tmp, ignore_errors=True)
sys.exit(rc)
