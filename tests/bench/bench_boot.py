#!/usr/bin/env python3
"""Boot time: QEMU start to the cowboot prompt, the appliance's own share (EFI entry to prompt,
as it reports it), and in the same run the time OVMF takes to start a trivial EFI application."""
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "qemu"))
from cowboot_qemu import BUILD, OVMF_CODE, OVMF_VARS, ROOT, Machine  # noqa: E402

RUNS = int(os.environ.get("BENCH_RUNS", "3"))


def build_hello():
    out = os.path.join(BUILD, "bench")
    os.makedirs(out, exist_ok=True)
    src = os.path.join(ROOT, "tests", "bench", "hello_efi.c")
    cflags = ["-std=c11", "-O2", "-ffreestanding", "-fno-stack-protector", "-fpic", "-fshort-wchar",
              "-mno-red-zone", "-maccumulate-outgoing-args", "-DGNU_EFI_USE_MS_ABI",
              "-I/usr/include/efi", "-I/usr/include/efi/x86_64"]
    o, so, efi, img = (os.path.join(out, n) for n in ("hello.o", "hello.so", "hello.efi", "hello.img"))
    subprocess.run(["gcc", *cflags, "-c", src, "-o", o], check=True)
    subprocess.run(["ld", "-nostdlib", "-znocombreloc", "-T", os.path.join(ROOT, "linker.ld"),
                    "-shared", "-Bsymbolic", "-L/usr/lib", "/usr/lib/crt0-efi-x86_64.o", o,
                    "-lefi", "-lgnuefi", "-o", so], check=True)
    subprocess.run(["objcopy", "-j", ".text", "-j", ".data", "-j", ".dynamic", "-j", ".dynsym",
                    "-j", ".rela", "-j", ".reloc", "--target", "efi-app-x86_64",
                    "--subsystem=10", so, efi], check=True)
    subprocess.run(["dd", "if=/dev/zero", f"of={img}", "bs=1M", "count=16", "status=none"], check=True)
    subprocess.run(["mformat", "-i", img, "::"], check=True)
    subprocess.run(["mmd", "-i", img, "::/EFI", "::/EFI/BOOT"], check=True)
    subprocess.run(["mcopy", "-i", img, efi, "::/EFI/BOOT/BOOTX64.EFI"], check=True)
    return img


def time_hello(img):
    tmp = tempfile.mkdtemp()
    try:
        shutil.copy(OVMF_VARS, os.path.join(tmp, "vars.fd"))
        t0 = time.time()
        subprocess.run(["qemu-system-x86_64", "-machine", "q35", "-m", "256", "-smp", "1",
                        "-display", "none", "-nodefaults", "-no-reboot",
                        "-drive", f"if=pflash,format=raw,readonly=on,file={OVMF_CODE}",
                        "-drive", f"if=pflash,format=raw,file={tmp}/vars.fd",
                        "-drive", f"if=none,id=boot,file={img},format=raw",
                        "-device", "virtio-blk-pci,drive=boot,bootindex=1"],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=120, check=True)
        return time.time() - t0
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


hello = build_hello()
hello_times, prompt_times, own_ms = [], [], []
for _ in range(RUNS):
    hello_times.append(time_hello(hello))
    with Machine(name="bench") as m:
        mm = m.wait_for(r"boot: entry-to-prompt (\d+) ms", 90)
        own_ms.append(int(mm.group(1)))
        m.wait_prompt(30)
        prompt_times.append(m.t_prompt - m.t_start)
        m.poweroff_and_wait()
h, p, o = statistics.median(hello_times), statistics.median(prompt_times), statistics.median(own_ms)
print(f"runs: {RUNS} (medians, TCG)")
print(f"trivial EFI app, QEMU start to power-off:   {h:6.2f} s   (baseline: OVMF's own time)")
print(f"cowboot, QEMU start to prompt:              {p:6.2f} s")
print(f"cowboot's own share, EFI entry to prompt:   {o / 1000:6.3f} s   (target < 0.5 s)")
print(f"ratio cowboot boot / trivial app:           {p / h:6.2f}")
