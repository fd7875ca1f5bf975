#!/usr/bin/env python3
"""The overlay as a disk, both ways, in one boot. In the appliance: an open overlay is the disk
ov0 (disks, read, sum, bench, info, writes landing in the cow, wipe refused, closed and opened
again) while ls ov0 and the other overlay commands keep working. From the host: a cow served by
`cowtool serve` (the nbdkit plugin) is a virtio disk of the appliance, read and written. Both
cows are checked afterwards with cowtool; both sources are unchanged."""
import atexit
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import zlib

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cowboot_qemu import BUILD, Machine, check, finish, host_crc, make_pattern_disk, sha256_file  # noqa: E402
import mkdemo  # noqa: E402

tmp = tempfile.mkdtemp(prefix="cowboot-ovdisk-")
src, cow = os.path.join(tmp, "src.img"), os.path.join(tmp, "cow.img")
cow2, target = os.path.join(tmp, "cow2.img"), os.path.join(tmp, "target.img")
nsrc, ncow, sock = (os.path.join(tmp, n) for n in ("nsrc.img", "ncow.img", "nbd.sock"))
cowtool = os.path.join(BUILD, "cowtool")
mkdemo.ntfs_disk(src, 16 << 20, {"docs/hello.txt": b"hello from the source\n" * 50})
for p, size in ((cow, 24 << 20), (cow2, 24 << 20), (target, 16 << 20)):
    with open(p, "wb") as f:
        f.truncate(size)
make_pattern_disk(nsrc, 4 << 20, "served")
src_hash, nsrc_hash = sha256_file(src), sha256_file(nsrc)


def run(*argv):
    return subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


# The served cow: its first 2 MiB rescued, the rest never tried; no source attached, so the
# rest is a hole (EIO).
run(cowtool, "format", ncow, nsrc)
mapf = os.path.join(tmp, "n.map")
with open(mapf, "w") as f:
    f.write("0x0 + 1\n0x0 0x200000 +\n0x200000 0x200000 ?\n")
r = run(cowtool, "import-map", ncow, mapf, "--image", nsrc)
check("a partially rescued cow to serve", r.returncode == 0, r.stdout)
serve_log = open(os.path.join(tmp, "serve.log"), "w")
server = subprocess.Popen([cowtool, "serve", ncow, "-U", sock], stdout=serve_log, stderr=subprocess.STDOUT)
atexit.register(lambda: server.poll() is None and server.kill())   # also when the boot fails
for _ in range(200):
    if os.path.exists(sock):
        break
    time.sleep(0.05)

disks = [dict(path=src, serial="OVSRC"), dict(path=cow, serial="OVCOW"), dict(path=ncow, nbd_socket=sock),
         dict(path=cow2, serial="OVCOW2"), dict(path=target, serial="OVTGT")]
