#!/usr/bin/env python3
"""`make run`: boots the appliance in QEMU+OVMF on the demo disks with the serial console on
this terminal. The source is attached read-only and fails like a worn disk: blkdebug makes a
few of its sectors unreadable. Leave with `poweroff`, or Ctrl-A then X."""
import os
import shutil
import subprocess
import sys
import tempfile

build = sys.argv[1] if len(sys.argv) > 1 else "build"
demo = os.path.join(build, "demo")
tmp = tempfile.mkdtemp(prefix="cowboot-run-")
vars_fd = os.path.join(tmp, "vars.fd")
# Bad sectors for the rescue to find: three together, one alone (512-byte sector numbers).
rules = os.path.join(tmp, "bad-sectors.conf")
with open(rules, "w") as f:
    for sector in (40000, 40001, 40002, 90001):
        f.write(f'[inject-error]\nevent = "read_aio"\niotype = "read"\nerrno = "5"\n'
                f'sector = "{sector}"\nonce = "off"\n\n')
shutil.copy("/usr/share/OVMF/OVMF_VARS_4M.fd", vars_fd)
argv = ["qemu-system-x86_64", "-machine", "q35", "-m", "512", "-smp", "1",
        "-display", "none", "-nodefaults", "-serial", "mon:stdio", "-no-reboot",
        "-drive", "if=pflash,format=raw,readonly=on,file=/usr/share/OVMF/OVMF_CODE_4M.fd",
        "-drive", f"if=pflash,format=raw,file={vars_fd}",
        "-drive", f"if=none,id=boot,file={build}/boot.img,format=raw,readonly=on",
        "-device", "virtio-blk-pci,drive=boot,bootindex=1",
        "-drive", f"if=none,id=src,file=blkdebug:{rules}:{demo}/source.img,format=raw,readonly=on",
        "-device", "virtio-blk-pci,drive=src,serial=DEMO-SOURCE",
        "-drive", f"if=none,id=cow,file={demo}/cow.img,format=raw",
        "-device", "virtio-blk-pci,drive=cow,serial=DEMO-COW",
        "-drive", f"if=none,id=spare,file={demo}/spare.img,format=raw",
        "-device", "ide-hd,drive=spare,bus=ide.0,serial=DEMO-SPARE"]
print("cowboot demo: a failing source (vd1, read-only, 4 bad sectors) and a cow disk (vd2) on")
print("virtio, a spare on SATA (sata0). Try:")
print("  cow format vd2 vd1 --yes ; cow open vd1 vd2 ; rescue ov0 ; wait ; map ov0 ; clone ov0 sata0")
print("The source holds an NTFS volume: `ls ov0 /Users/ann/Pictures`, or rescue just the pictures")
print("with `domain ov0 ntfs:*.jpg` before `rescue ov0`.")
print("`help` lists every command; `poweroff` or Ctrl-A X to leave.\n", flush=True)
try:
    rc = subprocess.call(argv)
finally:
    shutil.rmtree(tmp, ignore_errors=True)
sys.exit(rc)