with Machine(disks=disks, name="ovdisk") as m:
    m.wait_prompt(90)
    out = m.cmd("cow format vd2 vd1 --yes", 60)
    out = m.cmd("cow open vd1 vd2", 60)
    check("cow open binds ov0", "ov0: vd2 over vd1" in out, out)
    out = m.cmd("disks")
    check("disks lists ov0 as an overlay disk with its cow and source",
          re.search(r"^ov0\s+16\.0 MiB\s+512/512\s+vd2 over vd1\s.*overlay\s+overlay$", out, re.M), out)
    out = m.cmd("read ov0 2048")
    with open(src, "rb") as f:
        f.seek(2048 * 512)
        b = f.read(16)
    line = "00100000: " + " ".join("%02x" % x for x in b[:8]) + "  " + " ".join("%02x" % x for x in b[8:])
    check("read ov0 shows the source's sector (the NTFS boot sector) through the overlay", line in out and "NTFS" in out,
          out + " want " + line)
    out = m.cmd("sum ov0 0 4096", 60)
    want = host_crc(src, 0, 4096)
    check("sum ov0 equals the source's CRC", f"crc32 {want} over 4096 sectors" in out, out + " want " + want)
    out = m.cmd("cow stats ov0")
    check("what ov0's reads took from the source is in the cow (copy-on-read)",
          re.search(r"rescued (\d+) bytes", out) and int(re.search(r"rescued (\d+) bytes", out).group(1)) >= 4096 * 512, out)
    out = m.cmd("ls ov0 /docs")
    check("ls ov0 (the overlay's command) still works beside the disk", "hello.txt" in out, out)
    out = m.cmd("testwrite ov0 8192 16 0x5a", 60)
    check("a write and flush through ov0", "wrote and flushed 16 sectors at LBA 8192" in out, out)
    out = m.cmd("read ov0 8192")
    check("ov0 reads back what was written", re.search(r"^00400000: 5a 5a 5a 5a", out, re.M), out)
    out = m.cmd("testwrite vd1 8192 1 0x5a")
    check("the source itself still refuses writes", "device is read-only" in out, out)
    out = m.cmd("sum ov0 8192 16")
    check("sum ov0 over the written sectors", "crc32 %08x over 16" % zlib.crc32(b"\x5a" * 8192) in out, out)
    out = m.cmd("clone ov0 ov0")
    check("clone refuses the overlay's own disk as its target", "ov0 cannot be the target" in out, out)
    out = m.cmd("wipe ov0 --yes")
    check("wipe refuses ov0", "refused: ov0 is an overlay" in out, out)
    out = m.cmd("bench ov0 8", 120)
    check("bench ov0 reads through the overlay", re.search(r"read 8 MiB in \d+ ms", out), out)
    out = m.cmd("info ov0")
    check("info ov0 names its source and cow and what was written",
          "overlay: source vd1 (read-only), cow vd2; written through it 8192 bytes" in out, out)
    out = m.cmd("cow close ov0", 60)
    out2 = m.cmd("read ov0 0")
    check("a closed overlay's disk is gone", "error" not in out and re.search(r"gone|not answering", out2, re.I), out + out2)
    out = m.cmd("cow open vd1 vd2", 60)
    out2 = m.cmd("read ov0 8192")
    check("opened again, ov0 is back with what was written", re.search(r"^00400000: 5a 5a", out2, re.M), out + out2)

    # ov0 as the source of another overlay, cloned to a disk: the copy holds ov0's write.
    out = m.cmd("cow format vd4 ov0 --yes", 60)
    out += m.cmd("cow open ov0 vd4", 60)
    check("ov0 (the disk) is the source of a second overlay, ov1", "ov1: vd4 over ov0" in out, out)
    out = m.cmd("testwrite ov0 0 1 0x11")
    check("ov0 is read-only while it is a source", "device is read-only" in out, out)
    out = m.cmd("cow close ov0")
    check("and its overlay cannot close under ov1", "source, cow or clone target of another overlay" in out, out)
    out = m.cmd("ls ov1 /docs")
    check("ls ov1 reads the NTFS volume through both overlays", "hello.txt" in out, out)
    out = m.cmd("clone ov1 vd5", 30) + m.cmd("wait ov1", 600)
    check("clone ov1 vd5 copies the overlay disk to a disk", re.search(r"clone finished|finished", out) and "error" not in out, out)
    out = m.cmd("cow close ov1", 60)
    out += m.cmd("testwrite ov0 8192 16 0x5a", 60)
    check("ov1 closes; ov0 can be written again", "wrote and flushed 16 sectors" in out, out)

    # The served cow as a disk of the appliance (vd3).
    out = m.cmd("sum vd3 0 4096", 60)
    check("the served cow reads in the appliance: its rescued half equals the source",
          f"crc32 {host_crc(nsrc, 0, 4096)} over 4096 sectors" in out, out)
    out = m.cmd("read vd3 4096")
    check("its never-rescued half is a read error, not data", "error" in out and "served lba" not in out, out)
    out = m.cmd("testwrite vd3 100 8 0xab", 60)
    check("a write and flush to the served cow from the appliance", "wrote and flushed 8 sectors at LBA 100" in out, out)
    out = m.cmd("testwrite vd3 5000 8 0xcd", 60)
    check("and into its never-rescued half", "wrote and flushed 8 sectors at LBA 5000" in out, out)
    code = m.poweroff_and_wait()
    check("poweroff with ov0 open (committed at shutdown)", code == 0, code)

# kill -9: only what was flushed counts, and every write above was flushed.
server.send_signal(signal.SIGKILL)
server.wait()
info = run(cowtool, "info", cow)
check("cowtool info: 8192 bytes written through ov0", re.search(r"written\s+8192 bytes", info.stdout), info.stdout)
out = os.path.join(tmp, "out.img")
r = run(cowtool, "export", cow, src, out)
with open(out, "rb") as f, open(src, "rb") as g:
    a, b = f.read(), g.read()
check("the export holds ov0's write and the source elsewhere",
      r.returncode == 0 and a[8192 * 512:8208 * 512] == b"\x5a" * 8192 and a[:8192 * 512] == b[:8192 * 512]
      and a[8208 * 512:] == b[8208 * 512:], r.stdout)
mp = run(cowtool, "map", ncow).stdout
check("the served cow holds the appliance's writes (cowtool map lists them)",
      "#written  0x0000C800  0x00001000" in mp and "#written  0x00271000  0x00001000" in mp, mp)
r = run(cowtool, "export", ncow, out)
with open(out, "rb") as f:
    a = f.read()
check("and their bytes", a[100 * 512:108 * 512] == b"\xab" * 4096 and a[5000 * 512:5008 * 512] == b"\xcd" * 4096)
with open(target, "rb") as f, open(src, "rb") as g:
    t, b = f.read(), g.read()
check("the clone target holds the source with ov0's write",
      t[:8192 * 512] == b[:8192 * 512] and t[8192 * 512:8208 * 512] == b"\x5a" * 8192 and t[8208 * 512:] == b[8208 * 512:])
check("both sources are unchanged", sha256_file(src) == src_hash and sha256_file(nsrc) == nsrc_hash)
shutil.rmtree(tmp, ignore_errors=True)
finish()
